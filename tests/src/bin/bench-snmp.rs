//! SNMP poller footprint: a real `parta-agent` polling many targets (default 500) next to
//! Debian's `prometheus-snmp-exporter` polling the same targets for the same OIDs, in the same run.
//!
//! The targets: one net-snmp `snmpd` in a network namespace of the bench's own, listening on one
//! UDP port per target; the namespace has 20 interfaces (loopback, the veth to the host and nine
//! veth pairs), so every target answers a 20-row IF-MIB. Both pollers run saturated, one after
//! the other: the agent with a 1 s interval for every target (so each target is polled again as
//! soon as its turn comes) and 32 polls at a time; the exporter scraped by 32 threads round-robin
//! over the targets, as a Prometheus would with a short scrape interval. The exporter reads
//! what the agent reads: the system group, IF-MIB ifTable/ifXTable columns, ENTITY-MIB serials,
//! Printer-MIB and HOST-RESOURCES printer columns, with ifName as a label.
//!
//! Figures per poller: polls in the measured window, cycle time (time for every target to be
//! polled once), CPU per poll, RSS and peak RSS, and the snmpd CPU each poll costs (the load
//! put on the device). The agent's figures include everything it does with the polls: encoding,
//! the durable spool and the QUIC uplink to a real collector; the exporter's include rendering
//! the metrics text only (a Prometheus server storing them is not counted).
//!
//! `cargo run --release -p parta-tests --bin bench-snmp -- [SECONDS] [TARGETS]`
//! (default 120 s per poller, 500 targets). Needs root (network namespace). Goal from the
//! SNMP issue: lower CPU and memory than prometheus-snmp-exporter.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::fmt::Write as _;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parta_agent::snmp::client::dotted;
use parta_agent::snmp::mib;
use parta_tests::clickhouse::ClickHouse;
use parta_tests::netns::NetNs;
use parta_tests::procs::{Agent, AgentSpec, Collector, Proc};
use parta_tests::snmpd::{Snmpd, SnmpdConfig};
use parta_tests::util::{artifacts_dir, cpu_seconds, footprint, free_tcp_port};

const EXPORTER: &str = "/usr/bin/prometheus-snmp-exporter";
const CONCURRENCY: usize = 32;
/// Time for a poller to reach its steady state before the window opens.
const WARM_UP: Duration = Duration::from_secs(20);

