//! The limiter against a real one-node store: exact admission under concurrency, and the
//! local-share fallback when there is no quorum.

use std::sync::Arc;
use std::time::Duration;

use gatehouse_raft::{Store, StoreConfig};

use super::ahead::{windows_ahead, WINDOWS_AHEAD};
use super::*;
use crate::cluster::protocol::MembersRead;
use crate::ratelimit::slice_lease::SliceLease;
use crate::ratelimit::window::{counter_key, Period};
use crate::shutdown::ShutdownTrigger;

/// A window that ends long after any test: no sweep forgets it.
const FAR: Window = Window { period: Period::Second, start_ms: 9_000_000_000_000_000 };

pub(crate) async fn store(dir: &tempfile::TempDir, initialize: bool) -> Store {
    let store = Store::open(StoreConfig::new(1, "127.0.0.1:0".parse().unwrap(), dir.path())).await.unwrap();
    if initialize {
        store.initialize().await.unwrap();
        store.raft().wait(Some(Duration::from_secs(5))).current_leader(1, "leader").await.unwrap();
    }
    store
}

/// A limiter over `store` that counts three live nodes, with the trigger that stops its
/// reserver.
pub(crate) fn limiter_over(store: &Store) -> (Arc<ClusterLimiter>, ShutdownTrigger) {
    limiter_with_lease(store, SliceLease::fixed(u64::MAX, 0))
}

/// `limiter_over`, with the first-slice lease given.
pub(crate) fn limiter_with_lease(store: &Store, lease: Arc<SliceLease>) -> (Arc<ClusterLimiter>, ShutdownTrigger) {
    let trigger = ShutdownTrigger::new();
    let reserver = Reserver::start(store.clone(), Duration::from_secs(2), trigger.signal());
    reserver.set_members_read(MembersRead::All);
    let limiter = ClusterLimiter::new(reserver, Arc::new(|| 3), Duration::from_secs(2), lease);
    tokio::spawn(limiter.clone().watch_recalls(trigger.signal()));
    (limiter, trigger)
}

/// Waits until the limiter's enrolments are as `done` says; fails after 5 s. They are
/// answered in the background, by the requests' own enrolment calls.
pub(super) async fn enrolments_until(limiter: &ClusterLimiter, what: &str, done: impl Fn(&HashMap<WindowRef, Enrolling>) -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !done(&limiter.lock().enrolled) {
        assert!(std::time::Instant::now() < deadline, "{what}: not within 5 s");
        tokio::task::yield_now().await;
    }
}

/// A limiter over a store never initialised: no leader, so every reservation fails (after
/// 200 ms), and a request waits 300 ms before it falls back. With the reserver, for a
/// second limiter.
pub(crate) fn leaderless_limiter(store: &Store) -> (Arc<ClusterLimiter>, Reserver, ShutdownTrigger) {
    let trigger = ShutdownTrigger::new();
    let reserver = Reserver::start(store.clone(), Duration::from_millis(200), trigger.signal());
    reserver.set_members_read(MembersRead::All);
    let limiter = ClusterLimiter::new(reserver.clone(), Arc::new(|| 3), Duration::from_millis(300), SliceLease::fixed(u64::MAX, 0));
    tokio::spawn(limiter.clone().watch_recalls(trigger.signal()));
    (limiter, reserver, trigger)
}

/// The cluster-wide total the store has applied for `key`.
fn counter(store: &Store, key: &str) -> Option<u64> {
    store.get(key).and_then(|kv| gatehouse_raft::kv::decode_counter(&kv.value))
}

