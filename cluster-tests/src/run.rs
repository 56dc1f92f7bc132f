//! One chaos run: its seed, the cluster on its own address prefix, the network guard, the
//! history and node states that workloads share, and the evidence a failure leaves
//! behind (history as JSON lines and node logs in a folder the panic names).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::client::{client_addr, Client};
use crate::history::{now_ms, History, Kind, Op, Outcome};
use crate::nemesis::partition::Partitions;
use crate::nemesis::process::NodeStates;
use crate::nemesis::PartitionRecord;
use crate::{form, wait_for, Cluster};

/// The seed: `CHAOS_SEED` if set, else random.
pub fn seed() -> u64 {
    match std::env::var("CHAOS_SEED") {
        Ok(s) => s.trim().parse().unwrap_or_else(|e| panic!("CHAOS_SEED={s}: {e}")),
        Err(_) => rand::random::<u64>() % 1_000_000,
    }
}

pub struct Run {
    pub name: String,
    pub seed: u64,
    pub prefix: String,
    pub rng: StdRng,
    pub client: Client,
    pub history: History,
    pub nodes: NodeStates,
    /// Faults injected, by kind.
    pub faults: BTreeMap<String, usize>,
    pub partition_log: Vec<PartitionRecord>,
    /// Declared before the cluster so that rules go before processes on drop.
    pub partitions: Partitions,
    pub cluster: Cluster,
    /// Node ids (`/status` server.node_id), by index - 1.
    pub ids: Vec<String>,
}

impl Run {
    /// `n` node slots on `<prefix>.1..=n`; prints the seed to replay the run with.
    pub fn new(name: &str, prefix: &str, n: usize) -> Run {
        Run::with_seed(name, prefix, n, seed())
    }

    pub fn with_seed(name: &str, prefix: &str, n: usize, seed: u64) -> Run {
        eprintln!("chaos {name}: seed {seed} (replay with CHAOS_SEED={seed})");
        let partitions = Partitions::new().unwrap_or_else(|e| panic!("chaos {name} needs iptables (run as root): {e}"));
        Run {
            name: name.into(),
            seed,
            prefix: prefix.into(),
            rng: StdRng::seed_from_u64(seed),
            client: Client::bound(&client_addr(prefix), Duration::from_secs(5)),
            history: History::default(),
            nodes: NodeStates::new(n),
            faults: BTreeMap::new(),
            partition_log: Vec::new(),
            partitions,
            cluster: Cluster::new(prefix, n),
            ids: Vec::new(),
        }
    }

    pub fn n(&self) -> usize {
        self.cluster.nodes.len()
    }

    pub fn log(&self, msg: &str) {
        eprintln!("[{:>6} ms] {}: {msg}", now_ms().saturating_sub(self.history.started), self.name);
    }

    pub fn admin(&self, i: usize) -> String {
        format!("http://{}", self.cluster.node(i).admin())
    }

    pub fn echo_addr(&self) -> String {
        format!("{}.100:9000", self.prefix)
    }

    /// Forms the cluster, starts the echo upstream on an address never partitioned and
    /// routes `/echo` to it on every node.
    pub async fn start(&mut self, voters: usize) {
        let echo = self.echo_addr();
        self.cluster.start_echo(&echo, &format!("echo-{}", self.name));
        let n = self.n();
        form(&mut self.cluster, n, voters, &[]).await;
        self.admin_ok("/services", &format!("name=chaos-echo&url=http://{echo}")).await;
        self.admin_ok("/services/chaos-echo/routes", "name=chaos-echo&paths[]=/echo").await;
        for i in 1..=n {
            let url = format!("http://{}/echo/ready", self.cluster.node(i).proxy());
            let client = self.client.clone();
            wait_for(&format!("/echo on node {i}"), Duration::from_secs(10), || async {
                client.get(&url).await.ok().filter(|r| r.status.as_u16() == 200)
            })
            .await;
        }
        for i in 1..=n {
            let s = self.status(i).await.unwrap_or_else(|| panic!("node {i} has no /status"));
            self.ids.push(s["server"]["node_id"].as_str().unwrap_or_default().to_owned());
        }
        self.log(&format!("{n} nodes formed with {voters} voters; node ids {:?}", self.ids));
    }

    /// A form POST to node 1's Admin API that must succeed (set-up, not workload).
    pub async fn admin_ok(&self, path: &str, body: &str) -> serde_json::Value {
        let url = format!("{}{path}", self.admin(1));
        let r = self.client.form(hyper::Method::POST, &url, body).await.unwrap_or_else(|e| panic!("{url}: {e}"));
        assert!(r.status.is_success(), "{url} {body}: {} {}", r.status, String::from_utf8_lossy(&r.body));
        r.json()
    }

