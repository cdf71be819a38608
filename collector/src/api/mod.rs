//! HTTP API (axum): health, Prometheus metrics, and the JSON API under `/api/v1`.
//!
//! Every `/api/v1` endpoint needs an account: an API token (`Authorization: Bearer pat1_…`) or
//! the web UI's session cookie; without one the answer is 401. Each endpoint checks the
//! account's scope on what it is asked for (a school, a device's school, a report's scope) and
//! answers 403 with the same words whether the thing exists elsewhere or not at all, so errors
//! say nothing about other scopes. `/healthz`, `/readyz` and `/metrics` stay open (no data).
//!
//! Errors are [`AppError`]s: the client gets a short JSON reason, the log gets the detail.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};

pub mod compliance;
pub mod connectivity;
pub mod snmp;
pub mod usage;

use crate::auth::{AccessScope, Accounts, Principal};
use crate::metrics::Metrics;
use crate::storage::{Store, StoreError};

/// What handlers share.
#[derive(Debug)]
pub struct ApiState {
    /// Storage.
    pub store: Store,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Norm profiles, shipped and regional.
    pub profiles: Arc<Vec<crate::compliance::profile::Profile>>,
    /// Accounts, tokens, the registry's school places, the session key.
    pub accounts: Arc<Accounts>,
    /// The fleet: enrollment, credential and school history of devices.
    pub book: Arc<crate::fleet::book::DeviceBook>,
    /// Web UI settings.
    pub web: crate::config::WebConfig,
    /// The policies in force.
    pub policies: Arc<crate::policy::book::PolicyBook>,
    /// A device not running its current policy this long after the change is drifted.
    pub policy_drift_after: std::time::Duration,
}

/// What a scoped account is told about anything outside its scope, existing or not.
pub const OUT_OF_SCOPE: &str = "forbidden: outside your scope";

impl ApiState {
    /// The latest policy status of every device.
    pub async fn policy_statuses(
        &self,
    ) -> Result<std::collections::HashMap<uuid::Uuid, crate::storage::policies::PolicyStatusRow>, AppError>
    {
        Ok(self.store.policy_statuses().await?.into_iter().map(|r| (r.device_id, r)).collect())
    }

    /// Today in the region's zone (`web_timezone`): where default periods end, as devices there
    /// count their local days.
    pub fn today(&self) -> time::Date {
        crate::clock::to_time_date(crate::clock::today_in(&self.web.timezone))
    }

    /// The account of a request: an API token, else the session cookie.
    pub async fn principal(&self, headers: &axum::http::HeaderMap) -> Option<Principal> {
        if let Some(auth) = headers.get(header::AUTHORIZATION) {
            let token = auth.to_str().ok()?.strip_prefix("Bearer ")?.trim();
            return self.accounts.by_token(&self.store, token).await;
        }
        self.session_principal(headers).await
    }

    /// The account of a request's session cookie (the UI: API tokens are for the API).
    pub async fn session_principal(&self, headers: &axum::http::HeaderMap) -> Option<Principal> {
        let session = crate::web::cookie(headers, crate::auth::SESSION_COOKIE)?;
        self.accounts.by_session(&self.store, &session, u64::from(crate::storage::now_secs())).await
    }

    /// Puts the request's account into its extensions; `false` when it has none. With
    /// `sessions_only` (the UI), an API token does not count.
    pub async fn authenticate(&self, req: &mut axum::extract::Request, sessions_only: bool) -> bool {
        let found = if sessions_only {
            self.session_principal(req.headers()).await
        } else {
            self.principal(req.headers()).await
        };
        match found {
            Some(p) => {
                req.extensions_mut().insert(p);
                true
            }
            None => false,
        }
    }

    /// 403 unless the account sees the school.
    pub fn check_school(&self, p: &Principal, school: &str) -> Result<(), AppError> {
        if self.accounts.sees(p, school) { Ok(()) } else { Err(AppError::Forbidden(OUT_OF_SCOPE.into())) }
    }

    /// 403 unless the account sees the device's school (an unknown device too, for a scoped
    /// account: whether it exists elsewhere is not its business).
    pub async fn check_device(
        &self,
        p: &Principal,
        device: parta_protocol::DeviceId,
    ) -> Result<(), AppError> {
        if p.scope == AccessScope::All {
            return Ok(());
        }
        match self.store.device_school(device).await? {
            Some(school) => self.check_school(p, &school),
            None => Err(AppError::Forbidden(OUT_OF_SCOPE.into())),
        }
    }

