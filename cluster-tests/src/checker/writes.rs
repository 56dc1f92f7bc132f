//! Admin writes, checked after faults heal and writes stop:
//! - convergence: every running node reports the same `config_digest` within a timeout;
//! - on every node's local view (`GET /services`), for each name the workload created:
//!   an acknowledged create whose delete was never sent (or failed) is present; an
//!   acknowledged delete is absent, unless its create never answered (that create may
//!   take effect after the delete); a create refused (4xx, connection refused) is absent;
//!   a present service's `retries` is one a write could have left there: the last
//!   acknowledged value, a later value sent (ok or unknown), or an earlier value whose
//!   write's outcome is unknown (a write that never answered may take effect at any later
//!   time, as in a linearizable history);
//! - no service exists that was never sent (other than the run's fixtures).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::Verdict;
use crate::client::Client;
use crate::history::{Op, Outcome};

/// What the history says about one name.
#[derive(Default)]
struct Expect<'a> {
    create: Option<&'a Op>,
    updates: Vec<&'a Op>,
    delete: Option<&'a Op>,
}

impl Expect<'_> {
    /// Some(true): must be present; Some(false): must be absent; None: either.
    fn presence(&self) -> Option<bool> {
        let create = self.create.map(|c| c.outcome);
        let delete = self.delete.map(|d| d.outcome);
        match (create, delete) {
            (Some(Outcome::Failed), _) => Some(false),
            // A create that never answered may take effect after an acknowledged delete
            // (which, finding nothing yet, answered 204): either is linearizable.
            (Some(Outcome::Unknown), _) => None,
            (_, Some(Outcome::Ok)) => Some(false),
            (Some(Outcome::Ok), None | Some(Outcome::Failed)) => Some(true),
            _ => None,
        }
    }

    /// Whether `value` may be the visible `retries`.
    fn allows(&self, value: u64) -> Result<(), String> {
        let writes: Vec<&Op> = self.create.iter().copied().chain(self.updates.iter().copied()).collect();
        let last_ok = writes.iter().filter(|w| w.outcome == Outcome::Ok).filter_map(|w| w.value).max();
        let possible = writes.iter().filter(|w| w.value == Some(value) && w.outcome != Outcome::Failed).any(|w| match last_ok {
            None => true,
            Some(acked) => value >= acked || w.outcome == Outcome::Unknown,
        });
        if possible {
            Ok(())
        } else {
            let sent: Vec<String> = writes.iter().map(|w| format!("{}={:?}:{:?}", w.op, w.value, w.outcome)).collect();
            Err(format!("retries={value}, last acknowledged {last_ok:?}; writes sent: {}", sent.join(", ")))
        }
    }
}

/// Every service on one node: name -> retries.
async fn services(client: &Client, admin: &str) -> Result<BTreeMap<String, u64>, String> {
    let mut out = BTreeMap::new();
    let mut next = Some("/services?size=1000".to_owned());
    while let Some(path) = next {
        let r = client.get(&format!("{admin}{path}")).await.map_err(|e| e.to_string())?;
        if !r.status.is_success() {
            return Err(format!("{admin}{path}: {}", r.status));
        }
        let page = r.json();
        for s in page["data"].as_array().into_iter().flatten() {
            out.insert(s["name"].as_str().unwrap_or_default().to_owned(), s["retries"].as_u64().unwrap_or(u64::MAX));
        }
        next = page["next"].as_str().map(str::to_owned);
    }
    Ok(out)
}

async fn digest(client: &Client, admin: &str) -> Option<String> {
    let r = client.get(&format!("{admin}/status")).await.ok()?;
    r.status.is_success().then(|| r.json()["config_digest"].as_str().unwrap_or_default().to_owned())
}

