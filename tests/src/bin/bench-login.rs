//! A sign-in flood against the real collector (issue 19, item 2): many parallel `POST /login`
//! with wrong passwords, each from its own address (through a trusted proxy, so that the
//! per-address limit does not simply stop them), while a genuine user signs in again and
//! again. Printed: the collector's peak RSS before and during the flood (each Argon2 check takes
//! ~19 MiB: unbounded, N parallel checks would ask for N × 19 MiB), the answers the flood got,
//! and the genuine sign-in's time against the same measured before the flood.
//!
//! `cargo run --release -p parta-tests --bin bench-login -- [PARALLEL] [ROUNDS]` (defaults 500, 3).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parta_tests::clickhouse::ClickHouse;
use parta_tests::procs::Collector;
use parta_tests::util::{artifacts_dir, footprint};
use parta_tests::websession::Session;

const PASSWORD: &str = "correct horse battery";

fn quantile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(((v.len() as f64 - 1.0) * q) as usize).copied().unwrap_or(f64::NAN)
}

/// Signs in until it succeeds; (ms until signed in, attempts).
fn genuine_sign_in(c: &Collector) -> (f64, u32) {
    let started = Instant::now();
    for attempt in 1.. {
        match Session::from_address(c, "10.1.0.1").sign_in("admin", PASSWORD) {
            303 => return (started.elapsed().as_secs_f64() * 1000.0, attempt),
            429 => {} // busy: try again, as a person would
            other => panic!("genuine sign-in answered {other}"),
        }
    }
    unreachable!()
}

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).map(|a| a.parse().expect("a number")).collect();
    let parallel = args.first().copied().unwrap_or(500);
    let rounds = args.get(1).copied().unwrap_or(3);
    let art = artifacts_dir("bench-login");
    let ch = ClickHouse::start();
    let c = Collector::start_with(&ch, "bench_login", &art, &[("PARTA_WEB_TRUSTED_PROXIES", "127.0.0.1")]);
    c.add_user("admin", "admin", "all", PASSWORD);
    let pid = c.pid();

    // Baseline: sign-ins with nobody else signing in.
    let mut base: Vec<f64> = (0..20).map(|_| genuine_sign_in(&c).0).collect();
    let (rss_before, hwm_before, _) = footprint(pid);

    // The flood: `rounds` waves of `parallel` wrong passwords, each from its own address.
    let flooding = AtomicBool::new(true);
    let mut answers: BTreeMap<u16, u64> = BTreeMap::new();
    let mut during: Vec<f64> = Vec::new();
    let mut tries: Vec<u32> = Vec::new();
    let started = Instant::now();
    std::thread::scope(|s| {
        let genuine = s.spawn(|| {
            let mut v = Vec::new();
            while flooding.load(Ordering::Relaxed) {
                v.push(genuine_sign_in(&c));
                std::thread::sleep(Duration::from_millis(50));
            }
            v
        });
        for round in 0..rounds {
            let handles: Vec<_> = (0..parallel)
                .map(|i| {
                    let c = &c;
                    s.spawn(move || {
                        let addr = format!("10.{}.{}.{}", 2 + round, i / 250, i % 250);
                        Session::from_address(c, &addr).sign_in("admin", &format!("guess {round}-{i}"))
                    })
                })
                .collect();
            for h in handles {
                *answers.entry(h.join().unwrap()).or_default() += 1;
            }
        }
        flooding.store(false, Ordering::Relaxed);
        for (ms, n) in genuine.join().unwrap() {
            during.push(ms);
            tries.push(n);
        }
    });
    let flood_s = started.elapsed().as_secs_f64();
    let (rss_after, hwm_after, cpu) = footprint(pid);
    let total = parallel * rounds;
    println!(
        "sign-in flood: {total} wrong passwords in {rounds} waves of {parallel} parallel, {flood_s:.1} s"
    );
    println!("  answers: {answers:?} (401 checked, 429 refused as busy or locked, before any hashing)");
    println!(
        "  collector RSS: {:.0} MiB before, {:.0} MiB after; peak {:.0} MiB before, {:.0} MiB after (+{:.0} MiB); \
         unbounded, {parallel} parallel Argon2 checks would need ~{:.0} MiB",
        rss_before as f64 / 1024.0,
        rss_after as f64 / 1024.0,
        hwm_before as f64 / 1024.0,
        hwm_after as f64 / 1024.0,
        (hwm_after.saturating_sub(hwm_before)) as f64 / 1024.0,
        parallel as f64 * 19.0
    );
    println!("  collector CPU: {cpu:.1} s in all");
    let (b50, b95) = (quantile(&mut base, 0.5), quantile(&mut base, 0.95));
    let (d50, d95) = (quantile(&mut during, 0.5), quantile(&mut during, 0.95));
    let max_tries = tries.iter().copied().max().unwrap_or(0);
    println!(
        "  genuine sign-in (until signed in): baseline p50 {b50:.0} ms p95 {b95:.0} ms; during the flood p50 \
         {d50:.0} ms p95 {d95:.0} ms over {} sign-ins (at most {max_tries} attempts); ratio p50 {:.2}",
        during.len(),
        d50 / b50
    );
}
