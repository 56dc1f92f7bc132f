//! First slices on a one-node store: once the node is enrolled in a window, a key new
//! to it admits its first request with no Raft round, and the next reservation settles
//! that slice as used.

use std::collections::HashMap;
use std::sync::Arc;

use gatehouse_raft::kv::slices::Counter;
use gatehouse_raft::{Command, SlotUse, WindowRef};

use super::super::tests::{enrolments_until, limiter_over, store};
use super::super::tests::{leaderless_limiter, limiter_with_lease};
use crate::ratelimit::slice_lease::SliceLease;
use super::super::{ClusterLimiter, Decision, Enrolling, Entry};
use crate::ratelimit::bucket::LimitSpec;
use crate::ratelimit::reserver::{Enrolment, Want};
use crate::cluster::protocol::MembersRead;
use crate::ratelimit::window::{Period, Window};

const FAR: Window = Window { period: Period::Minute, start_ms: 9_000_000_000_000_000 };

/// Admits a key of `window`, which enrolls the node in it and in the next, and waits for
/// both enrolments (fresh or not, as `fresh` says if it says): the one in the next window
/// is a write that would move the store's revision under a test that reads it.
async fn enrolled_by_a_request(limiter: &Arc<ClusterLimiter>, window: Window, fresh: Option<bool>) {
    assert!(matches!(limiter.admit("warm", 8, window, true).await, Decision::Admitted { .. }));
    let done = |enrolled: &HashMap<WindowRef, Enrolling>| {
        [window, window.next()].iter().all(|w| matches!(enrolled.get(&w.to_ref()), Some(Enrolling::Enrolled(e)) if fresh.is_none_or(|f| e.fresh == f)))
    };
    enrolments_until(limiter, "enrolled in the window and the next", done).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_new_here_takes_its_first_slice_without_a_raft_round() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, true).await;
    let (limiter, trigger) = limiter_over(&store);
    // Slices of 8 / (4 x 3 nodes) round to 1, which is never reserved ahead of need: a
    // write to the store can only come from a request that needs one.
    let limit = 8;
    enrolled_by_a_request(&limiter, FAR, Some(true)).await;

    let before = store.revision();
    assert!(matches!(limiter.admit("new", limit, FAR, true).await, Decision::Admitted { .. }));
    assert_eq!(store.revision(), before, "the first request of a key new here took no Raft round");
    let counter = |key: &str| store.get(key).and_then(|kv| Counter::decode(&kv.value));
    assert_eq!(counter("new"), None);

    // The next request reserves, and says the slice was used: it counts as granted.
    assert!(matches!(limiter.admit("new", limit, FAR, true).await, Decision::Admitted { .. }));
    let settled = counter("new").expect("a counter");
    assert_eq!((settled.granted, settled.holders, settled.held(limit)), (2, 1, 0));
    // A key of the next window, new here too, takes its slice the same way: decided at
    // once, with no reservation to wait for. (Its request enrolls the node in the window
    // after, a write of its own, so the store's revision tells nothing here.)
    let decision = limiter.try_decide("new-next", limit, FAR.next(), true);
    assert!(matches!(decision, Ok(Decision::Admitted { on_share: false, .. })), "{decision:?}");
    trigger.trigger();
    store.shutdown().await;
}

