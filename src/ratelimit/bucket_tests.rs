//! Property tests of slice accounting: whatever the interleaving of admissions,
//! reservations, grants, node crashes, window changes and limit changes, admissions in a
//! window never exceed its limit; and with demand above the limit, the whole budget gets
//! used.

use proptest::prelude::*;

use super::*;

/// The store's side, as `KvState` applies `Reserve`: never grants past the limit.
#[derive(Debug, Default)]
struct Counter {
    total: u64,
}

impl Counter {
    fn reserve(&mut self, want: u64, limit: u64) -> (u64, u64) {
        let granted = want.min(limit.saturating_sub(self.total));
        self.total += granted;
        (granted, self.total)
    }
}

#[derive(Debug, Clone)]
enum Step {
    /// A request arrives at node n.
    Request(usize),
    /// Node n's reservation (if one is pending) is answered.
    Answer(usize),
    /// Node n crashes: its slice is lost; it comes back empty.
    Crash(usize),
    /// The window ends; a new one starts with a fresh counter.
    NextWindow,
    /// A request arrives at node n while its reservations fail: fallback share.
    Fallback(usize),
    /// The plugin's limit is changed to this, in the middle of the window.
    ChangeLimit(u64),
}

fn steps(nodes: usize) -> impl Strategy<Value = Vec<Step>> {
    steps_with(nodes, 0, 0)
}

fn steps_with(nodes: usize, fallback_weight: u32, change_weight: u32) -> impl Strategy<Value = Vec<Step>> {
    let step = prop_oneof![
        6 => (0..nodes).prop_map(Step::Request),
        4 => (0..nodes).prop_map(Step::Answer),
        1 => (0..nodes).prop_map(Step::Crash),
        1 => Just(Step::NextWindow),
        fallback_weight => (0..nodes).prop_map(Step::Fallback),
        change_weight => (1u64..60).prop_map(Step::ChangeLimit),
    ];
    proptest::collection::vec(step, 0..400)
}

