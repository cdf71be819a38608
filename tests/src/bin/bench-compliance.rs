//! The compliance report of a region on the real ClickHouse: SCHOOLS schools (default 1,000),
//! DEVICES devices (default 100,000) and DAYS days (default 90) of data.
//!
//! `cargo run --release -p parta-tests --bin bench-compliance -- [SCHOOLS] [DEVICES] [DAYS]`
//!
//! The registry and the register go in through the collector's own import code; device
//! attributes as the ingest writes them; the time series (ingest ledger → daily ledger through
//! the materialized view, daily usage, SNMP polls, printer counters, ЕСПД checks) are generated
//! inside ClickHouse. Then the region's report is built in this process, through the same
//! `build` the CLI and the API use, as JSON, XLSX and CSV, each in a fresh process (this binary
//! with `--child`). Each is timed (median of 3, process start included) with its peak memory
//! (the process's VmHWM), against a baseline measured the same way in the same run: reading the
//! facts only (the registry, the register and every fact query), which every format needs. The
//! report's lists are checked against what was generated.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use parta_collector::compliance::build::{self, Request, Scope};
use parta_collector::compliance::export::{Format3, Lang};
use parta_collector::compliance::profile;
use parta_collector::compliance::registry::RegisterItem;
use parta_collector::config::ClickHouseConfig;
use parta_collector::storage::Store;
use parta_collector::storage::queries::day_string;
use parta_collector::storage::rows::DeviceAttrRow;
use parta_tests::benchdata::{FIRST_DAY, espd_checks_sql, registry, school_id, sql_school, sql_uuid};
use parta_tests::clickhouse::ClickHouse;
use uuid::Uuid;

/// 2026-08-25 as the first day of the period.
const DB: &str = "bench_compliance";

/// What a device of the generated region is, by its place among its school's devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Agent { class: &'static str, kind: &'static str },
    Printer,
    Switch,
}

/// Per 100 devices of a school: 45 pupil laptops, 20 teacher laptops, 5 admin laptops, 10
/// interactive panels, 10 desktops, 5 MFUs and 5 switches.
fn role(k: u64, per_school: u64) -> Role {
    let p = k * 100 / per_school;
    let agent = |class, kind| Role::Agent { class, kind };
    match p {
        0..45 => agent("pupil_laptop", "computer"),
        45..65 => agent("teacher_laptop", "computer"),
        65..70 => agent("admin_laptop", "computer"),
        70..80 => agent("interactive_complex", "panel"),
        80..90 => agent("desktop", "computer"),
        90..95 => Role::Printer,
        _ => Role::Switch,
    }
}

/// Devices that never reported (on the books, never seen when registered).
fn silent(d: u64) -> bool {
    d % 13 == 5
}

/// Devices on the books: 90 %.
fn on_books(d: u64) -> bool {
    d % 10 != 9
}

/// Agents known by their MAC only (no serial in the register or in DMI): one in ten.
fn by_mac(d: u64, r: Role) -> bool {
    d % 10 == 3 && matches!(r, Role::Agent { .. })
}

fn device_uuid(d: u64) -> Uuid {
    Uuid::from_u128(u128::from(d))
}

/// `02:00:` and the device number's 8 decimal digits in pairs (as [`SQL_MAC`] makes it).
fn mac(d: u64) -> String {
    let s = format!("{d:08}");
    format!("02:00:{}:{}:{}:{}", &s[0..2], &s[2..4], &s[4..6], &s[6..8])
}

/// [`mac`] in SQL, of a column `d`.
const SQL_MAC: &str = "concat('02:00:', substring(p8, 1, 2), ':', substring(p8, 3, 2), ':', substring(p8, 5, 2), ':', substring(p8, 7, 2))";

/// VmHWM (peak RSS) and VmRSS of this process, KiB.
fn memory_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn mib(kib: u64) -> f64 {
    #[allow(clippy::cast_precision_loss)] // figures for people
    let m = kib as f64 / 1024.0;
    m
}

