//! Everything a store needs to start, with defaults and the rules that keep it sane.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::types::NodeId;

#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// This member's Raft id; unique in the cluster, stable across restarts.
    pub node_id: NodeId,
    /// Where the cluster port listens (Raft, forwarding, the layer above's calls).
    pub listen: SocketAddr,
    /// `host:port` peers use to reach `listen`; empty means `listen` itself.
    pub advertise: String,
    /// Extra member data recorded in the Raft membership (for example the admin address).
    pub meta: BTreeMap<String, String>,
    /// The sled database lives here.
    pub data_dir: PathBuf,
    /// Peers with another name are refused, so two clusters on one network cannot mix.
    pub cluster_name: String,
    /// Shared by every member; proves a peer belongs to the cluster. Required off loopback.
    pub secret: Vec<u8>,
    /// How often a leader tells followers it is alive.
    pub heartbeat: Duration,
    /// A follower that hears nothing for a random time in this range starts an election.
    /// Wide and well above the heartbeat, so a loaded 2-core machine does not hold
    /// spurious elections.
    pub election_timeout: (Duration, Duration),
    /// Build a snapshot (and allow log purge) after this many applied entries.
    pub snapshot_after_logs: u64,
    /// Entries kept in the log behind a snapshot, so a slightly lagging follower catches
    /// up from the log rather than by snapshot.
    pub logs_kept_after_snapshot: u64,
    /// Recent changes kept in memory for watchers that resume from a revision.
    pub watch_history: usize,
    /// How long a write, a membership change or a linearizable read may wait for a
    /// leader and its answer.
    pub request_timeout: Duration,
    /// How long to wait for a TCP connection (and its handshake) to a peer.
    pub connect_timeout: Duration,
    /// A restarted voter that has not heard from a leader does not campaign for this long:
    /// a live leader reaches it first, or the layer above reports one (see `restart_hold`).
    pub restart_grace: Duration,
    /// How long at most a restarted voter holds its campaigns while a live leader is
    /// reported elsewhere and none reaches it.
    pub restart_hold_limit: Duration,
}

impl StoreConfig {
    pub fn new(node_id: NodeId, listen: SocketAddr, data_dir: impl Into<PathBuf>) -> Self {
        StoreConfig {
            node_id,
            listen,
            advertise: String::new(),
            meta: BTreeMap::new(),
            data_dir: data_dir.into(),
            cluster_name: "gatehouse".into(),
            secret: Vec::new(),
            heartbeat: Duration::from_millis(100),
            election_timeout: (Duration::from_millis(300), Duration::from_millis(600)),
            snapshot_after_logs: 5000,
            logs_kept_after_snapshot: 1000,
            watch_history: 10_000,
            request_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_millis(500),
            restart_grace: Duration::from_secs(2),
            restart_hold_limit: Duration::from_secs(10),
        }
    }

    /// The address peers are told to use.
    pub fn advertised(&self) -> String {
        if self.advertise.is_empty() { self.listen.to_string() } else { self.advertise.clone() }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.secret.is_empty() && !self.listen.ip().is_loopback() {
            return Err(ConfigError::SecretRequired { listen: self.listen });
        }
        if self.cluster_name.is_empty() {
            return Err(ConfigError::Invalid("the cluster name must not be empty".into()));
        }
        let (min, max) = self.election_timeout;
        if min >= max {
            return Err(ConfigError::Invalid(format!("election timeout range {min:?}..{max:?} is empty")));
        }
        if self.heartbeat * 2 >= min {
            return Err(ConfigError::Invalid(format!(
                "heartbeat {:?} must be under half the minimum election timeout {min:?}",
                self.heartbeat
            )));
        }
        if self.restart_grace > self.restart_hold_limit {
            return Err(ConfigError::Invalid(format!(
                "restart grace {:?} must not exceed the restart hold limit {:?}",
                self.restart_grace, self.restart_hold_limit
            )));
        }
        if self.snapshot_after_logs == 0 {
            return Err(ConfigError::Invalid("snapshot_after_logs must be at least 1".into()));
        }
        if self.watch_history == 0 {
            return Err(ConfigError::Invalid("watch_history must be at least 1".into()));
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// Set a cluster secret, or listen on a loopback address.
    #[error("the cluster port {listen} is not on loopback: set a cluster secret (--cluster-secret or --cluster-secret-file)")]
    SecretRequired { listen: SocketAddr },
    #[error("{0}")]
    Invalid(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> StoreConfig {
        StoreConfig::new(1, "127.0.0.1:8005".parse().unwrap(), "/tmp/x")
    }

    #[test]
    fn defaults_are_valid() {
        assert_eq!(base().validate(), Ok(()));
    }

    #[test]
    fn a_public_cluster_port_needs_a_secret() {
        let mut c = base();
        c.listen = "10.0.0.1:8005".parse().unwrap();
        assert!(matches!(c.validate(), Err(ConfigError::SecretRequired { .. })));
        c.secret = b"s3cret".to_vec();
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn heartbeat_must_be_well_under_the_election_timeout() {
        let mut c = base();
        c.heartbeat = Duration::from_millis(300);
        assert!(c.validate().is_err());
    }

    #[test]
    fn election_range_must_not_be_empty() {
        let mut c = base();
        c.election_timeout = (Duration::from_millis(900), Duration::from_millis(900));
        assert!(c.validate().is_err());
    }

    #[test]
    fn cluster_name_and_counts_must_be_set() {
        let mut c = base();
        c.cluster_name.clear();
        assert!(c.validate().is_err());
        let mut c = base();
        c.snapshot_after_logs = 0;
        assert!(c.validate().is_err());
        let mut c = base();
        c.watch_history = 0;
        assert!(c.validate().is_err());
    }

    #[test]
    fn advertised_address_defaults_to_listen() {
        let mut c = base();
        assert_eq!(c.advertised(), "127.0.0.1:8005");
        c.advertise = "node1:8005".into();
        assert_eq!(c.advertised(), "node1:8005");
    }
}
