//! The request path as Kong routes and forwards it. Routing, the path sent upstream and
//! plugins that compare the path (rate-limiting's `limit_by = path`) use the normalized
//! path, never the raw one: otherwise `/open/../admin` would match a route for `/open`
//! and walk out of its service's path upstream, and `/%61dmin` would dodge a route for
//! `/admin`. Normalizing is Kong's (`kong.tools.uri.normalize`, with merged slashes):
//! percent-escapes of characters with no special meaning in a URI are decoded, those of
//! reserved characters kept (in upper case), dot segments removed (RFC 3986 §5.2.4) and
//! runs of slashes merged. What goes upstream is then escaped again (Kong's
//! `kong.tools.uri.escape`), so that the request line carries only URI characters.
//!
//! Two departures from Kong's function, both as nginx in front of it behaves or safer: a
//! `%` that does not begin an escape makes the path malformed (nginx answers 400), since
//! kept as it is it would make a second decoding upstream (`/%%36%31dmin` to `/%61dmin`
//! here, `/admin` there) dodge a route; and escapes of control characters stay escaped, so
//! that no decoded path can carry a line break into a header such as X-Forwarded-Prefix.

use std::borrow::Cow;

/// Characters whose percent-escapes stay escaped: decoding them would change what the
/// path means (`%2F` is not a segment boundary; `%25` is not the start of an escape).
const RESERVED: &[u8] = b"!*'();:@&=+$,/?%#[]";

/// A path with a `%` that does not begin an escape (two hex digits).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed percent-escape in the request path")]
pub struct MalformedEscape;

/// The normalized path: `path` itself (no copy) when there is nothing to normalize,
/// which is the common case.
pub fn normalize(path: &str) -> Result<Cow<'_, str>, MalformedEscape> {
    let decoded = decode(path)?;
    let text: &str = &decoded;
    if !text.contains('.') && !text.contains("//") {
        return Ok(decoded);
    }
    Ok(Cow::Owned(remove_dot_segments(text)))
}

/// Decodes the percent-escapes of unreserved and other characters. Bytes so decoded that
/// are not UTF-8 (an escape of a lone byte above 0x7F) keep their escapes: Kong would
/// decode them to raw bytes, which no configured path (text) could match anyway, and
/// they go upstream as they came.
fn decode(path: &str) -> Result<Cow<'_, str>, MalformedEscape> {
    if !path.contains('%') {
        return Ok(Cow::Borrowed(path));
    }
    let bytes = match String::from_utf8(decode_bytes(path)?) {
        Ok(text) => return Ok(Cow::Owned(text)),
        Err(e) => e.into_bytes(),
    };
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for &byte in chunk.invalid() {
            push_escaped(&mut out, byte);
        }
    }
    Ok(Cow::Owned(out))
}

/// Escapes that stay escaped: reserved characters (decoding them would change what the
/// path means) and control characters (which no header or request line may carry).
fn kept_escaped(byte: u8) -> bool {
    RESERVED.contains(&byte) || byte.is_ascii_control()
}

fn decode_bytes(path: &str) -> Result<Vec<u8>, MalformedEscape> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(high), Some(low)) => Some(high << 4 | low),
            _ => None,
        };
        match escaped {
            Some(byte) if !kept_escaped(byte) => out.push(byte),
            Some(_) => out.extend_from_slice(&[b'%', bytes[i + 1].to_ascii_uppercase(), bytes[i + 2].to_ascii_uppercase()]),
            None if bytes[i] == b'%' => return Err(MalformedEscape),
            None => {
                out.push(bytes[i]);
                i += 1;
                continue;
            }
        }
        i += 3;
    }
    Ok(out)
}

fn push_escaped(out: &mut String, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.extend(['%', HEX[usize::from(byte >> 4)] as char, HEX[usize::from(byte & 0xF)] as char]);
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// RFC 3986's remove_dot_segments, as Kong's loop does it, also merging `//` into `/`.
/// The output is built from segments that each begin with their slash.
fn remove_dot_segments(path: &str) -> String {
    let mut input = path;
    let mut output: Vec<&str> = Vec::new();
    while !input.is_empty() {
        if input == "/." {
            input = "/";
        } else if input == "/.." {
            input = "/";
            output.pop();
        } else if input == "." || input == ".." {
            input = "";
        } else if let Some(rest) = input.strip_prefix("../") {
            input = rest;
        } else if let Some(rest) = input.strip_prefix("./") {
            input = rest;
        } else if input.starts_with("/./") {
            input = &input[2..];
        } else if input.starts_with("/../") {
            input = &input[3..];
            output.pop();
        } else if input.starts_with("//") {
            input = &input[1..];
        } else {
            // A slash is ASCII, so the cut is on a character's boundary.
            let end = input.as_bytes()[1..].iter().position(|&b| b == b'/').map_or(input.len(), |i| i + 1);
            output.push(&input[..end]);
            input = &input[end..];
        }
    }
    output.concat()
}

/// Whether Kong's escape leaves `c` as it is: URI characters, and `%` (escapes stay).
fn passes(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$&'()*+,/:;=?@[]-_.~%".contains(&c)
}

/// The path as it goes upstream: every byte that is not a URI character percent-escaped.
pub fn escape(path: &str) -> Cow<'_, str> {
    if path.bytes().all(passes) {
        return Cow::Borrowed(path);
    }
    let mut out = String::with_capacity(path.len() + 8);
    for c in path.bytes() {
        if passes(c) {
            out.push(c as char);
        } else {
            push_escaped(&mut out, c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
#[path = "request_path_tests.rs"]
mod tests;
