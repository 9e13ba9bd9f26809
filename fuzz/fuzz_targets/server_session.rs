//! A whole server session fed arbitrary bytes.
//!
//! Input: `[mode] [split seed] bytes...`. Mode bits 0-3 choose the start:
//! - 0, 3, 4, 5, 8, 11, 14, 15: raw, the bytes are everything the client sends (handshake
//!   included);
//! - 1, 6, 9, 12 / 2, 7, 10, 13: a valid plain / digest handshake by our own client first,
//!   the bytes are the chunk stream after it;
//! - mode byte 0x03 / 0x83 exactly: a valid RTMPE handshake (type 9 / 8) first, the bytes
//!   are the chunk stream encrypted with the client's RC4 key, so the server decrypts them
//!   to the fuzz bytes.
//!
//! Bit 5 rejects connects, bit 6 rejects publishes and plays; otherwise the harness plays a
//! relay application: accept everything, forward a publisher's media to every player, and
//! fire timers as the fake clock advances. Nothing may panic, whatever the peer sends.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rsrtmp_engine::handshake::{ClientHandshake, ClientMode};
use rsrtmp_engine::session::{ServerConfig, ServerEvent, ServerSession};

mod common;

fn drain(session: &mut ServerSession, out: &mut Vec<u8>) {
    while let Some(b) = session.poll_transmit() {
        out.extend_from_slice(&b);
    }
}

fn app(session: &mut ServerSession, mode: u8, players: &mut Vec<u32>) {
    let reject_connect = mode & 0x20 != 0;
    let reject_streams = mode & 0x40 != 0;
    while let Some(event) = session.poll_event() {
        let _ = format!("{event:?}");
        let _ = match event {
            ServerEvent::ConnectRequest { .. } if reject_connect => {
                session.reject_connect("fuzz says no")
            }
            ServerEvent::ConnectRequest { .. } => session.accept_connect(),
            ServerEvent::PublishRequest { stream_id, .. } if reject_streams => {
                session.reject_publish(stream_id, "no")
            }
            ServerEvent::PublishRequest { stream_id, .. } => session.accept_publish(stream_id),
            ServerEvent::PlayRequest { stream_id, .. } if reject_streams => {
                session.reject_play(stream_id, "no")
            }
            ServerEvent::PlayRequest { stream_id, .. } => {
                players.push(stream_id);
                session.accept_play(stream_id)
            }
            ServerEvent::Media { message, .. } => {
                for &p in players.iter() {
                    let _ = session.send_media(p, &message);
                }
                Ok(())
            }
            ServerEvent::Unpublished { .. } => {
                for &p in players.iter() {
                    let _ = session.end_stream(p);
                }
                Ok(())
            }
            ServerEvent::PlayStopped { stream_id } | ServerEvent::StreamDeleted { stream_id } => {
                players.retain(|&p| p != stream_id);
                Ok(())
            }
            ServerEvent::Command { .. } => Ok(()),
            ServerEvent::Closed(reason) => {
                let _ = reason.to_string();
                Ok(())
            }
        };
    }
}

/// What our own client sends for a valid handshake in one mode, and the keystream its RC4
/// encrypts with afterwards (RTMPE). Computed once per mode: the Diffie-Hellman arithmetic is
/// slow under the sanitizer, and with fixed seeds it is the same every time.
struct Prefix {
    c01: Vec<u8>,
    c2: Vec<u8>,
    keystream: Option<Vec<u8>>,
}

const KEYSTREAM_LEN: usize = 1 << 16;

fn prefix(mode: ClientMode) -> Prefix {
    let mut rng = common::rng();
    // Created first so that the session's server draws the same randomness later.
    let mut client = ClientHandshake::new(mode, 0, &mut rng);
    let mut session = ServerSession::new(ServerConfig::default(), 0, &mut rng);
    let mut c01 = Vec::new();
    while let Some(b) = client.poll_transmit() {
        c01.extend_from_slice(&b);
    }
    session.handle_input(&c01, 0);
    let mut wire = Vec::new();
    drain(&mut session, &mut wire);
    client
        .handle_input(&wire)
        .expect("our client accepts our server's answer");
    let mut c2 = Vec::new();
    while let Some(b) = client.poll_transmit() {
        c2.extend_from_slice(&b);
    }
    let keystream = client.into_outcome().cipher.map(|mut cipher| {
        let mut k = vec![0u8; KEYSTREAM_LEN];
        cipher.encrypt(&mut k);
        k
    });
    Prefix { c01, c2, keystream }
}

static PREFIXES: [OnceLock<Prefix>; 4] = [const { OnceLock::new() }; 4];

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (mode, split, body) = (data[0], data[1], &data[2..]);
    let start = match mode {
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
    let mut rng = common::rng();
    if start.is_some() {
        // The same draw as in `prefix`, so the session's S1 (and DH key) match it.
        let _ = ClientHandshake::new(ClientMode::Plain, 0, &mut rng);
    }
    let mut session = ServerSession::new(ServerConfig::default(), 0, &mut rng);
    let mut wire = Vec::new();
    let mut players = Vec::new();
    let mut input = body.to_vec();

    if let Some((slot, client_mode)) = start {
        let p = PREFIXES[slot].get_or_init(|| prefix(client_mode));
        session.handle_input(&p.c01, 0);
        drain(&mut session, &mut wire);
        session.handle_input(&p.c2, 0);
        assert!(session.close_reason().is_none(), "valid handshake failed");
        if let Some(k) = &p.keystream {
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
        app(&mut session, mode, &mut players);
        drain(&mut session, &mut wire);
        let _ = session.poll_timeout();
        wire.clear();
    }
    // Let the clock run out: pings, then the idle timeout.
    for step in [30_000u64, 61_000, 95_000] {
        session.handle_timeout(now + step);
        app(&mut session, mode, &mut players);
        drain(&mut session, &mut wire);
    }
    session.handle_peer_closed();
    app(&mut session, mode, &mut players);
    let _ = session.stats();
});
