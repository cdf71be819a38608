//! What the web UI reads: per school and day rollups of usage and ЕСПД (kept by the collector
//! as it inserts), the region and municipality overview built from them, a school's devices,
//! its daily hours per equipment class and its weekday × hour heatmap, and each school's
//! latest compliance verdict.
//!
//! The rollups are recomputed, never summed: for every school and day an insert touches, the
//! collector reads that school's day back (deduplicated) and inserts a row with a higher
//! version, so resent reports and repeated recomputations cannot inflate them. Readers use
//! FINAL, every filter being on the sort key.

use clickhouse::Row;
use serde::{Deserialize, Serialize};

use super::{Store, StoreError};

/// The schools of a query, as a subquery over an array parameter.
const SCOPE: &str = "school_id IN (SELECT arrayJoin(CAST(? AS Array(String))))";

/// One row per school and day from the daily usage rollup: devices that reported usage,
/// devices powered on, devices in use, and the hours. `{filter}` narrows the schools and days;
/// `{version}` is the rows' version.
const SCHOOL_DAYS_SELECT: &str =
    "SELECT school_id, local_day, toUInt32(count()), toUInt32(countIf(d_on > 0)),
        toUInt32(countIf(d_used > 0)), sum(d_on), sum(d_used), toUInt64({version})
 FROM (
    SELECT school_id, local_day, device_id,
           sumIf(total_ms, state != 'off') AS d_on, sumIf(total_ms, state = 'in_use') AS d_used
    FROM usage_daily FINAL
    WHERE {filter}
    GROUP BY school_id, local_day, device_id
 )
 GROUP BY school_id, local_day";

/// One row per school and day from the connectivity checks (a resent report collapses on the
/// check's key): checks, checks passed, download tests that measured, tests at the required
/// speed, the required speed.
const ESPD_DAYS_SELECT: &str = "SELECT school_id, c_day, toUInt32(count()), toUInt32(countIf(c_outcome = 'ok')),
        toUInt32(countIf(c_test)), toUInt32(countIf(c_test AND c_bps >= toUInt64(c_req) * {pass_bps_per_mbps})),
        max(c_req), toUInt64({version})
 FROM (
    SELECT school_id, any(local_day) AS c_day, any(outcome) AS c_outcome, any(ip_bits_per_s) AS c_bps,
           any(required_mbps) AS c_req, any(kind) = 'download' AND any(outcome) IN ('ok', 'slow') AS c_test
    FROM connectivity_checks
    WHERE {filter}
    GROUP BY school_id, device_id, run_started_at_ms, check_no
 )
 GROUP BY school_id, c_day";

/// The filter of a recomputation: the schools touched and a range of days (`rollups rebuild`).
const TOUCHED: &str = "{scope} AND local_day >= toDate(?) AND local_day <= toDate(?)";

/// The recomputation of the usage rollup for schools and days (version first, then the filter).
fn school_days_rollup() -> String {
    format!("INSERT INTO school_days {}", school_days_select(&scoped(TOUCHED), "?"))
}

/// The recomputation of the ЕСПД rollup for schools and days (version first, then the filter).
fn espd_days_rollup() -> String {
    format!("INSERT INTO espd_days {}", espd_days_select(&scoped(TOUCHED), "?"))
}

/// The filter of a recomputation of exactly the (school, day) pairs an insert touched: one
/// report with a wrong clock must not make the recomputation read years of every school of its
/// batch. School ids are `[A-Za-z0-9._-]` (validated) and days numbers, so they go inline.
fn pairs_filter(pairs: &[(String, u16)]) -> String {
    let days: std::collections::BTreeSet<u16> = pairs.iter().map(|p| p.1).collect();
    let day = |d: u16| format!("toDate('{}')", super::queries::day_string(d));
    format!(
        "{SCOPE} AND local_day IN ({}) AND (school_id, local_day) IN ({})",
        days.iter().map(|d| day(*d)).collect::<Vec<_>>().join(", "),
        pairs.iter().map(|(s, d)| format!("('{s}', {})", day(*d))).collect::<Vec<_>>().join(", ")
    )
}

fn school_days_select(filter: &str, version: &str) -> String {
    SCHOOL_DAYS_SELECT.replace("{filter}", filter).replace("{version}", version)
}

