//! Scenario tests: a client and a server session joined by in-memory byte queues, a fake
//! clock, and an automatic server "application" that makes the accept/reject decisions as
//! soon as the requests appear. Every scenario can be run with the byte stream delivered
//! whole, one byte at a time (every boundary), or in random pieces; the events must match.

use bytes::{Bytes, BytesMut};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::amf0::{self, Value};
use crate::command::StatusCode;
use crate::handshake::ClientMode;
use crate::message::{Message, msg_type};

#[derive(Clone, Copy, Debug)]
enum Feed {
    Whole,
    Bytewise,
    Random(u64),
}

#[derive(Clone, Default)]
struct Policy {
    reject_connect: Option<&'static str>,
    /// Leave the connect unanswered (the application is still deciding).
    hold_connect: bool,
    reject_publish: bool,
    reject_play: bool,
}

struct Pair {
    client: ClientSession,
    server: ServerSession,
    to_server: Vec<u8>,
    to_client: Vec<u8>,
    /// Everything the client ever sent, to check what is visible on the wire.
    wire_c2s: Vec<u8>,
    now: u64,
    feed: Feed,
    rng: StdRng,
    policy: Policy,
    cev: Vec<ClientEvent>,
    sev: Vec<ServerEvent>,
}

impl Pair {
    fn new(role: ClientRole, mode: ClientMode, feed: Feed, server_cfg: ServerConfig) -> Self {
        let mut rng = StdRng::seed_from_u64(7);
        let mut cfg = ClientConfig::new("live", "rtmp://127.0.0.1/live", role);
        cfg.handshake = mode;
        cfg.c1_time = Some(0);
        let client = ClientSession::new(cfg, 0, &mut rng);
        let server = ServerSession::new(server_cfg, 0, &mut rng);
        let seed = match feed {
            Feed::Random(s) => s,
            _ => 0,
        };
        Self {
            client,
            server,
            to_server: Vec::new(),
            to_client: Vec::new(),
            wire_c2s: Vec::new(),
            now: 0,
            feed,
            rng: StdRng::seed_from_u64(seed),
            policy: Policy::default(),
            cev: Vec::new(),
            sev: Vec::new(),
        }
    }

    fn piece(&mut self, avail: usize) -> usize {
        match self.feed {
            Feed::Whole => avail,
            Feed::Bytewise => avail.min(1),
            Feed::Random(_) => avail.min(self.rng.random_range(1..=700)),
        }
    }

    /// One round: drain outputs, deliver one piece each way, handle events. Returns whether
    /// anything moved.
    fn step(&mut self) -> bool {
        let mut moved = false;
        while let Some(b) = self.client.poll_transmit() {
            self.to_server.extend_from_slice(&b);
            self.wire_c2s.extend_from_slice(&b);
        }
        while let Some(b) = self.server.poll_transmit() {
            self.to_client.extend_from_slice(&b);
        }
        if !self.to_server.is_empty() {
            let n = self.piece(self.to_server.len());
            let chunk: Vec<u8> = self.to_server.drain(..n).collect();
            self.server.handle_input(&chunk, self.now);
            moved = true;
        }
        if !self.to_client.is_empty() {
            let n = self.piece(self.to_client.len());
            let chunk: Vec<u8> = self.to_client.drain(..n).collect();
            self.client.handle_input(&chunk, self.now);
            moved = true;
        }
        while let Some(e) = self.client.poll_event() {
            self.cev.push(e);
            moved = true;
        }
        while let Some(e) = self.server.poll_event() {
            moved = true;
            match &e {
                ServerEvent::ConnectRequest { .. } if self.policy.hold_connect => {}
                ServerEvent::ConnectRequest { .. } => match self.policy.reject_connect {
                    Some(d) => self.server.reject_connect(d).unwrap(),
                    None => self.server.accept_connect().unwrap(),
                },
                ServerEvent::PublishRequest { stream_id, .. } => {
                    if self.policy.reject_publish {
                        self.server.reject_publish(*stream_id, "taken").unwrap();
                    } else {
                        self.server.accept_publish(*stream_id).unwrap();
                    }
                }
                ServerEvent::PlayRequest { stream_id, .. } => {
                    if self.policy.reject_play {
                        self.server
                            .reject_play(*stream_id, "no such stream")
                            .unwrap();
                    } else {
                        self.server.accept_play(*stream_id).unwrap();
                    }
                }
                _ => {}
            }
            self.sev.push(e);
        }
        self.now += 1;
        moved
    }

