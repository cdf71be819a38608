//! Reports waiting for the collector's acknowledgement, and the per-device sequence counter.
//!
//! The counter is persisted (atomically, fsynced) in the state directory before a number is
//! used, so sequence numbers keep increasing across restarts. The queue itself lives in memory
//! and is bounded: reports still queued when the agent stops are lost, and when the collector is
//! unreachable for longer than the queue holds, the oldest reports are dropped and counted.

use std::collections::VecDeque;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use parta_common::fsutil;
use parta_protocol::validate::sanitize_report;
use parta_protocol::{Message, Report, Sample, Welcome, encode_frame};

/// File holding the last sequence number used.
pub const SEQ_FILE: &str = "last-seq";

/// Reports kept in memory at most: 10,000 reports are a week at the default interval and about
/// 1.3 MB.
pub const DEFAULT_CAPACITY: usize = 10_000;

/// An outbox operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutboxError {
    /// The sequence file could not be read or written.
    #[error("sequence counter {}: {error}", path.display())]
    Seq {
        /// The file.
        path: PathBuf,
        /// Underlying error.
        error: std::io::Error,
    },
    /// The sequence file does not hold a number.
    #[error("sequence counter {} is damaged: {content:?}", path.display())]
    SeqDamaged {
        /// The file.
        path: PathBuf,
        /// What it holds.
        content: String,
    },
    /// A report could not be encoded.
    #[error("cannot encode report: {0}")]
    Encode(#[from] parta_protocol::EncodeError),
}

/// One report ready to send.
#[derive(Debug, Clone)]
pub struct Pending {
    /// Its sequence number.
    pub seq: u64,
    /// The encoded frame.
    pub frame: Vec<u8>,
}

/// Queue of unacknowledged reports plus the sequence counter.
#[derive(Debug)]
pub struct Outbox {
    seq_path: PathBuf,
    last_seq: u64,
    queue: VecDeque<Pending>,
    capacity: usize,
    dropped: u64,
    acked_up_to: u64,
}

impl Outbox {
    /// Opens the outbox, reading the sequence counter from `state_dir`.
    pub fn open(state_dir: &Path, capacity: usize) -> Result<Self, OutboxError> {
        let seq_path = state_dir.join(SEQ_FILE);
        let last_seq = match std::fs::read_to_string(&seq_path) {
            Ok(text) => text.trim().parse::<u64>().map_err(|_| OutboxError::SeqDamaged {
                path: seq_path.clone(),
                content: text.chars().take(40).collect(),
            })?,
            Err(e) if e.kind() == ErrorKind::NotFound => 0,
            Err(error) => {
                return Err(OutboxError::Seq { path: seq_path, error });
            }
        };
        Ok(Self {
            seq_path,
            last_seq,
            queue: VecDeque::new(),
            capacity: capacity.max(1),
            dropped: 0,
            acked_up_to: 0,
        })
    }

    /// Numbers, sanitises, encodes and queues a report of `samples` taken at `agent_time_ms`.
    /// Returns its sequence number.
    pub fn append(&mut self, agent_time_ms: i64, samples: Vec<Sample>) -> Result<u64, OutboxError> {
        let seq = self.last_seq + 1;
        self.persist_seq(seq)?;
        let mut report = Report { seq, agent_time_ms, samples };
        sanitize_report(&mut report);
        let frame = encode_frame(&Message::Report(report))?;
        if self.queue.len() >= self.capacity {
            self.queue.pop_front();
            self.dropped += 1;
            tracing::warn!(
                dropped_total = self.dropped,
                capacity = self.capacity,
                "outbox full: dropped the oldest unacknowledged report"
            );
        }
        self.queue.push_back(Pending { seq, frame });
        Ok(seq)
    }

    fn persist_seq(&mut self, seq: u64) -> Result<(), OutboxError> {
        fsutil::write_atomic(&self.seq_path, format!("{seq}\n").as_bytes(), false)
            .map_err(|error| OutboxError::Seq { path: self.seq_path.clone(), error })?;
        self.last_seq = seq;
        Ok(())
    }

    /// Up to `max` queued reports with sequence numbers above `after`, in order.
    pub fn pending_after(&self, after: u64, max: usize) -> Vec<Pending> {
        self.queue.iter().filter(|p| p.seq > after).take(max).cloned().collect()
    }

    /// Queued reports with sequence numbers up to and including `seq` (sent, not yet acked).
    pub fn count_up_to(&self, seq: u64) -> usize {
        self.queue.partition_point(|p| p.seq <= seq)
    }

    /// Forgets every report up to and including `up_to`.
    pub fn ack(&mut self, up_to: u64) {
        while self.queue.front().is_some_and(|p| p.seq <= up_to) {
            self.queue.pop_front();
        }
        self.acked_up_to = self.acked_up_to.max(up_to);
    }

    /// Applies what the collector says it already holds. If the collector has stored numbers at
    /// or above our counter, the state directory was lost or restored from an old copy: continue
    /// numbering above the collector's highest number so that new reports are not mistaken for
    /// duplicates.
    pub fn on_welcome(&mut self, w: &Welcome) -> Result<(), OutboxError> {
        self.ack(w.stored_up_to);
        if w.highest_seq > self.last_seq {
            tracing::warn!(
                local = self.last_seq,
                collector = w.highest_seq,
                "collector holds higher sequence numbers than this agent's counter; continuing above them"
            );
            self.persist_seq(w.highest_seq)?;
        }
        Ok(())
    }

    /// Reports waiting for acknowledgement.
    pub fn depth(&self) -> usize {
        self.queue.len()
    }

    /// Last sequence number used.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Reports dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

/// Locks a shared outbox. A panic while the lock was held cannot leave the queue in a state worse
/// than stopping delivery would, so a poisoned lock is used as is.
pub fn lock(outbox: &Mutex<Outbox>) -> MutexGuard<'_, Outbox> {
    outbox.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbering_survives_reopen_and_acks_trim() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(dir.path(), 10).unwrap();
        assert_eq!(o.append(0, vec![]).unwrap(), 1);
        assert_eq!(o.append(0, vec![]).unwrap(), 2);
        assert_eq!(o.append(0, vec![]).unwrap(), 3);
        assert_eq!(o.pending_after(1, 10).iter().map(|p| p.seq).collect::<Vec<_>>(), [2, 3]);
        o.ack(2);
        assert_eq!(o.depth(), 1);
        drop(o);
        let mut o = Outbox::open(dir.path(), 10).unwrap();
        assert_eq!(o.append(0, vec![]).unwrap(), 4);
    }

    #[test]
    fn full_queue_drops_oldest_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(dir.path(), 2).unwrap();
        for _ in 0..3 {
            o.append(0, vec![]).unwrap();
        }
        assert_eq!(o.dropped(), 1);
        assert_eq!(o.pending_after(0, 10).iter().map(|p| p.seq).collect::<Vec<_>>(), [2, 3]);
    }

    #[test]
    fn welcome_above_our_counter_moves_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(dir.path(), 10).unwrap();
        o.append(0, vec![]).unwrap();
        o.on_welcome(&Welcome { collector_version: String::new(), stored_up_to: 1, highest_seq: 50 })
            .unwrap();
        assert_eq!(o.depth(), 0);
        assert_eq!(o.append(0, vec![]).unwrap(), 51);
    }

    #[test]
    fn damaged_counter_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(SEQ_FILE), "x").unwrap();
        let err = Outbox::open(dir.path(), 10).unwrap_err().to_string();
        assert!(err.contains(SEQ_FILE) && err.contains("damaged"), "{err}");
    }
}
