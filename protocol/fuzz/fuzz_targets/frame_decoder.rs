//! Feeds arbitrary bytes, split at fuzzer-chosen points, to the frame decoder: it must never
//! panic, never buffer beyond the limit plus one chunk, and every message it returns must survive
//! encode → decode → encode with identical bytes (bytes, not values: NaN ≠ NaN).
#![no_main]

use libfuzzer_sys::fuzz_target;
use parta_protocol::{FrameDecoder, FrameError, encode_frame};

fuzz_target!(|data: &[u8]| {
    let (split, bytes) = match data.split_first() {
        Some((s, rest)) => (usize::from(*s).max(1), rest),
        None => return,
    };
    let mut dec = FrameDecoder::with_max_len(64 * 1024);
    for chunk in bytes.chunks(split) {
        dec.push(chunk);
        loop {
            match dec.next_frame() {
                Ok(Some(msg)) => {
                    let once = encode_frame(&msg).expect("decoded message re-encodes");
                    let mut d2 = FrameDecoder::new();
                    d2.push(&once);
                    let back = d2.next_frame().expect("re-encoded frame decodes").expect("whole frame");
                    assert_eq!(encode_frame(&back).expect("encodes"), once);
                }
                Ok(None) => break,
                Err(FrameError::Decode(_)) => continue,
                Err(_) => return,
            }
        }
        assert!(dec.buffered() <= 64 * 1024 + 4 + chunk.len());
    }
});
