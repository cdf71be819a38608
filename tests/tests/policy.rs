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

/// Simulated agents: each holds a session as its own device, applies every offer it gets and
/// says so, and records the versions it was offered.
struct Sims {
    offered: std::sync::Arc<std::sync::Mutex<Vec<Vec<u64>>>>,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Sims {
    async fn start(c: &Collector, school: &str, n: usize) -> Self {
        use parta_protocol::Message;
        use parta_protocol::policy::{PolicyOutcome, PolicyStatus};
        use parta_tests::quic::{RawClient, RawDevice, hello};
        let (token, _) = c.create_join(school, &["--uses", &n.to_string()]);
        let (addr, ca) = (c.quic_addr(), c.ca());
        let devices = RawDevice::enroll_many(&addr, &ca, &token, n, 50).await;
        let offered = std::sync::Arc::new(std::sync::Mutex::new(vec![Vec::new(); n]));
        let (stop, _) = tokio::sync::watch::channel(false);
        let mut tasks = Vec::new();
        for (i, device) in devices.into_iter().enumerate() {
            let (addr, ca, offered, mut stop) = (addr.clone(), ca.clone(), offered.clone(), stop.subscribe());
            let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
            tasks.push(tokio::spawn(async move {
                let mut client = RawClient::connect_as(&addr, &ca, &device).await;
                client.send(&hello()).await;
                assert!(matches!(client.next().await, Ok(Some(Message::Welcome(_)))));
                let _ = ready_tx.send(());
                loop {
                    tokio::select! {
                        m = client.next() => match m {
                            Ok(Some(Message::Policy(offer))) => {
                                offered.lock().unwrap()[i].push(offer.id.version);
                                let status = PolicyStatus { id: offer.id, outcome: PolicyOutcome::Applied };
                                client.send(&Message::PolicyStatus(status)).await;
                            }
                            Ok(Some(_)) => {}
                            other => panic!("simulated agent {i}: session ended: {other:?}"),
                        },
                        _ = stop.changed() => break,
                    }
                }
                client.close();
            }));
            ready_rx.await.unwrap();
        }
        Self { offered, stop, tasks }
    }

    fn offered(&self) -> Vec<Vec<u64>> {
        self.offered.lock().unwrap().clone()
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            t.await.unwrap();
        }
    }
}

/// The devices of the API with their policy state, by id.
fn policy_states(c: &Collector) -> std::collections::BTreeMap<String, serde_json::Value> {
    let (status, body) = c.get("/api/v1/devices");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["devices"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d.get("policy").is_some())
        .map(|d| (d["device_id"].as_str().unwrap().to_owned(), d["policy"].clone()))
        .collect()
}

/// `parta-agent config` of an agent: the effective configuration with the origins of keys.
fn agent_config(a: &parta_tests::procs::Agent) -> serde_json::Value {
    let out = a.command().arg("config").output().unwrap();
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("config: {e}: {}", String::from_utf8_lossy(&out.stderr)))
}

fn must_reach(a: &parta_tests::procs::Agent) -> Vec<String> {
    agent_config(a)["espd"]["must_reach"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().into())
        .collect()
}

const SWITCH_SECRET: &str = "sw-kab214-ro-5e1d";

