//! Scenario tests: client/server pairs joined by in-memory queues, input split at every byte
//! and at random points, hand-built peers for the quirks of real implementations, and hostile
//! input.

use super::*;
use proptest::prelude::*;
use rand::Rng;

/// Bytes the peers put after their last handshake packet; the handshakes must leave them alone.
const CLIENT_TAIL: &[u8] = b"\x03first chunk from the client";
const SERVER_TAIL: &[u8] = b"\x02window ack size from the server";

fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// The two roles behind one face, so one feeding loop serves both.
trait Side {
    fn input(&mut self, data: &[u8]) -> Result<usize, HandshakeError>;
    fn output(&mut self) -> Option<Bytes>;
    fn done(&self) -> bool;
}

impl Side for ClientHandshake {
    fn input(&mut self, data: &[u8]) -> Result<usize, HandshakeError> {
        self.handle_input(data)
    }
    fn output(&mut self) -> Option<Bytes> {
        self.poll_transmit()
    }
    fn done(&self) -> bool {
        self.is_complete()
    }
}

impl Side for ServerHandshake {
    fn input(&mut self, data: &[u8]) -> Result<usize, HandshakeError> {
        self.handle_input(data)
    }
    fn output(&mut self) -> Option<Bytes> {
        self.poll_transmit()
    }
    fn done(&self) -> bool {
        self.is_complete()
    }
}

/// Feeds `queue` to `side` in pieces whose sizes come from `piece`, stopping when the side is
/// done; bytes it did not consume stay in the queue.
fn feed(side: &mut dyn Side, queue: &mut Vec<u8>, piece: &mut dyn FnMut() -> usize) {
    while !queue.is_empty() && !side.done() {
        let k = piece().clamp(1, queue.len());
        let used = side.input(&queue[..k]).expect("handshake failed");
        assert!(used <= k, "consumed {used} of {k} bytes");
        if used < k {
            assert!(
                side.done(),
                "stopped at {used} of {k} bytes before completing"
            );
        }
        queue.drain(..used);
    }
}

/// Runs a pair to completion. Each side's stream is followed by its tail bytes, which must be
/// left unconsumed. Returns both outcomes and the bytes each side sent.
fn run_pair(
    mut client: ClientHandshake,
    mut server: ServerHandshake,
    piece: &mut dyn FnMut() -> usize,
) -> (HandshakeOutcome, HandshakeOutcome, Vec<u8>, Vec<u8>) {
    let (mut to_server, mut to_client) = (Vec::new(), Vec::new());
    let (mut client_sent, mut server_sent) = (Vec::new(), Vec::new());
    let (mut client_tail_sent, mut server_tail_sent) = (false, false);
    for _ in 0..1000 {
        while let Some(b) = client.output() {
            client_sent.extend_from_slice(&b);
            to_server.extend_from_slice(&b);
        }
        if client_sent.len() == 1 + 2 * HANDSHAKE_SIZE && !client_tail_sent {
            to_server.extend_from_slice(CLIENT_TAIL);
            client_tail_sent = true;
        }
        feed(&mut server, &mut to_server, piece);
        while let Some(b) = server.output() {
            server_sent.extend_from_slice(&b);
            to_client.extend_from_slice(&b);
        }
        if server_sent.len() == 1 + 2 * HANDSHAKE_SIZE && !server_tail_sent {
            to_client.extend_from_slice(SERVER_TAIL);
            server_tail_sent = true;
        }
        feed(&mut client, &mut to_client, piece);
        if client.done() && server.done() {
            break;
        }
    }
    assert!(client.done() && server.done(), "pair did not complete");
    assert_eq!(to_server, CLIENT_TAIL, "server consumed bytes after C2");
    assert_eq!(to_client, SERVER_TAIL, "client consumed bytes after S2");
    assert_eq!(client.output(), None);
    assert_eq!(server.output(), None);
    (
        client.into_outcome(),
        server.into_outcome(),
        client_sent,
        server_sent,
    )
}

fn pair(mode: ClientMode, seed: u64) -> (ClientHandshake, ServerHandshake) {
    let mut r = rng(seed);
    let client = ClientHandshake::new(mode, 1000, &mut r);
    let server = ServerHandshake::new(ServerHandshakeConfig::default(), 2000, &mut r);
    (client, server)
}