    fn run(&mut self) {
        let mut guard = 0;
        while self.step() {
            guard += 1;
            assert!(guard < 200_000, "scenario does not settle");
        }
    }
}

fn metadata_body() -> Bytes {
    amf0::encode_all(&[
        Value::String("onMetaData".into()),
        Value::EcmaArray(vec![("width".into(), Value::Number(640.0))]),
    ])
}

fn video_payload(n: usize) -> Bytes {
    let mut v = vec![0x17, 0x01, 0, 0, 0];
    v.extend((0..n).map(|i| (i * 7 % 251) as u8));
    Bytes::from(v)
}

fn server_media(ev: &[ServerEvent]) -> Vec<Message> {
    ev.iter()
        .filter_map(|e| match e {
            ServerEvent::Media { message, .. } => Some(message.clone()),
            _ => None,
        })
        .collect()
}

fn client_media(ev: &[ClientEvent]) -> Vec<Message> {
    ev.iter()
        .filter_map(|e| match e {
            ClientEvent::Media(m) => Some(m.clone()),
            _ => None,
        })
        .collect()
}

/// connect + publish + media + stop; returns both event logs rendered for comparison.
fn publish_scenario(mode: ClientMode, feed: Feed) -> (String, String) {
    let mut p = Pair::new(ClientRole::Publish, mode, feed, ServerConfig::default());
    p.client.publish("cam?key=1").unwrap();
    p.run();
    assert!(
        p.cev
            .iter()
            .any(|e| matches!(e, ClientEvent::PublishStarted { stream_id: 1 })),
        "{:?}",
        p.cev
    );
    match &p.sev[0] {
        ServerEvent::ConnectRequest {
            app, query, tc_url, ..
        } => {
            assert_eq!(app, "live");
            assert_eq!(query, &None);
            assert_eq!(tc_url.as_deref(), Some("rtmp://127.0.0.1/live"));
        }
        other => panic!("first server event {other:?}"),
    }
    assert!(p.sev.iter().any(|e| matches!(e,
        ServerEvent::PublishRequest { stream_id: 1, name, kind } if name == "cam?key=1" && kind == "live")));

    p.client
        .send_media(MediaKind::Data, 0, metadata_body())
        .unwrap();
    p.client
        .send_media(MediaKind::Video, 0, video_payload(10_000))
        .unwrap();
    p.client
        .send_media(
            MediaKind::Audio,
            23,
            Bytes::from_static(&[0xAF, 0x01, 1, 2, 3]),
        )
        .unwrap();
    p.run();
    let media = server_media(&p.sev);
    assert_eq!(media.len(), 3);
    // @setDataFrame was added on the way out and stripped on the way in.
    assert_eq!(media[0].type_id, msg_type::DATA_AMF0);
    assert_eq!(media[0].payload, metadata_body());
    assert_eq!(media[1].type_id, msg_type::VIDEO);
    assert_eq!(media[1].payload, video_payload(10_000));
    assert_eq!(media[2].timestamp, 23);
    assert!(media.iter().all(|m| m.stream_id == 1));

    p.client.stop(StopCommands::default()).unwrap();
    p.run();
    assert!(
        p.sev
            .iter()
            .any(|e| matches!(e, ServerEvent::Unpublished { stream_id: 1 }))
    );
    assert!(
        p.sev
            .iter()
            .any(|e| matches!(e, ServerEvent::StreamDeleted { stream_id: 1 }))
    );
    assert!(p.client.close_reason().is_none());
    assert!(p.server.close_reason().is_none());
    // An RTMPE publisher never gets a Set Chunk Size (FFmpeg garbles its echo of it).
    let rtmpe = matches!(mode, ClientMode::Rtmpe { .. });
    let want = if rtmpe { 128 } else { 4096 };
    assert_eq!(p.client.stats().in_chunk_size, want, "{mode:?}");
    // RTMPE hides the commands; the other modes send them in clear.
    let visible = p.wire_c2s.windows(9).any(|w| w == b"cam?key=1");
    assert_eq!(visible, !rtmpe, "{mode:?}");
    (format!("{:?}", p.cev), format!("{:?}", p.sev))
}

