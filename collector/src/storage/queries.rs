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

use super::rows::{DeviceAttrRow, SnmpPollRow, SpoolLossRow};
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
    /// Devices it may enroll; 0: any number.
    pub max_uses: u32,
    /// Seconds since the epoch when it stops enrolling; 0: never.
    pub expires_at: u32,
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
        argMax(max_uses, version) AS t_max_uses,
        argMax(expires_at, version) AS t_expires,
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
/// schools in `{schools}` (which lets the primary key narrow the scan) for the days `{days}`
/// selects, from the intervals deduplicated by (device, start). The version is the first
/// placeholder.
pub const USAGE_ROLLUP: &str =
    "INSERT INTO usage_daily (device_id, school_id, local_day, state, user_class, total_ms, version)
 SELECT device_id, any(d_school), d_day, d_state, d_class, sum(d_ms), toUInt64(?)
 FROM (
     SELECT device_id, start_ms,
            any(school_id) AS d_school,
            any(local_day) AS d_day,
            any(state) AS d_state,
            any(user_class) AS d_class,
            any(end_ms - start_ms) AS d_ms
     FROM usage_intervals
     WHERE school_id IN ({schools}) AND device_id IN ({devices}) AND {days}
     GROUP BY device_id, start_ms
 )
 GROUP BY device_id, d_day, d_state, d_class";

/// The days of a usage recomputation over a range (benchmarks, `rollups rebuild`).
const USAGE_RANGE: &str = "local_day >= toDate(?) AND local_day <= toDate(?)";

/// [`USAGE_ROLLUP`] for `devices`, `schools` and a filter of days.
fn usage_rollup_sql(devices: &str, schools: &str, days: &str) -> String {
    USAGE_ROLLUP.replace("{devices}", devices).replace("{schools}", schools).replace("{days}", days)
}

/// The days of a usage recomputation of exactly these (device, day) pairs: the days for the
/// partition key, the pairs for exactness. Ids and days are inlined (UUIDs and numbers).
fn usage_pairs_filter(pairs: &[(Uuid, u16)]) -> String {
    let days: std::collections::BTreeSet<u16> = pairs.iter().map(|p| p.1).collect();
    let day = |d: u16| format!("toDate('{}')", day_string(d));
    format!(
        "local_day IN ({}) AND (device_id, local_day) IN ({})",
        days.iter().map(|d| day(*d)).collect::<Vec<_>>().join(", "),
        pairs.iter().map(|(id, d)| format!("(toUUID('{id}'), {})", day(*d))).collect::<Vec<_>>().join(", ")
    )
}

/// `toUUID('…'), …` of ids.
fn uuid_list<'a>(ids: impl Iterator<Item = &'a Uuid>) -> String {
    ids.map(|d| format!("toUUID('{d}')")).collect::<Vec<_>>().join(", ")
}

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

/// SNMP devices (network gear, printers) with their latest poll; `{filter}` is empty or
/// `WHERE school_id = ?`. Identity fields come from the latest poll that reached the device.
const SNMP_DEVICES: &str = "SELECT device_id,
        argMax(school_id, polled_at_ms) AS s_school,
        if(countIf(outcome IN ('ok', 'partial')) > 0,
           argMaxIf(kind, polled_at_ms, outcome IN ('ok', 'partial')),
           argMax(kind, polled_at_ms)) AS s_kind,
        argMax(target, polled_at_ms) AS s_target,
        argMax(if(label != '', label, sys_name), polled_at_ms) AS s_label,
        argMax(room, polled_at_ms) AS s_room,
        argMaxIf(sys_descr, polled_at_ms, outcome IN ('ok', 'partial')) AS s_descr,
        argMax(outcome, polled_at_ms) AS s_outcome,
        argMax(agent_id, polled_at_ms) AS s_agent,
        max(polled_at_ms) AS s_last_poll,
        maxIf(ts, outcome IN ('ok', 'partial')) AS s_seen,
        argMaxIf(uptime_cs, polled_at_ms, outcome IN ('ok', 'partial')) AS s_uptime
 FROM snmp_polls
 {filter}
 GROUP BY device_id
 ORDER BY s_school, s_label, device_id";

