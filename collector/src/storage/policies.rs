//! Storage of policies: every change of a scope's policy is a row of its own (its history), in
//! the auth database — a policy's SNMP secrets are encrypted, and the rest is still not for
//! Grafana's read-only user. The row with the highest version of a scope is in force; a
//! removed policy is a row with `removed = 1`.

use clickhouse::Row;
use serde::{Deserialize, Serialize};

use super::{Store, StoreError};

/// A `policies` row.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct PolicyRow {
    /// `all`, `region:74`, `municipality:74/NAME`, `school:ID`, `device:UUID`.
    pub scope: String,
    /// 1, 2, … per scope.
    pub version: u32,
    /// The TOML document, secrets sealed (`enc:v1:…`).
    pub document: String,
    /// Who changed it.
    pub author: String,
    /// When, ms since the epoch (a device's effective version is the latest of its scopes').
    pub at_ms: u64,
    /// Why, for the history.
    pub comment: String,
    /// 1: the scope has no policy from this version on.
    pub removed: u8,
}

/// Migration 13: policies with their history.
pub const MIGRATION_13: &[&str] = &["CREATE TABLE IF NOT EXISTS {auth}.policies (
    scope String,
    version UInt32,
    document String,
    author String,
    at_ms UInt64,
    comment String,
    removed UInt8
) ENGINE = ReplacingMergeTree
ORDER BY (scope, version)"];

/// A `policy_status` row: what a device runs and what it last said about an offer. The latest
/// row of a device (by `version`) is its state.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct PolicyStatusRow {
    /// The device.
    #[serde(with = "clickhouse::serde::uuid")]
    pub device_id: uuid::Uuid,
    /// Version of the policy it runs (0: none).
    pub running_version: u64,
    /// SHA-256 of that document, hex (empty: none).
    pub running_hash: String,
    /// The version its latest answer was about.
    pub answered_version: u64,
    /// `running` (said at connect), `applied` or `refused`.
    pub outcome: String,
    /// Refused: the key at fault.
    pub key: String,
    /// Refused: why.
    pub reason: String,
    /// When the collector heard it: nanoseconds since the epoch, strictly increasing per
    /// process ([`crate::clock::rollup_version`]), so that the latest answer wins.
    pub version: u64,
}

/// Migration 14: what each device runs and its answers to offers.
pub const MIGRATION_14: &[&str] = &["CREATE TABLE IF NOT EXISTS {db}.policy_status (
    device_id UUID,
    running_version UInt64,
    running_hash String,
    answered_version UInt64,
    outcome LowCardinality(String),
    key String,
    reason String,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY device_id"];

/// The latest status of every device.
const STATUSES: &str = "SELECT device_id, argMax(running_version, version), argMax(running_hash, version),
        argMax(answered_version, version), argMax(outcome, version), argMax(key, version),
        argMax(reason, version), max(version)
 FROM policy_status
 GROUP BY device_id";

/// The serials of every host and of the displays attached to it (latest attributes).
const HOST_SERIALS: &str = "SELECT toString(host) AS id, groupUniqArray(serial) AS serials
 FROM (
    SELECT device_id, argMax(host_id, version) AS host, argMax(serial, version) AS serial
    FROM device_attrs
    GROUP BY device_id
 )
 GROUP BY host";

/// The MACs of every host's latest inventory.
const HOST_MACS: &str = "SELECT toString(device_id) AS id, argMax(nic_macs, seq) AS macs
 FROM inventory
 GROUP BY device_id";

/// Serials of a host (its own and its displays').
#[derive(Debug, Clone, Row, Deserialize)]
pub struct HostSerials {
    /// Host id.
    pub id: String,
    /// Serials as reported.
    pub serials: Vec<String>,
}

/// MACs of a host.
#[derive(Debug, Clone, Row, Deserialize)]
pub struct HostMacs {
    /// Host id.
    pub id: String,
    /// MACs as reported.
    pub macs: Vec<String>,
}

/// Every version of one scope's policy, oldest first.
const HISTORY: &str =
    "SELECT scope, version, any(document), any(author), any(at_ms), any(comment), any(removed)
 FROM policies
 WHERE scope = ?
 GROUP BY scope, version
 ORDER BY version";

/// The version in force of every scope that has one (removed ones included, to be skipped).
const LATEST: &str = "SELECT scope, max(version) AS v, argMax(document, version), argMax(author, version),
        argMax(at_ms, version), argMax(comment, version), argMax(removed, version)
 FROM policies
 GROUP BY scope
 ORDER BY scope";

/// Every query of this module, for the test suite.
pub fn catalogue() -> Vec<(&'static str, String)> {
    vec![
        ("policy_history", HISTORY.to_owned()),
        ("policy_latest", LATEST.to_owned()),
        ("policy_statuses", STATUSES.to_owned()),
        ("policy_host_serials", HOST_SERIALS.to_owned()),
        ("policy_host_macs", HOST_MACS.to_owned()),
    ]
}

impl Store {
    /// Every version of a scope's policy, oldest first.
    pub async fn policy_history(&self, scope: &str) -> Result<Vec<PolicyRow>, StoreError> {
        let a = self.auth();
        a.client().query(HISTORY).bind(scope).fetch_all().await.map_err(|e| a.err(e))
    }

    /// The latest row of every scope.
    pub async fn latest_policies(&self) -> Result<Vec<PolicyRow>, StoreError> {
        let a = self.auth();
        a.client().query(LATEST).fetch_all().await.map_err(|e| a.err(e))
    }

    /// The latest policy status of every device that reported one.
    pub async fn policy_statuses(&self) -> Result<Vec<PolicyStatusRow>, StoreError> {
        self.client().query(STATUSES).fetch_all().await.map_err(|e| self.err(e))
    }

    /// Serials and MACs of every host, to find its item in the equipment register.
    pub async fn host_identifiers(&self) -> Result<(Vec<HostSerials>, Vec<HostMacs>), StoreError> {
        let serials = self.client().query(HOST_SERIALS).fetch_all().await.map_err(|e| self.err(e))?;
        let macs = self.client().query(HOST_MACS).fetch_all().await.map_err(|e| self.err(e))?;
        Ok((serials, macs))
    }

    /// Writes a new version.
    pub async fn put_policy(&self, row: &PolicyRow) -> Result<(), StoreError> {
        self.auth().insert_rows("policies", std::slice::from_ref(row)).await
    }
}
