//! The errors this crate returns, each saying what the caller should do about it.

use std::io;
use std::net::SocketAddr;

/// Why a gossip operation failed.
#[derive(Debug, thiserror::Error)]
pub enum GossipError {
    /// A configuration field breaks a rule. Fix the named field (the message says how)
    /// and start again; retrying with the same config fails the same way.
    #[error("invalid gossip config: {field}: {reason}")]
    InvalidConfig {
        /// The offending field of [`crate::GossipConfig`].
        field: &'static str,
        /// The rule it breaks.
        reason: String,
    },

    /// A meta key or value passed to [`crate::Gossip::set_meta`] is not allowed.
    /// Fix the key or value; nothing was published.
    #[error("invalid meta entry {key:?}: {reason}")]
    InvalidMeta {
        /// The key as given.
        key: String,
        /// The rule it breaks.
        reason: String,
    },

    /// Another socket already holds the gossip UDP port on this address (often another
    /// node started with the same `--bind-addr`). Stop that process or choose another
    /// listen address or port.
    #[error("gossip address {addr}/UDP is already in use: another process (or node) holds it")]
    AddrInUse {
        /// The address we tried to bind.
        addr: SocketAddr,
    },

    /// The gossip UDP socket could not be bound for a reason other than a taken port,
    /// e.g. the address is not assigned to this machine or binding needs privileges.
    /// Check the listen address.
    #[error("cannot bind gossip socket {addr}/UDP: {source}")]
    Bind {
        /// The address we tried to bind.
        addr: SocketAddr,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },

    /// Gossip could not start for a reason other than binding (seed resolution, runtime).
    /// The message carries chitchat's explanation; treat it as fatal for this start.
    #[error("gossip failed to start: {0}")]
    Start(String),

    /// The gossip server stopped with an error while running (e.g. its socket broke).
    /// Membership is no longer maintained: restart gossip (a new generation) or the node.
    #[error("gossip server failed: {0}")]
    Server(String),
}

impl GossipError {
    /// Classifies a chitchat start failure: a bind error is found in the error chain
    /// because chitchat wraps the io::Error in context.
    pub(crate) fn from_start(addr: SocketAddr, err: anyhow::Error) -> Self {
        let io_err = err
            .chain()
            .find_map(|cause| cause.downcast_ref::<io::Error>());
        match io_err {
            Some(e) if e.kind() == io::ErrorKind::AddrInUse => GossipError::AddrInUse { addr },
            Some(e) => GossipError::Bind {
                addr,
                source: io::Error::new(e.kind(), e.to_string()),
            },
            None => GossipError::Start(format!("{err:#}")),
        }
    }
}
