//! Device detail, usage per day and school utilization.
//!
//! - `GET /api/v1/devices/{id}`: what the device is (class, room, kind) and its latest inventory.
//! - `GET /api/v1/devices/{id}/usage?from=YYYY-MM-DD&to=YYYY-MM-DD`: per local day, powered-on,
//!   in-use, idle, off and unmonitored seconds and hours, in-use time by user class.
//! - `GET /api/v1/schools/{id}/utilization?from=&to=[&by=room]`: per equipment class (or per
//!   room and class), devices, devices used at all, powered-on and in-use hours.
//!
//! Dates are the devices' local days, inclusive; `to` defaults to today (UTC) and `from` to six
//! days before `to`; a range is at most 366 days.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use time::Date;
use time::macros::format_description;

use super::{ApiState, AppError};
use crate::storage::queries::day_string;
use parta_protocol::DeviceId;

/// Longest range of days one request may ask for.
pub const MAX_DAYS: i64 = 366;

/// `?from=&to=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeQuery {
    pub(crate) from: Option<String>,
    pub(crate) to: Option<String>,
}

/// A validated range of days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayRange {
    /// First day.
    pub from: Date,
    /// Last day (inclusive).
    pub to: Date,
}

pub(crate) fn parse_date(name: &str, s: &str) -> Result<Date, AppError> {
    Date::parse(s, format_description!("[year]-[month]-[day]"))
        .map_err(|_| AppError::BadRequest(format!("{name}: {s:?} is not a date like 2026-11-23")))
}

fn format_date(d: Date) -> String {
    d.format(format_description!("[year]-[month]-[day]")).unwrap_or_default()
}

impl DayRange {
    /// Validates `from`/`to` (defaults: the last seven days up to `today`, the region's date).
    pub fn resolve(q: &RangeQuery, today: Date) -> Result<Self, AppError> {
        Self::parse(q.from.as_deref(), q.to.as_deref(), 7, today)
    }

    /// Validates `from`/`to`; `to` defaults to `today`, `from` to the `default_days` days up
    /// to `to`.
    pub fn parse(
        from: Option<&str>,
        to: Option<&str>,
        default_days: i64,
        today: Date,
    ) -> Result<Self, AppError> {
        let to = to.map_or(Ok(today), |s| parse_date("to", s))?;
        let from = from.map_or_else(
            || Ok(to.saturating_sub(time::Duration::days(default_days - 1))),
            |s| parse_date("from", s),
        )?;
        Self::new(from, to)
    }

    /// A range of at most [`MAX_DAYS`] days, `from` not after `to`.
    pub fn new(from: Date, to: Date) -> Result<Self, AppError> {
        if from > to {
            return Err(AppError::BadRequest(format!(
                "from ({}) is after to ({})",
                format_date(from),
                format_date(to)
            )));
        }
        if (to - from).whole_days() >= MAX_DAYS {
            return Err(AppError::BadRequest(format!("at most {MAX_DAYS} days per request")));
        }
        Ok(Self { from, to })
    }

    pub(crate) fn strings(self) -> (String, String) {
        (format_date(self.from), format_date(self.to))
    }
}

/// Today in UTC (tests).
#[cfg(test)]
pub(crate) fn today() -> Date {
    time::OffsetDateTime::now_utc().date()
}

pub(crate) fn parse_device(id: &str) -> Result<DeviceId, AppError> {
    id.parse().map_err(|_| AppError::BadRequest(format!("device id {id:?} is not a UUID")))
}

pub(super) fn range(
    query: Result<Query<RangeQuery>, axum::extract::rejection::QueryRejection>,
    today: Date,
) -> Result<DayRange, AppError> {
    let Query(q) = query.map_err(|e| AppError::BadRequest(e.body_text()))?;
    DayRange::resolve(&q, today)
}

fn hours(ms: i64) -> f64 {
    (ms as f64 / 3_600_000.0 * 1000.0).round() / 1000.0
}

fn secs(ms: i64) -> f64 {
    (ms as f64 / 1000.0 * 1000.0).round() / 1000.0
}

/// `GET /api/v1/devices/{id}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct DeviceDetailJson {
    pub device_id: String,
    pub host_id: String,
    pub school_id: String,
    pub kind: String,
    pub equipment_class: String,
    pub room: String,
    pub label: String,
    pub serial: String,
    /// The latest inventory (a host's whole inventory, a display's entry, or an SNMP device's
    /// system group, serial and profile).
    pub inventory: serde_json::Value,
    /// A device running an agent: its enrollment, state, credential expiry, school history and
    /// certificates (absent for displays and SNMP gear).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrollment: Option<serde_json::Value>,
    /// A device running an agent: where it stands with its policy, and its effective policy
    /// (secrets shown as `<secret>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<DevicePolicyJson>,
}

/// A device's policy in `/api/v1/devices/{id}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct DevicePolicyJson {
    /// Current, pending, drifted or refused (with the device's reason).
    #[serde(flatten)]
    pub state: crate::policy::state::PolicyState,
    /// Its effective policy now.
    pub effective: crate::policy::book::PolicyView,
}

