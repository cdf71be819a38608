//! Spool append cost per report and the fsync policy trade-off, on the real filesystem of the
//! working directory (not tmpfs), against a baseline measured in the same run: appending the
//! same bytes to a plain file with no framing, checksum or sync.
//!
//! `cargo bench -p parta-agent --bench spool`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use parta_agent::spool::{FsyncPolicy, Spool, SpoolConfig};
use parta_protocol::{encode_frame, examples};

fn bench(c: &mut Criterion) {
    let frame = encode_frame(&examples::typical_report(1)).unwrap();
    // The target directory is on the project's disk; /tmp may be a tmpfs elsewhere.
    let base = std::env::current_dir().unwrap().join("target/bench-spool");
    std::fs::create_dir_all(&base).unwrap();
    let mut group = c.benchmark_group("append_typical_report");
    group.measurement_time(Duration::from_secs(5));

    group.bench_function("baseline_plain_file_write", |b| {
        let dir = tempfile::tempdir_in(&base).unwrap();
        let mut f =
            std::fs::OpenOptions::new().create(true).append(true).open(dir.path().join("plain")).unwrap();
        b.iter(|| f.write_all(&frame).unwrap());
    });
    group.bench_function("baseline_plain_file_write_fsync", |b| {
        let dir = tempfile::tempdir_in(&base).unwrap();
        let mut f =
            std::fs::OpenOptions::new().create(true).append(true).open(dir.path().join("plain")).unwrap();
        b.iter(|| {
            f.write_all(&frame).unwrap();
            f.sync_data().unwrap();
        });
    });
    for (name, fsync) in [
        ("spool_fsync_always", FsyncPolicy::Always),
        ("spool_fsync_interval_1s", FsyncPolicy::Interval(Duration::from_secs(1))),
    ] {
        group.bench_function(name, |b| {
            let dir = tempfile::tempdir_in(&base).unwrap();
            let cfg = SpoolConfig { fsync, ..SpoolConfig::default() };
            let mut spool = Spool::open(dir.path(), cfg).unwrap();
            b.iter(|| {
                let seq = spool.next_seq();
                spool.append(seq, 1_763_802_060_000, false, &frame).unwrap();
                if seq.is_multiple_of(1000) {
                    spool.maintain(1_763_802_060_000);
                }
            });
        });
    }
    group.finish();

    // Reading a backlog back (what a reconnect costs the agent): 10,000 reports.
    c.bench_function("read_backlog_10000", |b| {
        let dir = tempfile::tempdir_in(&base).unwrap();
        let cfg =
            SpoolConfig { fsync: FsyncPolicy::Interval(Duration::from_secs(1)), ..SpoolConfig::default() };
        let mut spool = Spool::open(dir.path(), cfg).unwrap();
        for _ in 0..10_000 {
            let seq = spool.next_seq();
            spool.append(seq, 1_763_802_060_000, false, &frame).unwrap();
        }
        b.iter(|| {
            let mut from = 1;
            let mut n = 0;
            loop {
                let batch = spool.read(from, u64::MAX, 1024, 256 * 1024).unwrap();
                if batch.records.is_empty() {
                    break;
                }
                n += batch.records.len();
                from = batch.scanned_to + 1;
            }
            assert_eq!(n, 10_000);
        });
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
