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
    let (value, _read) = bincode::serde::decode_from_slice(bytes, config())?;
    Ok(value)
}
