//! TLS to upstreams against a real rustls server with a self-signed certificate.

use super::*;

#[test]
fn the_sni_is_the_host_without_its_port() {
    let name = |h: &str| TlsTarget::named(h, false).map(|t| t.server_name);
    assert_eq!(name("api.test:8443"), Some(ServerName::try_from("api.test").unwrap()));
    assert_eq!(name("api.test"), Some(ServerName::try_from("api.test").unwrap()));
    assert_eq!(name("10.0.0.1:443"), Some(ServerName::try_from("10.0.0.1").unwrap()));
    assert_eq!(name("[::1]:443"), Some(ServerName::try_from("::1").unwrap()));
    assert_eq!(name("::1"), Some(ServerName::try_from("::1").unwrap()));
    assert_eq!(name("bad name"), None);
    // Still TLS, never the clear: without SNI.
    assert_eq!(TlsTarget::for_host("bad name", false).server_name, ServerName::try_from("0.0.0.0").unwrap());
}

#[test]
fn verifying_and_trusting_connections_do_not_share_a_pool() {
    let trust = TlsTarget::for_host("a.test", false);
    let verify = TlsTarget::for_host("a.test", true);
    let other = TlsTarget::for_host("b.test", false);
    let keys = [trust.pool_key("1.2.3.4:443"), verify.pool_key("1.2.3.4:443"), other.pool_key("1.2.3.4:443")];
    assert!(keys[0] != keys[1] && keys[0] != keys[2] && keys[1] != keys[2], "{keys:?}");
}

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper::{HeaderMap, Method};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls::pki_types::PrivatePkcs8KeyDer;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

use crate::proxy::errors::ProxyError;
use crate::proxy::forward::{send, Destination, Timeouts};

/// TLS for `upstream.test`, with a certificate made up for the test (signed by itself).
fn acceptor() -> TlsAcceptor {
    let certified = rcgen::generate_simple_self_signed(vec!["upstream.test".into()]).unwrap();
    let key = PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der());
    #[allow(deprecated)]
    let provider = Arc::new(crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key.into())
        .unwrap();
    TlsAcceptor::from(Arc::new(config))
}

/// A TLS server for `upstream.test` with a self-signed certificate, answering every
/// request on a connection with its body's length; counts the connections it accepts.
async fn tls_upstream() -> (String, Arc<AtomicUsize>) {
    let acceptor = acceptor();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let mut seen = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    // One request: a head, then as many body bytes as its Content-Length says.
                    let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match tls.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => seen.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&seen[..end]).to_ascii_lowercase();
                    let length: usize = head.lines().find_map(|l| l.strip_prefix("content-length: ")).map_or(0, |v| v.trim().parse().unwrap());
                    while seen.len() < end + 4 + length {
                        match tls.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => seen.extend_from_slice(&chunk[..n]),
                        }
                    }
                    seen.drain(..end + 4 + length);
                    let answer = format!("{length}");
                    let reply = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{answer}", answer.len());
                    if tls.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, accepted)
}

const QUICK: Timeouts = Timeouts { connect: Duration::from_secs(2), read: Duration::from_secs(2), write: Duration::from_secs(2) };

async fn body_of(to: Destination<'_>, method: Method, body: &'static str) -> Result<String, ProxyError> {
    let mut fields = HeaderMap::new();
    fields.insert(hyper::header::HOST, "upstream.test".parse().unwrap());
    if !body.is_empty() {
        fields.insert(hyper::header::CONTENT_LENGTH, body.len().into());
    }
    let resp = send(to, &method, "/", &fields, crate::http::full(body), QUICK, Instant::now()).await?;
    Ok(String::from_utf8(resp.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap())
}

#[tokio::test]
async fn an_https_service_is_spoken_to_over_tls_and_its_connection_reused() {
    let (addr, accepted) = tls_upstream().await;
    let tls = TlsTarget::for_host("upstream.test", false);
    let to = Destination { addr: &addr, tls: Some(&tls) };
    assert_eq!(body_of(to, Method::GET, "").await.unwrap(), "0");
    // A body goes out while the response is watched for (the exchange's other path).
    assert_eq!(body_of(to, Method::POST, "hello").await.unwrap(), "5");
    assert_eq!(body_of(to, Method::GET, "").await.unwrap(), "0");
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "one TLS connection, reused");
}

#[tokio::test]
async fn with_tls_verify_an_unknown_certificate_is_refused_before_anything_is_sent() {
    let (addr, _) = tls_upstream().await;
    let tls = TlsTarget::for_host("upstream.test", true);
    let err = body_of(Destination { addr: &addr, tls: Some(&tls) }, Method::GET, "").await.unwrap_err();
    assert!(matches!(&err, ProxyError::UpstreamBroken { retryable: true, detail } if detail.contains("TLS handshake")), "{err:?}");
}

/// A TLS server that answers the first request with a body delimited by the end of the
/// connection, then closes the TCP connection without TLS's close_notify.
async fn closing_without_notify() -> String {
    let acceptor = acceptor();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = acceptor.accept(tcp).await.unwrap();
        let mut head = [0u8; 1024];
        let _ = tls.read(&mut head).await.unwrap();
        tls.write_all(b"HTTP/1.1 200 OK\r\n\r\nuntil the end").await.unwrap();
        tls.flush().await.unwrap();
        let (tcp, _) = tls.into_inner();
        drop(tcp);
    });
    addr
}

#[tokio::test]
async fn a_body_that_ends_with_the_connection_ends_there_even_without_close_notify() {
    let addr = closing_without_notify().await;
    let tls = TlsTarget::for_host("upstream.test", false);
    assert_eq!(body_of(Destination { addr: &addr, tls: Some(&tls) }, Method::GET, "").await.unwrap(), "until the end");
}

#[tokio::test]
async fn a_connection_named_by_the_client_is_not_kept() {
    let (addr, accepted) = tls_upstream().await;
    let tls = TlsTarget { pooled: false, ..TlsTarget::for_host("upstream.test", false) };
    for _ in 0..2 {
        assert_eq!(body_of(Destination { addr: &addr, tls: Some(&tls) }, Method::GET, "").await.unwrap(), "0");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 2, "one connection per request");
}

#[tokio::test]
async fn a_tls_upstream_that_stops_reading_a_body_times_out_rather_than_hang() {
    // Accepts, completes the handshake, then reads nothing more.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let acceptor = acceptor();
    let (held_tx, held_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let tls = acceptor.accept(tcp).await.unwrap();
        let _ = held_tx.send(());
        std::future::pending::<()>().await;
        drop(tls);
    });
    let mut fields = HeaderMap::new();
    fields.insert(hyper::header::HOST, "upstream.test".parse().unwrap());
    let big = vec![b'x'; 32 << 20];
    fields.insert(hyper::header::CONTENT_LENGTH, big.len().into());
    let tls = TlsTarget::for_host("upstream.test", false);
    let quick = Timeouts { connect: Duration::from_secs(2), read: Duration::from_millis(300), write: Duration::from_millis(300) };
    let sent = send(Destination { addr: &addr, tls: Some(&tls) }, &Method::POST, "/", &fields, crate::http::full(big), quick, Instant::now());
    let err = tokio::time::timeout(Duration::from_secs(10), sent).await.expect("no hang").unwrap_err();
    assert_eq!(err, ProxyError::UpstreamTimeout);
    held_rx.await.unwrap();
}
