//! Every DDL statement and every read query runs on both ClickHouse generations: the real 18.16
//! server from Debian, and modern ClickHouse (26.x) in process through chdb.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use parta_collector::storage::queries;
use parta_collector::storage::schema::{self, ServerVersion};
use parta_tests::clickhouse::ClickHouse;

const DEVICE: &str = "6b1d3a52-8c41-4e0f-9d27-5510c38e7102";

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
             (toUUID('{DEVICE}'), '74-0012', 4, toDateTime(1763802180), 1763802180000, toDateTime(1763802181), 99, 1)"
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
                "INSERT INTO {db}.enroll_tokens VALUES ('abc', 'hash', '74-0012', '', toDateTime(1763802000), 0, 1), ('abc', 'hash', '74-0012', '', toDateTime(1763802000), 1, 2)"
            ),
        ),
    ]
}

/// The read queries with their placeholders bound to sample values.
fn bound_queries(db: &str) -> Vec<(String, String)> {
    queries::catalogue()
        .into_iter()
        .map(|(name, sql)| {
            let value = if sql.contains("toUUID(?)") { DEVICE } else { "74-0012" };
            let mut sql = sql.replace('?', &format!("'{value}'"));
            for table in ["devices", "host_info", "ingest_ledger", "enroll_tokens", "spool_losses"] {
                sql = sql.replace(&format!("FROM {table}\n"), &format!("FROM {db}.{table}\n"));
                sql = sql.replace(&format!("FROM {table} "), &format!("FROM {db}.{table} "));
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
                assert_eq!((num("n"), num("lo"), num("hi")), ("3".into(), "1".into(), "4".into()), "{rows}");
                seen += 1;
            }
            "ledger_seqs" => {
                assert_eq!(rows.lines().count(), 3, "{rows}");
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
                seen += 1;
            }
            _ => {}
        }
    }
    assert_eq!(seen, 6, "every catalogued query was checked");
}
