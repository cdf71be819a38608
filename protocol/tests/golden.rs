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
