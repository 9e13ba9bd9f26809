//! The client handshake fed arbitrary server bytes, in pieces.
//!
//! Input: `[mode] [split seed] bytes...`. Bits 2-4 of mode pick the client mode (plain,
//! digest, RTMPE 6/8/9, an invalid RTMPE kind). Bits 0-1 pick what comes before the fuzz
//! bytes: nothing (raw S0...), a valid S0+S1 from our own server answering this client so
//! the fuzz bytes land in S2, or that S0+S1+S2 with the fuzz bytes XORed over it. The
//! client must consume within what it was given and fail cleanly.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rsrtmp_engine::handshake::{ClientHandshake, HANDSHAKE_SIZE, ServerHandshake};

mod common;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (mode, split, body) = (data[0], data[1], &data[2..]);
    let client_mode = common::client_mode(mode >> 2);
    let mut rng = common::rng();
    let mut client = ClientHandshake::new(client_mode, 0, &mut rng);
    let mut c01 = Vec::new();
    while let Some(b) = client.poll_transmit() {
        c01.extend_from_slice(&b);
    }
    // What our own server answers to this hello (S0+S1+S2), when it accepts it; the same
    // for every input of a mode, and slow to compute for RTMPE, hence cached.
    static ANSWERS: [OnceLock<Vec<u8>>; 6] = [const { OnceLock::new() }; 6];
    let answer = ANSWERS[usize::from((mode >> 2) % 6)].get_or_init(|| {
        let mut srng = common::rng();
        let mut server = ServerHandshake::new(Default::default(), 0, &mut srng);
        let mut out = Vec::new();
        if server.handle_input(&c01).is_ok() {
            while let Some(b) = server.poll_transmit() {
                out.extend_from_slice(&b);
            }
        }
        out
    });
    let input: Vec<u8> = match mode & 3 {
        0 | 3 => body.to_vec(),
        1 => {
            let s01 = &answer[..answer.len().min(1 + HANDSHAKE_SIZE)];
            [s01, body].concat()
        }
        _ => {
            let mut a = answer.clone();
            for (b, x) in a.iter_mut().zip(body) {
                *b ^= x;
            }
            a.extend_from_slice(body.get(answer.len()..).unwrap_or(&[]));
            a
        }
    };
    let mut consumed = 0usize;
    for piece in common::Splitter::new(&input, split) {
        match client.handle_input(piece) {
            Ok(n) => {
                assert!(n <= piece.len(), "consumed {n} of {}", piece.len());
                consumed += n;
            }
            Err(e) => {
                let _ = e.to_string();
                assert!(client.handle_input(&[3]).is_err());
                return;
            }
        }
        while client.poll_transmit().is_some() {}
        if client.is_complete() {
            break;
        }
    }
    assert!(consumed <= 1 + 2 * HANDSHAKE_SIZE);
    if client.is_complete() {
        assert_eq!(consumed, 1 + 2 * HANDSHAKE_SIZE);
        let outcome = client.into_outcome();
        if let Some(mut cipher) = outcome.cipher {
            let mut buf = body.to_vec();
            cipher.encrypt(&mut buf);
        }
    }
});
