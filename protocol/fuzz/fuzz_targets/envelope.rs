//! Arbitrary bytes to the envelope decoder, and to the validator when they decode.
#![no_main]

use libfuzzer_sys::fuzz_target;
use parta_protocol::{Message, decode, validate};

fuzz_target!(|data: &[u8]| {
    match decode(data) {
        Ok(Message::Report(r)) => {
            let _ = validate::validate_report(&r);
            // The sanitiser must always produce a report that validates, unless the report
            // carries an inconsistent loss notice (which only the spool creates, consistently).
            let mut r = r;
            r.seq = r.seq.max(1);
            validate::sanitize_report(&mut r);
            let inconsistent_loss = r.samples.iter().any(|s| {
                matches!(s, parta_protocol::Sample::SpoolLoss(l)
                    if l.first_seq == 0 || l.first_seq > l.last_seq || l.reports > l.last_seq - l.first_seq + 1)
            });
            if !inconsistent_loss {
                assert_eq!(validate::validate_report(&r), Ok(()));
            }
        }
        Ok(Message::Hello(h)) => {
            let _ = validate::validate_hello(&h);
        }
        _ => {}
    }
});
