//! Request bodies as the Admin API accepts them: JSON, or form data as curl sends it
//! (`--data name=x --data 'paths[]=/a'`, or multipart with `-F`), coerced to the types
//! the entity's schema wants.

use hyper::StatusCode;
use serde_json::{Map, Value};

use super::server::AdminRequest;
use super::multipart;
use crate::model::input::{fields_to_json, form_to_json};
use crate::model::{coerce_form, EntityType};

/// A body the Admin API refuses before looking at it, with Kong's status and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadBody {
    pub status: StatusCode,
    pub message: String,
}

fn bad(status: StatusCode, message: &str) -> BadBody {
    BadBody { status, message: message.to_owned() }
}

/// The request's media type, lower-cased, without parameters (`; charset=`, `; boundary=`).
pub fn media_type(req: &AdminRequest) -> String {
    req.content_type.as_deref().unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

/// The body as an input object, without schema coercion.
pub fn raw_input(req: &AdminRequest) -> Result<Map<String, Value>, BadBody> {
    let ct = media_type(req);
    if req.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    let json = || match serde_json::from_slice::<Value>(&req.body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(bad(StatusCode::BAD_REQUEST, "Cannot parse JSON body: expected an object")),
        Err(_) => Err(bad(StatusCode::BAD_REQUEST, "Cannot parse JSON body")),
    };
    let form = || match std::str::from_utf8(&req.body) {
        Ok(text) => Ok(form_to_json(text)),
        Err(_) => Err(bad(StatusCode::BAD_REQUEST, "Cannot parse form body: not UTF-8")),
    };
    match ct.as_str() {
        "application/json" => json(),
        "application/x-www-form-urlencoded" => form(),
        "multipart/form-data" => multipart_fields(req).map(fields_to_json),
        // No content type: guess as curl users expect.
        "" if req.body.first() == Some(&b'{') => json(),
        "" => form(),
        _ => Err(bad(StatusCode::UNSUPPORTED_MEDIA_TYPE, &format!("Unsupported content type {ct:?}: use application/json, form data or multipart"))),
    }
}

/// A multipart body's fields, as a form's.
pub fn multipart_fields(req: &AdminRequest) -> Result<Vec<(String, String)>, BadBody> {
    multipart::fields(req.content_type.as_deref().unwrap_or(""), req.body.clone()).map_err(|e| bad(StatusCode::BAD_REQUEST, &e.to_string()))
}

/// The body as input for entity `E`: form values become the numbers, booleans and arrays
/// the schema expects.
pub fn entity_input<E: EntityType>(req: &AdminRequest) -> Result<Map<String, Value>, BadBody> {
    let mut input = raw_input(req)?;
    if is_form(req) {
        coerce_form::<E>(&mut input);
    }
    Ok(input)
}

/// Whether the body is form data, whose values are all text until a schema types them.
pub fn is_form(req: &AdminRequest) -> bool {
    let is_json = req.content_type.as_deref().is_some_and(|c| c.contains("json")) || req.body.first() == Some(&b'{');
    !is_json
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use hyper::Method;

    use super::*;
    use crate::model::Route;

    fn req(ct: Option<&str>, body: &str) -> AdminRequest {
        AdminRequest {
            method: Method::POST,
            segments: vec![],
            query: vec![],
            content_type: ct.map(str::to_owned),
            body: Bytes::from(body.to_owned()),
        }
    }

    #[test]
    fn json_and_form_bodies_give_the_same_input() {
        let j = entity_input::<Route>(&req(Some("application/json"), r#"{"paths":["/a"],"strip_path":false}"#)).unwrap();
        let f = entity_input::<Route>(&req(Some("application/x-www-form-urlencoded"), "paths[]=/a&strip_path=false")).unwrap();
        assert_eq!(j, f);
        let parts = "--x\r\nContent-Disposition: form-data; name=\"paths[]\"\r\n\r\n/a\r\n--x\r\nContent-Disposition: form-data; name=\"strip_path\"\r\n\r\nfalse\r\n--x--\r\n";
        let m = entity_input::<Route>(&req(Some("multipart/form-data; boundary=x"), parts)).unwrap();
        assert_eq!(j, m);
        assert_eq!(raw_input(&req(Some("multipart/form-data; boundary=x"), "--x\r\n")).unwrap_err().status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn bad_bodies_get_kongs_errors() {
        assert_eq!(raw_input(&req(Some("application/json"), "{nope")).unwrap_err().status, StatusCode::BAD_REQUEST);
        assert_eq!(raw_input(&req(Some("text/xml"), "<a/>")).unwrap_err().status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(raw_input(&req(None, "  ")).unwrap().is_empty());
    }
}
