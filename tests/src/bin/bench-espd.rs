//! ЕСПД throughput accuracy: the probe (`parta-agent check espd`) in a network namespace of the
//! bench's own measures download and upload against the collector's speed-test service
//! through a link shaped with `tbf` to each rate in turn (both directions). Prints, per rate,
//! what was measured, the error against the shaped rate (the baseline, set in the same run),
//! and what each test cost the link in bytes and seconds.
//!
//! `cargo run --release -p parta-tests --bin bench-espd -- [MBIT ...]` (default 10 40 70 100
//! 200 500; at most 6 rates: the collector allows 12 tests per school and hour). Needs root.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use parta_tests::clickhouse::ClickHouse;
use parta_tests::netns::NetNs;
use parta_tests::procs::{Collector, check_espd};
use parta_tests::util::artifacts_dir;

const SCHOOL: &str = "74-0099";

fn main() {
    let rates: Vec<u32> = {
        let given: Vec<u32> = std::env::args().skip(1).map(|a| a.parse().expect("MBIT")).collect();
        if given.is_empty() { vec![10, 40, 70, 100, 200, 500] } else { given }
    };
    let art = artifacts_dir("bench-espd");
    let ns = NetNs::create();
    let ch = ClickHouse::start();
    let collector = Collector::start_with(
        &ch,
        "bench",
        &art,
        &[("PARTA_QUIC_LISTEN", &ns.host_ip), ("PARTA_TLS_NAMES", &ns.host_ip), ("PARTA_LOG_LEVEL", "warn")],
    );
    let token = collector.create_token(SCHOOL);
    let cfg = art.join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            "[espd]\nresolvers = [\"{}:53\"]\nmust_reach = []\nspeedtest_port = {}\nrequired_mbps = 100\n",
            ns.host_ip, collector.speedtest_port
        ),
    )
    .unwrap();
    println!("bench-espd: 8 s tests, warm-up (first 25 %) left out; tbf on both directions of a veth link");
    println!(
        "| shaped Mbit/s | download Mbit/s IP (payload) | error | upload Mbit/s IP (payload) | error | MB on the link per test (down / up) | s per test (down / up) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for mbit in rates {
        let rate = format!("{mbit}mbit");
        let burst = format!("{}kb", (mbit * 2).max(64));
        let q = ["tbf", "rate", rate.as_str(), "burst", burst.as_str(), "latency", "100ms"];
        ns.shape(&q);
        ns.shape_outbound(&q);
        let run =
            check_espd(Some(&ns.name), &cfg, &art, &mbit.to_string(), collector.probe_env(SCHOOL, &token));
        let get = |kind: &str| {
            let c = run["checks"].as_array().unwrap().iter().find(|c| c["kind"] == kind).unwrap().clone();
            let t = &c["throughput"];
            if t.is_null() {
                println!("  {kind} at {mbit} Mbit/s failed: {}", c["error"]);
                return (0.0, 0.0, 0.0, 0.0);
            }
            (
                t["ip_bits_per_s"].as_f64().unwrap() / 1e6,
                t["bits_per_s"].as_f64().unwrap() / 1e6,
                t["total_bytes"].as_f64().unwrap() / 1e6,
                c["duration_ms"].as_f64().unwrap() / 1000.0,
            )
        };
        let (down, down_payload, down_mb, down_s) = get("download");
        let (up, up_payload, up_mb, up_s) = get("upload");
        let err = |m: f64| (m - f64::from(mbit)) / f64::from(mbit) * 100.0;
        println!(
            "| {mbit} | {down:.1} ({down_payload:.1}) | {:+.1} % | {up:.1} ({up_payload:.1}) | {:+.1} % | {down_mb:.0} / {up_mb:.0} | {down_s:.1} / {up_s:.1} |",
            err(down),
            err(up)
        );
    }
}
