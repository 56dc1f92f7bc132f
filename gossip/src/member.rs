//! What a member is, how chitchat's per-generation node states become one member per
//! node id, and how two member lists differ (the events the layer above reacts to).

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;

use chitchat::{Chitchat, ChitchatId};

/// Prefix of the chitchat keys that carry user meta (`meta.cluster_addr`, ...), so
/// user keys can never collide with the keys this crate reserves.
pub(crate) const KEY_META_PREFIX: &str = "meta.";
/// Written last at start: a node state holding it also holds the initial meta, because
/// chitchat ships a node's keys in version order. States without it are not listed.
pub(crate) const KEY_READY: &str = "sys.ready";
/// Present once the node announced a deliberate departure.
pub(crate) const KEY_LEFT: &str = "sys.left";
/// A peer writes `sys.left_seen.<node_id>.<generation>` in its own state once it saw
/// that node's departure; the leaving node waits for one such key.
pub(crate) const KEY_LEFT_SEEN_PREFIX: &str = "sys.left_seen.";

pub(crate) fn left_seen_key(node_id: u64, generation: u64) -> String {
    format!("{KEY_LEFT_SEEN_PREFIX}{node_id}.{generation}")
}

/// One node of the cluster as this node currently sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The node's stable id.
    pub node_id: u64,
    /// The run of the node this entry describes; only the newest known is listed.
    pub generation: u64,
    /// Where the node gossips (its advertised UDP address).
    pub gossip_addr: SocketAddr,
    /// The key-values the node published (see [`crate::Gossip::set_meta`]).
    pub meta: BTreeMap<String, String>,
    /// The failure detector hears from it. Always true for this node itself.
    pub alive: bool,
    /// It announced a deliberate departure ([`crate::Gossip::leave`]). A member that left
    /// and went silent is `alive: false, left: true`; one silent without leaving is
    /// `alive: false, left: false` (it crashed or is cut off).
    pub left: bool,
}

impl Member {
    /// Alive and not leaving: a member to route to, replicate to, or count on.
    pub fn is_live(&self) -> bool {
        self.alive && !self.left
    }
}

/// A change between two member lists, as computed by [`diff`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberEvent {
    /// A node became live: it joined, came back, or restarted (a new generation shows
    /// as `Up` even without a `Down` before it).
    Up(Member),
    /// A live node went silent without leaving (or was forgotten while live).
    Down(u64),
    /// A node announced it is leaving.
    Left(u64),
    /// A live node changed its meta.
    Updated(Member),
}

/// The events that turn `old` into `new` (both as returned by [`crate::Gossip::members`]),
/// in node id order. Feed it successive values of [`crate::Gossip::watch`].
pub fn diff(old: &[Member], new: &[Member]) -> Vec<MemberEvent> {
    let old_by_id: BTreeMap<u64, &Member> = old.iter().map(|m| (m.node_id, m)).collect();
    let mut events = Vec::new();
    for member in new {
        let before = old_by_id.get(&member.node_id).copied();
        let same_run = before.filter(|b| b.generation == member.generation);
        let was_live = before.is_some_and(Member::is_live);
        let was_left = same_run.is_some_and(|b| b.left);
        if member.left {
            if !was_left {
                events.push(MemberEvent::Left(member.node_id));
            }
        } else if member.alive {
            match same_run {
                Some(b) if b.is_live() && b.meta != member.meta => {
                    events.push(MemberEvent::Updated(member.clone()))
                }
                Some(b) if b.is_live() => {}
                _ => events.push(MemberEvent::Up(member.clone())),
            }
        } else if was_live {
            events.push(MemberEvent::Down(member.node_id));
        }
    }
    let new_ids: HashSet<u64> = new.iter().map(|m| m.node_id).collect();
    for member in old {
        if !new_ids.contains(&member.node_id) && member.is_live() {
            events.push(MemberEvent::Down(member.node_id));
        }
    }
    events.sort_by_key(|event| match event {
        MemberEvent::Up(m) | MemberEvent::Updated(m) => m.node_id,
        MemberEvent::Down(id) | MemberEvent::Left(id) => *id,
    });
    events
}

/// Builds the member list from chitchat's state: one entry per node id, a live generation
/// over a dead one, else the newest, this node's own generation always winning for its
/// id. (Live first: a process that gossiped under a running member's id for a moment,
/// and is gone, must not make the member look dead.)
pub(crate) fn members_of(chitchat: &Chitchat) -> Vec<Member> {
    let live: HashSet<&ChitchatId> = chitchat.live_nodes().collect();
    let candidates = chitchat
        .node_states()
        .iter()
        .filter_map(|(id, state)| member_from(id, state.key_values(), live.contains(id)));
    newest_per_node(candidates, chitchat.self_chitchat_id())
}

/// Reads one chitchat node state; `None` for states not (yet) complete or not ours.
fn member_from<'a>(
    id: &ChitchatId,
    key_values: impl Iterator<Item = (&'a str, &'a str)>,
    alive: bool,
) -> Option<Member> {
    let node_id = id.node_id.parse::<u64>().ok()?;
    let mut ready = false;
    let mut left = false;
    let mut meta = BTreeMap::new();
    for (key, value) in key_values {
        if let Some(user_key) = key.strip_prefix(KEY_META_PREFIX) {
            meta.insert(user_key.to_string(), value.to_string());
        } else if key == KEY_READY {
            ready = true;
        } else if key == KEY_LEFT {
            left = true;
        }
    }
    ready.then_some(Member {
        node_id,
        generation: id.generation_id,
        gossip_addr: id.gossip_advertise_addr,
        meta,
        alive,
        left,
    })
}

