//! A whole client session fed arbitrary server bytes.
//!
//! Input: `[mode] [split seed] bytes...`. Mode bits 0-3 choose the start:
//! - 0, 3, 4, 5, 8, 11, 14, 15: raw, the bytes are everything the server sends (handshake
//!   included);
//! - 1, 6, 9, 12 / 2, 7, 10, 13: a valid handshake with our own server (plain / digest
//!   client) first, then the bytes are the server's chunk stream;
//! - mode byte 0x03 / 0x83 exactly: a valid RTMPE handshake (9 / 8) first, then the bytes
//!   encrypted with the server's RC4 key.
//!
//! Bit 4 makes the client play instead of publish. The harness publishes a few media
//! messages once publishing starts and stops the stream at the end. Nothing may panic.

#![no_main]

use bytes::Bytes;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rsrtmp_engine::handshake::{ClientMode, ServerHandshake, ServerHandshakeConfig};
use rsrtmp_engine::session::{
    ClientConfig, ClientEvent, ClientRole, ClientSession, MediaKind, StopCommands,
};

mod common;

fn drain(session: &mut ClientSession, out: &mut Vec<u8>) {
    while let Some(b) = session.poll_transmit() {
        out.extend_from_slice(&b);
    }
}

fn app(session: &mut ClientSession) {
    while let Some(event) = session.poll_event() {
        let _ = format!("{event:?}");
        if let ClientEvent::PublishStarted { .. } = event {
            let _ = session.send_media(
                MediaKind::Data,
                0,
                Bytes::from_static(b"\x02\x00\x0aonMetaData\x05"),
            );
            let _ = session.send_media(
                MediaKind::Video,
                0,
                Bytes::from_static(&[0x17, 0, 0, 0, 0, 1]),
            );
            let _ = session.send_media(MediaKind::Audio, 0, Bytes::from_static(&[0xAF, 1, 0x21]));
        }
    }
}

/// What our own server answers a client in one mode, and the keystream its RC4 encrypts
/// with afterwards (RTMPE). Computed once per mode (the client's hello is the same every time
/// with fixed seeds), because the Diffie-Hellman arithmetic is slow under the sanitizer.
struct Answer {
    s012: Vec<u8>,
    keystream: Option<Vec<u8>>,
}

const KEYSTREAM_LEN: usize = 1 << 16;

fn config(mode: u8, handshake: Option<ClientMode>) -> ClientConfig {
    let role = if mode & 0x10 != 0 {
        ClientRole::Play
    } else {
        ClientRole::Publish
    };
    let mut config = ClientConfig::new("live", "rtmp://127.0.0.1/live", role);
    config.c1_time = Some(0);
    if let Some(m) = handshake {
        config.handshake = m;
    }
    config
}

fn answer(handshake: ClientMode) -> Answer {
    let mut rng = common::rng();
    let mut session = ClientSession::new(config(0, Some(handshake)), 0, &mut rng);
    let mut wire = Vec::new();
    drain(&mut session, &mut wire);
    let mut server = ServerHandshake::new(ServerHandshakeConfig::default(), 0, &mut rng);
    let used = server
        .handle_input(&wire)
        .expect("our server accepts our client");
    assert_eq!(used, wire.len());
    wire.clear();
    let mut s012 = Vec::new();
    while let Some(b) = server.poll_transmit() {
        s012.extend_from_slice(&b);
    }
    session.handle_input(&s012, 0);
    drain(&mut session, &mut wire);
    server
        .handle_input(&wire)
        .expect("our server accepts our C2");
    assert!(server.is_complete(), "valid handshake did not complete");
    let keystream = server.into_outcome().cipher.map(|mut cipher| {
        let mut k = vec![0u8; KEYSTREAM_LEN];
        cipher.encrypt(&mut k);
        k
    });
    Answer { s012, keystream }
}

static ANSWERS: [OnceLock<Answer>; 4] = [const { OnceLock::new() }; 4];

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (mode, split, body) = (data[0], data[1], &data[2..]);
    let handshake = match mode {
        // RTMPE only when the whole mode byte says so: its key exchange (three 1024-bit
        // modular exponentiations per side) is slow under ASan, and inputs that reach it
        // would otherwise take most of the run. The handshake targets cover RTMPE itself.
        0x03 => Some((2, ClientMode::Rtmpe { kind: 9 })),
        0x83 => Some((3, ClientMode::Rtmpe { kind: 8 })),
        _ => match mode & 0x0F {
            1 | 6 | 9 | 12 => Some((0, ClientMode::Plain)),
            2 | 7 | 10 | 13 => Some((1, ClientMode::Digest)),
            _ => None,
        },
    };
    let config = config(mode, handshake.map(|(_, m)| m));
    let role = config.role;
    let mut rng = common::rng();
    let mut session = ClientSession::new(config, 0, &mut rng);
    let _ = match role {
        ClientRole::Publish => session.publish("stream"),
        ClientRole::Play => session.play("stream", -2000.0),
    };
    let mut wire = Vec::new();
    let mut input = body.to_vec();
    drain(&mut session, &mut wire);

    if let Some((slot, m)) = handshake {
        let a = ANSWERS[slot].get_or_init(|| answer(m));
        session.handle_input(&a.s012, 0);
        assert!(session.close_reason().is_none(), "valid handshake failed");
        drain(&mut session, &mut wire);
        if let Some(k) = &a.keystream {
            input.truncate(KEYSTREAM_LEN);
            for (b, k) in input.iter_mut().zip(k) {
                *b ^= k;
            }
        }
    }

    let mut now = 0u64;
    for piece in common::Splitter::new(&input, split) {
        now += 250;
        session.handle_input(piece, now);
        app(&mut session);
        drain(&mut session, &mut wire);
        wire.clear();
        let _ = (
            session.poll_timeout(),
            session.is_connected(),
            session.active_stream(),
        );
    }
    let _ = session.stop(StopCommands::default());
    session.handle_timeout(now + 20_000);
    app(&mut session);
    session.handle_peer_closed();
    app(&mut session);
    let _ = session.stats();
});
