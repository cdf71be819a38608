//! SNMP polling against a real net-snmp `snmpd` (Debian package) started by the tests on
//! loopback: values cross-checked with `snmpget`/`snmpwalk`, v2c and v3, wrong credentials,
//! dead targets, counter wraps and a device reboot through a scripted fake device, malformed
//! replies from a UDP responder, and the whole path into ClickHouse and the API.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parta_tests::clickhouse::ClickHouse;
use parta_tests::procs::{Agent, AgentSpec, Collector};
use parta_tests::snmpd::{Snmpd, SnmpdConfig, standard_lines, write_state};
use parta_tests::util::{artifacts_dir, binary, wait_for};
use serde_json::Value;

const SCHOOL: &str = "74-0012";

/// `parta-agent snmp poll …`: (exit code, JSON output, stderr).
fn poll(args: &[&str]) -> (i32, Value, String) {
    let out = Command::new(binary("parta-agent"))
        .env_clear()
        .args(["snmp", "poll", "--format", "json"])
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), json, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// `snmpwalk -Oq` output → (last OID arc, value without quotes).
fn walk(auth: &[&str], addr: &str, oid: &str) -> BTreeMap<u32, String> {
    let mut args: Vec<&str> = auth.to_vec();
    args.push(addr);
    args.push(oid);
    Snmpd::tool("snmpwalk", &args)
        .lines()
        .filter_map(|l| {
            let (o, v) = l.split_once(' ')?;
            let idx = o.rsplit('.').next()?.parse().ok()?;
            Some((idx, v.trim().trim_matches('"').to_owned()))
        })
        .collect()
}

fn get(auth: &[&str], addr: &str, oid: &str) -> String {
    let mut args: Vec<&str> = auth.to_vec();
    args.push(addr);
    args.push(oid);
    let out = Snmpd::tool("snmpget", &args);
    out.split_once(' ').map(|(_, v)| v.trim().trim_matches('"').to_owned()).unwrap_or_default()
}

#[test]
fn poll_matches_net_snmp_tools_for_v2c_and_v3() {
    let art = artifacts_dir("snmp_poll_matches_tools");
    let snmpd =
        Snmpd::start(&SnmpdConfig { lines: standard_lines(), ..SnmpdConfig::default() }, &art, "snmpd");
    let addr = snmpd.addr();
    let v2c = ["-v2c", "-c", "public"];
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("v2c", vec!["--community", "public"]),
        (
            "v3 authPriv SHA/AES",
            vec!["--user", "authpriv", "--auth-pass", "authpass123", "--priv-pass", "privpass123"],
        ),
        ("v3 authNoPriv", vec!["--user", "authonly", "--auth-proto", "sha", "--auth-pass", "authpass123"]),
        ("v3 noAuthNoPriv", vec!["--user", "noauth"]),
        ("v1", vec!["--version", "1"]),
    ];
    for (name, flags) in cases {
        let before = walk(&v2c, &addr, ".1.3.6.1.2.1.31.1.1.1.6");
        let mut args = vec![addr.as_str()];
        args.extend(flags.iter());
        let (code, p, err) = poll(&args);
        let after = walk(&v2c, &addr, ".1.3.6.1.2.1.31.1.1.1.6");
        assert_eq!(code, 0, "{name}: {err}");
        assert_eq!(p["outcome"], "ok", "{name}: {p}");
        let sys = &p["system"];
        assert_eq!(sys["descr"], get(&v2c, &addr, ".1.3.6.1.2.1.1.1.0"), "{name}");
        assert_eq!(
            format!(".{}", sys["object_id"].as_str().unwrap()),
            get(&v2c, &addr, ".1.3.6.1.2.1.1.2.0"),
            "{name}"
        );
        assert_eq!(sys["name"], "test-switch", "{name}");
        assert_eq!(sys["location"], "Школа 12, серверная", "{name}");
        let names = walk(&v2c, &addr, ".1.3.6.1.2.1.31.1.1.1.1");
        let descrs = walk(&v2c, &addr, ".1.3.6.1.2.1.2.2.1.2");
        let types = walk(&v2c, &addr, ".1.3.6.1.2.1.2.2.1.3");
        let ifs = p["interfaces"].as_array().unwrap();
        assert_eq!(ifs.len(), descrs.len(), "{name}: one entry per ifTable row");
        for i in ifs {
            let idx = u32::try_from(i["index"].as_u64().unwrap()).unwrap();
            assert_eq!(i["descr"], descrs[&idx], "{name} if {idx}");
            assert_eq!(i["if_type"].to_string(), types[&idx], "{name} if {idx}");
            if name == "v1" {
                // SNMPv1 has no Counter64: ifXTable's names come through, counters are 32-bit.
                assert_ne!(i["counter_bits"], 64, "{name}");
                continue;
            }
            assert_eq!(i["name"], names[&idx], "{name} if {idx}");
            assert_eq!(i["counter_bits"], 64, "{name}");
            // Loopback traffic moves the counters: ours lies between two walks.
            let ours = i["in_octets"].as_u64().unwrap();
            let (lo, hi): (u64, u64) = (before[&idx].parse().unwrap(), after[&idx].parse().unwrap());
            assert!(lo <= ours && ours <= hi, "{name} if {idx}: {lo} <= {ours} <= {hi}");
        }
    }
}