fn check_plain(client: &HandshakeOutcome, server: &HandshakeOutcome) {
    assert_eq!((client.kind, server.kind), (3, 3));
    assert!(client.cipher.is_none() && server.cipher.is_none());
    assert!(!client.digest_verified && !server.digest_verified);
    assert_eq!(client.peer_version, [3, 5, 1, 1]);
    assert_eq!(server.peer_version, [0; 4]);
    assert!(client.warnings.is_empty(), "{:?}", client.warnings);
    assert!(server.warnings.is_empty(), "{:?}", server.warnings);
}

fn check_digest(client: &HandshakeOutcome, server: &HandshakeOutcome) {
    assert_eq!((client.kind, server.kind), (3, 3));
    assert!(client.digest_verified && server.digest_verified);
    assert_eq!(client.peer_version, [3, 5, 1, 1]);
    assert_eq!(server.peer_version, DIGEST_CLIENT_VERSION);
    assert!(client.warnings.is_empty(), "{:?}", client.warnings);
    assert!(server.warnings.is_empty(), "{:?}", server.warnings);
}

#[test]
fn plain_pair_one_byte_at_a_time() {
    let (c, s) = pair(ClientMode::Plain, 1);
    let (co, so, c_sent, s_sent) = run_pair(c, s, &mut || 1);
    check_plain(&co, &so);
    // Wire shapes: C0 = 3, C1 time and zero version; S2 echoes C1; C2 echoes S1.
    assert_eq!(c_sent[0], 3);
    assert_eq!(c_sent[1..5], 1000u32.to_be_bytes());
    assert_eq!(c_sent[5..9], [0; 4]);
    assert_eq!(s_sent[0], 3);
    assert_eq!(s_sent[1..5], 2000u32.to_be_bytes());
    assert_eq!(s_sent[1 + HANDSHAKE_SIZE..], c_sent[1..1 + HANDSHAKE_SIZE]);
    assert_eq!(c_sent[1 + HANDSHAKE_SIZE..], s_sent[1..1 + HANDSHAKE_SIZE]);
}

#[test]
fn digest_pair_one_byte_at_a_time() {
    let (c, s) = pair(ClientMode::Digest, 2);
    let (co, so, c_sent, s_sent) = run_pair(c, s, &mut || 1);
    check_digest(&co, &so);
    let c1: &[u8; HANDSHAKE_SIZE] = c_sent[1..1 + HANDSHAKE_SIZE].try_into().unwrap();
    let s1: &[u8; HANDSHAKE_SIZE] = s_sent[1..1 + HANDSHAKE_SIZE].try_into().unwrap();
    assert_eq!(c1[4..8], DIGEST_CLIENT_VERSION);
    // C1 uses scheme 0 with the FP key; S1 uses scheme 0 with the FMS key.
    assert_eq!(find_digest(c1, FP_DIGEST_KEY).unwrap().0, Scheme::Zero);
    assert_eq!(find_digest(s1, FMS_DIGEST_KEY).unwrap().0, Scheme::Zero);
    assert_eq!(co.swf_verification_key.unwrap(), s1[HANDSHAKE_SIZE - 32..]);
}

#[test]
fn whole_stream_in_one_call_stops_at_the_handshake_end() {
    for mode in [ClientMode::Plain, ClientMode::Digest] {
        let (c, s) = pair(mode, 3);
        let (co, so, ..) = run_pair(c, s, &mut || usize::MAX);
        assert_eq!(co.kind, 3);
        assert_eq!(so.digest_verified, mode == ClientMode::Digest);
    }
}

proptest! {
    #[test]
    fn pairs_survive_random_splits(
        seed in any::<u64>(),
        digest in any::<bool>(),
        sizes in proptest::collection::vec(1usize..3200, 1..16),
    ) {
        let mode = if digest { ClientMode::Digest } else { ClientMode::Plain };
        let (c, s) = pair(mode, seed);
        let mut i = 0;
        let (co, so, ..) = run_pair(c, s, &mut || { i += 1; sizes[i % sizes.len()] });
        if digest { check_digest(&co, &so) } else { check_plain(&co, &so) }
    }
}

