//! First slices under any interleaving: nodes that decide from stale views of the map,
//! proposals applied in any order or lost, recalls answered or not, processes restarted,
//! nodes whose map lacks the agreement on first slices and reserve with the plain
//! `Reserve`, the cluster agreeing meanwhile. The window never admits more than its
//! limit, and settled slices are handed on.

use proptest::prelude::*;

use super::*;
use crate::types::Command;

#[path = "slices_sim.rs"]
mod sim;
use sim::*;

proptest! {
    #[test]
    fn a_window_never_admits_more_than_its_limit(limit in 1u64..8, want in 1u64..4, steps in proptest::collection::vec(step(false), 0..100)) {
        let mut sim = Sim { want, ..Sim::new(limit) };
        for s in &steps {
            sim.step(s);
            for (key, admitted) in sim.admitted.iter().enumerate() {
                prop_assert!(*admitted <= limit, "{} admitted {} over {} after {:?}", KEYS[key], admitted, limit, steps);
            }
            let state = sim.history.last().unwrap();
            for key in KEYS {
                if let Some(kv) = state.get(key) {
                    let c = Counter::decode(&kv.value).unwrap();
                    prop_assert!(c.charge(limit) <= limit, "{key} charged {} over {limit}", c.charge(limit));
                }
            }
        }
    }

    /// Processes restart and proposals are lost. A restarted process counts its slot as
    /// used whether or not it was (even one at or above the limit, which a larger limit
    /// before may have let it use), so the counter may charge more than was admitted:
    /// only admissions are checked.
    #[test]
    fn restarts_and_lost_proposals_admit_no_more_than_the_limit(limit in 1u64..8, want in 1u64..4, steps in proptest::collection::vec(step(true), 0..100)) {
        let mut sim = Sim { want, ..Sim::new(limit) };
        for s in &steps {
            sim.step(s);
            for (key, admitted) in sim.admitted.iter().enumerate() {
                prop_assert!(*admitted <= limit, "{} admitted {} over {} after {:?}", KEYS[key], admitted, limit, steps);
            }
        }
    }

    /// Nodes whose map lacks the agreement (some of which have not heard every member and
    /// never propose it) reserve with the plain `Reserve`, next to nodes that take first
    /// slices; the cluster agrees during the run, or had before it.
    #[test]
    fn nodes_behind_the_agreement_keep_the_limit(limit in 1u64..8, want in 1u64..4, unheard in proptest::array::uniform3(any::<bool>()), agreed_before in any::<bool>(), steps in proptest::collection::vec(step(true), 0..120)) {
        let sim = if agreed_before { Sim::new(limit) } else { Sim::unagreed([limit; NODES]) };
        let mut sim = Sim { want, unheard, ..sim };
        for s in &steps {
            sim.step(s);
            for (key, admitted) in sim.admitted.iter().enumerate() {
                prop_assert!(*admitted <= limit, "{} admitted {} over {} after {:?}", KEYS[key], admitted, limit, steps);
            }
        }
    }

    /// While changed limits reach the nodes one by one, nodes reserve and take slots
    /// under any of them: the window admits no more than the largest.
    #[test]
    fn unequal_limits_admit_no_more_than_the_largest(limits in proptest::array::uniform3(1u64..8), next_limit in 1u64..8, want in 1u64..4, enrolled in any::<bool>(), steps in proptest::collection::vec(step(false), 0..100)) {
        let mut sim = Sim { want, next_limit, ..Sim::with_limits(limits) };
        if enrolled {
            sim.enroll_all();
        }
        let most = *limits.iter().max().unwrap().max(&next_limit);
        for s in &steps {
            sim.step(s);
            for (key, admitted) in sim.admitted.iter().enumerate() {
                prop_assert!(*admitted <= most, "{} admitted {} over {} after {:?}", KEYS[key], admitted, most, steps);
            }
        }
    }
}

/// Three nodes enrolled; one of them takes every request of a key. It gets the whole
/// limit: the two slices it does not hold are recalled and handed over.
#[test]
fn slices_a_node_never_used_are_recalled_and_granted() {
    let mut sim = Sim::new(5);
    sim.enroll_all();
    assert!(sim.nodes.iter().all(|n| n.slot.is_some()));
    for _ in 0..20 {
        sim.step(&Step::Request(0, 0));
        sim.step(&Step::Commit(0));
        for node in 0..NODES {
            sim.step(&Step::Catch(node));
            sim.step(&Step::AnswerRecalls(node));
            sim.step(&Step::Commit(node));
        }
    }
    assert_eq!(sim.admitted[0], 5);
    let state = sim.history.last().unwrap();
    let counter = Counter::decode(&state.get(KEYS[0]).unwrap().value).unwrap();
    assert_eq!((counter.granted, counter.held(5), counter.holders), (5, 0, 3));
    assert!(state.get(&format!("{RECALL_PREFIX}{}", KEYS[0])).is_none(), "the marker goes once nothing is held");
}

