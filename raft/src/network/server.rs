//! The incoming side of the cluster port: authenticates each connection, then serves its
//! requests one after another until the peer hangs up or the node shuts down.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::auth::{self, Credentials};
use super::frame;
use super::rpc::{Reply, Request};
use crate::leader;
use crate::pre_vote::{self, Judge};
use crate::restart_hold::LeaderContact;
use crate::types::Raft;

/// How long a peer may take to authenticate before it is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

pub type AppFuture = Pin<Box<dyn Future<Output = Result<Vec<u8>, String>> + Send>>;

/// Serves the layer above's calls on the cluster port (for example join requests).
pub trait AppHandler: Send + Sync + 'static {
    /// `peer` is the caller's node id, proven by the handshake.
    fn call(&self, peer: u64, method: String, body: Vec<u8>) -> AppFuture;
}

pub(crate) struct Server {
    pub raft: Raft,
    pub creds: Credentials,
    pub app: Arc<RwLock<Option<Arc<dyn AppHandler>>>>,
    pub leader_contact: Arc<LeaderContact>,
    pub pre_vote: Judge,
}

/// Accepts connections until `shutdown` turns true, then waits for open ones to finish.
pub(crate) async fn run(listener: TcpListener, server: Arc<Server>, shutdown: watch::Receiver<bool>) {
    let mut conns = JoinSet::new();
    let mut stop = shutdown.clone();
    loop {
        tokio::select! {
            _ = stopped(&mut stop) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    conns.spawn(serve_conn(stream, peer.to_string(), server.clone(), shutdown.clone()));
                }
                Err(e) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!(error = %e, "cluster port accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    while conns.join_next().await.is_some() {}
}

/// Resolves once shutdown is signalled (or its sender is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

async fn serve_conn(mut stream: TcpStream, peer: String, server: Arc<Server>, mut shutdown: watch::Receiver<bool>) {
    let peer_id = match tokio::time::timeout(HANDSHAKE_TIMEOUT, auth::server(&mut stream, &server.creds)).await {
        Ok(Ok(id)) => id,
        Ok(Err(e)) => {
            tracing::warn!(%peer, error = %e, "refused cluster connection");
            return;
        }
        Err(_) => {
            tracing::warn!(%peer, "refused cluster connection: handshake timed out");
            return;
        }
    };
    loop {
        let request: Request = tokio::select! {
            _ = stopped(&mut shutdown) => return,
            read = frame::read(&mut stream) => match read {
                Ok(r) => r,
                Err(e) => {
                    if e.kind() != std::io::ErrorKind::UnexpectedEof {
                        tracing::debug!(%peer, error = %e, "cluster connection closed");
                    }
                    return;
                }
            },
        };
        let reply = dispatch(&server, peer_id, request).await;
        if let Err(e) = frame::write(&mut stream, &reply).await {
            tracing::debug!(%peer, error = %e, "cluster reply not delivered");
            return;
        }
    }
}

async fn dispatch(server: &Server, peer: u64, request: Request) -> Reply {
    match request {
        Request::AppendEntries(rpc) => {
            let reply = server.raft.append_entries(rpc).await;
            // Any answer but a higher vote means this node took the sender as its leader.
            if matches!(&reply, Ok(r) if !matches!(r, openraft::raft::AppendEntriesResponse::HigherVote(_))) {
                server.leader_contact.record();
            }
            Reply::AppendEntries(reply)
        }
        Request::Vote(rpc) => Reply::Vote(server.raft.vote(rpc).await),
        Request::InstallSnapshot(rpc) => {
            let vote = rpc.vote;
            let reply = server.raft.install_snapshot(rpc).await;
            if matches!(&reply, Ok(r) if r.vote == vote) {
                server.leader_contact.record();
            }
            Reply::InstallSnapshot(reply)
        }
        Request::Leader(req) => Reply::Leader(leader::execute(&server.raft, req).await),
        Request::App { method, body } if method == pre_vote::METHOD => Reply::App(server.pre_vote.answer(&body)),
        Request::App { method, body } => {
            let handler = server.app.read().expect("app handler lock poisoned").clone();
            match handler {
                Some(h) => Reply::App(h.call(peer, method, body).await),
                None => Reply::App(Err(format!("no handler for {method:?} on this node yet"))),
            }
        }
    }
}
