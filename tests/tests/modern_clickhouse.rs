//! Every DDL statement and every read query runs on both ClickHouse generations: the real 18.16
//! server from Debian, and modern ClickHouse (26.x) in process through chdb.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use parta_collector::storage::queries;
use parta_collector::storage::schema::{self, ServerVersion};
use parta_tests::clickhouse::ClickHouse;

const DEVICE: &str = "6b1d3a52-8c41-4e0f-9d27-5510c38e7102";
const PANEL: &str = "0d7c0b5e-3b8f-5c1a-9e44-2f1d6a7b8c90";
const SPARE: &str = "11111111-2222-4333-8444-555555555555";

/// Sample rows so that queries aggregate and join real data, not empty tables.
fn sample_inserts(db: &str) -> Vec<(String, String)> {
    vec![
        (
            "insert devices".into(),
            format!(
                "INSERT INTO {db}.devices VALUES (toUUID('{DEVICE}'), '74-0012', 'computer', '0.1.0', toDateTime(1763802060), 7, 3600, toDateTime(1763798460))"
            ),
        ),
        (
            "insert host_info".into(),
            format!(
                "INSERT INTO {db}.host_info VALUES (toUUID('{DEVICE}'), '74-0012', 1, toDateTime(1763802000), 'kab-214', 'astra', 'Astra Linux', '1.7.5', 'Astra Linux', 'SE', '5.15', 'AQUARIUS', 'CMP', 'SN1', ['eth0'], ['00:1b:21:3a:4c:5d'])"
            ),
        ),
        (
            "insert ledger".into(),
            format!(
                "INSERT INTO {db}.ingest_ledger VALUES (toUUID('{DEVICE}'), '74-0012', 1, toDateTime(1763802000), 1763802000000, toDateTime(1763802001), 120, 2), \
             (toUUID('{DEVICE}'), '74-0012', 2, toDateTime(1763802060), 1763802060000, toDateTime(1763802061), 99, 1), \
             (toUUID('{DEVICE}'), '74-0012', 4, toDateTime(1763802180), 1763802180000, toDateTime(1763802181), 99, 1), \
             (toUUID('{DEVICE}'), '74-0012', 5, toDateTime(1763888400), 1763888400000, toDateTime(1763888401), 99, 1), \
             (toUUID('{DEVICE}'), '74-0012', 6, toDateTime(1763888460), 1763888460000, toDateTime(1763888461), 99, 1)"
            ),
        ),
        (
            // The next day's last report again, as after a collector failed between its insert
            // and the acknowledgement.
            "insert a resent report".into(),
            format!(
                "INSERT INTO {db}.ingest_ledger VALUES (toUUID('{DEVICE}'), '74-0012', 6, toDateTime(1763888460), 1763888460000, toDateTime(1763888461), 99, 1)"
            ),
        ),
        (
            "insert loss".into(),
            format!(
                "INSERT INTO {db}.spool_losses VALUES \
                 (toUUID('{DEVICE}'), '74-0012', 4, toDateTime(1763802180), 'thinned', 3, 3, 1, toDateTime(1763802120), toDateTime(1763802120)), \
                 (toUUID('{DEVICE}'), '74-0012', 4, toDateTime(1763802180), 'thinned', 3, 3, 1, toDateTime(1763802120), toDateTime(1763802120))"
            ),
        ),
        (
            "insert token".into(),
            format!(
                "INSERT INTO {db}_auth.enroll_tokens VALUES ('abc', 'hash', '74-0012', '', toDateTime(1763802000), 0, 0, toDateTime(0), 1), ('abc', 'hash', '74-0012', '', toDateTime(1763802000), 1, 5, toDateTime(1766394000), 2)"
            ),
        ),
        (
            // A device enrolled, then revoked; a certificate stored twice, a renewal; enrolled
            // in one school and moved to another.
            "insert fleet".into(),
            format!(
                "INSERT INTO {db}.fleet_devices VALUES \
                 (toUUID('{DEVICE}'), 'computer', '3059', 'k1', 'abc', toDateTime(1763802000), 'active', toDateTime(1763802000), 'token abc', 1), \
                 (toUUID('{DEVICE}'), 'computer', '3059', 'k1', 'abc', toDateTime(1763802000), 'revoked', toDateTime(1763900000), 'ivanov (command line)', 2)"
            ),
        ),
        (
            // A sign-out that still matters and one long expired.
            "insert ended sessions".into(),
            format!(
                "INSERT INTO {db}_auth.ended_sessions VALUES ('s1', 'ivanova', toDateTime(1763802000), toDateTime(4102444800)), \
                 ('s0', 'ivanova', toDateTime(946684800), toDateTime(946728000))"
            ),
        ),
        (
            "insert fleet certs".into(),
            format!(
                "INSERT INTO {db}.fleet_certs VALUES \
                 ('f1', toUUID('{DEVICE}'), '01', toDateTime(1795338000), toDateTime(1763802000), 'enrolled'), \
                 ('f1', toUUID('{DEVICE}'), '01', toDateTime(1795338000), toDateTime(1763802000), 'enrolled'), \
                 ('f2', toUUID('{DEVICE}'), '02', toDateTime(1800000000), toDateTime(1790000000), 'renewed')"
            ),
        ),
        (
            "insert fleet schools".into(),
            format!(
                "INSERT INTO {db}.fleet_schools VALUES \
                 (toUUID('{DEVICE}'), '74-0099', 1763850000000, 'ivanov (command line)', 'moved'), \
                 (toUUID('{DEVICE}'), '74-0012', 0, 'token abc', 'enrolled')"
            ),
        ),
        (
            "insert device_attrs".into(),
            format!(
                "INSERT INTO {db}.device_attrs VALUES \
                 (toUUID('{DEVICE}'), toUUID('{DEVICE}'), '74-0012', 'computer', 'desktop', '214', 'kab-214', 'SN1', 1), \
                 (toUUID('{DEVICE}'), toUUID('{DEVICE}'), '74-0012', 'computer', 'teacher_laptop', '214', 'kab-214', 'SN1', 2), \
                 (toUUID('{PANEL}'), toUUID('{DEVICE}'), '74-0012', 'panel', 'interactive_complex', '214', 'TeachTouch 75', 'TT75', 2), \
                 (toUUID('{SPARE}'), toUUID('{SPARE}'), '74-0012', 'computer', 'teacher_laptop', '', 'boxed', '', 1)"
            ),
        ),
        (
            "insert inventory".into(),
            format!(
                "INSERT INTO {db}.inventory VALUES (toUUID('{DEVICE}'), '74-0012', 1, toDateTime(1763802000), 'kab-214', '214', 'teacher_laptop', 'configured', 'Astra Linux', '1.7.5', 'SE', '5.15', 'AQUARIUS', 'NS685U', 'SN1', 10, 'AMI', '1.0', '01/01/2024', 'i3', 2, 4, 8000000000, ['nvme0n1'], ['Samsung'], [512110190592], ['ssd'], ['eth0'], ['00:1b:21:3a:4c:5d'], [1000], ['{PANEL}'], '{{\"hostname\":\"kab-214\"}}')"
            ),
        ),
        (
            "insert displays".into(),
            format!(
                "INSERT INTO {db}.displays VALUES (toUUID('{PANEL}'), toUUID('{DEVICE}'), '74-0012', 1, toDateTime(1763802000), '214', 'HDMI-A-1', 'TCH', 19229, 'TT75', 'TeachTouch 75', 1650, 928, 745, 2022, 'interactive_complex', 'panel', '{{\"connector\":\"HDMI-A-1\"}}')"
            ),
        ),
        (
            // 2026-11-02: 1 h in use by a teacher (sent twice: a resend), 30 min
            // idle; the panel 45 min in use; 2026-11-03: 10 min in use by a pupil, 8 h off.
            "insert usage".into(),
            format!(
                "INSERT INTO {db}.usage_intervals VALUES \
                 (toUUID('{DEVICE}'), toUUID('{DEVICE}'), '74-0012', 'host', 1793610000000, 1793613600000, toDateTime(1793610000), toDate('2026-11-02'), 'in_use', 'teacher', 0, 5, toDateTime(1793613601)), \
                 (toUUID('{DEVICE}'), toUUID('{DEVICE}'), '74-0012', 'host', 1793610000000, 1793613600000, toDateTime(1793610000), toDate('2026-11-02'), 'in_use', 'teacher', 0, 5, toDateTime(1793613700)), \
                 (toUUID('{DEVICE}'), toUUID('{DEVICE}'), '74-0012', 'host', 1793613600000, 1793615400000, toDateTime(1793613600), toDate('2026-11-02'), 'idle', 'none', 0, 6, toDateTime(1793615401)), \
                 (toUUID('{PANEL}'), toUUID('{DEVICE}'), '74-0012', 'display', 1793610000000, 1793612700000, toDateTime(1793610000), toDate('2026-11-02'), 'in_use', 'none', 0, 5, toDateTime(1793613601)), \
                 (toUUID('{DEVICE}'), toUUID('{DEVICE}'), '74-0012', 'host', 1793700000000, 1793700600000, toDateTime(1793700000), toDate('2026-11-03'), 'in_use', 'pupil', 0, 9, toDateTime(1793700601)), \
                 (toUUID('{DEVICE}'), toUUID('{DEVICE}'), '74-0012', 'host', 1793700600000, 1793729400000, toDateTime(1793700600), toDate('2026-11-03'), 'off', 'none', 0, 9, toDateTime(1793700601))"
            ),
        ),
        (
            // A switch port polled every 5 min on 2026-11-02 (the second poll resent): up, up,
            // down, up; the last poll of the device timed out.
            "insert snmp interfaces".into(),
            format!(
                "INSERT INTO {db}.snmp_interfaces VALUES \
                 (toUUID('{DEVICE}'), '74-0012', 1793610000000, toDateTime(1793610000), toDate('2026-11-02'), 1, 'gi1/0/1', 'uplink', 'GigabitEthernet1/0/1', 6, 1, 1, 1000, 64, 100, 200, 0, 0, 0, 'first', 20), \
                 (toUUID('{DEVICE}'), '74-0012', 1793610300000, toDateTime(1793610300), toDate('2026-11-02'), 1, 'gi1/0/1', 'uplink', 'GigabitEthernet1/0/1', 6, 1, 1, 1000, 64, 3000100, 600200, 1, 80000, 16000, 'measured', 21), \
                 (toUUID('{DEVICE}'), '74-0012', 1793610300000, toDateTime(1793610300), toDate('2026-11-02'), 1, 'gi1/0/1', 'uplink', 'GigabitEthernet1/0/1', 6, 1, 1, 1000, 64, 3000100, 600200, 1, 80000, 16000, 'measured', 21), \
                 (toUUID('{DEVICE}'), '74-0012', 1793610600000, toDateTime(1793610600), toDate('2026-11-02'), 1, 'gi1/0/1', 'uplink', 'GigabitEthernet1/0/1', 6, 1, 2, 1000, 64, 3000100, 600200, 1, 0, 0, 'measured', 22), \
                 (toUUID('{DEVICE}'), '74-0012', 1793610900000, toDateTime(1793610900), toDate('2026-11-02'), 1, 'gi1/0/1', 'uplink', 'GigabitEthernet1/0/1', 6, 1, 1, 1000, 64, 9000100, 900200, 1, 160000, 8000, 'measured', 23)"
            ),
        ),
        (
            "insert snmp polls".into(),
            format!(
                "INSERT INTO {db}.snmp_polls VALUES \
                 (toUUID('{DEVICE}'), toUUID('{PANEL}'), '74-0012', 21, 1793610300000, toDateTime(1793610300), toDate('2026-11-02'), '10.0.0.2:161', 'Коммутатор', '201', 'network', 'eltex', 'Eltex', 'ok', '', 12, 'MES2324B', '1.3.6.1.4.1.35265.1.81', 'sw-2', '', 4200, 0, 'ES1A'), \
                 (toUUID('{DEVICE}'), toUUID('{PANEL}'), '74-0012', 24, 1793611200000, toDateTime(1793611200), toDate('2026-11-02'), '10.0.0.2:161', 'Коммутатор', '201', 'network', '', '', 'timeout', 'no answer', 4000, '', '', '', '', 0, 0, '')"
            ),
        ),
        (
            // Page counter: 1000 on 2026-10-31 (the baseline), 1010→1050 on 11-02, 1050→1100
            // on 11-03 (one reading resent).
            "insert printer counters".into(),
            format!(
                "INSERT INTO {db}.printer_counters VALUES \
                 (toUUID('{DEVICE}'), '74-0012', 1793440000000, toDateTime(1793440000), toDate('2026-10-31'), 1, 1000, 2, 3, 30), \
                 (toUUID('{DEVICE}'), '74-0012', 1793610000000, toDateTime(1793610000), toDate('2026-11-02'), 1, 1010, 2, 3, 31), \
                 (toUUID('{DEVICE}'), '74-0012', 1793640000000, toDateTime(1793640000), toDate('2026-11-02'), 1, 1050, 2, 3, 32), \
                 (toUUID('{DEVICE}'), '74-0012', 1793700000000, toDateTime(1793700000), toDate('2026-11-03'), 1, 1050, 2, 4, 33), \
                 (toUUID('{DEVICE}'), '74-0012', 1793720000000, toDateTime(1793720000), toDate('2026-11-03'), 1, 1100, 2, 3, 34), \
                 (toUUID('{DEVICE}'), '74-0012', 1793720000000, toDateTime(1793720000), toDate('2026-11-03'), 1, 1100, 2, 3, 34)"
            ),
        ),
        (
            // Two ЕСПД runs of a rural school's probe; the first run's reach check resent.
            "insert connectivity checks".into(),
            format!("INSERT INTO {db}.connectivity_checks VALUES {}", connectivity_rows().join(", ")),
        ),
        (
            "insert power".into(),
            format!(
                "INSERT INTO {db}.power_events VALUES (toUUID('{DEVICE}'), '74-0012', 9, 1793700600000, toDateTime(1793700600), 'shutdown', 1, 'b1')"
            ),
        ),
        (
            // A school imported twice (the second import renames it), another once.
            "insert schools".into(),
            format!(
                "INSERT INTO {db}.schools VALUES \
                 ('74-0012', '74', 'Копейский ГО', 'СОШ 1', '', 'urban', 1020, 61, 8, 40, 2, 'imp-a', 1), \
                 ('74-0012', '74', 'Копейский ГО', 'МОУ СОШ № 1', '', 'urban', 1020, 61, 8, 40, 2, 'imp-b', 2), \
                 ('74-0345', '74', 'Аргаяшский МР', 'Аргаяшская СОШ', '', 'rural', 180, 17, 3, 0, 1, 'imp-a', 1)"
            ),
        ),
        (
            // School 74-0012's register imported twice (the second has one item less); an import
            // whose commit row never came (imp-x) stays invisible.
            "insert register".into(),
            format!(
                "INSERT INTO {db}.register_items VALUES \
                 ('74-0012', 'imp-r1', '0101', 2, 'teacher_laptop', 'Aquarius', 'NS685U', 'SN-1', 'SN1', '', '214', '2021-09-01', 'ЦОС'), \
                 ('74-0012', 'imp-r1', '0102', 3, 'teacher_laptop', 'Aquarius', 'NS685U', 'SN-2', 'SN2', '', '214', '2021-09-01', 'ЦОС'), \
                 ('74-0012', 'imp-r2', '0101', 2, 'teacher_laptop', 'Aquarius', 'NS685U', 'SN-1', 'SN1', '', '214', '2021-09-01', 'ЦОС'), \
                 ('74-0012', 'imp-r2', '0101', 2, 'teacher_laptop', 'Aquarius', 'NS685U', 'SN-1', 'SN1', '', '214', '2021-09-01', 'ЦОС'), \
                 ('74-0012', 'imp-x', '0999', 2, 'mfu', '', '', 'X', 'X', '', '', '', '')"
            ),
        ),
        (
            "insert register commits".into(),
            format!(
                "INSERT INTO {db}.register_imports VALUES ('74-0012', 'imp-r1', 2, 1), ('74-0012', 'imp-r2', 1, 2)"
            ),
        ),
        (
            "insert import log".into(),
            format!(
                "INSERT INTO {db}.import_log VALUES ('imp-r2', 'register', toDateTime(1793700000), 'ivanov (command line)', 'reg.csv', 'ab', 1, 1, 'cos-2021 2026.1')"
            ),
        ),
        (
            "insert export log".into(),
            format!(
                "INSERT INTO {db}.export_log VALUES ('exp-1', toDateTime(1793700000), 'ivanov (command line)', 'cli', 'compliance', 'municipality:74/Копейский ГО', toDate('2026-09-01'), toDate('2026-11-30'), 'cos-2021 2026.1', 'xlsx', 1234, 'cd')"
            ),
        ),
    ]
}

