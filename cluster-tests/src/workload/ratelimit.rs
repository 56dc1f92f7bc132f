//! Load on a rate-limited route through every node: every request carries the same
//! `x-who` header, so all of them count against one budget per window.

use std::time::Duration;

use hyper::Method;

use super::{classify, Handle, Shared};
use crate::history::{now_ms, Kind, Op};

/// Starts `clients` loops sending to `path`, each going round the nodes, pausing
/// `pause` between requests.
pub fn spawn(shared: &Shared, path: &str, clients: usize, pause: Duration) -> Handle {
    let tasks = (0..clients)
        .map(|c| {
            let (s, path) = (shared.clone(), path.to_owned());
            tokio::spawn(async move { client(s, c, path, pause).await })
        })
        .collect();
    Handle::new(shared, tasks)
}

async fn client(s: Shared, c: usize, path: String, pause: Duration) {
    let mut turn = c;
    while !s.stopped() {
        turn += 1;
        let node = turn % s.n + 1;
        let before = s.nodes.get(node);
        let start = now_ms();
        let reply = s.client.request(Method::GET, &format!("{}{path}", s.proxy(node)), &[("x-who", "load")], Vec::new()).await;
        let end = now_ms();
        let node_up = before.0 && s.nodes.get(node) == before;
        let (outcome, status, details) = classify(&reply);
        s.history.push(Op { start, end, node, kind: Kind::Ratelimit, op: "GET".into(), target: path.clone(), value: None, outcome, status, node_up: Some(node_up), details });
        tokio::time::sleep(pause).await;
    }
}
