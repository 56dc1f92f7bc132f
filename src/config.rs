//! `gatehouse start`'s configuration: one typed struct, read from a `--config` TOML file,
//! then `GATEHOUSE_*` environment variables, then flags (later ones win), and validated.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, FromArgMatches};
use serde::{Deserialize, Serialize};

pub const PROXY_PORT: u16 = 8000;
pub const ADMIN_PORT: u16 = 8001;
pub const CLUSTER_PORT: u16 = 8005;
pub const GOSSIP_PORT: u16 = 7946;

/// Flags of `gatehouse start`. Every flag can also come from `GATEHOUSE_<FLAG>` or from the
/// `--config` file under its flag name (`bind-addr = "127.0.0.2"`).
#[derive(Debug, Clone, Args, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct StartArgs {
    /// TOML file with any of these flags; environment and flags override it.
    #[arg(long, env = "GATEHOUSE_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address every listener binds to unless its own flag says otherwise.
    #[arg(long, env = "GATEHOUSE_BIND_ADDR", default_value = "127.0.0.1")]
    pub bind_addr: IpAddr,
    /// Address other nodes and clients are told to use for this node (defaults to
    /// --bind-addr; required when binding 0.0.0.0).
    #[arg(long, env = "GATEHOUSE_ADVERTISE_ADDR")]
    pub advertise_addr: Option<String>,
    /// Proxy listener [default: <bind-addr>:8000].
    #[arg(long, env = "GATEHOUSE_PROXY_LISTEN")]
    pub proxy_listen: Option<SocketAddr>,
    /// Admin API listener [default: <bind-addr>:8001].
    #[arg(long, env = "GATEHOUSE_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,
    /// Cluster RPC listener: Raft, forwarding, join [default: <bind-addr>:8005].
    #[arg(long, env = "GATEHOUSE_CLUSTER_LISTEN")]
    pub cluster_listen: Option<SocketAddr>,
    /// Gossip listener, UDP [default: <bind-addr>:7946].
    #[arg(long, env = "GATEHOUSE_GOSSIP_LISTEN")]
    pub gossip_listen: Option<SocketAddr>,
    /// Gossip address of any live member, HOST[:PORT] (port 7946 by default); repeatable,
    /// or comma-separated in the environment.
    #[arg(long, env = "GATEHOUSE_JOIN", value_delimiter = ',')]
    #[serde(default, deserialize_with = "one_or_many")]
    pub join: Vec<String>,
    /// Where this node keeps its Raft log, snapshots and identity.
    #[arg(long, env = "GATEHOUSE_DATA_DIR", default_value = "./gatehouse-data")]
    pub data_dir: PathBuf,
    /// Nodes of another cluster name are refused.
    #[arg(long, env = "GATEHOUSE_CLUSTER_NAME", default_value = "gatehouse")]
    pub cluster_name: String,
    /// Shared secret authenticating every internode RPC; required off loopback.
    #[arg(long, env = "GATEHOUSE_CLUSTER_SECRET", hide_env_values = true)]
    pub cluster_secret: Option<String>,
    /// File holding the cluster secret (trailing whitespace ignored).
    #[arg(long, env = "GATEHOUSE_CLUSTER_SECRET_FILE")]
    pub cluster_secret_file: Option<PathBuf>,
    /// Target number of voting members (odd); further nodes stay non-voting learners.
    #[arg(long, env = "GATEHOUSE_VOTERS", default_value_t = 3)]
    pub voters: usize,
    /// How long gossip must report a voter dead before it is replaced by a learner.
    #[arg(long, env = "GATEHOUSE_DEAD_NODE_GRACE", default_value = "30s", value_parser = parse_duration)]
    #[serde(with = "humantime_serde_compat")]
    pub dead_node_grace: Duration,
    /// How often the leader deletes credentials past their ttl (reads hide them at once).
    #[arg(long, env = "GATEHOUSE_TTL_CLEANUP_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    #[serde(with = "humantime_serde_compat")]
    pub ttl_cleanup_interval: Duration,
    /// On SIGTERM, leave the cluster (hand off leadership and voting) before exiting.
    /// (In the environment, also 1/0, yes/no, on/off.)
    #[arg(long, env = "GATEHOUSE_LEAVE_ON_TERMINATE", value_parser = clap::builder::BoolishValueParser::new())]
    #[serde(default)]
    pub leave_on_terminate: bool,
    /// Bearer token the Admin API requires; required when it is not on loopback.
    #[arg(long, env = "GATEHOUSE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Origins whose web pages may call the Admin API (Kong's admin_gui_origin), repeated
    /// or comma-separated; none by default, so no page elsewhere can read it.
    #[arg(long, env = "GATEHOUSE_ADMIN_GUI_ORIGIN", value_delimiter = ',')]
    #[serde(default, deserialize_with = "one_or_many")]
    pub admin_gui_origin: Vec<String>,
    /// Proxy worker threads, each with its own event loop [default: one per usable core].
    #[arg(long, env = "GATEHOUSE_PROXY_WORKERS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub proxy_workers: Option<u16>,
    /// How long in-flight requests may take to finish on shutdown.
    #[arg(long, env = "GATEHOUSE_DRAIN_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    #[serde(with = "humantime_serde_compat")]
    pub drain_timeout: Duration,
    /// How long an idle client connection stays open between requests (nginx's
    /// keepalive_timeout).
    #[arg(long, env = "GATEHOUSE_CLIENT_KEEPALIVE_TIMEOUT", default_value = "75s", value_parser = parse_duration)]
    #[serde(with = "humantime_serde_compat")]
    pub client_keepalive_timeout: Duration,
    /// How long a client may take to send a request's head once it has begun, and a new
    /// connection to send its first (nginx's client_header_timeout).
    #[arg(long, env = "GATEHOUSE_CLIENT_HEADER_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    #[serde(with = "humantime_serde_compat")]
    pub client_header_timeout: Duration,
    /// How long a response may wait for the client to read any of it (nginx's
    /// send_timeout).
    #[arg(long, env = "GATEHOUSE_CLIENT_SEND_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    #[serde(with = "humantime_serde_compat")]
    pub client_send_timeout: Duration,
    /// Raft heartbeat interval.
    #[arg(long, env = "GATEHOUSE_RAFT_HEARTBEAT", default_value = "100ms", value_parser = parse_duration)]
    #[serde(with = "humantime_serde_compat")]
    pub raft_heartbeat: Duration,
    /// Minimum Raft election timeout (the maximum is twice this).
    #[arg(long, env = "GATEHOUSE_RAFT_ELECTION_TIMEOUT", default_value = "300ms", value_parser = parse_duration)]
    #[serde(with = "humantime_serde_compat")]
    pub raft_election_timeout: Duration,
    /// Log filter, as RUST_LOG: a level, and target=level pairs (e.g. "info,gatehouse=debug").
    #[arg(long, env = "GATEHOUSE_LOG", default_value = "info")]
    pub log: String,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (write e.g. 500ms, 30s, 2m)"))
}