    /// 403 unless the account sees every school of a report scope (and the scope has some).
    pub fn check_report_scope(
        &self,
        p: &Principal,
        scope: &crate::compliance::build::Scope,
    ) -> Result<(), AppError> {
        // A municipality named without its region means one region's or nothing.
        let wanted = match self.accounts.resolve(AccessScope::from(scope)) {
            // (An unknown name gets the same answer as a place outside the scope.)
            AccessScope::Unresolved {
                reason: reason @ crate::compliance::build::Unresolved::Ambiguous { .. },
                ..
            } => {
                return Err(AppError::BadRequest(format!("scope: {reason}")));
            }
            other => other,
        };
        if p.scope == AccessScope::All {
            return Ok(());
        }
        let in_scope = self.accounts.visible_schools(&wanted);
        if !in_scope.is_empty() && in_scope.iter().all(|(id, place)| p.scope.covers(id, Some(place))) {
            Ok(())
        } else {
            Err(AppError::Forbidden(OUT_OF_SCOPE.into()))
        }
    }
}

/// The router: the API, the web UI, health and metrics.
pub fn router(state: Arc<ApiState>) -> Router {
    let api = Router::new()
        .route("/api/v1/devices", get(devices))
        .route("/api/v1/devices/{id}", get(usage::device))
        .route("/api/v1/devices/{id}/ledger", get(ledger))
        .route("/api/v1/devices/{id}/usage", get(usage::device_usage))
        .route("/api/v1/devices/{id}/interfaces", get(snmp::device_interfaces))
        .route("/api/v1/devices/{id}/pages", get(snmp::device_pages))
        .route("/api/v1/schools/{id}/utilization", get(usage::school_utilization))
        .route("/api/v1/connectivity", get(connectivity::connectivity))
        .route("/api/v1/compliance", get(compliance::compliance))
        .route_layer(axum::middleware::from_fn_with_state(Arc::clone(&state), require_account));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(api)
        .merge(crate::web::router(Arc::clone(&state)))
        .fallback(not_found)
        .with_state(state)
}

/// 401 unless the request carries a valid API token or session; the account goes into the
/// request's extensions.
async fn require_account(
    State(st): State<Arc<ApiState>>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if st.authenticate(&mut req, false).await {
        next.run(req).await
    } else {
        AppError::Unauthorized.into_response()
    }
}

/// A handler failure.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request is wrong; the message says how.
    #[error("{0}")]
    BadRequest(String),
    /// Nothing is known about what was asked for.
    #[error("{0}")]
    NotFound(String),
    /// No valid credentials.
    #[error("authentication required: sign in, or send an API token as `Authorization: Bearer pat1_…`")]
    Unauthorized,
    /// The account may not see or do this.
    #[error("{0}")]
    Forbidden(String),
    /// ClickHouse failed.
    #[error("storage unavailable")]
    Storage(#[from] StoreError),
    /// Something on our side failed; the log has the detail.
    #[error("internal error")]
    Internal(String),
}

#[derive(Serialize)]
struct ErrorBody {
    error: String,
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = match &self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Unauthorized => {
                let body = Json(ErrorBody { error: self.to_string() });
                return (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], body)
                    .into_response();
            }
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::Storage(e) => {
                tracing::warn!(error = %e, "API request failed in storage");
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Internal(e) => {
                tracing::error!(error = %e, "API request failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        (status, Json(ErrorBody { error: self.to_string() })).into_response()
    }
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, Json(ErrorBody { error: "no such endpoint".into() })).into_response()
}

/// Liveness: the process serves HTTP.
async fn healthz() -> &'static str {
    "ok\n"
}

/// Readiness: ClickHouse answers.
async fn readyz(State(st): State<Arc<ApiState>>) -> Response {
    let probe = tokio::time::timeout(Duration::from_secs(2), st.store.execute("SELECT 1")).await;
    match probe {
        Ok(Ok(())) => (StatusCode::OK, "ready\n").into_response(),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "clickhouse unreachable\n").into_response(),
    }
}

async fn metrics(State(st): State<Arc<ApiState>>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], st.metrics.encode())
        .into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DevicesQuery {
    school: Option<String>,
}

