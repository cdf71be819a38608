//! In-memory views of small tables (enrollment tokens, the fleet) are refreshed every few
//! seconds, and also when something unknown is asked for — a token or a device certificate
//! created a moment ago, perhaps by another collector. A flood of unknown values must not become
//! a flood of ClickHouse queries: misses share one refresh, at most one per [`MISS_REFRESH_MIN`].
//! Views the sessions wait on (policies, releases) are a [`Shared`] value, refreshed by
//! [`keep_fresh`].

use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// How often the views are refreshed in the background.
pub const REFRESH_EVERY: Duration = Duration::from_secs(5);
/// Least time between refreshes triggered by misses.
pub const MISS_REFRESH_MIN: Duration = Duration::from_secs(1);

/// When a view was last refreshed, and the turn of miss-triggered refreshes.
#[derive(Debug, Default)]
pub struct MissRefresh {
    last: Mutex<Option<Instant>>,
    turn: tokio::sync::Mutex<()>,
}

impl MissRefresh {
    /// Records a completed refresh.
    pub fn refreshed(&self) {
        *self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
    }

    fn last(&self) -> Option<Instant> {
        *self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Time since the last completed refresh; `None` before the first.
    pub fn age(&self) -> Option<Duration> {
        self.last().map(|t| t.elapsed())
    }

    /// Makes sure the view was refreshed after `asked` (when a lookup missed): waits for a
    /// refresh another miss started, or runs `refresh` — at most one per [`MISS_REFRESH_MIN`].
    pub async fn after_miss<F, Fut, E>(&self, asked: Instant, refresh: F) -> Result<(), E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(), E>>,
    {
        let _turn = self.turn.lock().await;
        if self.last().is_some_and(|last| last >= asked) {
            return Ok(());
        }
        if let Some(last) = self.last() {
            tokio::time::sleep_until((last + MISS_REFRESH_MIN).into()).await;
        }
        refresh().await
    }
}

/// A view many sessions read, replaced whole when a refresh finds it changed; the generation
/// tells waiting sessions that it did.
#[derive(Debug)]
pub struct Shared<T> {
    value: RwLock<Arc<T>>,
    generation: watch::Sender<u64>,
}

impl<T: Default + PartialEq> Default for Shared<T> {
    fn default() -> Self {
        Self { value: RwLock::new(Arc::default()), generation: watch::Sender::new(0) }
    }
}

impl<T: PartialEq> Shared<T> {
    /// The current value.
    pub fn get(&self) -> Arc<T> {
        Arc::clone(&self.value.read().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Changes: the value grows with every change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// Replaces the value; subscribers are told when it differs.
    pub fn replace(&self, value: T) {
        let mut current = self.value.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if **current != value {
            *current = Arc::new(value);
            self.generation.send_modify(|g| *g += 1);
        }
    }
}

/// Runs `refresh(state.clone())` every [`REFRESH_EVERY`] until `stop` (the first time after
/// one period: the caller loaded the view at start); a failure keeps the cached view.
pub async fn keep_fresh<S, Fut, T, E>(
    what: &'static str,
    mut stop: watch::Receiver<bool>,
    state: S,
    refresh: impl Fn(S) -> Fut,
) where
    S: Clone,
    Fut: Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    loop {
        tokio::select! {
            () = tokio::time::sleep(REFRESH_EVERY) => {}
            () = parta_common::shutdown::stopped(&mut stop) => return,
        }
        if let Err(e) = refresh(state.clone()).await {
            tracing::debug!(error = %e, "{what} refresh failed; keeping the cached view");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribers_hear_of_changes_only() {
        let shared: Shared<Vec<u8>> = Shared::default();
        let mut rx = shared.subscribe();
        shared.replace(Vec::new());
        assert!(!rx.has_changed().unwrap(), "the same value is no change");
        shared.replace(vec![1]);
        assert!(rx.has_changed().unwrap());
        rx.mark_unchanged();
        assert_eq!(*shared.get(), vec![1]);
        shared.replace(vec![1]);
        assert!(!rx.has_changed().unwrap());
    }
}
