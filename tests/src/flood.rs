//! Unauthenticated connection attempts in bulk: handshakes that complete and then never say
//! Hello, as a flood of a collector's QUIC port would (the flood test and `bench-fleet`).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use parta_agent::tls::{Present, Trust};

/// Makes `total` connection attempts to `addr` (trusting `ca`, no client certificate), at most
/// `concurrent` at a time, each holding its connection `hold` after the handshake. Returns
/// (handshakes completed, attempts refused or failed).
pub async fn flood(addr: &str, ca: &Path, total: usize, concurrent: usize, hold: Duration) -> (usize, usize) {
    let addr: SocketAddr = addr.parse().unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(
        parta_agent::tls::client_config(Trust::CaFile(ca), Present::Nothing).unwrap(),
    );
    let slots = Arc::new(tokio::sync::Semaphore::new(concurrent));
    let (done, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..total {
        let permit = Arc::clone(&slots).acquire_owned().await.unwrap();
        let connecting = endpoint.connect(addr, "localhost").unwrap();
        let (done, failed) = (Arc::clone(&done), Arc::clone(&failed));
        tasks.spawn(async move {
            match tokio::time::timeout(Duration::from_secs(15), connecting).await {
                Ok(Ok(conn)) => {
                    done.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(hold).await;
                    conn.close(quinn::VarInt::from_u32(0), b"");
                }
                _ => {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            drop(permit);
        });
        // Reap finished attempts so the set stays small.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    endpoint.close(quinn::VarInt::from_u32(0), b"");
    (done.load(Ordering::Relaxed), failed.load(Ordering::Relaxed))
}
