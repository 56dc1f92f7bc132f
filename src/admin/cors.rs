//! The Admin API's CORS fields for the origins `--admin-gui-origin` names, as Kong's
//! `cors_filter` writes them for `admin_gui_origin`: the caller's origin when listed,
//! else the first listed (which the browser then refuses). With no origin configured
//! none are written, where Kong would echo any origin: a page on any site a local admin
//! opens could then read the Admin API.

use hyper::header::{HeaderValue, ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_ORIGIN, VARY};
use hyper::HeaderMap;

pub fn allow(origins: &[String], caller: Option<&HeaderValue>, headers: &mut HeaderMap) {
    let listed = caller.filter(|c| origins.iter().any(|o| o.as_bytes() == c.as_bytes())).cloned();
    let Some(allowed) = listed.or_else(|| origins.first().and_then(|o| HeaderValue::from_str(o).ok())) else { return };
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
    headers.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
    // The answer depends on the caller's Origin: a cache must not give one's to another.
    headers.append(VARY, HeaderValue::from_static("Origin"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origins() -> Vec<String> {
        vec!["https://admin.example".into(), "http://localhost:8002".into()]
    }

    #[test]
    fn a_listed_caller_is_allowed_and_another_gets_the_first_listed() {
        let mut headers = HeaderMap::new();
        allow(&origins(), Some(&HeaderValue::from_static("http://localhost:8002")), &mut headers);
        assert_eq!(headers[ACCESS_CONTROL_ALLOW_ORIGIN], "http://localhost:8002");
        assert_eq!(headers[ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
        assert_eq!(headers[VARY], "Origin");

        for caller in [Some(HeaderValue::from_static("https://evil.example")), None] {
            let mut headers = HeaderMap::new();
            allow(&origins(), caller.as_ref(), &mut headers);
            assert_eq!(headers[ACCESS_CONTROL_ALLOW_ORIGIN], "https://admin.example");
        }
    }
}