/// connect + play + media (own writer and shared bytes) + end of stream.
fn play_scenario(mode: ClientMode, feed: Feed) -> (String, String) {
    let mut p = Pair::new(ClientRole::Play, mode, feed, ServerConfig::default());
    p.client.play("cam", -2000.0).unwrap();
    p.run();
    assert!(
        p.cev
            .iter()
            .any(|e| matches!(e, ClientEvent::PlayStarted { stream_id: 1 })),
        "{:?}",
        p.cev
    );
    let Some(ServerEvent::PlayRequest { stream_id, play }) = p
        .sev
        .iter()
        .find(|e| matches!(e, ServerEvent::PlayRequest { .. }))
    else {
        panic!("no play request: {:?}", p.sev)
    };
    assert_eq!(
        (*stream_id, play.name.as_str(), play.start),
        (1, "cam", -2000.0)
    );

    // Metadata through the session's writer.
    let meta = crate::command::data_message(
        1,
        0,
        &[
            Value::String("onMetaData".into()),
            Value::EcmaArray(vec![("width".into(), Value::Number(640.0))]),
        ],
    );
    p.server.send_media(1, &meta).unwrap();
    // Video encoded once, shared (not possible through a per-connection RTMPE cipher: the
    // same message then goes through the session's writer).
    let shared_ok = !matches!(mode, ClientMode::Rtmpe { .. });
    // Every player reads at the configured chunk size, RTMPE ones from their play on.
    assert_eq!(p.client.stats().in_chunk_size, 4096, "{mode:?}");
    assert_eq!(p.server.can_take_shared_bytes(1), shared_ok);
    let video = Message {
        type_id: msg_type::VIDEO,
        timestamp: 40,
        stream_id: 1,
        payload: video_payload(9_000),
    };
    let mut shared = BytesMut::new();
    crate::chunk::encode_message_full(
        p.server.media_csids().video,
        &video,
        p.server.chunk_size(),
        &mut shared,
    );
    if shared_ok {
        while let Some(b) = p.server.poll_transmit() {
            p.to_client.extend_from_slice(&b);
        }
        p.to_client.extend_from_slice(&shared);
        p.server.record_shared_output(shared.len());
    } else {
        p.server.send_media(1, &video).unwrap();
    }
    p.server
        .send_media(
            1,
            &Message {
                timestamp: 41,
                ..video.clone()
            },
        )
        .unwrap();
    p.run();
    let media = client_media(&p.cev);
    assert_eq!(media.len(), 3, "{:?}", p.cev);
    assert_eq!(media[0].payload, metadata_body());
    assert_eq!(media[1].payload, video.payload);
    assert_eq!(media[1].timestamp, 40);
    assert_eq!(media[2].timestamp, 41);

    p.server.end_stream(1).unwrap();
    p.run();
    assert!(p.cev.iter().any(|e| matches!(e, ClientEvent::StreamEof(1))));
    let codes: Vec<&str> = p
        .cev
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Status { status, .. } => Some(status.code.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        codes,
        [
            "NetStream.Play.Reset",
            "NetStream.Play.UnpublishNotify",
            "NetStream.Play.Stop"
        ]
    );
    (format!("{:?}", p.cev), format!("{:?}", p.sev))
}

/// The scenario under every delivery: whole, one byte at a time, random pieces.
fn every_split(mode: ClientMode, scenario: fn(ClientMode, Feed) -> (String, String)) {
    let whole = scenario(mode, Feed::Whole);
    assert_eq!(scenario(mode, Feed::Bytewise), whole, "{mode:?} bytewise");
    // RTMPE's DH is slow in debug builds: fewer random splits there.
    let seeds = if matches!(mode, ClientMode::Rtmpe { .. }) {
        1..2
    } else {
        1..4
    };
    for seed in seeds {
        assert_eq!(
            scenario(mode, Feed::Random(seed)),
            whole,
            "{mode:?} seed {seed}"
        );
    }
}

