//! The systemd unit and scripts/provision.sh.

use super::*;

/// `[Section] Key=Value` pairs of a systemd unit (repeated keys keep every value).
pub(crate) fn unit_entries(unit: &str) -> Vec<(String, String, String)> {
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

pub(crate) fn unit_value(entries: &[(String, String, String)], section: &str, key: &str) -> Option<String> {
    entries.iter().rev().find(|(s, k, _)| s == section && k == key).map(|(_, _, v)| v.clone())
}

#[test]
pub(crate) fn systemd_unit_restarts_on_failure_and_leaves_on_stop() {
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

pub(crate) fn provision(root: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("bash");
    cmd.arg(repo().join("scripts/provision.sh")).arg("--root").arg(root).args(args);
    cmd.env_remove("GATEHOUSE_CLUSTER_SECRET").env_remove("GATEHOUSE_ADMIN_TOKEN");
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(&mut cmd)
}

pub(crate) fn ok(out: Output) -> String {
    assert!(out.status.success(), "provision.sh failed:\nstdout:\n{}\nstderr:\n{}", text(&out.stdout), text(&out.stderr));
    text(&out.stdout)
}

/// The config provision.sh wrote under `root`, checked: valid TOML whose keys are all
/// `gatehouse start` flags.
pub(crate) fn written_config(root: &Path) -> toml::Table {
    let path = root.join("etc/gatehouse/gatehouse.toml");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("no config at {path:?}: {e}"));
    let table: toml::Table = toml::from_str(&text).unwrap_or_else(|e| panic!("{path:?} is not TOML: {e}\n{text}"));
    check_config_keys(&table);
    table
}

pub(crate) fn check_config_keys(table: &toml::Table) {
    let start = &cli().flags["start"];
    for key in table.keys() {
        assert!(start.contains(key) && key != "config", "config key {key:?} is not a `gatehouse start` flag");
    }
}

pub(crate) fn fake_binary(dir: &Path) -> PathBuf {
    let path = dir.join("gatehouse-build");
    fs::write(&path, "#!/bin/sh\necho fake gatehouse\n").unwrap();
    path
}

#[test]
pub(crate) fn provision_dry_run_prints_the_unit_and_config_and_changes_nothing() {
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
pub(crate) fn provision_writes_a_valid_node_under_a_root_and_is_idempotent() {
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
pub(crate) struct Nodes(Vec<Child>);

impl Drop for Nodes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub(crate) fn status_json(admin: &str) -> Option<serde_json::Value> {
    let out = Command::new(BIN).args(["status", "--json", "--admin", admin]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

pub(crate) fn live_voters(status: &serde_json::Value) -> usize {
    status["nodes"].as_array().map_or(0, |nodes| nodes.iter().filter(|n| n["voter"] == true && n["alive"] == true).count())
}

/// Three nodes provisioned as Vagrant provisions them (the first without --join, the
/// others joining it), each started as the unit starts it, form one cluster; a node
/// stopped with SIGTERM leaves it and exits cleanly.
#[test]
pub(crate) fn provisioned_nodes_form_a_cluster_on_loopback() {
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

pub(crate) fn logs(dir: &Path) -> String {
    let mut out = String::new();
    for i in 1..=3 {
        let log = fs::read_to_string(dir.join(format!("node{i}.log"))).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        out += &format!("--- node{i}.log (last lines)\n{}\n", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
    }
    out
}

#[test]
pub(crate) fn provision_script_passes_shellcheck() {
    if !have("shellcheck") {
        eprintln!("note: shellcheck not installed; skipped (apt-get install shellcheck)");
        return;
    }
    let out = run(Command::new("shellcheck").arg(repo().join("scripts/provision.sh")));
    assert!(out.status.success(), "shellcheck scripts/provision.sh:\n{}", text(&out.stdout));
}
