//! Per-device state shared by all sessions of this collector process.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use parta_protocol::DeviceId;
use tokio::sync::{Notify, Semaphore, watch};

use crate::storage::{Store, StoreError};
use parta_protocol::seqset::SeqSet;

/// Concurrent ledger lookups at most; a reconnect storm of thousands of agents must not become
/// thousands of simultaneous ClickHouse queries.
const LOOKUP_CONCURRENCY: usize = 16;
/// Longest time a ledger lookup may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, Default)]
struct Slot {
    /// Sequence numbers known to be stored; `None` until loaded from the ledger.
    stored: Option<SeqSet>,
    /// The session that owns the device now.
    owner: Option<Owner>,
    /// Since when no session owns it (`None` while one does, or never owned).
    idle_since: Option<std::time::Instant>,
}

#[derive(Debug, Clone)]
struct Owner {
    id: u64,
    cancel: Arc<Notify>,
    revoked: Arc<AtomicBool>,
    done: watch::Receiver<bool>,
}

/// A claim on a device, held by its current session.
#[derive(Debug)]
pub struct Claim {
    /// Session id.
    pub id: u64,
    /// Notified when a newer session takes the device over, or the device is revoked.
    pub cancel: Arc<Notify>,
    /// Set before `cancel` is notified when the device was revoked.
    pub revoked: Arc<AtomicBool>,
    /// Set to `true` when this session has drained (all its reports resolved).
    pub done: watch::Sender<bool>,
    /// The previous owner's drain signal, to wait on before touching the device.
    pub previous: Option<watch::Receiver<bool>>,
}

/// Why the device's stored sequence numbers are unknown.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// ClickHouse failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// ClickHouse did not answer in time.
    #[error("ledger lookup timed out after {0:?}")]
    Timeout(Duration),
}

