//! Ingest: QUIC sessions with agents and the batched, acknowledged path into storage.
//!
//! - [`server`]: the QUIC endpoint's accept loop; one task per connection.
//! - [`session`]: one agent session — Hello, authentication, Welcome, reports, acks.
//! - [`registry`]: per-device state shared by sessions: which sequence numbers are stored, and
//!   which session currently owns the device (a new session waits for the old one to drain, so
//!   a report is never inserted twice by overlapping sessions).
//! - [`batcher`]: collects accepted reports into batches, inserts them (retrying until
//!   ClickHouse takes them), records them as stored, then releases the acknowledgements.
//!
//! - [`bind`]: what the collector makes of a report before storing it: ids of SNMP gear and
//!   displays derived from the device's school on record.
//!
//! Backpressure: every report held in memory — queued, being batched, or being inserted — holds
//! [`Memory`] permits: one of `ingest_queue` report permits and as many of `ingest_queue_bytes`
//! byte permits as it takes in memory ([`parta_protocol::heap`]), released when the report is
//! stored. When ClickHouse is
//! slow or down the permits run out, sessions stop reading, and QUIC flow control (a bounded
//! window per connection) slows the agents. Nothing is dropped or acknowledged early, and memory
//! stays bounded in reports and in bytes.
//!
//! Before a connection says `Hello` it costs little: the server bounds how many may wait, asks
//! for address validation (QUIC Retry) when many do, and the session reads only a few KiB and
//! decodes only `Hello` or `Enroll` until the device is authenticated.

pub mod batcher;
pub mod bind;
pub mod registry;
pub mod server;
pub mod session;

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError, mpsc, oneshot};

use crate::storage::rows::{Accepted, SessionRecord};

/// Work for the batcher.
#[derive(Debug)]
pub enum Job {
    /// Store a report; the sender learns when it is durable. The memory is released with it.
    Report(Box<Accepted>, oneshot::Sender<()>, Held),
    /// Record an accepted session.
    Session(SessionRecord),
}

/// The sending side of the batcher queue.
pub type JobSender = mpsc::Sender<Job>;

/// The memory budget of reports awaiting storage, in reports and in bytes.
#[derive(Debug, Clone)]
pub struct Memory {
    reports: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
    max_reports: usize,
    max_bytes: usize,
}

/// One report's share of [`Memory`], released when dropped.
#[derive(Debug)]
pub struct Held {
    _report: OwnedSemaphorePermit,
    _bytes: OwnedSemaphorePermit,
}

impl Memory {
    /// A budget of `reports` reports and `bytes` bytes.
    pub fn new(reports: usize, bytes: usize) -> Self {
        Self {
            reports: Arc::new(Semaphore::new(reports)),
            bytes: Arc::new(Semaphore::new(bytes)),
            max_reports: reports,
            max_bytes: bytes,
        }
    }

    /// Takes a report of `bytes` bytes (capped at the budget, so that one report always fits);
    /// waits while the budget is used up. `None` when the budget was closed (shutdown). The
    /// second value is true when it had to wait (backpressure).
    pub async fn take(&self, bytes: usize) -> Option<(Held, bool)> {
        let n = u32::try_from(bytes.min(self.max_bytes)).unwrap_or(u32::MAX);
        let mut waited = false;
        let report = match Arc::clone(&self.reports).try_acquire_owned() {
            Ok(p) => p,
            Err(TryAcquireError::Closed) => return None,
            Err(TryAcquireError::NoPermits) => {
                waited = true;
                Arc::clone(&self.reports).acquire_owned().await.ok()?
            }
        };
        let bytes = match Arc::clone(&self.bytes).try_acquire_many_owned(n) {
            Ok(p) => p,
            Err(TryAcquireError::Closed) => return None,
            Err(TryAcquireError::NoPermits) => {
                waited = true;
                Arc::clone(&self.bytes).acquire_many_owned(n).await.ok()?
            }
        };
        Some((Held { _report: report, _bytes: bytes }, waited))
    }

    /// Reports and bytes held now.
    pub fn held(&self) -> (usize, usize) {
        (
            self.max_reports.saturating_sub(self.reports.available_permits()),
            self.max_bytes.saturating_sub(self.bytes.available_permits()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reports_wait_for_bytes_as_well_as_for_count() {
        let m = Memory::new(10, 1000);
        let (a, waited) = m.take(600).await.unwrap();
        assert!(!waited);
        assert_eq!(m.held(), (1, 600));
        // A second large report does not fit until the first is released.
        let second = m.take(600);
        tokio::pin!(second);
        assert!(futures_poll_once(&mut second).await.is_none());
        drop(a);
        let (_b, waited) = second.await.unwrap();
        assert!(waited);
        assert_eq!(m.held(), (1, 600));
        // A report larger than the whole budget is capped rather than waiting forever.
        drop(_b);
        let (_c, _) = m.take(5000).await.unwrap();
        assert_eq!(m.held(), (1, 1000));
    }

    /// Polls a future once.
    async fn futures_poll_once<F: std::future::Future + Unpin>(f: &mut F) -> Option<F::Output> {
        tokio::select! {
            biased;
            out = f => Some(out),
            () = tokio::task::yield_now() => None,
        }
    }
}
