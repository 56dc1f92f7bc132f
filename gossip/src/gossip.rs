//! The running gossip node: starts chitchat on UDP, keeps the published member list
//! current, and publishes, leaves and stops on request.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chitchat::transport::UdpTransport;
use chitchat::{
    spawn_chitchat, Chitchat, ChitchatConfig, ChitchatHandle, ChitchatId, NodeState,
    ProtocolVersion,
};
use tokio::sync::{watch, Mutex};
use tokio::task::JoinHandle;
use tokio::time::{timeout_at, Instant, MissedTickBehavior};
use tracing::{debug, error, info, warn};

use crate::config::validate_meta;
use crate::contact::Contacts;
use crate::member::{left_seen_key, members_of, KEY_LEFT, KEY_META_PREFIX, KEY_READY};
use crate::published::{LiveCount, Published};
use crate::{GossipConfig, GossipError, Member};

/// How long deleted keys (and departure acknowledgements) are kept before being
/// forgotten. Past it, a peer that missed a deletion is resent the whole state.
const TOMBSTONE_GRACE: Duration = Duration::from_secs(3600);

/// How [`Gossip::leave`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaveOutcome {
    /// This live peer confirmed it saw the departure; the others learn it from it.
    Acknowledged {
        /// The node id of the first peer that confirmed.
        by: u64,
    },
    /// There was no other live member to tell.
    Alone,
    /// No peer confirmed within `leave_timeout` (partitioned, or peers too slow): they
    /// will report this node dead rather than left.
    TimedOut,
}

/// A running gossip member.
///
/// Membership is read without waiting: [`Gossip::members`] and [`Gossip::live_members`]
/// return the latest list, and [`Gossip::watch`] wakes the caller each time that list
/// changes (a join, a death, a departure, a meta change); [`crate::diff`] turns two
/// successive lists into events. Should the gossip server fail (its socket broke), every
/// peer is published dead, since this node hears nobody any more, and
/// [`Gossip::shutdown`] returns the reason. Dropping a `Gossip` stops it without leaving.
pub struct Gossip {
    config: GossipConfig,
    contacts: Contacts,
    /// Chitchat's state, shared with its server task; a tokio mutex because chitchat
    /// hands it out that way. Never held across our own awaits.
    chitchat: Arc<Mutex<Chitchat>>,
    handle: ChitchatHandle,
    /// The latest member list; the sender keeps the value readable even with no receiver.
    members: Arc<Published>,
    refresher: JoinHandle<()>,
    stop: watch::Sender<bool>,
}

impl Gossip {
    /// Validates `config`, binds its UDP listen address and starts gossiping with the
    /// seeds. Returns once the socket is bound; joining happens in the background as soon
    /// as a seed answers (watch [`Gossip::members`] to see it happen).
    ///
    /// Datagrams are sent from the bound socket, so they leave from `listen`: a firewall
    /// rule between two node addresses cuts exactly that link. (With an unspecified
    /// `listen` such as 0.0.0.0 the kernel picks the source address per route.)
    pub async fn start(config: GossipConfig) -> Result<Gossip, GossipError> {
        config.validate()?;
        let chitchat_id = ChitchatId::new(
            config.node_id.to_string(),
            config.generation,
            config.advertise_addr(),
        );
        let chitchat_config = ChitchatConfig {
            chitchat_id,
            cluster_id: config.cluster_name.clone(),
            gossip_interval: config.gossip_interval,
            listen_addr: config.listen,
            seed_nodes: config.seeds.clone(),
            failure_detector_config: config.failure_detector(),
            marked_for_deletion_grace_period: TOMBSTONE_GRACE,
            catchup_callback: None,
            extra_liveness_predicate: None,
            // V1 compresses digests; ours stay small and V0 is readable by every
            // chitchat release a rolling upgrade might meet.
            protocol_version: ProtocolVersion::V0,
        };
        let mut initial: Vec<(String, String)> = config
            .meta
            .iter()
            .map(|(key, value)| (format!("{KEY_META_PREFIX}{key}"), value.clone()))
            .collect();
        // Last, so that peers holding it also hold the meta (keys travel in version order).
        initial.push((KEY_READY.to_string(), "1".to_string()));

        let handle = spawn_chitchat(chitchat_config, initial, &UdpTransport)
            .await
            .map_err(|err| GossipError::from_start(config.listen, err))?;
        let chitchat = handle.chitchat();
        let (first, live_nodes) = {
            let guard = chitchat.lock().await;
            (members_of(&guard), guard.live_nodes_watcher())
        };
        let members = Published::new(first);
        let (stop, stop_rx) = watch::channel(false);
        let contacts = Contacts::default();
        let refresher = Refresher {
            node_id: config.node_id,
            contacts: contacts.clone(),
            chitchat: chitchat.clone(),
            members: members.clone(),
            live_nodes,
            stop: stop_rx,
            server_ended: Box::pin(handle.termination_watcher()),
            interval: config.gossip_interval,
        };
        let refresher = tokio::spawn(refresher.run());
        info!(node_id = config.node_id, generation = config.generation,
              listen = %config.listen, seeds = ?config.seeds, "gossip started");
        Ok(Gossip {
            contacts,
            config,
            chitchat,
            handle,
            members,
            refresher,
            stop,
        })
    }

