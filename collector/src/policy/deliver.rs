//! Delivery of policies over a device's session: the collector offers the device's effective
//! document after `Welcome` when the device runs another one, and again whenever the policies
//! change; the device's answers (and what it says it runs at connect) are recorded in
//! `policy_status`, written in batches by one task so that a region acknowledging a change at
//! once is a few inserts, not thousands.

use std::sync::Arc;

use parta_protocol::DeviceId;
use parta_protocol::policy::{MAX_REASON, PolicyId, PolicyOffer, PolicyOutcome, PolicyStatus};
use tokio::sync::watch;

use super::book::PolicyBook;
use crate::storage::Store;
use crate::storage::policies::PolicyStatusRow;

/// Where sessions put the statuses they hear.
pub type StatusSender = crate::storage::queue::RowSender<PolicyStatusRow>;

/// Starts the task writing statuses; it ends when every sender is gone, after writing what
/// it holds.
pub fn start_writer(store: Store) -> (StatusSender, tokio::task::JoinHandle<()>) {
    crate::storage::queue::start(store, "policy_status")
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
