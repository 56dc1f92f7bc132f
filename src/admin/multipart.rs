//! `multipart/form-data` bodies (`curl -F name=x`, and `curl -F config=@kong.yml` as
//! Kong's DB-less docs load a file): read into the same name/value pairs a urlencoded
//! form gives. The Admin API has the whole body in memory before it looks at it, so the
//! parser is driven to completion without an executor.

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;

/// Why a multipart body could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MultipartError {
    #[error("Cannot parse multipart body: {0}")]
    Malformed(String),
}

/// The body's fields, in order, as (name, text). A field without a name is skipped, as
/// a form's empty name is.
pub fn fields(content_type: &str, body: Bytes) -> Result<Vec<(String, String)>, MultipartError> {
    let malformed = |e: multer::Error| MultipartError::Malformed(e.to_string());
    let boundary = multer::parse_boundary(content_type).map_err(malformed)?;
    let whole = futures_util::stream::once(std::future::ready(Ok::<Bytes, Infallible>(body)));
    let mut multipart = multer::Multipart::new(whole, boundary);
    let mut out = Vec::new();
    while let Some(field) = at_once(multipart.next_field())?.map_err(malformed)? {
        let name = field.name().map(str::to_owned);
        let text = at_once(field.text())?.map_err(malformed)?;
        if let Some(name) = name.filter(|n| !n.is_empty()) {
            out.push((name, text));
        }
    }
    Ok(out)
}

/// The output of a future that needs nothing it does not already hold.
fn at_once<F: Future>(future: F) -> Result<F::Output, MultipartError> {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => Ok(out),
        Poll::Pending => Err(MultipartError::Malformed("the body ended early".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(boundary: &str, parts: &[(&str, Option<&str>, &str)]) -> Bytes {
        let mut b = String::new();
        for (name, file, value) in parts {
            b.push_str(&format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\""));
            if let Some(file) = file {
                b.push_str(&format!("; filename=\"{file}\"\r\nContent-Type: application/octet-stream"));
            }
            b.push_str(&format!("\r\n\r\n{value}\r\n"));
        }
        b.push_str(&format!("--{boundary}--\r\n"));
        Bytes::from(b)
    }

    #[test]
    fn fields_and_files_come_out_in_order() {
        let ct = "multipart/form-data; boundary=XyZ";
        let b = body("XyZ", &[("name", None, "svc"), ("paths[]", None, "/a"), ("config", Some("kong.yml"), "_format_version: \"3.0\"\nservices: []\n")]);
        assert_eq!(
            fields(ct, b).unwrap(),
            vec![
                ("name".to_owned(), "svc".to_owned()),
                ("paths[]".to_owned(), "/a".to_owned()),
                ("config".to_owned(), "_format_version: \"3.0\"\nservices: []\n".to_owned())
            ]
        );
    }

    #[test]
    fn a_body_that_is_not_multipart_is_refused() {
        assert!(fields("multipart/form-data", Bytes::from_static(b"x")).is_err(), "no boundary");
        assert!(fields("multipart/form-data; boundary=b", Bytes::from_static(b"--b\r\nno end")).is_err());
        assert!(fields("multipart/form-data; boundary=b", Bytes::from_static(b"plain text")).is_err());
    }
}