/// `connectivity_checks` rows: (run, check no, kind, target, outcome, sent, received, rtt, jitter,
/// bit/s at the IP layer; the payload rate 5 % less) for two runs, and the first reach check
/// once more (a resent report).
fn connectivity_rows() -> Vec<String> {
    type Check = (i64, u16, &'static str, &'static str, &'static str, u16, u16, u32, u32, u64);
    let checks: [Check; 9] = [
        (1_793_610_000_000, 0, "reach", "https://a/", "ok", 0, 0, 0, 0, 0),
        (1_793_610_000_000, 0, "reach", "https://a/", "ok", 0, 0, 0, 0, 0),
        (1_793_610_000_000, 1, "filter", "http://b/", "not_blocked", 0, 0, 0, 0, 0),
        (1_793_610_000_000, 2, "latency", "h:443", "ok", 10, 9, 20_000, 1_000, 0),
        (1_793_610_000_000, 3, "download", "h:4433", "ok", 0, 0, 0, 0, 80_000_000),
        (1_793_620_000_000, 0, "reach", "https://a/", "blocked", 0, 0, 0, 0, 0),
        (1_793_620_000_000, 1, "filter", "http://b/", "ok", 0, 0, 0, 0, 0),
        (1_793_620_000_000, 2, "latency", "h:443", "ok", 10, 10, 30_000, 3_000, 0),
        (1_793_620_000_000, 3, "download", "h:4433", "slow", 0, 0, 0, 0, 40_000_000),
    ];
    checks
        .iter()
        .map(|(run, no, kind, target, outcome, sent, received, rtt, jitter, bps)| {
            format!(
                "(toUUID('{DEVICE}'), '74-0012', 40, {run}, toDateTime({}), toDate('2026-11-02'), 'reachability', 'rural', 50, \
                 {no}, '{kind}', '{target}', '{outcome}', '', {run}, 100, 1, 2, 3, 4, 200, ['10.0.0.1'], '', {sent}, {received}, \
                 {rtt}, {rtt}, {rtt}, {rtt}, {jitter}, 0, 0, {}, {bps}, 0)",
                run / 1000,
                bps / 100 * 95
            )
        })
        .collect()
}

/// The read queries with their placeholders bound to sample values.
fn bound_queries(db: &str) -> Vec<(String, String)> {
    queries::catalogue()
        .into_iter()
        .chain(parta_collector::storage::registry::catalogue())
        .chain(parta_collector::storage::compliance::catalogue())
        .chain(parta_collector::storage::overview::catalogue())
        .chain(parta_collector::storage::accounts::catalogue())
        .chain(parta_collector::storage::fleet::catalogue())
        .chain(parta_collector::storage::policies::catalogue())
        .chain(parta_collector::storage::releases::catalogue())
        .map(|(name, sql)| {
            // The rollups' version, the overview's "online since" time.
            let sql = sql
                .replace("toUInt64(?)", "toUInt64(1)")
                .replace("d_seen >= ?", "d_seen >= toDateTime('2025-11-01 00:00:00')");
            // The compliance queries: the scope's schools as an array, and the period 2025-11-01
            // to 2026-11-20 (the ledger samples are of 2025-11-22, within the year before the end
            // the ledger query looks back), in the order each query takes it.
            let mut sql = sql.replace("CAST(? AS Array(String))", "CAST(['74-0012'] AS Array(String))");
            let dates: &[&str] = match name {
                "compliance_ledger" => {
                    &["2025-11-01", "2025-11-01", "2025-11-01", "2026-11-20", "2026-11-20"]
                }
                "compliance_snmp_seen" => &["2026-11-20", "2026-11-20"],
                n if n.starts_with("compliance_") => &["2025-11-01", "2026-11-20"],
                _ => &[],
            };
            for d in dates {
                sql = sql.replacen("toDate(?)", &format!("toDate('{d}')"), 1);
            }
            let mut sql = sql
                .replacen("toDate(?)", "toDate('2026-11-01')", 1)
                .replacen("toDate(?)", "toDate('2026-11-30')", 1)
                .replace(
                    "toUUID(?)",
                    &format!("toUUID('{}')", if name == "display_latest" { PANEL } else { DEVICE }),
                )
                .replace('?', "'74-0012'");
            // A query may end at its table's name.
            sql.push('\n');
            for table in [
                "devices",
                "host_info",
                "ingest_ledger",
                "spool_losses",
                "device_attrs",
                "inventory",
                "displays",
                "usage_intervals",
                "power_events",
                "usage_daily",
                "snmp_polls",
                "snmp_interfaces",
                "printer_counters",
                "connectivity_checks",
                "schools",
                "register_items",
                "register_imports",
                "import_log",
                "export_log",
                "ledger_days",
                "school_days",
                "espd_days",
                "compliance_status",
                "fleet_devices",
                "fleet_certs",
                "fleet_schools",
                "policy_status",
                "update_status",
            ] {
                sql = sql.replace(&format!("INTO {table} "), &format!("INTO {db}.{table} "));
                sql = sql.replace(&format!("FROM {table}\n"), &format!("FROM {db}.{table}\n"));
                sql = sql.replace(&format!("FROM {table} "), &format!("FROM {db}.{table} "));
            }
            // Accounts and credentials are in the auth database.
            for table in [
                "users",
                "api_tokens",
                "enroll_tokens",
                "ended_sessions",
                "policies",
                "releases",
                "release_rollouts",
            ] {
                let auth = parta_collector::storage::schema::auth_database(db);
                sql = sql.replace(&format!("FROM {table}\n"), &format!("FROM {auth}.{table}\n"));
                sql = sql.replace(&format!("FROM {table} "), &format!("FROM {auth}.{table} "));
            }
            assert!(
                !sql.contains("FROM devices") && !sql.contains("FROM spool_losses"),
                "unqualified table in {name}"
            );
            (name.to_owned(), sql)
        })
        .collect()
}

fn script(db: &str, version: ServerVersion) -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = schema::all_statements(db, version.caps())
        .into_iter()
        .enumerate()
        .map(|(i, s)| (format!("ddl #{i}"), s))
        .collect();
    all.extend(sample_inserts(db));
    all.extend(bound_queries(db));
    all
}

