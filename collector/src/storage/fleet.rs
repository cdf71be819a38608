//! Storage of the fleet: enrolled devices, the certificates issued to them, and which school
//! each belongs to over time. A change is a new row: the latest `version` of a device is its
//! state; certificates and school moves are only ever added.

use clickhouse::Row;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Store, StoreError};

/// A `fleet_devices` row: a device's enrollment and state.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct FleetDeviceRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub device_id: Uuid,
    /// `computer` or `panel`.
    pub kind: String,
    /// SubjectPublicKeyInfo of the device's key, hex (certificates are renewed for it).
    pub public_key: String,
    /// SHA-256 of the public key, hex: a second enrollment with the same key is the same device.
    pub key_sha256: String,
    /// The enrollment token that enrolled it (its id), empty when none.
    pub token_id: String,
    pub enrolled_at: u32,
    /// `active` or `revoked`.
    pub state: String,
    /// When and by whom the state last changed (enrollment: the token id).
    pub state_at: u32,
    pub state_by: String,
    pub version: u64,
}

/// A `fleet_certs` row: one certificate issued to a device.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct FleetCertRow {
    /// SHA-256 of the certificate's DER, hex: how a connection's certificate finds its device.
    pub fingerprint: String,
    #[serde(with = "clickhouse::serde::uuid")]
    pub device_id: Uuid,
    /// Serial number, hex.
    pub serial: String,
    pub not_after: u32,
    pub issued_at: u32,
    /// `enrolled` or `renewed`.
    pub reason: String,
}

/// A `fleet_schools` row: from `since_ms` on the device belongs to `school_id`.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct FleetSchoolRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub device_id: Uuid,
    pub school_id: String,
    pub since_ms: i64,
    /// Who: the token id at enrollment, the administrator's name for a move.
    pub by: String,
    /// `enrolled` or `moved`.
    pub reason: String,
}

/// Migration 11: the fleet's tables, and token limits.
pub const MIGRATION_11: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS {db}.fleet_devices (
    device_id UUID,
    kind LowCardinality(String),
    public_key String,
    key_sha256 String,
    token_id String,
    enrolled_at DateTime,
    state LowCardinality(String),
    state_at DateTime,
    state_by String,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY device_id",
    "CREATE TABLE IF NOT EXISTS {db}.fleet_certs (
    fingerprint String,
    device_id UUID,
    serial String,
    not_after DateTime,
    issued_at DateTime,
    reason LowCardinality(String)
) ENGINE = ReplacingMergeTree
ORDER BY fingerprint",
    "CREATE TABLE IF NOT EXISTS {db}.fleet_schools (
    device_id UUID,
    school_id String,
    since_ms Int64,
    by String,
    reason LowCardinality(String)
) ENGINE = ReplacingMergeTree
ORDER BY (device_id, since_ms)",
    "ALTER TABLE {db}.enroll_tokens ADD COLUMN IF NOT EXISTS max_uses UInt32 AFTER revoked",
    "ALTER TABLE {db}.enroll_tokens ADD COLUMN IF NOT EXISTS expires_at DateTime AFTER max_uses",
];

const DEVICES: &str =
    "SELECT device_id, argMax(kind, version) AS f_kind, argMax(public_key, version) AS f_key,
        argMax(key_sha256, version) AS f_key_sha, argMax(token_id, version) AS f_token,
        min(enrolled_at) AS f_enrolled, argMax(state, version) AS f_state,
        argMax(state_at, version) AS f_state_at, argMax(state_by, version) AS f_state_by,
        max(version) AS f_version
 FROM fleet_devices
 GROUP BY device_id";

const CERTS: &str =
    "SELECT fingerprint, any(device_id), any(serial), any(not_after), any(issued_at), any(reason)
 FROM fleet_certs
 GROUP BY fingerprint";

const SCHOOLS: &str = "SELECT device_id, any(school_id), since_ms, any(by), any(reason)
 FROM fleet_schools
 GROUP BY device_id, since_ms
 ORDER BY device_id, since_ms";

/// The school a device's reports were stored under before it enrolled (agents that predate
/// enrollment), from the ledger: the latest row's.
const LEGACY_SCHOOL: &str = "SELECT argMax(school_id, seq) FROM ingest_ledger WHERE device_id = toUUID(?)";

/// Every query of this module, for the test suite.
pub fn catalogue() -> Vec<(&'static str, String)> {
    vec![
        ("fleet_devices", DEVICES.to_owned()),
        ("fleet_certs", CERTS.to_owned()),
        ("fleet_schools", SCHOOLS.to_owned()),
        ("legacy_school", LEGACY_SCHOOL.to_owned()),
    ]
}

/// Rows of one round of enrollments and renewals, inserted together.
#[derive(Debug, Default)]
pub struct FleetBatch {
    pub certs: Vec<FleetCertRow>,
    pub schools: Vec<FleetSchoolRow>,
    pub devices: Vec<FleetDeviceRow>,
}

impl Store {
    /// Every device's latest enrollment state.
    pub async fn fleet_devices(&self) -> Result<Vec<FleetDeviceRow>, StoreError> {
        self.client().query(DEVICES).fetch_all().await.map_err(|e| self.err(e))
    }

    /// Every certificate issued.
    pub async fn fleet_certs(&self) -> Result<Vec<FleetCertRow>, StoreError> {
        self.client().query(CERTS).fetch_all().await.map_err(|e| self.err(e))
    }

    /// Every school assignment, by device and time.
    pub async fn fleet_schools(&self) -> Result<Vec<FleetSchoolRow>, StoreError> {
        self.client().query(SCHOOLS).fetch_all().await.map_err(|e| self.err(e))
    }

    /// The school the ledger has reports of a device under, if any.
    pub async fn legacy_school(&self, device: Uuid) -> Result<Option<String>, StoreError> {
        let s: String = self
            .client()
            .query(LEGACY_SCHOOL)
            .bind(device.to_string())
            .fetch_one()
            .await
            .map_err(|e| self.err(e))?;
        Ok(Some(s).filter(|s| !s.is_empty()))
    }

    /// Stores a round: certificates and schools first, the device rows last, so that a device
    /// is enrolled (its row exists) only with its certificate and school stored.
    pub async fn put_fleet(&self, b: &FleetBatch) -> Result<(), StoreError> {
        self.insert_rows("fleet_certs", &b.certs).await?;
        self.insert_rows("fleet_schools", &b.schools).await?;
        self.insert_rows("fleet_devices", &b.devices).await
    }
}
