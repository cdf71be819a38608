//! How much memory a frame can make a receiver allocate when decoded, measured with a counting
//! allocator on frames built to be the worst of each kind (the smallest elements the limits
//! allow, as many as fit in a frame), and the collector's estimate of it
//! ([`parta_protocol::heap::HeapSize`]) checked against the measurement.
//!
//! One test function: the allocator counts the whole process, so nothing may run beside it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::alloc::System;

use parta_protocol::espd::{CheckKind, CheckResult, ConnectivityRun};
use parta_protocol::heap::HeapSize;
use parta_protocol::inventory::{Inventory, NicInfo};
use parta_protocol::sample::{FsUsage, HostMetrics, IfTraffic, LossReason, SpoolLoss};
use parta_protocol::snmp::{InterfaceReading, SnmpPoll};
use parta_protocol::usage::{Subject, UsageInterval, UsageState, UserClass};
use parta_protocol::validate::{
    MAX_CHECK_ADDRESSES, MAX_CHECKS, MAX_FILESYSTEMS, MAX_INTERFACES, MAX_INTERVALS, MAX_SAMPLES,
    MAX_SNMP_INTERFACES,
};
use parta_protocol::{MAX_FRAME_LEN, Message, Report, Sample, decode, encode};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// As many copies of `sample` as fit in one frame (and the sample limit).
fn fill(sample: Sample) -> Report {
    let mut n = MAX_SAMPLES;
    loop {
        let r = Report { seq: 1, agent_time_ms: 0, samples: vec![sample.clone(); n] };
        if encode(&Message::Report(r.clone())).unwrap().len() <= MAX_FRAME_LEN || n == 1 {
            return r;
        }
        n -= 1;
    }
}

fn interval() -> UsageInterval {
    UsageInterval {
        subject: Subject::Host,
        start_ms: 0,
        end_ms: 0,
        state: UsageState::Off,
        user_class: UserClass::None,
        user_key: None,
        local_day: 0,
    }
}

#[test]
fn decoding_allocates_what_the_estimate_says_and_a_bounded_multiple_of_the_frame() {
    let cases: Vec<(&str, Report)> = vec![
        (
            "minimal samples",
            fill(Sample::SpoolLoss(SpoolLoss {
                reason: LossReason::Thinned,
                first_seq: 0,
                last_seq: 0,
                reports: 0,
                oldest_ms: 0,
                newest_ms: 0,
            })),
        ),
        ("usage intervals", fill(Sample::Usage(vec![interval(); MAX_INTERVALS]))),
        (
            "metrics lists",
            fill(Sample::HostMetrics(HostMetrics {
                filesystems: vec![
                    FsUsage {
                        mount: String::new(),
                        fs_type: String::new(),
                        total: 0,
                        available: 0
                    };
                    MAX_FILESYSTEMS
                ],
                interfaces: vec![
                    IfTraffic {
                        name: String::new(),
                        rx_bytes: 0,
                        tx_bytes: 0,
                        rx_rate: None,
                        tx_rate: None
                    };
                    MAX_INTERFACES
                ],
                ..HostMetrics::default()
            })),
        ),
        (
            "SNMP interfaces",
            fill(Sample::Snmp(Box::new(SnmpPoll {
                interfaces: vec![InterfaceReading::new(0); MAX_SNMP_INTERFACES],
                ..parta_protocol::examples::switch_poll()
            }))),
        ),
        (
            "inventories",
            fill(Sample::Inventory(Box::new(Inventory {
                nics: vec![
                    NicInfo { name: String::new(), mac: None, speed_mbps: None, wireless: false };
                    MAX_INTERFACES
                ],
                disks: Vec::new(),
                displays: Vec::new(),
                ..parta_protocol::examples::inventory()
            }))),
        ),
        (
            "connectivity checks",
            fill(Sample::Connectivity(Box::new(ConnectivityRun {
                checks: vec![
                    CheckResult {
                        addresses: vec![String::new(); MAX_CHECK_ADDRESSES],
                        ..CheckResult::new(CheckKind::Reach, "", 0)
                    };
                    MAX_CHECKS
                ],
                ..parta_protocol::examples::connectivity_run()
            }))),
        ),
    ];
    for (name, report) in cases {
        let bytes = encode(&Message::Report(report)).unwrap();
        let region = Region::new(GLOBAL);
        let decoded = decode(&bytes).unwrap();
        let allocated = region.change().bytes_allocated;
        let Message::Report(r) = &decoded else { unreachable!() };
        let estimate = r.heap_size();
        // The estimate is what decoding allocated, give or take rounding of small buffers.
        assert!(
            estimate >= allocated * 9 / 10 && estimate <= allocated + allocated / 10 + 1024,
            "{name}: estimate {estimate} B, allocated {allocated} B"
        );
        let ratio = allocated as f64 / bytes.len() as f64;
        eprintln!(
            "{name}: {} B frame decodes into {allocated} B ({ratio:.1}×), estimate {estimate} B",
            bytes.len()
        );
        // Without the limits enforced while decoding, a megabyte of one-byte samples decoded
        // into hundreds of megabytes; now no frame exceeds 20 times its size (plus the sample
        // list of a small one) and 4 MiB in all.
        assert!(
            allocated <= 20 * bytes.len() + 64 * 1024 && allocated <= 4 << 20,
            "{name}: {allocated} B from {} B",
            bytes.len()
        );
        drop(decoded);
    }
}
