//! Chunk stream throughput on a realistic live media mix, against a memcpy baseline.
//!
//! Ten seconds of a typical camera publish: H.264 at 30 fps (~60 KB keyframe every 60 frames,
//! ~10 KB inter frames, about 2.6 Mbit/s) and AAC at ~47 frames/s of 370 bytes, interleaved in
//! timestamp order on separate chunk streams as a publisher sends them. Every benchmark
//! reports bytes/s of message payload, so the writer and reader numbers compare directly with
//! the memcpy of the same number of bytes.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rsrtmp_engine::chunk::{ChunkLimits, ChunkReader, ChunkWriter};
use rsrtmp_engine::message::{Control, Message, msg_type};

const AUDIO_CSID: u32 = 6;
const VIDEO_CSID: u32 = 7;
const READ_SIZE: usize = 16 * 1024;
const CHUNK_SIZES: [u32; 2] = [128, 4096];

fn payload(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| seed.wrapping_add((i as u8).wrapping_mul(37)))
        .collect::<Vec<u8>>()
        .into()
}

/// (csid, message) in send order.
fn media_mix() -> Vec<(u32, Message)> {
    let mut out = Vec::new();
    let video = (0..300u32).map(|i| {
        let len = if i % 60 == 0 { 60_000 } else { 10_000 };
        let msg = Message {
            type_id: msg_type::VIDEO,
            timestamp: i * 1000 / 30,
            stream_id: 1,
            payload: payload(len, i as u8),
        };
        (VIDEO_CSID, msg)
    });
    // AAC: 1024 samples at 48 kHz, 21.33 ms per frame.
    let audio = (0..469u32).map(|i| {
        let msg = Message {
            type_id: msg_type::AUDIO,
            timestamp: i * 1024 / 48,
            stream_id: 1,
            payload: payload(370, i as u8),
        };
        (AUDIO_CSID, msg)
    });
    out.extend(video);
    out.extend(audio);
    out.sort_by_key(|(_, m)| m.timestamp);
    out
}

fn write_all(msgs: &[(u32, Message)], chunk_size: u32, out: &mut BytesMut) {
    let mut w = ChunkWriter::new();
    w.write_message(2, &Control::SetChunkSize(chunk_size).to_message(), out);
    w.set_chunk_size(chunk_size);
    for (csid, m) in msgs {
        w.write_message(*csid, m, out);
    }
}

fn bench(c: &mut Criterion) {
    let msgs = media_mix();
    let total: usize = msgs.iter().map(|(_, m)| m.payload.len()).sum();
    let mut group = c.benchmark_group("chunk");
    group.throughput(Throughput::Bytes(total as u64));

    let src = vec![0x5au8; total];
    let mut dst = vec![0u8; total];
    group.bench_function("memcpy", |b| {
        b.iter(|| {
            dst.copy_from_slice(black_box(&src));
            black_box(&mut dst);
        })
    });

    for size in CHUNK_SIZES {
        let mut out = BytesMut::with_capacity(total * 11 / 10);
        group.bench_with_input(BenchmarkId::new("write", size), &size, |b, &size| {
            b.iter(|| {
                out.clear();
                write_all(black_box(&msgs), size, &mut out);
                black_box(out.len())
            })
        });
    }

    for size in CHUNK_SIZES {
        let mut encoded = BytesMut::new();
        write_all(&msgs, size, &mut encoded);
        let encoded = encoded.freeze();
        group.bench_with_input(BenchmarkId::new("read", size), &encoded, |b, encoded| {
            b.iter(|| {
                let mut r = ChunkReader::new(ChunkLimits::default());
                let mut count = 0usize;
                for piece in encoded.chunks(READ_SIZE) {
                    r.feed(piece);
                    while let Some(m) = r.read_message().expect("valid stream") {
                        count += m.payload.len();
                    }
                }
                assert_eq!(count, total + 4);
                black_box(count)
            })
        });
    }

    // As "read", but the bytes are appended straight into the reader's input buffer, as an
    // I/O driver does with `read_buf`: the copy here stands in for the socket read, which
    // with `feed` would land in a separate buffer first and then be copied again.
    for size in CHUNK_SIZES {
        let mut encoded = BytesMut::new();
        write_all(&msgs, size, &mut encoded);
        let encoded = encoded.freeze();
        group.bench_with_input(
            BenchmarkId::new("read_direct", size),
            &encoded,
            |b, encoded| {
                b.iter(|| {
                    let mut r = ChunkReader::new(ChunkLimits::default());
                    let mut count = 0usize;
                    for piece in encoded.chunks(READ_SIZE) {
                        r.read_buf(READ_SIZE).extend_from_slice(piece);
                        while let Some(m) = r.read_message().expect("valid stream") {
                            count += m.payload.len();
                        }
                    }
                    assert_eq!(count, total + 4);
                    black_box(count)
                })
            },
        );
    }

    // The relay path: decode a publisher's chunk stream and re-encode every message for a
    // player, as a server does once per message.
    for size in CHUNK_SIZES {
        let mut encoded = BytesMut::new();
        write_all(&msgs, size, &mut encoded);
        let encoded = encoded.freeze();
        let mut out = BytesMut::with_capacity(encoded.len() * 11 / 10);
        group.bench_with_input(BenchmarkId::new("relay", size), &encoded, |b, encoded| {
            b.iter(|| {
                let mut r = ChunkReader::new(ChunkLimits::default());
                let mut w = ChunkWriter::new();
                w.set_chunk_size(size);
                out.clear();
                for piece in encoded.chunks(READ_SIZE) {
                    r.feed(piece);
                    while let Some(m) = r.read_message().expect("valid stream") {
                        w.write_message(7, &m, &mut out);
                    }
                }
                black_box(out.len())
            })
        });
    }

    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