struct Figure {
    median: Duration,
    peak_mib: f64,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        child(&args[2..]);
        return;
    }
    let schools: u64 = args.get(1).map_or(1_000, |s| s.parse().unwrap());
    let devices: u64 = args.get(2).map_or(100_000, |s| s.parse().unwrap());
    let days: i64 = args.get(3).map_or(90, |s| s.parse().unwrap());
    assert!(
        devices >= schools * 20 && devices.is_multiple_of(schools),
        "DEVICES: a multiple of SCHOOLS, 20 a school at least"
    );
    let per_school = devices / schools;
    let ch = ClickHouse::start();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let cfg = ClickHouseConfig {
            url: ch.url(),
            database: DB.into(),
            user: "default".into(),
            password: String::new(),
        };
        let store = Store::connect(&cfg).await.unwrap();
        store.migrate().await.unwrap();
        println!("ClickHouse {}; {schools} schools, {devices} devices, {days} days", store.version());
        let load = Instant::now();
        let step = |what: &str, started: Instant| {
            println!("  loaded {what:<52} {:>6.1} s", started.elapsed().as_secs_f64());
        };

        // The registry and the register, through the import code.
        let t = Instant::now();
        let registry = registry(schools);
        store.put_schools(&registry, "bench-schools", 1).await.unwrap();
        let category = |r: Role| match r {
            Role::Agent { class: "desktop", .. } => None,
            Role::Agent { class, .. } => Some(class),
            Role::Printer => Some("mfu"),
            Role::Switch => Some("network_equipment"),
        };
        let register: Vec<RegisterItem> = (0..devices)
            .filter(|d| on_books(*d))
            .filter_map(|d| {
                let s = d / per_school;
                let r = role(d % per_school, per_school);
                let cat = category(r)?;
                Some(RegisterItem {
                    line: u32::try_from(d + 2).unwrap(),
                    inventory_no: format!("{s}-{:05}", d % per_school),
                    category: cat.into(),
                    vendor: "Aquarius".into(),
                    model: "NS685U".into(),
                    serial: if by_mac(d, r) { String::new() } else { format!("SN-{d:07}") },
                    mac: if by_mac(d, r) { mac(d) } else { String::new() },
                    school_id: school_id(s),
                    room: format!("{}", 100 + d % 40),
                    received: "2021-09-01".into(),
                    funding: "ЦОС 2021".into(),
                })
            })
            .collect();
        store.put_register(&register, "bench-register", 1).await.unwrap();
        step(&format!("registry ({schools}) and register ({} items)", register.len()), t);

        // Device attributes, as the ingest writes them; SNMP devices hang off the school's
        // poller (its first teacher laptop).
        let t = Instant::now();
        let poller = |s: u64| s * per_school + per_school * 45 / 100;
        let attrs: Vec<DeviceAttrRow> = (0..devices)
            .filter(|d| !silent(*d))
            .map(|d| {
                let s = d / per_school;
                let r = role(d % per_school, per_school);
                let (kind, class, host) = match r {
                    Role::Agent { class, kind } => (kind, class, d),
                    Role::Printer => ("printer", "mfu", poller(s)),
                    Role::Switch => ("network", "network_equipment", poller(s)),
                };
                DeviceAttrRow {
                    device_id: device_uuid(d),
                    host_id: device_uuid(host),
                    school_id: school_id(s),
                    kind: kind.into(),
                    equipment_class: class.into(),
                    room: format!("{}", 100 + d % 40),
                    label: format!("dev-{d}"),
                    serial: if by_mac(d, r) { String::new() } else { format!("SN-{d:07}") },
                    version: 1,
                }
            })
            .collect();
        for chunk in attrs.chunks(20_000) {
            store.insert_rows("device_attrs", chunk).await.unwrap();
        }
        step(&format!("device attributes ({})", attrs.len()), t);
        assert!(!silent(poller(0)) && !silent(poller(schools - 1)), "pollers report");

        let n = devices;
        let agent_cond = format!("(d % {per_school}) * 100 < 90 * {per_school} AND d % 13 != 5");
        let snmp_cond = format!("(d % {per_school}) * 100 >= 90 * {per_school} AND d % 13 != 5");
        let printer_cond = format!("(d % {per_school}) * 100 >= 90 * {per_school} AND (d % {per_school}) * 100 < 95 * {per_school} AND d % 13 != 5");
        let inserts = [
            (
                "inventory (MACs of every agent)",
                format!(
                    "INSERT INTO {DB}.inventory (device_id, school_id, seq, ts, hostname, nic_names, nic_macs)
                     SELECT {uuid}, {school}, 1, toDateTime({FIRST_DAY} * 86400), concat('dev-', toString(d)), ['enp2s0'], [{SQL_MAC}]
                     FROM (SELECT number AS d, substring(concat('00000000', toString(d)), length(toString(d)) + 1, 8) AS p8
                           FROM system.numbers LIMIT {n})
                     WHERE {agent_cond}",
                    uuid = sql_uuid("d"),
                    school = sql_school(&format!("intDiv(d, {per_school})"))
                ),
            ),
            (
                "ingest ledger, 2 reports a device a day (1 in 50 lost)",
                format!(
                    "INSERT INTO {DB}.ingest_ledger (device_id, school_id, seq, agent_time, agent_time_ms, receive_time, bytes, samples)
                     SELECT {uuid}, {school}, day * 2 + k + 1, toDateTime(({FIRST_DAY} + day) * 86400 + 28800 + k * 14400) AS at,
                        toInt64(toUInt32(at)) * 1000, at + 1, 900, 12
                     FROM (SELECT intDiv(number, {days} * 2) AS d, intDiv(number, 2) % {days} AS day, number % 2 AS k
                           FROM system.numbers LIMIT {rows})
                     WHERE {agent_cond} AND NOT (k = 1 AND (d * 7 + day) % 50 = 0)",
                    uuid = sql_uuid("d"),
                    school = sql_school(&format!("intDiv(d, {per_school})")),
                    rows = n * u64::try_from(days).unwrap() * 2
                ),
            ),
            (
                "daily usage (in use as pupil/teacher, idle; weekdays)",
                format!(
                    "INSERT INTO {DB}.usage_daily (device_id, school_id, local_day, state, user_class, total_ms, version)
                     SELECT {uuid}, {school}, toDate({FIRST_DAY} + day) AS ld,
                        if(k = 2, 'idle', 'in_use'), multiIf(k = 0, 'pupil', k = 1, 'teacher', 'none'),
                        toInt64((d % 5 + 1) * 1800000), 1
                     FROM (SELECT intDiv(number, {days} * 3) AS d, intDiv(number, 3) % {days} AS day, number % 3 AS k
                           FROM system.numbers LIMIT {rows})
                     WHERE {agent_cond} AND toDayOfWeek(toDate({FIRST_DAY} + day)) <= 5 AND NOT (k < 2 AND d % 7 = 0)",
                    uuid = sql_uuid("d"),
                    school = sql_school(&format!("intDiv(d, {per_school})")),
                    rows = n * u64::try_from(days).unwrap() * 3
                ),
            ),
            (
                "SNMP polls, hourly",
                format!(
                    "INSERT INTO {DB}.snmp_polls (device_id, agent_id, school_id, seq, polled_at_ms, ts, local_day, target, kind, outcome, serial)
                     SELECT {uuid}, {poller}, {school}, day * 24 + h + 1, toInt64(({FIRST_DAY} + day) * 86400 + h * 3600) * 1000,
                        toDateTime(({FIRST_DAY} + day) * 86400 + h * 3600), toDate({FIRST_DAY} + day),
                        concat('10.', toString(intDiv(d, {per_school}) % 250), '.0.', toString(d % {per_school})),
                        if((d % {per_school}) * 100 < 95 * {per_school}, 'printer', 'network'),
                        if(h = 3 AND d % 11 = 0, 'timeout', 'ok'), concat('SN-', substring(concat('0000000', toString(d)), length(toString(d)) + 1, 7))
                     FROM (SELECT intDiv(number, {days} * 24) AS d, intDiv(number, 24) % {days} AS day, number % 24 AS h
                           FROM system.numbers LIMIT {rows})
                     WHERE {snmp_cond}",
                    uuid = sql_uuid("d"),
                    poller = sql_uuid(&format!("(intDiv(d, {per_school}) * {per_school} + intDiv({per_school} * 45, 100))")),
                    school = sql_school(&format!("intDiv(d, {per_school})")),
                    rows = n * u64::try_from(days).unwrap() * 24
                ),
            ),
            (
                "printer page counters, hourly",
                format!(
                    "INSERT INTO {DB}.printer_counters (device_id, school_id, polled_at_ms, ts, local_day, marker, life_count, device_status, printer_status, seq)
                     SELECT {uuid}, {school}, toInt64(({FIRST_DAY} + day) * 86400 + h * 3600) * 1000,
                        toDateTime(({FIRST_DAY} + day) * 86400 + h * 3600), toDate({FIRST_DAY} + day), 1,
                        10000 + (day * 24 + h) * (d % 4), 2, 3, day * 24 + h + 1
                     FROM (SELECT intDiv(number, {days} * 24) AS d, intDiv(number, 24) % {days} AS day, number % 24 AS h
                           FROM system.numbers LIMIT {rows})
                     WHERE {printer_cond}",
                    uuid = sql_uuid("d"),
                    school = sql_school(&format!("intDiv(d, {per_school})")),
                    rows = n * u64::try_from(days).unwrap() * 24
                ),
            ),
            (
                "ЕСПД checks (36 rounds a day, speed tests every 4 h)",
                espd_checks_sql(DB, schools, u64::try_from(days).unwrap(), &format!("(s * {per_school} + intDiv({per_school} * 45, 100))")),
            ),
        ];
        for (what, sql) in &inserts {
            let t = Instant::now();
            let table = sql.split_whitespace().nth(2).unwrap();
            ch.query(sql);
            let rows = ch.query_u64(&format!("SELECT count() FROM {table}"));
            step(&format!("{what}: {rows} rows"), t);
        }
        let t = Instant::now();
        ch.query(&format!("OPTIMIZE TABLE {DB}.ledger_days FINAL"));
        let ledger_rows = ch.query_u64(&format!("SELECT count() FROM {DB}.ledger_days"));
        step(&format!("daily ledger merged: {ledger_rows} rows"), t);

        println!("loaded in {:.1} s", load.elapsed().as_secs_f64());
        drop(store);

        // The baseline's parts: each fact query alone, as ClickHouse runs it.
        let ids: Vec<String> = (0..schools).map(school_id).collect();
        let array = format!("[{}]", ids.iter().map(|i| format!("'{i}'")).collect::<Vec<_>>().join(","));
        let (from, to) = (day_string(u16::try_from(FIRST_DAY).unwrap()), day_string(u16::try_from(FIRST_DAY + days - 1).unwrap()));
        println!("fact queries one by one:");
        for (name, sql) in parta_collector::storage::compliance::catalogue() {
            let mut sql = sql.replace("CAST(? AS Array(String))", &format!("CAST({array} AS Array(String))"));
            let dates: &[&str] = match name {
                "compliance_ledger" => &[&from, &from, &from, &to, &to],
                "compliance_snmp_seen" => &[&to, &to],
                _ => &[&from, &to],
            };
            for d in dates {
                sql = sql.replacen("toDate(?)", &format!("toDate('{d}')"), 1);
            }
            let t = Instant::now();
            let mut resp = ureq::post(&format!("{}/?database={DB}", ch.url())).send(sql.as_bytes()).unwrap();
            let rows = resp.body_mut().with_config().limit(1 << 30).read_to_string().unwrap();
            println!("  {name:<24} {:>6.2} s  {:>6} rows", t.elapsed().as_secs_f64(), rows.lines().count());
        }
    });
    drop(rt);

    // Each measurement in a fresh process (this binary with `--child`), so that its peak
    // memory is the report's own: 3 runs, the median time and the highest peak.
    let modes = ["facts", "json", "xlsx", "csv"];
    let runs = 3;
    // Rounds of every mode in turn, so that the server's background merges after the load
    // fall on all of them alike.
    let mut samples: Vec<(Vec<Duration>, u64, u64)> = vec![(Vec::new(), 0, 0); modes.len()];
    for _ in 0..runs {
        for (mode, (times, peak, size)) in modes.iter().zip(samples.iter_mut()) {
            let t = Instant::now();
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--child", &ch.url(), mode])
                .args([schools, devices, u64::try_from(days).unwrap()].map(|n| n.to_string()))
                .output()
                .unwrap();
            times.push(t.elapsed());
            assert!(out.status.success(), "{mode}: {}", String::from_utf8_lossy(&out.stderr));
            let text = String::from_utf8(out.stdout).unwrap();
            let mut it = text.split_whitespace().map(|v| v.parse::<u64>().unwrap());
            *peak = (*peak).max(it.next().unwrap());
            *size = it.next().unwrap();
        }
    }
    let mut figures: Vec<(&str, Figure)> = Vec::new();
    for (mode, (mut times, peak, size)) in modes.into_iter().zip(samples) {
        times.sort();
        let name = match mode {
            "facts" => "baseline: read the facts",
            "json" => "JSON",
            "xlsx" => "XLSX",
            _ => "CSV",
        };
        let f = Figure { median: times[runs / 2], peak_mib: mib(peak) };
        #[allow(clippy::cast_precision_loss)] // figures for people
        let what =
            if mode == "facts" { format!("{size} devices") } else { format!("{:.2} MB", size as f64 / 1e6) };
        println!(
            "{name:<26} median {:>7.2} s (min {:.2}, max {:.2})  peak RSS {:>7.1} MiB  {what}",
            f.median.as_secs_f64(),
            times[0].as_secs_f64(),
            times[runs - 1].as_secs_f64(),
            f.peak_mib,
        );
        figures.push((name, f));
    }
    let base = &figures[0].1;
    for (name, f) in &figures[1..] {
        println!(
            "ratio {name:<5} / baseline: time {:.2}, peak RSS {:.2}",
            f.median.as_secs_f64() / base.median.as_secs_f64(),
            f.peak_mib / base.peak_mib
        );
    }
}

