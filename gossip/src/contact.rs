//! When this node last heard from each peer: the moment a peer's gossip heartbeat last
//! moved forward, measured on this node's own clock (so clock skew between machines
//! does not matter).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chitchat::Chitchat;

/// Shared between the refresher, which records, and `Gossip`, which answers.
#[derive(Clone, Default)]
pub struct Contacts {
    /// (node id, generation) → (newest heartbeat seen, when it was first seen): a
    /// restarted node counts its heartbeat from zero again. Held only to update.
    inner: Arc<Mutex<HashMap<(u64, u64), (u64, Instant)>>>,
}

impl Contacts {
    /// Notes every peer whose heartbeat advanced since the last call.
    pub(crate) fn observe(&self, chitchat: &Chitchat) {
        let now = Instant::now();
        let mut seen = self.inner.lock().expect("contacts lock");
        for (id, state) in chitchat.node_states() {
            let Ok(node_id) = id.node_id.parse::<u64>() else { continue };
            let heartbeat = u64::from(state.heartbeat());
            let entry = seen.entry((node_id, id.generation_id)).or_insert((heartbeat, now));
            if heartbeat > entry.0 {
                *entry = (heartbeat, now);
            }
        }
    }

    /// How long ago `node_id` was last heard from; None if never.
    pub fn since(&self, node_id: u64) -> Option<Duration> {
        let seen = self.inner.lock().expect("contacts lock");
        seen.iter().filter(|((id, _), _)| *id == node_id).map(|(_, (_, at))| at.elapsed()).min()
    }
}
