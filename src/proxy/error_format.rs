//! The media type of a gateway-generated error, as Kong picks it, and its body.
//!
//! Kong has two paths. Errors its own code raises (no route, a plugin's refusal, no
//! healthy target) follow the client's Accept, JSON when Accept names nothing it knows.
//! Errors nginx raises (the upstream broke or timed out, the client's body stalled) are
//! typed from Accept, else the request's Content-Type, else `error_default_type`, which
//! is text/plain: so a bare `curl` sees JSON, but a client that sends no Accept sees text.

use hyper::header::{HeaderMap, HeaderValue, ACCEPT, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde_json::json;

use crate::http::{full, json_response, Body};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorFormat {
    Json,
    Html,
    Xml,
    Plain,
}

/// Which of Kong's two paths an error takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Raiser {
    /// The gateway's own logic: `kong.response.error`.
    Gateway,
    /// The HTTP layer beneath it: Kong's `error_page` handler.
    Server,
}

impl ErrorFormat {
    /// The format for a request with these headers.
    pub fn for_request(client: &HeaderMap, raiser: Raiser) -> ErrorFormat {
        match (client.get(ACCEPT), raiser) {
            (Some(accept), _) => ErrorFormat::negotiated(accept),
            (None, Raiser::Gateway) => ErrorFormat::Json,
            (None, Raiser::Server) => client.get(CONTENT_TYPE).map_or(ErrorFormat::Plain, ErrorFormat::negotiated),
        }
    }

    /// The first of the media types with the highest quality; one Kong does not know
    /// counts as JSON. `q=0` means "not this one", so it never wins.
    fn negotiated(accept: &HeaderValue) -> ErrorFormat {
        let Ok(accept) = accept.to_str() else { return ErrorFormat::Json };
        let mut best = ErrorFormat::Json;
        let mut best_quality = 0.0;
        for range in accept.split(',') {
            let mut params = range.split(';');
            let media_type = params.next().unwrap_or_default().trim();
            if !media_type.contains('/') {
                continue;
            }
            let quality = params
                .filter_map(|p| p.split_once('='))
                .find(|(name, _)| name.trim().eq_ignore_ascii_case("q"))
                .map_or(Some(1.0), |(_, q)| q.trim().parse::<f32>().ok().filter(|q| (0.0..=1.0).contains(q)));
            let Some(quality) = quality else { continue };
            if quality > best_quality {
                best_quality = quality;
                best = ErrorFormat::of_media_type(media_type);
            }
        }
        best
    }

    fn of_media_type(media_type: &str) -> ErrorFormat {
        let (kind, sub) = media_type.split_once('/').unwrap_or((media_type, ""));
        let is = |a: &str, b: &str| kind.eq_ignore_ascii_case(a) && sub.eq_ignore_ascii_case(b);
        if is("text", "html") {
            ErrorFormat::Html
        } else if is("application", "xml") {
            ErrorFormat::Xml
        } else if is("text", "plain") || is("text", "*") {
            ErrorFormat::Plain
        } else {
            ErrorFormat::Json
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            ErrorFormat::Json => "application/json; charset=utf-8",
            ErrorFormat::Html => "text/html; charset=utf-8",
            ErrorFormat::Xml => "application/xml; charset=utf-8",
            ErrorFormat::Plain => "text/plain; charset=utf-8",
        }
    }

    /// The error's body in this format. The message may be an operator's (a rate
    /// limit's error_message), so markup is escaped.
    pub fn response(self, status: StatusCode, message: &str, request_id: &str) -> Response<Body> {
        let text = match self {
            ErrorFormat::Json => return json_response(status, &json!({ "message": message, "request_id": request_id })),
            ErrorFormat::Plain => format!("{message}\nrequest_id: {request_id}\n"),
            ErrorFormat::Html => format!(
                "<!doctype html>\n<html>\n<head><meta charset=\"utf-8\"><title>{code} {reason}</title></head>\n<body>\n<h1>{reason}</h1>\n<p>{message}</p>\n<p>request_id: {request_id}</p>\n</body>\n</html>\n",
                code = status.as_u16(),
                reason = status.canonical_reason().unwrap_or("Error"),
                message = escape_markup(message),
            ),
            ErrorFormat::Xml => format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<error>\n  <message>{}</message>\n  <requestid>{request_id}</requestid>\n</error>\n",
                escape_markup(message)
            ),
        };
        let mut resp = Response::new(full(text));
        *resp.status_mut() = status;
        resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(self.content_type()));
        resp
    }
}

