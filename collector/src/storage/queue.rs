//! Rows that many sessions produce a few at a time (devices' policy answers, their update
//! states), written in batches by one task each, so that a region answering at once is a few
//! inserts, not thousands.

use std::time::Duration;

use tokio::sync::mpsc;

use super::Store;

/// Rows waiting to be written, at most; beyond it the newest are dropped with a warning (the
/// devices say it again at their next connect).
const QUEUE: usize = 65_536;
/// Rows are written at least this often while some wait.
const FLUSH: Duration = Duration::from_millis(500);

/// Where sessions put their rows for one table.
#[derive(Debug)]
pub struct RowSender<T> {
    tx: mpsc::Sender<T>,
    table: &'static str,
}

impl<T> Clone for RowSender<T> {
    fn clone(&self) -> Self {
        Self { tx: self.tx.clone(), table: self.table }
    }
}

impl<T> RowSender<T> {
    /// Queues a row; drops it with a warning when the queue is full or the writer gone.
    pub fn send(&self, row: T) {
        if self.tx.try_send(row).is_err() {
            tracing::warn!(table = self.table, "row queue full or closed; a device's answer is not recorded");
        }
    }
}

/// A sender for `table` and the receiving end of its queue (the writer's, or a test's).
pub fn channel<T>(table: &'static str) -> (RowSender<T>, mpsc::Receiver<T>) {
    let (tx, rx) = mpsc::channel::<T>(QUEUE);
    (RowSender { tx, table }, rx)
}

/// Starts the task writing rows of `table`; it ends when every sender is gone, after writing
/// what it holds.
pub fn start<T>(store: Store, table: &'static str) -> (RowSender<T>, tokio::task::JoinHandle<()>)
where
    T: clickhouse::RowOwned + clickhouse::RowWrite + Send + Sync + 'static,
{
    let (sender, mut rx) = channel::<T>(table);
    let task = tokio::spawn(async move {
        let mut batch = Vec::new();
        loop {
            let Some(first) = rx.recv().await else { return };
            batch.push(first);
            let deadline = tokio::time::Instant::now() + FLUSH;
            while let Ok(Some(row)) = tokio::time::timeout_at(deadline, rx.recv()).await {
                batch.push(row);
            }
            // ClickHouse away: retried a few times, then dropped (the devices say again what
            // they run at their next connect).
            let mut tries = 0;
            while let Err(e) = store.insert_rows(table, &batch).await {
                tries += 1;
                if tries >= 5 {
                    tracing::warn!(table, error = %e, rows = batch.len(), "cannot record rows; dropped");
                    break;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            batch.clear();
        }
    });
    (sender, task)
}
