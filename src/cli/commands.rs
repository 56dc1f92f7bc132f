//! `gatehouse status`, `members`, `leave`, `apply` and `dump`: each asks a node's Admin API
//! and prints the answer; failures are one line on stderr and a non-zero exit.

use std::time::Duration;

use clap::Args;
use hyper::Method;

use super::client::AdminClient;
use super::table::render_status;
use crate::cluster::status::ClusterStatus;

#[derive(Debug, Clone, Args)]
pub struct AdminTarget {
    /// Admin API address of any node.
    #[arg(long, env = "GATEHOUSE_ADMIN", default_value = "127.0.0.1:8001")]
    pub admin: String,
    /// Bearer token, when the Admin API requires one.
    #[arg(long, env = "GATEHOUSE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
}

impl AdminTarget {
    pub fn client(&self, timeout: Duration) -> AdminClient {
        AdminClient { addr: self.admin.clone(), token: self.admin_token.clone(), timeout }
    }
}

pub async fn status(target: &AdminTarget, json: bool) -> anyhow::Result<()> {
    let value = target.client(Duration::from_secs(5)).json(Method::GET, "/cluster", None).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        let status: ClusterStatus = serde_json::from_value(value)?;
        print!("{}", render_status(&status));
    }
    Ok(())
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

pub async fn leave(target: &AdminTarget) -> anyhow::Result<()> {
    let value = target.client(Duration::from_secs(30)).json(Method::POST, "/cluster/leave", None).await?;
    println!("node {} left the cluster", value["node_id"].as_str().unwrap_or("?"));
    Ok(())
}
