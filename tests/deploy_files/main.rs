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

mod cli;
mod deploy_dir;
mod provisioning;
mod vagrant;
mod yaml;

use cli::*;
use yaml::*;
