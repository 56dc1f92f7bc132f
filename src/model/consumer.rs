//! Consumer (Kong's `consumers.lua`) and its key-auth credential (the key-auth plugin's
//! `keyauth_credentials` table), whose key is stored only as a SHA-256 hash.

use std::sync::{Arc, LazyLock};

use rand::distr::{Alphanumeric, SampleString};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::entity::{timestamp_field, EntityType, ForeignKey};
use super::error::KongError;
use super::schema::{at_least_one_of, Field, Record};
use super::storage::{index_key, unique_field};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Consumer {
    pub id: Uuid,
    pub created_at: i64,
    pub updated_at: i64,
    pub username: Option<String>,
    pub custom_id: Option<String>,
    pub tags: Option<Vec<String>>,
}

static CONSUMER: LazyLock<Arc<Record>> = LazyLock::new(|| {
    Arc::new(
        Record::new()
            .field("id", Field::uuid())
            .field("created_at", timestamp_field(false))
            .field("updated_at", timestamp_field(false))
            .field("username", Field::string())
            .field("custom_id", Field::string())
            .field("tags", Field::tags())
            .entity_check(at_least_one_of(&["custom_id", "username"])),
    )
});

impl EntityType for Consumer {
    const TABLE: &'static str = "consumers";
    const ENDPOINT_KEY: Option<&'static str> = Some("username");

    fn schema_for(_: &Map<String, Value>) -> Result<Arc<Record>, KongError> {
        Ok(CONSUMER.clone())
    }
    fn id(&self) -> Uuid {
        self.id
    }
    fn endpoint_key_value(&self) -> Option<String> {
        self.username.clone()
    }
    fn unique_fields(&self) -> Vec<(String, Value)> {
        let username = self.username.iter().map(|u| unique_field(Self::TABLE, "username", u));
        let custom_id = self.custom_id.iter().map(|c| unique_field(Self::TABLE, "custom_id", c));
        username.chain(custom_id).collect()
    }
}

/// SHA-256 of a key-auth key, lower-case hex: what is stored and indexed.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A 32-character random key, as Kong generates when none is given.
pub fn generate_key() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 32)
}

/// A key-auth credential. Only `key_hash` is stored; the plain `key` is known when the
/// credential is created (given or generated) and shown only in that response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyAuthCredential {
    pub id: Uuid,
    pub created_at: i64,
    pub consumer: ForeignKey,
    pub key_hash: String,
    pub tags: Option<Vec<String>>,
    /// Seconds after `created_at` when the credential expires (Kong's `ttl`); none or 0: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u32>,
    /// The plain key, present only on a freshly created or replaced credential.
    #[serde(skip)]
    pub key: Option<String>,
}

static CREDENTIAL: LazyLock<Arc<Record>> = LazyLock::new(|| {
    Arc::new(
        Record::new()
            .field("id", Field::uuid())
            .field("created_at", timestamp_field(false))
            .field("consumer", Field::foreign("consumers").required())
            .field("key", Field::string())
            .field(
                "key_hash",
                Field::string().check_str(|h| {
                    if h.len() == 64
                        && h.chars()
                            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
                    {
                        Ok(())
                    } else {
                        Err("expected a lower-case hex SHA-256 digest".into())
                    }
                }),
            )
            .field("tags", Field::tags())
            // Any number here: its range is checked as Kong checks an option's.
            .field("ttl", Field::number())
            .entity_check(|m, errors| {
                let set = |k: &str| m.get(k).is_some_and(|v| !v.is_null());
                if set("key") && set("key_hash") {
                    errors
                        .entity("only one or none of these fields must be set: 'key', 'key_hash'");
                }
            }),
    )
});

/// Kong's answer to a ttl that is not a whole number of seconds from 0 to 100,000,000.
fn bad_ttl() -> KongError {
    KongError::invalid_option("ttl", "must be an integer between 0 and 100000000")
}

impl EntityType for KeyAuthCredential {
    const TABLE: &'static str = "keyauth_credentials";
    const ENDPOINT_KEY: Option<&'static str> = Some("key");
    const HAS_UPDATED_AT: bool = false;

