//! Storage of signed releases, their rollouts and what devices say about them. Releases and
//! rollouts are in the auth database (only administrators change them); the devices' update
//! states are in the main database, beside the rest of the fleet's telemetry. The artifact
//! bytes are files in the collector's data directory ([`crate::release`]).

use clickhouse::Row;
use serde::{Deserialize, Serialize};

use super::{Store, StoreError};

/// A `releases` row: one signed release, as `release add` took it.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct ReleaseRow {
    /// `parta-agent`.
    pub product: String,
    /// `0.2.0`.
    pub version: String,
    /// `x86_64-linux`.
    pub target: String,
    /// `pilot` or `stable`: the channel it was added to.
    pub channel: String,
    /// The signature file, as `parta-release sign` wrote it.
    pub signature: String,
    /// Artifact size, bytes.
    pub size: u64,
    /// SHA-256 of the artifact, hex.
    pub sha256: String,
    /// When, ms since the epoch.
    pub added_ms: u64,
    /// Who.
    pub author: String,
}

/// A `release_rollouts` row: who is offered a channel's release, from `at_ms` on. The latest
/// row of a channel is in force.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct RolloutRow {
    /// `pilot` or `stable`.
    pub channel: String,
    /// The release offered.
    pub version: String,
    /// This share of all devices (by a hash of the device id, so a larger share includes a
    /// smaller one), 0–100.
    pub percent: u8,
    /// And every device in these scopes (`school:…`, `municipality:…`, `device:…`).
    pub scopes: Vec<String>,
    /// Retry epoch: devices try a version that failed on them again when it is raised.
    pub retry: u32,
    /// When, ms since the epoch.
    pub at_ms: u64,
    /// Who.
    pub author: String,
    /// Why.
    pub comment: String,
}

/// An `update_status` row: a device's state with one release.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct UpdateStatusRow {
    /// The device.
    #[serde(with = "clickhouse::serde::uuid")]
    pub device_id: uuid::Uuid,
    /// The release.
    pub version: String,
    /// `offered`, `downloading`, …, `healthy`, `rolled_back`, `failed`, `refused`.
    pub state: String,
    /// Bytes downloaded and verified.
    pub bytes: u64,
    /// Why (refusals, failures, rollbacks).
    pub detail: String,
    /// The agent version the device ran when it said so.
    pub running: String,
    /// When the collector heard it: nanoseconds, strictly increasing per process, so the latest
    /// state wins.
    pub at: u64,
}

/// Migration 15: releases, rollouts, device update states.
pub const MIGRATION_15: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS {auth}.releases (
    product String,
    version String,
    target String,
    channel String,
    signature String,
    size UInt64,
    sha256 String,
    added_ms UInt64,
    author String
) ENGINE = ReplacingMergeTree
ORDER BY (product, target, version, channel)",
    "CREATE TABLE IF NOT EXISTS {auth}.release_rollouts (
    channel String,
    version String,
    percent UInt8,
    scopes Array(String),
    retry UInt32,
    at_ms UInt64,
    author String,
    comment String
) ENGINE = ReplacingMergeTree
ORDER BY (channel, at_ms)",
    "CREATE TABLE IF NOT EXISTS {db}.update_status (
    device_id UUID,
    version String,
    state LowCardinality(String),
    bytes UInt64,
    detail String,
    running String,
    at UInt64
) ENGINE = ReplacingMergeTree(at)
ORDER BY (device_id, version)",
];

const RELEASES: &str = "SELECT product, version, target, channel, any(signature), any(size), any(sha256),
        min(added_ms), any(author)
 FROM releases
 GROUP BY product, version, target, channel
 ORDER BY product, target, version, channel";

const ROLLOUTS: &str =
    "SELECT channel, argMax(version, at_ms), argMax(percent, at_ms), argMax(scopes, at_ms),
        argMax(retry, at_ms), max(at_ms), argMax(author, at_ms), argMax(comment, at_ms)
 FROM release_rollouts
 GROUP BY channel
 ORDER BY channel";

const ROLLOUT_HISTORY: &str = "SELECT channel, version, percent, scopes, retry, at_ms, author, comment
 FROM release_rollouts
 ORDER BY at_ms";

/// The latest state of every device with every release.
const STATUSES: &str = "SELECT device_id, version, argMax(state, at), argMax(bytes, at), argMax(detail, at),
        argMax(running, at), max(at)
 FROM update_status
 GROUP BY device_id, version
 ORDER BY device_id, version";

/// The latest state of one device with every release.
const DEVICE_STATUSES: &str =
    "SELECT device_id, version, argMax(state, at), argMax(bytes, at), argMax(detail, at),
        argMax(running, at), max(at)
 FROM update_status
 WHERE device_id = toUUID(?)
 GROUP BY device_id, version
 ORDER BY device_id, version";

/// Every query of this module, for the test suite.
pub fn catalogue() -> Vec<(&'static str, String)> {
    vec![
        ("releases", RELEASES.to_owned()),
        ("release_rollouts", ROLLOUTS.to_owned()),
        ("release_rollout_history", ROLLOUT_HISTORY.to_owned()),
        ("update_statuses", STATUSES.to_owned()),
        ("device_update_statuses", DEVICE_STATUSES.to_owned()),
    ]
}

impl Store {
    /// Every release added, by product, target and version.
    pub async fn releases(&self) -> Result<Vec<ReleaseRow>, StoreError> {
        let a = self.auth();
        a.client().query(RELEASES).fetch_all().await.map_err(|e| a.err(e))
    }

    /// The rollout in force of every channel.
    pub async fn rollouts(&self) -> Result<Vec<RolloutRow>, StoreError> {
        let a = self.auth();
        a.client().query(ROLLOUTS).fetch_all().await.map_err(|e| a.err(e))
    }

    /// Every rollout ever made, oldest first.
    pub async fn rollout_history(&self) -> Result<Vec<RolloutRow>, StoreError> {
        let a = self.auth();
        a.client().query(ROLLOUT_HISTORY).fetch_all().await.map_err(|e| a.err(e))
    }

    /// The latest state of every device with every release.
    pub async fn update_statuses(&self) -> Result<Vec<UpdateStatusRow>, StoreError> {
        self.client().query(STATUSES).fetch_all().await.map_err(|e| self.err(e))
    }

    /// The latest state of `device` with every release.
    pub async fn device_update_statuses(
        &self,
        device: uuid::Uuid,
    ) -> Result<Vec<UpdateStatusRow>, StoreError> {
        self.client()
            .query(DEVICE_STATUSES)
            .bind(device.to_string())
            .fetch_all()
            .await
            .map_err(|e| self.err(e))
    }

    /// Records a release.
    pub async fn put_release(&self, row: &ReleaseRow) -> Result<(), StoreError> {
        self.auth().insert_rows("releases", std::slice::from_ref(row)).await
    }

    /// Records a rollout.
    pub async fn put_rollout(&self, row: &RolloutRow) -> Result<(), StoreError> {
        self.auth().insert_rows("release_rollouts", std::slice::from_ref(row)).await
    }
}
