//! The outgoing side of the cluster port: a pool of authenticated connections per peer,
//! made from this node's own address (so a firewall rule between two loopback addresses
//! cuts exactly one link), and openraft's network traits on top of it.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest, VoteResponse};
use tokio::net::{TcpSocket, TcpStream};

use super::auth::{self, Credentials, HandshakeError};
use super::frame;
use super::rpc::{Reply, Request};
use crate::elections::LongerLogSeen;
use crate::types::{NodeId, RaftNode, TypeConfig};

/// Idle connections kept per peer; more are opened under load and closed after use.
const MAX_IDLE_PER_PEER: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No connection could be made or authenticated: the request was never sent.
    #[error("cannot reach {addr}: {source}")]
    Unreachable { addr: String, source: io::Error },
    /// The peer refused our credentials (or failed to prove its own): the request was never sent.
    #[error("{addr} refused the connection: {source}")]
    Refused { addr: String, source: HandshakeError },
    /// The request was sent but no reply came in time: it may or may not have taken effect.
    #[error("no reply from {addr} within {timeout:?}")]
    Timeout { addr: String, timeout: Duration },
    /// The connection broke after the request was sent: it may or may not have taken effect.
    #[error("connection to {addr} broke: {source}")]
    Broken { addr: String, source: io::Error },
    /// The peer answered with a reply of the wrong kind: a version mismatch.
    #[error("unexpected reply from {addr}")]
    Unexpected { addr: String },
    /// Another node than the one expected answers at the address (a new node on a lost
    /// member's address): the request was never sent, and it must not stand in for it.
    #[error("{addr} is node {found}, not node {expected}")]
    WrongNode { addr: String, expected: NodeId, found: NodeId },
}

impl CallError {
    /// True when the request certainly did not reach the peer, so resending is safe.
    pub fn never_sent(&self) -> bool {
        matches!(self, CallError::Unreachable { .. } | CallError::Refused { .. } | CallError::WrongNode { .. })
    }
}

/// Connections to every peer, shared by Raft replication, forwarding and app calls.
pub struct Transport {
    creds: Credentials,
    /// Local address outgoing connections are made from (`None`: let the OS pick).
    source_ip: Option<IpAddr>,
    connect_timeout: Duration,
    /// Idle, authenticated connections by peer address, with the node id the peer proved
    /// (none from builds that do not say). Held only to push or pop.
    idle: Mutex<HashMap<String, Vec<(TcpStream, Option<NodeId>)>>>,
}

impl Transport {
    pub fn new(creds: Credentials, source_ip: Option<IpAddr>, connect_timeout: Duration) -> Self {
        Transport { creds, source_ip: source_ip.filter(|ip| !ip.is_unspecified()), connect_timeout, idle: Mutex::new(HashMap::new()) }
    }

    /// Sends one request to `addr` and waits up to `timeout` for its reply.
    pub async fn call(&self, addr: &str, request: &Request, timeout: Duration) -> Result<Reply, CallError> {
        self.call_node(addr, None, request, timeout).await
    }

    /// As `call`, to node `expected` at `addr`: refused, unsent, when the peer there
    /// proves it is another node.
    pub async fn call_node(&self, addr: &str, expected: Option<NodeId>, request: &Request, timeout: Duration) -> Result<Reply, CallError> {
        let (mut stream, peer) = match self.take_idle(addr) {
            Some(conn) => conn,
            None => tokio::time::timeout(self.connect_timeout, self.connect(addr))
                .await
                .map_err(|_| CallError::Unreachable { addr: addr.into(), source: io::ErrorKind::TimedOut.into() })??,
        };
        if let (Some(expected), Some(found)) = (expected, peer) {
            if expected != found {
                return Err(CallError::WrongNode { addr: addr.into(), expected, found });
            }
        }
        let exchange = async {
            frame::write(&mut stream, request).await?;
            frame::read::<_, Reply>(&mut stream).await
        };
        match tokio::time::timeout(timeout, exchange).await {
            Err(_) => Err(CallError::Timeout { addr: addr.into(), timeout }),
            Ok(Err(source)) => Err(CallError::Broken { addr: addr.into(), source }),
            Ok(Ok(reply)) => {
                self.put_idle(addr, (stream, peer));
                Ok(reply)
            }
        }
    }

