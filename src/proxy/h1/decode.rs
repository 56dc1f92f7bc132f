//! Reading an upstream's HTTP/1.1 response out of a connection's buffer: the head (status,
//! headers, how the body is framed, whether the connection may carry another request)
//! and chunked bodies. Functions over bytes only, so the framing rules (RFC 9112 §6) are
//! tested without sockets.

use std::mem::MaybeUninit;

use bytes::{Bytes, BytesMut};
use hyper::header::{HeaderValue, CONTENT_LENGTH};
use hyper::http::response::Parts;
use hyper::{Method, Response, StatusCode, Version};

use super::raw_fields::RawFields;
use crate::http::fields::{content_length_of, ContentLength};

/// A response head larger than this is refused (hyper's client allows about as much).
pub const MAX_HEAD: usize = 64 * 1024;
/// Header fields per response head, as hyper's limit.
const MAX_HEADERS: usize = 100;
/// A chunk-size line (with extensions) or a trailer line longer than this is refused.
const MAX_LINE: usize = 4096;
/// Trailer bytes per body; trailers are read and dropped, as nginx does.
const MAX_TRAILERS: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("invalid response head: {0}")]
    Head(httparse::Error),
    #[error("response head over {MAX_HEAD} bytes")]
    HeadTooLarge,
    #[error("invalid status code {0}")]
    Status(u16),
    #[error("101 Switching Protocols from an upstream that was not asked to switch")]
    UnaskedUpgrade,
    #[error("invalid or conflicting content-length")]
    ContentLength,
    #[error("transfer-encoding other than chunked, from HTTP/1.0, or next to a content-length")]
    TransferEncoding,
    #[error("invalid chunk size line")]
    ChunkSize,
    #[error("chunk data not followed by CRLF")]
    ChunkEnd,
    #[error("trailers over {MAX_TRAILERS} bytes")]
    TrailersTooLarge,
}

/// How a response's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body: a HEAD request's response, 204, 304.
    Empty,
    Length(u64),
    Chunked,
    /// Delimited by the upstream closing the connection.
    UntilClose,
}

#[derive(Debug)]
pub struct Head {
    /// Status and version; no header fields but, for a response without a body, its
    /// Content-Length (a HEAD's says how long the GET's body is), which the client's
    /// head is framed by.
    pub parts: Parts,
    /// The fields as they came, framing fields included.
    pub fields: RawFields,
    pub framing: Framing,
    /// Whether the connection may carry another request once this body is read.
    pub keep_alive: bool,
}

/// Takes a complete response head off the front of `buf`, skipping interim (1xx)
/// responses. `Ok(None)`: the head is not complete yet; `buf` keeps what was read, minus
/// any interim responses already skipped (`skipped_interim` then says so).
pub fn parse_head(buf: &mut BytesMut, method: &Method, skipped_interim: &mut bool) -> Result<Option<Head>, DecodeError> {
    loop {
        // Left uninitialized: zeroing 100 fields for every response showed in profiles.
        let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut []);
        let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut resp, buf, &mut fields) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => return Err(DecodeError::HeadTooLarge),
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(DecodeError::Head(e)),
        };
        let code = resp.code.unwrap_or_default();
        let status = StatusCode::from_u16(code).map_err(|_| DecodeError::Status(code))?;
        if status == StatusCode::SWITCHING_PROTOCOLS {
            return Err(DecodeError::UnaskedUpgrade);
        }
        if status.is_informational() {
            let _ = buf.split_to(len);
            *skipped_interim = true;
            continue;
        }
        let version = if resp.version == Some(0) { Version::HTTP_10 } else { Version::HTTP_11 };
        let fields = RawFields::parsed(buf, resp.headers);
        let fields = fields.with_head(buf.split_to(len).freeze());
        let (framing, keep_alive, length) = framing(method, status, version, &fields)?;
        let mut parts = Response::new(()).into_parts().0;
        parts.status = status;
        // The response is framed anew for the client: an HTTP/1.0 upstream's version
        // mattered only for this connection's keep-alive.
        parts.version = Version::HTTP_11;
        if let (Framing::Empty, Some(length)) = (framing, length) {
            parts.headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
        }
        return Ok(Some(Head { parts, fields, framing, keep_alive }));
    }
}

