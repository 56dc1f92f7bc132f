//! `Store::open`: opens the data dir, starts Raft, the cluster port and the tasks that
//! steer elections, and waits for Raft to report what it loaded.

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use openraft::SnapshotPolicy;
use rand::RngExt;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::{Inner, Store};
use crate::batcher;
use crate::config::StoreConfig;
use crate::elections::{Gates, LongerLogSeen};
use crate::error::StoreError;
use crate::log_store::LogStore;
use crate::network::server::{self, Server};
use crate::network::{AppHandler, Credentials, Network, PeerContacts, Transport};
use crate::pre_vote::{self, Judge};
use crate::restart_hold::{LeaderContact, RestartHold};
use crate::state_machine::StateMachine;
use crate::types::Raft;

/// What sled may keep in memory of its files. Its default is 1 GiB.
const SLED_CACHE_BYTES: u64 = 16 << 20;
/// How long `open` waits for Raft to report the state it loaded (it takes milliseconds).
const STARTUP_REPORT: Duration = Duration::from_secs(10);

impl Store {
    /// Opens (or creates) the store in `cfg.data_dir` and starts serving the cluster port.
    /// A new store is not part of any cluster until `initialize` or a leader adds it.
    pub async fn open(cfg: StoreConfig) -> Result<Store, StoreError> {
        cfg.validate()?;
        let path = cfg.data_dir.join("raft");
        let db = sled::Config::new()
            .path(&path)
            // Flushes are explicit at every durability point; sled's timer flush is only a backstop.
            .flush_every_ms(Some(1000))
            // sled would otherwise cache up to 1 GiB, keeping every whole-map snapshot it
            // writes: the map itself is in memory already (KvState), and the log entries
            // read back are the recent ones.
            .cache_capacity(SLED_CACHE_BYTES)
            .open()
            .map_err(|source| match &source {
                // sled says so only in words: it takes an exclusive lock on its file.
                sled::Error::Io(e) if e.to_string().contains("could not acquire lock") => StoreError::InUse { path: cfg.data_dir.display().to_string() },
                _ => StoreError::Open { path: path.display().to_string(), source },
            })?;
        let log_store = LogStore::open(&db).map_err(|source| StoreError::Open { path: path.display().to_string(), source })?;
        let sm = StateMachine::open(&db, cfg.watch_history)?;

        let listener = TcpListener::bind(cfg.listen)
            .await
            .map_err(|source| StoreError::Bind { addr: cfg.listen.to_string(), source })?;
        let cluster_addr = listener.local_addr().map_err(|source| StoreError::Bind { addr: cfg.listen.to_string(), source })?;

        let creds = Credentials { cluster: cfg.cluster_name.clone(), secret: cfg.secret.clone(), node_id: cfg.node_id };
        let transport = Arc::new(Transport::new(creds.clone(), Some(cfg.listen.ip()), cfg.connect_timeout));
        let raft_config = openraft::Config {
            cluster_name: cfg.cluster_name.clone(),
            heartbeat_interval: cfg.heartbeat.as_millis() as u64,
            election_timeout_min: cfg.election_timeout.0.as_millis() as u64,
            election_timeout_max: cfg.election_timeout.1.as_millis() as u64,
            install_snapshot_timeout: 5_000,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(cfg.snapshot_after_logs),
            max_in_snapshot_log_to_keep: cfg.logs_kept_after_snapshot,
            ..Default::default()
        }
        .validate()
        .map_err(|e| crate::config::ConfigError::Invalid(e.to_string()))?;
        // openraft's election timer ticks every 1.5 heartbeats from here on. Nodes started in
        // the same instant (a script, a test, identical machines booting) would tick in phase,
        // and when their timeouts fall in one tick their elections start in the same
        // millisecond and split; a random start within one tick period sets them apart.
        let leader_contact = Arc::new(LeaderContact::new());
        let longer_logs = Arc::new(LongerLogSeen::default());
        let tick = cfg.heartbeat.mul_f64(1.5);
        tokio::time::sleep(tick.mul_f64(rand::rng().random_range(0.0..1.0))).await;
        let contacts = Arc::new(PeerContacts::default());
        let network = Network { transport: transport.clone(), longer_logs: longer_logs.clone(), contacts: contacts.clone() };
        let raft = Raft::new(cfg.node_id, Arc::new(raft_config), network, log_store, sm.clone())
            .await
            .map_err(|e| StoreError::Uncertain(format!("raft failed to start: {e}")))?;
        // Raft reports what it loaded from disk (the membership above all) in its first
        // metrics, from a task of its own: until then they are empty, and `members()` would
        // tell a restarted node it knows no one (its gossip seeds). Wait for that report.
        let mut loaded = raft.metrics();
        if tokio::time::timeout(STARTUP_REPORT, loaded.changed()).await.is_err() {
            tracing::warn!("raft has not reported its state after {STARTUP_REPORT:?}; the members known may be incomplete");
        }

        let app: Arc<RwLock<Option<Arc<dyn AppHandler>>>> = Arc::default();
        let (shutdown, shutdown_rx) = watch::channel(false);
        // openraft's leader lease is the longest election timeout.
        let lease = cfg.election_timeout.1;
        let judge = Judge { raft: raft.clone(), contact: leader_contact.clone(), lease };
        let server = Arc::new(Server { raft: raft.clone(), creds, app: app.clone(), leader_contact: leader_contact.clone(), pre_vote: judge });
        let leader_elsewhere = watch::Sender::new(false);
        // The grace counts from here, when Raft can first campaign, not from before the wait.
        let hold = RestartHold::new(
            tokio::time::Instant::now(),
            cfg.restart_grace,
            cfg.restart_hold_limit,
            leader_contact.heard(),
            leader_elsewhere.subscribe(),
        );
        let (pre_voted, pre_voted_rx) = watch::channel(false);
        tokio::spawn(pre_vote::keep_asking(raft.clone(), pre_vote::over(transport.clone()), leader_contact.clone(), lease, pre_voted, shutdown_rx.clone()));
        tokio::spawn(crate::elections::break_split_votes(raft.clone(), cfg.election_timeout, Gates { hold, pre_voted: pre_voted_rx }, longer_logs, shutdown_rx.clone()));
        tokio::spawn(crate::leader_log::log_leader_changes(raft.metrics(), shutdown_rx.clone()));
        let server = tokio::spawn(server::run(listener, server, shutdown_rx));
        tracing::info!(node_id = cfg.node_id, cluster_addr = %cluster_addr, "store open");
        let (batch_tx, batch_rx) = tokio::sync::mpsc::unbounded_channel();
        let store = Store {
            inner: Arc::new(Inner {
                cfg,
                raft,
                sm,
                db,
                transport,
                app,
                cluster_addr,
                shutdown,
                server: Mutex::new(Some(server)),
                batches: Mutex::new(Some(batch_tx)),
                batcher: Mutex::new(None),
                leader_contact,
                contacts,
                leader_elsewhere,
            }),
        };
        let task = tokio::spawn(batcher::run(store.clone(), batch_rx));
        *store.inner.batcher.lock().expect("batcher handle lock") = Some(task);
        Ok(store)
    }
}