/// Durations as humantime strings ("30s") in the TOML file and in the overlay.
mod humantime_serde_compat {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
}

impl StartArgs {
    /// Overlays the `--config` file under whatever the environment and flags did not set.
    pub fn from_matches(matches: &ArgMatches) -> Result<StartArgs, ConfigError> {
        let args = StartArgs::from_arg_matches(matches).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let Some(path) = args.config.clone() else { return Ok(args) };
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read { path: path.clone(), source })?;
        let file: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::Parse { path: path.clone(), message: e.to_string() })?;
        let mut merged = serde_json::to_value(&args).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let known = StartArgs::augment_args(clap::Command::new("start"));
        for (key, value) in file {
            let id = key.replace('-', "_");
            if known.get_arguments().all(|a| a.get_id().as_str() != id) || key == "config" {
                return Err(ConfigError::Parse { path, message: format!("unknown setting {key:?}") });
            }
            let set_elsewhere = matches!(matches.value_source(&id), Some(ValueSource::CommandLine | ValueSource::EnvVariable));
            if !set_elsewhere {
                merged[key.as_str()] = serde_json::to_value(value).map_err(|e| ConfigError::Invalid(e.to_string()))?;
            }
        }
        let mut out: StartArgs =
            serde_json::from_value(merged).map_err(|e| ConfigError::Parse { path: path.clone(), message: e.to_string() })?;
        out.config = Some(path);
        Ok(out)
    }

    pub fn client_timeouts(&self) -> crate::http::ClientTimeouts {
        crate::http::ClientTimeouts { keepalive: self.client_keepalive_timeout, header: self.client_header_timeout, send: self.client_send_timeout }
    }

    pub fn proxy_workers(&self) -> usize {
        self.proxy_workers.map_or_else(crate::proxy::workers::default_count, usize::from)
    }

    pub fn proxy_addr(&self) -> SocketAddr {
        self.proxy_listen.unwrap_or(SocketAddr::new(self.bind_addr, PROXY_PORT))
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_listen.unwrap_or(SocketAddr::new(self.bind_addr, ADMIN_PORT))
    }

    pub fn cluster_addr(&self) -> SocketAddr {
        self.cluster_listen.unwrap_or(SocketAddr::new(self.bind_addr, CLUSTER_PORT))
    }

    pub fn gossip_addr(&self) -> SocketAddr {
        self.gossip_listen.unwrap_or(SocketAddr::new(self.bind_addr, GOSSIP_PORT))
    }

    /// The host other nodes use to reach this one.
    pub fn advertise_host(&self) -> String {
        self.advertise_addr.clone().unwrap_or_else(|| self.bind_addr.to_string())
    }

    /// Seeds as `host:port`, with the default gossip port where none was given.
    pub fn join_addrs(&self) -> Vec<String> {
        self.join
            .iter()
            .map(|j| j.trim())
            .filter(|j| !j.is_empty())
            .map(|j| with_default_port(j, GOSSIP_PORT))
            .collect()
    }

    /// The cluster secret from the flag or the file (the flag wins).
    pub fn secret(&self) -> Result<Option<String>, ConfigError> {
        if let Some(s) = &self.cluster_secret {
            return Ok(Some(s.clone()));
        }
        match &self.cluster_secret_file {
            None => Ok(None),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.clone(), source })?;
                Ok(Some(text.trim_end().to_string()))
            }
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if self.voters == 0 || self.voters.is_multiple_of(2) {
            return invalid(format!("--voters must be odd (1, 3, 5, ...), got {}", self.voters));
        }
        if self.ttl_cleanup_interval.is_zero() {
            return invalid("--ttl-cleanup-interval must be above zero".into());
        }
        let secret = self.secret()?;
        if secret.as_deref().is_some_and(str::is_empty) {
            return invalid("the cluster secret is empty".into());
        }
        if secret.is_none() && !self.cluster_addr().ip().is_loopback() {
            return invalid(format!(
                "the cluster port {} is not on loopback: set --cluster-secret or --cluster-secret-file",
                self.cluster_addr()
            ));
        }
        if self.admin_token.is_none() && !self.admin_addr().ip().is_loopback() {
            return invalid(format!("the Admin API {} is not on loopback: set --admin-token", self.admin_addr()));
        }
        if let Some(bad) = self.admin_gui_origin.iter().find(|o| !is_origin(o)) {
            return invalid(format!("--admin-gui-origin {bad:?} is not an origin (scheme://host[:port], as a browser sends it)"));
        }
        if self.bind_addr.is_unspecified() && self.advertise_addr.is_none() {
            return invalid("--bind-addr 0.0.0.0 needs --advertise-addr (the address other nodes use)".into());
        }
        if self.cluster_name.is_empty() {
            return invalid("--cluster-name must not be empty".into());
        }
        for (flag, value) in [("--client-keepalive-timeout", self.client_keepalive_timeout), ("--client-header-timeout", self.client_header_timeout), ("--client-send-timeout", self.client_send_timeout)] {
            if value.is_zero() {
                return invalid(format!("{flag} must be more than 0 (it would close every connection at once)"));
            }
        }
        if self.raft_heartbeat * 2 >= self.raft_election_timeout {
            return invalid("--raft-heartbeat must be under half of --raft-election-timeout".into());
        }
        check_log_filter(&self.log).or_else(|why| invalid(format!("--log {:?}: {why}", self.log)))
    }
}

