//! Arbitrary bytes as a release signature file (it arrives from the collector): never panics;
//! what parses renders back to the same bytes, and a signature check and an artifact check on
//! it end in a verdict (any key: the fuzzer cannot forge one).
#![no_main]

use libfuzzer_sys::fuzz_target;
use parta_protocol::release::Manifest;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Manifest::parse(data) {
        assert_eq!(m.render().as_bytes(), data, "a parsed signature file renders back to its bytes");
        let _ = m.verify_signature(&[[7u8; 32]]);
        let mut c = m.checker();
        let _ = c.update(data);
        let _ = c.finish();
    }
});
