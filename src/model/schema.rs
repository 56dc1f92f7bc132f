//! A small schema engine after Kong's `kong/db/schema`: typed fields with defaults and
//! validators, nested records, shorthand fields and entity checks, producing Kong's
//! error trees and messages. Every entity schema in the model is declared with it.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::error::KongError;

/// A validator on a (type-checked, non-null) value. `Err` holds Kong's message.
pub type Check = Arc<dyn Fn(&Value) -> Result<(), String> + Send + Sync>;
/// A cross-field check on a processed record; it reports into the error tree.
pub type EntityCheck = Arc<dyn Fn(&Map<String, Value>, &mut Errors) + Send + Sync>;
/// A shorthand: takes the (type-checked, possibly null) shorthand value and rewrites the record.
/// `Err` is the error value for the shorthand's own key.
pub type ShorthandFn =
    Arc<dyn Fn(Value, &mut Map<String, Value>) -> Result<(), Value> + Send + Sync>;

pub const REQUIRED: &str = "required field missing";
pub const UNKNOWN: &str = "unknown field";

/// A field type, as in Kong's schema language.
#[derive(Clone)]
pub enum Ty {
    String,
    Integer,
    Number,
    Boolean,
    Array(Box<Field>),
    Set(Box<Field>),
    Map(Box<Field>, Box<Field>),
    Record(Arc<Record>),
    /// A reference `{"id": "<uuid>"}` to an entity of the named table.
    Foreign(&'static str),
}

/// One field: type, presence rules, default and validators (run in insertion order,
/// which the schemas keep in Kong's validator order).
#[derive(Clone)]
pub struct Field {
    pub ty: Ty,
    pub required: bool,
    pub default: Option<Value>,
    /// Minimum length; strings default to 1 as in Kong (empty strings are rejected).
    pub len_min: Option<usize>,
    /// Kong's `eq = null`: the field may not be set (`err` or "value must be null").
    pub must_be_null: bool,
    /// Replaces any validator message, like Kong's `field.err`.
    pub err: Option<String>,
    pub checks: Vec<Check>,
    /// What the validators check, as Kong's schema JSON names it (`one_of`, `between`,
    /// `uuid`...), for `GET /schemas/...`: the checks themselves are closures.
    pub facts: Vec<(&'static str, Value)>,
}

impl Field {
    fn of(ty: Ty) -> Self {
        Field {
            ty,
            required: false,
            default: None,
            len_min: None,
            must_be_null: false,
            err: None,
            checks: vec![],
            facts: vec![],
        }
    }
    /// Records a property for the schema's JSON form (`GET /schemas/...`).
    pub fn fact(mut self, name: &'static str, value: Value) -> Self {
        self.facts.push((name, value));
        self
    }
    pub fn string() -> Self {
        Self::of(Ty::String)
    }
    pub fn integer() -> Self {
        Self::of(Ty::Integer)
    }
    pub fn number() -> Self {
        Self::of(Ty::Number)
    }
    pub fn boolean() -> Self {
        Self::of(Ty::Boolean)
    }
    pub fn array(elements: Field) -> Self {
        Self::of(Ty::Array(Box::new(elements)))
    }
    pub fn set(elements: Field) -> Self {
        Self::of(Ty::Set(Box::new(elements)))
    }
    pub fn map(keys: Field, values: Field) -> Self {
        Self::of(Ty::Map(Box::new(keys), Box::new(values)))
    }
    pub fn record(r: Record) -> Self {
        Self::of(Ty::Record(Arc::new(r)))
    }
    pub fn foreign(table: &'static str) -> Self {
        Self::of(Ty::Foreign(table))
    }
    /// A uuid string (`typedefs.uuid`).
    pub fn uuid() -> Self {
        Self::string().fact("uuid", Value::Bool(true)).check_str(|s| {
            if super::validators::is_uuid(s) {
                Ok(())
            } else {
                Err("expected a valid UUID".into())
            }
        })
    }
    /// `typedefs.tags`.
    pub fn tags() -> Self {
        Self::set(
            Self::string()
                .required()
                .check_str(super::validators::validate_tag),
        )
    }

    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }
    pub fn default(mut self, v: Value) -> Self {
        self.default = Some(v);
        self
    }
    pub fn len_min(mut self, n: usize) -> Self {
        self.len_min = Some(n);
        self
    }
    pub fn must_be_null(mut self, err: Option<&str>) -> Self {
        self.must_be_null = true;
        self.err = err.map(str::to_string);
        self
    }
    pub fn err(mut self, msg: &str) -> Self {
        self.err = Some(msg.to_string());
        self
    }
    pub fn check(
        mut self,
        f: impl Fn(&Value) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        self.checks.push(Arc::new(f));
        self
    }
    /// A custom validator on a string value.
    pub fn check_str(self, f: impl Fn(&str) -> Result<(), String> + Send + Sync + 'static) -> Self {
        self.check(move |v| match v.as_str() {
            Some(s) => f(s),
            None => Ok(()),
        })
    }
    /// `one_of` for strings: "expected one of: a, b".
    pub fn one_of(self, options: &'static [&'static str]) -> Self {
        self.fact("one_of", options.iter().map(|o| Value::from(*o)).collect()).check(move |v| match v.as_str() {
            Some(s) if options.contains(&s) => Ok(()),
            Some(_) => Err(format!("expected one of: {}", options.join(", "))),
            None => Ok(()),
        })
    }
    /// `one_of` for integers.
    pub fn one_of_int(self, options: &'static [i64]) -> Self {
        self.fact("one_of", options.iter().map(|o| Value::from(*o)).collect()).check(move |v| match v.as_i64() {
            Some(n) if options.contains(&n) => Ok(()),
            _ => {
                let list: Vec<String> = options.iter().map(|n| n.to_string()).collect();
                Err(format!("expected one of: {}", list.join(", ")))
            }
        })
    }
    /// `between`: "value should be between a and b" (Kong prints the limits with %d).
    pub fn between(self, lo: f64, hi: f64) -> Self {
        self.fact("between", serde_json::json!([lo as i64, hi as i64])).check(move |v| match v.as_f64() {
            Some(n) if n < lo || n > hi => Err(format!(
                "value should be between {} and {}",
                lo as i64, hi as i64
            )),
            _ => Ok(()),
        })
    }
    /// `gt`: "value must be greater than 0".
    pub fn gt(self, limit: f64) -> Self {
        self.fact("gt", if limit.fract() == 0.0 { serde_json::json!(limit as i64) } else { serde_json::json!(limit) }).check(move |v| match v.as_f64() {
            Some(n) if n <= limit => Err(format!("value must be greater than {}", fmt_num(limit))),
            _ => Ok(()),
        })
    }
}

