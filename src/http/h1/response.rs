//! Writing a response on the server's own HTTP/1.1 path: the head (the response's fields,
//! then the handler's tail fields) and as much of the body as is ready go out in one
//! write; the framing is the handler's Content-Length, else the body's exact size, else
//! chunked.

use std::future::Future;
use std::io::{self, Write as _};
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::SystemTime;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Body as _;
use hyper::header::{CONNECTION, CONTENT_LENGTH, DATE, TRANSFER_ENCODING};
use hyper::{Response, StatusCode};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::http::fields::{content_length, write_field, InvalidLength};
use crate::http::{Body, TailFields};

/// Data frames at least this large are written as they are instead of copied behind the head.
const COPY_LIMIT: usize = 16 * 1024;

/// Writes `resp`, with `tail` after its fields, to `out`, using `buf` as scratch;
/// `head_only` for a HEAD request, `close` when the connection ends after it. `Ok(true)`:
/// the response went out whole and the connection may carry another request.
pub async fn write<W: AsyncWrite + Unpin>(out: &mut W, buf: &mut Vec<u8>, resp: Response<Body>, tail: &impl TailFields, head_only: bool, mut close: bool) -> io::Result<bool> {
    let (mut parts, mut body) = resp.into_parts();
    if parts.status.is_informational() {
        // A 1xx is never a final answer, and an upgrade never comes this way (requests
        // that ask for one go to hyper): as hyper does, a 500 and the end of the connection.
        tracing::warn!(status = %parts.status, "handler answered with an interim status; sending 500");
        (parts, body) = Response::new(crate::http::empty()).into_parts();
        parts.status = StatusCode::INTERNAL_SERVER_ERROR;
        close = true;
    }
    let status = parts.status;
    buf.clear();
    buf.extend_from_slice(b"HTTP/1.1 ");
    buf.extend_from_slice(status.as_str().as_bytes());
    buf.push(b' ');
    buf.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    buf.extend_from_slice(b"\r\n");

    // RFC 9110 §6.4.1: no content in these; a HEAD response has framing but no body.
    let bodiless_status = status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED;
    let mut has_date = tail.has_date();
    for (name, value) in &parts.headers {
        // Framing and the connection's fate are this writer's to state, once each.
        if *name == TRANSFER_ENCODING || *name == CONTENT_LENGTH {
            continue;
        }
        if *name == CONNECTION {
            let has = |token: &[u8]| value.as_bytes().split(|&b| b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(token));
            close |= has(b"close");
            // A 426's Upgrade field is hop-by-hop, so Connection must name it (RFC 9110
            // §7.6.1); the response stays an offer and the connection HTTP/1.1.
            if has(b"upgrade") {
                write_field(buf, b"connection", b"upgrade");
            }
            continue;
        }
        has_date |= *name == DATE;
        write_field(buf, name.as_str().as_bytes(), value.as_bytes());
    }
    tail.write_into(buf);
    let mut declared_length = if status == StatusCode::NO_CONTENT { None } else { declared_length(&parts.headers) };
    let mut chunked = false;
    match declared_length {
        Some(n) => write_length(buf, n),
        None if bodiless_status => {}
        // A HEAD response takes the length of the body it stands for; without a declared
        // length, an empty one (a proxied HEAD) says nothing of the GET's length.
        None => match body.size_hint().exact() {
            Some(0) if head_only => {}
            Some(n) => {
                write_length(buf, n);
                declared_length = Some(n);
            }
            None if head_only => {}
            None => {
                write_field(buf, b"transfer-encoding", b"chunked");
                chunked = true;
            }
        },
    }
    if !has_date {
        with_date(|date| write_field(buf, b"date", date));
    }
    if close {
        write_field(buf, b"connection", b"close");
    }
    buf.extend_from_slice(b"\r\n");

    if head_only || bodiless_status {
        out.write_all(buf).await?;
        return Ok(!close);
    }
    let mut left = declared_length;
    loop {
        let frame = match ready_now(body.frame()) {
            Some(frame) => frame,
            None => {
                // The body has to wait: what is ready goes out meanwhile.
                flush(out, buf).await?;
                body.frame().await
            }
        };
        let data = match frame {
            None => break,
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => data,
                // Trailers: not sent (they would need the client's TE: trailers).
                Err(_) => continue,
            },
            Some(Err(e)) => {
                // The message cannot be completed: what was sent stays short, and closing
                // the connection tells the client so.
                tracing::debug!(error = %e, "response body failed; closing the connection");
                flush(out, buf).await?;
                return Ok(false);
            }
        };
        if data.is_empty() {
            continue;
        }
        if let Some(left) = &mut left {
            let n = data.len() as u64;
            if n > *left {
                tracing::debug!("response body longer than its Content-Length; closing the connection");
                flush(out, buf).await?;
                return Ok(false);
            }
            *left -= n;
        }
        put_data(out, buf, data, chunked).await?;
    }
    if chunked {
        buf.extend_from_slice(b"0\r\n\r\n");
    }
    flush(out, buf).await?;
    // A body shorter than its Content-Length leaves the client waiting for the rest.
    Ok(!close && left.is_none_or(|l| l == 0))
}

async fn put_data<W: AsyncWrite + Unpin>(out: &mut W, buf: &mut Vec<u8>, data: Bytes, chunked: bool) -> io::Result<()> {
    if chunked {
        // Into the vector itself: writing to a Vec cannot fail.
        let _ = write!(buf, "{:x}\r\n", data.len());
    }
    if data.len() >= COPY_LIMIT {
        flush(out, buf).await?;
        out.write_all(&data).await?;
    } else {
        buf.extend_from_slice(&data);
    }
    if chunked {
        buf.extend_from_slice(b"\r\n");
    }
    if buf.len() >= COPY_LIMIT {
        flush(out, buf).await?;
    }
    Ok(())
}

async fn flush<W: AsyncWrite + Unpin>(out: &mut W, buf: &mut Vec<u8>) -> io::Result<()> {
    if !buf.is_empty() {
        out.write_all(buf).await?;
        buf.clear();
    }
    Ok(())
}

/// The response's Content-Length, if its fields state a readable one: unreadable or
/// conflicting values are dropped and the body framed anew, so a client never sees two.
fn declared_length(headers: &hyper::HeaderMap) -> Option<u64> {
    match content_length(headers) {
        Ok(length) => length.map(|l| l.length),
        Err(InvalidLength) => {
            tracing::debug!("unreadable or conflicting Content-Length in a response; framing it anew");
            None
        }
    }
}

fn write_length(buf: &mut Vec<u8>, n: u64) {
    let mut digits = itoa::Buffer::new();
    write_field(buf, b"content-length", digits.format(n).as_bytes());
}

/// The future's output if it is ready at its first poll. The waker is a no-op: a pending
/// future is dropped here and awaited anew by the caller.
fn ready_now<F: Future>(fut: F) -> Option<F::Output> {
    let fut = pin!(fut);
    match fut.poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}

/// The IMF-fixdate of this second, formatted once a second per thread.
fn with_date<R>(f: impl FnOnce(&[u8]) -> R) -> R {
    thread_local! {
        static LAST: std::cell::RefCell<(u64, String)> = const { std::cell::RefCell::new((u64::MAX, String::new())) };
    }
    let now = SystemTime::now();
    let secs = now.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    LAST.with_borrow_mut(|(at, text)| {
        if *at != secs {
            *at = secs;
            *text = httpdate::fmt_http_date(now);
        }
        f(text.as_bytes())
    })
}

#[cfg(test)]
#[path = "response_tests.rs"]
mod tests;
