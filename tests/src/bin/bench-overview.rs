//! The web UI's region overview on the real ClickHouse: SCHOOLS schools (default 1,000) in 40
//! municipalities, 100 devices each, DAYS days (default 90) of daily usage and ЕСПД checks.
//!
//! `cargo run --release -p parta-tests --bin bench-overview -- [SCHOOLS] [DAYS] [REQUESTS]`
//!
//! The registry goes in through the collector's import code; agents, daily usage and ЕСПД checks
//! are generated inside ClickHouse; the school-day rollups are then computed by the collector's
//! own rollup statements (timed: that is what the ingest pays as data arrives). The collector's
//! HTTP router (the same `api::router` `serve` runs, with accounts, scopes and pages) serves on
//! loopback in this process; `GET /` (the overview of the whole region) is requested REQUESTS
//! times (default 50) with an admin's API token and timed at the client: p50, p95, max, and the
//! page's weight with its stylesheet. Baseline, measured in the same run: the same figures read
//! from the raw tables (usage rollup and checks, deduplicated) instead of the school-day
//! rollups — what the page would cost without them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use parta_collector::api::{self, ApiState};
use parta_collector::auth::Accounts;
use parta_collector::config::{ClickHouseConfig, WebConfig};
use parta_collector::metrics::Metrics;
use parta_collector::storage::Store;
use parta_collector::storage::accounts::UserRow;
use parta_collector::storage::queries::day_string;
use parta_tests::benchdata::{FIRST_DAY, espd_checks_sql, registry, school_id, sql_school, sql_uuid};
use parta_tests::clickhouse::ClickHouse;

