//! Polls every node's `GET /status` (and, for rate-limit runs, `GET /members`) about every
//! 100 ms for the whole run: what term each node is in, whom it takes for leader, whether
//! it leads, its config digest and its count of fallback-share admissions.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Handle, Shared};
use crate::client::Client;
use crate::history::now_ms;

#[derive(Debug, Clone)]
pub struct Observation {
    pub node: usize,
    /// Unix ms when the poll was sent and when its answer arrived: the values were read
    /// somewhere in between.
    pub sent: u64,
    pub received: u64,
    /// The node's epoch (see `NodeStates`) at send and at receipt; equal epochs on two
    /// polls mean the same process, never restarted in between.
    pub epoch: (u64, u64),
    pub node_id: String,
    pub role: String,
    pub term: u64,
    pub leader_id: Option<String>,
    pub digest: String,
    pub degraded_admissions: u64,
    /// Gossip members alive and not left (what the rate limiter divides by), if polled.
    pub live: Option<u64>,
}

/// The observations so far, shared with the checkers.
#[derive(Clone, Default)]
pub struct Observations(Arc<Mutex<Vec<Observation>>>);

impl Observations {
    pub fn all(&self) -> Vec<Observation> {
        self.0.lock().expect("observations").clone()
    }
}

/// Starts one poller per node; `members` adds a `/members` poll for live counts.
pub fn spawn(shared: &Shared, members: bool) -> (Handle, Observations) {
    let observations = Observations::default();
    // A short timeout: a paused node must not hold up its poller for long.
    let client = Client::bound(&crate::client::client_addr(&shared.prefix), Duration::from_secs(1));
    let tasks = (1..=shared.n)
        .map(|node| {
            let (s, obs, client) = (shared.clone(), observations.clone(), client.clone());
            tokio::spawn(async move { poll(s, node, client, obs, members).await })
        })
        .collect();
    (Handle::new(shared, tasks), observations)
}

async fn poll(s: Shared, node: usize, client: Client, obs: Observations, members: bool) {
    while !s.stopped() {
        let epoch_before = s.nodes.get(node).1;
        let sent = now_ms();
        if let Some(mut o) = status(&client, &s.admin(node)).await {
            if members {
                o.live = live(&client, &s.admin(node)).await;
            }
            o.node = node;
            o.sent = sent;
            o.received = now_ms();
            o.epoch = (epoch_before, s.nodes.get(node).1);
            obs.0.lock().expect("observations").push(o);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn status(client: &Client, admin: &str) -> Option<Observation> {
    let r = client.get(&format!("{admin}/status")).await.ok().filter(|r| r.status.is_success())?;
    let s: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
    Some(Observation {
        node: 0,
        sent: 0,
        received: 0,
        epoch: (0, 0),
        node_id: s["server"]["node_id"].as_str()?.to_owned(),
        role: s["server"]["role"].as_str().unwrap_or_default().to_owned(),
        term: s["term"].as_u64()?,
        leader_id: match &s["leader_id"] {
            serde_json::Value::Null => None,
            serde_json::Value::String(l) => Some(l.clone()),
            other => Some(other.to_string()),
        },
        digest: s["config_digest"].as_str().unwrap_or_default().to_owned(),
        degraded_admissions: s["ratelimit"]["degraded_admissions"].as_u64().unwrap_or(0),
        live: None,
    })
}

async fn live(client: &Client, admin: &str) -> Option<u64> {
    let r = client.get(&format!("{admin}/members")).await.ok().filter(|r| r.status.is_success())?;
    let m: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
    let count = m["members"].as_array()?.iter().filter(|p| p["alive"] == true && p["left"] != true).count();
    Some(count.max(1) as u64)
}
