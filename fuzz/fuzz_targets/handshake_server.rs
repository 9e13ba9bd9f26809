//! The server handshake fed arbitrary bytes, in pieces.
//!
//! Input: `[mode] [split seed] bytes...`. Mode bits 0-1 pick what comes before the fuzz
//! bytes: nothing (raw C0...), a valid C0+C1 from our own client in the mode bits 2-4 pick
//! (plain, digest, RTMPE 6/8/9) so the fuzz bytes land in C2, or that C0+C1 with the fuzz
//! bytes XORed over it (mutated hellos that still look like one). Bits 5-6 switch plain or
//! RTMPE off in the server configuration. The handshake must consume within what it was
//! given, never past C2, and fail with an error rather than panic.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rsrtmp_engine::handshake::{HANDSHAKE_SIZE, ServerHandshake, ServerHandshakeConfig};

mod common;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (mode, split, body) = (data[0], data[1], &data[2..]);
    // Hellos are computed once per mode: RTMPE key generation is slow under the sanitizer.
    static HELLOS: [OnceLock<Vec<u8>>; 6] = [const { OnceLock::new() }; 6];
    let sel = (mode >> 2) % 6;
    let hello =
        HELLOS[usize::from(sel)].get_or_init(|| common::client_hello(common::client_mode(sel)));
    let input: Vec<u8> = match mode & 3 {
        0 | 3 => body.to_vec(),
        1 => [&hello[..], body].concat(),
        _ => {
            let mut h = hello.clone();
            for (b, x) in h.iter_mut().zip(body) {
                *b ^= x;
            }
            h.extend_from_slice(body.get(hello.len()..).unwrap_or(&[]));
            h
        }
    };
    let config = ServerHandshakeConfig {
        allow_plain: mode & 0x20 == 0,
        allow_rtmpe: mode & 0x40 == 0,
        ..ServerHandshakeConfig::default()
    };
    let mut rng = common::rng();
    let mut server = ServerHandshake::new(config, 0, &mut rng);
    let mut consumed = 0usize;
    let mut sent = 0usize;
    for piece in common::Splitter::new(&input, split) {
        match server.handle_input(piece) {
            Ok(n) => {
                assert!(n <= piece.len(), "consumed {n} of {}", piece.len());
                consumed += n;
            }
            Err(e) => {
                let _ = e.to_string();
                // Errors are sticky.
                assert!(server.handle_input(&[3]).is_err());
                return;
            }
        }
        while let Some(b) = server.poll_transmit() {
            sent += b.len();
        }
        if server.is_complete() {
            break;
        }
    }
    assert!(consumed <= 1 + 2 * HANDSHAKE_SIZE);
    assert!(sent <= 1 + 2 * HANDSHAKE_SIZE);
    if server.is_complete() {
        assert_eq!(consumed, 1 + 2 * HANDSHAKE_SIZE);
        let outcome = server.into_outcome();
        if let Some(mut cipher) = outcome.cipher {
            let mut buf = body.to_vec();
            cipher.encrypt(&mut buf);
            cipher.decrypt(&mut buf);
        }
    }
});