/// A server as the RTMP 1.0 spec and old servers do it: S1 version 0, S2 = C1.
#[test]
fn digest_client_against_a_plain_server() {
    let mut client = ClientHandshake::new(ClientMode::Digest, 7, &mut rng(4));
    let c0c1 = client.poll_transmit().unwrap();
    let mut s1 = random_packet(&mut rng(5));
    s1[4..8].fill(0);
    let mut reply = vec![3];
    reply.extend_from_slice(&s1[..]);
    reply.extend_from_slice(&c0c1[1..]);
    assert_eq!(client.handle_input(&reply).unwrap(), reply.len());
    assert!(client.is_complete());
    assert_eq!(
        client.poll_transmit().unwrap()[..],
        s1[..],
        "C2 must echo S1"
    );
    let out = client.into_outcome();
    assert!(!out.digest_verified);
    assert_eq!(out.peer_version, [0; 4]);
    assert!(out.warnings.is_empty(), "{:?}", out.warnings);
}

/// A versioned S1 with a broken digest and a non-echo S2: the client goes on, with warnings.
#[test]
fn digest_client_warns_on_bad_s1_and_s2() {
    let mut client = ClientHandshake::new(ClientMode::Digest, 7, &mut rng(6));
    client.poll_transmit().unwrap();
    let mut s1 = random_packet(&mut rng(7));
    s1[4..8].copy_from_slice(&[3, 0, 0, 1]);
    let s2 = random_packet(&mut rng(8));
    let mut reply = vec![3];
    reply.extend_from_slice(&s1[..]);
    reply.extend_from_slice(&s2[..]);
    assert_eq!(client.handle_input(&reply).unwrap(), reply.len());
    assert_eq!(client.poll_transmit().unwrap()[..], s1[..]);
    let out = client.into_outcome();
    assert!(!out.digest_verified);
    assert_eq!(out.warnings.len(), 2, "{:?}", out.warnings);
    assert!(out.warnings[0].contains("S1 digest"), "{:?}", out.warnings);
    assert!(
        out.warnings[1].contains("S2 does not echo C1"),
        "{:?}",
        out.warnings
    );
}

/// A valid S1 followed by an S2 whose signature is wrong: a warning, not an error.
#[test]
fn digest_client_warns_on_bad_s2_signature() {
    let mut client = ClientHandshake::new(ClientMode::Digest, 7, &mut rng(9));
    client.poll_transmit().unwrap();
    let mut server = ServerHandshake::new(ServerHandshakeConfig::default(), 1, &mut rng(10));
    let c = ClientHandshake::new(ClientMode::Digest, 7, &mut rng(9))
        .poll_transmit()
        .unwrap();
    server.handle_input(&c).unwrap();
    let mut reply = server.poll_transmit().unwrap().to_vec();
    let last = reply.len() - 1;
    reply[last] ^= 0x01;
    assert_eq!(client.handle_input(&reply).unwrap(), reply.len());
    assert!(client.is_complete());
    let out = client.into_outcome();
    assert!(out.digest_verified);
    assert_eq!(out.warnings.len(), 1);
    assert!(
        out.warnings[0].contains("S2 signature"),
        "{:?}",
        out.warnings
    );
}

/// Drives a server with a digest C1 and then `make_c2(s1)`; returns the outcome.
fn server_with_c2(make_c2: impl FnOnce(&[u8; HANDSHAKE_SIZE]) -> Vec<u8>) -> HandshakeOutcome {
    let mut server = ServerHandshake::new(ServerHandshakeConfig::default(), 1, &mut rng(11));
    let c0c1 = ClientHandshake::new(ClientMode::Digest, 7, &mut rng(12))
        .poll_transmit()
        .unwrap();
    assert_eq!(server.handle_input(&c0c1).unwrap(), c0c1.len());
    let s = server.poll_transmit().unwrap();
    assert_eq!(s.len(), 1 + 2 * HANDSHAKE_SIZE);
    let s1: &[u8; HANDSHAKE_SIZE] = s[1..1 + HANDSHAKE_SIZE].try_into().unwrap();
    let c2 = make_c2(s1);
    assert_eq!(server.handle_input(&c2).unwrap(), HANDSHAKE_SIZE);
    assert!(server.is_complete());
    server.into_outcome()
}