    /// This node's id.
    pub fn node_id(&self) -> u64 {
        self.config.node_id
    }

    /// This run's generation.
    pub fn generation(&self) -> u64 {
        self.config.generation
    }

    /// The address peers gossip with this node at.
    pub fn gossip_addr(&self) -> SocketAddr {
        self.config.advertise_addr()
    }

    /// How long ago this node last heard from `node_id` (its gossip heartbeat moved),
    /// on this node's clock; None if never.
    pub fn last_contact(&self, node_id: u64) -> Option<Duration> {
        self.contacts.since(node_id)
    }

    /// A handle answering `last_contact` that outlives borrows of this `Gossip`.
    pub fn contacts(&self) -> Contacts {
        self.contacts.clone()
    }

    /// Every known node, this one included, one entry per node id (the newest
    /// generation), alive or not, sorted by node id. Dead nodes are listed until
    /// `forget_dead_after`.
    pub fn members(&self) -> Vec<Member> {
        self.members.list().borrow().clone()
    }

    /// The members that are alive and not leaving ([`Member::is_live`]).
    pub fn live_members(&self) -> Vec<Member> {
        self.members
            .list()
            .borrow()
            .iter()
            .filter(|m| m.is_live())
            .cloned()
            .collect()
    }

    /// A receiver of the member list (same content as [`Gossip::members`]), marked
    /// changed on every change. Use `changed().await` then `borrow_and_update()`; a
    /// reader that falls behind skips to the newest list rather than queueing. It reports
    /// an error from `changed()` once this `Gossip` has stopped.
    pub fn watch(&self) -> watch::Receiver<Vec<Member>> {
        self.members.list().subscribe()
    }

    /// The count of live members, kept with the list: cheaper than [`Gossip::live_members`].
    pub fn live_count(&self) -> LiveCount {
        LiveCount(self.members.clone())
    }

    /// Publishes (or replaces) one of this node's key-values; peers see it within a few
    /// gossip rounds, this node's own [`Gossip::members`] at once.
    pub async fn set_meta(&self, key: &str, value: &str) -> Result<(), GossipError> {
        validate_meta(key, value)?;
        let mut guard = self.chitchat.lock().await;
        guard
            .self_node_state()
            .set(format!("{KEY_META_PREFIX}{key}"), value);
        self.members.publish(members_of(&guard));
        Ok(())
    }

    /// Withdraws one of this node's key-values (no-op if it was not set).
    pub async fn remove_meta(&self, key: &str) {
        let chitchat_key = format!("{KEY_META_PREFIX}{key}");
        let mut guard = self.chitchat.lock().await;
        let state = guard.self_node_state();
        if state.get(&chitchat_key).is_some() {
            state.delete(&chitchat_key);
            self.members.publish(members_of(&guard));
        }
    }