#[test]
fn schema_and_queries_run_on_modern_clickhouse_via_chdb() {
    let stmts = script("parta", ServerVersion { major: 26, minor: 9 });
    let run = parta_tests::chdb::run(&stmts);
    let major: u32 = run.version.split('.').next().unwrap().parse().unwrap();
    assert!(major >= 23, "modern ClickHouse expected, got {}", run.version);
    run.assert_all_ok();
    // Modern features are really in use on modern servers.
    let ddl: String = stmts.iter().map(|s| s.1.as_str()).collect();
    assert!(ddl.contains("LowCardinality(") && ddl.contains("CODEC(") && ddl.contains("TTL "));
    check_query_results(run.results.into_iter().map(|r| (r.name, r.rows)));
}

#[test]
fn schema_and_queries_run_on_debian_clickhouse_18() {
    let ch = ClickHouse::start();
    let version = ServerVersion::parse(&ch.query("SELECT version()")).unwrap();
    assert_eq!((version.major, version.minor), (18, 16), "Debian's ClickHouse expected");
    let mut results = Vec::new();
    for (name, sql) in script("parta", version) {
        let is_query = sql.trim_start().starts_with("SELECT");
        let out = ch.query(&if is_query { format!("{sql} FORMAT JSONEachRow") } else { sql.clone() });
        results.push((name, out));
    }
    check_query_results(results.into_iter());
}

