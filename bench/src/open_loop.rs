//! Latency at a fixed offered rate, open loop, which wrk cannot give. wrk sends a
//! connection's next request only once the last is answered, so a stall also holds back
//! the requests that would have been sent during it, and they are never counted
//! (coordinated omission). Here every request has a time it is due, fixed before the
//! run: request i at start + i / rate, on connection i mod C. Its latency runs from that
//! time, so a stall counts against every request due while it lasts. The first second
//! (by default) runs the same way and is not counted.
//!
//! Plain threads and blocking sockets, not tokio: a due time must be kept to within
//! microseconds, and tokio's timer ticks in milliseconds.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::stats::{percentile_ms, r3};

pub struct Plan {
    /// host:port/path
    pub url: String,
    pub rate: f64,
    /// Sent at the same rate on the same connections first, and not counted: the first
    /// moments of a run measure connections and caches warming up.
    pub warmup: Duration,
    pub duration: Duration,
    pub connections: usize,
    /// `name: value` fields sent with every request.
    pub headers: Vec<String>,
}

/// What one connection saw.
#[derive(Default)]
struct Outcome {
    latencies: Vec<Duration>,
    errors: u64,
    non_200: u64,
}

pub fn run(plan: &Plan) -> Result<Value, String> {
    if plan.rate.is_nan() || plan.rate <= 0.0 || plan.connections == 0 {
        return Err("--rate and --connections must be above zero".into());
    }
    let (addr, path) = plan.url.split_once('/').map(|(a, p)| (a.to_owned(), format!("/{p}"))).unwrap_or((plan.url.clone(), "/".into()));
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n");
    for field in &plan.headers {
        request.push_str(field);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    let total = (plan.rate * (plan.warmup + plan.duration).as_secs_f64()) as usize;
    let counted = (plan.rate * plan.duration.as_secs_f64()) as usize;
    if counted == 0 {
        return Err("--rate times --seconds leaves no request to send".into());
    }
    // Every connection is open before the first request is due.
    let start = Instant::now() + Duration::from_millis(200);
    let threads: Vec<_> = (0..plan.connections)
        .map(|first| {
            let (addr, request, rate, step, warmup) = (addr.clone(), request.clone(), plan.rate, plan.connections, plan.warmup);
            let due = (first..total).step_by(step).map(move |i| Duration::from_secs_f64(i as f64 / rate));
            std::thread::spawn(move || drive(&addr, request.as_bytes(), start, warmup, due))
        })
        .collect();
    let mut all = Outcome::default();
    for t in threads {
        let o = t.join().map_err(|_| "a load thread panicked".to_string())??;
        all.latencies.extend(o.latencies);
        all.errors += o.errors;
        all.non_200 += o.non_200;
    }
    let answered = all.latencies.len();
    let mut l = all.latencies;
    Ok(json!({
        "offered_per_s": r3(plan.rate),
        "due": counted,
        "answered": answered,
        "errors": all.errors,
        "non_200": all.non_200,
        "p50_ms": r3(percentile_ms(&mut l, 0.5)),
        "p90_ms": r3(percentile_ms(&mut l, 0.9)),
        "p99_ms": r3(percentile_ms(&mut l, 0.99)),
        "p999_ms": r3(percentile_ms(&mut l, 0.999)),
        "max_ms": r3(percentile_ms(&mut l, 1.0)),
    }))
}

/// One connection's share: each request sent when due (at once if already late), its
/// latency counted from when it was due, once the warm-up is over.
fn drive(addr: &str, request: &[u8], start: Instant, warmup: Duration, due: impl Iterator<Item = Duration>) -> Result<Outcome, String> {
    // The kernel's default 50 µs of timer slack would be added to every wake-up.
    let _ = nix::sys::prctl::set_timerslack(1);
    let mut conn = connect(addr)?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut out = Outcome::default();
    for offset in due {
        let due_at = start + offset;
        let now = Instant::now();
        if due_at > now {
            // The schedule is the measurement: a request goes out when it is due.
            std::thread::sleep(due_at - now);
        }
        let counted = offset >= warmup;
        match exchange(&mut conn, request, &mut buf) {
            Ok(_) if !counted => {}
            Ok(status) => {
                out.latencies.push(due_at.elapsed());
                if status != 200 {
                    out.non_200 += 1;
                }
            }
            Err(e) => {
                out.errors += u64::from(counted);
                // The next request gets a fresh connection.
                conn = connect(addr).map_err(|c| format!("{e}; then {c}"))?;
            }
        }
    }
    Ok(out)
}

fn connect(addr: &str) -> Result<TcpStream, String> {
    let conn = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    conn.set_nodelay(true).map_err(|e| format!("{addr}: nodelay: {e}"))?;
    conn.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| format!("{addr}: timeout: {e}"))?;
    Ok(conn)
}

