//! The running node's `PeerView`: gatehouse-gossip's member list, read without waiting,
//! and this node's meta published through it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use gatehouse_gossip::{Gossip, GossipConfig, LiveCount, Member};
use tokio::sync::{mpsc, watch, Mutex};

use super::peers::{PeerInfo, PeerView};

pub struct GossipView {
    /// Taken by `leave` or `shutdown`, which consume the gossip handle.
    gossip: Arc<Mutex<Option<Gossip>>>,
    members: watch::Receiver<Vec<Member>>,
    live: LiveCount,
    /// Meta updates, applied in order by one task so a later value never loses to an
    /// earlier one.
    updates: mpsc::UnboundedSender<(String, String)>,
    contacts: gatehouse_gossip::Contacts,
    node_id: u64,
}

impl GossipView {
    pub async fn start(
        node_id: u64,
        listen: SocketAddr,
        advertise: String,
        seeds: Vec<String>,
        cluster_name: &str,
        meta: BTreeMap<String, String>,
    ) -> Result<Arc<GossipView>, String> {
        let mut config = GossipConfig::new(node_id, listen, cluster_name);
        config.advertise = match advertise.parse::<SocketAddr>() {
            Ok(a) if a != listen => Some(a),
            Ok(_) => None,
            Err(_) => Some(
                tokio::net::lookup_host(&advertise)
                    .await
                    .map_err(|e| format!("cannot resolve the advertised address {advertise}: {e}"))?
                    .next()
                    .ok_or_else(|| format!("the advertised address {advertise} resolves to nothing"))?,
            ),
        };
        config.seeds = seeds;
        config.meta = meta;
        let gossip = Gossip::start(config).await.map_err(|e| e.to_string())?;
        let members = gossip.watch();
        let live = gossip.live_count();
        let contacts = gossip.contacts();
        let gossip = Arc::new(Mutex::new(Some(gossip)));
        let (updates, mut rx) = mpsc::unbounded_channel::<(String, String)>();
        let publisher = gossip.clone();
        tokio::spawn(async move {
            while let Some((key, value)) = rx.recv().await {
                let guard = publisher.lock().await;
                // Gone after leave/shutdown: nothing left to publish to.
                let Some(g) = guard.as_ref() else { return };
                if let Err(e) = g.set_meta(&key, &value).await {
                    tracing::warn!(%key, error = %e, "could not publish gossip meta");
                }
            }
        });
        Ok(Arc::new(GossipView { gossip, members, live, updates, contacts, node_id }))
    }

    /// Tells the others this node leaves on purpose, then stops gossiping.
    pub async fn leave(&self) {
        if let Some(gossip) = self.gossip.lock().await.take() {
            match gossip.leave().await {
                Ok(outcome) => tracing::info!(?outcome, "left gossip"),
                Err(e) => tracing::warn!(error = %e, "gossip leave failed"),
            }
        }
    }

    pub async fn shutdown(&self) {
        if let Some(gossip) = self.gossip.lock().await.take() {
            if let Err(e) = gossip.shutdown().await {
                tracing::warn!(error = %e, "gossip stopped with an error");
            }
        }
    }
}

impl PeerView for GossipView {
    fn peers(&self) -> Vec<PeerInfo> {
        self.members
            .borrow()
            .iter()
            .map(|m| PeerInfo {
                node_id: m.node_id,
                alive: m.alive,
                left: m.left,
                meta: m.meta.clone(),
                last_contact_ms: (m.node_id != self.node_id)
                    .then(|| self.contacts.since(m.node_id))
                    .flatten()
                    .map(|d| d.as_millis() as u64),
            })
            .collect()
    }

    fn live_count(&self) -> usize {
        self.live.get()
    }

    fn publish(&self, key: &str, value: String) {
        // Never blocks the caller; fails only once the publisher has stopped.
        let _ = self.updates.send((key.to_owned(), value));
    }
}
