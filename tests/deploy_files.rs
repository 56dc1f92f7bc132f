//! The deployment files checked against the binary they deploy, so they cannot drift:
//!
//! - every YAML file under deploy/ parses, and every `gatehouse <command>` it runs (in a
//!   container's command/args, a compose command or healthcheck, a probe, or a shell
//!   script given to `sh -c`) uses only flags that `gatehouse <command> --help` lists;
//!   every `GATEHOUSE_*` variable a container sets is one `gatehouse start --help` lists;
//! - the Dockerfile, the systemd unit and the config files that scripts/provision.sh
//!   writes pass the same checks (config keys must be `start` flags);
//! - scripts/provision.sh runs for real under a temporary root (and with --dry-run), is
//!   idempotent, and the three configs it writes for a Vagrant-like cluster start three
//!   real nodes on loopback that form one cluster;
//! - the Kubernetes start-up script picks the right --join seeds for each pod;
//! - the Vagrantfile passes `ruby -c` and its provision.sh arguments are accepted by
//!   provision.sh (both need `ruby`: skipped with a note where it is not installed).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_yaml_ng::Value;

const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
}

fn have(tool: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {tool}")]).stdout(Stdio::null()).status().is_ok_and(|s| s.success())
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

// ---------------------------------------------------------------------------------------
// What the binary accepts, read from its --help.

struct Cli {
    /// Subcommand -> its long flags (without the leading dashes).
    flags: BTreeMap<String, BTreeSet<String>>,
    /// `GATEHOUSE_*` variables `gatehouse start` reads.
    start_env: BTreeSet<String>,
    /// `GATEHOUSE_*` variables any subcommand reads (start's plus e.g. GATEHOUSE_ADMIN).
    any_env: BTreeSet<String>,
}

fn help(args: &[&str]) -> String {
    let out = run(Command::new(BIN).args(args));
    assert!(out.status.success(), "gatehouse {args:?} failed: {}", text(&out.stderr));
    text(&out.stdout)
}

fn flags_in_help(help: &str) -> BTreeSet<String> {
    help.lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with('-'))
        .flat_map(|l| l.split([' ', ',']).filter_map(flag_name).collect::<Vec<_>>())
        .collect()
}

fn env_in_help(help: &str) -> BTreeSet<String> {
    let re = regex::Regex::new(r"\[env: (GATEHOUSE_[A-Z0-9_]+)").unwrap();
    re.captures_iter(help).map(|c| c[1].to_string()).collect()
}

fn cli() -> &'static Cli {
    static CLI: OnceLock<Cli> = OnceLock::new();
    CLI.get_or_init(|| {
        let top = help(&["--help"]);
        let subcommands: Vec<String> = top
            .lines()
            .skip_while(|l| !l.starts_with("Commands:"))
            .skip(1)
            .take_while(|l| l.starts_with("  "))
            .filter_map(|l| l.split_whitespace().next())
            .filter(|c| *c != "help")
            .map(str::to_string)
            .collect();
        assert!(subcommands.iter().any(|c| c == "start"), "no start command in:\n{top}");
        let mut flags = BTreeMap::new();
        let mut any_env = BTreeSet::new();
        let mut start_env = BTreeSet::new();
        for sub in subcommands {
            let h = help(&[&sub, "--help"]);
            let env = env_in_help(&h);
            if sub == "start" {
                start_env = env.clone();
            }
            any_env.extend(env);
            flags.insert(sub, flags_in_help(&h));
        }
        Cli { flags, start_env, any_env }
    })
}

/// `--bind-addr=1.2.3.4` -> `bind-addr`; anything that is not a long flag -> None.
fn flag_name(token: &str) -> Option<String> {
    let rest = token.strip_prefix("--")?;
    let name = rest.split('=').next().unwrap_or("");
    let ok = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    ok.then(|| name.to_string())
}

// ---------------------------------------------------------------------------------------
// Finding `gatehouse <command> --flags` in argument vectors and shell scripts.

/// One run of the binary found in a file.
#[derive(Debug, Clone, PartialEq)]
struct Invocation {
    command: String,
    flags: Vec<String>,
}

/// Splits shell text into simple commands (at newlines, `;`, `&&`, `||`, `|`) of
/// whitespace-separated words with quotes removed, dropping comments. Rough, but enough
/// to find flags in the scripts these files carry.
fn shell_commands(script: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for line in script.lines() {
        let mut words = Vec::new();
        for raw in line.split_whitespace() {
            if raw.starts_with('#') {
                break;
            }
            for (i, part) in raw.split(';').enumerate() {
                let boundary = i > 0 || matches!(part, "&&" | "||" | "|");
                if boundary && !words.is_empty() {
                    out.push(std::mem::take(&mut words));
                }
                let word: String = part.chars().filter(|c| !matches!(c, '"' | '\'')).collect();
                if !word.is_empty() && !matches!(word.as_str(), "&&" | "||" | "|") {
                    words.push(word);
                }
            }
        }
        if !words.is_empty() {
            out.push(words);
        }
    }
    out
}

fn is_gatehouse(word: &str) -> bool {
    word == "gatehouse" || word.ends_with("/gatehouse")
}

/// The binary's runs in one argument vector. When the vector is `sh -c SCRIPT`, the script
/// is searched: flags on a line that runs `gatehouse X` belong to X, and flags on other
/// lines of a script that runs `gatehouse start` are taken as start flags (scripts build
/// up flag lists such as `seeds="$seeds --join ..."`).
fn invocations(argv: &[String]) -> Vec<Invocation> {
    let subcommands = &cli().flags;
    let is_shell = argv.len() >= 2
        && matches!(argv[0].rsplit('/').next(), Some("sh" | "bash" | "dash"))
        && argv.iter().any(|a| a == "-c");
    let commands: Vec<Vec<String>> = if is_shell {
        argv.iter().skip_while(|a| *a != "-c").skip(1).flat_map(|s| shell_commands(s)).collect()
    } else {
        vec![argv.iter().map(|a| a.trim().to_string()).collect()]
    };
    let mut found = Vec::new();
    let mut loose_flags = Vec::new();
    for words in &commands {
        let mut at = None;
        for (i, w) in words.iter().enumerate() {
            if is_gatehouse(w) && words.get(i + 1).is_some_and(|c| subcommands.contains_key(c)) {
                at = Some(i);
                break;
            }
        }
        match at {
            Some(i) => found.push(Invocation {
                command: words[i + 1].clone(),
                flags: words[i + 2..].iter().filter_map(|w| flag_name(w)).collect(),
            }),
            None if is_shell => loose_flags.extend(words.iter().filter_map(|w| flag_name(w))),
            None => {}
        }
    }
    if !loose_flags.is_empty() {
        match found.iter_mut().find(|inv| inv.command == "start") {
            Some(start) => start.flags.extend(loose_flags),
            None => found.push(Invocation { command: "(script without gatehouse start)".into(), flags: loose_flags }),
        }
    }
    found
}

/// Problems with the runs of the binary in `argv`, named after `place`.
fn check_argv(place: &str, argv: &[String], problems: &mut Vec<String>) -> Vec<Invocation> {
    let found = invocations(argv);
    for inv in &found {
        let Some(known) = cli().flags.get(&inv.command) else {
            problems.push(format!("{place}: flags {:?} outside any `gatehouse <command>`", inv.flags));
            continue;
        };
        for flag in &inv.flags {
            if !known.contains(flag) {
                problems.push(format!("{place}: `gatehouse {}` has no flag --{flag}", inv.command));
            }
        }
    }
    found
}

