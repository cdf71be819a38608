//! Signed updates end to end: real agents (each with its own installed binary, restarted by a
//! supervisor as systemd would) learn of releases over their sessions, download them from a
//! real collector, verify them against the key pinned at enrollment, and the real root-side
//! installer (`parta-agent update install`) swaps the binary and rolls back a version that does
//! not prove healthy. Every test ends with the fault suite's exactly-once check.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use parta_tests::clickhouse::ClickHouse;
use parta_tests::procs::{AgentSpec, Collector};
use parta_tests::tmpfs::Tmpfs;
use parta_tests::updates::{
    Device, PathWatch, Releases, collector_ok, install_devices, statuses, wait_state,
};
use parta_tests::util::{artifacts_dir, wait_for};
use parta_tests::verify::{exactly_once, wait_drained};

const TARGET: &str = "x86_64-linux";

/// `n` random device ids of which exactly `first` fall in the first 10 % of a percentage
/// rollout (the collector places a device by a hash of its id).
fn ids_with_first_tenth(n: usize, first: usize) -> Vec<uuid::Uuid> {
    use parta_collector::release::book::bucket;
    let (mut inside, mut outside) = (Vec::new(), Vec::new());
    while inside.len() < first || outside.len() < n - first {
        let id = uuid::Uuid::new_v4();
        if bucket(parta_protocol::DeviceId(id)) < 10 {
            if inside.len() < first {
                inside.push(id);
            }
        } else if outside.len() < n - first {
            outside.push(id);
        }
    }
    inside.extend(outside);
    inside
}

fn device_ids(devices: &[Device]) -> Vec<String> {
    devices.iter().map(|d| d.agent.device_id()).collect()
}

/// The detail a device reported with `version`.
fn detail(collector: &Collector, id: &str, version: &str) -> (String, String) {
    statuses(collector).get(&(id.to_owned(), version.to_owned())).cloned().unwrap_or_default()
}

/// The agent version each device last said in `Hello`.
fn session_versions(ch: &ClickHouse, db: &str) -> std::collections::BTreeMap<String, String> {
    ch.query(&format!(
        "SELECT toString(device_id), argMax(agent_version, connected_at) FROM {db}.device_sessions GROUP BY device_id"
    ))
    .lines()
    .filter_map(|l| l.split_once('\t').map(|(a, b)| (a.to_owned(), b.to_owned())))
    .collect()
}

fn wait_connected(ch: &ClickHouse, db: &str, n: u64) {
    wait_for(Duration::from_secs(120), &format!("{n} devices connected"), || {
        (ch.query_u64(&format!("SELECT uniqExact(device_id) FROM {db}.ingest_ledger")) >= n).then_some(())
    });
}

/// Drains every agent, stops it (a clean stop waits for the last acknowledgements), then checks
/// that every report it took is stored exactly once.
fn check_nothing_lost(ch: &ClickHouse, db: &str, devices: &mut [Device]) {
    for d in devices.iter() {
        wait_drained(ch, db, &d.agent, Duration::from_secs(120));
    }
    for d in devices.iter_mut() {
        let status = d.agent.stop().expect("agent was running");
        assert!(status.success(), "stopped cleanly: {status}");
    }
    for d in devices.iter() {
        let s = exactly_once(ch, db, &d.agent);
        assert!(s.stored > 0, "{s:?}");
    }
}