macro_rules! per_mode {
    ($($name:ident: $mode:expr;)*) => {$(
        #[test]
        fn $name() {
            every_split($mode, publish_scenario);
            every_split($mode, play_scenario);
        }
    )*};
}

per_mode! {
    publish_and_play_plain: ClientMode::Plain;
    publish_and_play_digest: ClientMode::Digest;
    publish_and_play_rtmpe6: ClientMode::Rtmpe { kind: 6 };
    publish_and_play_rtmpe8: ClientMode::Rtmpe { kind: 8 };
    publish_and_play_rtmpe9: ClientMode::Rtmpe { kind: 9 };
}

#[test]
fn connect_rejected_with_auth_description() {
    let desc = crate::auth::need_auth_description(crate::auth::AuthMethod::Adobe);
    let mut p = Pair::new(
        ClientRole::Publish,
        ClientMode::Plain,
        Feed::Whole,
        ServerConfig::default(),
    );
    p.policy.reject_connect = Some(Box::leak(desc.clone().into_boxed_str()));
    p.run();
    let rej = p.cev.iter().find_map(|e| match e {
        ClientEvent::ConnectRejected { code, description } => Some((code, description)),
        _ => None,
    });
    assert_eq!(
        rej,
        Some((&"NetConnection.Connect.Rejected".to_owned(), &desc))
    );
    assert!(matches!(
        p.client.close_reason().as_deref(),
        Some(SessionError::ConnectRejected { .. })
    ));
    assert!(matches!(
        p.server.close_reason().as_deref(),
        Some(SessionError::RejectedLocally(_))
    ));
    // The next auth step is computable from what the client got.
    let q = crate::auth::next_query(&desc, "u", "p", "live", "00000001").unwrap();
    assert_eq!(q, "?authmod=adobe&user=u");
}

#[test]
fn publish_bad_name_and_play_not_found() {
    let mut p = Pair::new(
        ClientRole::Publish,
        ClientMode::Plain,
        Feed::Whole,
        ServerConfig::default(),
    );
    p.policy.reject_publish = true;
    p.client.publish("taken").unwrap();
    p.run();
    let st = p.cev.iter().find_map(|e| match e {
        ClientEvent::StreamRejected(s) => Some(s.clone()),
        _ => None,
    });
    assert_eq!(
        st.map(|s| (s.status_code(), s.description)),
        Some((Some(StatusCode::PublishBadName), "taken".to_owned()))
    );
    assert!(
        p.client
            .send_media(MediaKind::Audio, 0, Bytes::new())
            .is_err()
    );

    let mut p = Pair::new(
        ClientRole::Play,
        ClientMode::Plain,
        Feed::Whole,
        ServerConfig::default(),
    );
    p.policy.reject_play = true;
    p.client.play("nothing", -2000.0).unwrap();
    p.run();
    assert!(
        p.cev.iter().any(|e| matches!(e,
        ClientEvent::StreamRejected(s) if s.status_code() == Some(StatusCode::PlayStreamNotFound)))
    );
    assert!(p.client.close_reason().is_none());
}

#[test]
fn a_failed_publish_tells_the_publisher_and_drops_its_later_media() {
    let mut p = Pair::new(
        ClientRole::Publish,
        ClientMode::Plain,
        Feed::Whole,
        ServerConfig::default(),
    );
    p.client.publish("cam").unwrap();
    p.run();
    assert!(p.server.fail_publish(1, "downstream stopped").is_ok());
    assert!(
        p.server.fail_publish(1, "again").is_err(),
        "the stream no longer publishes"
    );
    p.client
        .send_media(MediaKind::Audio, 0, Bytes::from_static(&[0xAF, 1, 5]))
        .unwrap();
    p.sev.clear();
    p.run();
    let status = p.cev.iter().find_map(|e| match e {
        ClientEvent::Status { status, .. } => Some(status.clone()),
        _ => None,
    });
    let status = status.expect("an onStatus reached the publisher");
    assert_eq!(status.status_code(), Some(StatusCode::StreamFailed));
    assert!(status.is_error());
    assert_eq!(status.description, "downstream stopped");
    assert!(
        !p.sev.iter().any(|e| matches!(e, ServerEvent::Media { .. })),
        "media after the failure is ignored: {:?}",
        p.sev
    );
}

