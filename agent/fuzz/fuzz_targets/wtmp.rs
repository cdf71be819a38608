//! Arbitrary bytes as /var/log/wtmp (boot and shutdown records); every event found must
//! encode back to a record that parses to the same event.
#![no_main]

use libfuzzer_sys::fuzz_target;
use parta_agent::sources::power;

fuzz_target!(|data: &[u8]| {
    for event in power::parse_wtmp(data) {
        assert_eq!(power::parse_wtmp(&power::wtmp_record(event)), vec![event]);
    }
});
