//! Arbitrary datagrams through the SNMP reply path the poller uses (BER message, v1/v2c/v3
//! envelope, PDU, varbinds), and every decoded reply into every MIB reader.
#![no_main]

use libfuzzer_sys::fuzz_target;
use parta_agent::snmp::client::Reply;
use parta_agent::snmp::mib;

fuzz_target!(|data: &[u8]| {
    if let Ok(reply) = Reply::decode(data) {
        mib::read_everything(&reply);
    }
});
