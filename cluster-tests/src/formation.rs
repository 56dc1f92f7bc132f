//! Forming a cluster of node processes and waiting until every node agrees on it.

use std::time::Duration;

use crate::process::view;
use crate::{wait_for, Cluster};

/// Starts node 1, then the others joining through it; returns once all report
/// `voters` voters and agree on a leader.
pub async fn form(c: &mut Cluster, n: usize, voters: usize, extra: &[&str]) {
    let voters_flag = voters.to_string();
    let mut flags: Vec<&str> = vec!["--voters", &voters_flag];
    flags.extend_from_slice(extra);
    c.start(1, &flags);
    let seed = c.node(1).ip.clone();
    wait_for("node 1 to serve its Admin API", Duration::from_secs(15), || async { c.status(1).await }).await;
    for i in 2..=n {
        let mut f = flags.clone();
        f.extend_from_slice(&["--join", &seed]);
        c.start(i, &f);
    }
    wait_agreed(c, n, voters, Duration::from_secs(20)).await;
}

/// Every running node sees `voters` alive voters and the same leader, which says it leads.
pub async fn wait_agreed(c: &Cluster, running: usize, voters: usize, timeout: Duration) -> u64 {
    wait_for(&format!("{voters} voters and one agreed leader on every node"), timeout, || async {
        let mut leader = None;
        let mut seen = 0;
        for i in 1..=c.nodes.len() {
            if !c.is_running(i) {
                continue;
            }
            let s = c.status(i).await?;
            let alive_voters = view::voters(&s).iter().filter(|v| v["alive"] == true).count();
            if alive_voters != voters || view::count_role(&s, "leader") != 1 {
                return None;
            }
            let l = view::leader(&s)?;
            if leader.is_some_and(|prev| prev != l) {
                return None;
            }
            leader = Some(l);
            seen += 1;
        }
        (seen == running).then_some(leader?)
    })
    .await
}

