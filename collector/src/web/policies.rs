//! `/policies` (admins): every scope's policy with its version, author and time; a scope's
//! history and its document, editable in the browser — the same check, secret handling and
//! history as `parta-collector policy set` ([`crate::policy::changes`]), behind the session's
//! CSRF token. Secrets are never shown: the form says `<secret>` and keeps the stored value.
//! The history is the audit log: every version with who changed it, when and why.
//!
//! Also the policy sections of the device and school pages.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;

use super::pages::{Page, csrf_refusal, fail};
use super::{Ctx, esc, page, urlencode};
use crate::api::{ApiState, AppError};
use crate::policy::book::PolicyView;
use crate::policy::state::PolicyState;

/// `?scope=`.
#[derive(Debug, Deserialize)]
pub(crate) struct ScopeQuery {
    scope: Option<String>,
}

/// The edit form.
#[derive(Debug, Deserialize)]
pub(crate) struct PolicyForm {
    csrf: String,
    scope: String,
    document: String,
    #[serde(default)]
    comment: String,
}

/// The 403 page for anyone but an admin.
fn not_admin(c: &Ctx) -> Option<axum::response::Response> {
    (!c.principal.is_admin()).then(|| fail(c, AppError::Forbidden(String::new())))
}

/// The cells every listing of changes has: set or removed, who, when, why.
fn change_cells(c: &Ctx, r: &crate::storage::policies::PolicyRow) -> String {
    format!(
        "<td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
        c.t(if r.removed == 1 { "policy_removed" } else { "policy_set" }),
        esc(&r.author),
        esc(&crate::clock::rfc3339_ms(r.at_ms)),
        esc(&r.comment),
    )
}

/// `GET /policies[?scope=S]`.
pub(crate) async fn list(State(st): State<Arc<ApiState>>, c: Ctx, Query(q): Query<ScopeQuery>) -> Page {
    if let Some(refused) = not_admin(&c) {
        return Err(refused);
    }
    let scope = q.scope.filter(|s| !s.trim().is_empty());
    policies_page(&st, &c, scope.as_deref(), None, None).await
}

/// `POST /policies`: checks and stores the next version of a scope's policy.
pub(crate) async fn save(State(st): State<Arc<ApiState>>, c: Ctx, Form(f): Form<PolicyForm>) -> Page {
    if let Some(refused) = not_admin(&c) {
        return Err(refused);
    }
    if let Some(refused) = csrf_refusal(&st, &c, &f.csrf) {
        return Err(refused);
    }
    let comment: String = f.comment.chars().filter(|ch| !ch.is_control()).take(200).collect();
    let stored = async {
        let scope = crate::policy::changes::resolve_scope(&st.store, &f.scope).await?;
        crate::policy::changes::set(
            &st.store,
            st.policies.key(),
            &scope,
            &f.document,
            &c.principal.login,
            &comment,
        )
        .await
        .map(|row| (scope, row))
    }
    .await;
    match stored {
        Ok((scope, row)) => {
            tracing::info!(scope = %scope, version = row.version, login = %c.principal.login, "policy changed in the web UI");
            // This collector's sessions learn of it now, the others' at their next refresh.
            if let Err(e) = st.policies.refresh(&st.store).await {
                tracing::warn!(error = %e, "cannot reload policies; sessions learn of the change at the next refresh");
            }
            Ok(Redirect::to(&format!("/policies?scope={}", urlencode(&scope.to_string()))).into_response())
        }
        Err(e) => {
            let mut resp =
                policies_page(&st, &c, Some(&f.scope), Some(&f.document), Some(&e.to_string())).await?;
            *resp.status_mut() = StatusCode::BAD_REQUEST;
            Ok(resp)
        }
    }
}

