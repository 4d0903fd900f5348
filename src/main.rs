//! The `peerbook` binary: parse the command line, set up logging and the
//! tokio runtime, run the command, and print any error once, here.

use std::process::ExitCode;

use clap::Parser;
use peerbook::cli::Cli;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    // Bad flags end here with clap's message and exit status 2.
    let cli = Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli.run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let code = e.exit_code();
            eprintln!("error: {}", peerbook::error::error_chain(&e));
            ExitCode::from(code)
        }
    }
}

/// The log filter when `RUST_LOG` is not set. Kademlia warns at start that
/// it cannot bootstrap before it knows any peer, which is normal for the
/// first node of a network.
const DEFAULT_LOG: &str = "info,libp2p_kad=error";

/// Logs go to stderr (stdout is for the operator's summary and command
/// output), filtered by `RUST_LOG`, `info` by default.
fn init_logging() {
    let (filter, bad) = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.is_empty() => match EnvFilter::try_new(&spec) {
            Ok(f) => (f, None),
            Err(e) => (
                EnvFilter::new(DEFAULT_LOG),
                Some(format!("ignoring RUST_LOG={spec:?}: {e}")),
            ),
        },
        _ => (EnvFilter::new(DEFAULT_LOG), None),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if let Some(warning) = bad {
        tracing::warn!("{warning}");
    }
}
