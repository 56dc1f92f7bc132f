//! One admin write against either system, shaped as each is normally written to:
//! gatehouse's Kong Admin API (`PUT /services/{name}` with a url) and etcd's v3 JSON
//! gateway (`POST /v3/kv/put` with base64 key and value).

use std::time::Duration;

use bytes::Bytes;
use hyper::Method;

use crate::http::{send, Client};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Gatehouse,
    Etcd,
}

/// The upstream every written service points at; the value is the same size for etcd.
const URL: &str = "http://127.0.62.1:8080";

/// Writes key `name` through `addr` (host:port); Ok once the system acknowledged it.
pub async fn write(client: &Client, kind: Kind, addr: &str, name: &str, timeout: Duration) -> Result<(), String> {
    let (method, url, ctype, body) = match kind {
        Kind::Gatehouse => (
            Method::PUT,
            format!("http://{addr}/services/{name}"),
            "application/x-www-form-urlencoded",
            format!("url={URL}"),
        ),
        Kind::Etcd => (
            Method::POST,
            format!("http://{addr}/v3/kv/put"),
            "application/json",
            format!(r#"{{"key":"{}","value":"{}"}}"#, base64(name.as_bytes()), base64(URL.as_bytes())),
        ),
    };
    let (status, resp) = send(client, method, &url, &[("content-type", ctype)], Bytes::from(body), timeout).await?;
    // etcd's gateway answers errors with a non-200 status and a JSON "error" field.
    if (200..300).contains(&status) && !resp.starts_with(b"{\"error\"") {
        Ok(())
    } else {
        Err(format!("{url}: {status} {}", String::from_utf8_lossy(&resp[..resp.len().min(200)])))
    }
}

/// Standard base64 with padding (etcd's JSON gateway wants bytes fields so encoded).
fn base64(input: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(ABC[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(super::base64(b""), "");
        assert_eq!(super::base64(b"f"), "Zg==");
        assert_eq!(super::base64(b"fo"), "Zm8=");
        assert_eq!(super::base64(b"foo"), "Zm9v");
        assert_eq!(super::base64(b"foobar"), "Zm9vYmFy");
    }
}