/// RFC 9112 §6.3: the body's length, in order of precedence; whether the connection
/// outlives this response; and the Content-Length, once (a list of equal values, `4, 4`,
/// counts as one, as RFC 9110 §8.6 asks of a proxy).
fn framing(method: &Method, status: StatusCode, version: Version, fields: &RawFields) -> Result<(Framing, bool, Option<u64>), DecodeError> {
    let mut keep_alive = version == Version::HTTP_11;
    for token in fields.values("connection").flat_map(|v| v.split(|&b| b == b',')) {
        let token = token.trim_ascii();
        if token.eq_ignore_ascii_case(b"close") {
            keep_alive = false;
        } else if token.eq_ignore_ascii_case(b"keep-alive") && version == Version::HTTP_10 {
            keep_alive = true;
        }
    }
    let length = content_length_of(fields.values("content-length"));
    if method == Method::HEAD || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        // No body, whatever the fields say; an unreadable length is not passed on.
        return Ok((Framing::Empty, keep_alive, length.ok().flatten().map(|l| l.length)));
    }
    let mut codings = fields.values("transfer-encoding");
    if let Some(first) = codings.next() {
        // Only plain chunked is taken, as nginx does: another coding would reach the client
        // undecoded and unlabelled (Transfer-Encoding is hop-by-hop); next to a
        // Content-Length, or from HTTP/1.0, the framing is ambiguous (RFC 9112 §6.1, §6.3)
        // and whoever reads it differently desyncs the connection.
        let only_chunked = codings.next().is_none() && first.trim_ascii().eq_ignore_ascii_case(b"chunked");
        // Any Content-Length field, readable or not.
        let has_length = !matches!(length, Ok(None));
        if !only_chunked || version == Version::HTTP_10 || has_length {
            return Err(DecodeError::TransferEncoding);
        }
        return Ok((Framing::Chunked, keep_alive, None));
    }
    let length = length.map_err(|_| DecodeError::ContentLength)?.map(|ContentLength { length, .. }| length);
    Ok(match length {
        Some(0) => (Framing::Empty, keep_alive, Some(0)),
        Some(n) => (Framing::Length(n), keep_alive, Some(n)),
        None => (Framing::UntilClose, false, None),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk's data, with this much left.
    Data(u64),
    /// After a chunk's data, expecting its CRLF.
    DataEnd,
    /// After the last chunk, reading trailer lines (this many bytes so far) until an empty one.
    Trailers(usize),
    Done,
}

/// A chunked body's decoder. Framing is consumed as far as the buffer allows, so the end
/// of the body is known as soon as its bytes have arrived, even right after a data chunk.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: Chunk,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder { state: Chunk::Size }
    }
}

impl ChunkedDecoder {
    pub fn is_done(&self) -> bool {
        self.state == Chunk::Done
    }

    /// The next piece of body data from `buf`, if any is there; `Ok(None)` means more input
    /// is needed, or the body is complete (`is_done`).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, DecodeError> {
        self.skip_framing(buf)?;
        let Chunk::Data(left) = self.state else { return Ok(None) };
        if buf.is_empty() {
            return Ok(None);
        }
        let take = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        let data = buf.split_to(take).freeze();
        let left = left - take as u64;
        self.state = if left == 0 { Chunk::DataEnd } else { Chunk::Data(left) };
        self.skip_framing(buf)?;
        Ok(Some(data))
    }

    /// Consumes size lines, CRLFs and trailers until data, the end, or the end of `buf`.
    fn skip_framing(&mut self, buf: &mut BytesMut) -> Result<(), DecodeError> {
        loop {
            match self.state {
                Chunk::Data(_) | Chunk::Done => return Ok(()),
                Chunk::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(());
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(DecodeError::ChunkEnd);
                    }
                    let _ = buf.split_to(2);
                    self.state = Chunk::Size;
                }
                Chunk::Size => {
                    let Some(line) = take_line(buf, DecodeError::ChunkSize)? else { return Ok(()) };
                    let size = parse_chunk_size(&line).ok_or(DecodeError::ChunkSize)?;
                    self.state = if size == 0 { Chunk::Trailers(0) } else { Chunk::Data(size) };
                }
                Chunk::Trailers(seen) => {
                    let Some(line) = take_line(buf, DecodeError::TrailersTooLarge)? else { return Ok(()) };
                    let seen = seen + line.len() + 2;
                    if seen > MAX_TRAILERS {
                        return Err(DecodeError::TrailersTooLarge);
                    }
                    self.state = if line.is_empty() { Chunk::Done } else { Chunk::Trailers(seen) };
                }
            }
        }
    }
}

/// One CRLF-terminated line off the front of `buf`, without its CRLF; `None` if the line
/// is not complete yet.
fn take_line(buf: &mut BytesMut, too_long: DecodeError) -> Result<Option<BytesMut>, DecodeError> {
    match buf.iter().take(MAX_LINE + 2).position(|&b| b == b'\n') {
        Some(end) if end > 0 && buf[end - 1] == b'\r' => {
            let mut line = buf.split_to(end + 1);
            line.truncate(end - 1);
            Ok(Some(line))
        }
        Some(_) => Err(DecodeError::ChunkSize),
        None if buf.len() > MAX_LINE => Err(too_long),
        None => Ok(None),
    }
}

/// The hexadecimal size before any chunk extension (`;name=value`).
fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    let digits = line.split(|&b| b == b';').next()?.trim_ascii();
    if digits.is_empty() || digits.len() > 15 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| Some(n * 16 + u64::from(char::from(d).to_digit(16)?)))
}

#[cfg(test)]
#[path = "decode_tests.rs"]
mod tests;