/// Lua's `tostring` for a number: integers without a fraction.
pub fn fmt_num(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

/// A shorthand field: accepted on input, never stored (`url` on services).
#[derive(Clone)]
pub struct Shorthand {
    pub name: &'static str,
    pub field: Field,
    pub apply: ShorthandFn,
}

/// An ordered set of fields with shorthands and entity checks.
#[derive(Clone, Default)]
pub struct Record {
    pub fields: Vec<(&'static str, Field)>,
    pub shorthands: Vec<Shorthand>,
    pub entity_checks: Vec<EntityCheck>,
}

impl Record {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn field(mut self, name: &'static str, f: Field) -> Self {
        self.fields.push((name, f));
        self
    }
    /// Replaces a field's definition in place (plugin subschemas override base fields).
    pub fn replace_field(mut self, name: &'static str, f: Field) -> Self {
        match self.fields.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = f,
            None => self.fields.push((name, f)),
        }
        self
    }
    pub fn shorthand(
        mut self,
        name: &'static str,
        field: Field,
        apply: impl Fn(Value, &mut Map<String, Value>) -> Result<(), Value> + Send + Sync + 'static,
    ) -> Self {
        self.shorthands.push(Shorthand {
            name,
            field,
            apply: Arc::new(apply),
        });
        self
    }
    pub fn entity_check(
        mut self,
        f: impl Fn(&Map<String, Value>, &mut Errors) + Send + Sync + 'static,
    ) -> Self {
        self.entity_checks.push(Arc::new(f));
        self
    }
    pub fn get(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|(n, _)| *n == name).map(|(_, f)| f)
    }

    /// Validates `input` as a whole entity: shorthands applied, defaults filled in for
    /// missing fields, every field type-checked and validated, then entity checks run.
    /// Returns the normalised record (every schema field present, `null` when unset).
    pub fn process(&self, input: &Map<String, Value>) -> Result<Map<String, Value>, KongError> {
        self.process_opts(input, true)
    }

    /// [`Record::process`], optionally without applying this level's shorthands (PATCH
    /// applies them to the input only, before merging).
    pub fn process_opts(
        &self,
        input: &Map<String, Value>,
        shorthands: bool,
    ) -> Result<Map<String, Value>, KongError> {
        let (out, errors) = process_record(self, input, shorthands);
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors.into_error())
        }
    }

    /// Applies shorthands only (PATCH applies them to the input before merging).
    pub fn apply_shorthands(&self, data: &mut Map<String, Value>) -> Result<(), KongError> {
        let mut errors = Errors::default();
        apply_shorthands(self, data, &mut errors);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.into_error())
        }
    }

    /// Kong's `arguments.infer`: turns form-data strings into the types the schema wants
    /// (numbers, booleans, one-element arrays; `""` means null).
    pub fn coerce_form(&self, data: &mut Map<String, Value>) {
        for (k, v) in data.iter_mut() {
            let field = self.get(k).or_else(|| {
                self.shorthands
                    .iter()
                    .find(|s| s.name == k)
                    .map(|s| &s.field)
            });
            if let Some(f) = field {
                let taken = std::mem::take(v);
                *v = coerce_value(f, taken);
            }
        }
    }

    /// Kong's `merge_values` for PATCH: `input` over `existing`, records merged field by field.
    pub fn merge(&self, existing: &mut Map<String, Value>, input: Map<String, Value>) {
        for (k, v) in input {
            if let (
                Some(Field {
                    ty: Ty::Record(rec),
                    ..
                }),
                Value::Object(inner),
            ) = (self.get(&k), &v)
            {
                if let Some(Value::Object(old)) = existing.get_mut(&k) {
                    rec.merge(old, inner.clone());
                    continue;
                }
            }
            existing.insert(k, v);
        }
    }
}