/// One measurement: `--child URL MODE SCHOOLS DEVICES DAYS`; prints the peak RSS (KiB) and
/// the size (devices read, or bytes of the export).
fn child(args: &[String]) {
    let (url, mode) = (args[0].clone(), args[1].as_str());
    let [schools, devices, days] = [&args[2], &args[3], &args[4]].map(|a| a.parse::<u64>().unwrap());
    let per_school = devices / schools;
    let days = i64::try_from(days).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let size = rt.block_on(async {
        let cfg =
            ClickHouseConfig { url, database: DB.into(), user: "default".into(), password: String::new() };
        let store = Store::connect(&cfg).await.unwrap();
        let profiles = profile::load_all(None).unwrap();
        let date = |day: i64| {
            jiff::civil::Date::strptime("%Y-%m-%d", day_string(u16::try_from(day).unwrap())).unwrap()
        };
        let (from, to) = (date(FIRST_DAY), date(FIRST_DAY + days - 1));
        let format = match mode {
            "json" => Format3::Json,
            "xlsx" => Format3::Xlsx,
            "csv" => Format3::Csv,
            _ => {
                // What every format needs first: the region's schools, their register, the facts.
                let registry = store.schools().await.unwrap();
                let ids: Vec<String> =
                    registry.iter().filter(|s| s.region_code == "74").map(|s| s.school_id.clone()).collect();
                let items = store.register_of(&ids).await.unwrap();
                let facts = store.compliance_facts(&ids, &from.to_string(), &to.to_string()).await.unwrap();
                assert_eq!(ids.len(), usize::try_from(schools).unwrap());
                assert!(!items.is_empty());
                assert_eq!(facts.espd.len(), ids.len(), "every school's ЕСПД checks");
                return facts.devices.len();
            }
        };
        let request = Request {
            scope: Scope::Region("74".into()),
            from,
            to,
            profile: profile::DEFAULT_PROFILE.into(),
            format,
            lang: Lang::Ru,
        };
        let built = build::build(&store, &profiles, &request, |_| {}).await.unwrap();
        check(&built.report, schools, devices, per_school);
        built.bytes.len()
    });
    println!("{} {size}", memory_kib().0);
}

