//! The one log event the node drops whatever the filter: openraft's error for a failed
//! call to a peer that is down. It comes twice a second for as long as the peer is down,
//! and says nothing the leader's own line ("a member has not answered the leader") does
//! not; openraft's other replication errors (storage, a fatal state) still show.

use std::fmt::Debug;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

pub struct QuietUnreachablePeers;

impl<S: Subscriber> Layer<S> for QuietUnreachablePeers {
    fn event_enabled(&self, event: &Event<'_>, _ctx: Context<'_, S>) -> bool {
        if !event.metadata().target().starts_with("openraft::replication") {
            return true;
        }
        let mut unreachable = Unreachable(false);
        event.record(&mut unreachable);
        !unreachable.0
    }
}

/// Whether any field of an event says a peer was unreachable.
struct Unreachable(bool);

impl Visit for Unreachable {
    fn record_debug(&mut self, _field: &Field, value: &dyn Debug) {
        if !self.0 {
            self.0 = format!("{value:?}").contains("Unreachable");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    /// Counts the events that reach the subscriber below the filter.
    struct Count(Arc<Mutex<Vec<String>>>);

    impl<S: Subscriber> Layer<S> for Count {
        fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
            self.0.lock().unwrap().push(event.metadata().target().to_owned());
        }
    }

    #[test]
    fn only_replication_errors_about_unreachable_peers_are_dropped() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let subscriber = tracing_subscriber::registry().with(QuietUnreachablePeers).with(Count(seen.clone()));
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!(target: "openraft::replication", err = "Unreachable node: 3", "RPCError");
            tracing::error!(target: "openraft::replication", err = "StorageError: disk full", "RPCError");
            tracing::error!(target: "openraft::core", err = "Unreachable node: 3", "while requesting vote");
        });
        assert_eq!(*seen.lock().unwrap(), vec!["openraft::replication", "openraft::core"]);
    }
}
