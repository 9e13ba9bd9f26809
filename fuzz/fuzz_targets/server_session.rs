//! A whole server session fed arbitrary bytes.
//!
//! Input: `[mode] [split seed] bytes...`. Mode bits 0-2 choose the start:
//! - 0, 5, 6, 7: raw, the bytes are everything the client sends (handshake included);
//! - 1 / 2: a valid plain / digest handshake by our own client first, the bytes are the chunk
//!   stream after it;
//! - 3 / 4: a valid RTMPE (type 9 / 8) handshake first, the bytes are the chunk stream
//!   encrypted with the client's RC4 key, so the server decrypts them to the fuzz bytes.
//!
//! Bit 3 rejects connects, bit 4 rejects publishes and plays; otherwise the harness plays a
//! relay application: accept everything, forward a publisher's media to every player, and
//! fire timers as the fake clock advances. Nothing may panic, whatever the peer sends.

#![no_main]

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
    let reject_connect = mode & 0x08 != 0;
    let reject_streams = mode & 0x10 != 0;
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

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (mode, split, body) = (data[0], data[1], &data[2..]);
    let client_mode = match mode & 7 {
        1 => Some(ClientMode::Plain),
        2 => Some(ClientMode::Digest),
        3 => Some(ClientMode::Rtmpe { kind: 9 }),
        4 => Some(ClientMode::Rtmpe { kind: 8 }),
        _ => None,
    };
    let mut rng = common::rng();
    // Created first so that the server below draws the same randomness as in `common`.
    let mut client = client_mode.map(|m| ClientHandshake::new(m, 0, &mut rng));
    let mut session = ServerSession::new(ServerConfig::default(), 0, &mut rng);
    let mut wire = Vec::new();
    let mut players = Vec::new();
    let mut input = body.to_vec();

    if let Some(client) = client.as_mut() {
        let mut c01 = Vec::new();
        while let Some(b) = client.poll_transmit() {
            c01.extend_from_slice(&b);
        }
        session.handle_input(&c01, 0);
        drain(&mut session, &mut wire);
        client
            .handle_input(&wire)
            .expect("our client accepts our server's answer");
        let mut c2 = Vec::new();
        while let Some(b) = client.poll_transmit() {
            c2.extend_from_slice(&b);
        }
        session.handle_input(&c2, 0);
        assert!(session.close_reason().is_none(), "valid handshake failed");
    }
    if let Some(client) = client {
        let outcome = client.into_outcome();
        if let Some(mut cipher) = outcome.cipher {
            cipher.encrypt(&mut input);
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
