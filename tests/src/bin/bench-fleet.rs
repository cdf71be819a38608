//! Fleet identity costs on the real collector and ClickHouse, each against a baseline measured
//! in the same run:
//!
//! 1. Enrollment of many devices at once (each makes its key and enrolls with the school's
//!    token): time until all have certificates, the collector's peak RSS.
//! 2. Session set-up with mutual TLS (handshake with the device's certificate, `Hello`,
//!    `Welcome`) against the same handshake without a client certificate answered at once
//!    (what a token `Hello` cost before: TLS with server authentication and one round trip).
//! 3. A flood of unauthenticated connection attempts (handshakes that never say `Hello`):
//!    the collector's RSS and the report → acknowledgement latency of genuine devices during
//!    the flood, against the same devices before it.
//!
//! `cargo run --release -p parta-tests --bin bench-fleet -- [DEVICES] [SESSIONS] [FLOOD]`
//! (defaults 1000, 2000, 20000).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parta_protocol::{Message, RejectReason, Report, examples};
use parta_tests::clickhouse::ClickHouse;
use parta_tests::procs::Collector;
use parta_tests::quic::{RawClient, RawDevice, hello};
use parta_tests::util::{artifacts_dir, footprint};

fn quantile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(((v.len() as f64 - 1.0) * q) as usize).copied().unwrap_or(f64::NAN)
}

fn now_ms() -> i64 {
    i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis())
        .unwrap()
}

