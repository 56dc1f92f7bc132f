//! Keys key-auth has already matched, per thread: a known key skips the SHA-256, the
//! index lookups and the formatting of the consumer headers that matching it costs (as
//! Kong caches credentials by key). The cache holds for one set of consumers and
//! credentials: any change to either (the persistent maps compare by pointer) empties
//! it. Unknown keys are never cached, so a client trying keys cannot grow it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use hyper::header::HeaderValue;
use uuid::Uuid;

use crate::model::{hash_key, ConfigSnapshot, Consumer, KeyAuthCredential};
use crate::proxy::context::ConsumerInfo;

/// Known keys kept per thread; past this the cache starts over.
const MAX_KNOWN: usize = 10_000;

/// A matched key: who it names, and the header values that say so upstream.
pub struct Known {
    pub credential: KeyAuthCredential,
    pub consumer: ConsumerInfo,
    pub consumer_id: HeaderValue,
    pub credential_id: HeaderValue,
    pub username: Option<HeaderValue>,
    pub custom_id: Option<HeaderValue>,
}

impl Known {
    fn new(credential: &KeyAuthCredential, consumer: &Consumer) -> Known {
        let uuid_value = |id: Uuid| HeaderValue::from_str(id.hyphenated().encode_lower(&mut Uuid::encode_buffer())).expect("a uuid is a valid header value");
        let text_value = |s: &Option<String>| s.as_deref().and_then(|s| HeaderValue::from_str(s).ok());
        Known {
            credential: credential.clone(),
            consumer: ConsumerInfo { id: consumer.id, username: consumer.username.clone(), custom_id: consumer.custom_id.clone() },
            consumer_id: uuid_value(consumer.id),
            credential_id: uuid_value(credential.id),
            username: text_value(&consumer.username),
            custom_id: text_value(&consumer.custom_id),
        }
    }
}

#[derive(Default)]
struct Cache {
    /// The maps the entries were matched against.
    consumers: Option<imbl::OrdMap<Uuid, Consumer>>,
    credentials: Option<imbl::OrdMap<Uuid, KeyAuthCredential>>,
    known: HashMap<String, Rc<Known>>,
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::default();
}

/// The consumer and credential `key` names in `snapshot`, if any (expired or not: the
/// caller checks the credential's ttl).
pub fn lookup(snapshot: &ConfigSnapshot, key: &str) -> Option<Rc<Known>> {
    CACHE.with_borrow_mut(|cache| {
        let current = cache.consumers.as_ref().is_some_and(|c| c.ptr_eq(&snapshot.consumers))
            && cache.credentials.as_ref().is_some_and(|c| c.ptr_eq(&snapshot.keyauth_credentials));
        if !current {
            *cache = Cache { consumers: Some(snapshot.consumers.clone()), credentials: Some(snapshot.keyauth_credentials.clone()), known: HashMap::new() };
        }
        if let Some(known) = cache.known.get(key) {
            return Some(Rc::clone(known));
        }
        let (credential, consumer) = snapshot.consumer_by_credential_hash(&hash_key(key))?;
        let known = Rc::new(Known::new(credential, consumer));
        if cache.known.len() >= MAX_KNOWN {
            cache.known.clear();
        }
        cache.known.insert(key.to_owned(), Rc::clone(&known));
        Some(known)
    })
}
