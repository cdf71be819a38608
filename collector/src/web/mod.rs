//! The web UI: HTML rendered on the server, no JavaScript, one embedded stylesheet — nothing
//! fetched from elsewhere (regional networks filter CDNs), light pages, printable.
//!
//! Pages: sign-in; the overview (regions → municipalities); a municipality's schools; a school
//! (classes, daily hours per class, weekday × hour heatmap, rooms and devices); a device
//! (inventory, use per day, interfaces of network gear, pages of printers); connectivity;
//! compliance with export buttons; the account's API tokens; accounts, policies and agent
//! releases (admin; [`policies`], [`releases`]). Every page's
//! state is in its URL (period `from`/`to`), so links can be shared. Russian by default; the
//! language switch sets a cookie.
//!
//! Pages read through the same handlers and scope checks as the API.

pub mod i18n;
mod pages;
mod policies;
mod releases;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::api::ApiState;
use crate::auth::Principal;
pub use i18n::{Lang, t};

/// The stylesheet, embedded.
const CSS: &str = include_str!("parta.css");
/// Cookie holding the UI language.
const LANG_COOKIE: &str = "parta_lang";

/// The UI's routes.
pub fn router(state: Arc<ApiState>) -> Router<Arc<ApiState>> {
    let signed_in = Router::new()
        .route("/", get(pages::overview))
        .route("/m/{region}/{name}", get(pages::municipality))
        .route("/s/{id}", get(pages::school))
        .route("/d/{id}", get(pages::device))
        .route("/connectivity", get(pages::connectivity))
        .route("/compliance", get(pages::compliance))
        .route("/compliance/status", post(pages::update_status))
        .route("/tokens", get(pages::tokens).post(pages::create_token))
        .route("/tokens/{id}/revoke", post(pages::revoke_token))
        .route("/users", get(pages::users))
        .route("/policies", get(policies::list).post(policies::save))
        .route("/releases", get(releases::list))
        .route("/logout", post(pages::logout))
        .route_layer(axum::middleware::from_fn_with_state(state, require_session));
    Router::new()
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/lang/{code}", get(set_lang))
        .route("/static/parta.css", get(css))
        .merge(signed_in)
}

/// Sends a browser without a session to the sign-in page, back here afterwards.
async fn require_session(
    axum::extract::State(st): axum::extract::State<Arc<ApiState>>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if st.authenticate(&mut req, true).await {
        return next.run(req).await;
    }
    let next_url = req.uri().path_and_query().map_or("/", axum::http::uri::PathAndQuery::as_str);
    Redirect::to(&format!("/login?next={}", urlencode(next_url))).into_response()
}

async fn css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "max-age=3600")], CSS)
        .into_response()
}

#[derive(Debug, serde::Deserialize)]
struct NextQuery {
    next: Option<String>,
}

/// `/lang/en?next=/s/74-0001`: remembers the language and goes back.
async fn set_lang(
    axum::extract::Path(code): axum::extract::Path<String>,
    axum::extract::Query(q): axum::extract::Query<NextQuery>,
) -> Response {
    let lang = Lang::from_code(&code);
    let back = safe_next(q.next.as_deref());
    let mut resp = Redirect::to(&back).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{LANG_COOKIE}={}; Path=/; Max-Age=31536000; SameSite=Lax",
        lang.code()
    )) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// A local path to return to: only a path (and query) of this site, parsed as one. Browsers
