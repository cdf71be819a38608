//! Batches accepted reports into ClickHouse inserts and releases acknowledgements once stored.
//!
//! Two tasks form a pipeline: the accumulator gathers jobs into the next batch while the
//! inserter stores the previous one, so ClickHouse is kept busy back to back under load and batch
//! size adapts to how long an insert takes ("group commit"). A batch is handed over when the
//! inserter is free and the batch is worth an insert — [`IngestConfig::batch_max_reports`] / 10
//! reports, or its oldest job has waited [`IngestConfig::batch_max_delay`], or no job has arrived
//! for [`QUIET`] (everyone is waiting for acknowledgements; waiting longer only adds latency —
//! this is what makes the tail of a backlog drain fast) but not sooner than [`MIN_SPACING`] after
//! the previous hand-over — and never grows beyond `batch_max_reports`: the accumulator then
//! stops taking jobs, sessions stop reading, and agents are slowed.

use std::sync::Arc;
use std::time::Duration;

use parta_protocol::DeviceId;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::registry::Registry;
use super::{Held, Job, Memory};
use crate::config::IngestConfig;
use crate::metrics::Metrics;
use crate::storage::Store;
use crate::storage::rows::Batch;

/// First and longest pause between insert attempts while ClickHouse refuses.
const RETRY_MIN: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// No job for this long means the agents are waiting for us.
pub const QUIET: Duration = Duration::from_millis(50);
/// Least time between two hand-overs triggered by [`QUIET`], so a trickle of single reports
/// does not become a flood of tiny inserts (at most ~4 per second).
pub const MIN_SPACING: Duration = Duration::from_millis(250);

/// A batch with what to do once it is stored.
#[derive(Debug, Default)]
struct Pending {
    batch: Batch,
    replies: Vec<oneshot::Sender<()>>,
    /// Memory of the reports, released once they are stored.
    permits: Vec<Held>,
    stored: Vec<(DeviceId, u64)>,
    bytes: u64,
    jobs: usize,
    first_at: Option<Instant>,
}

impl Pending {
    fn add(&mut self, job: Job) {
        match job {
            Job::Report(accepted, reply, permit) => {
                self.permits.push(permit);
                self.batch.add_report(&accepted);
                self.stored.push((accepted.device_id, accepted.report.seq));
                self.bytes += u64::from(accepted.bytes);
                self.replies.push(reply);
            }
            Job::Session(s) => self.batch.add_session(&s),
        }
        self.jobs += 1;
        self.first_at.get_or_insert_with(Instant::now);
    }

    fn reports(&self) -> usize {
        self.replies.len()
    }
}

/// Runs until every sender is gone and everything queued is stored. Batches are retried until
/// stored: reports are never dropped here, and acknowledgements follow storage.
pub async fn run(
    rx: mpsc::Receiver<Job>,
    store: Store,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    memory: Memory,
    cfg: IngestConfig,
) {
    // Capacity 1: one batch may wait while another is being inserted.
    let (to_insert, batches) = mpsc::channel(1);
    let inserter = tokio::spawn(insert_loop(batches, store, registry, Arc::clone(&metrics)));
    accumulate(rx, to_insert, &metrics, &memory, cfg).await;
    let _ = inserter.await;
    tracing::debug!("ingest queue closed; batcher finished");
}