/// A UDP socket that reads requests and never answers.
fn blackhole() -> (UdpSocket, String) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = s.local_addr().unwrap().to_string();
    (s, addr)
}

fn polls_by_target(log: &Path) -> BTreeMap<String, Vec<Value>> {
    let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for line in std::fs::read_to_string(log).unwrap_or_default().lines() {
        let r: Value = serde_json::from_str(line).unwrap();
        for s in r["samples"].as_array().unwrap() {
            if let Some(p) = s.get("Snmp") {
                out.entry(p["target"].as_str().unwrap().to_owned()).or_default().push(p.clone());
            }
        }
    }
    out
}

/// An agent of the school (no logind) whose configuration file is `toml`.
fn start_agent(collector: &Collector, token: &str, art: &Path, toml: &str) -> Agent {
    let cfg = art.join("agent.toml");
    std::fs::write(&cfg, toml).unwrap();
    Agent::start(
        AgentSpec::new(collector, SCHOOL, token)
            .env("PARTA_CONFIG", cfg.to_str().unwrap())
            .env("PARTA_LOGIND_BUS", "none"),
        art,
        "agent",
    )
}

#[test]
fn bad_credentials_and_dead_targets_stay_per_target() {
    let art = artifacts_dir("snmp_bad_and_dead_targets");
    let snmpd = Snmpd::start(
        &SnmpdConfig { lines: standard_lines(), ports: 7, ..SnmpdConfig::default() },
        &art,
        "snmpd",
    );
    let dead: Vec<(UdpSocket, String)> = (0..3).map(|_| blackhole()).collect();
    let ch = ClickHouse::start();
    let collector = Collector::start(&ch, "parta", &art);
    let token = collector.create_token(SCHOOL);
    let mut toml = String::from("[snmp]\ninterval = \"2s\"\ntimeout = \"500ms\"\nretries = 1\n");
    let mut good = Vec::new();
    for (i, port) in snmpd.ports.iter().enumerate() {
        let target = format!("127.0.0.1:{port}");
        // Alternate v2c and v3 authPriv among the good targets.
        if i % 2 == 0 {
            toml += &format!(
                "[[snmp.target]]\naddress = \"{target}\"\ncommunity = \"public\"\nlabel = \"Коммутатор {i}\"\nroom = \"20{i}\"\n"
            );
        } else {
            toml += &format!(
                "[[snmp.target]]\naddress = \"{target}\"\nuser = \"authpriv\"\nauth_pass = \"authpass123\"\npriv_pass = \"privpass123\"\n"
            );
        }
        good.push(target);
    }
    for (_, addr) in &dead {
        toml += &format!("[[snmp.target]]\naddress = \"{addr}\"\n");
    }
    // Wrong community, wrong v3 password, unknown user: against a second daemon, one port each.
    let other = Snmpd::start(
        &SnmpdConfig { lines: standard_lines(), ports: 3, ..SnmpdConfig::default() },
        &art,
        "snmpd-2",
    );
    let bad = [
        ("wrong community", format!("127.0.0.1:{}", other.ports[0]), "community = \"wrong\"\n"),
        (
            "wrong password",
            format!("127.0.0.1:{}", other.ports[1]),
            "user = \"authpriv\"\nauth_pass = \"wrongpass1\"\npriv_pass = \"privpass123\"\n",
        ),
        (
            "unknown user",
            format!("127.0.0.1:{}", other.ports[2]),
            "user = \"nobody\"\nauth_pass = \"authpass123\"\n",
        ),
    ];
    for (_, addr, creds) in &bad {
        toml += &format!("[[snmp.target]]\naddress = \"{addr}\"\n{creds}");
    }
    let agent = start_agent(&collector, &token, &art, &toml);
    // First polls come within 2 s (the spread), then every 2 s: run for ~14 s.
    std::thread::sleep(Duration::from_secs(14));
    let by_target = polls_by_target(agent.report_log());
    for t in &good {
        let polls = &by_target[t];
        assert!(polls.len() >= 5, "{t}: {} polls", polls.len());
        let times: Vec<i64> = polls.iter().map(|p| p["polled_at_ms"].as_i64().unwrap()).collect();
        for w in times.windows(2) {
            let gap = w[1] - w[0];
            assert!((1_500..=2_600).contains(&gap), "{t}: polled {gap} ms after the previous poll");
        }
        for p in polls {
            assert_eq!(p["outcome"], "ok", "{t}: {p}");
            assert!(p["duration_ms"].as_u64().unwrap() < 500, "{t}: {p}");
        }
    }
    for (_, addr) in &dead {
        let polls = &by_target[addr];
        assert!(polls.len() >= 3, "{addr}: dead targets are polled on schedule too");
        assert!(polls.iter().all(|p| p["outcome"] == "timeout"), "{addr}");
    }
    let outcome = |addr: &str| by_target[addr][0].clone();
    let p = outcome(&bad[0].1);
    assert_eq!(p["outcome"], "timeout", "{p}");
    assert!(p["error"].as_str().unwrap().contains("community"), "{p}");
    for (what, addr, _) in &bad[1..] {
        let p = outcome(addr);
        assert_eq!(p["outcome"], "auth_failed", "{what}: {p}");
        assert!(p["error"].as_str().unwrap().contains("password"), "{what}: {p}");
    }
    // The collector lists the devices with their polling state.
    let devices: Value = wait_for(Duration::from_secs(20), "SNMP devices in the API", || {
        let (status, body) = collector.get(&format!("/api/v1/devices?school={SCHOOL}"));
        let v: Value = serde_json::from_str(&body).ok()?;
        let n = v["devices"].as_array()?.iter().filter(|d| d.get("snmp").is_some()).count();
        (status == 200 && n == good.len() + dead.len() + bad.len()).then_some(v)
    });
    let snmp: Vec<&Value> =
        devices["devices"].as_array().unwrap().iter().filter(|d| d.get("snmp").is_some()).collect();
    let ok = snmp.iter().filter(|d| d["snmp"]["last_outcome"] == "ok").count();
    assert_eq!(ok, good.len(), "{devices}");
    assert!(snmp.iter().all(|d| d["kind"] == "network"), "{devices}");
    assert!(snmp.iter().any(|d| d["hostname"] == "Коммутатор 0" && d["snmp"]["room"] == "200"), "{devices}");
    drop(agent);
}