#[test]
fn server_accepts_an_ffmpeg_style_s1_echo_with_a_warning() {
    let out = server_with_c2(|s1| s1.to_vec());
    assert!(out.digest_verified);
    assert_eq!(out.warnings.len(), 1);
    assert!(out.warnings[0].contains("echo of S1"), "{:?}", out.warnings);
}

#[test]
fn server_warns_on_a_bad_c2_signature() {
    let out = server_with_c2(|_| vec![0x55; HANDSHAKE_SIZE]);
    assert_eq!(out.warnings.len(), 1);
    assert!(
        out.warnings[0].contains("C2 signature"),
        "{:?}",
        out.warnings
    );
}

#[test]
fn server_falls_back_to_plain_for_a_versioned_c1_without_valid_digest() {
    let mut server = ServerHandshake::new(ServerHandshakeConfig::default(), 1, &mut rng(13));
    let mut c1 = random_packet(&mut rng(14));
    c1[4..8].copy_from_slice(&[10, 0, 45, 2]);
    server.handle_input(&[3]).unwrap();
    server.handle_input(&c1[..]).unwrap();
    let s = server.poll_transmit().unwrap();
    assert_eq!(s[0], 3);
    assert_eq!(s[1 + HANDSHAKE_SIZE..], c1[..], "S2 must echo C1");
    let s1 = s[1..1 + HANDSHAKE_SIZE].to_vec();
    server.handle_input(&s1).unwrap();
    let out = server.into_outcome();
    assert!(!out.digest_verified);
    assert_eq!(out.peer_version, [10, 0, 45, 2]);
    assert_eq!(out.warnings.len(), 1);
    assert!(
        out.warnings[0].contains("matches neither scheme"),
        "{:?}",
        out.warnings
    );
}

#[test]
fn server_uses_configured_version_and_scheme_zero() {
    let config = ServerHandshakeConfig {
        version: [4, 0, 0, 1],
        ..ServerHandshakeConfig::default()
    };
    let mut server = ServerHandshake::new(config, 0x01020304, &mut rng(15));
    let mut c0c1 = vec![3];
    c0c1.extend_from_slice(&random_packet(&mut rng(16))[..]);
    c0c1[5..9].fill(0);
    server.handle_input(&c0c1).unwrap();
    let s = server.poll_transmit().unwrap();
    let s1: &[u8; HANDSHAKE_SIZE] = s[1..1 + HANDSHAKE_SIZE].try_into().unwrap();
    assert_eq!(s1[..8], [1, 2, 3, 4, 4, 0, 0, 1]);
    assert_eq!(find_digest(s1, FMS_DIGEST_KEY).unwrap().0, Scheme::Zero);
}

#[test]
fn server_rejects_unknown_c0_naming_the_byte() {
    for bad in [0u8, 1, 2, 4, 5, 7, 10, 0x16, b'P', 0xFF] {
        let mut server = ServerHandshake::new(ServerHandshakeConfig::default(), 0, &mut rng(17));
        let err = server.handle_input(&[bad, 0, 0]).unwrap_err();
        assert_eq!(err, HandshakeError::UnknownClientType(bad));
        assert!(err.to_string().contains(&format!("C0 = {bad}")), "{err}");
        // The failure sticks.
        assert_eq!(server.handle_input(&[3]).unwrap_err(), err);
        assert!(!server.is_complete());
        assert_eq!(server.poll_transmit(), None);
    }
}

#[test]
fn server_rejects_disallowed_types() {
    let no_plain = ServerHandshakeConfig {
        allow_plain: false,
        ..ServerHandshakeConfig::default()
    };
    let mut server = ServerHandshake::new(no_plain, 0, &mut rng(18));
    assert_eq!(
        server.handle_input(&[3]).unwrap_err(),
        HandshakeError::DisallowedClientType(3)
    );
    let no_rtmpe = ServerHandshakeConfig {
        allow_rtmpe: false,
        ..ServerHandshakeConfig::default()
    };
    for kind in [6, 8, 9] {
        let mut server = ServerHandshake::new(no_rtmpe.clone(), 0, &mut rng(18));
        let err = server.handle_input(&[kind]).unwrap_err();
        assert_eq!(err, HandshakeError::DisallowedClientType(kind));
        assert!(err.to_string().contains(&kind.to_string()));
    }
}

