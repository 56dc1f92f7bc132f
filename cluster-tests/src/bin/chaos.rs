//! The long randomized chaos run: `chaos --minutes N [--seed S] [--without W]...` forms
//! five nodes (three voters, two learners) on 127.0.49.x, drives admin writes, proxied
//! traffic and rate-limited load, injects random faults until the time is up, checks
//! every invariant and prints a summary. `--without deletes` / `--without ratelimit`
//! leave a workload out (to watch the other invariants while a bug in one is open).
//! Exits 1 if any invariant was violated (evidence is kept), 2 on bad arguments.

use std::time::{Duration, Instant};

use cluster_tests::run::{self, Run};
use cluster_tests::summary::summarize;
use cluster_tests::verify::{RateLoad, Spec};

fn usage(why: &str) -> ! {
    eprintln!("{why}\nusage: chaos --minutes N [--seed S] [--without deletes|ratelimit]...");
    std::process::exit(2)
}

struct Args {
    minutes: f64,
    seed: u64,
    deletes: bool,
    ratelimit: bool,
}

fn args() -> Args {
    let mut minutes = None;
    let mut seed = None;
    let (mut deletes, mut ratelimit) = (true, true);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let value = args.next().unwrap_or_else(|| usage(&format!("{a} needs a value")));
        match a.as_str() {
            "--minutes" => minutes = Some(value.parse::<f64>().unwrap_or_else(|e| usage(&format!("--minutes {value}: {e}")))),
            "--seed" => seed = Some(value.parse::<u64>().unwrap_or_else(|e| usage(&format!("--seed {value}: {e}")))),
            "--without" => match value.as_str() {
                "deletes" => deletes = false,
                "ratelimit" => ratelimit = false,
                _ => usage(&format!("--without {value}: deletes or ratelimit")),
            },
            _ => usage(&format!("unknown argument {a}")),
        }
    }
    let minutes = minutes.unwrap_or_else(|| usage("--minutes is required"));
    Args { minutes, seed: seed.unwrap_or_else(run::seed), deletes, ratelimit }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = args();
    let mut run = Run::with_seed("chaos", "127.0.49", 5, args.seed);
    run.start(3).await;
    let load = RateLoad { path: "/limited".into(), limit: 20, clients: 3, pause: Duration::from_millis(15) };
    let spec = Spec { writers: 3, deletes: args.deletes, proxy_clients: 2, ratelimit: args.ratelimit.then_some(load) };
    let w = run.workloads(&spec).await;
    let deadline = Instant::now() + Duration::from_secs_f64(args.minutes * 60.0);
    let mut interrupted = Box::pin(async {
        let _ = tokio::signal::ctrl_c().await;
    });
    run.random_schedule(deadline, &mut interrupted).await;
    let outcome = run.finish(w).await;
    let summary = summarize(&run, &outcome);
    println!("{summary}");
    if let Some(report) = cluster_tests::checker::report(&outcome.verdicts) {
        let dir = run.evidence(&report);
        eprintln!("{report}history and node logs in {}", dir.display());
        // Exit without unwinding would skip the guards: drop them first.
        drop(run);
        std::process::exit(1);
    }
}