async fn admit_many(limiter: &Arc<ClusterLimiter>, n: usize, limit: u64, fault_tolerant: bool) -> (usize, usize, usize) {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let limiter = limiter.clone();
            tokio::spawn(async move { limiter.admit("k", limit, FAR, fault_tolerant).await })
        })
        .collect();
    let (mut ok, mut rejected, mut unavailable) = (0, 0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Decision::Admitted { .. } => ok += 1,
            Decision::Rejected => rejected += 1,
            Decision::Unavailable => unavailable += 1,
        }
    }
    (ok, rejected, unavailable)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admits_exactly_the_limit_under_concurrency() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, true).await;
    let (limiter, trigger) = limiter_over(&store);
    let (ok, rejected, _) = admit_many(&limiter, 300, 120, true).await;
    assert_eq!((ok, rejected), (120, 180));
    assert!(!limiter.degraded());
    trigger.trigger();
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_quorum_a_node_admits_its_local_share_or_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, false).await;
    let (limiter, reserver, trigger) = leaderless_limiter(&store);
    let (ok, rejected, _) = admit_many(&limiter, 30, 20, true).await;
    assert_eq!((ok, rejected), (7, 23), "ceil(20 / 3 live nodes)");
    assert!(limiter.degraded());
    let next = limiter.admit("k2", 20, FAR, true).await;
    assert!(matches!(next, Decision::Admitted { on_share: true, .. }), "another window, on the share too: {next:?}");

    let strict = ClusterLimiter::new(reserver, Arc::new(|| 3), Duration::from_millis(300), SliceLease::fixed(u64::MAX, 0));
    let (ok, _, unavailable) = admit_many(&strict, 5, 20, false).await;
    assert_eq!((ok, unavailable), (0, 5));
    trigger.trigger();
    store.shutdown().await;
}

/// Decides one request, waiting for reservations in flight but never starting the clock
/// that falls back: what `admit` does when reservations succeed.
async fn decide_when_known(limiter: &Arc<ClusterLimiter>, key: &str, limit: u64, window: Window) -> Decision {
    loop {
        match limiter.try_decide(key, limit, window, true) {
            Ok(decision) => return decision,
            Err(mut changed) => changed.changed().await.unwrap(),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_key_reserves_its_next_windows_in_one_raft_entry() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, true).await;
    let (limiter, trigger) = limiter_over(&store);
    // Slices of 12000 / (4 x 3 nodes) = 1000: large enough to reserve ahead, and large
    // enough that 64 requests leave no prefetch of w0 in flight to share the log with.
    let limit = 12_000;
    for _ in 1..AHEAD_MIN_USE {
        limiter.admit("w0", limit, FAR, true).await;
    }
    assert!(!limiter.busy("w0"), "a key seen fewer than AHEAD_MIN_USE times is not busy");
    limiter.admit("w0", limit, FAR, true).await;
    assert!(limiter.busy("w0") && !limiter.knows("w1"));

    let before = log_mark(&store).await;
    limiter.reserve_ahead((1..=4).map(|w| (format!("w{w}"), FAR)).collect(), limit);
    assert!(limiter.knows("w1"), "known as soon as reserved");
    for w in 1..=4 {
        let decision = decide_when_known(&limiter, &format!("w{w}"), limit, FAR).await;
        assert!(matches!(decision, Decision::Admitted { .. }), "window {w}: {decision:?}");
    }
    assert_eq!(log_mark(&store).await - before - 1, 1, "the four windows' reservations share one Raft entry");
    for w in 1..=4 {
        assert_eq!(counter(&store, &format!("w{w}")), Some(1_000), "window {w} got its first slice and no second reservation");
    }
    trigger.trigger();
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_slices_are_not_reserved_ahead() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, true).await;
    let (limiter, trigger) = limiter_over(&store);
    // Slices of 40 / 12 = 3 tokens: held ahead on one node they would starve the others.
    limiter.reserve_ahead(vec![("w1".into(), FAR)], 40);
    assert!(limiter.lock().entries.is_empty(), "nothing reserved ahead");
    trigger.trigger();
    store.shutdown().await;
}

/// The log index of a write of its own: the entries between two marks are what the
/// limiter wrote meanwhile, if all of it was applied before the second (the metrics' last
/// index can lag behind what the state machine shows, so it does not count them).
async fn log_mark(store: &Store) -> u64 {
    let mark = gatehouse_raft::Command::Put { key: "test/mark".into(), value: Vec::new(), expires_at: None };
    store.write(mark).await.unwrap().log_index
}

/// Whether a reservation for `key` is in flight (set when one starts, under the lock).
fn pending(limiter: &ClusterLimiter, key: &str) -> bool {
    limiter.lock().entries.get(key).is_some_and(|e| e.bucket.pending)
}

/// Waits until the store has applied a counter for `key`; fails after 10 s.
/// `n` consecutive windows from `FAR`, and `client`'s key in each.
fn far_windows_of(client: &str, n: usize) -> (Vec<Window>, Vec<String>) {
    let windows: Vec<Window> = std::iter::successors(Some(FAR), |w| Some(w.next())).take(n).collect();
    let keys = windows.iter().map(|w| counter_key("p", client, w)).collect();
    (windows, keys)
}

