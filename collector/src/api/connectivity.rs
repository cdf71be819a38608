//! ЕСПД connectivity of a school: `GET /api/v1/connectivity?school=ID&from=&to=`.
//!
//! The SLA figures over the range: share of checks passed (and failures by kind: DNS, TCP,
//! TLS, HTTP, slow, blocked, not blocked), availability of each must-reach resource, the
//! content-filter verdict of each must-be-blocked resource, latency/jitter/loss per target,
//! and throughput per direction — median and 10th percentile against the required speed, with
//! the verdict for the school's own requirement and for both tiers (urban 100, rural 50 Mbit/s).
//! Dates as in [`super::usage`]: local days, inclusive, at most 366 days.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use parta_protocol::espd::Locality;
use serde::{Deserialize, Serialize};

use super::usage::{DayRange, RangeQuery};
use super::{ApiState, AppError};

/// `?school=&from=&to=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectivityQuery {
    school: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// Checks of one kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KindJson {
    /// Checks run.
    pub checks: u64,
    /// Checks passed.
    pub passed: u64,
}

/// One must-reach resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceJson {
    /// URL.
    pub target: String,
    /// Checks run.
    pub checks: u64,
    /// Share of checks that reached it, 0–1.
    pub availability: f64,
    /// Checks by outcome (`ok`, `dns_failed`, `tcp_failed`, `tls_failed`, `http_failed`, `blocked`…).
    pub outcomes: BTreeMap<String, u64>,
    /// Last check, ms since the epoch.
    pub last_at: i64,
}

/// One must-be-blocked resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FilterJson {
    /// URL.
    pub target: String,
    /// Checks run.
    pub checks: u64,
    /// Checks that found it blocked.
    pub blocked: u64,
    /// `pass` when every check found it blocked, `fail` otherwise.
    pub verdict: String,
}

/// Latency to one target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyJson {
    /// `host:port`.
    pub target: String,
    /// Checks run.
    pub runs: u64,
    /// Median of the checks' median round trips, ms.
    pub rtt_ms: f64,
    /// Mean jitter, ms.
    pub jitter_ms: f64,
    /// Probes lost, % of those sent.
    pub loss_pct: f64,
}

/// Throughput of one direction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThroughputJson {
    /// `download` or `upload`.
    pub direction: String,
    /// Tests run.
    pub tests: u64,
    /// Median, Mbit/s at the IP layer (what contracts count).
    pub median_mbps: f64,
    /// 10th percentile, Mbit/s.
    pub p10_mbps: f64,
    /// Share of tests at or above the required speed, 0–1.
    pub met_share: f64,
    /// The school's requirement, Mbit/s.
    pub required_mbps: u32,
    /// `pass` when the median meets the school's requirement (98 % of it at the IP layer, see
    /// [`parta_protocol::espd::SPEED_PASS_PERMILLE`]).
    pub verdict: String,
    /// Verdict against the urban tier (100 Mbit/s).
    pub verdict_urban: String,
    /// Verdict against the rural tier (50 Mbit/s).
    pub verdict_rural: String,
}

/// The response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectivityJson {
    /// School id.
    pub school: String,
    /// First day.
    pub from: String,
    /// Last day (inclusive).
    pub to: String,
    /// Locality of the latest run (`urban`/`rural`), empty without runs.
    pub locality: String,
    /// Required speed of the latest run, Mbit/s (0 without runs).
    pub required_mbps: u32,
    /// Checks run.
    pub checks: u64,
    /// Checks passed.
    pub passed: u64,
    /// Share passed, 0–1 (`None` without checks).
    pub passed_share: Option<f64>,
    /// Checks by kind.
    pub by_kind: BTreeMap<String, KindJson>,
    /// Failed checks by failure kind.
    pub failures: BTreeMap<String, u64>,
    /// Must-reach resources.
    pub must_reach: Vec<ResourceJson>,
    /// Must-be-blocked resources.
    pub filter: Vec<FilterJson>,
    /// Latency per target.
    pub latency: Vec<LatencyJson>,
    /// Throughput per direction.
    pub throughput: Vec<ThroughputJson>,
}

fn verdict(ok: bool) -> String {
    if ok { "pass" } else { "fail" }.to_owned()
}

#[allow(clippy::cast_precision_loss)] // counts and rates for display
fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { ((a as f64 / b as f64) * 10_000.0).round() / 10_000.0 }
}

#[allow(clippy::cast_precision_loss)]
fn mbps(bps: u64) -> f64 {
    (bps as f64 / 1e4).round() / 100.0
}

