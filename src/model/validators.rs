//! String validators shared by the entity schemas: hosts, IPs, paths, names, tags, headers
//! (Kong's `typedefs.lua` and `kong/tools/ip.lua`, with Kong's messages).

/// What [`normalize_ip`] found: an IPv4/IPv6 address or a hostname, with an optional port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    pub kind: HostKind,
    /// Normalised address (IPv6 fully expanded, no brackets) or the name as given.
    pub host: String,
    pub port: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKind {
    Ipv4,
    Ipv6,
    Name,
}

/// The kind is decided by exclusion, as Kong's `hostname_type`: more than one colon is
/// IPv6, digits and dots only is IPv4, anything else a name.
pub fn hostname_type(s: &str) -> HostKind {
    let colons = s.matches(':').count();
    if colons > 1 {
        return HostKind::Ipv6;
    }
    let rest: String = s.chars().filter(|c| *c != ':').collect();
    if !rest.is_empty() && rest.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return HostKind::Ipv4;
    }
    HostKind::Name
}

const INVALID_PORT: &str = "invalid port number";

fn parse_port(p: &str) -> Result<u32, String> {
    // Kong accepts any run of digits and only then checks the range.
    let n: u64 = p.parse().map_err(|_| INVALID_PORT.to_string())?;
    if n > 65535 {
        return Err(INVALID_PORT.into());
    }
    Ok(n as u32)
}

fn normalize_ipv4(addr: &str) -> Result<(String, Option<u32>), String> {
    let bad = || format!("invalid ipv4 address: {addr}");
    let (ip, port) = match addr.split_once(':') {
        Some((ip, p)) => {
            if p.is_empty() || !p.chars().all(|c| c.is_ascii_digit()) {
                return Err(bad());
            }
            (ip, Some(p))
        }
        None => (addr, None),
    };
    let parts: Vec<&str> = ip.split('.').collect();
    if parts.len() != 4 {
        return Err(bad());
    }
    let mut octets = [0u32; 4];
    for (i, p) in parts.iter().enumerate() {
        if p.is_empty() || p.len() > 3 || !p.chars().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        octets[i] = p.parse().map_err(|_| bad())?;
        if octets[i] > 255 {
            return Err(bad());
        }
    }
    let port = port.map(parse_port).transpose()?;
    Ok((
        format!("{}.{}.{}.{}", octets[0], octets[1], octets[2], octets[3]),
        port,
    ))
}

fn normalize_ipv6(addr: &str) -> Result<(String, Option<u32>), String> {
    let (check, port) = if let Some(rest) = addr.strip_prefix('[') {
        let close = rest
            .find(']')
            .ok_or_else(|| format!("invalid ipv6 address: {addr}"))?;
        let inner = &rest[..close];
        let after = &rest[close + 1..];
        let port = if after.is_empty() {
            None
        } else {
            let p = after.strip_prefix(':').ok_or("invalid ipv6 address")?;
            if !p.chars().all(|c| c.is_ascii_digit()) || p.is_empty() {
                return Err("invalid ipv6 address".into());
            }
            Some(parse_port(p)?)
        };
        (inner.to_string(), port)
    } else {
        (addr.to_string(), None)
    };
    let mut check = check;
    if check.starts_with(':') {
        check = format!("0{check}");
    }
    if check.ends_with(':') {
        check.push('0');
    }
    if check.contains("::") {
        let count = check.matches(':').count();
        if count > 8 {
            return Err(format!("invalid ipv6 address: {addr}"));
        }
        let ins = format!(":{}", "0:".repeat(8 - count));
        check = check.replacen("::", &ins, 1);
    }
    let groups: Vec<&str> = check.split(':').collect();
    if groups.len() != 8
        || groups
            .iter()
            .any(|g| g.is_empty() || g.len() > 4 || !g.chars().all(|c| c.is_ascii_hexdigit()))
    {
        return Err(format!("invalid ipv6 address: {addr}"));
    }
    let full: Vec<String> = groups
        .iter()
        .map(|g| format!("{:0>4}", g.to_ascii_lowercase()))
        .collect();
    Ok((full.join(":"), port))
}

fn check_hostname(addr: &str) -> Result<(String, Option<u32>), String> {
    let mut name = addr;
    let mut port = None;
    if let Some(idx) = addr.rfind(':') {
        let p = &addr[idx + 1..];
        if !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) {
            name = &addr[..idx];
            port = Some(parse_port(p)?);
        }
    }
    let bad = || format!("invalid hostname: {addr}");
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
    {
        return Err(bad());
    }
    let segs: Vec<&str> = name.split('.').collect();
    let n = segs.len();
    for (i, seg) in segs.iter().enumerate() {
        if seg.ends_with('-') || (seg.is_empty() && i + 1 != n) {
            return Err(bad());
        }
    }
    Ok((name.to_string(), port))
}

