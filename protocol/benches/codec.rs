//! Encode + decode cost of a typical host report, and its size on the wire.
//!
//! `cargo bench -p parta-protocol --bench codec`. The size figure is printed once before the
//! timings. The baseline rows (`*_json`) handle the same report as JSON with serde_json in the
//! same run, so the ratios do not depend on the machine.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use parta_protocol::{FrameDecoder, Message, decode, encode, encode_frame, examples};

fn bench(c: &mut Criterion) {
    let report = examples::typical_report(1_000);
    let frame = encode_frame(&report).unwrap();
    let first = encode_frame(&examples::first_report()).unwrap();
    let Message::Report(r) = &report else { unreachable!() };
    let json = serde_json::to_vec(r).unwrap();
    println!(
        "wire size: typical report {} B per frame (goal ≤ 512 B), first report with identity {} B; \
         the same report as JSON {} B (postcard/JSON = {:.2})",
        frame.len(),
        first.len(),
        json.len(),
        frame.len() as f64 / json.len() as f64
    );

    c.bench_function("encode_typical_report", |b| b.iter(|| encode(black_box(&report)).unwrap()));
    let body = encode(&report).unwrap();
    c.bench_function("decode_typical_report", |b| b.iter(|| decode(black_box(&body)).unwrap()));
    c.bench_function("encode_decode_typical_report", |b| {
        b.iter(|| decode(&encode(black_box(&report)).unwrap()).unwrap())
    });
    c.bench_function("encode_decode_typical_report_json", |b| {
        b.iter(|| {
            let bytes = serde_json::to_vec(black_box(r)).unwrap();
            serde_json::from_slice::<parta_protocol::Report>(&bytes).unwrap()
        })
    });
    let mut stream = Vec::new();
    for seq in 1..=1000 {
        stream.extend(encode_frame(&examples::typical_report(seq)).unwrap());
    }
    c.bench_function("frame_decode_1000_reports", |b| {
        b.iter(|| {
            let mut dec = FrameDecoder::new();
            let mut n = 0;
            for chunk in black_box(&stream).chunks(16 * 1024) {
                dec.push(chunk);
                while dec.next_frame().unwrap().is_some() {
                    n += 1;
                }
            }
            assert_eq!(n, 1000);
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