fn now_ms() -> i64 {
    i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

/// What one poller did in the measured window.
struct Figures {
    name: &'static str,
    polls: u64,
    window: f64,
    cpu: f64,
    rss_kib: u64,
    peak_kib: u64,
    snmpd_cpu: f64,
}

impl Figures {
    fn cycle(&self, targets: usize) -> f64 {
        self.window * targets as f64 / self.polls.max(1) as f64
    }

    fn cpu_per_poll_ms(&self) -> f64 {
        self.cpu * 1000.0 / self.polls.max(1) as f64
    }

    fn print(&self, targets: usize) {
        println!(
            "{:<14} {:>7} polls in {:.0} s; cycle over {targets} targets {:.2} s; CPU {:.2} s = {:.3} ms/poll; RSS {:.1} MiB (peak {:.1} MiB); snmpd CPU {:.3} ms/poll",
            self.name,
            self.polls,
            self.window,
            self.cycle(targets),
            self.cpu,
            self.cpu_per_poll_ms(),
            self.rss_kib as f64 / 1024.0,
            self.peak_kib as f64 / 1024.0,
            self.snmpd_cpu * 1000.0 / self.polls.max(1) as f64,
        );
    }
}

/// Exporter metric names and types of the agent's IF-MIB columns, in the order of
/// [`mib::IF_COLUMNS`] (the OIDs come from there, so both pollers read the same).
const IF_METRICS: [(&str, &str); 13] = [
    ("ifDescr", "DisplayString"),
    ("ifType", "gauge"),
    ("ifSpeed", "gauge"),
    ("ifAdminStatus", "gauge"),
    ("ifOperStatus", "gauge"),
    ("ifInOctets", "counter"),
    ("ifOutOctets", "counter"),
    ("ifName", "DisplayString"),
    ("ifHCInOctets", "counter"),
    ("ifHCOutOctets", "counter"),
    ("ifHighSpeed", "gauge"),
    ("ifAlias", "DisplayString"),
    ("ifCounterDiscontinuityTime", "gauge"),
];

/// The exporter's `snmp.yml` (0.21 format: credentials inside the module), reading what the
/// agent's generic profile reads: the system scalars, the IF-MIB, ENTITY-MIB and printer
/// columns of `agent/src/snmp/mib.rs`, with ifName as a label.
fn exporter_config() -> String {
    let column = |arcs: &[u32]| dotted(arcs);
    // A scalar's metric OID is the object's, without the `.0` instance.
    let object = |arcs: &[u32]| dotted(&arcs[..arcs.len() - 1]);
    let mut y = String::from(
        "parta:\n  version: 2\n  auth:\n    community: public\n  timeout: 2s\n  retries: 1\n  max_repetitions: 50\n  get:\n",
    );
    for oid in mib::SYSTEM {
        writeln!(y, "  - {}", column(oid)).unwrap();
    }
    y += "  walk:\n";
    for oid in mib::IF_COLUMNS.iter().chain(&mib::ENTITY_COLUMNS).chain(&mib::PRINTER_COLUMNS) {
        writeln!(y, "  - {}", column(oid)).unwrap();
    }
    y += "  metrics:\n";
    for (name, oid, kind) in [
        ("sysDescr", mib::SYS_DESCR, "DisplayString"),
        ("sysUpTime", mib::SYS_UPTIME, "gauge"),
        ("sysName", mib::SYS_NAME, "DisplayString"),
        ("sysLocation", mib::SYS_LOCATION, "DisplayString"),
    ] {
        writeln!(y, "  - name: {name}\n    oid: {}\n    type: {kind}", object(oid)).unwrap();
    }
    let if_name = column(mib::IF_COLUMNS[7]);
    for ((name, kind), oid) in IF_METRICS.iter().zip(mib::IF_COLUMNS) {
        writeln!(
            y,
            "  - name: {name}\n    oid: {}\n    type: {kind}\n    indexes:\n    - labelname: ifIndex\n      type: gauge\n    lookups:\n    - labels: [ifIndex]\n      labelname: ifName\n      oid: {if_name}\n      type: DisplayString",
            column(oid)
        )
        .unwrap();
    }
    for (name, oid, kind, index) in [
        ("entPhysicalClass", mib::ENTITY_COLUMNS[0], "gauge", "entPhysicalIndex"),
        ("entPhysicalSerialNum", mib::ENTITY_COLUMNS[1], "DisplayString", "entPhysicalIndex"),
        ("hrDeviceStatus", mib::PRINTER_COLUMNS[2], "gauge", "hrDeviceIndex"),
        ("hrPrinterStatus", mib::PRINTER_COLUMNS[3], "gauge", "hrDeviceIndex"),
    ] {
        writeln!(
            y,
            "  - name: {name}\n    oid: {}\n    type: {kind}\n    indexes:\n    - labelname: {index}\n      type: gauge",
            column(oid)
        )
        .unwrap();
    }
    writeln!(
        y,
        "  - name: prtMarkerLifeCount\n    oid: {}\n    type: counter\n    indexes:\n    - labelname: hrDeviceIndex\n      type: gauge\n    - labelname: prtMarkerIndex\n      type: gauge",
        column(mib::PRINTER_COLUMNS[0])
    )
    .unwrap();
    y
}

fn agent_phase(
    snmpd: &Snmpd,
    seconds: u64,
    art: &std::path::Path,
    interfaces: usize,
) -> Result<Figures, String> {
    let ch = ClickHouse::start();
    let collector = Collector::start_with(&ch, "bench", art, &[("PARTA_LOG_LEVEL", "warn")]);
    let token = collector.create_token("74-0012");
    let mut toml =
        format!("[snmp]\ninterval = \"1s\"\ntimeout = \"2s\"\nretries = 1\nconcurrency = {CONCURRENCY}\n");
    for (i, port) in snmpd.ports.iter().enumerate() {
        writeln!(
            toml,
            "[[snmp.target]]\naddress = \"{}:{port}\"\ncommunity = \"public\"\nlabel = \"Коммутатор {i}\"\nroom = \"{}\"",
            snmpd.ip,
            100 + i % 300
        )
        .unwrap();
    }
    let cfg = art.join("agent.toml");
    std::fs::write(&cfg, toml).unwrap();
    let mut spec = AgentSpec::new(&collector, "74-0012", &token)
        .env("PARTA_CONFIG", cfg.to_str().unwrap())
        .env("PARTA_LOGIND_BUS", "none")
        .env("PARTA_LOG_LEVEL", "warn");
    // Host reports once a minute: the figures are about SNMP.
    spec.interval = "60s".into();
    spec.report_log = false;
    let agent = Agent::start(spec, art, "agent");
    std::thread::sleep(WARM_UP);
    let (from_ms, cpu0, snmpd0) = (now_ms(), cpu_seconds(agent.pid()), cpu_seconds(snmpd.pid()));
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    let (to_ms, window) = (now_ms(), started.elapsed().as_secs_f64());
    let (rss, peak, cpu1) = footprint(agent.pid());
    let snmpd1 = cpu_seconds(snmpd.pid());
    // Every poll of the window must have reached ClickHouse before it is counted: polls after
    // the window have arrived, and the interface rows (a separate table) match the polls.
    let window_sql = format!("polled_at_ms >= {from_ms} AND polled_at_ms < {to_ms}");
    let count = |sql: &str| ch.query_u64(&sql.replace("{w}", &window_sql));
    let deadline = Instant::now() + Duration::from_secs(120);
    let (polls, rows) = loop {
        let after =
            ch.query_u64(&format!("SELECT count() FROM bench.snmp_polls WHERE polled_at_ms >= {to_ms}"));
        let polls = count("SELECT count() FROM bench.snmp_polls WHERE {w}");
        let rows = count("SELECT count() FROM bench.snmp_interfaces WHERE {w}");
        if after > 0 && rows == polls * interfaces as u64 {
            break (polls, rows);
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "the window's polls did not all reach ClickHouse: {polls} polls, {rows} interface rows (expected {interfaces} per poll)"
            ));
        }
        std::thread::sleep(Duration::from_secs(2));
    };
    let ok = count("SELECT count() FROM bench.snmp_polls WHERE {w} AND outcome = 'ok'");
    let targets = count("SELECT uniqExact(device_id) FROM bench.snmp_polls WHERE {w}");
    if ok != polls || targets != snmpd.ports.len() as u64 {
        return Err(format!(
            "{ok} of {polls} polls succeeded, {targets} targets of {} polled",
            snmpd.ports.len()
        ));
    }
    println!("parta-agent: {polls} polls and {rows} interface rows of the window in ClickHouse, all 'ok'");
    drop(agent);
    Ok(Figures {
        name: "parta-agent",
        polls,
        window,
        cpu: cpu1 - cpu0,
        rss_kib: rss,
        peak_kib: peak,
        snmpd_cpu: snmpd1 - snmpd0,
    })
}

