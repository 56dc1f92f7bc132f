//! Joining: a new node finds members by gossip and asks one of them, over the
//! authenticated cluster port, to add it as a learner. The same loop makes a node that
//! was removed while it was away join again, and starts a brand-new cluster when told to.

use std::sync::Arc;
use std::time::Duration;

use gatehouse_raft::{AppFuture, AppHandler, RaftNode, Store, StoreError};
use serde::{Deserialize, Serialize};

use super::agreement;
use super::peers::{meta, PeerInfo, PeerView};
use crate::shutdown::Shutdown;

pub const JOIN_METHOD: &str = "join";
/// Which node answers at an address: a join under an id a live member has is refused.
pub const NODE_ID_METHOD: &str = "node-id";
/// How a member's answer to a join begins when the node may not join whatever it tries
/// again (an older protocol, an id in use): the joining node stops with the reason.
const REFUSAL: &str = "join refused: ";

#[derive(Debug, Serialize, Deserialize)]
struct JoinRequest {
    node_id: u64,
    node: RaftNode,
    /// `gatehouse_raft::PROTOCOL` of the joining binary; builds before it was sent say
    /// nothing (0).
    #[serde(default)]
    protocol: u32,
    /// This process's `INSTANCE`; builds before it was sent say nothing (0).
    #[serde(default)]
    instance: u64,
}

/// Tells this process from another with the same node id (a copied data dir): a member
/// reachable at an old address of its own is the same process, not a second one.
static INSTANCE: std::sync::LazyLock<u64> = std::sync::LazyLock::new(|| rand::random::<u64>().max(1));

/// Serves join requests arriving on the cluster port.
pub struct JoinHandler {
    pub store: Store,
}

impl AppHandler for JoinHandler {
    fn call(&self, peer: u64, method: String, body: Vec<u8>) -> AppFuture {
        let store = self.store.clone();
        Box::pin(async move {
            if method != JOIN_METHOD {
                return Err(format!("unknown cluster call {method:?}"));
            }
            let req: JoinRequest = serde_json::from_slice(&body).map_err(|e| format!("bad join request: {e}"))?;
            // The handshake proved who is calling: nobody may join on another's behalf.
            if req.node_id != peer {
                return Err(format!("node {peer} may not join as node {}", req.node_id));
            }
            // A member older than what the cluster agreed on would apply the log unlike
            // the others (see `cluster::agreement`). This node's map may be behind the
            // record (just restarted): read it as of the leader's latest commit.
            store.read_barrier().await.map_err(|e| format!("cannot tell which protocol the cluster agreed on: {e}"))?;
            let agreed = agreement::agreed_protocol(&store);
            if req.protocol < agreed {
                return Err(format!("{REFUSAL}node {peer} reads Raft protocol {}, older than the cluster's {agreed}: upgrade it to join", req.protocol));
            }
            let recorded = store.members().get(&req.node_id).cloned();
            if recorded.as_ref() == Some(&req.node) {
                return Ok(Vec::new());
            }
            // The id is a member's at another address: a node that moved, or a second
            // process with the same id (a copied data dir, a cloned machine). Taking the
            // id over from a live member would swap it out of the cluster, and the two
            // would take it from each other over and over.
            if let Some(recorded) = recorded.filter(|r| r.addr != req.node.addr) {
                let other_process = matches!(who_answers(&store, &recorded.addr).await, Some((id, instance)) if id == req.node_id && instance != req.instance);
                if other_process {
                    return Err(format!(
                        "{REFUSAL}node id {} is in use by the member at {}: is this a copy of its data dir? Start with an empty data dir to join as a new node",
                        req.node_id, recorded.addr
                    ));
                }
            }
            tracing::info!(node_id = req.node_id, addr = %req.node.addr, "adding joining node as a learner");
            store.add_learner(req.node_id, req.node).await.map(|_| Vec::new()).map_err(|e| e.to_string())
        })
    }
}

