//! Compliance inputs end to end: `parta-collector schools import` and `inventory import` on the
//! real ClickHouse with the fixture municipality (`tests/fixtures/compliance/`): a Windows-1251
//! registry, a comma-separated register, and malformed files that must be refused with the
//! line, the column and the reason while nothing at all changes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use parta_tests::clickhouse::ClickHouse;
use parta_tests::procs::Collector;
use parta_tests::util::{artifacts_dir, workspace_root};
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
        (Some(1020), Some("urban"), Some(2))
    );
    assert_eq!(schools[2]["locality"], "rural");

    // The register, comma-separated UTF-8.
    let register = fixture("register.csv").display().to_string();
    let (code, out, err) = run(&collector, &["inventory", "import", &register]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("9 rows read (UTF-8, separated by «,»), 3 schools; imported as imp-"), "{out}");

    // Malformed files: each refused with exit 65 and the precise problem; nothing changes.
    let before = state(&ch, db);
    let utf8 = std::fs::read_to_string(fixture("schools.csv")).unwrap();
    let reg = std::fs::read_to_string(fixture("register.csv")).unwrap();
    let cases: Vec<(&str, Vec<String>, String)> = vec![
        (
            "a missing column",
            vec!["schools".into(), "import".into(), write(&art, "no-buildings.csv", utf8.replace(";Зданий", "").replace(";2\n", "\n").replace(";1\n", "\n"))],
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
            "stranger.csv:9: column «Код школы» («74-9999»): school not in the registry (import it with `schools import` first)".into(),
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
