//! Delivery of policies over a device's session: the collector offers the device's effective
//! document after `Welcome` when the device runs another one, and again whenever the policies
//! change; the device's answers (and what it says it runs at connect) are recorded in
//! `policy_status`, written in batches by one task so that a region acknowledging a change at
//! once is a few inserts, not thousands.

use std::sync::Arc;
use std::time::Duration;

use parta_protocol::DeviceId;
use parta_protocol::policy::{MAX_REASON, PolicyId, PolicyOffer, PolicyOutcome, PolicyStatus};
use tokio::sync::{mpsc, watch};

use super::book::PolicyBook;
use crate::storage::Store;
use crate::storage::policies::PolicyStatusRow;

/// Statuses waiting to be written, at most; beyond it the newest are dropped with a warning
/// (the device says what it runs again at its next connect).
const STATUS_QUEUE: usize = 65_536;
/// Statuses are written at least this often while some wait.
const STATUS_FLUSH: Duration = Duration::from_millis(500);

/// Where sessions put the statuses they hear.
#[derive(Debug, Clone)]
pub struct StatusSender(mpsc::Sender<PolicyStatusRow>);

impl StatusSender {
    fn send(&self, row: PolicyStatusRow) {
        if self.0.try_send(row).is_err() {
            tracing::warn!("policy status queue full or closed; a device's answer is not recorded");
        }
    }
}

/// Starts the task writing statuses; it ends when every sender is gone, after writing what
/// it holds.
pub fn start_writer(store: Store) -> (StatusSender, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<PolicyStatusRow>(STATUS_QUEUE);
    let task = tokio::spawn(async move {
        let mut batch = Vec::new();
        loop {
            let Some(first) = rx.recv().await else { return };
            batch.push(first);
            let deadline = tokio::time::Instant::now() + STATUS_FLUSH;
            while let Ok(Some(row)) = tokio::time::timeout_at(deadline, rx.recv()).await {
                batch.push(row);
            }
            // ClickHouse away: retried a few times, then dropped (the devices say again what
            // they run at their next connect).
            let mut tries = 0;
            while let Err(e) = store.put_policy_statuses(&batch).await {
                tries += 1;
                if tries >= 5 {
                    tracing::warn!(error = %e, rows = batch.len(), "cannot record policy statuses; dropped");
                    break;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            batch.clear();
        }
    });
    (StatusSender(tx), task)
}

/// One session's side of the exchange.
#[derive(Debug)]
pub struct Delivery {
    book: Arc<PolicyBook>,
    status: StatusSender,
    device: DeviceId,
    school: String,
    running: Option<PolicyId>,
    offered: Option<PolicyId>,
    changes: watch::Receiver<u64>,
}

impl Delivery {
    /// A session of `device` of `school` that runs `running` (as its `Hello` says), recorded.
    pub fn start(
        book: Arc<PolicyBook>,
        status: StatusSender,
        device: DeviceId,
        school: String,
        running: Option<PolicyId>,
    ) -> Self {
        let mut changes = book.subscribe();
        changes.mark_unchanged();
        let d = Self { book, status, device, school, running, offered: None, changes };
        d.record("running", 0, "", "");
        d
    }

    /// The offer to send now, if the device runs another document than its effective one and
    /// it was not offered in this session yet.
    pub fn next_offer(&mut self) -> Option<PolicyOffer> {
        let offer = match self.book.offer_for(self.device, &self.school) {
            Ok(o) => o?,
            Err(e) => {
                tracing::error!(device = %self.device, error = %e, "cannot build the device's policy; nothing offered");
                return None;
            }
        };
        if Some(offer.id) == self.running || Some(offer.id) == self.offered {
            return None;
        }
        self.offered = Some(offer.id);
        Some(offer)
    }

    /// Waits until the policies change.
    pub async fn changed(&mut self) {
        if self.changes.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Records the device's answer; an error (for the `Reject`) when it is out of bounds.
    pub fn on_status(&mut self, s: &PolicyStatus) -> Result<(), String> {
        match &s.outcome {
            PolicyOutcome::Applied => {
                self.running = Some(s.id);
                tracing::info!(device = %self.device, policy = %s.id.short(), "the device applied its policy");
                self.record("applied", s.id.version, "", "");
            }
            PolicyOutcome::Refused { key, reason } => {
                if key.len() > MAX_REASON || reason.len() > MAX_REASON {
                    return Err(format!(
                        "a policy refusal's key or reason is longer than {MAX_REASON} bytes"
                    ));
                }
                tracing::warn!(device = %self.device, policy = %s.id.short(), %key, %reason,
                    "the device refused its policy; its previous one stays in force");
                self.record("refused", s.id.version, key, reason);
            }
        }
        Ok(())
    }

    fn record(&self, outcome: &str, answered: u64, key: &str, reason: &str) {
        self.status.send(PolicyStatusRow {
            device_id: self.device.0,
            running_version: self.running.map_or(0, |r| r.version),
            running_hash: self.running.map(|r| hex::encode(r.hash)).unwrap_or_default(),
            answered_version: answered,
            outcome: outcome.into(),
            key: key.into(),
            reason: reason.into(),
            version: crate::clock::rollup_version(),
        });
    }
}
