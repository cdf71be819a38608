//! Compliance end to end on the real ClickHouse with the fixture region
//! (`tests/fixtures/compliance/`): `parta-collector schools import` and `inventory import` with
//! a Windows-1251 registry, a comma-separated register, and malformed files that must be
//! refused with the line, the column and the reason while nothing at all changes; then the
//! compliance report from real agents, SNMP gear on snmpd and an ЕСПД probe, against the one
//! computed by hand, and its exports read back by LibreOffice.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use parta_collector::compliance::export::{self, Cell, Lang};
use parta_collector::compliance::profile;
use parta_collector::compliance::report::{ComplianceReport, DeviceLine};
use parta_tests::clickhouse::ClickHouse;
use parta_tests::fixtures::{self, Tree};
use parta_tests::logind::{Bus, FakeLogind};
use parta_tests::procs::{Agent, AgentSpec, Collector};
use parta_tests::snmpd::{Snmpd, fake_gear};
use parta_tests::util::{artifacts_dir, free_tcp_port, free_udp_port, wait_for, workspace_root};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    workspace_root().join("tests/fixtures/compliance").join(name)
}

/// Runs `parta-collector ARGS`: exit code, stdout, stderr.
fn run(collector: &Collector, args: &[&str]) -> (i32, String, String) {
    let out = collector.command().args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every row of the registry, register and import log, to show that a refused import changed
/// nothing.
fn state(ch: &ClickHouse, db: &str) -> String {
    ch.query(&format!(
        "SELECT (SELECT groupArray(tuple(school_id, name, pupils, version)) FROM (SELECT * FROM {db}.schools ORDER BY school_id, version)), \
                (SELECT count() FROM {db}.register_items), (SELECT count() FROM {db}.register_imports), \
                (SELECT count() FROM {db}.import_log)"
    ))
}

fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) -> String {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p.display().to_string()
}