/// Device states.
#[derive(Debug)]
pub struct Registry {
    slots: Mutex<HashMap<DeviceId, Slot>>,
    next_id: std::sync::atomic::AtomicU64,
    lookups: Semaphore,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
            next_id: std::sync::atomic::AtomicU64::new(1),
            lookups: Semaphore::new(LOOKUP_CONCURRENCY),
        }
    }

    fn slots(&self) -> MutexGuard<'_, HashMap<DeviceId, Slot>> {
        // The map stays consistent even if a holder panicked: every update is a single insert.
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes a new session the device's owner and tells the previous owner to stop.
    pub fn claim(&self, device: DeviceId) -> Claim {
        let id = self.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let cancel = Arc::new(Notify::new());
        let revoked = Arc::new(AtomicBool::new(false));
        let (done, done_rx) = watch::channel(false);
        let mut slots = self.slots();
        let slot = slots.entry(device).or_default();
        let owner = Owner { id, cancel: Arc::clone(&cancel), revoked: Arc::clone(&revoked), done: done_rx };
        slot.idle_since = None;
        let previous = slot.owner.replace(owner).map(|old| {
            old.cancel.notify_one();
            old.done
        });
        Claim { id, cancel, revoked, done, previous }
    }

    /// Ends the session of a revoked device, if it has one.
    pub fn revoke(&self, device: DeviceId) {
        if let Some(owner) = self.slots().get(&device).and_then(|s| s.owner.as_ref()) {
            owner.revoked.store(true, Ordering::SeqCst);
            owner.cancel.notify_one();
        }
    }

    /// The highest sequence number known to be stored for the device (0: none, or not loaded).
    pub fn highest(&self, device: DeviceId) -> u64 {
        self.slots().get(&device).and_then(|s| s.stored.as_ref()).map_or(0, SeqSet::max)
    }

    /// Gives up ownership if `id` still owns the device.
    pub fn release(&self, device: DeviceId, id: u64) {
        if let Some(slot) = self.slots().get_mut(&device)
            && slot.owner.as_ref().is_some_and(|o| o.id == id)
        {
            slot.owner = None;
            slot.idle_since = Some(std::time::Instant::now());
        }
    }

    /// Forgets devices no session has owned for `max_idle` (at `now`): their stored numbers are
    /// read from the ledger again when they reconnect. Without it the map would hold every
    /// device that ever connected. Returns how many were forgotten.
    pub fn sweep(&self, now: std::time::Instant, max_idle: Duration) -> usize {
        let mut slots = self.slots();
        let before = slots.len();
        slots.retain(|_, s| {
            s.owner.is_some() || s.idle_since.is_none_or(|t| now.saturating_duration_since(t) < max_idle)
        });
        before - slots.len()
    }

    /// Devices held in memory.
    pub fn len(&self) -> usize {
        self.slots().len()
    }

    /// True when no device is held.
    pub fn is_empty(&self) -> bool {
        self.slots().is_empty()
    }

    /// The device's stored sequence numbers, loaded from the ledger on first use.
    pub async fn stored(&self, store: &Store, device: DeviceId) -> Result<SeqSet, LookupError> {
        if let Some(s) = self.slots().get(&device).and_then(|s| s.stored.clone()) {
            return Ok(s);
        }
        let _permit = self.lookups.acquire().await;
        let loaded = tokio::time::timeout(LOOKUP_TIMEOUT, store.stored_seqs(device))
            .await
            .map_err(|_| LookupError::Timeout(LOOKUP_TIMEOUT))??;
        let mut slots = self.slots();
        let slot = slots.entry(device).or_default();
        // Another path may have loaded or extended it meanwhile; merge rather than overwrite.
        let merged = match slot.stored.take() {
            Some(mut existing) => {
                existing.union_with(&loaded);
                existing
            }
            None => loaded,
        };
        slot.stored = Some(merged.clone());
        Ok(merged)
    }

    /// Whether a report is known to be stored.
    pub fn is_stored(&self, device: DeviceId, seq: u64) -> bool {
        self.slots().get(&device).and_then(|s| s.stored.as_ref()).is_some_and(|r| r.contains(seq))
    }

    /// Records reports as stored (after a successful insert).
    pub fn mark_stored(&self, items: impl IntoIterator<Item = (DeviceId, u64)>) {
        let mut slots = self.slots();
        for (device, seq) in items {
            // Only extend sets that were loaded: an unloaded set is read from the ledger later,
            // which then includes these rows.
            if let Some(set) = slots.get_mut(&device).and_then(|s| s.stored.as_mut()) {
                set.insert(seq);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_cancels_the_previous_owner_and_release_is_owner_only() {
        let r = Registry::new();
        let d = DeviceId::random();
        let a = r.claim(d);
        assert!(a.previous.is_none());
        let b = r.claim(d);
        let prev = b.previous.clone().unwrap();
        assert!(!*prev.borrow());
        a.done.send(true).unwrap();
        assert!(*prev.borrow());
        r.release(d, a.id);
        // b still owns the device: a third claim sees b as previous.
        let c = r.claim(d);
        assert!(c.previous.is_some());
        drop(b);
        // Revoking tells the owner why it is cancelled.
        r.revoke(d);
        assert!(c.revoked.load(Ordering::SeqCst));
    }

    #[test]
    fn devices_without_a_session_are_forgotten_after_a_while() {
        let r = Registry::new();
        let (a, b) = (DeviceId::random(), DeviceId::random());
        let ca = r.claim(a);
        let cb = r.claim(b);
        r.slots().entry(a).or_default().stored = Some(SeqSet::span(1, 3));
        r.release(a, ca.id);
        let now = std::time::Instant::now();
        // Owned, or idle for less than the limit: kept.
        assert_eq!(r.sweep(now, Duration::from_secs(600)), 0);
        assert_eq!(r.len(), 2);
        // Idle past the limit: forgotten; the owned one stays.
        assert_eq!(r.sweep(now + Duration::from_secs(601), Duration::from_secs(600)), 1);
        assert_eq!(r.len(), 1);
        assert!(!r.is_stored(a, 1), "read from the ledger again next time");
        drop(cb);
    }

    #[test]
    fn mark_stored_only_extends_loaded_sets() {
        let r = Registry::new();
        let d = DeviceId::random();
        r.mark_stored([(d, 1)]);
        assert!(!r.is_stored(d, 1));
        r.slots().entry(d).or_default().stored = Some(SeqSet::span(1, 3));
        r.mark_stored([(d, 4), (d, 6)]);
        assert!(r.is_stored(d, 4) && !r.is_stored(d, 5) && r.is_stored(d, 6));
    }
}
