//! Human-readable rendering of the cluster status, as `gatehouse status` prints it.

use crate::cluster::status::ClusterStatus;

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "-".to_string(), T::to_string)
}

/// Whether the cluster can take writes, as the node asked sees it: a majority of the
/// voters alive (as gossip sees them) and a write through that node able to commit now
/// (it hears from a leader that hears from a quorum). What an operator needs first when
/// something is wrong, without counting the table's rows. Err: why not, in one line.
pub fn quorum(s: &ClusterStatus) -> Result<String, String> {
    let voters = s.nodes.iter().filter(|n| n.voter).count();
    let alive = s.nodes.iter().filter(|n| n.voter && n.alive && !n.left).count();
    if voters == 0 {
        Err("quorum: unknown (no voters known yet)".to_owned())
    } else if alive <= voters / 2 {
        Err(format!("quorum: LOST ({alive} of {voters} voters alive): admin writes fail, proxies serve the last configuration"))
    } else if !s.writable {
        Err(format!(
            "quorum: NOT COMMITTING ({alive} of {voters} voters alive, but node {} hears from no leader with a quorum): admin writes \
             through it fail, proxies serve the last configuration",
            s.node_id
        ))
    } else {
        Ok(format!("quorum: ok ({alive} of {voters} voters alive)"))
    }
}

pub fn render_status(s: &ClusterStatus) -> String {
    let mut out = format!(
        "cluster {}  term {}  leader {}  commit index {}  (as seen by node {})\n{}\n\n",
        s.cluster,
        s.term,
        opt(&s.leader_id),
        s.commit_index,
        s.node_id,
        quorum(s).unwrap_or_else(|why| why)
    );
    let header = ["ID", "ADMIN", "PROXY", "ROLE", "VOTER", "GOSSIP", "APPLIED", "LAG", "LAST CONTACT", "RATE LIMITS"];
    let rows: Vec<[String; 10]> = s
        .nodes
        .iter()
        .map(|n| {
            [
                n.id.to_string(),
                opt(&n.admin_addr),
                opt(&n.proxy_addr),
                n.role.clone(),
                if n.voter { "yes" } else { "no" }.to_string(),
                if n.left { "left" } else if n.alive { "alive" } else { "dead" }.to_string(),
                opt(&n.applied_index),
                opt(&n.lag),
                n.last_contact_ms.map_or_else(|| "-".to_string(), |ms| format!("{ms}ms ago")),
                if n.ratelimit_degraded { "local share (no quorum)" } else { "cluster" }.to_string(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let parts: Vec<String> = cells.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        parts.join("  ").trim_end().to_string() + "\n"
    };
    out.push_str(&line(header.to_vec()));
    for row in &rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::status::NodeStatus;

    #[test]
    fn renders_one_line_per_node_with_aligned_columns() {
        let node = |id: u64, role: &str| NodeStatus {
            id,
            admin_addr: Some(format!("127.0.0.{id}:8001")),
            proxy_addr: None,
            cluster_addr: None,
            role: role.into(),
            voter: role != "learner",
            alive: id != 3,
            left: false,
            applied_index: Some(42),
            lag: Some(0),
            version: None,
            ratelimit_degraded: id == 3,
            last_contact_ms: (id != 1).then_some(120),
        };
        let s = ClusterStatus {
            cluster: "c".into(),
            node_id: 1,
            leader_id: Some(1),
            term: 3,
            commit_index: 42,
            writable: true,
            nodes: vec![node(1, "leader"), node(2, "follower"), node(3, "learner")],
        };
        let text = render_status(&s);
        assert!(text.starts_with("cluster c  term 3  leader 1"));
        assert_eq!(text.lines().nth(1), Some("quorum: ok (2 of 2 voters alive)"));
        let lines: Vec<&str> = text.lines().skip(3).collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[3].contains("learner") && lines[3].contains("dead") && lines[3].contains("local share"));
        assert!(lines[2].contains("120ms ago"));
        assert_eq!(lines[1].find("127.0.0.1:8001"), lines[2].find("127.0.0.2:8001"));

        let lost = ClusterStatus { nodes: vec![node(1, "candidate"), node(3, "follower"), node(4, "follower")], leader_id: None, ..s.clone() };
        let lost = ClusterStatus { nodes: lost.nodes.into_iter().map(|n| NodeStatus { alive: n.id == 1, ..n }).collect(), ..lost };
        assert!(render_status(&lost).lines().nth(1).unwrap().starts_with("quorum: LOST (1 of 3 voters alive)"), "{}", render_status(&lost));
        assert!(quorum(&lost).is_err());

        // Every voter alive to gossip, yet nothing commits (elections churning, or the
        // leader's appends stalled): not ok either.
        let stalled = ClusterStatus { writable: false, ..s };
        let line = quorum(&stalled).unwrap_err();
        assert!(line.starts_with("quorum: NOT COMMITTING (2 of 2 voters alive, but node 1 hears from no leader with a quorum)"), "{line}");
        assert_eq!(render_status(&stalled).lines().nth(1), Some(line.as_str()));
    }
}
