//! The UI's pages.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::{Ctx, Lang, esc, page, t, urlencode};
use crate::api::usage::DayRange;
use crate::api::{ApiState, AppError};
use crate::auth::{AccessScope, Accounts, LoginError, Place, SESSION_COOKIE, SESSION_TTL};
use crate::storage::now_secs;
use crate::storage::overview::OverviewRows;

pub(super) type Page = Result<Response, Response>;

/// An equipment class as people name it: the norm profile's category that counts it
/// («Ноутбук педагога (teacher_laptop)»), else the class id as the agent reported it.
fn class_label(st: &ApiState, lang: Lang, class: &str) -> String {
    if class.is_empty() {
        return "—".to_owned();
    }
    let category =
        st.profiles.iter().flat_map(|p| &p.categories).find(|k| k.classes.iter().any(|x| x == class));
    match category {
        Some(k) => format!("{} ({class})", if lang == Lang::Ru { &k.name } else { &k.name_en }),
        None => class.to_owned(),
    }
}

/// An API error as a page.
pub(super) fn fail(c: &Ctx, e: AppError) -> Response {
    match e {
        AppError::Forbidden(_) => {
            super::error_page(c, StatusCode::FORBIDDEN, "forbidden", c.t("forbidden_text"))
        }
        AppError::NotFound(m) => super::error_page(c, StatusCode::NOT_FOUND, "not_found", &m),
        AppError::BadRequest(m) => super::error_page(c, StatusCode::BAD_REQUEST, "bad_request", &m),
        other => other.into_response(),
    }
}

/// A period from `from`/`to`; the last 30 days by default.
#[derive(Debug, Clone, Deserialize, Default)]
pub(crate) struct PeriodQuery {
    from: Option<String>,
    to: Option<String>,
    region: Option<String>,
    school: Option<String>,
    scope: Option<String>,
    compute: Option<String>,
}

/// The period of a page: the API's day range, by default the last 30 days.
#[derive(Debug, Clone, Copy)]
struct Period(DayRange);

impl Period {
    /// The period of `q`, by default the 30 days up to `today` (the region's date).
    fn of(q: &PeriodQuery, today: time::Date) -> Result<Self, AppError> {
        DayRange::parse(q.from.as_deref(), q.to.as_deref(), 30, today).map(Self)
    }

    fn strings(self) -> (String, String) {
        self.0.strings()
    }

    /// `from=…&to=…` for links.
    fn query(self) -> String {
        let (f, t) = self.strings();
        format!("from={f}&to={t}")
    }