/// Per interface and time bucket (`intDiv(ms, {bucket})`, an integer the caller formats in): names, speed, and the mean and peak of the
/// rates measured in the bucket; resends collapse in the inner GROUP BY.
const SNMP_IF_SERIES: &str = "SELECT if_index, intDiv(t, {bucket}) AS bucket,
        any(i_name) AS b_name, any(i_alias) AS b_alias, any(i_descr) AS b_descr,
        max(i_speed) AS b_speed,
        countIf(i_rate = 1) AS b_rated,
        sumIf(i_in, i_rate = 1) AS b_in_sum, maxIf(i_in, i_rate = 1) AS b_in_max,
        sumIf(i_out, i_rate = 1) AS b_out_sum, maxIf(i_out, i_rate = 1) AS b_out_max,
        count() AS b_polls
 FROM (
     SELECT if_index, polled_at_ms AS t,
            any(name) AS i_name, any(alias) AS i_alias, any(descr) AS i_descr,
            any(speed_mbps) AS i_speed, any(has_rate) AS i_rate,
            any(in_bps) AS i_in, any(out_bps) AS i_out
     FROM snmp_interfaces
     WHERE device_id = toUUID(?) AND local_day >= toDate(?) AND local_day <= toDate(?)
     GROUP BY if_index, t
 )
 GROUP BY if_index, bucket
 ORDER BY if_index, bucket";

/// Per interface: the first and last ifOperStatus in the range and every change (time, new
/// status), from the polls sorted by time.
const SNMP_IF_STATUS: &str = "SELECT if_index,
        arrayElement(st_times, 1) AS first_t,
        arrayElement(st_states, 1) AS first_state,
        arrayElement(st_states, length(st_states)) AS last_state,
        arrayFilter((x, d) -> d != 0, st_times, st_diffs) AS change_times,
        arrayFilter((x, d) -> d != 0, st_states, st_diffs) AS change_states
 FROM (
     SELECT if_index,
            arrayMap(x -> tupleElement(x, 1), st_sorted) AS st_times,
            arrayMap(x -> tupleElement(x, 2), st_sorted) AS st_states,
            arrayDifference(arrayMap(x -> toInt16(tupleElement(x, 2)), st_sorted)) AS st_diffs
     FROM (
         SELECT if_index, arraySort(groupArray((t, st))) AS st_sorted
         FROM (
             SELECT if_index, polled_at_ms AS t, any(oper_status) AS st
             FROM snmp_interfaces
             WHERE device_id = toUUID(?) AND local_day >= toDate(?) AND local_day <= toDate(?)
             GROUP BY if_index, t
         )
         GROUP BY if_index
     )
 )
 ORDER BY if_index";

/// A printer's page counters per marker and local day: the first and last reading of the day.
const PRINTER_DAYS: &str =
    "SELECT marker, p_day, argMin(c, t) AS d_first, argMax(c, t) AS d_last, count() AS d_polls
 FROM (
     SELECT marker, polled_at_ms AS t, any(local_day) AS p_day, any(life_count) AS c
     FROM printer_counters
     WHERE device_id = toUUID(?) AND local_day >= toDate(?) AND local_day <= toDate(?)
     GROUP BY marker, t
 )
 GROUP BY marker, p_day
 ORDER BY marker, p_day";

/// A printer's last counter per marker before a day (within 400 days), the baseline of the
/// first day's pages.
const PRINTER_BASELINE: &str = "SELECT marker, argMax(life_count, polled_at_ms) AS b_last
 FROM printer_counters
 WHERE device_id = toUUID(?) AND local_day < toDate(?) AND local_day >= toDate(?) - 400
 GROUP BY marker
 ORDER BY marker";

/// The latest poll of an SNMP device that reached it.
const SNMP_LATEST: &str =
    "SELECT device_id, agent_id, school_id, seq, polled_at_ms, ts, local_day, target, label, room,
        kind, profile, vendor, outcome, error, duration_ms, sys_descr, sys_object_id, sys_name,
        sys_location, uptime_cs, rebooted, serial
 FROM snmp_polls
 WHERE device_id = toUUID(?) AND outcome IN ('ok', 'partial')
 ORDER BY polled_at_ms DESC
 LIMIT 1";

