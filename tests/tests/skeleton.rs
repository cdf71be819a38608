//! The walking skeleton end to end: real ClickHouse, the collector binary, agent processes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use parta_protocol::{DeviceKind, EnrollRequest, FrameDecoder, Message, RejectReason, encode_frame};
use parta_tests::clickhouse::ClickHouse;
use parta_tests::procs::{Agent, AgentSpec, Collector};
use parta_tests::quic::{RawClient, RawDevice, hello};
use parta_tests::util::{artifacts_dir, wait_for};
use serde::Deserialize;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// Sequence numbers per device in the ledger.
fn ledger(ch: &ClickHouse, db: &str) -> BTreeMap<String, Vec<u64>> {
    #[derive(Deserialize)]
    struct Row {
        device_id: String,
        seqs: Vec<String>,
    }
    ch.query_rows::<Row>(&format!(
        "SELECT toString(device_id) AS device_id, arraySort(groupArray(seq)) AS seqs FROM {db}.ingest_ledger GROUP BY device_id"
    ))
    .into_iter()
    .map(|r| (r.device_id, r.seqs.iter().map(|s| s.parse().unwrap()).collect()))
    .collect()
}

fn assert_complete(seqs: &[u64], what: &str) {
    let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert_eq!(seqs, expected.as_slice(), "{what}: ledger must hold 1..N exactly once");
}

