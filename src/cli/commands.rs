//! `gatehouse status`, `members`, `leave`, `remove`, `apply` and `dump`: each asks a node's Admin API
//! and prints the answer; failures are one line on stderr and a non-zero exit.

use std::time::Duration;

use clap::Args;
use hyper::{Method, StatusCode};

use super::client::{AdminClient, ClientError};
use super::table::render_status;
use crate::cluster::status::ClusterStatus;

#[derive(Debug, Clone, Args)]
pub struct AdminTarget {
    /// Admin API address of any node (host, host:port or http://host:port; the port
    /// defaults to 8001).
    #[arg(long, env = "GATEHOUSE_ADMIN", default_value = "127.0.0.1:8001", value_parser = admin_addr)]
    pub admin: String,
    /// Bearer token, when the Admin API requires one.
    #[arg(long, env = "GATEHOUSE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
}

/// `--admin` as `host:port`: an `http://` prefix and a trailing slash are dropped, and a
/// missing port is the Admin API's default, as `--join` defaults the gossip port.
fn admin_addr(given: &str) -> Result<String, String> {
    if given.starts_with("https://") {
        return Err("the Admin API speaks plain HTTP here (put TLS in front of it with a proxy); give host:port".into());
    }
    let bare = given.strip_prefix("http://").unwrap_or(given).trim_end_matches('/');
    if bare.is_empty() || bare.contains('/') {
        return Err(format!("{given:?} is not an address: give host, host:port or http://host:port"));
    }
    Ok(crate::config::with_default_port(bare, crate::config::ADMIN_PORT))
}

impl AdminTarget {
    pub fn client(&self, timeout: Duration) -> AdminClient {
        AdminClient { addr: self.admin.clone(), token: self.admin_token.clone(), timeout }
    }
}

pub async fn status(target: &AdminTarget, json: bool, check: bool) -> anyhow::Result<()> {
    let value = target.client(Duration::from_secs(5)).json(Method::GET, "/cluster", None).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    let status: ClusterStatus = serde_json::from_value(value)?;
    print!("{}", render_status(&status));
    if !check {
        return Ok(());
    }
    // As etcdctl endpoint health, for scripts: a failure when writes cannot commit. Not
    // by default, so that a container's health (the node serves) is not the cluster's.
    crate::cli::table::quorum(&status).map(|_| ()).map_err(|why| anyhow::anyhow!("{why}"))
}

pub async fn members(target: &AdminTarget, json: bool) -> anyhow::Result<()> {
    let value = target.client(Duration::from_secs(5)).json(Method::GET, "/cluster/members", None).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    println!("{:<20}  {:<6}  {:<22}  {:<22}", "ID", "STATE", "CLUSTER", "ADMIN");
    for m in value["members"].as_array().into_iter().flatten() {
        let state = if m["left"] == true { "left" } else if m["alive"] == true { "alive" } else { "dead" };
        let field = |k: &str| m["meta"][k].as_str().unwrap_or("-").to_string();
        println!("{:<20}  {:<6}  {:<22}  {:<22}", m["node_id"].as_u64().unwrap_or(0), state, field("cluster_addr"), field("admin_addr"));
    }
    Ok(())
}

pub async fn remove(target: &AdminTarget, node_id: u64) -> anyhow::Result<()> {
    target.client(Duration::from_secs(30)).json(Method::DELETE, &format!("/cluster/members/{node_id}"), None).await?;
    println!("node {node_id} removed from the cluster");
    Ok(())
}

pub async fn leave(target: &AdminTarget) -> anyhow::Result<()> {
    let value = target.client(Duration::from_secs(30)).json(Method::POST, "/cluster/leave", None).await?;
    println!("node {} left the cluster", value["node_id"].as_str().unwrap_or("?"));
    Ok(())
}

/// `gatehouse apply -f FILE`: replaces the cluster's configuration with a declarative file.
pub async fn apply(target: &AdminTarget, file: &std::path::Path, dry_run: bool) -> anyhow::Result<()> {
    let text = if file.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
        s
    } else {
        std::fs::read_to_string(file).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?
    };
    let path = if dry_run { "/config?dry_run=true" } else { "/config" };
    let client = target.client(Duration::from_secs(60));
    let value = match client.json(Method::POST, path, Some(("application/yaml".into(), text.clone().into_bytes()))).await {
        Err(ClientError::Status { status, body, .. }) if status == StatusCode::GATEWAY_TIMEOUT && !dry_run => {
            return settle(&client, &text, &body).await;
        }
        other => other?,
    };
    let verb = if dry_run { "would" } else { "did" };
    let mut lines = Vec::new();
    for (table, counts) in value["summary"].as_object().into_iter().flatten() {
        let (c, u, d) = (counts["create"].as_u64().unwrap_or(0), counts["update"].as_u64().unwrap_or(0), counts["delete"].as_u64().unwrap_or(0));
        if c + u + d > 0 {
            lines.push(format!("  {table}: {c} created, {u} updated, {d} deleted"));
        }
    }
    if lines.is_empty() {
        println!("configuration unchanged");
    } else {
        println!("configuration {verb} change:\n{}", lines.join("\n"));
    }
    Ok(())
}

