//! The `phalanx` command-line tool.

mod command;
mod demo;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The node's allocator: mimalloc, with thread-local free lists. A chain write allocates and
/// frees a few small buffers on each hop (packets, entries, keys, values), and glibc's
/// allocator was about a sixth of a loaded node's CPU profile.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// phalanx: a fault-tolerant actor runtime with clustering built in.
#[derive(Debug, Parser)]
#[command(name = "phalanx", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the demo: actors talking, one of them panicking and being restarted by its
    /// supervisor.
    Demo(demo::Options),
    /// Runs a node until SIGINT or SIGTERM.
    Node(command::NodeOptions),
    /// Shows the membership table of a running cluster.
    Members(command::MembersOptions),
    /// Makes a new random cluster key.
    Keygen(command::KeygenOptions),
    /// Reads and writes the replicated key-value map through a node.
    Kv(command::KvOptions),
    /// Shows the replication chain.
    Chain(command::ChainOptions),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    report_panics_in_one_line();
    let outcome = match cli.command {
        Command::Demo(options) => demo::run(&options).map_err(|error| error.to_string()),
        Command::Node(options) => command::node(&options),
        Command::Members(options) => command::members(&options),
        Command::Keygen(options) => command::keygen(&options),
        Command::Kv(options) => command::kv(&options),
        Command::Chain(options) => command::chain(&options),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("phalanx: {error}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PHALANX_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
}

/// Actor panics are caught and handled by supervisors; the default hook would still print a
/// whole backtrace for each. Report them as one tracing event instead.
fn report_panics_in_one_line() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()));
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        tracing::warn!(
            thread = thread.name().unwrap_or("unnamed"),
            location = location.unwrap_or_default(),
            "panic: {message}"
        );
    }));
}
