//! Collector ingest throughput into the real ClickHouse, against inserting the same rows straight
//! into ClickHouse in the same run.
//!
//! `cargo run --release -p parta-tests --bin bench-ingest -- [AGENTS] [REPORTS_PER_AGENT]`
//! (defaults 200 × 1000). Simulated agents speak the real protocol over QUIC to the real
//! collector binary; the baseline inserts identical rows with the collector's own storage code in
//! batches of the size the collector used. Goal: ingest/direct ≥ 0.7.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use parta_collector::config::ClickHouseConfig;
use parta_collector::storage::Store;
use parta_collector::storage::rows::{Accepted, Batch};
use parta_protocol::{DeviceId, DeviceKind, Message, Report, encode_frame, examples};
use parta_tests::clickhouse::ClickHouse;
use parta_tests::procs::Collector;
use parta_tests::quic::{RawClient, RawDevice};
use parta_tests::util::artifacts_dir;

/// The real agent's window.
const WINDOW: u64 = parta_protocol::delivery::DeliveryConfig { window: 1024, live_reserve: 16 }.window as u64;

fn report(seq: u64, salt: u64) -> Report {
    let Message::Report(mut r) = examples::typical_report(seq) else { unreachable!() };
    if let parta_protocol::Sample::HostMetrics(m) = &mut r.samples[0] {
        m.uptime_s += seq * 60;
        m.cpu_percent = ((seq * 7 + salt) % 100) as f32;
        m.mem_used += (seq * 4096) % 1_000_000;
        m.interfaces[0].rx_bytes += seq * 1_000_000;
    }
    r
}

/// What every simulated agent shares.
struct Sim {
    addr: String,
    ca: std::path::PathBuf,
    token: String,
    reports: u64,
    connected: tokio::sync::Barrier,
    go: tokio::sync::Barrier,
    latencies: std::sync::Mutex<Vec<f64>>,
}

async fn agent(sim: Arc<Sim>, salt: u64) {
    let reports = sim.reports;
    let frames: Vec<Vec<u8>> =
        (1..=reports).map(|s| encode_frame(&Message::Report(report(s, salt))).unwrap()).collect();
    let device = RawDevice::enroll(&sim.addr, &sim.ca, &sim.token, None).await.unwrap();
    let mut c = RawClient::connect_as(&sim.addr, &sim.ca, &device).await;
    c.send(&parta_tests::quic::hello()).await;
    match c.next().await.unwrap() {
        Some(Message::Welcome(_)) => {}
        other => panic!("expected Welcome, got {other:?}"),
    }
    sim.connected.wait().await;
    sim.go.wait().await;
    let (mut sent, mut acked) = (0u64, 0u64);
    let mut acked_set = parta_protocol::SeqSet::new();
    let mut buf = Vec::new();
    let mut sent_at = vec![Instant::now(); usize::try_from(reports + 1).unwrap()];
    let mut lat = Vec::new();
    while acked < reports {
        // Like the agent's uplink: everything the window allows in one write.
        buf.clear();
        let now = Instant::now();
        while sent < reports && sent - acked < WINDOW {
            buf.extend_from_slice(&frames[usize::try_from(sent).unwrap()]);
            sent += 1;
            sent_at[usize::try_from(sent).unwrap()] = now;
        }
        if !buf.is_empty() {
            c.send_bytes(&buf).await;
        }
        match c.next().await.unwrap() {
            Some(Message::Ack(a)) => {
                let now = Instant::now();
                for r in &a.ranges {
                    for seq in r.first..=r.last {
                        if seq % 16 == 0 && !acked_set.contains(seq) {
                            lat.push(
                                now.duration_since(sent_at[usize::try_from(seq).unwrap()]).as_secs_f64(),
                            );
                        }
                    }
                    acked_set.insert_range(r.first, r.last);
                }
                acked = acked_set.len();
            }
            other => panic!("expected Ack, got {other:?}"),
        }
    }
    sim.latencies.lock().unwrap().extend(lat);
}

fn proc_stat(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    (ticks / 100.0, hwm)
}