/// Answers `NODE_ID_METHOD` with this node's id and this process's instance.
pub struct NodeIdHandler {
    pub id: u64,
}

impl AppHandler for NodeIdHandler {
    fn call(&self, _peer: u64, _method: String, _body: Vec<u8>) -> AppFuture {
        let answer = format!("{} {}", self.id, *INSTANCE);
        Box::pin(async move { Ok(answer.into_bytes()) })
    }
}

/// Which node, and which process of it, answers at `addr`. Nothing there, or a build that
/// does not know the question, is no answer.
async fn who_answers(store: &Store, addr: &str) -> Option<(u64, u64)> {
    let answer = store.call_app(addr, NODE_ID_METHOD, Vec::new()).await.ok()?;
    let text = String::from_utf8(answer).ok()?;
    let (id, instance) = text.split_once(' ')?;
    Some((id.parse().ok()?, instance.parse().ok()?))
}

/// Whether the node at `addr` says it is node `id`.
pub(crate) async fn answers_as(store: &Store, addr: &str, id: u64) -> bool {
    who_answers(store, addr).await.is_some_and(|(answered, _)| answered == id)
}

#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// The cluster refused this node: fix --cluster-name or the cluster secret.
    #[error("join refused: {0}")]
    Refused(String),
}

/// Keeps this node in the cluster until shutdown: initialises a new cluster when
/// `bootstrap`, joins through gossip when it is not (or no longer) a member.
///
/// `seed_cluster_addrs` are the --join hosts with the default cluster port: if gossip
/// finds nobody for a while (a wrong --cluster-name makes gossip ignore us silently),
/// the node asks those directly, and a refusal then names the real reason.
pub async fn keep_membership(
    store: Store,
    peers: Arc<dyn PeerView>,
    bootstrap: bool,
    seed_cluster_addrs: Vec<String>,
    mut shutdown: Shutdown,
) -> Result<(), JoinError> {
    if bootstrap && !store.is_member() {
        match store.initialize().await {
            Ok(true) => {
                tracing::info!(node_id = store.id(), "initialised a new one-node cluster");
                // Raft reports the new membership a moment later: until then this node would
                // think itself no member and look for a cluster to join.
                let id = store.id();
                let mut metrics = store.metrics();
                let reported = metrics.wait_for(|m| m.membership_config.membership().nodes().any(|(n, _)| *n == id));
                let _ = tokio::time::timeout(Duration::from_secs(2), reported).await;
            }
            Ok(false) => {}
            Err(e) => tracing::error!(error = %e, "could not initialise the cluster"),
        }
    }
    let mut waiting_logged = false;
    let started = std::time::Instant::now();
    // Asking members that answer with errors (none listening at a --join address, a
    // cluster without quorum) again every tick would fill the log: such attempts back
    // off. Waiting for gossip to find someone to ask does not.
    let mut retry_in = JOIN_RETRY_FIRST;
    let mut next_attempt = started;
    loop {
        let seen = peers.peers();
        // A restarted voter holds its campaigns while this is true and no leader reaches it.
        store.report_leader_elsewhere(live_leader_elsewhere(store.id(), &seen));
        // Not `status().leader`: a restarted node's last committed vote names a leader that
        // may no longer count it as a member and never writes to it.
        let leaderless_for = store.leader_contact_age().unwrap_or_else(|| started.elapsed());
        if needs_join(&store, &seen, leaderless_for) && std::time::Instant::now() >= next_attempt {
            let mut attempt = try_join(&store, &seen).await?;
            if attempt != Attempt::Joined && started.elapsed() > SEED_FALLBACK_AFTER {
                attempt = attempt.or(try_addrs(&store, seed_cluster_addrs.iter().map(String::as_str), true).await?);
            }
            match attempt {
                Attempt::Joined => {
                    tracing::info!(node_id = store.id(), "join accepted");
                    waiting_logged = false;
                    retry_in = JOIN_RETRY_FIRST;
                }
                Attempt::NobodyToAsk if !waiting_logged => {
                    tracing::info!("waiting for gossip to find a cluster member to join through");
                    waiting_logged = true;
                }
                Attempt::NobodyToAsk => {}
                Attempt::Failed => {
                    tracing::info!(retry_in = ?retry_in, "no member could add this node; asking again later");
                    next_attempt = std::time::Instant::now() + retry_in;
                    retry_in = (retry_in * 2).min(JOIN_RETRY_MAX);
                }
            }
        }
        tokio::select! {
            _ = shutdown.wait() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_millis(300)) => {}
        }
    }
}

