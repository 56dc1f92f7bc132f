//! One checker per invariant; each returns a `Verdict` naming the invariant, how many
//! cases it checked and every violation it found, so a failure names what broke.

pub mod leaders;
pub mod proxy;
pub mod ratelimit;
pub mod writes;

#[derive(Debug, Clone)]
pub struct Verdict {
    pub invariant: &'static str,
    pub checked: usize,
    pub violations: Vec<String>,
}

impl Verdict {
    pub fn new(invariant: &'static str) -> Verdict {
        Verdict { invariant, checked: 0, violations: Vec::new() }
    }

    /// Counts one case; records `violation` if there is one.
    pub fn check(&mut self, violation: Option<String>) {
        self.checked += 1;
        self.violations.extend(violation);
    }
}

/// Every violation of every verdict, for a failure message; None when all hold.
pub fn report(verdicts: &[Verdict]) -> Option<String> {
    let mut out = String::new();
    for v in verdicts.iter().filter(|v| !v.violations.is_empty()) {
        out.push_str(&format!("invariant violated: {} ({} of {} checks)\n", v.invariant, v.violations.len(), v.checked));
        for line in v.violations.iter().take(20) {
            out.push_str(&format!("  - {line}\n"));
        }
    }
    (!out.is_empty()).then_some(out)
}
