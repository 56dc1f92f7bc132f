//! Connections on real sockets: the own path, the hand-over to hyper, and draining.

use std::time::Duration;

use http_body_util::BodyExt;
use hyper::Response;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use super::*;
use crate::http::{full, Body};
use crate::shutdown::ShutdownTrigger;

/// Answers "METHOD PATH BODY-LENGTH"; a request to /hold waits until `release` is notified,
/// and `dropped` hears when its answer is dropped unfinished.
struct Describe {
    entered: Arc<Notify>,
    release: Arc<Notify>,
    dropped: Arc<Notify>,
}

/// The size of /big's answer: more than loopback's socket buffers hold.
const BIG: usize = 64 << 20;

struct OnDrop(Option<Arc<Notify>>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        if let Some(n) = self.0.take() {
            n.notify_one();
        }
    }
}

impl Handler for Describe {
    type Reply = Response<Body>;

    fn handle(&self, req: Request<RequestBody>, _peer: SocketAddr) -> impl Future<Output = Response<Body>> + Send + use<> {
        let (entered, release, dropped) = (self.entered.clone(), self.release.clone(), self.dropped.clone());
        async move {
            if req.uri().path() == "/hold" {
                let mut unfinished = OnDrop(Some(dropped));
                entered.notify_one();
                release.notified().await;
                unfinished.0 = None;
            }
            if req.uri().path() == "/big" {
                return Response::new(full(vec![b'x'; BIG]));
            }
            let line = format!("{} {}", req.method(), req.uri().path());
            let body = req.into_body().collect().await.map(|b| b.to_bytes().len()).unwrap_or(usize::MAX);
            Response::new(full(format!("{line} {body}")))
        }
    }
}

struct Server {
    addr: SocketAddr,
    trigger: ShutdownTrigger,
    served: tokio::task::JoinHandle<()>,
    entered: Arc<Notify>,
    release: Arc<Notify>,
    dropped: Arc<Notify>,
}

async fn server() -> Server {
    server_with(ClientTimeouts::default()).await
}

async fn server_with(timeouts: ClientTimeouts) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (entered, release, dropped) = (Arc::new(Notify::new()), Arc::new(Notify::new()), Arc::new(Notify::new()));
    let handler = Arc::new(Describe { entered: entered.clone(), release: release.clone(), dropped: dropped.clone() });
    let trigger = ShutdownTrigger::new();
    let served = tokio::spawn(crate::http::serve(listener, handler, trigger.signal(), Duration::from_secs(5), timeouts, "test"));
    Server { addr, trigger, served, entered, release, dropped }
}

/// Reads one response with a Content-Length body off `stream`, keeping what follows in `buf`.
async fn response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> (u16, Vec<(String, String)>, String) {
    read_response(stream, buf, false).await
}

/// As `response`, for a HEAD request's: no body whatever the length says.
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>, to_head: bool) -> (u16, Vec<(String, String)>, String) {
    loop {
        let mut fields = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut fields);
        if let httparse::Status::Complete(len) = resp.parse(buf).unwrap() {
            let headers: Vec<(String, String)> = resp.headers.iter().map(|h| (h.name.to_ascii_lowercase(), String::from_utf8_lossy(h.value).into_owned())).collect();
            let status = resp.code.unwrap();
            let length: usize = if to_head { 0 } else { headers.iter().find(|(n, _)| n == "content-length").map_or(0, |(_, v)| v.parse().unwrap()) };
            if buf.len() >= len + length {
                let body = String::from_utf8(buf[len..len + length].to_vec()).unwrap();
                buf.drain(..len + length);
                return (status, headers, body);
            }
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk)).await.expect("a response in time").unwrap();
        assert!(n > 0, "connection closed before a whole response; have {:?}", String::from_utf8_lossy(buf));
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A connection whose request to /hold has reached the handler, which holds it.
async fn held_request(s: &Server) -> TcpStream {
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    stream.write_all(b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    s.entered.notified().await;
    stream
}

async fn closed(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte)).await, Ok(Ok(0)))
}

