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
pub type ShorthandFn = Arc<dyn Fn(Value, &mut Map<String, Value>) -> Result<(), Value> + Send + Sync>;

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
}

impl Field {
    fn of(ty: Ty) -> Self {
        Field { ty, required: false, default: None, len_min: None, must_be_null: false, err: None, checks: vec![] }
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
        Self::string().check_str(|s| {
            if super::validators::is_uuid(s) {
                Ok(())
            } else {
                Err("expected a valid UUID".into())
            }
        })
    }
    /// `typedefs.tags`.
    pub fn tags() -> Self {
        Self::set(Self::string().required().check_str(super::validators::validate_tag))
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
    pub fn check(mut self, f: impl Fn(&Value) -> Result<(), String> + Send + Sync + 'static) -> Self {
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
        self.check(move |v| match v.as_str() {
            Some(s) if options.contains(&s) => Ok(()),
            Some(_) => Err(format!("expected one of: {}", options.join(", "))),
            None => Ok(()),
        })
    }
    /// `one_of` for integers.
    pub fn one_of_int(self, options: &'static [i64]) -> Self {
        self.check(move |v| match v.as_i64() {
            Some(n) if options.contains(&n) => Ok(()),
            _ => {
                let list: Vec<String> = options.iter().map(|n| n.to_string()).collect();
                Err(format!("expected one of: {}", list.join(", ")))
            }
        })
    }
    /// `between`: "value should be between a and b" (Kong prints the limits with %d).
    pub fn between(self, lo: f64, hi: f64) -> Self {
        self.check(move |v| match v.as_f64() {
            Some(n) if n < lo || n > hi => {
                Err(format!("value should be between {} and {}", lo as i64, hi as i64))
            }
            _ => Ok(()),
        })
    }
    /// `gt`: "value must be greater than 0".
    pub fn gt(self, limit: f64) -> Self {
        self.check(move |v| match v.as_f64() {
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
        self.shorthands.push(Shorthand { name, field, apply: Arc::new(apply) });
        self
    }
    pub fn entity_check(mut self, f: impl Fn(&Map<String, Value>, &mut Errors) + Send + Sync + 'static) -> Self {
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
    pub fn process_opts(&self, input: &Map<String, Value>, shorthands: bool) -> Result<Map<String, Value>, KongError> {
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
            let field = self
                .get(k)
                .or_else(|| self.shorthands.iter().find(|s| s.name == k).map(|s| &s.field));
            if let Some(f) = field {
                let taken = std::mem::take(v);
                *v = coerce_value(f, taken);
            }
        }
    }

    /// Kong's `merge_values` for PATCH: `input` over `existing`, records merged field by field.
    pub fn merge(&self, existing: &mut Map<String, Value>, input: Map<String, Value>) {
        for (k, v) in input {
            if let (Some(Field { ty: Ty::Record(rec), .. }), Value::Object(inner)) = (self.get(&k), &v) {
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
            let slot = cur.entry(p.to_string()).or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            cur = slot.as_object_mut().expect("object");
        }
        cur.insert(parts[parts.len() - 1].to_string(), err.into());
    }
    /// Adds an entity-level message.
    pub fn entity(&mut self, msg: impl Into<String>) {
        let slot = self.0.entry("@entity".to_string()).or_insert_with(|| Value::Array(vec![]));
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

fn apply_shorthands(rec: &Record, data: &mut Map<String, Value>, errors: &mut Errors) {
    for sh in &rec.shorthands {
        if let Some(v) = data.remove(sh.name) {
            let checked = if v.is_null() { Ok(v) } else { validate_value(&sh.field, v) };
            match checked {
                Err(e) => errors.field(sh.name, e),
                Ok(v) => {
                    if let Err(e) = (sh.apply)(v, data) {
                        errors.field(sh.name, e);
                    }
                }
            }
        }
    }
}

fn missing_value(field: &Field) -> Option<Value> {
    if let Some(d) = &field.default {
        return Some(d.clone());
    }
    if let Ty::Record(_) = field.ty {
        return Some(Value::Object(Map::new()));
    }
    if !field.required {
        return Some(Value::Null);
    }
    None
}

pub(crate) fn process_record(
    rec: &Record,
    input: &Map<String, Value>,
    shorthands: bool,
) -> (Map<String, Value>, Errors) {
    let mut errors = Errors::default();
    let mut data = input.clone();
    if shorthands {
        // As in Kong, a failing shorthand is reported alone: nothing else is validated.
        apply_shorthands(rec, &mut data, &mut errors);
        if !errors.is_empty() {
            return (data, errors);
        }
    }
    for k in input.keys() {
        if rec.get(k).is_none() && data.contains_key(k) {
            errors.field(k, UNKNOWN);
            data.remove(k);
        }
    }

    let mut out = Map::new();
    for (name, field) in &rec.fields {
        let v = match data.remove(*name) {
            None => missing_value(field),
            // A null record, or null on an optional field with a default, takes the
            // default: stored entities never hold null where a default exists.
            Some(Value::Null) if matches!(field.ty, Ty::Record(_)) => missing_value(field),
            Some(Value::Null) if field.default.is_some() && !field.required => missing_value(field),
            Some(v) => Some(v),
        };
        match v {
            None => {
                errors.field(name, REQUIRED);
                out.insert(name.to_string(), Value::Null);
            }
            Some(Value::Null) => {
                if field.required {
                    errors.field(name, REQUIRED);
                }
                out.insert(name.to_string(), Value::Null);
            }
            Some(v) => match validate_value(field, v.clone()) {
                Ok(nv) => {
                    out.insert(name.to_string(), nv);
                }
                Err(e) => {
                    errors.field(name, e);
                    out.insert(name.to_string(), v);
                }
            },
        }
    }
    for check in &rec.entity_checks {
        check(&out, &mut errors);
    }
    (out, errors)
}

fn type_error(ty: &Ty) -> &'static str {
    match ty {
        Ty::String => "expected a string",
        Ty::Integer => "expected an integer",
        Ty::Number => "expected a number",
        Ty::Boolean => "expected a boolean",
        Ty::Array(_) => "expected an array",
        Ty::Set(_) => "expected a set",
        Ty::Map(..) => "expected a map",
        Ty::Record(_) => "expected a record",
        Ty::Foreign(_) => "expected a record",
    }
}

/// Type-checks and validates a non-null value; returns it normalised (integers as
/// integers, nested defaults filled in, foreign keys reduced to `{"id"}`), or the error
/// (a message, or a tree for arrays and records).
pub fn validate_value(field: &Field, v: Value) -> Result<Value, Value> {
    if field.must_be_null {
        return Err(Value::String(field.err.clone().unwrap_or_else(|| "value must be null".into())));
    }
    let terr = || Value::String(type_error(&field.ty).into());
    let v = match &field.ty {
        Ty::String => {
            let s = v.as_str().ok_or_else(terr)?;
            let min = field.len_min.unwrap_or(1);
            if s.len() < min {
                return Err(Value::String(format!("length must be at least {min}")));
            }
            v
        }
        Ty::Integer => {
            let n = as_integer(&v).ok_or_else(terr)?;
            Value::from(n)
        }
        Ty::Number => {
            if !v.is_number() {
                return Err(terr());
            }
            v
        }
        Ty::Boolean => {
            if !v.is_boolean() {
                return Err(terr());
            }
            v
        }
        Ty::Array(elem) | Ty::Set(elem) => {
            let Value::Array(items) = v else { return Err(terr()) };
            let mut errs = vec![Value::Null; items.len()];
            let mut failed = false;
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                if item.is_null() {
                    errs[i] = Value::String(REQUIRED.into());
                    failed = true;
                    out.push(item);
                    continue;
                }
                match validate_value(elem, item.clone()) {
                    Ok(nv) => out.push(nv),
                    Err(e) => {
                        errs[i] = e;
                        failed = true;
                        out.push(item);
                    }
                }
            }
            if failed {
                return Err(Value::Array(errs));
            }
            if let Some(min) = field.len_min {
                if out.len() < min {
                    return Err(Value::String(format!("length must be at least {min}")));
                }
            }
            Value::Array(out)
        }
        Ty::Map(keys, values) => {
            let Value::Object(m) = v else { return Err(terr()) };
            let mut out = Map::new();
            for (k, val) in m {
                validate_value(keys, Value::String(k.clone()))?;
                if val.is_null() {
                    return Err(Value::String(REQUIRED.into()));
                }
                let nv = validate_value(values, val)?;
                out.insert(k, nv);
            }
            Value::Object(out)
        }
        Ty::Record(rec) => {
            let Value::Object(m) = v else { return Err(terr()) };
            let (out, errors) = process_record(rec, &m, true);
            if !errors.is_empty() {
                return Err(errors.into_value());
            }
            Value::Object(out)
        }
        Ty::Foreign(_) => {
            let missing = || serde_json::json!({"id": "missing primary key"});
            let Value::Object(m) = v else { return Err(missing()) };
            match m.get("id") {
                None => return Err(missing()),
                Some(Value::Null) => return Err(serde_json::json!({"id": REQUIRED})),
                Some(Value::String(s)) if super::validators::is_uuid(s) => {
                    serde_json::json!({"id": s.to_ascii_lowercase()})
                }
                Some(Value::String(_)) => return Err(serde_json::json!({"id": "expected a valid UUID"})),
                Some(_) => return Err(serde_json::json!({"id": "expected a string"})),
            }
        }
    };
    for check in &field.checks {
        if let Err(msg) = check(&v) {
            return Err(Value::String(field.err.clone().unwrap_or(msg)));
        }
    }
    Ok(v)
}

fn as_integer(v: &Value) -> Option<i64> {
    if let Some(n) = v.as_i64() {
        return Some(n);
    }
    let f = v.as_f64()?;
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15 {
        Some(f as i64)
    } else {
        None
    }
}

fn coerce_value(field: &Field, v: Value) -> Value {
    if v.as_str() == Some("") {
        return Value::Null;
    }
    match (&field.ty, v) {
        (Ty::Integer | Ty::Number, Value::String(s)) => {
            let t = s.trim();
            if let Ok(n) = t.parse::<i64>() {
                Value::from(n)
            } else if let Some(n) = t.parse::<f64>().ok().filter(|f| f.is_finite()).and_then(serde_json::Number::from_f64) {
                Value::Number(n)
            } else {
                Value::String(s)
            }
        }
        (Ty::Boolean, Value::String(s)) if s == "true" => Value::Bool(true),
        (Ty::Boolean, Value::String(s)) if s == "false" => Value::Bool(false),
        (Ty::Array(elem) | Ty::Set(elem), v) => {
            let items = match v {
                Value::Array(a) => a,
                Value::Null => return Value::Null,
                other => vec![other],
            };
            Value::Array(items.into_iter().map(|i| coerce_value(elem, i)).collect())
        }
        (Ty::Map(_, values), Value::Object(m)) => {
            Value::Object(m.into_iter().map(|(k, v)| (k, coerce_value(values, v))).collect())
        }
        (Ty::Record(rec), Value::Object(mut m)) => {
            rec.coerce_form(&mut m);
            Value::Object(m)
        }
        (_, v) => v,
    }
}

/// Kong's `is_nonempty`: not null, not `""`, not an empty array or object.
pub fn is_nonempty(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        Some(_) => true,
    }
}

/// Looks up a dotted path (`config.minute`) in a record.
pub fn get_path<'a>(m: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut cur = m.get(parts.next()?)?;
    for p in parts {
        cur = cur.as_object()?.get(p)?;
    }
    Some(cur)
}

/// `'a', 'b', 'c'` as in Kong's `quoted_list`.
pub fn quoted_list(names: &[&str]) -> String {
    names.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", ")
}

/// Entity check `at_least_one_of`.
pub fn at_least_one_of(names: &'static [&'static str]) -> impl Fn(&Map<String, Value>, &mut Errors) + Send + Sync {
    move |m, errors| {
        if !names.iter().any(|n| is_nonempty(get_path(m, n))) {
            errors.entity(format!("at least one of these fields must be non-empty: {}", quoted_list(names)));
        }
    }
}

