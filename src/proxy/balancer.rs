//! Choosing a target of an upstream: smooth weighted round-robin (as nginx), consistent
//! hashing on a ring (removing a target moves only its own keys), or least connections.
//! Unhealthy and zero-weight targets are skipped; `exclude` lets a retry pick another.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    RoundRobin,
    ConsistentHashing,
    LeastConnections,
}

impl Algorithm {
    /// Kong's names; `latency` is served by least-connections, its nearest cousin here.
    pub fn from_kong(name: &str) -> Algorithm {
        match name {
            "consistent-hashing" => Algorithm::ConsistentHashing,
            "least-connections" | "latency" => Algorithm::LeastConnections,
            _ => Algorithm::RoundRobin,
        }
    }
}

/// Consecutive observations since the last change, for health thresholds.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct HealthCounters {
    pub successes: u8,
    pub tcp_failures: u8,
    pub timeouts: u8,
    pub http_failures: u8,
}

#[derive(Debug)]
pub struct TargetState {
    pub addr: String,
    pub weight: u32,
    healthy: AtomicBool,
    /// Its name did not resolve: out of the rotation until it does (`target_dns`).
    dns_error: AtomicBool,
    in_flight: AtomicU64,
    /// Held only to bump a counter.
    counters: Mutex<HealthCounters>,
}

impl TargetState {
    fn new(addr: &str, weight: u32) -> TargetState {
        TargetState {
            addr: addr.to_owned(),
            weight,
            healthy: AtomicBool::new(true),
            dns_error: AtomicBool::new(false),
            in_flight: AtomicU64::new(0),
            counters: Mutex::default(),
        }
    }

    pub fn counters(&self) -> std::sync::MutexGuard<'_, HealthCounters> {
        self.counters.lock().expect("health counters lock")
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Whether it may be picked at all: some weight, healthy, a name that resolves.
    pub fn usable(&self) -> bool {
        self.weight > 0 && self.is_healthy() && !self.has_dns_error()
    }

    pub fn has_dns_error(&self) -> bool {
        self.dns_error.load(Ordering::Relaxed)
    }

    /// Marks the name unresolvable (true) or resolvable again; says whether that changed.
    pub fn set_dns_error(&self, failed: bool) -> bool {
        self.dns_error.swap(failed, Ordering::Relaxed) != failed
    }

    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }
}

/// Held while a request is in flight to a target (least-connections counts these).
#[derive(Debug)]
pub struct Pick {
    pub target: Arc<TargetState>,
    pub index: usize,
}

impl Drop for Pick {
    fn drop(&mut self) {
        self.target.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Debug)]
pub struct Balancer {
    algorithm: Algorithm,
    targets: Vec<Arc<TargetState>>,
    /// Smooth WRR's current weights; held only to pick.
    current: Mutex<Vec<i64>>,
    /// (point, target) sorted by point.
    ring: Vec<(u64, usize)>,
}

