//! The chunk stream reader on arbitrary bytes.
//!
//! Input: `[split seed] [chunk size selector] [limits selector] stream...`. The selector, when
//! non-zero, prepends a Set Chunk Size message so that every chunk size class gets explored
//! (1, small, the 128 default, large, the 0xFFFFFF cap, out of range). The stream is read
//! once whole and once cut at the split points: both must give the same messages and the
//! same error, and nothing may panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rsrtmp_engine::chunk::{ChunkError, ChunkLimits, ChunkReader};
use rsrtmp_engine::message::Message;

mod common;

const SIZES: [u32; 16] = [
    1,
    2,
    3,
    7,
    16,
    64,
    127,
    128,
    129,
    1000,
    4096,
    65_536,
    0x00FF_FFFF,
    0x0100_0000,
    0x7FFF_FFFF,
    0,
];

fn limits(sel: u8) -> ChunkLimits {
    if sel & 1 == 0 {
        ChunkLimits::default()
    } else {
        // Tight limits, so the limit checks themselves get hit.
        ChunkLimits {
            max_chunk_size: 4096,
            max_message_len: 1 + u32::from(sel) * 64,
            max_chunk_streams: 1 + usize::from(sel >> 4),
            max_partial_messages: 1 + usize::from((sel >> 1) & 7),
        }
    }
}

fn run<'a>(
    pieces: impl Iterator<Item = &'a [u8]>,
    limits: ChunkLimits,
) -> (Vec<Message>, Option<ChunkError>) {
    let mut reader = ChunkReader::new(limits);
    let mut out = Vec::new();
    for piece in pieces {
        reader.feed(piece);
        loop {
            match reader.read_message() {
                Ok(Some(m)) => {
                    assert!(m.payload.len() <= 0x00FF_FFFF);
                    out.push(m);
                }
                Ok(None) => break,
                Err(e) => {
                    // Messages must say what was wrong: Display must not panic.
                    let _ = e.to_string();
                    return (out, Some(e));
                }
            }
        }
    }
    (out, None)
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let (split, size_sel, limit_sel, body) = (data[0], data[1], data[2], &data[3..]);
    let mut stream = Vec::with_capacity(body.len() + 16);
    if size_sel != 0 {
        let size = SIZES[usize::from(size_sel & 15)].wrapping_add(u32::from(size_sel >> 4));
        // fmt 0, csid 2, timestamp 0, length 4, type 1 (Set Chunk Size), stream 0.
        stream.extend_from_slice(&[0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0]);
        stream.extend_from_slice(&size.to_be_bytes());
    }
    stream.extend_from_slice(body);

    let whole = run(std::iter::once(&stream[..]), limits(limit_sel));
    if split != 0 {
        let cut = run(common::Splitter::new(&stream, split), limits(limit_sel));
        assert_eq!(whole, cut, "split feeding changed the result");
    }
});
