//! Fleet identity end to end: enrollment with a join string, a certificate per device, data bound
//! to the school on record, revocation, renewal — and every attack of issue 18 played against
//! the real collector on a real ClickHouse.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use parta_protocol::inventory::Inventory;
use parta_protocol::usage::{Subject, UsageInterval, UsageState, UserClass};
use parta_protocol::{Message, RejectReason, Report, Sample, SeqSet, examples, ids};
use parta_tests::clickhouse::ClickHouse;
use parta_tests::procs::{Agent, AgentSpec, Collector};
use parta_tests::quic::{RawClient, RawDevice, hello};
use parta_tests::util::{artifacts_dir, binary, footprint, wait_for};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn now_ms() -> i64 {
    i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis())
        .unwrap()
}

/// `parta-collector ARGS…`: exit code, stdout, stderr.
fn admin(collector: &Collector, args: &[&str]) -> (i32, String, String) {
    let out = collector.command().args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Sequence numbers stored for a device.
fn seqs(ch: &ClickHouse, db: &str, device: &str) -> Vec<u64> {
    ch.query(&format!(
        "SELECT DISTINCT seq FROM {db}.ingest_ledger WHERE device_id = toUUID('{device}') ORDER BY seq FORMAT TSV"
    ))
    .lines()
    .map(|l| l.trim().parse().unwrap())
    .collect()
}

fn assert_complete(seqs: &[u64], what: &str) {
    let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert_eq!(seqs, expected.as_slice(), "{what}: ledger must hold 1..N exactly once");
}

/// A plain `parta-agent` command (no settings from the environment).
fn agent_cmd(args: &[&str]) -> Command {
    let mut cmd = Command::new(binary("parta-agent"));
    cmd.env_clear().env("PATH", std::env::var_os("PATH").unwrap_or_default()).args(args);
    cmd
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn enrollment_with_only_the_join_string() {
    let art = artifacts_dir("enrollment_with_only_the_join_string");
    let ch = ClickHouse::start();
    let db = "parta_enroll";
    let collector = Collector::start(&ch, db, &art);
    let school = "74-0012";
    let (_, join) = collector.create_join(school, &["--uses", "5", "--expires", "30d"]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.toml");
    let state = dir.path().join("state");
    let (cfg, st) = (config.to_str().unwrap(), state.to_str().unwrap());

    // A join string whose CA fingerprint is not the collector's: refused, naming both, and
    // nothing is written.
    let wrong = {
        let (head, _) = join.split_once("&ca=sha256:").unwrap();
        format!("{head}&ca=sha256:{}", "ab".repeat(32))
    };
    let out = agent_cmd(&["--config", cfg, "--state-dir", st, "enroll", &wrong]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(77), "{err}");
    assert!(
        err.contains("does not match the join string")
            && err.contains(&format!("expected sha256:{}", "ab".repeat(32)))
            && err.contains("the collector presented sha256:"),
        "{err}"
    );
    assert!(!state.join("device.pem").exists() && !config.exists(), "nothing written for a wrong CA");

    // The join string alone: the CA is checked against it and kept, the device gets its
    // credential, the configuration is written.
    let out = agent_cmd(&[
        "--config",
        cfg,
        "--state-dir",
        st,
        "enroll",
        &join,
        "--room",
        "каб. 214",
        "--class",
        "teacher_laptop",
    ])
    .output()
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains(&format!("of school {school}")), "{text}");
    let device = std::fs::read_to_string(state.join("device-id")).unwrap().trim().to_owned();
    assert!(text.contains(&device), "the id is printed: {text}");
    assert_eq!(mode(&state.join("device.key")), 0o600);
    assert_eq!(mode(&state.join("device.pem")), 0o600);
    assert_eq!(mode(&state), 0o700);
    let written = std::fs::read_to_string(&config).unwrap();
    for expected in [
        format!("collector = \"{}\"", collector.quic_addr()),
        format!("ca_cert = \"{}\"", state.join("collector-ca.pem").display()),
        format!("school = \"{school}\""),
        "room = \"каб. 214\"".to_owned(),
        "equipment_class = \"teacher_laptop\"".to_owned(),
    ] {
        assert!(written.contains(&expected), "{expected} in {written}");
    }
    assert!(!written.contains("pt1_"), "the token is not kept: {written}");
    assert_eq!(
        std::fs::read(state.join("collector-ca.pem")).unwrap(),
        std::fs::read(collector.ca()).unwrap(),
        "the CA the collector presented is kept"
    );

    // Again: it says so and changes nothing.
    let before = std::fs::read(state.join("device.pem")).unwrap();
    let out = agent_cmd(&["--config", cfg, "--state-dir", st, "enroll", &join]).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("already enrolled"));
    assert_eq!(std::fs::read(state.join("device.pem")).unwrap(), before);
    assert_eq!(std::fs::read_to_string(&config).unwrap(), written);

    // --force: the same key is the same device, with a new certificate; a join string of
    // another school does not move it (an administrator does).
    let out = agent_cmd(&["--config", cfg, "--state-dir", st, "enroll", "--force", &join]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_to_string(state.join("device-id")).unwrap().trim(), device);
    assert_ne!(std::fs::read(state.join("device.pem")).unwrap(), before, "a new certificate");
    let (_, other_join) = collector.create_join("74-0099", &[]);
    let out =
        agent_cmd(&["--config", cfg, "--state-dir", st, "enroll", "--force", &other_join]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(77), "{err}");
    assert!(err.contains(&format!("belongs to school {school}")) && err.contains("device move"), "{err}");

    // The written configuration is all the agent needs.
    let log = std::fs::File::create(art.join("agent.log")).unwrap();
    let mut agent = agent_cmd(&["--config", cfg, "--interval", "1s", "run"])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    wait_for(Duration::from_secs(30), "reports of the enrolled agent", || {
        (seqs(&ch, db, &device).len() >= 3).then_some(())
    });
    let _ = agent.kill();
    let _ = agent.wait();
    assert_complete(&seqs(&ch, db, &device), "enrolled agent");
    let school_of = ch.query(&format!(
        "SELECT DISTINCT school_id FROM {db}.ingest_ledger WHERE device_id = toUUID('{device}') FORMAT TSV"
    ));
    assert_eq!(school_of.trim(), school);
    let room = ch.query(&format!(
        "SELECT argMax(room, version) FROM {db}.device_attrs WHERE device_id = toUUID('{device}') FORMAT TSV"
    ));
    assert_eq!(room.trim(), "каб. 214");

    // What the administrator sees.
    let (code, out, err) = admin(&collector, &["device", "show", &device, "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["state"], "active");
    assert_eq!(v["school_id"], school);
    assert!(v["credential_expires"].as_str().unwrap().starts_with("20"), "{v}");
    let (code, out, _) = admin(&collector, &["token", "list"]);
    assert_eq!(code, 0);
    assert!(out.contains("1/5"), "uses counted: {out}");
    let (status, body) = collector.get(&format!("/api/v1/devices/{device}"));
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["enrollment"]["state"], "active", "{body}");
    assert_eq!(v["enrollment"]["schools"][0]["school_id"], school, "{body}");
}

#[test]
fn a_copied_device_id_cannot_write_as_that_device() {
    let art = artifacts_dir("a_copied_device_id_cannot_write_as_that_device");
    let ch = ClickHouse::start();
    let db = "parta_copy";
    let collector = Collector::start(&ch, db, &art);
    let (s1, s2) = ("74-0012", "74-0099");
    let (t1, t2) = (collector.create_token(s1), collector.create_token(s2));
    let real = Agent::start(AgentSpec::new(&collector, s1, &t1), &art, "real");
    let id = real.device_id();
    wait_for(Duration::from_secs(30), "the real device's reports", || {
        (seqs(&ch, db, &id).len() >= 3).then_some(())
    });

    for (name, school, token) in [("same school", s1, &t1), ("other school", s2, &t2)] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(real.state_dir().join("device-id"), dir.path().join("device-id")).unwrap();
        let spec =
            AgentSpec { state_dir: Some(dir.path().to_owned()), ..AgentSpec::new(&collector, school, token) };
        let mut copy = Agent::start(spec, &art, &format!("copy-{}", name.replace(' ', "-")));
        let status = copy.wait_exit(Duration::from_secs(30));
        let log = copy.log();
        assert_eq!(status.code(), Some(77), "{name}: {log}");
        assert!(log.contains("another enrolled device holds this device's id"), "{name}: {log}");
        assert!(!dir.path().join("device.pem").exists(), "{name}: no credential");
    }
    // The real device: one session, its school, its numbers, still reporting.
    let before = seqs(&ch, db, &id).len();
    wait_for(Duration::from_secs(30), "the real device to keep reporting", || {
        (seqs(&ch, db, &id).len() >= before + 2).then_some(())
    });
    assert_complete(&seqs(&ch, db, &id), "real device");
    let sessions =
        ch.query_u64(&format!("SELECT count() FROM {db}.device_sessions WHERE device_id = toUUID('{id}')"));
    assert_eq!(sessions, 1, "the real device's session was never taken over");
    let schools = ch.query(&format!(
        "SELECT groupUniqArray(school_id) FROM {db}.ingest_ledger WHERE device_id = toUUID('{id}') FORMAT TSV"
    ));
    assert_eq!(schools.trim(), format!("['{s1}']"));
    let (_, out, _) = admin(&collector, &["device", "list", "--format", "json"]);
    let list: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(list.len(), 1, "no second device: {out}");
    assert!(collector.log().contains("device_taken"), "the refusals are logged");
    drop(real);
}

/// A session of a raw device: Hello, then the reports; the acknowledged numbers, or the
/// reason the collector ended the session.
fn session(
    rt: &tokio::runtime::Runtime,
    addr: &str,
    ca: &Path,
    device: &RawDevice,
    reports: Vec<Report>,
) -> Result<SeqSet, RejectReason> {
    rt.block_on(async {
        let mut c = RawClient::connect_as(addr, ca, device).await;
        c.send(&hello()).await;
        match c.next().await {
            Ok(Some(Message::Welcome(w))) => assert_eq!(w.device_id, device.id()),
            Ok(Some(Message::Reject(r))) => return Err(r.reason),
            other => panic!("expected Welcome: {other:?}"),
        }
        let n = reports.len() as u64;
        for r in reports {
            c.send(&Message::Report(r)).await;
        }
        let mut acked = SeqSet::new();
        while acked.len() < n {
            match tokio::time::timeout(Duration::from_secs(20), c.next()).await.expect("an answer") {
                Ok(Some(Message::Ack(a))) => {
                    a.ranges.iter().for_each(|r| acked.insert_range(r.first, r.last))
                }
                Ok(Some(Message::Reject(r))) => return Err(r.reason),
                Ok(Some(_)) => {}
                Ok(None) => panic!("stream ended"),
                Err(e) => return Err(e.reject_reason().unwrap_or_else(|| panic!("{e}"))),
            }
        }
        c.close();
        Ok(acked)
    })
}

fn report(seq: u64, at_ms: i64, samples: Vec<Sample>) -> Report {
    Report { seq, agent_time_ms: at_ms, samples }
}

fn metrics_report(seq: u64) -> Report {
    let Message::Report(mut r) = examples::typical_report(seq) else { unreachable!() };
    r.agent_time_ms = now_ms();
    r
}

fn inventory(room: &str) -> Sample {
    Sample::Inventory(Box::new(Inventory { room: room.into(), ..examples::inventory() }))
}

#[test]
fn crafted_clients_are_refused_or_clamped() {
    let art = artifacts_dir("crafted_clients_are_refused_or_clamped");
    let ch = ClickHouse::start();
    let db = "parta_crafted";
    let collector = Collector::start(&ch, db, &art);
    let (s1, s2) = ("74-0012", "74-0099");
    let (t1, t2) = (collector.create_token(s1), collector.create_token(s2));
    let victim = Agent::start(AgentSpec::new(&collector, s2, &t2), &art, "victim");
    let victim_id = victim.device_id();
    wait_for(Duration::from_secs(30), "the victim's reports", || {
        (seqs(&ch, db, &victim_id).len() >= 2).then_some(())
    });
    let (addr, ca) = (collector.quic_addr(), collector.ca());
    let rt = rt();
    let d = rt.block_on(RawDevice::enroll(&addr, &ca, &t1, None)).unwrap();
    let did = d.id().to_string();

    // Sequence number u64::MAX: refused; nothing stored; the device goes on from 1.
    assert_eq!(
        session(&rt, &addr, &ca, &d, vec![metrics_report(u64::MAX)]),
        Err(RejectReason::InvalidReport)
    );
    assert_eq!(session(&rt, &addr, &ca, &d, vec![metrics_report(1)]).unwrap().max(), 1);
    assert_eq!(seqs(&ch, db, &did), [1]);
    // A jump beyond the window: refused too.
    let far = 2 + parta_protocol::validate::SEQ_WINDOW;
    assert_eq!(session(&rt, &addr, &ca, &d, vec![metrics_report(far)]), Err(RejectReason::InvalidReport));

    // A clock a century ahead cannot win "latest" forever: its rows' version is the receive
    // time, and the next honest report's room wins.
    let future = 4_102_444_800_000; // 2100-01-01
    session(&rt, &addr, &ca, &d, vec![report(2, future, vec![inventory("каб. 999")])]).unwrap();
    let sent = now_ms();
    session(&rt, &addr, &ca, &d, vec![report(3, sent, vec![inventory("каб. 101")])]).unwrap();
    let room = ch.query(&format!(
        "SELECT argMax(room, version) FROM {db}.device_attrs WHERE device_id = toUUID('{did}') FORMAT TSV"
    ));
    assert_eq!(room.trim(), "каб. 101");
    let top = ch
        .query_u64(&format!("SELECT max(version) FROM {db}.device_attrs WHERE device_id = toUUID('{did}')"));
    assert!(top <= u64::try_from(now_ms()).unwrap() + 1000, "versions are capped at the receive time: {top}");

    // A local day that disagrees with the interval's own times: refused.
    let start = sent - 600_000;
    let day = i32::try_from(start.div_euclid(86_400_000)).unwrap();
    let interval = |local_day| UsageInterval {
        subject: Subject::Host,
        start_ms: start,
        end_ms: start + 60_000,
        state: UsageState::InUse,
        user_class: UserClass::Teacher,
        user_key: None,
        local_day,
    };
    assert_eq!(
        session(&rt, &addr, &ca, &d, vec![report(4, sent, vec![Sample::Usage(vec![interval(day + 5)])])]),
        Err(RejectReason::InvalidReport)
    );
    session(&rt, &addr, &ca, &d, vec![report(4, sent, vec![Sample::Usage(vec![interval(day)])])]).unwrap();

    // SNMP gear of another school: the id the agent claims is ignored; the poll is stored as
    // its own school's device of that address.
    let target = "10.9.9.9:161";
    let foreign = ids::snmp_device(s2, target);
    let mut poll = examples::switch_poll();
    poll.device_id = foreign;
    poll.target = target.into();
    poll.polled_at_ms = sent;
    poll.local_day = i32::try_from(sent.div_euclid(86_400_000)).unwrap();
    session(&rt, &addr, &ca, &d, vec![report(5, sent, vec![Sample::Snmp(Box::new(poll))])]).unwrap();
    let stored = ch.query(&format!(
        "SELECT DISTINCT toString(device_id), school_id FROM {db}.snmp_polls WHERE agent_id = toUUID('{did}') FORMAT TSV"
    ));
    assert_eq!(stored.trim(), format!("{}\t{s1}", ids::snmp_device(s1, target)));
    assert_eq!(
        ch.query_u64(&format!("SELECT count() FROM {db}.device_attrs WHERE device_id = toUUID('{foreign}')")),
        0,
        "nothing written under the other school's id"
    );

    // Frames of a megabyte: before authentication refused at the length (4 KiB), after it
    // refused while decoding (a list longer than its limit) — the collector's memory stays
    // flat either way.
    let minimal = Sample::SpoolLoss(parta_protocol::sample::SpoolLoss {
        reason: parta_protocol::sample::LossReason::Thinned,
        first_seq: 1,
        last_seq: 1,
        reports: 1,
        oldest_ms: 0,
        newest_ms: 0,
    });
    let mut big = report(6, sent, vec![minimal; 150_000]);
    let frame = loop {
        match parta_protocol::encode_frame(&Message::Report(big.clone())) {
            Ok(f) => break f,
            Err(_) => big.samples.truncate(big.samples.len() * 9 / 10),
        }
    };
    assert!(frame.len() > 512 * 1024, "a frame near the limit: {}", frame.len());
    let pid = collector.pid();
    let (rss0, hwm0, _) = footprint(pid);
    for i in 0..40 {
        let authenticated = i % 2 == 1;
        let got = rt.block_on(async {
            let mut c = if authenticated {
                RawClient::connect_as(&addr, &ca, &d).await
            } else {
                RawClient::connect(&addr, &ca).await
            };
            if authenticated {
                c.send(&hello()).await;
            }
            c.send_bytes(&frame).await;
            tokio::time::timeout(Duration::from_secs(20), c.rejection()).await.expect("an answer")
        });
        let expected = if authenticated { RejectReason::Malformed } else { RejectReason::FrameTooLarge };
        assert_eq!(got, expected, "attempt {i}");
    }
    let (rss1, hwm1, _) = footprint(pid);
    assert!(hwm1 - hwm0 < 64 * 1024, "peak RSS grew by {} KiB (RSS {rss0} → {rss1} KiB)", hwm1 - hwm0);

    // The victim was never touched.
    let before = seqs(&ch, db, &victim_id).len();
    wait_for(Duration::from_secs(30), "the victim to keep reporting", || {
        (seqs(&ch, db, &victim_id).len() >= before + 2).then_some(())
    });
    assert_complete(&seqs(&ch, db, &victim_id), "victim");
    let victim_schools = ch.query(&format!(
        "SELECT groupUniqArray(school_id) FROM {db}.ingest_ledger WHERE device_id = toUUID('{victim_id}') FORMAT TSV"
    ));
    assert_eq!(victim_schools.trim(), format!("['{s2}']"));
    assert_eq!(seqs(&ch, db, &did), [1, 2, 3, 4, 5]);
    drop(victim);
}

#[test]
fn revocation_ends_the_session_and_token_revocation_does_not() {
    let art = artifacts_dir("revocation_ends_the_session_and_token_revocation_does_not");
    let ch = ClickHouse::start();
    let db = "parta_revoke";
    let collector = Collector::start(&ch, db, &art);
    let school = "74-0012";
    let token = collector.create_token(school);
    let mut agent = Agent::start(AgentSpec::new(&collector, school, &token), &art, "agent");
    let id = agent.device_id();
    wait_for(Duration::from_secs(30), "reports", || (seqs(&ch, db, &id).len() >= 2).then_some(()));

    // The token is revoked: enrolled devices keep reporting, across a restart too.
    collector.revoke_token(&token);
    agent.stop();
    agent.restart();
    let n = seqs(&ch, db, &id).len();
    wait_for(Duration::from_secs(30), "reports after the token was revoked", || {
        (seqs(&ch, db, &id).len() >= n + 3).then_some(())
    });
    let sessions =
        ch.query_u64(&format!("SELECT count() FROM {db}.device_sessions WHERE device_id = toUUID('{id}')"));
    assert!(sessions >= 2, "the restarted agent connected with its certificate");
    // A new device cannot enroll with it.
    let rt = rt();
    let refused = rt.block_on(RawDevice::enroll(&collector.quic_addr(), &collector.ca(), &token, None));
    assert!(
        matches!(
            refused,
            Err(parta_agent::enroll::EnrollError::Refused { reason: RejectReason::RevokedToken, .. })
        ),
        "{:?}",
        refused.err()
    );

    // The device is revoked: its live session ends within seconds, the agent exits 77.
    let started = Instant::now();
    let (code, out, err) = admin(&collector, &["device", "revoke", &id, "--by", "тестовый администратор"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("revoked device"), "{out}");
    let status = agent.wait_exit(Duration::from_secs(10));
    let took = started.elapsed();
    assert_eq!(status.code(), Some(77), "{}", agent.log());
    assert!(took <= Duration::from_secs(10), "ended in {took:?}");
    assert!(agent.log().contains("an administrator revoked this device"), "{}", agent.log());
    // And it cannot come back, nor enroll again with its key.
    agent.restart();
    assert_eq!(agent.wait_exit(Duration::from_secs(30)).code(), Some(77));
    let (_, join) = collector.create_join(school, &[]);
    let out = agent
        .command()
        .args(["--config", art.join("agent.toml").to_str().unwrap(), "enroll", "--force", &join])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(77), "{err}");
    assert!(err.contains("was revoked") && err.contains("--new-device"), "{err}");
    let (_, out, _) = admin(&collector, &["device", "show", &id]);
    assert!(out.contains("revoked") && out.contains("тестовый администратор"), "{out}");
    assert_complete(&seqs(&ch, db, &id), "revoked device's data stays");
    eprintln!("revocation ended the live session in {took:?}");
}

#[test]
fn certificates_renew_without_a_gap_and_moves_keep_old_days() {
    let art = artifacts_dir("certificates_renew_without_a_gap_and_moves_keep_old_days");
    let ch = ClickHouse::start();
    let db = "parta_renew";
    // Certificates of 30 s: renewed with 10 s left.
    let mut collector = Collector::start_with(&ch, db, &art, &[("PARTA_DEVICE_CERT_VALIDITY", "30s")]);
    let (s1, s2) = ("74-0012", "74-0345");
    let token = collector.create_token(s1);
    let agent = Agent::start(AgentSpec::new(&collector, s1, &token), &art, "agent");
    let id = agent.device_id();
    let cert = agent.state_dir().join("device.pem");
    let first = wait_for(Duration::from_secs(30), "the credential", || std::fs::read(&cert).ok());
    let enrolled = Instant::now();
    let second =
        wait_for(Duration::from_secs(40), "a renewal", || std::fs::read(&cert).ok().filter(|c| *c != first));
    wait_for(Duration::from_secs(40), "a second renewal in the same session", || {
        std::fs::read(&cert).ok().filter(|c| *c != first && *c != second)
    });
    assert!(collector.metric("parta_certificate_renewals_total") >= 2.0, "renewed over the session");
    // The first certificate has expired by now: a new session must use a renewed one.
    while enrolled.elapsed() < Duration::from_secs(32) {
        std::thread::sleep(Duration::from_millis(200));
    }
    collector.stop();
    collector.restart();
    let n = seqs(&ch, db, &id).len();
    wait_for(Duration::from_secs(60), "reports after the reconnect", || {
        (seqs(&ch, db, &id).len() >= n + 3).then_some(())
    });
    assert_complete(&seqs(&ch, db, &id), "renewals leave no gap");
    let certs =
        ch.query_u64(&format!("SELECT count() FROM {db}.fleet_certs WHERE device_id = toUUID('{id}')"));
    assert!(certs >= 3, "enrolled and renewed twice: {certs}");

    // Moved to another school: reports from now on are the new school's, earlier ones stay.
    let (code, out, err) = admin(&collector, &["device", "move", &id, "--school", s2, "--by", "оператор"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("to school {s2}")), "{out}");
    let moved_at = seqs(&ch, db, &id).len() as u64;
    wait_for(Duration::from_secs(30), "reports of the new school", || {
        (ch.query_u64(&format!(
            "SELECT count() FROM {db}.ingest_ledger WHERE device_id = toUUID('{id}') AND school_id = '{s2}'"
        )) >= 3)
            .then_some(())
    });
    let last_old = ch.query_u64(&format!(
        "SELECT max(seq) FROM {db}.ingest_ledger WHERE device_id = toUUID('{id}') AND school_id = '{s1}'"
    ));
    let first_new = ch.query_u64(&format!(
        "SELECT min(seq) FROM {db}.ingest_ledger WHERE device_id = toUUID('{id}') AND school_id = '{s2}'"
    ));
    assert!(
        last_old >= moved_at.saturating_sub(2) && first_new > last_old,
        "old {last_old}, new {first_new}"
    );
    let (status, body) = collector.get(&format!("/api/v1/devices/{id}"));
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let schools: Vec<&str> = v["enrollment"]["schools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["school_id"].as_str().unwrap())
        .collect();
    assert_eq!(schools, [s1, s2], "{body}");
    assert_eq!(v["enrollment"]["schools"][1]["by"], "оператор");
    assert_complete(&seqs(&ch, db, &id), "the move leaves no gap");
    drop(agent);
}

#[test]
fn a_handshake_flood_leaves_agents_served() {
    let art = artifacts_dir("a_handshake_flood_leaves_agents_served");
    let ch = ClickHouse::start();
    let db = "parta_flood";
    let collector = Collector::start_with(&ch, db, &art, &[("PARTA_MAX_HANDSHAKES", "64")]);
    let school = "74-0012";
    let token = collector.create_token(school);
    let agent = Agent::start(AgentSpec::new(&collector, school, &token), &art, "agent");
    let id = agent.device_id();
    wait_for(Duration::from_secs(30), "reports", || (seqs(&ch, db, &id).len() >= 2).then_some(()));
    let pid = collector.pid();
    let (_, hwm0, _) = footprint(pid);
    // 2,000 connections that complete their handshake and never say Hello, 200 at a time.
    let (addr, ca) = (collector.quic_addr(), collector.ca());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (done, failed) =
        rt.block_on(parta_tests::flood::flood(&addr, &ca, 2_000, 200, Duration::from_secs(2)));
    let (_, hwm1, _) = footprint(pid);
    eprintln!(
        "flood: {done} handshakes completed, {failed} refused or failed; peak RSS +{} KiB",
        hwm1 - hwm0
    );
    assert!(collector.metric("parta_handshake_retries_total") > 0.0, "Retry under load");
    assert!(
        collector.metric("parta_handshakes_refused_total") > 0.0 || failed > 0,
        "connections beyond the cap are refused"
    );
    assert!(hwm1 - hwm0 < 128 * 1024, "peak RSS grew by {} KiB", hwm1 - hwm0);
    // The agent was served throughout and still is.
    let n = seqs(&ch, db, &id).len();
    wait_for(Duration::from_secs(30), "reports after the flood", || {
        (seqs(&ch, db, &id).len() >= n + 2).then_some(())
    });
    assert_complete(&seqs(&ch, db, &id), "agent during the flood");
    // And new devices can enroll once it has passed.
    let enrolled = wait_for(Duration::from_secs(30), "an enrollment after the flood", || {
        rt.block_on(RawDevice::enroll(&addr, &ca, &token, None)).ok()
    });
    assert!(!enrolled.id().to_string().is_empty());
    drop(agent);
}