const LOG_LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

/// A log filter in RUST_LOG's syntax, stricter: a directive without `=` must be a level.
/// RUST_LOG reads a bare word as a target, so `warning` would have shown nothing at all.
fn check_log_filter(filter: &str) -> Result<(), String> {
    let is_level = |l: &str| LOG_LEVELS.iter().any(|level| level.eq_ignore_ascii_case(l.trim()));
    for directive in comma_items(filter) {
        let level = directive.rsplit_once('=').map_or(directive, |(_, level)| level);
        if !is_level(level) {
            return Err(format!("{level:?} is not a level ({}); a target takes one as target=level", LOG_LEVELS.join(", ")));
        }
    }
    tracing_subscriber::EnvFilter::builder().parse(log_filter(filter)).map(|_| ()).map_err(|e| e.to_string())
}

/// `filter` as tracing reads it: without the spaces a person may put after commas.
pub fn log_filter(filter: &str) -> String {
    comma_items(filter).collect::<Vec<_>>().join(",")
}

/// The items of a comma-separated list, trimmed, empty ones left out.
fn comma_items(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim).filter(|item| !item.is_empty())
}

/// `addr` with `port` where it names none: `host`, `host:port`, `[v6]`, `[v6]:port`, or a
/// bare IPv6 address (which takes brackets).
pub fn with_default_port(addr: &str, port: u16) -> String {
    if has_port(addr) {
        addr.to_owned()
    } else if addr.matches(':').count() > 1 && !addr.starts_with('[') {
        format!("[{addr}]:{port}")
    } else {
        format!("{addr}:{port}")
    }
}

fn has_port(addr: &str) -> bool {
    if addr.starts_with('[') {
        return addr.contains("]:");
    }
    addr.matches(':').count() == 1
}

/// A list in the config file, or one string of comma-separated items as the environment
/// takes it: `join = "10.0.0.1"` as well as `join = ["10.0.0.1", "10.0.0.2"]`.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => comma_items(&s).map(str::to_owned).collect(),
        OneOrMany::Many(v) => v,
    })
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;

/// Whether `text` is an origin as a browser writes it: http(s), a host, maybe a port,
/// and nothing after.
fn is_origin(text: &str) -> bool {
    let Some(rest) = text.strip_prefix("https://").or_else(|| text.strip_prefix("http://")) else { return false };
    let port_ok = |u: &hyper::Uri| match u.authority().and_then(|a| a.as_str().rsplit_once(':')) {
        Some((_, port)) if !port.ends_with(']') => port.parse::<u16>().is_ok_and(|p| p != 0),
        _ => true,
    };
    !rest.is_empty() && !rest.contains(['/', '?', '#', '@', ' ']) && text.parse::<hyper::Uri>().is_ok_and(|u| u.authority().is_some() && port_ok(&u))
}
