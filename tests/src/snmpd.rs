//! A private net-snmp `snmpd` (Debian package) on loopback for one test, and a scripted "fake
//! device" served through snmpd's `pass_persist` hook, so that tests control counters (wraps,
//! resets) and tables snmpd does not implement (Printer-MIB, ENTITY-MIB).
//!
//! A recording of a real device (snmpsim's `.snmprec`: `oid|type|value` lines, as LibreNMS
//! and others publish them) is served by the same script, the whole OID tree from the
//! recording and nothing of snmpd's own.
//!
//! The fake device reads a JSON file on every request: a list of `[oid, type, value]` where
//! `type` is a net-snmp pass type (`integer`, `string`, `counter`, `counter64`, `gauge`, …) or
//! `counter64_rate` / `counter_rate` with the value `"base,bytes_per_s,t0"`: a counter that
//! grows at a constant rate from `base` at unix time `t0`, modulo 2⁶⁴ or 2³².

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::procs::Proc;
use crate::util::{free_udp_port, wait_for};

/// The pass_persist script: a fake device from a JSON state file (read on every request, so
/// that tests change it and counters grow with time), or a recording from an `.snmprec` file
/// (loaded once). snmprec types: 2 Integer32, 4 OCTET STRING (`4x`: hex), 6 OID, 64 IpAddress,
/// 65 Counter32, 66 Gauge32, 67 TimeTicks, 70 Counter64; others (Null, Opaque) are left out.
const DEVICE_SCRIPT: &str = r##"#!/usr/bin/env python3
import sys, json, time, bisect
source = sys.argv[1]
def key(o): return tuple(int(x) for x in o.strip('.').split('.'))
def hexed(raw): return " ".join("%02X" % b for b in raw)
SNMPREC = {"2": "integer", "4": "string", "6": "objectid", "64": "ipaddress", "65": "counter",
           "66": "gauge", "67": "timeticks", "70": "counter64"}
def recording():
    rows = {}
    for line in open(source, encoding="utf-8", errors="surrogateescape"):
        line = line.rstrip("\n")
        if not line or line.startswith("#") or line.count("|") < 2: continue
        oid, tag, value = line.split("|", 2)
        t = SNMPREC.get(tag.rstrip("xe"))
        if t is None: continue
        if tag.endswith("x"):
            raw = bytes.fromhex(value)
            if t == "string": t, value = "octet", hexed(raw)
            else: value = raw.decode("latin-1")
        elif t == "string" and (value == "" or any(ord(c) < 32 for c in value)):
            t, value = "octet", hexed(value.encode("utf-8", "surrogateescape"))
        try: rows[key(oid)] = (oid, t, value)
        except ValueError: pass
    return rows
def state():
    try:
        with open(source) as f: d = json.load(f)
    except Exception:
        d = []
    return {key(o): (o, t, v) for o, t, v in d}
STATIC = recording() if source.endswith(".snmprec") else None
STATIC_KEYS = sorted(STATIC) if STATIC is not None else None
def value(t, v):
    if t in ("counter64_rate", "counter_rate"):
        base, rate, t0 = (float(x) for x in str(v).split(","))
        mod = 2**64 if t == "counter64_rate" else 2**32
        return ("counter64" if t == "counter64_rate" else "counter"), str(int(base + rate * (time.time() - t0)) % mod)
    return t, str(v)
def out(*lines):
    sys.stdout.write("\n".join(lines) + "\n"); sys.stdout.flush()
while True:
    line = sys.stdin.readline()
    if not line: break
    cmd = line.strip()
    if cmd == "PING": out("PONG"); continue
    if cmd in ("get", "getnext"):
        k = key(sys.stdin.readline().strip())
        rows, keys = (STATIC, STATIC_KEYS) if STATIC is not None else (lambda r: (r, sorted(r)))(state())
        if cmd == "get": hit = rows.get(k)
        else:
            i = bisect.bisect_right(keys, k)
            hit = rows[keys[i]] if i < len(keys) else None
        if hit:
            t, v = value(hit[1], hit[2]); out("." + hit[0].strip('.'), t, v)
        else: out("NONE")
        continue
    if cmd == "set":
        sys.stdin.readline(); sys.stdin.readline(); out("not-writable")
"##;