/// The first wait after a join that every member asked refused or failed, doubling up to
/// the most.
const JOIN_RETRY_FIRST: Duration = Duration::from_millis(500);
const JOIN_RETRY_MAX: Duration = Duration::from_secs(15);

/// What asking to join came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    Joined,
    /// Nobody to ask yet (gossip has found no member).
    NobodyToAsk,
    /// Everyone asked failed to answer (a refusal ends the node instead).
    Failed,
}

impl Attempt {
    /// The better of two attempts made one after the other.
    fn or(self, other: Attempt) -> Attempt {
        match (self, other) {
            (Attempt::Joined, _) | (_, Attempt::Joined) => Attempt::Joined,
            (Attempt::Failed, _) | (_, Attempt::Failed) => Attempt::Failed,
            _ => Attempt::NobodyToAsk,
        }
    }
}

/// How long a node may go without knowing a leader, while gossip shows one, before it
/// asks to join again: a node removed while it was away hears from no leader.
const LEADERLESS_REJOIN_AFTER: Duration = Duration::from_secs(3);

/// Not in its own view of the membership, or cut off from a leader that gossip sees
/// alive (removed while away, its own membership is stale). Joining is idempotent, so a
/// member that only lost contact for a moment loses nothing by asking.
fn needs_join(store: &Store, peers: &[PeerInfo], leaderless_for: Duration) -> bool {
    if !store.members().contains_key(&store.id()) {
        return true;
    }
    leaderless_for > LEADERLESS_REJOIN_AFTER && live_leader_elsewhere(store.id(), peers)
}

/// Gossip shows another node, alive and not leaving, that says it leads.
fn live_leader_elsewhere(me: u64, peers: &[PeerInfo]) -> bool {
    peers.iter().any(|p| p.node_id != me && p.alive && !p.left && p.get(meta::ROLE) == Some("leader"))
}

/// How long gossip may find nobody before the seeds' cluster ports are asked directly.
const SEED_FALLBACK_AFTER: Duration = Duration::from_secs(3);

/// Asks live members, leader first, to add this node.
async fn try_join(store: &Store, peers: &[PeerInfo]) -> Result<Attempt, JoinError> {
    let mut candidates: Vec<&PeerInfo> =
        peers.iter().filter(|p| p.node_id != store.id() && p.alive && !p.left && p.get(meta::CLUSTER_ADDR).is_some()).collect();
    candidates.sort_by_key(|p| p.get(meta::ROLE) != Some("leader"));
    // Gossip is not authenticated: an address it gives that refuses our credentials may
    // be anyone's, so its refusal does not stop this node. Only the seeds' does.
    try_addrs(store, candidates.into_iter().filter_map(|p| p.get(meta::CLUSTER_ADDR)), false).await
}