/// While a member cannot read first slices' commands, or not every member has been heard
/// of, and the cluster has not recorded that they all read them, the node enrolls in no
/// window and reserves with the plain `Reserve`: the counter keeps the form every version
/// reads. Once the record is there, `ReserveIn` everywhere (a plain `Reserve` sent from a
/// map behind the record makes no counter, and is asked again); a member heard to be
/// older still stops the node taking slices where it is enrolled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_first_slices_off_a_new_key_reserves_with_the_plain_command() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, true).await;
    let (limiter, trigger) = limiter_over(&store);
    let limit = 8;
    for (read, key) in [(MembersRead::Older, "older"), (MembersRead::Unheard, "unheard")] {
        limiter.set_members_read(read);
        let before = store.revision();
        assert!(matches!(limiter.admit(key, limit, FAR, true).await, Decision::Admitted { .. }));
        assert!(store.revision() > before, "the first request waited for a reservation");
        // An enrolment would have been asked for (and recorded) within the decision.
        assert!(limiter.lock().enrolled.is_empty(), "no enrolment asked");
        assert_eq!(store.get(key).map(|kv| kv.value.len()), Some(8), "a counter any version reads");
    }
    let want = |window: Window, slot: Option<SlotUse>| Want { key: "k".into(), want: 1, limit, expires_at: u64::MAX, window: window.to_ref(), slot };
    let plain = |cmd: Command| matches!(cmd, Command::Reserve { .. });
    let alone = Window { period: Period::Hour, start_ms: FAR.start_ms };
    let reserver = &limiter.reserver;
    assert!(plain(reserver.command_for(want(alone, None), MembersRead::Unheard)));
    assert!(!plain(reserver.command_for(want(alone, None), MembersRead::All)));
    assert!(plain(reserver.command_for(want(alone, None), MembersRead::Older)));
    let slot = Some(SlotUse { slot: 0, used: true });
    assert!(!plain(reserver.command_for(want(alone, slot), MembersRead::Older)), "a slot taken is settled so");

    // The cluster records that every member reads them; this node enrolls.
    crate::cluster::agreement::put_record(&store, gatehouse_raft::PROTOCOL_FIRST_SLICES).await.expect("the record");
    limiter.set_members_read(MembersRead::All);
    enrolled_by_a_request(&limiter, FAR.next(), Some(true)).await;
    assert!(!plain(reserver.command_for(want(alone, None), MembersRead::Unheard)), "the record shows every member read them");
    assert!(!plain(reserver.command_for(want(alone, None), MembersRead::Older)), "the state machine would refuse it");
    // A member says it is older (started again on an older binary): no slice taken.
    limiter.set_members_read(MembersRead::Older);
    let before = store.revision();
    assert!(matches!(limiter.admit("new", limit, FAR.next(), true).await, Decision::Admitted { .. }));
    assert!(store.revision() > before, "the first request waited for a reservation");
    // A plain `Reserve` sent from a map behind the record makes no counter: the
    // reservation is asked again with `ReserveIn`, whose counter holds the enrolled
    // node's slot.
    let behind = |key: &str, window: Window| Want { key: key.into(), ..want(window, None) };
    let wants = vec![behind("behind-1", FAR.next()), behind("behind-2", alone)];
    let cmds: Vec<Command> = wants.iter().map(|w| Command::Reserve { key: w.key.clone(), want: 1, limit, expires_at: u64::MAX }).collect();
    let grants = reserver.reserve_by(wants, cmds).await;
    assert!(grants.iter().all(|g| g.as_ref().is_ok_and(|g| g.granted == 1)), "{grants:?}");
    let holders = |key| store.get(key).and_then(|kv| Counter::decode(&kv.value)).map(|c| (c.granted, c.holders));
    assert_eq!((holders("behind-1"), holders("behind-2")), (Some((1, 1)), Some((1, 0))), "made by ReserveIn, each in its window");
    trigger.trigger();
    store.shutdown().await;
}

/// What this node counts as spent from its applied map (for a refusal's fields, and the
/// fallback share without quorum) includes other nodes' first slices held: they may have
/// admitted on them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slices_held_elsewhere_count_as_spent_here() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, true).await;
    let (limiter, trigger) = limiter_over(&store);
    let window = FAR.to_ref();
    for node in [7, 8] {
        store.write(Command::Enroll { node, window, expires_at: u64::MAX }).await.unwrap();
    }
    // Node 7 used its slice and is granted one more; node 8's slice is held.
    let slot = Some(SlotUse { slot: 0, used: true });
    store.write(Command::ReserveIn { key: "k".into(), want: 1, limit: 3, expires_at: u64::MAX, window, slot }).await.unwrap();
    let counter = store.get("k").and_then(|kv| Counter::decode(&kv.value)).expect("a counter");
    assert_eq!((counter.granted, counter.held(3)), (2, 1));
    assert_eq!(limiter.remaining("k", 3), 0);
    trigger.trigger();
    store.shutdown().await;
}

/// The remaining count an admission reports (the client's fields) leaves out first
/// slices other nodes hold and have not said they used: a key that comes to this node
/// alone counts down one by one, as Kong's does. (Counted as spent, the two slices below
/// made it read 9, 6, 5, ... and 0 while it still admitted.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admissions_report_what_is_left_one_by_one_whatever_slices_others_hold() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, true).await;
    let (limiter, trigger) = limiter_over(&store);
    enrolled_by_a_request(&limiter, FAR, Some(true)).await;
    for node in [7, 8] {
        store.write(Command::Enroll { node, window: FAR.to_ref(), expires_at: u64::MAX }).await.unwrap();
    }
    let mut reported = Vec::new();
    for _ in 0..8 {
        match limiter.admit("k", 10, FAR, true).await {
            Decision::Admitted { remaining, .. } => reported.push(remaining),
            other => panic!("{other:?} after {reported:?}"),
        }
    }
    assert_eq!(reported, vec![9, 8, 7, 6, 5, 4, 3, 2]);
    let counter = store.get("k").and_then(|kv| Counter::decode(&kv.value)).expect("a counter");
    assert_eq!(counter.held(10), 2, "nodes 7 and 8 still hold theirs");
    trigger.trigger();
    store.shutdown().await;
}