    fn schema_for(_: &Map<String, Value>) -> Result<Arc<Record>, KongError> {
        Ok(CREDENTIAL.clone())
    }
    /// Kong's `ttl` is an option of the write: an integer from 0 to 100,000,000 seconds
    /// (a bound that keeps `now + ttl` from overflowing), counted from the write, as
    /// Kong's expiry is set to now + ttl on an insert, update or upsert. The record holds
    /// it counted from `created_at`, which an update keeps, so it is shifted by the
    /// credential's age; `before_patch` turns a stored ttl back into one from now.
    fn check_options(record: &mut Map<String, Value>, now: f64) -> Result<(), KongError> {
        const MOST: f64 = 100_000_000.0;
        let Some(ttl) = record.get("ttl").filter(|v| !v.is_null()) else {
            return Ok(());
        };
        let from_now = match ttl.as_f64() {
            Some(t) if t.fract() == 0.0 && (0.0..=MOST).contains(&t) => t as i64,
            _ => return Err(bad_ttl()),
        };
        // Counted from the next whole second: `created_at` is whole seconds, and a ttl is
        // better up to a second long than up to a second short (a ttl of 1 would live
        // almost no time).
        let age = record.get("created_at").and_then(Value::as_i64).map_or(0, |created| (now.ceil() as i64 - created).max(0));
        let stored = if from_now == 0 { 0 } else { from_now + age };
        record.insert("ttl".into(), Value::from(stored));
        Ok(())
    }
    /// A key is generated when neither `key` nor `key_hash` is given. A ttl written as
    /// text (`"30"` in JSON) is the number, as Kong's `tonumber` makes it; anything else
    /// that is not a number is refused as the option it is.
    fn prepare(input: &mut Map<String, Value>) -> Result<(), KongError> {
        match input.get("ttl") {
            Some(Value::String(text)) => match text.trim().parse::<f64>().ok().and_then(serde_json::Number::from_f64) {
                Some(n) => {
                    input.insert("ttl".into(), Value::Number(n));
                }
                None => return Err(bad_ttl()),
            },
            Some(Value::Number(_) | Value::Null) | None => {}
            Some(_) => return Err(bad_ttl()),
        }
        let set = |k: &str| input.get(k).is_some_and(|v| !v.is_null());
        if !set("key") && !set("key_hash") {
            input.insert("key".into(), Value::String(generate_key()));
        }
        Ok(())
    }
    /// A new `key` replaces the stored hash. A stored ttl becomes the seconds it has left
    /// (at least 1, so that a credential due to expire does not become permanent), the
    /// form a ttl given in the PATCH has, for `check_options` to shift back.
    fn before_patch(existing: &mut Map<String, Value>, input: &Map<String, Value>, now: f64) {
        if input.get("key").is_some_and(|v| !v.is_null()) {
            existing.remove("key_hash");
        }
        let stored = existing.get("ttl").and_then(Value::as_i64).filter(|t| *t > 0);
        if let (Some(ttl), Some(created)) = (stored, existing.get("created_at").and_then(Value::as_i64)) {
            let left = (created + ttl - now.ceil() as i64).max(1);
            existing.insert("ttl".into(), Value::from(left));
        }
    }
    fn from_record(mut m: Map<String, Value>) -> Result<Self, KongError> {
        let key = m.remove("key").and_then(|v| v.as_str().map(str::to_string));
        if let Some(k) = &key {
            m.insert("key_hash".into(), Value::String(hash_key(k)));
        }
        let mut cred: KeyAuthCredential = serde_json::from_value(Value::Object(m))
            .map_err(|e| KongError::database_error(format!("{e}")))?;
        cred.key = key;
        Ok(cred)
    }
    fn id(&self) -> Uuid {
        self.id
    }
    fn endpoint_key_value(&self) -> Option<String> {
        self.key.clone()
    }
    fn unique_fields(&self) -> Vec<(String, Value)> {
        let shown = match &self.key {
            Some(k) => json!({ "key": k }),
            None => json!({ "key_hash": self.key_hash }),
        };
        vec![(index_key(Self::TABLE, "key_hash", &self.key_hash), shown)]
    }
}