async fn accumulate(
    mut rx: mpsc::Receiver<Job>,
    to_insert: mpsc::Sender<Pending>,
    metrics: &Metrics,
    memory: &Memory,
    cfg: IngestConfig,
) {
    let min_fill = (cfg.batch_max_reports / 10).max(1);
    let mut cur = Pending::default();
    let mut open = true;
    let mut last_arrival = Instant::now();
    let mut last_handover = Instant::now();
    while open || cur.jobs > 0 {
        let now = Instant::now();
        let age_due = cur.first_at.is_some_and(|t| now >= t + cfg.batch_max_delay);
        let quiet_due = now >= last_arrival + QUIET && now >= last_handover + MIN_SPACING;
        let due = cur.jobs > 0 && (!open || age_due || quiet_due || cur.reports() >= min_fill);
        let room = open && cur.reports() < cfg.batch_max_reports;
        // When not yet due, wake up when the age or the quiet rule would make it due.
        let wake_at = cur.first_at.map_or(now, |t| {
            (t + cfg.batch_max_delay).min((last_arrival + QUIET).max(last_handover + MIN_SPACING))
        });
        tokio::select! {
            job = rx.recv(), if room => match job {
                Some(job) => {
                    cur.add(job);
                    // Drain what is already queued without another trip through select!.
                    while cur.reports() < cfg.batch_max_reports {
                        match rx.try_recv() {
                            Ok(job) => cur.add(job),
                            Err(_) => break,
                        }
                    }
                    last_arrival = Instant::now();
                }
                None => open = false,
            },
            permit = to_insert.reserve(), if due => match permit {
                Ok(permit) => {
                    permit.send(std::mem::take(&mut cur));
                    last_handover = Instant::now();
                }
                Err(_) => return, // the inserter is gone: the process is stopping
            },
            () = tokio::time::sleep_until(wake_at), if cur.jobs > 0 && !due => {}
        }
        let (reports, bytes) = memory.held();
        metrics.ingest_queue.set(i64::try_from(reports).unwrap_or(i64::MAX));
        metrics.ingest_queue_bytes.set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }
}

/// Delay, backlog and loss metrics of a stored batch.
fn record_batch(metrics: &Metrics, batch: &Batch) {
    let mut oldest: Option<u32> = None;
    for row in &batch.ledger {
        let delay = row.receive_time.saturating_sub(row.agent_time);
        metrics.report_delay_seconds.observe(f64::from(delay));
        if delay > 300 {
            metrics.backlog_reports.inc();
        }
        oldest = Some(oldest.map_or(row.agent_time, |o| o.min(row.agent_time)));
    }
    if let (Some(oldest), Some(row)) = (oldest, batch.ledger.first()) {
        metrics.oldest_report_age_seconds.set(f64::from(row.receive_time.saturating_sub(oldest)));
    }
    for l in &batch.losses {
        metrics
            .agent_spool_losses
            .get_or_create(&crate::metrics::ReasonLabel { reason: l.reason.clone() })
            .inc_by(l.reports);
    }
}

async fn insert_loop(
    mut batches: mpsc::Receiver<Pending>,
    store: Store,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
) {
    while let Some(mut p) = batches.recv().await {
        let waited = p.first_at.map(|t| t.elapsed());
        let batch = Arc::new(std::mem::take(&mut p.batch));
        let mut pause = RETRY_MIN;
        loop {
            match store.insert_batch(&batch).await {
                Ok(took) => {
                    metrics.insert_seconds.observe(took.as_secs_f64());
                    tracing::debug!(
                        reports = batch.reports(),
                        insert_ms = took.as_millis(),
                        oldest_waited_ms = waited.map(|w| w.as_millis()),
                        "batch stored"
                    );
                    break;
                }
                Err(e) => {
                    metrics.insert_errors.inc();
                    tracing::warn!(error = %e, reports = batch.reports(), retry_in = ?pause,
                        "insert failed; holding the batch and retrying (agents are slowed meanwhile)");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(RETRY_MAX);
                }
            }
        }
        registry.mark_stored(p.stored);
        record_batch(&metrics, &batch);
        let n = p.replies.len();
        if n > 0 {
            metrics.batch_reports.observe(n as f64);
            metrics.reports_accepted.inc_by(n as u64);
            metrics.report_bytes.inc_by(p.bytes);
        }
        for reply in p.replies {
            // A session that went away no longer needs its acknowledgement; the data is stored.
            let _ = reply.send(());
        }
    }
}
