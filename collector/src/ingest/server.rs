//! The QUIC endpoint: accepts connections and runs one session task per connection.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;

use super::session::{self, SessionCtx};

/// Binds the endpoint.
pub fn bind(addr: SocketAddr, config: quinn::ServerConfig) -> std::io::Result<quinn::Endpoint> {
    quinn::Endpoint::server(config, addr)
}

/// Accepts connections until shutdown, then waits for the sessions to finish.
pub async fn run(endpoint: quinn::Endpoint, ctx: Arc<SessionCtx>, mut shutdown: watch::Receiver<bool>) {
    let mut sessions = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            incoming = endpoint.accept() => match incoming {
                Some(incoming) => {
                    sessions.spawn(session::handle(Arc::clone(&ctx), incoming));
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
