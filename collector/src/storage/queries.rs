//! Reads: the device list, a device's stored sequence numbers, enrollment tokens, device
//! attributes and inventories, usage per day and school utilization.
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

use super::rows::{DeviceAttrRow, SpoolLossRow};
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

/// Latest attributes of one device (host or display).
const DEVICE_ATTRS: &str = "SELECT device_id,
        argMax(host_id, version) AS a_host,
        argMax(school_id, version) AS a_school,
        argMax(kind, version) AS a_kind,
        argMax(equipment_class, version) AS a_class,
        argMax(room, version) AS a_room,
        argMax(label, version) AS a_label,
        argMax(serial, version) AS a_serial,
        max(version) AS a_version
 FROM device_attrs
 WHERE device_id = toUUID(?)
 GROUP BY device_id";

/// A host's latest inventory (JSON).
const INVENTORY_LATEST: &str =
    "SELECT json FROM inventory WHERE device_id = toUUID(?) ORDER BY seq DESC LIMIT 1";

/// A display's latest inventory entry (JSON).
const DISPLAY_LATEST: &str =
    "SELECT json FROM displays WHERE display_id = toUUID(?) ORDER BY ts DESC, seq DESC LIMIT 1";

/// A device's usage per local day, state and user class, in ms (from the daily rollup).
const DEVICE_USAGE: &str = "SELECT local_day, state, user_class, argMax(total_ms, version) AS day_ms
 FROM usage_daily
 WHERE device_id = toUUID(?) AND local_day >= toDate(?) AND local_day <= toDate(?)
 GROUP BY local_day, state, user_class
 ORDER BY local_day, state, user_class";

/// Recomputes the daily rollup of the devices in `{devices}` (a list, or a subquery) of the
/// schools in `{schools}` (which lets the primary key narrow the scan) for the days between the
/// two dates, from the intervals deduplicated by (device, start).
pub const USAGE_ROLLUP: &str =
    "INSERT INTO usage_daily (device_id, school_id, local_day, state, user_class, total_ms, version)
 SELECT device_id, any(d_school), d_day, d_state, d_class, sum(d_ms), toUInt64(now())
 FROM (
     SELECT device_id, start_ms,
            any(school_id) AS d_school,
            any(local_day) AS d_day,
            any(state) AS d_state,
            any(user_class) AS d_class,
            any(end_ms - start_ms) AS d_ms
     FROM usage_intervals
     WHERE school_id IN ({schools}) AND device_id IN ({devices})
       AND local_day >= toDate(?) AND local_day <= toDate(?)
     GROUP BY device_id, start_ms
 )
 GROUP BY device_id, d_day, d_state, d_class";

/// Per equipment class (or per room and class) of a school: devices, devices in use at all,
/// powered-on and in-use ms. `{room}` is `''` (by class) or `attr_room` (by room and class); see
/// [`school_utilization_sql`].
const SCHOOL_UTILIZATION: &str = "SELECT {room} AS group_room, attr_class,
        count() AS n_devices,
        countIf(used_ms > 0) AS n_used,
        sum(powered_ms) AS total_powered,
        sum(used_ms) AS total_used
 FROM (
     SELECT device_id, argMax(room, version) AS attr_room, argMax(equipment_class, version) AS attr_class
     FROM device_attrs
     WHERE school_id = ?
     GROUP BY device_id
 ) AS attrs
 ANY LEFT JOIN (
     SELECT device_id,
            sumIf(k_ms, state != 'off') AS powered_ms,
            sumIf(k_ms, state = 'in_use') AS used_ms
     FROM (
         SELECT device_id, local_day, state, user_class, argMax(total_ms, version) AS k_ms
         FROM usage_daily
         WHERE school_id = ? AND local_day >= toDate(?) AND local_day <= toDate(?)
         GROUP BY device_id, local_day, state, user_class
     )
     GROUP BY device_id
 ) AS used USING device_id
 GROUP BY group_room, attr_class
 ORDER BY group_room, attr_class";

/// The utilization query by class, or by room and class.
fn school_utilization_sql(by_room: bool) -> String {
    SCHOOL_UTILIZATION.replace("{room}", if by_room { "attr_room" } else { "''" })
}

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
        ("device_attrs", DEVICE_ATTRS.to_owned()),
        ("inventory_latest", INVENTORY_LATEST.to_owned()),
        ("display_latest", DISPLAY_LATEST.to_owned()),
        (
            "usage_rollup",
            USAGE_ROLLUP
                .replace("{devices}", "SELECT DISTINCT device_id FROM usage_intervals ")
                .replace("{schools}", "?"),
        ),
        ("device_usage", DEVICE_USAGE.to_owned()),
        ("school_utilization", school_utilization_sql(false)),
        ("school_utilization_by_room", school_utilization_sql(true)),
    ]
}