#[test]
fn imports_check_every_row_and_a_bad_file_changes_nothing() {
    let art = artifacts_dir("compliance_imports");
    let ch = ClickHouse::start();
    let db = "parta_imports";
    let collector = Collector::start(&ch, db, &art);

    // The registry as a regional system exports it: Windows-1251, `;`, a quoted name with
    // doubled quotes, "1 020" with a thousands space.
    let cp1251 = fixture("schools-cp1251.csv").display().to_string();
    let (code, out, err) = run(&collector, &["schools", "import", &cp1251]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("3 rows read (Windows-1251, separated by «;»), 3 schools; imported as imp-"),
        "{out}"
    );
    let (_, out, _) = run(&collector, &["schools", "list", "--format", "json"]);
    let schools: Value = serde_json::from_str(&out).unwrap();
    let s = &schools[0];
    assert_eq!(
        (s["school_id"].as_str(), s["name"].as_str(), s["municipality"].as_str()),
        (Some("74-0012"), Some("МОУ \"СОШ № 1\""), Some("Копейский городской округ"))
    );
    assert_eq!(
        (s["pupils"].as_u64(), s["locality"].as_str(), s["buildings"].as_u64()),
        (Some(1020), Some("urban"), Some(1))
    );
    assert_eq!(schools[2]["locality"], "rural");

    // The register, comma-separated UTF-8.
    let register = fixture("register.csv").display().to_string();
    let (code, out, err) = run(&collector, &["inventory", "import", &register]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("10 rows read (UTF-8, separated by «,»), 3 schools; imported as imp-"), "{out}");

    // Malformed files: each refused with exit 65 and the precise problem; nothing changes.
    let before = state(&ch, db);
    let utf8 = std::fs::read_to_string(fixture("schools.csv")).unwrap();
    let reg = std::fs::read_to_string(fixture("register.csv")).unwrap();
    let cases: Vec<(&str, Vec<String>, String)> = vec![
        (
            "a missing column",
            vec!["schools".into(), "import".into(), write(&art, "no-buildings.csv", utf8.replace(";Зданий", "").replace(";1\n", "\n"))],
            "no-buildings.csv:1: column «buildings»: required column missing (headed «Зданий» or «buildings»)".into(),
        ),
        (
            "a duplicate school id",
            vec!["schools".into(), "import".into(), write(&art, "duplicate.csv", utf8.replace("74-0013", "74-0012"))],
            "duplicate.csv:3: column «Код школы» («74-0012»): school id given twice (first on line 2)".into(),
        ),
        (
            "a number with a comma decimal",
            vec!["schools".into(), "import".into(), write(&art, "decimal.csv", utf8.replace(";240;", ";240,5;"))],
            "decimal.csv:3: column «Обучающихся» («240,5»): not a whole number (a decimal fraction?)".into(),
        ),
        (
            "an empty file",
            vec!["schools".into(), "import".into(), write(&art, "empty.csv", "")],
            "empty.csv: the file is empty (no header line)".into(),
        ),
        (
            "Windows-1251 read as UTF-8",
            vec!["schools".into(), "import".into(), "--encoding".into(), "utf-8".into(), cp1251.clone()],
            "schools-cp1251.csv:1: not UTF-8 (save the file as UTF-8, or pass --encoding cp1251)".into(),
        ),
        (
            "an unknown category",
            vec!["inventory".into(), "import".into(), write(&art, "coffee.csv", reg.replace("1013-002,Ноутбук мобильного класса", "1013-002,Кофемашина"))],
            "coffee.csv:8: column «Категория» («Кофемашина»): unknown category in profile cos-2021 (known: Ноутбук педагога; ".into(),
        ),
        (
            "a school not in the registry",
            vec!["inventory".into(), "import".into(), write(&art, "stranger.csv", reg.replace(",74-0345,1,", ",74-9999,1,"))],
            "stranger.csv:10: column «Код школы» («74-9999»): school not in the registry (import it with `schools import` first)".into(),
        ),
    ];
    for (what, args, expected) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, out, err) = run(&collector, &args);
        assert_eq!(code, 65, "{what}: exit 65 expected; stdout {out}, stderr {err}");
        assert!(err.contains(&expected), "{what}: expected «{expected}» in:\n{err}");
        assert!(err.trim_end().ends_with("nothing imported"), "{what}: {err}");
        assert_eq!(state(&ch, db), before, "{what}: nothing may change");
    }

    // A good file with every other row wrong reports every wrong row, not just the first.
    let many = utf8.replace(";1 020;", ";много;").replace(";240;", ";-1;").replace(";село;", ";деревня;");
    let (code, _, err) = run(&collector, &["schools", "import", &write(&art, "many.csv", many)]);
    assert_eq!(code, 65);
    assert!(err.contains("3 problems; nothing imported"), "{err}");
    assert_eq!(state(&ch, db), before);

    // A dry run checks and stores nothing.
    let (code, out, _) =
        run(&collector, &["schools", "import", "--dry-run", &fixture("schools.csv").display().to_string()]);
    assert_eq!(code, 0);
    assert!(out.contains("dry run: nothing imported"), "{out}");
    assert_eq!(state(&ch, db), before);

    // Re-importing one school's register replaces that school's items only.
    let one: String = reg
        .lines()
        .filter(|l| l.starts_with("Инв") || l.starts_with("1013-001"))
        .map(|l| format!("{l}\n"))
        .collect();
    let (code, _, err) = run(&collector, &["inventory", "import", &write(&art, "one.csv", one)]);
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = run(&collector, &["inventory", "list", "--format", "json"]);
    let items: Value = serde_json::from_str(&out).unwrap();
    let numbers: Vec<&str> =
        items.as_array().unwrap().iter().map(|i| i["inventory_no"].as_str().unwrap()).collect();
    assert_eq!(
        numbers,
        ["1012-001", "1012-002", "1012-003", "1012-010", "1012-020", "1013-001", "0345-001", "0345-002"],
        "74-0013 has one item now, the others are as they were"
    );
    // Who imported what, with the file's SHA-256.
    let log = ch.query(&format!(
        "SELECT kind, rows, length(sha256), actor != '' FROM {db}.import_log ORDER BY at, kind"
    ));
    assert_eq!(log.lines().count(), 3, "{log}");
    assert!(log.lines().all(|l| l.contains("\t64\t1")), "{log}");
}

/// A fixture device of the municipality: its tree (DMI serial, a NIC, maybe a panel on HDMI).
fn device(root: &Path, host: &str, serial: &str, mac: &str, panel_serial: Option<&str>) -> Tree {
    let t = fixtures::school_laptop(root, host, serial, mac);
    if let Some(s) = panel_serial {
        let edid = parta_agent::sources::edid::encode(&parta_agent::sources::edid::Spec {
            manufacturer: "LCM",
            product_code: 0x8601,
            serial_number: 0,
            serial_text: Some(s),
            name: Some("V-Class 86"),
            year: 2021,
            width_mm: 1895,
            height_mm: 1066,
            ..Default::default()
        });
        t.connector("HDMI-A-1", &edid, true, true);
    }
    t
}