/// 2026-08-25, the first day.
const DB: &str = "bench_overview";
const PER_SCHOOL: u64 = 100;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let schools: u64 = args.get(1).map_or(1_000, |s| s.parse().unwrap());
    let days: i64 = args.get(2).map_or(90, |s| s.parse().unwrap());
    let requests: usize = args.get(3).map_or(50, |s| s.parse().unwrap());
    let devices = schools * PER_SCHOOL;
    let ch = ClickHouse::start();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let cfg = ClickHouseConfig {
        url: ch.url(),
        database: DB.into(),
        user: "default".into(),
        password: String::new(),
    };
    let store = rt.block_on(async {
        let store = Store::connect(&cfg).await.unwrap();
        store.migrate().await.unwrap();
        store
    });
    println!("ClickHouse {}; {schools} schools, {devices} devices, {days} days", store.version());
    let (from, to) = (
        day_string(u16::try_from(FIRST_DAY).unwrap()),
        day_string(u16::try_from(FIRST_DAY + days - 1).unwrap()),
    );

    // The registry through the import code.
    let t = Instant::now();
    let registry = registry(schools);
    rt.block_on(store.put_schools(&registry, "bench-schools", 1)).unwrap();
    let n = devices;
    let rows = n * u64::try_from(days).unwrap() * 3;
    let inserts = [
        (
            "agents (devices table)",
            format!(
                "INSERT INTO {DB}.devices (device_id, school_id, kind, agent_version, last_seen, last_seq, uptime_s, boot_time)
                 SELECT {uuid}, {school}, 'computer', '0.1.0', now() - (d % 7) * 36000, 1000, 3600, now() - 3600
                 FROM (SELECT number AS d FROM system.numbers LIMIT {n})",
                uuid = sql_uuid("d"),
                school = sql_school(&format!("intDiv(d, {PER_SCHOOL})"))
            ),
        ),
        (
            "daily usage (in use as pupil/teacher, idle; weekdays)",
            format!(
                "INSERT INTO {DB}.usage_daily (device_id, school_id, local_day, state, user_class, total_ms, version)
                 SELECT {uuid}, {school}, toDate({FIRST_DAY} + day),
                    if(k = 2, 'idle', 'in_use'), multiIf(k = 0, 'pupil', k = 1, 'teacher', 'none'),
                    toInt64((d % 5 + 1) * 1800000), 1
                 FROM (SELECT intDiv(number, {days} * 3) AS d, intDiv(number, 3) % {days} AS day, number % 3 AS k
                       FROM system.numbers LIMIT {rows})
                 WHERE toDayOfWeek(toDate({FIRST_DAY} + day)) <= 5 AND NOT (k < 2 AND d % 7 = 0)",
                uuid = sql_uuid("d"),
                school = sql_school(&format!("intDiv(d, {PER_SCHOOL})")),
            ),
        ),
        (
            "ЕСПД checks (36 rounds a day, speed tests every 4 h)",
            espd_checks_sql(DB, schools, u64::try_from(days).unwrap(), &format!("(s * {PER_SCHOOL})")),
        ),
        (
            "compliance verdicts",
            format!(
                "INSERT INTO {DB}.compliance_status SELECT {school}, now(), 'cos-2021 1', toDate('{from}'), toDate('{to}'), 10,
                    s % 3, s % 5 = 1, 0, if(s % 3 > 0, 'short', if(s % 5 = 1, 'not_seen', 'ok'))
                 FROM (SELECT number AS s FROM system.numbers LIMIT {schools})",
                school = sql_school("s")
            ),
        ),
    ];
    for (what, sql) in &inserts {
        let t = Instant::now();
        ch.query(sql);
        let table = sql.split_whitespace().nth(2).unwrap();
        println!(
            "  loaded {what:<55} {:>10} rows {:>6.1} s",
            ch.query_u64(&format!("SELECT count() FROM {table}")),
            t.elapsed().as_secs_f64()
        );
    }
    println!("generated in {:.1} s", t.elapsed().as_secs_f64());

    // The rollups, by the collector's own statements, a municipality's schools at a time (the
    // ingest recomputes the schools and days of each batch).
    let ids: Vec<String> = (0..schools).map(school_id).collect();
    let t = Instant::now();
    rt.block_on(async {
        for chunk in ids.chunks(25) {
            store.rollup_school_days(chunk, &from, &to).await.unwrap();
            store.rollup_espd_days(chunk, &from, &to).await.unwrap();
        }
    });
    let rolled = t.elapsed();
    println!(
        "rollups: {} school-days of usage, {} of ЕСПД in {:.1} s ({:.1} ms a school for {days} days)",
        ch.query_u64(&format!("SELECT count() FROM {DB}.school_days")),
        ch.query_u64(&format!("SELECT count() FROM {DB}.espd_days")),
        rolled.as_secs_f64(),
        ms(rolled) / schools as f64,
    );

    // An admin and a token; the router on loopback.
    let admin = UserRow {
        login: "bench".into(),
        role: "admin".into(),
        scope: "all".into(),
        password_hash: String::new(),
        disabled: 0,
        created_at: 1,
        version: 1,
    };
    let (token, row) = parta_collector::auth::generate_api_token(&admin, "", 1, 1);
    rt.block_on(async {
        store.put_user(&admin).await.unwrap();
        store.put_api_token(&row).await.unwrap();
    });
    let accounts = Arc::new(Accounts::new([1; 32]));
    rt.block_on(accounts.refresh(&store)).unwrap();
    let state = Arc::new(ApiState {
        store: store.clone(),
        metrics: Arc::new(Metrics::new()),
        profiles: Arc::new(Vec::new()),
        accounts,
        book: Arc::new(parta_collector::fleet::book::DeviceBook::new()),
        web: WebConfig {
            timezone: "Asia/Yekaterinburg".into(),
            cookie_secure: true,
            trusted_proxies: Vec::new(),
        },
        policies: Arc::new(parta_collector::policy::book::PolicyBook::new(
            parta_collector::policy::secrets::PolicyKey::from_bytes(&[7; 32]),
        )),
        policy_drift_after: std::time::Duration::from_secs(3600),
    });
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move {
        axum::serve(
            listener,
            api::router(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
    });
    let http = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .new_agent();
    let url = format!("http://{addr}/?from={from}&to={to}");
    let get = |u: &str| {
        let mut r = http.get(u).header("Authorization", &format!("Bearer {token}")).call().unwrap();
        assert_eq!(r.status(), 200, "{u}");
        r.body_mut().read_to_string().unwrap()
    };
    let page = get(&url);
    let last = format!("Муниципалитет {}", (schools - 1).min(39));
    assert!(
        page.contains(&last) && page.contains("id=\"overview\""),
        "the overview lists the municipalities"
    );
    let css = get(&format!("http://{addr}/static/parta.css"));

    // Baseline: the same per-school figures from the raw tables.
    let baseline_sql = format!(
        "SELECT school_id, count(), countIf(d_used > 0), sum(d_used) FROM (
            SELECT school_id, local_day, device_id, sumIf(total_ms, state = 'in_use') AS d_used
            FROM {DB}.usage_daily FINAL WHERE local_day >= toDate('{from}') AND local_day <= toDate('{to}')
            GROUP BY school_id, local_day, device_id) GROUP BY school_id FORMAT Null"
    );
    let baseline_espd = format!(
        "SELECT school_id, count(), countIf(c_test) FROM (
            SELECT school_id, any(kind) = 'download' AND any(outcome) IN ('ok', 'slow') AS c_test
            FROM {DB}.connectivity_checks WHERE local_day >= toDate('{from}') AND local_day <= toDate('{to}')
            GROUP BY school_id, device_id, run_started_at_ms, check_no) GROUP BY school_id FORMAT Null"
    );
    let time_n = |n: usize, f: &dyn Fn()| -> Vec<Duration> {
        let mut v: Vec<Duration> = (0..n)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .collect();
        v.sort();
        v
    };
    let base = time_n(5, &|| {
        ch.query(&baseline_sql);
        ch.query(&baseline_espd);
    });
    let over = time_n(requests, &|| {
        get(&url);
    });
    let base_p50 = percentile(&base, 0.5);
    let p50 = percentile(&over, 0.5);
    println!(
        "baseline (raw tables, no rollups): p50 {:.0} ms, max {:.0} ms (5 runs)",
        ms(base_p50),
        ms(*base.last().unwrap())
    );
    println!(
        "region overview GET /: p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms ({requests} requests); page {:.1} KB + stylesheet {:.1} KB",
        ms(p50),
        ms(percentile(&over, 0.95)),
        ms(*over.last().unwrap()),
        page.len() as f64 / 1024.0,
        css.len() as f64 / 1024.0
    );
    println!("ratio overview p50 / baseline p50: {:.3}", p50.as_secs_f64() / base_p50.as_secs_f64());
}
