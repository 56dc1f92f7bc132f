//! Model test of `KvState::apply`: random command sequences against a deliberately naive
//! model written from the command docs, plus snapshot round trips.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::codec;

const KEYS: &[&str] = &["a", "ab", "b", "c/1", "c/2", "rl/x", "rl/y"];
/// Each counter key has one fixed limit, so that "never more than the limit" is checkable.
fn limit_of(key: &str) -> u64 {
    if key.ends_with('x') { 10 } else { 3 }
}

#[derive(Debug, Default)]
struct Model {
    revision: u64,
    map: BTreeMap<String, (Vec<u8>, u64, u64, u64, Option<u64>)>,
}

impl Model {
    fn write(&mut self, key: &str, value: Vec<u8>, exp: Option<u64>) {
        let (create, version) = match self.map.get(key) {
            Some(e) => (e.1, e.3 + 1),
            None => (self.revision, 1),
        };
        self.map.insert(key.to_string(), (value, create, self.revision, version, exp));
    }

    fn step(&mut self, cmd: &Command) -> Response {
        match cmd {
            Command::Put { key, value, expires_at } => {
                let prev = self.kv(key);
                self.revision += 1;
                self.write(key, value.clone(), *expires_at);
                Response::Put { revision: self.revision, prev }
            }
            Command::Delete { key } => {
                let prev = self.kv(key);
                if prev.is_some() {
                    self.revision += 1;
                    self.map.remove(key);
                }
                Response::Delete { revision: self.revision, prev }
            }
            Command::Txn { compares, ops } => {
                for (index, c) in compares.iter().enumerate() {
                    let actual = self.map.get(&c.key).map(|e| e.2).unwrap_or(0);
                    if actual != c.mod_revision {
                        let failed = FailedCompare { index, key: c.key.clone(), expected: c.mod_revision, actual };
                        return Response::Txn { revision: self.revision, failed: Some(failed) };
                    }
                }
                let before = self.map.clone();
                let next = self.revision + 1;
                let saved = self.revision;
                self.revision = next;
                for op in ops {
                    match op {
                        TxnOp::Put { key, value, expires_at } => self.write(key, value.clone(), *expires_at),
                        TxnOp::Delete { key } => {
                            self.map.remove(key);
                        }
                    }
                }
                let any_put = ops.iter().any(|o| matches!(o, TxnOp::Put { .. }));
                if !any_put && before == self.map {
                    self.revision = saved;
                }
                Response::Txn { revision: self.revision, failed: None }
            }
            Command::Reserve { key, want, limit, expires_at } => {
                let total = match self.map.get(key) {
                    None => 0,
                    Some(e) if e.0.len() == 8 => u64::from_be_bytes(e.0.clone().try_into().unwrap()),
                    Some(_) => {
                        return Response::Invalid {
                            revision: self.revision,
                            reason: format!("key {key:?} does not hold a reservation counter"),
                        }
                    }
                };
                let room = if *limit > total { limit - total } else { 0 };
                let granted = if *want < room { *want } else { room };
                if granted == 0 {
                    return Response::Reserve { revision: self.revision, granted, total };
                }
                let exp = match self.map.get(key).and_then(|e| e.4) {
                    Some(t) if t > *expires_at => t,
                    _ => *expires_at,
                };
                self.revision += 1;
                self.write(key, (total + granted).to_be_bytes().to_vec(), Some(exp));
                Response::Reserve { revision: self.revision, granted, total: total + granted }
            }
            Command::Expire { before } => {
                let n = self.map.len();
                let bumped = self.revision + 1;
                self.map.retain(|_, e| !matches!(e.4, Some(t) if t <= *before));
                let removed = (n - self.map.len()) as u64;
                if removed > 0 {
                    self.revision = bumped;
                }
                Response::Expire { revision: self.revision, removed }
            }
            Command::Batch(cmds) => Response::Batch(cmds.iter().map(|c| self.step(c)).collect()),
            // First slices have a model of their own (`kv::slices`'s tests); the strategy
            // here never makes these.
            Command::Enroll { .. } | Command::ReserveIn { .. } | Command::Settle { .. } => unreachable!("not generated"),
        }
    }

    fn kv(&self, key: &str) -> Option<KeyValue> {
        self.map.get(key).map(|e| KeyValue {
            value: e.0.clone().into(),
            create_revision: e.1,
            mod_revision: e.2,
            version: e.3,
            expires_at: e.4,
        })
    }
}

fn key() -> impl Strategy<Value = String> {
    proptest::sample::select(KEYS).prop_map(str::to_string)
}

fn txn_op() -> impl Strategy<Value = TxnOp> {
    prop_oneof![
        (key(), proptest::collection::vec(any::<u8>(), 0..4), proptest::option::of(0u64..20))
            .prop_map(|(key, value, expires_at)| TxnOp::Put { key, value, expires_at }),
        key().prop_map(|key| TxnOp::Delete { key }),
    ]
}

