//! Fault injection: real ClickHouse, real collector and agent processes reporting every second.
//! Every case ends with the same check (`parta_tests::verify::exactly_once`): for every agent,
//! each report it took is in ClickHouse exactly once (after `OPTIMIZE … FINAL`) with the values
//! the agent measured — or was reported lost by the agent's spool — and the spool is empty.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use parta_tests::clickhouse::ClickHouse;
use parta_tests::netns::NetNs;
use parta_tests::procs::{Agent, AgentSpec, Collector};
use parta_tests::tmpfs::Tmpfs;
use parta_tests::util::{artifacts_dir, wait_for};
use parta_tests::verify::{self, Summary};

const SCHOOL: &str = "74-0012";
const DRAIN: Duration = Duration::from_secs(180);

fn stored(ch: &ClickHouse, db: &str, agent: &Agent) -> u64 {
    let d = agent.device_id();
    ch.query_u64(&format!("SELECT count() FROM {db}.ingest_ledger WHERE device_id = toUUID('{d}')"))
}

/// Waits for every agent to drain, stops it (a clean stop waits for the last acknowledgements),
/// then checks the end state.
fn finish(ch: &ClickHouse, db: &str, agents: &mut [&mut Agent]) -> Vec<Summary> {
    for a in agents.iter() {
        verify::wait_drained(ch, db, a, DRAIN);
    }
    for a in agents.iter_mut() {
        let status = a.stop().expect("agent was running");
        assert!(status.success(), "agent stopped cleanly: {status}");
    }
    agents
        .iter()
        .map(|a| {
            let s = verify::exactly_once(ch, db, a);
            eprintln!("{}: {s:?}", a.device_id());
            s
        })
        .collect()
}

fn segments(state_dir: &Path) -> Vec<PathBuf> {
    parta_agent::spool::segment_files(&state_dir.join("spool")).unwrap()
}

/// A private ClickHouse, a collector on database `db` and a token: what every case starts with.
fn rig(name: &str, db: &str, extra: &[(&str, &str)]) -> (PathBuf, ClickHouse, Collector, String) {
    let art = artifacts_dir(name);
    let ch = ClickHouse::start();
    let c = Collector::start_with(&ch, db, &art, extra);
    let token = c.create_token(SCHOOL);
    (art, ch, c, token)
}

/// 1. kill -9 the collector during ingest (twice, while agents drain a backlog); restart it.
#[test]
fn collector_killed_during_ingest() {
    let db = "f1";
    let (art, ch, mut c, token) = rig("fault_collector_killed", db, &[]);
    let mut agents: Vec<Agent> = (0..3)
        .map(|i| Agent::start(AgentSpec::new(&c, SCHOOL, &token), &art, &format!("agent-{i}")))
        .collect();
    wait_for(Duration::from_secs(60), "first reports", || {
        agents.iter().all(|a| stored(&ch, db, a) >= 3).then_some(())
    });
    for round in 0..2 {
        // Let a backlog build, then kill the collector while it is storing it.
        c.kill();
        std::thread::sleep(Duration::from_secs(8));
        c.restart();
        std::thread::sleep(Duration::from_millis(300 + round * 200));
        c.kill();
        std::thread::sleep(Duration::from_secs(2));
        c.restart();
    }
    std::thread::sleep(Duration::from_secs(3));
    let mut refs: Vec<&mut Agent> = agents.iter_mut().collect();
    for s in finish(&ch, db, &mut refs) {
        assert_eq!(s.reported_lost, 0, "nothing lost");
        assert!(s.taken >= 20 && s.stored == s.taken, "{s:?}");
    }
}