fn exporter_phase(
    snmpd: &Snmpd,
    seconds: u64,
    art: &std::path::Path,
    interfaces: usize,
) -> Result<Figures, String> {
    let config = art.join("snmp.yml");
    std::fs::write(&config, exporter_config()).unwrap();
    let port = free_tcp_port();
    let mut exporter = Proc::new("snmp-exporter", art.join("snmp-exporter.log"));
    let mut cmd = Command::new(EXPORTER);
    cmd.arg(format!("--config.file={}", config.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=warn")
        .stdin(Stdio::null());
    exporter.spawn(cmd);
    let url = format!("http://127.0.0.1:{port}");
    let targets: Arc<Vec<String>> = Arc::new(
        snmpd.ports.iter().map(|p| format!("{url}/snmp?module=parta&target={}:{p}", snmpd.ip)).collect(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while parta_tests::util::http_get(&format!("{url}/metrics")).0 != 200 {
        if Instant::now() >= deadline {
            return Err(format!("the exporter did not start; see {}", art.display()));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let (next, done, failed, stop) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let scrapers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (targets, next, done, failed, stop) = (
                Arc::clone(&targets),
                Arc::clone(&next),
                Arc::clone(&done),
                Arc::clone(&failed),
                Arc::clone(&stop),
            );
            std::thread::spawn(move || {
                let agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .timeout_global(Some(Duration::from_secs(30)))
                    .build()
                    .new_agent();
                while !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed) % targets.len();
                    let body = agent
                        .get(&targets[i])
                        .call()
                        .ok()
                        .filter(|r| r.status() == 200)
                        .and_then(|mut r| r.body_mut().read_to_string().ok());
                    // A scrape counts when it carries every interface's 64-bit counter.
                    let complete = body.is_some_and(|b| {
                        b.lines().filter(|l| l.starts_with("ifHCInOctets{")).count() == interfaces
                    });
                    if complete { &done } else { &failed }.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(WARM_UP);
    let pid = exporter.pid();
    let (cpu0, snmpd0, done0) = (cpu_seconds(pid), cpu_seconds(snmpd.pid()), done.load(Ordering::Relaxed));
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    let window = started.elapsed().as_secs_f64();
    let (rss, peak, cpu1) = footprint(pid);
    let snmpd1 = cpu_seconds(snmpd.pid());
    let polls = done.load(Ordering::Relaxed) - done0;
    stop.store(true, Ordering::Relaxed);
    for s in scrapers {
        s.join().unwrap();
    }
    let failed = failed.load(Ordering::Relaxed);
    if failed > 0 {
        return Err(format!("{failed} exporter scrapes failed or were incomplete; see {}", art.display()));
    }
    Ok(Figures {
        name: "snmp_exporter",
        polls,
        window,
        cpu: cpu1 - cpu0,
        rss_kib: rss,
        peak_kib: peak,
        snmpd_cpu: snmpd1 - snmpd0,
    })
}

fn main() {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().map_or(120, |a| a.parse().expect("SECONDS"));
    let targets: usize = args.next().map_or(500, |a| a.parse().expect("TARGETS"));
    if !std::path::Path::new(EXPORTER).exists() {
        println!("note: {EXPORTER} not installed (scripts/install-deps.sh installs it); no baseline");
    }
    let art = artifacts_dir("bench-snmp");
    let ns = NetNs::create();
    ns.add_interfaces(9);
    let snmpd = Snmpd::start(
        &SnmpdConfig {
            lines: vec![format!("rocommunity public {}", ns.host_ip)],
            ports: targets,
            netns: Some((ns.name.clone(), ns.ns_ip.clone())),
            ..SnmpdConfig::default()
        },
        &art,
        "snmpd",
    );
    let interfaces = Snmpd::tool("snmpwalk", &["-v2c", "-c", "public", &snmpd.addr(), "1.3.6.1.2.1.2.2.1.1"])
        .lines()
        .count();
    println!(
        "bench-snmp: {targets} targets × {interfaces} interfaces, {CONCURRENCY} polls at a time, saturated, {seconds} s measured per poller after {} s warm-up",
        WARM_UP.as_secs()
    );
    // Release builds abort on panic, which would leave the daemons running: failures are
    // returned, the processes and the namespace dropped, and only then does the bench exit.
    let result = compare(&snmpd, seconds, &art, interfaces);
    drop(snmpd);
    drop(ns);
    if let Err(e) = result {
        println!("bench-snmp failed: {e}");
        std::process::exit(1);
    }
}

fn compare(snmpd: &Snmpd, seconds: u64, art: &std::path::Path, interfaces: usize) -> Result<(), String> {
    let targets = snmpd.ports.len();
    let ours = agent_phase(snmpd, seconds, art, interfaces)?;
    ours.print(targets);
    if std::path::Path::new(EXPORTER).exists() {
        let theirs = exporter_phase(snmpd, seconds, art, interfaces)?;
        theirs.print(targets);
        println!(
            "ratio agent/exporter: CPU per poll {:.2}, RSS {:.2}, peak RSS {:.2}, cycle time {:.2}, snmpd CPU per poll {:.2}",
            ours.cpu_per_poll_ms() / theirs.cpu_per_poll_ms(),
            ours.rss_kib as f64 / theirs.rss_kib as f64,
            ours.peak_kib as f64 / theirs.peak_kib as f64,
            ours.cycle(targets) / theirs.cycle(targets),
            (ours.snmpd_cpu / ours.polls.max(1) as f64) / (theirs.snmpd_cpu / theirs.polls.max(1) as f64),
        );
    }
    Ok(())
}
