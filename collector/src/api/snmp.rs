//! Network gear and printers polled over SNMP.
//!
//! - `GET /api/v1/devices/{id}/interfaces?from=&to=[&step=SECONDS]`: per interface, rx/tx
//!   bit/s series (mean and peak per step), utilization against the interface speed, and
//!   ifOperStatus changes. `step` defaults to 5 min for up to two days, 1 h up to 31 days and
//!   1 day beyond.
//! - `GET /api/v1/devices/{id}/pages?from=&to=`: pages printed per local day (differences of
//!   consecutive page counters; a counter that went back — a replaced board — counts from its
//!   new value within the day).
//!
//! Dates as in [`super::usage`]: local days, inclusive, at most 366 days.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};

use super::usage::{DayRange, RangeQuery, parse_device, range};
use super::{ApiState, AppError};
use crate::storage::queries::{IfBucketRow, IfStatusRow, PrinterDayRow, day_string};
use parta_protocol::DeviceId;

/// ifOperStatus names (RFC 2863).
pub fn oper_status_name(s: u8) -> &'static str {
    match s {
        1 => "up",
        2 => "down",
        3 => "testing",
        4 => "unknown",
        5 => "dormant",
        6 => "not_present",
        7 => "lower_layer_down",
        _ => "unknown",
    }
}

/// `?from=&to=&step=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterfacesQuery {
    from: Option<String>,
    to: Option<String>,
    step: Option<String>,
}

/// One step of an interface's series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointJson {
    /// Start of the step, ms since the epoch.
    pub t: i64,
    /// Mean receive rate over the measured polls of the step, bit/s (`None`: no rate measured).
    pub rx_bps: Option<u64>,
    /// Mean send rate, bit/s.
    pub tx_bps: Option<u64>,
    /// Peak receive rate among the polls, bit/s.
    pub rx_bps_max: Option<u64>,
    /// Peak send rate, bit/s.
    pub tx_bps_max: Option<u64>,
    /// Mean receive utilization, % of the interface speed.
    pub rx_util_pct: Option<f64>,
    /// Mean send utilization, %.
    pub tx_util_pct: Option<f64>,
    /// Polls in the step.
    pub polls: u64,
}

/// An ifOperStatus change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusChangeJson {
    /// When it was first seen, ms since the epoch.
    pub t: i64,
    /// New status.
    pub status: String,
}

/// One interface.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InterfaceJson {
    /// ifIndex.
    pub index: u32,
    /// ifName.
    pub name: String,
    /// ifAlias.
    pub alias: String,
    /// ifDescr.
    pub descr: String,
    /// Highest speed seen, Mbit/s.
    pub speed_mbps: u32,
    /// Status at the start of the range.
    pub status_first: String,
    /// Status at the end of the range.
    pub status_last: String,
    /// Changes within the range.
    pub status_changes: Vec<StatusChangeJson>,
    /// Peak receive rate over the range, bit/s.
    pub rx_bps_max: Option<u64>,
    /// Peak send rate over the range, bit/s.
    pub tx_bps_max: Option<u64>,
    /// The series.
    pub points: Vec<PointJson>,
}

/// `GET /api/v1/devices/{id}/interfaces`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InterfacesJson {
    /// Device.
    pub device_id: String,
    /// First day.
    pub from: String,
    /// Last day.
    pub to: String,
    /// Step, seconds.
    pub step_s: i64,
    /// Interfaces by index.
    pub interfaces: Vec<InterfaceJson>,
}

fn default_step(days: i64) -> i64 {
    match days {
        ..=2 => 300,
        3..=31 => 3600,
        _ => 86_400,
    }
}

fn mean(sum: u64, n: u64) -> Option<u64> {
    (n > 0).then(|| sum / n)
}

fn util(bps: Option<u64>, speed_mbps: u32) -> Option<f64> {
    let b = bps?;
    (speed_mbps > 0)
        .then(|| ((b as f64 / (f64::from(speed_mbps) * 1e6) * 100.0).min(100.0) * 100.0).round() / 100.0)
}