fn now_s() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

/// The fake switch/printer: port 1 with 64-bit counters 5 s before a 2⁶⁴ wrap (10 MB/s in,
/// 1 MB/s out, 1 Gbit/s), port 2 with 32-bit counters only, 4 s before a 2³² wrap (5 MB/s,
/// 100 Mbit/s), a page counter printing 2 pages a second, and a chassis serial.
fn device_state(t0: f64, fresh: bool) -> Vec<(&'static str, &'static str, String)> {
    let two64 = 18_446_744_073_709_551_616f64;
    let (in64, out64, in32) = if fresh {
        (0.0, 0.0, 0.0)
    } else {
        (two64 - 5.0 * 10e6, two64 - 5.0 * 1e6, 4_294_967_296.0 - 4.0 * 5e6)
    };
    let rate = |base: f64, per_s: f64| format!("{base},{per_s},{t0}");
    vec![
        (".1.3.6.1.2.1.2.2.1.2.1", "string", "GigabitEthernet1/0/1".into()),
        (".1.3.6.1.2.1.2.2.1.2.2", "string", "FastEthernet0/2".into()),
        (".1.3.6.1.2.1.2.2.1.3.1", "integer", "6".into()),
        (".1.3.6.1.2.1.2.2.1.3.2", "integer", "6".into()),
        (".1.3.6.1.2.1.2.2.1.5.1", "gauge", "1000000000".into()),
        (".1.3.6.1.2.1.2.2.1.5.2", "gauge", "100000000".into()),
        (".1.3.6.1.2.1.2.2.1.8.1", "integer", "1".into()),
        (".1.3.6.1.2.1.2.2.1.8.2", "integer", "1".into()),
        (".1.3.6.1.2.1.2.2.1.10.2", "counter_rate", rate(in32, 5e6)),
        (".1.3.6.1.2.1.2.2.1.16.2", "counter_rate", rate(0.0, 5e5)),
        (".1.3.6.1.2.1.31.1.1.1.1.1", "string", "gi1/0/1".into()),
        (".1.3.6.1.2.1.31.1.1.1.6.1", "counter64_rate", rate(in64, 10e6)),
        (".1.3.6.1.2.1.31.1.1.1.10.1", "counter64_rate", rate(out64, 1e6)),
        (".1.3.6.1.2.1.31.1.1.1.15.1", "gauge", "1000".into()),
        (".1.3.6.1.2.1.31.1.1.1.18.1", "string", "uplink ЕСПД".into()),
        (".1.3.6.1.2.1.43.10.2.1.4.1.1", "counter_rate", rate(if fresh { 48_000.0 } else { 47_000.0 }, 2.0)),
        (".1.3.6.1.2.1.47.1.1.1.1.5.1", "integer", "3".into()),
        (".1.3.6.1.2.1.47.1.1.1.1.11.1", "string", "ES1A000123".into()),
    ]
}