fn espd_days_select(filter: &str, version: &str) -> String {
    ESPD_DAYS_SELECT
        .replace("{filter}", filter)
        .replace("{version}", version)
        .replace("{pass_bps_per_mbps}", &parta_protocol::espd::speed_pass_bps(1).to_string())
}

/// The backfills of migration 10 (every stored day, version 0), their tables qualified with
/// `{db}` like every migration statement.
pub fn backfills() -> [(&'static str, String); 2] {
    [
        (
            "{school_days_all}",
            school_days_select("1", "0").replace("FROM usage_daily", "FROM {db}.usage_daily"),
        ),
        (
            "{espd_days_all}",
            espd_days_select("1", "0").replace("FROM connectivity_checks", "FROM {db}.connectivity_checks"),
        ),
    ]
}

/// Per school over a period: days with data and the sums of the usage rollup.
const USAGE_BY_SCHOOL: &str = "SELECT school_id, toUInt32(count()) AS n_days, sum(devices) AS s_devices,
        sum(devices_on) AS s_on, sum(devices_used) AS s_used, sum(powered_ms) AS s_powered, sum(in_use_ms) AS s_in_use
 FROM school_days FINAL
 WHERE {scope} AND local_day >= toDate(?) AND local_day <= toDate(?)
 GROUP BY school_id";

/// Per school over a period: ЕСПД checks, passed, download tests, tests at the required speed,
/// and the required speed.
const ESPD_BY_SCHOOL: &str =
    "SELECT school_id, sum(checks) AS s_checks, sum(passed) AS s_passed, sum(tests) AS s_tests,
        sum(met) AS s_met, max(required_mbps) AS s_required
 FROM espd_days FINAL
 WHERE {scope} AND local_day >= toDate(?) AND local_day <= toDate(?)
 GROUP BY school_id";

/// Per school: agents known and agents whose latest report is at or after a time.
const AGENTS_BY_SCHOOL: &str =
    "SELECT d_school, toUInt32(count()) AS n_agents, toUInt32(countIf(d_seen >= ?)) AS n_online
 FROM (
    SELECT device_id, argMax(school_id, last_seq) AS d_school, max(last_seen) AS d_seen
    FROM devices
    WHERE {scope}
    GROUP BY device_id
 )
 GROUP BY d_school";

/// Each school's latest compliance verdict.
const COMPLIANCE_BY_SCHOOL: &str = "SELECT school_id, argMax(status, computed_at) AS c_status,
        toUInt32(max(computed_at)) AS c_at, argMax(profile, computed_at) AS c_profile,
        toUInt16(argMax(period_from, computed_at)) AS c_from, toUInt16(argMax(period_to, computed_at)) AS c_to,
        argMax(short, computed_at) AS c_short, argMax(not_seen, computed_at) AS c_not_seen,
        argMax(underused, computed_at) AS c_underused
 FROM compliance_status
 WHERE {scope}
 GROUP BY school_id";

/// A school's devices (hosts, displays, SNMP gear) with their latest attributes and hours
/// powered on and in use in the period.
const SCHOOL_DEVICES: &str =
    "SELECT toString(device_id) AS id, toString(a_host) AS host, a_kind, a_class, a_room, a_label,
        u_on, u_used, u_days
 FROM (
    SELECT device_id, argMax(host_id, version) AS a_host, argMax(kind, version) AS a_kind,
           argMax(equipment_class, version) AS a_class, argMax(room, version) AS a_room,
           argMax(label, version) AS a_label
    FROM device_attrs
    WHERE school_id = ?
    GROUP BY device_id
 ) AS attrs
 ANY LEFT JOIN (
    SELECT device_id, sumIf(total_ms, state != 'off') AS u_on, sumIf(total_ms, state = 'in_use') AS u_used,
           toUInt32(uniqExactIf(local_day, state = 'in_use' AND total_ms > 0)) AS u_days
    FROM usage_daily FINAL
    WHERE school_id = ? AND local_day >= toDate(?) AND local_day <= toDate(?)
    GROUP BY device_id
 ) AS used USING device_id
 ORDER BY a_room, a_class, a_label, id";

/// A school's hours per local day and equipment class.
const SCHOOL_CLASS_DAYS: &str = "SELECT toUInt16(local_day) AS day, attr_class, sum(k_on) AS on_ms, sum(k_used) AS used_ms,
        toUInt32(count()) AS n_devices
 FROM (
    SELECT device_id, local_day, sumIf(total_ms, state != 'off') AS k_on, sumIf(total_ms, state = 'in_use') AS k_used
    FROM usage_daily FINAL
    WHERE school_id = ? AND local_day >= toDate(?) AND local_day <= toDate(?)
    GROUP BY device_id, local_day
 ) AS days
 ANY LEFT JOIN (
    SELECT device_id, argMax(equipment_class, version) AS attr_class
    FROM device_attrs
    WHERE school_id = ?
    GROUP BY device_id
 ) AS attrs USING device_id
 GROUP BY day, attr_class
 ORDER BY day, attr_class";

/// Time in use per weekday (1 = Monday) and hour in the time zone `{tz}`: the school's
/// intervals (deduplicated by device and start) cut at hour boundaries.
const SCHOOL_HEATMAP: &str = "SELECT toUInt8(toDayOfWeek(toDateTime(h * 3600, '{tz}'))) AS w,
        toUInt8(toHour(toDateTime(h * 3600, '{tz}'))) AS hr,
        sum(least(i_end, (toInt64(h) + 1) * 3600000) - greatest(start_ms, toInt64(h) * 3600000)) AS ms
 FROM (
    SELECT start_ms, i_end,
           arrayJoin(arrayMap(x -> x + toUInt64(intDiv(start_ms, 3600000)),
                              range(toUInt64(intDiv(i_end - 1, 3600000) - intDiv(start_ms, 3600000) + 1)))) AS h
    FROM (
        SELECT device_id, start_ms, any(end_ms) AS i_end, any(state) AS i_state
        FROM usage_intervals
        WHERE school_id = ? AND local_day >= toDate(?) AND local_day <= toDate(?)
        GROUP BY device_id, start_ms
    )
    WHERE i_state = 'in_use' AND i_end > start_ms
 )
 GROUP BY w, hr
 ORDER BY w, hr";

fn scoped(template: &str) -> String {
    template.replace("{scope}", SCOPE)
}

/// Every query of this module with its placeholders, for the test suite.
pub fn catalogue() -> Vec<(&'static str, String)> {
    vec![
        ("school_days_rollup", school_days_rollup()),
        ("espd_days_rollup", espd_days_rollup()),
        (
            "school_days_pairs_rollup",
            format!(
                "INSERT INTO school_days {}",
                school_days_select(
                    &pairs_filter(&[("74-0012".into(), 20_394), ("74-0012".into(), 20_395)]),
                    "?"
                )
            ),
        ),
        (
            "espd_days_pairs_rollup",
            format!(
                "INSERT INTO espd_days {}",
                espd_days_select(&pairs_filter(&[("74-0012".into(), 20_394)]), "?")
            ),
        ),
        ("overview_usage", scoped(USAGE_BY_SCHOOL)),
        ("overview_espd", scoped(ESPD_BY_SCHOOL)),
        ("overview_agents", scoped(AGENTS_BY_SCHOOL)),
        ("overview_compliance", scoped(COMPLIANCE_BY_SCHOOL)),
        ("school_devices", SCHOOL_DEVICES.to_owned()),
        ("school_class_days", SCHOOL_CLASS_DAYS.to_owned()),
        ("school_heatmap", SCHOOL_HEATMAP.replace("{tz}", "Europe/Moscow")),
        ("reporting_schools", REPORTING_SCHOOLS.to_owned()),
        ("device_school_agent", DEVICE_SCHOOL_AGENT.to_owned()),
        ("device_school_attrs", DEVICE_SCHOOL_ATTRS.to_owned()),
    ]
}

/// Usage of one school over a period.
#[derive(Debug, Clone, Default, Row, Serialize, Deserialize)]
pub struct SchoolUsageRow {
    pub school_id: String,
    /// Days with usage data.
    pub days: u32,
    /// Device-days reported.
    pub device_days: u64,
    /// Device-days powered on.
    pub device_days_on: u64,
    /// Device-days in use.
    pub device_days_used: u64,
    pub powered_ms: i64,
    pub in_use_ms: i64,
}

/// ЕСПД of one school over a period.
#[derive(Debug, Clone, Default, Row, Serialize, Deserialize)]
pub struct SchoolEspdRow {
    pub school_id: String,
    pub checks: u64,
    pub passed: u64,
    pub tests: u64,
    pub met: u64,
    pub required_mbps: u32,
}

impl SchoolEspdRow {
    /// Whether the link meets the contract: the median download test at the required speed,
    /// that is at least half the tests (`None` without tests).
    pub fn meets(&self) -> Option<bool> {
        (self.tests > 0).then(|| 2 * self.met >= self.tests)
    }
}

/// Agents of one school.
#[derive(Debug, Clone, Default, Row, Serialize, Deserialize)]
pub struct SchoolAgentsRow {
    pub school_id: String,
    pub agents: u32,
    pub online: u32,
}

/// The latest compliance verdict of one school.
#[derive(Debug, Clone, Default, Row, Serialize, Deserialize)]
pub struct SchoolComplianceRow {
    pub school_id: String,
    pub status: String,
    pub computed_at: u32,
    pub profile: String,
    pub period_from: u16,
    pub period_to: u16,
    pub short: u32,
    pub not_seen: u32,
    pub underused: u32,
}

/// A `compliance_status` row.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub struct ComplianceStatusRow {
    pub school_id: String,
    pub computed_at: u32,
    pub profile: String,
    /// Days since 1970-01-01.
    pub period_from: u16,
    pub period_to: u16,
    pub lines: u32,
    pub short: u32,
    pub not_seen: u32,
    pub underused: u32,
    pub status: String,
}

