//! Utilization queries on the real ClickHouse: a school of N devices (default 500) over D days
//! (default 90), about 40 usage intervals per device per day, as agents would send them.
//!
//! `cargo run --release -p parta-tests --bin bench-utilization -- [DEVICES] [DAYS]`
//!
//! Prints the time of `GET /api/v1/schools/{id}/utilization` (the collector's own query through
//! its storage code) and of one device's 90-day usage, against a baseline measured in the same
//! run: a plain `sum(end_ms - start_ms)` over the raw intervals (one scan, no dedup, no join).
//! The API reads the daily rollup (`usage_daily`), which the loader recomputes as the collector
//! does after each insert.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use parta_collector::config::ClickHouseConfig;
use parta_collector::storage::Store;
use parta_collector::storage::queries::day_string;
use parta_collector::storage::rows::{Batch, DeviceAttrRow, UsageRow};
use parta_tests::clickhouse::ClickHouse;
use uuid::Uuid;

const SCHOOL: &str = "74-0012";
const DAY_MS: i64 = 86_400_000;
/// 2026-08-25 00:00 UTC as local day 0 of the run.
const FIRST_DAY: i64 = 20_690;

fn classes(i: usize) -> &'static str {
    match i % 10 {
        0..=5 => "pupil_laptop",
        6 | 7 => "teacher_laptop",
        8 => "interactive_complex",
        _ => "desktop",
    }
}

/// A school day of one device: off at night, powered 7:00–18:00 in 40 alternating pieces.
fn day_rows(device: Uuid, day: i64, seq: u64, out: &mut Vec<UsageRow>) {
    let start = (FIRST_DAY + day) * DAY_MS;
    let on = start + 7 * 3_600_000;
    let off = start + 18 * 3_600_000;
    let mut push = |a: i64, b: i64, state: &str, class: &str| {
        out.push(UsageRow {
            device_id: device,
            host_id: device,
            school_id: SCHOOL.into(),
            subject: "host".into(),
            start_ms: a,
            end_ms: b,
            start: u32::try_from(a / 1000).unwrap(),
            local_day: u16::try_from(FIRST_DAY + day).unwrap(),
            state: state.into(),
            user_class: class.into(),
            user_key: 0,
            seq,
            received: u32::try_from(b / 1000).unwrap(),
        });
    };
    push(start, on, "off", "none");
    let piece = (off - on) / 38;
    for k in 0..38 {
        let a = on + k * piece;
        let (state, class) = if k % 2 == 0 {
            ("in_use", if k % 4 == 0 { "pupil" } else { "teacher" })
        } else {
            ("idle", "none")
        };
        push(a, if k == 37 { off } else { a + piece }, state, class);
    }
    push(off, start + DAY_MS, "off", "none");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let devices: usize = args.get(1).map_or(500, |s| s.parse().unwrap());
    let days: i64 = args.get(2).map_or(90, |s| s.parse().unwrap());
    let ch = ClickHouse::start();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let cfg = ClickHouseConfig {
            url: ch.url(),
            database: "bench_util".into(),
            user: "default".into(),
            password: String::new(),
        };
        let store = Store::connect(&cfg).await.unwrap();
        store.migrate().await.unwrap();
        println!("ClickHouse {}; {devices} devices × {days} days", store.version());
        let ids: Vec<Uuid> = (0..devices).map(|i| Uuid::from_u128(0x5000 + i as u128)).collect();
        let load = Instant::now();
        let mut rows = 0usize;
        let mut rollup_time = Duration::ZERO;
        for chunk in ids.chunks(25) {
            let mut b = Batch::default();
            for (i, id) in chunk.iter().enumerate() {
                b.attrs.push(DeviceAttrRow {
                    device_id: *id,
                    host_id: *id,
                    school_id: SCHOOL.into(),
                    kind: "computer".into(),
                    equipment_class: classes(i).into(),
                    room: format!("{}", 100 + i % 30),
                    label: format!("pc-{i}"),
                    serial: String::new(),
                    version: 1,
                });
                for d in 0..days {
                    day_rows(*id, d, u64::try_from(d).unwrap() + 1, &mut b.usage);
                }
            }
            rows += b.usage.len();
            store.insert_rows("device_attrs", &b.attrs).await.unwrap();
            store.insert_rows("usage_intervals", &b.usage).await.unwrap();
            // As the collector does after each batch: recompute the touched devices' days.
            let roll = Instant::now();
            let first = u16::try_from(FIRST_DAY).unwrap();
            let last = u16::try_from(FIRST_DAY + days - 1).unwrap();
            store.rollup_usage(&[SCHOOL.to_owned()], chunk, first, last).await.unwrap();
            rollup_time += roll.elapsed();
        }
        println!(
            "loaded {rows} intervals in {:.1} s, of which daily rollups {:.1} s ({} devices × {days} days per statement)",
            load.elapsed().as_secs_f64(),
            rollup_time.as_secs_f64(),
            25
        );
        let store = Arc::new(store);
        let from = day_string(u16::try_from(FIRST_DAY).unwrap());
        let to = day_string(u16::try_from(FIRST_DAY + days - 1).unwrap());
        let measure = |name: &str, runs: usize, f: &dyn Fn() -> Duration| -> f64 {
            let mut v: Vec<f64> = (0..runs).map(|_| f().as_secs_f64() * 1000.0).collect();
            v.sort_by(f64::total_cmp);
            let median = v[v.len() / 2];
            println!(
                "{name:<44} median {median:>8.1} ms  (min {:.1}, max {:.1}, {runs} runs)",
                v[0],
                v[v.len() - 1]
            );
            median
        };
        let handle = tokio::runtime::Handle::current();
        let run = |fut: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>| {
            let started = Instant::now();
            tokio::task::block_in_place(|| handle.block_on(fut));
            started.elapsed()
        };
        let s = Arc::clone(&store);
        let (f1, t1) = (from.clone(), to.clone());
        let baseline = measure("baseline: plain sum over the same rows", 7, &|| {
            let s = Arc::clone(&s);
            let (f, t) = (f1.clone(), t1.clone());
            run(Box::pin(async move {
                s.plain_usage_sum(SCHOOL, &f, &t).await.unwrap();
            }))
        });
        let s = Arc::clone(&store);
        let (f2, t2) = (from.clone(), to.clone());
        let util = measure("school utilization (API query)", 7, &|| {
            let s = Arc::clone(&s);
            let (f, t) = (f2.clone(), t2.clone());
            run(Box::pin(async move {
                let rows = s.school_utilization(SCHOOL, &f, &t, false).await.unwrap();
                assert_eq!(rows.iter().map(|r| r.devices).sum::<u64>(), devices as u64);
            }))
        });
        let s = Arc::clone(&store);
        let device = parta_protocol::DeviceId(ids[0]);
        let usage = measure("one device's usage per day (API query)", 7, &|| {
            let s = Arc::clone(&s);
            let (f, t) = (from.clone(), to.clone());
            run(Box::pin(async move {
                let rows = s.device_usage(device, &f, &t).await.unwrap();
                assert!(!rows.is_empty());
            }))
        });
        println!("ratio utilization/baseline: {:.2}; device usage: {usage:.1} ms", util / baseline);
    });
}
