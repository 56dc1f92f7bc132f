//! Proxied traffic through every node to the healthy echo upstream. Each request records
//! whether its node was up (running, not paused) from its start to its end: only those
//! requests must succeed, whatever elections or partitions happen meanwhile.

use std::time::Duration;

use super::{classify, Handle, Shared};
use crate::history::{now_ms, Kind, Op};

/// Starts `clients` loops, each going round the nodes.
pub fn spawn(shared: &Shared, clients: usize) -> Handle {
    let tasks = (0..clients)
        .map(|c| {
            let s = shared.clone();
            tokio::spawn(async move { client(s, c).await })
        })
        .collect();
    Handle::new(shared, tasks)
}

async fn client(s: Shared, c: usize) {
    let mut turn = c;
    while !s.stopped() {
        turn += 1;
        let node = turn % s.n + 1;
        let before = s.nodes.get(node);
        let path = format!("/echo/{c}/{turn}");
        let start = now_ms();
        let reply = s.client.get(&format!("{}{path}", s.proxy(node))).await;
        let end = now_ms();
        let node_up = before.0 && s.nodes.get(node) == before;
        let (outcome, status, details) = classify(&reply);
        s.history.push(Op { start, end, node, kind: Kind::Proxy, op: "GET".into(), target: path, value: None, outcome, status, node_up: Some(node_up), details });
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
}