async fn applied_counter(store: &Store, key: &str) -> u64 {
    let mut metrics = store.raft().metrics();
    let applied = async {
        loop {
            if let Some(total) = counter(store, key) {
                return total;
            }
            metrics.changed().await.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(10), applied).await.unwrap_or_else(|_| panic!("no counter for {key}"))
}

/// Waits until no reservation for `key` is in flight in the limiter (its outcome
/// recorded, not only applied by the store), or the key is gone; fails after 10 s.
async fn settled(limiter: &ClusterLimiter, key: &str) {
    let settled = async {
        loop {
            let mut changed = {
                let counters = limiter.lock();
                match counters.entries.get(key) {
                    Some(entry) if entry.bucket.pending => entry.changed.subscribe(),
                    _ => return,
                }
            };
            changed.changed().await.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(10), settled).await.unwrap_or_else(|_| panic!("{key} still pending"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_that_comes_back_has_its_next_windows_reserved_before_they_begin() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, true).await;
    let (limiter, trigger) = limiter_over(&store);
    // One request a window, far below AHEAD_MIN_USE; slices of 12000 / (4 x 3) = 1000.
    let limit = 12_000;
    let (windows, keys) = far_windows_of("10.0.0.7", 10);
    let other = far_windows_of("10.0.0.8", 10).1;

    limiter.admit(&keys[0], limit, windows[0], true).await;
    // Another key seen only from window 1 on: it has not come back yet.
    limiter.admit(&other[1], limit, windows[1], true).await;
    assert!(!limiter.knows(&keys[1]) && !limiter.knows(&other[2]), "a key seen once reserves nothing ahead");

    // The first window's entry is kept through its grace (a late recall of its first slice
    // must find that it was used), and so is that the key was used in it.
    limiter.sweep(windows[0].end_ms());
    assert!(limiter.knows(&keys[0]));
    // The enrolments the first requests asked for are in the log before it is marked.
    enrolments_until(&limiter, "enrolments answered", |enrolled| enrolled.values().all(|e| *e != Enrolling::Asked)).await;
    let before = log_mark(&store).await;
    limiter.admit(&keys[1], limit, windows[1], true).await;
    for (w, key) in keys.iter().enumerate().take(6).skip(2) {
        assert!(limiter.knows(key), "window {w} claimed at the key's first use in window 1");
        assert_eq!(applied_counter(&store, key).await, 1_000, "window {w}: the first slice");
        settled(&limiter, key).await;
    }
    assert!(!limiter.knows(&keys[6]), "{WINDOWS_AHEAD} windows at a time");
    // Window 1's first request took the node's first slice of its counter; its next
    // slice, reserved at once, may share a Raft entry with the four windows ahead.
    settled(&limiter, &keys[1]).await;
    let entries = log_mark(&store).await - before - 1;
    assert!((1..=2).contains(&entries), "the windows ahead share one Raft entry: {entries} entries");

    // Windows 2 to 4 were reserved: their first requests find tokens and start nothing.
    for (w, (key, window)) in keys.iter().zip(&windows).enumerate().take(5).skip(2) {
        let decision = limiter.try_decide(key, limit, *window, true);
        assert!(matches!(decision, Ok(Decision::Admitted { .. })), "window {w} admits at once: {decision:?}");
        assert!(!pending(&limiter, key), "window {w}: no reservation in flight");
    }
    assert!(!limiter.knows(&keys[6]), "nothing claimed while the next window is known");
    // The last window reserved ahead claims the next four at its first use.
    limiter.admit(&keys[5], limit, windows[5], true).await;
    for (w, key) in keys.iter().enumerate().skip(6) {
        assert!(limiter.knows(key), "window {w} claimed at the first use of window 5");
        assert_eq!(applied_counter(&store, key).await, 1_000, "window {w}");
    }
    trigger.trigger();
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_that_skipped_a_window_is_not_reserved_ahead() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, true).await;
    let (limiter, trigger) = limiter_over(&store);
    let (windows, keys) = far_windows_of("10.0.0.7", 4);
    limiter.admit(&keys[0], 12_000, windows[0], true).await;
    limiter.admit(&keys[2], 12_000, windows[2], true).await;
    assert!(!limiter.knows(&keys[3]), "window 1 had no request: window 2's is not a return");
    // A use is remembered until the window after its own ends, and no longer.
    assert_eq!(limiter.lock().recent.len(), 2);
    limiter.sweep(windows[1].end_ms());
    assert_eq!(limiter.lock().recent.len(), 1, "only window 2's use is remembered");
    assert!(limiter.knows(&keys[0]), "an entry is kept while late reservations of its window are taken");
    limiter.sweep(windows[0].end_ms() + COUNTER_GRACE_MS);
    assert!(!limiter.knows(&keys[0]) && limiter.knows(&keys[2]));
    trigger.trigger();
    store.shutdown().await;
}

#[test]
fn keys_reserve_ahead_within_a_minute() {
    let at = |period| Window::containing(period, 1_700_000_000_000);
    assert_eq!(windows_ahead(&at(Period::Second)), WINDOWS_AHEAD);
    assert_eq!(windows_ahead(&at(Period::Minute)), 1);
    assert_eq!(windows_ahead(&at(Period::Hour)), 0);
    assert_eq!(windows_ahead(&at(Period::Year)), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minute_key_that_comes_back_reserves_the_next_minute_only_and_an_hour_key_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, true).await;
    let (limiter, trigger) = limiter_over(&store);
    for (period, expected) in [(Period::Minute, 1), (Period::Hour, 0)] {
        let first = Window::containing(period, FAR.start_ms);
        let windows: Vec<Window> = std::iter::successors(Some(first), |w| Some(w.next())).take(4).collect();
        let keys: Vec<String> = windows.iter().map(|w| counter_key("p", "10.0.0.7", w)).collect();
        limiter.admit(&keys[0], 12_000, windows[0], true).await;
        limiter.admit(&keys[1], 12_000, windows[1], true).await;
        let claimed: Vec<bool> = keys[2..].iter().map(|key| limiter.knows(key)).collect();
        let want: Vec<bool> = (0..2).map(|i| i < expected).collect();
        assert_eq!(claimed, want, "{period:?}");
    }
    trigger.trigger();
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_limit_applies_in_the_middle_of_a_window() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, true).await;
    let (limiter, trigger) = limiter_over(&store);
    // 12000: a first slice of 1000, nearly all of it unused here when the limit drops.
    assert!(matches!(limiter.admit("k", 12_000, FAR, true).await, Decision::Admitted { .. }));
    settled(&limiter, "k").await;
    assert_eq!(limiter.admit("k", 5, FAR, true).await, Decision::Rejected, "1000 granted already: 5 leaves nothing");
    // Raised past what was granted: reserved from again, and admitted.
    assert!(matches!(limiter.admit("k", 2_000, FAR, true).await, Decision::Admitted { .. }));
    let total = counter(&store, "k").unwrap();
    assert!(total > 1_000 && total <= 2_000, "a second reservation under the new limit: {total}");
    trigger.trigger();
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_reservation_ahead_is_forgotten_not_a_fallback() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, false).await;
    let (limiter, _, trigger) = leaderless_limiter(&store);
    limiter.reserve_ahead(vec![("w1".into(), FAR)], 12_000);
    assert!(limiter.knows("w1"));
    settled(&limiter, "w1").await;
    assert!(!limiter.knows("w1"), "forgotten: the window reserves afresh when it begins");
    assert!(!limiter.degraded(), "no fallback for a window nobody has asked for yet");
    trigger.trigger();
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_busy_in_its_first_window_here_reserves_its_next_windows() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, true).await;
    let (limiter, trigger) = limiter_over(&store);
    let (windows, keys) = far_windows_of("10.0.0.7", 6);
    for _ in 1..AHEAD_MIN_USE {
        limiter.admit(&keys[0], 12_000, windows[0], true).await;
    }
    limiter.reserve_ahead_if_busy(&keys[0], windows[0], 12_000);
    assert!(!limiter.knows(&keys[1]), "not busy yet: nothing reserved");
    limiter.admit(&keys[0], 12_000, windows[0], true).await;
    limiter.reserve_ahead_if_busy(&keys[0], windows[0], 12_000);
    let claimed: Vec<bool> = keys[1..].iter().map(|key| limiter.knows(key)).collect();
    assert_eq!(claimed, [true, true, true, true, false], "the next {WINDOWS_AHEAD} second windows");
    for (w, key) in keys.iter().enumerate().take(5).skip(1) {
        assert_eq!(applied_counter(&store, key).await, 1_000, "window {w}");
    }
    trigger.trigger();
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_gives_the_token_back_unless_the_limit_changed_since() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, true).await;
    let (limiter, trigger) = limiter_over(&store);
    assert!(matches!(limiter.admit("k", 120, FAR, true).await, Decision::Admitted { .. }));
    let after_one = limiter.remaining("k", 120);
    assert!(matches!(limiter.admit("k", 120, FAR, true).await, Decision::Admitted { .. }));
    limiter.refund("k", 120);
    assert_eq!(limiter.remaining("k", 120), after_one);
    // Lowered to 2 since the admission: the slice granted under 120 is given up, and the
    // refunded token with it.
    assert!(matches!(limiter.admit("k", 2, FAR, true).await, Decision::Rejected));
    limiter.refund("k", 120);
    assert!(matches!(limiter.admit("k", 2, FAR, true).await, Decision::Rejected));
    trigger.trigger();
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_reservations_fail_new_windows_decide_without_waiting_until_a_probe_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, false).await;
    let (limiter, _reserver, trigger) = leaderless_limiter(&store);
    // The first window waits out its reservation, then falls back.
    assert!(matches!(limiter.admit("a", 20, FAR, true).await, Decision::Admitted { .. }));
    assert!(limiter.degraded());
    // Windows opened meanwhile decide at once, from the share or by refusing.
    assert!(matches!(limiter.try_decide("b", 20, FAR, true), Ok(Decision::Admitted { .. })));
    assert!(matches!(limiter.try_decide("c", 20, FAR, false), Ok(Decision::Unavailable)));

    // The quorum comes back: once the spell is over, a request starts a reservation in
    // the background and is itself admitted from the share; the reservation ends it.
    store.initialize().await.unwrap();
    store.raft().wait(Some(Duration::from_secs(5))).current_leader(1, "leader").await.unwrap();
    tokio::time::sleep(FALLBACK_SPELL).await;
    assert!(matches!(limiter.try_decide("b", 20, FAR, true), Ok(Decision::Admitted { .. })));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while limiter.degraded() || counter(&store, "b").is_none() {
        assert!(std::time::Instant::now() < deadline, "b never left the fallback share");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // b's two admissions from the share were reserved with its first slice.
    assert!(counter(&store, "b").unwrap() >= 2);
    // A new window is off the share again: it waits for a reservation, or takes the
    // node's first slice if an enrolment got through once the quorum was back.
    let fresh = limiter.try_decide("d", 20, FAR, true);
    assert!(matches!(fresh, Err(_) | Ok(Decision::Admitted { on_share: false, .. })), "a new window reserves again, as before the failure: {fresh:?}");
    trigger.trigger();
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_is_not_fault_tolerant_admits_again_as_soon_as_the_quorum_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, false).await;
    let (limiter, _reserver, trigger) = leaderless_limiter(&store);
    assert_eq!(limiter.admit("s", 20, FAR, false).await, Decision::Unavailable);
    store.initialize().await.unwrap();
    store.raft().wait(Some(Duration::from_secs(5))).current_leader(1, "leader").await.unwrap();
    // Once the spell is over, the next request asks for a reservation and waits for it,
    // with no share to admit from meanwhile.
    tokio::time::sleep(FALLBACK_SPELL).await;
    let decision = limiter.admit("s", 20, FAR, false).await;
    assert!(matches!(decision, Decision::Admitted { on_share: false, .. }), "{decision:?}");
    trigger.trigger();
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_granted_under_an_earlier_configuration_of_the_same_count_are_given_up() {
    use crate::ratelimit::bucket::LimitSpec;
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, true).await;
    let (limiter, trigger) = limiter_over(&store);
    let first = LimitSpec { count: 120, generation: 1 };
    assert!(matches!(limiter.admit("g", first, FAR, true).await, Decision::Admitted { .. }));
    settled(&limiter, "g").await;
    let granted = counter(&store, "g").unwrap();
    // The limit went elsewhere and back to 120 while this node saw no request: what it
    // holds from the first 120 is not spent under the second, it asks again.
    let again = LimitSpec { count: 120, generation: 3 };
    assert!(matches!(limiter.admit("g", again, FAR, true).await, Decision::Admitted { .. }));
    settled(&limiter, "g").await;
    assert!(counter(&store, "g").unwrap() > granted, "a new reservation, not the old slice");
    trigger.trigger();
    store.shutdown().await;
}