#[test]
fn twenty_agents_update_staged_ten_percent_then_all() {
    let art = artifacts_dir("update-staged");
    let rel = Releases::new();
    let ch = ClickHouse::start();
    let db = "upd_staged";
    let public = rel.public();
    let collector = Collector::start_with(
        &ch,
        db,
        &art,
        &[("PARTA_RELEASE_KEY", public.to_str().unwrap()), ("PARTA_RELEASE_BANDWIDTH_MBIT", "4000")],
    );
    let school = "74-0012";
    let token = collector.create_token(school);
    let ids = ids_with_first_tenth(20, 2);
    let root = tempfile::tempdir().unwrap();
    let base = rel.base_build();
    let spec = || AgentSpec::new(&collector, school, &token);
    let mut devices =
        install_devices(root.path(), "dev", &base, &public, ids.iter().copied().map(Some), spec, &art);
    let _watch = PathWatch::over(&devices, &art, "60s");
    wait_connected(&ch, db, 20);
    let all = device_ids(&devices);
    assert_eq!(
        all.iter().map(|s| s.parse::<uuid::Uuid>().unwrap()).collect::<Vec<_>>(),
        ids,
        "the ids kept from before"
    );
    let a = env!("CARGO_PKG_VERSION");
    assert!(session_versions(&ch, db).values().all(|v| v == a));

    // Version B: the same build stamped 0.2.0, signed with the region's key.
    let b = rel.build("0.2.0");
    let sig = rel.sign(&b, "0.2.0");
    collector_ok(
        &collector,
        &["release", "add", sig.to_str().unwrap(), b.to_str().unwrap(), "--channel", "stable"],
    );
    let said = collector_ok(&collector, &["release", "rollout", "--channel", "stable", "--percent", "10"]);
    let _ = said;

    // 10 %: the two devices placed there, and only they.
    let first = &all[..2];
    wait_state(&collector, first, "0.2.0", "healthy", Duration::from_secs(180));
    let touched: BTreeSet<String> = statuses(&collector).keys().map(|(d, _)| d.clone()).collect();
    assert_eq!(touched, first.iter().cloned().collect(), "only the first 10 % heard of 0.2.0");
    for (i, d) in devices.iter().enumerate() {
        assert_eq!(d.installed_version(), if i < 2 { "0.2.0" } else { a }, "device {i}");
    }

    // Then everybody.
    collector_ok(&collector, &["release", "rollout", "--channel", "stable", "--percent", "100"]);
    wait_state(&collector, &all, "0.2.0", "healthy", Duration::from_secs(420));
    for d in &devices {
        assert_eq!(d.installed_version(), "0.2.0");
        let out = std::process::Command::new(d.binary()).arg("--version").output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "parta-agent 0.2.0");
    }
    wait_for(Duration::from_secs(60), "every device to say 0.2.0 in Hello", || {
        let v = session_versions(&ch, db);
        (v.len() == 20 && v.values().all(|v| v == "0.2.0")).then_some(())
    });
    // `parta-agent status` says it too (the running agent's version, its latest release).
    wait_for(Duration::from_secs(30), "every agent's status to name 0.2.0", || {
        devices.iter().all(|d| d.agent.status()["agent"]["version"] == "0.2.0").then_some(())
    });
    for d in &devices {
        let s = d.agent.status();
        assert_eq!(
            (s["update"]["version"].as_str(), s["update"]["state"].as_str()),
            (Some("0.2.0"), Some("Healthy")),
            "{s}"
        );
    }
    // The API's device list shows each device's latest release state.
    let (code, body) = collector.get("/api/v1/devices");
    assert_eq!(code, 200, "{body}");
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    let healthy = list["devices"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["update"]["version"] == "0.2.0" && d["update"]["state"] == "healthy")
        .count();
    assert_eq!(healthy, 20, "{body}");
    // /metrics (promtool-checked) counts the artifact bytes served: every device's whole build.
    let metrics = collector.metrics_checked();
    let served: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("parta_release_bytes_served_total "))
        .expect("parta_release_bytes_served_total")
        .trim()
        .parse()
        .unwrap();
    assert!(served >= 20.0 * std::fs::metadata(&b).unwrap().len() as f64, "{served}");
    let text = collector_ok(&collector, &["release", "status"]);
    assert!(text.lines().any(|l| l == "0.2.0\thealthy\t20"), "{text}");
    // So do the web UI's release page and each device's page.
    collector.add_user("admin", "admin", "all", "admin-password");
    let mut web = parta_tests::websession::Session::new(&collector);
    assert_eq!(web.sign_in("admin", "admin-password"), 303);
    let (code, page) = web.get("/releases");
    assert_eq!(code, 200, "{page}");
    assert!(
        page.contains(r#"<td>0.2.0</td><td><span class="upd-healthy">работает исправно</span></td><td class="num">20</td>"#),
        "{page}"
    );
    let (code, device_page) = web.get(&format!("/d/{}", all[7]));
    assert_eq!(code, 200, "{device_page}");
    assert!(
        device_page.contains(r#"<p id="device-update">Версия 0.2.0: <span class="upd-healthy">"#),
        "{device_page}"
    );
    check_nothing_lost(&ch, db, &mut devices);
}

/// Flips one byte in the middle of a file.
fn flip_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(path, bytes).unwrap();
}