fn hash64(data: &[u8]) -> u64 {
    let digest = Sha256::digest(data);
    u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// Ring points per unit of weight (weight 100 → 400 points): enough for an even spread.
const POINTS_PER_WEIGHT: u32 = 4;

impl Balancer {
    pub fn new(algorithm: Algorithm, targets: &[(String, u32)]) -> Balancer {
        Balancer::of_states(algorithm, targets.iter().map(|(addr, weight)| Arc::new(TargetState::new(addr, *weight))).collect())
    }

    /// A balancer for a new target list that keeps `old`'s state for the targets both
    /// have, so that a change to the list does not put back a target the checks or an
    /// operator took out. A target kept as it was (same weight) is the same state, not a
    /// copy: a verdict or an outcome that lands on `old` while this one is being built
    /// is not lost. Returns, with it, the targets whose name did not resolve in `old` and
    /// that are copies (a new weight), for `target_dns` to try again.
    pub fn succeeding(algorithm: Algorithm, targets: &[(String, u32)], old: &Balancer) -> (Balancer, Vec<Arc<TargetState>>) {
        let before: std::collections::HashMap<&str, &Arc<TargetState>> = old.targets.iter().map(|t| (t.addr.as_str(), t)).collect();
        let mut unresolved = Vec::new();
        let states = targets
            .iter()
            .map(|(addr, weight)| match before.get(addr.as_str()) {
                Some(same) if same.weight == *weight => Arc::clone(same),
                Some(reweighted) => {
                    let state = Arc::new(TargetState::new(addr, *weight));
                    state.healthy.store(reweighted.is_healthy(), Ordering::Relaxed);
                    *state.counters() = *reweighted.counters();
                    if reweighted.has_dns_error() {
                        unresolved.push(Arc::clone(&state));
                    }
                    state
                }
                None => Arc::new(TargetState::new(addr, *weight)),
            })
            .collect();
        (Balancer::of_states(algorithm, states), unresolved)
    }

    fn of_states(algorithm: Algorithm, targets: Vec<Arc<TargetState>>) -> Balancer {
        let mut ring = Vec::new();
        if algorithm == Algorithm::ConsistentHashing {
            for (i, t) in targets.iter().enumerate() {
                for v in 0..t.weight * POINTS_PER_WEIGHT {
                    ring.push((hash64(format!("{}#{v}", t.addr).as_bytes()), i));
                }
            }
            ring.sort_unstable();
        }
        Balancer { algorithm, current: Mutex::new(vec![0; targets.len()]), targets, ring }
    }

    pub fn targets(&self) -> &[Arc<TargetState>] {
        &self.targets
    }

    pub fn set_health(&self, addr: &str, healthy: bool) {
        for t in self.targets.iter().filter(|t| t.addr == addr) {
            t.healthy.store(healthy, Ordering::Relaxed);
        }
    }

    fn usable(&self, i: usize, exclude: &[usize]) -> bool {
        self.targets[i].usable() && !exclude.contains(&i)
    }

    /// A target for this request; `hash_key` feeds consistent hashing. None: no healthy
    /// target is left (Kong's 503 "failure to get a peer from the ring-balancer").
    pub fn pick(&self, hash_key: Option<&[u8]>, exclude: &[usize]) -> Option<Pick> {
        let index = match self.algorithm {
            Algorithm::RoundRobin => self.pick_round_robin(exclude),
            Algorithm::ConsistentHashing => match hash_key {
                Some(key) => self.pick_ring(key, exclude),
                None => self.pick_round_robin(exclude),
            },
            Algorithm::LeastConnections => self.pick_least(exclude),
        }?;
        let target = self.targets[index].clone();
        target.in_flight.fetch_add(1, Ordering::Relaxed);
        Some(Pick { target, index })
    }

    fn pick_round_robin(&self, exclude: &[usize]) -> Option<usize> {
        let mut current = self.current.lock().expect("balancer lock");
        let mut total = 0i64;
        let mut best: Option<usize> = None;
        for i in 0..self.targets.len() {
            if !self.usable(i, exclude) {
                continue;
            }
            let w = self.targets[i].weight as i64;
            current[i] += w;
            total += w;
            if best.is_none_or(|b| current[i] > current[b]) {
                best = Some(i);
            }
        }
        let b = best?;
        current[b] -= total;
        Some(b)
    }

    fn pick_ring(&self, key: &[u8], exclude: &[usize]) -> Option<usize> {
        if self.ring.is_empty() {
            return None;
        }
        let h = hash64(key);
        let start = self.ring.partition_point(|(p, _)| *p < h);
        (0..self.ring.len()).map(|k| self.ring[(start + k) % self.ring.len()].1).find(|i| self.usable(*i, exclude))
    }

    fn pick_least(&self, exclude: &[usize]) -> Option<usize> {
        // Fewest in flight per unit of weight; ties to the heavier target.
        (0..self.targets.len()).filter(|i| self.usable(*i, exclude)).min_by(|a, b| {
            let (ta, tb) = (&self.targets[*a], &self.targets[*b]);
            let la = (ta.in_flight() as u128 + 1) * tb.weight as u128;
            let lb = (tb.in_flight() as u128 + 1) * ta.weight as u128;
            la.cmp(&lb).then(tb.weight.cmp(&ta.weight))
        })
    }
}

#[cfg(test)]
#[path = "balancer_tests.rs"]
mod tests;
