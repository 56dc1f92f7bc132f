//! Keeps a restarted voter from campaigning until it knows whether the cluster still has a
//! live leader. openraft 0.9 has no PreVote. A voter that was removed while it was down
//! comes back with its old membership and hears from no leader, because it is no longer a
//! member, so it campaigns, term after term. Nobody votes for it. But once it is added
//! again as a learner its term reaches the leader in the first append's answer, and the
//! leader steps down: a leader that did nothing wrong is deposed and writes stop for an
//! election (seen on loopback: term 1 to 12).
//!
//! So until this node has accepted a leader's append or snapshot since it started, it
//! does not campaign:
//! - during a short grace, long enough for a live leader to reach it, or for gossip to
//!   say that one exists;
//! - after the grace, while the layer above reports a live leader elsewhere.
//!
//! Past a limit, or as soon as a leader has been heard, this no longer applies. Voting is
//! never held back, so a cluster that needs this node's vote to elect still gets it, and a
//! node that has run since before a leader died campaigns at once as usual.
//!
//! The cost: when restarted nodes are the only ones that can win (a whole cluster
//! restarted without its old leader, or a restarted node with the longest log just as the
//! leader dies), the election comes after the grace, or once gossip sees the old leader
//! dead, rather than one election timeout after start. A cluster restarted together
//! with its old leader loses nothing: openraft restores that leader at startup and its
//! first append releases the others.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::types::RaftMetrics;

/// When this node last accepted a leader's append or snapshot, since it started. The RPC
/// server records every accepted one.
pub(crate) struct LeaderContact {
    started: Instant,
    /// Milliseconds after `started`; `NEVER` until the first.
    last_ms: AtomicU64,
    heard: watch::Sender<bool>,
}

const NEVER: u64 = u64::MAX;

impl LeaderContact {
    pub(crate) fn new() -> LeaderContact {
        LeaderContact { started: Instant::now(), last_ms: AtomicU64::new(NEVER), heard: watch::Sender::new(false) }
    }

    pub(crate) fn record(&self) {
        self.last_ms.store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
        self.heard.send_if_modified(|heard| !std::mem::replace(heard, true));
    }

    /// How long ago a leader was last heard from; None: not since this node started.
    pub(crate) fn age(&self) -> Option<Duration> {
        let last = self.last_ms.load(Ordering::Relaxed);
        (last != NEVER).then(|| self.started.elapsed().saturating_sub(Duration::from_millis(last)))
    }

    #[cfg(test)]
    pub(crate) fn started(&self) -> Instant {
        self.started
    }

    pub(crate) fn heard(&self) -> watch::Receiver<bool> {
        self.heard.subscribe()
    }
}

/// Decides, from what this node has heard, whether its campaigns are held.
pub(crate) struct RestartHold {
    started: Instant,
    grace: Duration,
    limit: Duration,
    heard: watch::Receiver<bool>,
    leader_elsewhere: watch::Receiver<bool>,
    released: bool,
    heard_closed: bool,
    elsewhere_closed: bool,
}

impl RestartHold {
    pub(crate) fn new(
        started: Instant,
        grace: Duration,
        limit: Duration,
        heard: watch::Receiver<bool>,
        leader_elsewhere: watch::Receiver<bool>,
    ) -> RestartHold {
        RestartHold { started, grace, limit, heard, leader_elsewhere, released: false, heard_closed: false, elsewhere_closed: false }
    }

    /// Whether this node may not campaign now. Once a leader has been heard from, or the
    /// limit has passed, never again.
    pub(crate) fn held(&mut self, m: &RaftMetrics, now: Instant) -> bool {
        if self.released {
            return false;
        }
        let since = now.saturating_duration_since(self.started);
        // A leader has heard from one: itself (it started as one, or won an election).
        let leads = m.state == openraft::ServerState::Leader;
        if *self.heard.borrow_and_update() || leads || since >= self.limit {
            self.released = true;
            return false;
        }
        // A learner never campaigns, and a sole voter has nobody to hear from or depose.
        let membership = m.membership_config.membership();
        if !membership.voter_ids().any(|v| v == m.id) || membership.voter_ids().nth(1).is_none() {
            return false;
        }
        let elsewhere = *self.leader_elsewhere.borrow_and_update();
        since < self.grace || elsewhere
    }

    /// Resolves when `held` may have changed for a reason other than new metrics: a
    /// leader heard, a report from the layer above, the grace or the limit running out.
    /// Never resolves once released.
    pub(crate) async fn changed(&mut self) {
        if self.released {
            return std::future::pending().await;
        }
        let now = Instant::now();
        let deadline = if now < self.started + self.grace { self.started + self.grace } else { self.started + self.limit };
        // A closed channel has nothing more to say; its branch is dropped, the deadline stays.
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {}
            r = self.heard.changed(), if !self.heard_closed => self.heard_closed = r.is_err(),
            r = self.leader_elsewhere.changed(), if !self.elsewhere_closed => self.elsewhere_closed = r.is_err(),
        }
    }
}

/// A hold that tests drive, here and in `elections`.
#[cfg(test)]
pub(crate) mod test_support {
    use std::collections::{BTreeMap, BTreeSet};

    use openraft::Membership;

    use super::*;
    use crate::types::{RaftNode, StoredMembership};

    pub(crate) const GRACE: Duration = Duration::from_secs(2);
    pub(crate) const LIMIT: Duration = Duration::from_secs(10);