/// `YYYY-MM-DD` of a day number.
pub fn day_string(day: u16) -> String {
    time::Date::from_julian_day(2_440_588 + i32::from(day))
        .ok()
        .and_then(|d| d.format(time::macros::format_description!("[year]-[month]-[day]")).ok())
        .unwrap_or_default()
}

/// One (day, state, user class) total of a device.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub struct UsageTotalRow {
    /// Days since 1970-01-01.
    pub local_day: u16,
    pub state: String,
    pub user_class: String,
    pub total_ms: i64,
}

/// One equipment class (or room and class) of a school.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub struct UtilizationRow {
    /// Empty when grouped by class only.
    pub room: String,
    pub equipment_class: String,
    pub devices: u64,
    pub devices_used: u64,
    pub powered_ms: i64,
    pub in_use_ms: i64,
}

impl Store {
    /// Latest attributes of a device, if it was ever inventoried.
    pub async fn device_attrs(&self, device: DeviceId) -> Result<Option<DeviceAttrRow>, StoreError> {
        self.client()
            .query(DEVICE_ATTRS)
            .bind(device.to_string())
            .fetch_optional()
            .await
            .map_err(|e| self.err(e))
    }

    /// The latest inventory JSON of a host, or of a display.
    pub async fn inventory_json(
        &self,
        device: DeviceId,
        display: bool,
    ) -> Result<Option<String>, StoreError> {
        let sql = if display { DISPLAY_LATEST } else { INVENTORY_LATEST };
        self.client().query(sql).bind(device.to_string()).fetch_optional().await.map_err(|e| self.err(e))
    }

    /// A device's usage totals per day between two dates (`YYYY-MM-DD`, inclusive).
    pub async fn device_usage(
        &self,
        device: DeviceId,
        from: &str,
        to: &str,
    ) -> Result<Vec<UsageTotalRow>, StoreError> {
        self.client()
            .query(DEVICE_USAGE)
            .bind(device.to_string())
            .bind(from)
            .bind(to)
            .fetch_all()
            .await
            .map_err(|e| self.err(e))
    }

    /// Recomputes the daily rollup for `devices` of `schools` between two days (days since
    /// 1970-01-01).
    pub async fn rollup_usage(
        &self,
        schools: &[String],
        devices: &[Uuid],
        from_day: u16,
        to_day: u16,
    ) -> Result<(), StoreError> {
        if devices.is_empty() {
            return Ok(());
        }
        let list: Vec<String> = devices.iter().map(|d| format!("toUUID('{d}')")).collect();
        let marks = vec!["?"; schools.len()].join(", ");
        let sql = USAGE_ROLLUP.replace("{devices}", &list.join(", ")).replace("{schools}", &marks);
        let mut q = self.client().query(&sql);
        for s in schools {
            q = q.bind(s.as_str());
        }
        q.bind(day_string(from_day)).bind(day_string(to_day)).execute().await.map_err(|e| self.err(e))
    }

    /// Benchmark baseline: the plain sum of a school's interval lengths between two dates (one
    /// scan, no deduplication, no join).
    pub async fn plain_usage_sum(&self, school: &str, from: &str, to: &str) -> Result<i64, StoreError> {
        self.client()
            .query(
                "SELECT sum(end_ms - start_ms) FROM usage_intervals WHERE school_id = ? AND local_day >= toDate(?) AND local_day <= toDate(?)",
            )
            .bind(school)
            .bind(from)
            .bind(to)
            .fetch_one()
            .await
            .map_err(|e| self.err(e))
    }

    /// A school's utilization per equipment class, or per room and class, between two dates
    /// (inclusive).
    pub async fn school_utilization(
        &self,
        school: &str,
        from: &str,
        to: &str,
        by_room: bool,
    ) -> Result<Vec<UtilizationRow>, StoreError> {
        self.client()
            .query(&school_utilization_sql(by_room))
            .bind(school)
            .bind(school)
            .bind(from)
            .bind(to)
            .fetch_all()
            .await
            .map_err(|e| self.err(e))
    }

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
