//! Every SQL query in `dashboards/` runs, macros expanded, on the real ClickHouse 18.16 and on
//! modern ClickHouse (chdb), against the schema the collector creates.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use parta_collector::storage::schema::{self, ServerVersion};
use parta_tests::clickhouse::ClickHouse;
use parta_tests::grafana::{self, Expansion};
use parta_tests::util::workspace_root;

fn all_queries() -> Vec<(String, String)> {
    let dir = workspace_root().join("dashboards/grafana");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let e = Expansion {
        from: 1_763_700_000,
        to: 1_763_900_000,
        interval_s: 300,
        vars: vec![("school".into(), "'74-0012','74-0013'".into())],
    };
    let queries: Vec<(String, String)> = files
        .iter()
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .flat_map(|p| grafana::queries(p))
        .map(|(name, sql)| (name, grafana::expand(&sql, &e)))
        .collect();
    assert!(queries.len() >= 20, "dashboards hold their queries: found {}", queries.len());
    queries
}

/// A few rows so the queries aggregate real data.
const SAMPLE: &str = "INSERT INTO parta.ingest_ledger VALUES \
    (toUUID('6b1d3a52-8c41-4e0f-9d27-5510c38e7102'), '74-0012', 1, toDateTime(1763802000), 1763802000000, toDateTime(1763802001), 120, 2), \
    (toUUID('6b1d3a52-8c41-4e0f-9d27-5510c38e7102'), '74-0012', 3, toDateTime(1763802120), 1763802120000, toDateTime(1763802121), 99, 1)";

const GRAFANA_PASSWORD: &str = "grafana-reads-only";

/// The shipped read-only user for Grafana, its password set as the file tells administrators.
fn grafana_user_xml() -> String {
    use sha2::Digest as _;
    let shipped =
        std::fs::read_to_string(workspace_root().join("dashboards/clickhouse-readonly-user.xml")).unwrap();
    let sha = hex::encode(sha2::Sha256::digest(GRAFANA_PASSWORD.as_bytes()));
    assert!(shipped.contains("REPLACE_WITH_SHA256_OF_PASSWORD"));
    shipped.replace("REPLACE_WITH_SHA256_OF_PASSWORD", &sha)
}

/// The dashboards run as the shipped read-only Grafana user, which reads `parta` and nothing
/// else: not the accounts, password hashes, token hashes and enrolment secrets in `parta_auth`,
/// and it cannot write.
#[test]
fn dashboard_queries_run_on_clickhouse_18_as_the_read_only_user() {
    let ch = ClickHouse::start_with_users(&[("parta-grafana.xml", &grafana_user_xml())]);
    let version = ServerVersion::parse(&ch.query("SELECT version()")).unwrap();
    for stmt in schema::all_statements("parta", version.caps()) {
        ch.query(&stmt);
    }
    ch.query(SAMPLE);
    ch.query("INSERT INTO parta_auth.users (login, role, scope, password_hash) VALUES ('admin', 'admin', 'all', '$argon2id$secret')");
    let grafana = |sql: &str| ch.query_as("parta_grafana", GRAFANA_PASSWORD, sql);
    for (name, sql) in all_queries() {
        let (status, out) = grafana(&format!("{sql} FORMAT TabSeparated"));
        assert_eq!(status, 200, "{name} as the Grafana user: {out}");
        if name.contains("Полнота") {
            assert!(out.contains("66.7"), "completeness of 2 of 3 reports: {out}");
        }
    }
    for sql in [
        "SELECT password_hash FROM parta_auth.users",
        "SELECT * FROM parta_auth.api_tokens",
        "SELECT * FROM parta_auth.enroll_tokens",
    ] {
        let (status, out) = grafana(sql);
        assert_ne!(status, 200, "{sql} must be refused to Grafana: {out}");
        assert!(out.contains("parta_auth") || out.contains("ACCESS_DENIED"), "{sql}: {out}");
    }
    // 18.16 answers SHOW TABLES of a database the user may not use with nothing.
    let (status, out) = grafana("SHOW TABLES FROM parta_auth");
    assert!(status != 200 || !out.contains("users"), "{out}");
    let (status, out) = grafana("INSERT INTO parta.ingest_ledger SELECT * FROM parta.ingest_ledger");
    assert_ne!(status, 200, "the Grafana user cannot write: {out}");
    assert!(
        ch.query("SELECT password_hash FROM parta_auth.users").contains("argon2id"),
        "the collector's user can"
    );
}

#[test]
fn dashboard_queries_run_on_modern_clickhouse() {
    let mut stmts: Vec<(String, String)> =
        schema::all_statements("parta", ServerVersion { major: 26, minor: 9 }.caps())
            .into_iter()
            .enumerate()
            .map(|(i, s)| (format!("ddl #{i}"), s))
            .collect();
    stmts.push(("sample".into(), SAMPLE.into()));
    stmts.extend(all_queries());
    let run = parta_tests::chdb::run(&stmts);
    run.assert_all_ok();
    let completeness = run.results.iter().find(|r| r.name.contains("Полнота")).expect("completeness panel");
    assert!(completeness.rows.contains("66.7"), "{}", completeness.rows);
}
