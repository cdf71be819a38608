//! Arbitrary bytes to the envelope decoder, and to the validator when they decode.
#![no_main]

use libfuzzer_sys::fuzz_target;
use parta_protocol::{Message, decode, validate};

fuzz_target!(|data: &[u8]| {
    // The tag read before authentication agrees with the full decoder.
    if let (Ok(tag), Ok(msg)) = (parta_protocol::codec::peek_tag(data), decode(data)) {
        let expected = match msg {
            Message::Hello(_) => parta_protocol::message::tag::HELLO,
            Message::Report(_) => parta_protocol::message::tag::REPORT,
            Message::Enroll(_) => parta_protocol::message::tag::ENROLL,
            _ => tag,
        };
        assert_eq!(tag, expected);
    }
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
        Ok(Message::Enroll(e)) => {
            let _ = validate::validate_enroll(&e);
        }
        _ => {}
    }
});