fn simple_command() -> impl Strategy<Value = Command> {
    prop_oneof![
        3 => (key(), proptest::collection::vec(any::<u8>(), 0..4), proptest::option::of(0u64..20))
            .prop_map(|(key, value, expires_at)| Command::Put { key, value, expires_at }),
        2 => key().prop_map(|key| Command::Delete { key }),
        2 => (proptest::collection::vec((key(), 0u64..6), 0..3), proptest::collection::vec(txn_op(), 0..4))
            .prop_map(|(cmps, ops)| Command::Txn {
                compares: cmps.into_iter().map(|(key, mod_revision)| Compare { key, mod_revision }).collect(),
                ops,
            }),
        4 => (key(), 0u64..6, 0u64..20).prop_map(|(key, want, expires_at)| {
            let limit = limit_of(&key);
            Command::Reserve { key, want, limit, expires_at }
        }),
        1 => (0u64..20).prop_map(|before| Command::Expire { before }),
    ]
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        6 => simple_command(),
        1 => proptest::collection::vec(simple_command(), 0..4).prop_map(Command::Batch),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn apply_matches_model(cmds in proptest::collection::vec(command(), 0..60)) {
        let mut state = KvState::default();
        let mut model = Model::default();
        let mut flat = KvState::default();
        // Per counter key, per life of the key (an Expire or Delete starts a new one).
        let mut granted_in_life: BTreeMap<String, u64> = BTreeMap::new();
        for cmd in &cmds {
            let before = state.clone();
            let mut events = Vec::new();
            let got = state.apply(cmd, &mut events);
            let want = model.step(cmd);
            prop_assert_eq!(&got, &want, "command {:?}", cmd);
            prop_assert_eq!(state.revision(), model.revision);
            for k in model.map.keys() {
                prop_assert_eq!(state.get(k).cloned(), model.kv(k), "key {}", k);
            }
            prop_assert_eq!(state.len(), model.map.len());
            // Events are in revision order, and the last one for each key is its state now.
            prop_assert!(events.windows(2).all(|w| w[0].revision <= w[1].revision));
            let mut last: BTreeMap<&str, &EventKind> = BTreeMap::new();
            for ev in &events {
                prop_assert!(ev.revision <= state.revision());
                last.insert(&ev.key, &ev.kind);
            }
            for (k, kind) in &last {
                match kind {
                    EventKind::Put(kv) => prop_assert_eq!(state.get(k), Some(kv)),
                    EventKind::Delete { .. } => prop_assert_eq!(state.get(k), None),
                }
            }
            // ... and every key whose entry changed has an event.
            for k in KEYS {
                if before.get(k) != state.get(k) {
                    prop_assert!(last.contains_key(k), "{} changed without an event", k);
                }
            }
            // Grants are checked one plain command at a time on a second map, which also
            // shows that a Batch is the same as its commands applied in order.
            let plain: Vec<&Command> = match cmd { Command::Batch(cs) => cs.iter().collect(), c => vec![c] };
            for c in plain {
                let mut evs = Vec::new();
                let r = flat.apply(c, &mut evs);
                if let (Command::Reserve { key, limit, .. }, Response::Reserve { granted, total, .. }) = (c, &r) {
                    prop_assert!(total <= limit, "counter {} at {} over limit {}", key, total, limit);
                    let sum = granted_in_life.entry(key.clone()).or_default();
                    *sum += granted;
                    prop_assert!(*sum <= *limit, "grants on {} sum to {} > {}", key, sum, limit);
                } else {
                    // Anything else that touched a key ends that counter's life.
                    for ev in &evs {
                        granted_in_life.remove(&ev.key);
                    }
                }
            }
            prop_assert_eq!(flat.digest(), state.digest());
        }
        // Scans agree with the model for every prefix of every key.
        for k in KEYS {
            for end in 0..=k.len() {
                let prefix = &k[..end];
                let got: Vec<_> = state.scan(prefix).map(|(k, _)| k.clone()).collect();
                let want: Vec<_> = model.map.keys().filter(|m| m.starts_with(prefix)).cloned().collect();
                prop_assert_eq!(got, want);
            }
        }
        // A snapshot restores the same map and digest.
        let bytes = codec::encode(&state).unwrap();
        let restored: KvState = codec::decode(&bytes).unwrap();
        prop_assert_eq!(&restored, &state);
        prop_assert_eq!(restored.digest(), state.digest());
    }

    #[test]
    fn equal_histories_give_equal_digests(cmds in proptest::collection::vec(command(), 0..40)) {
        let (mut a, mut b) = (KvState::default(), KvState::default());
        for cmd in &cmds {
            a.apply(cmd, &mut Vec::new());
            b.apply(cmd, &mut Vec::new());
        }
        prop_assert_eq!(a.digest(), b.digest());
    }
}

#[test]
fn digest_tells_maps_apart() {
    let mut a = KvState::default();
    let mut b = KvState::default();
    a.apply(&Command::Put { key: "k".into(), value: b"1".to_vec(), expires_at: None }, &mut Vec::new());
    b.apply(&Command::Put { key: "k".into(), value: b"2".to_vec(), expires_at: None }, &mut Vec::new());
    assert_ne!(a.digest(), b.digest());
}

#[test]
fn reserve_on_a_plain_value_is_refused_without_change() {
    let mut s = KvState::default();
    s.apply(&Command::Put { key: "k".into(), value: b"x".to_vec(), expires_at: None }, &mut Vec::new());
    let before = s.clone();
    let r = s.apply(&Command::Reserve { key: "k".into(), want: 1, limit: 5, expires_at: 9 }, &mut Vec::new());
    assert!(matches!(r, Response::Invalid { .. }), "{r:?}");
    assert_eq!(s, before);
}
