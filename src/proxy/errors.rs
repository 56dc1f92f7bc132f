//! Typed proxy errors: where a failure came from, whether another target may be tried,
//! and the one place that maps each to Kong's status code and message.

use hyper::{HeaderMap, Response, StatusCode};

use super::error_format::{ErrorFormat, Raiser};
use crate::http::Body;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// No route matched: the client's request is wrong for this configuration.
    #[error("no Route matched with those values")]
    NoRoute,
    /// Every target of the upstream is unhealthy or has weight 0.
    #[error("failure to get a peer from the ring-balancer")]
    NoHealthyTarget,
    /// The service's host does not resolve.
    #[error("name resolution failed")]
    NameResolution,
    /// The upstream refused or reset the connection, or answered garbage.
    #[error("An invalid response was received from the upstream server")]
    UpstreamBroken { retryable: bool, detail: String },
    /// Write or read exceeded the service's timeout: the request may have reached it.
    #[error("The upstream server is timing out")]
    UpstreamTimeout,
    /// No connection (or TLS session) within the connect timeout: nothing was sent, so
    /// another target may be tried, as nginx's proxy_next_upstream timeout does.
    #[error("The upstream server is timing out")]
    ConnectTimeout,
    /// The client's request body stalled past the service's write timeout while it was
    /// being sent upstream (nginx's 408). Not the upstream's fault.
    #[error("Request timeout")]
    ClientBodyTimeout,
    /// The client's request body ended early or broke while it was being sent upstream.
    #[error("Bad request")]
    ClientBodyBroken,
    /// The path has a `%` that begins no escape: nginx refuses such a request before
    /// Kong sees it, and passed on it could be decoded twice (see `request_path`).
    #[error("Bad request")]
    MalformedPath,
    /// CONNECT asks for a tunnel, which no route offers (as Envoy without a CONNECT
    /// route, and unlike a forward proxy): refused before routing, so that a catch-all
    /// route does not send the upstream a tunnel request it never expected.
    #[error("CONNECT is not supported")]
    TunnelRefused,
    /// A bug or an impossible state on our side.
    #[error("An unexpected error occurred")]
    Internal(String),
}

impl ProxyError {
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::NoRoute => StatusCode::NOT_FOUND,
            ProxyError::NoHealthyTarget | ProxyError::NameResolution => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::UpstreamBroken { .. } => StatusCode::BAD_GATEWAY,
            ProxyError::UpstreamTimeout | ProxyError::ConnectTimeout => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::ClientBodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ProxyError::ClientBodyBroken | ProxyError::MalformedPath => StatusCode::BAD_REQUEST,
            ProxyError::TunnelRefused => StatusCode::NOT_IMPLEMENTED,
            ProxyError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Whether the request may be sent to another target: only when it provably never
    /// reached the upstream (connection refused or not made in time, a name that does
    /// not resolve), so no request runs twice.
    pub fn retryable(&self) -> bool {
        matches!(self, ProxyError::UpstreamBroken { retryable: true, .. } | ProxyError::NameResolution | ProxyError::ConnectTimeout)
    }

    /// True when the upstream (not the client or us) is to blame, for passive health checks.
    pub fn upstream_fault(&self) -> bool {
        matches!(self, ProxyError::UpstreamBroken { .. } | ProxyError::UpstreamTimeout | ProxyError::ConnectTimeout)
    }

    /// Where Kong raises it: the failures nginx meets on its own (the upstream's, the
    /// client body's, a crash) go through its error page, the rest through its code.
    fn raiser(&self) -> Raiser {
        match self {
            ProxyError::NoRoute | ProxyError::NoHealthyTarget | ProxyError::NameResolution | ProxyError::TunnelRefused => Raiser::Gateway,
            ProxyError::UpstreamBroken { .. }
            | ProxyError::UpstreamTimeout
            | ProxyError::ConnectTimeout
            | ProxyError::ClientBodyTimeout
            | ProxyError::ClientBodyBroken
            | ProxyError::MalformedPath
            | ProxyError::Internal(_) => Raiser::Server,
        }
    }

    /// Kong's error body in the format the client's headers ask for, with the request
    /// id Kong adds since 3.5.
    pub fn response(&self, request_id: &str, client: &HeaderMap) -> Response<Body> {
        ErrorFormat::for_request(client, self.raiser()).response(self.status(), &self.to_string(), request_id)
    }
}

/// An error the gateway's own logic raises (a plugin's refusal), in Kong's shape:
/// `{"message": ..., "request_id": ...}` unless the client's Accept asks for another.
pub fn error_response(status: StatusCode, message: &str, request_id: &str, client: &HeaderMap) -> Response<Body> {
    ErrorFormat::for_request(client, Raiser::Gateway).response(status, message, request_id)
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    #[tokio::test]
    async fn each_error_has_kongs_status_and_words() {
        let cases = [
            (ProxyError::NoRoute, 404, "no Route matched with those values"),
            (ProxyError::NoHealthyTarget, 503, "failure to get a peer from the ring-balancer"),
            (ProxyError::NameResolution, 503, "name resolution failed"),
            (ProxyError::UpstreamBroken { retryable: false, detail: "reset".into() }, 502, "An invalid response was received from the upstream server"),
            (ProxyError::UpstreamTimeout, 504, "The upstream server is timing out"),
            (ProxyError::ConnectTimeout, 504, "The upstream server is timing out"),
            (ProxyError::ClientBodyTimeout, 408, "Request timeout"),
            (ProxyError::ClientBodyBroken, 400, "Bad request"),
            (ProxyError::Internal("x".into()), 500, "An unexpected error occurred"),
        ];
        let asks_json = HeaderMap::from_iter([(hyper::header::ACCEPT, "application/json".parse().unwrap())]);
        for (err, status, text) in cases {
            let resp = err.response("abc", &asks_json);
            assert_eq!(resp.status().as_u16(), status);
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["message"], text);
            assert_eq!(v["request_id"], "abc");
        }
    }

    #[test]
    fn without_accept_the_upstreams_failures_are_text_and_the_gateways_own_json() {
        let bare = HeaderMap::new();
        let content_type = |e: ProxyError| e.response("abc", &bare).headers()[hyper::header::CONTENT_TYPE].clone();
        for e in [ProxyError::UpstreamBroken { retryable: false, detail: String::new() }, ProxyError::UpstreamTimeout, ProxyError::ClientBodyTimeout] {
            assert_eq!(content_type(e), "text/plain; charset=utf-8");
        }
        for e in [ProxyError::NoRoute, ProxyError::NoHealthyTarget, ProxyError::NameResolution] {
            assert_eq!(content_type(e), "application/json; charset=utf-8");
        }
    }

    #[test]
    fn only_what_never_reached_an_upstream_is_retried() {
        assert!(ProxyError::UpstreamBroken { retryable: true, detail: String::new() }.retryable());
        assert!(!ProxyError::UpstreamBroken { retryable: false, detail: String::new() }.retryable());
        assert!(!ProxyError::UpstreamTimeout.retryable());
        assert!(ProxyError::NameResolution.retryable(), "nothing was sent");
        assert!(ProxyError::ConnectTimeout.retryable(), "nothing was sent");
    }
}