/// `GET /api/v1/connectivity?school=&from=&to=`.
pub async fn connectivity(
    State(state): State<Arc<ApiState>>,
    axum::Extension(principal): axum::Extension<crate::auth::Principal>,
    query: Result<Query<ConnectivityQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ConnectivityJson>, AppError> {
    let Query(q) = query.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let school = q.school.ok_or_else(|| AppError::BadRequest("school: required".into()))?;
    parta_protocol::validate::validate_school_id(&school)
        .map_err(|e| AppError::BadRequest(format!("school: {e}")))?;
    state.check_school(&principal, &school)?;
    let range = DayRange::resolve(&RangeQuery { from: q.from, to: q.to }, state.today())?;
    connectivity_of(&state, school, range).await.map(Json)
}

/// A school's ЕСПД figures over a range; the caller has validated the id and checked the
/// account's scope.
pub(crate) async fn connectivity_of(
    state: &ApiState,
    school: String,
    range: DayRange,
) -> Result<ConnectivityJson, AppError> {
    let (from, to) = range.strings();
    let rows = state.store.connectivity(&school, &from, &to).await?;
    let mut out = ConnectivityJson {
        school,
        from,
        to,
        locality: rows.latest.as_ref().map(|l| l.locality.clone()).unwrap_or_default(),
        required_mbps: rows.latest.as_ref().map_or(0, |l| l.required_mbps),
        checks: 0,
        passed: 0,
        passed_share: None,
        by_kind: BTreeMap::new(),
        failures: BTreeMap::new(),
        must_reach: Vec::new(),
        filter: Vec::new(),
        latency: Vec::new(),
        throughput: Vec::new(),
    };
    for r in &rows.outcomes {
        let ok = r.c_outcome == "ok";
        out.checks += r.n;
        let kind = out.by_kind.entry(r.c_kind.clone()).or_default();
        kind.checks += r.n;
        if ok {
            out.passed += r.n;
            kind.passed += r.n;
        } else {
            *out.failures.entry(r.c_outcome.clone()).or_default() += r.n;
        }
        match r.c_kind.as_str() {
            "reach" => {
                if out.must_reach.last().is_none_or(|x| x.target != r.c_target) {
                    out.must_reach.push(ResourceJson {
                        target: r.c_target.clone(),
                        checks: 0,
                        availability: 0.0,
                        outcomes: BTreeMap::new(),
                        last_at: 0,
                    });
                }
                if let Some(x) = out.must_reach.last_mut() {
                    x.checks += r.n;
                    x.outcomes.insert(r.c_outcome.clone(), r.n);
                    x.last_at = x.last_at.max(r.last_at);
                }
            }
            "filter" => {
                if out.filter.last().is_none_or(|x| x.target != r.c_target) {
                    out.filter.push(FilterJson {
                        target: r.c_target.clone(),
                        checks: 0,
                        blocked: 0,
                        verdict: String::new(),
                    });
                }
                if let Some(x) = out.filter.last_mut() {
                    x.checks += r.n;
                    if ok {
                        x.blocked += r.n;
                    }
                }
            }
            _ => {}
        }
    }
    for x in &mut out.must_reach {
        x.availability = ratio(x.outcomes.get("ok").copied().unwrap_or(0), x.checks);
    }
    for x in &mut out.filter {
        x.verdict = verdict(x.blocked == x.checks);
    }
    out.passed_share = (out.checks > 0).then(|| ratio(out.passed, out.checks));
    out.latency = rows
        .latency
        .iter()
        .map(|l| LatencyJson {
            target: l.c_target.clone(),
            runs: l.runs,
            rtt_ms: f64::from(l.rtt_us / 10) / 100.0,
            jitter_ms: f64::from(l.jitter_us / 10) / 100.0,
            loss_pct: ratio(l.sent.saturating_sub(l.received), l.sent) * 100.0,
        })
        .collect();
    out.throughput = rows
        .throughput
        .iter()
        .map(|t| {
            let median = t.median_bps;
            let meets = |mbit: u32| median >= parta_protocol::espd::speed_pass_bps(mbit);
            ThroughputJson {
                direction: t.c_kind.clone(),
                tests: t.tests,
                median_mbps: mbps(median),
                p10_mbps: mbps(t.p10_bps),
                met_share: ratio(t.met, t.tests),
                required_mbps: t.required_mbps,
                verdict: verdict(meets(t.required_mbps)),
                verdict_urban: verdict(meets(Locality::Urban.required_mbps())),
                verdict_rural: verdict(meets(Locality::Rural.required_mbps())),
            }
        })
        .collect();
    Ok(out)
}
