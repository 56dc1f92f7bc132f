//! The `EntityType` trait every configuration entity implements, and the three write
//! operations the Admin API needs: create (POST), replace (PUT upsert), patch (PATCH).

use std::fmt::Debug;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::error::KongError;
use super::input::expect_object;
use super::schema::{Field, Record};
use super::storage;

/// A foreign key as Kong serialises it: `{"id": "<uuid>"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ForeignKey {
    pub id: Uuid,
}

impl ForeignKey {
    pub fn new(id: Uuid) -> Self {
        ForeignKey { id }
    }
    /// The id an optional reference (a route's `service`, a plugin's scope) names.
    pub fn id_of(reference: &Option<ForeignKey>) -> Option<Uuid> {
        reference.map(|r| r.id)
    }
}

/// A schema `number`: an `f64` that serialises without a fraction when it has none, so
/// `1` stays `1` as in Kong's JSON (healthcheck timeouts, intervals, thresholds).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct Num(pub f64);

impl Serialize for Num {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.fract() == 0.0 && self.0.abs() < 9.0e15 {
            s.serialize_i64(self.0 as i64)
        } else {
            s.serialize_f64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        f64::deserialize(d).map(Num)
    }
}

/// The current Unix time in seconds, with sub-second precision.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A configuration entity: its Kong table, schema, identity and unique constraints.
pub trait EntityType:
    Serialize + DeserializeOwned + Clone + PartialEq + Debug + Send + Sync + 'static
{
    /// Kong's table name: `services`, `routes`, ..., also the storage segment.
    const TABLE: &'static str;
    /// The endpoint key (`/services/{name}`), if the entity has one.
    const ENDPOINT_KEY: Option<&'static str>;
    /// Timestamps in seconds with millisecond fraction (Kong's `auto_timestamp_ms`, targets).
    const TIMESTAMP_MS: bool = false;
    /// Whether the entity has an `updated_at` field (credentials do not).
    const HAS_UPDATED_AT: bool = true;

    /// The schema to validate this input with (plugins choose theirs by `name`).
    fn schema_for(input: &Map<String, Value>) -> Result<Arc<Record>, KongError>;
    fn id(&self) -> Uuid;
    /// The value of the endpoint key, if set (`name`, `username`, `target`, ...).
    fn endpoint_key_value(&self) -> Option<String>;
    /// Unique constraints: the index key under `config/index/` and the key as Kong shows
    /// it in a 409 (`{"name": "x"}`).
    fn unique_fields(&self) -> Vec<(String, Value)>;

    /// Adjusts raw input before validation (target address normalisation, ...).
    fn prepare(_input: &mut Map<String, Value>) -> Result<(), KongError> {
        Ok(())
    }
    /// Checks what Kong takes as options rather than fields (a credential's `ttl`) once
    /// the record has passed its schema, as Kong does: a bad option is code 11, not 2.
    fn check_options(_record: &mut Map<String, Value>, _now: f64) -> Result<(), KongError> {
        Ok(())
    }
    /// Adjusts the stored record before a PATCH input is merged into it.
    fn before_patch(_existing: &mut Map<String, Value>, _input: &Map<String, Value>, _now: f64) {}
    /// Builds the typed entity from a validated record.
    fn from_record(m: Map<String, Value>) -> Result<Self, KongError> {
        serde_json::from_value(Value::Object(m))
            .map_err(|e| KongError::database_error(format!("{e}")))
    }
    /// The stored JSON object of the entity.
    fn to_record(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        }
    }

    /// `config/<table>/<uuid>`.
    fn storage_key(&self) -> String {
        storage::entity_key(Self::TABLE, self.id())
    }
    /// Unique index keys with the description Kong puts in the 409 message (`{name="x"}`).
    fn unique_keys(&self) -> Vec<(String, String)> {
        self.unique_fields()
            .into_iter()
            .map(|(k, v)| (k, super::error::lua_pretty_compact(&v)))
            .collect()
    }
    /// The stored bytes (JSON).
    fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
    fn from_bytes(b: &[u8]) -> Result<Self, KongError> {
        serde_json::from_slice(b)
            .map_err(|e| KongError::database_error(format!("corrupt {} entry: {e}", Self::TABLE)))
    }
}

