//! The randomized fault schedule of a long chaos run: until the deadline, pick one fault
//! (kill or pause a random node or the leader, isolate a node, split the nodes in two, a
//! bridge), let it last 1-6 s, undo it, and let the cluster recover for 1-4 s. The seed
//! decides every choice; timing still varies from run to run.

use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use rand::RngExt;

use crate::run::Run;

#[derive(Debug, Clone, Copy)]
pub enum Fault {
    KillRandom,
    KillLeader,
    PauseRandom,
    PauseLeader,
    IsolateRandom,
    IsolateLeader,
    Split,
    Bridge,
}

const FAULTS: [Fault; 8] =
    [Fault::KillRandom, Fault::KillLeader, Fault::PauseRandom, Fault::PauseLeader, Fault::IsolateRandom, Fault::IsolateLeader, Fault::Split, Fault::Bridge];

impl Run {
    /// The leader, or a random node when none shows within 10 s: the schedule goes on,
    /// and the checkers at the end say what was wrong.
    async fn leader_or_any(&mut self) -> usize {
        match self.find_leader(None, Duration::from_secs(10)).await {
            Ok(i) => i,
            Err(e) => {
                self.log(&format!("{e}; picking a random node instead"));
                let all: Vec<usize> = (1..=self.n()).collect();
                self.pick(&all)
            }
        }
    }

    /// Injects `fault`, holds it for `hold`, and undoes it.
    pub async fn inject(&mut self, fault: Fault, hold: Duration) {
        let all: Vec<usize> = (1..=self.n()).collect();
        match fault {
            Fault::KillRandom | Fault::KillLeader => {
                let i = if matches!(fault, Fault::KillLeader) { self.leader_or_any().await } else { self.pick(&all) };
                self.kill(i);
                tokio::time::sleep(hold).await;
                self.restart(i).await;
            }
            Fault::PauseRandom | Fault::PauseLeader => {
                let i = if matches!(fault, Fault::PauseLeader) { self.leader_or_any().await } else { self.pick(&all) };
                self.pause(i);
                tokio::time::sleep(hold).await;
                self.resume(i);
            }
            Fault::IsolateRandom | Fault::IsolateLeader => {
                let i = if matches!(fault, Fault::IsolateLeader) { self.leader_or_any().await } else { self.pick(&all) };
                self.isolate(i).await;
                tokio::time::sleep(hold).await;
                self.heal();
            }
            Fault::Split | Fault::Bridge => {
                let mut order = all;
                order.shuffle(&mut self.rng);
                let half = order.len() / 2;
                if matches!(fault, Fault::Split) {
                    self.split(&order[..half], &order[half..]).await;
                } else {
                    // Left and right halves around one middle node that sees both.
                    let (left, rest) = order.split_at(half.max(1));
                    let (middle, right) = rest.split_first().expect("at least three nodes");
                    self.bridge(left, *middle, right).await;
                }
                tokio::time::sleep(hold).await;
                self.heal();
            }
        }
    }

    /// Runs random faults until `deadline` or until `stop` resolves (Ctrl-C), then
    /// returns with every fault undone.
    pub async fn random_schedule(&mut self, deadline: Instant, stop: &mut (impl std::future::Future<Output = ()> + Unpin)) {
        while Instant::now() < deadline {
            let fault = FAULTS[self.rng.random_range(0..FAULTS.len())];
            let hold = Duration::from_millis(self.rng.random_range(1000..6000));
            let rest = Duration::from_millis(self.rng.random_range(1000..4000));
            self.log(&format!("next fault: {fault:?} for {hold:?}"));
            self.inject(fault, hold).await;
            tokio::select! {
                _ = tokio::time::sleep(rest) => {}
                _ = &mut *stop => {
                    self.log("interrupted; stopping the schedule");
                    break;
                }
            }
        }
        self.undo_faults().await;
    }
}