#[test]
fn counter_wraps_and_a_reboot_give_sane_rates_end_to_end() {
    let art = artifacts_dir("snmp_wraps_and_reboot");
    let state = art.join("device.json");
    write_state(&state, &device_state(now_s(), false));
    let mut snmpd = Snmpd::start(
        &SnmpdConfig { lines: standard_lines(), fake_device: Some(state.clone()), ..SnmpdConfig::default() },
        &art,
        "snmpd",
    );
    let ch = ClickHouse::start();
    let collector = Collector::start(&ch, "parta", &art);
    let token = collector.create_token(SCHOOL);
    let target = snmpd.addr();
    // The counters start now, so that they wrap while the agent watches.
    write_state(&state, &device_state(now_s(), false));
    let agent = start_agent(
        &collector,
        &token,
        &art,
        &format!(
            "[snmp]\ninterval = \"2s\"\ntimeout = \"500ms\"\n[[snmp.target]]\naddress = \"{target}\"\nlabel = \"МФУ-коммутатор\"\nroom = \"105\"\n"
        ),
    );
    std::thread::sleep(Duration::from_secs(10));
    // Reboot: the daemon restarts (sysUpTime from 0) and the counters start again.
    snmpd.kill();
    write_state(&state, &device_state(now_s(), true));
    snmpd.restart();
    wait_for(Duration::from_secs(20), "polls after the reboot", || {
        let polls = &polls_by_target(agent.report_log())[&target];
        let after = polls.iter().skip_while(|p| !p["system"]["rebooted"].as_bool().unwrap_or(false)).count();
        (after >= 4).then_some(())
    });
    let polls = polls_by_target(agent.report_log()).remove(&target).unwrap();
    let mut wrapped = [false; 2];
    let mut reboot_seen = false;
    let mut measured = 0;
    for w in polls.windows(2) {
        let (prev, cur) = (&w[0], &w[1]);
        if cur["outcome"] != "ok" {
            continue; // the poll that hit the restarting daemon
        }
        let rebooted = cur["system"]["rebooted"].as_bool().unwrap();
        for (k, (want_in, want_out)) in [(8e7, 8e6), (4e7, 4e6)].into_iter().enumerate() {
            let i = &cur["interfaces"][k];
            let note = i["rate"].as_str().unwrap();
            if rebooted {
                assert_eq!(note, "reboot", "{cur}");
                assert!(i["in_bps"].is_null() && i["out_bps"].is_null(), "no rate across a reboot: {cur}");
                reboot_seen = true;
                continue;
            }
            if note == "reboot" {
                // The daemon restarted in the middle of this poll: the system group came from
                // the old one, the table from the new one.
                assert!(i["in_bps"].is_null() && i["out_bps"].is_null(), "no rate across a reboot: {cur}");
                reboot_seen = true;
                continue;
            }
            if note != "measured" {
                assert!(
                    prev["outcome"] != "ok" || prev["system"].is_null(),
                    "only after a failed poll: {cur}"
                );
                continue;
            }
            measured += 1;
            let (rin, rout) = (i["in_bps"].as_f64().unwrap(), i["out_bps"].as_f64().unwrap());
            assert!((rin - want_in).abs() / want_in < 0.05, "if {k}: rx {rin} bit/s, want {want_in}: {cur}");
            assert!(
                (rout - want_out).abs() / want_out < 0.05,
                "if {k}: tx {rout} bit/s, want {want_out}: {cur}"
            );
            if i["in_octets"].as_u64().unwrap() < prev["interfaces"][k]["in_octets"].as_u64().unwrap() {
                wrapped[k] = true;
            }
        }
    }
    assert!(reboot_seen, "the reboot was detected");
    assert_eq!(wrapped, [true, true], "both the 64-bit and the 32-bit counter wrapped between polls");
    assert!(measured >= 10, "{measured} measured rates");
    let first = &polls[0];
    assert_eq!(first["kind"], "printer", "page counters make the generic profile's device a printer");
    assert_eq!(first["serial"], "ES1A000123");
    assert_eq!(first["interfaces"][0]["counter_bits"], 64);
    assert_eq!(first["interfaces"][1]["counter_bits"], 32);
    assert_eq!(first["interfaces"][0]["alias"], "uplink ЕСПД");

    // Into ClickHouse and out of the API.
    let device = first["device_id"].as_str().unwrap().to_owned();
    let ifs: Value = wait_for(Duration::from_secs(20), "interfaces in the API", || {
        let (status, body) = collector.get(&format!("/api/v1/devices/{device}/interfaces?step=600"));
        let v: Value = serde_json::from_str(&body).ok()?;
        (status == 200 && v["interfaces"].as_array()?.len() == 2).then_some(v)
    });
    for i in ifs["interfaces"].as_array().unwrap() {
        let speed = i["speed_mbps"].as_f64().unwrap() * 1e6;
        let max = i["rx_bps_max"].as_f64().unwrap();
        assert!(max > 0.0 && max <= speed, "peak {max} within the speed {speed}: {ifs}");
        assert_eq!(i["status_last"], "up");
        for p in i["points"].as_array().unwrap() {
            if let Some(u) = p["rx_util_pct"].as_f64() {
                assert!((0.0..=100.0).contains(&u), "{p}");
            }
        }
    }
    let (status, body) = collector.get(&format!("/api/v1/devices/{device}/pages"));
    assert_eq!(status, 200, "{body}");
    let pages: Value = serde_json::from_str(&body).unwrap();
    let total = pages["total_pages"].as_u64().unwrap();
    // ~2 pages a second for the ~8 s before the reboot, and more after it.
    assert!(total >= 10, "{pages}");
    let (status, body) = collector.get(&format!("/api/v1/devices/{device}"));
    assert_eq!(status, 200, "{body}");
    let detail: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(detail["kind"], "printer");
    assert_eq!(detail["serial"], "ES1A000123");
    assert_eq!(detail["room"], "105");
    assert_eq!(detail["inventory"]["sys_name"], "test-switch");
    // Bad parameters are refused with a reason.
    let (status, body) = collector.get(&format!("/api/v1/devices/{device}/interfaces?step=5"));
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("step"), "{body}");
}

