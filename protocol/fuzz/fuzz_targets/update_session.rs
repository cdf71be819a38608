//! The agent's update state machine driven by arbitrary offers, bytes at arbitrary offsets,
//! early ends, installer outcomes and full disks: never panics, never reports a detail longer than the
//! bound, and a release is only ever complete when the offer verified (the fuzzer has no
//! trusted key's signature, so nothing completes).
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use parta_protocol::release::ReleaseVersion;
use parta_protocol::update::{DeviceFacts, MAX_DETAIL, Progress, UpdateState, Updater};

fuzz_target!(|data: &[u8]| {
    let facts = DeviceFacts {
        name: "parta-agent".into(),
        target: "x86_64-linux".into(),
        running: ReleaseVersion { major: 0, minor: 1, patch: 0 },
        trusted: vec![[7u8; 32]],
    };
    let mut u = Updater::new(facts, BTreeMap::new());
    let mut rest = data;
    while let Some((&op, tail)) = rest.split_first() {
        let n = usize::from(tail.first().copied().unwrap_or(0)).min(tail.len().saturating_sub(1));
        let (arg, next) = tail.get(1..).unwrap_or_default().split_at(n);
        rest = next;
        match op % 5 {
            0 => {
                let _ = u.offer(arg, u32::from(op / 4));
            }
            1 => {
                let offset = u64::from(op / 4) * 16;
                if let Ok(Progress::Complete) = u.bytes(offset, arg) {
                    panic!("completed a release no trusted key signed");
                }
            }
            2 => {
                let _ = u.end();
            }
            3 => {
                let v = ReleaseVersion { major: 0, minor: u32::from(op / 5), patch: 0 };
                u.out_of_space(v, std::str::from_utf8(arg).unwrap_or(""));
            }
            _ => {
                let v = ReleaseVersion { major: 0, minor: u32::from(op / 4), patch: 0 };
                let state = [
                    UpdateState::Installing,
                    UpdateState::Installed,
                    UpdateState::RolledBack,
                    UpdateState::Failed,
                ][usize::from(op / 4) % 4];
                u.installer(v, state, std::str::from_utf8(arg).unwrap_or(""));
            }
        }
        for r in u.take_reports() {
            assert!(r.detail.len() <= MAX_DETAIL);
        }
    }
});