/// A device in `/api/v1/devices`.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct DeviceJson {
    /// Device id.
    pub device_id: String,
    /// School id.
    pub school_id: String,
    /// Host name.
    pub hostname: String,
    /// `computer` or `panel`.
    pub kind: String,
    /// OS name and version, e.g. `Astra Linux 1.7.5`.
    pub os: String,
    /// Agent version.
    pub agent_version: String,
    /// Last report received, RFC 3339 UTC.
    pub last_seen: String,
    /// Highest sequence number received.
    pub last_seq: u64,
    /// Uptime at the last report, seconds.
    pub uptime_s: u64,
    /// SNMP devices (kind `network` or `printer`): how the school's agent polls them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snmp: Option<SnmpStatusJson>,
    /// Devices running an agent: `active` or `revoked` (absent for devices that never
    /// enrolled, such as SNMP gear).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// When the device's credential expires, RFC 3339 UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_expires: Option<String>,
    /// Devices running an agent: where the device stands with its policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<crate::policy::state::PolicyState>,
    /// Devices running an agent: the latest release it reported about and where it stands
    /// with it (`offered` … `healthy`, `rolled_back`, `failed`, `refused`, with the reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<UpdateJson>,
}

/// A device's latest update state.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UpdateJson {
    /// The release.
    pub version: String,
    /// Its state on the device.
    pub state: String,
    /// Why (refusals, failures, rollbacks).
    pub detail: String,
}

/// The polling state of an SNMP device in `/api/v1/devices`.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct SnmpStatusJson {
    /// Room from the agent's configuration.
    pub room: String,
    /// Outcome of the latest poll: `ok`, `partial`, `timeout`, `auth_failed`, `malformed`,
    /// `error`.
    pub last_outcome: String,
    /// Latest poll, RFC 3339 UTC.
    pub last_poll: String,
    /// The agent that polls it.
    pub polled_by: String,
}

/// `/api/v1/devices` response.
#[derive(Debug, Serialize, Deserialize)]
pub struct DevicesJson {
    /// Number of devices.
    pub count: usize,
    /// Devices, by school and host name.
    pub devices: Vec<DeviceJson>,
}