/// A device of a school with its hours in the period.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub struct SchoolDeviceRow {
    pub device_id: String,
    pub host_id: String,
    pub kind: String,
    pub equipment_class: String,
    pub room: String,
    pub label: String,
    pub powered_ms: i64,
    pub in_use_ms: i64,
    /// Days with any time in use.
    pub days_used: u32,
}

/// A school's hours of one equipment class on one day.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub struct ClassDayRow {
    /// Days since 1970-01-01.
    pub day: u16,
    pub equipment_class: String,
    pub powered_ms: i64,
    pub in_use_ms: i64,
    pub devices: u32,
}

/// Time in use in one weekday-hour cell.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub struct HeatCellRow {
    /// 1 = Monday … 7 = Sunday.
    pub weekday: u8,
    pub hour: u8,
    pub in_use_ms: i64,
}

/// Everything the overview reads for a set of schools.
#[derive(Debug, Clone, Default)]
pub struct OverviewRows {
    pub usage: Vec<SchoolUsageRow>,
    pub espd: Vec<SchoolEspdRow>,
    pub agents: Vec<SchoolAgentsRow>,
    pub compliance: Vec<SchoolComplianceRow>,
}

/// The school of a device: its latest agent row, else its latest attributes (displays, SNMP
/// gear).
const DEVICE_SCHOOL_AGENT: &str =
    "SELECT school_id FROM devices WHERE device_id = toUUID(?) ORDER BY last_seq DESC LIMIT 1";
