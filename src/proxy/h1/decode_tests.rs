use bytes::{BufMut, BytesMut};
use hyper::Method;
use proptest::prelude::*;

use super::*;

fn parse(raw: &str, method: Method) -> Result<Option<Head>, DecodeError> {
    let mut buf = BytesMut::from(raw);
    parse_head(&mut buf, &method, &mut false)
}

fn complete(raw: &str) -> Head {
    parse(raw, Method::GET).unwrap().expect("a complete head")
}

#[test]
fn a_head_is_taken_off_the_buffer_and_the_body_left() {
    let mut buf = BytesMut::from("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\nX-A: 2\r\n\r\nhello");
    let head = parse_head(&mut buf, &Method::GET, &mut false).unwrap().unwrap();
    assert_eq!(head.parts.status, 200);
    assert_eq!(head.framing, Framing::Length(5));
    assert!(head.keep_alive);
    let values: Vec<_> = head.fields.values("x-a").collect();
    assert_eq!(values, [b"1", b"2"]);
    assert!(head.parts.headers.is_empty(), "the fields stay raw; the body's length frames the client's head");
    assert_eq!(&buf[..], b"hello");
}

#[test]
fn an_incomplete_head_waits_for_more_and_a_huge_one_is_refused() {
    assert!(parse("HTTP/1.1 200 OK\r\nContent-Le", Method::GET).unwrap().is_none());
    let huge = format!("HTTP/1.1 200 OK\r\nx-big: {}", "a".repeat(MAX_HEAD));
    assert_eq!(parse(&huge, Method::GET).unwrap_err(), DecodeError::HeadTooLarge);
}

#[test]
fn interim_responses_are_skipped_and_an_unasked_upgrade_refused() {
    let mut skipped = false;
    let mut buf = BytesMut::from("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n");
    let head = parse_head(&mut buf, &Method::POST, &mut skipped).unwrap().unwrap();
    assert_eq!(head.parts.status, 201);
    assert!(skipped);
    let upgrade = "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n";
    assert_eq!(parse(upgrade, Method::GET).unwrap_err(), DecodeError::UnaskedUpgrade);
}

#[test]
fn framing_follows_rfc_9112_precedence() {
    assert_eq!(complete("HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\n").framing, Framing::Length(3));
    assert_eq!(complete("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").framing, Framing::Empty);
    assert_eq!(complete("HTTP/1.1 200 OK\r\ntransfer-encoding: Chunked\r\n\r\n").framing, Framing::Chunked);
    // Ambiguous or undecodable framing is refused, as nginx refuses it: next to a
    // Content-Length, from HTTP/1.0, or with a coding the client would get unlabelled.
    for raw in [
        "HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n",
        "HTTP/1.0 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n",
        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n\r\n",
    ] {
        assert_eq!(parse(raw, Method::GET).unwrap_err(), DecodeError::TransferEncoding, "{raw:?}");
    }
    let no_length = complete("HTTP/1.1 200 OK\r\n\r\n");
    assert_eq!((no_length.framing, no_length.keep_alive), (Framing::UntilClose, false));
    // No body, whatever the headers say.
    assert_eq!(complete("HTTP/1.1 204 No Content\r\ncontent-length: 7\r\n\r\n").framing, Framing::Empty);
    assert_eq!(complete("HTTP/1.1 304 Not Modified\r\ncontent-length: 7\r\n\r\n").framing, Framing::Empty);
    let to_head = parse("HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\n", Method::HEAD).unwrap().unwrap();
    assert_eq!(to_head.framing, Framing::Empty);
    // The length of the body a bodiless response stands for goes to the client, once.
    assert_eq!(to_head.parts.headers["content-length"], "7");
    let not_modified = complete("HTTP/1.1 304 Not Modified\r\ncontent-length: 7, 7\r\n\r\n");
    assert_eq!(not_modified.parts.headers.get_all("content-length").iter().collect::<Vec<_>>(), ["7"]);
    let unreadable = parse("HTTP/1.1 200 OK\r\ncontent-length: 7, 8\r\n\r\n", Method::HEAD).unwrap().unwrap();
    assert!(unreadable.parts.headers.is_empty());
}

