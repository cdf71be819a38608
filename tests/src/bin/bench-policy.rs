//! Policy rollout on the real collector and ClickHouse: N simulated agents (default 1,000)
//! hold sessions; a region policy is set with `parta-collector policy set`; measured is the
//! time until every device was offered it and answered, and until ClickHouse records every
//! device running it, with the collector's CPU and RSS while it happens. The baseline, in the
//! same run and on the same sessions: every device sends one report at once and waits for its
//! acknowledgement (the ingest path's round trip through ClickHouse).
//!
//! `cargo run --release -p parta-tests --bin bench-policy -- [DEVICES]` (default 1000).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use parta_protocol::policy::{PolicyOutcome, PolicyStatus};
use parta_protocol::{Message, examples};
use parta_tests::clickhouse::ClickHouse;
use parta_tests::procs::Collector;
use parta_tests::quic::{RawClient, RawDevice, hello};
use parta_tests::util::{artifacts_dir, footprint, workspace_root};
use tokio::sync::{mpsc, watch};

/// What a session tells the bench.
enum Event {
    Acked,
    Offered(u64),
}

fn main() {
    let n: usize = std::env::args().nth(1).map_or(1000, |a| a.parse().unwrap());
    let art = artifacts_dir("bench-policy");
    let ch = ClickHouse::start();
    let db = "bench_policy";
    let c = Collector::start_with(&ch, db, &art, &[("PARTA_LOG_LEVEL", "warn")]);
    let pid = c.pid();
    let schools = workspace_root().join("tests/fixtures/compliance/schools-cp1251.csv");
    assert!(c.command().args(["schools", "import", schools.to_str().unwrap()]).status().unwrap().success());
    let (token, _) = c.create_join("74-0012", &["--uses", &n.to_string()]);
    let (addr, ca) = (c.quic_addr(), c.ca());
    let rt = tokio::runtime::Runtime::new().unwrap();

    println!("enrolling {n} devices…");
    let devices = rt.block_on(RawDevice::enroll_many(&addr, &ca, &token, n, 100));

    println!("opening {n} sessions…");
    let (events_tx, mut events) = mpsc::unbounded_channel::<Event>();
    let (go_tx, go) = watch::channel(false);
    let (stop_tx, _) = watch::channel(false);
    let ready = Arc::new(Mutex::new(0usize));
    rt.block_on(async {
        for device in devices {
            let (addr, ca, events, mut go, mut stop, ready) =
                (addr.clone(), ca.clone(), events_tx.clone(), go.clone(), stop_tx.subscribe(), ready.clone());
            let (opened_tx, opened) = tokio::sync::oneshot::channel();
            tokio::spawn(async move {
                let mut client = RawClient::connect_as(&addr, &ca, &device).await;
                client.send(&hello()).await;
                assert!(matches!(client.next().await, Ok(Some(Message::Welcome(_)))));
                *ready.lock().unwrap() += 1;
                let _ = opened_tx.send(());
                // Baseline: one report, when told, and its acknowledgement.
                go.wait_for(|g| *g).await.unwrap();
                let Message::Report(mut r) = examples::typical_report(1) else { unreachable!() };
                r.agent_time_ms = i64::try_from(
                    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis(),
                )
                .unwrap();
                client.send(&Message::Report(r)).await;
                loop {
                    tokio::select! {
                        m = client.next() => match m {
                            Ok(Some(Message::Ack(_))) => { let _ = events.send(Event::Acked); }
                            Ok(Some(Message::Policy(offer))) => {
                                let id = offer.id;
                                client.send(&Message::PolicyStatus(PolicyStatus { id, outcome: PolicyOutcome::Applied })).await;
                                let _ = events.send(Event::Offered(id.version));
                            }
                            Ok(Some(_)) => {}
                            other => panic!("session ended: {other:?}"),
                        },
                        _ = stop.changed() => break,
                    }
                }
                client.close();
            });
            opened.await.unwrap();
        }
    });
    assert_eq!(*ready.lock().unwrap(), n);
    let (rss0, _, cpu0) = footprint(pid);

    // Baseline: every device's report acknowledged.
    let t0 = Instant::now();
    go_tx.send(true).unwrap();
    let mut acked = 0;
    rt.block_on(async {
        while acked < n {
            match tokio::time::timeout(Duration::from_secs(120), events.recv()).await.unwrap().unwrap() {
                Event::Acked => acked += 1,
                Event::Offered(_) => panic!("offered a policy before one was set"),
            }
        }
    });
    let baseline = t0.elapsed();
    let (rss1, _, cpu1) = footprint(pid);

    // The region's policy.
    let file = art.join("region.toml");
    std::fs::write(
        &file,
        "interval = \"60s\"\n[espd]\nmust_reach = [\"https://www.gosuslugi.ru/\", \"https://edu.gov.ru/\"]\n",
    )
    .unwrap();
    let t0 = Instant::now();
    let set =
        c.command().args(["policy", "set", "--scope", "region:74", file.to_str().unwrap()]).output().unwrap();
    assert!(set.status.success(), "{}", String::from_utf8_lossy(&set.stderr));
    let stored = t0.elapsed();
    let mut offered = 0;
    let mut version = 0;
    let mut first_offer = None;
    rt.block_on(async {
        while offered < n {
            match tokio::time::timeout(Duration::from_secs(120), events.recv()).await.unwrap().unwrap() {
                Event::Offered(v) => {
                    version = v;
                    offered += 1;
                    first_offer.get_or_insert_with(|| t0.elapsed());
                }
                Event::Acked => {}
            }
        }
    });
    let all_answered = t0.elapsed();
    let (rss2, hwm2, cpu2) = footprint(pid);
    let query = format!(
        "SELECT count() FROM (SELECT device_id, argMax(running_version, version) AS v FROM {db}.policy_status GROUP BY device_id) WHERE v = {version}"
    );
    while ch.query_u64(&query) < n as u64 {
        assert!(t0.elapsed() < Duration::from_secs(120), "ClickHouse never recorded every device");
        std::thread::sleep(Duration::from_millis(100));
    }
    let recorded = t0.elapsed();
    let _ = stop_tx.send(true);

    let mib = |kib: u64| kib as f64 / 1024.0;
    println!("devices: {n} sessions on one collector (2 cores, ClickHouse 18.16 on the same machine)");
    println!(
        "baseline — one report per device at once, all acknowledged: {:.2} s; collector CPU {:.2} s, RSS {:.1} → {:.1} MiB",
        baseline.as_secs_f64(),
        cpu1 - cpu0,
        mib(rss0),
        mib(rss1)
    );
    println!(
        "policy — `policy set` stored after {:.2} s; first offer {:.2} s, every device offered and answered {:.2} s, \
         ClickHouse records all running it {:.2} s (the collector re-reads policies every 5 s)",
        stored.as_secs_f64(),
        first_offer.unwrap_or_default().as_secs_f64(),
        all_answered.as_secs_f64(),
        recorded.as_secs_f64()
    );
    println!(
        "policy — collector CPU {:.2} s ({:.2} ms per device), RSS {:.1} MiB (peak {:.1} MiB)",
        cpu2 - cpu1,
        (cpu2 - cpu1) * 1000.0 / n as f64,
        mib(rss2),
        mib(hwm2)
    );
    let from_refresh = all_answered.saturating_sub(first_offer.unwrap_or_default());
    println!(
        "ratio — spread of the rollout once the collector saw the change ({:.2} s) / report round trip for all ({:.2} s): {:.2}",
        from_refresh.as_secs_f64(),
        baseline.as_secs_f64(),
        from_refresh.as_secs_f64() / baseline.as_secs_f64()
    );
}