#[test]
fn enhanced_capabilities_go_both_ways_and_legacy_clients_get_a_legacy_answer() {
    use crate::flv::FourCc;
    use crate::session::caps::{self, EnhancedCaps};
    let ours = EnhancedCaps::announcing(
        &[FourCc::HVC1],
        &[FourCc::OPUS],
        caps::CAN_FORWARD,
        caps::CAPS_MULTITRACK,
    );
    let server_cfg = ServerConfig {
        enhanced: Some(ours.clone()),
        ..ServerConfig::default()
    };
    let mut p = Pair::new(
        ClientRole::Play,
        ClientMode::Plain,
        Feed::Whole,
        server_cfg.clone(),
    );
    let mut cfg = ClientConfig::new("live", "rtmp://127.0.0.1/live", ClientRole::Play);
    cfg.c1_time = Some(0);
    let theirs = EnhancedCaps::announcing(&[FourCc::AV01], &[], caps::CAN_DECODE, 0);
    cfg.enhanced = Some(theirs.clone());
    p.client = ClientSession::new(cfg, 0, &mut p.rng);
    p.client.play("cam", -2000.0).unwrap();
    p.run();
    assert_eq!(p.server.client_caps(), Some(&theirs));
    assert_eq!(p.client.server_caps(), Some(&ours));

    // A legacy client: nothing announced, nothing answered.
    let mut p = Pair::new(ClientRole::Play, ClientMode::Plain, Feed::Whole, server_cfg);
    p.client.play("cam", -2000.0).unwrap();
    p.run();
    assert_eq!(p.server.client_caps(), None);
    assert_eq!(p.client.server_caps(), None);
    let props = p.cev.iter().find_map(|e| match e {
        ClientEvent::Connected { properties, .. } => Some(properties.clone()),
        _ => None,
    });
    assert!(
        !props.unwrap().iter().any(|(k, _)| k == "capsEx"),
        "a legacy client's _result is unchanged"
    );
}

#[test]
fn a_reconnect_request_reaches_the_client_with_its_tc_url() {
    let mut p = Pair::new(
        ClientRole::Publish,
        ClientMode::Plain,
        Feed::Whole,
        ServerConfig::default(),
    );
    p.client.publish("cam").unwrap();
    p.run();
    p.server
        .request_reconnect(Some("rtmp://edge/live"), "moving")
        .unwrap();
    p.run();
    let status = p.cev.iter().find_map(|e| match e {
        ClientEvent::Status {
            stream_id: 0,
            status,
        } => Some(status.clone()),
        _ => None,
    });
    let status = status.expect("the request reached the client");
    assert_eq!(
        status.status_code(),
        Some(StatusCode::ConnectReconnectRequest)
    );
    assert_eq!(status.description, "moving");
    assert!(
        status
            .extra
            .iter()
            .any(|(k, v)| k == "tcUrl" && *v == Value::String("rtmp://edge/live".into()))
    );
    assert!(p.client.close_reason().is_none(), "the connection stays");
}

#[test]
fn acknowledgements_sent_when_due() {
    let cfg = ServerConfig {
        window_ack_size: 20_000,
        ..ServerConfig::default()
    };
    let mut p = Pair::new(ClientRole::Play, ClientMode::Plain, Feed::Whole, cfg);
    p.client.play("cam", -2000.0).unwrap();
    p.run();
    let before = p.client.stats();
    assert_eq!(before.in_window_ack_size, 20_000);
    assert_eq!(
        before.out_window_ack_size, 20_000,
        "client echoes Set Peer Bandwidth"
    );
    for i in 0..10 {
        let m = Message {
            type_id: msg_type::VIDEO,
            timestamp: i,
            stream_id: 1,
            payload: video_payload(10_000),
        };
        p.server.send_media(1, &m).unwrap();
    }
    p.run();
    let c = p.client.stats();
    let s = p.server.stats();
    assert!(c.in_bytes_total > 100_000);
    // Acked at half the window: the last ack is within 10 000 bytes of the total.
    assert!(
        c.in_bytes_acked > 0 && c.in_bytes_total - c.in_bytes_acked < 10_000,
        "{c:?}"
    );
    assert_eq!(s.out_bytes_acked, c.in_bytes_acked);
    assert_eq!(c.in_chunk_size, 4096);
    assert_eq!(s.in_chunk_size, 4096);
    assert_eq!(c.in_bytes_total, s.out_bytes_total);
    assert_eq!(s.in_bytes_total, c.out_bytes_total);
}

