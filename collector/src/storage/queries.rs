//! Reads: the device list, a device's stored sequence numbers, enrollment tokens.
//!
//! Every query here runs on ClickHouse 18.16 and on modern servers: one JOIN per SELECT
//! (nested where more are needed), explicit `ANY LEFT JOIN`, joined subqueries with aliases
//! (modern servers require them), no window functions, and column aliases
//! that never reuse a column name (18.16 resolves `argMax(x, v) … max(v) AS v` to a nested
//! aggregate). Rows are read positionally (RowBinary), so alias names need not match fields.

use clickhouse::Row;
use parta_protocol::DeviceId;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::rows::SpoolLossRow;
use super::{Store, StoreError};
use parta_protocol::seqset::SeqSet;

/// A device as the API lists it.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub struct DeviceListRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub device_id: Uuid,
    pub school_id: String,
    pub kind: String,
    pub agent_version: String,
    pub last_seen: u32,
    pub last_seq: u64,
    pub uptime_s: u64,
    pub hostname: String,
    pub os_name: String,
    pub os_version: String,
}

/// An enrollment token as stored (hash only).
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub struct TokenRow {
    pub token_id: String,
    pub token_sha256: String,
    pub school_id: String,
    pub comment: String,
    pub created_at: u32,
    pub revoked: u8,
    pub version: u64,
}

/// The device list; `{filter}` is empty or `WHERE school_id = ?` (bound twice).
const DEVICES: &str = "SELECT device_id, latest_school, latest_kind, latest_agent, latest_seen, latest_seq,
        latest_uptime, info_hostname, info_os_name, info_os_version
 FROM (
     SELECT device_id,
            argMax(school_id, last_seq) AS latest_school,
            argMax(kind, last_seq) AS latest_kind,
            argMax(agent_version, last_seq) AS latest_agent,
            max(last_seen) AS latest_seen,
            max(last_seq) AS latest_seq,
            argMax(uptime_s, last_seq) AS latest_uptime
     FROM devices
     {filter}
     GROUP BY device_id
 ) AS latest
 ANY LEFT JOIN (
     SELECT device_id,
            argMax(hostname, seq) AS info_hostname,
            argMax(os_name, seq) AS info_os_name,
            argMax(os_version, seq) AS info_os_version
     FROM host_info
     {filter}
     GROUP BY device_id
 ) AS info USING device_id
 ORDER BY latest_school, info_hostname, device_id";

/// Summary of a device's ledger.
const LEDGER_SUMMARY: &str = "SELECT uniqExact(seq) AS n, min(seq) AS lo, max(seq) AS hi FROM ingest_ledger WHERE device_id = toUUID(?)";

/// A device's stored sequence numbers, ascending.
const LEDGER_SEQS: &str = "SELECT DISTINCT seq FROM ingest_ledger WHERE device_id = toUUID(?) ORDER BY seq";

/// A device's spool-loss notices, one row per notice.
const SPOOL_LOSSES: &str =
    "SELECT device_id, school_id, seq, ts, reason, first_seq, last_seq, reports, oldest, newest
 FROM spool_losses
 WHERE device_id = toUUID(?)
 ORDER BY first_seq, seq
 LIMIT 1 BY seq, first_seq";

/// Latest state of every token.
const TOKENS: &str = "SELECT token_id,
        argMax(token_sha256, version) AS t_sha,
        argMax(school_id, version) AS t_school,
        argMax(comment, version) AS t_comment,
        min(created_at) AS t_created,
        argMax(revoked, version) AS t_revoked,
        max(version) AS t_version
 FROM enroll_tokens
 GROUP BY token_id
 ORDER BY t_school, t_created, token_id";

/// Every read query with its `?` placeholders, by name, so the test suite can run each of them
/// on both old and modern ClickHouse.
pub fn catalogue() -> Vec<(&'static str, String)> {
    vec![
        ("devices", DEVICES.replace("{filter}", "")),
        ("devices_of_school", DEVICES.replace("{filter}", "WHERE school_id = ?")),
        ("ledger_summary", LEDGER_SUMMARY.to_owned()),
        ("ledger_seqs", LEDGER_SEQS.to_owned()),
        ("spool_losses", SPOOL_LOSSES.to_owned()),
        ("tokens", TOKENS.to_owned()),
    ]
}

impl Store {
    /// Devices with their latest state and identity, optionally of one school.
    pub async fn list_devices(&self, school: Option<&str>) -> Result<Vec<DeviceListRow>, StoreError> {
        let sql = DEVICES.replace("{filter}", if school.is_some() { "WHERE school_id = ?" } else { "" });
        let mut q = self.client().query(&sql);
        if let Some(s) = school {
            q = q.bind(s).bind(s);
        }
        q.fetch_all().await.map_err(|e| self.err(e))
    }

    /// The sequence numbers of a device present in the ledger. Cheap when they are contiguous
    /// from 1 (one aggregate); otherwise the numbers are streamed and compressed into ranges.
    pub async fn stored_seqs(&self, device: DeviceId) -> Result<SeqSet, StoreError> {
        #[derive(Row, Deserialize)]
        struct Summary {
            n: u64,
            lo: u64,
            hi: u64,
        }
        let s: Summary = self
            .client()
            .query(LEDGER_SUMMARY)
            .bind(device.to_string())
            .fetch_one()
            .await
            .map_err(|e| self.err(e))?;
        if s.n == 0 {
            return Ok(SeqSet::new());
        }
        if s.lo == 1 && s.hi == s.n {
            return Ok(SeqSet::span(1, s.hi));
        }
        let mut cursor = self
            .client()
            .query(LEDGER_SEQS)
            .bind(device.to_string())
            .fetch::<u64>()
            .map_err(|e| self.err(e))?;
        let mut set = SeqSet::new();
        while let Some(seq) = cursor.next().await.map_err(|e| self.err(e))? {
            set.insert(seq);
        }
        Ok(set)
    }

    /// A device's spool-loss notices.
    pub async fn spool_losses(&self, device: DeviceId) -> Result<Vec<SpoolLossRow>, StoreError> {
        self.client().query(SPOOL_LOSSES).bind(device.to_string()).fetch_all().await.map_err(|e| self.err(e))
    }

    /// Every enrollment token, latest state each.
    pub async fn tokens(&self) -> Result<Vec<TokenRow>, StoreError> {
        self.client().query(TOKENS).fetch_all().await.map_err(|e| self.err(e))
    }

    /// Stores a token row (creation or revocation).
    pub async fn put_token(&self, row: &TokenRow) -> Result<(), StoreError> {
        self.insert_rows("enroll_tokens", std::slice::from_ref(row)).await
    }
}
