//! The cluster's record that every member was heard to read first slices' commands. Gossip
//! tells a node what the members read only once it has heard each of them, and a node
//! that has not yet (just started, or joined) reserves with the plain `Reserve` wherever
//! its map shows no sign of the newer commands; a counter that makes holds no first
//! slice, so a node that took one there would admit a request over the limit. The
//! record, put once in the replicated map by the first node that heard every member, is
//! that sign: it is in the map a restarted node replays and in what a joining node
//! catches up, so such a node reserves with `ReserveIn` from the start.
//!
//! A node enrolls (and takes first slices) only some seconds after it first sees the
//! record, so that a plain `Reserve` proposed before the record was applied everywhere has
//! been applied by then, or lost: its counter then exists before the enrolment and holds
//! no slot the enrolled node may use.

use std::time::{Duration, Instant};

use gatehouse_raft::{Command, Compare, Store, StoreError, TxnOp};

use super::protocol::MembersRead;

/// The record's key: outside `config/`, so that it is no entity, and never expires.
pub const AGREED_KEY: &str = "cluster-protocol";
/// How long after first seeing the record a node still reads the members as unheard.
/// A proposal waits at most an election or two for its leader; this is well past that.
pub const AGREEMENT_SETTLES: Duration = Duration::from_secs(5);

/// The protocol the record says every member read when it was put (0: no record).
pub fn agreed_protocol(store: &Store) -> u32 {
    store.get(AGREED_KEY).and_then(|kv| std::str::from_utf8(&kv.value).ok()?.trim().parse().ok()).unwrap_or(0)
}

/// Puts the record, unless one is there already (a node that heard every member before
/// this one did put it first).
pub async fn put_record(store: &Store, protocol: u32) -> Result<(), StoreError> {
    let put = TxnOp::Put { key: AGREED_KEY.into(), value: protocol.to_string().into_bytes(), expires_at: None };
    store.write(Command::Txn { compares: vec![Compare { key: AGREED_KEY.into(), mod_revision: 0 }], ops: vec![put] }).await.map(|_| ())
}

/// Turns what gossip says the members read into what this node acts on, given the record.
#[derive(Debug, Default)]
pub struct Agreement {
    seen_at: Option<Instant>,
}

/// What the node acts on, and whether it should put the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub read: MembersRead,
    pub put_record: bool,
}

impl Agreement {
    /// `heard`: gossip's verdict; `agreed`: whether the applied map holds the record for
    /// the protocol needed. Every member heard, but no record yet, or seen too recently:
    /// unheard still (the record, once there, has reservations use `ReserveIn`).
    pub fn verdict(&mut self, heard: MembersRead, agreed: bool, now: Instant) -> Verdict {
        if agreed && self.seen_at.is_none() {
            self.seen_at = Some(now);
        }
        let settled = self.seen_at.is_some_and(|seen| now.duration_since(seen) >= AGREEMENT_SETTLES);
        match heard {
            MembersRead::All if settled => Verdict { read: MembersRead::All, put_record: false },
            MembersRead::All => Verdict { read: MembersRead::Unheard, put_record: !agreed },
            other => Verdict { read: other, put_record: false },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_only_some_seconds_after_the_record_is_seen() {
        let mut agreement = Agreement::default();
        let start = Instant::now();
        let unheard = |put_record| Verdict { read: MembersRead::Unheard, put_record };
        assert_eq!(agreement.verdict(MembersRead::Unheard, false, start), unheard(false), "not every member heard: no record put");
        assert_eq!(agreement.verdict(MembersRead::All, false, start), unheard(true));
        let applied = start + Duration::from_millis(3);
        assert_eq!(agreement.verdict(MembersRead::All, true, applied), unheard(false));
        assert_eq!(agreement.verdict(MembersRead::All, true, applied + AGREEMENT_SETTLES - Duration::from_millis(1)), unheard(false));
        let later = applied + AGREEMENT_SETTLES;
        assert_eq!(agreement.verdict(MembersRead::All, true, later), Verdict { read: MembersRead::All, put_record: false });
        assert_eq!(agreement.verdict(MembersRead::Older, true, later).read, MembersRead::Older, "an older member heard of wins over the record");
        assert_eq!(agreement.verdict(MembersRead::Unheard, true, later).read, MembersRead::Unheard);
    }

    #[test]
    fn a_record_seen_at_start_still_waits() {
        // A restarted node replays the record: it has heard nobody yet, and waits all the same.
        let mut agreement = Agreement::default();
        let start = Instant::now();
        assert_eq!(agreement.verdict(MembersRead::Unheard, true, start).read, MembersRead::Unheard);
        assert_eq!(agreement.verdict(MembersRead::All, true, start + Duration::from_secs(1)).read, MembersRead::Unheard);
        assert_eq!(agreement.verdict(MembersRead::All, true, start + AGREEMENT_SETTLES).read, MembersRead::All);
    }
}