/// LibreOffice's CSV of every sheet of an XLSX: sheet name → rows of cells.
fn libreoffice_sheets(xlsx: &Path, out: &Path) -> std::collections::BTreeMap<String, Vec<Vec<String>>> {
    let profile = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("soffice")
        .arg(format!("-env:UserInstallation=file://{}", profile.path().display()))
        .args(["--headless", "--convert-to"])
        // ',' separated, '"' quoted, UTF-8 (76), from line 1, raw values (not as shown), all sheets (-1).
        .arg("csv:Text - txt - csv (StarCalc):44,34,76,1,,0,false,true,false,false,false,-1")
        .arg("--outdir")
        .arg(out)
        .arg(xlsx)
        .output()
        .unwrap();
    assert!(status.status.success(), "soffice: {}", String::from_utf8_lossy(&status.stderr));
    let stem = xlsx.file_stem().unwrap().to_string_lossy().into_owned();
    let mut sheets = std::collections::BTreeMap::new();
    for e in std::fs::read_dir(out).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let Some(sheet) = name.strip_prefix(&format!("{stem}-")).and_then(|n| n.strip_suffix(".csv")) else {
            continue;
        };
        let text = std::fs::read(&p).unwrap();
        let table = parta_collector::compliance::csvin::read(
            &text,
            parta_collector::compliance::csvin::Encoding::Utf8,
            parta_collector::compliance::csvin::Delimiter::Char(','),
        )
        .unwrap();
        let mut rows = vec![table.header.cells];
        rows.extend(table.records.into_iter().map(|r| r.cells));
        sheets.insert(sheet.to_owned(), rows);
    }
    sheets
}

/// The cell text LibreOffice gives for a cell of ours.
fn cell_text(c: &Cell) -> String {
    match c {
        Cell::Text(s) => s.clone(),
        Cell::Int(n) => n.to_string(),
        Cell::Num(x) => format!("{x}"),
        Cell::Empty => String::new(),
    }
}

/// (kind, outcome, IP-layer bits/s) of every ЕСПД check in an agent's report log.
fn reported_checks(log: &Path) -> Vec<(String, String, Option<u64>)> {
    let mut out = Vec::new();
    for line in std::fs::read_to_string(log).unwrap_or_default().lines() {
        let r: Value = serde_json::from_str(line).unwrap();
        for s in r["samples"].as_array().unwrap() {
            for c in s.get("Connectivity").map_or(&[][..], |run| run["checks"].as_array().unwrap()) {
                let f = |k: &str| c[k].as_str().unwrap().to_owned();
                out.push((f("kind"), f("outcome"), c["throughput"]["ip_bits_per_s"].as_u64()));
            }
        }
    }
    out
}

fn now_ms() -> i64 {
    i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis())
        .unwrap()
}

