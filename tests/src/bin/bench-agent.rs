//! Agent footprint: RSS and CPU of a real `parta-agent` reporting every second to a real
//! collector, next to Debian's `prometheus-node-exporter` scraped every second in the same run
//! (the baseline; skipped with a note when not installed). The agent runs with all sources on,
//! including logind over a live D-Bus connection (a private bus with a fake logind), an SNMP
//! target polled every 10 s and ЕСПД rounds every minute.
//!
//! `cargo run --release -p parta-tests --bin bench-agent -- [MINUTES]` (default 10).
//! Goal from the skeleton issue: agent RSS ≤ 8 MiB after 10 minutes at a 1 s interval.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use parta_tests::clickhouse::ClickHouse;
use parta_tests::logind::{Bus, FakeLogind};
use parta_tests::procs::{Agent, AgentSpec, Collector};
use parta_tests::util::{artifacts_dir, footprint, free_tcp_port, http_get, status_kib, workspace_root};

fn node_exporter() -> Option<(Child, u16)> {
    let bin = ["/usr/bin/prometheus-node-exporter", "/usr/bin/node_exporter"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())?;
    let port = free_tcp_port();
    let child = Command::new(bin)
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    Some((child, port))
}

fn main() {
    let minutes: u64 = std::env::args().nth(1).map_or(10, |a| a.parse().unwrap());
    let art = artifacts_dir("bench-agent");
    let ch = ClickHouse::start();
    let collector = Collector::start_with(&ch, "bench", &art, &[("PARTA_LOG_LEVEL", "warn")]);
    let token = collector.create_token("74-0012");
    let mut spec = AgentSpec::new(&collector, "74-0012", &token);
    spec.extra.push(("PARTA_LOG_LEVEL".into(), "warn".into()));
    spec.report_log = false;
    // All sources on, as on a school PC: a D-Bus bus with logind (a fake one with a session
    // open; the agent polls it every 5 s over a live zbus connection).
    let bus = Bus::start();
    let logind = FakeLogind::start(&bus);
    logind.open(
        "1",
        "pupil",
        i64::try_from(
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis(),
        )
        .unwrap(),
    );
    spec.extra.push(("PARTA_LOGIND_BUS".into(), bus.address.clone()));
    // The school's SNMP and ЕСПД roles on too: a switch on a private snmpd polled every 10 s,
    // ЕСПД rounds every minute (against this machine: the checks fail fast, the work is done).
    let switch = parta_tests::snmpd::fake_gear(&art, "switch", "SW-1", false);
    let config = art.join("agent.toml");
    // `BENCH_AGENT_ROLES`: `all` (default), `snmp`, `espd` or `off`, to tell their costs apart.
    let roles = std::env::var("BENCH_AGENT_ROLES").unwrap_or_else(|_| "all".into());
    let snmp = format!(
        "[snmp]\ninterval = \"10s\"\n[[snmp.target]]\naddress = \"{}\"\ncommunity = \"public\"\n",
        switch.addr()
    );
    let espd = "[espd]\nenabled = true\nevery = \"1m\"\nwindows = [\"mon-sun 00:00-24:00\"]\nresolvers = [\"127.0.0.1\"]\n\
                timeout = \"1s\"\nmust_reach = [\"https://127.0.0.1:9/\"]\nmust_block = [\"https://127.0.0.1:10/\"]\n";
    let text = match roles.as_str() {
        "snmp" => snmp,
        "espd" => espd.to_owned(),
        _ => format!("{snmp}{espd}"),
    };
    std::fs::write(&config, text).unwrap();
    println!("roles: {roles}");
    if roles != "off" {
        spec.extra.push(("PARTA_CONFIG".into(), config.display().to_string()));
    }
    // glibc malloc's settings: the agent runs with those of its systemd unit
    // (`Environment=GLIBC_TUNABLES=…`), unless this bench is given its own (`MALLOC_ARENA_MAX`,
    // `MALLOC_MMAP_THRESHOLD_`, `GLIBC_TUNABLES`…; `BENCH_AGENT_MALLOC=default` for glibc's
    // defaults) to compare allocator behaviour.
    let given: Vec<(String, String)> =
        std::env::vars().filter(|(k, _)| k.starts_with("MALLOC_") || k == "GLIBC_TUNABLES").collect();
    if given.is_empty() && std::env::var("BENCH_AGENT_MALLOC").as_deref() != Ok("default") {
        let unit =
            std::fs::read_to_string(workspace_root().join("installers/systemd/parta-agent.service")).unwrap();
        for v in unit.lines().filter_map(|l| l.strip_prefix("Environment=GLIBC_TUNABLES=")) {
            spec.extra.push(("GLIBC_TUNABLES".into(), v.to_owned()));
        }
    }
    spec.extra.extend(given);
    let malloc: Vec<String> = spec
        .extra
        .iter()
        .filter(|(k, _)| k.starts_with("MALLOC_") || k == "GLIBC_TUNABLES")
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    println!("malloc: {}", if malloc.is_empty() { "glibc defaults".to_owned() } else { malloc.join(" ") });
    let agent = Agent::start(spec, &art, "agent");
    let mut baseline = node_exporter();
    if baseline.is_none() {
        println!(
            "note: prometheus-node-exporter not installed (apt-get install prometheus-node-exporter); no baseline"
        );
    }
    let started = Instant::now();
    let until = started + Duration::from_secs(minutes * 60);
    let mut scrapes = 0u64;
    let mut scrape_bytes = 0usize;
    println!("bench-agent: {minutes} min at a 1 s interval");
    let mut next_print = started;
    while Instant::now() < until {
        if let Some((_, port)) = &baseline {
            let (status, body) = http_get(&format!("http://127.0.0.1:{port}/metrics"));
            if status == 200 {
                scrapes += 1;
                scrape_bytes = body.len();
            }
        }
        if Instant::now() >= next_print {
            let (rss, _, cpu) = footprint(agent.pid());
            // Anonymous memory is the agent's own; file-backed pages are its code and libc's,
            // shared and given back under pressure, and they grow as code paths first run.
            println!(
                "  t={:>4}s agent RSS {:.1} MiB (anonymous {:.1}, file {:.1}), CPU {cpu:.2} s",
                started.elapsed().as_secs(),
                rss as f64 / 1024.0,
                status_kib(agent.pid(), "RssAnon:") as f64 / 1024.0,
                status_kib(agent.pid(), "RssFile:") as f64 / 1024.0,
            );
            next_print += Duration::from_secs(60);
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let (rss, hwm, cpu) = footprint(agent.pid());
    let (anon, file) = (status_kib(agent.pid(), "RssAnon:"), status_kib(agent.pid(), "RssFile:"));
    let reports = ch.query_u64("SELECT count() FROM bench.ingest_ledger");
    let bytes = ch.query_u64("SELECT sum(bytes) FROM bench.ingest_ledger");
    let secs = started.elapsed().as_secs_f64();
    println!(
        "agent:   RSS {:.2} MiB (peak {:.2} MiB; anonymous {:.2}, file-backed {:.2}), CPU {cpu:.2} s over {secs:.0} s ({:.2} ms per report), {reports} reports, {:.0} B/report on the wire",
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0,
        anon as f64 / 1024.0,
        file as f64 / 1024.0,
        cpu * 1000.0 / reports.max(1) as f64,
        bytes as f64 / reports.max(1) as f64
    );
    if let Some((child, _)) = &baseline {
        let (nrss, nhwm, ncpu) = footprint(child.id());
        println!(
            "node_exporter (baseline, scraped every second): RSS {:.2} MiB (peak {:.2} MiB), CPU {ncpu:.2} s, {scrapes} scrapes of {scrape_bytes} B",
            nrss as f64 / 1024.0,
            nhwm as f64 / 1024.0
        );
        println!(
            "ratio agent/node_exporter: RSS {:.2}, CPU {:.2}",
            rss as f64 / nrss as f64,
            cpu / ncpu.max(0.01)
        );
    }
    if let Some((mut child, _)) = baseline.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
    drop(agent);
    drop(switch);
}