/// A school's connectivity checks between two local days, one row per check (a resent report
/// collapses on the key), as the inner part of the connectivity queries. `{kinds}` filters.
const CHECKS_OF_SCHOOL: &str =
    "SELECT any(kind) AS c_kind, any(target) AS c_target, any(outcome) AS c_outcome,
        any(started_at_ms) AS c_at, any(required_mbps) AS c_req, any(locality) AS c_locality,
        any(ip_bits_per_s) AS c_bps, any(rtt_median_us) AS c_rtt, any(jitter_us) AS c_jitter,
        any(probes_sent) AS c_sent, any(probes_received) AS c_received
     FROM connectivity_checks
     WHERE school_id = ? AND local_day >= toDate(?) AND local_day <= toDate(?) {kinds}
     GROUP BY device_id, run_started_at_ms, check_no";

/// Per (kind, target, outcome): how many checks, and the last one.
const CONNECTIVITY_OUTCOMES: &str = "SELECT c_kind, c_target, c_outcome, count() AS n, max(c_at) AS last_at
 FROM ({checks})
 GROUP BY c_kind, c_target, c_outcome
 ORDER BY c_kind, c_target, c_outcome";

/// Throughput per direction over the tests that measured (a refused or broken test has no
/// rate, not a rate of 0): tests, median and 10th percentile, tests at the required speed —
/// all at the IP layer, as contracts count speed.
const CONNECTIVITY_THROUGHPUT: &str = "SELECT c_kind, count() AS tests,
        quantileExact(0.5)(c_bps) AS median_bps, quantileExact(0.1)(c_bps) AS p10_bps,
        countIf(c_bps >= toUInt64(c_req) * {pass_bps_per_mbps}) AS met, max(c_req) AS required_mbps
 FROM ({checks})
 WHERE c_outcome IN ('ok', 'slow')
 GROUP BY c_kind
 ORDER BY c_kind";

/// Latency per target: runs, median of the runs' median round trips, mean jitter, probes.
const CONNECTIVITY_LATENCY: &str = "SELECT c_target, count() AS runs, quantileExact(0.5)(c_rtt) AS rtt_us,
        toUInt32(avg(c_jitter)) AS jitter_us, sum(c_sent) AS sent, sum(c_received) AS received
 FROM ({checks})
 GROUP BY c_target
 ORDER BY c_target";

/// The locality and required speed of the school's latest run.
const CONNECTIVITY_LATEST: &str =
    "SELECT argMax(c_locality, c_at) AS locality, argMax(c_req, c_at) AS required_mbps
 FROM ({checks})";

const THROUGHPUT_KINDS: &str = "AND kind IN ('download', 'upload')";
const LATENCY_KIND: &str = "AND kind = 'latency'";

fn connectivity_sql(template: &str, kinds: &str) -> String {
    template
        .replace("{checks}", &CHECKS_OF_SCHOOL.replace("{kinds}", kinds))
        .replace("{pass_bps_per_mbps}", &parta_protocol::espd::speed_pass_bps(1).to_string())
}

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
            usage_rollup_sql("SELECT DISTINCT device_id FROM usage_intervals ", "?", USAGE_RANGE),
        ),
        (
            "usage_pairs_rollup",
            usage_rollup_sql(
                "SELECT DISTINCT device_id FROM usage_intervals ",
                "?",
                &usage_pairs_filter(&[(Uuid::from_u128(1), 20_394), (Uuid::from_u128(2), 20_395)]),
            ),
        ),
        ("device_usage", DEVICE_USAGE.to_owned()),
        ("school_utilization", school_utilization_sql(false)),
        ("school_utilization_by_room", school_utilization_sql(true)),
        ("snmp_devices", SNMP_DEVICES.replace("{filter}", "")),
        ("snmp_devices_of_school", SNMP_DEVICES.replace("{filter}", "WHERE school_id = ?")),
        ("snmp_if_series", SNMP_IF_SERIES.replace("{bucket}", "300000")),
        ("snmp_if_status", SNMP_IF_STATUS.to_owned()),
        ("printer_days", PRINTER_DAYS.to_owned()),
        ("printer_baseline", PRINTER_BASELINE.to_owned()),
        ("snmp_latest", SNMP_LATEST.to_owned()),
        ("connectivity_outcomes", connectivity_sql(CONNECTIVITY_OUTCOMES, "")),
        ("connectivity_throughput", connectivity_sql(CONNECTIVITY_THROUGHPUT, THROUGHPUT_KINDS)),
        ("connectivity_latency", connectivity_sql(CONNECTIVITY_LATENCY, LATENCY_KIND)),
        ("connectivity_latest", connectivity_sql(CONNECTIVITY_LATEST, "")),
    ]
}