fn newest_per_node(candidates: impl Iterator<Item = Member>, me: &ChitchatId) -> Vec<Member> {
    let my_id = me.node_id.parse::<u64>().ok();
    let is_me = |m: &Member| Some(m.node_id) == my_id && m.generation == me.generation_id;
    let mut by_id: BTreeMap<u64, Member> = BTreeMap::new();
    for candidate in candidates {
        let replace = match by_id.get(&candidate.node_id) {
            None => true,
            // Peers may still gossip an older run of this very node; it must never
            // shadow the running one, whatever the clocks said about generations.
            Some(kept) if is_me(kept) => false,
            Some(kept) => is_me(&candidate) || (candidate.alive, candidate.generation) > (kept.alive, kept.generation),
        };
        if replace {
            by_id.insert(candidate.node_id, candidate);
        }
    }
    by_id.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(node: &str, generation: u64) -> ChitchatId {
        ChitchatId::new(node, generation, "127.0.0.1:7946".parse().unwrap())
    }

    fn member(node_id: u64, generation: u64, alive: bool, left: bool) -> Member {
        Member {
            node_id,
            generation,
            gossip_addr: "127.0.0.1:7946".parse().unwrap(),
            meta: BTreeMap::new(),
            alive,
            left,
        }
    }

    #[test]
    fn a_state_is_listed_once_ready_with_its_meta_unprefixed() {
        let kvs = [("meta.proxy_addr", "127.0.0.1:8000"), ("sys.ready", "1")];
        let m = member_from(&id("7", 3), kvs.into_iter(), true).unwrap();
        assert_eq!(
            (m.node_id, m.generation, m.alive, m.left),
            (7, 3, true, false)
        );
        assert_eq!(
            m.meta.get("proxy_addr").map(String::as_str),
            Some("127.0.0.1:8000")
        );
        assert!(member_from(&id("7", 3), [("meta.a", "b")].into_iter(), true).is_none());
        assert!(member_from(&id("x", 3), [("sys.ready", "1")].into_iter(), true).is_none());
        let left = member_from(
            &id("7", 3),
            [("sys.ready", "1"), ("sys.left", "1")].into_iter(),
            false,
        );
        assert!(left.is_some_and(|m| m.left && !m.alive));
    }

    #[test]
    fn newest_generation_wins_but_never_over_self() {
        let me = id("1", 50);
        let members = newest_per_node(
            [
                member(2, 10, false, false),
                member(2, 20, true, false),
                member(2, 15, false, false),
                member(1, 50, true, false),
                // An older run of this node with a clock that ran ahead.
                member(1, 90, false, false),
            ]
            .into_iter(),
            &me,
        );
        let seen: Vec<(u64, u64)> = members.iter().map(|m| (m.node_id, m.generation)).collect();
        assert_eq!(seen, vec![(1, 50), (2, 20)]);
    }

    /// Another process gossiped under node 2's id (a newer generation) and is gone: node 2's
    /// running generation is what the list shows. With both dead, the newest.
    #[test]
    fn a_live_generation_wins_over_a_newer_dead_one() {
        let me = id("1", 50);
        let members = newest_per_node([member(2, 20, true, false), member(2, 30, false, false), member(3, 5, false, false), member(3, 7, false, false)].into_iter(), &me);
        let seen: Vec<(u64, u64, bool)> = members.iter().map(|m| (m.node_id, m.generation, m.alive)).collect();
        assert_eq!(seen, vec![(2, 20, true), (3, 7, false)]);
    }

    #[test]
    fn diff_reports_joins_deaths_departures_and_updates() {
        let mut updated = member(3, 1, true, false);
        updated.meta.insert("role".into(), "voter".into());
        let old = vec![
            member(1, 1, true, false),
            member(2, 1, true, false),
            member(3, 1, true, false),
        ];
        let new = vec![
            member(1, 1, false, false),
            member(2, 1, true, true),
            updated.clone(),
            member(4, 1, true, false),
        ];
        assert_eq!(
            diff(&old, &new),
            vec![
                MemberEvent::Down(1),
                MemberEvent::Left(2),
                MemberEvent::Updated(updated),
                MemberEvent::Up(member(4, 1, true, false)),
            ]
        );
        assert!(diff(&new, &new).is_empty());
    }

    #[test]
    fn diff_treats_a_new_generation_as_up_and_a_silent_leaver_as_nothing_new() {
        let old = vec![member(1, 1, true, false), member(2, 1, true, true)];
        let new = vec![member(1, 2, true, false), member(2, 1, false, true)];
        assert_eq!(
            diff(&old, &new),
            vec![MemberEvent::Up(member(1, 2, true, false))]
        );
        assert_eq!(diff(&old, &[]), vec![MemberEvent::Down(1)]);
        assert!(diff(&[], &[member(5, 1, false, false)]).is_empty());
    }
}