const DEVICE_SCHOOL_ATTRS: &str =
    "SELECT school_id FROM device_attrs WHERE device_id = toUUID(?) ORDER BY version DESC LIMIT 1";

/// Schools that agents report for (registered or not).
const REPORTING_SCHOOLS: &str = "SELECT DISTINCT school_id FROM devices";

impl Store {
    /// Schools agents report for, registered or not.
    pub async fn reporting_schools(&self) -> Result<Vec<String>, StoreError> {
        self.client().query(REPORTING_SCHOOLS).fetch_all().await.map_err(|e| self.err(e))
    }

    /// The school a device reports for, if it is known.
    pub async fn device_school(
        &self,
        device: parta_protocol::DeviceId,
    ) -> Result<Option<String>, StoreError> {
        for sql in [DEVICE_SCHOOL_AGENT, DEVICE_SCHOOL_ATTRS] {
            let found: Option<String> = self
                .client()
                .query(sql)
                .bind(device.to_string())
                .fetch_optional()
                .await
                .map_err(|e| self.err(e))?;
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// Recomputes the school-day usage rollup of `schools` between two days.
    pub async fn rollup_school_days(
        &self,
        schools: &[String],
        from: &str,
        to: &str,
    ) -> Result<(), StoreError> {
        self.rollup(&school_days_rollup(), schools, from, to).await
    }

    /// Recomputes the school-day ЕСПД rollup of `schools` between two days.
    pub async fn rollup_espd_days(&self, schools: &[String], from: &str, to: &str) -> Result<(), StoreError> {
        self.rollup(&espd_days_rollup(), schools, from, to).await
    }

    async fn rollup(&self, sql: &str, schools: &[String], from: &str, to: &str) -> Result<(), StoreError> {
        if schools.is_empty() {
            return Ok(());
        }
        // The version is the first placeholder: it sits in the SELECT list, before the filter.
        self.client()
            .query(sql)
            .bind(crate::clock::rollup_version())
            .bind(schools)
            .bind(from)
            .bind(to)
            .execute()
            .await
            .map_err(|e| self.err(e))
    }

    /// Recomputes the school-day usage rollup of exactly these (school, day) pairs.
    pub async fn rollup_school_day_pairs(&self, pairs: &[(String, u16)]) -> Result<(), StoreError> {
        let sql = format!("INSERT INTO school_days {}", school_days_select(&pairs_filter(pairs), "?"));
        self.rollup_pairs(&sql, pairs).await
    }

    /// Recomputes the school-day ЕСПД rollup of exactly these (school, day) pairs.
    pub async fn rollup_espd_day_pairs(&self, pairs: &[(String, u16)]) -> Result<(), StoreError> {
        let sql = format!("INSERT INTO espd_days {}", espd_days_select(&pairs_filter(pairs), "?"));
        self.rollup_pairs(&sql, pairs).await
    }

    async fn rollup_pairs(&self, sql: &str, pairs: &[(String, u16)]) -> Result<(), StoreError> {
        if pairs.is_empty() {
            return Ok(());
        }
        let mut schools: Vec<&str> = pairs.iter().map(|p| p.0.as_str()).collect();
        schools.sort_unstable();
        schools.dedup();
        self.client()
            .query(sql)
            .bind(crate::clock::rollup_version())
            .bind(schools)
            .execute()
            .await
            .map_err(|e| self.err(e))
    }

    /// The overview's figures for `schools` over a period; agents count as online when their
    /// latest report is at or after `online_since` (seconds since the epoch).
    pub async fn overview(
        &self,
        schools: &[String],
        from: &str,
        to: &str,
        online_since: u32,
    ) -> Result<OverviewRows, StoreError> {
        let c = self.client();
        let period = |t: &str| c.query(&scoped(t)).bind(schools).bind(from).bind(to);
        let (usage, espd, agents, compliance) = tokio::try_join!(
            period(USAGE_BY_SCHOOL).fetch_all::<SchoolUsageRow>(),
            period(ESPD_BY_SCHOOL).fetch_all::<SchoolEspdRow>(),
            c.query(&scoped(AGENTS_BY_SCHOOL))
                .bind(online_since)
                .bind(schools)
                .fetch_all::<SchoolAgentsRow>(),
            c.query(&scoped(COMPLIANCE_BY_SCHOOL)).bind(schools).fetch_all::<SchoolComplianceRow>(),
        )
        .map_err(|e| self.err(e))?;
        Ok(OverviewRows { usage, espd, agents, compliance })
    }

    /// A school's devices with their hours in the period.
    pub async fn school_devices(
        &self,
        school: &str,
        from: &str,
        to: &str,
    ) -> Result<Vec<SchoolDeviceRow>, StoreError> {
        self.client()
            .query(SCHOOL_DEVICES)
            .bind(school)
            .bind(school)
            .bind(from)
            .bind(to)
            .fetch_all()
            .await
            .map_err(|e| self.err(e))
    }

    /// A school's hours per day and equipment class.
    pub async fn school_class_days(
        &self,
        school: &str,
        from: &str,
        to: &str,
    ) -> Result<Vec<ClassDayRow>, StoreError> {
        self.client()
            .query(SCHOOL_CLASS_DAYS)
            .bind(school)
            .bind(from)
            .bind(to)
            .bind(school)
            .fetch_all()
            .await
            .map_err(|e| self.err(e))
    }

    /// A school's time in use per weekday and hour in time zone `tz` (an IANA name the caller
    /// has validated: it is written into the SQL).
    pub async fn school_heatmap(
        &self,
        school: &str,
        from: &str,
        to: &str,
        tz: &str,
    ) -> Result<Vec<HeatCellRow>, StoreError> {
        self.client()
            .query(&SCHOOL_HEATMAP.replace("{tz}", tz))
            .bind(school)
            .bind(from)
            .bind(to)
            .fetch_all()
            .await
            .map_err(|e| self.err(e))
    }

    /// Records schools' compliance verdicts.
    pub async fn put_compliance_status(&self, rows: &[ComplianceStatusRow]) -> Result<(), StoreError> {
        self.insert_rows("compliance_status", rows).await
    }
}