    /// The filter form (GET), keeping `extra` hidden fields.
    fn form(self, c: &Ctx, extra: &[(&str, &str)]) -> String {
        let hidden: String = extra
            .iter()
            .map(|(k, v)| format!(r#"<input type="hidden" name="{k}" value="{}">"#, esc(v)))
            .collect();
        self.form_around(c, &hidden, "")
    }

    /// The filter form (GET) with `before` ahead of the dates and `after` behind the button.
    fn form_around(self, c: &Ctx, before: &str, after: &str) -> String {
        let (f, to) = self.strings();
        format!(
            r#"<form class="filter" method="get">{before}<label>{period}, {from}<input type="date" name="from" value="{f}"></label><label>{tol}<input type="date" name="to" value="{to}"></label><button>{apply}</button>{after}</form>"#,
            period = c.t("period"),
            from = c.t("from"),
            tol = c.t("to"),
            apply = c.t("apply"),
        )
    }
}

/// A number with a decimal comma in Russian.
fn num(lang: Lang, x: f64, decimals: usize) -> String {
    let s = format!("{x:.decimals$}");
    if lang == Lang::Ru { s.replace('.', ",") } else { s }
}

fn pct(lang: Lang, part: f64, whole: f64) -> String {
    if whole > 0.0 { format!("{} %", num(lang, 100.0 * part / whole, 0)) } else { "—".into() }
}

/// Everything one overview line adds up.
#[derive(Debug, Default, Clone)]
struct Agg {
    schools: u64,
    agents: u64,
    online: u64,
    device_days: u64,
    used_days: u64,
    in_use_ms: i64,
    espd_tested: u64,
    espd_meets: u64,
    compl_computed: u64,
    compl_ok: u64,
}

impl Agg {
    fn add(&mut self, o: &Agg) {
        self.schools += o.schools;
        self.agents += o.agents;
        self.online += o.online;
        self.device_days += o.device_days;
        self.used_days += o.used_days;
        self.in_use_ms += o.in_use_ms;
        self.espd_tested += o.espd_tested;
        self.espd_meets += o.espd_meets;
        self.compl_computed += o.compl_computed;
        self.compl_ok += o.compl_ok;
    }
}

/// Per school figures from the overview rows.
fn per_school(rows: &OverviewRows) -> HashMap<String, Agg> {
    let mut m: HashMap<String, Agg> = HashMap::new();
    for u in &rows.usage {
        let a = m.entry(u.school_id.clone()).or_default();
        a.device_days = u.device_days;
        a.used_days = u.device_days_used;
        a.in_use_ms = u.in_use_ms;
    }
    for e in &rows.espd {
        let a = m.entry(e.school_id.clone()).or_default();
        if let Some(meets) = e.meets() {
            a.espd_tested = 1;
            a.espd_meets = u64::from(meets);
        }
    }
    for g in &rows.agents {
        let a = m.entry(g.school_id.clone()).or_default();
        a.agents = u64::from(g.agents);
        a.online = u64::from(g.online);
    }
    for c in &rows.compliance {
        let a = m.entry(c.school_id.clone()).or_default();
        a.compl_computed = 1;
        a.compl_ok = u64::from(c.status == "ok");
    }
    m
}

/// The schools an account sees: registered ones in its scope, and for `all` also schools that
/// report without being registered.
async fn universe(st: &ApiState, c: &Ctx) -> Result<Vec<(String, Place)>, AppError> {
    let p = &c.principal;
    st.accounts.ensure_fresh(&st.store).await;
    let mut v = st.accounts.visible_schools(&p.scope);
    if p.scope == AccessScope::All {
        let known: std::collections::HashSet<String> = v.iter().map(|s| s.0.clone()).collect();
        for id in st.store.reporting_schools().await? {
            if !known.contains(&id) {
                let place = Place {
                    region: String::new(),
                    municipality: c.t("outside_registry").to_owned(),
                    name: String::new(),
                };
                v.push((id, place));
            }
        }
    }
    Ok(v)
}

/// One school's line: its figures (none yet: zeros), counted as one school.
fn one_school(figs: &HashMap<String, Agg>, id: &str) -> Agg {
    Agg { schools: 1, ..figs.get(id).cloned().unwrap_or_default() }
}

async fn figures(
    st: &ApiState,
    schools: &[String],
    period: Period,
) -> Result<HashMap<String, Agg>, AppError> {
    let (from, to) = period.strings();
    let rows = st.store.overview(schools, &from, &to, now_secs().saturating_sub(86_400)).await?;
    Ok(per_school(&rows))
}

fn agg_table(c: &Ctx, first: &str, rows: &[(String, Agg)]) -> String {
    let l = c.lang;
    let mut h = format!(
        r#"<table id="overview"><thead><tr><th>{first}</th><th class="num">{schools}</th><th class="num">{agents}</th><th class="num">{used}</th><th class="num">{hours}</th><th class="num">{espd}</th><th class="num">{compl}</th></tr></thead><tbody>"#,
        schools = c.t("schools"),
        agents = c.t("agents_online"),
        used = c.t("used_share"),
        hours = c.t("in_use_per_device"),
        espd = c.t("espd_status"),
        compl = c.t("compliance_status"),
    );
    let mut total = Agg::default();
    for (link, a) in rows {
        total.add(a);
        h.push_str(&agg_row(l, link, a));
    }
    if rows.len() > 1 {
        h.push_str(&agg_row(l, "<b>Σ</b>", &total));
    }
    h.push_str("</tbody></table>");
    h
}

fn agg_row(l: Lang, link: &str, a: &Agg) -> String {
    let hours = if a.device_days > 0 {
        num(l, a.in_use_ms as f64 / 3_600_000.0 / a.device_days as f64, 1)
    } else {
        "—".into()
    };
    let espd = if a.espd_tested > 0 {
        let cls = if a.espd_meets == a.espd_tested { "ok" } else { "bad" };
        format!(r#"<span class="{cls}">{} / {}</span>"#, a.espd_meets, a.espd_tested)
    } else {
        format!(r#"<span class="muted">{}</span>"#, t(l, "no_data"))
    };
    let compl = if a.compl_computed > 0 {
        let cls = if a.compl_ok == a.compl_computed { "ok" } else { "warn" };
        format!(r#"<span class="{cls}">{} / {}</span>"#, a.compl_ok, a.compl_computed)
    } else {
        format!(r#"<span class="muted">{}</span>"#, t(l, "not_computed"))
    };
    format!(
        r#"<tr><td>{link}</td><td class="num">{}</td><td class="num">{} / {}</td><td class="num">{}</td><td class="num">{hours}</td><td class="num">{espd}</td><td class="num">{compl}</td></tr>"#,
        a.schools,
        a.online,
        a.agents,
        pct(l, a.used_days as f64, a.device_days as f64),
    )
}

/// `/`: regions (when more than one) and their municipalities.
pub(crate) async fn overview(State(st): State<Arc<ApiState>>, c: Ctx, Query(q): Query<PeriodQuery>) -> Page {
    let period = Period::of(&q, st.today()).map_err(|e| fail(&c, e))?;
    let schools = universe(&st, &c).await.map_err(|e| fail(&c, e))?;
    let schools: Vec<(String, Place)> = match &q.region {
        Some(r) => schools.into_iter().filter(|s| &s.1.region == r).collect(),
        None => schools,
    };
    let ids: Vec<String> = schools.iter().map(|s| s.0.clone()).collect();
    let figs = figures(&st, &ids, period).await.map_err(|e| fail(&c, e))?;
    let mut by_muni: BTreeMap<(String, String), Agg> = BTreeMap::new();
    for (id, place) in &schools {
        by_muni
            .entry((place.region.clone(), place.municipality.clone()))
            .or_default()
            .add(&one_school(&figs, id));
    }
    let mut body = period.form(&c, q.region.as_ref().map(|r| ("region", r.as_str())).as_slice());
    let regions: std::collections::BTreeSet<&String> = by_muni.keys().map(|k| &k.0).collect();
    let pq = period.query();
    for region in regions {
        if !region.is_empty() {
            let _ = write!(body, "<h2>{} {}</h2>", c.t("region"), esc(region));
        }
        let rows: Vec<(String, Agg)> = by_muni
            .iter()
            .filter(|(k, _)| &k.0 == region)
            .map(|(k, a)| {
                let link = if region.is_empty() {
                    esc(&k.1)
                } else {
                    format!(r#"<a href="/m/{}/{}?{pq}">{}</a>"#, urlencode(&k.0), urlencode(&k.1), esc(&k.1))
                };
                (link, a.clone())
            })
            .collect();
        body.push_str(&agg_table(&c, c.t("municipality"), &rows));
    }
    // Unregistered schools (seen by `all` accounts) are listed one by one.
    let outside: Vec<(String, Agg)> = schools
        .iter()
        .filter(|s| s.1.region.is_empty())
        .map(|(id, _)| {
            (format!(r#"<a href="/s/{}?{pq}">{}</a>"#, urlencode(id), esc(id)), one_school(&figs, id))
        })
        .collect();
    if !outside.is_empty() {
        let _ = write!(body, "<h2>{}</h2>", c.t("outside_registry"));
        body.push_str(&agg_table(&c, c.t("school"), &outside));
    }
    Ok(page(&c, c.t("overview"), &body).into_response())
}

/// `/m/{region}/{name}`: a municipality's schools (a name alone is not enough: many regions
/// have an «Октябрьский район»).
pub(crate) async fn municipality(
    State(st): State<Arc<ApiState>>,
    c: Ctx,
    Path((region, name)): Path<(String, String)>,
    Query(q): Query<PeriodQuery>,
) -> Page {
    let period = Period::of(&q, st.today()).map_err(|e| fail(&c, e))?;
    let schools: Vec<(String, Place)> = universe(&st, &c)
        .await
        .map_err(|e| fail(&c, e))?
        .into_iter()
        .filter(|s| s.1.region == region && s.1.municipality == name)
        .collect();
    if schools.is_empty() {
        // Not in the scope, or no such municipality: the same answer.
        return Err(fail(&c, AppError::Forbidden(String::new())));
    }
    let ids: Vec<String> = schools.iter().map(|s| s.0.clone()).collect();
    let figs = figures(&st, &ids, period).await.map_err(|e| fail(&c, e))?;
    let pq = period.query();
    let rows: Vec<(String, Agg)> = schools
        .iter()
        .map(|(id, place)| {
            let label = if place.name.is_empty() { id.clone() } else { format!("{} ({id})", place.name) };
            (format!(r#"<a href="/s/{}?{pq}">{}</a>"#, urlencode(id), esc(&label)), one_school(&figs, id))
        })
        .collect();
    let mut body = period.form(&c, &[]);
    let _ = write!(
        body,
        r#"<p class="exports"><a class="button" href="/compliance?scope={}&{pq}">{}</a><a class="button" href="/connectivity?{pq}">{}</a></p>"#,
        urlencode(&format!("municipality:{region}/{name}")),
        c.t("compliance"),
        c.t("connectivity")
    );
    body.push_str(&agg_table(&c, c.t("school"), &rows));
    Ok(page(&c, &format!("{} — {name}", c.t("municipality")), &body).into_response())
}

/// A bar chart of hours per day: `(label, powered h, in-use h)`, 0–24 h.
fn day_chart(c: &Ctx, days: &[(String, f64, f64)]) -> String {
    let w = 8usize;
    let hgt = 72.0;
    let width = (days.len() * w).max(120) + 30;
    let mut s = format!(
        r#"<svg class="chart" width="{width}" height="{}" viewBox="0 0 {width} {}" role="img">"#,
        hgt + 6.0,
        hgt + 6.0
    );
    let _ = write!(s, r##"<text x="0" y="10" font-size="9" fill="#5b6474">24</text>"##);
    for (i, (label, on, used)) in days.iter().enumerate() {
        let x = 22 + i * w;
        let on_h = (on / 24.0).clamp(0.0, 1.0) * hgt;
        let used_h = (used / 24.0).clamp(0.0, 1.0) * hgt;
        let _ = write!(
            s,
            r#"<g><title>{} — {}: {} {}, {}: {} {}</title><rect class="bar-on" x="{x}" y="{:.1}" width="{}" height="{on_h:.1}"/><rect class="bar-use" x="{x}" y="{:.1}" width="{}" height="{used_h:.1}"/></g>"#,
            esc(label),
            c.t("legend_powered"),
            num(c.lang, *on, 1),
            if c.lang == Lang::Ru { "ч" } else { "h" },
            c.t("legend_in_use"),
            num(c.lang, *used, 1),
            if c.lang == Lang::Ru { "ч" } else { "h" },
            3.0 + hgt - on_h,
            w - 2,
            3.0 + hgt - used_h,
            w - 2,
        );
    }
    s.push_str("</svg>");
    s
}

fn legend(c: &Ctx) -> String {
    format!(
        r#"<p class="legend"><span class="bar-on" style="background:#b9cde6"></span>{}<span style="background:#1f5fa8"></span>{}</p>"#,
        c.t("legend_powered"),
        c.t("legend_in_use")
    )
}

/// The weekday × hour heatmap: average devices in use in each hour.
fn heatmap(c: &Ctx, period: Period, cells: &[crate::storage::overview::HeatCellRow], tz: &str) -> String {
    // How many of each weekday the period has.
    let mut weekdays = [0u32; 8];
    let mut d = period.0.from;
    while d <= period.0.to {
        weekdays[usize::from(d.weekday().number_from_monday())] += 1;
        match d.next_day() {
            Some(n) => d = n,
            None => break,
        }
    }
    let mut avg = [[0f64; 24]; 8];
    let mut max = 0f64;
    for cell in cells {
        let (w, h) = (usize::from(cell.weekday).min(7), usize::from(cell.hour).min(23));
        if weekdays[w] > 0 {
            avg[w][h] = cell.in_use_ms as f64 / 3_600_000.0 / f64::from(weekdays[w]);
            max = max.max(avg[w][h]);
        }
    }
    let names: [&str; 7] = if c.lang == Lang::Ru {
        ["Пн", "Вт", "Ср", "Чт", "Пт", "Сб", "Вс"]
    } else {
        ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    };
    let mut s = String::from(r#"<table class="heat" id="heatmap"><tr><th></th>"#);
    for h in 0..24 {
        let _ = write!(s, "<th>{h}</th>");
    }
    s.push_str("</tr>");
    for (i, name) in names.iter().enumerate() {
        let _ = write!(s, "<tr><th>{name}</th>");
        for (h, &v) in avg[i + 1].iter().enumerate() {
            let alpha = if max > 0.0 { v / max } else { 0.0 };
            let fg = if alpha > 0.55 { "#fff" } else { "#1d2330" };
            let text = if v >= 0.05 { num(c.lang, v, 1) } else { String::new() };
            let _ = write!(
                s,
                r#"<td style="background:rgba(31,95,168,{alpha:.2});color:{fg}" title="{name} {h}:00 — {}">{text}</td>"#,
                num(c.lang, v, 2)
            );
        }
        s.push_str("</tr>");
    }
    let _ = write!(s, r#"</table><p class="muted">{} {}.</p>"#, c.t("heatmap_note"), esc(tz));
    s
}

/// `/s/{id}`: a school.
pub(crate) async fn school(
    State(st): State<Arc<ApiState>>,
    c: Ctx,
    Path(id): Path<String>,
    Query(q): Query<PeriodQuery>,
) -> Page {
    let p = &c.principal;
    let period = Period::of(&q, st.today()).map_err(|e| fail(&c, e))?;
    parta_protocol::validate::validate_school_id(&id)
        .map_err(|e| fail(&c, AppError::BadRequest(format!("school: {e}"))))?;
    st.check_school(p, &id).map_err(|e| fail(&c, e))?;
    let (from, to) = period.strings();
    let place = st.accounts.place(&id);
    let (devices, class_days, cells, agents, snmp) = tokio::try_join!(
        st.store.school_devices(&id, &from, &to),
        st.store.school_class_days(&id, &from, &to),
        st.store.school_heatmap(&id, &from, &to, &st.web.timezone),
        st.store.list_devices(Some(&id)),
        st.store.list_snmp_devices(Some(&id)),
    )
    .map_err(|e| fail(&c, e.into()))?;
    let mut last_seen: HashMap<String, u32> = HashMap::new();
    for a in &agents {
        last_seen.insert(a.device_id.to_string(), a.last_seen);
    }
    for s in &snmp {
        last_seen.insert(s.device_id.to_string(), s.last_seen);
    }
    let pq = period.query();
    let mut body = period.form(&c, &[]);
    if let Some(pl) = &place {
        let _ = write!(
            body,
            r#"<p>{} {} · <a href="/m/{}/{}?{pq}">{}</a></p>"#,
            c.t("region"),
            esc(&pl.region),
            urlencode(&pl.region),
            urlencode(&pl.municipality),
            esc(&pl.municipality)
        );
    }
    let _ = write!(
        body,
        r#"<p class="exports"><a class="button" href="/compliance?scope={}&{pq}">{}</a><a class="button" href="/connectivity?school={}&{pq}">{}</a></p>"#,
        urlencode(&format!("school:{id}")),
        c.t("compliance"),
        urlencode(&id),
        c.t("connectivity")
    );

    // Per class: daily hours per device.
    let _ = write!(body, "<h2>{}</h2>{}", c.t("daily_by_class"), legend(&c));
    let mut classes: BTreeMap<String, Vec<(String, f64, f64)>> = BTreeMap::new();
    for r in &class_days {
        let per = f64::from(r.devices.max(1));
        classes.entry(r.equipment_class.clone()).or_default().push((
            crate::storage::queries::day_string(r.day),
            r.powered_ms as f64 / 3_600_000.0 / per,
            r.in_use_ms as f64 / 3_600_000.0 / per,
        ));
    }
    if classes.is_empty() {
        let _ = write!(body, r#"<p class="muted">{}</p>"#, c.t("no_data"));
    }
    for (class, days) in &classes {
        let _ = write!(body, "<h3>{}</h3>{}", esc(&class_label(&st, c.lang, class)), day_chart(&c, days));
    }

    let _ = write!(body, "<h2>{}</h2>{}", c.t("heatmap"), heatmap(&c, period, &cells, &st.web.timezone));

    // Rooms and devices.
    let _ = write!(
        body,
        r#"<h2>{}</h2><table id="devices"><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th class="num">{}</th><th class="num">{}</th><th class="num">{}</th><th>{}</th></tr></thead><tbody>"#,
        c.t("rooms_devices"),
        c.t("room"),
        c.t("device"),
        c.t("class"),
        c.t("kind"),
        c.t("powered_h"),
        c.t("in_use_h"),
        c.t("days_used"),
        c.t("last_seen"),
    );
    for d in &devices {
        // A display reports through its host.
        let seen = last_seen.get(&d.device_id).or_else(|| last_seen.get(&d.host_id)).copied();
        let label = if d.label.is_empty() { &d.device_id } else { &d.label };
        let _ = write!(
            body,
            r#"<tr><td>{}</td><td><a href="/d/{}?{pq}">{}</a></td><td>{}</td><td>{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td>{}</td></tr>"#,
            esc(&d.room),
            esc(&d.device_id),
            esc(label),
            esc(&class_label(&st, c.lang, &d.equipment_class)),
            esc(&d.kind),
            num(c.lang, d.powered_ms as f64 / 3_600_000.0, 1),
            num(c.lang, d.in_use_ms as f64 / 3_600_000.0, 1),
            d.days_used,
            seen.map(crate::clock::rfc3339).unwrap_or_default(),
        );
    }
    body.push_str("</tbody></table>");
    body.push_str(&school_policy_html(&st, &c, &id, &agents).await.map_err(|e| fail(&c, e))?);
    let title = place
        .as_ref()
        .filter(|pl| !pl.name.is_empty())
        .map_or_else(|| format!("{} {id}", c.t("school")), |pl| format!("{} ({id})", pl.name));
    Ok(page(&c, &title, &body).into_response())
}

/// A school's effective policy and where each of its agents stands with its own.
async fn school_policy_html(
    st: &ApiState,
    c: &Ctx,
    school: &str,
    agents: &[crate::storage::queries::DeviceListRow],
) -> Result<String, AppError> {
    let set = st.policies.set();
    let view = set.view(school, None).map_err(|e| AppError::Internal(format!("policy of {school}: {e}")))?;
    let mut out = super::policies::view_html(c, &view, None);
    let statuses = st.policy_statuses().await?;
    let now = crate::clock::now_ms();
    let _ = write!(
        out,
        r#"<table id="agent-policies"><tr><th>{}</th><th>{}</th><th class="num">{}</th></tr>"#,
        c.t("device"),
        c.t("policy_state"),
        c.t("policy_running")
    );
    for a in agents {
        let Some(f) = st.book.device(parta_protocol::DeviceId(a.device_id)) else { continue };
        let current = set.layers(f.school(), Some(f.id)).version();
        let s = crate::policy::state::of(current, statuses.get(&a.device_id), now, st.policy_drift_after);
        let _ = write!(
            out,
            r#"<tr><td><a href="/d/{id}">{host}</a></td><td>{}</td><td class="num">{}</td></tr>"#,
            super::policies::state_html(c, &s),
            if s.running_version == 0 { "—".to_owned() } else { s.running_version.to_string() },
            id = esc(&a.device_id.to_string()),
            host = esc(if a.hostname.is_empty() { "—" } else { &a.hostname }),
        );
    }
    out.push_str("</table>");
    Ok(out)
}

/// Renders JSON as nested definition lists and tables.
fn json_html(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            let mut s = String::from(r#"<dl class="kv">"#);
            for (k, v) in m {
                let _ = write!(s, "<dt>{}</dt><dd>{}</dd>", esc(k), json_html(v));
            }
            s.push_str("</dl>");
            s
        }
        Value::Array(items) if items.iter().all(Value::is_object) && !items.is_empty() => {
            let mut keys: Vec<&String> = Vec::new();
            for it in items {
                if let Value::Object(m) = it {
                    for k in m.keys() {
                        if !keys.contains(&k) {
                            keys.push(k);
                        }
                    }
                }
            }
            let mut s = String::from("<table><tr>");
            for k in &keys {
                let _ = write!(s, "<th>{}</th>", esc(k));
            }
            s.push_str("</tr>");
            for it in items {
                s.push_str("<tr>");
                for k in &keys {
                    let _ = write!(s, "<td>{}</td>", it.get(k.as_str()).map(json_html).unwrap_or_default());
                }
                s.push_str("</tr>");
            }
            s.push_str("</table>");
            s
        }
        Value::Array(items) => items.iter().map(json_html).collect::<Vec<_>>().join(", "),
        Value::String(x) => esc(x),
        Value::Null => "—".into(),
        other => esc(&other.to_string()),
    }
}

/// `/d/{id}`: a device.
pub(crate) async fn device(
    State(st): State<Arc<ApiState>>,
    c: Ctx,
    Path(id): Path<String>,
    Query(q): Query<PeriodQuery>,
) -> Page {
    let period = Period::of(&q, st.today()).map_err(|e| fail(&c, e))?;
    // One scope check for the whole page; the API's builders below assume it.
    let device = crate::api::usage::parse_device(&id).map_err(|e| fail(&c, e))?;
    st.check_device(&c.principal, device).await.map_err(|e| fail(&c, e))?;
    let detail = crate::api::usage::device_detail(&st, device).await.map_err(|e| fail(&c, e))?;
    let mut body = period.form(&c, &[]);
    let pq = period.query();
    let _ = write!(
        body,
        r#"<p><a href="/s/{}?{pq}">{} {}</a></p>"#,
        urlencode(&detail.school_id),
        c.t("school"),
        esc(&detail.school_id)
    );
    let usage = crate::api::usage::device_usage_of(&st, device, period.0).await.map_err(|e| fail(&c, e))?;
    let days: Vec<(String, f64, f64)> =
        usage.days.iter().map(|d| (d.date.clone().unwrap_or_default(), d.powered_h, d.in_use_h)).collect();
    let _ = write!(body, "<h2>{}</h2>{}{}", c.t("usage_timeline"), legend(&c), day_chart(&c, &days));
    match detail.kind.as_str() {
        "network" => {
            let ifs = crate::api::snmp::interfaces_of(&st, device, period.0, None)
                .await
                .map_err(|e| fail(&c, e))?;
            let _ = write!(
                body,
                r#"<h2>{}</h2><table id="interfaces"><tr><th>#</th><th>ifName</th><th>ifAlias</th><th class="num">Mbit/s</th><th>status</th><th class="num">rx max, Mbit/s</th><th class="num">tx max, Mbit/s</th></tr>"#,
                c.t("interfaces")
            );
            for i in &ifs.interfaces {
                let mbps = |b: Option<u64>| b.map_or_else(|| "—".into(), |b| num(c.lang, b as f64 / 1e6, 1));
                let _ = write!(
                    body,
                    r#"<tr><td>{}</td><td>{}</td><td>{}</td><td class="num">{}</td><td>{}</td><td class="num">{}</td><td class="num">{}</td></tr>"#,
                    i.index,
                    esc(&i.name),
                    esc(&i.alias),
                    i.speed_mbps,
                    esc(&i.status_last),
                    mbps(i.rx_bps_max),
                    mbps(i.tx_bps_max)
                );
            }
            body.push_str("</table>");
        }
        "printer" => {
            let pages = crate::api::snmp::pages_of(&st, device, period.0).await.map_err(|e| fail(&c, e))?;
            let _ = write!(
                body,
                r#"<h2>{}: {}</h2><table id="pages"><tr><th>{}</th><th class="num">{}</th></tr>"#,
                c.t("pages"),
                pages.total_pages,
                c.t("date"),
                c.t("pages")
            );
            for d in &pages.days {
                let _ = write!(body, r#"<tr><td>{}</td><td class="num">{}</td></tr>"#, esc(&d.date), d.pages);
            }
            body.push_str("</table>");
        }
        _ => {}
    }
    if let Some(f) = st.book.device(device) {
        body.push_str(&enrollment_html(&c, &f));
    }
    if let Some(p) = &detail.policy {
        body.push_str(&super::policies::view_html(&c, &p.effective, Some(&p.state)));
    }
    body.push_str(&super::releases::device_html(&st, &c, device.0).await.map_err(|e| fail(&c, e))?);
    let _ = write!(
        body,
        "<h2>{}</h2>{}",
        c.t("inventory"),
        json_html(&serde_json::to_value(&detail).unwrap_or_default())
    );
    let title = format!("{} {}", c.t("device"), detail.device_id);
    Ok(page(&c, &title, &body).into_response())
}

/// A device's enrollment: state, when it enrolled, until when its certificate is valid, and
/// which schools it belonged to.
fn enrollment_html(c: &Ctx, d: &crate::fleet::book::Device) -> String {
    let rfc = crate::clock::rfc3339;
    let state = if d.revoked() { c.t("revoked") } else { c.t("active") };
    let mut out = format!(
        r#"<h2>{}</h2><table id="enrollment"><tr><th>{}</th><td>{}</td></tr><tr><th>{}</th><td>{}</td></tr><tr><th>{}</th><td>{}</td></tr></table>"#,
        c.t("enrollment"),
        c.t("state"),
        if d.revoked() {
            format!("{state} ({}, {})", esc(&rfc(d.row.state_at)), esc(&d.row.state_by))
        } else {
            state.to_owned()
        },
        c.t("enrolled_at"),
        esc(&rfc(d.row.enrolled_at)),
        c.t("credential_until"),
        d.credential_expires().map_or_else(|| "—".to_owned(), |t| esc(&rfc(t))),
    );
    let _ = write!(
        out,
        r#"<h3>{}</h3><table id="school-history"><tr><th>{}</th><th>{}</th><th>{}</th></tr>"#,
        c.t("school_history"),
        c.t("school"),
        c.t("since"),
        c.t("by_whom")
    );
    for s in &d.schools {
        let since = crate::fleet::book::since(s.since_ms).unwrap_or_else(|| c.t("from_start").to_owned());
        let why = if s.reason == "moved" { c.t("moved") } else { c.t("enrolled") };
        let _ = write!(
            out,
            r#"<tr><td><a href="/s/{}">{}</a></td><td>{}</td><td>{} ({why})</td></tr>"#,
            urlencode(&s.school),
            esc(&s.school),
            esc(&since),
            esc(&s.by)
        );
    }
    out.push_str("</table>");
    out
}

/// `/connectivity`: ЕСПД per school of the scope, or one school's detail (`?school=`).
pub(crate) async fn connectivity(
    State(st): State<Arc<ApiState>>,
    c: Ctx,
    Query(q): Query<PeriodQuery>,
) -> Page {
    let period = Period::of(&q, st.today()).map_err(|e| fail(&c, e))?;
    let (from, to) = period.strings();
    let pq = period.query();
    if let Some(school) = &q.school {
        parta_protocol::validate::validate_school_id(school)
            .map_err(|e| fail(&c, AppError::BadRequest(format!("school: {e}"))))?;
        st.check_school(&c.principal, school).map_err(|e| fail(&c, e))?;
        let j = crate::api::connectivity::connectivity_of(&st, school.clone(), period.0)
            .await
            .map_err(|e| fail(&c, e))?;
        let mut body = period.form(&c, &[("school", school)]);
        let _ = write!(
            body,
            r#"<p><a href="/s/{}?{pq}">{} {}</a></p>"#,
            urlencode(school),
            c.t("school"),
            esc(school)
        );
        body.push_str(&json_html(&serde_json::to_value(&j).unwrap_or_default()));
        return Ok(page(&c, &format!("{} — {school}", c.t("connectivity")), &body).into_response());
    }
    let schools = universe(&st, &c).await.map_err(|e| fail(&c, e))?;
    let ids: Vec<String> = schools.iter().map(|s| s.0.clone()).collect();
    let rows = st.store.overview(&ids, &from, &to, 0).await.map_err(|e| fail(&c, e.into()))?;
    let espd: HashMap<&str, &crate::storage::overview::SchoolEspdRow> =
        rows.espd.iter().map(|e| (e.school_id.as_str(), e)).collect();
    let mut body = period.form(&c, &[]);
    let _ = write!(
        body,
        r#"<table id="espd"><tr><th>{}</th><th>{}</th><th class="num">{}</th><th class="num">{}</th><th class="num">{}</th><th class="num">{}</th><th class="num">{}</th><th>{}</th></tr>"#,
        c.t("municipality"),
        c.t("school"),
        c.t("checks"),
        c.t("passed"),
        c.t("tests"),
        c.t("met"),
        c.t("required"),
        c.t("verdict")
    );
    for (id, place) in &schools {
        let e = espd.get(id.as_str());
        let verdict = match e.and_then(|e| e.meets()) {
            Some(true) => format!(r#"<span class="ok">{}</span>"#, c.t("meets")),
            Some(false) => format!(r#"<span class="bad">{}</span>"#, c.t("below")),
            None => format!(r#"<span class="muted">{}</span>"#, c.t("no_data")),
        };
        let _ = write!(
            body,
            r#"<tr><td>{}</td><td><a href="/connectivity?school={}&{pq}">{}</a></td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td>{verdict}</td></tr>"#,
            esc(&place.municipality),
            urlencode(id),
            esc(if place.name.is_empty() { id } else { &place.name }),
            e.map_or(0, |e| e.checks),
            e.map_or(0, |e| e.passed),
            e.map_or(0, |e| e.tests),
            e.map_or(0, |e| e.met),
            e.map_or(0, |e| e.required_mbps),
        );
    }
    body.push_str("</table>");
    Ok(page(&c, c.t("connectivity"), &body).into_response())
}

fn status_word(c: &Ctx, s: &str) -> String {
    let (key, cls) = match s {
        "short" => ("st_short", "bad"),
        "not_seen" => ("st_not_seen", "bad"),
        "underused" => ("st_underused", "warn"),
        _ => ("st_ok", "ok"),
    };
    format!(r#"<span class="{cls}">{}</span>"#, c.t(key))
}

/// `/compliance`: pick a scope and period, export, see each school's latest verdict, compute
/// the report on the page.
pub(crate) async fn compliance(
    State(st): State<Arc<ApiState>>,
    c: Ctx,
    Query(q): Query<PeriodQuery>,
) -> Page {
    use crate::compliance::build::{self, Scope};
    let p = &c.principal;
    let period = Period::of(&q, st.today()).map_err(|e| fail(&c, e))?;
    let schools = universe(&st, &c).await.map_err(|e| fail(&c, e))?;
    let registered: Vec<&(String, Place)> = schools.iter().filter(|s| !s.1.region.is_empty()).collect();
    // Scopes to choose from: the regions, municipalities and schools the account sees.
    let mut options: Vec<String> = Vec::new();
    for (id, place) in &registered {
        for o in [
            format!("region:{}", place.region),
            format!("municipality:{}/{}", place.region, place.municipality),
        ] {
            if !options.contains(&o) {
                options.push(o);
            }
        }
        options.push(format!("school:{id}"));
    }
    let chosen = q.scope.clone().or_else(|| match &p.scope {
        AccessScope::All => options.first().cloned(),
        s => Some(s.to_string()),
    });
    let (from, to) = period.strings();
    let mut body = String::new();
    let select: String = options
        .iter()
        .map(|o| {
            let sel = if Some(o) == chosen.as_ref() { " selected" } else { "" };
            format!(r#"<option value="{}"{sel}>{}</option>"#, esc(o), esc(o))
        })
        .collect();
    body.push_str(&period.form_around(
        &c,
        &format!(r#"<label>{}<select name="scope">{select}</select></label>"#, c.t("scope")),
        &format!(r#"<button name="compute" value="1">{}</button>"#, c.t("compute")),
    ));
    let Some(scope_text) = chosen else {
        let _ = write!(body, r#"<p class="muted">{}</p>"#, c.t("no_data"));
        return Ok(page(&c, c.t("compliance"), &body).into_response());
    };
    let scope =
        Scope::parse(&scope_text).map_err(|e| fail(&c, AppError::BadRequest(format!("scope: {e}"))))?;
    st.check_report_scope(p, &scope).map_err(|e| fail(&c, e))?;
    let export = |format: &str, label: &str, id: &str| {
        format!(
            r#"<a class="button" id="{id}" href="/api/v1/compliance?scope={}&from={from}&to={to}&format={format}&lang={}">{} {label}</a>"#,
            urlencode(&scope_text),
            c.lang.code(),
            c.t("export"),
        )
    };
    let _ = write!(
        body,
        r#"<p class="exports">{}{}{}</p>"#,
        export("xlsx", "XLSX", "export-xlsx"),
        export("csv", "CSV", "export-csv"),
        export("json", "JSON", "export-json")
    );
    if p.role != crate::auth::Role::Auditor {
        // What the overview shows changes only by this deliberate action, for the canonical
        // period; computing or exporting another period above never does.
        let _ = write!(
            body,
            r#"<form class="filter" method="post" action="/compliance/status"><input type="hidden" name="csrf" value="{}"><input type="hidden" name="scope" value="{}"><button id="update-status">{}</button></form>"#,
            esc(&c.csrf),
            esc(&scope_text),
            c.t("update_status")
        );
    }
    let report_scope = AccessScope::from(&scope);
    let in_scope: Vec<&(String, Place)> =
        registered.iter().copied().filter(|(id, place)| report_scope.covers(id, Some(place))).collect();
    if q.compute.is_some() {
        let req = build::Request {
            scope: scope.clone(),
            from: jiff_date(period.0.from),
            to: jiff_date(period.0.to),
            profile: crate::compliance::profile::DEFAULT_PROFILE.to_owned(),
            format: crate::compliance::export::Format3::Json,
            lang: c.lang.export(),
        };
        let built = build::build(&st.store, &st.profiles, &req, |_| {}).await.map_err(|e| match e {
            build::BuildError::Store(s) => fail(&c, AppError::Storage(s)),
            other => fail(&c, AppError::BadRequest(other.to_string())),
        })?;
        let _ = write!(
            body,
            r#"<h2>{}</h2><table id="categories"><tr><th>{}</th><th class="num">{}</th><th class="num">{}</th><th class="num">{}</th><th class="num">{}</th></tr>"#,
            c.t("category"),
            c.t("category"),
            c.t("required_qty"),
            c.t("on_books"),
            c.t("seen"),
            c.t("used")
        );
        for l in &built.report.categories {
            let _ = write!(
                body,
                r#"<tr><td>{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td></tr>"#,
                esc(&l.name),
                l.required,
                l.on_books,
                l.seen,
                l.used
            );
        }
        body.push_str("</table>");
    }
    let ids: Vec<String> = in_scope.iter().map(|s| s.0.clone()).collect();
    let rows = st.store.overview(&ids, &from, &to, 0).await.map_err(|e| fail(&c, e.into()))?;
    let verdicts: HashMap<&str, &crate::storage::overview::SchoolComplianceRow> =
        rows.compliance.iter().map(|r| (r.school_id.as_str(), r)).collect();
    let _ = write!(
        body,
        r#"<h2>{}</h2><table id="verdicts"><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>"#,
        c.t("verdicts"),
        c.t("municipality"),
        c.t("school"),
        c.t("status"),
        c.t("period"),
        c.t("computed_at")
    );
    for (id, place) in &in_scope {
        let (status, when, span) = match verdicts.get(id.as_str()) {
            Some(v) => (
                status_word(&c, &v.status),
                crate::clock::rfc3339(v.computed_at),
                format!(
                    "{} — {}",
                    crate::storage::queries::day_string(v.period_from),
                    crate::storage::queries::day_string(v.period_to)
                ),
            ),
            None => (
                format!(r#"<span class="muted">{}</span>"#, c.t("not_computed")),
                String::new(),
                String::new(),
            ),
        };
        let _ = write!(
            body,
            r#"<tr><td>{}</td><td><a href="/s/{}">{}</a></td><td>{status}</td><td>{span}</td><td>{when}</td></tr>"#,
            esc(&place.municipality),
            urlencode(id),
            esc(if place.name.is_empty() { id } else { &place.name })
        );
    }
    body.push_str("</table>");
    Ok(page(&c, c.t("compliance"), &body).into_response())
}

#[derive(Debug, Deserialize)]
pub(crate) struct StatusForm {
    csrf: String,
    scope: String,
}

/// `POST /compliance/status`: records the verdicts of a scope for the canonical period (the 90
/// days up to yesterday) — what the overview shows. CSRF-checked; admins and ops within their
/// scope.
pub(crate) async fn update_status(
    State(st): State<Arc<ApiState>>,
    c: Ctx,
    Form(f): Form<StatusForm>,
) -> Page {
    use crate::compliance::build::{self, Scope};
    if let Some(refused) = csrf_refusal(&st, &c, &f.csrf) {
        return Err(refused);
    }
    if c.principal.role == crate::auth::Role::Auditor {
        return Err(fail(
            &c,
            AppError::Forbidden("auditors read; they do not change what the overview shows".into()),
        ));
    }
    let scope = Scope::parse(&f.scope).map_err(|e| fail(&c, AppError::BadRequest(format!("scope: {e}"))))?;
    st.check_report_scope(&c.principal, &scope).map_err(|e| fail(&c, e))?;
    build::update_status(&st.store, &st.profiles, scope, crate::clock::today_in(&st.web.timezone))
        .await
        .map_err(|e| match e {
            build::BuildError::Store(s) => fail(&c, AppError::Storage(s)),
            other => fail(&c, AppError::BadRequest(other.to_string())),
        })?;
    Ok(Redirect::to(&format!("/compliance?scope={}", urlencode(&f.scope))).into_response())
}

fn jiff_date(d: time::Date) -> jiff::civil::Date {
    jiff::civil::Date::new(
        i16::try_from(d.year()).unwrap_or(1970),
        i8::try_from(u8::from(d.month())).unwrap_or(1),
        i8::try_from(d.day()).unwrap_or(1),
    )
    .unwrap_or_default()
}

#[derive(Debug, Deserialize)]
pub(crate) struct CsrfForm {
    csrf: String,
    #[serde(default)]
    comment: String,
}

/// The 403 page when the form lacks the session's CSRF token.
pub(super) fn csrf_refusal(st: &ApiState, c: &Ctx, submitted: &str) -> Option<Response> {
    // Only a browser's session changes anything here: an API token has no session to derive a
    // CSRF token from.
    let genuine = c.principal.via == crate::auth::Via::Session
        && Accounts::tokens_match(&st.accounts.csrf_token(&c.principal.session), submitted);
    (!genuine).then(|| super::error_page(c, StatusCode::FORBIDDEN, "forbidden", c.t("csrf")))
}

fn tokens_page(st: &ApiState, c: &Ctx, created: Option<&str>) -> Response {
    let mut body = String::new();
    if let Some(tok) = created {
        let _ = write!(
            body,
            r#"<p>{}</p><code class="token" id="new-token">{}</code>"#,
            c.t("new_token"),
            esc(tok)
        );
    }
    let _ = write!(
        body,
        r#"<form class="filter" method="post" action="/tokens"><input type="hidden" name="csrf" value="{}"><label>{}<input name="comment" maxlength="200"></label><button id="create-token">{}</button></form><table id="tokens"><tr><th>ID</th><th>{}</th><th>{}</th><th>{}</th><th></th></tr>"#,
        esc(&c.csrf),
        c.t("comment"),
        c.t("create_token"),
        c.t("comment"),
        c.t("created"),
        c.t("status")
    );
    for tk in st.accounts.tokens_of(&c.principal.login) {
        let revoke = if tk.revoked == 0 {
            format!(
                r#"<form method="post" action="/tokens/{}/revoke"><input type="hidden" name="csrf" value="{}"><button>{}</button></form>"#,
                esc(&tk.token_id),
                esc(&c.csrf),
                c.t("revoke")
            )
        } else {
            String::new()
        };
        let _ = write!(
            body,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{revoke}</td></tr>",
            esc(&tk.token_id),
            esc(&tk.comment),
            crate::clock::rfc3339(tk.created_at),
            c.t(if tk.revoked == 0 { "active" } else { "revoked" })
        );
    }
    body.push_str("</table>");
    page(c, c.t("tokens"), &body).into_response()
}

/// `/tokens`: the account's API tokens.
pub(crate) async fn tokens(State(st): State<Arc<ApiState>>, c: Ctx) -> Page {
    st.accounts.ensure_fresh(&st.store).await;
    Ok(tokens_page(&st, &c, None))
}

/// `POST /tokens`: a new token for the account, shown once.
pub(crate) async fn create_token(State(st): State<Arc<ApiState>>, c: Ctx, Form(f): Form<CsrfForm>) -> Page {
    let p = &c.principal;
    if let Some(refused) = csrf_refusal(&st, &c, &f.csrf) {
        return Err(refused);
    }
    let comment: String = f.comment.chars().filter(|ch| !ch.is_control()).take(200).collect();
    let account = st
        .accounts
        .user(&p.login)
        .ok_or_else(|| fail(&c, AppError::Forbidden(crate::api::OUT_OF_SCOPE.into())))?;
    let (token, row) =
        crate::auth::generate_api_token(&account, &comment, now_secs(), crate::clock::now_ms());
    st.store.put_api_token(&row).await.map_err(|e| fail(&c, e.into()))?;
    st.accounts.refresh(&st.store).await.map_err(|e| fail(&c, e.into()))?;
    Ok(tokens_page(&st, &c, Some(&token)))
}

/// `POST /tokens/{id}/revoke`: revokes one of the account's tokens (an admin: anyone's).
pub(crate) async fn revoke_token(
    State(st): State<Arc<ApiState>>,
    c: Ctx,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Page {
    let p = &c.principal;
    if let Some(refused) = csrf_refusal(&st, &c, &f.csrf) {
        return Err(refused);
    }
    let Some(mut row) =
        st.store.api_tokens().await.map_err(|e| fail(&c, e.into()))?.into_iter().find(|t| t.token_id == id)
    else {
        return Err(fail(&c, AppError::NotFound(format!("no token {id}"))));
    };
    if row.login != p.login && !p.is_admin() {
        return Err(fail(&c, AppError::Forbidden(String::new())));
    }
    row.revoked = 1;
    row.version = crate::clock::next_version(row.version);
    st.store.put_api_token(&row).await.map_err(|e| fail(&c, e.into()))?;
    st.accounts.refresh(&st.store).await.map_err(|e| fail(&c, e.into()))?;
    Ok(Redirect::to("/tokens").into_response())
}

/// `/users`: accounts (admin only).
pub(crate) async fn users(State(st): State<Arc<ApiState>>, c: Ctx) -> Page {
    let p = &c.principal;
    if !p.is_admin() {
        return Err(fail(&c, AppError::Forbidden(String::new())));
    }
    st.accounts.ensure_fresh(&st.store).await;
    let mut body = format!(
        r#"<p class="muted">parta-collector user add LOGIN --role admin|ops|auditor --scope …</p><table id="users"><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>"#,
        c.t("login"),
        c.t("role"),
        c.t("scope"),
        c.t("status")
    );
    for u in st.accounts.users() {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&u.login),
            esc(&u.role),
            esc(&u.scope),
            c.t(if u.disabled == 0 { "active" } else { "disabled" })
        );
    }
    body.push_str("</table>");
    Ok(page(&c, c.t("users"), &body).into_response())
}

fn login_html(lang: Lang, csrf: &str, next: &str, error: Option<&str>) -> Html<String> {
    let err =
        error.map(|e| format!(r#"<p class="error" id="login-error">{}</p>"#, esc(e))).unwrap_or_default();
    let other = if lang == Lang::Ru { ("en", "English") } else { ("ru", "Русский") };
    Html(format!(
        r#"<!doctype html><html lang="{code}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title><link rel="stylesheet" href="/static/parta.css"></head>
<body><form class="login" method="post" action="/login"><h1>{title}</h1>{err}
<input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="next" value="{next}">
<label>{login}<input name="login" id="login" autocomplete="username" required autofocus></label>
<label>{password}<input name="password" id="password" type="password" autocomplete="current-password" required></label>
<button id="sign-in">{sign_in}</button> <a href="/lang/{ocode}?next={here}">{oname}</a></form></body></html>"#,
        code = lang.code(),
        title = t(lang, "app"),
        csrf = esc(csrf),
        next = esc(next),
        login = t(lang, "login"),
        password = t(lang, "password"),
        sign_in = t(lang, "sign_in"),
        ocode = other.0,
        oname = other.1,
        here = urlencode(&format!("/login?next={}", urlencode(next))),
    ))
}

#[derive(Debug, Deserialize)]
pub(crate) struct NextQuery {
    next: Option<String>,
}

/// `GET /login`: the form, with a fresh nonce cookie for its CSRF token.
pub(crate) async fn login_form(
    State(st): State<Arc<ApiState>>,
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
) -> Response {
    let lang = super::lang_of(&headers);
    let next = super::safe_next(q.next.as_deref());
    login_response(&st, lang, &next, None, StatusCode::OK)
}

fn login_response(
    st: &ApiState,
    lang: Lang,
    next: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let nonce = hex::encode(rand::RngExt::random::<[u8; 16]>(&mut rand::rng()));
    let mut resp = (status, login_html(lang, &st.accounts.login_token(&nonce), next, error)).into_response();
    set_private_cookie(&mut resp, crate::auth::LOGIN_COOKIE, &nonce, "/login", 3600, st.web.cookie_secure);
    resp
}

/// Adds a `HttpOnly; SameSite=Strict` cookie (and `Secure` when `secure`); `max_age` 0 clears it.
fn set_private_cookie(resp: &mut Response, name: &str, value: &str, path: &str, max_age: u64, secure: bool) {
    let secure = if secure { "; Secure" } else { "" };
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{name}={value}; Path={path}; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    )) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct LoginForm {
    login: String,
    password: String,
    csrf: String,
    #[serde(default)]
    next: String,
}

/// `POST /login`: checks the form's token and the password; sets the session cookie.
pub(crate) async fn login(
    State(st): State<Arc<ApiState>>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let lang = super::lang_of(&headers);
    let next = super::safe_next(Some(&f.next));
    let nonce = super::cookie(&headers, crate::auth::LOGIN_COOKIE).unwrap_or_default();
    if nonce.is_empty() || !Accounts::tokens_match(&st.accounts.login_token(&nonce), &f.csrf) {
        return login_response(&st, lang, &next, Some(t(lang, "csrf")), StatusCode::FORBIDDEN);
    }
    let addr = super::client_address(&st.web, peer.ip(), &headers);
    match st.accounts.sign_in(&st.store, f.login.trim(), &f.password, addr).await {
        Ok(user) => {
            let expires = u64::from(now_secs()) + SESSION_TTL.as_secs();
            let value = st.accounts.session_value(&user, expires);
            tracing::info!(login = %user.login, "signed in");
            let mut resp = Redirect::to(&next).into_response();
            set_private_cookie(
                &mut resp,
                SESSION_COOKIE,
                &value,
                "/",
                SESSION_TTL.as_secs(),
                st.web.cookie_secure,
            );
            resp
        }
        Err(e) => {
            tracing::info!(login = %f.login.chars().take(64).collect::<String>(), error = ?e, "sign-in refused");
            let (status, key) = match e {
                LoginError::Invalid => (StatusCode::UNAUTHORIZED, "bad_login"),
                LoginError::Locked => (StatusCode::TOO_MANY_REQUESTS, "locked"),
                LoginError::Busy => (StatusCode::TOO_MANY_REQUESTS, "busy"),
                LoginError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            };
            login_response(&st, lang, &next, Some(t(lang, key)), status)
        }
    }
}

/// `POST /logout`: clears the session cookie.
pub(crate) async fn logout(State(st): State<Arc<ApiState>>, c: Ctx, Form(f): Form<CsrfForm>) -> Page {
    if let Some(refused) = csrf_refusal(&st, &c, &f.csrf) {
        return Err(refused);
    }
    // Ended on the server, not only forgotten by this browser.
    st.accounts.end_session(&st.store, &c.principal).await.map_err(|e| fail(&c, e.into()))?;
    let mut resp = Redirect::to("/login").into_response();
    set_private_cookie(&mut resp, SESSION_COOKIE, "", "/", 0, false);
    Ok(resp)
}
