//! The member list as this node publishes it to readers: a watch of the list, and the
//! count of its live members, read with one atomic load. A rate limit sizes its slices by
//! that count on every request, where walking the list under the watch's lock showed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::watch;

use crate::Member;

pub(crate) struct Published {
    list: watch::Sender<Vec<Member>>,
    live: AtomicUsize,
}

impl Published {
    pub(crate) fn new(first: Vec<Member>) -> Arc<Published> {
        let live = AtomicUsize::new(live_in(&first));
        Arc::new(Published { list: watch::Sender::new(first), live })
    }

    pub(crate) fn list(&self) -> &watch::Sender<Vec<Member>> {
        &self.list
    }

    /// Replaces the list only when it differs, so receivers wake on real changes.
    pub(crate) fn publish(&self, fresh: Vec<Member>) {
        self.list.send_if_modified(|current| {
            if *current == fresh {
                return false;
            }
            // Under the watch's lock: two publishers cannot leave a count of the older list.
            self.live.store(live_in(&fresh), Ordering::Relaxed);
            *current = fresh;
            true
        });
    }
}

fn live_in(members: &[Member]) -> usize {
    members.iter().filter(|m| m.is_live()).count()
}

/// How many members are live ([`Member::is_live`]) in the newest published list.
#[derive(Clone)]
pub struct LiveCount(pub(crate) Arc<Published>);

impl LiveCount {
    pub fn get(&self) -> usize {
        self.0.live.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(node_id: u64, alive: bool, left: bool) -> Member {
        Member { node_id, generation: 1, gossip_addr: "127.0.0.1:7946".parse().unwrap(), meta: Default::default(), alive, left }
    }

    #[test]
    fn the_live_count_follows_each_published_list_and_its_watchers_wake_only_on_a_change() {
        let published = Published::new(vec![member(1, true, false), member(2, true, false)]);
        let live = LiveCount(published.clone());
        let mut watcher = published.list().subscribe();
        assert_eq!(live.get(), 2);
        published.publish(vec![member(1, true, false), member(2, false, false), member(3, true, true)]);
        assert_eq!(live.get(), 1);
        assert!(watcher.has_changed().unwrap());
        watcher.borrow_and_update();
        published.publish(vec![member(1, true, false), member(2, false, false), member(3, true, true)]);
        assert!(!watcher.has_changed().unwrap());
        published.publish(vec![member(1, true, false), member(2, true, false), member(3, true, false)]);
        assert_eq!(live.get(), 3);
    }
}