/// drop tabs and line breaks from a `Location` and read `\\` as `/`, so `/\t/evil.example` or
/// `/\\evil.example` would lead to another host: anything with a control character, a
/// backslash, or a second leading slash goes to `/` instead.
pub(crate) fn safe_next(next: Option<&str>) -> String {
    let is_local = |n: &str| {
        n.starts_with('/')
            && !n.starts_with("//")
            && !n.chars().any(|c| c.is_control() || c == '\\' || c.is_whitespace())
            && n.parse::<axum::http::uri::PathAndQuery>().is_ok_and(|p| p.as_str() == n)
    };
    match next {
        Some(n) if is_local(n) => n.to_owned(),
        _ => "/".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn only_local_paths_are_returned_to() {
        for ok in [
            "/",
            "/s/74-0012?from=2026-11-01&to=2026-11-30",
            "/m/74/%D0%9A%D0%BE%D0%BF%D0%B5%D0%B9%D1%81%D0%BA",
        ] {
            assert_eq!(safe_next(Some(ok)), ok);
        }
        for bad in [
            "//evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r\n/evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "/ /evil.example",
            "https://evil.example/",
            "evil.example",
            "",
            "/\u{7f}/evil.example",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/");
    }
}

/// The address a sign-in comes from: the peer's, or — when the peer is one of the configured
/// reverse proxies (`web_trusted_proxies`) — the last address its `X-Forwarded-For` names.
pub(crate) fn client_address(
    web: &crate::config::WebConfig,
    peer: std::net::IpAddr,
    headers: &HeaderMap,
) -> std::net::IpAddr {
    if !web.trusted_proxies.contains(&peer) {
        return peer;
    }
    headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .and_then(|a| a.trim().parse().ok())
        .unwrap_or(peer)
}

/// A cookie's value from the request headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// The request's UI language.
pub(crate) fn lang_of(headers: &HeaderMap) -> Lang {
    cookie(headers, LANG_COOKIE).map_or(Lang::Ru, |c| Lang::from_code(&c))
}

/// HTML-escapes text.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a URL component.
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// What every page knows: the account, the language, the path, the CSRF token.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub(crate) principal: Principal,
    pub(crate) lang: Lang,
    /// Path and query of the request (for the language switch).
    pub(crate) here: String,
    pub(crate) csrf: String,
}

/// A signed-in page's context, taken from the request: the principal `require_session` put
/// there, the language cookie, the path for the language switch and the form token.
impl axum::extract::FromRequestParts<Arc<ApiState>> for Ctx {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        st: &Arc<ApiState>,
    ) -> Result<Self, Self::Rejection> {
        // Only routes behind `require_session` take a Ctx; without a principal, sign in again.
        let Some(principal) = parts.extensions.get::<Principal>().cloned() else {
            return Err(Redirect::to("/login").into_response());
        };
        let csrf = st.accounts.csrf_token(&principal.session);
        Ok(Self {
            principal,
            lang: lang_of(&parts.headers),
            here: parts.uri.path_and_query().map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
            csrf,
        })
    }
}

impl Ctx {
    pub(crate) fn t(&self, key: &'static str) -> &'static str {
        t(self.lang, key)
    }
}

/// A whole page around `body`.
pub(crate) fn page(ctx: &Ctx, title: &str, body: &str) -> Html<String> {
    let l = ctx.lang;
    let other = if l == Lang::Ru { Lang::En } else { Lang::Ru };
    let other_name = if l == Lang::Ru { "English" } else { "Русский" };
    let admin = if ctx.principal.is_admin() {
        format!(
            r#"<a href="/policies">{}</a><a href="/releases">{}</a><a href="/users">{}</a>"#,
            t(l, "policies"),
            t(l, "releases"),
            t(l, "users")
        )
    } else {
        String::new()
    };
    Html(format!(
        r#"<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} — Parta</title><link rel="stylesheet" href="/static/parta.css"></head>
<body><header class="top"><a class="brand" href="/">Parta</a>
<nav><a href="/">{overview}</a><a href="/connectivity">{conn}</a><a href="/compliance">{compl}</a><a href="/tokens">{tokens}</a>{admin}</nav>
<div class="who"><span id="who">{login} · {role} · {scope}</span>
<a id="lang-switch" href="/lang/{other}?next={here}">{other_name}</a>
<form method="post" action="/logout"><input type="hidden" name="csrf" value="{csrf}"><button id="sign-out">{signout}</button></form></div></header>
<main>{notice}<h1>{title}</h1>
{body}
</main></body></html>"#,
        lang = l.code(),
        title = esc(title),
        overview = t(l, "overview"),
        conn = t(l, "connectivity"),
        compl = t(l, "compliance"),
        tokens = t(l, "tokens"),
        login = esc(&ctx.principal.login),
        role = ctx.principal.role.as_str(),
        scope = esc(&ctx.principal.scope.to_string()),
        other = other.code(),
        here = urlencode(&ctx.here),
        csrf = esc(&ctx.csrf),
        signout = t(l, "sign_out"),
        notice = match &ctx.principal.scope {
            crate::auth::AccessScope::Unresolved { .. } => {
                format!(r#"<p class="error" id="scope-unresolved">{}</p>"#, t(l, "scope_unresolved"))
            }
            _ => String::new(),
        },
    ))
}

/// A page with a status other than 200 (403, 404, 400).
pub(crate) fn error_page(ctx: &Ctx, status: StatusCode, title: &'static str, text: &str) -> Response {
    (status, page(ctx, ctx.t(title), &format!("<p class=\"error\">{}</p>", esc(text)))).into_response()
}