impl KeyAuthCredential {
    /// The JSON for a write's response: the stored fields, the plain `key` when it was
    /// just given, and the ttl it has left at `now`, as a read shows it.
    pub fn response_json(&self, now: f64) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut v {
            if let Some(k) = &self.key {
                m.insert("key".into(), Value::String(k.clone()));
            }
            if let Some(left) = self.ttl_left(now) {
                m.insert("ttl".into(), Value::from(left));
            }
        }
        v
    }
    /// Whether a credential with a ttl has expired at `now()` (Unix seconds); the clock is
    /// read only for a credential with a ttl.
    pub fn is_expired(&self, now: impl FnOnce() -> f64) -> bool {
        match self.ttl {
            Some(ttl) if ttl > 0 => now() >= (self.created_at + ttl as i64) as f64,
            _ => false,
        }
    }
    /// The seconds its ttl has left at `now` (Unix seconds), rounded down as Kong's are;
    /// `Some(0)` once expired, None without a ttl (the stored ttl counts from created_at).
    pub fn ttl_left(&self, now: f64) -> Option<u32> {
        let ttl = self.ttl.filter(|t| *t > 0)?;
        let left = (self.created_at + i64::from(ttl)) as f64 - now;
        Some(left.max(0.0).floor() as u32)
    }
    /// Whether `key` is this credential's key.
    pub fn matches(&self, key: &str) -> bool {
        hash_key(key) == self.key_hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::entity::{create, patch, replace, PutKey};

    #[test]
    fn consumer_needs_username_or_custom_id() {
        let e = create::<Consumer>(&json!({}), 1.0).unwrap_err();
        assert_eq!(
            e.to_json(),
            json!({"code": 2, "name": "schema violation",
                   "message": "schema violation (at least one of these fields must be non-empty: 'custom_id', 'username')",
                   "fields": {"@entity": ["at least one of these fields must be non-empty: 'custom_id', 'username'"]}})
        );
        assert!(create::<Consumer>(&json!({"custom_id": "c1"}), 1.0).is_ok());
        let c = create::<Consumer>(&json!({"username": "bob", "custom_id": "c1"}), 1.0).unwrap();
        let keys: Vec<String> = c.unique_keys().into_iter().map(|(_, d)| d).collect();
        assert_eq!(keys, vec!["{username=\"bob\"}", "{custom_id=\"c1\"}"]);
        assert_eq!(
            c.unique_fields()[0].0,
            "config/index/consumers/username/bob"
        );
    }

    #[test]
    fn credential_key_is_hashed() {
        let consumer = Uuid::new_v4();
        let c = create::<KeyAuthCredential>(
            &json!({"consumer": {"id": consumer}, "key": "secret"}),
            10.0,
        )
        .unwrap();
        assert_eq!(c.key_hash, hash_key("secret"));
        assert_eq!(c.key.as_deref(), Some("secret"));
        let stored = serde_json::to_value(&c).unwrap();
        assert!(stored.get("key").is_none());
        assert_eq!(stored["key_hash"], json!(hash_key("secret")));
        assert_eq!(c.response_json(1.0)["key"], json!("secret"));
        let back = KeyAuthCredential::from_bytes(&c.to_bytes()).unwrap();
        assert_eq!(back.key, None);
        assert!(back.matches("secret"));
        assert_eq!(
            hash_key("secret"),
            "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"
        );
    }

    #[test]
    fn credential_key_generated() {
        let c = create::<KeyAuthCredential>(&json!({"consumer": {"id": Uuid::new_v4()}}), 10.0)
            .unwrap();
        let k = c.key.clone().unwrap();
        assert_eq!(k.len(), 32);
        assert_eq!(c.key_hash, hash_key(&k));
    }

    #[test]
    fn credential_rules() {
        let e = create::<KeyAuthCredential>(&json!({"key": "a"}), 1.0).unwrap_err();
        assert_eq!(
            e.message,
            "schema violation (consumer: required field missing)"
        );
        let e = create::<KeyAuthCredential>(
            &json!({"consumer": {"id": Uuid::new_v4()}, "key": ""}),
            1.0,
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            "schema violation (key: length must be at least 1)"
        );
        let h = hash_key("x");
        let c = create::<KeyAuthCredential>(
            &json!({"consumer": {"id": Uuid::new_v4()}, "key_hash": h}),
            1.0,
        )
        .unwrap();
        assert_eq!((c.key.as_deref(), c.key_hash.as_str()), (None, h.as_str()));
        let e = create::<KeyAuthCredential>(
            &json!({"consumer": {"id": Uuid::new_v4()}, "key_hash": "zz"}),
            1.0,
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            "schema violation (key_hash: expected a lower-case hex SHA-256 digest)"
        );
    }

    #[test]
    fn credential_ttl_and_patch() {
        let c = create::<KeyAuthCredential>(
            &json!({"consumer": {"id": Uuid::new_v4()}, "key": "k", "ttl": 60}),
            100.0,
        )
        .unwrap();
        assert!(!c.is_expired(|| 159.0));
        assert!(c.is_expired(|| 160.0));
        let stored = KeyAuthCredential::from_bytes(&c.to_bytes()).unwrap();
        let p = patch(&stored, &json!({"key": "k2"}), 200.0).unwrap();
        assert_eq!(p.key_hash, hash_key("k2"));
        let p = patch(&stored, &json!({"tags": ["a"]}), 200.0).unwrap();
        assert_eq!(p.key_hash, hash_key("k"));
        let r = replace::<KeyAuthCredential>(
            Some(&stored),
            &PutKey::Id(stored.id),
            &json!({"consumer": {"id": Uuid::new_v4()}, "key": "k3"}),
            300.0,
        )
        .unwrap();
        assert_eq!((r.created_at, r.key.as_deref()), (100, Some("k3")));
    }

    /// Kong checks a `ttl` as an option of the write, after the schema: code 11 with its
    /// message; a form's "60" and a JSON 60.0 are the integer 60.
    #[test]
    fn a_ttl_out_of_range_is_an_invalid_option() {
        let with_ttl = |ttl: Value| json!({"consumer": {"id": Uuid::new_v4()}, "key": "k", "ttl": ttl});
        for bad in [json!(-1), json!(100_000_001), json!(1.5)] {
            let e = create::<KeyAuthCredential>(&with_ttl(bad.clone()), 1.0).unwrap_err();
            assert_eq!(
                e.to_json(),
                json!({"code": 11, "name": "invalid options",
                       "message": "invalid option (ttl: must be an integer between 0 and 100000000)",
                       "fields": {"ttl": "must be an integer between 0 and 100000000"}}),
                "{bad}"
            );
        }
        for (good, stored) in [(json!(0), 0), (json!(60.0), 60), (json!(100_000_000), 100_000_000)] {
            let c = create::<KeyAuthCredential>(&with_ttl(good), 1.0).unwrap();
            assert_eq!(c.ttl, Some(stored));
        }
        let mut form = serde_json::Map::new();
        form.insert("ttl".into(), json!("60"));
        crate::model::coerce_form::<KeyAuthCredential>(&mut form);
        assert_eq!(form["ttl"], json!(60));
        // Text is read as Kong's tonumber reads it; other types are the option's error.
        assert_eq!(create::<KeyAuthCredential>(&with_ttl(json!("30")), 1.0).unwrap().ttl, Some(30));
        for bad in [json!("abc"), json!(true), json!([1])] {
            assert_eq!(create::<KeyAuthCredential>(&with_ttl(bad.clone()), 1.0).unwrap_err().code, 11, "{bad}");
        }
        // A schema violation is reported before the option, as Kong validates in that order.
        let e = create::<KeyAuthCredential>(&json!({"key": "k", "ttl": -1}), 1.0).unwrap_err();
        assert_eq!(e.code, 2, "{}", e.message);
        // A PATCH is checked the same way.
        let c = create::<KeyAuthCredential>(&with_ttl(json!(60)), 1.0).unwrap();
        assert_eq!(patch(&c, &json!({"ttl": -5}), 2.0).unwrap_err().code, 11);
    }

    /// As Kong's, a ttl runs from the write that sets it: a PATCH or PUT on an old
    /// credential gives it the ttl asked for, not what is left of it since `created_at`;
    /// a PATCH that leaves the ttl out leaves the expiry where it was. Never early: at
    /// most a second late, since `created_at` is whole seconds.
    #[test]
    fn a_ttl_counts_from_the_write_that_sets_it() {
        let consumer = json!({"id": Uuid::new_v4()});
        let c = create::<KeyAuthCredential>(&json!({"consumer": consumer, "key": "k", "ttl": 60}), 100.5).unwrap();
        assert_eq!((c.created_at, c.ttl_left(100.5)), (100, Some(60)));
        assert!(!c.is_expired(|| 160.9) && c.is_expired(|| 161.0));
        assert_eq!(c.response_json(100.5)["ttl"], json!(60));

        let stored = KeyAuthCredential::from_bytes(&c.to_bytes()).unwrap();
        let shortened = patch(&stored, &json!({"ttl": 10}), 130.2).unwrap();
        assert_eq!((shortened.created_at, shortened.ttl_left(130.2)), (100, Some(10)));
        assert!(!shortened.is_expired(|| 140.9) && shortened.is_expired(|| 141.0));
        let untouched = patch(&stored, &json!({"tags": ["a"]}), 130.2).unwrap();
        assert!(!untouched.is_expired(|| 160.9) && untouched.is_expired(|| 161.0));
        let again = patch(&untouched, &json!({"tags": ["b"]}), 150.7).unwrap();
        assert!(!again.is_expired(|| 160.9) && again.is_expired(|| 161.0));
        assert_eq!(patch(&stored, &json!({"ttl": 0}), 130.2).unwrap().ttl_left(1e9), None);

        let replaced = replace::<KeyAuthCredential>(Some(&stored), &PutKey::Id(stored.id), &json!({"consumer": consumer, "key": "k", "ttl": 20}), 130.2).unwrap();
        assert_eq!((replaced.created_at, replaced.ttl_left(130.2)), (100, Some(20)));
        let lasting = replace::<KeyAuthCredential>(Some(&stored), &PutKey::Id(stored.id), &json!({"consumer": consumer, "key": "k"}), 130.2).unwrap();
        assert!(!lasting.is_expired(|| 1e9));
    }
}
