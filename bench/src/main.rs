//! gatehouse-bench: the load driver behind scripts/bench.sh for what wrk cannot measure.
//! Each subcommand runs one measurement over keep-alive HTTP and prints one JSON object
//! on stdout; failures go to stderr with a non-zero exit.

mod failover;
mod genconfig;
mod http;
mod open_loop;
mod propagation;
mod ratelimit;
mod stats;
mod target;
mod window_start;
mod writes;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use target::Kind;

#[derive(Parser)]
#[command(about = "Load driver for scripts/bench.sh; every subcommand prints one JSON object")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Sequential write latency, then concurrent write throughput, through one node.
    Writes {
        #[arg(long, value_enum)]
        kind: Kind,
        /// host:port of gatehouse's Admin API or etcd's client URL.
        #[arg(long)]
        addr: String,
        #[arg(long, default_value_t = 500)]
        sequential: usize,
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
    },
    /// Route created through --admin until it answers 200 on every --proxies node.
    Propagation {
        #[arg(long)]
        admin: String,
        /// Existing service the routes are added to.
        #[arg(long)]
        service: String,
        /// Comma-separated host:port of every node's proxy.
        #[arg(long, value_delimiter = ',', required = true)]
        proxies: Vec<String>,
        #[arg(long, default_value_t = 100)]
        count: usize,
    },
    /// SIGKILL --pid (the leader) and time until a write through --survivors is acknowledged.
    Failover {
        #[arg(long, value_enum)]
        kind: Kind,
        #[arg(long)]
        pid: i32,
        #[arg(long, value_delimiter = ',', required = true)]
        survivors: Vec<String>,
        /// Comma-separated host:port/path on the survivors' proxies to keep loaded.
        #[arg(long, value_delimiter = ',')]
        proxy_urls: Vec<String>,
        #[arg(long, default_value_t = 2)]
        proxy_concurrency: usize,
    },
    /// Requests admitted per one-second window on a rate-limited route, over the limit.
    Ratelimit {
        /// Comma-separated host:port/path, one per node.
        #[arg(long, value_delimiter = ',', required = true)]
        urls: Vec<String>,
        #[arg(long)]
        limit: u64,
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Concurrent requesters per URL.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
    },
    /// Latency at a fixed offered rate, each request timed from when it was due.
    OpenLoop {
        /// host:port/path
        #[arg(long)]
        url: String,
        /// Requests per second, spread evenly over the connections.
        #[arg(long)]
        rate: f64,
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Sent first and not counted.
        #[arg(long, default_value_t = 1.0)]
        warmup_seconds: f64,
        #[arg(long, default_value_t = 32)]
        connections: usize,
        /// A `name: value` field for every request; repeatable.
        #[arg(long)]
        header: Vec<String>,
    },
    /// Latency of a rate-limit window's first request and of the next, once per window.
    WindowStart {
        /// host:port/path of a rate-limited route that admits at least two a window.
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 10)]
        windows: usize,
        /// A field sent with a value of its own in each window, so that a route limited
        /// by it counts a new key every window (one never seen before).
        #[arg(long)]
        fresh_header: Option<String>,
    },
    /// Prints a declarative file with this many routes.
    GenConfig {
        #[arg(long)]
        routes: usize,
        #[arg(long)]
        upstream: String,
    },
}

async fn run(cmd: Cmd) -> Result<serde_json::Value, String> {
    let client = http::client();
    match cmd {
        Cmd::Writes { kind, addr, sequential, concurrency, seconds } => {
            writes::run(&client, kind, &addr, sequential, concurrency, Duration::from_secs_f64(seconds)).await
        }
        Cmd::Propagation { admin, service, proxies, count } => propagation::run(&client, &admin, &service, &proxies, count).await,
        Cmd::Failover { kind, pid, survivors, proxy_urls, proxy_concurrency } => {
            let plan = failover::Plan { kind, pid, survivors: &survivors, proxy_urls: &proxy_urls, proxy_concurrency };
            failover::run(&client, plan).await
        }
        Cmd::Ratelimit { urls, limit, seconds, concurrency } => {
            ratelimit::run(&client, &urls, limit, Duration::from_secs_f64(seconds), concurrency).await
        }
        Cmd::OpenLoop { url, rate, seconds, warmup_seconds, connections, header } => {
            let duration = Duration::try_from_secs_f64(seconds).map_err(|e| format!("--seconds {seconds}: {e}"))?;
            let warmup = Duration::try_from_secs_f64(warmup_seconds).map_err(|e| format!("--warmup-seconds {warmup_seconds}: {e}"))?;
            let plan = open_loop::Plan { url, rate, warmup, duration, connections, headers: header };
            tokio::task::spawn_blocking(move || open_loop::run(&plan)).await.map_err(|e| format!("open-loop driver: {e}"))?
        }
        Cmd::WindowStart { url, windows, fresh_header } => window_start::run(&client, &url, windows, fresh_header.as_deref()).await,
        Cmd::GenConfig { routes, upstream } => Ok(genconfig::generate(routes, &upstream)),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gatehouse-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli.cmd)) {
        Ok(v) => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gatehouse-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
