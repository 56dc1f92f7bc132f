//! deploy/: every YAML file, the compose file, the Kubernetes manifests, the Dockerfile.

use super::*;

#[test]
pub(crate) fn every_yaml_file_parses_and_runs_only_known_flags() {
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

pub(crate) fn check_compose_service(file: &str, name: &str, svc: &Value, problems: &mut Vec<String>) -> Vec<Invocation> {
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
pub(crate) fn compose_runs_three_nodes_joining_the_first_by_name_and_the_echo_upstream() {
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

pub(crate) struct Manifests {
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
pub(crate) fn kubernetes_statefulset_services_pdb_and_secret_fit_together() {
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
pub(crate) fn kubernetes_autoscaler_scales_the_statefulset_on_the_upstream_latency_metric() {
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
pub(crate) fn kubernetes_start_script_picks_join_seeds_per_pod() {
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
pub(crate) fn dockerfile_is_multi_stage_small_and_runs_as_a_non_root_user() {
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
