//! Errors put into words for operators: one line per error, its causes
//! after it, nothing said twice.
//!
//! Errors carry their context up to the edge and are printed once there:
//! `main` prints why a command failed, the network logs why a dial or a
//! listener failed. Both write the line with these helpers, so a cause reads
//! the same wherever it surfaces. Each layer keeps its own error enum; this
//! module only formats.

use libp2p::swarm::DialError;
use libp2p::TransportError;

/// An error and its sources on one line, skipping empty texts and sources
/// that repeat what was said (libp2p nests the same io::Error several times).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = next {
        let text = err
            .to_string()
            .replace("Multiple dial errors occurred:\n - ", "")
            .replace("\n - ", "; ")
            .replace('\n', " ");
        let text = text.trim().to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = err.source();
    }
    parts.join(": ")
}

/// A dial error as one line an operator can act on: for transport failures,
/// the innermost reason (e.g. "Connection refused"), after each address when
/// several were tried.
pub fn describe_dial_error(e: &DialError) -> String {
    match e {
        DialError::Transport(attempts) if attempts.len() == 1 => error_chain(&attempts[0].1),
        DialError::Transport(attempts) => attempts
            .iter()
            .map(|(addr, err)| format!("{addr}: {}", error_chain(err)))
            .collect::<Vec<_>>()
            .join("; "),
        other => error_chain(other),
    }
}

/// A transport error as one line, with the OS reason (e.g. "Address already in use").
pub fn describe_transport_error(e: &TransportError<std::io::Error>) -> String {
    match e {
        TransportError::MultiaddrNotSupported(a) => {
            format!("the address {a} is not supported (expected /ip4|/ip6|/dns4/../tcp/PORT)")
        }
        TransportError::Other(io) => io.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot listen: {0}")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::AddrInUse, "Address already in use");
        assert_eq!(
            error_chain(&Outer(io)),
            "cannot listen: Address already in use"
        );
    }
}