/// 2. Stop ClickHouse for 60 s while agents keep reporting; start it again.
#[test]
fn clickhouse_down_for_a_minute() {
    let db = "f2";
    // A small in-memory budget, so that the outage also exercises backpressure (sessions stop
    // reading, QUIC flow control holds the agents) rather than just buffering.
    let (art, mut ch, c, token) = rig("fault_clickhouse_down", db, &[("PARTA_INGEST_QUEUE", "20")]);
    let mut agents: Vec<Agent> = (0..3)
        .map(|i| Agent::start(AgentSpec::new(&c, SCHOOL, &token), &art, &format!("agent-{i}")))
        .collect();
    wait_for(Duration::from_secs(60), "first reports", || {
        agents.iter().all(|a| stored(&ch, db, a) >= 3).then_some(())
    });
    ch.pause();
    std::thread::sleep(Duration::from_secs(60));
    // The collector held on and slowed the agents instead of dropping or acknowledging early.
    assert!(c.metric("parta_insert_errors_total") > 0.0);
    assert!(
        agents.iter().all(|a| a.status()["spool"]["pending"].as_u64().unwrap() >= 30),
        "agents kept their reports"
    );
    ch.resume();
    let mut refs: Vec<&mut Agent> = agents.iter_mut().collect();
    for s in finish(&ch, db, &mut refs) {
        assert_eq!(s.reported_lost, 0);
        assert!(s.taken >= 60 && s.stored == s.taken, "{s:?}");
    }
    assert!(c.metric("parta_backpressure_seconds_total") > 0.0, "backpressure was measured");
}

/// 3. kill -9 an agent in the middle of a spool write (the torn half-record is left on disk);
///    restart it. Also a few plain kill -9s at arbitrary moments.
#[test]
fn agent_killed_mid_write_torn_tail() {
    let db = "f3";
    let (art, ch, c, token) = rig("fault_agent_torn_tail", db, &[]);
    let mut a = Agent::start(AgentSpec::new(&c, SCHOOL, &token), &art, "agent");
    for wait_ms in [2_300, 1_700, 3_100] {
        std::thread::sleep(Duration::from_millis(wait_ms));
        a.kill();
        a.restart();
    }
    std::thread::sleep(Duration::from_secs(3));
    a.kill();
    // The power went while the next record was half written: at the end of the current segment,
    // or at the start of a new one when everything before was acknowledged and deleted.
    let seq = parta_agent::spool::inspect(&a.state_dir().join("spool")).unwrap().next_seq;
    let last =
        segments(a.state_dir()).pop().unwrap_or_else(|| a.state_dir().join(format!("spool/{seq:020}.seg")));
    let mut bytes = std::fs::read(&last).unwrap_or_default();
    bytes.extend_from_slice(&parta_agent::spool::segment::encode(seq, 0, false, &[0x5a; 120])[..70]);
    std::fs::write(&last, &bytes).unwrap();
    a.restart();
    wait_for(Duration::from_secs(30), "the agent to report again", || {
        a.log().contains("cut off a torn record").then_some(())
    });
    std::thread::sleep(Duration::from_secs(4));
    let s = finish(&ch, db, &mut [&mut a]);
    assert_eq!(s[0].reported_lost, 0, "a torn, never-sent record is not a loss");
    assert_eq!(s[0].stored, s[0].taken);
}

/// 4. Cut the network between agent and collector for two minutes; restore it.
#[test]
fn network_cut_for_two_minutes() {
    let art = artifacts_dir("fault_network_cut");
    let ns = NetNs::create();
    let ch = ClickHouse::start();
    let db = "f4";
    let c = Collector::start_with(
        &ch,
        db,
        &art,
        &[("PARTA_QUIC_LISTEN", &ns.host_ip), ("PARTA_TLS_NAMES", &ns.host_ip)],
    );
    let token = c.create_token(SCHOOL);
    let mut spec = AgentSpec::new(&c, SCHOOL, &token).env("PARTA_RECONNECT_MAX", "10s");
    spec.netns = Some(ns.name.clone());
    let mut a = Agent::start(spec, &art, "agent");
    wait_for(Duration::from_secs(60), "first reports", || (stored(&ch, db, &a) >= 3).then_some(()));
    ns.cut();
    let before = stored(&ch, db, &a);
    std::thread::sleep(Duration::from_secs(120));
    assert!(stored(&ch, db, &a) <= before + 2, "nothing crosses a cut link");
    ns.restore();
    let s = finish(&ch, db, &mut [&mut a]);
    assert_eq!(s[0].reported_lost, 0);
    assert!(s[0].taken >= 120 && s[0].stored == s[0].taken, "{:?}", s[0]);
}

