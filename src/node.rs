//! One gatehouse node: opens the replicated store, starts gossip, the Admin API, the
//! proxy and the cluster tasks, and shuts them all down in order on SIGTERM, SIGINT or a
//! leave request (leaving the cluster first when asked to).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use gatehouse_raft::{Store, StoreConfig};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use crate::admin::{expiry, target_health, AdminApi, AdminContext};
use crate::applied::Applied;
use crate::cluster::autopilot::Autopilot;
use crate::cluster::gossip_view::GossipView;
use crate::cluster::peers::{meta, PeerView};
use crate::cluster::agreement::{self, Verdict};
use crate::cluster::protocol::{MembersRead, ProtocolGate};
use crate::ratelimit::slice_lease::SliceLease;
use crate::cluster::calls::ClusterCalls;
use crate::cluster::{identity, join, status};
use crate::config::{StartArgs, CLUSTER_PORT};
use crate::echo::Echo;
use crate::metrics::Metrics;
use crate::plugins::rate_limiting::Limiters;
use crate::proxy::server::{self, Proxy, ProxyHandler};
use crate::proxy::workers;
use crate::proxy::table::ProxyTable;
use crate::ratelimit::limiter::{ClusterLimiter, LiveNodes};
use crate::ratelimit::reserver::{self, Reserver};
use crate::ratelimit::wall_clock;
use arc_swap::ArcSwap;
use crate::http;
use crate::shutdown::ShutdownTrigger;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("data dir {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error(transparent)]
    Store(#[from] gatehouse_raft::StoreError),
    #[error("cannot listen on {what} {addr}: {source}")]
    Listen { what: &'static str, addr: SocketAddr, source: std::io::Error },
    #[error("gossip: {0}")]
    Gossip(String),
    #[error(transparent)]
    Join(#[from] join::JoinError),
}

async fn listen(what: &'static str, addr: SocketAddr) -> Result<TcpListener, NodeError> {
    TcpListener::bind(addr).await.map_err(|source| NodeError::Listen { what, addr, source })
}

/// Runs a node until it is told to stop.
pub async fn run(args: StartArgs) -> Result<(), NodeError> {
    args.validate()?;
    let data_dir = args.data_dir.display().to_string();
    let (node_id, fresh_dir) =
        identity::load_or_create(&args.data_dir).map_err(|source| NodeError::DataDir { path: data_dir.clone(), source })?;
    let host = args.advertise_host();
    let advertised = |port: u16| format!("{host}:{port}");
    let node_meta = BTreeMap::from([
        (meta::ADMIN_ADDR.to_owned(), advertised(args.admin_addr().port())),
        (meta::PROXY_ADDR.to_owned(), advertised(args.proxy_addr().port())),
        (meta::GOSSIP_ADDR.to_owned(), advertised(args.gossip_addr().port())),
    ]);

    // Bind the client-facing ports before anything joins a cluster: a port clash should
    // stop the node before it becomes a member that cannot serve.
    let admin_listener = listen("the Admin API", args.admin_addr()).await?;
    let proxy_listener = listen("the proxy", args.proxy_addr()).await?;

    let mut cfg = StoreConfig::new(node_id, args.cluster_addr(), &args.data_dir);
    cfg.advertise = advertised(args.cluster_addr().port());
    cfg.meta = node_meta.clone();
    cfg.cluster_name = args.cluster_name.clone();
    cfg.secret = args.secret()?.unwrap_or_default().into_bytes();
    cfg.heartbeat = args.raft_heartbeat;
    cfg.election_timeout = (args.raft_election_timeout, args.raft_election_timeout * 2);
    let store = Store::open(cfg).await?;

    // Seeds: the --join addresses, plus every member this node already knows, so a
    // restarted node finds its cluster without --join.
    let mut seeds = args.join_addrs();
    seeds.extend(store.members().values().filter_map(|n| n.meta.get(meta::GOSSIP_ADDR).cloned()));
    seeds.retain(|s| *s != advertised(args.gossip_addr().port()));
    seeds.sort();
    seeds.dedup();
    let mut gossip_meta = node_meta;
    gossip_meta.insert(meta::CLUSTER_ADDR.to_owned(), store.node().addr);
    gossip_meta.insert(meta::VERSION.to_owned(), env!("CARGO_PKG_VERSION").to_owned());
    gossip_meta.insert(meta::PROTOCOL.to_owned(), gatehouse_raft::PROTOCOL.to_string());
    let gossip = GossipView::start(node_id, args.gossip_addr(), advertised(args.gossip_addr().port()), seeds, &args.cluster_name, gossip_meta)
        .await
        .map_err(NodeError::Gossip)?;
    let peers: Arc<dyn PeerView> = gossip.clone();

    let trigger = ShutdownTrigger::new();
    let (leave_tx, mut leave_rx) = mpsc::channel::<oneshot::Sender<Result<(), String>>>(1);
    let applied = Applied::start(store.clone(), trigger.signal());
    let metrics = Arc::new(Metrics::new());
    let reserver = Reserver::start(store.clone(), RESERVE_TIMEOUT, trigger.signal());
    let live_peers = peers.clone();
    let live_nodes: LiveNodes = Arc::new(move || live_peers.live_count().max(1) as u64);
    let lease = SliceLease::open(&args.data_dir, fresh_dir).map_err(|source| NodeError::DataDir { path: data_dir.clone(), source })?;
    let limiters = Limiters { cluster: ClusterLimiter::new(reserver, live_nodes, RESERVE_WAIT, lease.clone()), local: Arc::default() };
    let proxy = Arc::new(Proxy {
        table: ArcSwap::from_pointee(ProxyTable::empty()),
        limiters,
        metrics: metrics.clone(),
        listen_port: args.proxy_addr().port().into(),
        port: args.proxy_addr().port(),
        regexes: Arc::default(),
        serving: tokio::sync::watch::channel(0).0,
    });
    let admin = Arc::new(AdminContext {
        store: store.clone(),
        applied: applied.clone(),
        metrics: metrics.clone(),
        proxy: proxy.clone(),
        peers: peers.clone(),
        cluster_name: args.cluster_name.clone(),
        admin_token: args.admin_token.clone(),
        gui_origins: args.admin_gui_origin.clone(),
        leave: leave_tx,
    });

    // Set before anything joins: until then the cluster port refuses calls, and a joining
    // node asks again.
    let calls = ClusterCalls::default()
        .with(join::JOIN_METHOD, Arc::new(join::JoinHandler { store: store.clone() }))
        .with(join::NODE_ID_METHOD, Arc::new(join::NodeIdHandler { id: store.id() }))
        .with(target_health::METHOD, Arc::new(target_health::VerdictHandler { proxy: proxy.clone() }));
    store.set_app_handler(Arc::new(calls));

    let mut tasks = JoinSet::new();
    tasks.spawn(expiry::sweep_loop(admin.clone(), args.ttl_cleanup_interval, trigger.signal()));
    tasks.spawn(http::serve(admin_listener, Arc::new(AdminApi { ctx: admin }), trigger.signal(), args.drain_timeout, args.client_timeouts(), "admin"));
    tasks.spawn(server::follow_config(proxy.clone(), applied.clone(), trigger.signal()));
    let proxy_handler = Arc::new(ProxyHandler(proxy.clone()));
    let proxy_workers = workers::serve_on_workers(proxy_listener, proxy_handler, args.proxy_workers(), trigger.signal(), args.drain_timeout, args.client_timeouts());
    tasks.spawn(async move {
        if let Err(e) = proxy_workers.await {
            tracing::error!(error = %e, "the proxy workers could not start");
        }
    });
    tasks.spawn(reserver::expire_loop(store.clone(), EXPIRE_EVERY, trigger.signal()));
    tasks.spawn(proxy.limiters.cluster.clone().watch_recalls(trigger.signal()));
    tasks.spawn(sweep_limiters(proxy.clone(), peers.clone(), store.clone(), trigger.signal()));
    tasks.spawn(lease.renew(trigger.signal()));
    let seed_cluster_addrs = args.join_addrs().iter().filter_map(|s| s.rsplit_once(':')).map(|(host, _)| format!("{host}:{CLUSTER_PORT}")).collect();
    let membership = tokio::spawn(join::keep_membership(
        store.clone(),
        peers.clone(),
        args.join.is_empty(),
        seed_cluster_addrs,
        trigger.signal(),
    ));
    tasks.spawn(
        Autopilot { store: store.clone(), peers: peers.clone(), target_voters: args.voters, dead_grace: args.dead_node_grace }
            .run(trigger.signal()),
    );
    tasks.spawn(status::publish_raft_state(store.clone(), peers.clone(), trigger.signal()));
    tracing::info!(node_id, proxy = %args.proxy_addr(), admin = %args.admin_addr(), cluster = %args.cluster_addr(), gossip = %args.gossip_addr(), "node started");

    let mut membership = membership;
    let outcome = loop {
        tokio::select! {
            _ = terminate_signal() => {
                tracing::info!("SIGTERM/SIGINT received; shutting down");
                if args.leave_on_terminate {
                    if let Err(e) = leave(&store, &gossip).await {
                        tracing::error!(error = %e, "could not leave the cluster cleanly");
                    }
                }
                break Ok(());
            }
            Some(reply) = leave_rx.recv() => {
                let result = leave(&store, &gossip).await;
                let left = result.is_ok();
                if let Err(e) = &result {
                    tracing::error!(error = %e, "leave refused; the node keeps running");
                }
                let _ = reply.send(result);
                if left {
                    break Ok(());
                }
            }
            joined = &mut membership => break match joined {
                Ok(Err(e)) => Err(NodeError::from(e)),
                _ => Ok(()),
            },
        }
    };

    trigger.trigger();
    let drain = args.drain_timeout + Duration::from_secs(1);
    if tokio::time::timeout(drain, async { while tasks.join_next().await.is_some() {} }).await.is_err() {
        tracing::warn!(?drain, "some tasks did not stop in time");
    }
    membership.abort();
    gossip.shutdown().await;
    store.shutdown().await;
    tracing::info!("node stopped");
    outcome
}

/// Hands off this node's vote (and leadership: a removed leader steps down) and tells
/// gossip it left on purpose, so the others do not wait for it to come back.
async fn leave(store: &Store, gossip: &GossipView) -> Result<(), String> {
    let voters = store.voters();
    let only_member = store.members().len() == 1 && store.members().contains_key(&store.id());
    if !only_member {
        if voters.len() == 1 && voters.contains(&store.id()) {
            return Err("this node is the only voter; promote another node first".into());
        }
        // The change commits only with a majority of the voters left behind: refuse
        // rather than wedge the cluster in a membership change that cannot finish.
        if voters.contains(&store.id()) {
            let remaining: Vec<u64> = voters.iter().copied().filter(|v| *v != store.id()).collect();
            let peers = gossip.peers();
            let alive = remaining.iter().filter(|v| peers.iter().any(|p| p.node_id == **v && p.alive && !p.left)).count();
            if alive <= remaining.len() / 2 {
                return Err(format!(
                    "only {alive} of the {} remaining voters are alive: leaving now would leave the cluster without a quorum",
                    remaining.len()
                ));
            }
        }
        store.remove_nodes([store.id()].into()).await.map_err(|e| e.to_string())?;
    }
    gossip.leave().await;
    tracing::info!("left the cluster");
    Ok(())
}

/// How long a rate-limit reservation may take before the node falls back to its local share.
const RESERVE_TIMEOUT: Duration = Duration::from_millis(500);
/// How long a request with no local token waits for a reservation.
const RESERVE_WAIT: Duration = Duration::from_millis(250);
/// How often the leader drops counters of ended windows.
const EXPIRE_EVERY: Duration = Duration::from_secs(10);

/// Forgets in-memory counters of ended windows, tells gossip when this node's rate
/// limits enter or leave the local fallback share, and turns first slices on once every
/// member reads their commands and the cluster has recorded so (off again if a member
/// says it reads only older ones).
async fn sweep_limiters(proxy: Arc<Proxy>, peers: Arc<dyn PeerView>, store: Store, mut shutdown: crate::shutdown::Shutdown) {
    let mut published = None;
    let mut rounds = 0u32;
    let mut protocol = ProtocolGate::new(gatehouse_raft::PROTOCOL_FIRST_SLICES);
    let mut putting: Option<tokio::task::JoinHandle<()>> = None;
    loop {
        protocol.observe(&peers.peers());
        let members = store.members();
        let member = members.contains_key(&store.id());
        let heard = protocol.verdict(store.id(), members.into_keys());
        let agreed = agreement::agreed(&store);
        let Verdict { read, put_record } = agreement::verdict(heard, agreed, member);
        if put_record && putting.as_ref().is_none_or(|p| p.is_finished()) {
            // One at a time, off the sweep's path: a lagging node may take a while to see
            // the record another node put, and a quorum may be missing.
            let store = store.clone();
            putting = Some(tokio::spawn(async move {
                if let Err(e) = agreement::put_record(&store, gatehouse_raft::PROTOCOL_FIRST_SLICES).await {
                    tracing::debug!(error = %e, "could not record that every member reads first slices");
                }
            }));
        }
        if read != proxy.limiters.cluster.members_read() {
            if read == MembersRead::Older && agreed {
                tracing::error!("a Raft member says it reads only commands older than the cluster agreed on: it was started on an older binary, which is not supported; upgrade it");
            }
            tracing::info!(?read, "rate limit first slices {}", if read == MembersRead::All { "on: every member reads them" } else { "off" });
            proxy.limiters.cluster.set_members_read(read);
        }
        tokio::select! {
            _ = shutdown.wait() => {
                putting.inspect(|p| p.abort());
                return;
            }
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
        let degraded = proxy.limiters.cluster.degraded();
        if published != Some(degraded) {
            peers.publish(meta::RATELIMIT_DEGRADED, degraded.to_string());
            published = Some(degraded);
        }
        rounds += 1;
        if rounds.is_multiple_of(20) {
            let now = wall_clock::now_ms();
            proxy.limiters.cluster.sweep(now);
            proxy.limiters.local.sweep(now);
        }
    }
}

async fn terminate_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        // Operators send SIGHUP to reload nginx or HAProxy; by default it would kill the
        // process on the spot, with no drain. There is no local configuration to reload.
        let mut hangup = signal(SignalKind::hangup()).expect("SIGHUP handler");
        loop {
            tokio::select! {
                _ = term.recv() => return,
                _ = tokio::signal::ctrl_c() => return,
                _ = hangup.recv() => tracing::info!("SIGHUP ignored: the configuration lives in the cluster and changes through the Admin API; SIGTERM stops the node"),
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// Runs `gatehouse echo` until SIGTERM/SIGINT.
pub async fn run_echo(listen_addr: SocketAddr, name: String) -> Result<(), NodeError> {
    let listener = listen("the echo server", listen_addr).await?;
    let trigger = ShutdownTrigger::new();
    let server = tokio::spawn(http::serve(listener, Echo::new(name), trigger.signal(), Duration::from_secs(5), http::ClientTimeouts::default(), "echo"));
    tracing::info!(%listen_addr, "echo upstream listening");
    terminate_signal().await;
    trigger.trigger();
    let _ = server.await;
    Ok(())
}
