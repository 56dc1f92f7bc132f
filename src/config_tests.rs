use std::io::Write;

use clap::{CommandFactory, Parser};

use super::*;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    start: StartArgs,
}

fn parse(args: &[&str]) -> Result<StartArgs, ConfigError> {
    let mut argv = vec!["gatehouse"];
    argv.extend_from_slice(args);
    let matches = Cli::command().try_get_matches_from(argv).map_err(|e| ConfigError::Invalid(e.to_string()))?;
    StartArgs::from_matches(&matches)
}

#[test]
fn defaults_follow_the_design() {
    let a = parse(&[]).unwrap();
    assert_eq!(a.proxy_addr().to_string(), "127.0.0.1:8000");
    assert_eq!(a.admin_addr().to_string(), "127.0.0.1:8001");
    assert_eq!(a.cluster_addr().to_string(), "127.0.0.1:8005");
    assert_eq!(a.gossip_addr().to_string(), "127.0.0.1:7946");
    assert_eq!(a.voters, 3);
    assert_eq!(a.dead_node_grace, Duration::from_secs(30));
    assert_eq!(a.ttl_cleanup_interval, Duration::from_secs(60));
    a.validate().unwrap();
    let busy = parse(&["--ttl-cleanup-interval", "0s"]).unwrap().validate().unwrap_err();
    assert_eq!(busy.to_string(), "--ttl-cleanup-interval must be above zero");
}

#[test]
fn listeners_follow_bind_addr_and_join_gets_the_gossip_port() {
    let a = parse(&["--bind-addr", "127.0.0.2", "--join", "127.0.0.1", "--join", "node3:9000"]).unwrap();
    assert_eq!(a.admin_addr().to_string(), "127.0.0.2:8001");
    assert_eq!(a.join_addrs(), vec!["127.0.0.1:7946", "node3:9000"]);
}

#[test]
fn file_then_flags_override() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    writeln!(f, "bind-addr = \"127.0.0.3\"\nvoters = 5\ndead-node-grace = \"45s\"\njoin = [\"127.0.0.1\"]").unwrap();
    let path = f.path().to_str().unwrap();
    let a = parse(&["--config", path, "--voters", "1"]).unwrap();
    assert_eq!(a.bind_addr.to_string(), "127.0.0.3");
    assert_eq!(a.voters, 1, "the flag beats the file");
    assert_eq!(a.dead_node_grace, Duration::from_secs(45));
    assert_eq!(a.join, vec!["127.0.0.1"]);
}

#[test]
fn a_list_in_the_file_may_be_one_string_as_in_the_environment() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    writeln!(f, "join = \"127.0.0.1, node2:7000\"\nadmin-gui-origin = \"http://ui.test\"").unwrap();
    let a = parse(&["--config", f.path().to_str().unwrap()]).unwrap();
    assert_eq!(a.join, vec!["127.0.0.1", "node2:7000"]);
    assert_eq!(a.admin_gui_origin, vec!["http://ui.test"]);
}

#[test]
fn leave_on_terminate_is_still_a_plain_flag() {
    assert!(parse(&["--leave-on-terminate"]).unwrap().leave_on_terminate);
    assert!(!parse(&[]).unwrap().leave_on_terminate);
}

#[test]
fn unknown_file_settings_are_refused() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    writeln!(f, "bind-adr = \"127.0.0.3\"").unwrap();
    let err = parse(&["--config", f.path().to_str().unwrap()]).unwrap_err();
    assert!(err.to_string().contains("unknown setting \"bind-adr\""), "{err}");
}

#[test]
fn a_log_filter_is_levels_and_target_levels_and_a_typo_is_refused() {
    for good in ["info", "WARN", "info,gatehouse=debug", "gatehouse::proxy=trace, openraft=off", ""] {
        assert!(parse(&["--log", good]).unwrap().validate().is_ok(), "{good:?}");
    }
    for bad in ["warning", "gatehouse", "gatehouse=bogus", "info,gatehouse="] {
        let e = parse(&["--log", bad]).unwrap().validate().unwrap_err().to_string();
        assert!(e.contains("--log") && e.contains("is not a level"), "{bad:?}: {e}");
    }
    let e = parse(&["--log", "=info=debug"]).unwrap().validate().unwrap_err().to_string();
    assert!(e.starts_with("--log \"=info=debug\": invalid filter directive"), "{e}");
}

#[test]
fn even_voter_counts_are_refused() {
    assert!(parse(&["--voters", "2"]).unwrap().validate().is_err());
}

#[test]
fn off_loopback_needs_a_secret_and_an_admin_token() {
    let a = parse(&["--bind-addr", "10.1.2.3"]).unwrap();
    assert!(a.validate().unwrap_err().to_string().contains("--cluster-secret"));
    let a = parse(&["--bind-addr", "10.1.2.3", "--cluster-secret", "s"]).unwrap();
    assert!(a.validate().unwrap_err().to_string().contains("--admin-token"));
    let a = parse(&["--bind-addr", "10.1.2.3", "--cluster-secret", "s", "--admin-token", "t"]).unwrap();
    a.validate().unwrap();
}

#[test]
fn admin_gui_origins_must_be_origins() {
    let a = parse(&["--admin-gui-origin", "https://admin.example,http://localhost:8002"]).unwrap();
    assert_eq!(a.admin_gui_origin, ["https://admin.example", "http://localhost:8002"]);
    a.validate().unwrap();
    parse(&["--admin-gui-origin", "http://[::1]:8002"]).unwrap().validate().unwrap();
    for bad in ["admin.example", "https://admin.example/", "https://", "ftp://admin.example", "https://a b", "*", "http://admin.example:99999", "http://admin.example:0"] {
        let err = parse(&["--admin-gui-origin", bad]).unwrap().validate().unwrap_err().to_string();
        assert!(err.contains("--admin-gui-origin") && err.contains("not an origin"), "{bad}: {err}");
    }
}

#[test]
fn secret_file_is_read_and_trimmed() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    writeln!(f, "hunter2").unwrap();
    let a = parse(&["--cluster-secret-file", f.path().to_str().unwrap()]).unwrap();
    assert_eq!(a.secret().unwrap().as_deref(), Some("hunter2"));
}

#[test]
fn wildcard_bind_needs_an_advertised_address() {
    let a = parse(&["--bind-addr", "0.0.0.0", "--cluster-secret", "s", "--admin-token", "t"]).unwrap();
    assert!(a.validate().unwrap_err().to_string().contains("--advertise-addr"));
}

#[test]
fn bad_durations_say_how_to_write_them() {
    let err = parse(&["--dead-node-grace", "soon"]).unwrap_err();
    assert!(err.to_string().contains("30s"), "{err}");
}

#[test]
fn client_timeouts_default_to_nginxs_and_zero_is_refused() {
    let a = parse(&[]).unwrap();
    assert_eq!(a.client_timeouts(), crate::http::ClientTimeouts { keepalive: Duration::from_secs(75), header: Duration::from_secs(60), send: Duration::from_secs(60) });
    let a = parse(&["--client-keepalive-timeout", "5s", "--client-header-timeout", "2s", "--client-send-timeout", "3s"]).unwrap();
    assert_eq!(a.client_timeouts(), crate::http::ClientTimeouts { keepalive: Duration::from_secs(5), header: Duration::from_secs(2), send: Duration::from_secs(3) });
    let err = parse(&["--client-header-timeout", "0s"]).unwrap().validate().unwrap_err();
    assert!(err.to_string().contains("--client-header-timeout must be more than 0"), "{err}");
}