#[test]
fn server_rejects_rtmpe_c1_with_a_bad_digest() {
    let mut server = ServerHandshake::new(ServerHandshakeConfig::default(), 0, &mut rng(19));
    let mut c1 = random_packet(&mut rng(20));
    c1[4..8].copy_from_slice(&[0x80, 0, 3, 2]);
    server.handle_input(&[6]).unwrap();
    let err = server.handle_input(&c1[..]).unwrap_err();
    assert_eq!(
        err,
        HandshakeError::InvalidC1Digest {
            kind: 6,
            version: [0x80, 0, 3, 2]
        }
    );
    assert!(err.to_string().contains("[80, 00, 03, 02]"), "{err}");
    assert_eq!(server.poll_transmit(), None);
}

#[test]
fn server_rejects_unversioned_rtmpe_c1() {
    let mut server = ServerHandshake::new(ServerHandshakeConfig::default(), 0, &mut rng(21));
    let mut c0c1 = vec![9; 1 + HANDSHAKE_SIZE];
    c0c1[5..9].fill(0);
    let err = server.handle_input(&c0c1).unwrap_err();
    assert_eq!(err, HandshakeError::UnversionedRtmpeC1 { kind: 9 });
}

#[test]
fn client_rejects_an_unexpected_s0() {
    for (mode, bad) in [
        (ClientMode::Plain, 6u8),
        (ClientMode::Digest, b'H'),
        (ClientMode::Plain, 0),
    ] {
        let mut client = ClientHandshake::new(mode, 0, &mut rng(22));
        let err = client.handle_input(&[bad]).unwrap_err();
        assert_eq!(
            err,
            HandshakeError::UnexpectedServerType { sent: 3, got: bad }
        );
        assert!(err.to_string().contains(&format!("S0 = {bad}")), "{err}");
        assert_eq!(client.handle_input(&[3]).unwrap_err(), err);
    }
}

#[test]
fn client_rejects_a_nonexistent_rtmpe_kind() {
    let mut client = ClientHandshake::new(ClientMode::Rtmpe { kind: 7 }, 0, &mut rng(23));
    assert_eq!(client.poll_transmit(), None);
    let err = client.handle_input(&[7]).unwrap_err();
    assert_eq!(err, HandshakeError::UnsupportedRtmpeKind(7));
    assert!(err.to_string().contains('7'));
}

#[test]
fn input_after_completion_is_not_consumed() {
    let (c, s) = pair(ClientMode::Digest, 24);
    let (mut c, mut s) = (c, s);
    let c0c1 = c.poll_transmit().unwrap();
    s.handle_input(&c0c1).unwrap();
    let reply = s.poll_transmit().unwrap();
    c.handle_input(&reply).unwrap();
    let c2 = c.poll_transmit().unwrap();
    let mut more = c2.to_vec();
    more.extend_from_slice(CLIENT_TAIL);
    assert_eq!(s.handle_input(&more).unwrap(), HANDSHAKE_SIZE);
    assert_eq!(s.handle_input(CLIENT_TAIL).unwrap(), 0);
    assert_eq!(c.handle_input(SERVER_TAIL).unwrap(), 0);
    assert!(c.is_complete() && s.is_complete());
}

#[test]
fn random_generator_is_used_for_c1() {
    let a = ClientHandshake::new(ClientMode::Plain, 0, &mut rng(25))
        .poll_transmit()
        .unwrap();
    let b = ClientHandshake::new(ClientMode::Plain, 0, &mut rng(26))
        .poll_transmit()
        .unwrap();
    assert_ne!(a[9..], b[9..]);
    let mut r = rand::rng();
    let c = ClientHandshake::new(ClientMode::Plain, r.random(), &mut r)
        .poll_transmit()
        .unwrap();
    assert_eq!(c.len(), 1 + HANDSHAKE_SIZE);
}
