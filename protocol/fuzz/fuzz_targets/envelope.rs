//! Arbitrary bytes to the envelope decoder, and to the validator when they decode.
#![no_main]

use libfuzzer_sys::fuzz_target;
use parta_protocol::{Message, decode, validate};

fuzz_target!(|data: &[u8]| {
    match decode(data) {
        Ok(Message::Report(r)) => {
            let _ = validate::validate_report(&r);
            let mut r = r;
            r.seq = r.seq.max(1);
            validate::sanitize_report(&mut r);
            assert_eq!(validate::validate_report(&r), Ok(()));
        }
        Ok(Message::Hello(h)) => {
            let _ = validate::validate_hello(&h);
        }
        _ => {}
    }
});
