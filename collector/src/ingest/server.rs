//! The QUIC endpoint: accepts connections and runs one session task per connection.
//!
//! Connections that have not yet authenticated hold one of `max_handshakes` slots. When more
//! than half are taken, a new connection must first prove it can receive at its address (QUIC
//! Retry: a stateless round trip, so spoofed floods cost the collector no state); when all are
//! taken, new connections are refused at once. Agents retry with back-off either way.

use std::sync::Arc;

use tokio::sync::{Semaphore, watch};

use super::session::{self, SessionCtx};

/// How often devices without a session are looked for.
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(60);
/// A device without a session for this long is forgotten (its stored numbers are read from the
/// ledger when it reconnects): long enough that a reconnecting agent finds them in memory.
const FORGET_AFTER: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Binds the endpoint.
pub fn bind(addr: std::net::SocketAddr, config: quinn::ServerConfig) -> std::io::Result<quinn::Endpoint> {
    quinn::Endpoint::server(config, addr)
}

/// Accepts connections until shutdown, then waits for the sessions to finish.
pub async fn run(
    endpoint: quinn::Endpoint,
    ctx: Arc<SessionCtx>,
    max_handshakes: usize,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(max_handshakes));
    let retry_below = max_handshakes / 2;
    let mut sessions = tokio::task::JoinSet::new();
    let mut sweep = tokio::time::interval(SWEEP_EVERY);
    loop {
        tokio::select! {
            _ = sweep.tick() => {
                let forgotten = ctx.registry.sweep(std::time::Instant::now(), FORGET_AFTER);
                if forgotten > 0 {
                    tracing::debug!(forgotten, held = ctx.registry.len(), "forgot devices without a session");
                }
            }
            incoming = endpoint.accept() => match incoming {
                Some(incoming) => {
                    let free = slots.available_permits();
                    ctx.metrics.handshakes_waiting.set(i64::try_from(max_handshakes - free).unwrap_or(i64::MAX));
                    if free <= retry_below && !incoming.remote_address_validated() {
                        ctx.metrics.handshake_retries.inc();
                        // Only fails for an address validated already, ruled out above.
                        let _ = incoming.retry();
                        continue;
                    }
                    match Arc::clone(&slots).try_acquire_owned() {
                        Ok(slot) => {
                            sessions.spawn(session::handle(Arc::clone(&ctx), incoming, slot));
                        }
                        Err(_) => {
                            ctx.metrics.handshakes_refused.inc();
                            incoming.refuse();
                        }
                    }
                }
                None => break,
            },
            // Reap finished sessions so the set does not grow without bound.
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
            () = parta_common::shutdown::stopped(&mut shutdown) => break,
        }
    }
    drop(ctx);
    while sessions.join_next().await.is_some() {}
}
