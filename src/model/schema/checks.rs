//! Entity-check helpers of the schema engine (`at_least_one_of`, `conditional`, ...).

use serde_json::{Map, Value};

use super::{Errors, REQUIRED};

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
    names
        .iter()
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Entity check `at_least_one_of`.
pub fn at_least_one_of(
    names: &'static [&'static str],
) -> impl Fn(&Map<String, Value>, &mut Errors) + Send + Sync {
    move |m, errors| {
        if !names.iter().any(|n| is_nonempty(get_path(m, n))) {
            errors.entity(format!(
                "at least one of these fields must be non-empty: {}",
                quoted_list(names)
            ));
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
            errors.entity(format!(
                "failed conditional validation given value of field '{if_field}'"
            ));
        }
    }
}
