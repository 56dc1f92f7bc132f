//! Faults a chaos run injects: process faults (`process`) and network partitions
//! (`partition`, iptables), and the partition shapes runs use: isolate one node, split
//! in two, a bridge (two halves that both see one middle node), heal.

pub mod partition;
pub mod process;

use crate::history::now_ms;
use crate::run::Run;

/// One partition from its start to its heal, and the nodes cut off from a quorum of
/// voters for its whole duration (they can have no Raft write committed).
#[derive(Debug, Clone)]
pub struct PartitionRecord {
    pub start: u64,
    pub end: Option<u64>,
    pub minority: Vec<usize>,
}

/// Nodes whose connected component (links not cut) holds fewer than a majority of the
/// voters. Components, not direct reachability: a node that reaches the leader, which
/// reaches a majority, can commit.
fn minority(n: usize, voters: &[usize], cut: &dyn Fn(usize, usize) -> bool) -> Vec<usize> {
    let mut component = vec![0usize; n + 1];
    let mut next = 0;
    for start in 1..=n {
        if component[start] != 0 {
            continue;
        }
        next += 1;
        let mut stack = vec![start];
        component[start] = next;
        while let Some(a) = stack.pop() {
            for (b, c) in component.iter_mut().enumerate().skip(1) {
                if *c == 0 && !cut(a, b) {
                    *c = next;
                    stack.push(b);
                }
            }
        }
    }
    let quorum = voters.len() / 2 + 1;
    (1..=n).filter(|&i| voters.iter().filter(|&&v| component[v] == component[i]).count() < quorum).collect()
}

impl Run {
    fn ips(&self, nodes: &[usize]) -> Vec<String> {
        nodes.iter().map(|&i| self.cluster.node(i).ip.clone()).collect()
    }

    /// Cuts the two groups of each pair apart, records it, and names the nodes left
    /// without a quorum.
    async fn partition(&mut self, kind: &str, pairs: &[(Vec<usize>, Vec<usize>)], shape: String) {
        let start = now_ms();
        let voters = self.voters().await;
        for (a, b) in pairs {
            let (a, b) = (self.ips(a), self.ips(b));
            if let Err(e) = self.partitions.cut(&a, &b) {
                self.fail(&format!("could not cut the network: {e}"));
            }
        }
        let ips: Vec<String> = (1..=self.n()).map(|i| self.cluster.node(i).ip.clone()).collect();
        let cut_from: Vec<Vec<String>> = ips.iter().map(|ip| self.partitions.cut_from(ip)).collect();
        // Unknown voters: nobody is known to be cut off from a quorum, so the rate-limit
        // checker holds no node of this partition to the fallback share alone.
        let minority = voters.as_ref().map_or_else(Vec::new, |v| minority(self.n(), v, &|a, b| cut_from[a - 1].contains(&ips[b - 1])));
        self.log(&format!("{kind} {shape}; voters {voters:?}; without quorum: {minority:?}"));
        self.partition_log.push(PartitionRecord { start, end: None, minority });
        self.record_fault(kind, 0, shape, start);
    }

    /// Cuts node `i` from every other node.
    pub async fn isolate(&mut self, i: usize) {
        let others: Vec<usize> = (1..=self.n()).filter(|&j| j != i).collect();
        self.partition("isolate", &[(vec![i], others.clone())], format!("{i} | {others:?}")).await;
    }

    /// Two halves that cannot reach each other.
    pub async fn split(&mut self, a: &[usize], b: &[usize]) {
        self.partition("split", &[(a.to_vec(), b.to_vec())], format!("{a:?} | {b:?}")).await;
    }

    /// `left` and `right` cannot reach each other; both reach `middle`.
    pub async fn bridge(&mut self, left: &[usize], middle: usize, right: &[usize]) {
        self.partition("bridge", &[(left.to_vec(), right.to_vec())], format!("{left:?} | {middle} | {right:?}")).await;
    }

    /// Removes every cut.
    pub fn heal(&mut self) {
        let start = now_ms();
        if let Err(e) = self.partitions.heal() {
            self.fail(&format!("could not heal the network: {e}"));
        }
        for p in self.partition_log.iter_mut().filter(|p| p.end.is_none()) {
            p.end = Some(start);
        }
        self.log("healed the network");
        self.record_fault("heal", 0, String::new(), start);
    }
}

#[cfg(test)]
mod tests {
    use super::minority;

    #[test]
    fn an_isolated_node_is_the_minority() {
        let cut = |a: usize, b: usize| a != b && (a == 1 || b == 1);
        assert_eq!(minority(3, &[1, 2, 3], &cut), vec![1]);
    }

    #[test]
    fn the_side_with_fewer_voters_is_the_minority() {
        let side = |i: usize| i <= 2;
        let cut = |a: usize, b: usize| side(a) != side(b);
        assert_eq!(minority(5, &[1, 2, 3, 4, 5], &cut), vec![1, 2]);
        // With voters 1, 2, 3 the two-node side holds two of them: a quorum.
        assert_eq!(minority(5, &[1, 2, 3], &cut), vec![3, 4, 5]);
    }

    #[test]
    fn a_bridge_leaves_everyone_connected() {
        let cut = |a: usize, b: usize| (a <= 2 && b >= 4) || (b <= 2 && a >= 4);
        assert!(minority(5, &[1, 2, 3, 4, 5], &cut).is_empty());
    }
}
