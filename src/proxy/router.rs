//! Route matching as Kong's `traditional_compatible` router does it, compiled into an
//! immutable index: every route is split per path, each variant gets Kong's priority,
//! and a request is matched against the few candidates its host and path can reach
//! (exact hosts by hash map, prefixes by a byte trie) instead of every route.

use std::collections::{BTreeMap, HashMap};

use regex::Regex;

/// What the router needs of a route.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouteSpec {
    pub created_at: i64,
    /// Tie-break after created_at, so every node picks the same route.
    pub id: String,
    pub hosts: Vec<String>,
    /// `/prefix` or `~/regex`.
    pub paths: Vec<String>,
    pub methods: Vec<String>,
    /// Header name → accepted values (any of them); a value `~*regex` matches by
    /// regex, case-insensitively, as Kong's.
    pub headers: BTreeMap<String, Vec<String>>,
    pub regex_priority: i64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RouterError {
    #[error("route {id}: invalid regex path {path:?}: {reason}")]
    BadRegex { id: String, path: String, reason: String },
    #[error("route {id}: invalid regex in header {name:?}: {value:?}: {reason}")]
    BadHeaderRegex { id: String, name: String, value: String, reason: String },
}

/// The request as the router sees it.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    pub method: &'a str,
    /// Without the port.
    pub host: &'a str,
    /// The Host field's port, else the listener's: what a route's `host:port` must match.
    pub port: u16,
    pub path: &'a str,
    pub headers: &'a hyper::HeaderMap,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    /// Index into the specs given to `Router::build`.
    pub route: usize,
    /// The part of the path the route's path matched (for strip_path).
    pub matched_path: Option<String>,
}

#[derive(Debug)]
enum PathRule {
    Any,
    Prefix(String),
    Regex { re: Regex, literal: String },
}

#[derive(Debug)]
struct Variant {
    route: usize,
    path: PathRule,
    hosts: Vec<HostMatch>,
    methods: Vec<String>,
    headers: Vec<(String, Vec<HeaderRule>)>,
}

impl Variant {
    /// Everything but the path (and, for host buckets, the host) is checked here.
    fn matches(&self, req: &RequestView<'_>) -> Option<Option<String>> {
        if !self.methods.is_empty() && !self.methods.iter().any(|m| m == req.method) {
            return None;
        }
        if !self.hosts.is_empty() && !self.hosts.iter().any(|h| h.matches(req)) {
            return None;
        }
        for (name, values) in &self.headers {
            let ok = req.headers.get_all(name.as_str()).iter().any(|v| v.to_str().is_ok_and(|v| values.iter().any(|rule| rule.matches(v.trim()))));
            if !ok {
                return None;
            }
        }
        match &self.path {
            PathRule::Any => Some(None),
            PathRule::Prefix(p) => req.path.starts_with(p.as_str()).then(|| Some(p.clone())),
            PathRule::Regex { re, .. } => re.find(req.path).filter(|m| m.start() == 0).map(|m| Some(m.as_str().to_owned())),
        }
    }
}

/// Kong's priority as a sort key: smaller sorts first and wins.
fn priority(spec: &RouteSpec, path: &PathRule) -> impl Ord {
    use std::cmp::Reverse;
    let weight = [!spec.methods.is_empty(), !spec.hosts.is_empty(), !spec.headers.is_empty(), !spec.paths.is_empty()]
        .iter()
        .filter(|x| **x)
        .count();
    let plain_hosts = !spec.hosts.is_empty() && spec.hosts.iter().all(|h| !h.contains('*'));
    let (is_regex, regex_priority, prefix_len) = match path {
        PathRule::Regex { .. } => (true, spec.regex_priority, 0),
        PathRule::Prefix(p) => (false, 0, p.len()),
        PathRule::Any => (false, 0, 0),
    };
    (
        Reverse(weight),
        Reverse(plain_hosts),
        Reverse(is_regex),
        Reverse(spec.headers.len()),
        Reverse(regex_priority),
        Reverse(prefix_len),
        spec.created_at,
        spec.id.clone(),
    )
}

/// Variants reachable for one host class; every list is in priority order. Prefix
/// paths sit in the trie at their prefix, regex paths at their literal prefix (the
/// part before the first metacharacter), so a lookup tests only the regexes whose
/// literal start the path has, not every regex of the table.
#[derive(Debug, Default)]
struct Bucket {
    trie: Trie,
    /// Regexes with no usable literal prefix: tested for every request.
    open_regexes: Vec<usize>,
    any_path: Vec<usize>,
}

