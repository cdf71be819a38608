//! Releases on the real collector and ClickHouse.
//!
//! 1. N simulated agents (default 1,000) hold sessions and say they take releases; a release is
//!    added and rolled out to all: measured is the time until every one was offered it, and the
//!    collector's CPU. Baseline in the same run, on the same sessions: one report per device,
//!    all acknowledged (the ingest round trip).
//! 2. D of them (default 20) download the artifact (the agent build, stripped as packaged) at
//!    once, verifying it as they go: the collector's throughput under `release_bandwidth_mbit`
//!    (default 1000) and its CPU per MB served. Baseline: reading the artifact from disk.
//! 3. R real agents (default 20, as installed by the packages: supervisor, root's installer)
//!    updated from A to B: time from the rollout until all report healthy.
//!
//! `cargo run --release -p parta-tests --bin bench-updates -- [N] [D] [R] [MBIT]`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use parta_protocol::release::Manifest;
use parta_protocol::update::{ReleaseMessage, UpdateMessage};
use parta_protocol::{DeviceKind, Hello, Message, examples};
use parta_tests::clickhouse::ClickHouse;
use parta_tests::procs::{AgentSpec, Collector};
use parta_tests::quic::{RawClient, RawDevice};
use parta_tests::updates::{PathWatch, Releases, collector_ok, install_devices, wait_state};
use parta_tests::util::{artifacts_dir, footprint};
use tokio::sync::{mpsc, watch};

enum Event {
    Acked,
    Offered,
    Downloaded(u64),
}

fn arg(i: usize, default: usize) -> usize {
    std::env::args().nth(i).map_or(default, |a| a.parse().unwrap())
}

