//! The table a long chaos run ends with: operations by kind and outcome, faults by kind,
//! leader changes, invariants checked and violated, and the longest write unavailability.

use std::collections::BTreeMap;
use std::fmt;

use crate::checker::leaders::leader_changes;
use crate::history::{Kind, Op, Outcome};
use crate::run::Run;
use crate::verify;

pub struct Summary {
    pub seed: u64,
    pub ops: BTreeMap<(String, String), usize>,
    pub faults: BTreeMap<String, usize>,
    pub leader_changes: usize,
    /// (invariant, checked, violated)
    pub invariants: Vec<(&'static str, usize, usize)>,
    /// Longest time without an acknowledged write (ms), and when it began (ms into the run).
    pub longest_write_gap: (u64, u64),
}

impl Summary {
    pub fn violations(&self) -> usize {
        self.invariants.iter().map(|i| i.2).sum()
    }
}

/// The longest stretch, between the first write sent and the last answered, in which no
/// write was acknowledged: (length, start), both in ms, start relative to `origin`.
pub fn longest_write_gap(writes: &[Op], origin: u64) -> (u64, u64) {
    let (Some(first), Some(last)) = (writes.iter().map(|w| w.start).min(), writes.iter().map(|w| w.end).max()) else {
        return (0, 0);
    };
    let mut acks: Vec<u64> = writes.iter().filter(|w| w.outcome == Outcome::Ok).map(|w| w.end).collect();
    acks.sort_unstable();
    let mut best = (0, 0);
    let mut prev = first;
    for t in acks.into_iter().chain([last]) {
        if t.saturating_sub(prev) > best.0 {
            best = (t - prev, prev.saturating_sub(origin));
        }
        prev = prev.max(t);
    }
    best
}

pub fn summarize(run: &Run, outcome: &verify::Outcome) -> Summary {
    let history = run.history.ops();
    let mut ops = BTreeMap::new();
    for op in history.iter().filter(|o| o.kind != Kind::Fault) {
        let kind = format!("{:?}", op.kind).to_lowercase();
        // Requests to a node that was down are not failures; a 429 is a correct refusal.
        let outcome = match (op.node_up, op.kind, op.status) {
            (Some(false), _, _) => "node down".to_owned(),
            (_, Kind::Ratelimit, Some(status)) => status.to_string(),
            _ => format!("{:?}", op.outcome).to_lowercase(),
        };
        *ops.entry((kind, outcome)).or_default() += 1;
    }
    let writes: Vec<Op> = history.into_iter().filter(|o| o.kind == Kind::Write).collect();
    Summary {
        seed: run.seed,
        ops,
        faults: run.faults.clone(),
        leader_changes: leader_changes(&outcome.observations),
        invariants: outcome.verdicts.iter().map(|v| (v.invariant, v.checked, v.violations.len())).collect(),
        longest_write_gap: longest_write_gap(&writes, run.history.started),
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "chaos summary (seed {})", self.seed)?;
        writeln!(f, "{:<12} {:<10} {:>8}", "operations", "outcome", "count")?;
        for ((kind, outcome), n) in &self.ops {
            writeln!(f, "{kind:<12} {outcome:<10} {n:>8}")?;
        }
        writeln!(f, "{:<23} {:>8}", "faults", "count")?;
        for (kind, n) in &self.faults {
            writeln!(f, "{kind:<23} {n:>8}")?;
        }
        writeln!(f, "{:<23} {:>8}", "leader changes", self.leader_changes)?;
        writeln!(f, "{:<80} {:>8} {:>8}", "invariant", "checked", "violated")?;
        for (name, checked, violated) in &self.invariants {
            writeln!(f, "{name:<80} {checked:>8} {violated:>8}")?;
        }
        let (gap, at) = self.longest_write_gap;
        writeln!(f, "longest write unavailability: {gap} ms (from {at} ms into the run)")?;
        write!(f, "invariants violated: {}", self.violations())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(start: u64, end: u64, outcome: Outcome) -> Op {
        Op { start, end, node: 1, kind: Kind::Write, op: "create".into(), target: "x".into(), value: None, outcome, status: None, node_up: None, details: String::new() }
    }

    #[test]
    fn the_longest_gap_is_between_acknowledgements() {
        let w = [write(100, 110, Outcome::Ok), write(120, 900, Outcome::Unknown), write(150, 1000, Outcome::Ok), write(1010, 1020, Outcome::Ok)];
        assert_eq!(longest_write_gap(&w, 100), (890, 10));
    }
}