/// Sends one request and reads its whole response (Content-Length framing); the status.
fn exchange(conn: &mut TcpStream, request: &[u8], buf: &mut [u8]) -> Result<u16, String> {
    conn.write_all(request).map_err(|e| format!("send: {e}"))?;
    let mut len = 0;
    loop {
        let n = conn.read(&mut buf[len..]).map_err(|e| format!("receive: {e}"))?;
        if n == 0 {
            return Err("the server closed the connection".into());
        }
        len += n;
        if let Some(framed) = framing(&buf[..len])? {
            if len >= framed.total {
                return Ok(framed.status);
            }
        }
        if len == buf.len() {
            return Err("response larger than the driver's buffer".into());
        }
    }
}

struct Framed {
    status: u16,
    /// Head and body.
    total: usize,
}

/// The status and the full length of a response whose head is all in `bytes`.
fn framing(bytes: &[u8]) -> Result<Option<Framed>, String> {
    let Some(head_end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else { return Ok(None) };
    let head = std::str::from_utf8(&bytes[..head_end]).map_err(|_| "a response head that is not UTF-8".to_string())?;
    let status = head.get(9..12).and_then(|s| s.parse().ok()).ok_or_else(|| format!("no status in {:?}", head.lines().next()))?;
    let length = head
        .lines()
        .skip(1)
        .find_map(|line| line.split_once(':').filter(|(name, _)| name.trim().eq_ignore_ascii_case("content-length")))
        .map(|(_, v)| v.trim().parse::<usize>().map_err(|_| format!("bad content-length {v:?}")))
        .transpose()?
        .ok_or("a response without content-length (chunked is not read here)")?;
    Ok(Some(Framed { status, total: head_end + 4 + length }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_is_whole_once_its_declared_body_is_in() {
        let head = b"HTTP/1.1 429 Too Many Requests\r\nServer: x\r\ncontent-LENGTH: 5\r\n\r\n";
        assert!(framing(&head[..head.len() - 1]).unwrap().is_none(), "the head is not over yet");
        let framed = framing(head).unwrap().unwrap();
        assert_eq!((framed.status, framed.total), (429, head.len() + 5));
        assert!(framing(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n").is_err());
        assert!(framing(b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n").is_err());
    }

    /// A server that answers every request at once but the `slow`-th, which it holds for
    /// `stall`.
    fn server_with_one_stall(slow: usize, stall: Duration) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let (mut buf, mut seen, mut served) = (vec![0u8; 4096], Vec::new(), 0);
            while let Ok(n) = conn.read(&mut buf) {
                if n == 0 {
                    return;
                }
                seen.extend_from_slice(&buf[..n]);
                while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                    seen.drain(..end + 4);
                    served += 1;
                    if served == slow {
                        // The stall under test, as a server under a Raft round would make it.
                        std::thread::sleep(stall);
                    }
                    conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").unwrap();
                }
            }
        });
        addr
    }

    #[test]
    fn a_stall_counts_against_every_request_due_while_it_lasts() {
        let addr = server_with_one_stall(5, Duration::from_millis(50));
        // 100 requests due 1 ms apart on one connection; the 5th (due at 4 ms) stalls
        // until at least 54 ms, so every request due from 5 to 34 ms waits 20 ms or more.
        let due = (0..100u64).map(Duration::from_millis);
        let start = Instant::now() + Duration::from_millis(20);
        let out = drive(&addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", start, Duration::ZERO, due).unwrap();
        assert_eq!((out.latencies.len(), out.errors, out.non_200), (100, 0, 0));
        let waited = out.latencies.iter().filter(|l| **l >= Duration::from_millis(20)).count();
        // wrk's closed loop would show one slow request here.
        assert!(waited >= 30, "only {waited} requests counted 20 ms or more: {:?}", out.latencies);
    }

    #[test]
    fn the_warm_up_is_sent_but_not_counted() {
        let addr = server_with_one_stall(3, Duration::from_millis(30));
        let due = (0..40u64).map(Duration::from_millis);
        let start = Instant::now() + Duration::from_millis(20);
        // The stall falls in the first 10 ms, the warm-up; requests due after 40 ms find
        // the server answering again, but the ones due from 10 to 32 ms still wait for it.
        let out = drive(&addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", start, Duration::from_millis(10), due).unwrap();
        assert_eq!(out.latencies.len(), 30, "requests due from 10 ms on");
    }
}
