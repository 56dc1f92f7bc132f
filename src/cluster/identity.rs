//! A node's identity: a random 64-bit id chosen on first start and kept in the data dir,
//! so a restarted node is the same Raft member.

use std::path::Path;

use rand::RngExt;

const ID_FILE: &str = "node-id";

/// 2^53: integers below it survive a trip through a double.
const MAX_EXACT_IN_JSON: u64 = 1 << 53;

/// Reads the node id from `data_dir`, or picks and persists a new one. Returns the id
/// and whether it was new (a new node with no data of its own).
pub fn load_or_create(data_dir: &Path) -> std::io::Result<(u64, bool)> {
    if data_dir.exists() {
        if !data_dir.is_dir() {
            return Err(std::io::Error::new(std::io::ErrorKind::AlreadyExists, "exists and is not a directory"));
        }
        warn_if_world_readable(data_dir);
    } else {
        // The dir holds the configuration, key hashes and the cluster's state: its owner's
        // alone, as etcd's (the systemd unit's StateDirectoryMode may allow a group).
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(data_dir)?;
    }
    let path = data_dir.join(ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let id = text.trim().parse::<u64>().map_err(|e| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{} is corrupt: {e}", path.display()))
            })?;
            Ok((id, false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Never 0: some tools treat 0 as "no node". Below 2^53: ids go out as JSON
            // numbers (/status, /cluster), which jq and JavaScript read as doubles.
            let id = rand::rng().random_range(1..MAX_EXACT_IN_JSON);
            let tmp = data_dir.join(format!("{ID_FILE}.tmp"));
            std::fs::write(&tmp, format!("{id}\n"))?;
            std::fs::File::open(&tmp)?.sync_all()?;
            // Rename is atomic: a crash leaves either no id or a whole one.
            std::fs::rename(&tmp, &path)?;
            Ok((id, true))
        }
        Err(e) => Err(e),
    }
}

fn warn_if_world_readable(data_dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(data_dir) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o007 != 0 {
            tracing::warn!(data_dir = %data_dir.display(), mode = format!("{mode:o}"), "the data dir is open to every user on this machine; it holds the configuration and key hashes: chmod o-rwx it");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_data_dir_is_its_owners_alone() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("a/b");
        load_or_create(&data_dir).unwrap();
        assert_eq!(std::fs::metadata(&data_dir).unwrap().permissions().mode() & 0o777, 0o700);
    }

    #[test]
    fn the_id_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (id, new) = load_or_create(dir.path()).unwrap();
        assert!(new && id > 0);
        assert_eq!(load_or_create(dir.path()).unwrap(), (id, false));
    }

    #[test]
    fn new_ids_read_back_exactly_from_json_numbers() {
        for _ in 0..64 {
            let dir = tempfile::tempdir().unwrap();
            let (id, _) = load_or_create(dir.path()).unwrap();
            let through_a_double = serde_json::from_str::<f64>(&id.to_string()).unwrap();
            assert_eq!(through_a_double as u64, id);
        }
    }

    #[test]
    fn a_data_dir_that_is_a_file_is_said_to_be_one() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "").unwrap();
        assert_eq!(load_or_create(&file).unwrap_err().to_string(), "exists and is not a directory");
    }

    #[test]
    fn a_corrupt_id_file_is_an_error_not_a_new_identity() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(ID_FILE), "garbage").unwrap();
        assert!(load_or_create(dir.path()).is_err());
    }
}