/// `YYYY-MM-DD` of a day number.
pub fn day_string(day: u16) -> String {
    time::Date::from_julian_day(2_440_588 + i32::from(day))
        .ok()
        .and_then(|d| d.format(time::macros::format_description!("[year]-[month]-[day]")).ok())
        .unwrap_or_default()
}

/// Connectivity outcomes of one (kind, target, outcome).
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub struct CheckOutcomeRow {
    pub c_kind: String,
    pub c_target: String,
    pub c_outcome: String,
    pub n: u64,
    pub last_at: i64,
}

/// Throughput of one direction.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub struct ThroughputRow {
    pub c_kind: String,
    pub tests: u64,
    pub median_bps: u64,
    pub p10_bps: u64,
    pub met: u64,
    pub required_mbps: u32,
}

/// Latency to one target.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub struct LatencyRow {
    pub c_target: String,
    pub runs: u64,
    pub rtt_us: u32,
    pub jitter_us: u32,
    pub sent: u64,
    pub received: u64,
}

/// The latest run's locality and required speed.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub struct LatestRunRow {
    pub locality: String,
    pub required_mbps: u32,
}

/// Everything the connectivity API reads.
#[derive(Debug, Clone)]
pub struct ConnectivityRows {
    pub outcomes: Vec<CheckOutcomeRow>,
    pub throughput: Vec<ThroughputRow>,
    pub latency: Vec<LatencyRow>,
    pub latest: Option<LatestRunRow>,
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

/// An SNMP device as listed.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub struct SnmpDeviceRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub device_id: Uuid,
    pub school_id: String,
    pub kind: String,
    pub target: String,
    pub label: String,
    pub room: String,
    pub sys_descr: String,
    pub outcome: String,
    #[serde(with = "clickhouse::serde::uuid")]
    pub agent_id: Uuid,
    pub last_poll_ms: i64,
    pub last_seen: u32,
    pub uptime_cs: u32,
}

/// One interface in one time bucket.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub struct IfBucketRow {
    pub if_index: u32,
    pub bucket: i64,
    pub name: String,
    pub alias: String,
    pub descr: String,
    pub speed_mbps: u32,
    pub rated: u64,
    pub in_sum: u64,
    pub in_max: u64,
    pub out_sum: u64,
    pub out_max: u64,
    pub polls: u64,
}

/// One interface's status history.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub struct IfStatusRow {
    pub if_index: u32,
    pub first_ms: i64,
    pub first_state: u8,
    pub last_state: u8,
    pub change_times: Vec<i64>,
    pub change_states: Vec<u8>,
}

/// A printer marker's readings of one day.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub struct PrinterDayRow {
    pub marker: u32,
    pub local_day: u16,
    pub first: u64,
    pub last: u64,
    pub polls: u64,
}

impl Store {
    /// Rows of `sql` whose placeholders are a device (`toUUID(?)`) and a first and last day
    /// (`toDate(?)`, `YYYY-MM-DD`, inclusive).
    async fn device_days<T>(
        &self,
        sql: &str,
        device: DeviceId,
        from: &str,
        to: &str,
    ) -> Result<Vec<T>, StoreError>
    where
        T: clickhouse::RowOwned + clickhouse::RowRead,
    {
        self.client()
            .query(sql)
            .bind(device.to_string())
            .bind(from)
            .bind(to)
            .fetch_all()
            .await
            .map_err(|e| self.err(e))
    }

    /// SNMP devices, optionally of one school.
    pub async fn list_snmp_devices(&self, school: Option<&str>) -> Result<Vec<SnmpDeviceRow>, StoreError> {
        let sql = SNMP_DEVICES.replace("{filter}", if school.is_some() { "WHERE school_id = ?" } else { "" });
        let mut q = self.client().query(&sql);
        if let Some(s) = school {
            q = q.bind(s);
        }
        q.fetch_all().await.map_err(|e| self.err(e))
    }

    /// The latest poll that reached an SNMP device.
    pub async fn snmp_latest(&self, device: DeviceId) -> Result<Option<SnmpPollRow>, StoreError> {
        self.client()
            .query(SNMP_LATEST)
            .bind(device.to_string())
            .fetch_optional()
            .await
            .map_err(|e| self.err(e))
    }

