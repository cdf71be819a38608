//! Shutdown signalling shared by tasks: a `watch` channel that turns `true` once.

use tokio::sync::watch;

/// Resolves once the flag is `true` (or its sender is gone, which also means "stop").
///
/// A helper rather than `rx.wait_for(..)` inline: the guard `wait_for` returns must not live in a
/// `select!` across awaits, which would make the task `!Send`.
pub async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C); on non-Unix platforms on Ctrl-C only.
pub async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