    /// Node 1's metrics in a membership of voters 1..=n.
    pub(crate) fn with_voters(n: u64) -> RaftMetrics {
        let mut m = RaftMetrics::new_initial(1);
        let voters: BTreeSet<u64> = (1..=n).collect();
        let nodes: BTreeMap<u64, RaftNode> = voters.iter().map(|id| (*id, RaftNode::default())).collect();
        m.membership_config = std::sync::Arc::new(StoredMembership::new(None, Membership::new(vec![voters], nodes)));
        m
    }

    /// `contact` records a leader's append; `elsewhere` is the report of a live leader
    /// elsewhere.
    pub(crate) struct Fixture {
        pub(crate) contact: LeaderContact,
        pub(crate) elsewhere: watch::Sender<bool>,
        pub(crate) hold: RestartHold,
    }

    pub(crate) fn fixture() -> Fixture {
        let contact = LeaderContact::new();
        let elsewhere = watch::Sender::new(false);
        let hold = RestartHold::new(contact.started(), GRACE, LIMIT, contact.heard(), elsewhere.subscribe());
        Fixture { contact, elsewhere, hold }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{fixture, with_voters, Fixture, GRACE, LIMIT};
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_restarted_voter_waits_out_the_grace_then_campaigns_when_no_leader_is_reported() {
        let mut f = fixture();
        let m = with_voters(3);
        assert!(f.hold.held(&m, Instant::now()));
        f.hold.changed().await;
        assert_eq!(f.contact.started().elapsed(), GRACE, "wakes when the grace ends");
        assert!(!f.hold.held(&m, Instant::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_reported_leader_holds_it_past_the_grace_until_the_limit() {
        let mut f = fixture();
        let m = with_voters(3);
        f.elsewhere.send_replace(true);
        tokio::time::sleep(GRACE * 2).await;
        assert!(f.hold.held(&m, Instant::now()), "a live leader elsewhere: still held");
        f.hold.changed().await;
        assert_eq!(f.contact.started().elapsed(), LIMIT, "next wakes at the limit");
        assert!(!f.hold.held(&m, Instant::now()), "never held past the limit");
        f.elsewhere.send_replace(false);
        f.elsewhere.send_replace(true);
        assert!(!f.hold.held(&m, Instant::now()), "released for good");
    }

    #[tokio::test(start_paused = true)]
    async fn hearing_a_leader_releases_it_for_good() {
        let mut f = fixture();
        let m = with_voters(3);
        f.elsewhere.send_replace(true);
        assert!(f.hold.held(&m, Instant::now()));
        assert_eq!(f.contact.age(), None);
        tokio::time::sleep(Duration::from_millis(300)).await;
        f.contact.record();
        f.hold.changed().await;
        assert_eq!(f.contact.started().elapsed(), Duration::from_millis(300), "woken by the contact itself");
        assert!(!f.hold.held(&m, Instant::now()));
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(f.contact.age(), Some(Duration::from_millis(700)));
        assert!(!f.hold.held(&m, Instant::now()), "even within the grace, with a leader reported elsewhere");
    }

    #[tokio::test(start_paused = true)]
    async fn reports_after_the_grace_hold_and_release_it() {
        let mut f = fixture();
        let m = with_voters(3);
        tokio::time::sleep(GRACE).await;
        assert!(!f.hold.held(&m, Instant::now()), "nothing reported: campaigns after the grace");
        let Fixture { contact, elsewhere, mut hold } = f;
        let waiter = tokio::spawn(async move {
            hold.changed().await;
            hold
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        elsewhere.send_replace(true);
        let mut hold = waiter.await.unwrap();
        assert_eq!(contact.started().elapsed(), GRACE + Duration::from_millis(100), "woken by the report");
        assert!(hold.held(&m, Instant::now()), "a live leader reported elsewhere");
        elsewhere.send_replace(false);
        assert!(!hold.held(&m, Instant::now()), "the report withdrawn");
    }

    #[tokio::test(start_paused = true)]
    async fn a_leader_is_never_held_and_is_released_for_good() {
        let mut f = fixture();
        let mut m = with_voters(3);
        m.state = openraft::ServerState::Leader;
        assert!(!f.hold.held(&m, Instant::now()), "a leader that grew from one voter to three");
        m.state = openraft::ServerState::Follower;
        f.elsewhere.send_replace(true);
        assert!(!f.hold.held(&m, Instant::now()), "it has led since it started: released");
    }

    #[tokio::test(start_paused = true)]
    async fn a_learner_is_never_held() {
        let mut f = fixture();
        f.elsewhere.send_replace(true);
        let mut m = with_voters(3);
        m.id = 4;
        assert!(!f.hold.held(&m, Instant::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn the_grace_still_ends_once_nobody_can_report_any_more() {
        let Fixture { contact, elsewhere, mut hold } = fixture();
        let started = contact.started();
        drop((contact, elsewhere));
        let m = with_voters(3);
        assert!(hold.held(&m, Instant::now()));
        while hold.held(&m, Instant::now()) {
            hold.changed().await;
        }
        assert_eq!(started.elapsed(), GRACE, "released when the grace ends, not stuck on closed channels");
    }

    #[tokio::test(start_paused = true)]
    async fn a_sole_voter_is_never_held() {
        let mut f = fixture();
        f.elsewhere.send_replace(true);
        assert!(!f.hold.held(&with_voters(1), Instant::now()));
        assert!(f.hold.held(&with_voters(2), Instant::now()), "not released by having been a sole voter");
    }
}
