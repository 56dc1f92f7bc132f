//! The Vagrantfile, and the bench script's shellcheck.

use super::*;
use crate::provisioning::{fake_binary, ok, provision, written_config};

/// Loads the Vagrantfile with a stand-in for Vagrant that records each VM and its
/// provisioners as JSON.
pub(crate) const VAGRANT_STUB: &str = r#"
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
pub(crate) fn vagrantfile_is_valid_ruby_and_provisions_three_nodes_with_provision_sh() {
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
pub(crate) fn bench_script_passes_shellcheck() {
    if !have("shellcheck") {
        eprintln!("note: shellcheck not installed; skipped (apt-get install shellcheck)");
        return;
    }
    // -x follows `source scripts/bench-lib.sh`, a path relative to the repository root.
    let out = run(Command::new("shellcheck").arg("-x").args(["scripts/bench.sh", "scripts/bench-lib.sh"]).current_dir(repo()));
    assert!(out.status.success(), "shellcheck scripts/bench.sh scripts/bench-lib.sh:\n{}", text(&out.stdout));
}