/// Entity check `conditional` with `then_match = { required = true }`.
pub fn conditional_required(
    if_field: &'static str,
    if_value: &'static str,
    then_field: &'static str,
) -> impl Fn(&Map<String, Value>, &mut Errors) + Send + Sync {
    move |m, errors| {
        if get_path(m, if_field).and_then(Value::as_str) == Some(if_value)
            && get_path(m, then_field).is_none_or(Value::is_null)
        {
            errors.field(then_field, REQUIRED);
            errors.entity(format!("failed conditional validation given value of field '{if_field}'"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec() -> Record {
        Record::new()
            .field("name", Field::string().required())
            .field("port", Field::integer().default(json!(80)).between(0.0, 65535.0))
            .field("on", Field::boolean().default(json!(true)))
            .field("list", Field::array(Field::string().one_of(&["a", "b"])))
            .field(
                "inner",
                Field::record(Record::new().field("x", Field::number().default(json!(1))).field("y", Field::string())),
            )
            .field("svc", Field::foreign("services"))
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn defaults_and_nulls() {
        let out = rec().process(&obj(json!({"name": "n"}))).unwrap();
        assert_eq!(
            Value::Object(out),
            json!({"name": "n", "port": 80, "on": true, "list": null, "inner": {"x": 1, "y": null}, "svc": null})
        );
    }

    #[test]
    fn errors_tree_and_messages() {
        let e = rec()
            .process(&obj(json!({"port": "x", "foo": 1, "list": ["a", "c"], "inner": {"x": "s"}, "svc": {"id": "nope"}})))
            .unwrap_err();
        assert_eq!(
            e.fields,
            json!({
                "foo": "unknown field",
                "name": "required field missing",
                "port": "expected an integer",
                "list": [null, "expected one of: a, b"],
                "inner": {"x": "expected a number"},
                "svc": {"id": "expected a valid UUID"},
            })
        );
        assert_eq!(
            e.message,
            "6 schema violations (foo: unknown field; inner.x: expected a number; list.2: expected one of: a, b; \
             name: required field missing; port: expected an integer; svc.id: expected a valid UUID)"
        );
    }

    #[test]
    fn integer_normalisation_and_range() {
        let out = rec().process(&obj(json!({"name": "n", "port": 8080.0}))).unwrap();
        assert_eq!(out["port"], json!(8080));
        let e = rec().process(&obj(json!({"name": "n", "port": 70000}))).unwrap_err();
        assert_eq!(e.message, "schema violation (port: value should be between 0 and 65535)");
        let e = rec().process(&obj(json!({"name": "n", "port": 1.5}))).unwrap_err();
        assert_eq!(e.message, "schema violation (port: expected an integer)");
    }

    #[test]
    fn empty_string_rejected() {
        let e = rec().process(&obj(json!({"name": ""}))).unwrap_err();
        assert_eq!(e.message, "schema violation (name: length must be at least 1)");
    }

    #[test]
    fn coerce_form_values() {
        let mut m = obj(json!({"name": "n", "port": "81", "on": "false", "list": "a", "inner": {"x": "2.5"}}));
        rec().coerce_form(&mut m);
        assert_eq!(Value::Object(m), json!({"name": "n", "port": 81, "on": false, "list": ["a"], "inner": {"x": 2.5}}));
        let mut m = obj(json!({"name": "n", "port": ""}));
        rec().coerce_form(&mut m);
        assert_eq!(m["port"], Value::Null);
    }

    #[test]
    fn merge_records_field_by_field() {
        let mut existing = obj(json!({"name": "n", "inner": {"x": 1, "y": "a"}, "list": ["a"]}));
        rec().merge(&mut existing, obj(json!({"inner": {"y": "b"}, "list": ["b"]})));
        assert_eq!(Value::Object(existing), json!({"name": "n", "inner": {"x": 1, "y": "b"}, "list": ["b"]}));
    }

    #[test]
    fn errors_paths() {
        let mut e = Errors::default();
        e.field("config.header_name", REQUIRED);
        assert!(e.has("config.header_name"));
        assert!(e.has("config"));
        assert!(!e.has("config.path"));
    }
}
