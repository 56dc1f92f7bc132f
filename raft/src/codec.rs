//! The one encoding used on disk and on the wire: bincode 2 (serde), standard config,
//! with a size limit so that a corrupt or hostile length prefix cannot allocate gigabytes.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Largest value we ever encode or decode: a whole-map snapshot chunk or a log batch.
pub const MAX_DECODE_BYTES: usize = 256 << 20;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_DECODE_BYTES>()
}

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// A value could not be encoded: a bug, or a value over `MAX_DECODE_BYTES`.
    #[error("encode: {0}")]
    Encode(#[from] bincode::error::EncodeError),
    /// Bytes were not a valid encoding of the expected type: a corrupt file, or a peer
    /// speaking another version of the protocol.
    #[error("decode: {0}")]
    Decode(#[from] bincode::error::DecodeError),
}

pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    Ok(bincode::serde::encode_to_vec(value, config())?)
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    Ok(decode_prefix(bytes)?.0)
}

/// A value at the start of `bytes`, and how many bytes it took: what follows is for
/// readers that know of it (older ones stop at the value, as `decode` does).
pub fn decode_prefix<T: DeserializeOwned>(bytes: &[u8]) -> Result<(T, usize), CodecError> {
    Ok(bincode::serde::decode_from_slice(bytes, config())?)
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::types::KeyValue;

    /// `KeyValue` as it was stored and replicated before its value became shared.
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct OwnedKeyValue {
        value: Vec<u8>,
        create_revision: u64,
        mod_revision: u64,
        version: u64,
        expires_at: Option<u64>,
    }

    /// Data written by a node before `KeyValue::value` was an `Arc<[u8]>` must read back
    /// on one after it, and the other way round, byte for byte.
    #[test]
    fn a_shared_value_is_encoded_as_an_owned_one_was() {
        let owned = OwnedKeyValue { value: b"{\"id\":1}".to_vec(), create_revision: 3, mod_revision: 900, version: 2, expires_at: Some(1 << 40) };
        let shared = KeyValue { value: owned.value.clone().into(), create_revision: 3, mod_revision: 900, version: 2, expires_at: Some(1 << 40) };
        let bytes = encode(&owned).unwrap();
        assert_eq!(encode(&shared).unwrap(), bytes);
        assert_eq!(decode::<KeyValue>(&bytes).unwrap(), shared);
        assert_eq!(decode::<OwnedKeyValue>(&encode(&shared).unwrap()).unwrap(), owned);
    }
}
