//! HTTP/1 header fields as both of the gateway's own HTTP/1 codecs handle them (the
//! server's path in `http::h1`, the upstream client in `proxy::h1`): fields sliced out of
//! a head's bytes into a `HeaderMap`, a field line written out, and Content-Length read.

use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue, CONTENT_LENGTH};
use hyper::HeaderMap;
use smallvec::SmallVec;

/// Where some bytes lie in a head: `start..end`.
pub type Span = (usize, usize);

/// The spans of a usual head's fields stay on the stack, uninitialized: zeroing room for
/// a hundred of them on every message showed in profiles.
pub type FieldSpans = SmallVec<[(Span, Span); 24]>;

/// Where `part` lies in `head` (it must be a slice of it, as httparse's fields are).
pub fn span_in(head: &[u8], part: &[u8]) -> Span {
    let start = part.as_ptr() as usize - head.as_ptr() as usize;
    (start, start + part.len())
}

/// The name and value spans of `fields`, parsed out of `head`, into `out`: noted before
/// the borrow of the head ends, so that the values can be sliced out of its frozen bytes,
/// not copied. Filled in place: returned by value, the spans were copied once more.
pub fn field_spans(head: &[u8], fields: &[httparse::Header<'_>], out: &mut FieldSpans) {
    out.extend(fields.iter().map(|f| (span_in(head, f.name.as_bytes()), span_in(head, f.value))));
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidField {
    Name,
    Value,
}

/// Appends the fields at `spans` in `bytes` (the frozen head) to `headers`.
pub fn append_fields(headers: &mut HeaderMap, bytes: &Bytes, spans: &[(Span, Span)]) -> Result<(), InvalidField> {
    for &((name_start, name_end), (value_start, value_end)) in spans {
        let name = HeaderName::from_bytes(&bytes[name_start..name_end]).map_err(|_| InvalidField::Name)?;
        let value = HeaderValue::from_maybe_shared(bytes.slice(value_start..value_end)).map_err(|_| InvalidField::Value)?;
        headers.append(name, value);
    }
    Ok(())
}

/// One `name: value` line. Callers pass names and values that passed `HeaderName` and
/// `HeaderValue` checks (no CR or LF), so nothing can split the head.
pub fn write_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// A message's Content-Length, as RFC 9110 §8.6 reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentLength {
    pub length: u64,
    /// Stated more than once (several fields, or a list such as `4, 4`): a proxy passes
    /// it on as one value.
    pub repeated: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidLength;

/// The Content-Length `headers` state: every value, a list counting as its items, must be
/// the same decimal number. `Ok(None)`: no Content-Length field.
pub fn content_length(headers: &HeaderMap) -> Result<Option<ContentLength>, InvalidLength> {
    content_length_of(headers.get_all(CONTENT_LENGTH).iter().map(HeaderValue::as_bytes))
}

/// `content_length` over the values of a message's Content-Length fields.
pub fn content_length_of<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Result<Option<ContentLength>, InvalidLength> {
    let (mut length, mut items) = (None, 0);
    for value in values {
        for item in value.split(|&b| b == b',') {
            let parsed = parse_decimal(item.trim_ascii()).ok_or(InvalidLength)?;
            if length.is_some_and(|l| l != parsed) {
                return Err(InvalidLength);
            }
            length = Some(parsed);
            items += 1;
        }
    }
    Ok(length.map(|length| ContentLength { length, repeated: items > 1 }))
}

fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_lengths(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(CONTENT_LENGTH, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn content_length_takes_equal_values_and_refuses_anything_else() {
        assert_eq!(content_length(&with_lengths(&[])), Ok(None));
        assert_eq!(content_length(&with_lengths(&["42"])), Ok(Some(ContentLength { length: 42, repeated: false })));
        assert_eq!(content_length(&with_lengths(&["4, 4"])), Ok(Some(ContentLength { length: 4, repeated: true })));
        assert_eq!(content_length(&with_lengths(&["4", "4"])), Ok(Some(ContentLength { length: 4, repeated: true })));
        for bad in [&["4", "5"][..], &["4, 5"], &["x"], &[""], &["+4"], &["-1"], &["4,"], &["12345678901234567890"]] {
            assert_eq!(content_length(&with_lengths(bad)), Err(InvalidLength), "{bad:?}");
        }
    }

    #[test]
    fn fields_are_sliced_from_the_head() {
        let head = b"GET / HTTP/1.1\r\nX-A: 1\r\nx-b: two\r\n\r\n";
        let mut parsed = [httparse::EMPTY_HEADER; 4];
        let mut req = httparse::Request::new(&mut parsed);
        req.parse(head).unwrap();
        let mut spans = FieldSpans::new();
        field_spans(head, req.headers, &mut spans);
        let mut headers = HeaderMap::new();
        append_fields(&mut headers, &Bytes::from_static(head), &spans).unwrap();
        assert_eq!((headers["x-a"].to_str().unwrap(), headers["x-b"].to_str().unwrap()), ("1", "two"));
    }
}