fn check_env_name(place: &str, name: &str, problems: &mut Vec<String>) {
    if name.starts_with("GATEHOUSE_") && !cli().start_env.contains(name) {
        problems.push(format!("{place}: {name} is not a `gatehouse start` variable"));
    }
}

fn assert_no_problems(what: &str, problems: &[String]) {
    assert!(problems.is_empty(), "{what}:\n  {}", problems.join("\n  "));
}

// ---------------------------------------------------------------------------------------
// YAML helpers.

fn yaml_docs(rel: &str) -> Vec<Value> {
    let text = read(rel);
    let mut docs = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let mut value = Value::deserialize(doc).unwrap_or_else(|e| panic!("{rel} is not valid YAML: {e}"));
        value.apply_merge().unwrap_or_else(|e| panic!("{rel}: bad merge key: {e}"));
        if !value.is_null() {
            docs.push(value);
        }
    }
    docs
}

fn yaml_files(dir: &Path, out: &mut Vec<String>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path.strip_prefix(repo()).unwrap().to_string_lossy().into_owned());
        }
    }
    out.sort();
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::Sequence(items) => items.iter().filter_map(scalar).collect(),
        other => scalar(other).into_iter().collect(),
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

/// Every Kubernetes container spec (containers and initContainers) anywhere in `v`.
fn containers(v: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    let mut stack = vec![v];
    while let Some(node) = stack.pop() {
        match node {
            Value::Mapping(m) => {
                for (k, child) in m {
                    if matches!(k.as_str(), Some("containers" | "initContainers")) {
                        out.extend(child.as_sequence().into_iter().flatten());
                    } else {
                        stack.push(child);
                    }
                }
            }
            Value::Sequence(items) => stack.extend(items),
            _ => {}
        }
    }
    out
}

/// The image's ENTRYPOINT, read from the Dockerfile (a JSON array).
fn image_entrypoint() -> Vec<String> {
    let dockerfile = read("deploy/Dockerfile");
    let line = dockerfile.lines().rev().find(|l| l.starts_with("ENTRYPOINT ")).expect("the Dockerfile has an ENTRYPOINT");
    serde_json::from_str(line.trim_start_matches("ENTRYPOINT ")).expect("ENTRYPOINT is a JSON array")
}

/// Checks one Kubernetes container: its command/args, probes, lifecycle hooks and env.
fn check_k8s_container(place: &str, c: &Value, problems: &mut Vec<String>) -> Vec<Invocation> {
    let place = format!("{place} container {}", s(c, "name"));
    let argv: Vec<String> = if c["command"].is_null() {
        image_entrypoint().into_iter().chain(strings(&c["args"])).collect()
    } else {
        strings(&c["command"]).into_iter().chain(strings(&c["args"])).collect()
    };
    let found = check_argv(&place, &argv, problems);
    for hook in ["readinessProbe", "livenessProbe", "startupProbe"] {
        check_argv(&format!("{place} {hook}"), &strings(&c[hook]["exec"]["command"]), problems);
    }
    for hook in ["postStart", "preStop"] {
        check_argv(&format!("{place} {hook}"), &strings(&c["lifecycle"][hook]["exec"]["command"]), problems);
    }
    for e in c["env"].as_sequence().into_iter().flatten() {
        check_env_name(&place, s(e, "name"), problems);
    }
    found
}

fn env_value(c: &Value, name: &str) -> Option<String> {
    c["env"].as_sequence()?.iter().find(|e| s(e, "name") == name).and_then(|e| scalar(&e["value"]))
}