#[test]
fn an_enrolment_made_before_gets_its_slot_back_not_fresh() {
    let mut s = KvState::default();
    let enroll = Command::Enroll { node: 7, window: WINDOW, expires_at: 9 };
    assert!(matches!(s.apply(&enroll, &mut Vec::new()), Response::Enrolled { slot: Some(0), fresh: true, .. }));
    assert!(matches!(s.apply(&enroll, &mut Vec::new()), Response::Enrolled { slot: Some(0), fresh: false, .. }));
}

#[test]
fn a_counter_without_slices_keeps_its_eight_byte_form() {
    let mut s = KvState::default();
    s.apply(&Command::Reserve { key: KEYS[0].into(), want: 2, limit: 5, expires_at: 9 }, &mut Vec::new());
    assert_eq!(crate::kv::decode_counter(&s.get(KEYS[0]).unwrap().value), Some(2));
    assert_eq!(s.get(KEYS[0]).unwrap().value.len(), 8);
}

/// A slot the counter does not hold that says it was used is counted, once: an admission
/// is never lost, whatever let the node take it.
#[test]
fn a_used_slot_the_counter_does_not_hold_is_counted_once() {
    let mut counter = Counter { granted: 3, holders: 2, settled: 0 };
    counter.settle(SlotUse { slot: 2, used: true });
    counter.settle(SlotUse { slot: 2, used: true });
    assert_eq!((counter.granted, counter.held(5)), (4, 2));
    counter.settle(SlotUse { slot: 5, used: false });
    assert_eq!((counter.granted, counter.held(5)), (4, 2), "an unused slot it does not hold changes nothing");
    counter.settle(SlotUse { slot: 0, used: false });
    counter.settle(SlotUse { slot: 0, used: true });
    assert_eq!((counter.granted, counter.held(5)), (4, 1), "settled once, as first said");
}

/// The review's case: node 0 still has the old limit, 2, and makes the counter with two
/// slots; node 2 has the new one, 5, and takes its slot, 2, before it has applied that.
/// Its admission counts when it says so, and the window stays within 5.
#[test]
fn a_slot_taken_under_a_newer_limit_is_counted() {
    let mut sim = Sim::with_limits([2, 5, 5]);
    sim.enroll_all();
    sim.step(&Step::Request(0, 0));
    sim.step(&Step::Commit(0));
    sim.step(&Step::Request(2, 0));
    assert_eq!(sim.admitted[0], 2, "node 2 took its slot from a map without the counter");
    for _ in 0..12 {
        for node in [1, 2] {
            sim.step(&Step::Request(node, 0));
            sim.step(&Step::Commit(node));
            sim.step(&Step::Catch(node));
            sim.step(&Step::AnswerRecalls(node));
            sim.step(&Step::Commit(node));
        }
        sim.step(&Step::AnswerRecalls(0));
        sim.step(&Step::Catch(0));
        sim.step(&Step::Commit(0));
    }
    assert_eq!(sim.admitted[0], 5);
}

/// Node 0 still has the old limit, 2, and makes the counter; node 2 has the new one, 5,
/// and takes its slot, 2, from a map without the counter; node 1, under 5 too, then
/// reserves again and again before node 2 says so. Its grants leave node 2's slot alone:
/// the window admits no more than 5.
#[test]
fn a_slot_above_the_makers_limit_is_held_under_a_larger_one() {
    let mut sim = Sim::with_limits([2, 5, 5]);
    sim.enroll_all();
    sim.step(&Step::Request(0, 0));
    sim.step(&Step::Commit(0));
    sim.step(&Step::Request(2, 0));
    sim.step(&Step::Request(1, 0));
    for _ in 0..10 {
        sim.step(&Step::Commit(1));
        sim.step(&Step::Request(1, 0));
    }
    assert_eq!(sim.admitted[0], 5);
}

/// A counter that holds no slot (made by the plain `Reserve`, or before any node
/// enrolled) keeps a slot settled on it: a node that cannot tell whether it used its slot
/// says so with every reservation, and counts once.
#[test]
fn a_slot_settled_on_a_counter_that_holds_none_counts_once() {
    let mut s = KvState::default();
    s.apply(&Command::Reserve { key: KEYS[0].into(), want: 2, limit: 50, expires_at: 9 }, &mut Vec::new());
    let reserve = Command::ReserveIn { key: KEYS[0].into(), want: 1, limit: 50, expires_at: 9, window: WINDOW, slot: Some(SlotUse { slot: 0, used: true }) };
    for _ in 0..2 {
        s.apply(&reserve, &mut Vec::new());
    }
    let counter = Counter::decode(&s.get(KEYS[0]).unwrap().value).unwrap();
    assert_eq!((counter.granted, counter.holders), (2 + 1 + 2, 0), "two granted, the slot once, one and one granted");
}