/// Waits up to `timeout` for equal digests on all `admins` (node index, admin URL).
pub async fn converge(client: &Client, admins: &[(usize, String)], timeout: Duration) -> Verdict {
    let mut v = Verdict::new("all running nodes converge to one config_digest");
    let deadline = Instant::now() + timeout;
    let started = Instant::now();
    loop {
        let mut digests = BTreeMap::new();
        for (i, admin) in admins {
            digests.insert(*i, digest(client, admin).await.unwrap_or_else(|| "(no answer)".into()));
        }
        let distinct: BTreeSet<&String> = digests.values().collect();
        if distinct.len() == 1 {
            v.check(None);
            eprintln!("digests converged after {:?}", started.elapsed());
            return v;
        }
        if Instant::now() > deadline {
            v.check(Some(format!("after {timeout:?} digests differ: {digests:?}")));
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Checks every node's services against the history's writes.
pub async fn check(client: &Client, admins: &[(usize, String)], writes: &[Op], fixtures: &[&str]) -> Verdict {
    let mut v = Verdict::new("acknowledged writes are on every node; nothing unsent appears");
    let mut expect: BTreeMap<&str, Expect> = BTreeMap::new();
    for w in writes {
        let e = expect.entry(w.target.as_str()).or_default();
        match w.op.as_str() {
            "create" => e.create = Some(w),
            "update" => e.updates.push(w),
            "delete" => e.delete = Some(w),
            other => panic!("unknown write {other}"),
        }
    }
    for (i, admin) in admins {
        let found = match services(client, admin).await {
            Ok(found) => found,
            Err(e) => {
                v.check(Some(format!("node {i}: cannot list services: {e}")));
                continue;
            }
        };
        for (name, e) in &expect {
            let visible = found.get(*name);
            v.check(match (e.presence(), visible) {
                (Some(true), None) => Some(format!("node {i}: {name} is missing, its create was acknowledged and it was never deleted")),
                (Some(false), Some(_)) => Some(format!(
                    "node {i}: {name} exists; create {:?}, delete {:?}",
                    e.create.map(|c| c.outcome),
                    e.delete.map(|d| d.outcome)
                )),
                (_, Some(&value)) => e.allows(value).err().map(|why| format!("node {i}: {name}: {why}")),
                _ => None,
            });
        }
        for name in found.keys().filter(|n| !expect.contains_key(n.as_str()) && !fixtures.contains(&n.as_str())) {
            v.check(Some(format!("node {i}: service {name} exists but was never sent")));
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Kind;

    fn w(op: &str, value: Option<u64>, outcome: Outcome) -> Op {
        Op { start: 0, end: 0, node: 1, kind: Kind::Write, op: op.into(), target: "s".into(), value, outcome, status: None, node_up: None, details: String::new() }
    }

    #[test]
    fn presence_follows_acknowledged_creates_and_deletes() {
        let (c_ok, c_unknown, c_failed) = (w("create", Some(0), Outcome::Ok), w("create", Some(0), Outcome::Unknown), w("create", Some(0), Outcome::Failed));
        let (d_ok, d_unknown) = (w("delete", None, Outcome::Ok), w("delete", None, Outcome::Unknown));
        assert_eq!(Expect { create: Some(&c_ok), ..Expect::default() }.presence(), Some(true));
        assert_eq!(Expect { create: Some(&c_unknown), ..Expect::default() }.presence(), None);
        assert_eq!(Expect { create: Some(&c_failed), ..Expect::default() }.presence(), Some(false));
        assert_eq!(Expect { create: Some(&c_ok), delete: Some(&d_ok), ..Expect::default() }.presence(), Some(false));
        assert_eq!(Expect { create: Some(&c_unknown), delete: Some(&d_ok), ..Expect::default() }.presence(), None, "the create may land after the delete");
        assert_eq!(Expect { create: Some(&c_ok), delete: Some(&d_unknown), ..Expect::default() }.presence(), None);
    }

    #[test]
    fn a_visible_value_is_the_last_acknowledged_a_later_one_or_an_unanswered_one() {
        let create = w("create", Some(0), Outcome::Ok);
        let (u1, u2, u3, u4) = (w("update", Some(1), Outcome::Unknown), w("update", Some(2), Outcome::Failed), w("update", Some(3), Outcome::Ok), w("update", Some(4), Outcome::Unknown));
        let e = Expect { create: Some(&create), updates: vec![&u1, &u2, &u3, &u4], delete: None };
        assert!(e.allows(3).is_ok());
        assert!(e.allows(4).is_ok());
        assert!(e.allows(1).is_ok(), "an unanswered write may land after later ones");
        assert!(e.allows(0).is_err(), "the create was overwritten by an acknowledged update");
        assert!(e.allows(2).is_err(), "a refused update never applies");
        assert!(e.allows(9).is_err(), "never sent");
    }
}
