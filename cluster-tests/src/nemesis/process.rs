//! Process faults: SIGKILL and restart from the data dir, SIGSTOP and SIGCONT. Each
//! moves the node's published state, which the workloads read to tell a proxy failure
//! from a request that went to a node that was down.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::history::now_ms;
use crate::run::Run;

/// Per node: up (running, not paused, serving) and an epoch bumped on every change, so
/// a request can tell whether its node stayed up from its start to its end.
#[derive(Clone)]
pub struct NodeStates(Arc<Mutex<Vec<(bool, u64)>>>);

impl NodeStates {
    pub fn new(n: usize) -> NodeStates {
        NodeStates(Arc::new(Mutex::new(vec![(true, 0); n])))
    }

    /// (up, epoch) of node `i` (1-based).
    pub fn get(&self, i: usize) -> (bool, u64) {
        self.0.lock().expect("node states")[i - 1]
    }

    pub fn set(&self, i: usize, up: bool) {
        let mut s = self.0.lock().expect("node states");
        s[i - 1] = (up, s[i - 1].1 + 1);
    }

    pub fn up(&self) -> Vec<usize> {
        self.0.lock().expect("node states").iter().enumerate().filter(|(_, s)| s.0).map(|(i, _)| i + 1).collect()
    }
}

impl Run {
    /// SIGKILL: the process dies with whatever it had not flushed.
    pub fn kill(&mut self, i: usize) {
        let start = now_ms();
        // Down first: a request racing the kill is the kill's, not the proxy's.
        self.nodes.set(i, false);
        self.cluster.kill(i);
        self.log(&format!("killed node {i}"));
        self.record_fault("kill", i, i.to_string(), start);
    }

    /// Starts a killed node again from its data dir and waits until it proxies again.
    pub async fn restart(&mut self, i: usize) {
        let start = now_ms();
        self.cluster.restart(i);
        let url = format!("http://{}/echo/restarted", self.cluster.node(i).proxy());
        let client = self.client.clone();
        let served = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                if client.get(&url).await.is_ok_and(|r| r.status.as_u16() == 200) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        if served.is_err() {
            self.fail(&format!("node {i} restarted from its data dir but did not proxy /echo within 30 s"));
        }
        self.nodes.set(i, true);
        self.log(&format!("restarted node {i}; serving after {} ms", now_ms() - start));
        self.record_fault("restart", i, i.to_string(), start);
    }

    pub fn pause(&mut self, i: usize) {
        let start = now_ms();
        self.nodes.set(i, false);
        self.cluster.pause(i);
        self.log(&format!("paused node {i} (SIGSTOP)"));
        self.record_fault("pause", i, i.to_string(), start);
    }

    pub fn resume(&mut self, i: usize) {
        let start = now_ms();
        self.cluster.resume(i);
        self.nodes.set(i, true);
        self.log(&format!("resumed node {i} (SIGCONT)"));
        self.record_fault("resume", i, i.to_string(), start);
    }

}
