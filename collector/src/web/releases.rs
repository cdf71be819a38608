//! `/releases` (admins): the agent releases the collector offers, the rollout of each channel,
//! how many devices stand where with each release (with their reasons), and the devices where
//! a release failed, was refused or rolled back — what `parta-collector release list` and
//! `release status` print. Changing rollouts stays on the command line (`release rollout`),
//! next to the signing key's owner.
//!
//! Also the release section of the device page.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use axum::response::IntoResponse;

use super::pages::{Page, fail};
use super::{Ctx, esc, page};
use crate::api::{ApiState, AppError};
use crate::storage::releases::UpdateStatusRow;

/// Devices listed with a problem, at most.
const MAX_PROBLEMS: usize = 500;

/// The word for an update state.
fn state_word(c: &Ctx, state: &str) -> String {
    let key = match state {
        "offered" => "upd_offered",
        "downloading" => "upd_downloading",
        "downloaded" => "upd_downloaded",
        "installing" => "upd_installing",
        "installed" => "upd_installed",
        "healthy" => "upd_healthy",
        "rolled_back" => "upd_rolled_back",
        "failed" => "upd_failed",
        "refused" => "upd_refused",
        other => return esc(other),
    };
    format!(r#"<span class="upd-{}">{}</span>"#, esc(state), c.t(key))
}

/// `GET /releases`.
pub(crate) async fn list(State(st): State<Arc<ApiState>>, c: Ctx) -> Page {
    if !c.principal.is_admin() {
        return Err(fail(&c, AppError::Forbidden(String::new())));
    }
    let releases = st.store.releases().await.map_err(|e| fail(&c, e.into()))?;
    let rollouts = st.store.rollouts().await.map_err(|e| fail(&c, e.into()))?;
    let statuses = st.store.update_statuses().await.map_err(|e| fail(&c, e.into()))?;
    let mut body = String::new();

    let _ = write!(
        body,
        r#"<h2>{}</h2><table id="rollouts"><tr><th>{}</th><th>{}</th><th>{}</th><th class="num">{}</th><th>{}</th><th>{}</th><th>{}</th></tr>"#,
        c.t("release_rollouts"),
        c.t("release_channel"),
        c.t("release_version"),
        c.t("release_to_whom"),
        c.t("release_retry"),
        c.t("policy_author"),
        c.t("policy_when"),
        c.t("comment"),
    );
    for r in &rollouts {
        let whom: Vec<String> =
            crate::release::offered_to(r, c.t("release_of_devices")).iter().map(|s| esc(s)).collect();
        let _ = write!(
            body,
            r#"<tr><td>{}</td><td>{}</td><td>{}</td><td class="num">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
            esc(&r.channel),
            esc(&r.version),
            whom.join(", "),
            r.retry,
            esc(&r.author),
            esc(&crate::clock::rfc3339_ms(r.at_ms)),
            esc(&r.comment),
        );
    }
    body.push_str("</table>");
    if rollouts.is_empty() {
        let _ = write!(body, r#"<p class="muted">{}</p>"#, c.t("release_no_rollout"));
    }

    let _ = write!(
        body,
        r#"<h2>{}</h2><table id="releases"><tr><th>{}</th><th>{}</th><th>{}</th><th class="num">{}</th><th>SHA-256</th><th>{}</th><th>{}</th></tr>"#,
        c.t("releases"),
        c.t("release_version"),
        c.t("release_target"),
        c.t("release_channel"),
        c.t("release_size"),
        c.t("release_added"),
        c.t("policy_author"),
    );
    for r in &releases {
        let _ = write!(
            body,
            r#"<tr><td>{}</td><td>{}</td><td>{}</td><td class="num">{:.1}</td><td class="mono">{}…</td><td>{}</td><td>{}</td></tr>"#,
            esc(&r.version),
            esc(&r.target),
            esc(&r.channel),
            r.size as f64 / 1e6,
            esc(r.sha256.get(..16).unwrap_or(&r.sha256)),
            esc(&crate::clock::rfc3339_ms(r.added_ms)),
            esc(&r.author),
        );
    }
    body.push_str("</table>");

    let _ = write!(
        body,
        r#"<h2>{}</h2><table id="release-states"><tr><th>{}</th><th>{}</th><th class="num">{}</th><th>{}</th></tr>"#,
        c.t("release_states"),
        c.t("release_version"),
        c.t("state"),
        c.t("release_devices"),
        c.t("release_reasons"),
    );
    for ((version, state), (n, reasons)) in crate::release::summarize(&statuses).iter().rev() {
        let why: Vec<String> = reasons.iter().map(|(r, k)| format!("{k} × {}", esc(r))).collect();
        let _ = write!(
            body,
            r#"<tr><td>{version}</td><td>{}</td><td class="num">{n}</td><td>{}</td></tr>"#,
            state_word(&c, state),
            why.join("<br>"),
        );
    }
    body.push_str("</table>");

    let mut problems: Vec<&UpdateStatusRow> =
        statuses.iter().filter(|r| crate::release::is_problem(&r.state)).collect();
    problems.sort_by_key(|r| std::cmp::Reverse(r.at));
    let _ = write!(
        body,
        r#"<h2>{}</h2><table id="release-problems"><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>"#,
        c.t("release_problems"),
        c.t("device"),
        c.t("release_version"),
        c.t("state"),
        c.t("release_running"),
        c.t("release_reasons"),
    );
    for r in problems.iter().take(MAX_PROBLEMS) {
        let id = r.device_id.to_string();
        let _ = write!(
            body,
            r#"<tr><td><a href="/d/{id}">{id}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
            esc(&r.version),
            state_word(&c, &r.state),
            esc(&r.running),
            esc(&r.detail),
        );
    }
    body.push_str("</table>");
    if problems.len() > MAX_PROBLEMS {
        let _ = write!(
            body,
            r#"<p class="muted">{} {MAX_PROBLEMS} / {}: parta-collector release status --devices</p>"#,
            c.t("release_first"),
            problems.len()
        );
    }
    Ok(page(&c, c.t("releases"), &body).into_response())
}

/// A device's latest release state, for its page (nothing when it never reported one).
pub(super) async fn device_html(st: &ApiState, c: &Ctx, device: uuid::Uuid) -> Result<String, AppError> {
    let rows = st.store.device_update_statuses(device).await?;
    let Some(r) = rows.iter().max_by_key(|r| r.at) else {
        return Ok(String::new());
    };
    let detail = if r.detail.is_empty() { String::new() } else { format!(" — {}", esc(&r.detail)) };
    Ok(format!(
        r#"<h2>{}</h2><p id="device-update">{} {}: {}{detail}</p>"#,
        c.t("release_agent_update"),
        c.t("release_version"),
        esc(&r.version),
        state_word(c, &r.state),
    ))
}