/// An error tree being built: field errors by (dotted) path and `@entity` messages.
#[derive(Debug, Default, Clone)]
pub struct Errors(pub Map<String, Value>);

impl Errors {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Sets the error at a dotted path (`config.header_name`), creating records on the way.
    pub fn field(&mut self, path: &str, err: impl Into<Value>) {
        let mut cur = &mut self.0;
        let parts: Vec<&str> = path.split('.').collect();
        for p in &parts[..parts.len() - 1] {
            let slot = cur
                .entry(p.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            cur = slot.as_object_mut().expect("object");
        }
        cur.insert(parts[parts.len() - 1].to_string(), err.into());
    }
    /// Adds an entity-level message.
    pub fn entity(&mut self, msg: impl Into<String>) {
        let slot = self
            .0
            .entry("@entity".to_string())
            .or_insert_with(|| Value::Array(vec![]));
        if let Value::Array(a) = slot {
            a.push(Value::String(msg.into()));
        }
    }
    /// Is there already an error at this dotted path?
    pub fn has(&self, path: &str) -> bool {
        let mut cur = &self.0;
        let parts: Vec<&str> = path.split('.').collect();
        for (i, p) in parts.iter().enumerate() {
            match cur.get(*p) {
                None => return false,
                Some(Value::Object(m)) if i + 1 < parts.len() => cur = m,
                Some(_) => return i + 1 == parts.len(),
            }
        }
        false
    }
    pub fn into_value(self) -> Value {
        Value::Object(self.0)
    }
    pub fn into_error(self) -> KongError {
        KongError::schema_violation(self.into_value())
    }
}

mod checks;
mod process;

pub use checks::{at_least_one_of, conditional_required, get_path, is_nonempty, quoted_list};
pub(crate) use process::process_record;
pub use process::validate_value;
use process::{apply_shorthands, coerce_value};

#[cfg(test)]
mod tests;
