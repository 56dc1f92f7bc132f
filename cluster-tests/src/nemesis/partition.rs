//! Network partitions between loopback addresses with iptables: one chain per test
//! process (`GHCHAOS-<pid>`), jumped to from OUTPUT. Loopback packets traverse OUTPUT
//! once, so a pair of DROP rules `-s A -d B` / `-s B -d A` cuts A<->B and nothing else
//! (the test client and the echo upstream sit on addresses that are never named).
//! The guard removes the jump and the chain on Drop, panics included; at start it sweeps
//! the chains of test processes that no longer exist (a SIGKILLed run cannot clean up).

use std::collections::BTreeSet;
use std::process::Command;

const IPTABLES: &str = "/usr/sbin/iptables";
const CHAIN_PREFIX: &str = "GHCHAOS-";

fn iptables(args: &[&str]) -> Result<String, String> {
    // -w: wait for the xtables lock rather than fail when another run holds it.
    let out = Command::new(IPTABLES).arg("-w").args(args).output().map_err(|e| format!("cannot run {IPTABLES}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("iptables {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Removes the chain `chain` and its jump from OUTPUT; each step may already be gone.
fn remove_chain(chain: &str) {
    while iptables(&["-D", "OUTPUT", "-j", chain]).is_ok() {}
    let _ = iptables(&["-F", chain]);
    let _ = iptables(&["-X", chain]);
}

/// Deletes GHCHAOS-<pid> chains whose process is gone.
pub fn sweep_leftovers() {
    let Ok(rules) = iptables(&["-S"]) else { return };
    for line in rules.lines() {
        let Some(chain) = line.strip_prefix("-N ").filter(|c| c.starts_with(CHAIN_PREFIX)) else { continue };
        let alive = chain[CHAIN_PREFIX.len()..].parse::<u32>().is_ok_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
        if !alive {
            eprintln!("chaos: removing leftover iptables chain {chain}");
            remove_chain(chain);
        }
    }
}

/// The partition state of one test process. One per process: tests run serially.
pub struct Partitions {
    chain: String,
    /// Address pairs currently cut (each stored once, smaller address first).
    cut: BTreeSet<(String, String)>,
}

impl Partitions {
    /// Creates this process's chain (after sweeping dead ones) and jumps to it from OUTPUT.
    pub fn new() -> Result<Partitions, String> {
        sweep_leftovers();
        let chain = format!("{CHAIN_PREFIX}{}", std::process::id());
        // A previous Partitions of this process may have been leaked with mem::forget.
        remove_chain(&chain);
        iptables(&["-N", &chain])?;
        let p = Partitions { chain, cut: BTreeSet::new() };
        iptables(&["-I", "OUTPUT", "1", "-j", &p.chain])?;
        Ok(p)
    }

    /// Cuts every link between a node of `a` and a node of `b` (addresses).
    pub fn cut(&mut self, a: &[String], b: &[String]) -> Result<(), String> {
        for x in a {
            for y in b {
                if x == y {
                    continue;
                }
                let pair = if x < y { (x.clone(), y.clone()) } else { (y.clone(), x.clone()) };
                if self.cut.insert(pair) {
                    iptables(&["-A", &self.chain, "-s", x, "-d", y, "-j", "DROP"])?;
                    iptables(&["-A", &self.chain, "-s", y, "-d", x, "-j", "DROP"])?;
                }
            }
        }
        Ok(())
    }

    /// Removes every cut: the network is whole again.
    pub fn heal(&mut self) -> Result<(), String> {
        iptables(&["-F", &self.chain])?;
        self.cut.clear();
        Ok(())
    }

    /// True if some link is cut.
    pub fn active(&self) -> bool {
        !self.cut.is_empty()
    }

    /// The addresses `addr` can no longer reach.
    pub fn cut_from(&self, addr: &str) -> Vec<String> {
        self.cut.iter().filter_map(|(x, y)| if x == addr { Some(y.clone()) } else if y == addr { Some(x.clone()) } else { None }).collect()
    }
}

impl Drop for Partitions {
    fn drop(&mut self) {
        remove_chain(&self.chain);
    }
}
