//! Arbitrary bytes as a monitor's EDID block (read from sysfs, written by the monitor).
#![no_main]

use libfuzzer_sys::fuzz_target;
use parta_agent::sources::edid;

fuzz_target!(|data: &[u8]| {
    if let Ok(e) = edid::parse(data) {
        let _ = e.diagonal_decimal_in();
    }
});
