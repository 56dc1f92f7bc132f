//! At most one leader per term. Every status poll says the node's term, whom it takes for
//! leader (`leader_id`) and whether it leads itself; two different leaders named for the
//! same term, by any nodes at any times, is a violation (Raft's election safety).

use std::collections::{BTreeMap, BTreeSet};

use super::Verdict;
use crate::workload::status::Observation;

/// `t0`: the run's start (unix ms); messages give times in ms since it, as the history.
pub fn check(observations: &[Observation], t0: u64) -> Verdict {
    let mut v = Verdict::new("at most one leader per term");
    // term -> leader -> the first observation that named it
    let mut named: BTreeMap<u64, BTreeMap<String, String>> = BTreeMap::new();
    for o in observations {
        let mut claims = Vec::new();
        if o.role == "leader" {
            claims.push((o.node_id.clone(), format!("node {} says it leads term {} (at {} ms)", o.node, o.term, o.received.saturating_sub(t0))));
        }
        if let Some(l) = &o.leader_id {
            claims.push((l.clone(), format!("node {} names {l} leader of term {} (at {} ms)", o.node, o.term, o.received.saturating_sub(t0))));
        }
        for (leader, evidence) in claims {
            named.entry(o.term).or_default().entry(leader).or_insert(evidence);
        }
    }
    for (term, leaders) in &named {
        let distinct: BTreeSet<&String> = leaders.keys().collect();
        v.check((distinct.len() > 1).then(|| format!("term {term} has leaders {distinct:?}: {}", leaders.values().cloned().collect::<Vec<_>>().join("; "))));
    }
    v
}

/// How many times the leadership changed hands: distinct (term, leader) pairs, minus one.
pub fn leader_changes(observations: &[Observation]) -> usize {
    let pairs: BTreeSet<(u64, String)> = observations.iter().filter(|o| o.role == "leader").map(|o| (o.term, o.node_id.clone())).collect();
    pairs.len().saturating_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(node: usize, id: &str, term: u64, leader: Option<&str>, role: &str) -> Observation {
        Observation {
            node,
            sent: 0,
            received: 0,
            epoch: (0, 0),
            node_id: id.into(),
            role: role.into(),
            term,
            leader_id: leader.map(str::to_owned),
            digest: String::new(),
            degraded_admissions: 0,
            live: None,
        }
    }

    #[test]
    fn one_leader_per_term_passes_and_two_fail() {
        let good = [obs(1, "a", 1, Some("a"), "leader"), obs(2, "b", 1, Some("a"), "follower"), obs(2, "b", 2, Some("b"), "leader")];
        assert!(check(&good, 0).violations.is_empty());
        assert_eq!(leader_changes(&good), 1);
        let bad = [obs(1, "a", 3, Some("a"), "leader"), obs(3, "c", 3, Some("c"), "follower")];
        let v = check(&bad, 0);
        assert_eq!(v.violations.len(), 1, "{v:?}");
        assert!(v.violations[0].contains("term 3"));
    }
}