pub(crate) async fn device(
    State(st): State<Arc<ApiState>>,
    axum::Extension(principal): axum::Extension<crate::auth::Principal>,
    Path(id): Path<String>,
) -> Result<Json<DeviceDetailJson>, AppError> {
    let device = parse_device(&id)?;
    st.check_device(&principal, device).await?;
    device_detail(&st, device).await.map(Json)
}

/// A device's kind, place and latest inventory; the caller has checked the account's scope.
pub(crate) async fn device_detail(st: &ApiState, device: DeviceId) -> Result<DeviceDetailJson, AppError> {
    let Some(a) = st.store.device_attrs(device).await? else {
        return Err(AppError::NotFound(format!("no inventory stored for device {device}")));
    };
    let inventory = if a.kind == "network" || a.kind == "printer" {
        st.store.snmp_latest(device).await?.map_or(serde_json::Value::Null, |p| {
            serde_json::json!({
                "target": p.target,
                "polled_by": p.agent_id.to_string(),
                "polled_at_ms": p.polled_at_ms,
                "profile": p.profile,
                "vendor": p.vendor,
                "sys_descr": p.sys_descr,
                "sys_object_id": p.sys_object_id,
                "sys_name": p.sys_name,
                "sys_location": p.sys_location,
                "uptime_s": p.uptime_cs / 100,
                "serial": p.serial,
            })
        })
    } else {
        let display = a.host_id != a.device_id;
        let json = st.store.inventory_json(device, display).await?.unwrap_or_default();
        serde_json::from_str(&json).unwrap_or(serde_json::Value::Null)
    };
    Ok(DeviceDetailJson {
        device_id: a.device_id.to_string(),
        host_id: a.host_id.to_string(),
        school_id: a.school_id,
        kind: a.kind,
        equipment_class: a.equipment_class,
        room: a.room,
        label: a.label,
        serial: a.serial,
        inventory,
        enrollment: st.book.device(device).map(|d| d.to_json()),
        policy: device_policy(st, device).await?,
    })
}

/// An enrolled device's policy state and effective policy.
pub(crate) async fn device_policy(
    st: &ApiState,
    device: DeviceId,
) -> Result<Option<DevicePolicyJson>, AppError> {
    let Some(f) = st.book.device(device) else { return Ok(None) };
    let view = st
        .policies
        .set()
        .view(f.school(), Some(device))
        .map_err(|e| AppError::Internal(format!("policy of device {device}: {e}")))?;
    let statuses = st.policy_statuses().await?;
    let state = crate::policy::state::of(
        view.version,
        statuses.get(&device.0),
        crate::clock::now_ms(),
        st.policy_drift_after,
    );
    Ok(Some(DevicePolicyJson { state, effective: view }))
}

/// Totals of one day (or of a whole range).
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct DayJson {
    /// Local day, `YYYY-MM-DD` (absent in totals).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub date: Option<String>,
    pub powered_s: f64,
    pub powered_h: f64,
    pub in_use_s: f64,
    pub in_use_h: f64,
    pub idle_s: f64,
    pub unmonitored_s: f64,
    pub off_s: f64,
    /// In-use seconds by user class (teacher, pupil, admin, other, none).
    pub in_use_by_user_class_s: BTreeMap<String, f64>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Acc {
    in_use: i64,
    idle: i64,
    unmonitored: i64,
    off: i64,
}

/// `GET /api/v1/devices/{id}/usage`.
#[derive(Debug, Serialize, Deserialize)]
pub struct UsageJson {
    pub device_id: String,
    pub from: String,
    pub to: String,
    pub days: Vec<DayJson>,
    pub total: DayJson,
}

fn day_json(date: Option<String>, a: Acc, by_class: &BTreeMap<String, i64>) -> DayJson {
    let powered = a.in_use + a.idle + a.unmonitored;
    DayJson {
        date,
        powered_s: secs(powered),
        powered_h: hours(powered),
        in_use_s: secs(a.in_use),
        in_use_h: hours(a.in_use),
        idle_s: secs(a.idle),
        unmonitored_s: secs(a.unmonitored),
        off_s: secs(a.off),
        in_use_by_user_class_s: by_class.iter().map(|(k, v)| (k.clone(), secs(*v))).collect(),
    }
}

pub(crate) async fn device_usage(
    State(st): State<Arc<ApiState>>,
    axum::Extension(principal): axum::Extension<crate::auth::Principal>,
    Path(id): Path<String>,
    query: Result<Query<RangeQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<UsageJson>, AppError> {
    let device = parse_device(&id)?;
    st.check_device(&principal, device).await?;
    device_usage_of(&st, device, range(query, st.today())?).await.map(Json)
}

/// A device's use per day over a range; the caller has checked the account's scope.
pub(crate) async fn device_usage_of(
    st: &ApiState,
    device: DeviceId,
    r: DayRange,
) -> Result<UsageJson, AppError> {
    let (from, to) = r.strings();
    let rows = st.store.device_usage(device, &from, &to).await?;
    let mut days: BTreeMap<u16, (Acc, BTreeMap<String, i64>)> = BTreeMap::new();
    let mut total = (Acc::default(), BTreeMap::<String, i64>::new());
    for row in rows {
        for (acc, by_class) in [days.entry(row.local_day).or_default(), &mut total] {
            match row.state.as_str() {
                "in_use" => {
                    acc.in_use += row.total_ms;
                    *by_class.entry(row.user_class.clone()).or_insert(0) += row.total_ms;
                }
                "idle" => acc.idle += row.total_ms,
                "unmonitored" => acc.unmonitored += row.total_ms,
                _ => acc.off += row.total_ms,
            }
        }
    }
    let days =
        days.into_iter().map(|(d, (acc, by_class))| day_json(Some(day_string(d)), acc, &by_class)).collect();
    Ok(UsageJson { device_id: device.to_string(), from, to, days, total: day_json(None, total.0, &total.1) })
}

/// One equipment class of a school.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassJson {
    pub equipment_class: String,
    pub devices: u64,
    pub devices_used: u64,
    pub powered_h: f64,
    pub in_use_h: f64,
    pub powered_s: f64,
    pub in_use_s: f64,
}

/// One room (and equipment class) of a school.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomJson {
    pub room: String,
    #[serde(flatten)]
    pub class: ClassJson,
}

