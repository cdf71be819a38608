//! The outbox joins the durable [`Spool`] (what exists) and the [`Delivery`] state machine (what
//! to send next, what is acknowledged). The runner appends reports; the uplink asks for the next
//! batch and hands in acknowledgements. Both hold it behind one mutex; no lock is held across
//! network I/O.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use parta_protocol::delivery::{Delivery, DeliveryConfig, Next};
use parta_protocol::validate::sanitize_report;
use parta_protocol::{Ack, Message, Report, Sample, Welcome, encode_frame};

use crate::spool::{Spool, SpoolConfig, SpoolError, Stats};

/// Loss notices carried by one report at most; more wait for the next report.
const LOSSES_PER_REPORT: usize = 16;
/// Bytes of frames handed to the uplink at once, at most.
const BATCH_BYTES: usize = 256 * 1024;

/// An outbox operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutboxError {
    /// The spool refused.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// A report could not be encoded.
    #[error("cannot encode report: {0}")]
    Encode(#[from] parta_protocol::EncodeError),
    /// Reading the spool failed.
    #[error("cannot read the spool: {0}")]
    Read(#[from] std::io::Error),
}

/// A spooled report ready to send: its sequence number and frame.
pub type Frame = (u64, Vec<u8>);

/// Reports awaiting acknowledgement, durable on disk.
#[derive(Debug)]
pub struct Outbox {
    spool: Spool,
    delivery: Delivery,
}

impl Outbox {
    /// Opens the spool in `dir` and restores the delivery state from it.
    pub fn open(
        dir: &std::path::Path,
        spool: SpoolConfig,
        delivery: DeliveryConfig,
    ) -> Result<Self, OutboxError> {
        let spool = Spool::open(dir, spool)?;
        let mut d = Delivery::new(delivery);
        d.restore(spool.acked(), spool.newest());
        Ok(Self { spool, delivery: d })
    }

    /// Numbers, sanitises, encodes and spools a report of `samples` taken at `agent_time_ms`,
    /// adding notices of reports the spool had to discard. Returns its sequence number.
    pub fn append(&mut self, agent_time_ms: i64, mut samples: Vec<Sample>) -> Result<u64, OutboxError> {
        let mut losses = self.spool.take_losses();
        let rest = losses.split_off(losses.len().min(LOSSES_PER_REPORT));
        self.spool.return_losses(rest);
        let carried = losses.clone();
        samples.splice(0..0, losses.into_iter().map(Sample::SpoolLoss));
        let seq = self.spool.next_seq();
        let mut report = Report { seq, agent_time_ms, samples };
        sanitize_report(&mut report);
        let essential = report.samples.iter().any(Sample::is_essential);
        let frame = match encode_frame(&Message::Report(report)) {
            Ok(f) => f,
            Err(e) => {
                self.spool.return_losses(carried);
                return Err(e.into());
            }
        };
        if let Err(e) = self.spool.append(seq, agent_time_ms, essential, &frame) {
            self.spool.return_losses(carried);
            return Err(e.into());
        }
        self.delivery.on_appended(seq);
        Ok(seq)
    }

    /// A session started.
    pub fn on_connected(&mut self, welcome: &Welcome, now: Instant) {
        self.spool.skip_above(welcome.highest_seq);
        let newly = self.delivery.on_connected(welcome, now);
        self.spool.ack(&newly);
    }

    /// The session ended.
    pub fn on_disconnected(&mut self) {
        self.delivery.on_disconnected();
    }

    /// The next frames to send, oldest first, live reports ahead of the backlog; `None` when the
    /// window is full or nothing is left to send.
    pub fn next_batch(&mut self) -> Result<Option<Vec<Frame>>, OutboxError> {
        loop {
            let (records, scanned) = match self.delivery.poll_send() {
                Next::Nothing => return Ok(None),
                Next::Live(seq) => (self.spool.read(seq, seq + 1, 1, usize::MAX)?.records, seq),
                Next::Backlog { from, below, max } => {
                    let b = self.spool.read(from, below, max, BATCH_BYTES)?;
                    (b.records, b.scanned_to.max(from))
                }
            };
            let seqs: Vec<u64> = records.iter().map(|r| r.0).collect();
            self.delivery.on_sent(&seqs, scanned);
            // Nothing found means those numbers were discarded meanwhile: poll again.
            if !records.is_empty() {
                return Ok(Some(records));
            }
        }
    }

    /// An acknowledgement arrived.
    pub fn on_ack(&mut self, ack: &Ack, now: Instant) {
        let newly = self.delivery.on_ack(ack, now);
        self.spool.ack(&newly);
    }

    /// Periodic upkeep of the spool (sync, limits, repairs, marks).
    pub fn maintain(&mut self, now_ms: i64) {
        self.spool.maintain(now_ms);
    }

    /// Syncs and saves state (on shutdown).
    pub fn close(&mut self) {
        self.spool.close();
    }

    /// The sequence number the next appended report gets.
    pub fn next_seq(&self) -> u64 {
        self.spool.next_seq()
    }

    /// New spool limits and durability (a policy changed them); they apply from the next
    /// append.
    pub fn set_spool_config(&mut self, cfg: crate::spool::SpoolConfig) {
        self.spool.set_config(cfg);
    }

    /// Spool summary.
    pub fn stats(&self) -> Stats {
        self.spool.stats()
    }

    /// Reports not yet acknowledged.
    pub fn pending(&self) -> u64 {
        self.spool.pending()
    }

    /// Reports sent and not yet acknowledged.
    pub fn in_flight(&self) -> usize {
        self.delivery.in_flight()
    }

    /// How long the collector has not acknowledged anything while reports were in flight.
    pub fn waiting_for_ack(&self, now: Instant) -> Option<std::time::Duration> {
        self.delivery.waiting_for_ack(now)
    }

    /// Highest sequence number used.
    pub fn newest(&self) -> u64 {
        self.spool.newest()
    }
}

/// Locks a shared outbox. A panic while the lock was held cannot leave the spool's files in an
/// unsafe state (every change on disk is atomic), so a poisoned lock is used as is.
pub fn lock(outbox: &Mutex<Outbox>) -> MutexGuard<'_, Outbox> {
    outbox.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use parta_protocol::sample::LossReason;
    use parta_protocol::{FrameDecoder, examples};

    fn host_metrics() -> Sample {
        Sample::HostMetrics(examples::host_metrics())
    }

    fn decode(frame: &[u8]) -> Report {
        let mut d = FrameDecoder::new();
        d.push(frame);
        match d.next_frame().unwrap().unwrap() {
            Message::Report(r) => r,
            other => panic!("{other:?}"),
        }
    }

    fn welcome(stored: u64) -> Welcome {
        parta_protocol::examples::welcome_at(stored, stored)
    }

    #[test]
    fn append_send_ack_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(dir.path(), SpoolConfig::default(), DeliveryConfig::default()).unwrap();
        for _ in 0..5 {
            o.append(1_000, vec![host_metrics()]).unwrap();
        }
        o.on_connected(&welcome(0), Instant::now());
        let batch = o.next_batch().unwrap().unwrap();
        assert_eq!(batch.iter().map(|r| r.0).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
        assert_eq!(decode(&batch[2].1).seq, 3);
        assert!(o.next_batch().unwrap().is_none(), "all in flight");
        o.on_ack(&Ack::range(1, 3), Instant::now());
        o.close();
        drop(o);
        let mut o = Outbox::open(dir.path(), SpoolConfig::default(), DeliveryConfig::default()).unwrap();
        o.on_connected(&welcome(3), Instant::now());
        o.append(2_000, vec![host_metrics()]).unwrap();
        // Live report 6 (taken during the session) first, then the unacknowledged backlog 4–5.
        let live = o.next_batch().unwrap().unwrap();
        assert_eq!(live.iter().map(|r| r.0).collect::<Vec<_>>(), [6]);
        let backlog = o.next_batch().unwrap().unwrap();
        assert_eq!(backlog.iter().map(|r| r.0).collect::<Vec<_>>(), [4, 5]);
    }

    #[test]
    fn loss_notices_ride_on_the_next_report_and_make_it_essential() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(dir.path(), SpoolConfig::default(), DeliveryConfig::default()).unwrap();
        o.spool.return_losses(vec![parta_protocol::sample::SpoolLoss {
            reason: LossReason::Thinned,
            first_seq: 1,
            last_seq: 1,
            reports: 1,
            oldest_ms: 0,
            newest_ms: 0,
        }]);
        o.spool.skip_above(1);
        let seq = o.append(5, vec![host_metrics()]).unwrap();
        o.on_connected(&welcome(0), Instant::now());
        let batch = o.next_batch().unwrap().unwrap();
        let r = decode(&batch.iter().find(|b| b.0 == seq).unwrap().1);
        assert!(matches!(r.samples[0], Sample::SpoolLoss(_)));
        assert!(o.spool.take_losses().is_empty());
    }

    #[test]
    fn collector_ahead_of_a_restored_state_moves_numbering_up() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(dir.path(), SpoolConfig::default(), DeliveryConfig::default()).unwrap();
        o.append(1, vec![host_metrics()]).unwrap();
        o.on_connected(&parta_protocol::examples::welcome_at(0, 500), Instant::now());
        assert_eq!(o.append(2, vec![host_metrics()]).unwrap(), 501);
    }

    #[test]
    fn the_highest_possible_number_does_not_wrap_the_counter() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(dir.path(), SpoolConfig::default(), DeliveryConfig::default()).unwrap();
        o.append(1, vec![host_metrics()]).unwrap();
        o.on_connected(&parta_protocol::examples::welcome_at(0, u64::MAX), Instant::now());
        // Following it would make the next number 0, which no collector accepts.
        assert_eq!(o.append(2, vec![host_metrics()]).unwrap(), 2);
    }
}