// --- malformed replies -------------------------------------------------------------------

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    let n = content.len();
    if n < 128 {
        v.push(u8::try_from(n).unwrap());
    } else {
        let bytes = u32::try_from(n).unwrap().to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        v.push(0x80 | u8::try_from(4 - skip).unwrap());
        v.extend(&bytes[skip..]);
    }
    v.extend(content);
    v
}

fn int(tag: u8, n: i64) -> Vec<u8> {
    let bytes = n.to_be_bytes();
    let mut start = 0;
    while start < 7
        && ((bytes[start] == 0 && bytes[start + 1] & 0x80 == 0)
            || (bytes[start] == 0xff && bytes[start + 1] & 0x80 != 0))
    {
        start += 1;
    }
    tlv(tag, &bytes[start..])
}

fn oid(arcs: &[u32]) -> Vec<u8> {
    let mut body = vec![u8::try_from(arcs[0] * 40 + arcs[1]).unwrap()];
    for &a in &arcs[2..] {
        let mut chunk = vec![u8::try_from(a & 0x7f).unwrap()];
        let mut rest = a >> 7;
        while rest > 0 {
            chunk.push(u8::try_from(rest & 0x7f).unwrap() | 0x80);
            rest >>= 7;
        }
        chunk.reverse();
        body.extend(chunk);
    }
    tlv(0x06, &body)
}

fn response(req_id: i32, varbinds: &[(Vec<u32>, Vec<u8>)]) -> Vec<u8> {
    let vbs: Vec<u8> = varbinds.iter().flat_map(|(o, v)| tlv(0x30, &[oid(o), v.clone()].concat())).collect();
    let pdu =
        tlv(0xa2, &[int(0x02, i64::from(req_id)), int(0x02, 0), int(0x02, 0), tlv(0x30, &vbs)].concat());
    tlv(0x30, &[int(0x02, 1), tlv(0x04, b"public"), pdu].concat())
}