/// The named fields of JSONEachRow rows, `|`-joined per row (numbers that ClickHouse quotes,
/// like UInt64, unquoted).
fn fields(rows: &str, names: &[&str]) -> Vec<String> {
    rows.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            names.iter().map(|k| v[*k].to_string().trim_matches('"').to_owned()).collect::<Vec<_>>().join("|")
        })
        .collect()
}

/// Both servers must give the same answers on the sample data.
fn check_query_results(results: impl Iterator<Item = (String, String)>) {
    let mut seen = 0;
    for (name, rows) in results {
        match name.as_str() {
            "devices" | "devices_of_school" => {
                assert!(
                    rows.contains("kab-214") && rows.contains("Astra Linux") && rows.contains("74-0012"),
                    "{name}: {rows}"
                );
                seen += 1;
            }
            "ledger_summary" => {
                let row: serde_json::Value = serde_json::from_str(rows.trim()).unwrap();
                // 64-bit integers come quoted or bare depending on the server's JSON settings.
                let num = |k: &str| row[k].to_string().trim_matches('"').to_owned();
                // Five distinct reports (the resent one once), 1 to 6.
                assert_eq!((num("n"), num("lo"), num("hi")), ("5".into(), "1".into(), "6".into()), "{rows}");
                seen += 1;
            }
            "ledger_seqs" => {
                assert_eq!(rows.lines().count(), 5, "{rows}");
                seen += 1;
            }
            "spool_losses" => {
                assert_eq!(rows.lines().count(), 1, "one row per notice even if stored twice: {rows}");
                assert!(rows.contains("thinned"), "{rows}");
                seen += 1;
            }
            "tokens" => {
                assert_eq!(rows.lines().count(), 1, "{rows}");
                assert!(rows.contains("\"t_revoked\":1"), "latest row wins: {rows}");
                assert_eq!(fields(&rows, &["t_max_uses"]), ["5"], "the latest limits: {rows}");
                seen += 1;
            }
            "fleet_devices" => {
                assert_eq!(
                    fields(&rows, &["f_state", "f_state_by"]),
                    ["revoked|ivanov (command line)"],
                    "{rows}"
                );
                seen += 1;
            }
            "fleet_certs" => {
                assert_eq!(rows.lines().count(), 2, "one row per certificate: {rows}");
                seen += 1;
            }
            "fleet_schools" => {
                let schools: Vec<&str> =
                    rows.lines().map(|l| if l.contains("74-0099") { "74-0099" } else { "74-0012" }).collect();
                assert_eq!(schools, ["74-0012", "74-0099"], "oldest first: {rows}");
                seen += 1;
            }
            "ended_sessions" => {
                assert_eq!(rows.lines().count(), 1, "expired sign-outs are not read: {rows}");
                assert!(rows.contains("s1"), "{rows}");
                seen += 1;
            }
            "legacy_school" => {
                assert!(rows.contains("74-0012"), "{rows}");
                seen += 1;
            }
            "device_attrs" => {
                assert_eq!(rows.lines().count(), 1, "{rows}");
                assert!(
                    rows.contains("teacher_laptop") && rows.contains("kab-214"),
                    "latest version wins: {rows}"
                );
                seen += 1;
            }
            "inventory_latest" | "display_latest" => {
                assert_eq!(rows.lines().count(), 1, "{rows}");
                assert!(rows.contains("kab-214") || rows.contains("HDMI-A-1"), "{rows}");
                seen += 1;
            }
            "device_usage" => {
                let got: Vec<(String, String, String, String)> = rows
                    .lines()
                    .map(|l| {
                        let v: serde_json::Value = serde_json::from_str(l).unwrap();
                        let t = |k: &str| v[k].to_string().trim_matches('"').to_owned();
                        (t("local_day"), t("state"), t("user_class"), t("day_ms"))
                    })
                    .collect();
                let want: Vec<(String, String, String, String)> = [
                    ("2026-11-02", "idle", "none", "1800000"),
                    ("2026-11-02", "in_use", "teacher", "3600000"),
                    ("2026-11-03", "in_use", "pupil", "600000"),
                    ("2026-11-03", "off", "none", "28800000"),
                ]
                .iter()
                .map(|(a, b, c, d)| ((*a).into(), (*b).into(), (*c).into(), (*d).into()))
                .collect();
                assert_eq!(got, want, "a resent interval counts once: {rows}");
                seen += 1;
            }
            "school_utilization" => {
                let got: Vec<(String, String, String, String, String)> = rows
                    .lines()
                    .map(|l| {
                        let v: serde_json::Value = serde_json::from_str(l).unwrap();
                        let t = |k: &str| v[k].to_string().trim_matches('"').to_owned();
                        (t("attr_class"), t("n_devices"), t("n_used"), t("total_powered"), t("total_used"))
                    })
                    .collect();
                let want = vec![
                    (
                        "interactive_complex".to_owned(),
                        "1".to_owned(),
                        "1".to_owned(),
                        "2700000".to_owned(),
                        "2700000".to_owned(),
                    ),
                    ("teacher_laptop".into(), "2".into(), "1".into(), "6000000".into(), "4200000".into()),
                ];
                assert_eq!(got, want, "{rows}");
                seen += 1;
            }
            "school_utilization_by_room" => {
                let got: Vec<String> = rows
                    .lines()
                    .map(|l| {
                        let v: serde_json::Value = serde_json::from_str(l).unwrap();
                        let t = |k: &str| v[k].to_string().trim_matches('"').to_owned();
                        [t("group_room"), t("attr_class"), t("n_devices"), t("n_used"), t("total_used")]
                            .join("|")
                    })
                    .collect();
                assert_eq!(
                    got,
                    [
                        "|teacher_laptop|1|0|0",
                        "214|interactive_complex|1|1|2700000",
                        "214|teacher_laptop|1|1|4200000"
                    ],
                    "{rows}"
                );
                seen += 1;
            }
            "snmp_devices" | "snmp_devices_of_school" => {
                assert_eq!(
                    fields(&rows, &["s_kind", "s_label", "s_descr", "s_outcome", "s_uptime"]),
                    ["network|Коммутатор|MES2324B|timeout|4200"],
                    "identity from the last poll that answered, outcome from the last: {rows}"
                );
                seen += 1;
            }
            "snmp_if_series" => {
                let got = fields(&rows, &["bucket", "b_rated", "b_in_sum", "b_in_max", "b_polls"]);
                // One bucket per poll; the resent poll counts once.
                assert_eq!(
                    got,
                    [
                        "5978700|0|0|0|1",
                        "5978701|1|80000|80000|1",
                        "5978702|1|0|0|1",
                        "5978703|1|160000|160000|1"
                    ],
                    "{rows}"
                );
                seen += 1;
            }
            "snmp_if_status" => {
                // Int64 times are quoted in JSON: compare without the quotes.
                let got: Vec<String> =
                    fields(&rows, &["first_state", "last_state", "change_times", "change_states"])
                        .iter()
                        .map(|r| r.replace('"', ""))
                        .collect();
                assert_eq!(got, ["1|1|[1793610600000,1793610900000]|[2,1]"], "{rows}");
                seen += 1;
            }
            "printer_days" => {
                let got = fields(&rows, &["p_day", "d_first", "d_last", "d_polls"]);
                assert_eq!(got, ["2026-11-02|1010|1050|2", "2026-11-03|1050|1100|2"], "{rows}");
                seen += 1;
            }
            "snmp_latest" => {
                assert!(rows.contains("MES2324B") && rows.contains("ES1A"), "the poll that answered: {rows}");
                seen += 1;
            }
            "printer_baseline" => {
                assert_eq!(
                    fields(&rows, &["marker", "b_last"]),
                    ["1|1000"],
                    "the last reading before the range: {rows}"
                );
                seen += 1;
            }
            "connectivity_outcomes" => {
                let got = fields(&rows, &["c_kind", "c_target", "c_outcome", "n"]);
                assert_eq!(
                    got,
                    [
                        "download|h:4433|ok|1",
                        "download|h:4433|slow|1",
                        "filter|http://b/|not_blocked|1",
                        "filter|http://b/|ok|1",
                        "latency|h:443|ok|2",
                        "reach|https://a/|blocked|1",
                        "reach|https://a/|ok|1"
                    ],
                    "the resent check counts once: {rows}"
                );
                seen += 1;
            }
            "connectivity_throughput" => {
                let got =
                    fields(&rows, &["c_kind", "tests", "median_bps", "p10_bps", "met", "required_mbps"]);
                assert_eq!(got, ["download|2|80000000|40000000|1|50"], "{rows}");
                seen += 1;
            }
            "connectivity_latency" => {
                let got = fields(&rows, &["c_target", "runs", "rtt_us", "jitter_us", "sent", "received"]);
                assert_eq!(got, ["h:443|2|30000|2000|20|19"], "{rows}");
                seen += 1;
            }
            "connectivity_latest" => {
                assert_eq!(fields(&rows, &["locality", "required_mbps"]), ["rural|50"], "{rows}");
                seen += 1;
            }
            "schools" => {
                let got = fields(&rows, &["school_id", "name", "locality", "pupils", "import_id"]);
                assert_eq!(
                    got,
                    ["74-0012|МОУ СОШ № 1|urban|1020|imp-b", "74-0345|Аргаяшская СОШ|rural|180|imp-a"],
                    "{rows}"
                );
                seen += 1;
            }
            "register" | "register_of_schools" => {
                let got = fields(&rows, &["school_id", "import_id", "inventory_no", "serial_key"]);
                assert_eq!(got, ["74-0012|imp-r2|0101|SN1"], "the latest committed import, once: {rows}");
                seen += 1;
            }
            "compliance_attrs" => {
                let mut got = fields(&rows, &["id", "host", "class", "serial"]);
                got.sort();
                assert_eq!(
                    got,
                    [
                        format!("{DEVICE}|{DEVICE}|teacher_laptop|SN1"),
                        format!("{PANEL}|{DEVICE}|interactive_complex|TT75"),
                        format!("{SPARE}|{SPARE}|teacher_laptop|"),
                    ]
                    .into_iter()
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect::<Vec<_>>(),
                    "{rows}"
                );
                seen += 1;
            }
            "compliance_macs" => {
                assert!(rows.contains("00:1b:21:3a:4c:5d"), "{rows}");
                seen += 1;
            }
            "compliance_ledger" => {
                // Sequence numbers 1, 2 and 4 of 2025-11-22 (day 20414), 5 and 6 (twice) of the
                // next day: 6 expected, 5 received — the resent report does not count.
                let got = fields(&rows, &["school", "last_day", "first_seq", "last_seq", "received"]);
                assert_eq!(got, ["74-0012|20415|1|6|5"], "{rows}");
                seen += 1;
            }
            "compliance_snmp_seen" => {
                assert_eq!(
                    fields(&rows, &["last_day"]),
                    ["20759"],
                    "the last poll that answered, 2026-11-02: {rows}"
                );
                seen += 1;
            }
            "compliance_in_use" => {
                let mut got = fields(&rows, &["id", "in_use_ms"]);
                got.sort();
                let mut want = vec![format!("{DEVICE}|4200000"), format!("{PANEL}|2700000")];
                want.sort();
                assert_eq!(got, want, "{rows}");
                seen += 1;
            }
            "compliance_pages" => {
                assert_eq!(fields(&rows, &["pages"]).len(), 1, "{rows}");
                seen += 1;
            }
            "compliance_espd" => {
                let got =
                    fields(&rows, &["school", "checks", "passed", "tests", "median_bps", "p10_bps", "met"]);
                assert_eq!(got, ["74-0012|8|5|2|80000000|40000000|1"], "{rows}");
                seen += 1;
            }
            // The school-day rollups and what the web UI reads: the same totals as the
            // per-device queries above (in use 4,200,000 + 2,700,000 ms; powered on 6,000,000 +
            // 2,700,000 ms; the ЕСПД figures of compliance_espd).
            "overview_usage" => {
                assert_eq!(
                    fields(&rows, &["school_id", "s_in_use", "s_powered"]),
                    ["74-0012|6900000|8700000"],
                    "{rows}"
                );
                seen += 1;
            }
            "overview_espd" => {
                let got = fields(&rows, &["school_id", "s_checks", "s_passed", "s_tests", "s_met"]);
                assert_eq!(got, ["74-0012|8|5|2|1"], "{rows}");
                seen += 1;
            }
            "school_heatmap" | "school_class_days" | "school_devices" => {
                let key = match name.as_str() {
                    "school_heatmap" => "ms",
                    "school_class_days" => "used_ms",
                    _ => "u_used",
                };
                let total: i64 = fields(&rows, &[key]).iter().map(|v| v.parse::<i64>().unwrap_or(0)).sum();
                assert_eq!(total, 6_900_000, "{name}: {rows}");
                seen += 1;
            }
            "imports" | "exports" => {
                assert_eq!(rows.lines().count(), 1, "{rows}");
                assert!(rows.contains("ivanov (command line)"), "{rows}");
                seen += 1;
            }
            _ => {}
        }
    }
    assert_eq!(seen, 45, "every catalogued query with sample data (but the rollup INSERTs) was checked");
}
