//! How long reading takes: a real chorale, and the hostile files the CLI must refuse fast.
//! `cargo bench --bench midi`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use diffroll::midi;

fn track_chunk(body: &[u8]) -> Vec<u8> {
    let mut out = b"MTrk".to_vec();
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn header(tracks: u16) -> Vec<u8> {
    let mut out = b"MThd\0\0\0\x06\0\x01".to_vec();
    out.extend_from_slice(&tracks.to_be_bytes());
    out.extend_from_slice(&480u16.to_be_bytes());
    out
}

fn bench_read(c: &mut Criterion) {
    let chorale = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/assets/examples/chorale-bwv332.mid"
    ))
    .expect("example file");
    c.bench_function("read chorale", |b| {
        b.iter(|| midi::read(black_box(&chorale)).unwrap())
    });
    c.bench_function("read + roll + write chorale", |b| {
        b.iter(|| midi::write_roll(&midi::read(black_box(&chorale)).unwrap().to_roll(), "x"))
    });

    // 65,535 tracks of one note each: the most tracks a header can announce.
    let note = [
        0x00, 0x90, 60, 80, 0x60, 0x80, 60, 0, 0x00, 0xFF, 0x2F, 0x00,
    ];
    let mut many = header(u16::MAX);
    for _ in 0..u16::MAX {
        many.extend(track_chunk(&note));
    }
    c.bench_function("read 65535 tracks", |b| {
        b.iter(|| midi::read(black_box(&many)).unwrap())
    });

    // 16 MiB of running-status note events: the largest file accepted.
    let mut body = vec![0x00, 0x90, 60, 80];
    while body.len() < (midi::MAX_FILE_BYTES as usize) - 64 {
        body.extend_from_slice(&[0x00, 61, 80, 0x01, 61, 0]);
    }
    body.extend_from_slice(&[0x00, 0xFF, 0x2F, 0x00]);
    let mut largest = header(1);
    largest.extend(track_chunk(&body));
    let mut group = c.benchmark_group("largest file");
    group.sample_size(10);
    group.bench_function("read 16 MiB of notes", |b| {
        b.iter(|| midi::read(black_box(&largest)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench_read);
criterion_main!(benches);
