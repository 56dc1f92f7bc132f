//! The cluster's record that every member reads first slices' commands
//! (`gatehouse_raft::kv::slices::AGREED_KEY`). Gossip tells a node what the members read
//! only once it has heard each of them; the record is put in the replicated map, once,
//! by the first node that has. From then on the state machine lets no plain `Reserve`
//! create a counter (one that did would hold no first slices while an enrolled node took
//! its own), and nodes enroll only once their map holds the record: every counter a
//! plain `Reserve` made comes before every enrolment in the log, whatever a node that
//! has not heard every member (just restarted, joining, its map behind) proposes. A
//! node whose map holds the record need not hear every member again.

use gatehouse_raft::kv::slices::AGREED_KEY;
use gatehouse_raft::{Command, Compare, Store, StoreError, TxnOp};

use super::protocol::MembersRead;

/// The protocol the record says every member read when it was put (0: no record).
pub fn agreed_protocol(store: &Store) -> u32 {
    store.get(AGREED_KEY).and_then(|kv| std::str::from_utf8(&kv.value).ok()?.trim().parse().ok()).unwrap_or(0)
}

/// Whether the record says every member reads first slices' commands: the protocol this
/// binary takes them at, or a later one.
pub fn agreed(store: &Store) -> bool {
    agreed_protocol(store) >= gatehouse_raft::PROTOCOL_FIRST_SLICES
}

/// Puts the record, unless one is there already (a node that heard every member before
/// this one did put it first).
pub async fn put_record(store: &Store, protocol: u32) -> Result<(), StoreError> {
    let put = TxnOp::Put { key: AGREED_KEY.into(), value: protocol.to_string().into_bytes(), expires_at: None };
    store.write(Command::Txn { compares: vec![Compare { key: AGREED_KEY.into(), mod_revision: 0 }], ops: vec![put] }).await.map(|_| ())
}

/// What the node acts on, given gossip's verdict (`heard`) and whether its applied map
/// holds the record (`agreed`), and whether it should put the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub read: MembersRead,
    pub put_record: bool,
}

/// Every member heard to read first slices' commands, but no record yet: unheard still,
/// and the record is put. Once the record is there, every member reads them whether or
/// not this node has heard them all (it has just started, or a member has been away for
/// long), since members have joined since only if they read it (see `cluster::join`);
/// but a node that is not a `member` gets no entries, and would never learn its
/// enrolments: unheard. A member heard to be older (one started again on an older
/// binary, which is not supported) wins over the record.
pub fn verdict(heard: MembersRead, agreed: bool, member: bool) -> Verdict {
    match (heard, agreed) {
        (MembersRead::Older, _) => Verdict { read: MembersRead::Older, put_record: false },
        (_, true) if member => Verdict { read: MembersRead::All, put_record: false },
        (_, true) => Verdict { read: MembersRead::Unheard, put_record: false },
        (MembersRead::All, false) => Verdict { read: MembersRead::Unheard, put_record: true },
        (MembersRead::Unheard, false) => Verdict { read: MembersRead::Unheard, put_record: false },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_once_the_record_is_applied() {
        let unheard = |put_record| Verdict { read: MembersRead::Unheard, put_record };
        assert_eq!(verdict(MembersRead::Unheard, false, true), unheard(false), "not every member heard: no record put");
        assert_eq!(verdict(MembersRead::All, false, true), unheard(true));
        let all = Verdict { read: MembersRead::All, put_record: false };
        assert_eq!(verdict(MembersRead::All, true, true), all);
        assert_eq!(verdict(MembersRead::Older, true, true).read, MembersRead::Older, "an older member heard of wins over the record");
        assert_eq!(verdict(MembersRead::Unheard, true, true), all, "a restarted node replays the record: it need not hear every member again");
        assert_eq!(verdict(MembersRead::Unheard, true, false), unheard(false), "not a member (removed): no entries, no enrolment");
    }
}