/// An enrolment an earlier process of this node made (a restart) in a window that began
/// after that process's lease ran out: it admitted nothing in it, so the slot is used as a
/// fresh one, not counted as used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_enrolled_before_a_restart_in_a_later_window_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, true).await;
    store.write(Command::Enroll { node: store.id(), window: FAR.to_ref(), expires_at: u64::MAX }).await.unwrap();
    let (limiter, trigger) = limiter_with_lease(&store, SliceLease::fixed(u64::MAX, FAR.start_ms));
    let limit = 8;
    // Enrolled again, as good as fresh.
    enrolled_by_a_request(&limiter, FAR, Some(true)).await;
    let before = store.revision();
    assert!(matches!(limiter.admit("new", limit, FAR, true).await, Decision::Admitted { .. }));
    assert_eq!(store.revision(), before, "the first request of a key new here took no Raft round");
    trigger.trigger();
    store.shutdown().await;
}

/// A recall's answer that cannot commit (no leader yet) is proposed again until it does:
/// the node that asked waits for it and would otherwise refuse for the rest of the window.
#[tokio::test(flavor = "current_thread")]
async fn a_recall_answer_that_fails_is_proposed_again() {
    let dir = tempfile::tempdir().unwrap();
    // A write with no leader fails after 100 ms, rather than waiting for one to come.
    let mut cfg = gatehouse_raft::StoreConfig::new(1, "127.0.0.1:0".parse().unwrap(), dir.path());
    cfg.request_timeout = std::time::Duration::from_millis(100);
    let store = gatehouse_raft::Store::open(cfg).await.unwrap();
    let (limiter, reserver, trigger) = leaderless_limiter(&store);
    let window = FAR.to_ref();
    {
        let mut counters = limiter.lock();
        counters.enrolled.insert(window, Enrolling::Enrolled(Enrolment { slot: 0, revision: 0, fresh: true }));
        let mut entry = Entry::new(LimitSpec { count: 3, generation: 0 }, FAR);
        entry.slot = Some(SlotUse { slot: 0, used: true });
        counters.entries.insert("k".into(), entry);
    }
    limiter.answer_recall("k", 3, window);
    // On this one thread, the answer's task runs now and sends its proposal to the
    // reserver's batches first; a proposal of ours, in its batch or a later one, fails
    // only once the answer's has failed.
    tokio::task::yield_now().await;
    let ours = reserver.settle("other".into(), 3, u64::MAX, window, SlotUse { slot: 1, used: true }).await;
    assert!(ours.is_err(), "no leader yet");
    store.initialize().await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while store.get("k").and_then(|kv| Counter::decode(&kv.value)).is_none_or(|c| c.granted != 1) {
        assert!(std::time::Instant::now() < deadline, "the answer was not proposed again");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    trigger.trigger();
    store.shutdown().await;
}

/// The earlier process's lease reached into the window: it may have admitted a request on
/// its slot there, so this one takes no first slice and, recalled, says it was used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_the_process_before_a_restart_may_have_used_counts_as_used() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, true).await;
    store.write(Command::Enroll { node: store.id(), window: FAR.to_ref(), expires_at: u64::MAX }).await.unwrap();
    let (limiter, trigger) = limiter_with_lease(&store, SliceLease::fixed(u64::MAX, FAR.start_ms + 1));
    let limit = 8;
    enrolled_by_a_request(&limiter, FAR, None).await;
    assert!(matches!(limiter.lock().enrolled[&FAR.to_ref()], Enrolling::Enrolled(e) if !e.fresh));
    let before = store.revision();
    assert!(matches!(limiter.admit("new", limit, FAR, true).await, Decision::Admitted { .. }));
    assert!(store.revision() > before, "no first slice: the request waited for a reservation");
    assert_eq!(limiter.lock().entries["new"].slot, Some(SlotUse { slot: 0, used: true }), "told as used");
    trigger.trigger();
    store.shutdown().await;
}

/// A lease that does not reach a window (the disk stalled): no first slice there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_first_slice_in_a_window_the_lease_does_not_cover() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, true).await;
    let (limiter, trigger) = limiter_with_lease(&store, SliceLease::fixed(FAR.start_ms, 0));
    let limit = 8;
    enrolled_by_a_request(&limiter, FAR, Some(true)).await;
    let before = store.revision();
    assert!(matches!(limiter.admit("new", limit, FAR, true).await, Decision::Admitted { .. }));
    assert!(store.revision() > before, "no first slice: the request waited for a reservation");
    trigger.trigger();
    store.shutdown().await;
}
