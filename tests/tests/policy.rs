//! Central configuration on the collector (issue 21, what is built so far): `parta-collector
//! policy set|show|history|rollback|remove|effective` on a real ClickHouse. A policy is checked
//! by the agent's own rules before it is stored (a refused one changes nothing and names the
//! key); SNMP secrets are stored sealed and never shown; every change is a version with who and
//! why; a device's effective policy merges its scopes, narrowest winning.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use parta_tests::clickhouse::ClickHouse;
use parta_tests::procs::Collector;
use parta_tests::util::{artifacts_dir, workspace_root};

const SECRET: &str = "kab-214-sw-ro-9f3c";

fn run(c: &Collector, args: &[&str]) -> (i32, String, String) {
    let out = c.command().args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(c: &Collector, args: &[&str]) -> String {
    let (code, out, err) = run(c, args);
    assert_eq!(code, 0, "{args:?}: {err}");
    out
}

#[test]
fn policies_are_checked_versioned_sealed_and_merged() {
    let art = artifacts_dir("policy_commands");
    let ch = ClickHouse::start();
    let db = "parta_policy";
    let c = Collector::start(&ch, db, &art);
    let schools = workspace_root().join("tests/fixtures/compliance/schools-cp1251.csv");
    ok(&c, &["schools", "import", schools.to_str().unwrap()]);
    let file = |name: &str, text: &str| {
        let p = art.join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let school_v1 = file(
        "school-v1.toml",
        &format!(
            "[snmp]\ninterval = \"5m\"\n[[snmp.target]]\naddress = \"10.74.12.2\"\nlabel = \"Коммутатор\"\n\
             community = \"{SECRET}\"\n"
        ),
    );
    ok(&c, &["policy", "set", "--scope", "school:74-0012", &school_v1, "--comment", "switch of 74-0012"]);

    // Shown with the secret hidden; stored sealed.
    let shown = ok(&c, &["policy", "show", "--scope", "school:74-0012"]);
    assert!(shown.contains("community = \"<secret>\"") && shown.contains("10.74.12.2"), "{shown}");
    assert!(!shown.contains(SECRET));
    let auth = format!("{db}_auth");
    let stored = ch.query(&format!("SELECT document FROM {auth}.policies"));
    assert!(stored.contains("enc:v1:") && !stored.contains(SECRET), "{stored}");

    // A policy the agent would refuse changes nothing and names the key and the file.
    let history =
        || ch.query(&format!("SELECT scope, version, comment FROM {auth}.policies ORDER BY scope, version"));
    let before = history();
    let bad = file("bad.toml", "interval = \"soon\"\n");
    let (code, _, err) = run(&c, &["policy", "set", "--scope", "school:74-0012", &bad]);
    assert_ne!(code, 0);
    assert!(err.contains("bad.toml") && err.contains("interval") && err.contains("nothing changed"), "{err}");
    let local = file("local.toml", "state_dir = \"/tmp\"\n");
    let (code, _, err) = run(&c, &["policy", "set", "--scope", "school:74-0012", &local]);
    assert!(code != 0 && err.contains("state_dir") && err.contains("device's own"), "{err}");
    let (code, _, err) =
        run(&c, &["policy", "set", "--scope", "municipality:74/Нигдешний район", &school_v1]);
    assert!(code != 0 && err.contains("no school of the registry"), "{err}");
    assert_eq!(history(), before, "refusals changed nothing");

    // A second version, then back to the first: three versions, the third with the first's
    // document; the history says who and why.
    let school_v2 = file("school-v2.toml", "[snmp]\ninterval = \"10m\"\n");
    ok(&c, &["policy", "set", "--scope", "school:74-0012", &school_v2, "--by", "Иванова (ЦОКО)"]);
    ok(&c, &["policy", "rollback", "--scope", "school:74-0012", "--to", "1"]);
    let h = ok(&c, &["policy", "history", "--scope", "school:74-0012"]);
    let lines: Vec<&str> = h.lines().collect();
    assert_eq!(lines.len(), 3, "{h}");
    assert!(lines[0].starts_with("1\t") && lines[0].ends_with("switch of 74-0012"), "{h}");
    assert!(lines[1].contains("Иванова (ЦОКО)"), "{h}");
    assert!(lines[2].starts_with("3\t") && lines[2].ends_with("rollback to version 1"), "{h}");
    let v3 = ok(&c, &["policy", "show", "--scope", "school:74-0012"]);
    assert_eq!(v3, shown, "version 3 is version 1's document");
    let v2 = ok(&c, &["policy", "show", "--scope", "school:74-0012", "--version", "2"]);
    assert!(v2.contains("10m"), "{v2}");

    // The region's must-reach list and interval, the school's own SNMP: merged, the school's
    // interval winning over the region's where both set one; a municipality spelled in
    // another case is the registry's.
    let region = file(
        "region.toml",
        "interval = \"120s\"\n[espd]\nmust_reach = [\"https://www.gosuslugi.ru/\"]\n[snmp]\ninterval = \"15m\"\n",
    );
    ok(&c, &["policy", "set", "--scope", "region:74", &region]);
    let muni = file("muni.toml", "interval = \"90s\"\n");
    ok(&c, &["policy", "set", "--scope", "municipality:74/копейский ГОРОДСКОЙ округ", &muni]);
    let json: serde_json::Value =
        serde_json::from_str(&ok(&c, &["policy", "effective", "--school", "74-0012", "--format", "json"]))
            .unwrap();
    let layers: Vec<String> = json["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| format!("{} v{}", l["scope"].as_str().unwrap(), l["version"]))
        .collect();
    assert_eq!(layers, ["region:74 v1", "municipality:74/Копейский городской округ v1", "school:74-0012 v3"]);
    let e = &json["effective"];
    assert_eq!(e["interval"], "90s", "the municipality's over the region's");
    assert_eq!(e["snmp"]["interval"], "5m", "the school's over the region's");
    assert_eq!(e["espd"]["must_reach"][0], "https://www.gosuslugi.ru/");
    assert_eq!(e["snmp"]["target"][0]["community"], "<secret>");
    // Another municipality's school gets the region's only.
    let other: serde_json::Value =
        serde_json::from_str(&ok(&c, &["policy", "effective", "--school", "74-0345", "--format", "json"]))
            .unwrap();
    assert_eq!(other["effective"]["interval"], "120s");

    // Removing the school's policy is a version too; the history stays.
    ok(&c, &["policy", "remove", "--scope", "school:74-0012", "--comment", "moved to device scope"]);
    let (code, _, err) = run(&c, &["policy", "show", "--scope", "school:74-0012"]);
    assert!(code != 0 && err.contains("removed in version 4"), "{err}");
    let after: serde_json::Value =
        serde_json::from_str(&ok(&c, &["policy", "effective", "--school", "74-0012", "--format", "json"]))
            .unwrap();
    assert_eq!(after["effective"]["snmp"]["interval"], "15m");

    // The secret is nowhere in clear: not in ClickHouse (either database), not in the logs.
    for database in [db, auth.as_str()] {
        let tables = ch.query(&format!("SELECT name FROM system.tables WHERE database = '{database}'"));
        for t in tables.lines() {
            let n = ch.query_u64(&format!(
                "SELECT count() FROM {database}.{t} WHERE positionCaseInsensitive(toString(tuple(*)), '{SECRET}') > 0"
            ));
            assert_eq!(n, 0, "{database}.{t} holds the secret in clear");
        }
    }
    assert!(!c.log().contains(SECRET));
}