/// The report's lists against what was generated: every registered device that never
/// reported is "on books, never seen"; every reporting device not registered (desktops are
/// not in the profile, so never registered) is "seen, not on books"; agents that were never in
/// use and printers that printed nothing are "seen, never used"; every school has an ЕСПД line
/// and a line per category; the slow schools fail.
fn check(
    r: &parta_collector::compliance::report::ComplianceReport,
    schools: u64,
    devices: u64,
    per_school: u64,
) {
    let role_of = |d: u64| role(d % per_school, per_school);
    let desktop = |d: u64| matches!(role_of(d), Role::Agent { class: "desktop", .. });
    let unseen = (0..devices).filter(|d| on_books(*d) && silent(*d) && !desktop(*d)).count();
    assert_eq!(r.on_books_not_seen.len(), unseen, "on books, never seen");
    let unregistered = (0..devices).filter(|d| !silent(*d) && (!on_books(*d) || desktop(*d))).count();
    assert_eq!(r.seen_not_on_books.len(), unregistered, "seen, not on books");
    let unused = (0..devices)
        .filter(|d| {
            !silent(*d)
                && match role_of(*d) {
                    Role::Agent { class: "desktop", .. } => false,
                    Role::Agent { .. } => d % 7 == 0,
                    Role::Printer => d % 4 == 0,
                    Role::Switch => false,
                }
        })
        .count();
    assert_eq!(r.seen_never_used.len(), unused, "seen, never used");
    assert_eq!(r.espd.len(), usize::try_from(schools).unwrap());
    assert_eq!(r.schools.len(), usize::try_from(schools * 6).unwrap(), "6 categories a school");
    let failing = r.espd.iter().filter(|e| e.verdict == "fail").count();
    assert_eq!(failing, (0..schools).filter(|s| s % 4 == 1).count(), "slow schools");
}
