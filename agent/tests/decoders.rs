//! The file decoders never panic on arbitrary bytes, and valid input round-trips: EDID blocks,
//! wtmp records, /proc/cpuinfo, os-release, SNMP replies (through the same reply path the
//! poller uses, into the MIB readers).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use parta_agent::snmp::client::Reply;
use parta_agent::snmp::mib;
use parta_agent::sources::edid::{self, Spec};
use parta_agent::sources::inventory::parse_cpuinfo;
use parta_agent::sources::osrelease;
use parta_agent::sources::power::{self, WtmpEvent};
use proptest::prelude::*;

/// A v2c response PDU around `varbinds` (already encoded), for mutation.
fn v2c_response(varbinds: &[u8]) -> Vec<u8> {
    fn tlv(tag: u8, c: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        if c.len() < 128 {
            v.push(c.len() as u8);
        } else {
            v.extend([0x82, (c.len() >> 8) as u8, c.len() as u8]);
        }
        v.extend(c);
        v
    }
    let pdu = tlv(0xa2, &[&[2, 1, 7][..], &[2, 1, 0], &[2, 1, 0], &tlv(0x30, varbinds)].concat());
    tlv(0x30, &[&[2, 1, 1][..], &tlv(4, b"public"), &pdu].concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn snmp_replies_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(r) = Reply::decode(&bytes) {
            mib::read_everything(&r);
        }
    }

    #[test]
    fn snmp_varbinds_never_panic(varbinds in proptest::collection::vec(any::<u8>(), 0..300), cut in 0usize..400) {
        // Structurally valid envelopes with arbitrary varbind bytes, whole and truncated.
        let msg = v2c_response(&varbinds);
        for m in [&msg[..], &msg[..cut.min(msg.len())]] {
            if let Ok(r) = Reply::decode(m) {
                mib::read_everything(&r);
            }
        }
    }

    #[test]
    fn edid_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = edid::parse(&bytes);
    }

    #[test]
    fn edid_with_fixed_header_and_checksums_never_panics(mut body in proptest::collection::vec(any::<u8>(), 128..=512)) {
        body[..8].copy_from_slice(&[0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0]);
        // Valid checksums on every whole block, so that the extensions (CTA, DisplayID) are read.
        for block in body.chunks_mut(128).filter(|b| b.len() == 128) {
            let sum = block[..127].iter().fold(0u8, |a, x| a.wrapping_add(*x));
            block[127] = 0u8.wrapping_sub(sum);
        }
        let e = edid::parse(&body).unwrap();
        prop_assert!(e.manufacturer.len() == 3);
        let d = parta_agent::sources::display::decide_size(&e);
        let _ = d.diagonal_decimal_in();
        let panels = parta_agent::sources::display::PanelMakers::built_in();
        let _ = parta_agent::sources::display::decide_class(&d, &e.manufacturer, e.name.as_deref(), &panels);
    }

    #[test]
    fn edid_round_trips(
        mfr in "[A-Z]{3}",
        product in any::<u16>(),
        serial in any::<u32>(),
        name in proptest::option::of("[A-Za-z0-9 ]{1,13}"),
        year in 1991u16..2245, // year byte 0 (1990) reads as unknown
        w in 1u16..4000,
        h in 1u16..4000,
    ) {
        let bytes = edid::encode(&Spec { manufacturer: &mfr, product_code: product, serial_number: serial, serial_text: None, name: name.as_deref(), year, width_mm: w, height_mm: h, ..Spec::default() });
        let e = edid::parse(&bytes).unwrap();
        prop_assert_eq!(e.manufacturer, mfr);
        prop_assert_eq!((e.product_code, e.serial_number, e.year), (product, serial, year));
        prop_assert_eq!((e.stated[0].width_mm, e.stated[0].height_mm), (u32::from(w), u32::from(h)));
        prop_assert_eq!(e.name, name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()));
    }

    #[test]
    fn wtmp_parse_never_panics_and_round_trips(
        garbage in proptest::collection::vec(any::<u8>(), 0..2000),
        times in proptest::collection::vec(0i64..2_147_483_647_000, 0..20), // wtmp holds 32-bit seconds
    ) {
        let _ = power::parse_wtmp(&garbage);
        let events: Vec<WtmpEvent> = times.iter().enumerate().map(|(i, t)| if i % 2 == 0 { WtmpEvent::Boot(*t) } else { WtmpEvent::Shutdown(*t) }).collect();
        let bytes: Vec<u8> = events.iter().flat_map(|e| power::wtmp_record(*e)).collect();
        prop_assert_eq!(power::parse_wtmp(&bytes), events);
    }

    #[test]
    fn text_parsers_never_panic(text in "\\PC{0,400}") {
        let _ = parse_cpuinfo(&text);
        let _ = osrelease::parse(&text);
    }
}

/// The fuzz seeds (`agent/fuzz/seeds/snmp_reply`) are real replies the readers understand, so
/// the fuzzer starts from the structure the poller meets.
#[test]
fn snmp_fuzz_seeds_decode() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/snmp_reply");
    let read = |name: &str| Reply::decode(&std::fs::read(dir.join(name)).unwrap()).unwrap();
    for name in ["system_v2c", "system_v1"] {
        let sys = mib::parse_system(&read(name)).unwrap();
        assert_eq!(
            (sys.descr.as_str(), sys.name.as_str(), sys.uptime_cs),
            ("Коммутатор MES2324", "sw-1", 123_456)
        );
        assert_eq!(sys.location, "Школа");
    }
    let bulk = read("bulk_v2c");
    assert_eq!(bulk.varbinds.len(), 25);
    mib::read_everything(&bulk);
    assert_eq!(read("report").varbinds.len(), 1);
}
