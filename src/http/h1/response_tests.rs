use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;

use super::*;
use crate::http::{empty, full, BoxError};

async fn written(resp: Response<Body>, head_only: bool, close: bool) -> (String, bool) {
    written_with(resp, &(), head_only, close).await
}

async fn written_with(resp: Response<Body>, tail: &impl TailFields, head_only: bool, close: bool) -> (String, bool) {
    let mut out = Vec::new();
    let reusable = write(&mut out, &mut Vec::new(), resp, tail, head_only, close).await.unwrap();
    (String::from_utf8(out).unwrap(), reusable)
}

/// Tail fields from name/value pairs.
struct Pairs(&'static [(&'static str, &'static str)]);

impl TailFields for Pairs {
    fn write_into(&self, head: &mut Vec<u8>) {
        for (name, value) in self.0 {
            crate::http::fields::write_field(head, name.as_bytes(), value.as_bytes());
        }
    }

    fn add_to(self, _headers: &mut hyper::HeaderMap) {
        unreachable!("the own path writes tail fields into the head")
    }
}

fn streamed(frames: Vec<Result<&'static str, &'static str>>) -> Body {
    let frames = frames.into_iter().map(|f| f.map(|d| Frame::data(Bytes::from_static(d.as_bytes()))).map_err(|e| BoxError::from(e)));
    StreamBody::new(futures_util::stream::iter(frames)).boxed()
}

fn head_and_body(text: &str) -> (&str, &str) {
    text.split_once("\r\n\r\n").unwrap()
}

#[tokio::test]
async fn a_full_body_gets_its_length_and_a_date() {
    let mut resp = Response::new(full("hello"));
    resp.headers_mut().insert("x-a", "1".parse().unwrap());
    let (text, reusable) = written(resp, false, false).await;
    let (head, body) = head_and_body(&text);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("\r\nx-a: 1") && head.contains("\r\ncontent-length: 5") && head.contains("\r\ndate: "), "{head}");
    assert!(!head.contains("connection"), "{head}");
    assert_eq!(body, "hello");
    assert!(reusable);
}

#[tokio::test]
async fn tail_fields_follow_the_responses_own_in_the_head_of_every_kind_of_response() {
    let tail = Pairs(&[("via", "1.1 gw"), ("x-request-id", "abc")]);
    for (resp, head_only) in [(Response::new(full("hello")), false), (Response::new(full("hello")), true), (Response::new(streamed(vec![Ok("abc")])), false)] {
        let mut resp = resp;
        resp.headers_mut().insert("x-a", "1".parse().unwrap());
        let (text, reusable) = written_with(resp, &tail, head_only, false).await;
        let (head, _) = head_and_body(&text);
        let a = head.find("\r\nx-a: 1\r\n").expect(head);
        let via = head.find("\r\nvia: 1.1 gw\r\nx-request-id: abc\r\n").expect(head);
        assert!(a < via, "{head}");
        assert!(reusable);
    }
}

#[tokio::test]
async fn a_body_of_unknown_length_is_chunked() {
    let (text, reusable) = written(Response::new(streamed(vec![Ok("abc"), Ok(""), Ok("defgh")])), false, false).await;
    let (head, body) = head_and_body(&text);
    assert!(head.contains("\r\ntransfer-encoding: chunked") && !head.contains("content-length"), "{head}");
    assert_eq!(body, "3\r\nabc\r\n5\r\ndefgh\r\n0\r\n\r\n");
    assert!(reusable);
}

#[tokio::test]
async fn the_handlers_length_and_date_are_kept() {
    let mut resp = Response::new(streamed(vec![Ok("ab"), Ok("c")]));
    resp.headers_mut().insert(CONTENT_LENGTH, "3".parse().unwrap());
    resp.headers_mut().insert(DATE, "Sun, 06 Nov 1994 08:49:37 GMT".parse().unwrap());
    resp.headers_mut().insert(TRANSFER_ENCODING, "gzip".parse().unwrap());
    let (text, reusable) = written(resp, false, false).await;
    let (head, body) = head_and_body(&text);
    assert_eq!(head.matches("content-length").count(), 1, "{head}");
    assert_eq!(head.matches("date").count(), 1, "{head}");
    assert!(head.contains("date: Sun, 06 Nov 1994") && !head.contains("transfer-encoding"), "{head}");
    assert_eq!(body, "abc");
    assert!(reusable);
}

#[tokio::test]
async fn head_responses_and_bodiless_statuses_send_no_body() {
    let mut resp = Response::new(full("not sent"));
    resp.headers_mut().insert(CONTENT_LENGTH, "8".parse().unwrap());
    let (text, _) = written(resp, true, false).await;
    assert!(text.ends_with("\r\n\r\n") && text.contains("content-length: 8"), "{text}");

    let (text, _) = written(Response::new(empty()), true, false).await;
    assert!(!text.contains("content-length") && !text.contains("transfer-encoding"), "a HEAD response says nothing of a length it does not know: {text}");

    let mut resp = Response::new(full("x"));
    *resp.status_mut() = StatusCode::NO_CONTENT;
    resp.headers_mut().insert(CONTENT_LENGTH, "1".parse().unwrap());
    let (text, reusable) = written(resp, false, false).await;
    assert!(text.starts_with("HTTP/1.1 204 No Content\r\n") && !text.contains("content-length") && text.ends_with("\r\n\r\n"), "{text}");
    assert!(reusable);
}

