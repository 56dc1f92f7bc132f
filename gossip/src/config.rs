//! The gossip configuration: one typed struct, its defaults, its validation rules, and
//! how it maps onto chitchat's failure detector.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chitchat::FailureDetectorConfig;

use crate::GossipError;

/// Longest cluster name, meta key and meta value accepted. Every key-value travels in
/// UDP datagrams of at most 64 KiB shared by all nodes' states, so values stay small.
pub const MAX_NAME_LEN: usize = 64;
/// Longest meta value accepted, in bytes.
pub const MAX_META_VALUE_LEN: usize = 1024;

/// How one node takes part in gossip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GossipConfig {
    /// This node's identity, stable across restarts (the layer above uses it as the
    /// Raft node id). Two live nodes must never share it.
    pub node_id: u64,
    /// Distinguishes this run of the node from earlier ones; must grow on each start.
    /// [`GossipConfig::new`] uses the start time in milliseconds.
    pub generation: u64,
    /// UDP address gossip binds to and sends from. Also the address peers are told to
    /// use, unless `advertise` is set. Must name one interface (not 0.0.0.0) unless
    /// `advertise` is set, and a fixed port.
    pub listen: SocketAddr,
    /// Address peers should use when it differs from `listen` (NAT, containers).
    pub advertise: Option<SocketAddr>,
    /// Gossip addresses ("host:port") of nodes to join through; any live member works.
    /// Host names are re-resolved every minute, so a DNS name listing all nodes works.
    /// Empty for the first node of a cluster.
    pub seeds: Vec<String>,
    /// Nodes gossip only with nodes of the same cluster name; others are ignored.
    pub cluster_name: String,
    /// Time between two gossip rounds (default 200 ms).
    pub gossip_interval: Duration,
    /// Upper bound on how long a silent node is still reported alive (default 2 s).
    /// Usually noticed after about three quarters of it.
    pub dead_after: Duration,
    /// How long a dead node stays listed (as dead) before it is forgotten (default 1 h).
    pub forget_dead_after: Duration,
    /// How long [`crate::Gossip::leave`] waits for a peer to see the departure
    /// (default 2 s).
    pub leave_timeout: Duration,
    /// Key-values published from the start (e.g. "cluster_addr", "version").
    pub meta: BTreeMap<String, String>,
}

impl GossipConfig {
    /// A config with the defaults: no seeds, a generation taken from the clock.
    pub fn new(node_id: u64, listen: SocketAddr, cluster_name: impl Into<String>) -> Self {
        GossipConfig {
            node_id,
            generation: generation_from_clock(),
            listen,
            advertise: None,
            seeds: Vec::new(),
            cluster_name: cluster_name.into(),
            gossip_interval: Duration::from_millis(200),
            dead_after: Duration::from_secs(2),
            forget_dead_after: Duration::from_secs(3600),
            leave_timeout: Duration::from_secs(2),
            meta: BTreeMap::new(),
        }
    }

    /// The address peers use to reach this node.
    pub fn advertise_addr(&self) -> SocketAddr {
        self.advertise.unwrap_or(self.listen)
    }