/// A byte trie in one arena (no allocation per node beyond its child list).
#[derive(Debug)]
struct Trie {
    nodes: Vec<TrieNode>,
}

#[derive(Debug, Default)]
struct TrieNode {
    /// Sorted by byte; few children per node, so a linear scan is fastest.
    children: Vec<(u8, u32)>,
    /// Variants whose prefix (or regex literal prefix) ends here, in priority order.
    here: Vec<usize>,
}

impl Default for Trie {
    fn default() -> Self {
        Trie { nodes: vec![TrieNode::default()] }
    }
}

impl Trie {
    fn insert(&mut self, prefix: &[u8], variant: usize) {
        let mut at = 0usize;
        for b in prefix {
            at = match self.nodes[at].children.iter().find(|(c, _)| c == b) {
                Some((_, next)) => *next as usize,
                None => {
                    let next = self.nodes.len();
                    self.nodes.push(TrieNode::default());
                    let children = &mut self.nodes[at].children;
                    let pos = children.partition_point(|(c, _)| c < b);
                    children.insert(pos, (*b, next as u32));
                    next
                }
            };
        }
        self.nodes[at].here.push(variant);
    }

    /// Calls `f` with every variant list along `path`.
    fn walk<'a>(&'a self, path: &[u8], mut f: impl FnMut(&'a [usize])) {
        let mut at = 0usize;
        f(&self.nodes[0].here);
        for b in path {
            match self.nodes[at].children.iter().find(|(c, _)| c == b) {
                Some((_, next)) => {
                    at = *next as usize;
                    f(&self.nodes[at].here);
                }
                None => return,
            }
        }
    }
}

/// The literal text every match of `pattern` starts with ("" when there is none, or
/// when alternation makes it unsafe to tell).
fn literal_prefix(pattern: &str) -> &str {
    if pattern.contains('|') {
        return "";
    }
    let end = pattern.find(|c: char| "\\.+*?()[]{}^$".contains(c)).unwrap_or(pattern.len());
    // A quantifier right after makes the last literal character optional.
    let literal = &pattern[..end];
    match pattern[end..].chars().next() {
        Some('?' | '*' | '{') => literal.char_indices().last().map_or("", |(last, _)| &literal[..last]),
        _ => literal,
    }
}

impl Bucket {
    fn add(&mut self, index: usize, v: &Variant) {
        match &v.path {
            PathRule::Any => self.any_path.push(index),
            PathRule::Prefix(p) => self.trie.insert(p.as_bytes(), index),
            PathRule::Regex { literal, .. } if !literal.is_empty() => self.trie.insert(literal.as_bytes(), index),
            PathRule::Regex { .. } => self.open_regexes.push(index),
        }
    }

    /// The best (lowest-index) variant here that matches, if any beats `best`.
    fn best(&self, variants: &[Variant], req: &RequestView<'_>, best: &mut Option<(usize, Option<String>)>) {
        let mut consider = |list: &[usize]| {
            for &i in list {
                if best.as_ref().is_some_and(|(b, _)| *b <= i) {
                    return;
                }
                if let Some(matched) = variants[i].matches(req) {
                    *best = Some((i, matched));
                    return;
                }
            }
        };
        self.trie.walk(req.path.as_bytes(), &mut consider);
        consider(&self.open_regexes);
        consider(&self.any_path);
    }
}

/// Compiled path regexes by pattern, kept across rebuilds: recompiling a thousand
/// regexes would dominate a rebuild triggered by one unrelated change.
#[derive(Debug, Default)]
pub struct RegexCache {
    compiled: std::sync::Mutex<HashMap<String, Regex>>,
}

impl RegexCache {
    fn get(&self, pattern: &str) -> Result<Regex, regex::Error> {
        if let Some(re) = self.compiled.lock().expect("regex cache lock").get(pattern) {
            return Ok(re.clone());
        }
        let re = Regex::new(&format!("^(?:{pattern})"))?;
        self.compiled.lock().expect("regex cache lock").insert(pattern.to_owned(), re.clone());
        Ok(re)
    }