/// Builds the response from the query rows (pure, unit-tested).
pub fn interfaces_json(
    device_id: String,
    range: DayRange,
    step_s: i64,
    buckets: Vec<IfBucketRow>,
    status: Vec<IfStatusRow>,
) -> InterfacesJson {
    let status: BTreeMap<u32, IfStatusRow> = status.into_iter().map(|s| (s.if_index, s)).collect();
    let mut out: BTreeMap<u32, InterfaceJson> = BTreeMap::new();
    for b in buckets {
        let e = out.entry(b.if_index).or_insert_with(|| InterfaceJson {
            index: b.if_index,
            name: String::new(),
            alias: String::new(),
            descr: String::new(),
            speed_mbps: 0,
            status_first: String::new(),
            status_last: String::new(),
            status_changes: Vec::new(),
            rx_bps_max: None,
            tx_bps_max: None,
            points: Vec::new(),
        });
        // Names of the latest bucket win.
        e.name = b.name;
        e.alias = b.alias;
        e.descr = b.descr;
        e.speed_mbps = e.speed_mbps.max(b.speed_mbps);
        let rated = b.rated > 0;
        let (rx, tx) = (mean(b.in_sum, b.rated), mean(b.out_sum, b.rated));
        let (rx_max, tx_max) = (rated.then_some(b.in_max), rated.then_some(b.out_max));
        e.rx_bps_max = e.rx_bps_max.max(rx_max);
        e.tx_bps_max = e.tx_bps_max.max(tx_max);
        e.points.push(PointJson {
            t: b.bucket * step_s * 1000,
            rx_bps: rx,
            tx_bps: tx,
            rx_bps_max: rx_max,
            tx_bps_max: tx_max,
            rx_util_pct: util(rx, b.speed_mbps),
            tx_util_pct: util(tx, b.speed_mbps),
            polls: b.polls,
        });
    }
    for (index, e) in &mut out {
        if let Some(s) = status.get(index) {
            e.status_first = oper_status_name(s.first_state).to_owned();
            e.status_last = oper_status_name(s.last_state).to_owned();
            e.status_changes = s
                .change_times
                .iter()
                .zip(&s.change_states)
                .map(|(t, st)| StatusChangeJson { t: *t, status: oper_status_name(*st).to_owned() })
                .collect();
        }
    }
    let (from, to) = range.strings();
    InterfacesJson { device_id, from, to, step_s, interfaces: out.into_values().collect() }
}

pub(crate) async fn device_interfaces(
    State(st): State<Arc<ApiState>>,
    axum::Extension(principal): axum::Extension<crate::auth::Principal>,
    Path(id): Path<String>,
    query: Result<Query<InterfacesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<InterfacesJson>, AppError> {
    let device = parse_device(&id)?;
    st.check_device(&principal, device).await?;
    let Query(q) = query.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let range = DayRange::resolve(&RangeQuery { from: q.from, to: q.to }, st.today())?;
    interfaces_of(&st, device, range, q.step.as_deref()).await.map(Json)
}

/// A device's interfaces over a range in steps of `step` seconds (default by the range's
/// length); the caller has checked the account's scope.
pub(crate) async fn interfaces_of(
    st: &ApiState,
    device: DeviceId,
    range: DayRange,
    step: Option<&str>,
) -> Result<InterfacesJson, AppError> {
    let days = (range.to - range.from).whole_days() + 1;
    let step_s = match step {
        None => default_step(days),
        Some(s) => match s.parse::<i64>() {
            Ok(n) if (60..=86_400).contains(&n) && n * 2000 >= days * 86_400 => n,
            _ => {
                return Err(AppError::BadRequest(format!(
                    "step: {s:?} must be seconds between 60 and 86400, and the range at most 2000 steps"
                )));
            }
        },
    };
    let (from, to) = range.strings();
    let buckets = st.store.interface_series(device, &from, &to, step_s * 1000).await?;
    let status = st.store.interface_status(device, &from, &to).await?;
    Ok(interfaces_json(device.to_string(), range, step_s, buckets, status))
}

/// Pages of one day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PagesDayJson {
    /// Local day.
    pub date: String,
    /// Pages printed.
    pub pages: u64,
    /// Polls that read the counters.
    pub polls: u64,
}

/// `GET /api/v1/devices/{id}/pages`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PagesJson {
    /// Device.
    pub device_id: String,
    /// First day.
    pub from: String,
    /// Last day.
    pub to: String,
    /// Days with readings.
    pub days: Vec<PagesDayJson>,
    /// Pages over the range.
    pub total_pages: u64,
    /// The page counter (all markers) at the last reading in the range.
    pub life_count: Option<u64>,
}