/// The fixture region end to end: the registry and the register imported; five agents whose
/// DMI serials, MAC and panel EDID come from fixture trees (on the books by serial, one by
/// MAC, one panel by its EDID serial, one laptop not on the books; one laptop with a user
/// session on a fake logind, the others idle); an MFU and a switch on real snmpd, found by
/// their ENTITY-MIB serials; an ЕСПД probe measuring against the collector. The compliance
/// report of the region equals the one computed by hand, line by line, its ЕСПД line equals
/// the probe's own record of its checks; the XLSX opened by LibreOffice reads back the same
/// cells; the same data gives the same bytes; every export is in the export log; the API gives
/// the same report and names a bad parameter; a municipality's report has its schools only.
#[test]
fn the_region_report_equals_the_hand_computed_one_and_opens_in_libreoffice() {
    let art = artifacts_dir("compliance_report");
    let ch = ClickHouse::start();
    let db = "parta_report";
    let collector = Collector::start(&ch, db, &art);
    for args in [
        ["schools", "import", &fixture("schools-cp1251.csv").display().to_string()],
        ["inventory", "import", &fixture("register.csv").display().to_string()],
    ] {
        let (code, _, err) = run(&collector, &args);
        assert_eq!(code, 0, "{err}");
    }
    // The MFU of 74-0012 (on the books as PNT-0001) and the switch of 74-0345 (ES-0345-01).
    let _mfu = fake_gear(&art, "mfu", "PNT-0001", true);
    let _switch = fake_gear(&art, "switch", "ES-0345-01", false);
    let snmp = |target: &Snmpd, label: &str| {
        format!(
            "[snmp]\ninterval = \"1s\"\ntimeout = \"500ms\"\n[[snmp.target]]\naddress = \"{}\"\nlabel = \"{label}\"\n",
            target.addr()
        )
    };
    // 74-0345's laptop polls the switch and is the school's ЕСПД probe (rural: 50 Mbit/s),
    // measuring against the collector's speed-test service; the site it must reach is down.
    let probe = format!(
        "{}[espd]\nenabled = true\nevery = \"2s\"\nwindows = [\"mon-sun 00:00-24:00\"]\nlocality = \"rural\"\n\
         resolvers = [\"127.0.0.1:{}\"]\nmust_reach = [\"http://127.0.0.1:{}/\"]\nlatency_target = \"127.0.0.1:{}\"\nlatency_method = \"tcp\"\n\
         latency_probes = 3\ntimeout = \"1s\"\nspeedtest_port = {}\nthroughput_time = \"2s\"\n",
        snmp(&_switch, "Коммутатор"),
        free_udp_port(),
        free_tcp_port(),
        collector.http_port,
        collector.speedtest_port
    );
    let bus = Bus::start();
    let logind = FakeLogind::start(&bus);
    let trees = tempfile::tempdir().unwrap();
    let devices = [
        // (school, host, DMI serial, MAC, panel EDID serial, class, agent.toml)
        (
            "74-0012",
            "kab214-teacher",
            "AQ-T-0001",
            "00:e0:4c:68:12:01",
            None,
            "teacher_laptop",
            snmp(&_mfu, "МФУ"),
        ),
        ("74-0012", "kab301-teacher", "XX-999", "00:e0:4c:68:12:02", None, "teacher_laptop", String::new()),
        (
            "74-0012",
            "kab214-panel",
            "MB-1",
            "00:e0:4c:68:12:03",
            Some("LC-86-0001"),
            "interactive_complex",
            String::new(),
        ),
        (
            "74-0013",
            "kab3-teacher",
            "To Be Filled By O.E.M.",
            "00:1b:21:3a:4c:01",
            None,
            "teacher_laptop",
            String::new(),
        ),
        ("74-0345", "kab1-teacher", "AQ-T-0345", "00:e0:4c:03:45:01", None, "teacher_laptop", probe),
    ];
    let mut agents = Vec::new();
    for (school, host, serial, mac, panel, class, toml) in devices {
        let tree = device(&trees.path().join(host), host, serial, mac, panel);
        let cfg = art.join(format!("{host}.toml"));
        std::fs::write(&cfg, toml).unwrap();
        let mut spec = AgentSpec::new(&collector, school, &collector.create_token(school))
            .env("PARTA_CONFIG", cfg.to_str().unwrap())
            .env("PARTA_EQUIPMENT_CLASS", class)
            .env("PARTA_LOGIND_BUS", "none");
        if host == "kab3-teacher" {
            // The teacher of 74-0013 works on hers (on a fake logind): in use, not "never used".
            spec = spec.teacher_session(&tree, &bus);
        }
        agents.push(Agent::start(spec.tree(&tree), &art, host));
    }
    logind.open("1", "ivanova", now_ms());
    wait_for(Duration::from_secs(120), "every device, the gear, usage, pages and two probe rounds", || {
        let q = |sql: &str| ch.query_u64(&sql.replace("{db}", db));
        let attrs = q("SELECT uniqExact(device_id) FROM {db}.device_attrs");
        let ledger = q("SELECT uniqExact(device_id) FROM {db}.ledger_days");
        let in_use = q("SELECT count() FROM {db}.usage_daily WHERE state = 'in_use' AND total_ms > 0");
        let pages = q("SELECT toUInt64(max(life_count) - min(life_count)) FROM {db}.printer_counters");
        let rounds = reported_checks(agents[4].report_log()).iter().filter(|c| c.0 == "latency").count();
        (attrs >= 8 && ledger >= 5 && in_use >= 1 && pages >= 100 && rounds >= 2).then_some(())
    });
    logind.close("1");
    for a in &mut agents {
        a.stop();
    }
    // What the probe did, by its own report log, and all of it in ClickHouse.
    let checks = reported_checks(agents[4].report_log());
    wait_for(Duration::from_secs(30), "the probe's checks in ClickHouse", || {
        let n = ch.query_u64(&format!("SELECT count() FROM {db}.connectivity_checks FINAL"));
        (n == checks.len() as u64).then_some(())
    });

    let today = jiff::Zoned::now().date();
    let from = today.checked_sub(jiff::Span::new().days(27)).unwrap().to_string();
    let to = today.to_string();
    let report = |scope: &str, format: &str, out: &Path| {
        let (code, _, err) = run(
            &collector,
            &[
                "report",
                "compliance",
                "--scope",
                scope,
                "--from",
                &from,
                "--to",
                &to,
                "--format",
                format,
                "--out",
                &out.display().to_string(),
            ],
        );
        assert_eq!(code, 0, "{err}");
        assert!(err.contains("SHA-256") && err.contains("recorded in the export log"), "{err}");
        std::fs::read(out).unwrap()
    };
    let scope = "region:74";
    let json_bytes = report(scope, "json", &art.join("report.json"));
    let r: ComplianceReport = serde_json::from_slice(&json_bytes).unwrap();

    // By hand (cos-2021, four weeks): 74-0012 needs 4 teacher laptops (teachers), has 3 on the
    // books; the laptop AQ-T-0001 and the unregistered XX-999 report: seen 2; neither is in
    // use (no sessions). Its panel's EDID serial matches LC-86-0001; its MFU answers SNMP with
    // the serial PNT-0001 and printed over 100 pages (80 = 20 a week make it used). 74-0013's
    // laptop has no DMI serial and matches by MAC; it was in use for seconds: seen, not used
    // (5 h a week). 74-0345 (Аргаяшский район sorts first): its laptop is seen, idle; its
    // switch answers SNMP (ES-0345-01), which is all a switch must do.
    let lines: Vec<String> =
        r.schools.iter().map(parta_collector::compliance::report::SchoolLine::summary).collect();
    assert_eq!(
        lines,
        [
            "74-0345 teacher_laptop 1/1/1/0 Underused",
            "74-0345 pupil_laptop 15/0/0/0 Short",
            "74-0345 admin_laptop 1/0/0/0 Short",
            "74-0345 interactive_complex 1/0/0/0 Short",
            "74-0345 mfu 1/0/0/0 Short",
            "74-0345 network_equipment 1/1/1/1 Ok",
            "74-0012 teacher_laptop 4/3/2/0 Short",
            "74-0012 pupil_laptop 45/0/0/0 Short",
            "74-0012 admin_laptop 2/0/0/0 Short",
            "74-0012 interactive_complex 3/1/1/0 Short",
            "74-0012 mfu 1/1/1/1 Ok",
            "74-0012 network_equipment 1/0/0/0 Short",
            "74-0013 teacher_laptop 1/1/1/0 Underused",
            "74-0013 pupil_laptop 15/1/0/0 Short",
            "74-0013 admin_laptop 1/0/0/0 Short",
            "74-0013 interactive_complex 1/1/0/0 NotSeen",
            "74-0013 mfu 1/0/0/0 Short",
            "74-0013 network_equipment 1/0/0/0 Short",
        ]
    );
    let unseen: Vec<&str> = r.on_books_not_seen.iter().map(|i| i.inventory_no.as_str()).collect();
    assert_eq!(unseen, ["1012-002", "1012-003", "1013-002", "1013-010"]);
    let labels = |l: &[DeviceLine]| l.iter().map(|d| d.label.clone()).collect::<Vec<_>>();
    assert_eq!(labels(&r.seen_not_on_books), ["kab301-teacher"]);
    // The panel is switched on (DPMS on), which counts as in use for a display: not "never
    // used", though far below the 3 hours a week that would make it used.
    assert_eq!(labels(&r.seen_never_used), ["kab214-teacher", "kab301-teacher", "kab1-teacher"]);
    // ЕСПД: the probe's checks as it recorded them; its speed test measured loopback against
    // the rural 50 Mbit/s. The other schools had no probe.
    let e: Vec<&parta_collector::compliance::report::EspdLine> = r.espd.iter().collect();
    assert_eq!(
        e.iter().map(|e| (e.school_id.as_str(), e.verdict.as_str())).collect::<Vec<_>>(),
        [("74-0345", "pass"), ("74-0012", "no_data"), ("74-0013", "no_data")]
    );
    let passed = checks.iter().filter(|c| c.1 == "ok").count();
    let tests: Vec<u64> = checks
        .iter()
        .filter(|c| c.0 == "download" && (c.1 == "ok" || c.1 == "slow"))
        .filter_map(|c| c.2)
        .collect();
    assert!(passed < checks.len(), "the site that is down fails: {checks:?}");
    #[allow(clippy::cast_precision_loss)]
    let share = (passed as f64 / checks.len() as f64 * 100.0).round() / 100.0;
    assert_eq!(
        (e[0].checks, e[0].passed_share, e[0].download_tests),
        (checks.len() as u64, Some(share), tests.len() as u64)
    );
    assert_eq!(e[0].required_mbps, 50);
    let mut sorted = tests.clone();
    sorted.sort_unstable();
    #[allow(clippy::cast_precision_loss)]
    let median = sorted[(sorted.len() - 1) / 2] as f64 / 1e6;
    let got = e[0].download_median_mbps.unwrap();
    assert!((got - median).abs() <= 0.05 && got > 50.0, "median {got} Mbit/s, the probe measured {sorted:?}");
    let m = &r.methodology;
    assert_eq!(
        (m.profile.as_str(), m.from.as_str(), m.to.as_str()),
        ("cos-2021", from.as_str(), to.as_str())
    );
    assert!(m.scope.starts_with("регион 74 (3 школы)"), "{}", m.scope);
    assert!(m.ledger_expected > 0 && m.ledger_received == m.ledger_expected, "no report lost: {m:?}");
    assert_eq!(m.ledger_completeness, Some(1.0));
    assert!(!m.cutoff.is_empty());

    // The same data gives the same bytes, in every format.
    assert_eq!(report(scope, "json", &art.join("again.json")), json_bytes);
    let xlsx = report(scope, "xlsx", &art.join("report.xlsx"));
    assert_eq!(report(scope, "xlsx", &art.join("again.xlsx")), xlsx);
    let csv = report(scope, "csv", &art.join("report.csv"));
    assert!(
        csv.starts_with(b"\xef\xbb\xbf\xd0\x98\xd1\x82\xd0\xbe\xd0\xb3\xd0\xb8\r\n"),
        "BOM, then «Итоги»"
    );
    // A name with quotes is quoted, its quotes doubled.
    let csv_text = String::from_utf8_lossy(&csv);
    assert!(csv_text.contains("74-0012;\"МОУ \"\"СОШ № 1\"\"\";"), "{csv_text}");

    // A municipality's report has its schools only.
    let kopeysk = report("municipality:Копейский городской округ", "json", &art.join("kopeysk.json"));
    let k: ComplianceReport = serde_json::from_slice(&kopeysk).unwrap();
    let ids: std::collections::BTreeSet<&str> = k.schools.iter().map(|l| l.school_id.as_str()).collect();
    assert_eq!(ids.into_iter().collect::<Vec<_>>(), ["74-0012", "74-0013"]);
    assert!(
        k.methodology.scope.starts_with("муниципалитет Копейский городской округ (2 школы)"),
        "{}",
        k.methodology.scope
    );

    // LibreOffice opens the workbook; every sheet's cells equal the report's.
    let profiles = profile::load_all(None).unwrap();
    let p = profile::find(&profiles, profile::DEFAULT_PROFILE).unwrap();
    let expected = export::sheets(&r, p, Lang::Ru);
    let got = libreoffice_sheets(&art.join("report.xlsx"), &art.join("libreoffice"));
    assert_eq!(got.len(), expected.len(), "sheets: {:?}", got.keys().collect::<Vec<_>>());
    for sheet in &expected {
        let rows =
            got.get(&sheet.name).unwrap_or_else(|| panic!("sheet {} missing: {:?}", sheet.name, got.keys()));
        assert_eq!(rows[0], sheet.headers, "{} headers", sheet.name);
        let want: Vec<Vec<String>> = sheet.rows.iter().map(|r| r.iter().map(cell_text).collect()).collect();
        assert_eq!(&rows[1..], want.as_slice(), "sheet {}", sheet.name);
    }
    let by_school = &got["По школам"];
    assert_eq!(
        (by_school[1][2].as_str(), by_school[1][3].as_str(), by_school[1][8].as_str()),
        ("МОУ Аргаяшская СОШ № 2", "Ноутбук педагога", "Не используется")
    );
    assert_eq!(by_school[7][8], "Недостаточно на балансе", "74-0012's teacher laptops");

    // Every export is in the export log with its SHA-256.
    let exports = ch.query(&format!("SELECT format, bytes, sha256 FROM {db}.export_log ORDER BY at, format"));
    assert_eq!(
        exports.lines().count(),
        6,
        "json and xlsx twice, csv once, the municipality's json: {exports}"
    );
    let xlsx_sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&xlsx));
    assert!(exports.contains(&format!("xlsx\t{}\t{xlsx_sha}", xlsx.len())), "{exports}");

    // The API: the same JSON bytes; a bad parameter is named; an unknown scope is a 404.
    let q = format!("/api/v1/compliance?scope=region:74&from={from}&to={to}");
    let (status, body) = collector.get(&q);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body.as_bytes(), json_bytes.as_slice(), "the API and the command line give the same report");
    let (status, body) = collector.get(&format!(
        "/api/v1/compliance?scope=municipality:%D0%9A%D0%BE%D0%BF%D0%B5%D0%B9%D1%81%D0%BA%D0%B8%D0%B9%20%D0%B3%D0%BE%D1%80%D0%BE%D0%B4%D1%81%D0%BA%D0%BE%D0%B9%20%D0%BE%D0%BA%D1%80%D1%83%D0%B3&from={from}&to={to}"
    ));
    assert_eq!((status, body.as_bytes()), (200, kopeysk.as_slice()), "a municipality named in the URL");
    let (status, body) = collector.get(&format!("{q}&format=pdf"));
    assert_eq!((status, body.contains("format")), (400, true), "{body}");
    let (status, body) = collector.get("/api/v1/compliance?scope=region:99");
    assert_eq!((status, body.contains("no school")), (404, true), "{body}");
    let (status, body) = collector.get(&format!("/api/v1/compliance?scope=region:74&from={to}&to={from}"));
    assert_eq!((status, body.contains("from")), (400, true), "{body}");
}