/// Subtrees the fake device serves (snmpd's own IF-MIB is switched off when it does).
pub const FAKE_SUBTREES: [&str; 4] =
    [".1.3.6.1.2.1.2", ".1.3.6.1.2.1.31", ".1.3.6.1.2.1.43", ".1.3.6.1.2.1.47"];

/// How to configure the daemon.
#[derive(Debug, Clone, Default)]
pub struct SnmpdConfig {
    /// Extra `snmpd.conf` lines (communities, users, sysLocation…).
    pub lines: Vec<String>,
    /// Serve the fake device from this JSON state file.
    pub fake_device: Option<PathBuf>,
    /// Serve this `.snmprec` recording as the whole device (only v2c communities then: snmpd's
    /// own modules, SNMPv3 users included, are not loaded).
    pub recording: Option<PathBuf>,
    /// Number of UDP ports to listen on (all reach the same agent).
    pub ports: usize,
    /// Run inside this network namespace, listening on this address of it (default: the host's
    /// loopback).
    pub netns: Option<(String, String)>,
}

/// The standard v2c/v3 set-up: community `public`; users `authpriv` (SHA/AES),
/// `authonly` (SHA), `noauth`.
pub fn standard_lines() -> Vec<String> {
    [
        "rocommunity public 127.0.0.1",
        "createUser authpriv SHA \"authpass123\" AES \"privpass123\"",
        "createUser authonly SHA \"authpass123\"",
        "createUser noauth",
        "rouser authpriv priv",
        "rouser authonly auth",
        "rouser noauth noauth",
        "sysLocation Школа 12, серверная",
        "sysName test-switch",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// A running snmpd.
pub struct Snmpd {
    process: Proc,
    dir: tempfile::TempDir,
    /// Ports it listens on (on `ip`).
    pub ports: Vec<u16>,
    /// Address it listens on (127.0.0.1 unless in a namespace).
    pub ip: String,
    netns: Option<String>,
    fake: bool,
    recorded: bool,
}

impl Snmpd {
    /// Starts snmpd and waits until it answers.
    pub fn start(cfg: &SnmpdConfig, artifacts: &Path, name: &str) -> Self {
        let dir = tempfile::Builder::new().prefix("parta-snmpd-").tempdir().unwrap();
        let (netns, ip) = match &cfg.netns {
            Some((ns, ip)) => (Some(ns.clone()), ip.clone()),
            None => (None, "127.0.0.1".to_owned()),
        };
        // A namespace of the test's own has every port free.
        let ports: Vec<u16> = match netns {
            Some(_) => (0..cfg.ports.max(1)).map(|i| 20_000 + u16::try_from(i).unwrap()).collect(),
            None => (0..cfg.ports.max(1)).map(|_| free_udp_port()).collect(),
        };
        // No per-request "Connection from" lines in the log.
        let mut conf = vec!["dontLogTCPWrappersConnects yes".to_owned()];
        conf.extend(cfg.lines.iter().cloned());
        if let Some(state) = &cfg.fake_device {
            let script = dir.path().join("fake-device.py");
            std::fs::write(&script, DEVICE_SCRIPT).unwrap();
            for tree in FAKE_SUBTREES {
                conf.push(format!(
                    "pass_persist {tree} /usr/bin/python3 {} {}",
                    script.display(),
                    state.display()
                ));
            }
        }
        if let Some(recording) = &cfg.recording {
            let script = dir.path().join("recorded-device.py");
            std::fs::write(&script, DEVICE_SCRIPT).unwrap();
            conf.push(format!(
                "pass_persist .1.3.6.1 /usr/bin/python3 {} {}",
                script.display(),
                recording.display()
            ));
        }
        std::fs::write(dir.path().join("snmpd.conf"), conf.join("\n") + "\n").unwrap();
        let mut s = Self {
            process: Proc::new("snmpd", artifacts.join(format!("{name}.snmpd.log"))),
            dir,
            ports,
            ip,
            netns,
            fake: cfg.fake_device.is_some(),
            recorded: cfg.recording.is_some(),
        };
        s.restart();
        s
    }

    fn command(&self) -> Command {
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "/usr/sbin/snmpd"]);
                c
            }
            None => Command::new("/usr/sbin/snmpd"),
        };
        cmd.env("SNMP_PERSISTENT_DIR", self.dir.path().join("persist"))
            .env("MIBS", "")
            .args(["-f", "-Lo", "-C", "-r", "-c"])
            .arg(self.dir.path().join("snmpd.conf"));
        if self.recorded {
            // Only the recording answers: no system group or tables of snmpd's own.
            cmd.args(["-I", "pass_persist,vacm_conf"]);
        } else if self.fake {
            cmd.args(["-I", "-ifTable,ifXTable,interfaces"]);
        }
        // Listening addresses as arguments: an `agentAddress` line is too short for hundreds.
        cmd.args(self.ports.iter().map(|p| format!("udp:{}:{p}", self.ip)));
        cmd
    }

    /// (Re)starts the daemon: its sysUpTime starts again from 0, like a rebooted device.
    pub fn restart(&mut self) {
        self.process.spawn(self.command());
        let addr = self.addr();
        // A GETNEXT into the system group: a recording may lack sysUpTime itself.
        wait_for(Duration::from_secs(20), "snmpd to answer", || {
            let out = Command::new("snmpgetnext")
                .args(["-v2c", "-c", "public", "-t", "0.3", "-r", "0", "-On"])
                .arg(&addr)
                .arg(".1.3.6.1.2.1.1")
                .output()
                .ok()?;
            // A value from the system group, not "no more variables".
            (out.status.success() && out.stdout.starts_with(b".1.3.6.1.2.1.1.")).then_some(())
        });
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Stops the daemon (SIGKILL).
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// `ip:port` of the first port.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.ip, self.ports[0])
    }

    /// Runs a net-snmp command-line tool (`snmpget`, `snmpwalk`) with numeric output.
    pub fn tool(tool: &str, args: &[&str]) -> String {
        let out = Command::new(tool).args(["-On", "-Oe", "-Ot", "-Oq"]).args(args).output().unwrap();
        assert!(out.status.success(), "{tool} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// Writes the fake device's state atomically.
pub fn write_state(path: &Path, rows: &[(&str, &str, String)]) {
    let json = serde_json::to_string(&rows.iter().map(|(o, t, v)| (o, t, v)).collect::<Vec<_>>()).unwrap();
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, json).unwrap();
    std::fs::rename(tmp, path).unwrap();
}

/// A piece of school gear on a private snmpd: one gigabit port (`ge-0/0/1`) with traffic, the
/// ENTITY-MIB serial `serial`, and for a printer a page counter that grows 50 pages a second.
pub fn fake_gear(art: &Path, name: &str, serial: &str, printer: bool) -> Snmpd {
    fake_gear_with(art, name, serial, printer, &[])
}

/// As [`fake_gear`], with extra `snmpd.conf` lines (another community, say).
pub fn fake_gear_with(art: &Path, name: &str, serial: &str, printer: bool, extra: &[String]) -> Snmpd {
    let state = art.join(format!("{name}.json"));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let mut rows: Vec<(&str, &str, String)> = vec![
        (".1.3.6.1.2.1.2.2.1.2.1", "string", "port 1".into()),
        (".1.3.6.1.2.1.2.2.1.3.1", "integer", "6".into()),
        (".1.3.6.1.2.1.2.2.1.5.1", "gauge", "1000000000".into()),
        (".1.3.6.1.2.1.2.2.1.8.1", "integer", "1".into()),
        (".1.3.6.1.2.1.2.2.1.10.1", "counter_rate", format!("0,100000,{now}")),
        (".1.3.6.1.2.1.2.2.1.16.1", "counter_rate", format!("0,10000,{now}")),
        (".1.3.6.1.2.1.31.1.1.1.1.1", "string", "ge-0/0/1".into()),
        (".1.3.6.1.2.1.47.1.1.1.1.5.1", "integer", "3".into()),
        (".1.3.6.1.2.1.47.1.1.1.1.11.1", "string", serial.into()),
    ];
    if printer {
        rows.push((".1.3.6.1.2.1.43.10.2.1.4.1.1", "counter_rate", format!("12000,50,{now}")));
    }
    write_state(&state, &rows);
    let mut lines = standard_lines();
    lines.extend(extra.iter().cloned());
    Snmpd::start(&SnmpdConfig { lines, fake_device: Some(state), ..SnmpdConfig::default() }, art, name)
}
