//! Arbitrary datagrams as a resolver's reply (the ЕСПД DNS check): an error or the addresses,
//! never a panic; the query id in the first two bytes is taken as expected half the time.
#![no_main]

use libfuzzer_sys::fuzz_target;
use parta_agent::espd::dns;

fuzz_target!(|data: &[u8]| {
    let id = match data {
        [a, b, ..] if a & 1 == 0 => u16::from_be_bytes([*a, *b]),
        _ => 0x1234,
    };
    if let Ok(reply) = dns::parse_reply(data, id) {
        assert!(reply.addresses.len() <= data.len() / 14);
    }
});
