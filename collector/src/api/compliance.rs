//! `GET /api/v1/compliance?scope=&from=&to=&profile=&format=&lang=`: the compliance report of a
//! region, municipality or school, as JSON (default), CSV or XLSX (a download). Every export is
//! recorded in the export log with its SHA-256, like `parta-collector report compliance`.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{ApiState, AppError};
use crate::compliance::build::{self, BuildError, Request, Scope};
use crate::compliance::export::{Format3, Lang};
use crate::compliance::profile::DEFAULT_PROFILE;

/// The query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComplianceQuery {
    scope: Option<String>,
    from: Option<String>,
    to: Option<String>,
    profile: Option<String>,
    format: Option<String>,
    lang: Option<String>,
}

fn date(name: &str, s: &str) -> Result<jiff::civil::Date, AppError> {
    s.parse().map_err(|_| AppError::BadRequest(format!("{name}: {s:?} is not a date like 2026-11-23")))
}

/// The handler.
pub async fn compliance(
    State(state): State<Arc<ApiState>>,
    axum::Extension(principal): axum::Extension<crate::auth::Principal>,
    query: Result<Query<ComplianceQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, AppError> {
    let Query(q) = query.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let bad = |field: &str, e: String| AppError::BadRequest(format!("{field}: {e}"));
    let scope = Scope::parse(q.scope.as_deref().ok_or_else(|| {
        AppError::BadRequest("scope: required (region:CODE, municipality:REGION/NAME or school:ID)".into())
    })?)
    .map_err(|e| bad("scope", e))?;
    state.check_report_scope(&principal, &scope)?;
    let to = match &q.to {
        Some(s) => date("to", s)?,
        None => {
            crate::clock::today_in(&state.web.timezone).yesterday().map_err(|e| bad("to", e.to_string()))?
        }
    };
    let from = match &q.from {
        Some(s) => date("from", s)?,
        None => to.checked_sub(jiff::Span::new().days(89)).map_err(|e| bad("from", e.to_string()))?,
    };
    let format = Format3::parse(q.format.as_deref().unwrap_or("json")).map_err(|e| bad("format", e))?;
    let lang = Lang::parse(q.lang.as_deref().unwrap_or("ru")).map_err(|e| bad("lang", e))?;
    let req = Request {
        scope,
        from,
        to,
        profile: q.profile.unwrap_or_else(|| DEFAULT_PROFILE.to_owned()),
        format,
        lang,
    };
    let built = build::build(&state.store, &state.profiles, &req, |_| {}).await.map_err(to_app)?;
    let via = if principal.via == crate::auth::Via::Session { "ui" } else { "api" };
    build::log(&state.store, &req, &built, &principal.actor(), via).await.map_err(to_app)?;
    let mut resp = built.bytes.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(format.mime()));
    if let Ok(v) = HeaderValue::from_str(&built.sha256) {
        h.insert("x-content-sha256", v);
    }
    if format != Format3::Json {
        // The name is ASCII (the scope's letters become `_` where not alphanumeric ASCII).
        let ascii: String = built
            .file_name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || ".-_".contains(c) { c } else { '_' })
            .collect();
        if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{ascii}\"")) {
            h.insert(header::CONTENT_DISPOSITION, v);
        }
    }
    Ok(resp)
}

fn to_app(e: BuildError) -> AppError {
    match e {
        BuildError::Param { field: "scope", message } => AppError::NotFound(format!("scope: {message}")),
        BuildError::Param { .. } => AppError::BadRequest(e.to_string()),
        BuildError::Store(s) => AppError::Storage(s),
        BuildError::Xlsx(x) => AppError::Internal(x.to_string()),
    }
}