fn labels_match(selector: &Value, labels: &Value) -> bool {
    selector.as_mapping().is_some_and(|m| !m.is_empty() && m.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

// ---------------------------------------------------------------------------------------
// The binary's help, and the checker itself.

#[test]
fn help_is_read_as_expected() {
    let cli = cli();
    let start = &cli.flags["start"];
    for flag in ["config", "bind-addr", "advertise-addr", "join", "data-dir", "cluster-secret-file", "leave-on-terminate", "admin-token"] {
        assert!(start.contains(flag), "start --help should list --{flag}: {start:?}");
    }
    for var in ["GATEHOUSE_JOIN", "GATEHOUSE_CLUSTER_SECRET", "GATEHOUSE_DATA_DIR"] {
        assert!(cli.start_env.contains(var), "start --help should list {var}");
    }
    assert!(cli.flags["status"].contains("admin"));
    assert!(cli.any_env.contains("GATEHOUSE_ADMIN"));
}

#[test]
fn the_checker_catches_a_misspelled_flag_or_variable() {
    let argv: Vec<String> = ["gatehouse", "start", "--advertize-addr", "node1", "--join=node2"].map(String::from).to_vec();
    let mut problems = Vec::new();
    let found = check_argv("example", &argv, &mut problems);
    assert_eq!(found, vec![Invocation { command: "start".into(), flags: vec!["advertize-addr".into(), "join".into()] }]);
    assert_eq!(problems, vec!["example: `gatehouse start` has no flag --advertize-addr".to_string()]);

    let script = "set -eu\nseeds=\"$seeds --jion $(dns x)\"  # a comment with --nonsense\nexec gatehouse start --leave-on-terminate $seeds; gatehouse status --json\n";
    let argv: Vec<String> = vec!["/bin/sh".into(), "-c".into(), script.into()];
    let mut problems = Vec::new();
    let found = check_argv("script", &argv, &mut problems);
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(problems, vec!["script: `gatehouse start` has no flag --jion".to_string()]);

    let mut problems = Vec::new();
    check_env_name("env", "GATEHOUSE_CLUSTER_SECRETS", &mut problems);
    check_env_name("env", "GATEHOUSE_CLUSTER_SECRET", &mut problems);
    check_env_name("env", "POD_NAME", &mut problems);
    assert_eq!(problems.len(), 1, "{problems:?}");
}

// ---------------------------------------------------------------------------------------
// deploy/: every YAML file, the compose file, the Kubernetes manifests, the Dockerfile.

#[test]
fn every_yaml_file_parses_and_runs_only_known_flags() {
    let mut files = Vec::new();
    yaml_files(&repo().join("deploy"), &mut files);
    assert!(files.len() >= 8, "expected the compose file and the Kubernetes manifests, found {files:?}");
    let mut problems = Vec::new();
    let mut runs = 0;
    for file in &files {
        for doc in yaml_docs(file) {
            for c in containers(&doc) {
                runs += check_k8s_container(file, c, &mut problems).len();
            }
            if let Some(services) = doc["services"].as_mapping() {
                for (name, svc) in services {
                    runs += check_compose_service(file, name.as_str().unwrap_or("?"), svc, &mut problems).len();
                }
            }
        }
    }
    assert_no_problems("deploy/ YAML files that do not match `gatehouse --help`", &problems);
    assert!(runs >= 6, "expected to find the nodes' and the echo upstream's commands, found {runs}");
}

fn check_compose_service(file: &str, name: &str, svc: &Value, problems: &mut Vec<String>) -> Vec<Invocation> {
    let place = format!("{file} service {name}");
    let ours = s(svc, "image").starts_with("gatehouse") || !svc["build"].is_null();
    let entrypoint = if svc["entrypoint"].is_null() && ours { image_entrypoint() } else { strings(&svc["entrypoint"]) };
    let argv: Vec<String> = entrypoint.into_iter().chain(strings(&svc["command"])).collect();
    let found = check_argv(&place, &argv, problems);
    let test = strings(&svc["healthcheck"]["test"]);
    let health: Vec<String> = match test.first().map(String::as_str) {
        Some("CMD") => test[1..].to_vec(),
        Some("CMD-SHELL") => vec!["sh".into(), "-c".into(), test[1..].join(" ")],
        _ => Vec::new(),
    };
    check_argv(&format!("{place} healthcheck"), &health, problems);
    match &svc["environment"] {
        Value::Mapping(m) => m.keys().filter_map(Value::as_str).for_each(|k| check_env_name(&place, k, problems)),
        Value::Sequence(items) => items
            .iter()
            .filter_map(Value::as_str)
            .for_each(|kv| check_env_name(&place, kv.split('=').next().unwrap_or(""), problems)),
        _ => {}
    }
    found
}

#[test]
fn compose_runs_three_nodes_joining_the_first_by_name_and_the_echo_upstream() {
    let docs = yaml_docs("deploy/docker-compose.yml");
    assert_eq!(docs.len(), 1);
    let services = docs[0]["services"].as_mapping().expect("services");
    let mut problems = Vec::new();
    let mut starts = BTreeMap::new();
    let mut echo = 0;
    for (name, svc) in services {
        let name = name.as_str().unwrap().to_string();
        let build = &svc["build"];
        if !build.is_null() {
            let dockerfile = repo().join("deploy").join(s(build, "context")).join(s(build, "dockerfile"));
            assert!(dockerfile.is_file(), "{name}: build points at {dockerfile:?}, which does not exist");
        }
        for inv in check_compose_service("docker-compose.yml", &name, svc, &mut problems) {
            match inv.command.as_str() {
                "start" => {
                    starts.insert(name.clone(), (svc.clone(), strings(&svc["command"])));
                }
                "echo" => echo += 1,
                other => panic!("{name} runs gatehouse {other}"),
            }
        }
    }
    assert_no_problems("docker-compose.yml", &problems);
    assert_eq!(echo, 1, "one echo upstream");
    assert_eq!(starts.len(), 3, "three nodes: {:?}", starts.keys());
    let value_of = |argv: &[String], flag: &str| -> Vec<String> {
        argv.windows(2).filter(|w| w[0] == flag).map(|w| w[1].clone()).collect()
    };
    let first: Vec<&String> = starts.iter().filter(|(_, (_, argv))| value_of(argv, "--join").is_empty()).map(|(n, _)| n).collect();
    assert_eq!(first.len(), 1, "exactly one node starts the cluster (no --join): {first:?}");
    let first = first[0].clone();
    for (name, (svc, argv)) in &starts {
        assert_eq!(value_of(argv, "--advertise-addr"), vec![name.clone()], "{name} advertises its service name");
        assert!(argv.contains(&"--leave-on-terminate".to_string()), "{name} leaves on SIGTERM");
        if *name != first {
            assert_eq!(value_of(argv, "--join"), vec![first.clone()], "{name} joins {first} by service name");
        }
        let env = svc["environment"].as_mapping().expect("environment as a mapping");
        for var in ["GATEHOUSE_CLUSTER_SECRET", "GATEHOUSE_ADMIN_TOKEN"] {
            assert!(env.contains_key(var), "{name} sets {var}");
        }
        assert_eq!(env.get("GATEHOUSE_DATA_DIR").and_then(Value::as_str), Some("/var/lib/gatehouse"), "{name}");
        let volumes = strings(&svc["volumes"]);
        assert!(volumes.iter().any(|v| v.ends_with(":/var/lib/gatehouse")), "{name} keeps its data in a volume: {volumes:?}");
    }
}

struct Manifests {
    docs: Vec<(String, Value)>,
}

impl Manifests {
    fn load() -> Manifests {
        let mut files = Vec::new();
        yaml_files(&repo().join("deploy/kubernetes"), &mut files);
        let docs = files.iter().flat_map(|f| yaml_docs(f).into_iter().map(move |d| (f.clone(), d))).collect();
        Manifests { docs }
    }

    fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.docs.iter().filter(|(_, d)| s(d, "kind") == kind).map(|(_, d)| d).collect()
    }

    fn one(&self, kind: &str) -> &Value {
        let all = self.of_kind(kind);
        assert_eq!(all.len(), 1, "expected one {kind}");
        all[0]
    }

    fn named(&self, kind: &str, name: &str) -> &Value {
        self.of_kind(kind).into_iter().find(|d| s(&d["metadata"], "name") == name).unwrap_or_else(|| panic!("no {kind} named {name}"))
    }
}

#[test]
fn kubernetes_statefulset_services_pdb_and_secret_fit_together() {
    let m = Manifests::load();
    for (file, doc) in &m.docs {
        if file.ends_with("kustomization.yaml") || file.ends_with("-values.yaml") {
            continue;
        }
        assert!(doc["apiVersion"].is_string() && doc["kind"].is_string(), "{file}: a manifest needs apiVersion and kind");
        assert!(!s(&doc["metadata"], "name").is_empty(), "{file}: a manifest needs metadata.name");
    }
    let sts = m.one("StatefulSet");
    let spec = &sts["spec"];
    let pod = &spec["template"];
    let labels = &pod["metadata"]["labels"];
    assert!(labels_match(&spec["selector"]["matchLabels"], labels), "the selector matches the pod labels");
    assert!(spec["replicas"].as_u64().unwrap_or(0) >= 3, "three nodes to start with");

    // The headless Service: stable names, published before pods are ready.
    let headless = m.named("Service", s(spec, "serviceName"));
    assert_eq!(s(&headless["spec"], "clusterIP"), "None", "serviceName is a headless Service");
    assert_eq!(headless["spec"]["publishNotReadyAddresses"].as_bool(), Some(true), "peers must find not-ready pods to form a cluster");
    assert!(labels_match(&headless["spec"]["selector"], labels));
    let ports: BTreeSet<(u64, String)> = headless["spec"]["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| (p["port"].as_u64().unwrap(), s(p, "protocol").to_string()))
        .collect();
    assert!(ports.contains(&(8005, "TCP".into())) && ports.contains(&(7946, "UDP".into())), "cluster and gossip ports: {ports:?}");

    // The container.
    let c = &pod["spec"]["containers"][0];
    let mut problems = Vec::new();
    let found = check_k8s_container("statefulset", c, &mut problems);
    assert_no_problems("the StatefulSet", &problems);
    let start = found.iter().find(|i| i.command == "start").expect("the container runs gatehouse start");
    for flag in ["advertise-addr", "leave-on-terminate", "join"] {
        assert!(start.flags.iter().any(|f| f == flag), "the start script passes --{flag}: {start:?}");
    }
    let port = |name: &str| c["ports"].as_sequence().unwrap().iter().find(|p| s(p, "name") == name).map(|p| p["containerPort"].as_u64().unwrap());
    assert_eq!((port("proxy"), port("admin"), port("cluster"), port("gossip")), (Some(8000), Some(8001), Some(8005), Some(7946)));
    assert_eq!(env_value(c, "GATEHOUSE_BIND_ADDR").as_deref(), Some("0.0.0.0"));

    // Readiness on the node's status: `gatehouse status` (token from the env) or GET /status.
    let ready = &c["readinessProbe"];
    let exec = strings(&ready["exec"]["command"]);
    let by_exec = invocations(&exec).iter().any(|i| i.command == "status");
    let by_http = s(&ready["httpGet"], "path") == "/status";
    assert!(by_exec || by_http, "readiness asks the node's status: {ready:?}");

    // The data dir is the volume claim.
    let data_dir = env_value(c, "GATEHOUSE_DATA_DIR").expect("GATEHOUSE_DATA_DIR");
    let claim = s(&spec["volumeClaimTemplates"][0]["metadata"], "name");
    let mounts = c["volumeMounts"].as_sequence().unwrap();
    assert!(mounts.iter().any(|v| s(v, "name") == claim && s(v, "mountPath") == data_dir), "{claim} is mounted at {data_dir}");

    // The cluster secret and the admin token come from the Secret.
    let secret_file = env_value(c, "GATEHOUSE_CLUSTER_SECRET_FILE");
    let from_secret = |var: &str| c["env"].as_sequence().unwrap().iter().any(|e| s(e, "name") == var && !e["valueFrom"]["secretKeyRef"].is_null());
    match secret_file {
        Some(path) => {
            let (dir, _) = path.rsplit_once('/').unwrap();
            let mount = mounts.iter().find(|v| s(v, "mountPath") == dir).expect("the secret file's directory is mounted");
            let volume = pod["spec"]["volumes"].as_sequence().unwrap().iter().find(|v| s(v, "name") == s(mount, "name")).unwrap();
            assert!(!volume["secret"]["secretName"].is_null(), "{dir} is a Secret volume");
        }
        None => assert!(from_secret("GATEHOUSE_CLUSTER_SECRET"), "the cluster secret comes from a Secret"),
    }
    assert!(from_secret("GATEHOUSE_ADMIN_TOKEN"), "the admin token comes from a Secret");
    let runs_as = pod["spec"]["securityContext"]["runAsUser"].as_u64().unwrap_or(0);
    assert!(runs_as != 0 && pod["spec"]["securityContext"]["runAsNonRoot"].as_bool() == Some(true), "pods run as a non-root user");
    assert!(pod["spec"]["terminationGracePeriodSeconds"].as_u64().unwrap_or(30) >= 30, "time to leave and drain");

    // The proxy Service reaches port 8000 of the ready pods.
    let proxy = m.of_kind("Service").into_iter().find(|svc| {
        svc["spec"]["clusterIP"].as_str() != Some("None")
            && svc["spec"]["ports"].as_sequence().into_iter().flatten().any(|p| p["targetPort"] == "proxy" || p["targetPort"].as_u64() == Some(8000))
    });
    assert!(proxy.is_some_and(|p| labels_match(&p["spec"]["selector"], labels)), "a Service for the proxy");

    // The disruption budget keeps a Raft quorum of three voters.
    let pdb = m.one("PodDisruptionBudget");
    assert!(labels_match(&pdb["spec"]["selector"]["matchLabels"], labels), "the PDB covers the gatehouse pods");
    let max_unavailable = pdb["spec"]["maxUnavailable"].as_u64();
    let min_available = pdb["spec"]["minAvailable"].as_u64();
    assert!(max_unavailable == Some(1) || min_available.is_some_and(|n| n >= 2), "at most one node away at a time");

    // The kustomization lists files that exist.
    let kustomization = m.one("Kustomization");
    for res in strings(&kustomization["resources"]) {
        assert!(repo().join("deploy/kubernetes").join(&res).is_file(), "kustomization lists {res}, which does not exist");
    }

    // Against the Kubernetes API schemas, where the validator is installed
    // (pip install kubernetes-validate); unknown fields are errors.
    if have("kubernetes-validate") {
        let files: BTreeSet<&String> =
            m.docs.iter().map(|(f, _)| f).filter(|f| !f.ends_with("kustomization.yaml") && !f.ends_with("-values.yaml")).collect();
        let out = run(Command::new("kubernetes-validate").args(["--strict", "--quiet"]).args(files).current_dir(repo()));
        assert!(out.status.success(), "kubernetes-validate --strict:\n{}{}", text(&out.stdout), text(&out.stderr));
    } else {
        eprintln!("note: kubernetes-validate not installed; the manifests' schema check skipped");
    }
}

#[test]
fn kubernetes_autoscaler_scales_the_statefulset_on_the_upstream_latency_metric() {
    let m = Manifests::load();
    let sts = m.one("StatefulSet");
    let hpa = m.one("HorizontalPodAutoscaler");
    let target = &hpa["spec"]["scaleTargetRef"];
    assert_eq!((s(target, "kind"), s(target, "name")), ("StatefulSet", s(&sts["metadata"], "name")));
    assert!(hpa["spec"]["minReplicas"].as_u64().unwrap_or(0) >= 3, "never scale the three voters away");
    let metric = s(&hpa["spec"]["metrics"][0]["pods"]["metric"], "name").to_string();

    // The adapter rule publishes that metric from the histogram the binary registers.
    let values = m.docs.iter().find(|(f, _)| f.ends_with("prometheus-adapter-values.yaml")).map(|(_, d)| d).expect("adapter values");
    let rule = values["rules"]["custom"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|r| s(&r["name"], "as") == metric)
        .unwrap_or_else(|| panic!("no adapter rule publishes {metric}"));
    let series = s(rule, "seriesQuery");
    let metrics_rs = read("src/metrics.rs");
    assert!(metrics_rs.contains("with_prefix(\"gatehouse\")") && metrics_rs.contains("\"upstream_latency_ms\""), "src/metrics.rs registers gatehouse_upstream_latency_ms");
    assert!(series.starts_with("gatehouse_upstream_latency_ms_bucket"), "the rule reads the histogram: {series}");

    // Prometheus scrapes the Admin API's /metrics with the token.
    let monitor = m.one("ServiceMonitor");
    let endpoint = &monitor["spec"]["endpoints"][0];
    assert_eq!(s(endpoint, "path"), "/metrics");
    let admin = m.of_kind("Service").into_iter().find(|svc| labels_match(&monitor["spec"]["selector"]["matchLabels"], &svc["metadata"]["labels"]));
    let admin = admin.expect("the ServiceMonitor selects a Service");
    assert!(admin["spec"]["ports"].as_sequence().unwrap().iter().any(|p| s(p, "name") == s(endpoint, "port") && p["port"].as_u64() == Some(8001)));
    assert!(!endpoint["authorization"]["credentials"]["name"].is_null(), "scrapes with the admin token");
}

/// The StatefulSet's start-up script, run with stand-ins for `getent` and `gatehouse`.
#[test]
fn kubernetes_start_script_picks_join_seeds_per_pod() {
    let m = Manifests::load();
    let c = m.one("StatefulSet")["spec"]["template"]["spec"]["containers"][0].clone();
    let argv: Vec<String> = strings(&c["command"]).into_iter().chain(strings(&c["args"])).collect();
    assert_eq!(&argv[..2], ["/bin/sh", "-c"], "the start-up script runs under sh -c");
    let script = argv[2].clone();

    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    fs::create_dir(&bin).unwrap();
    let stub = |name: &str, body: &str| {
        let path = bin.join(name);
        fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        Command::new("chmod").arg("+x").arg(&path).status().unwrap();
    };
    // getent resolves the names listed in $RESOLVES; gatehouse prints its arguments.
    stub("getent", r#"for n in $RESOLVES; do [ "$n" = "$2" ] && { echo "10.0.0.1 $2"; exit 0; }; done; exit 2"#);
    stub("gatehouse", r#"echo "$@""#);
    stub("sleep", "exit 0");
    assert!(run(Command::new("sh").arg("-n").arg("-c").arg(&script)).status.success(), "the start-up script is not valid sh");
    if have("shellcheck") {
        let file = dir.path().join("start.sh");
        fs::write(&file, &script).unwrap();
        let out = run(Command::new("shellcheck").args(["-s", "sh"]).arg(&file));
        assert!(out.status.success(), "shellcheck on the StatefulSet's start-up script:\n{}", text(&out.stdout));
    }

    let name = |i: u32| format!("gatehouse-{i}.gatehouse-peers.prod.svc");
    let data = dir.path().join("data");
    fs::create_dir(&data).unwrap();
    let start = |pod: u32, resolves: &[String]| -> Output {
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c").arg(&script).env("PATH", path).env("POD_NAME", format!("gatehouse-{pod}")).env("POD_NAMESPACE", "prod");
        for e in c["env"].as_sequence().unwrap() {
            if let Some(v) = scalar(&e["value"]) {
                cmd.env(s(e, "name"), v);
            }
        }
        cmd.env("GATEHOUSE_DATA_DIR", &data).env("RESOLVES", resolves.join(" "));
        run(&mut cmd)
    };
    let args = |out: Output| -> String {
        assert!(out.status.success(), "start script failed: {}", text(&out.stderr));
        text(&out.stdout).trim().to_string()
    };
    let all: Vec<String> = (0..4).map(name).collect();

    // A fresh gatehouse-0 on its own starts the cluster: no --join.
    assert_eq!(args(start(0, &all[..1])), format!("start --advertise-addr {} --leave-on-terminate", name(0)));
    // Other pods join through gatehouse-0..2, never themselves.
    assert_eq!(
        args(start(1, &all)),
        format!("start --advertise-addr {} --leave-on-terminate --join {} --join {}", name(1), name(0), name(2))
    );
    assert_eq!(
        args(start(3, &all)),
        format!("start --advertise-addr {} --leave-on-terminate --join {} --join {} --join {}", name(3), name(0), name(1), name(2))
    );
    // A fresh gatehouse-0 whose peers run (its volume was lost) joins them.
    assert_eq!(args(start(0, &all)), format!("start --advertise-addr {} --leave-on-terminate --join {} --join {}", name(0), name(1), name(2)));
    // A gatehouse-0 with data of its own lists its peers (harmless: it is a member).
    // The script recognises data by the identity file the binary keeps there.
    assert!(read("src/cluster/identity.rs").contains("ID_FILE: &str = \"node-id\""), "the data dir's identity file is node-id");
    assert!(script.contains("/node-id"), "the script looks for node-id");
    fs::write(data.join("node-id"), "42\n").unwrap();
    assert_eq!(args(start(0, &all[..1])), format!("start --advertise-addr {} --leave-on-terminate --join {} --join {}", name(0), name(1), name(2)));
    // A pod whose own name never resolves gives up (and Kubernetes restarts it).
    let out = start(1, &[]);
    assert!(!out.status.success() && text(&out.stderr).contains("does not resolve"), "{out:?}");
}

#[test]
fn dockerfile_is_multi_stage_small_and_runs_as_a_non_root_user() {
    let dockerfile = read("deploy/Dockerfile");
    let lines: Vec<&str> = dockerfile.lines().filter(|l| !l.trim_start().starts_with('#')).collect();
    let froms: Vec<&&str> = lines.iter().filter(|l| l.starts_with("FROM ")).collect();
    assert!(froms.len() >= 2, "multi-stage: {froms:?}");
    assert!(froms[0].contains(" AS build"), "the first stage builds: {}", froms[0]);
    let runtime: &str = froms.last().unwrap();
    assert!(runtime.contains("-slim") || runtime.contains("distroless"), "a small runtime image: {runtime}");
    let last_stage: Vec<&&str> = lines.iter().skip_while(|l| **l != runtime).collect();
    assert!(last_stage.iter().any(|l| l.starts_with("COPY --from=build ")), "the runtime stage takes the built binary");
    let user = last_stage.iter().rev().find(|l| l.starts_with("USER ")).expect("the runtime stage sets USER");
    let user = user.trim_start_matches("USER ").split(':').next().unwrap().trim();
    assert!(user != "root" && user != "0", "runs as a non-root user, not {user}");
    let expose: BTreeSet<&str> = last_stage.iter().filter(|l| l.starts_with("EXPOSE ")).flat_map(|l| l.split_whitespace().skip(1)).collect();
    for port in ["8000", "8001", "8005", "7946/udp"] {
        assert!(expose.contains(port), "EXPOSE {port}: {expose:?}");
    }
    let mut problems = Vec::new();
    let env_re = regex::Regex::new(r"\b(GATEHOUSE_[A-Z0-9_]+)=").unwrap();
    for caps in env_re.captures_iter(&dockerfile) {
        check_env_name("Dockerfile ENV", &caps[1], &mut problems);
    }
    let entrypoint = image_entrypoint();
    assert!(is_gatehouse(&entrypoint[0]), "the entrypoint is the binary: {entrypoint:?}");
    let cmd_line = lines.iter().rev().find(|l| l.starts_with("CMD ")).expect("CMD");
    let cmd: Vec<String> = serde_json::from_str(cmd_line.trim_start_matches("CMD ")).expect("CMD is a JSON array");
    check_argv("Dockerfile ENTRYPOINT+CMD", &entrypoint.iter().cloned().chain(cmd).collect::<Vec<_>>(), &mut problems);
    assert_no_problems("Dockerfile", &problems);
    let ignore = read("deploy/Dockerfile.dockerignore");
    assert!(ignore.lines().any(|l| l.trim() == "**/target" || l.trim() == "target"), "the build context leaves target/ out");
}

// ---------------------------------------------------------------------------------------
// The systemd unit and scripts/provision.sh.

/// `[Section] Key=Value` pairs of a systemd unit (repeated keys keep every value).
fn unit_entries(unit: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for line in unit.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') {
            section = line.trim_matches(['[', ']']).to_string();
        } else if let Some((k, v)) = line.split_once('=') {
            out.push((section.clone(), k.trim().to_string(), v.trim().to_string()));
        }
    }
    out
}

fn unit_value(entries: &[(String, String, String)], section: &str, key: &str) -> Option<String> {
    entries.iter().rev().find(|(s, k, _)| s == section && k == key).map(|(_, _, v)| v.clone())
}

#[test]
fn systemd_unit_restarts_on_failure_and_leaves_on_stop() {
    let unit = read("scripts/gatehouse.service");
    let entries = unit_entries(&unit);
    let exec = unit_value(&entries, "Service", "ExecStart").expect("ExecStart");
    let argv: Vec<String> = exec.split_whitespace().map(String::from).collect();
    let mut problems = Vec::new();
    let found = check_argv("gatehouse.service ExecStart", &argv, &mut problems);
    assert_no_problems("the systemd unit", &problems);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].command, "start");
    assert!(found[0].flags.contains(&"config".to_string()), "ExecStart runs gatehouse start --config: {exec}");
    assert!(found[0].flags.contains(&"leave-on-terminate".to_string()), "the node leaves the cluster on stop: {exec}");
    assert_eq!(unit_value(&entries, "Service", "Restart").as_deref(), Some("on-failure"));
    let user = unit_value(&entries, "Service", "User").expect("User=");
    assert!(user != "root" && user != "0", "a dedicated non-root user, not {user}");
    assert_eq!(unit_value(&entries, "Service", "StateDirectory").as_deref(), Some("gatehouse"), "data dir /var/lib/gatehouse");
    assert!(unit_value(&entries, "Service", "TimeoutStopSec").and_then(|v| v.parse::<u64>().ok()).unwrap_or(90) >= 30, "time to leave and drain");
    assert_eq!(unit_value(&entries, "Install", "WantedBy").as_deref(), Some("multi-user.target"));

    if have("systemd-analyze") {
        // Unknown keys and parse errors; the missing /usr/local/bin/gatehouse is expected.
        let out = run(Command::new("systemd-analyze").args(["verify", "--man=no"]).arg(repo().join("scripts/gatehouse.service")));
        let all = text(&out.stderr) + &text(&out.stdout);
        let bad: Vec<&str> = all
            .lines()
            .filter(|l| l.contains("Unknown key") || l.contains("Unknown section") || l.contains("Failed to parse") || l.contains("Invalid"))
            .collect();
        assert!(bad.is_empty(), "systemd-analyze verify:\n{}", bad.join("\n"));
    } else {
        eprintln!("note: systemd-analyze not installed; the unit's syntax is checked by this test's own reader only");
    }
}