    async fn connect(&self, addr: &str) -> Result<(TcpStream, Option<NodeId>), CallError> {
        let unreachable = |source: io::Error| CallError::Unreachable { addr: addr.into(), source };
        let target: SocketAddr = match addr.parse() {
            Ok(a) => a,
            Err(_) => tokio::net::lookup_host(addr)
                .await
                .map_err(unreachable)?
                .next()
                .ok_or_else(|| unreachable(io::Error::new(io::ErrorKind::NotFound, "no address")))?,
        };
        let socket = if target.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() }.map_err(unreachable)?;
        if let Some(ip) = self.source_ip.filter(|ip| ip.is_ipv4() == target.is_ipv4()) {
            socket.bind(SocketAddr::new(ip, 0)).map_err(unreachable)?;
        }
        let mut stream = socket.connect(target).await.map_err(unreachable)?;
        stream.set_nodelay(true).map_err(unreachable)?;
        let peer = auth::client(&mut stream, &self.creds).await.map_err(|source| match source {
            HandshakeError::Io(source) => CallError::Unreachable { addr: addr.into(), source },
            source => CallError::Refused { addr: addr.into(), source },
        })?;
        Ok((stream, peer))
    }

    fn take_idle(&self, addr: &str) -> Option<(TcpStream, Option<NodeId>)> {
        let mut idle = self.idle.lock().expect("pool lock poisoned");
        let conns = idle.get_mut(addr)?;
        while let Some((stream, peer)) = conns.pop() {
            // A pooled connection the peer has closed (it restarted) reads as EOF at once;
            // catching it here keeps a dead socket from failing a request.
            let mut probe = [0u8; 1];
            match stream.try_read(&mut probe) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Some((stream, peer)),
                _ => continue,
            }
        }
        None
    }

    fn put_idle(&self, addr: &str, conn: (TcpStream, Option<NodeId>)) {
        let mut idle = self.idle.lock().expect("pool lock poisoned");
        let conns = idle.entry(addr.to_owned()).or_default();
        if conns.len() < MAX_IDLE_PER_PEER {
            conns.push(conn);
        }
    }
}

/// When each peer last answered a Raft call. The leader's heartbeats reach every member
/// several times a second, so this is the leader's own evidence that a member is up,
/// which gossip cannot give: gossip is not authenticated, and a member's gossip can be
/// cut off while its Raft port answers. Raft calls are, with the cluster secret.
#[derive(Debug, Default)]
pub struct PeerContacts(Mutex<HashMap<NodeId, Instant>>);

impl PeerContacts {
    fn record(&self, peer: NodeId) {
        self.0.lock().expect("peer contacts lock poisoned").insert(peer, Instant::now());
    }

    /// How long ago `peer` last answered a Raft call from this node, if it ever did.
    pub fn age(&self, peer: NodeId) -> Option<Duration> {
        self.0.lock().expect("peer contacts lock poisoned").get(&peer).map(Instant::elapsed)
    }
}

/// openraft's factory: one `PeerClient` per replication stream, all sharing the pool.
#[derive(Clone)]
pub struct Network {
    pub transport: Arc<Transport>,
    pub(crate) longer_logs: Arc<LongerLogSeen>,
    pub(crate) contacts: Arc<PeerContacts>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &RaftNode) -> PeerClient {
        PeerClient { transport: self.transport.clone(), target, addr: node.addr.clone(), longer_logs: self.longer_logs.clone(), contacts: self.contacts.clone() }
    }
}

pub struct PeerClient {
    transport: Arc<Transport>,
    target: NodeId,
    addr: String,
    longer_logs: Arc<LongerLogSeen>,
    contacts: Arc<PeerContacts>,
}

impl PeerClient {
    async fn call<E: std::error::Error>(&self, request: Request, option: &RPCOption) -> Result<Reply, RPCError<NodeId, RaftNode, E>> {
        // To the node the membership names at this address, and no other: a new node on
        // a lost member's address would otherwise take its appends and count as it.
        let reply = self.transport.call_node(&self.addr, Some(self.target), &request, option.hard_ttl()).await;
        if reply.is_ok() {
            self.contacts.record(self.target);
        }
        reply.map_err(|e| match e {
            // Unreachable makes openraft back off instead of retrying at once.
            e @ (CallError::Unreachable { .. } | CallError::Refused { .. } | CallError::WrongNode { .. }) => RPCError::Unreachable(Unreachable::new(&e)),
            e => RPCError::Network(NetworkError::new(&e)),
        })
    }

    fn remote<T, E: std::error::Error>(&self, r: Result<T, RaftError<NodeId, E>>) -> Result<T, RPCError<NodeId, RaftNode, RaftError<NodeId, E>>> {
        r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    fn unexpected<E: std::error::Error>(&self) -> RPCError<NodeId, RaftNode, E> {
        RPCError::Network(NetworkError::new(&CallError::Unexpected { addr: self.addr.clone() }))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, RaftNode, RaftError<NodeId>>> {
        match self.call(Request::AppendEntries(rpc), &option).await? {
            Reply::AppendEntries(r) => self.remote(r),
            _ => Err(self.unexpected()),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RPCError<NodeId, RaftNode, RaftError<NodeId, InstallSnapshotError>>> {
        match self.call(Request::InstallSnapshot(rpc), &option).await? {
            Reply::InstallSnapshot(r) => self.remote(r),
            _ => Err(self.unexpected()),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, RaftNode, RaftError<NodeId>>> {
        let (term, ours) = (rpc.vote.leader_id.term, rpc.last_log_id);
        match self.call(Request::Vote(rpc), &option).await? {
            Reply::Vote(r) => {
                if matches!(&r, Ok(v) if !v.vote_granted && v.last_log_id > ours) {
                    self.longer_logs.record(term);
                }
                self.remote(r)
            }
            _ => Err(self.unexpected()),
        }
    }
}
