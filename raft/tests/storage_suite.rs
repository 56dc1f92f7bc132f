//! openraft's storage conformance suite against the sled log store and state machine.

use gatehouse_raft::{LogStore, StateMachine, StorageError, TypeConfig};
use openraft::testing::{StoreBuilder, Suite};
use openraft::StorageIOError;

struct SledBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for SledBuilder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError> {
        let dir = tempfile::tempdir().map_err(|e| StorageIOError::write(&e))?;
        let db = sled::open(dir.path()).map_err(|e| StorageIOError::write(&e))?;
        let log = LogStore::open(&db).map_err(|e| StorageIOError::write(&e))?;
        let sm = StateMachine::open(&db, 1024)?;
        Ok((dir, log, sm))
    }
}

#[test]
fn sled_store_passes_openraft_suite() -> Result<(), StorageError> {
    Suite::test_all(SledBuilder)
}