fn provision(root: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("bash");
    cmd.arg(repo().join("scripts/provision.sh")).arg("--root").arg(root).args(args);
    cmd.env_remove("GATEHOUSE_CLUSTER_SECRET").env_remove("GATEHOUSE_ADMIN_TOKEN");
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(&mut cmd)
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "provision.sh failed:\nstdout:\n{}\nstderr:\n{}", text(&out.stdout), text(&out.stderr));
    text(&out.stdout)
}

/// The config provision.sh wrote under `root`, checked: valid TOML whose keys are all
/// `gatehouse start` flags.
fn written_config(root: &Path) -> toml::Table {
    let path = root.join("etc/gatehouse/gatehouse.toml");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("no config at {path:?}: {e}"));
    let table: toml::Table = toml::from_str(&text).unwrap_or_else(|e| panic!("{path:?} is not TOML: {e}\n{text}"));
    check_config_keys(&table);
    table
}

fn check_config_keys(table: &toml::Table) {
    let start = &cli().flags["start"];
    for key in table.keys() {
        assert!(start.contains(key) && key != "config", "config key {key:?} is not a `gatehouse start` flag");
    }
}

fn fake_binary(dir: &Path) -> PathBuf {
    let path = dir.join("gatehouse-build");
    fs::write(&path, "#!/bin/sh\necho fake gatehouse\n").unwrap();
    path
}