    /// Checks every rule; the error names the first field that breaks one.
    pub fn validate(&self) -> Result<(), GossipError> {
        let invalid =
            |field: &'static str, reason: String| Err(GossipError::InvalidConfig { field, reason });
        if let Err(reason) = check_name(&self.cluster_name) {
            return invalid("cluster_name", reason);
        }
        if self.listen.port() == 0 {
            return invalid("listen", "needs a fixed port: peers must know it".into());
        }
        let advertised = self.advertise_addr();
        let advertise_field = if self.advertise.is_some() {
            "advertise"
        } else {
            "listen"
        };
        if advertised.ip().is_unspecified() {
            return invalid(
                advertise_field,
                format!("{advertised} is not an address peers can reach; set advertise"),
            );
        }
        if advertised.port() == 0 {
            return invalid(advertise_field, "needs a fixed port".into());
        }
        for seed in &self.seeds {
            if let Err(reason) = check_seed(seed) {
                return invalid("seeds", format!("{seed:?}: {reason}"));
            }
        }
        if self.gossip_interval < Duration::from_millis(10)
            || self.gossip_interval > Duration::from_secs(10)
        {
            return invalid("gossip_interval", "must be between 10 ms and 10 s".into());
        }
        // Below five rounds the phi threshold drops under 3: a couple of late datagrams
        // would declare a node dead.
        if self.dead_after < self.gossip_interval * 5 {
            return invalid(
                "dead_after",
                format!(
                    "must be at least 5 gossip intervals ({:?})",
                    self.gossip_interval * 5
                ),
            );
        }
        // Chitchat stops advertising dead nodes after half of this period; below twice
        // dead_after a briefly silent node could be forgotten instead of reported dead.
        if self.forget_dead_after < self.dead_after * 2 {
            return invalid(
                "forget_dead_after",
                "must be at least twice dead_after".into(),
            );
        }
        for (key, value) in &self.meta {
            if let Err(GossipError::InvalidMeta { key, reason }) = validate_meta(key, value) {
                return invalid("meta", format!("{key:?}: {reason}"));
            }
        }
        Ok(())
    }

    /// The phi-accrual detector settings that declare a silent node dead within
    /// `dead_after`. Phi is the silence divided by the mean interval between heartbeats
    /// heard from that node, and liveness is re-evaluated once per gossip round, so a
    /// node is seen dead about `phi_threshold * mean + gossip_interval` after it stops.
    /// The mean is about one gossip interval, but heartbeats relayed through third
    /// nodes in larger clusters arrive less regularly: the threshold leaves a quarter of
    /// the budget for that.
    pub(crate) fn failure_detector(&self) -> FailureDetectorConfig {
        let rounds = self.dead_after.as_secs_f64() / self.gossip_interval.as_secs_f64();
        FailureDetectorConfig {
            phi_threshold: (rounds - 1.0) * 0.75,
            // A short window follows changes in load within seconds.
            sampling_window_size: 100,
            // Longer gaps come from a node that was away: they would inflate the mean.
            max_interval: self.dead_after,
            // Chitchat's 5 s prior would make young nodes take far longer to die.
            initial_interval: self.gossip_interval,
            dead_node_grace_period: self.forget_dead_after,
        }
    }
}

/// Checks one meta entry against the size and character rules.
pub(crate) fn validate_meta(key: &str, value: &str) -> Result<(), GossipError> {
    let reason = match check_name(key) {
        Err(reason) => reason,
        Ok(()) if value.len() > MAX_META_VALUE_LEN => {
            format!(
                "value is {} bytes, at most {MAX_META_VALUE_LEN} allowed",
                value.len()
            )
        }
        Ok(()) => return Ok(()),
    };
    Err(GossipError::InvalidMeta {
        key: key.to_string(),
        reason,
    })
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!("longer than {MAX_NAME_LEN} bytes"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err("only ASCII letters, digits, '.', '_' and '-' are allowed".into());
    }
    Ok(())
}

fn check_seed(seed: &str) -> Result<(), String> {
    let Some((host, port)) = seed.rsplit_once(':') else {
        return Err("expected host:port".into());
    };
    if host.is_empty() {
        return Err("host is empty".into());
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err("port must be a number between 1 and 65535".into()),
        Ok(_) => Ok(()),
    }
}