#[test]
fn ping_answered_and_idle_timeout() {
    let mut p = Pair::new(
        ClientRole::Play,
        ClientMode::Plain,
        Feed::Whole,
        ServerConfig::default(),
    );
    p.client.play("cam", -2000.0).unwrap();
    p.run();
    // Quiet from here: the next deadline is the ping, 60 s after the last input.
    let ping_at = p.server.poll_timeout().unwrap();
    assert!(ping_at >= 60_000 && ping_at < p.now + 60_000, "{ping_at}");
    let last_input = ping_at - 60_000;
    let client_out = p.client.stats().out_bytes_total;
    p.now = ping_at;
    p.server.handle_timeout(p.now);
    p.run();
    assert!(
        p.client.stats().out_bytes_total > client_out,
        "PingResponse sent"
    );
    // The answer counted as input: no idle close 90 s after the last input before the ping.
    p.server.handle_timeout(last_input + 95_000);
    assert!(p.server.close_reason().is_none());
    // Silence for 90 s after the answer closes.
    p.server.handle_timeout(p.now + 91_000);
    assert!(matches!(
        p.server.close_reason().as_deref(),
        Some(SessionError::IdleTimeout {
            timeout_ms: 90_000,
            ..
        })
    ));
}

#[test]
fn handshake_deadline() {
    let mut rng = StdRng::seed_from_u64(1);
    let mut s = ServerSession::new(ServerConfig::default(), 1_000, &mut rng);
    assert_eq!(s.poll_timeout(), Some(11_000));
    s.handle_input(&[3; 100], 2_000);
    s.handle_timeout(10_999);
    assert!(s.close_reason().is_none());
    s.handle_timeout(11_000);
    let r = s.close_reason().unwrap();
    assert!(r.to_string().contains("10000 ms"), "{r}");
    assert!(matches!(s.poll_event(), Some(ServerEvent::Closed(_))));
    assert_eq!(s.poll_timeout(), None);

    let mut c = ClientSession::new(
        ClientConfig::new("a", "rtmp://h/a", ClientRole::Play),
        0,
        &mut rng,
    );
    assert_eq!(c.poll_timeout(), Some(10_000));
    c.handle_timeout(10_000);
    assert!(matches!(
        c.close_reason().as_deref(),
        Some(SessionError::HandshakeTimeout { timeout_ms: 10_000 })
    ));
}

/// A peer that completes the handshake (as a real client) and then sends junk.
fn hostile(junk: &[u8]) -> Arc<SessionError> {
    let mut p = Pair::new(
        ClientRole::Publish,
        ClientMode::Plain,
        Feed::Whole,
        ServerConfig::default(),
    );
    p.run();
    assert!(
        p.cev
            .iter()
            .any(|e| matches!(e, ClientEvent::Connected { .. }))
    );
    p.server.handle_input(junk, p.now);
    let reason = p.server.close_reason().expect("server closed");
    assert!(matches!(
        p.server.poll_event(),
        Some(ServerEvent::Closed(_))
    ));
    // Closed for good: more input is ignored, no more events.
    p.server.handle_input(&metadata_body(), p.now);
    assert!(p.server.poll_event().is_none());
    assert!(p.server.accept_connect().is_err());
    reason
}

