//! What a route's hosts and header values match: a host name (exact or with a wildcard)
//! and maybe a port, and a header value (any case) or a `~*regex`.

use regex::Regex;

use super::RequestView;

/// One of a route's `hosts`: a name (maybe a wildcard) and, if given, a port.
#[derive(Debug, Clone)]
pub(super) struct HostMatch {
    pub(super) name: HostRule,
    pub(super) port: Option<u16>,
}

/// `name:port` as a route's host or a request's Host field writes it: the name, and the
/// port if one is given. An IPv6 address is written `[addr]` or `[addr]:port`; the name
/// keeps its brackets.
pub fn split_port(host: &str) -> (&str, Option<u16>) {
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') || name.ends_with(']') => match port.parse() {
            Ok(port) => (name, Some(port)),
            Err(_) => (host, None),
        },
        _ => (host, None),
    }
}

impl HostMatch {
    pub(super) fn parse(h: &str) -> HostMatch {
        let (name, port) = split_port(h);
        HostMatch { name: HostRule::parse(name.trim_start_matches('[').trim_end_matches(']')), port }
    }

    pub(super) fn matches(&self, req: &RequestView<'_>) -> bool {
        self.name.matches(req.host) && self.port.is_none_or(|port| port == req.port)
    }
}

/// One accepted value of a header: the value (any case), or `~*regex`.
#[derive(Debug)]
pub(super) enum HeaderRule {
    Equal(String),
    Regex(Regex),
}

impl HeaderRule {
    pub(super) fn parse(value: &str) -> Result<HeaderRule, regex::Error> {
        match value.strip_prefix("~*") {
            // Kong lowercases the value and the regex; case-insensitive matching does the
            // same without changing what escapes such as `\S` mean.
            Some(re) => regex::RegexBuilder::new(re).case_insensitive(true).build().map(HeaderRule::Regex),
            None => Ok(HeaderRule::Equal(value.to_owned())),
        }
    }

    pub(super) fn matches(&self, value: &str) -> bool {
        match self {
            HeaderRule::Equal(want) => want.eq_ignore_ascii_case(value),
            HeaderRule::Regex(re) => re.is_match(value),
        }
    }
}

#[derive(Debug, Clone)]
pub(super) enum HostRule {
    Exact(String),
    /// `*.example.com`: the suffix with its dot.
    Suffix(String),
    /// `example.*`: the prefix with its dot.
    Prefix(String),
}

impl HostRule {
    pub(super) fn parse(h: &str) -> HostRule {
        let h = h.to_ascii_lowercase();
        if let Some(rest) = h.strip_prefix('*') {
            HostRule::Suffix(rest.to_owned())
        } else if let Some(rest) = h.strip_suffix('*') {
            HostRule::Prefix(rest.to_owned())
        } else {
            HostRule::Exact(h)
        }
    }

    pub(super) fn matches(&self, host: &str) -> bool {
        match self {
            HostRule::Exact(h) => h == host,
            HostRule::Suffix(s) => host.len() > s.len() && host.ends_with(s.as_str()),
            HostRule::Prefix(p) => host.len() > p.len() && host.starts_with(p.as_str()),
        }
    }
}