/// Node 2 has just started and has not heard every member, and its applied map lags
/// behind the agreement: it reserves with the plain `Reserve`, which lands after node 0
/// enrolled and took its slice (its map showed no counter). The counter it would make
/// would hold no slot for node 0, and the window would admit 2 under 1: the state
/// machine makes none, and node 2 asks again with `ReserveIn`.
#[test]
fn a_plain_reserve_after_the_agreement_makes_no_counter() {
    for proposed_before_the_agreement in [true, false] {
        let mut sim = Sim { unheard: [false, false, true], ..Sim::unagreed([1; NODES]) };
        if proposed_before_the_agreement {
            sim.step(&Step::Request(2, 0));
        }
        sim.step(&Step::Agree(0));
        for step in [Step::Commit(0), Step::Catch(0), Step::Enroll(0), Step::Commit(0), Step::Catch(0), Step::Request(0, 0)] {
            sim.step(&step);
        }
        assert_eq!((sim.admitted[0], sim.nodes[0].slot.map(|(slot, _)| slot)), (1, Some(0)), "node 0 took its slice");
        if !proposed_before_the_agreement {
            sim.step(&Step::Request(2, 0));
        }
        assert!(matches!(sim.nodes[2].queue[0].cmd, Command::Reserve { .. }));
        sim.step(&Step::Commit(2));
        assert!(matches!(sim.nodes[2].queue[0].cmd, Command::ReserveIn { .. }), "asked again");
        sim.step(&Step::Commit(2));
        sim.step(&Step::Request(2, 0));
        assert_eq!(sim.admitted[0], 1);
    }
}

#[test]
fn a_plain_reserve_grants_from_a_counter_after_the_agreement() {
    let mut s = KvState::default();
    let reserve = Command::Reserve { key: KEYS[0].into(), want: 2, limit: 5, expires_at: 9 };
    assert!(matches!(s.apply(&reserve, &mut Vec::new()), Response::Reserve { granted: 2, .. }));
    s.apply(&Sim::agreement(), &mut Vec::new());
    let revision = s.revision();
    assert!(matches!(s.apply(&reserve, &mut Vec::new()), Response::Reserve { granted: 2, total: 4, .. }), "a counter made before");
    let other = Command::Reserve { key: KEYS[1].into(), want: 2, limit: 5, expires_at: 9 };
    assert_eq!(s.apply(&other, &mut Vec::new()), Response::NeedsWindow { revision: revision + 1 });
    assert!(s.get(KEYS[1]).is_none(), "no counter made");
}

/// Node 0 takes its slice, and its process ends before the reservation that says so
/// commits (lost). The next process cannot tell whether the slot was used: it counts it
/// as used, when it enrolls again and reserves, or when it answers a recall.
#[test]
fn a_restarted_process_counts_its_slot_as_used() {
    for answers_a_recall in [false, true] {
        let mut sim = Sim::new(1);
        for step in [Step::Enroll(0), Step::Commit(0), Step::Catch(0), Step::Request(0, 0), Step::Lose(0), Step::Restart(0, false)] {
            sim.step(&step);
        }
        assert_eq!(sim.admitted[0], 1);
        if answers_a_recall {
            for step in [Step::Request(1, 0), Step::Commit(1), Step::Catch(0), Step::AnswerRecalls(0), Step::Commit(0), Step::Catch(1)] {
                sim.step(&step);
            }
        } else {
            for step in [Step::Enroll(0), Step::Commit(0), Step::Catch(0), Step::Request(0, 0), Step::Commit(0), Step::Request(1, 0), Step::Commit(1)] {
                sim.step(&step);
            }
        }
        for _ in 0..3 {
            for step in [Step::Request(1, 0), Step::Commit(1), Step::Request(0, 0), Step::Commit(0)] {
                sim.step(&step);
            }
        }
        assert_eq!(sim.admitted[0], 1, "answers a recall: {answers_a_recall}");
    }
}

/// Node 0's first process enrolls but its lease never reaches the window (it may take no
/// slice there), and it restarts: the next process knows that no process before it could
/// have used the slot, takes it, and the window keeps its limit.
#[test]
fn a_slot_no_earlier_process_could_reach_is_used_after_a_restart() {
    let mut sim = Sim::new(1);
    sim.nodes[0].lease_short = true;
    for step in [Step::Enroll(0), Step::Commit(0), Step::Catch(0), Step::Request(0, 0)] {
        sim.step(&step);
    }
    assert_eq!(sim.admitted[0], 0, "its lease does not reach the window");
    for step in [Step::Lose(0), Step::Restart(0, false), Step::Enroll(0), Step::Commit(0), Step::Catch(0)] {
        sim.step(&step);
    }
    assert!(sim.nodes[0].fresh, "its slot back, as good as fresh");
    sim.step(&Step::Request(0, 0));
    assert_eq!(sim.admitted[0], 1, "on the slot, with no Raft round");
    for _ in 0..3 {
        for step in [Step::Commit(0), Step::Request(1, 0), Step::Commit(1), Step::Catch(0), Step::AnswerRecalls(0), Step::Request(0, 0)] {
            sim.step(&step);
        }
    }
    assert_eq!(sim.admitted[0], 1);
}