/// Sessions (handshake, Hello, answer) one after another on `workers` tasks; sessions/s.
async fn sessions(
    addr: &str,
    ca: &std::path::Path,
    devices: &[Arc<RawDevice>],
    total: usize,
    mutual: bool,
) -> f64 {
    let workers = 16;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..workers {
        let (addr, ca) = (addr.to_owned(), ca.to_owned());
        let devices: Vec<Arc<RawDevice>> = devices.to_vec();
        tasks.spawn(async move {
            for i in (w..total).step_by(workers) {
                let device = &devices[i % devices.len()];
                let mut c = if mutual {
                    RawClient::connect_as(&addr, &ca, device).await
                } else {
                    RawClient::connect(&addr, &ca).await
                };
                c.send(&hello()).await;
                match c.next().await {
                    Ok(Some(Message::Welcome(_))) if mutual => {}
                    Ok(Some(Message::Reject(r))) if !mutual && r.reason == RejectReason::NotEnrolled => {}
                    other => panic!("unexpected answer: {other:?}"),
                }
                c.close();
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    total as f64 / started.elapsed().as_secs_f64()
}

/// Genuine devices each sending a report every 100 ms for at least `at_least` and until `stop`;
/// latencies (ms) of report → acknowledgement.
async fn genuine(
    addr: &str,
    ca: &std::path::Path,
    devices: &[Arc<RawDevice>],
    first_seq: u64,
    at_least: Duration,
    stop: Arc<AtomicBool>,
) -> Vec<f64> {
    let mut tasks = tokio::task::JoinSet::new();
    for d in devices {
        let (addr, ca, d, stop) = (addr.to_owned(), ca.to_owned(), Arc::clone(d), Arc::clone(&stop));
        tasks.spawn(async move {
            let mut c = RawClient::connect_as(&addr, &ca, &d).await;
            c.send(&hello()).await;
            assert!(matches!(c.next().await, Ok(Some(Message::Welcome(_)))));
            let mut lat = Vec::new();
            let started = Instant::now();
            let mut seq = first_seq;
            while started.elapsed() < at_least || !stop.load(Ordering::Relaxed) {
                let Message::Report(mut r) = examples::typical_report(seq) else { unreachable!() };
                r.agent_time_ms = now_ms();
                let sent = Instant::now();
                c.send(&Message::Report(Report { ..r })).await;
                loop {
                    match c.next().await {
                        Ok(Some(Message::Ack(a)))
                            if a.ranges.iter().any(|x| x.first <= seq && seq <= x.last) =>
                        {
                            break;
                        }
                        Ok(Some(_)) => {}
                        other => panic!("genuine device: {other:?}"),
                    }
                }
                lat.push(sent.elapsed().as_secs_f64() * 1000.0);
                seq += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            c.close();
            lat
        });
    }
    let mut all = Vec::new();
    while let Some(r) = tasks.join_next().await {
        all.extend(r.unwrap());
    }
    all
}

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).map(|a| a.parse().unwrap()).collect();
    let n_devices = args.first().copied().unwrap_or(1000);
    let n_sessions = args.get(1).copied().unwrap_or(2000);
    let n_flood = args.get(2).copied().unwrap_or(20_000);
    let art = artifacts_dir("bench-fleet");
    let ch = ClickHouse::start();
    let log_level = std::env::var("PARTA_BENCH_LOG").unwrap_or_else(|_| "warn".into());
    let collector = Collector::start_with(&ch, "bench", &art, &[("PARTA_LOG_LEVEL", &log_level)]);
    let token = collector.create_token("74-0012");
    let (addr, ca) = (collector.quic_addr(), collector.ca());
    let pid = collector.pid();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();

    // 1. Enrollment at once.
    let (rss0, hwm0, cpu0) = footprint(pid);
    let started = Instant::now();
    let devices: Vec<Arc<RawDevice>> = rt.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..n_devices {
            let (addr, ca, token) = (addr.clone(), ca.clone(), token.clone());
            tasks.spawn(async move {
                // A busy collector asks some to come back (QUIC Retry) or refuses for a moment;
                // agents retry, and so do these.
                loop {
                    match RawDevice::enroll(&addr, &ca, &token, None).await {
                        Ok(d) => return Arc::new(d),
                        Err(e) if !e.is_permanent() => tokio::time::sleep(Duration::from_millis(200)).await,
                        Err(e) => panic!("enrollment refused: {e}"),
                    }
                }
            });
        }
        let mut v = Vec::with_capacity(n_devices);
        while let Some(d) = tasks.join_next().await {
            v.push(d.unwrap());
        }
        v
    });
    let enroll_secs = started.elapsed().as_secs_f64();
    let (_, hwm1, cpu1) = footprint(pid);
    let stored = ch.query_u64("SELECT uniqExact(device_id) FROM bench.fleet_devices");
    assert_eq!(stored, n_devices as u64, "every device enrolled once");
    println!("bench-fleet: {n_devices} devices, {n_sessions} sessions per mode, {n_flood} flood attempts");
    println!(
        "enrollment: {n_devices} devices at once in {enroll_secs:.2} s ({:.0}/s); collector CPU {:.2} s; RSS {:.1} → peak {:.1} MiB",
        n_devices as f64 / enroll_secs,
        cpu1 - cpu0,
        rss0 as f64 / 1024.0,
        hwm1.max(hwm0) as f64 / 1024.0
    );

    // 2. Session set-up, mutual TLS against server authentication only, interleaved twice.
    let sample: Vec<Arc<RawDevice>> = devices.iter().take(64).cloned().collect();
    let (mut mtls, mut plain) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        let c0 = footprint(pid).2;
        plain
            .push((rt.block_on(sessions(&addr, &ca, &sample, n_sessions / 2, false)), footprint(pid).2 - c0));
        let c0 = footprint(pid).2;
        mtls.push((rt.block_on(sessions(&addr, &ca, &sample, n_sessions / 2, true)), footprint(pid).2 - c0));
    }
    let rate = |v: &[(f64, f64)]| v.iter().map(|x| x.0).sum::<f64>() / v.len() as f64;
    let cpu_per = |v: &[(f64, f64)]| v.iter().map(|x| x.1).sum::<f64>() * 1e3 / n_sessions as f64;
    println!(
        "sessions: mutual TLS + Hello → Welcome {:.0}/s ({:.2} ms collector CPU each); server-authenticated handshake + Hello → refusal {:.0}/s ({:.2} ms each); ratio {:.2}",
        rate(&mtls),
        cpu_per(&mtls),
        rate(&plain),
        cpu_per(&plain),
        rate(&mtls) / rate(&plain)
    );

    // 3. Genuine devices before and during a flood.
    let genuine_devices: Vec<Arc<RawDevice>> = devices.iter().skip(64).take(20).cloned().collect();
    let done_now = Arc::new(AtomicBool::new(true));
    let mut before = rt.block_on(genuine(&addr, &ca, &genuine_devices, 1, Duration::from_secs(5), done_now));
    let (rss_before, hwm_before, _) = footprint(pid);
    let flood_started = Instant::now();
    let flooding = Arc::new(AtomicBool::new(false));
    let (mut during, (done, failed)) = rt.block_on(async {
        let flood = tokio::spawn({
            let (addr, ca, flooding) = (addr.clone(), ca.clone(), Arc::clone(&flooding));
            async move {
                let r = parta_tests::flood::flood(&addr, &ca, n_flood, 500, Duration::from_secs(1)).await;
                flooding.store(true, Ordering::Relaxed);
                r
            }
        });
        let during = genuine(&addr, &ca, &genuine_devices, 10_000, Duration::from_secs(5), flooding).await;
        (during, flood.await.unwrap())
    });
    let flood_secs = flood_started.elapsed().as_secs_f64();
    let (rss_after, hwm_after, _) = footprint(pid);
    println!(
        "flood: {n_flood} unauthenticated attempts in {flood_secs:.1} s ({done} handshakes completed, {failed} refused or failed); Retry {} times, refused {} times",
        collector.metric("parta_handshake_retries_total"),
        collector.metric("parta_handshakes_refused_total")
    );
    println!(
        "collector RSS {:.1} → {:.1} MiB (peak {:.1} → {:.1} MiB)",
        rss_before as f64 / 1024.0,
        rss_after as f64 / 1024.0,
        hwm_before as f64 / 1024.0,
        hwm_after as f64 / 1024.0
    );
    let (b50, b99) = (quantile(&mut before, 0.5), quantile(&mut before, 0.99));
    let (d50, d99) = (quantile(&mut during, 0.5), quantile(&mut during, 0.99));
    println!(
        "genuine report → ack latency: before p50 {b50:.1} ms p99 {b99:.1} ms; during the flood p50 {d50:.1} ms p99 {d99:.1} ms (ratio p50 {:.2}, p99 {:.2}); {} reports during",
        d50 / b50,
        d99 / b99,
        during.len()
    );
}