fn generation_from_clock() -> u64 {
    // A clock before 1970 is a broken machine; generation 1 still starts the node, and
    // a later start with a sane clock supersedes it.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> GossipConfig {
        let mut config = GossipConfig::new(1, "127.0.0.1:7946".parse().unwrap(), "prod");
        config.seeds = vec!["127.0.0.2:7946".into(), "gatehouse.svc:7946".into()];
        config
            .meta
            .insert("cluster_addr".into(), "127.0.0.1:8005".into());
        config
    }

    fn field_of(config: &GossipConfig) -> &'static str {
        match config.validate() {
            Err(GossipError::InvalidConfig { field, .. }) => field,
            other => panic!("expected InvalidConfig, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_valid() {
        valid().validate().unwrap();
        let config = valid();
        assert_eq!(config.gossip_interval, Duration::from_millis(200));
        assert_eq!(config.dead_after, Duration::from_secs(2));
        assert!(
            config.generation > 1_600_000_000_000,
            "generation is a time in ms"
        );
    }

    #[test]
    fn cluster_name_must_be_a_short_plain_name() {
        for bad in ["", "has space", "slash/name", &"x".repeat(MAX_NAME_LEN + 1)] {
            let mut config = valid();
            config.cluster_name = bad.to_string();
            assert_eq!(field_of(&config), "cluster_name", "{bad:?}");
        }
    }

    #[test]
    fn listen_needs_a_fixed_port() {
        let mut config = valid();
        config.listen = "127.0.0.1:0".parse().unwrap();
        assert_eq!(field_of(&config), "listen");
    }

    #[test]
    fn unspecified_listen_needs_advertise() {
        let mut config = valid();
        config.listen = "0.0.0.0:7946".parse().unwrap();
        assert_eq!(field_of(&config), "listen");
        config.advertise = Some("10.0.0.5:7946".parse().unwrap());
        config.validate().unwrap();
    }

    #[test]
    fn advertise_must_be_reachable() {
        let mut config = valid();
        config.advertise = Some("0.0.0.0:7946".parse().unwrap());
        assert_eq!(field_of(&config), "advertise");
        config.advertise = Some("10.0.0.5:0".parse().unwrap());
        assert_eq!(field_of(&config), "advertise");
    }

    #[test]
    fn seeds_must_be_host_and_port() {
        for bad in [
            "127.0.0.2",
            ":7946",
            "host:",
            "host:0",
            "host:70000",
            "host:abc",
        ] {
            let mut config = valid();
            config.seeds.push(bad.to_string());
            assert_eq!(field_of(&config), "seeds", "{bad:?}");
        }
        let mut config = valid();
        config.seeds.push("[::1]:7946".into());
        config.validate().unwrap();
    }

    #[test]
    fn gossip_interval_is_bounded() {
        for bad in [
            Duration::ZERO,
            Duration::from_millis(9),
            Duration::from_secs(11),
        ] {
            let mut config = valid();
            config.gossip_interval = bad;
            config.dead_after = bad * 10;
            config.forget_dead_after = bad * 100;
            assert_eq!(field_of(&config), "gossip_interval", "{bad:?}");
        }
    }

    #[test]
    fn dead_after_spans_five_rounds() {
        let mut config = valid();
        config.dead_after = config.gossip_interval * 4;
        assert_eq!(field_of(&config), "dead_after");
        config.dead_after = config.gossip_interval * 5;
        config.validate().unwrap();
    }

    #[test]
    fn forget_dead_after_is_at_least_twice_dead_after() {
        let mut config = valid();
        config.forget_dead_after = config.dead_after;
        assert_eq!(field_of(&config), "forget_dead_after");
    }

    #[test]
    fn meta_keys_and_values_are_bounded() {
        let mut config = valid();
        config.meta.insert("bad key".into(), "v".into());
        assert_eq!(field_of(&config), "meta");
        let mut config = valid();
        config
            .meta
            .insert("big".into(), "v".repeat(MAX_META_VALUE_LEN + 1));
        assert_eq!(field_of(&config), "meta");
        assert!(validate_meta("", "v").is_err());
        assert!(validate_meta("proxy_addr", "127.0.0.1:8000").is_ok());
    }

    #[test]
    fn failure_detector_keeps_the_dead_after_bound() {
        let detector = valid().failure_detector();
        // 2 s / 200 ms = 10 rounds, one kept for the liveness re-evaluation, then a
        // quarter kept for irregular heartbeats.
        assert!((detector.phi_threshold - 6.75).abs() < 1e-9);
        assert_eq!(detector.initial_interval, Duration::from_millis(200));
        assert_eq!(detector.dead_node_grace_period, Duration::from_secs(3600));
    }
}
