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
//! Backpressure: every report held in memory — queued, being batched, or being inserted — holds
//! a permit of one semaphore of `ingest_queue` permits, released when the report is stored. When
//! ClickHouse is slow or down the permits run out, sessions stop reading, and QUIC flow control
//! (a bounded window per connection) slows the agents. Nothing is dropped or acknowledged early,
//! and memory stays bounded.

pub mod batcher;
pub mod registry;
pub mod server;
pub mod session;

use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};

use crate::storage::rows::{Accepted, SessionRecord};

/// Work for the batcher.
#[derive(Debug)]
pub enum Job {
    /// Store a report; the sender learns when it is durable. The permit is released with it.
    Report(Box<Accepted>, oneshot::Sender<()>, OwnedSemaphorePermit),
    /// Record an accepted session.
    Session(SessionRecord),
}

/// The sending side of the batcher queue.
pub type JobSender = mpsc::Sender<Job>;
