//! An upstream response's header fields as they arrived: the head's bytes and where each
//! field lies in them. httparse has checked them by the rules HeaderName and HeaderValue
//! apply (token names; values without CR, LF or other controls but tab). The proxy passes
//! most of them on untouched, so it copies them from here into the client's head rather
//! than building a HeaderMap (a validated name and value and a hashed insert per field)
//! only to write it out again; the map is built only for a response hyper writes.

use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue};
use hyper::HeaderMap;
use smallvec::SmallVec;

use crate::http::fields::write_field;

/// Where a field's name and value lie in the head. u32: a head is at most 64 KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Field {
    name: (u32, u32),
    value: (u32, u32),
}

#[derive(Debug, Clone, Default)]
pub struct RawFields {
    head: Bytes,
    fields: SmallVec<[Field; 12]>,
    /// Text appended to one field's value (by index) when written: a proxy's Via token.
    suffix: Option<(usize, &'static str)>,
}

impl RawFields {
    /// The fields httparse found in `head` (they must be slices of it).
    pub fn parsed(head: &[u8], parsed: &[httparse::Header<'_>]) -> RawFields {
        let span = |part: &[u8]| {
            let start = part.as_ptr() as usize - head.as_ptr() as usize;
            (start as u32, (start + part.len()) as u32)
        };
        let fields = parsed.iter().map(|f| Field { name: span(f.name.as_bytes()), value: span(f.value) }).collect();
        RawFields { head: Bytes::new(), fields, suffix: None }
    }

    /// Keeps the head's bytes, once frozen: the spans point into them.
    pub fn with_head(mut self, head: Bytes) -> RawFields {
        self.head = head;
        self
    }

    fn slice(&self, (start, end): (u32, u32)) -> &[u8] {
        &self.head[start as usize..end as usize]
    }

    /// Each field's name (as sent: any case) and value, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.fields.iter().map(|f| (self.slice(f.name), self.slice(f.value)))
    }

    /// The values of the fields named `name` (lowercase), in order.
    pub fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes())).map(|(_, v)| v)
    }

    /// Keeps the fields `keep` says yes to, given their names and values.
    pub fn retain(&mut self, mut keep: impl FnMut(&[u8], &[u8]) -> bool) {
        let head = &self.head;
        let slice = |(start, end): (u32, u32)| &head[start as usize..end as usize];
        let suffixed = self.suffix.map(|(i, _)| self.fields[i]);
        self.fields.retain(|f| keep(slice(f.name), slice(f.value)));
        // The suffix follows its field, or goes with it.
        self.suffix = self.suffix.and_then(|(_, text)| self.fields.iter().position(|f| Some(*f) == suffixed).map(|i| (i, text)));
    }

    /// Appends `text` to the value of the last field named `name` (lowercase), if any.
    pub fn suffix_last(&mut self, name: &str, text: &'static str) {
        let head = &self.head;
        let last = self.fields.iter().rposition(|f| head[f.name.0 as usize..f.name.1 as usize].eq_ignore_ascii_case(name.as_bytes()));
        self.suffix = last.map(|i| (i, text));
    }

    /// Appends the fields to a head being written, as `name: value\r\n` lines.
    pub fn write_into(&self, out: &mut Vec<u8>) {
        for (i, (name, value)) in self.iter().enumerate() {
            match self.suffix {
                Some((at, text)) if at == i => {
                    out.extend_from_slice(name);
                    out.extend_from_slice(b": ");
                    out.extend_from_slice(value);
                    out.extend_from_slice(text.as_bytes());
                    out.extend_from_slice(b"\r\n");
                }
                _ => write_field(out, name, value),
            }
        }
    }

    /// Appends the fields to `headers`, for a response hyper writes.
    pub fn append_to(&self, headers: &mut HeaderMap) {
        for (i, f) in self.fields.iter().enumerate() {
            // httparse's checks are HeaderName's and HeaderValue's: neither fails.
            let Ok(name) = HeaderName::from_bytes(self.slice(f.name)) else { continue };
            let value = match self.suffix {
                Some((at, text)) if at == i => HeaderValue::from_maybe_shared(Bytes::from([self.slice(f.value), text.as_bytes()].concat())),
                _ => HeaderValue::from_maybe_shared(self.head.slice(f.value.0 as usize..f.value.1 as usize)),
            };
            if let Ok(value) = value {
                headers.append(name, value);
            }
        }
    }
}

/// For tests here and in the proxy's: fields from a whole response head, and as written.
#[cfg(test)]
impl RawFields {
    pub fn of_head(head: &'static str) -> RawFields {
        let mut parsed = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut parsed);
        assert!(resp.parse(head.as_bytes()).unwrap().is_complete(), "{head:?}");
        RawFields::parsed(head.as_bytes(), resp.headers).with_head(Bytes::from_static(head.as_bytes()))
    }

    pub fn written(&self) -> String {
        let mut out = Vec::new();
        self.write_into(&mut out);
        String::from_utf8(out).expect("fields are ASCII here")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "HTTP/1.1 200 OK\r\nServer: up\r\nVia: 1.0 a\r\nX-A:1\r\nvia: 1.1 b \r\nX-B: two words\r\n\r\n";

    #[test]
    fn fields_are_written_as_they_came_with_one_space_after_the_colon() {
        let raw = RawFields::of_head(HEAD);
        assert_eq!(raw.written(), "Server: up\r\nVia: 1.0 a\r\nX-A: 1\r\nvia: 1.1 b\r\nX-B: two words\r\n");
        assert_eq!(raw.values("via").collect::<Vec<_>>(), [&b"1.0 a"[..], b"1.1 b"]);
    }

    #[test]
    fn a_suffix_goes_on_the_last_field_of_its_name_and_survives_removals_before_it() {
        let mut raw = RawFields::of_head(HEAD);
        raw.suffix_last("via", ", 1.1 gw");
        raw.retain(|name, _| !name.eq_ignore_ascii_case(b"x-a"));
        assert_eq!(raw.written(), "Server: up\r\nVia: 1.0 a\r\nvia: 1.1 b, 1.1 gw\r\nX-B: two words\r\n");
        let mut map = HeaderMap::new();
        raw.append_to(&mut map);
        assert_eq!(map.get_all("via").iter().collect::<Vec<_>>(), ["1.0 a", "1.1 b, 1.1 gw"]);
        assert_eq!(map["x-b"], "two words");
        assert_eq!(map.len(), 4);

        raw.retain(|name, _| !name.eq_ignore_ascii_case(b"via"));
        assert_eq!(raw.written(), "Server: up\r\nX-B: two words\r\n", "the suffix goes with its field");
    }

    #[test]
    fn no_field_no_suffix() {
        let mut raw = RawFields::of_head("HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\n");
        raw.suffix_last("via", ", 1.1 gw");
        assert_eq!(raw.written(), "X-A: 1\r\n");
    }
}
