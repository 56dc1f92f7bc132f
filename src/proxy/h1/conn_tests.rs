//! Exchanges against scripted upstreams on real sockets: framing both ways, and when a
//! connection may go back to the pool.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Body as _, Frame};
use hyper::header::{HeaderValue, CONTENT_LENGTH, HOST};
use hyper::{HeaderMap, Method};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::proxy::h1::BodyError;
use crate::http::{empty, full, Body, BoxError};
use crate::proxy::pool;

/// An upstream that runs `script` on each connection it accepts, one at a time.
async fn upstream<F, Fut>(script: F) -> String
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            script(stream).await;
        }
    });
    addr
}

/// Reads until the request's head and `body_len` more bytes arrived; returns them all.
async fn read_request(stream: &mut TcpStream, body_end: &[u8]) -> Vec<u8> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let head_end = seen.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4);
        if let Some(end) = head_end {
            if seen[end..].ends_with(body_end) {
                return seen;
            }
        }
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "the request ended early: {:?}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
}

/// `super::exchange` with generous timeouts (the tests here are not about them).
async fn exchange(conn: UpstreamConn, method: &Method, target: &str, fields: &HeaderMap, body: Body) -> Result<hyper::Response<UpstreamBody>, ExchangeError> {
    super::exchange(conn, method, target, fields, body, ExchangeTimeouts { read: Duration::from_secs(5), write: Duration::from_secs(5), started: std::time::Instant::now() }).await
}

async fn connect(addr: &str) -> UpstreamConn {
    UpstreamConn::new(TcpStream::connect(addr).await.unwrap(), Arc::from(addr))
}

fn host(addr: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(HOST, HeaderValue::from_str(addr).unwrap());
    headers
}

async fn get(addr: &str, method: Method) -> (u16, Bytes) {
    let resp = exchange(connect(addr).await, &method, "/", &host(addr), empty()).await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.into_body().collect().await.unwrap().to_bytes())
}

#[tokio::test]
async fn a_chunked_response_arriving_byte_by_byte_is_decoded_and_its_connection_pooled() {
    let addr = upstream(|mut s| async move {
        read_request(&mut s, b"").await;
        for byte in b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n1;x=y\r\n!\r\n0\r\n\r\n" {
            s.write_all(&[*byte]).await.unwrap();
        }
        // Held open: a keep-alive upstream.
        let _ = s.read(&mut [0u8; 1]).await;
    })
    .await;
    assert_eq!(get(&addr, Method::GET).await, (200, Bytes::from("hello!")));
    assert_eq!(pool::idle_count(&addr), 1);
}

#[tokio::test]
async fn a_body_delimited_by_close_is_read_to_the_end_and_the_connection_dropped() {
    let addr = upstream(|mut s| async move {
        read_request(&mut s, b"").await;
        s.write_all(b"HTTP/1.1 200 OK\r\n\r\nuntil ").await.unwrap();
        s.write_all(b"the end").await.unwrap();
    })
    .await;
    assert_eq!(get(&addr, Method::GET).await, (200, Bytes::from("until the end")));
    assert_eq!(pool::idle_count(&addr), 0);
}

#[tokio::test]
async fn head_responses_have_no_body_and_connection_close_is_honoured() {
    let addr = upstream(|mut s| async move {
        read_request(&mut s, b"").await;
        s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 50\r\nconnection: close\r\n\r\n").await.unwrap();
        let _ = s.read(&mut [0u8; 1]).await;
    })
    .await;
    assert_eq!(get(&addr, Method::HEAD).await, (200, Bytes::new()));
    assert_eq!(pool::idle_count(&addr), 0, "the upstream said it would close");
}

#[tokio::test]
async fn a_head_response_ends_at_its_head_and_its_connection_is_reused() {
    let addr = upstream(|mut s| async move {
        for _ in 0..2 {
            read_request(&mut s, b"").await;
            s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\n").await.unwrap();
        }
        let _ = s.read(&mut [0u8; 1]).await;
    })
    .await;
    let first = tokio::time::timeout(Duration::from_secs(5), get(&addr, Method::HEAD)).await.expect("no body is waited for");
    assert_eq!(first, (200, Bytes::new()));
    assert_eq!(pool::idle_count(&addr), 1);
    let (conn, _) = pool::checkout(&addr, std::time::Instant::now()).1.expect("the pooled connection");
    let resp = tokio::time::timeout(Duration::from_secs(5), exchange(conn, &Method::HEAD, "/", &host(&addr), empty())).await.unwrap().unwrap();
    assert_eq!(resp.status(), 200, "the second exchange on it reads its own response");
}

