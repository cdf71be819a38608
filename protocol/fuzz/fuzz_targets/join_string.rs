//! Arbitrary text as a join string (people paste them): never panics, and what parses prints
//! back as a string that parses to the same thing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use parta_protocol::join::Join;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(j) = text.parse::<Join>() {
        let again: Join = j.to_string().parse().expect("a printed join string parses");
        assert_eq!(again, j);
    }
});
