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
//! Backpressure: sessions hand reports to the batcher through a bounded queue and keep a bounded
//! number of unacknowledged reports; when ClickHouse is slow or down the queue fills, sessions
//! stop reading, and QUIC flow control slows the agents. Nothing is dropped and memory stays
//! bounded by `ingest_queue`.

pub mod batcher;
pub mod registry;
pub mod server;
pub mod session;

use tokio::sync::{mpsc, oneshot};

use crate::storage::rows::{Accepted, SessionRecord};

/// Work for the batcher.
#[derive(Debug)]
pub enum Job {
    /// Store a report; the sender learns when it is durable.
    Report(Box<Accepted>, oneshot::Sender<()>),
    /// Record an accepted session.
    Session(SessionRecord),
}

/// The sending side of the batcher queue.
pub type JobSender = mpsc::Sender<Job>;