#[test]
fn content_lengths_must_be_digits_and_agree() {
    let listed = complete("HTTP/1.1 200 OK\r\ncontent-length: 4, 4\r\n\r\n");
    assert_eq!(listed.framing, Framing::Length(4), "a list of one value counts once");
    for bad in ["4, 5", "-1", "0x10", "", "99999999999999999999"] {
        let raw = format!("HTTP/1.1 200 OK\r\ncontent-length: {bad}\r\n\r\n");
        assert_eq!(parse(&raw, Method::GET).unwrap_err(), DecodeError::ContentLength, "{bad:?}");
    }
    let twice = "HTTP/1.1 200 OK\r\ncontent-length: 4\r\ncontent-length: 5\r\n\r\n";
    assert_eq!(parse(twice, Method::GET).unwrap_err(), DecodeError::ContentLength);
}

#[test]
fn keep_alive_by_version_and_connection_header() {
    assert!(!complete("HTTP/1.1 200 OK\r\nconnection: Close\r\ncontent-length: 0\r\n\r\n").keep_alive);
    assert!(!complete("HTTP/1.1 200 OK\r\nconnection: upgrade, close\r\ncontent-length: 0\r\n\r\n").keep_alive);
    assert!(!complete("HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n").keep_alive);
    let kept = complete("HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 0\r\n\r\n");
    assert!(kept.keep_alive);
    assert_eq!(kept.parts.version, hyper::Version::HTTP_11, "framed anew for the client");
}

fn decode_all(decoder: &mut ChunkedDecoder, buf: &mut BytesMut, out: &mut Vec<u8>) -> Result<(), DecodeError> {
    while let Some(data) = decoder.decode(buf)? {
        out.extend_from_slice(&data);
    }
    Ok(())
}

#[test]
fn a_chunked_body_with_extensions_and_trailers() {
    let mut buf = BytesMut::from("5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: 1\r\n\r\nNEXT");
    let mut decoder = ChunkedDecoder::default();
    let mut out = Vec::new();
    decode_all(&mut decoder, &mut buf, &mut out).unwrap();
    assert_eq!(out, b"hello world");
    assert!(decoder.is_done());
    assert_eq!(&buf[..], b"NEXT", "bytes after the body are not consumed");
}

#[test]
fn the_end_is_known_as_soon_as_the_last_data_is_returned() {
    let mut buf = BytesMut::from("2\r\nok\r\n0\r\n\r\n");
    let mut decoder = ChunkedDecoder::default();
    assert_eq!(&decoder.decode(&mut buf).unwrap().unwrap()[..], b"ok");
    assert!(decoder.is_done());
}

#[test]
fn malformed_chunks_are_errors() {
    for (raw, err) in [
        ("zz\r\n", DecodeError::ChunkSize),
        ("\r\n", DecodeError::ChunkSize),
        ("2\nok", DecodeError::ChunkSize),
        ("2\r\nokXX", DecodeError::ChunkEnd),
        ("1000000000000000\r\n", DecodeError::ChunkSize),
    ] {
        let mut decoder = ChunkedDecoder::default();
        assert_eq!(decode_all(&mut decoder, &mut BytesMut::from(raw), &mut Vec::new()).unwrap_err(), err, "{raw:?}");
    }
    let long_line = "1".repeat(MAX_LINE + 1);
    let mut decoder = ChunkedDecoder::default();
    assert_eq!(decoder.decode(&mut BytesMut::from(long_line.as_str())).unwrap_err(), DecodeError::ChunkSize);
}

fn chunked(pieces: &[Vec<u8>]) -> Vec<u8> {
    let mut wire = Vec::new();
    for piece in pieces.iter().filter(|p| !p.is_empty()) {
        wire.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        wire.extend_from_slice(piece);
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"0\r\n\r\n");
    wire
}

proptest! {
    /// However the wire bytes are split into reads, the decoded body is the sent one and
    /// the end is found exactly once everything arrived.
    #[test]
    fn chunked_decoding_survives_any_split(pieces in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..8), cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6)) {
        let wire = chunked(&pieces);
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
        cuts.push(wire.len());
        cuts.sort_unstable();
        cuts.dedup();
        let mut decoder = ChunkedDecoder::default();
        let (mut buf, mut out, mut fed) = (BytesMut::new(), Vec::new(), 0);
        for cut in cuts {
            prop_assert!(!decoder.is_done());
            buf.put_slice(&wire[fed..cut]);
            fed = cut;
            decode_all(&mut decoder, &mut buf, &mut out).unwrap();
        }
        prop_assert!(decoder.is_done());
        prop_assert!(buf.is_empty());
        prop_assert_eq!(out, pieces.concat());
    }
}