/// How a PUT names its entity: `/services/{uuid}` or `/services/{name}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutKey {
    Id(Uuid),
    EndpointKey(String),
}

impl PutKey {
    /// A path segment is an id when it parses as a uuid, else the endpoint key (as Kong).
    pub fn from_segment(s: &str) -> PutKey {
        match Uuid::try_parse(s) {
            Ok(id) if s.len() == 36 => PutKey::Id(id),
            _ => PutKey::EndpointKey(s.to_string()),
        }
    }
}

fn timestamp_value<E: EntityType>(now: f64) -> Value {
    if E::TIMESTAMP_MS {
        let ms = (now * 1000.0).floor() / 1000.0;
        serde_json::Number::from_f64(ms)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    } else {
        Value::from(now.floor() as i64)
    }
}

/// Timestamp fields for a schema (`integer` seconds or `number` seconds with ms).
pub(crate) fn timestamp_field(ms: bool) -> Field {
    let f = if ms {
        Field::number()
    } else {
        Field::integer()
    };
    f.fact("timestamp", Value::Bool(true)).fact("auto", Value::Bool(true)).check(|v| match v.as_f64() {
        Some(n) if n > 0.0 => Ok(()),
        _ => Err("expected a valid timestamp".into()),
    })
}

fn finish<E: EntityType>(mut map: Map<String, Value>, shorthands: bool, now: f64) -> Result<E, KongError> {
    E::prepare(&mut map)?;
    let schema = E::schema_for(&map)?;
    let mut out = schema.process_opts(&map, shorthands)?;
    E::check_options(&mut out, now)?;
    E::from_record(out)
}

/// Lets form-data strings become the numbers, booleans and arrays the schema expects.
pub fn coerce_form<E: EntityType>(input: &mut Map<String, Value>) {
    if let Ok(schema) = E::schema_for(input) {
        schema.coerce_form(input);
    }
}

/// Form input for a PATCH of `existing`, coerced by the schema of the entity it makes: a
/// plugin's schema depends on its name, which a PATCH body seldom repeats
/// (`--data config.minute=5`).
pub fn coerce_patch_form<E: EntityType>(existing: &E, input: &mut Map<String, Value>) {
    let mut basis = existing.to_record();
    basis.extend(input.iter().map(|(k, v)| (k.clone(), v.clone())));
    if let Ok(schema) = E::schema_for(&basis) {
        schema.coerce_form(input);
    }
}

/// POST: a new entity from `input`, with a fresh id unless one is given, timestamps set
/// to `now` (Unix seconds) and defaults applied.
pub fn create<E: EntityType>(input: &Value, now: f64) -> Result<E, KongError> {
    let mut map = expect_object(input)?;
    if map.get("id").is_none_or(Value::is_null) {
        map.insert("id".into(), Value::String(Uuid::new_v4().to_string()));
    }
    if map.get("created_at").is_none_or(Value::is_null) {
        map.insert("created_at".into(), timestamp_value::<E>(now));
    }
    if E::HAS_UPDATED_AT {
        map.insert("updated_at".into(), timestamp_value::<E>(now));
    }
    finish(map, true, now)
}

/// PUT: the entity is replaced by `input` with defaults re-applied. The id and
/// `created_at` of `existing` are kept; without one, the id comes from the path (or is
/// generated when the path names the endpoint key, which is then set from the path).
pub fn replace<E: EntityType>(
    existing: Option<&E>,
    key: &PutKey,
    input: &Value,
    now: f64,
) -> Result<E, KongError> {
    let mut map = expect_object(input)?;
    let id = match (existing, key) {
        (Some(e), _) => e.id(),
        (None, PutKey::Id(id)) => *id,
        (None, PutKey::EndpointKey(_)) => Uuid::new_v4(),
    };
    map.insert("id".into(), Value::String(id.to_string()));
    if let (PutKey::EndpointKey(k), Some(field)) = (key, E::ENDPOINT_KEY) {
        map.insert(field.to_string(), Value::String(k.clone()));
    }
    let created = match existing {
        Some(e) => e
            .to_record()
            .get("created_at")
            .cloned()
            .unwrap_or_else(|| timestamp_value::<E>(now)),
        None => timestamp_value::<E>(now),
    };
    map.insert("created_at".into(), created);
    if E::HAS_UPDATED_AT {
        map.insert("updated_at".into(), timestamp_value::<E>(now));
    }
    finish(map, true, now)
}