/// Acceptance of issue 21: policies reach real and simulated agents over their sessions, are
/// applied without a restart, survive an agent being offline, are refused with the device's
/// reason, roll back, and keep their SNMP secrets to the devices that poll.
#[test]
fn policies_reach_agents_apply_live_and_keep_their_secrets() {
    use parta_tests::procs::{Agent, AgentSpec};
    use parta_tests::util::wait_for;
    use std::time::Duration;

    let art = artifacts_dir("policy_delivery");
    let ch = ClickHouse::start();
    let db = "parta_policy_live";
    let c = Collector::start_with(&ch, db, &art, &[("PARTA_POLICY_DRIFT_AFTER", "2s")]);
    ok(
        &c,
        &[
            "schools",
            "import",
            workspace_root().join("tests/fixtures/compliance/schools-cp1251.csv").to_str().unwrap(),
        ],
    );
    let snmpd = parta_tests::snmpd::fake_gear_with(
        &art,
        "switch",
        "SW-214",
        false,
        &[format!("rocommunity {SWITCH_SECRET} 127.0.0.1")],
    );
    let file = |name: &str, text: &str| {
        let p = art.join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };

    // Five real agents: A, B, C of school 74-0012, D, E of 74-0345; no configuration file,
    // logind off.
    let real = |school: &str, name: &str| {
        let token = c.create_token(school);
        Agent::start(AgentSpec::new(&c, school, &token).env("PARTA_LOGIND_BUS", "none"), &art, name)
    };
    let mut a = real("74-0012", "a");
    let b = real("74-0012", "b");
    // C is a teacher's laptop of the equipment register (serial AQ-T-0001, item 1012-001).
    let c_tree = parta_tests::fixtures::school_laptop(
        &art.join("c-tree"),
        "kab-214-c",
        "AQ-T-0001",
        "52:54:00:aa:00:0c",
    );
    let mut cc = Agent::start(
        AgentSpec::new(&c, "74-0012", &c.create_token("74-0012"))
            .env("PARTA_LOGIND_BUS", "none")
            .tree(&c_tree),
        &art,
        "c",
    );
    let d = real("74-0345", "d");
    let e = real("74-0345", "e");
    let ids: Vec<String> = [&a, &b, &cc, &d, &e].iter().map(|x| x.device_id()).collect();
    let (id_a, id_b, id_c, id_e) = (ids[0].clone(), ids[1].clone(), ids[2].clone(), ids[4].clone());
    wait_for(Duration::from_secs(60), "the five agents in the API, without a policy", || {
        let s = policy_states(&c);
        ids.iter().all(|id| s.get(id).is_some_and(|p| p["state"] == "none")).then_some(())
    });

    // 195 simulated agents: 150 of 74-0012, 45 of 74-0345.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (sims_12, sims_345) =
        rt.block_on(async { (Sims::start(&c, "74-0012", 150).await, Sims::start(&c, "74-0345", 45).await) });

    // Version 1 of the school's policy: a switch polled by A and B (with its community), a
    // must-reach list for every device of the school.
    let v1 = file(
        "school-v1.toml",
        &format!(
            "[snmp]\ninterval = \"1s\"\n[[snmp.target]]\naddress = \"{}\"\ncommunity = \"{SWITCH_SECRET}\"\n\
             label = \"Коммутатор каб. 214\"\ndevices = [\"{id_a}\", \"{id_b}\"]\n\
             [espd]\nmust_reach = [\"https://www.gosuslugi.ru/\", \"https://edu.gov.ru/\"]\n",
            snmpd.addr()
        ),
    );
    ok(&c, &["policy", "set", "--scope", "school:74-0012", &v1, "--comment", "коммутатор и ЕСПД"]);
    let current_of = |c: &Collector, id: &str| policy_states(c)[id]["current_version"].as_u64().unwrap();
    wait_for(Duration::from_secs(60), "A, B and C running the school's policy", || {
        let s = policy_states(&c);
        [&id_a, &id_b, &id_c].iter().all(|id| s[id.as_str()]["state"] == "current").then_some(())
    });
    let v1_version = current_of(&c, &id_a);
    assert!(v1_version > 0);
    // The switch is polled by A and B — started by the policy, no restart — and the API shows it.
    wait_for(Duration::from_secs(60), "the switch polled by A and B, in the API", || {
        let (_, body) = c.get("/api/v1/devices?school=74-0012");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let pollers: std::collections::BTreeSet<String> = v["devices"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["snmp"]["last_outcome"] == "ok")
            .map(|d| d["snmp"]["polled_by"].as_str().unwrap().to_owned())
            .collect();
        (!pollers.is_empty() && pollers.iter().all(|p| *p == id_a || *p == id_b)).then_some(())
    });
    assert_eq!(a.process.try_exit(), None, "A was not restarted");
    assert!(a.log().contains("SNMP poller starting") && a.log().contains("applied the collector's policy"));
    for agent in [&a, &b, &cc] {
        assert_eq!(must_reach(agent), ["https://www.gosuslugi.ru/", "https://edu.gov.ru/"]);
    }
    // C does not poll the switch and was never sent its community.
    let config_c = agent_config(&cc);
    assert_eq!(config_c["snmp_targets"].as_array().unwrap().len(), 0, "{config_c}");
    assert!(!std::fs::read_to_string(cc.state_dir().join("policy.json")).unwrap().contains(SWITCH_SECRET));
    assert!(std::fs::read_to_string(a.state_dir().join("policy.json")).unwrap().contains(SWITCH_SECRET));
    assert!(
        config_c["origins"]["espd.must_reach"].as_str().unwrap().contains("school:74-0012 v1"),
        "{config_c}"
    );
    // Every simulated agent of the school got it once and acknowledged it; none of the other
    // school's was offered anything, nor were D and E.
    let acked = || {
        ch.query_u64(&format!(
            "SELECT count() FROM (SELECT device_id, argMax(running_version, version) AS v FROM {db}.policy_status GROUP BY device_id) WHERE v = {v1_version}"
        ))
    };
    wait_for(Duration::from_secs(60), "153 devices running version 1 in ClickHouse", || {
        (acked() == 153).then_some(())
    });
    assert!(sims_12.offered().iter().all(|o| o == &[v1_version]), "{:?}", sims_12.offered());
    assert!(sims_345.offered().iter().all(Vec::is_empty), "the other school is untouched");
    let s = policy_states(&c);
    assert_eq!(s[&ids[3]]["state"], "none");
    assert_eq!(s[&id_e]["state"], "none");

    // C is offline while the list changes twice; back, it applies the latest.
    cc.stop();
    let v2 = file(
        "school-v2.toml",
        &std::fs::read_to_string(&v1).unwrap().replace("https://edu.gov.ru/", "https://sferum.ru/"),
    );
    ok(&c, &["policy", "set", "--scope", "school:74-0012", &v2]);
    wait_for(Duration::from_secs(30), "A on version 2", || {
        (must_reach(&a)[1] == "https://sferum.ru/").then_some(())
    });
    let v3 = file(
        "school-v3.toml",
        &std::fs::read_to_string(&v1).unwrap().replace("https://edu.gov.ru/", "https://myschool.edu.ru/"),
    );
    ok(&c, &["policy", "set", "--scope", "school:74-0012", &v3, "--comment", "третья версия"]);
    wait_for(Duration::from_secs(30), "A on version 3", || {
        (must_reach(&a)[1] == "https://myschool.edu.ru/").then_some(())
    });
    wait_for(Duration::from_secs(30), "C drifted while offline", || {
        (policy_states(&c)[&id_c]["state"] == "drifted").then_some(())
    });
    assert_eq!(must_reach(&cc)[1], "https://edu.gov.ru/", "offline, C still runs version 1");
    cc.restart();
    wait_for(Duration::from_secs(60), "C back on the latest version", || {
        let p = &policy_states(&c)[&id_c];
        (p["state"] == "current" && p["running_version"] == p["current_version"]).then_some(())
    });
    assert_eq!(must_reach(&cc)[1], "https://myschool.edu.ru/");
    // Each simulated agent was offered each version once, in order.
    wait_for(Duration::from_secs(30), "the simulated agents offered versions 2 and 3", || {
        sims_12.offered().iter().all(|o| o.len() == 3 && o.windows(2).all(|w| w[0] < w[1])).then_some(())
    });

    // A started without a network runs its last policy: it polls the switch with no collector.
    a.stop();
    let offline = AgentSpec {
        collector: "127.0.0.1:9".into(),
        state_dir: Some(a.state_dir().to_owned()),
        ..AgentSpec::new(&c, "74-0012", "unused")
    }
    .env("PARTA_LOGIND_BUS", "none");
    let mut a_offline = Agent::start(offline, &art, "a-offline");
    wait_for(Duration::from_secs(30), "A polling the switch offline", || {
        let log = std::fs::read_to_string(a_offline.report_log()).unwrap_or_default();
        log.lines().any(|l| l.contains("\"Snmp\"") && l.contains("\"outcome\":\"ok\"")).then_some(())
    });
    assert!(a_offline.log().contains("running the last policy the collector sent"));
    a_offline.stop();
    a.restart();

    // A policy E must refuse (a CA file only E can judge): the previous stays in force and
    // the UI and API show E's reason.
    let refused = file(
        "device-e.toml",
        "[espd]\nenabled = true\nca_file = \"/nonexistent/parta-region-ca.pem\"\nmust_reach = [\"https://www.gosuslugi.ru/\"]\n",
    );
    ok(&c, &["policy", "set", "--scope", &format!("device:{id_e}"), &refused]);
    let p = wait_for(Duration::from_secs(60), "E's refusal in the API", || {
        let p = policy_states(&c)[&id_e].clone();
        (p["state"] == "refused").then_some(p)
    });
    assert_eq!(p["refused_key"], "espd.ca_file", "{p}");
    assert!(p["refused_reason"].as_str().unwrap().contains("/nonexistent/parta-region-ca.pem"), "{p}");
    assert_eq!(p["running_version"], 0, "E still runs what it ran before: nothing");
    assert_eq!(agent_config(&e)["espd"]["enabled"], false);
    assert!(e.log().contains("refused the collector's policy"));
    c.add_user("policy-admin", "admin", "all", "policy-admin-pass");
    let mut web = parta_tests::websession::Session::new(&c);
    assert_eq!(web.sign_in("policy-admin", "policy-admin-pass"), 303);
    let (status, page) = web.get(&format!("/d/{id_e}"));
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("/nonexistent/parta-region-ca.pem") && page.contains("отклонена устройством"),
        "{page}"
    );

    // Rollback restores version 1's document; the history shows all of it.
    ok(&c, &["policy", "rollback", "--scope", "school:74-0012", "--to", "1"]);
    let h = ok(&c, &["policy", "history", "--scope", "school:74-0012"]);
    assert_eq!(h.lines().count(), 4, "{h}");
    assert!(
        h.lines().nth(1).unwrap().contains("\t")
            && h.contains("третья версия")
            && h.contains("rollback to version 1"),
        "{h}"
    );
    wait_for(Duration::from_secs(60), "C back on version 1's list", || {
        (must_reach(&cc)[1] == "https://edu.gov.ru/").then_some(())
    });

    // In the web UI, an admin edits the school's policy: the form shows <secret>, keeps it on
    // save, refuses a form without the session's CSRF token (nothing changes).
    let (status, form) = web.get("/policies?scope=school:74-0012");
    assert_eq!(status, 200);
    assert!(form.contains("&lt;secret&gt;") && !form.contains(SWITCH_SECRET), "{form}");
    let document = parta_tests::websession::textarea(&form, "document");
    let edited = document.replace("Коммутатор каб. 214", "Коммутатор каб. 215");
    let (status, _) =
        web.post("/policies", &[("csrf", "forged"), ("scope", "school:74-0012"), ("document", &edited)]);
    assert_eq!(status, 403);
    assert_eq!(ok(&c, &["policy", "history", "--scope", "school:74-0012"]).lines().count(), 4);
    let csrf = parta_tests::websession::hidden(&form, "csrf");
    let (status, _) = web.post(
        "/policies",
        &[
            ("csrf", &csrf),
            ("scope", "school:74-0012"),
            ("document", &edited),
            ("comment", "из веб-интерфейса"),
        ],
    );
    assert_eq!(status, 303);
    let h = ok(&c, &["policy", "history", "--scope", "school:74-0012"]);
    assert!(h.lines().last().unwrap().contains("policy-admin") && h.contains("из веб-интерфейса"), "{h}");
    // A bad document from the browser: refused with the key, nothing stored.
    let (status, page) = web.post(
        "/policies",
        &[("csrf", &csrf), ("scope", "school:74-0012"), ("document", "interval = \"soon\"\n")],
    );
    assert!(status == 400 && page.contains("interval"), "{status} {page}");
    assert_eq!(ok(&c, &["policy", "history", "--scope", "school:74-0012"]).lines().count(), 5);
    // The kept secret still works: the switch is polled ok after the change.
    let label_seen = || {
        let (_, body) = c.get("/api/v1/devices?school=74-0012");
        body.contains("Коммутатор каб. 215")
    };
    wait_for(Duration::from_secs(60), "the switch polled under its new label", || label_seen().then_some(()));

    // Room and class from the equipment register: C matches item 1012-001 by its serial and
    // takes its room and category without anyone typing them; A (no item) keeps none.
    ok(
        &c,
        &[
            "inventory",
            "import",
            workspace_root().join("tests/fixtures/compliance/register.csv").to_str().unwrap(),
        ],
    );
    let config_c = wait_for(Duration::from_secs(60), "C's room from the register", || {
        let cfg = agent_config(&cc);
        (cfg["room"] == "214").then_some(cfg)
    });
    assert_eq!(config_c["equipment_class"], "teacher_laptop", "{config_c}");
    assert_eq!(config_c["origins"]["room"], "equipment register, item 1012-001", "{config_c}");
    assert_eq!(agent_config(&a)["room"], "");
    wait_for(Duration::from_secs(60), "C's room in the API", || {
        let (_, body) = c.get(&format!("/api/v1/devices/{id_c}"));
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        (v["room"] == "214" && v["equipment_class"] == "teacher_laptop").then_some(())
    });
    assert_eq!(cc.process.try_exit(), None, "C was not restarted");

    // The secret is nowhere people or logs see it.
    let mut seen: Vec<(String, String)> = Vec::new();
    for path in ["/api/v1/devices", &format!("/api/v1/devices/{id_a}")] {
        seen.push((path.to_string(), c.get(path).1));
    }
    for path in [format!("/d/{id_a}"), "/s/74-0012".to_owned()] {
        let (status, page) = web.get(&path);
        assert_eq!(status, 200, "{path}: {page}");
        assert!(page.contains("policy-effective"), "{path} shows the effective policy");
        seen.push((path, page));
    }
    seen.push(("/policies".into(), web.get("/policies?scope=school:74-0012").1));
    seen.push(("collector log".into(), c.log()));
    for (name, agent) in [("a", &a), ("b", &b), ("c", &cc), ("d", &d), ("e", &e)] {
        seen.push((format!("agent {name} log"), agent.log()));
    }
    for (name, text) in &seen {
        assert!(!text.contains(SWITCH_SECRET), "{name} shows the switch's community");
    }
    assert!(seen[0].1.contains("\"policy\""), "the API did answer");
    for database in [db.to_owned(), format!("{db}_auth")] {
        for t in ch.query(&format!("SELECT name FROM system.tables WHERE database = '{database}'")).lines() {
            let n = ch.query_u64(&format!(
                "SELECT count() FROM {database}.{t} WHERE positionCaseInsensitive(toString(tuple(*)), '{SWITCH_SECRET}') > 0"
            ));
            assert_eq!(n, 0, "{database}.{t} holds the community in clear");
        }
    }
    rt.block_on(async {
        sims_12.stop().await;
        sims_345.stop().await;
    });
    drop(d);
}