/// Pages per day from per-marker day readings and each marker's last reading before the range
/// (pure, unit-tested). A day's pages are its last reading minus the previous last reading; a
/// counter that went back counts from the day's first reading.
pub fn pages_json(
    device_id: String,
    range: DayRange,
    days: Vec<PrinterDayRow>,
    baseline: Vec<(u32, u64)>,
) -> PagesJson {
    let mut prev: BTreeMap<u32, u64> = baseline.into_iter().collect();
    let mut per_day: BTreeMap<u16, (u64, u64)> = BTreeMap::new();
    let mut last: BTreeMap<u32, u64> = BTreeMap::new();
    for d in days {
        let base = prev.get(&d.marker).copied().unwrap_or(d.first);
        let pages = if d.last >= base { d.last - base } else { d.last.saturating_sub(d.first) };
        let e = per_day.entry(d.local_day).or_default();
        e.0 += pages;
        e.1 = e.1.max(d.polls);
        prev.insert(d.marker, d.last);
        last.insert(d.marker, d.last);
    }
    let days: Vec<PagesDayJson> = per_day
        .into_iter()
        .map(|(day, (pages, polls))| PagesDayJson { date: day_string(day), pages, polls })
        .collect();
    let (from, to) = range.strings();
    PagesJson {
        device_id,
        from,
        to,
        total_pages: days.iter().map(|d| d.pages).sum(),
        days,
        life_count: (!last.is_empty()).then(|| last.values().sum()),
    }
}

pub(crate) async fn device_pages(
    State(st): State<Arc<ApiState>>,
    axum::Extension(principal): axum::Extension<crate::auth::Principal>,
    Path(id): Path<String>,
    query: Result<Query<RangeQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<PagesJson>, AppError> {
    let device = parse_device(&id)?;
    st.check_device(&principal, device).await?;
    pages_of(&st, device, range(query, st.today())?).await.map(Json)
}

/// A printer's pages per day over a range; the caller has checked the account's scope.
pub(crate) async fn pages_of(
    st: &ApiState,
    device: DeviceId,
    range: DayRange,
) -> Result<PagesJson, AppError> {
    let (from, to) = range.strings();
    let (days, baseline) = st.store.printer_days(device, &from, &to).await?;
    Ok(pages_json(device.to_string(), range, days, baseline))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range() -> DayRange {
        DayRange::resolve(
            &RangeQuery { from: Some("2026-11-02".into()), to: Some("2026-11-03".into()) },
            super::super::usage::today(),
        )
        .unwrap()
    }

    fn day(marker: u32, local_day: u16, first: u64, last: u64) -> PrinterDayRow {
        PrinterDayRow { marker, local_day, first, last, polls: 2 }
    }

    #[test]
    fn pages_from_baseline_and_resets() {
        let p = pages_json(
            "d".into(),
            range(),
            vec![day(1, 20_759, 1010, 1050), day(1, 20_760, 1050, 1100)],
            vec![(1, 1000)],
        );
        assert_eq!(p.days.iter().map(|d| d.pages).collect::<Vec<_>>(), [50, 50]);
        assert_eq!((p.total_pages, p.life_count), (100, Some(1100)));
        // No baseline: the first day counts from its first reading. A counter that went back
        // (board replaced) counts from the day's first reading.
        let p =
            pages_json("d".into(), range(), vec![day(1, 20_759, 1010, 1050), day(1, 20_760, 5, 30)], vec![]);
        assert_eq!(p.days.iter().map(|d| d.pages).collect::<Vec<_>>(), [40, 25]);
        // Two markers add up.
        let p = pages_json(
            "d".into(),
            range(),
            vec![day(1, 20_759, 10, 20), day(2, 20_759, 100, 103)],
            vec![(2, 100)],
        );
        assert_eq!((p.total_pages, p.life_count), (13, Some(123)));
    }

    #[test]
    fn interface_points_and_status() {
        let b = |bucket: i64, rated: u64, in_sum: u64| IfBucketRow {
            if_index: 1,
            bucket,
            name: "gi1".into(),
            alias: "uplink".into(),
            descr: "Gi".into(),
            speed_mbps: 100,
            rated,
            in_sum,
            in_max: in_sum,
            out_sum: 0,
            out_max: 0,
            polls: 1,
        };
        let j = interfaces_json(
            "d".into(),
            range(),
            300,
            vec![b(10, 0, 0), b(11, 1, 50_000_000)],
            vec![IfStatusRow {
                if_index: 1,
                first_ms: 3_000_000,
                first_state: 1,
                last_state: 2,
                change_times: vec![3_600_000],
                change_states: vec![2],
            }],
        );
        let i = &j.interfaces[0];
        assert_eq!(i.points[0].rx_bps, None);
        assert_eq!(i.points[1].rx_bps, Some(50_000_000));
        assert_eq!(i.points[1].rx_util_pct, Some(50.0));
        assert_eq!(i.points[1].t, 11 * 300_000);
        assert_eq!((i.status_first.as_str(), i.status_last.as_str()), ("up", "down"));
        assert_eq!(i.status_changes, [StatusChangeJson { t: 3_600_000, status: "down".into() }]);
        assert_eq!(default_step(2), 300);
        assert_eq!(default_step(90), 86_400);
    }
}