#[test]
fn provision_dry_run_prints_the_unit_and_config_and_changes_nothing() {
    let root = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let binary = fake_binary(scratch.path());
    let out = ok(provision(
        root.path(),
        &["--dry-run", "--ip", "10.9.8.2", "--name", "node2", "--join", "10.9.8.1", "--binary", binary.to_str().unwrap()],
        &[("GATEHOUSE_CLUSTER_SECRET", "s3cret-value")],
    ));
    assert_eq!(fs::read_dir(root.path()).unwrap().count(), 0, "--dry-run wrote something:\n{out}");
    assert!(out.contains("would write /etc/systemd/system/gatehouse.service"), "{out}");
    assert!(out.contains(&read("scripts/gatehouse.service").lines().find(|l| l.starts_with("ExecStart=")).unwrap().to_string()), "{out}");
    assert!(out.contains("would write /etc/gatehouse/gatehouse.toml"), "{out}");
    assert!(out.contains("bind-addr = \"10.9.8.2\"") && out.contains("join = [\"10.9.8.1\"]"), "{out}");
    assert!(!out.contains("s3cret-value"), "--dry-run must not print the secret:\n{out}");
    assert!(out.contains("would run: systemctl enable gatehouse.service"), "{out}");

    // The printed config is the TOML a real run writes.
    let config: String = out
        .lines()
        .skip_while(|l| !l.starts_with("would write /etc/gatehouse/gatehouse.toml"))
        .skip(1)
        .take_while(|l| l.starts_with("    "))
        .map(|l| format!("{}\n", &l[4..]))
        .collect();
    let table: toml::Table = toml::from_str(&config).unwrap_or_else(|e| panic!("printed config is not TOML: {e}\n{config}"));
    check_config_keys(&table);
    assert_eq!(table["bind-addr"].as_str(), Some("10.9.8.2"));
}