/// Kong's `normalize_ip`: accepts `ipv4`, `ipv4:port`, `ipv6`, `[ipv6]:port`, `name`,
/// `name:port`; errors are Kong's ("invalid hostname: x", "invalid port number", ...).
pub fn normalize_ip(addr: &str) -> Result<HostPort, String> {
    let kind = hostname_type(addr);
    let (host, port) = match kind {
        HostKind::Ipv4 => normalize_ipv4(addr)?,
        HostKind::Ipv6 => normalize_ipv6(addr)?,
        HostKind::Name => check_hostname(addr)?,
    };
    Ok(HostPort { kind, host, port })
}

/// Kong's `format_host`: `host:port`, IPv6 in brackets; `default_port` when none was given.
pub fn format_host(p: &HostPort, default_port: Option<u32>) -> String {
    let port = p.port.or(default_port);
    let host = if p.kind == HostKind::Ipv6 {
        format!("[{}]", p.host)
    } else {
        p.host.clone()
    };
    match port {
        Some(port) => format!("{host}:{port}"),
        None => host,
    }
}

/// `typedefs.host`: a name or IP without a port.
pub fn validate_host(host: &str) -> Result<(), String> {
    match normalize_ip(host) {
        Err(e) if e != INVALID_PORT => Err(format!("invalid value: {host}")),
        Err(_) => Err("must not have a port".into()),
        Ok(p) if p.port.is_some() => Err("must not have a port".into()),
        Ok(_) => Ok(()),
    }
}

/// `typedefs.host_with_optional_port`.
pub fn validate_host_with_optional_port(host: &str) -> Result<(), String> {
    normalize_ip(host).map(|_| ())
}

/// `typedefs.sni` / `wildcard_host` (for `snis`): a name, no IP, no port.
pub fn validate_sni(host: &str, allow_wildcard: bool) -> Result<(), String> {
    let mut h = host.to_string();
    if allow_wildcard {
        if let Some(idx) = host.find('*') {
            if idx != 0 && idx != host.len() - 1 {
                return Err("wildcard must be leftmost or rightmost character".into());
            }
            if host.matches('*').count() > 1 {
                return Err("only one wildcard must be specified".into());
            }
            h = host.replace('*', "wildcard");
        }
    }
    match normalize_ip(&h) {
        Err(e) if e != INVALID_PORT => Err(format!("invalid value: {h}")),
        Err(_) => Err("must not have a port".into()),
        Ok(p) if p.kind != HostKind::Name => Err("must not be an IP".into()),
        Ok(p) if p.port.is_some() => Err("must not have a port".into()),
        Ok(_) => Ok(()),
    }
}

/// One element of a route's `hosts`: at most one `*`, as the leftmost or rightmost label.
pub fn validate_route_host(host: &str) -> Result<(), String> {
    if host.matches('*').count() > 1 {
        return Err("invalid wildcard: must have at most one wildcard".into());
    }
    if host.contains('*') && !(host.starts_with("*.") || host.ends_with(".*")) {
        return Err("invalid wildcard: must be placed at leftmost or rightmost label".into());
    }
    validate_host_with_optional_port(&host.replace('*', "abc"))
}

fn is_unreserved(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~')
}

/// The RFC 3986 character and percent-encoding part of `typedefs.path`. `Err((msg, is_percent))`.
fn validate_path_chars(path: &str) -> Result<(), (String, bool)> {
    let ok_chars = path.starts_with('/')
        && path
            .bytes()
            .all(|c| is_unreserved(c) || b"/%:@!$&'()*+,;=".contains(&c));
    if !ok_chars {
        return Err((
            format!("invalid path: '{path}' (characters outside of the reserved list of RFC 3986 found)"),
            false,
        ));
    }
    let b = path.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let ok =
                i + 2 < b.len() && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit();
            if !ok {
                let end = (i + 3).min(b.len());
                return Err((
                    format!("invalid url-encoded value: '{}'", &path[i..end]),
                    true,
                ));
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    Ok(())
}

/// `typedefs.path` (service paths, healthcheck paths): messages in Kong's validator order.
pub fn validate_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err("should start with: /".into());
    }
    if path.contains("//") {
        return Err("must not have empty segments".into());
    }
    validate_path_chars(path).map_err(|(m, _)| m)
}