    /// Drops patterns no route uses any more.
    fn retain(&self, used: &std::collections::HashSet<&str>) {
        self.compiled.lock().expect("regex cache lock").retain(|k, _| used.contains(k.as_str()));
    }
}

/// An immutable, compiled route table.
#[derive(Debug, Default)]
pub struct Router {
    variants: Vec<Variant>,
    exact_hosts: HashMap<String, Bucket>,
    wildcard_hosts: Bucket,
    any_host: Bucket,
}

impl Router {
    pub fn build(specs: &[RouteSpec]) -> Result<Router, RouterError> {
        Router::build_with(specs, &RegexCache::default())
    }

    /// Builds with compiled regexes reused from (and added to) `cache`.
    pub fn build_with(specs: &[RouteSpec], cache: &RegexCache) -> Result<Router, RouterError> {
        let mut compiled = Vec::new();
        let mut used = std::collections::HashSet::new();
        for (route, spec) in specs.iter().enumerate() {
            let paths: Vec<PathRule> = if spec.paths.is_empty() {
                vec![PathRule::Any]
            } else {
                spec.paths
                    .iter()
                    .map(|p| match p.strip_prefix('~') {
                        Some(pattern) => {
                            used.insert(pattern);
                            cache
                                .get(pattern)
                                .map(|re| PathRule::Regex { re, literal: literal_prefix(pattern).to_owned() })
                                .map_err(|e| RouterError::BadRegex { id: spec.id.clone(), path: p.clone(), reason: e.to_string() })
                        }
                        None => Ok(PathRule::Prefix(p.clone())),
                    })
                    .collect::<Result<_, _>>()?
            };
            let header_rules = |(name, values): (&String, &Vec<String>)| -> Result<(String, Vec<HeaderRule>), RouterError> {
                let rules = values.iter().map(|value| {
                    HeaderRule::parse(value).map_err(|e| RouterError::BadHeaderRegex { id: spec.id.clone(), name: name.clone(), value: value.clone(), reason: e.to_string() })
                });
                Ok((name.to_ascii_lowercase(), rules.collect::<Result<_, _>>()?))
            };
            for path in paths {
                let key = priority(spec, &path);
                let variant = Variant {
                    route,
                    path,
                    hosts: spec.hosts.iter().map(|h| HostMatch::parse(h)).collect(),
                    methods: spec.methods.iter().map(|m| m.to_ascii_uppercase()).collect(),
                    headers: spec.headers.iter().map(header_rules).collect::<Result<_, _>>()?,
                };
                compiled.push((key, variant));
            }
        }
        compiled.sort_by(|a, b| a.0.cmp(&b.0));
        let variants: Vec<Variant> = compiled.into_iter().map(|(_, v)| v).collect();
        let mut router = Router::default();
        for (i, v) in variants.iter().enumerate() {
            if v.hosts.is_empty() {
                router.any_host.add(i, v);
            }
            for h in &v.hosts {
                match &h.name {
                    HostRule::Exact(name) => router.exact_hosts.entry(name.clone()).or_default().add(i, v),
                    _ => router.wildcard_hosts.add(i, v),
                }
            }
        }
        router.variants = variants;
        cache.retain(&used);
        Ok(router)
    }

    /// The best matching route, by Kong's precedence.
    pub fn find(&self, req: &RequestView<'_>) -> Option<RouteMatch> {
        let mut best = None;
        if let Some(bucket) = self.exact_hosts.get(req.host) {
            bucket.best(&self.variants, req, &mut best);
        }
        self.wildcard_hosts.best(&self.variants, req, &mut best);
        self.any_host.best(&self.variants, req, &mut best);
        best.map(|(i, matched_path)| RouteMatch { route: self.variants[i].route, matched_path })
    }

    pub fn is_empty(&self) -> bool {
        self.variants.is_empty()
    }

    /// Reference matcher for tests: every variant in priority order, first match wins.
    #[cfg(test)]
    pub(crate) fn find_linear(&self, req: &RequestView<'_>) -> Option<RouteMatch> {
        self.variants.iter().find_map(|v| v.matches(req).map(|m| RouteMatch { route: v.route, matched_path: m }))
    }
}

mod rules;
pub use rules::split_port;
use rules::{HeaderRule, HostMatch, HostRule};

#[cfg(test)]
#[path = "router_tests.rs"]
mod tests;
