//! The web UI and the API's access control on the real collector with real ClickHouse data from
//! real agents (a teacher's laptop in use on a fake logind, an MFU and a switch on snmpd, an
//! ЕСПД probe in another municipality):
//!
//! - Debian's headless Chromium over WebDriver signs in (a wrong password first), goes region →
//!   municipality → school → device (the MFU's pages, the switch's interfaces), switches to
//!   English, and downloads the compliance export; screenshots of every step are saved in
//!   `target/test-artifacts/web_ui/screens/`.
//! - Accounts and scopes over plain HTTP: 401 without or with wrong credentials; an ops account
//!   of one municipality gets 403 for the other's school, device, municipality and report — by
//!   the UI and by the API — with the same words as for things that do not exist; CSRF tokens
//!   on every form; an auditor's export names the auditor in the export log.
//! - The school-day rollups the overview reads equal what they roll up.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

use parta_tests::clickhouse::ClickHouse;
use parta_tests::fixtures;
use parta_tests::logind::{Bus, FakeLogind};
use parta_tests::procs::{Agent, AgentSpec, Collector};
use parta_tests::snmpd::{Snmpd, fake_gear};
use parta_tests::util::{artifacts_dir, free_udp_port, wait_for, workspace_root};
use parta_tests::webdriver::Browser;
use parta_tests::websession::{Session, hidden};
use serde_json::Value;

const KOPEYSK: &str = "Копейский городской округ";
const ARGAYASH: &str = "Аргаяшский муниципальный район";
const PASSWORD: &str = "correct horse battery";

fn fixture(name: &str) -> PathBuf {
    workspace_root().join("tests/fixtures/compliance").join(name)
}

fn run(collector: &Collector, args: &[&str]) {
    let out = collector.command().args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn now_ms() -> i64 {
    i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis())
        .unwrap()
}

/// GET with a token: status and body.
fn get_as(c: &Collector, token: &str, path: &str) -> (u16, String) {
    parta_tests::util::http_get_as(&c.url(path), Some(token))
}