fn artifact_on_collector(collector: &Collector, version: &str) -> std::path::PathBuf {
    collector.data_dir().join("releases").join(format!("parta-agent-{version}-{TARGET}"))
}

#[test]
fn bad_releases_are_refused_a_broken_one_rolled_back_and_faults_end_consistent() {
    let art = artifacts_dir("update-faults");
    let rel = Releases::new();
    let ch = ClickHouse::start();
    let db = "upd_faults";
    let public = rel.public();
    // A slow link, so that a download can be interrupted.
    let collector = Collector::start_with(
        &ch,
        db,
        &art,
        &[("PARTA_RELEASE_KEY", public.to_str().unwrap()), ("PARTA_RELEASE_BANDWIDTH_MBIT", "40")],
    );
    let school = "74-0012";
    let token = collector.create_token(school);
    let root = tempfile::tempdir().unwrap();
    // Device 0 keeps its state on a small disk of its own, to be filled during a download.
    let disk = Tmpfs::mount("200m");
    std::fs::create_dir_all(root.path().join("dev00")).unwrap();
    std::os::unix::fs::symlink(disk.path(), root.path().join("dev00/state")).unwrap();
    let base = rel.base_build();
    let spec = || AgentSpec::new(&collector, school, &token);
    let mut devices = install_devices(root.path(), "dev", &base, &public, [None; 4], spec, &art);
    let watch = PathWatch::over(&devices, &art, "15s");
    wait_connected(&ch, db, 4);
    let ids = device_ids(&devices);
    let a = env!("CARGO_PKG_VERSION");
    let add = |sig: &Path, file: &Path, channel: &str| {
        collector
            .command()
            .args(["release", "add"])
            .arg(sig)
            .arg(file)
            .args(["--channel", channel])
            .output()
            .unwrap()
    };
    let pilot = |version: &str, devices: &[&str]| {
        let mut args = vec!["release", "rollout", "--channel", "pilot", "--version", version];
        for d in devices {
            args.push("--scope");
            args.push(d);
        }
        collector_ok(&collector, &args);
    };
    let scope = |i: usize| format!("device:{}", ids[i]);

    // 1. A version that exits at start, on devices 0 and 1: installed, not healthy in time,
    //    rolled back automatically; reported as such; offered again, not retried.
    let broken = rel.broken_build("0.2.0");
    let sig = rel.sign(&broken, "0.2.0");
    assert!(add(&sig, &broken, "pilot").status.success());
    pilot("0.2.0", &[&scope(0), &scope(1)]);
    wait_state(&collector, &ids[..2], "0.2.0", "rolled_back", Duration::from_secs(180));
    for i in 0..2 {
        let (_, why) = detail(&collector, &ids[i], "0.2.0");
        assert!(why.contains("did not report healthy") && why.contains(&format!("{a} restored")), "{why}");
        assert_eq!(devices[i].installed_version(), a);
    }
    // The previous version, restarted, is offered 0.2.0 again in its new session: declined.
    wait_for(Duration::from_secs(60), "device 1 to decline the version that failed there", || {
        devices[1].agent.log().contains("failed here before; not retried").then_some(())
    });
    assert_eq!(detail(&collector, &ids[1], "0.2.0").0, "rolled_back");
    let others: BTreeSet<String> = statuses(&collector).keys().map(|(d, _)| d.clone()).collect();
    assert!(!others.contains(&ids[2]) && !others.contains(&ids[3]), "only the pilot devices heard of it");

    // 2. Refused by the devices: a bit flipped and a file cut short on the collector's disk, a
    //    release signed by another key (a collector that was broken into). Device 2 keeps
    //    running its version.
    let flipped = rel.build("0.3.0");
    assert!(add(&rel.sign(&flipped, "0.3.0"), &flipped, "pilot").status.success());
    flip_byte(&artifact_on_collector(&collector, "0.3.0"));
    pilot("0.3.0", &[&scope(2)]);
    wait_state(&collector, &ids[2..3], "0.3.0", "refused", Duration::from_secs(120));
    assert!(
        detail(&collector, &ids[2], "0.3.0").1.starts_with("altered"),
        "{:?}",
        detail(&collector, &ids[2], "0.3.0")
    );

    let cut = rel.build("0.4.0");
    assert!(add(&rel.sign(&cut, "0.4.0"), &cut, "pilot").status.success());
    let on_disk = artifact_on_collector(&collector, "0.4.0");
    let len = std::fs::metadata(&on_disk).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&on_disk).unwrap().set_len(len / 3).unwrap();
    pilot("0.4.0", &[&scope(2)]);
    wait_state(&collector, &ids[2..3], "0.4.0", "refused", Duration::from_secs(120));
    assert!(
        detail(&collector, &ids[2], "0.4.0").1.starts_with("truncated"),
        "{:?}",
        detail(&collector, &ids[2], "0.4.0")
    );

    let stranger = Releases::new();
    let foreign = rel.build("0.5.0");
    let foreign_sig = stranger.sign(&foreign, "0.5.0");
    let refused = add(&foreign_sig, &foreign, "pilot");
    assert!(!refused.status.success(), "the collector refuses a release its key did not sign");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("does not trust"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    // A collector broken into offers it anyway: its rows and file put in place by hand.
    std::fs::copy(&foreign, artifact_on_collector(&collector, "0.5.0")).unwrap();
    let sig_text = std::fs::read_to_string(&foreign_sig).unwrap().replace('\'', "\\'");
    ch.query(&format!(
        "INSERT INTO {db}_auth.releases VALUES ('parta-agent', '0.5.0', '{TARGET}', 'pilot', '{sig_text}', {}, '', 0, 'intruder')",
        std::fs::metadata(&foreign).unwrap().len()
    ));
    pilot("0.5.0", &[&scope(2)]);
    wait_state(&collector, &ids[2..3], "0.5.0", "refused", Duration::from_secs(120));
    assert!(
        detail(&collector, &ids[2], "0.5.0").1.contains("does not trust"),
        "{:?}",
        detail(&collector, &ids[2], "0.5.0")
    );
    // Unsigned: the collector takes nothing without a signature file it can verify.
    let junk = root.path().join("unsigned.sig");
    std::fs::write(&junk, "not a signature\n").unwrap();
    let refused = add(&junk, &foreign, "pilot");
    assert!(!refused.status.success() && String::from_utf8_lossy(&refused.stderr).contains("signature file"));
    assert_eq!(devices[2].installed_version(), a);

    // 3. The installer refuses what a compromised agent could leave for it: an older build and
    //    an unsigned one, put straight into the agent's update directory.
    let older = rel.build("0.0.9");
    let older_sig = rel.sign(&older, "0.0.9");
    let d3 = &devices[3];
    let plant = |artifact: &Path, sig: Option<&Path>, version: &str| {
        std::fs::copy(artifact, d3.update_file("artifact")).unwrap();
        match sig {
            Some(s) => drop(std::fs::copy(s, d3.update_file("release.sig")).unwrap()),
            None => drop(std::fs::remove_file(d3.update_file("release.sig"))),
        }
        std::fs::write(d3.update_file("ready"), version).unwrap();
    };
    drop(watch);
    plant(&older, Some(&older_sig), "0.0.9");
    let out = d3.installer("15s").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("downgrade refused"), "{said}");
    plant(&older, None, "0.0.9");
    let out = d3.installer("15s").output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("signature file is missing"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(d3.installed_version(), a);
    let watch = PathWatch::over(&devices, &art, "15s");

    // 4. The installer killed (-9) while the new version proves itself; run again (as at
    //    boot), it finishes: healthy, the new version installed.
    let good = rel.build("0.6.0");
    assert!(add(&rel.sign(&good, "0.6.0"), &good, "pilot").status.success());
    pilot("0.6.0", &[&scope(3)]);
    let journal = d3.dir.join("installer/journal.json");
    let outcome = d3.update_file("installer.json");
    let pid = wait_for(Duration::from_secs(180), "device 3's installer to have swapped the binary", || {
        let installed = std::fs::read_to_string(&outcome)
            .is_ok_and(|t| t.contains("\"0.6.0\"") && t.contains("Installed"));
        installed.then(|| watch.installer_pid(&d3.dir)).flatten()
    });
    assert!(std::process::Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap().success());
    wait_for(Duration::from_secs(10), "the killed installer to be reaped", || {
        watch.installer_pid(&d3.dir).is_none().then_some(())
    });
    assert!(journal.exists(), "the killed installer left its journal");
    let out = d3.installer("60s").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!journal.exists());
    wait_state(&collector, &ids[3..4], "0.6.0", "healthy", Duration::from_secs(60));
    assert_eq!(d3.installed_version(), "0.6.0");

    // 5. Device 1's agent killed (-9) mid-download resumes after the bytes it verified; device
    //    0's disk fills up during its download: it fails with the reason, and nothing else; in
    //    its next session, the disk freed, it downloads the version again without an admin.
    let next = rel.build("0.7.0");
    assert!(add(&rel.sign(&next, "0.7.0"), &next, "pilot").status.success());
    pilot("0.7.0", &[&scope(0), &scope(1)]);
    let part1 = devices[1].update_file("artifact.part");
    let part0 = devices[0].update_file("artifact.part");
    let size = std::fs::metadata(&next).unwrap().len();
    wait_for(Duration::from_secs(120), "both downloads under way", || {
        let got = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        (got(&part1) > 1 << 20 && got(&part1) < size / 2 && got(&part0) > 1 << 20).then_some(())
    });
    let pid = devices[1].agent_pid().unwrap();
    assert!(std::process::Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap().success());
    // Fill device 0's disk to the last byte, while its download runs.
    let filler = disk.path().join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let block = vec![0u8; 1 << 20];
    while std::io::Write::write_all(&mut f, &block).is_ok() {}
    drop(f);
    wait_state(&collector, &ids[0..1], "0.7.0", "failed", Duration::from_secs(120));
    let (_, why) = detail(&collector, &ids[0], "0.7.0");
    assert!(why.contains("No space left") || why.contains("not enough disk space"), "{why}");
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(devices[0].installed_version(), a);
    wait_state(&collector, &ids[1..2], "0.7.0", "healthy", Duration::from_secs(240));
    assert!(devices[1].agent.log().contains("resuming a release download"), "device 1 resumed its download");
    assert_eq!(devices[1].installed_version(), "0.7.0");
    // A new session of device 0 (its agent restarted): the same offer, tried again.
    let pid = devices[0].agent_pid().unwrap();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap().success());
    wait_state(&collector, &ids[0..1], "0.7.0", "healthy", Duration::from_secs(240));
    assert_eq!(devices[0].installed_version(), "0.7.0");

    check_nothing_lost(&ch, db, &mut devices);
}

