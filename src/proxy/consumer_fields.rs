//! The fields that tell the upstream which consumer an auth plugin found (Kong's
//! X-Consumer-ID, X-Consumer-Custom-ID, X-Consumer-Username, X-Credential-Identifier and
//! X-Anonymous-Consumer). Once a plugin has found one, these replace whatever the client
//! sent under those names, so that a client cannot forge them; they are written straight
//! onto the upstream connection with the gateway's other fields (`upstream_headers`),
//! which costs no hashed insert or removal in the request's header map.

use std::sync::Arc;

use hyper::header::{HeaderName, HeaderValue};
use uuid::Uuid;

use crate::http::fields::write_field;
use crate::model::Consumer;

static X_CONSUMER_ID: HeaderName = HeaderName::from_static("x-consumer-id");
static X_CONSUMER_CUSTOM_ID: HeaderName = HeaderName::from_static("x-consumer-custom-id");
static X_CONSUMER_USERNAME: HeaderName = HeaderName::from_static("x-consumer-username");
static X_CREDENTIAL_IDENTIFIER: HeaderName = HeaderName::from_static("x-credential-identifier");
static X_ANONYMOUS_CONSUMER: HeaderName = HeaderName::from_static("x-anonymous-consumer");

/// Every name these fields use: a client's fields by these names never reach the upstream
/// once a consumer is set, even those this consumer has no value for.
pub static NAMES: [&HeaderName; 5] = [&X_CONSUMER_ID, &X_CONSUMER_CUSTOM_ID, &X_CONSUMER_USERNAME, &X_CREDENTIAL_IDENTIFIER, &X_ANONYMOUS_CONSUMER];

/// Whether a client's field `name` stands for one of `NAMES`: the name itself, or a
/// spelling with underscores for hyphens, which CGI-style upstreams (PHP, WSGI, Rack)
/// read as the same variable (`HTTP_X_CONSUMER_ID`). nginx, and so Kong, drops names
/// with underscores outright.
pub fn is_consumer_field(name: &HeaderName) -> bool {
    if NAMES.contains(&name) {
        return true;
    }
    let name = name.as_str().as_bytes();
    name.contains(&b'_')
        && NAMES.iter().any(|ours| {
            let ours = ours.as_str().as_bytes();
            ours.len() == name.len() && ours.iter().zip(name).all(|(&o, &n)| o == n || (o == b'-' && n == b'_'))
        })
}

/// The values for one consumer (and the credential it was matched by), made once: the
/// key-auth cache keeps them for every later request with the same key.
#[derive(Debug)]
pub struct ConsumerValues {
    consumer_id: HeaderValue,
    custom_id: Option<HeaderValue>,
    username: Option<HeaderValue>,
    credential_id: Option<HeaderValue>,
}

impl ConsumerValues {
    pub fn new(consumer: &Consumer, credential: Option<Uuid>) -> ConsumerValues {
        let uuid_value = |id: Uuid| HeaderValue::from_str(id.hyphenated().encode_lower(&mut Uuid::encode_buffer())).expect("a uuid is a valid header value");
        // A name that is no valid field value (a control character) is left out, as
        // the upstream could not be told it anyway.
        let text_value = |s: &Option<String>| s.as_deref().and_then(|s| HeaderValue::from_str(s).ok());
        ConsumerValues {
            consumer_id: uuid_value(consumer.id),
            custom_id: text_value(&consumer.custom_id),
            username: text_value(&consumer.username),
            credential_id: credential.map(uuid_value),
        }
    }
}

/// What a request tells its upstream about its consumer.
#[derive(Debug, Clone)]
pub struct ConsumerFields {
    pub values: Arc<ConsumerValues>,
    /// The consumer is the plugin's `anonymous` one: no credential matched.
    pub anonymous: bool,
}

impl ConsumerFields {
    /// Writes the fields this consumer has values for.
    pub fn write(&self, out: &mut Vec<u8>) {
        let v = &self.values;
        let fields = [
            (&X_CONSUMER_ID, Some(&v.consumer_id)),
            (&X_CONSUMER_CUSTOM_ID, v.custom_id.as_ref()),
            (&X_CONSUMER_USERNAME, v.username.as_ref()),
            (&X_CREDENTIAL_IDENTIFIER, v.credential_id.as_ref()),
        ];
        for (name, value) in fields {
            if let Some(value) = value {
                write_field(out, name.as_str().as_bytes(), value.as_bytes());
            }
        }
        if self.anonymous {
            write_field(out, X_ANONYMOUS_CONSUMER.as_str().as_bytes(), b"true");
        }
    }

    /// What the upstream gets for `name` (any case): `None` if it is not one of these
    /// fields, `Some(None)` if this consumer has no value for it. Plugins that read a
    /// request field by name see these, as they would in Kong, not what the client sent.
    pub fn value(&self, name: &str) -> Option<Option<&[u8]>> {
        let v = &self.values;
        let is = |field: &HeaderName| name.eq_ignore_ascii_case(field.as_str());
        let value = if is(&X_CONSUMER_ID) {
            Some(&v.consumer_id)
        } else if is(&X_CONSUMER_CUSTOM_ID) {
            v.custom_id.as_ref()
        } else if is(&X_CONSUMER_USERNAME) {
            v.username.as_ref()
        } else if is(&X_CREDENTIAL_IDENTIFIER) {
            v.credential_id.as_ref()
        } else if is(&X_ANONYMOUS_CONSUMER) {
            return Some(self.anonymous.then_some(b"true"));
        } else {
            return None;
        };
        Some(value.map(HeaderValue::as_bytes))
    }

    /// The fields as (name, value) pairs, in the order `write` puts them.
    #[cfg(test)]
    pub fn pairs(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        self.write(&mut out);
        String::from_utf8(out)
            .expect("test values are UTF-8")
            .split_terminator("\r\n")
            .map(|line| line.split_once(": ").map(|(n, v)| (n.to_owned(), v.to_owned())).expect("a field line"))
            .collect()
    }
}