/// 5. Corrupt bytes in the middle of a spool segment; start the agent.
#[test]
fn corrupt_spool_segment() {
    let db = "f5";
    let (art, ch, mut c, token) = rig("fault_corrupt_spool", db, &[]);
    c.stop();
    // The collector is away: the spool fills with unsent reports.
    let mut a = Agent::start(AgentSpec::new(&c, SCHOOL, &token), &art, "agent");
    std::thread::sleep(Duration::from_secs(15));
    a.stop();
    let seg = segments(a.state_dir()).pop().unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 40] {
        *b ^= 0xa5;
    }
    std::fs::write(&seg, &bytes).unwrap();
    c.restart();
    a.restart();
    wait_for(Duration::from_secs(30), "the repair", || {
        a.log().contains("repaired a damaged spool segment").then_some(())
    });
    std::thread::sleep(Duration::from_secs(3));
    let s = finish(&ch, db, &mut [&mut a]);
    assert!(s[0].reported_lost >= 1, "the damaged reports were reported lost: {:?}", s[0]);
    assert!(std::fs::read_dir(a.state_dir().join("spool/quarantine")).unwrap().count() >= 1);
    // The ledger API explains the gap.
    let (status, body) = c.get(&format!("/api/v1/devices/{}/ledger", a.device_id()));
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["complete"], false);
    assert!(
        v["gaps"].as_array().unwrap().iter().all(|g| g["reasons"] == serde_json::json!(["corrupt"])),
        "{body}"
    );
    assert_eq!(v["missing"], v["missing_explained"], "{body}");
}

/// 6. Fill the spool's disk (a small tmpfs): the agent keeps running, counts and reports what it
///    had to discard, and recovers when space returns.
#[test]
fn spool_disk_full() {
    let disk = Tmpfs::mount("24k");
    let db = "f6";
    let (art, ch, mut c, token) = rig("fault_disk_full", db, &[]);
    c.stop();
    let mut spec = AgentSpec::new(&c, SCHOOL, &token);
    spec.state_dir = Some(disk.path().to_owned());
    let mut a = Agent::start(spec, &art, "agent");
    wait_for(Duration::from_secs(240), "the disk to fill and the spool to make room", || {
        a.log().contains("spool disk is full").then_some(())
    });
    std::thread::sleep(Duration::from_secs(10));
    assert!(
        a.process.pid() > 0 && a.log().contains("spool discarded reports"),
        "still running, counting losses"
    );
    // Space returns, the collector comes back.
    disk.resize("8m");
    c.restart();
    let s = finish(&ch, db, &mut [&mut a]);
    assert!(s[0].reported_lost > 0, "losses were reported: {:?}", s[0]);
    assert!(s[0].stored > 0);
    let reasons = ch.query(&format!("SELECT DISTINCT reason FROM {db}.spool_losses ORDER BY reason"));
    assert!(reasons.lines().all(|r| r == "disk_full" || r == "thinned"), "{reasons}");
    assert!(
        c.metric("parta_agent_spool_losses_total{reason=\"disk_full\"}")
            + c.metric("parta_agent_spool_losses_total{reason=\"thinned\"}")
            > 0.0
    );
}

/// 7. Restart the collector as a new process while 50 agents hold a backlog (reconnect storm).
#[test]
fn reconnect_storm_of_fifty_agents() {
    let db = "f7";
    let (art, ch, mut c, token) = rig("fault_reconnect_storm", db, &[]);
    let mut agents: Vec<Agent> = (0..50)
        .map(|i| {
            let spec = AgentSpec::new(&c, SCHOOL, &token)
                .env("PARTA_RECONNECT_MAX", "5s")
                .env("PARTA_LOG_LEVEL", "info");
            Agent::start(spec, &art, &format!("agent-{i:02}"))
        })
        .collect();
    wait_for(Duration::from_secs(120), "all 50 agents reporting", || {
        agents.iter().all(|a| stored(&ch, db, a) >= 2).then_some(())
    });
    c.kill();
    std::thread::sleep(Duration::from_secs(30));
    c.restart();
    let mut refs: Vec<&mut Agent> = agents.iter_mut().collect();
    for s in finish(&ch, db, &mut refs) {
        assert_eq!(s.reported_lost, 0);
        assert!(s.taken >= 30 && s.stored == s.taken, "{s:?}");
    }
}