/// `GET /api/v1/schools/{id}/utilization`.
#[derive(Debug, Serialize, Deserialize)]
pub struct UtilizationJson {
    pub school_id: String,
    pub from: String,
    pub to: String,
    /// Per equipment class (`by=class`, the default).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub classes: Option<Vec<ClassJson>>,
    /// Per room and equipment class (`by=room`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rooms: Option<Vec<RoomJson>>,
}

/// `?from=&to=&by=class|room`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UtilizationQuery {
    from: Option<String>,
    to: Option<String>,
    by: Option<String>,
}

pub(crate) async fn school_utilization(
    State(st): State<Arc<ApiState>>,
    axum::Extension(principal): axum::Extension<crate::auth::Principal>,
    Path(school): Path<String>,
    query: Result<Query<UtilizationQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<UtilizationJson>, AppError> {
    parta_protocol::validate::validate_school_id(&school)
        .map_err(|e| AppError::BadRequest(format!("school: {e}")))?;
    st.check_school(&principal, &school)?;
    let Query(q) = query.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let r = DayRange::resolve(&RangeQuery { from: q.from, to: q.to }, st.today())?;
    let (from, to) = r.strings();
    let by_room = match q.by.as_deref().unwrap_or("class") {
        "class" => false,
        "room" => true,
        other => return Err(AppError::BadRequest(format!("by: {other:?} is not `class` or `room`"))),
    };
    let rows = st.store.school_utilization(&school, &from, &to, by_room).await?;
    let mut out = UtilizationJson { school_id: school, from, to, classes: None, rooms: None };
    let groups = rows.into_iter().map(|r| {
        let class = ClassJson {
            equipment_class: r.equipment_class,
            devices: r.devices,
            devices_used: r.devices_used,
            powered_h: hours(r.powered_ms),
            in_use_h: hours(r.in_use_ms),
            powered_s: secs(r.powered_ms),
            in_use_s: secs(r.in_use_ms),
        };
        (r.room, class)
    });
    if by_room {
        out.rooms = Some(groups.map(|(room, class)| RoomJson { room, class }).collect());
    } else {
        out.classes = Some(groups.map(|(_, class)| class).collect());
    }
    Ok(Json(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn q(from: Option<&str>, to: Option<&str>) -> RangeQuery {
        RangeQuery { from: from.map(str::to_owned), to: to.map(str::to_owned) }
    }

    #[test]
    fn ranges() {
        let today = date!(2026 - 11 - 23);
        assert_eq!(
            DayRange::resolve(&q(None, None), today).unwrap(),
            DayRange { from: date!(2026 - 11 - 17), to: today }
        );
        let r = DayRange::resolve(&q(Some("2026-01-01"), Some("2026-01-31")), today).unwrap();
        assert_eq!(r.strings(), ("2026-01-01".into(), "2026-01-31".into()));
        let e = DayRange::resolve(&q(Some("2026-02-01"), Some("2026-01-31")), today).unwrap_err().to_string();
        assert!(e.contains("after"), "{e}");
        let e = DayRange::resolve(&q(Some("yesterday"), None), today).unwrap_err().to_string();
        assert!(e.starts_with("from:"), "{e}");
        let e = DayRange::resolve(&q(Some("2024-01-01"), Some("2026-01-01")), today).unwrap_err().to_string();
        assert!(e.contains("366"), "{e}");
    }

    #[test]
    fn day_numbers_to_dates() {
        assert_eq!(day_string(20_780), "2026-11-23");
        assert_eq!(day_string(0), "1970-01-01");
    }
}
