//! The cluster rate limit (`config.second = limit`, `policy = cluster`) under faults.
//!
//! Windows are one wall-clock second aligned to the Unix epoch, as the node computes
//! them. A 200 counts in window W only if the request was both sent and answered inside
//! W (so the node's clock, the same as ours, put it in W); requests that straddle a
//! window boundary are left out, which can only make counts smaller.
//!
//! How the product bounds admissions (src/ratelimit/limiter.rs, bucket.rs): a node admits
//! from tokens the Raft state machine granted it (all nodes' grants for a window total at
//! most `limit`), or, while its reservations fail, from a fallback share: it admits while
//! `used < granted + part`, where `part` is `limit.div_ceil(live)` early in the window and
//! `(limit - cluster total it last heard) / live` later, `live` being the gossip members
//! it sees alive. So `part <= limit.div_ceil(live)`, and in one window node n admits at
//! most `granted_n + limit.div_ceil(live_n)`, and only `granted_n` if it never fell back.
//!
//! A node is *clean* in W when two of our polls of its `/status`, one answered before W
//! began and one sent after W ended, from the same process (no restart or pause between),
//! show the same `degraded_admissions`: it made no fallback admission in W. Checks:
//! 1. the clean nodes together admit at most `limit` in W (it holds on the quorum side
//!    during partitions, and everywhere while no node falls back);
//! 2. no node alone admits more than `limit` in W;
//! 3. all nodes together admit at most `limit + Σ share_n` over the nodes not proven clean;
//! 4. in a window that starts at least 1 s after a partition began and ends before it
//!    healed, each node cut off from a quorum (it can get no grant for that window, so
//!    `granted_n = 0`) admits at most its fallback share `limit.div_ceil(live)`;
//! 5. every rate-limited request to a node running and not paused from its start to its
//!    end answers 200 or 429 (the plugin is fault tolerant: no quorum is no error).
//!
//! `live` for a node and window is the smallest count it reported (`GET /members`) from
//! 2 s before W to 1 s after: the limiter divides by a count at most that stale.

use std::collections::BTreeMap;

use super::Verdict;
use crate::history::Op;
use crate::nemesis::PartitionRecord;
use crate::workload::status::Observation;

struct Window {
    start: u64,
    /// node -> 200s definitely in this window
    admitted: BTreeMap<usize, u64>,
}

impl Window {
    fn end(&self) -> u64 {
        self.start + 1000
    }
}

/// Whether `node` made no fallback admission in `w`, by the polls that bracket it.
fn clean(obs: &[&Observation], w: &Window) -> bool {
    let before = obs.iter().rev().find(|o| o.received <= w.start);
    let after = obs.iter().find(|o| o.sent >= w.end());
    match (before, after) {
        (Some(b), Some(a)) => {
            let same_process = b.epoch.0 == b.epoch.1 && b.epoch.1 == a.epoch.0 && a.epoch.0 == a.epoch.1;
            same_process && b.degraded_admissions == a.degraded_admissions
        }
        _ => false,
    }
}

fn share(obs: &[&Observation], w: &Window, limit: u64) -> u64 {
    let live = obs
        .iter()
        .filter(|o| o.received + 2000 >= w.start && o.received <= w.end() + 1000)
        .filter_map(|o| o.live)
        .min()
        .unwrap_or(1);
    limit.div_ceil(live.max(1))
}

