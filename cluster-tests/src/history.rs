//! The operation history of a chaos run: every admin write, proxied request, rate-limited
//! request and fault, with wall-clock start and end, the node it went to and its outcome.
//! Checkers read it; a failing run writes it out as JSON lines.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// Milliseconds since the Unix epoch: rate-limit windows are aligned to it, and every
/// process of a run shares this one clock.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_millis() as u64
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Write,
    Proxy,
    Ratelimit,
    Fault,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Acknowledged (2xx), or the fault was injected.
    Ok,
    /// Definitely not applied: refused (4xx) or the connection was never made.
    Failed,
    /// May or may not have been applied: 5xx, timeout, connection dropped mid-request.
    Unknown,
}

#[derive(Debug, Clone, Serialize)]
pub struct Op {
    /// Unix ms; written out relative to the run's start.
    pub start: u64,
    pub end: u64,
    /// 1-based node index; 0 when the operation is not about one node.
    pub node: usize,
    pub kind: Kind,
    /// create / update / delete, GET, kill / restart / pause / resume / partition / heal.
    pub op: String,
    /// The entity name, the proxied path, or the nodes a fault touched.
    pub target: String,
    /// The value written (a service's `retries`), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<u64>,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// For proxied requests: the node was running and not paused from start to end, so a
    /// failure is the proxy's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_up: Option<bool>,
    pub details: String,
}

/// Shared by every workload task of a run; appends under a short lock.
#[derive(Clone)]
pub struct History {
    pub started: u64,
    ops: Arc<Mutex<Vec<Op>>>,
}

impl Default for History {
    fn default() -> Self {
        History { started: now_ms(), ops: Arc::default() }
    }
}

impl History {
    pub fn push(&self, op: Op) {
        self.ops.lock().expect("history lock").push(op);
    }

    pub fn ops(&self) -> Vec<Op> {
        self.ops.lock().expect("history lock").clone()
    }

    pub fn of_kind(&self, kind: Kind) -> Vec<Op> {
        self.ops.lock().expect("history lock").iter().filter(|o| o.kind == kind).cloned().collect()
    }

    /// Writes every operation, ordered by start, as one JSON object per line with times
    /// in ms since the run started.
    pub fn write_jsonl(&self, path: &Path) -> std::io::Result<()> {
        let mut ops = self.ops();
        ops.sort_by_key(|o| (o.start, o.end));
        let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
        for op in ops {
            let mut v = serde_json::to_value(&op).expect("plain struct serializes");
            v["start"] = (op.start.saturating_sub(self.started)).into();
            v["end"] = (op.end.saturating_sub(self.started)).into();
            writeln!(out, "{v}")?;
        }
        out.flush()
    }
}