#[tokio::test]
async fn an_upstream_sending_more_than_the_response_is_not_reused() {
    let addr = upstream(|mut s| async move {
        read_request(&mut s, b"").await;
        s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokGARBAGE").await.unwrap();
        let _ = s.read(&mut [0u8; 1]).await;
    })
    .await;
    assert_eq!(get(&addr, Method::GET).await, (200, Bytes::from("ok")));
    assert_eq!(pool::idle_count(&addr), 0);
}

#[tokio::test]
async fn a_truncated_body_is_an_error() {
    let addr = upstream(|mut s| async move {
        read_request(&mut s, b"").await;
        s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort").await.unwrap();
    })
    .await;
    let resp = exchange(connect(&addr).await, &Method::GET, "/", &host(&addr), empty()).await.unwrap();
    let err = resp.into_body().collect().await.unwrap_err();
    assert!(matches!(err, BodyError::Truncated), "{err}");
}

/// The upstream answers with the request it received, head and body, as its body.
async fn echo_upstream(body_end: &'static [u8]) -> String {
    upstream(move |mut s| async move {
        let request = read_request(&mut s, body_end).await;
        s.write_all(format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", request.len()).as_bytes()).await.unwrap();
        s.write_all(&request).await.unwrap();
        let _ = s.read(&mut [0u8; 1]).await;
    })
    .await
}

fn streamed(pieces: &[&'static str]) -> Body {
    let frames: Vec<Result<Frame<Bytes>, BoxError>> = pieces.iter().map(|p| Ok(Frame::data(Bytes::from_static(p.as_bytes())))).collect();
    StreamBody::new(futures_util::stream::iter(frames)).boxed()
}

async fn echoed(addr: &str, headers: &HeaderMap, body: Body) -> String {
    let resp = exchange(connect(addr).await, &Method::POST, "/up?x=1", headers, body).await.unwrap();
    String::from_utf8(resp.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

#[tokio::test]
async fn a_body_of_known_length_goes_as_is_and_one_of_unknown_length_chunked() {
    let addr = echo_upstream(b"hello world").await;
    let mut headers = host(&addr);
    headers.insert(CONTENT_LENGTH, HeaderValue::from_static("11"));
    let sent = echoed(&addr, &headers, full("hello world")).await;
    assert_eq!(sent, format!("POST /up?x=1 HTTP/1.1\r\nhost: {addr}\r\ncontent-length: 11\r\n\r\nhello world"));

    let addr = echo_upstream(b"0\r\n\r\n").await;
    let sent = echoed(&addr, &host(&addr), streamed(&["hello", " world"])).await;
    assert_eq!(sent, format!("POST /up?x=1 HTTP/1.1\r\nhost: {addr}\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"));
}

#[tokio::test]
async fn an_answer_before_the_whole_body_is_taken_and_the_connection_not_reused() {
    let addr = upstream(|mut s| async move {
        // Reads the head only, refuses the body, and keeps the connection open.
        read_request(&mut s, b"").await;
        s.write_all(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 413 Payload Too Large\r\ncontent-length: 3\r\n\r\nbig").await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
    .await;
    // A body that never ends: only an early answer can complete the exchange.
    let (_keep_open, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(1);
    let endless = StreamBody::new(tokio_stream_from(rx)).boxed();
    let resp = tokio::time::timeout(Duration::from_secs(5), exchange(connect(&addr).await, &Method::POST, "/", &host(&addr), endless)).await.unwrap().unwrap();
    assert_eq!(resp.status(), 413);
    assert_eq!(resp.into_body().collect().await.unwrap().to_bytes(), "big");
    assert_eq!(pool::idle_count(&addr), 0);
}

fn tokio_stream_from<T: Send + 'static>(mut rx: tokio::sync::mpsc::Receiver<T>) -> impl futures_util::Stream<Item = T> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::test]
async fn closing_before_any_response_is_told_apart_from_a_broken_one() {
    let silent = upstream(|mut s| async move {
        read_request(&mut s, b"").await;
    })
    .await;
    let err = exchange(connect(&silent).await, &Method::GET, "/", &host(&silent), empty()).await.unwrap_err();
    assert!(matches!(err, ExchangeError::NoResponse(_)), "{err}");

    let half = upstream(|mut s| async move {
        read_request(&mut s, b"").await;
        s.write_all(b"HTTP/1.1 200 OK\r\ncontent-").await.unwrap();
    })
    .await;
    let err = exchange(connect(&half).await, &Method::GET, "/", &host(&half), empty()).await.unwrap_err();
    assert!(matches!(err, ExchangeError::Io(_)), "{err}");
}

#[tokio::test]
async fn a_body_knows_its_length_and_its_end_with_the_last_byte() {
    let addr = upstream(|mut s| async move {
        read_request(&mut s, b"").await;
        s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        s.write_all(b"hello").await.unwrap();
        let _ = s.read(&mut [0u8; 1]).await;
    })
    .await;
    let resp = exchange(connect(&addr).await, &Method::GET, "/", &host(&addr), empty()).await.unwrap();
    assert_eq!(resp.body().size_hint().exact(), Some(5));
    assert!(!resp.body().is_end_stream());
    let mut body = resp.into_body();
    assert_eq!(body.frame().await.unwrap().unwrap().into_data().unwrap(), "hello");
    // hyper's server stops polling a body that says it ended: the connection must be back by then.
    assert!(body.is_end_stream());
    assert_eq!(pool::idle_count(&addr), 1);
}

/// An upstream answering a connection's first request at once and its second after
/// `second_after` (never, if `None`).
async fn slower_second_time(second_after: Option<Duration>) -> String {
    upstream(move |mut s| async move {
        read_request(&mut s, b"").await;
        s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await.unwrap();
        read_request(&mut s, b"").await;
        match second_after {
            Some(delay) => {
                tokio::time::sleep(delay).await;
                s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await.unwrap();
                let _ = s.read(&mut [0u8; 1]).await;
            }
            None => {
                let _ = s.read(&mut [0u8; 1]).await;
            }
        }
    })
    .await
}

/// One exchange on a connection, with `read` as its read timeout counted from now.
async fn timed_get(conn: UpstreamConn, addr: &str, read: Duration) -> Result<Bytes, ExchangeError> {
    let timeouts = ExchangeTimeouts { read, write: Duration::from_secs(5), started: std::time::Instant::now() };
    let resp = super::exchange(conn, &Method::GET, "/", &host(addr), empty(), timeouts).await?;
    Ok(resp.into_body().collect().await.unwrap().to_bytes())
}

fn pooled(addr: &str) -> UpstreamConn {
    pool::checkout(addr, std::time::Instant::now()).1.expect("the pooled connection").0
}

#[tokio::test]
async fn a_reused_connections_timer_keeps_the_earlier_deadline_from_cutting_a_later_exchange_short() {
    // The second answer comes after the first exchange's deadline but before its own.
    let read = Duration::from_millis(1000);
    let addr = slower_second_time(Some(Duration::from_millis(800))).await;
    assert_eq!(timed_get(connect(&addr).await, &addr, read).await.unwrap(), "ok");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(timed_get(pooled(&addr), &addr, read).await.unwrap(), "ok");
}

#[tokio::test]
async fn a_reused_connection_still_times_out_at_its_own_deadline() {
    let read = Duration::from_millis(300);
    let addr = slower_second_time(None).await;
    assert_eq!(timed_get(connect(&addr).await, &addr, read).await.unwrap(), "ok");
    // The first exchange's deadline passes while the connection is idle.
    tokio::time::sleep(read * 2).await;
    let started = std::time::Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(5), timed_get(pooled(&addr), &addr, read)).await.expect("the read timeout fires");
    assert!(matches!(result, Err(ExchangeError::TimedOut)), "{result:?}");
    assert!(started.elapsed() >= read, "timed out after {:?}, before its own deadline", started.elapsed());
}

#[tokio::test]
async fn a_shorter_read_timeout_after_a_longer_one_on_the_same_connection_is_kept() {
    // Two services may share an upstream address, and so its connections.
    let addr = slower_second_time(None).await;
    assert_eq!(timed_get(connect(&addr).await, &addr, Duration::from_secs(60)).await.unwrap(), "ok");
    let result = tokio::time::timeout(Duration::from_secs(5), timed_get(pooled(&addr), &addr, Duration::from_millis(300))).await;
    assert!(matches!(result, Ok(Err(ExchangeError::TimedOut))), "{result:?}");
}
