//! Arbitrary text as a norm profile's quantity expression: parsed or refused with a position
//! inside the text, and a parsed one evaluates without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use parta_collector::compliance::expr;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match expr::parse(text) {
        Ok(e) => {
            let _ = e.quantity(&[640.0, 41.0, 6.0, 28.0, 2.0]);
            let _ = e.quantity(&[0.0; 5]);
        }
        Err(err) => assert!(err.at <= text.chars().count()),
    }
});