pub(crate) async fn devices(
    State(st): State<Arc<ApiState>>,
    axum::Extension(principal): axum::Extension<Principal>,
    query: Result<Query<DevicesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<DevicesJson>, AppError> {
    let Query(q) = query.map_err(|e| AppError::BadRequest(e.body_text()))?;
    if let Some(s) = &q.school {
        parta_protocol::validate::validate_school_id(s)
            .map_err(|e| AppError::BadRequest(format!("school: {e}")))?;
        st.check_school(&principal, s)?;
    }
    let rows = st.store.list_devices(q.school.as_deref()).await?;
    let statuses = st.policy_statuses().await?;
    // The latest update state of each device (of its newest report, whichever release).
    let mut updates: std::collections::HashMap<uuid::Uuid, crate::storage::releases::UpdateStatusRow> =
        std::collections::HashMap::new();
    for u in st.store.update_statuses().await? {
        if updates.get(&u.device_id).is_none_or(|have| have.at < u.at) {
            updates.insert(u.device_id, u);
        }
    }
    let policies = st.policies.set();
    let now = crate::clock::now_ms();
    let devices: Vec<DeviceJson> = rows
        .into_iter()
        .map(|r| DeviceJson {
            device_id: r.device_id.to_string(),
            school_id: r.school_id,
            hostname: r.hostname,
            kind: r.kind,
            os: format!("{} {}", r.os_name, r.os_version).trim().to_owned(),
            agent_version: r.agent_version,
            last_seen: rfc3339(r.last_seen),
            last_seq: r.last_seq,
            uptime_s: r.uptime_s,
            snmp: None,
            state: None,
            credential_expires: None,
            policy: None,
            update: None,
        })
        .chain(st.store.list_snmp_devices(q.school.as_deref()).await?.into_iter().map(|r| DeviceJson {
            device_id: r.device_id.to_string(),
            school_id: r.school_id,
            // Never reached and no label: the address is all there is.
            hostname: if r.label.is_empty() { r.target } else { r.label },
            kind: r.kind,
            os: r.sys_descr.chars().take(120).collect(),
            agent_version: String::new(),
            last_seen: rfc3339(r.last_seen),
            last_seq: 0,
            uptime_s: u64::from(r.uptime_cs / 100),
            snmp: Some(SnmpStatusJson {
                room: r.room,
                last_outcome: r.outcome,
                last_poll: rfc3339(crate::storage::rows::datetime(r.last_poll_ms)),
                polled_by: r.agent_id.to_string(),
            }),
            state: None,
            credential_expires: None,
            policy: None,
            update: None,
        }))
        .filter(|d: &DeviceJson| st.accounts.sees(&principal, &d.school_id))
        .map(|mut d| {
            if let Some(f) = d.device_id.parse().ok().and_then(|id| st.book.device(id)) {
                d.state = Some(f.row.state.clone());
                d.credential_expires = f.credential_expires().map(rfc3339);
                let current = policies.layers(f.school(), Some(f.id)).version();
                d.policy = Some(crate::policy::state::of(
                    current,
                    statuses.get(&f.row.device_id),
                    now,
                    st.policy_drift_after,
                ));
                d.update = updates.get(&f.row.device_id).map(|u| UpdateJson {
                    version: u.version.clone(),
                    state: u.state.clone(),
                    detail: u.detail.clone(),
                });
            }
            d
        })
        .collect();
    Ok(Json(DevicesJson { count: devices.len(), devices }))
}

/// Ranges and gaps listed in a ledger response at most.
const LEDGER_LIST_MAX: usize = 1_000;

/// `/api/v1/devices/{id}/ledger`: which reports of a device are stored, which are missing, and
/// what the agent said about the missing ones.
#[derive(Debug, Serialize, Deserialize)]
pub struct LedgerJson {
    /// Device id.
    pub device_id: String,
    /// Reports stored.
    pub received: u64,
    /// Highest sequence number stored.
    pub highest_seq: u64,
    /// Every number from 1 to `highest_seq` is stored.
    pub complete: bool,
    /// Reports missing below `highest_seq`.
    pub missing: u64,
    /// Missing reports the agent reported as discarded by its spool.
    pub missing_explained: u64,
    /// Stored numbers as inclusive ranges (the first 1,000).
    pub ranges: Vec<[u64; 2]>,
    /// Missing numbers as inclusive ranges with the reasons agents gave (the first 1,000).
    pub gaps: Vec<GapJson>,
    /// More ranges or gaps exist than listed.
    pub truncated: bool,
    /// The agent's spool-loss notices.
    pub losses: Vec<LossJson>,
}

/// A run of missing reports.
#[derive(Debug, Serialize, Deserialize)]
pub struct GapJson {
    /// First missing number.
    pub first: u64,
    /// Last missing number.
    pub last: u64,
    /// Reasons from overlapping loss notices (`thinned`, `expired`, `disk_full`, `corrupt`);
    /// empty when the agent gave none.
    pub reasons: Vec<String>,
}

/// An agent's notice of discarded reports.
#[derive(Debug, Serialize, Deserialize)]
pub struct LossJson {
    /// Why.
    pub reason: String,
    /// First number of the span.
    pub first_seq: u64,
    /// Last number of the span.
    pub last_seq: u64,
    /// Reports discarded in the span.
    pub reports: u64,
    /// The report that carried the notice.
    pub reported_in: u64,
}

async fn ledger(
    State(st): State<Arc<ApiState>>,
    axum::Extension(principal): axum::Extension<Principal>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Json<LedgerJson>, AppError> {
    let device: parta_protocol::DeviceId =
        id.parse().map_err(|_| AppError::BadRequest(format!("device id {id:?} is not a UUID")))?;
    st.check_device(&principal, device).await?;
    let stored = st.store.stored_seqs(device).await?;
    if stored.is_empty() {
        return Err(AppError::NotFound(format!("no reports stored for device {device}")));
    }
    let losses = st.store.spool_losses(device).await?;
    let gaps = stored.gaps();
    let mut explained_set = parta_protocol::SeqSet::new();
    for l in &losses {
        explained_set.insert_range(l.first_seq, l.last_seq.min(stored.max()));
    }
    let missing: u64 = gaps.iter().map(|(a, b)| b - a + 1).sum();
    let mut missing_set = parta_protocol::SeqSet::new();
    for &(a, b) in &gaps {
        missing_set.insert_range(a, b);
    }
    let gap_json = gaps
        .iter()
        .take(LEDGER_LIST_MAX)
        .map(|&(a, b)| {
            let mut reasons: Vec<String> = losses
                .iter()
                .filter(|l| l.first_seq <= b && l.last_seq >= a)
                .map(|l| l.reason.clone())
                .collect();
            reasons.sort();
            reasons.dedup();
            GapJson { first: a, last: b, reasons }
        })
        .collect();
    Ok(Json(LedgerJson {
        device_id: device.to_string(),
        received: stored.len(),
        highest_seq: stored.max(),
        complete: gaps.is_empty(),
        missing,
        missing_explained: missing_set.intersection_len(&explained_set),
        ranges: stored.ranges().iter().take(LEDGER_LIST_MAX).map(|&(a, b)| [a, b]).collect(),
        gaps: gap_json,
        truncated: stored.ranges().len() > LEDGER_LIST_MAX || gaps.len() > LEDGER_LIST_MAX,
        losses: losses
            .iter()
            .map(|l| LossJson {
                reason: l.reason.clone(),
                first_seq: l.first_seq,
                last_seq: l.last_seq,
                reports: l.reports,
                reported_in: l.seq,
            })
            .collect(),
    }))
}

pub use crate::clock::rfc3339;