/// How long `apply` asks after a 504 whether its change took effect.
const SETTLE_FOR: Duration = Duration::from_secs(15);

/// What a dry run of the same file says of a write whose outcome was unknown.
#[derive(Debug, PartialEq, Eq)]
enum Settled {
    /// The configuration matches the file: the write took effect.
    Applied,
    /// The leader, caught up, still sees changes to make: not applied yet. Lost, if its
    /// leader failed (a new one commits or drops the old one's entries before it answers);
    /// it may still commit, if a live leader was only slow.
    NotApplied,
    /// No answer that says (no leader yet): ask again.
    Unknown,
}

fn settled(dry_run: Result<serde_json::Value, ClientError>) -> Settled {
    match dry_run {
        Ok(v) if v["changed"] == false => Settled::Applied,
        Ok(v) if v["changed"] == true => Settled::NotApplied,
        _ => Settled::Unknown,
    }
}

/// After a 504 (the leader failed mid-write), asks with dry runs of the same file until
/// one says whether the change took effect, so that the operator need not guess; applying
/// the file again is safe either way.
async fn settle(client: &AdminClient, text: &str, first: &str) -> anyhow::Result<()> {
    eprintln!("gatehouse: the write's outcome is unknown ({first}); asking the cluster whether it took effect");
    let deadline = tokio::time::Instant::now() + SETTLE_FOR;
    loop {
        let dry_run = client.json(Method::POST, "/config?dry_run=true", Some(("application/yaml".into(), text.as_bytes().to_vec()))).await;
        let now = settled(dry_run);
        if now == Settled::Applied {
            println!("configuration did change (the first answer was a 504; the cluster's configuration now matches the file)");
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            // Applying the same file again is safe: whichever write commits first makes
            // the other a no-op (a replaced config's writes compare revisions).
            match now {
                Settled::NotApplied => anyhow::bail!("the change is not applied after {SETTLE_FOR:?} (lost with its leader, most likely): apply the file again"),
                _ => anyhow::bail!("outcome unknown after {SETTLE_FOR:?}: the cluster cannot say whether the change took effect (no leader?); apply the file again once it has one"),
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `gatehouse dump`: prints the cluster's configuration as a declarative file.
pub async fn dump(target: &AdminTarget, json: bool) -> anyhow::Result<()> {
    let path = if json { "/config?format=json" } else { "/config" };
    let (status, body) = target.client(Duration::from_secs(30)).request(Method::GET, path, None).await?;
    if !status.is_success() {
        anyhow::bail!("{} answered {status}: {}", target.admin, String::from_utf8_lossy(&body).trim());
    }
    print!("{}", String::from_utf8_lossy(&body));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dry_run_after_an_unknown_outcome_says_whether_the_change_took_effect() {
        let answer = |changed: bool| Ok(serde_json::json!({ "changed": changed, "dry_run": true, "summary": {} }));
        assert_eq!(settled(answer(false)), Settled::Applied);
        assert_eq!(settled(answer(true)), Settled::NotApplied);
        let no_leader = ClientError::Status { addr: "a".into(), status: StatusCode::SERVICE_UNAVAILABLE, body: "{}".into() };
        assert_eq!(settled(Err(no_leader)), Settled::Unknown);
        assert_eq!(settled(Ok(serde_json::json!({ "message": "?" }))), Settled::Unknown);
    }

    #[test]
    fn admin_addresses_take_the_default_port_and_lose_a_scheme() {
        for (given, want) in [
            ("127.0.0.1:8001", "127.0.0.1:8001"),
            ("127.0.0.1", "127.0.0.1:8001"),
            ("http://127.0.0.1:9001/", "127.0.0.1:9001"),
            ("http://node-2", "node-2:8001"),
            ("[::1]:8001", "[::1]:8001"),
            ("[::1]", "[::1]:8001"),
            ("::1", "[::1]:8001"),
            ("fe80::2:3", "[fe80::2:3]:8001"),
        ] {
            assert_eq!(admin_addr(given).as_deref(), Ok(want), "{given}");
        }
        assert!(admin_addr("https://127.0.0.1:8001").unwrap_err().contains("plain HTTP"));
        assert!(admin_addr("http://a/b").unwrap_err().contains("not an address"));
        assert!(admin_addr("").is_err());
    }
}