#[test]
fn web_ui_in_chromium_and_access_scopes() {
    let art = artifacts_dir("web_ui");
    let ch = ClickHouse::start();
    let db = "parta_web";
    let collector = Collector::start(&ch, db, &art);
    run(&collector, &["schools", "import", &fixture("schools-cp1251.csv").display().to_string()]);
    run(&collector, &["inventory", "import", &fixture("register.csv").display().to_string()]);

    // 74-0012 (Копейск): a teacher's laptop in use, polling an MFU and a switch. 74-0345
    // (Аргаяш): a laptop that is the school's ЕСПД probe.
    let mfu = fake_gear(&art, "mfu", "PNT-0001", true);
    let switch = fake_gear(&art, "switch", "ES-0012-01", false);
    let target = |g: &Snmpd, label: &str| {
        format!("[[snmp.target]]\naddress = \"{}\"\nlabel = \"{label}\"\n", g.addr())
    };
    let kopeysk_toml = format!(
        "[snmp]\ninterval = \"1s\"\ntimeout = \"500ms\"\n{}{}",
        target(&mfu, "МФУ"),
        target(&switch, "Коммутатор")
    );
    let probe_toml = format!(
        "[espd]\nenabled = true\nevery = \"2s\"\nwindows = [\"mon-sun 00:00-24:00\"]\nlocality = \"rural\"\n\
         resolvers = [\"127.0.0.1:{}\"]\nmust_reach = [\"http://127.0.0.1:{}/healthz\"]\nlatency_target = \"127.0.0.1:{}\"\nlatency_method = \"tcp\"\n\
         latency_probes = 3\ntimeout = \"1s\"\nspeedtest_port = {}\nthroughput_time = \"2s\"\n",
        free_udp_port(),
        collector.http_port,
        collector.http_port,
        collector.speedtest_port
    );
    let bus = Bus::start();
    let logind = FakeLogind::start(&bus);
    let trees = tempfile::tempdir().unwrap();
    let mut agents = Vec::new();
    for (school, host, serial, mac, toml) in [
        ("74-0012", "kab214-teacher", "AQ-T-0001", "00:e0:4c:68:12:01", kopeysk_toml),
        ("74-0345", "kab1-teacher", "AQ-T-0345", "00:e0:4c:03:45:01", probe_toml),
    ] {
        let tree = fixtures::school_laptop(&trees.path().join(host), host, serial, mac);
        let cfg = art.join(format!("{host}.toml"));
        std::fs::write(&cfg, toml).unwrap();
        let mut spec = AgentSpec::new(&collector, school, &collector.create_token(school))
            .env("PARTA_CONFIG", cfg.to_str().unwrap())
            .env("PARTA_EQUIPMENT_CLASS", "teacher_laptop")
            .env("PARTA_ROOM", if school == "74-0012" { "214" } else { "1" })
            .env("PARTA_LOGIND_BUS", "none");
        if school == "74-0012" {
            spec = spec.teacher_session(&tree, &bus);
        }
        agents.push(Agent::start(spec.tree(&tree), &art, host));
    }
    logind.open("1", "ivanova", now_ms() - 600_000);
    let q = |sql: &str| ch.query_u64(&sql.replace("{db}", db));
    wait_for(Duration::from_secs(90), "usage, pages, interfaces and ЕСПД checks", || {
        let in_use = q("SELECT count() FROM {db}.usage_daily WHERE state = 'in_use' AND total_ms > 0");
        let pages = q("SELECT toUInt64(max(life_count) - min(life_count)) FROM {db}.printer_counters");
        let ifs = q("SELECT count() FROM {db}.snmp_interfaces WHERE has_rate = 1");
        let checks = q("SELECT count() FROM {db}.connectivity_checks WHERE kind = 'download'");
        eprintln!("waiting: in_use {in_use} pages {pages} interfaces {ifs} download checks {checks}");
        (in_use >= 1 && pages >= 100 && ifs >= 2 && checks >= 1).then_some(())
    });
    logind.close("1");
    for a in &mut agents {
        a.stop();
    }
    std::thread::sleep(Duration::from_secs(2));

    // The rollups the overview reads equal what they roll up.
    let rolled = ch.query(&format!(
        "SELECT school_id, sum(devices_used), sum(in_use_ms) FROM {db}.school_days FINAL GROUP BY school_id ORDER BY school_id"
    ));
    let direct = ch.query(&format!(
        "SELECT school_id, toUInt64(countIf(u > 0)), sum(u) FROM (SELECT school_id, local_day, device_id, sumIf(total_ms, state = 'in_use') AS u \
         FROM {db}.usage_daily FINAL GROUP BY school_id, local_day, device_id) GROUP BY school_id ORDER BY school_id"
    ));
    assert_eq!(rolled, direct, "school_days equals the usage rollup");
    assert!(rolled.contains("74-0012\t1\t"), "{rolled}");
    let espd_rolled = ch.query(&format!(
        "SELECT sum(checks), sum(tests) FROM {db}.espd_days FINAL WHERE school_id = '74-0345'"
    ));
    let espd_direct = ch.query(&format!(
        "SELECT count(), countIf(kind = 'download' AND outcome IN ('ok', 'slow')) FROM {db}.connectivity_checks FINAL WHERE school_id = '74-0345'"
    ));
    assert_eq!(espd_rolled, espd_direct, "espd_days equals the checks");

    // Wiped rollups come back with `rollups rebuild`, equal to what ingest made; bad arguments
    // are refused by name.
    ch.query(&format!("TRUNCATE TABLE {db}.school_days"));
    ch.query(&format!("TRUNCATE TABLE {db}.espd_days"));
    let rebuild =
        |args: &[&str]| collector.command().args(["rollups", "rebuild"]).args(args).output().unwrap();
    let days = ch.query("SELECT toString(today() - 3), toString(today() + 1)");
    let (first, last) = days.trim().split_once('\t').unwrap();
    let out = rebuild(&["--from", first, "--to", last]);
    let err = String::from_utf8_lossy(&out.stderr);
    let reporting = ch.query_u64(&format!("SELECT uniqExact(school_id) FROM {db}.devices"));
    assert!(
        out.status.success() && err.contains(&format!("rebuilt the rollups of {reporting} schools")),
        "{err}"
    );
    assert_eq!(
        ch.query(&format!(
            "SELECT school_id, sum(devices_used), sum(in_use_ms) FROM {db}.school_days FINAL GROUP BY school_id ORDER BY school_id"
        )),
        rolled
    );
    assert_eq!(
        ch.query(&format!(
            "SELECT sum(checks), sum(tests) FROM {db}.espd_days FINAL WHERE school_id = '74-0345'"
        )),
        espd_rolled
    );
    for (args, says) in [
        (&["--from", "2026-13-01"][..], "--from: \"2026-13-01\" is not a date"),
        (&["--from", last, "--to", first][..], "--from/--to:"),
        (&["--school", "74 0012"][..], "--school \"74 0012\""),
    ] {
        let out = rebuild(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(says), "{args:?}: {err}");
    }

    // Accounts.
    collector.add_user("admin", "admin", "all", PASSWORD);
    collector.add_user("ops-kopeysk", "ops", &format!("municipality:{KOPEYSK}"), PASSWORD);
    collector.add_user("auditor-74", "auditor", "region:74", PASSWORD);
    let ops_token = collector.api_token("ops-kopeysk");
    let auditor_token = collector.api_token("auditor-74");
    let devices: Value = serde_json::from_str(&collector.get("/api/v1/devices").1).unwrap();
    let id_of = |school: &str, kind: &str| -> String {
        devices["devices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["school_id"] == school && d["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} of {school} in {devices}"))["device_id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let argayash_laptop = id_of("74-0345", "computer");
    let kopeysk_laptop = id_of("74-0012", "computer");

    // --- API: 401 without or with a wrong token; scopes. ---
    let (status, body) = parta_tests::util::http_get(&collector.url("/api/v1/devices"));
    assert_eq!(status, 401, "{body}");
    let (status, _) = get_as(&collector, "pat1_0000000000000000000000000000000000000000", "/api/v1/devices");
    assert_eq!(status, 401);
    let forbidden = r#"{"error":"forbidden: outside your scope"}"#;
    let unknown_device = uuid::Uuid::new_v4().to_string();
    for path in [
        "/api/v1/schools/74-0345/utilization".to_owned(),
        format!("/api/v1/devices/{argayash_laptop}"),
        format!("/api/v1/devices/{argayash_laptop}/usage"),
        format!("/api/v1/devices/{argayash_laptop}/ledger"),
        format!("/api/v1/devices/{unknown_device}"),
        "/api/v1/connectivity?school=74-0345".to_owned(),
        "/api/v1/devices?school=74-0345".to_owned(),
        "/api/v1/compliance?scope=region:74".to_owned(),
        format!("/api/v1/compliance?scope=municipality:{}", parta_collector::web::urlencode(ARGAYASH)),
        "/api/v1/compliance?scope=region:99".to_owned(),
    ] {
        let (status, body) = get_as(&collector, &ops_token, &path);
        assert_eq!(
            (status, body.as_str()),
            (403, forbidden),
            "{path}: the same answer, whether it exists or not"
        );
    }
    for path in [
        "/api/v1/schools/74-0012/utilization".to_owned(),
        format!("/api/v1/devices/{kopeysk_laptop}/usage"),
        format!("/api/v1/compliance?scope=municipality:{}", parta_collector::web::urlencode(KOPEYSK)),
    ] {
        let (status, body) = get_as(&collector, &ops_token, &path);
        assert_eq!(status, 200, "{path}: {body}");
    }
    let listed: Value = serde_json::from_str(&get_as(&collector, &ops_token, "/api/v1/devices").1).unwrap();
    let schools: std::collections::BTreeSet<&str> =
        listed["devices"].as_array().unwrap().iter().map(|d| d["school_id"].as_str().unwrap()).collect();
    assert_eq!(
        schools.into_iter().collect::<Vec<_>>(),
        ["74-0012"],
        "only the ops account's municipality: {listed}"
    );
    // The auditor exports the region; the export log names the auditor.
    let (status, csv) = get_as(&collector, &auditor_token, "/api/v1/compliance?scope=region:74&format=csv");
    assert_eq!(status, 200);
    assert!(csv.starts_with('\u{feff}'), "CSV for Russian Excel");
    let actors = ch.query(&format!("SELECT actor, via FROM {db}.export_log ORDER BY at"));
    assert!(actors.contains("token:auditor-74\tapi"), "{actors}");

    // --- UI over HTTP: wrong password 401; scopes; CSRF. ---
    let mut ops = Session::new(&collector);
    assert_eq!(ops.sign_in("ops-kopeysk", "wrong password!"), 401);
    assert_eq!(ops.sign_in("no-such-user", PASSWORD), 401);
    assert_eq!(ops.sign_in("ops-kopeysk", PASSWORD), 303);
    let (status, page) = ops.get("/");
    assert_eq!(status, 200);
    assert!(page.contains(KOPEYSK) && !page.contains(ARGAYASH), "the overview shows the scope only");
    for path in [
        "/s/74-0345".to_owned(),
        format!("/m/74/{}", parta_collector::web::urlencode(ARGAYASH)),
        format!("/d/{argayash_laptop}"),
        format!("/d/{unknown_device}"),
        "/connectivity?school=74-0345".to_owned(),
        "/compliance?scope=region:74".to_owned(),
        "/users".to_owned(),
    ] {
        let (status, body) = ops.get(&path);
        assert_eq!(status, 403, "{path}");
        assert!(!body.contains("Аргаяшская") && !body.contains("AQ-T-0345"), "{path} leaks: {body}");
    }
    assert_eq!(ops.get("/s/74-0012").0, 200);
    // The ops account's session works on the API too (the UI's export buttons).
    assert_eq!(ops.get("/api/v1/schools/74-0012/utilization").0, 200);
    // A form without its CSRF token changes nothing.
    let (status, _) = ops.post("/tokens", &[("comment", "no csrf"), ("csrf", "0123")]);
    assert_eq!(status, 403);
    let (_, tokens_page) = ops.get("/tokens");
    assert!(!tokens_page.contains("no csrf"));
    let csrf = hidden(&tokens_page, "csrf");
    let (status, created) = ops.post("/tokens", &[("comment", "скрипт выгрузки"), ("csrf", &csrf)]);
    assert_eq!(status, 200);
    let new_token = created.split(r#"id="new-token">"#).nth(1).unwrap().split('<').next().unwrap().to_owned();
    assert_eq!(get_as(&collector, &new_token, "/api/v1/schools/74-0012/utilization").0, 200);
    assert_eq!(get_as(&collector, &new_token, "/api/v1/schools/74-0345/utilization").0, 403);
    // Signed out: the session no longer opens pages.
    let csrf = hidden(&ops.get("/").1, "csrf");
    assert_eq!(ops.post("/logout", &[("csrf", &csrf)]).0, 303);
    assert_eq!(ops.get("/").0, 303, "back to the sign-in page");

    // --- Chromium: sign in, region → municipality → school → device, language, export. ---
    let browser = Browser::start(&art.join("downloads"), &art.join("screens"));
    browser.goto(&collector.url("/"));
    assert!(browser.url().contains("/login?next="), "{}", browser.url());
    browser.type_into(&browser.find("#login"), "admin");
    browser.type_into(&browser.find("#password"), "not the password");
    browser.click(&browser.find("#sign-in"));
    assert!(browser.text(&browser.find("#login-error")).contains("Неверный логин или пароль"));
    browser.screenshot("01-login-refused");
    browser.type_into(&browser.find("#login"), "admin");
    browser.type_into(&browser.find("#password"), PASSWORD);
    browser.click(&browser.find("#sign-in"));
    let overview = browser.text(&browser.find("#overview"));
    assert!(overview.contains(KOPEYSK) && overview.contains(ARGAYASH), "{overview}");
    assert!(browser.body_text().contains("Обзор"));
    browser.screenshot("02-overview");

    browser.click_link(KOPEYSK);
    assert!(browser.text(&browser.find("h1")).contains(KOPEYSK));
    browser.screenshot("03-municipality");
    browser.click_link("МОУ \"СОШ № 1\" (74-0012)");
    assert!(browser.has("#heatmap"), "the school page has its heatmap");
    let devices_table = browser.text(&browser.find("#devices"));
    assert!(devices_table.contains("МФУ") && devices_table.contains("Коммутатор"), "{devices_table}");
    // Classes by the norm profile's names, not the agents' ids alone.
    assert!(devices_table.contains("Ноутбук педагога (teacher_laptop)"), "{devices_table}");
    assert_eq!(
        browser.text(&browser.find("h3")),
        "Ноутбук педагога (teacher_laptop)",
        "the class chart's heading"
    );
    browser.screenshot("04-school");
    let school_url = browser.url();

    browser.click_link("МФУ");
    let pages = browser.text(&browser.find("#pages"));
    assert!(pages.contains("Отпечатано страниц"), "{pages}");
    browser.screenshot("05-device-mfu");
    browser.goto(&school_url);
    browser.click_link("Коммутатор");
    let ifs = browser.text(&browser.find("#interfaces"));
    assert!(ifs.contains("ge-0/0/1"), "{ifs}");
    browser.screenshot("06-device-switch");

    browser.click(&browser.find("#lang-switch"));
    assert!(browser.url().contains("/d/"), "the switch returns to the same page: {}", browser.url());
    let text = browser.body_text();
    assert!(
        text.contains("Interfaces") && text.contains("Overview") && !text.contains("Интерфейсы"),
        "{text}"
    );
    browser.screenshot("07-device-english");

    browser.goto(&collector.url("/compliance?scope=region:74"));
    browser.click(&browser.find("#export-xlsx"));
    let file = wait_for(Duration::from_secs(60), "the XLSX download", || {
        std::fs::read_dir(&browser.downloads).unwrap().filter_map(Result::ok).map(|e| e.path()).find(|p| {
            p.extension().is_some_and(|x| x == "xlsx") && std::fs::metadata(p).is_ok_and(|m| m.len() > 0)
        })
    });
    let bytes = std::fs::read(&file).unwrap();
    assert!(bytes.starts_with(b"PK"), "an XLSX (zip) file: {}", file.display());
    browser.screenshot("08-compliance");
    let actors = ch.query(&format!("SELECT actor, via FROM {db}.export_log ORDER BY at"));
    assert!(actors.contains("user:admin\tui"), "{actors}");
    browser.click(&browser.find("#sign-out"));
    // The click submits a form: wait for the navigation it starts, not for the click to return.
    wait_for(Duration::from_secs(10), "the sign-in page after signing out", || {
        browser.url().contains("/login").then_some(())
    });
}