/// A device that answers with a refusal longer than the protocol allows is cut off and nothing
/// of it is recorded; an account that is not an admin can neither see nor change policies in
/// the browser, even with its session's CSRF token.
#[test]
fn a_hostile_policy_answer_and_a_non_admin_form_change_nothing() {
    use parta_protocol::policy::{MAX_REASON, PolicyId, PolicyOutcome, PolicyStatus};
    use parta_protocol::{Message, RejectReason};
    use parta_tests::quic::{RawClient, RawDevice, hello};
    use parta_tests::util::wait_for;
    use std::time::Duration;

    let art = artifacts_dir("policy_hostile");
    let ch = ClickHouse::start();
    let db = "parta_policy_hostile";
    let c = Collector::start(&ch, db, &art);
    let token = c.create_token("74-0012");
    let (addr, ca) = (c.quic_addr(), c.ca());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (reason, detail) = rt.block_on(async {
        let device = RawDevice::enroll(&addr, &ca, &token, None).await.unwrap();
        let mut client = RawClient::connect_as(&addr, &ca, &device).await;
        client.send(&hello()).await;
        assert!(matches!(client.next().await, Ok(Some(Message::Welcome(_)))));
        let status = PolicyStatus {
            id: PolicyId::of(1, ""),
            outcome: PolicyOutcome::Refused { key: "k".repeat(MAX_REASON + 1), reason: "why".into() },
        };
        client.send(&Message::PolicyStatus(status)).await;
        client.rejection_with_detail().await
    });
    assert_eq!(reason, RejectReason::Malformed, "{detail}");
    assert!(detail.contains("longer than"), "{detail}");
    // The session's start is recorded; the hostile answer is not.
    let count = |sql: &str| ch.query_u64(&sql.replace("{db}", db));
    wait_for(Duration::from_secs(30), "the session's start in policy_status", || {
        (count("SELECT count() FROM {db}.policy_status") >= 1).then_some(())
    });
    assert_eq!(count("SELECT count() FROM {db}.policy_status WHERE outcome = 'refused'"), 0);

    c.add_user("ops-all", "ops", "all", "ops-all-password");
    let mut web = parta_tests::websession::Session::new(&c);
    assert_eq!(web.sign_in("ops-all", "ops-all-password"), 303);
    let (status, home) = web.get("/");
    assert_eq!(status, 200);
    assert!(!home.contains("/policies"), "no link for a non-admin");
    assert_eq!(web.get("/policies").0, 403);
    let csrf = parta_tests::websession::hidden(&home, "csrf");
    let (status, _) =
        web.post("/policies", &[("csrf", &csrf), ("scope", "all"), ("document", "interval = \"10s\"\n")]);
    assert_eq!(status, 403);
    assert_eq!(ch.query_u64(&format!("SELECT count() FROM {db}_auth.policies")), 0, "nothing stored");
}
