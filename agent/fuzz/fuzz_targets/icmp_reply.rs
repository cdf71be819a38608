//! Arbitrary packets as an ICMP socket's read (the ЕСПД latency check): ours or not, never a
//! panic; the first byte picks the socket kind.
#![no_main]

use libfuzzer_sys::fuzz_target;
use parta_agent::espd::icmp;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, packet)) = data.split_first() else { return };
    let (v6, ip_header) = (mode & 1 == 1, mode & 2 == 2);
    let id = (mode & 4 == 4).then_some(0x1234);
    if let Some(seq) = icmp::parse_reply(packet, v6, ip_header, id) {
        // A reply of ours carries the sequence number it was matched by.
        assert!(packet.len() >= 24);
        let _ = seq;
    }
});
