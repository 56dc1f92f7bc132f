//! Watching committed changes: a bounded history of recent events (to resume from a
//! revision) and a broadcast of new ones, filtered by key prefix on the receiving side.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::broadcast;

use crate::types::Event;

/// What a watcher receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// One committed change, in commit order.
    Change(Event),
    /// The whole map was replaced by a snapshot from the leader: rescan the prefix.
    Reset { revision: u64 },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WatchError {
    /// The watcher fell too far behind and events were dropped: take a fresh snapshot
    /// (`Store::snapshot_and_watch`) and continue from its revision.
    #[error("watcher lagged and missed {missed} events; resync from a snapshot")]
    Lagged { missed: u64 },
    /// Changes after `requested` are no longer all in memory: resync from a snapshot.
    #[error("revision {requested} is compacted; the oldest resumable revision is {oldest}")]
    Compacted { requested: u64, oldest: u64 },
    /// The store shut down.
    #[error("the store was shut down")]
    Closed,
}

/// Lives inside the state machine's lock: events are recorded and broadcast while the
/// writer holds it, and subscriptions are made while a reader holds it, so a subscriber
/// never misses an event between its backlog and the live stream.
pub(crate) struct WatchHub {
    tx: broadcast::Sender<Arc<WatchEvent>>,
    /// Each a `WatchEvent::Change`, the same allocation the broadcast's ring holds: the
    /// two keep up to `capacity` recent events each, so copies would double them.
    history: VecDeque<Arc<WatchEvent>>,
    capacity: usize,
    /// Every event with a revision above this one is still in `history`.
    complete_after: u64,
}

impl WatchHub {
    pub(crate) fn new(capacity: usize, revision: u64) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(16));
        WatchHub { tx, history: VecDeque::new(), capacity, complete_after: revision }
    }

    pub(crate) fn publish(&mut self, events: Vec<Event>) {
        for event in events {
            if self.history.len() == self.capacity {
                if let Some(WatchEvent::Change(old)) = self.history.pop_front().as_deref() {
                    // Other events of the same revision may remain, so that revision is
                    // no longer complete either.
                    self.complete_after = old.revision;
                }
            }
            let event = Arc::new(WatchEvent::Change(event));
            self.history.push_back(event.clone());
            // No receivers is fine: nobody is watching.
            let _ = self.tx.send(event);
        }
    }

    /// The map was replaced wholesale: history no longer describes how we got here.
    pub(crate) fn reset(&mut self, revision: u64) {
        self.history.clear();
        self.complete_after = revision;
        let _ = self.tx.send(Arc::new(WatchEvent::Reset { revision }));
    }

    /// A watcher of `prefix` that first replays every change after `after`.
    pub(crate) fn subscribe(&self, prefix: &str, after: u64, current: u64) -> Result<Watcher, WatchError> {
        if after < self.complete_after && after < current {
            return Err(WatchError::Compacted { requested: after, oldest: self.complete_after });
        }
        let backlog = self
            .history
            .iter()
            .filter(|e| matches!(&***e, WatchEvent::Change(c) if c.revision > after && c.key.starts_with(prefix)))
            .map(|e| WatchEvent::clone(e))
            .collect();
        Ok(Watcher { prefix: prefix.to_owned(), backlog, rx: self.tx.subscribe() })
    }
}

/// A stream of the committed changes under one prefix.
pub struct Watcher {
    prefix: String,
    backlog: VecDeque<WatchEvent>,
    rx: broadcast::Receiver<Arc<WatchEvent>>,
}

impl Watcher {
    /// The next change already committed, without waiting: `None` when there is none.
    /// Lets a consumer apply a burst of changes as one batch.
    pub fn try_next(&mut self) -> Option<Result<WatchEvent, WatchError>> {
        if let Some(event) = self.backlog.pop_front() {
            return Some(Ok(event));
        }
        loop {
            match self.rx.try_recv() {
                Ok(event) => match &*event {
                    WatchEvent::Change(e) if !e.key.starts_with(&self.prefix) => continue,
                    other => return Some(Ok(other.clone())),
                },
                Err(broadcast::error::TryRecvError::Empty) => return None,
                Err(broadcast::error::TryRecvError::Lagged(missed)) => return Some(Err(WatchError::Lagged { missed })),
                Err(broadcast::error::TryRecvError::Closed) => return Some(Err(WatchError::Closed)),
            }
        }
    }

    /// The next change under the prefix, waiting for one to be committed.
    pub async fn next(&mut self) -> Result<WatchEvent, WatchError> {
        if let Some(event) = self.backlog.pop_front() {
            return Ok(event);
        }
        loop {
            match self.rx.recv().await {
                Ok(event) => match &*event {
                    WatchEvent::Change(e) if !e.key.starts_with(&self.prefix) => continue,
                    other => return Ok(other.clone()),
                },
                Err(broadcast::error::RecvError::Lagged(missed)) => return Err(WatchError::Lagged { missed }),
                Err(broadcast::error::RecvError::Closed) => return Err(WatchError::Closed),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{EventKind, KeyValue};

    fn put(revision: u64, key: &str) -> Event {
        let kv = KeyValue { value: Arc::from(&[][..]), create_revision: revision, mod_revision: revision, version: 1, expires_at: None };
        Event { revision, key: key.into(), kind: EventKind::Put(kv) }
    }

    #[tokio::test]
    async fn resumes_from_history_then_streams_live_changes() {
        let mut hub = WatchHub::new(8, 0);
        hub.publish(vec![put(1, "a/1"), put(2, "b/1"), put(3, "a/2")]);
        let mut w = hub.subscribe("a/", 1, 3).unwrap();
        hub.publish(vec![put(4, "a/3")]);
        let mut seen = vec![];
        for _ in 0..2 {
            match w.next().await.unwrap() {
                WatchEvent::Change(e) => seen.push(e.revision),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(seen, vec![3, 4]);
        assert!(w.try_next().is_none());
        hub.publish(vec![put(5, "b/2"), put(6, "a/4")]);
        assert!(matches!(w.try_next(), Some(Ok(WatchEvent::Change(e))) if e.revision == 6));
        assert!(w.try_next().is_none());
    }

    #[test]
    fn refuses_to_resume_from_an_evicted_revision() {
        let mut hub = WatchHub::new(2, 0);
        hub.publish(vec![put(1, "a"), put(2, "a"), put(3, "a")]);
        assert!(matches!(hub.subscribe("", 0, 3), Err(WatchError::Compacted { requested: 0, oldest: 1 })));
        assert!(hub.subscribe("", 1, 3).is_ok());
        assert!(hub.subscribe("", 3, 3).is_ok());
    }

    #[tokio::test]
    async fn a_reset_reaches_every_prefix() {
        let mut hub = WatchHub::new(4, 0);
        let mut w = hub.subscribe("x/", 0, 0).unwrap();
        hub.reset(10);
        assert_eq!(w.next().await.unwrap(), WatchEvent::Reset { revision: 10 });
        assert!(matches!(hub.subscribe("", 5, 10), Err(WatchError::Compacted { .. })));
    }
}
