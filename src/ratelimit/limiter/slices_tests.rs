//! First slices on a one-node store: once the node is enrolled in a window, a key new
//! to it admits its first request with no Raft round, and the next reservation settles
//! that slice as used.

use std::collections::HashMap;

use gatehouse_raft::kv::slices::Counter;
use gatehouse_raft::WindowRef;

use super::super::tests::{enrolments_until, limiter_over, store};
use super::super::{Decision, Enrolling};
use crate::ratelimit::window::{Period, Window};

const FAR: Window = Window { period: Period::Minute, start_ms: 9_000_000_000_000_000 };

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_new_here_takes_its_first_slice_without_a_raft_round() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, true).await;
    let (limiter, trigger) = limiter_over(&store);
    // Slices of 8 / (4 x 3 nodes) round to 1, which is never reserved ahead of need: a
    // write to the store can only come from a request that needs one.
    let limit = 8;
    // Any key of the window enrolls the node in it (and in the next).
    assert!(matches!(limiter.admit("warm", limit, FAR, true).await, Decision::Admitted { .. }));
    let fresh = |enrolled: &HashMap<WindowRef, Enrolling>, window: Window| matches!(enrolled.get(&window.to_ref()), Some(Enrolling::Enrolled(e)) if e.fresh);
    enrolments_until(&limiter, "enrolled in the window and the next", |enrolled| fresh(enrolled, FAR) && fresh(enrolled, FAR.next())).await;

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

/// While a member cannot read first slices' commands, the node enrolls in no window, takes
/// no slice even where it is enrolled, and reserves with the plain `Reserve`: the counter
/// keeps the form every version reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_first_slices_off_a_new_key_reserves_with_the_plain_command() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, true).await;
    let (limiter, trigger) = limiter_over(&store);
    let limit = 8;
    limiter.set_first_slices(false);
    assert!(matches!(limiter.admit("first", limit, FAR, true).await, Decision::Admitted { .. }));
    // An enrolment would have been asked for (and recorded) within the decision.
    assert!(limiter.lock().enrolled.is_empty(), "no enrolment asked");
    assert_eq!(store.get("first").map(|kv| kv.value.len()), Some(8), "a counter any version reads");

    // Enrolled while first slices were on, then an older member joins.
    limiter.set_first_slices(true);
    assert!(matches!(limiter.admit("warm", limit, FAR.next(), true).await, Decision::Admitted { .. }));
    let fresh = |enrolled: &HashMap<WindowRef, Enrolling>| matches!(enrolled.get(&FAR.next().to_ref()), Some(Enrolling::Enrolled(e)) if e.fresh);
    enrolments_until(&limiter, "enrolled in the window", fresh).await;
    limiter.set_first_slices(false);
    let before = store.revision();
    assert!(matches!(limiter.admit("new", limit, FAR.next(), true).await, Decision::Admitted { .. }));
    assert!(store.revision() > before, "the first request waited for a reservation");
    assert_eq!(store.get("new").map(|kv| kv.value.len()), Some(8), "a counter any version reads");
    trigger.trigger();
    store.shutdown().await;
}