/// Window starts in messages are unix ms (they are aligned to it); request times are ms
/// since `t0`, the run's start, as in the history.
pub fn check(requests: &[Op], observations: &[Observation], partitions: &[PartitionRecord], limit: u64, n: usize, t0: u64) -> Vec<Verdict> {
    let mut windows: BTreeMap<u64, Window> = BTreeMap::new();
    for r in requests.iter().filter(|r| r.status == Some(200) && r.start / 1000 == r.end / 1000) {
        let start = r.start / 1000 * 1000;
        *windows.entry(start).or_insert_with(|| Window { start, admitted: BTreeMap::new() }).admitted.entry(r.node).or_default() += 1;
    }
    let per_node: Vec<Vec<&Observation>> = (1..=n)
        .map(|i| {
            let mut o: Vec<&Observation> = observations.iter().filter(|o| o.node == i).collect();
            o.sort_by_key(|o| o.sent);
            o
        })
        .collect();
    let mut quorum = Verdict::new("rate limit: nodes without fallback admissions admit at most the limit per window");
    let mut single = Verdict::new("rate limit: no node admits more than the limit per window");
    let mut total = Verdict::new("rate limit: all nodes admit at most limit + fallback shares per window");
    let mut minority = Verdict::new("rate limit: a node without quorum admits at most its fallback share");
    for w in windows.values() {
        let count = |i: usize| w.admitted.get(&i).copied().unwrap_or(0);
        let (clean_nodes, fallback): (Vec<usize>, Vec<usize>) = (1..=n).partition(|&i| clean(&per_node[i - 1], w));
        let clean_sum: u64 = clean_nodes.iter().map(|&i| count(i)).sum();
        quorum.check((clean_sum > limit).then(|| format!("window {}: clean nodes {clean_nodes:?} admitted {clean_sum} > {limit}; {:?}", w.start, w.admitted)));
        for i in 1..=n {
            single.check((count(i) > limit).then(|| format!("window {}: node {i} admitted {} > {limit}", w.start, count(i))));
        }
        let shares: u64 = fallback.iter().map(|&i| share(&per_node[i - 1], w, limit)).sum();
        let all: u64 = w.admitted.values().sum();
        total.check((all > limit + shares).then(|| {
            format!("window {}: {all} admitted > {limit} + shares {shares} of fallback nodes {fallback:?}; {:?}", w.start, w.admitted)
        }));
        for p in partitions {
            let inside = w.start >= p.start + 1000 && p.end.is_some_and(|e| w.end() <= e);
            for &i in p.minority.iter().filter(|_| inside) {
                let s = share(&per_node[i - 1], w, limit);
                minority.check((count(i) > s).then(|| format!("window {}: node {i}, cut off from quorum, admitted {} > share {s}", w.start, count(i))));
            }
        }
    }
    let mut answered = Verdict::new("rate limit: requests to running nodes answer 200 or 429");
    for r in requests.iter().filter(|r| r.node_up == Some(true)) {
        answered.check((!matches!(r.status, Some(200 | 429))).then(|| {
            format!("GET {} on node {} at {}..{} ms: {:?} {}", r.target, r.node, r.start.saturating_sub(t0), r.end.saturating_sub(t0), r.status, r.details)
        }));
    }
    vec![quorum, single, total, minority, answered]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Kind, Outcome};

    fn req(node: usize, at: u64, status: u16) -> Op {
        let outcome = Outcome::Ok;
        Op { start: at, end: at + 5, node, kind: Kind::Ratelimit, op: "GET".into(), target: "/l".into(), value: None, outcome, status: Some(status), node_up: Some(true), details: String::new() }
    }

    fn poll(node: usize, at: u64, degraded_admissions: u64, live: u64) -> Observation {
        Observation {
            node,
            sent: at,
            received: at + 1,
            epoch: (0, 0),
            node_id: node.to_string(),
            role: "follower".into(),
            term: 1,
            leader_id: None,
            digest: String::new(),
            degraded_admissions,
            live: Some(live),
        }
    }

    fn violated(verdicts: &[Verdict]) -> Vec<&'static str> {
        verdicts.iter().filter(|v| !v.violations.is_empty()).map(|v| v.invariant).collect()
    }

    #[test]
    fn clean_nodes_over_the_limit_are_caught_and_fallback_nodes_get_their_share() {
        // Window [10_000, 11_000): nodes 1 and 2 clean, 3 of 4 admitted each; limit 5.
        let polls = [poll(1, 9_000, 0, 2), poll(1, 11_100, 0, 2), poll(2, 9_000, 0, 2), poll(2, 11_100, 0, 2)];
        let reqs: Vec<Op> = (0..3).map(|k| req(1, 10_100 + k * 10, 200)).chain((0..3).map(|k| req(2, 10_100 + k * 10, 200))).collect();
        let v = check(&reqs, &polls, &[], 5, 2, 0);
        let both = vec!["rate limit: nodes without fallback admissions admit at most the limit per window", "rate limit: all nodes admit at most limit + fallback shares per window"];
        assert_eq!(violated(&v), both);
        // The same admissions with node 2 falling back (its counter moved): 3 + 3 <= 5 + ceil(5 / 2).
        let polls = [poll(1, 9_000, 0, 2), poll(1, 11_100, 0, 2), poll(2, 9_000, 0, 2), poll(2, 11_100, 3, 2)];
        assert!(violated(&check(&reqs, &polls, &[], 5, 2, 0)).is_empty());
        // Node 2 cut off from quorum for the whole window: at most its share, 3.
        let cut = [PartitionRecord { start: 8_000, end: Some(12_000), minority: vec![2] }];
        let more: Vec<Op> = reqs.iter().cloned().chain([req(2, 10_500, 200)]).collect();
        assert_eq!(violated(&check(&more, &polls, &cut, 5, 2, 0)), vec!["rate limit: a node without quorum admits at most its fallback share"]);
        // A 500 from a running node is a failure; a request straddling two windows is not counted.
        let failed = [req(1, 10_100, 500), req(1, 10_998, 200)];
        assert_eq!(violated(&check(&failed, &polls, &[], 5, 2, 0)), vec!["rate limit: requests to running nodes answer 200 or 429"]);
    }
}
