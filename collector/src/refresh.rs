//! In-memory views of small tables (enrollment tokens, the fleet) are refreshed every few
//! seconds, and also when something unknown is asked for — a token or a device certificate
//! created a moment ago, perhaps by another collector. A flood of unknown values must not become
//! a flood of ClickHouse queries: misses share one refresh, at most one per [`MISS_REFRESH_MIN`].

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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
