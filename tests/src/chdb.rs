//! Modern ClickHouse (26.x) in process through chdb (PyPI `chdb-core`), driven by
//! `tests/chdb/run_sql.py`.

use crate::util::workspace_root;

/// The outcome of one statement.
#[derive(Debug, serde::Deserialize)]
pub struct Outcome {
    /// Label given with the statement.
    pub name: String,
    /// Whether it ran.
    pub ok: bool,
    /// Result rows, JSONEachRow.
    #[serde(default)]
    pub rows: String,
    /// The error, when it failed.
    #[serde(default)]
    pub error: String,
}

/// A run of statements in one fresh chdb session.
#[derive(Debug, serde::Deserialize)]
pub struct Run {
    /// ClickHouse version of the chdb engine.
    pub version: String,
    /// One outcome per statement, in order.
    pub results: Vec<Outcome>,
}

impl Run {
    /// Panics, naming the statement and the error, unless every statement ran.
    pub fn assert_all_ok(&self) {
        for r in &self.results {
            assert!(r.ok, "{} failed on ClickHouse {}: {}", r.name, self.version, r.error);
        }
    }
}

/// Runs `[label, sql]` statements in order in one session.
pub fn run(statements: &[(String, String)]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("statements.json");
    std::fs::write(&file, serde_json::to_vec(statements).unwrap()).unwrap();
    let out = std::process::Command::new("python3")
        .arg(workspace_root().join("tests/chdb/run_sql.py"))
        .arg(&file)
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "chdb runner failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let run: Run =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("chdb runner output {stdout}: {e}"));
    assert_eq!(run.results.len(), statements.len(), "one outcome per statement");
    run
}