#[test]
fn hostile_peer_closes_only_its_session() {
    // Type-0 header on csid 3 declaring a 16 MiB message: over the 8 MiB limit.
    let r = hostile(&[0x03, 0, 0, 0, 0xFF, 0xFF, 0xFF, 20, 0, 0, 0, 0]);
    assert!(matches!(&*r, SessionError::Chunk(_)), "{r}");
    // A command message whose body is not AMF.
    let mut junk = BytesMut::new();
    let msg = Message {
        type_id: msg_type::COMMAND_AMF0,
        timestamp: 0,
        stream_id: 0,
        payload: Bytes::from_static(&[0x02, 0x00, 0x09, b'x']),
    };
    crate::chunk::encode_message_full(3, &msg, 128, &mut junk);
    let r = hostile(&junk);
    assert!(matches!(&*r, SessionError::Command(_)), "{r}");
    assert!(r.to_string().contains("command"), "{r}");
    // Random garbage.
    let mut rng = StdRng::seed_from_u64(3);
    let junk: Vec<u8> = (0..2000).map(|_| rng.random()).collect();
    let r = hostile(&junk);
    assert!(!r.to_string().is_empty());
    // A second connect on the same connection.
    let again = crate::command::connect(1.0, vec![], vec![]).to_message(0);
    let mut junk = BytesMut::new();
    crate::chunk::encode_message_full(3, &again, 4096, &mut junk);
    let r = hostile(&junk);
    assert!(r.to_string().contains("second connect"), "{r}");
}

#[test]
fn commands_before_the_connect_is_answered_wait_for_it() {
    let mut p = Pair::new(
        ClientRole::Publish,
        ClientMode::Plain,
        Feed::Whole,
        ServerConfig::default(),
    );
    p.policy.hold_connect = true;
    p.run();
    assert!(
        p.sev
            .iter()
            .any(|e| matches!(e, ServerEvent::ConnectRequest { .. }))
    );
    // A client that does not wait for `_result`: createStream and publish right away.
    let chunk = p.server.stats().in_chunk_size;
    let mut early = BytesMut::new();
    for (csid, msg) in [
        (3, crate::command::create_stream(2.0).to_message(0)),
        (
            8,
            crate::command::publish(3.0, "early", "live").to_message(1),
        ),
    ] {
        crate::chunk::encode_message_full(csid, &msg, chunk, &mut early);
    }
    p.server.handle_input(&early, p.now);
    assert!(p.server.close_reason().is_none());
    assert!(p.server.poll_event().is_none(), "nothing before the answer");
    p.server.accept_connect().unwrap();
    assert!(
        matches!(
            p.server.poll_event(),
            Some(ServerEvent::PublishRequest { stream_id: 1, ref name, .. }) if name == "early"
        ),
        "the publish runs once the connect is accepted"
    );
    // More than a handful of early commands is an attack, not a client.
    let mut p = Pair::new(
        ClientRole::Publish,
        ClientMode::Plain,
        Feed::Whole,
        ServerConfig::default(),
    );
    p.policy.hold_connect = true;
    p.run();
    let mut flood = BytesMut::new();
    for i in 0..17 {
        let msg = crate::command::create_stream(2.0 + f64::from(i)).to_message(0);
        crate::chunk::encode_message_full(3, &msg, chunk, &mut flood);
    }
    p.server.handle_input(&flood, p.now);
    let r = p.server.close_reason().expect("closed");
    assert!(
        r.to_string().contains("before the connect was answered"),
        "{r}"
    );
}

#[test]
fn garbage_handshake_is_a_clear_error() {
    let mut rng = StdRng::seed_from_u64(1);
    let mut s = ServerSession::new(ServerConfig::default(), 0, &mut rng);
    s.handle_input(&[0x47, 0x45, 0x54, 0x20], 0); // "GET "
    let r = s.close_reason().expect("closed");
    assert!(matches!(&*r, SessionError::Handshake(_)), "{r}");
}

#[test]
fn set_data_frame_prefix_rules() {
    use super::client::with_set_data_frame;
    let body = metadata_body();
    let with = with_set_data_frame(body.clone());
    assert_eq!(&with[..16], b"\x02\x00\x0d@setDataFrame");
    assert_eq!(&with[16..], &body[..]);
    // Already prefixed, or not starting with a string: unchanged.
    assert_eq!(with_set_data_frame(with.clone()), with);
    let n = Bytes::from_static(&[0x00, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(with_set_data_frame(n.clone()), n);
}
