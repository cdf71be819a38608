//! Arbitrary bytes as speed-test control messages (request and reply), as the collector and
//! the agent read them: a length prefix checked against the limit, then the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use parta_protocol::speedtest::{SpeedTestReply, SpeedTestRequest, control_len, decode_control, encode_control};

fuzz_target!(|data: &[u8]| {
    if data.len() >= 4 {
        let _ = control_len([data[0], data[1], data[2], data[3]]);
    }
    if let Ok(r) = decode_control::<SpeedTestRequest>(data) {
        // What decodes, re-encodes to a body that decodes to the same request (postcard
        // accepts overlong varints, so the bytes themselves may differ).
        assert_eq!(decode_control::<SpeedTestRequest>(&encode_control(&r)[4..]).ok(), Some(r));
    }
    let _ = decode_control::<SpeedTestReply>(data);
});
