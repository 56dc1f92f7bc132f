//! Admin writes through random nodes: services `svc-<seed>-<writer>-<n>` are created
//! (retries=0), updated with a growing `retries` (1, 2, ...) and deleted, each write
//! recorded as ok / failed / unknown. A writer owns its names and touches one name at a
//! time, so the only overlap between writes to a name is a write whose outcome is unknown.

use std::time::Duration;

use hyper::Method;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::{classify, Handle, Shared};
use crate::history::{now_ms, Kind, Op};

struct Name {
    name: String,
    /// The last `retries` value sent for it.
    value: u64,
}

/// Starts `writers` concurrent writers; without `deletes` they only create and update.
pub fn spawn(shared: &Shared, writers: usize, deletes: bool) -> Handle {
    let tasks = (0..writers)
        .map(|w| {
            let s = shared.clone();
            tokio::spawn(async move { writer(s, w, deletes).await })
        })
        .collect();
    Handle::new(shared, tasks)
}

async fn writer(s: Shared, w: usize, deletes: bool) {
    let mut rng = StdRng::seed_from_u64(s.task_seed(w as u64 + 1));
    let mut live: Vec<Name> = Vec::new();
    let mut created = 0;
    while !s.stopped() {
        let node = rng.random_range(1..=s.n);
        let admin = s.admin(node);
        let (op, name, value, method, url, body) = if live.is_empty() || rng.random_bool(0.35) {
            created += 1;
            let name = format!("svc-{}-{w}-{created}", s.seed);
            live.push(Name { name: name.clone(), value: 0 });
            let body = format!("name={name}&url=http://{}.100:9000&retries=0", s.prefix);
            ("create", name, Some(0), Method::POST, format!("{admin}/services"), body)
        } else {
            let k = rng.random_range(0..live.len());
            if !deletes || rng.random_bool(0.8) {
                live[k].value += 1;
                let (name, value) = (live[k].name.clone(), live[k].value);
                ("update", name.clone(), Some(value), Method::PATCH, format!("{admin}/services/{name}"), format!("retries={value}"))
            } else {
                // Once a delete is sent the name is never written again, whatever happens.
                let name = live.swap_remove(k).name;
                ("delete", name.clone(), None, Method::DELETE, format!("{admin}/services/{name}"), String::new())
            }
        };
        let start = now_ms();
        let reply = s.client.form(method, &url, &body).await;
        let (outcome, status, details) = classify(&reply);
        s.history.push(Op { start, end: now_ms(), node, kind: Kind::Write, op: op.into(), target: name, value, outcome, status, node_up: None, details });
        // Paced: two cores also run the cluster, and its elections must not starve.
        tokio::time::sleep(Duration::from_millis(rng.random_range(10..40))).await;
    }
}
