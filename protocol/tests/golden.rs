//! Golden byte fixtures: the wire format of every example message is frozen in
//! `tests/golden/*.bin`. A failing comparison means the wire format changed — that needs a new
//! protocol version, not a new fixture. Regenerate only for a new version:
//! `PARTA_BLESS=1 cargo test -p parta-protocol --test golden`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use parta_protocol::{FrameDecoder, decode, encode, encode_frame, examples};

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

#[test]
fn encoded_bytes_match_the_fixtures() {
    let bless = std::env::var_os("PARTA_BLESS").is_some();
    for (name, msg) in examples::all() {
        let path = golden_dir().join(format!("{name}.bin"));
        let bytes = encode(&msg).unwrap();
        if bless {
            std::fs::write(&path, &bytes).unwrap();
        }
        let golden = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (bless with PARTA_BLESS=1)", path.display()));
        assert_eq!(
            hex::encode(&bytes),
            hex::encode(&golden),
            "{name}: encoding differs from {}",
            path.display()
        );
        assert_eq!(decode(&golden).unwrap(), msg, "{name}: fixture decodes differently");
    }
}

#[test]
fn fixtures_decode_through_the_frame_decoder() {
    let mut dec = FrameDecoder::new();
    let mut expected = Vec::new();
    for (_, msg) in examples::all() {
        dec.push(&encode_frame(&msg).unwrap());
        expected.push(msg);
    }
    let mut got = Vec::new();
    while let Some(m) = dec.next_frame().unwrap() {
        got.push(m);
    }
    assert_eq!(got, expected);
}

#[test]
fn typical_report_fits_the_size_goal() {
    // Goal from the skeleton issue: ≤ 512 bytes on the wire per report (frame prefix included).
    let frame = encode_frame(&examples::typical_report(1_000_000)).unwrap();
    assert!(frame.len() <= 512, "typical report is {} bytes", frame.len());
}

/// The largest SNMP polls an agent can make (every interface of the largest table with every
/// text at IF-MIB's 255 characters) still travel: one fits the agent's per-report budget, and
/// a report packed up to that budget with the other samples of a report fits a frame. Texts
/// that long survive sanitizing (stacked switches end them with the unit number).
#[test]
fn largest_snmp_polls_fit_a_frame() {
    use parta_protocol::validate::{
        MAX_IF_TEXT, MAX_SNMP_INTERFACES, MAX_SNMP_POLLS, MAX_TEXT, SNMP_REPORT_BYTES,
    };
    use parta_protocol::{MAX_FRAME_LEN, Message, Report, Sample};
    let long = |n: usize| "x".repeat(n);
    let mut poll = examples::switch_poll();
    let mut iface = poll.interfaces[0].clone();
    (iface.name, iface.alias, iface.descr) = (long(MAX_IF_TEXT), long(MAX_IF_TEXT), long(MAX_IF_TEXT));
    poll.interfaces = vec![iface; MAX_SNMP_INTERFACES];
    for t in [&mut poll.target, &mut poll.label, &mut poll.room, &mut poll.error] {
        *t = long(MAX_TEXT);
    }
    let sample = Sample::Snmp(Box::new(poll));
    let one = parta_protocol::codec::sample_len(&sample);
    assert!(one <= SNMP_REPORT_BYTES, "one poll is {one} bytes");
    // As the agent packs them: while the budget and the count allow, at least one.
    let n = (SNMP_REPORT_BYTES / one).clamp(1, MAX_SNMP_POLLS);
    let Message::Report(typical) = examples::typical_report(1_000_000) else { unreachable!() };
    let mut samples = typical.samples.clone();
    samples.extend(std::iter::repeat_n(sample, n));
    let report = Message::Report(Report { samples, ..typical });
    let frame = encode_frame(&report).unwrap();
    assert!(frame.len() <= MAX_FRAME_LEN, "{n} polls of {one} bytes make a {}-byte frame", frame.len());

    // A D-Link DGS-1510 port description (72 characters) is kept whole.
    let descr = "D-Link Corporation DGS-1510-28 HW A1 firmware 1.50.021 Port 1 on Unit 2";
    let mut poll = examples::switch_poll();
    poll.interfaces[0].descr = descr.into();
    let mut r = Report { seq: 1, agent_time_ms: 0, samples: vec![Sample::Snmp(Box::new(poll))] };
    parta_protocol::validate::sanitize_report(&mut r);
    let Sample::Snmp(p) = &r.samples[0] else { unreachable!() };
    assert_eq!(p.interfaces[0].descr, descr);
}

/// The signature file format is frozen too: a key from a fixed seed signs a fixed artifact
/// (Ed25519 signatures are deterministic), and the file must come out byte for byte.
#[test]
fn release_signature_file_matches_the_fixture() {
    use parta_protocol::release::Manifest;
    use ring::signature::KeyPair as _;
    use sha2::Digest as _;
    let key = ring::signature::Ed25519KeyPair::from_seed_unchecked(&[42; 32]).unwrap();
    let public: [u8; 32] = key.public_key().as_ref().try_into().unwrap();
    let artifact = b"parta-agent 0.2.0 for the golden fixture\n";
    let digest = sha2::Sha256::digest(artifact).into();
    let m = Manifest::sign(
        "parta-agent",
        "0.2.0".parse().unwrap(),
        "x86_64-linux",
        artifact.len() as u64,
        digest,
        &key,
    );
    let path = golden_dir().join("release.sig");
    if std::env::var_os("PARTA_BLESS").is_some() {
        std::fs::write(&path, m.render()).unwrap();
    }
    let golden = std::fs::read(&path).unwrap();
    assert_eq!(String::from_utf8_lossy(&golden), m.render());
    let back = Manifest::parse(&golden).unwrap();
    back.verify_signature(&[public]).unwrap();
    let mut c = back.checker();
    c.update(artifact).unwrap();
    c.finish().unwrap();
}
