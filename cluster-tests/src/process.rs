//! Node processes: start, stop (SIGTERM), kill (SIGKILL), pause (SIGSTOP) and resume, on
//! addresses `<prefix>.<n>` so that concurrent tests never share an address.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::http;

/// The `gatehouse` binary of this workspace, built on first use if `cargo test` did not.
pub fn binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        // An explicit binary (a release build, or a copy that a concurrent build cannot replace).
        if let Some(bin) = std::env::var_os("GATEHOUSE_TEST_BIN") {
            return PathBuf::from(bin);
        }
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
        let bin = target.join("debug/gatehouse");
        if !bin.exists() {
            let status = Command::new(env!("CARGO")).args(["build", "-q", "-p", "gatehouse", "--bin", "gatehouse"]).status();
            assert!(status.map(|s| s.success()).unwrap_or(false), "could not build the gatehouse binary");
        }
        bin
    })
}

#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub index: usize,
    pub ip: String,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    pub extra: Vec<String>,
}

impl NodeSpec {
    pub fn admin(&self) -> String {
        format!("{}:8001", self.ip)
    }
    pub fn proxy(&self) -> String {
        format!("{}:8000", self.ip)
    }
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub nodes: Vec<NodeSpec>,
    children: Vec<Option<Child>>,
    /// Kept for processes started outside the node list (upstreams), killed on drop too.
    others: Vec<Child>,
}

impl Cluster {
    /// `n` node slots on `<prefix>.1 ..= <prefix>.n` (e.g. prefix "127.0.10"); none started.
    pub fn new(prefix: &str, n: usize) -> Cluster {
        let dir = tempfile::Builder::new().prefix("gatehouse-test-").tempdir().expect("tempdir");
        let nodes = (1..=n)
            .map(|i| NodeSpec {
                index: i,
                ip: format!("{prefix}.{i}"),
                data_dir: dir.path().join(format!("n{i}")),
                log: dir.path().join(format!("n{i}.log")),
                extra: Vec::new(),
            })
            .collect();
        Cluster { dir, nodes, children: (0..n).map(|_| None).collect(), others: Vec::new() }
    }

    /// Starts node `i` (1-based) with `gatehouse start` and the given extra flags.
    pub fn start(&mut self, i: usize, extra: &[&str]) {
        self.nodes[i - 1].extra = extra.iter().map(|s| s.to_string()).collect();
        self.restart(i);
    }

    /// Starts node `i` again with the flags it had last time.
    pub fn restart(&mut self, i: usize) {
        let spec = &self.nodes[i - 1];
        assert!(self.children[i - 1].is_none(), "node {i} is running");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&spec.log).expect("log file");
        let child = Command::new(binary())
            .args(["start", "--bind-addr", &spec.ip, "--data-dir"])
            .arg(&spec.data_dir)
            .args(["--log", "info,gatehouse=debug"])
            .args(&spec.extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn gatehouse");
        self.children[i - 1] = Some(child);
    }

    /// Starts `gatehouse echo` on `addr`; it is killed with the cluster.
    pub fn start_echo(&mut self, addr: &str, name: &str) {
        let log = std::fs::File::create(self.dir.path().join(format!("echo-{name}.log"))).expect("log");
        let child = Command::new(binary())
            .args(["echo", "--listen", addr, "--name", name])
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn echo");
        self.others.push(child);
    }

    fn signal(&self, i: usize, sig: Signal) {
        if let Some(child) = &self.children[i - 1] {
            let _ = kill(Pid::from_raw(child.id() as i32), sig);
        }
    }

    pub fn kill(&mut self, i: usize) {
        self.signal(i, Signal::SIGKILL);
        if let Some(mut child) = self.children[i - 1].take() {
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for the process to exit (up to `timeout`); returns its exit code.
    pub async fn stop(&mut self, i: usize, timeout: Duration) -> Option<i32> {
        self.signal(i, Signal::SIGTERM);
        let mut child = self.children[i - 1].take()?;
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("node {i} did not exit within {timeout:?} of SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for a node that exits by itself (e.g. after `gatehouse leave`).
    pub async fn wait_exit(&mut self, i: usize, timeout: Duration) -> Option<i32> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let child = self.children[i - 1].as_mut()?;
            if let Ok(Some(status)) = child.try_wait() {
                self.children[i - 1] = None;
                return status.code();
            }
            assert!(std::time::Instant::now() < deadline, "node {i} did not exit within {timeout:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn pause(&self, i: usize) {
        self.signal(i, Signal::SIGSTOP);
    }

    pub fn resume(&self, i: usize) {
        self.signal(i, Signal::SIGCONT);
    }

    pub fn hangup(&self, i: usize) {
        self.signal(i, Signal::SIGHUP);
    }

    pub fn is_running(&self, i: usize) -> bool {
        self.children[i - 1].is_some()
    }

    pub fn node(&self, i: usize) -> &NodeSpec {
        &self.nodes[i - 1]
    }

    /// The index of the node that the `/cluster` answer `s` names `id`.
    pub fn index_of(&self, s: &serde_json::Value, id: u64) -> usize {
        let admin = view::admin_of(s, id).unwrap_or_else(|| panic!("/cluster names no node {id}"));
        self.nodes.iter().find(|n| n.admin() == admin).unwrap_or_else(|| panic!("no node serves {admin}")).index
    }

    /// `GET /cluster` on node `i`.
    pub async fn status(&self, i: usize) -> Option<serde_json::Value> {
        let reply = http::get(&format!("http://{}/cluster", self.node(i).admin())).await.ok()?;
        reply.status.is_success().then(|| reply.json())
    }

    /// Runs the CLI (`gatehouse <args>`) and returns (exit code, stdout, stderr).
    pub fn cli(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(binary()).args(args).output().expect("run gatehouse");
        (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
    }

    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.node(i).log).unwrap_or_default()
    }

    /// Every node's log, for a failure message.
    pub fn logs(&self) -> String {
        self.nodes.iter().map(|n| format!("----- node {} ({}) -----\n{}", n.index, n.ip, self.log(n.index))).collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in self.children.iter_mut().flatten().chain(self.others.iter_mut()) {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGCONT);
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            // Keep the evidence: the logs and data dirs outlive the failed test.
            let kept = self.dir.path().to_path_buf();
            let _ = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir")).keep();
            eprintln!("cluster test failed; node logs and data kept in {}", kept.display());
            for n in &self.nodes {
                let tail: String = self.log(n.index).lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
                eprintln!("----- node {} ({}) last lines -----\n{tail}", n.index, n.ip);
            }
        }
    }
}

/// Reading `GET /cluster` answers.
pub mod view {
    use serde_json::Value;

    pub fn voters(s: &Value) -> Vec<&Value> {
        s["nodes"].as_array().map(|n| n.iter().filter(|n| n["voter"] == true).collect()).unwrap_or_default()
    }

    pub fn leader(s: &Value) -> Option<u64> {
        s["leader_id"].as_u64()
    }

    /// The node whose admin address is `admin`.
    pub fn node_id_at(s: &Value, admin: &str) -> Option<u64> {
        s["nodes"].as_array()?.iter().find(|n| n["admin_addr"] == admin)?["id"].as_u64()
    }

    pub fn admin_of(s: &Value, id: u64) -> Option<String> {
        s["nodes"].as_array()?.iter().find(|n| n["id"] == id)?["admin_addr"].as_str().map(str::to_owned)
    }

    pub fn count_role(s: &Value, role: &str) -> usize {
        s["nodes"].as_array().map_or(0, |n| n.iter().filter(|n| n["role"] == role).count())
    }
}
