//! Graceful shutdown as a first-class value (the idea of mini-redis's
//! `shutdown.rs`): one [`Shutdown`] is created by the node runtime and cloned
//! into every task, which watches it and winds down when it fires.
//!
//! It is a `CancellationToken` underneath, so any number of tasks can wait
//! for it, it can be triggered from anywhere (a signal, a failed task), and a
//! task started after it fired sees that at once.

use tokio_util::sync::CancellationToken;

/// The node-wide "time to stop" signal.
#[derive(Clone, Debug, Default)]
pub struct Shutdown {
    token: CancellationToken,
}

impl Shutdown {
    pub fn new() -> Self {
        Shutdown::default()
    }

    /// Ask every task to stop. Idempotent.
    pub fn trigger(&self) {
        self.token.cancel();
    }

    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves once shutdown has been triggered (at once if it already was).
    pub async fn wait(&self) {
        self.token.cancelled().await;
    }
}

/// Wait for SIGINT (Ctrl-C) or SIGTERM; returns the signal's name.
#[cfg(unix)]
pub async fn signal() -> std::io::Result<&'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => Ok("SIGTERM"),
        _ = int.recv() => Ok("SIGINT"),
    }
}

/// Wait for Ctrl-C; returns the signal's name.
#[cfg(not(unix))]
pub async fn signal() -> std::io::Result<&'static str> {
    tokio::signal::ctrl_c().await?;
    Ok("Ctrl-C")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_clone_sees_the_trigger_even_late_ones() {
        let shutdown = Shutdown::new();
        let early = shutdown.clone();
        let waiter = tokio::spawn(async move { early.wait().await });
        assert!(!shutdown.is_triggered());
        shutdown.trigger();
        waiter.await.unwrap();
        let late = shutdown.clone();
        late.wait().await;
        assert!(late.is_triggered());
    }
}
