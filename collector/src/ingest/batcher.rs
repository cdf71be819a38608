//! Batches accepted reports into ClickHouse inserts and releases acknowledgements once stored.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::Job;
use super::registry::Registry;
use crate::config::IngestConfig;
use crate::metrics::Metrics;
use crate::storage::Store;
use crate::storage::rows::Batch;

/// First and longest pause between insert attempts while ClickHouse refuses.
const RETRY_MIN: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Runs until every sender is gone and the queue is empty. Each batch is retried until it is
/// stored: reports are never dropped here, and acknowledgements follow storage.
pub async fn run(
    mut rx: mpsc::Receiver<Job>,
    store: Store,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    cfg: IngestConfig,
) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        let deadline = Instant::now() + cfg.batch_max_delay;
        let mut reports = count_reports(&jobs);
        while reports < cfg.batch_max_reports {
            // Take what is already queued without waiting; wait only when the queue is empty.
            let next = match rx.try_recv() {
                Ok(j) => Some(j),
                Err(mpsc::error::TryRecvError::Empty) => tokio::select! {
                    j = rx.recv() => j,
                    () = tokio::time::sleep_until(deadline) => None,
                },
                Err(mpsc::error::TryRecvError::Disconnected) => None,
            };
            let Some(job) = next else { break };
            if matches!(job, Job::Report(..)) {
                reports += 1;
            }
            jobs.push(job);
        }
        metrics.ingest_queue.set(i64::try_from(rx.len()).unwrap_or(i64::MAX));
        store_batch(&store, &registry, &metrics, jobs).await;
    }
    tracing::debug!("ingest queue closed; batcher finished");
}

fn count_reports(jobs: &[Job]) -> usize {
    jobs.iter().filter(|j| matches!(j, Job::Report(..))).count()
}

async fn store_batch(store: &Store, registry: &Registry, metrics: &Metrics, jobs: Vec<Job>) {
    let mut batch = Batch::default();
    let mut replies: Vec<oneshot::Sender<()>> = Vec::new();
    let mut stored = Vec::new();
    let mut bytes = 0u64;
    for job in jobs {
        match job {
            Job::Report(accepted, reply) => {
                batch.add_report(&accepted);
                stored.push((accepted.device_id, accepted.report.seq));
                bytes += u64::from(accepted.bytes);
                replies.push(reply);
            }
            Job::Session(s) => batch.add_session(&s),
        }
    }
    let mut pause = RETRY_MIN;
    loop {
        match store.insert_batch(&batch).await {
            Ok(took) => {
                metrics.insert_seconds.observe(took.as_secs_f64());
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
    registry.mark_stored(stored);
    let n = replies.len();
    metrics.batch_reports.observe(n as f64);
    metrics.reports_accepted.inc_by(n as u64);
    metrics.report_bytes.inc_by(bytes);
    for reply in replies {
        // A session that went away no longer needs its acknowledgement; the data is stored.
        let _ = reply.send(());
    }
    tracing::debug!(reports = n, "batch stored");
}