    /// Announces a deliberate departure, waits (at most `leave_timeout`) until one live
    /// peer confirms it saw it, then stops. Peers then list this node `left: true`.
    pub async fn leave(self) -> Result<LeaveOutcome, GossipError> {
        let deadline = Instant::now() + self.config.leave_timeout;
        let my_key = left_seen_key(self.config.node_id, self.config.generation);
        let mut changes = {
            let mut guard = self.chitchat.lock().await;
            guard.self_node_state().set(KEY_LEFT, "1");
            self.members.publish(members_of(&guard));
            guard.live_nodes_watcher()
        };
        // A confirmation changes the peer's state, which wakes `changes`.
        let outcome = loop {
            let (peers, confirmed_by) = {
                let guard = self.chitchat.lock().await;
                let me = guard.self_chitchat_id().clone();
                let mut peers = 0;
                let mut confirmed_by = None;
                for id in guard.live_nodes().filter(|id| **id != me) {
                    let Some(state) = guard.node_state(id) else {
                        continue;
                    };
                    if state.get(KEY_READY).is_none() || state.get(KEY_LEFT).is_some() {
                        continue;
                    }
                    peers += 1;
                    if state.get(&my_key).is_some() {
                        confirmed_by = id.node_id.parse::<u64>().ok();
                    }
                }
                (peers, confirmed_by)
            };
            if let Some(by) = confirmed_by {
                break LeaveOutcome::Acknowledged { by };
            }
            if peers == 0 {
                break LeaveOutcome::Alone;
            }
            match timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => break LeaveOutcome::TimedOut,
            }
        };
        match outcome {
            LeaveOutcome::TimedOut => warn!("no peer confirmed the departure in time"),
            _ => info!(?outcome, "departure announced"),
        }
        self.shutdown().await?;
        Ok(outcome)
    }

    /// Stops gossiping (without announcing a departure: peers will see this node die)
    /// and waits for the background tasks to end. An error says why the gossip server
    /// had already failed.
    pub async fn shutdown(self) -> Result<(), GossipError> {
        let _ = self.stop.send(true);
        if let Err(err) = self.refresher.await {
            error!(%err, "member refresher panicked");
        }
        self.handle
            .shutdown()
            .await
            .map_err(|err| GossipError::Server(format!("{err:#}")))?;
        debug!(node_id = self.config.node_id, "gossip stopped");
        Ok(())
    }
}

/// Confirms each departure this node sees by writing the key the leaver waits for.
fn confirm_departures(chitchat: &mut Chitchat, members: &[Member]) {
    let me = chitchat.self_chitchat_id().clone();
    for m in members
        .iter()
        .filter(|m| m.left && m.node_id.to_string() != *me.node_id)
    {
        let key = left_seen_key(m.node_id, m.generation);
        let state = chitchat.self_node_state();
        if state.get(&key).is_none() {
            // Expires with the tombstones: by then the leaver is long gone.
            state.set_with_ttl(key, "1");
        }
    }
}

type LiveNodes = watch::Receiver<BTreeMap<ChitchatId, NodeState>>;
type ServerEnded = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

/// The task keeping the published member list current. It rebuilds the list whenever
/// chitchat's live set or a live node's state changes, and once per gossip round for
/// what that signal misses (changes to dead nodes).
struct Refresher {
    node_id: u64,
    contacts: Contacts,
    chitchat: Arc<Mutex<Chitchat>>,
    members: Arc<Published>,
    live_nodes: LiveNodes,
    /// Set (or dropped) by [`Gossip`] to stop the task.
    stop: watch::Receiver<bool>,
    server_ended: ServerEnded,
    interval: Duration,
}

impl Refresher {
    async fn run(mut self) {
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.stop.changed() => return,
                result = &mut self.server_ended => {
                    self.server_stopped(result);
                    return;
                }
                changed = self.live_nodes.changed() => if changed.is_err() { return },
                _ = ticker.tick() => {}
            }
            let fresh = {
                let mut guard = self.chitchat.lock().await;
                self.contacts.observe(&guard);
                let fresh = members_of(&guard);
                confirm_departures(&mut guard, &fresh);
                fresh
            };
            self.members.publish(fresh);
        }
    }

    /// The server ended without being asked to: this node hears nobody any more, so
    /// every peer is published dead rather than left frozen in its last state.
    fn server_stopped(&self, result: anyhow::Result<()>) {
        match result {
            Err(err) => error!(error = %format!("{err:#}"), "gossip server failed"),
            Ok(()) => warn!("gossip server stopped"),
        }
        let mut deaf = self.members.list().borrow().clone();
        for member in deaf.iter_mut().filter(|m| m.node_id != self.node_id) {
            member.alive = false;
        }
        self.members.publish(deaf);
    }
}