/// Asks each address in turn; with `refusals_final`, a refusal of our credentials (a wrong
/// --cluster-name or secret) stops the node with the reason.
async fn try_addrs<'a>(store: &Store, addrs: impl Iterator<Item = &'a str>, refusals_final: bool) -> Result<Attempt, JoinError> {
    let body = serde_json::to_vec(&JoinRequest { node_id: store.id(), node: store.node(), protocol: gatehouse_raft::PROTOCOL, instance: *INSTANCE })
        .expect("plain struct serializes");
    let mut tried = false;
    for addr in addrs {
        match store.call_app(addr, JOIN_METHOD, body.clone()).await {
            Ok(_) => return Ok(Attempt::Joined),
            Err(StoreError::PeerRefused(msg)) if refusals_final => return Err(JoinError::Refused(format!("{addr}: {msg}"))),
            // The cluster said no for a reason that asking again will not change.
            Err(StoreError::Remote(msg)) if msg.starts_with(REFUSAL) => {
                return Err(JoinError::Refused(format!("{addr}: {}", &msg[REFUSAL.len()..])));
            }
            Err(e) => tracing::warn!(peer = addr, error = %e, "join attempt failed"),
        }
        tried = true;
    }
    Ok(if tried { Attempt::Failed } else { Attempt::NobodyToAsk })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_node_older_than_what_the_cluster_agreed_on_may_not_join() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::ratelimit::limiter::tests::store(&dir, true).await;
        let handler = JoinHandler { store: store.clone() };
        let me = store.id();
        // This node asking again to join as what it is: it is a member already.
        let request = |protocol: Option<u32>| {
            let mut body = serde_json::json!({ "node_id": me, "node": store.node() });
            if let Some(protocol) = protocol {
                body["protocol"] = protocol.into();
            }
            serde_json::to_vec(&body).unwrap()
        };
        assert_eq!(handler.call(me, JOIN_METHOD.into(), request(None)).await, Ok(Vec::new()), "no agreement yet: any protocol");
        agreement::put_record(&store, gatehouse_raft::PROTOCOL_FIRST_SLICES).await.unwrap();
        let refused = handler.call(me, JOIN_METHOD.into(), request(None)).await.unwrap_err();
        assert!(refused.contains("reads Raft protocol 0, older than the cluster's 3"), "{refused}");
        let refused = handler.call(me, JOIN_METHOD.into(), request(Some(2))).await.unwrap_err();
        assert!(refused.contains("protocol 2"), "{refused}");
        assert_eq!(handler.call(me, JOIN_METHOD.into(), request(Some(gatehouse_raft::PROTOCOL))).await, Ok(Vec::new()));
        store.shutdown().await;
    }

    /// A second process with a live member's id (a copied data dir) may not take the id
    /// over; a member that moved, whose old address answers no more, may.
    #[tokio::test]
    async fn a_join_under_a_live_members_id_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::ratelimit::limiter::tests::store(&dir, true).await;
        let calls = super::super::calls::ClusterCalls::default()
            .with(JOIN_METHOD, Arc::new(JoinHandler { store: store.clone() }))
            .with(NODE_ID_METHOD, Arc::new(NodeIdHandler { id: store.id() }));
        store.set_app_handler(Arc::new(calls));
        let handler = JoinHandler { store: store.clone() };
        let request = |id: u64, addr: &str| serde_json::to_vec(&serde_json::json!({ "node_id": id, "node": RaftNode::new(addr), "protocol": gatehouse_raft::PROTOCOL })).unwrap();

        let me = store.id();
        // This very process, reachable at an address it is recorded under: not refused.
        let mut same_process: serde_json::Value = serde_json::from_slice(&request(me, "127.0.0.1:1")).unwrap();
        same_process["instance"] = (*INSTANCE).into();
        assert_eq!(handler.call(me, JOIN_METHOD.into(), serde_json::to_vec(&same_process).unwrap()).await, Ok(Vec::new()));
        let refused = handler.call(me, JOIN_METHOD.into(), request(me, "127.0.0.1:1")).await.unwrap_err();
        assert!(refused.contains(&format!("node id {me} is in use by the member at {}", store.node().addr)), "{refused}");
        assert_eq!(store.members()[&me], store.node(), "the member keeps its address");

        // Nothing answers at the address recorded for 999 (the discard port): not refused.
        store.add_learner(999, RaftNode::new("127.0.0.1:9")).await.unwrap();
        assert_eq!(handler.call(999, JOIN_METHOD.into(), request(999, "127.0.0.1:19")).await, Ok(Vec::new()));
        store.shutdown().await;
    }
}