#[tokio::test]
async fn pipelined_requests_then_a_body_for_hyper_on_one_connection() {
    let s = server().await;
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    let mut buf = Vec::new();
    stream.write_all(b"GET /one HTTP/1.1\r\nHost: x\r\n\r\nHEAD /two HTTP/1.1\r\nHost: x\r\n\r\nDELETE /three HTTP/1.1\r\nContent-Length: 0\r\n\r\n").await.unwrap();
    assert_eq!(response(&mut stream, &mut buf).await.2, "GET /one 0");
    let (status, headers, _) = read_response(&mut stream, &mut buf, true).await;
    assert_eq!(status, 200);
    assert!(headers.iter().any(|(n, v)| n == "content-length" && v == "11"), "the length the GET would have: {headers:?}");
    assert_eq!(response(&mut stream, &mut buf).await.2, "DELETE /three 0");

    // A body: hyper serves this request and every later one, on the same connection.
    stream.write_all(b"POST /four HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello").await.unwrap();
    assert_eq!(response(&mut stream, &mut buf).await.2, "POST /four 5");
    stream.write_all(b"GET /five HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    assert_eq!(response(&mut stream, &mut buf).await.2, "GET /five 0");
    s.trigger.trigger();
    assert!(closed(&mut stream).await, "an idle connection closes on shutdown, hyper's too");
    tokio::time::timeout(Duration::from_secs(5), s.served).await.unwrap().unwrap();
}

#[tokio::test]
async fn a_head_split_across_reads_and_a_client_close() {
    let s = server().await;
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    let mut buf = Vec::new();
    for part in ["GET /sl", "ow HTTP/1.1\r\nHo", "st: x\r\nConnection: close\r\n", "\r\n"] {
        stream.write_all(part.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, headers, body) = response(&mut stream, &mut buf).await;
    assert_eq!(body, "GET /slow 0");
    assert!(headers.iter().any(|(n, v)| n == "connection" && v == "close"), "{headers:?}");
    assert!(closed(&mut stream).await, "the server closes after a Connection: close request");
}

#[tokio::test]
async fn what_this_path_does_not_take_hyper_answers() {
    let s = server().await;
    // HTTP/1.0, then a malformed head: hyper's answers, not a silent close.
    for (request, expect) in [("GET /old HTTP/1.0\r\n\r\n", "HTTP/1.0 200"), ("GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", "HTTP/1.1 400")] {
        let mut stream = TcpStream::connect(s.addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut text = String::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut text)).await.unwrap().unwrap();
        assert!(text.starts_with(expect), "{request:?}: {text}");
    }
    // A head longer than this path reads goes to hyper whole.
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    let long = "v".repeat(MAX_OWN_HEAD + 100);
    stream.write_all(format!("GET /long HTTP/1.1\r\nx-long: {long}\r\n\r\n").as_bytes()).await.unwrap();
    assert_eq!(response(&mut stream, &mut Vec::new()).await.2, "GET /long 0");
    // HTTP/2 with prior knowledge.
    let stream = TcpStream::connect(s.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    let req = Request::get(format!("http://{}/h2", s.addr)).body(crate::http::empty()).unwrap();
    let body = sender.send_request(req).await.unwrap().into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "GET /h2 0");
}

#[tokio::test]
async fn an_http2_connection_is_shut_down_a_keepalive_limit_after_its_last_exchange_ends() {
    // The header limit long enough that a loaded machine's delay before the first request
    // cannot close the connection first.
    let limits = ClientTimeouts { keepalive: Duration::from_millis(300), header: Duration::from_secs(2), ..ClientTimeouts::default() };
    let s = server_with(limits).await;
    let stream = TcpStream::connect(s.addr).await.unwrap();
    let (sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.unwrap();
    let conn = tokio::spawn(conn);
    let mut held = sender.clone();
    let req = Request::get(format!("http://{}/hold", s.addr)).body(crate::http::empty()).unwrap();
    let answer = tokio::spawn(async move { held.send_request(req).await.unwrap().into_body().collect().await.unwrap().to_bytes() });
    s.entered.notified().await;
    // Past the keep-alive limit with the exchange in flight: it holds the connection open.
    tokio::time::sleep(limits.keepalive * 2).await;
    assert!(!conn.is_finished(), "closed with an exchange in flight");
    let since = tokio::time::Instant::now();
    s.release.notify_one();
    assert_eq!(answer.await.unwrap(), "GET /hold 0");
    // `sender` is still held: the client would keep the connection; the server ends it.
    tokio::time::timeout(Duration::from_secs(5), conn).await.expect("the server ends an idle HTTP/2 connection").unwrap().ok();
    assert!(since.elapsed() >= limits.keepalive, "closed after {:?}", since.elapsed());
    drop(sender);
}

#[tokio::test]
async fn a_drain_answers_the_request_in_flight_with_close() {
    let s = server().await;
    let mut held = held_request(&s).await;
    let mut idle = TcpStream::connect(s.addr).await.unwrap();
    idle.write_all(b"GET /warm HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    response(&mut idle, &mut Vec::new()).await;

    s.trigger.trigger();
    assert!(closed(&mut idle).await, "an idle connection closes at once");
    assert!(!s.served.is_finished(), "the drain waits for the request in flight");
    s.release.notify_one();
    let (status, headers, body) = response(&mut held, &mut Vec::new()).await;
    assert_eq!((status, body.as_str()), (200, "GET /hold 0"));
    assert!(headers.iter().any(|(n, v)| n == "connection" && v == "close"), "{headers:?}");
    assert!(closed(&mut held).await);
    tokio::time::timeout(Duration::from_secs(5), s.served).await.expect("drained").unwrap();
}

#[tokio::test]
async fn a_client_that_leaves_cancels_its_request() {
    let s = server().await;
    drop(held_request(&s).await);
    tokio::time::timeout(Duration::from_secs(5), s.dropped.notified()).await.expect("the handler is dropped once the client is gone");
}

/// Regardless of which of hyper's servers takes the connection over, a drain already under
/// way when it does lets hyper answer the request in the bytes handed over.
#[tokio::test]
async fn a_connection_handed_over_during_a_drain_answers_the_request_it_holds() {
    for auto_builder in [false, true] {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (accepted, client) = tokio::join!(listener.accept(), TcpStream::connect(listener.local_addr().unwrap()));
        let (server_side, mut client) = (accepted.unwrap().0, client.unwrap());
        let read = bytes::Bytes::from_static(b"POST /late HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
        let io = TokioIo::new(Rewind::new(server_side, read));
        let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
            let body = req.into_body().collect().await.unwrap().to_bytes();
            Ok::<_, Infallible>(Response::new(full(format!("answered {}", body.len()))))
        });
        let stop = Arc::new(AtomicBool::new(true));
        // Limits far beyond the test: the drain is what ends it.
        let idle = IdleWatch::new(&Activity::new(), ClientTimeouts::default(), tokio::time::Instant::now());
        let serving = tokio::spawn(async move {
            if auto_builder {
                finish(auto::Builder::new(TokioExecutor::new()).serve_connection_with_upgrades(io, service), &stop, idle, "test").await;
            } else {
                finish(hyper::server::conn::http1::Builder::new().serve_connection(io, service), &stop, idle, "test").await;
            }
        });
        assert_eq!(response(&mut client, &mut Vec::new()).await.2, "answered 5", "auto builder: {auto_builder}");
        assert!(closed(&mut client).await);
        tokio::time::timeout(Duration::from_secs(5), serving).await.expect("the connection ends").unwrap();
    }
}

/// How long from `since` until the server closes `stream`, which sends nothing more
/// meanwhile. `since` is taken before the server's clock for the connection can have
/// started (before connecting, or before the bytes that start it are sent), so that a
/// server keeping its limit never shows a shorter time.
async fn time_to_close(stream: &mut TcpStream, since: tokio::time::Instant) -> Duration {
    assert!(closed(stream).await, "the server closes the connection within 5 s");
    since.elapsed()
}

#[tokio::test]
async fn idle_connections_close_after_the_keepalive_limit_counted_from_the_last_response() {
    let limits = ClientTimeouts { keepalive: Duration::from_millis(300), header: Duration::from_millis(250), ..ClientTimeouts::default() };
    let s = server_with(limits).await;
    // Served by hyper after a request with a body: one limit, the longer one, from the
    // end of the response.
    let mut handed_over = TcpStream::connect(s.addr).await.unwrap();
    let mut buf = Vec::new();
    let handed_over_since = tokio::time::Instant::now();
    handed_over.write_all(b"POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi").await.unwrap();
    assert_eq!(response(&mut handed_over, &mut buf).await.2, "POST /body 2");
    // Busy for twice the limit, never idle for half of it.
    let mut busy = TcpStream::connect(s.addr).await.unwrap();
    let (handed_over_for, busy_since) = tokio::join!(time_to_close(&mut handed_over, handed_over_since), async {
        let mut buf = Vec::new();
        let mut last_sent = tokio::time::Instant::now();
        for _ in 0..5 {
            // The client's idle time between requests is what this test is about.
            tokio::time::sleep(limits.keepalive / 2).await;
            last_sent = tokio::time::Instant::now();
            busy.write_all(b"GET /again HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
            assert_eq!(response(&mut busy, &mut buf).await.2, "GET /again 0");
        }
        last_sent
    });
    assert!(handed_over_for >= limits.keepalive, "closed after {handed_over_for:?}");
    let busy_for = time_to_close(&mut busy, busy_since).await;
    assert!(busy_for >= limits.keepalive, "closed after {busy_for:?}");
}

#[tokio::test]
async fn a_head_must_end_within_the_header_limit_of_its_first_bytes_and_a_first_head_of_the_accept() {
    let limits = ClientTimeouts { keepalive: Duration::from_secs(60), header: Duration::from_millis(200), ..ClientTimeouts::default() };
    let s = server_with(limits).await;
    // A new connection that sends nothing is held to the header limit, not the keep-alive one.
    let silent_since = tokio::time::Instant::now();
    let mut silent = TcpStream::connect(s.addr).await.unwrap();
    let mut stalled = TcpStream::connect(s.addr).await.unwrap();
    let stalled_since = tokio::time::Instant::now();
    stalled.write_all(b"GET /stalled HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let mut slow = TcpStream::connect(s.addr).await.unwrap();
    let (silent_for, stalled_for, ()) = tokio::join!(time_to_close(&mut silent, silent_since), time_to_close(&mut stalled, stalled_since), async {
        slow.write_all(b"GET /slow HTTP/1.1\r\n").await.unwrap();
        // The rest of the head comes late, but within the limit.
        tokio::time::sleep(limits.header / 4).await;
        slow.write_all(b"Host: x\r\n\r\n").await.unwrap();
        assert_eq!(response(&mut slow, &mut Vec::new()).await.2, "GET /slow 0");
    });
    // Well under the keep-alive limit: `time_to_close` gives up after 5 s.
    assert!(silent_for >= limits.header, "closed after {silent_for:?}");
    assert!(stalled_for >= limits.header, "closed after {stalled_for:?}");
}

#[tokio::test]
async fn a_head_too_long_for_this_path_keeps_its_header_limit_when_hyper_takes_it() {
    let limits = ClientTimeouts { keepalive: Duration::from_secs(60), header: Duration::from_millis(300), ..ClientTimeouts::default() };
    let s = server_with(limits).await;
    let mut buf = Vec::new();
    for served_first in [false, true] {
        let mut stalled = TcpStream::connect(s.addr).await.unwrap();
        if served_first {
            stalled.write_all(b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
            assert_eq!(response(&mut stalled, &mut buf).await.2, "GET /first 0");
        }
        let since = tokio::time::Instant::now();
        // More than this path reads before handing over, and no end of head.
        let long = "v".repeat(MAX_OWN_HEAD + 100);
        stalled.write_all(format!("GET /stalled HTTP/1.1\r\nx-long: {long}\r\n").as_bytes()).await.unwrap();
        // hyper alone would wait its own 60 s from the handoff; `time_to_close` gives up after 5 s.
        let stalled_for = time_to_close(&mut stalled, since).await;
        assert!(stalled_for >= limits.header, "closed after {stalled_for:?} (served first: {served_first})");
    }
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off_after_the_send_limit() {
    let limits = ClientTimeouts { send: Duration::from_millis(200), ..ClientTimeouts::default() };
    let s = server_with(limits).await;
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    stream.write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    // Not reading is what this test is about: the buffers fill, the server's write waits.
    tokio::time::sleep(limits.send * 5).await;
    let mut received = 0usize;
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk)).await.expect("the connection ends") {
            Ok(0) | Err(_) => break,
            Ok(n) => received += n,
        }
    }
    assert!(received < BIG, "the whole answer came: {received} bytes");
}