    /// `GET /status` on node `i`.
    pub async fn status(&self, i: usize) -> Option<serde_json::Value> {
        let r = self.client.get(&format!("{}/status", self.admin(i))).await.ok()?;
        r.status.is_success().then(|| r.json())
    }

    pub fn index_of(&self, node_id: &str) -> Option<usize> {
        self.ids.iter().position(|id| id == node_id).map(|p| p + 1)
    }

    /// The voters (by index) as a node that is up sees them; None if no node says.
    pub async fn voters(&self) -> Option<Vec<usize>> {
        for i in self.nodes.up() {
            let Ok(r) = self.client.get(&format!("{}/cluster", self.admin(i))).await else { continue };
            if !r.status.is_success() {
                continue;
            }
            let s = r.json();
            let voters: Vec<usize> = crate::process::view::voters(&s)
                .iter()
                .filter_map(|v| self.cluster.nodes.iter().find(|n| v["admin_addr"] == n.admin()).map(|n| n.index))
                .collect();
            if !voters.is_empty() {
                return Some(voters);
            }
        }
        None
    }

    /// The node that leads in the highest term any up node reports.
    pub async fn leader(&self, timeout: Duration) -> usize {
        self.leader_other_than(None, timeout).await
    }

    /// As `leader`, but waits until that node is not `old` (a new election happened).
    pub async fn leader_other_than(&self, old: Option<usize>, timeout: Duration) -> usize {
        self.find_leader(old, timeout).await.unwrap_or_else(|e| self.fail(&e))
    }

    /// The leader other than `old`, or what each node answered if none showed in time.
    pub async fn find_leader(&self, old: Option<usize>, timeout: Duration) -> Result<usize, String> {
        let up = self.nodes.up();
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let mut best: Option<(u64, usize)> = None;
            let mut seen = Vec::new();
            for &i in &up {
                let s = self.status(i).await;
                let (role, term) = s.as_ref().map_or(("no answer", 0), |s| (s["server"]["role"].as_str().unwrap_or("?"), s["term"].as_u64().unwrap_or(0)));
                if role == "leader" && best.is_none_or(|(t, _)| term > t) {
                    best = Some((term, i));
                }
                seen.push(format!("node {i}: {role} term {term}"));
            }
            if let Some((_, i)) = best.filter(|&(_, i)| Some(i) != old) {
                return Ok(i);
            }
            if std::time::Instant::now() > deadline {
                return Err(format!("no leader other than {old:?} among nodes {up:?} within {timeout:?}; /status: {}", seen.join(", ")));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A random element of `from`.
    pub fn pick(&mut self, from: &[usize]) -> usize {
        from[self.rng.random_range(0..from.len())]
    }

    pub(crate) fn record_fault(&mut self, op: &str, node: usize, target: String, start: u64) {
        let end = now_ms();
        let (kind, outcome, status, node_up, value) = (Kind::Fault, Outcome::Ok, None, None, None);
        self.history.push(Op { start, end, node, kind, op: op.into(), target, value, outcome, status, node_up, details: String::new() });
        *self.faults.entry(op.to_owned()).or_default() += 1;
    }

    /// Writes the history and copies node logs into /tmp/gatehouse-chaos-<seed>-<unix time>/.
    pub fn evidence(&self, report: &str) -> PathBuf {
        let dir = PathBuf::from(format!("/tmp/gatehouse-chaos-{}-{}", self.seed, now_ms() / 1000));
        let _ = std::fs::create_dir_all(&dir);
        if let Err(e) = self.history.write_jsonl(&dir.join("history.jsonl")) {
            eprintln!("could not write the history: {e}");
        }
        let _ = std::fs::write(dir.join("violations.txt"), report);
        if let Ok(entries) = std::fs::read_dir(self.cluster.dir.path()) {
            for e in entries.flatten().filter(|e| e.path().extension().is_some_and(|x| x == "log")) {
                let _ = std::fs::copy(e.path(), dir.join(e.file_name()));
            }
        }
        dir
    }

    /// Ends the run: evidence on disk, and a panic naming the run, seed and folder.
    pub fn fail(&self, report: &str) -> ! {
        let dir = self.evidence(report);
        panic!("chaos {} (seed {}) failed:\n{report}\nhistory and node logs in {}", self.name, self.seed, dir.display())
    }
}