#[test]
fn provision_writes_a_valid_node_under_a_root_and_is_idempotent() {
    let scratch = tempfile::tempdir().unwrap();
    let binary = fake_binary(scratch.path());
    let first = tempfile::tempdir().unwrap();
    let args = ["--ip", "10.9.8.1", "--name", "node1", "--binary", binary.to_str().unwrap()];
    let out = ok(provision(first.path(), &args, &[]));
    assert!(out.contains("a new cluster secret"), "the first node generates the cluster secret:\n{out}");
    assert!(out.contains("would run: systemctl restart gatehouse.service"), "{out}");

    let config = written_config(first.path());
    assert_eq!(config["bind-addr"].as_str(), Some("10.9.8.1"));
    assert_eq!(config["data-dir"].as_str(), Some("/var/lib/gatehouse"));
    assert_eq!(config["join"].as_array().map(Vec::len), Some(0), "the first node starts the cluster");
    let secret_file = config["cluster-secret-file"].as_str().expect("cluster-secret-file");
    let secret = fs::read_to_string(first.path().join(secret_file.trim_start_matches('/'))).unwrap();
    assert!(secret.trim().len() >= 32, "a generated secret of some strength: {secret:?}");
    assert!(!config.contains_key("admin-token"), "no token while the Admin API is on loopback");
    let admin: std::net::SocketAddr = config["admin-listen"].as_str().unwrap().parse().unwrap();
    assert!(admin.ip().is_loopback(), "the Admin API defaults to loopback, so `gatehouse status` works on the machine");
    assert_eq!(fs::read(first.path().join("usr/local/bin/gatehouse")).unwrap(), fs::read(&binary).unwrap());
    assert_eq!(fs::read_to_string(first.path().join("etc/systemd/system/gatehouse.service")).unwrap(), read("scripts/gatehouse.service"));
    let mode = |p: &str| {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(first.path().join(p)).unwrap().permissions().mode() & 0o777
    };
    assert_eq!(mode("etc/gatehouse/cluster-secret"), 0o640);
    assert_eq!(mode("etc/gatehouse/gatehouse.toml"), 0o640);
    assert_eq!(mode("usr/local/bin/gatehouse"), 0o755);

    // Again: nothing changes, nothing restarts, the secret is kept.
    let again = ok(provision(first.path(), &args, &[]));
    assert!(!again.contains("wrote "), "a second run rewrote files:\n{again}");
    assert!(again.contains("would run: systemctl start gatehouse.service") && !again.contains("restart"), "{again}");
    assert_eq!(fs::read_to_string(first.path().join("etc/gatehouse/cluster-secret")).unwrap(), secret);

    // A joining node needs the secret; with it, it joins the first node.
    let second = tempfile::tempdir().unwrap();
    let join_args = ["--ip", "10.9.8.2", "--join", "10.9.8.1", "--binary", binary.to_str().unwrap()];
    let refused = provision(second.path(), &join_args, &[]);
    assert!(!refused.status.success() && text(&refused.stderr).contains("secret"), "{refused:?}");
    let secret_path = first.path().join("etc/gatehouse/cluster-secret");
    let mut with_secret = join_args.to_vec();
    with_secret.extend(["--cluster-secret-file", secret_path.to_str().unwrap()]);
    ok(provision(second.path(), &with_secret, &[]));
    let config = written_config(second.path());
    assert_eq!(config["join"].as_array().unwrap(), &vec![toml::Value::from("10.9.8.1")]);
    assert_eq!(fs::read_to_string(second.path().join("etc/gatehouse/cluster-secret")).unwrap(), secret);

    // The Admin API off loopback needs a token, which goes into the config.
    let third = tempfile::tempdir().unwrap();
    let mut exposed = with_secret.clone();
    exposed.extend(["--admin-listen", "0.0.0.0:8001"]);
    let refused = provision(third.path(), &exposed, &[]);
    assert!(!refused.status.success() && text(&refused.stderr).contains("token"), "{refused:?}");
    ok(provision(third.path(), &exposed, &[("GATEHOUSE_ADMIN_TOKEN", "tok-123")]));
    assert_eq!(written_config(third.path())["admin-token"].as_str(), Some("tok-123"));

    // Bad input stops before anything is written.
    let fourth = tempfile::tempdir().unwrap();
    for bad in [&["--join", "10.9.8.1"][..], &["--ip", "10.9.8.4", "--voters", "2"], &["--ip", "10.9.8.4", "--bogus"]] {
        let out = provision(fourth.path(), bad, &[("GATEHOUSE_CLUSTER_SECRET", "x")]);
        assert!(!out.status.success(), "{bad:?} was accepted");
    }
    assert_eq!(fs::read_dir(fourth.path()).unwrap().count(), 0);
}