const SYS: [u32; 7] = [1, 3, 6, 1, 2, 1, 1];

fn good_system(req_id: i32) -> Vec<u8> {
    let v = |n: u32| [&SYS[..], &[n, 0]].concat();
    response(
        req_id,
        &[
            (v(1), tlv(0x04, b"broken switch")),
            (v(2), oid(&[1, 3, 6, 1, 4, 1, 35265, 1])),
            (v(3), int(0x43, 4242)),
            (v(5), tlv(0x04, b"sw")),
            (v(6), tlv(0x04, b"")),
        ],
    )
}

/// Answers every request of one `snmp poll` with `reply(request id, is GETBULK)`.
fn responder(reply: impl Fn(i32, bool) -> Option<Vec<u8>> + Send + 'static) -> String {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut buf = [0u8; 65_536];
        sock.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        while let Ok((n, peer)) = sock.recv_from(&mut buf) {
            let Ok(pdu) = snmp2::Pdu::from_bytes(&buf[..n]) else { continue };
            let bulk = pdu.message_type == snmp2::MessageType::GetBulkRequest;
            if let Some(r) = reply(pdu.req_id, bulk) {
                let _ = sock.send_to(&r, peer);
            }
        }
    });
    addr
}

#[test]
fn malformed_replies_are_errors_never_panics() {
    let ifdescr = [1u32, 3, 6, 1, 2, 1, 2, 2, 1, 2];
    type Reply = Box<dyn Fn(i32, bool) -> Option<Vec<u8>> + Send>;
    let cases: Vec<(&str, Reply, &[&str])> = vec![
        (
            "garbage",
            Box::new(|_, _| Some(b"\x30\x82\xff\xff not snmp at all".to_vec())),
            &["malformed", "timeout"],
        ),
        (
            "truncated",
            Box::new(|id, _| {
                let r = good_system(id);
                Some(r[..r.len() / 2].to_vec())
            }),
            &["malformed", "timeout"],
        ),
        (
            "another request id",
            Box::new(|id, _| Some(good_system(id.wrapping_add(7)))),
            &["malformed", "timeout"],
        ),
        (
            "uptime of the wrong type",
            Box::new(|id, _| Some(response(id, &[([&SYS[..], &[3, 0]].concat(), tlv(0x04, b"yesterday"))]))),
            &["malformed"],
        ),
        (
            "no uptime",
            Box::new(|id, _| Some(response(id, &[([&SYS[..], &[1, 0]].concat(), tlv(0x04, b"x"))]))),
            &["malformed"],
        ),
        (
            "a walk that goes backwards",
            Box::new(move |id, bulk| {
                if !bulk {
                    return Some(good_system(id));
                }
                // Every GETBULK answers the same two rows, the second before the first.
                let row = |i: u32| ([&ifdescr[..], &[i]].concat(), tlv(0x04, b"port"));
                Some(response(id, &[row(5), row(3)]))
            }),
            &["partial"],
        ),
        (
            "a walk that never ends",
            Box::new(move |id, bulk| {
                if !bulk {
                    return Some(good_system(id));
                }
                // Endless, increasing ifDescr rows: the walk limit must stop it.
                let base = u32::try_from(id.rem_euclid(1 << 20)).unwrap() * 64;
                let rows: Vec<(Vec<u32>, Vec<u8>)> =
                    (0..40).map(|k| ([&ifdescr[..], &[base + k]].concat(), tlv(0x04, b"p"))).collect();
                Some(response(id, &rows))
            }),
            &["partial", "ok"],
        ),
    ];
    for (name, reply, allowed) in cases {
        let addr = responder(reply);
        let started = Instant::now();
        let (code, p, err) = poll(&[&addr, "--timeout", "300ms", "--retries", "0"]);
        assert!(code == 0 || code == 1, "{name}: exit {code} (a panic?): {err}");
        let outcome = p["outcome"].as_str().unwrap_or_default().to_owned();
        assert!(allowed.contains(&outcome.as_str()), "{name}: outcome {outcome}: {p} {err}");
        assert!(!p["error"].as_str().unwrap_or_default().is_empty() || outcome == "ok", "{name}: {p}");
        assert!(started.elapsed() < Duration::from_secs(60), "{name} took {:?}", started.elapsed());
    }
}