fn main() {
    let args: Vec<u64> = std::env::args().skip(1).map(|a| a.parse().unwrap()).collect();
    let agents = args.first().copied().unwrap_or(200);
    let per_agent = args.get(1).copied().unwrap_or(1000);
    let total = agents * per_agent;
    let art = artifacts_dir("bench-ingest");
    let ch = ClickHouse::start();
    let log_level = std::env::var("PARTA_BENCH_LOG").unwrap_or_else(|_| "warn".into());
    let collector = Collector::start_with(&ch, "bench", &art, &[("PARTA_LOG_LEVEL", &log_level)]);
    let token = collector.create_token("74-0012");
    let pid = collector.pid();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();

    println!("bench-ingest: {agents} agents × {per_agent} reports = {total} reports, window {WINDOW}");
    let n = usize::try_from(agents).unwrap() + 1;
    let sim = Arc::new(Sim {
        addr: collector.quic_addr(),
        ca: collector.ca(),
        token: token.clone(),
        reports: per_agent,
        connected: tokio::sync::Barrier::new(n),
        go: tokio::sync::Barrier::new(n),
        latencies: std::sync::Mutex::new(Vec::new()),
    });
    let mut cpu0 = 0.0;
    let mut ch_cpu0 = 0.0;
    let mut connect_secs = 0.0;
    let mut started = Instant::now();
    rt.block_on(async {
        let t = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..agents {
            tasks.spawn(agent(Arc::clone(&sim), i));
        }
        sim.connected.wait().await;
        connect_secs = t.elapsed().as_secs_f64();
        cpu0 = proc_stat(pid).0;
        ch_cpu0 = proc_stat(ch.pid()).0;
        started = Instant::now();
        sim.go.wait().await;
        while let Some(r) = tasks.join_next().await {
            r.unwrap();
        }
    });
    let ingest_secs = started.elapsed().as_secs_f64();
    let (cpu1, rss_kib) = proc_stat(pid);
    let (gen_cpu, _) = proc_stat(std::process::id());
    let ch_cpu = proc_stat(ch.pid()).0 - ch_cpu0;
    let stored = ch.query_u64("SELECT count() FROM bench.ingest_ledger");
    assert_eq!(stored, total, "every report stored once");
    let batches = collector.metric("parta_batch_reports_count");
    let insert_busy = collector.metric("parta_insert_seconds_sum");
    let avg_batch = (collector.metric("parta_batch_reports_sum") / batches).max(1.0);
    let ingest_rate = total as f64 / ingest_secs;

    // Baseline: the same rows, straight into ClickHouse, in batches of the size the collector used.
    let direct_rate = rt.block_on(async {
        let cfg = ClickHouseConfig {
            url: ch.url(),
            database: "direct".into(),
            user: "default".into(),
            password: String::new(),
        };
        let store = Store::connect(&cfg).await.unwrap();
        store.migrate().await.unwrap();
        let batch_size = usize::try_from(avg_batch.round() as u64).unwrap().max(1);
        let mut all: Vec<Accepted> = Vec::with_capacity(usize::try_from(total).unwrap());
        for i in 0..agents {
            let device = DeviceId::random();
            for seq in 1..=per_agent {
                all.push(Accepted {
                    device_id: device,
                    school_id: "74-0012".into(),
                    kind: DeviceKind::Computer,
                    agent_version: "bench".into(),
                    report: report(seq, i),
                    bytes: 128,
                    received: 1_763_802_000,
                    received_ms: 1_763_802_000_000,
                });
            }
        }
        let batches: Vec<Arc<Batch>> = all
            .chunks(batch_size)
            .map(|chunk| {
                let mut b = Batch::default();
                chunk.iter().for_each(|a| b.add_report(a));
                Arc::new(b)
            })
            .collect();
        let store = Arc::new(store);
        let t = Instant::now();
        for b in &batches {
            store.insert_batch(b).await.unwrap();
        }
        total as f64 / t.elapsed().as_secs_f64()
    });
    let direct_stored = ch.query_u64("SELECT count() FROM direct.ingest_ledger");
    assert_eq!(direct_stored, total);

    println!("{agents} devices enrolled and their sessions established in {connect_secs:.2} s");
    println!("collector ingest:   {ingest_rate:>10.0} reports/s  ({total} reports in {ingest_secs:.2} s)");
    println!("direct insert:      {direct_rate:>10.0} reports/s  (same rows, batches of {avg_batch:.0})");
    println!("ratio ingest/direct: {:.2} (goal ≥ 0.7)", ingest_rate / direct_rate);
    println!(
        "collector: {:.0} insert batches, avg {avg_batch:.0} reports; CPU {:.2} s ({:.1} µs/report); peak RSS {:.1} MiB",
        batches,
        cpu1 - cpu0,
        (cpu1 - cpu0) * 1e6 / total as f64,
        rss_kib as f64 / 1024.0
    );
    println!("load generator (simulated agents, this process): CPU {gen_cpu:.2} s");
    let mut l = sim.latencies.lock().unwrap().clone();
    l.sort_by(f64::total_cmp);
    let q = |p: f64| l[((l.len() as f64 - 1.0) * p) as usize] * 1000.0;
    println!("report → ack latency: p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms", q(0.5), q(0.9), q(0.99));
    println!(
        "collector's inserts busy {insert_busy:.2} s of {ingest_secs:.2} s; ClickHouse CPU {ch_cpu:.2} s"
    );
    std::thread::sleep(Duration::from_millis(100));
}
