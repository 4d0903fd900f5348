//! The `peerbook` binary: parse the command line, set up logging and the
//! tokio runtime, run the command, and print any error once, here.

use std::process::ExitCode;

use clap::Parser;
use peerbook::cli::{Cli, LogFormat};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    // Bad flags end here with clap's message and exit status 2.
    let cli = Cli::parse();
    init_logging(cli.log_format);
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

/// The log filter when `RUST_LOG` is not set.
const DEFAULT_LOG: &str = "info";

/// The networking crates' own logs are for their developers: at `warn`
/// unless `RUST_LOG` names them. Kademlia warns at start that it cannot
/// bootstrap before it knows any peer, which is normal for the first node of
/// a network, so it is held at `error`.
const QUIET_DEPS: &[(&str, &str)] = &[
    ("libp2p_kad", "error"),
    ("libp2p", "warn"),
    ("multistream_select", "warn"),
    ("yamux", "warn"),
    ("hickory", "warn"),
    ("netlink", "warn"),
    ("rtnetlink", "warn"),
    ("if_watch", "warn"),
    ("hyper", "warn"),
    ("reqwest", "warn"),
];

/// `spec` with the quiet directives of [`QUIET_DEPS`] it does not mention
/// itself (`RUST_LOG=debug` is peerbook at debug, libp2p still at warn;
/// `RUST_LOG=debug,libp2p_gossipsub=debug` asks for gossipsub too).
fn with_quiet_deps(spec: &str) -> String {
    let mut out = spec.to_string();
    for (target, level) in QUIET_DEPS {
        let named = spec.split(',').any(|directive| {
            let t = directive.split(['=', '[']).next().unwrap_or("").trim();
            !t.is_empty() && (t.starts_with(target) || target.starts_with(t))
        });
        if !named {
            out.push_str(&format!(",{target}={level}"));
        }
    }
    out
}

/// Logs go to stderr (stdout is for the operator's summary and command
/// output), filtered by `RUST_LOG` (`info` by default), as text or as one
/// JSON object a line (`--log-format json`).
fn init_logging(format: LogFormat) {
    let (spec, bad) = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.is_empty() => match EnvFilter::try_new(&spec) {
            Ok(_) => (spec, None),
            Err(e) => (
                DEFAULT_LOG.to_string(),
                Some(format!("ignoring RUST_LOG={spec:?}: {e}")),
            ),
        },
        _ => (DEFAULT_LOG.to_string(), None),
    };
    let filter = EnvFilter::try_new(with_quiet_deps(&spec))
        .unwrap_or_else(|_| EnvFilter::new(with_quiet_deps(DEFAULT_LOG)));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
    if let Some(warning) = bad {
        tracing::warn!("{warning}");
    }
}

#[cfg(test)]
mod tests {
    use super::with_quiet_deps;

    #[test]
    fn libp2p_stays_at_warn_unless_rust_log_names_it() {
        let quiet = with_quiet_deps("debug");
        assert!(
            quiet.starts_with("debug,libp2p_kad=error,libp2p=warn"),
            "{quiet}"
        );
        let asked = with_quiet_deps("debug,libp2p_gossipsub=debug");
        assert!(!asked.contains("libp2p=warn"), "{asked}");
        assert!(asked.contains("yamux=warn"), "{asked}");
    }
}
