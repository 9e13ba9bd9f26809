//! A whole client session fed arbitrary server bytes.
//!
//! Input: `[mode] [split seed] bytes...`. Mode bits 0-2 choose the start:
//! - 0, 5, 6, 7: raw, the bytes are everything the server sends (handshake included);
//! - 1 / 2: a valid handshake with our own server (plain / digest client) first, then the
//!   bytes are the server's chunk stream;
//! - 3 / 4: a valid RTMPE (9 / 8) handshake first, then the bytes encrypted with the
//!   server's RC4 key.
//!
//! Bit 3 makes the client play instead of publish. The harness publishes a few media
//! messages once publishing starts and stops the stream at the end. Nothing may panic.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use rsrtmp_engine::handshake::{ServerHandshake, ServerHandshakeConfig};
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
            let _ = session.send_media(MediaKind::Data, 0, Bytes::from_static(b"\x02\x00\x0aonMetaData\x05"));
            let _ = session.send_media(MediaKind::Video, 0, Bytes::from_static(&[0x17, 0, 0, 0, 0, 1]));
            let _ = session.send_media(MediaKind::Audio, 0, Bytes::from_static(&[0xAF, 1, 0x21]));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (mode, split, body) = (data[0], data[1], &data[2..]);
    let role = if mode & 8 != 0 { ClientRole::Play } else { ClientRole::Publish };
    let mut config = ClientConfig::new("live", "rtmp://127.0.0.1/live", role);
    config.c1_time = Some(0);
    let handshake = match mode & 7 {
        1 => Some(rsrtmp_engine::handshake::ClientMode::Plain),
        2 => Some(rsrtmp_engine::handshake::ClientMode::Digest),
        3 => Some(rsrtmp_engine::handshake::ClientMode::Rtmpe { kind: 9 }),
        4 => Some(rsrtmp_engine::handshake::ClientMode::Rtmpe { kind: 8 }),
        _ => None,
    };
    if let Some(m) = handshake {
        config.handshake = m;
    }
    let mut rng = common::rng();
    let mut session = ClientSession::new(config, 0, &mut rng);
    let _ = match role {
        ClientRole::Publish => session.publish("stream"),
        ClientRole::Play => session.play("stream", -2000.0),
    };
    let mut wire = Vec::new();
    let mut input = body.to_vec();
    drain(&mut session, &mut wire);

    if handshake.is_some() {
        let mut server = ServerHandshake::new(ServerHandshakeConfig::default(), 0, &mut rng);
        let used = server.handle_input(&wire).expect("our server accepts our client");
        wire.drain(..used);
        let mut s012 = Vec::new();
        while let Some(b) = server.poll_transmit() {
            s012.extend_from_slice(&b);
        }
        session.handle_input(&s012, 0);
        drain(&mut session, &mut wire);
        let used = server.handle_input(&wire).expect("our server accepts our C2");
        assert!(server.is_complete(), "valid handshake did not complete");
        wire.drain(..used);
        assert!(session.close_reason().is_none(), "valid handshake failed");
        if let Some(mut cipher) = server.into_outcome().cipher {
            cipher.encrypt(&mut input);
        }
    }

    let mut now = 0u64;
    for piece in common::Splitter::new(&input, split) {
        now += 250;
        session.handle_input(piece, now);
        app(&mut session);
        drain(&mut session, &mut wire);
        wire.clear();
        let _ = (session.poll_timeout(), session.is_connected(), session.active_stream());
    }
    let _ = session.stop(StopCommands::default());
    session.handle_timeout(now + 20_000);
    app(&mut session);
    session.handle_peer_closed();
    app(&mut session);
    let _ = session.stats();
});