#[test]
fn two_agents_of_two_schools_reach_clickhouse() {
    let art = artifacts_dir("two_agents_of_two_schools_reach_clickhouse");
    let ch = ClickHouse::start();
    let db = "parta_e2e";
    let collector = Collector::start(&ch, db, &art);
    let (s1, s2) = ("74-0012", "74-0345");
    let a1 = Agent::start(AgentSpec::new(&collector, s1, &collector.create_token(s1)), &art, "agent-1");
    let a2 = Agent::start(AgentSpec::new(&collector, s2, &collector.create_token(s2)), &art, "agent-2");
    let (d1, d2) = (a1.device_id(), a2.device_id());
    assert_ne!(d1, d2);

    wait_for(Duration::from_secs(60), "five reports from each agent", || {
        let l = ledger(&ch, db);
        (l.get(&d1).is_some_and(|s| s.len() >= 5) && l.get(&d2).is_some_and(|s| s.len() >= 5)).then_some(())
    });

    // The API lists both devices with the right schools.
    let (status, body) = collector.get("/api/v1/devices");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let schools: BTreeMap<String, String> = v["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["device_id"].as_str().unwrap().to_owned(), d["school_id"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(schools.get(&d1).map(String::as_str), Some(s1));
    assert_eq!(schools.get(&d2).map(String::as_str), Some(s2));
    let host = sysinfo::System::host_name().unwrap();
    for d in v["devices"].as_array().unwrap() {
        assert_eq!(d["hostname"], host.as_str());
        assert_eq!(d["kind"], "computer");
        assert!(d["uptime_s"].as_u64().unwrap() > 0);
        assert!(!d["os"].as_str().unwrap().is_empty());
    }
    let (status, one) = collector.get(&format!("/api/v1/devices?school={s2}"));
    assert_eq!(status, 200);
    assert!(one.contains(&d2) && !one.contains(&d1), "{one}");

    // Plausible values: uptime > 0, memory total as sysinfo sees it on this machine.
    let mut sys = sysinfo::System::new().unwrap();
    sys.refresh_memory();
    for d in [&d1, &d2] {
        let row = ch.query(&format!(
            "SELECT min(uptime_s), min(mem_total), max(mem_total), max(cpu_percent) <= 100 FROM {db}.host_metrics WHERE device_id = toUUID('{d}')"
        ));
        let f: Vec<u64> = row.split_whitespace().map(|x| x.parse().unwrap()).collect();
        assert!(f[0] > 0, "uptime of {d}: {row}");
        assert_eq!((f[1], f[2]), (sys.total_memory(), sys.total_memory()), "memory total of {d}");
        assert_eq!(f[3], 1, "cpu percent within 0..100");
        let info = ch
            .query(&format!("SELECT hostname, os_name FROM {db}.host_info WHERE device_id = toUUID('{d}')"));
        assert!(info.starts_with(&format!("{host}\t")), "{info}");
    }

    // The ledger: 1..N for each device, exactly once.
    let l = ledger(&ch, db);
    assert_complete(&l[&d1], "agent 1");
    assert_complete(&l[&d2], "agent 2");

    // Metrics count what happened, in an exposition promtool accepts.
    let text = collector.metrics_checked();
    assert!(text.contains("# HELP parta_reports_accepted_total "), "{text}");
    assert!(collector.metric("parta_reports_accepted_total") >= 10.0);
    assert_eq!(collector.metric("parta_open_connections"), 2.0);
    assert!(collector.metric("parta_insert_seconds_count") >= 1.0);
    drop((a1, a2));
}

#[test]
fn bad_input_closes_only_the_offending_connection() {
    let art = artifacts_dir("bad_input_closes_only_the_offending_connection");
    let ch = ClickHouse::start();
    let db = "parta_bad";
    let collector = Collector::start(&ch, db, &art);
    let school = "74-0012";
    let token = collector.create_token(school);
    let revoked = collector.create_token(school);
    collector.revoke_token(&revoked);
    let good = Agent::start(AgentSpec::new(&collector, school, &token), &art, "good-agent");
    let good_id = good.device_id();
    let count = |ch: &ClickHouse| {
        ch.query_u64(&format!("SELECT count() FROM {db}.ingest_ledger WHERE device_id = toUUID('{good_id}')"))
    };
    wait_for(Duration::from_secs(30), "the good agent's first reports", || (count(&ch) >= 2).then_some(()));
    let before = count(&ch);

    let addr = collector.quic_addr();
    let ca = collector.ca();
    let rt = rt();
    let device = rt.block_on(RawDevice::enroll(&addr, &ca, &token, None)).unwrap();
    let case = |name: &str, expected: RejectReason, bytes: Vec<u8>, as_device: bool| {
        let got = rt.block_on(async {
            let mut c = if as_device {
                RawClient::connect_as(&addr, &ca, &device).await
            } else {
                RawClient::connect(&addr, &ca).await
            };
            c.send_bytes(&bytes).await;
            tokio::time::timeout(Duration::from_secs(20), c.rejection()).await.expect("collector answers")
        });
        assert_eq!(got, expected, "case {name}");
    };
    let enroll_frame = |token: &str| {
        encode_frame(&Message::Enroll(EnrollRequest {
            agent_version: "test".into(),
            kind: DeviceKind::Computer,
            token: token.into(),
            public_key: device.identity.key.public_key().to_vec(),
            device_id: None,
        }))
        .unwrap()
    };
    let hello_frame = || encode_frame(&hello()).unwrap();

    // A frame announcing more than the limit before authentication (4 KiB).
    case(
        "oversized frame",
        RejectReason::FrameTooLarge,
        ((parta_protocol::PRE_AUTH_MAX_FRAME_LEN + 1) as u32).to_be_bytes().to_vec(),
        false,
    );
    // A well-framed body of garbage.
    let mut garbage = 6u32.to_be_bytes().to_vec();
    garbage.extend_from_slice(&parta_protocol::PROTOCOL_VERSION.to_le_bytes());
    garbage.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
    case("garbage body", RejectReason::Malformed, garbage, false);
    // A frame of another protocol version.
    let mut v99 = hello_frame();
    v99[4] = 99;
    case("wrong version", RejectReason::UnsupportedVersion, v99, true);
    // Enrollment tokens.
    case(
        "unknown token",
        RejectReason::UnknownToken,
        enroll_frame("pt1_0000000000000000000000000000000000000000"),
        false,
    );
    case("revoked token", RejectReason::RevokedToken, enroll_frame(&revoked), false);
    // A Hello without a device certificate.
    case("hello without a certificate", RejectReason::NotEnrolled, hello_frame(), false);
    // A report before Hello.
    case(
        "report first",
        RejectReason::UnexpectedMessage,
        encode_frame(&parta_protocol::examples::typical_report(1)).unwrap(),
        true,
    );
    // A report breaking validation after a good Hello.
    let mut bad_report = hello_frame();
    let Message::Report(mut r) = parta_protocol::examples::typical_report(1) else { unreachable!() };
    r.seq = 0;
    bad_report.extend(encode_frame(&Message::Report(r)).unwrap());
    case("sequence number 0", RejectReason::InvalidReport, bad_report, true);

    // Each refusal was counted by reason and logged.
    for reason in [
        "frame_too_large",
        "malformed",
        "unsupported_version",
        "unknown_token",
        "revoked_token",
        "not_enrolled",
        "unexpected_message",
        "invalid_report",
    ] {
        assert_eq!(
            collector.metric(&format!("parta_rejected_total{{reason=\"{reason}\"}}")),
            1.0,
            "{reason}"
        );
    }
    let log = collector.log();
    assert!(log.contains("session rejected") && log.contains("revoked"), "collector log names rejections");

    // The good agent kept being served throughout.
    wait_for(Duration::from_secs(30), "the good agent to keep reporting", || {
        (count(&ch) >= before + 3).then_some(())
    });
    assert_complete(&ledger(&ch, db)[&good_id], "good agent");
    drop(good);
}

#[test]
fn agent_says_why_the_collector_refused_it_and_exits() {
    let art = artifacts_dir("agent_says_why_the_collector_refused_it_and_exits");
    let ch = ClickHouse::start();
    let collector = Collector::start(&ch, "parta_refuse", &art);
    let school = "74-0012";
    let revoked = collector.create_token(school);
    collector.revoke_token(&revoked);
    let (once, _) = collector.create_join(school, &["--uses", "1"]);
    let first = rt().block_on(RawDevice::enroll(&collector.quic_addr(), &collector.ca(), &once, None));
    assert!(first.is_ok(), "the token's one use");
    for (name, token, expected) in [
        (
            "unknown",
            "pt1_1111111111111111111111111111111111111111".to_owned(),
            "does not know the enrollment token",
        ),
        ("revoked", revoked, "the enrollment token was revoked"),
        ("used up", once, "enrolled all the devices it was made for"),
    ] {
        let mut agent =
            Agent::start(AgentSpec::new(&collector, school, &token), &art, &format!("agent-{name}"));
        let status = agent.wait_exit(Duration::from_secs(30));
        assert_eq!(status.code(), Some(77), "{name}: exit code");
        let log = agent.log();
        assert!(log.contains("collector refused") && log.contains(expected), "{name}: {log}");
    }
}

#[test]
fn agent_configuration_errors_name_the_setting_and_exit_78() {
    let art = artifacts_dir("agent_configuration_errors_name_the_setting_and_exit_78");
    let dir = tempfile::tempdir().unwrap();
    let spec = AgentSpec {
        collector: "127.0.0.1:9".into(),
        ca: dir.path().join("missing-ca.pem"),
        school: "74-0012".into(),
        token: "pt1_x".into(),
        interval: "1s".into(),
        extra: vec![],
        netns: None,
        wrapper: vec![],
        state_dir: None,
        report_log: true,
    };
    let agent = Agent::start(spec.clone(), &art, "probe");
    let run = |extra: &[(&str, &str)], args: &[&str]| {
        let mut cmd = agent.command();
        cmd.args(args);
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, err) = run(&[("PARTA_INTERVAL", "5 parsecs")], &["run"]);
    assert_eq!(code, Some(78));
    assert!(err.contains("environment variable PARTA_INTERVAL"), "{err}");
    let (code, err) = run(&[], &["run"]);
    assert_eq!(code, Some(78));
    assert!(err.contains("missing-ca.pem"), "{err}");
    let cfg = dir.path().join("agent.toml");
    std::fs::write(&cfg, "school = \"74-0012\"\nintervall = \"5s\"\n").unwrap();
    let (code, err) = run(&[], &["--config", cfg.to_str().unwrap(), "run"]);
    assert_eq!(code, Some(78));
    assert!(
        err.contains(cfg.to_str().unwrap()) && err.contains("intervall") && err.contains("line 2"),
        "{err}"
    );
    drop(agent);
}

#[test]
fn agent_keeps_reports_while_the_collector_is_away() {
    let art = artifacts_dir("agent_keeps_reports_while_the_collector_is_away");
    let ch = ClickHouse::start();
    let db = "parta_away";
    let mut collector = Collector::start(&ch, db, &art);
    let school = "74-0012";
    let token = collector.create_token(school);
    collector.stop();
    // The agent starts while nothing listens: it must retry, not exit.
    let agent = Agent::start(AgentSpec::new(&collector, school, &token), &art, "agent");
    let id = agent.device_id();
    wait_for(Duration::from_secs(40), "the agent to log a failed attempt", || {
        agent.log().contains("collector session ended").then_some(())
    });
    assert!(agent.log().contains("retry_in"), "agent says when it retries");
    collector.restart();
    wait_for(Duration::from_secs(60), "the backlog to arrive", || {
        ledger(&ch, db).get(&id).is_some_and(|s| s.len() >= 6).then_some(())
    });
    let seqs = &ledger(&ch, db)[&id];
    assert_complete(seqs, "agent");
    // Reports taken while the collector was away arrived too (agent time before the restart).
    let early = ch.query_u64(&format!(
        "SELECT count() FROM {db}.ingest_ledger WHERE device_id = toUUID('{id}') AND receive_time - agent_time >= 2"
    ));
    assert!(early >= 2, "reports queued during the outage were delivered later: {early}");
}

#[test]
fn sample_command_prints_json_without_sending() {
    let out = std::process::Command::new(parta_tests::util::binary("parta-agent"))
        .args(["sample", "--format", "json"])
        .env_clear()
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let samples = v.as_array().unwrap();
    assert!(samples[0]["HostInfo"]["hostname"].is_string());
    let m = &samples[1]["HostMetrics"];
    assert!(m["mem_total"].as_u64().unwrap() > 0 && m["uptime_s"].as_u64().unwrap() > 0);
    // Decoder sanity: a frame stream of the golden examples still decodes (keeps the harness honest).
    let mut dec = FrameDecoder::new();
    dec.push(&encode_frame(&parta_protocol::examples::ack()).unwrap());
    assert!(dec.next_frame().unwrap().is_some());
}

/// Every migration statement may run again: a migration interrupted between its statements and
/// its record (here: every record lost) completes on the next run, on the real 18.16 server —
/// which cannot say `ADD COLUMN IF NOT EXISTS`, so the runner looks added columns up first.
#[test]
fn an_interrupted_migration_completes_on_the_next_run() {
    let art = artifacts_dir("an_interrupted_migration_completes_on_the_next_run");
    let ch = ClickHouse::start();
    let db = "parta_migrate";
    let collector = Collector::start(&ch, db, &art);
    let migrate = || {
        let out = collector.command().arg("migrate").output().unwrap();
        assert!(out.status.success(), "migrate: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(migrate().contains("is up to date"), "the collector migrated on start");
    let versions = ch.query(&format!("SELECT arraySort(groupArray(version)) FROM {db}.schema_migrations"));
    ch.query(&format!("DROP TABLE {db}.schema_migrations"));
    let out = migrate();
    assert!(out.contains(&format!("applied migrations {}", versions.trim().replace(',', ", "))), "{out}");
    let added = ch.query_u64(&format!(
        "SELECT count() FROM system.columns WHERE database = '{db}' AND table = 'connectivity_checks' AND name = 'ip_bits_per_s'"
    ));
    assert_eq!(added, 1);
    assert!(migrate().contains("is up to date"));
}