async fn policies_page(
    st: &ApiState,
    c: &Ctx,
    scope: Option<&str>,
    draft: Option<&str>,
    error: Option<&str>,
) -> Page {
    let latest = st.store.latest_policies().await.map_err(|e| fail(c, e.into()))?;
    let mut body = String::new();
    if let Some(e) = error {
        let _ =
            write!(body, r#"<p class="error" id="policy-error">{} {}</p>"#, c.t("policy_refused"), esc(e));
    }
    let _ = write!(
        body,
        r#"<table id="policies"><tr><th>{}</th><th class="num">{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>"#,
        c.t("policy_scope"),
        c.t("policy_version"),
        c.t("state"),
        c.t("policy_author"),
        c.t("policy_when"),
        c.t("comment"),
    );
    for r in &latest {
        let _ = write!(
            body,
            r#"<tr><td><a href="/policies?scope={}">{}</a></td><td class="num">{}</td>{}</tr>"#,
            urlencode(&r.scope),
            esc(&r.scope),
            r.version,
            change_cells(c, r),
        );
    }
    body.push_str("</table>");
    let mut current = String::new();
    if let Some(s) = scope {
        let history = st.store.policy_history(s).await.map_err(|e| fail(c, e.into()))?;
        if let Some(last) = history.last().filter(|r| r.removed == 0) {
            let doc: toml::Table = toml::from_str(&last.document)
                .map_err(|e| fail(c, AppError::Internal(format!("stored policy of {s}: {e}"))))?;
            current = toml::to_string(&crate::policy::secrets::redact(&doc)).unwrap_or_default();
        }
        if !history.is_empty() {
            let _ = write!(
                body,
                r#"<h2>{} {}</h2><table id="policy-history"><tr><th class="num">{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>"#,
                c.t("policy_history"),
                esc(s),
                c.t("policy_version"),
                c.t("state"),
                c.t("policy_author"),
                c.t("policy_when"),
                c.t("comment"),
            );
            for r in history.iter().rev() {
                let _ = write!(body, r#"<tr><td class="num">{}</td>{}</tr>"#, r.version, change_cells(c, r),);
            }
            body.push_str("</table>");
        }
    }
    let _ = write!(
        body,
        r#"<h2>{new}</h2><form method="post" action="/policies" id="policy-form"><input type="hidden" name="csrf" value="{csrf}">
<label>{scope_l} <input name="scope" id="policy-scope" value="{scope}" placeholder="all | region:74 | municipality:74/… | school:74-0012 | device:…" required></label>
<p class="muted">{hint}</p>
<label>{doc_l}<br><textarea name="document" id="policy-document" rows="18" cols="90">{doc}</textarea></label>
<label>{comment_l} <input name="comment" id="policy-comment" maxlength="200"></label>
<button id="policy-save">{save}</button></form>"#,
        new = c.t("policy_new"),
        csrf = esc(&c.csrf),
        scope_l = c.t("policy_scope"),
        scope = esc(scope.unwrap_or_default()),
        hint = esc(c.t("policy_secrets_hint")),
        doc_l = c.t("policy_document"),
        doc = esc(draft.unwrap_or(&current)),
        comment_l = c.t("comment"),
        save = c.t("policy_save"),
    );
    Ok(page(c, c.t("policies"), &body).into_response())
}

/// A device's policy state in words, with the device's reason when it refused.
pub(super) fn state_html(c: &Ctx, s: &PolicyState) -> String {
    let word = c.t(match s.state.as_str() {
        "current" => "policy_state_current",
        "pending" => "policy_state_pending",
        "drifted" => "policy_state_drifted",
        "refused" => "policy_state_refused",
        _ => "policy_state_none",
    });
    let mut out = format!(r#"<span class="policy-{}">{}</span>"#, esc(&s.state), esc(word));
    if let Some(reason) = &s.refused_reason {
        let key =
            s.refused_key.as_deref().filter(|k| !k.is_empty()).map(|k| format!("{k}: ")).unwrap_or_default();
        let _ = write!(out, r#" — <span class="policy-reason">{}{}</span>"#, esc(&key), esc(reason));
    }
    out
}

/// The policy section of a device or school page.
pub(super) fn view_html(c: &Ctx, view: &PolicyView, state: Option<&PolicyState>) -> String {
    let mut out = format!(r#"<h2>{}</h2><table id="policy">"#, c.t("policy_effective"));
    if let Some(s) = state {
        let _ = write!(
            out,
            r#"<tr><th>{}</th><td id="policy-state">{}</td></tr><tr><th>{}</th><td>{}</td></tr><tr><th>{}</th><td id="policy-running">{}</td></tr>"#,
            c.t("policy_state"),
            state_html(c, s),
            c.t("policy_current"),
            s.current_version,
            c.t("policy_running"),
            if s.running_version == 0 { "—".to_owned() } else { s.running_version.to_string() },
        );
    }
    let layers: Vec<String> =
        view.layers.iter().map(|l| format!("{} v{}", esc(&l.scope), l.version)).collect();
    let _ = write!(
        out,
        r#"<tr><th>{}</th><td>{}</td></tr></table><pre id="policy-effective">{}</pre>"#,
        c.t("policy_scope"),
        if layers.is_empty() { "—".to_owned() } else { layers.join(" → ") },
        esc(&view.effective),
    );
    out
}