/// A hostile agent, over real QUIC sessions with credentials of its own: it gets exactly the
/// bytes of the release it was offered and nothing else; a fetch of a version it was not offered
/// or beyond the artifact, `Ready` twice, an over-long platform name or detail and a flood of
/// states each end its session with the reason; what it made up (a state of a release the
/// collector does not have, a state past the bound, an over-long detail) is never recorded; and
/// an update message before `Hello`, with or without a certificate, is refused.
#[test]
fn a_hostile_agent_over_quic_gets_only_what_it_was_offered_and_records_nothing_made_up() {
    use parta_protocol::update::{
        MAX_CHUNK, MAX_DETAIL, MAX_TARGET, ReleaseMessage, StatusReport, UpdateMessage, UpdateState,
    };
    use parta_protocol::{Message, RejectReason};
    use parta_tests::quic::{RawClient, RawDevice, hello};

    let art = artifacts_dir("update-hostile");
    let rel = Releases::new();
    let ch = ClickHouse::start();
    let db = "upd_hostile";
    let public = rel.public();
    let collector = Collector::start_with(&ch, db, &art, &[("PARTA_RELEASE_KEY", public.to_str().unwrap())]);
    let token = collector.create_token("74-0012");
    let b = rel.build("0.2.0");
    let sig = rel.sign(&b, "0.2.0");
    collector_ok(
        &collector,
        &["release", "add", sig.to_str().unwrap(), b.to_str().unwrap(), "--channel", "stable"],
    );
    collector_ok(&collector, &["release", "rollout", "--channel", "stable", "--percent", "100"]);
    let artifact = std::fs::read(&b).unwrap();
    let size = artifact.len() as u64;
    let v = |s: &str| s.parse::<parta_protocol::release::ReleaseVersion>().unwrap();
    let report = |version: &str, state: UpdateState, detail: &str| StatusReport {
        version: v(version),
        state,
        bytes: 0,
        detail: detail.into(),
    };
    let (addr, ca) = (collector.quic_addr(), collector.ca());
    let rt = tokio::runtime::Runtime::new().unwrap();

    /// A session past `Welcome`.
    async fn welcomed(addr: &str, ca: &Path, d: &RawDevice) -> RawClient {
        let mut c = RawClient::connect_as(addr, ca, d).await;
        c.send(&hello()).await;
        assert!(matches!(c.next().await, Ok(Some(Message::Welcome(_)))));
        c
    }
    /// The next release message (skipping any other the collector sends).
    async fn next_release(c: &mut RawClient) -> ReleaseMessage {
        loop {
            match tokio::time::timeout(Duration::from_secs(60), c.next()).await.expect("a release message") {
                Ok(Some(Message::Release(m))) => return m,
                Ok(Some(_)) => continue,
                other => panic!("expected a release message, got {other:?}"),
            }
        }
    }
    /// Says `Ready` and waits for the offer of 0.2.0.
    async fn offered(c: &mut RawClient, latest: Option<StatusReport>) {
        c.send(&Message::Update(UpdateMessage::Ready { target: TARGET.into(), latest })).await;
        match next_release(c).await {
            ReleaseMessage::Offer { signature, .. } => {
                let m = parta_protocol::release::Manifest::parse(&signature).unwrap();
                assert_eq!(m.version.to_string(), "0.2.0");
            }
            other => panic!("expected an offer, got {other:?}"),
        }
    }
    let update = |m: UpdateMessage| Message::Update(m);
    let fetch = |version: &str, offset: u64| update(UpdateMessage::Fetch { version: v(version), offset });

    let [a, flooder, verbose, liar] = rt.block_on(async {
        let devices = RawDevice::enroll_many(&addr, &ca, &token, 4, 4).await;
        <[RawDevice; 4]>::try_from(devices).ok().unwrap()
    });
    rt.block_on(async {
        // What was offered, byte for byte: the first chunk, the tail, the empty end.
        let mut c = welcomed(&addr, &ca, &a).await;
        offered(&mut c, None).await;
        for (offset, want, end) in [
            (0, &artifact[..MAX_CHUNK], false),
            (size - 10, &artifact[artifact.len() - 10..], true),
            (size, &artifact[..0], true),
        ] {
            c.send(&fetch("0.2.0", offset)).await;
            match next_release(&mut c).await {
                ReleaseMessage::Chunk { version, offset: at, bytes, end: e } => {
                    assert_eq!((version.to_string(), at, e), ("0.2.0".to_owned(), offset, end));
                    assert!(bytes == want, "chunk at {offset}: {} bytes, not the artifact's", bytes.len());
                }
                other => panic!("expected a chunk, got {other:?}"),
            }
        }
        // A version it was not offered (one the collector does not even have).
        c.send(&fetch("0.3.0", 0)).await;
        let (reason, detail) = c.rejection_with_detail().await;
        assert_eq!(reason, RejectReason::Malformed, "{detail}");
        assert!(detail.contains("did not offer"), "{detail}");

        // Beyond the artifact's end.
        let mut c = welcomed(&addr, &ca, &a).await;
        offered(&mut c, None).await;
        c.send(&fetch("0.2.0", size + 1)).await;
        let (reason, detail) = c.rejection_with_detail().await;
        assert_eq!(reason, RejectReason::Malformed, "{detail}");
        assert!(detail.contains("beyond its"), "{detail}");

        // The offered version, before anything was offered in this session.
        let mut c = welcomed(&addr, &ca, &a).await;
        c.send(&fetch("0.2.0", 0)).await;
        let (reason, detail) = c.rejection_with_detail().await;
        assert_eq!(reason, RejectReason::Malformed, "{detail}");
        assert!(detail.contains("did not offer"), "{detail}");

        // `Ready` twice.
        let mut c = welcomed(&addr, &ca, &a).await;
        offered(&mut c, None).await;
        c.send(&update(UpdateMessage::Ready { target: TARGET.into(), latest: None })).await;
        let (reason, detail) = c.rejection_with_detail().await;
        assert_eq!(reason, RejectReason::Malformed, "{detail}");
        assert!(detail.contains("twice"), "{detail}");

        // A platform name over its bound.
        let mut c = welcomed(&addr, &ca, &a).await;
        c.send(&update(UpdateMessage::Ready { target: "x".repeat(MAX_TARGET + 1), latest: None })).await;
        let (reason, detail) = c.rejection_with_detail().await;
        assert_eq!(reason, RejectReason::Malformed, "{detail}");
        assert!(detail.contains("platform name"), "{detail}");

        // A flood of states: the bound holds, the state past it is not recorded.
        let mut c = welcomed(&addr, &ca, &flooder).await;
        offered(&mut c, None).await;
        for _ in 0..64 {
            c.send(&update(UpdateMessage::Status(report("0.2.0", UpdateState::Downloading, "flood")))).await;
        }
        c.send(&update(UpdateMessage::Status(report("0.2.0", UpdateState::Failed, "past the bound")))).await;
        let (reason, detail) = c.rejection_with_detail().await;
        assert_eq!(reason, RejectReason::Malformed, "{detail}");
        assert!(detail.contains("more than 64 update states"), "{detail}");

        // A detail over its bound is not recorded.
        let mut c = welcomed(&addr, &ca, &verbose).await;
        offered(&mut c, Some(report("0.2.0", UpdateState::Offered, "before"))).await;
        c.send(&update(UpdateMessage::Status(report(
            "0.2.0",
            UpdateState::Failed,
            &"d".repeat(MAX_DETAIL + 1),
        ))))
        .await;
        let (reason, detail) = c.rejection_with_detail().await;
        assert_eq!(reason, RejectReason::Malformed, "{detail}");
        assert!(detail.contains("longer than"), "{detail}");

        // States of a release the collector does not have are not believed (the session goes
        // on); then one true state, which marks the end of everything written before it.
        let made_up = report("9.9.9", UpdateState::Healthy, "made up");
        let mut c = welcomed(&addr, &ca, &liar).await;
        offered(&mut c, Some(made_up.clone())).await;
        c.send(&update(UpdateMessage::Status(made_up))).await;
        c.send(&update(UpdateMessage::Status(report("0.2.0", UpdateState::Refused, MARKER)))).await;
        c.send(&fetch("0.2.0", 0)).await;
        assert!(matches!(next_release(&mut c).await, ReleaseMessage::Chunk { .. }), "still in session");
        c.close();

        // Before `Hello`: with a certificate, and without one.
        let mut c = RawClient::connect_as(&addr, &ca, &a).await;
        c.send(&fetch("0.2.0", 0)).await;
        assert_eq!(c.rejection().await, RejectReason::UnexpectedMessage);
        let mut c = RawClient::connect(&addr, &ca).await;
        c.send(&update(UpdateMessage::Ready { target: TARGET.into(), latest: None })).await;
        assert_eq!(c.rejection().await, RejectReason::UnexpectedMessage);
    });

    // The writer keeps order: once the marker is stored, everything said before it is too.
    let liar_id = liar.id().to_string();
    wait_for(Duration::from_secs(60), "the liar's true state", || {
        (detail(&collector, &liar_id, "0.2.0") == ("refused".to_owned(), MARKER.to_owned())).then_some(())
    });
    let s = statuses(&collector);
    assert!(!s.keys().any(|(_, version)| version == "9.9.9"), "a made-up release recorded: {s:?}");
    assert_eq!(
        detail(&collector, &flooder.id().to_string(), "0.2.0"),
        ("downloading".to_owned(), "flood".to_owned()),
        "the state past the bound is not recorded"
    );
    assert_eq!(
        detail(&collector, &verbose.id().to_string(), "0.2.0"),
        ("offered".to_owned(), "before".to_owned()),
        "the over-long detail is not recorded"
    );
    assert_eq!(
        ch.query_u64(&format!("SELECT count() FROM {db}.update_status WHERE length(detail) > {MAX_DETAIL}")),
        0
    );
    let never = a.id().to_string();
    assert!(!s.keys().any(|(d, _)| *d == never), "the first device said no state: {s:?}");

    // The web UI's release page (admins only) shows what devices said, escaped: the refusal
    // with its reason, nothing of the made-up release.
    collector.add_user("admin", "admin", "all", "admin-password");
    collector.add_user("ops", "ops", "all", "ops-password");
    let mut ops = parta_tests::websession::Session::new(&collector);
    assert_eq!(ops.sign_in("ops", "ops-password"), 303);
    assert_eq!(ops.get("/releases").0, 403);
    assert!(!ops.get("/").1.contains("/releases"), "no link for a non-admin");
    let mut web = parta_tests::websession::Session::new(&collector);
    assert_eq!(web.sign_in("admin", "admin-password"), 303);
    assert!(web.get("/").1.contains(r#"href="/releases""#));
    let (code, page) = web.get("/releases");
    assert_eq!(code, 200, "{page}");
    let escaped = "marker &lt;script&gt;alert(1)&lt;/script&gt;";
    let problems = &page[page.find(r#"id="release-problems""#).expect("the problems table")..];
    assert!(problems.contains(&liar_id) && problems.contains(escaped), "{page}");
    assert!(!page.contains("<script>"), "a device's words are escaped");
    assert!(!page.contains("9.9.9"), "{page}");
    assert!(page.contains("отклонено устройством") && page.contains("100 % устройств"), "{page}");
}

/// A refusal reason with markup in it, as a hostile device might send.
const MARKER: &str = "marker <script>alert(1)</script>";