fn escape_markup(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (k.parse().unwrap(), HeaderValue::from_str(v).unwrap())).collect()
    }

    #[test]
    fn accept_picks_the_first_of_the_highest_quality() {
        use ErrorFormat::*;
        let cases = [
            ("application/json", Json),
            ("text/html", Html),
            ("TEXT/HTML; charset=utf-8", Html),
            ("application/xml", Xml),
            ("text/plain", Plain),
            ("text/*", Plain),
            ("*/*", Json),
            ("application/*", Json),
            ("image/png", Json),
            ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", Html),
            ("application/json;q=0.5, text/plain", Plain),
            ("text/plain;q=0.5, text/html;q=0.5", Plain),
            ("text/plain;q=0, application/xml;q=0.1", Xml),
            ("text/plain;q=0", Json),
            ("text/plain;q=2, text/html", Html),
            ("nonsense, text/plain", Plain),
            ("", Json),
        ];
        for (accept, want) in cases {
            for raiser in [Raiser::Gateway, Raiser::Server] {
                assert_eq!(ErrorFormat::for_request(&headers(&[("accept", accept)]), raiser), want, "{accept:?}");
            }
        }
    }

    #[test]
    fn without_accept_the_gateway_answers_json_and_the_server_content_type_then_text() {
        assert_eq!(ErrorFormat::for_request(&headers(&[]), Raiser::Gateway), ErrorFormat::Json);
        assert_eq!(ErrorFormat::for_request(&headers(&[("content-type", "text/html")]), Raiser::Gateway), ErrorFormat::Json);
        assert_eq!(ErrorFormat::for_request(&headers(&[]), Raiser::Server), ErrorFormat::Plain);
        let typed = headers(&[("content-type", "application/json; charset=utf-8")]);
        assert_eq!(ErrorFormat::for_request(&typed, Raiser::Server), ErrorFormat::Json);
        let form = headers(&[("content-type", "application/x-www-form-urlencoded")]);
        assert_eq!(ErrorFormat::for_request(&form, Raiser::Server), ErrorFormat::Json);
    }

    async fn body_of(resp: Response<Body>) -> String {
        String::from_utf8(resp.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
    }

    #[tokio::test]
    async fn each_format_carries_the_message_and_request_id_with_its_content_type() {
        let message = "limit <reached> & \"done\"";
        let json = ErrorFormat::Json.response(StatusCode::TOO_MANY_REQUESTS, message, "abc");
        assert_eq!(json.headers()[CONTENT_TYPE], "application/json; charset=utf-8");
        let v: serde_json::Value = serde_json::from_str(&body_of(json).await).unwrap();
        assert_eq!((v["message"].as_str(), v["request_id"].as_str()), (Some(message), Some("abc")));

        let plain = ErrorFormat::Plain.response(StatusCode::BAD_GATEWAY, "broken", "abc");
        assert_eq!(plain.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(plain.headers()[CONTENT_TYPE], "text/plain; charset=utf-8");
        assert_eq!(body_of(plain).await, "broken\nrequest_id: abc\n");

        let html = ErrorFormat::Html.response(StatusCode::TOO_MANY_REQUESTS, message, "abc");
        assert_eq!(html.headers()[CONTENT_TYPE], "text/html; charset=utf-8");
        let html = body_of(html).await;
        assert!(html.contains("<p>limit &lt;reached&gt; &amp; &quot;done&quot;</p>"), "{html}");
        assert!(html.contains("request_id: abc"), "{html}");

        let xml = ErrorFormat::Xml.response(StatusCode::TOO_MANY_REQUESTS, message, "abc");
        assert_eq!(xml.headers()[CONTENT_TYPE], "application/xml; charset=utf-8");
        let xml = body_of(xml).await;
        assert!(xml.contains("<message>limit &lt;reached&gt; &amp; &quot;done&quot;</message>"), "{xml}");
        assert!(xml.contains("<requestid>abc</requestid>"), "{xml}");
    }
}
