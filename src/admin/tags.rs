//! Kong's `/tags` endpoints: every (tag, entity) pair of the configuration as rows of
//! `{tag, entity_name, entity_id}`, all of them (`GET /tags`) or one tag's
//! (`GET /tags/{tag}`), paged as the entity lists are. Read-only, as Kong's tags DAO is.

use hyper::{Response, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use super::entities::{kong, page_size, shown, tag_byte};
use super::server::AdminRequest;
use crate::applied::AppliedConfig;
use crate::http::{json_response, Body};
use crate::model::error::codes;
use crate::model::{unix_now, KongError};

/// One row, ordered by tag, then entity id: the order pages follow.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct TagRow {
    tag: String,
    entity_id: Uuid,
    entity_name: &'static str,
}

impl TagRow {
    fn json(&self) -> Value {
        json!({ "tag": self.tag, "entity_name": self.entity_name, "entity_id": self.entity_id })
    }

    /// The page offset that resumes after this row: the entity id (fixed length) then
    /// the tag, which may hold any byte a tag may.
    fn offset(&self) -> String {
        format!("{}{}", self.entity_id, self.tag)
    }
}

/// The position an offset names: the row it was made from.
fn parse_offset(offset: &str) -> Result<(String, Uuid), KongError> {
    let bad = |why: &str| KongError::invalid_offset(offset, why);
    let (id, tag) = offset.split_at_checked(36).ok_or_else(|| bad("not an offset this node made"))?;
    let id = Uuid::try_parse(id).map_err(|e| bad(&e.to_string()))?;
    if tag.is_empty() {
        return Err(bad("no tag"));
    }
    Ok((tag.to_owned(), id))
}

/// Kong's check of a tag named in the path (`typedefs.tag`), as its tags DAO reports it.
fn check_tag(tag: &str) -> Result<(), KongError> {
    // The path was decoded with invalid UTF-8 replaced: a tag cannot hold such bytes.
    let why = if let Some(at) = tag.find('\u{FFFD}') {
        format!("invalid utf-8 character sequence detected at position {}", at + 1)
    } else if !tag.is_empty() && tag.bytes().all(tag_byte) {
        return Ok(());
    } else {
        format!("invalid tag '{tag}': expected printable ascii (except `,` and `/`) or valid utf-8 sequences")
    };
    Err(KongError { name: "invalid unique tag".into(), ..KongError::new(codes::INVALID_UNIQUE, why, Value::Null) })
}

fn rows(cfg: &AppliedConfig, only: Option<&str>) -> Vec<TagRow> {
    let now = unix_now();
    let mut rows = Vec::new();
    for entity in cfg.snapshot.entities() {
        // A credential past its ttl is gone for every read, this one too.
        let Some(json) = shown(&entity, now) else { continue };
        let Some(tags) = json.get("tags").and_then(Value::as_array) else { continue };
        for tag in tags.iter().filter_map(Value::as_str).filter(|t| only.is_none_or(|o| o == *t)) {
            rows.push(TagRow { tag: tag.to_owned(), entity_id: entity.id(), entity_name: entity.table() });
        }
    }
    rows.sort();
    rows
}

/// `GET /tags` (`tag` none) or `GET /tags/{tag}`.
pub fn list(cfg: &AppliedConfig, tag: Option<&str>, req: &AdminRequest) -> Response<Body> {
    match page(cfg, tag, req) {
        Ok(body) => json_response(StatusCode::OK, &body),
        Err(e) => kong(e),
    }
}

fn page(cfg: &AppliedConfig, tag: Option<&str>, req: &AdminRequest) -> Result<Value, KongError> {
    if let Some(tag) = tag {
        check_tag(tag)?;
    }
    let size = page_size(req)?;
    let after = req.query("offset").map(parse_offset).transpose()?;
    let mut rows = rows(cfg, tag);
    if let Some((tag, id)) = after {
        rows.retain(|r| (r.tag.as_str(), r.entity_id) > (tag.as_str(), id));
    }
    let more = rows.len() > size;
    rows.truncate(size);
    let mut body = json!({ "data": rows.iter().map(TagRow::json).collect::<Vec<_>>(), "next": Value::Null });
    if let (true, Some(last)) = (more, rows.last()) {
        let offset = last.offset();
        let path = match tag {
            Some(t) => format!("/tags/{}", escape(t)),
            None => "/tags".to_owned(),
        };
        let mut next = format!("{path}?offset={}", escape(&offset));
        if let Some(size) = req.query("size") {
            next.push_str(&format!("&size={size}"));
        }
        body["offset"] = Value::String(offset);
        body["next"] = Value::String(next);
    }
    Ok(body)
}

/// A tag may hold spaces, `?`, `&`, `#` and non-ASCII: escaped for the `next` link.
fn escape(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>().replace('+', "%20")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offset_names_the_row_it_was_made_from() {
        let row = TagRow { tag: "a b:c".into(), entity_id: Uuid::new_v4(), entity_name: "services" };
        assert_eq!(parse_offset(&row.offset()).unwrap(), (row.tag.clone(), row.entity_id));
        assert_eq!(parse_offset("nope").unwrap_err().code, codes::INVALID_OFFSET);
        assert_eq!(parse_offset(&row.entity_id.to_string()).unwrap_err().code, codes::INVALID_OFFSET);
    }

    #[test]
    fn a_bad_tag_is_kongs_invalid_unique_error() {
        let e = check_tag("a,b").unwrap_err();
        assert_eq!((e.code, e.name.as_str(), e.http_status()), (10, "invalid unique tag", 400));
        assert!(e.message.starts_with("invalid tag 'a,b': expected printable ascii"), "{}", e.message);
        assert!(check_tag("ünïcode tag").is_ok());
        assert!(check_tag("a\u{FFFD}").unwrap_err().message.starts_with("invalid utf-8 character sequence"));
    }

    #[test]
    fn next_links_escape_what_a_tag_may_hold() {
        assert_eq!(escape("a b&c#ü"), "a%20b%26c%23%C3%BC");
    }
}
