//! The schema engine's work: shorthands, defaults, type checks, validators, entity
//! checks, and form-data coercion, producing Kong's error trees.

use serde_json::{Map, Value};

use super::{Errors, Field, Record, Ty, REQUIRED, UNKNOWN};

pub(super) fn apply_shorthands(rec: &Record, data: &mut Map<String, Value>, errors: &mut Errors) {
    for sh in &rec.shorthands {
        if let Some(v) = data.remove(sh.name) {
            let checked = if v.is_null() {
                Ok(v)
            } else {
                validate_value(&sh.field, v)
            };
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
        return Err(Value::String(
            field
                .err
                .clone()
                .unwrap_or_else(|| "value must be null".into()),
        ));
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
            let Value::Array(items) = v else {
                return Err(terr());
            };
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
            // A set keeps each value once, the first time it comes (Kong's make_set).
            if matches!(field.ty, Ty::Set(_)) {
                // By each value's JSON text: a hashed set, since a body may hold millions.
                let mut seen = std::collections::HashSet::with_capacity(out.len());
                out.retain(|v| seen.insert(v.to_string()));
            }
            if let Some(min) = field.len_min {
                if out.len() < min {
                    return Err(Value::String(format!("length must be at least {min}")));
                }
            }
            Value::Array(out)
        }
        Ty::Map(keys, values) => {
            let Value::Object(m) = v else {
                return Err(terr());
            };
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
            let Value::Object(m) = v else {
                return Err(terr());
            };
            let (out, errors) = process_record(rec, &m, true);
            if !errors.is_empty() {
                return Err(errors.into_value());
            }
            Value::Object(out)
        }
        Ty::Foreign(_) => {
            let missing = || serde_json::json!({"id": "missing primary key"});
            let Value::Object(m) = v else {
                return Err(missing());
            };
            match m.get("id") {
                None => return Err(missing()),
                Some(Value::Null) => return Err(serde_json::json!({"id": REQUIRED})),
                Some(Value::String(s)) if crate::model::validators::is_uuid(s) => {
                    serde_json::json!({"id": s.to_ascii_lowercase()})
                }
                Some(Value::String(_)) => {
                    return Err(serde_json::json!({"id": "expected a valid UUID"}))
                }
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

pub(super) fn coerce_value(field: &Field, v: Value) -> Value {
    if v.as_str() == Some("") {
        return Value::Null;
    }
    match (&field.ty, v) {
        (Ty::Integer | Ty::Number, Value::String(s)) => {
            let t = s.trim();
            if let Ok(n) = t.parse::<i64>() {
                Value::from(n)
            } else if let Some(n) = t
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .and_then(serde_json::Number::from_f64)
            {
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
        (Ty::Map(_, values), Value::Object(m)) => Value::Object(
            m.into_iter()
                .map(|(k, v)| (k, coerce_value(values, v)))
                .collect(),
        ),
        (Ty::Record(rec), Value::Object(mut m)) => {
            rec.coerce_form(&mut m);
            Value::Object(m)
        }
        (_, v) => v,
    }
}
