//! Test support: real stores on real loopback sockets, and waiting for conditions.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use gatehouse_raft::{NodeId, Role, Store, StoreConfig};

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn,openraft=error".into()))
        .with_test_writer()
        .try_init();
}

/// Polls `check` until it returns Some, or panics naming `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub nodes: Vec<Option<Store>>,
    pub addrs: Vec<SocketAddr>,
    pub tweak: fn(&mut StoreConfig),
}

pub fn config(id: NodeId, listen: SocketAddr, dir: PathBuf, tweak: fn(&mut StoreConfig)) -> StoreConfig {
    let mut cfg = StoreConfig::new(id, listen, dir);
    cfg.secret = b"test-secret".to_vec();
    tweak(&mut cfg);
    cfg
}

impl Cluster {
    /// `n` members on 127.0.0.1..n, each on its own loopback address, all voters.
    pub async fn start(n: usize, tweak: fn(&mut StoreConfig)) -> Cluster {
        init_tracing();
        let dir = tempfile::tempdir().unwrap();
        let mut cluster = Cluster { dir, nodes: Vec::new(), addrs: Vec::new(), tweak };
        for i in 0..n {
            let listen: SocketAddr = format!("127.0.0.{}:0", i + 1).parse().unwrap();
            let store = Store::open(config(i as u64 + 1, listen, cluster.node_dir(i), tweak)).await.unwrap();
            cluster.addrs.push(store.cluster_addr());
            cluster.nodes.push(Some(store));
        }
        assert!(cluster.node(0).initialize().await.unwrap());
        for i in 1..n {
            let (id, node) = (cluster.node(i).id(), cluster.node(i).node());
            cluster.node(0).add_learner(id, node).await.unwrap();
        }
        let voters: BTreeSet<NodeId> = (1..=n as u64).collect();
        cluster.node(0).set_voters(voters).await.unwrap();
        cluster.wait_leader_agreed().await;
        cluster
    }

    pub fn node_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("n{}", i + 1))
    }

    pub fn node(&self, i: usize) -> &Store {
        self.nodes[i].as_ref().expect("node is stopped")
    }

    pub fn running(&self) -> impl Iterator<Item = &Store> {
        self.nodes.iter().flatten()
    }

    /// Waits until every running node names the same leader, which says it leads.
    pub async fn wait_leader_agreed(&self) -> NodeId {
        wait_for("one leader agreed by every running node", Duration::from_secs(10), || async {
            let statuses: Vec<_> = self.running().map(|s| s.status()).collect();
            let leader = statuses[0].leader?;
            let agreed = statuses.iter().all(|s| s.leader == Some(leader));
            let leads = statuses.iter().filter(|s| s.role == Role::Leader).count();
            (agreed && leads == 1 && statuses.iter().any(|s| s.id == leader)).then_some(leader)
        })
        .await
    }

    pub fn index_of(&self, id: NodeId) -> usize {
        id as usize - 1
    }

    pub async fn stop(&mut self, i: usize) {
        let store = self.nodes[i].take().expect("node already stopped");
        store.shutdown().await;
    }

    /// Restarts node `i` from its data dir on the same address.
    pub async fn restart(&mut self, i: usize) {
        assert!(self.nodes[i].is_none(), "node {i} is running");
        let cfg = config(i as u64 + 1, self.addrs[i], self.node_dir(i), self.tweak);
        self.nodes[i] = Some(Store::open(cfg).await.unwrap());
    }

    /// Waits until every running node has applied at least `index`.
    pub async fn wait_applied(&self, index: u64) {
        for s in self.running() {
            s.raft()
                .wait(Some(Duration::from_secs(10)))
                .applied_index_at_least(Some(index), "test waits for apply")
                .await
                .unwrap_or_else(|e| panic!("node {} did not apply {index}: {e}", s.id()));
        }
    }

    pub async fn shutdown(mut self) {
        for i in 0..self.nodes.len() {
            if self.nodes[i].is_some() {
                self.stop(i).await;
            }
        }
    }
}