/// Kills the nodes a test started, whatever happens to the test.
struct Nodes(Vec<Child>);

impl Drop for Nodes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn status_json(admin: &str) -> Option<serde_json::Value> {
    let out = Command::new(BIN).args(["status", "--json", "--admin", admin]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

fn live_voters(status: &serde_json::Value) -> usize {
    status["nodes"].as_array().map_or(0, |nodes| nodes.iter().filter(|n| n["voter"] == true && n["alive"] == true).count())
}

/// Three nodes provisioned as Vagrant provisions them (the first without --join, the
/// others joining it), each started as the unit starts it, form one cluster; a node
/// stopped with SIGTERM leaves it and exits cleanly.
#[test]
fn provisioned_nodes_form_a_cluster_on_loopback() {
    // Loopback addresses of their own, away from the 127.0.0.1-3 other tests use.
    let ips = ["127.0.83.1", "127.0.83.2", "127.0.83.3"];
    let scratch = tempfile::tempdir().unwrap();
    let unit = unit_entries(&read("scripts/gatehouse.service"));
    let exec = unit_value(&unit, "Service", "ExecStart").unwrap();
    let mut nodes = Nodes(Vec::new());
    let mut secret_file = None::<PathBuf>;
    for (i, ip) in ips.iter().enumerate() {
        let root = scratch.path().join(format!("root{}", i + 1));
        fs::create_dir(&root).unwrap();
        let admin = format!("{ip}:8001");
        let mut args = vec!["--ip", ip, "--name", "node", "--admin-listen", &admin, "--binary", BIN, "--no-start"];
        let secret = secret_file.as_ref().map(|p| p.to_string_lossy().into_owned());
        if let Some(secret) = &secret {
            args.extend(["--join", ips[0], "--cluster-secret-file", secret]);
        }
        ok(provision(&root, &args, &[]));
        written_config(&root);
        let installed = root.join("etc/gatehouse/cluster-secret");
        secret_file.get_or_insert(installed.clone());

        // ExecStart, pointed at this root's files; the data dir and the secret file are
        // the config's absolute paths, moved under the scratch dir by flags.
        let argv: Vec<String> = exec
            .split_whitespace()
            .map(|w| w.replace("/usr/local/bin/gatehouse", BIN).replace("/etc/gatehouse/", &format!("{}/etc/gatehouse/", root.display())))
            .collect();
        let log = fs::File::create(scratch.path().join(format!("node{}.log", i + 1))).unwrap();
        let child = Command::new(&argv[0])
            .args(&argv[1..])
            .arg("--data-dir")
            .arg(root.join("var/lib/gatehouse"))
            .arg("--cluster-secret-file")
            .arg(&installed)
            .env_remove("GATEHOUSE_ADMIN_TOKEN")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start a node");
        nodes.0.push(child);
        if i == 0 {
            let deadline = Instant::now() + Duration::from_secs(20);
            while status_json(&admin).is_none() {
                assert!(Instant::now() < deadline, "node 1 did not come up: {}", logs(scratch.path()));
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let status = status_json("127.0.83.2:8001");
        if status.as_ref().is_some_and(|s| !s["leader_id"].is_null() && live_voters(s) == 3) {
            break;
        }
        assert!(Instant::now() < deadline, "no three-voter cluster; last status {status:?}\n{}", logs(scratch.path()));
        std::thread::sleep(Duration::from_millis(200));
    }

    // `systemctl stop` sends SIGTERM: with --leave-on-terminate the node leaves and exits 0.
    let third = nodes.0.pop().unwrap();
    let pid = third.id();
    let mut third = Nodes(vec![third]);
    assert!(Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(40);
    let status = loop {
        if let Some(status) = third.0[0].try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "node 3 did not stop after SIGTERM\n{}", logs(scratch.path()));
        std::thread::sleep(Duration::from_millis(100));
    };
    third.0.clear();
    assert!(status.success(), "node 3 exited with {status} after SIGTERM\n{}", logs(scratch.path()));
    // It handed off its vote: two voters remain, both alive, with a leader.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let status = status_json("127.0.83.1:8001");
        let voters = |s: &serde_json::Value| s["nodes"].as_array().into_iter().flatten().filter(|n| n["voter"] == true).count();
        if status.as_ref().is_some_and(|s| voters(s) == 2 && live_voters(s) == 2 && !s["leader_id"].is_null()) {
            break;
        }
        assert!(Instant::now() < deadline, "node 3 still counts as a voter: {status:?}\n{}", logs(scratch.path()));
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn logs(dir: &Path) -> String {
    let mut out = String::new();
    for i in 1..=3 {
        let log = fs::read_to_string(dir.join(format!("node{i}.log"))).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        out += &format!("--- node{i}.log (last lines)\n{}\n", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
    }
    out
}

#[test]
fn provision_script_passes_shellcheck() {
    if !have("shellcheck") {
        eprintln!("note: shellcheck not installed; skipped (apt-get install shellcheck)");
        return;
    }
    let out = run(Command::new("shellcheck").arg(repo().join("scripts/provision.sh")));
    assert!(out.status.success(), "shellcheck scripts/provision.sh:\n{}", text(&out.stdout));
}

// ---------------------------------------------------------------------------------------
// The Vagrantfile.

/// Loads the Vagrantfile with a stand-in for Vagrant that records each VM and its
/// provisioners as JSON.
const VAGRANT_STUB: &str = r#"
require "json"
$vms = {}
class Recorder
  def initialize(vm = nil) @vm = vm end
  def method_missing(name, *args, **opts, &block)
    if name == :define
      vm = { "name" => args[0], "provisioners" => [], "networks" => [] }
      $vms[args[0]] = vm
      block.call(Recorder.new(vm))
    elsif name == :provision && @vm
      @vm["provisioners"] << { "type" => args[0] }.merge(opts.transform_keys(&:to_s))
    elsif name == :network && @vm
      @vm["networks"] << { "type" => args[0] }.merge(opts.transform_keys(&:to_s))
    elsif block
      block.call(Recorder.new(@vm))
    end
    self
  end
  def respond_to_missing?(*) true end
end
module Vagrant
  def self.configure(_version) yield Recorder.new end
end
load ARGV.shift
puts JSON.generate($vms)
"#;

#[test]
fn vagrantfile_is_valid_ruby_and_provisions_three_nodes_with_provision_sh() {
    let vagrantfile = read("Vagrantfile");
    assert!(vagrantfile.contains("scripts/provision.sh") || vagrantfile.contains("\"provision.sh\""), "VMs are provisioned by scripts/provision.sh");
    // Every option the Vagrantfile hands to provision.sh is one provision.sh knows.
    let usage = text(&run(Command::new("bash").arg(repo().join("scripts/provision.sh")).arg("--help")).stdout);
    let known = flags_in_help(&usage.lines().map(|l| l.trim_start_matches('#').trim_start()).collect::<Vec<_>>().join("\n"));
    let flag_re = regex::Regex::new(r#""(--[a-z][a-z-]*)""#).unwrap();
    for caps in flag_re.captures_iter(&vagrantfile) {
        let flag = flag_name(&caps[1]).unwrap();
        assert!(known.contains(&flag), "the Vagrantfile passes {} which provision.sh --help does not list", &caps[1]);
    }

    if !have("ruby") {
        eprintln!("note: ruby not installed; `ruby -c Vagrantfile` and its evaluation skipped (apt-get install ruby)");
        return;
    }
    let out = run(Command::new("ruby").arg("-c").arg(repo().join("Vagrantfile")));
    assert!(out.status.success(), "ruby -c Vagrantfile: {}", text(&out.stderr));

    // Evaluate it in a copy of the repository layout, so the secret it generates on first
    // use lands in a scratch dir rather than in the work tree.
    let scratch = tempfile::tempdir().unwrap();
    fs::copy(repo().join("Vagrantfile"), scratch.path().join("Vagrantfile")).unwrap();
    fs::write(scratch.path().join("stub.rb"), VAGRANT_STUB).unwrap();
    let out = run(Command::new("ruby").current_dir(scratch.path()).args(["stub.rb", "Vagrantfile"]).env_remove("GATEHOUSE_BIN"));
    assert!(out.status.success(), "evaluating the Vagrantfile: {}", text(&out.stderr));
    let vms: BTreeMap<String, serde_json::Value> = serde_json::from_slice(&out.stdout).expect("JSON from the stub");
    assert_eq!(vms.len(), 3, "three VMs: {:?}", vms.keys());

    let binary = fake_binary(scratch.path());
    let mut ips = BTreeMap::new();
    let mut joins = BTreeMap::new();
    let mut secrets = BTreeSet::new();
    for (name, vm) in &vms {
        let net = vm["networks"].as_array().unwrap().iter().find(|n| n["type"] == "private_network").expect("a private network");
        let ip = net["ip"].as_str().unwrap().to_string();
        let shell = vm["provisioners"].as_array().unwrap().iter().find(|p| p["type"] == "shell").expect("a shell provisioner");
        let uploads: BTreeMap<String, String> = vm["provisioners"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["type"] == "file")
            .map(|p| (p["destination"].as_str().unwrap().to_string(), p["source"].as_str().unwrap().to_string()))
            .collect();
        let inline = shell["inline"].as_str().expect("inline command");
        let words: Vec<&str> = inline.split_whitespace().collect();
        let script_at = words.iter().position(|w| w.ends_with("provision.sh")).expect("the shell provisioner runs provision.sh");
        // The uploaded script and unit are the repository's.
        let script_src = &uploads[words[script_at]];
        assert!(script_src.ends_with("scripts/provision.sh"), "{name} uploads {script_src}");
        // Run provision.sh with the VM's arguments under a scratch root; the uploads'
        // destinations are mapped back to their sources, the binary to a stand-in.
        let args: Vec<String> = words[script_at + 1..]
            .iter()
            .map(|w| match uploads.get(*w) {
                Some(src) if src.ends_with("scripts/gatehouse.service") => repo().join("scripts/gatehouse.service").display().to_string(),
                Some(_) if w.ends_with("/gatehouse") => binary.display().to_string(),
                Some(src) => src.clone(),
                None => w.to_string(),
            })
            .collect();
        let env: Vec<(String, String)> =
            shell["env"].as_object().into_iter().flatten().map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string())).collect();
        let root = scratch.path().join(format!("root-{name}"));
        fs::create_dir(&root).unwrap();
        let args_ref: Vec<&str> = args.iter().map(String::as_str).collect();
        let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        ok(provision(&root, &args_ref, &env_ref));
        let config = written_config(&root);
        assert_eq!(config["bind-addr"].as_str(), Some(ip.as_str()), "{name} binds its private address");
        let join: Vec<String> = config["join"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
        secrets.insert(fs::read_to_string(root.join("etc/gatehouse/cluster-secret")).unwrap());
        ips.insert(name.clone(), ip);
        joins.insert(name.clone(), join);
    }
    assert_eq!(secrets.len(), 1, "every VM gets the same cluster secret");
    let starters: Vec<&String> = joins.iter().filter(|(_, j)| j.is_empty()).map(|(n, _)| n).collect();
    assert_eq!(starters.len(), 1, "exactly one VM starts the cluster: {joins:?}");
    let first_ip = &ips[starters[0]];
    for (name, join) in &joins {
        if name != starters[0] {
            assert_eq!(join, &vec![first_ip.clone()], "{name} joins the first VM");
        }
    }
    assert!(scratch.path().join(".vagrant/gatehouse-cluster-secret").is_file(), "the secret is generated once, on the host");
}

#[test]
fn bench_script_passes_shellcheck() {
    if !have("shellcheck") {
        eprintln!("note: shellcheck not installed; skipped (apt-get install shellcheck)");
        return;
    }
    // -x follows `source scripts/bench-lib.sh`, a path relative to the repository root.
    let out = run(Command::new("shellcheck").arg("-x").args(["scripts/bench.sh", "scripts/bench-lib.sh"]).current_dir(repo()));
    assert!(out.status.success(), "shellcheck scripts/bench.sh scripts/bench-lib.sh:\n{}", text(&out.stdout));
}
