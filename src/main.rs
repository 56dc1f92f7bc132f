//! The `gatehouse` binary: parses the command line, sets up logging, and hands over to
//! the library (a node, the echo upstream, or an Admin API client command).

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

// The proxy allocates a little per request (headers, URIs, bodies); the system allocator
// showed up as ~9% of proxy CPU in a profile.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use gatehouse::cli::commands::{self, AdminTarget};
use gatehouse::config::StartArgs;

#[derive(Parser)]
#[command(name = "gatehouse", version, about = "An API gateway cluster in one binary: reverse proxy + Raft, no database")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a node (proxy, Admin API, cluster member).
    Start(StartArgs),
    /// Show the cluster as one node sees it.
    Status {
        #[command(flatten)]
        target: AdminTarget,
        /// Print JSON, for scripts.
        #[arg(long)]
        json: bool,
        /// Exit 1 when writes cannot commit (no quorum alive, or the node hears from no
        /// leader with one), after printing the table; for scripts and probes.
        #[arg(long, conflicts_with = "json")]
        check: bool,
    },
    /// List the gossip view of members.
    Members {
        #[command(flatten)]
        target: AdminTarget,
        #[arg(long)]
        json: bool,
    },
    /// Make the node leave the cluster (hands off leadership and its vote), then stop.
    Leave {
        #[command(flatten)]
        target: AdminTarget,
    },
    /// Remove a member that is gone for good (its machine or disk lost); refused while it
    /// still answers.
    Remove {
        #[command(flatten)]
        target: AdminTarget,
        /// The member's node id, as `gatehouse status` lists it.
        node_id: u64,
    },
    /// Replace the cluster's configuration with a Kong declarative file (YAML or JSON).
    Apply {
        #[command(flatten)]
        target: AdminTarget,
        /// The file; - for standard input.
        #[arg(short = 'f', long = "file")]
        file: std::path::PathBuf,
        /// Only show what would change.
        #[arg(long)]
        dry_run: bool,
    },
    /// Print the cluster's configuration as a Kong declarative file.
    Dump {
        #[command(flatten)]
        target: AdminTarget,
        /// JSON instead of YAML.
        #[arg(long)]
        json: bool,
    },
    /// Run a small echo upstream for demos and tests.
    Echo {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9000")]
        listen: SocketAddr,
        /// Name reported in every answer.
        #[arg(long, default_value = "echo")]
        name: String,
    },
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // mimalloc reserves a 1 GiB arena and asks for transparent huge pages on it, so every
    // touched 2 MiB would count as resident: an idle node measured 61 MB with THP and
    // 15 MB without. Small pages cost the proxy nothing measurable.
    #[cfg(target_os = "linux")]
    if let Err(e) = nix::sys::prctl::set_thp_disable(true) {
        eprintln!("gatehouse: could not opt out of transparent huge pages ({e}); resident memory will look larger");
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gatehouse: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result: anyhow::Result<()> = runtime.block_on(async {
        match cli.command {
            Command::Start(_) => {
                let args = StartArgs::from_matches(matches.subcommand_matches("start").expect("start matched"))?;
                init_logging(&args.log);
                Ok(gatehouse::node::run(args).await?)
            }
            Command::Status { target, json, check } => commands::status(&target, json, check).await,
            Command::Members { target, json } => commands::members(&target, json).await,
            Command::Leave { target } => commands::leave(&target).await,
            Command::Remove { target, node_id } => commands::remove(&target, node_id).await,
            Command::Apply { target, file, dry_run } => commands::apply(&target, &file, dry_run).await,
            Command::Dump { target, json } => commands::dump(&target, json).await,
            Command::Echo { listen, name } => {
                init_logging("info");
                Ok(gatehouse::node::run_echo(listen, name).await?)
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Every error here says its cause in its own message (the habit of this
            // code base's error types): the alternate form would repeat each cause.
            eprintln!("gatehouse: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(filter: &str) {
    use std::io::IsTerminal;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    // openraft logs benign warnings during membership changes; and an error for every
    // failed call to a peer that is down, which `QuietUnreachablePeers` drops (the
    // leader's autopilot says instead when a member stops and starts answering).
    let filter = format!("{},openraft=error", gatehouse::config::log_filter(filter));
    tracing_subscriber::registry()
        // `StartArgs::validate` checked the filter; "info" is only a backstop.
        .with(tracing_subscriber::EnvFilter::try_new(&filter).unwrap_or_else(|_| "info,openraft=error".into()))
        .with(gatehouse::log_filter::QuietUnreachablePeers)
        // Colour codes only for a person at a terminal, not in a file or the journal.
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(std::io::stderr().is_terminal()))
        .init();
}