    /// Interface rates of a device per bucket of `bucket_ms` between two days.
    pub async fn interface_series(
        &self,
        device: DeviceId,
        from: &str,
        to: &str,
        bucket_ms: i64,
    ) -> Result<Vec<IfBucketRow>, StoreError> {
        let sql = SNMP_IF_SERIES.replace("{bucket}", &bucket_ms.max(1).to_string());
        self.device_days(&sql, device, from, to).await
    }

    /// Interface status histories of a device between two days.
    pub async fn interface_status(
        &self,
        device: DeviceId,
        from: &str,
        to: &str,
    ) -> Result<Vec<IfStatusRow>, StoreError> {
        self.device_days(SNMP_IF_STATUS, device, from, to).await
    }

    /// A printer's readings per marker and day, and the baseline before `from`.
    pub async fn printer_days(
        &self,
        device: DeviceId,
        from: &str,
        to: &str,
    ) -> Result<(Vec<PrinterDayRow>, Vec<(u32, u64)>), StoreError> {
        let days = self.device_days(PRINTER_DAYS, device, from, to).await?;
        // The baseline query's two days are both `from`: before it, within 400 days of it.
        let baseline = self.device_days(PRINTER_BASELINE, device, from, from).await?;
        Ok((days, baseline))
    }

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
        self.device_days(DEVICE_USAGE, device, from, to).await
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
        let sql =
            usage_rollup_sql(&uuid_list(devices.iter()), &vec!["?"; schools.len()].join(", "), USAGE_RANGE);
        let mut q = self.client().query(&sql).bind(crate::clock::rollup_version());
        for s in schools {
            q = q.bind(s.as_str());
        }
        q.bind(day_string(from_day)).bind(day_string(to_day)).execute().await.map_err(|e| self.err(e))
    }

    /// Recomputes the daily rollup of exactly these (device, day) pairs of `schools`.
    pub async fn rollup_usage_pairs(
        &self,
        schools: &[String],
        pairs: &[(Uuid, u16)],
    ) -> Result<(), StoreError> {
        if pairs.is_empty() {
            return Ok(());
        }
        let devices: std::collections::BTreeSet<Uuid> = pairs.iter().map(|p| p.0).collect();
        let sql = usage_rollup_sql(
            &uuid_list(devices.iter()),
            &vec!["?"; schools.len()].join(", "),
            &usage_pairs_filter(pairs),
        );
        let mut q = self.client().query(&sql).bind(crate::clock::rollup_version());
        for s in schools {
            q = q.bind(s.as_str());
        }
        q.execute().await.map_err(|e| self.err(e))
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

    /// A school's connectivity checks between two local days (inclusive): outcomes per
    /// target, throughput, latency, and the latest run's locality and required speed.
    pub async fn connectivity(
        &self,
        school: &str,
        from: &str,
        to: &str,
    ) -> Result<ConnectivityRows, StoreError> {
        let q = |sql: String| self.client().query(&sql).bind(school).bind(from).bind(to);
        let outcomes =
            q(connectivity_sql(CONNECTIVITY_OUTCOMES, "")).fetch_all().await.map_err(|e| self.err(e))?;
        let throughput = q(connectivity_sql(CONNECTIVITY_THROUGHPUT, THROUGHPUT_KINDS))
            .fetch_all()
            .await
            .map_err(|e| self.err(e))?;
        let latency = q(connectivity_sql(CONNECTIVITY_LATENCY, LATENCY_KIND))
            .fetch_all()
            .await
            .map_err(|e| self.err(e))?;
        let latest = if outcomes.is_empty() {
            None
        } else {
            q(connectivity_sql(CONNECTIVITY_LATEST, "")).fetch_optional().await.map_err(|e| self.err(e))?
        };
        Ok(ConnectivityRows { outcomes, throughput, latency, latest })
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
        let a = self.auth();
        a.client().query(TOKENS).fetch_all().await.map_err(|e| a.err(e))
    }

    /// Stores a token row (creation or revocation).
    pub async fn put_token(&self, row: &TokenRow) -> Result<(), StoreError> {
        self.auth().insert_rows("enroll_tokens", std::slice::from_ref(row)).await
    }
}
