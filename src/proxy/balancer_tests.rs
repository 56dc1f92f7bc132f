use std::collections::HashMap;

use proptest::prelude::*;

use super::*;

fn counts(b: &Balancer, n: usize) -> HashMap<String, usize> {
    let mut c = HashMap::new();
    for _ in 0..n {
        let p = b.pick(None, &[]).unwrap();
        *c.entry(p.target.addr.clone()).or_default() += 1;
    }
    c
}

proptest! {
    #[test]
    fn round_robin_follows_weights_exactly_over_a_cycle(weights in proptest::collection::vec(0u32..6, 1..6)) {
        let targets: Vec<(String, u32)> = weights.iter().enumerate().map(|(i, w)| (format!("t{i}:80"), *w)).collect();
        let b = Balancer::new(Algorithm::RoundRobin, &targets);
        let total: u32 = weights.iter().sum();
        if total == 0 {
            prop_assert!(b.pick(None, &[]).is_none());
        } else {
            let c = counts(&b, total as usize * 3);
            for (addr, w) in &targets {
                prop_assert_eq!(c.get(addr).copied().unwrap_or(0), *w as usize * 3);
            }
        }
    }

    #[test]
    fn removing_a_target_moves_only_its_keys(n in 2usize..6, keys in proptest::collection::vec(any::<u64>(), 50)) {
        let all: Vec<(String, u32)> = (0..n).map(|i| (format!("10.0.0.{i}:80"), 100)).collect();
        let fewer = &all[..n - 1];
        let (a, b) = (Balancer::new(Algorithm::ConsistentHashing, &all), Balancer::new(Algorithm::ConsistentHashing, fewer));
        for k in keys {
            let key = k.to_be_bytes();
            let before = a.pick(Some(&key), &[]).unwrap().target.addr.clone();
            let after = b.pick(Some(&key), &[]).unwrap().target.addr.clone();
            if before != all[n - 1].0 {
                prop_assert_eq!(before, after);
            }
        }
    }
}

#[test]
fn unhealthy_and_excluded_targets_are_skipped() {
    let b = Balancer::new(Algorithm::RoundRobin, &[("a:1".into(), 1), ("b:1".into(), 1)]);
    b.set_health("a:1", false);
    assert!((0..10).all(|_| b.pick(None, &[]).unwrap().target.addr == "b:1"));
    assert!(b.pick(None, &[1]).is_none(), "b excluded, a unhealthy: nothing left");
    b.set_health("a:1", true);
    assert_eq!(b.pick(None, &[1]).unwrap().target.addr, "a:1");
}

#[test]
fn least_connections_prefers_the_idle_target() {
    let b = Balancer::new(Algorithm::LeastConnections, &[("a:1".into(), 100), ("b:1".into(), 100)]);
    let first = b.pick(None, &[]).unwrap();
    let second = b.pick(None, &[]).unwrap();
    assert_ne!(first.target.addr, second.target.addr);
    let busy = first.target.addr.clone();
    drop(first);
    let third = b.pick(None, &[]).unwrap();
    assert_eq!(third.target.addr, busy, "the target whose request finished is idle again");
}

#[test]
fn the_same_key_always_lands_on_the_same_target() {
    let b = Balancer::new(Algorithm::ConsistentHashing, &[("a:1".into(), 100), ("b:1".into(), 100), ("c:1".into(), 100)]);
    let first = b.pick(Some(b"user-42"), &[]).unwrap().target.addr.clone();
    assert!((0..20).all(|_| b.pick(Some(b"user-42"), &[]).unwrap().target.addr == first));
    b.set_health(&first, false);
    assert_ne!(b.pick(Some(b"user-42"), &[]).unwrap().target.addr, first);
}

#[test]
fn a_new_target_list_keeps_the_state_of_the_targets_it_shares_with_the_old() {
    let old = Balancer::new(Algorithm::RoundRobin, &[("a:1".into(), 1), ("b:1".into(), 1), ("c:1".into(), 1), ("gone:1".into(), 1)]);
    old.set_health("a:1", false);
    old.targets()[0].counters().tcp_failures = 3;
    old.targets()[1].set_dns_error(true);
    old.set_health("c:1", false);
    let (new, unresolved) = Balancer::succeeding(Algorithm::RoundRobin, &[("a:1".into(), 1), ("b:1".into(), 1), ("c:1".into(), 5), ("d:1".into(), 1)], &old);
    assert!(Arc::ptr_eq(&new.targets()[0], &old.targets()[0]), "kept as it was: the same state");
    assert_eq!(new.targets()[0].counters().tcp_failures, 3);
    // A verdict on the old balancer while the new one was built still counts.
    old.set_health("a:1", true);
    assert!(new.targets()[0].is_healthy());
    assert!(new.targets()[1].has_dns_error() && unresolved.is_empty(), "b's retry goes on for the shared state");
    assert!(!new.targets()[2].is_healthy() && new.targets()[2].weight == 5, "a new weight: a copy of the verdict");
    assert!(new.targets()[3].is_healthy(), "a target new to the list starts healthy");
}