fn main() {
    let (n, downloaders, real, mbit) = (arg(1, 1000), arg(2, 20), arg(3, 20), arg(4, 1000));
    let art = artifacts_dir("bench-updates");
    let rel = Releases::new();
    let public = rel.public();
    let ch = ClickHouse::start();
    let db = "bench_updates";
    let c = Collector::start_with(
        &ch,
        db,
        &art,
        &[
            ("PARTA_LOG_LEVEL", "warn"),
            ("PARTA_RELEASE_KEY", public.to_str().unwrap()),
            ("PARTA_RELEASE_BANDWIDTH_MBIT", &mbit.to_string()),
        ],
    );
    let pid = c.pid();
    let (token, _) = c.create_join("74-0012", &["--uses", &(n + real).to_string()]);
    let (addr, ca) = (c.quic_addr(), c.ca());
    let rt = tokio::runtime::Runtime::new().unwrap();

    println!("enrolling {n} simulated devices…");
    let devices = rt.block_on(RawDevice::enroll_many(&addr, &ca, &token, n, 100));
    let (events_tx, mut events) = mpsc::unbounded_channel::<Event>();
    let (go_tx, go) = watch::channel(0u8);
    rt.block_on(async {
        for (i, device) in devices.into_iter().enumerate() {
            let (addr, ca, events, mut go) = (addr.clone(), ca.clone(), events_tx.clone(), go.clone());
            let (opened_tx, opened) = tokio::sync::oneshot::channel();
            let downloads = i < downloaders;
            tokio::spawn(async move {
                let mut client = RawClient::connect_as(&addr, &ca, &device).await;
                let hello =
                    Hello { agent_version: "0.1.0".into(), kind: DeviceKind::Computer, running_policy: None };
                client.send(&Message::Hello(hello)).await;
                assert!(matches!(client.next().await, Ok(Some(Message::Welcome(_)))));
                let ready = UpdateMessage::Ready { target: "x86_64-linux".into(), latest: None };
                client.send(&Message::Update(ready)).await;
                let _ = opened_tx.send(());
                go.wait_for(|g| *g >= 1).await.unwrap();
                let Message::Report(mut r) = examples::typical_report(1) else { unreachable!() };
                r.agent_time_ms = i64::try_from(
                    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis(),
                )
                .unwrap();
                client.send(&Message::Report(r)).await;
                let mut check = None;
                loop {
                    match client.next().await {
                        Ok(Some(Message::Ack(_))) => {
                            let _ = events.send(Event::Acked);
                        }
                        Ok(Some(Message::Release(ReleaseMessage::Offer { signature, .. }))) => {
                            // Every offer is the signed release, parsed as a device would.
                            let m = Manifest::parse(&signature).unwrap();
                            let _ = events.send(Event::Offered);
                            if downloads {
                                go.wait_for(|g| *g >= 2).await.unwrap();
                                check = Some((m.version, m.checker()));
                                let fetch = UpdateMessage::Fetch { version: m.version, offset: 0 };
                                client.send(&Message::Update(fetch)).await;
                            }
                        }
                        Ok(Some(Message::Release(ReleaseMessage::Chunk { offset, bytes, end, .. }))) => {
                            let (v, c) = check.as_mut().unwrap();
                            assert_eq!(offset, c.seen());
                            c.update(&bytes).unwrap();
                            if end {
                                let seen = c.seen();
                                check.take().unwrap().1.finish().unwrap();
                                let _ = events.send(Event::Downloaded(seen));
                            } else {
                                let fetch =
                                    UpdateMessage::Fetch { version: *v, offset: offset + bytes.len() as u64 };
                                client.send(&Message::Update(fetch)).await;
                            }
                        }
                        Ok(Some(_)) => {}
                        other => panic!("session ended: {other:?}"),
                    }
                }
            });
            opened.await.unwrap();
        }
    });
    let mib = |kib: u64| kib as f64 / 1024.0;
    let (rss0, _, cpu0) = footprint(pid);
    let wait =
        |what: &str, events: &mut mpsc::UnboundedReceiver<Event>, mut f: Box<dyn FnMut(Event) -> bool>| {
            rt.block_on(async {
                loop {
                    let e = tokio::time::timeout(Duration::from_secs(600), events.recv())
                        .await
                        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
                        .unwrap();
                    if f(e) {
                        return;
                    }
                }
            });
        };

    // Baseline: one report per device, all acknowledged.
    let t0 = Instant::now();
    go_tx.send(1).unwrap();
    let mut acked = 0;
    wait(
        "acknowledgements",
        &mut events,
        Box::new(move |e| {
            if matches!(e, Event::Acked) {
                acked += 1;
            }
            acked == n
        }),
    );
    let baseline = t0.elapsed();
    let (_, _, cpu1) = footprint(pid);

    // 1. A release rolled out to everybody.
    let b = rel.build("0.2.0");
    let sig = rel.sign(&b, "0.2.0");
    let size = std::fs::metadata(&b).unwrap().len();
    collector_ok(&c, &["release", "add", sig.to_str().unwrap(), b.to_str().unwrap(), "--channel", "stable"]);
    let t0 = Instant::now();
    collector_ok(
        &c,
        &["release", "rollout", "--channel", "stable", "--percent", "100", "--scope", "school:74-0012"],
    );
    let mut offered = 0;
    let mut first = None;
    wait(
        "offers",
        &mut events,
        Box::new(|e| {
            if let Event::Offered = e {
                offered += 1;
                first.get_or_insert_with(|| t0.elapsed());
            }
            offered == n
        }),
    );
    let learned = t0.elapsed();
    let (rss2, hwm2, cpu2) = footprint(pid);

    // 2. D simulated devices download it at once.
    let t1 = Instant::now();
    let disk = std::fs::read(&b).unwrap().len();
    let read_time = t1.elapsed();
    let t0 = Instant::now();
    go_tx.send(2).unwrap();
    let mut done = 0;
    wait(
        "downloads",
        &mut events,
        Box::new(|e| {
            if let Event::Downloaded(bytes) = e {
                assert_eq!(bytes, size);
                done += 1;
            }
            done == downloaders
        }),
    );
    let served = t0.elapsed();
    let (rss3, hwm3, cpu3) = footprint(pid);
    let total_mb = (size as f64 * downloaders as f64) / 1e6;

    // 3. Real agents updated A → B.
    let root = tempfile::tempdir().unwrap();
    let base = rel.base_build();
    let spec = || AgentSpec::new(&c, "74-0012", &token);
    let real_devices = install_devices(root.path(), "real", &base, &public, vec![None; real], spec, &art);
    let _watch = PathWatch::over(&real_devices, &art, "120s");
    let ids: Vec<String> = real_devices.iter().map(|d| d.agent.device_id()).collect();
    let t0 = Instant::now();
    // They connect, are offered 0.2.0 at once (the rollout includes their school), download,
    // install and prove healthy.
    wait_state(&c, &ids, "0.2.0", "healthy", Duration::from_secs(900));
    let real_done = t0.elapsed();

    println!(
        "collector: one process, 2 cores, ClickHouse 18.16 on the same machine; artifact {:.1} MB",
        size as f64 / 1e6
    );
    println!(
        "baseline — one report per device from {n} sessions, all acknowledged: {:.2} s; collector CPU {:.2} s",
        baseline.as_secs_f64(),
        cpu1 - cpu0
    );
    println!(
        "offer — {n} devices learned of the release {:.2} s after `release rollout` (first {:.2} s; the collector re-reads releases every 5 s); \
         collector CPU {:.2} s, RSS {:.1} → {:.1} MiB (peak {:.1})",
        learned.as_secs_f64(),
        first.unwrap_or_default().as_secs_f64(),
        cpu2 - cpu1,
        mib(rss0),
        mib(rss2),
        mib(hwm2)
    );
    println!(
        "ratio — spread of the offers after the collector saw the rollout ({:.2} s) / report round trip for all ({:.2} s): {:.2}",
        learned.saturating_sub(first.unwrap_or_default()).as_secs_f64(),
        baseline.as_secs_f64(),
        learned.saturating_sub(first.unwrap_or_default()).as_secs_f64() / baseline.as_secs_f64()
    );
    println!(
        "serve — {downloaders} devices downloaded {:.0} MB in {:.2} s: {:.1} MB/s = {:.0} Mbit/s (bound {mbit} Mbit/s); \
         collector CPU {:.2} s ({:.1} ms per MB), RSS {:.1} MiB (peak {:.1})",
        total_mb,
        served.as_secs_f64(),
        total_mb / served.as_secs_f64(),
        total_mb * 8.0 / served.as_secs_f64(),
        cpu3 - cpu2,
        (cpu3 - cpu2) * 1000.0 / total_mb,
        mib(rss3),
        mib(hwm3)
    );
    println!(
        "serve baseline — reading the {:.1} MB artifact from disk: {:.1} MB/s; ratio served/read: {:.3}",
        disk as f64 / 1e6,
        disk as f64 / 1e6 / read_time.as_secs_f64(),
        (total_mb / served.as_secs_f64()) / (disk as f64 / 1e6 / read_time.as_secs_f64())
    );
    println!(
        "real — {real} agents (supervised, root's installer) from start to all healthy on 0.2.0: {:.1} s",
        real_done.as_secs_f64()
    );
}