/// Plays `steps` against `nodes` buckets and one store counter, checking after every
/// step that admissions beyond the limit are all fallback admissions (with no
/// `Fallback` step: that nothing beyond the limit is admitted at all). After a limit
/// change, the limit is the new one or what had been admitted by then, if more: nodes
/// learn of the change at their next request, as the limiter does, and a reservation in
/// flight is answered under the limit it was made with.
fn play(limit: u64, nodes: usize, steps: Vec<Step>) -> Result<(), TestCaseError> {
    // Each change of the limit is a new configuration, as a plugin write is.
    let mut spec = LimitSpec::from(limit);
    let mut counter = Counter::default();
    let mut buckets: Vec<Bucket> = (0..nodes).map(|_| Bucket::new(spec)).collect();
    // Each node's reservation in flight: (want, the limit it was made under).
    let mut pending: Vec<Option<(u64, LimitSpec)>> = vec![None; nodes];
    let (mut admitted, mut beyond_grants) = (0u64, 0u64);
    // The most the window may admit (before fallbacks), and the most its counter may hold.
    let (mut bound, mut counter_bound) = (limit, limit);
    for step in steps {
        match step {
            Step::Request(n) if n < nodes => {
                if !buckets[n].is_under(spec) {
                    buckets[n].change_limit(spec);
                }
                let reserve = match buckets[n].try_admit() {
                    Admission::Admitted => {
                        admitted += 1;
                        buckets[n].prefetch(nodes as u64)
                    }
                    Admission::NeedTokens => buckets[n].refill(nodes as u64),
                    Admission::Rejected => None,
                };
                if let Some(want) = reserve {
                    prop_assert!(want >= buckets[n].debt(), "a reservation covers the debt");
                    buckets[n].pending = true;
                    pending[n] = Some((want, spec));
                }
            }
            Step::Fallback(n) if n < nodes => {
                let debt_before = buckets[n].debt();
                if buckets[n].try_admit_fallback(nodes as u64).is_some() {
                    admitted += 1;
                    beyond_grants += buckets[n].debt() - debt_before;
                }
            }
            Step::Answer(n) if n < nodes => {
                if let Some((want, made_under)) = pending[n].take() {
                    let (granted, total) = counter.reserve(want, made_under.count);
                    buckets[n].on_grant(want, granted, total, 0);
                    if !buckets[n].is_under(made_under) {
                        buckets[n].give_up_unused();
                    }
                }
            }
            Step::Crash(n) if n < nodes => {
                buckets[n] = Bucket::new(spec);
                // A reservation in flight may still commit; its tokens are simply lost.
                if let Some((want, made_under)) = pending[n].take() {
                    counter.reserve(want, made_under.count);
                }
            }
            Step::NextWindow => {
                counter = Counter::default();
                buckets = (0..nodes).map(|_| Bucket::new(spec)).collect();
                pending = vec![None; nodes];
                admitted = 0;
                beyond_grants = 0;
                (bound, counter_bound) = (spec.count, spec.count);
            }
            Step::ChangeLimit(new) => {
                spec = LimitSpec { count: new, generation: spec.generation + 1 };
                bound = admitted.max(new);
                counter_bound = counter_bound.max(new);
            }
            _ => {}
        }
        prop_assert!(admitted <= bound + beyond_grants, "admitted {} > bound {} + {} fallbacks", admitted, bound, beyond_grants);
        prop_assert!(counter.total <= counter_bound);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn admissions_never_exceed_the_limit(limit in 1u64..60, nodes in 1usize..5, steps in steps(4)) {
        play(limit, nodes, steps)?;
    }

    #[test]
    fn fallback_admissions_are_the_only_excess_and_are_reserved_afterwards(limit in 1u64..60, nodes in 1usize..5, steps in steps_with(4, 3, 0)) {
        // Quorum comes and goes: a node whose reservation fails admits from its fallback
        // share, beyond its grants. Those are the only admissions past the limit, and the
        // node's next reservation asks for them too, so normal admissions after a fallback
        // come out of the same budget.
        play(limit, nodes, steps)?;
    }

    #[test]
    fn a_changed_limit_holds_from_the_change_on(limit in 1u64..60, nodes in 1usize..5, steps in steps_with(4, 0, 1)) {
        // Unused tokens granted under the old limit are given up, so a lowered limit
        // admits nothing past max(new limit, already admitted), and a raised one is
        // reserved from again.
        play(limit, nodes, steps)?;
    }

    #[test]
    fn heavy_demand_uses_the_whole_budget(limit in 1u64..500, nodes in 1usize..6, order in proptest::collection::vec(0usize..6, 1..50)) {
        // Requests keep arriving round the nodes (in a random rotation) and every
        // reservation is answered at once: the cluster admits exactly the limit.
        let mut counter = Counter::default();
        let mut buckets: Vec<Bucket> = (0..nodes).map(|_| Bucket::new(limit)).collect();
        let mut admitted = 0u64;
        for i in 0..(limit as usize * 3 + 10) {
            let n = order[i % order.len()] % nodes;
            loop {
                match buckets[n].try_admit() {
                    Admission::Admitted => { admitted += 1; break; }
                    Admission::Rejected => break,
                    Admission::NeedTokens => {}
                }
                let want = buckets[n].refill(nodes as u64).expect("a node out of tokens reserves");
                let (granted, total) = counter.reserve(want, limit);
                buckets[n].on_grant(want, granted, total, 0);
            }
            if let Some(want) = buckets[n].prefetch(nodes as u64) {
                let (granted, total) = counter.reserve(want, limit);
                buckets[n].on_grant(want, granted, total, 0);
            }
        }
        // Tokens prefetched by nodes that then saw no more requests are the only loss, and
        // only large slices are prefetched: near the end every token is used.
        let stranded: u64 = buckets.iter().map(Bucket::local_tokens).sum();
        prop_assert_eq!(admitted + stranded, counter.total);
        prop_assert!(admitted * 100 >= limit * 95, "admitted {} of {}", admitted, limit);
    }
}

#[test]
fn slices_shrink_to_one_as_the_budget_runs_out() {
    assert_eq!(slice_size(1200, 0, 3), 100);
    assert_eq!(slice_size(1200, 1100, 3), 8);
    assert_eq!(slice_size(1200, 1199, 3), 1);
    assert_eq!(slice_size(5, 0, 3), 1);
}

#[test]
fn small_budgets_are_never_prefetched() {
    let mut b = Bucket::new(5);
    assert_eq!(b.refill(3), Some(1));
    b.on_grant(1, 1, 1, 0);
    assert_eq!(b.try_admit(), Admission::Admitted);
    assert_eq!(b.prefetch(3), None, "no reservation ahead of need for small slices");
    assert_eq!(b.refill(3), Some(1), "a request that finds no token reserves one");
    let mut big = Bucket::new(1200);
    big.on_grant(100, 100, 100, 0);
    for _ in 0..60 {
        big.try_admit();
    }
    assert_eq!(big.prefetch(3), Some(91), "large slices are refilled before they run dry");
}

#[test]
fn a_short_grant_exhausts_the_bucket() {
    let mut b = Bucket::new(10);
    b.on_grant(4, 2, 10, 0);
    assert!(b.exhausted);
    assert_eq!(b.try_admit(), Admission::Admitted);
    assert_eq!(b.try_admit(), Admission::Admitted);
    assert_eq!(b.try_admit(), Admission::Rejected);
}

#[test]
fn the_fallback_share_is_a_part_of_what_was_left_not_a_fresh_budget() {
    // No grant seen yet this window: limit / live nodes, rounded up.
    assert_eq!(Bucket::new(200).fallback_share(3), 67);
    assert_eq!(Bucket::new(200).fallback_share(0), 200, "a node alone takes the whole budget");
    // 150 of 200 already reserved across the cluster, 30 of them here: 30 + 50 / 2.
    let mut bucket = Bucket::new(200);
    bucket.on_grant(30, 30, 150, 0);
    assert_eq!(bucket.fallback_share(2), 55);
    // Rounded down once the budget is partly spent: 30 + 50 / 3.
    assert_eq!(bucket.fallback_share(3), 46);
    // The node's applied counter says more was reserved since its last grant.
    bucket.observe_cluster_total(190);
    bucket.observe_cluster_total(170);
    assert_eq!(bucket.fallback_share(2), 35, "a stale total never lowers what is known");
    // The budget was spent before the quorum went: nothing beyond this node's grant.
    bucket.on_grant(60, 50, 200, 0);
    assert_eq!(bucket.fallback_share(1), 80);
}