/// PATCH: `input` merged into `existing` (records such as plugin `config` and upstream
/// `healthchecks` field by field), revalidated, `updated_at` bumped. The id and
/// `created_at` cannot change.
pub fn patch<E: EntityType>(existing: &E, input: &Value, now: f64) -> Result<E, KongError> {
    let mut input = expect_object(input)?;
    let mut base = existing.to_record();
    input.remove("id");
    input.remove("created_at");
    input.remove("updated_at");
    let schema = E::schema_for(&base)?;
    schema.apply_shorthands(&mut input)?;
    E::before_patch(&mut base, &input, now);
    schema.merge(&mut base, input);
    if E::HAS_UPDATED_AT {
        base.insert("updated_at".into(), timestamp_value::<E>(now));
    }
    finish(base, false, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::input::form_to_json;
    use crate::model::{Plugin, Route, Service, Upstream};
    use serde_json::json;

    fn form<E: EntityType>(body: &str) -> Result<E, KongError> {
        let mut m = form_to_json(body);
        coerce_form::<E>(&mut m);
        create::<E>(&Value::Object(m), 1.0)
    }

    #[test]
    fn form_route() {
        let sid = Uuid::new_v4();
        let r: Route = form(&format!(
            "name=r&paths[]=/a&paths[]=/b&methods=GET&methods=POST&strip_path=false&regex_priority=3\
             &headers.x-foo=bar&headers[x-baz]=1&service.id={sid}"
        ))
        .unwrap();
        assert_eq!(r.paths, Some(vec!["/a".into(), "/b".into()]));
        assert_eq!(r.methods, Some(vec!["GET".into(), "POST".into()]));
        assert!(!r.strip_path);
        assert_eq!(r.regex_priority, 3);
        assert_eq!(r.headers.unwrap()["x-foo"], vec!["bar".to_string()]);
        assert_eq!(r.service, Some(ForeignKey::new(sid)));
        let r: Route = form("paths=/only&hosts[1]=a.org").unwrap();
        assert_eq!(
            (r.paths.unwrap(), r.hosts.unwrap()),
            (vec!["/only".to_string()], vec!["a.org".to_string()])
        );
    }

    #[test]
    fn form_service_and_plugin() {
        let s: Service =
            form("name=s&url=https%3A%2F%2Fa.org%3A8443%2Fp&retries=2&enabled=false").unwrap();
        assert_eq!(
            (s.protocol.as_str(), s.port, s.retries, s.enabled),
            ("https", 8443, 2, false)
        );
        let e = form::<Service>("host=a.org&port=abc").unwrap_err();
        assert_eq!(e.message, "schema violation (port: expected an integer)");
        let p: Plugin = form("name=rate-limiting&config.minute=5&config.hide_client_headers=true&config.policy=local").unwrap();
        assert_eq!(p.config["minute"], json!(5));
        assert_eq!(p.config["hide_client_headers"], json!(true));
        let p: Plugin =
            form("name=key-auth&config.key_names=apikey&config.key_names=x-key&protocols=https")
                .unwrap();
        assert_eq!(p.config["key_names"], json!(["apikey", "x-key"]));
        assert_eq!(p.protocols, vec!["https"]);
        let u: Upstream = form("name=up&healthchecks.active.healthy.interval=5&healthchecks.active.healthy.http_statuses=200").unwrap();
        assert_eq!(u.healthchecks.active.healthy.http_statuses, vec![200]);
        // an empty form value clears a field
        let s: Service = form("name=&host=a.org").unwrap();
        assert_eq!(s.name, None);
    }

    #[test]
    fn create_keeps_given_id_and_rejects_bad_id() {
        let id = Uuid::new_v4();
        let s: Service = create(&json!({"id": id, "host": "a.org"}), 1.0).unwrap();
        assert_eq!(s.id, id);
        let e = create::<Service>(&json!({"id": "nope", "host": "a.org"}), 1.0).unwrap_err();
        assert_eq!(e.message, "schema violation (id: expected a valid UUID)");
        let e = create::<Service>(&json!([1]), 1.0).unwrap_err();
        assert_eq!(e.code, 2);
    }
}