#[tokio::test]
async fn closing_says_so_and_a_handlers_close_is_honoured() {
    let (text, reusable) = written(Response::new(full("x")), false, true).await;
    assert!(text.contains("\r\nconnection: close\r\n"), "{text}");
    assert!(!reusable);

    let mut resp = Response::new(full("x"));
    resp.headers_mut().insert(CONNECTION, "Close".parse().unwrap());
    let (text, reusable) = written(resp, false, false).await;
    assert_eq!(text.matches("onnection").count(), 1, "{text}");
    assert!(!reusable);
}

#[tokio::test]
async fn a_broken_or_short_body_ends_the_connection() {
    let (text, reusable) = written(Response::new(streamed(vec![Ok("abc"), Err("upstream reset")])), false, false).await;
    assert!(text.ends_with("3\r\nabc\r\n"), "no last chunk for a body that failed: {text}");
    assert!(!reusable);

    let mut resp = Response::new(streamed(vec![Ok("ab")]));
    resp.headers_mut().insert(CONTENT_LENGTH, "3".parse().unwrap());
    assert!(!written(resp, false, false).await.1, "a body shorter than its length");

    let mut resp = Response::new(streamed(vec![Ok("abcd")]));
    resp.headers_mut().insert(CONTENT_LENGTH, "3".parse().unwrap());
    let (text, reusable) = written(resp, false, false).await;
    assert!(!reusable && text.ends_with("\r\n\r\n"), "a longer body is not sent past its length: {text}");
}

#[tokio::test]
async fn unreadable_or_conflicting_lengths_give_way_to_the_bodys() {
    for values in [&["three"][..], &["3", "4"], &["3, 4"]] {
        let mut resp = Response::new(full("abc"));
        for v in values {
            resp.headers_mut().append(CONTENT_LENGTH, v.parse().unwrap());
        }
        let (text, reusable) = written(resp, false, false).await;
        assert_eq!(text.matches("content-length").count(), 1, "{values:?}: {text}");
        assert!(text.contains("content-length: 3\r\n") && text.ends_with("abc") && reusable, "{values:?}: {text}");
    }
    // Equal values collapse to one; with no body to measure, a conflict is dropped.
    let mut resp = Response::new(empty());
    resp.headers_mut().append(CONTENT_LENGTH, "7".parse().unwrap());
    resp.headers_mut().append(CONTENT_LENGTH, "7".parse().unwrap());
    assert_eq!(written(resp, true, false).await.0.matches("content-length: 7").count(), 1);
    let mut resp = Response::new(empty());
    *resp.status_mut() = StatusCode::NOT_MODIFIED;
    resp.headers_mut().append(CONTENT_LENGTH, "5".parse().unwrap());
    resp.headers_mut().append(CONTENT_LENGTH, "7".parse().unwrap());
    assert!(!written(resp, false, false).await.0.contains("content-length"));
}

#[tokio::test]
async fn an_interim_status_as_the_answer_becomes_500_and_closes() {
    for code in [100, 101, 103] {
        let mut resp = Response::new(full("x"));
        *resp.status_mut() = StatusCode::from_u16(code).unwrap();
        let (text, reusable) = written(resp, false, false).await;
        assert!(text.starts_with("HTTP/1.1 500 ") && text.contains("connection: close"), "{code}: {text}");
        assert!(!reusable);
    }
}

#[tokio::test]
async fn large_data_goes_out_whole() {
    let big = "x".repeat(COPY_LIMIT * 3 + 7);
    let (text, reusable) = written(Response::new(full(big.clone())), false, false).await;
    assert_eq!(head_and_body(&text).1, big);
    assert!(reusable);
}

#[tokio::test]
async fn an_upgrade_offer_keeps_its_connection_token_and_close_is_added_once() {
    let mut resp = Response::new(full("use https"));
    *resp.status_mut() = StatusCode::UPGRADE_REQUIRED;
    resp.headers_mut().insert(CONNECTION, "Upgrade".parse().unwrap());
    resp.headers_mut().insert("upgrade", "TLS/1.2, HTTP/1.1".parse().unwrap());
    let (text, reusable) = written(resp, false, true).await;
    let (head, _) = head_and_body(&text);
    assert!(head.contains("\r\nconnection: upgrade\r\n") && head.contains("\r\nupgrade: TLS/1.2, HTTP/1.1"), "{head}");
    assert_eq!(head.matches("connection: close").count(), 1, "{head}");
    assert!(!reusable);
}