/// The last line of the regex crate's error: what is wrong, without its drawing.
fn regex_error_detail(e: &regex::Error) -> String {
    let text = e.to_string();
    let detail = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
    detail.strip_prefix("error: ").unwrap_or(detail).to_owned()
}

/// One accepted value of a route's header: any text, or `~*regex` (a case-insensitive
/// regex match, Kong's), which must compile: the router compiles it on every node.
pub fn validate_header_value(value: &str) -> Result<(), String> {
    match value.strip_prefix("~*") {
        Some(re) => regex::RegexBuilder::new(re).case_insensitive(true).build().map(|_| ()).map_err(|e| format!("invalid regex: '{re}' ({})", regex_error_detail(&e))),
        None => Ok(()),
    }
}

/// One element of a route's `paths` (`typedefs.router_path`): `/prefix` or `~/regex`.
pub fn validate_router_path(path: &str) -> Result<(), String> {
    if !(path.starts_with('/') || path.starts_with("~/")) {
        return Err("should start with: / (fixed path) or ~/ (regex path)".into());
    }
    if path.contains("//") {
        return Err("must not have empty segments".into());
    }
    if let Err((msg, true)) = validate_path_chars(path.trim_start_matches('~')) {
        return Err(msg);
    }
    if let Some(re) = path.strip_prefix('~') {
        if let Err(e) = regex::Regex::new(re) {
            return Err(format!("invalid regex: '{re}' ({})", regex_error_detail(&e)));
        }
        return Ok(());
    }
    // Requests are routed by their normal form (`request_path`): a path not in that form
    // could never match. Kong suggests the normal form as this does.
    match crate::proxy::request_path::normalize(path) {
        Ok(normalized) if normalized != path => Err(format!("non-normalized path, consider use '{normalized}' instead")),
        Ok(_) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

/// `typedefs.utf8_name`: alphanumerics, `.`, `-`, `_`, `~` and any non-ASCII character.
pub fn validate_utf8_name(name: &str) -> Result<(), String> {
    let ok = name
        .chars()
        .all(|c| !c.is_ascii() || c.is_ascii_alphanumeric() || "._-~".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid value '{name}': the only accepted ascii characters are alphanumerics or ., -, _, and ~"
        ))
    }
}

/// `typedefs.tag`: printable ASCII except `,` and `/`, or UTF-8.
pub fn validate_tag(tag: &str) -> Result<(), String> {
    let ok = tag
        .chars()
        .all(|c| !c.is_ascii() || (c == ' ') || (('!'..='~').contains(&c) && c != ',' && c != '/'));
    if ok {
        Ok(())
    } else {
        Err(format!("invalid tag '{tag}': expected printable ascii (except `,` and `/`) or valid utf-8 sequences"))
    }
}

/// `typedefs.header_name`.
pub fn validate_header_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("no header name provided".into());
    }
    if name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        Ok(())
    } else {
        Err(format!(
            "bad header name '{name}', allowed characters are A-Z, a-z, 0-9, '_', and '-'"
        ))
    }
}

/// `typedefs.cookie_name`: an RFC 2616 token.
pub fn validate_cookie_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_graphic() && !"()<>@,;:\\\"/[]?={}".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "bad cookie name '{name}', allowed characters are A-Z, a-z, 0-9, '_', and '-'"
        ))
    }
}

/// `typedefs.ip_or_cidr`.
pub fn validate_ip_or_cidr(s: &str) -> Result<(), String> {
    let bad = || format!("invalid ip or cidr range: '{s}'");
    let (ip, prefix) = match s.split_once('/') {
        Some((ip, p)) => (ip, Some(p)),
        None => (s, None),
    };
    let kind = hostname_type(ip);
    let max = match kind {
        HostKind::Ipv4 if !ip.contains(':') => {
            normalize_ipv4(ip).map_err(|_| bad())?;
            32
        }
        HostKind::Ipv6 if !ip.starts_with('[') => {
            normalize_ipv6(ip).map_err(|_| bad())?;
            128
        }
        _ => return Err(bad()),
    };
    if let Some(p) = prefix {
        let n: u32 = p.parse().map_err(|_| bad())?;
        if n > max {
            return Err(bad());
        }
    }
    Ok(())
}

/// Kong's `uuid` validator (any version, hyphenated, 36 chars).
pub fn is_uuid(s: &str) -> bool {
    s.len() == 36 && uuid::Uuid::try_parse(s).is_ok()
}

#[cfg(test)]
mod tests;
