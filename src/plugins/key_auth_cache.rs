//! Keys key-auth has already matched, per thread: a known key skips the SHA-256, the
//! index lookups and the formatting of the consumer headers that matching it costs (as
//! Kong caches credentials by key). The cache holds for one set of consumers and
//! credentials: any change to either (the persistent maps compare by pointer) empties
//! it. Unknown keys are never cached, so a client trying keys cannot grow it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use uuid::Uuid;

use crate::proxy::consumer_fields::ConsumerValues;
use crate::model::{hash_key, ConfigSnapshot, Consumer, KeyAuthCredential};
use crate::proxy::context::ConsumerInfo;

/// Known keys kept per thread; past this the cache starts over.
const MAX_KNOWN: usize = 10_000;

/// A matched key: who it names, and the header values that say so upstream.
pub struct Known {
    pub credential: KeyAuthCredential,
    /// Shared with each request it authenticates: a copy would allocate its names.
    pub consumer: Arc<ConsumerInfo>,
    /// The fields that name the consumer upstream, shared with each request.
    pub fields: Arc<ConsumerValues>,
}

#[derive(Default)]
struct Cache {
    /// The maps the entries were matched against.
    consumers: Option<imbl::OrdMap<Uuid, Consumer>>,
    credentials: Option<imbl::OrdMap<Uuid, KeyAuthCredential>>,
    known: KnownKeys,
}

/// Hashed with foldhash, seeded per process: a request's key is hashed on every request,
/// where SipHash showed in instruction counts, and only valid keys are stored, so a
/// client cannot fill the map with keys that collide.
type KnownKeys = HashMap<String, Rc<Known>, foldhash::fast::RandomState>;

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
            *cache = Cache { consumers: Some(snapshot.consumers.clone()), credentials: Some(snapshot.keyauth_credentials.clone()), known: KnownKeys::default() };
        }
        if let Some(known) = cache.known.get(key) {
            return Some(Rc::clone(known));
        }
        let (credential, consumer) = snapshot.consumer_by_credential_hash(&hash_key(key))?;
        let fields = Arc::new(ConsumerValues::new(consumer, Some(credential.id)));
        let known = Rc::new(Known { credential: credential.clone(), consumer: Arc::new(ConsumerInfo::from(consumer)), fields });
        if cache.known.len() >= MAX_KNOWN {
            cache.known.clear();
        }
        cache.known.insert(key.to_owned(), Rc::clone(&known));
        Some(known)
    })
}