/// Real devices in the report (issue 20): two interactive complexes in one school whose panels
/// are the same model with the same placeholder EDID serial (a Philips 75BDL3050Q: 16843009,
/// `0x01010101`, in every unit), each driven by its own compute module on the books by MAC,
/// and a Canon printer — a maker without a profile of its own — served from its recording by a
/// real snmpd, on the books by the serial it has in Printer-MIB. The panels stay two devices,
/// each module keeps its own panel's use (before, both panels were one device that one module
/// got), and the printer is matched to its item.
#[test]
fn identical_panels_and_a_printer_without_profile_are_counted_right() {
    let art = artifacts_dir("compliance_realworld");
    let ch = ClickHouse::start();
    let db = "parta_realworld";
    let collector = Collector::start(&ch, db, &art);
    let register = write(
        &art,
        "register.csv",
        "Инвентарный номер,Категория,Производитель,Модель,Серийный номер,MAC,Код школы,Кабинет,Дата поступления,Программа\n\
         1012-010,Интерактивный комплекс,Philips,75BDL3050Q,PH75-0001,00:e0:4c:68:12:31,74-0012,214,15.10.2021,ЦОС 2021\n\
         1012-011,Интерактивный комплекс,Philips,75BDL3050Q,PH75-0002,00:e0:4c:68:12:32,74-0012,215,15.10.2021,ЦОС 2021\n\
         1012-020,МФУ,Canon,LBP6670,MKRA012345,,74-0012,101,15.10.2021,ЦОС 2021\n",
    );
    for args in [
        ["schools", "import", &fixture("schools-cp1251.csv").display().to_string()],
        ["inventory", "import", &register],
    ] {
        let (code, _, err) = run(&collector, &args);
        assert_eq!(code, 0, "{err}");
    }
    let recording = parta_tests::util::realworld_dir().join("snmp/data/librenms__canonprinter_lbp.snmprec");
    let printer = Snmpd::start(
        &parta_tests::snmpd::SnmpdConfig {
            lines: vec!["rocommunity public 127.0.0.1".into()],
            recording: Some(recording),
            ..parta_tests::snmpd::SnmpdConfig::default()
        },
        &art,
        "canon",
    );
    let edid =
        std::fs::read(parta_tests::util::realworld_dir().join("edid/bin/philips-75bdl3050q.bin")).unwrap();
    let trees = tempfile::tempdir().unwrap();
    let mut agents = Vec::new();
    for (host, serial, mac) in
        [("kab214-ops", "OPS-0001", "00:e0:4c:68:12:31"), ("kab215-ops", "OPS-0002", "00:e0:4c:68:12:32")]
    {
        let tree = fixtures::school_laptop(&trees.path().join(host), host, serial, mac);
        tree.connector("HDMI-A-1", &edid, true, true);
        let cfg = art.join(format!("{host}.toml"));
        let toml = if host == "kab214-ops" {
            format!(
                "[snmp]\ninterval = \"1s\"\ntimeout = \"500ms\"\n[[snmp.target]]\naddress = \"{}\"\nlabel = \"МФУ\"\n",
                printer.addr()
            )
        } else {
            String::new()
        };
        std::fs::write(&cfg, toml).unwrap();
        let spec = AgentSpec::new(&collector, "74-0012", &collector.create_token("74-0012"))
            .env("PARTA_CONFIG", cfg.to_str().unwrap())
            .env("PARTA_EQUIPMENT_CLASS", "interactive_complex")
            .env("PARTA_LOGIND_BUS", "none");
        agents.push(Agent::start(spec.tree(&tree), &art, host));
    }
    let q = |sql: &str| ch.query_u64(&sql.replace("{db}", db));
    wait_for(Duration::from_secs(90), "two modules, their two panels and the printer", || {
        let panels = q("SELECT uniqExact(device_id) FROM {db}.device_attrs WHERE kind = 'panel'");
        let printers =
            q("SELECT uniqExact(device_id) FROM {db}.device_attrs WHERE kind = 'printer' AND serial != ''");
        let hosts = q("SELECT uniqExact(device_id) FROM {db}.ledger_days");
        (panels >= 2 && printers >= 1 && hosts >= 2).then_some(())
    });
    // Stopping flushes the panels' open intervals (on since the start: in use).
    for a in &mut agents {
        a.stop();
    }
    wait_for(Duration::from_secs(30), "both panels' use", || {
        let n =
            q("SELECT uniqExact(device_id) FROM {db}.usage_daily WHERE state = 'in_use' AND total_ms > 0");
        (n >= 2).then_some(())
    });
    assert_eq!(q("SELECT uniqExact(device_id) FROM {db}.device_attrs WHERE kind = 'panel'"), 2);
    let serials = ch.query(&format!("SELECT DISTINCT serial FROM {db}.device_attrs WHERE kind = 'panel'"));
    assert_eq!(serials.trim(), "16843009", "the serial as read is kept, for people");

    let out = art.join("report.json");
    let today = jiff::Zoned::now().date();
    let from = today.checked_sub(jiff::Span::new().days(27)).unwrap().to_string();
    let (code, _, err) = run(
        &collector,
        &[
            "report",
            "compliance",
            "--scope",
            "school:74-0012",
            "--from",
            &from,
            "--to",
            &today.to_string(),
            "--format",
            "json",
            "--out",
            &out.display().to_string(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    let r: ComplianceReport = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let lines: Vec<String> =
        r.schools.iter().map(parta_collector::compliance::report::SchoolLine::summary).collect();
    // Both complexes on the books (by MAC) and seen; the printer on the books by its serial and
    // seen (its recording's page counter stands still: not used).
    assert!(lines.contains(&"74-0012 interactive_complex 3/2/2/0 Short".to_owned()), "{lines:?}");
    assert!(lines.contains(&"74-0012 mfu 1/1/1/0 Underused".to_owned()), "{lines:?}");
    let labels = |l: &[DeviceLine]| l.iter().map(|d| d.label.clone()).collect::<Vec<_>>();
    assert!(r.seen_not_on_books.is_empty(), "{:?}", labels(&r.seen_not_on_books));
    assert!(r.on_books_not_seen.is_empty(), "{:?}", r.on_books_not_seen);
    // Each module's panel was on: neither is "never used".
    assert!(
        !labels(&r.seen_never_used).iter().any(|l| l.ends_with("-ops")),
        "{:?}",
        labels(&r.seen_never_used)
    );
}
