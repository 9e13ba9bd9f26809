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

// ---- RTMPE ----

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn check_rtmpe(kind: u8, client: &mut HandshakeOutcome, server: &mut HandshakeOutcome) {
    assert_eq!((client.kind, server.kind), (kind, kind));
    assert!(client.digest_verified && server.digest_verified);
    assert_eq!(client.peer_version, [3, 5, 1, 1]);
    assert_eq!(server.peer_version, RTMPE_CLIENT_VERSION);
    assert!(client.warnings.is_empty(), "{:?}", client.warnings);
    assert!(server.warnings.is_empty(), "{:?}", server.warnings);
    let (c, s) = (
        client.cipher.as_mut().unwrap(),
        server.cipher.as_mut().unwrap(),
    );
    for round in 0..3u8 {
        let plain = format!("connect #{round} from the client").into_bytes();
        let mut wire = plain.clone();
        c.encrypt(&mut wire);
        assert_ne!(wire, plain);
        s.decrypt(&mut wire);
        assert_eq!(wire, plain);
        let plain = format!("_result #{round} from the server").into_bytes();
        let mut wire = plain.clone();
        s.encrypt(&mut wire);
        assert_ne!(wire, plain);
        c.decrypt(&mut wire);
        assert_eq!(wire, plain);
    }
}

#[test]
fn rtmpe_pairs_one_byte_at_a_time() {
    for (i, kind) in [6u8, 8, 9].into_iter().enumerate() {
        let (c, s) = pair(ClientMode::Rtmpe { kind }, 100 + i as u64);
        let (mut co, mut so, c_sent, s_sent) = run_pair(c, s, &mut || 1);
        check_rtmpe(kind, &mut co, &mut so);
        let c1: &[u8; HANDSHAKE_SIZE] = c_sent[1..1 + HANDSHAKE_SIZE].try_into().unwrap();
        let s1: &[u8; HANDSHAKE_SIZE] = s_sent[1..1 + HANDSHAKE_SIZE].try_into().unwrap();
        assert_eq!((c_sent[0], s_sent[0]), (kind, kind));
        assert_eq!(c1[4..8], RTMPE_CLIENT_VERSION);
        assert_eq!(find_digest(c1, FP_DIGEST_KEY).unwrap().0, Scheme::One);
        assert_eq!(find_digest(s1, FMS_DIGEST_KEY).unwrap().0, Scheme::Zero);
        // Both DH keys sit where the schemes say and are valid.
        let at = Scheme::One.dh_pos(c1);
        dh::check_public_key(c1[at..at + DH_KEY_LEN].try_into().unwrap()).unwrap();
        let at = Scheme::Zero.dh_pos(s1);
        dh::check_public_key(s1[at..at + DH_KEY_LEN].try_into().unwrap()).unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(6))]
    #[test]
    fn rtmpe_pairs_survive_random_splits(
        seed in any::<u64>(),
        kind in prop::sample::select(vec![6u8, 8, 9]),
        sizes in proptest::collection::vec(1usize..3200, 1..16),
    ) {
        let (c, s) = pair(ClientMode::Rtmpe { kind }, seed);
        let mut i = 0;
        let (mut co, mut so, ..) = run_pair(c, s, &mut || { i += 1; sizes[i % sizes.len()] });
        check_rtmpe(kind, &mut co, &mut so);
    }
}

/// librtmp's server may answer S0 = 8 to C0 = 6; the client must follow S0 for the signatures.
#[test]
fn rtmpe_client_follows_the_servers_type() {
    let mut client = ClientHandshake::new(ClientMode::Rtmpe { kind: 6 }, 0, &mut rng(30));
    let mut server = ServerHandshake::new(ServerHandshakeConfig::default(), 0, &mut rng(31));
    let mut c0c1 = client.poll_transmit().unwrap().to_vec();
    c0c1[0] = 8;
    server.handle_input(&c0c1).unwrap();
    let reply = server.poll_transmit().unwrap();
    assert_eq!(reply[0], 8);
    assert_eq!(client.handle_input(&reply).unwrap(), reply.len());
    let c2 = client.poll_transmit().unwrap();
    assert_eq!(server.handle_input(&c2).unwrap(), HANDSHAKE_SIZE);
    let (mut co, mut so) = (client.into_outcome(), server.into_outcome());
    check_rtmpe(8, &mut co, &mut so);
}

/// Server side of a C1 whose digest is fine but whose DH key is not.
fn server_error_for_client_key(key: [u8; DH_KEY_LEN]) -> HandshakeError {
    let mut c1 = random_packet(&mut rng(32));
    c1[4..8].copy_from_slice(&RTMPE_CLIENT_VERSION);
    let at = Scheme::One.dh_pos(&c1);
    c1[at..at + DH_KEY_LEN].copy_from_slice(&key);
    imprint_digest(&mut c1, Scheme::One, FP_DIGEST_KEY);
    let mut server = ServerHandshake::new(ServerHandshakeConfig::default(), 0, &mut rng(33));
    server.handle_input(&[6]).unwrap();
    let err = server.handle_input(&c1[..]).unwrap_err();
    assert_eq!(server.poll_transmit(), None);
    match &err {
        HandshakeError::InvalidPublicKey { side, offset, .. } => {
            assert_eq!((*side, *offset), ("client", at));
        }
        other => panic!("unexpected error {other}"),
    }
    err
}

#[test]
fn server_rejects_client_dh_keys_out_of_range() {
    let err = server_error_for_client_key([0xFF; DH_KEY_LEN]);
    assert!(matches!(
        err,
        HandshakeError::InvalidPublicKey { problem: DhKeyProblem::TooLarge, head, .. } if head == [0xFF; 8]
    ));
    assert!(err.to_string().contains("y >= P-1"), "{err}");
    let mut one = [0u8; DH_KEY_LEN];
    one[DH_KEY_LEN - 1] = 1;
    let err = server_error_for_client_key(one);
    assert!(matches!(
        err,
        HandshakeError::InvalidPublicKey {
            problem: DhKeyProblem::TooSmall,
            ..
        }
    ));
    assert!(
        err.to_string().contains("client DH public key at offset"),
        "{err}"
    );
    // -2 mod P is in range but outside the subgroup.
    let mut minus_two = [0xFF; DH_KEY_LEN];
    minus_two.copy_from_slice(&unhex(P_HEX));
    minus_two[DH_KEY_LEN - 1] -= 2;
    let err = server_error_for_client_key(minus_two);
    assert!(matches!(
        err,
        HandshakeError::InvalidPublicKey {
            problem: DhKeyProblem::NotInSubgroup,
            ..
        }
    ));
}

#[test]
fn rtmpe_client_rejects_a_bad_server_key_and_a_keyless_s1() {
    // A properly signed S1 with a zero DH key.
    let mut s1 = random_packet(&mut rng(34));
    s1[4..8].copy_from_slice(&[3, 5, 1, 1]);
    let at = Scheme::Zero.dh_pos(&s1);
    s1[at..at + DH_KEY_LEN].fill(0);
    imprint_digest(&mut s1, Scheme::Zero, FMS_DIGEST_KEY);
    let mut client = ClientHandshake::new(ClientMode::Rtmpe { kind: 9 }, 0, &mut rng(35));
    client.handle_input(&[9]).unwrap();
    let err = client.handle_input(&s1[..]).unwrap_err();
    assert!(
        matches!(err, HandshakeError::InvalidPublicKey { side: "server", problem: DhKeyProblem::TooSmall, offset, .. } if offset == at),
        "{err}"
    );

    // An S1 with neither a digest nor a valid key at the scheme-0 position.
    let mut s1 = [0xFFu8; HANDSHAKE_SIZE];
    s1[4..8].copy_from_slice(&[3, 5, 1, 1]);
    let mut client = ClientHandshake::new(ClientMode::Rtmpe { kind: 6 }, 0, &mut rng(36));
    client.handle_input(&[6]).unwrap();
    let err = client.handle_input(&s1).unwrap_err();
    assert_eq!(
        err,
        HandshakeError::InvalidS1Digest {
            kind: 6,
            version: [3, 5, 1, 1]
        }
    );
    assert!(!client.is_complete());
}

#[test]
fn rtmpe_client_rejects_a_plain_s0() {
    let mut client = ClientHandshake::new(ClientMode::Rtmpe { kind: 8 }, 0, &mut rng(37));
    let err = client.handle_input(&[3]).unwrap_err();
    assert_eq!(
        err,
        HandshakeError::UnexpectedServerType { sent: 8, got: 3 }
    );
}

const P_HEX: &str = "ffffffffffffffffc90fdaa22168c234c4c6628b80dc1cd129024e088a67cc74020bbea63b139b22514a08798e3404ddef9519b3cd3a431b302b0a6df25f14374fe1356d6d51c245e485b576625e7ec6f44c42e9a637ed6b0bff5cb6f406b7edee386bfb5a899fa5ae9f24117c4b1fe649286651ece65381ffffffffffffffff";

/// Appendix A.4, end to end, from the fixed private keys.
#[test]
fn appendix_a4_end_to_end() {
    use cipher::signature_key_ids;
    use num_bigint::BigUint;

    let a = KeyPair::from_private(BigUint::from_bytes_be(&unhex(
        "35a119606266f76993cd7622460ef8eec364fc2740161652d75b01f52e9d1f8f",
    )))
    .unwrap();
    let b = KeyPair::from_private(BigUint::from_bytes_be(&unhex(
        "602f9f982e838f4a17dd6407c043af9d8842d30d5259440bbb842050b006d543",
    )))
    .unwrap();
    assert_eq!(
        hex(a.public_key()),
        "c720ec174d6df816096f848ffe89b8f25dd93705a7cf03120398adbdd593391649e588e8dfe53fece49b1fd4bc748b273f7f3bb2e3bb8ea8684bca1e33e3c3734bd5cb20869b37fede32eac57938dacc6dd04398056da02b53f8b93a18c989c970fdcbf6ab91ab324a5b0698c29eee8d7b3cc989f575bdac373199618d4cd139"
    );
    assert_eq!(
        hex(b.public_key()),
        "1ebc09e5679424975cc8d1768b6defe40fd8472acf91d197c1ccf28072f0f84692ac8f339e34ac86155c1674eb009910050b4b7791acefe3e84f086bfa1b092a4e9f40ef52e4b9f782d41457a2550b322ccacdd443cf070db05888353333411425f891ecadcb98bae69f49c8c2f0fb5859330f5fcd81ed9cf4b8dd98c2e80535"
    );
    let secret = a.shared_secret(b.public_key()).unwrap();
    assert_eq!(secret, b.shared_secret(a.public_key()).unwrap());
    assert_eq!(
        hex(&secret),
        "056b519e5bc3fee891700ae3268a66562466e06c1f6ebf35efd5202185a4896bac1323275aaf80d56898b1d999de0b2bc8c81145df43ec06fefdfc1ca2ed221262a1eb5cd38d9e6cabfde169bc0b4c5574df6256a760d1b765f13daf471d09e3a40fe02acd12632a4f933d51a9ad094205a1f5cef9745be5b7ba8d6d351349b1"
    );

    // C1: scheme 1, A at 114, digest at 1090.
    let mut c1: [u8; HANDSHAKE_SIZE] = std::array::from_fn(|i| ((13 * i + 7) % 256) as u8);
    c1[..8].copy_from_slice(&[0, 0, 0, 0, 0x80, 0, 3, 2]);
    assert_eq!(Scheme::One.dh_pos(&c1), 114);
    c1[114..114 + DH_KEY_LEN].copy_from_slice(a.public_key());
    assert_eq!(Scheme::One.digest_pos(&c1), 1090);
    let c1_digest = imprint_digest(&mut c1, Scheme::One, FP_DIGEST_KEY);
    assert_eq!(
        hex(&c1_digest),
        "aa4003b8598085bb2bad6f460bbc184d2ec16717d7162a4c081c59476fa74eb5"
    );

    // S1: scheme 0, B at 886, digest at 358; only scheme 0 validates.
    let mut s1: [u8; HANDSHAKE_SIZE] = std::array::from_fn(|i| ((29 * i + 3) % 256) as u8);
    s1[..8].copy_from_slice(&[0, 0, 0, 0, 3, 5, 1, 1]);
    assert_eq!(Scheme::Zero.dh_pos(&s1), 886);
    s1[886..886 + DH_KEY_LEN].copy_from_slice(b.public_key());
    assert_eq!(Scheme::Zero.digest_pos(&s1), 358);
    let s1_digest = imprint_digest(&mut s1, Scheme::Zero, FMS_DIGEST_KEY);
    assert_eq!(
        hex(&s1_digest),
        "fa3b1e629c0c509f665bff4976804c35c4a2a49061496ced2d4df2da27788d5a"
    );
    assert_eq!(
        find_digest(&s1, FMS_DIGEST_KEY),
        Some((Scheme::Zero, s1_digest))
    );
    let s1_pos1 = Scheme::One.digest_pos(&s1);
    assert_ne!(
        digest::packet_digest(&s1, s1_pos1, FMS_DIGEST_KEY)[..],
        s1[s1_pos1..s1_pos1 + 32]
    );

    // RC4 keys and the keystreams after the warm-up, through the handshake's own key agreement.
    assert_eq!(
        hex(&digest::hmac_sha256(&secret, &[b.public_key()])[..16]),
        "874a0308a52940e005c0292a65be0fc8"
    );
    assert_eq!(
        hex(&digest::hmac_sha256(&secret, &[a.public_key()])[..16]),
        "b9e70e55b44118bb5daad0db821f8fb7"
    );
    let mut client = agree(&a, &s1, 886, "server").unwrap();
    let mut server = agree(&b, &c1, 114, "client").unwrap();
    client.warm_up();
    server.warm_up();
    let mut c2s = [0u8; 16];
    client.encrypt(&mut c2s);
    assert_eq!(hex(&c2s), "ead5bcab0b31e55f488f24fb623bd175");
    let mut s2c = [0u8; 16];
    server.encrypt(&mut s2c);
    assert_eq!(hex(&s2c), "dd8cedb15f375e46d4248acf0289a233");
    let (mut check_c2s, mut check_s2c) = ([0u8; 16], [0u8; 16]);
    server.decrypt(&mut check_c2s);
    client.decrypt(&mut check_s2c);
    assert_eq!((check_c2s, check_s2c), (c2s, s2c));

    // C2 signature, types 6, 8, 9.
    let c2: [u8; HANDSHAKE_SIZE] = std::array::from_fn(|i| ((31 * i + 11) % 256) as u8);
    let key = signature_key(&GENUINE_FP_KEY, &s1_digest);
    assert_eq!(
        hex(&key),
        "e03b10decade44c008715e7601afa3391701fbd774282e2d96333e4eb86752a0"
    );
    assert_eq!(signature_key_ids(&key), [14, 8, 8, 0]);
    for (kind, sig) in [
        (
            6,
            "b98eecbffc22eb137c3f0e94d94ba33126f9fbfcb342ff64de8495e3f5e7796f",
        ),
        (
            8,
            "38b79d046f04b276e33bafe9acef738097038e7ac8a1f87af5cb8da4b5b5cbaa",
        ),
        (
            9,
            "4f8e89283855e88272b893d56b17184a069a23f96cbe14310fbe02b725a3b77a",
        ),
    ] {
        assert_eq!(
            hex(&expected_signature(kind, &key, &c2)),
            sig,
            "C2 type {kind}"
        );
    }

    // S2 signature, types 6, 8, 9.
    let s2: [u8; HANDSHAKE_SIZE] = std::array::from_fn(|i| ((37 * i + 5) % 256) as u8);
    let key = signature_key(&GENUINE_FMS_KEY, &c1_digest);
    assert_eq!(
        hex(&key),
        "3e778d50ff10e9a4d187f1c162468342adea3ca72a259093ceaf82a6ccaebc96"
    );
    assert_eq!(signature_key_ids(&key), [2, 14, 8, 11]);
    for (kind, sig) in [
        (
            6,
            "a58f221b35260ec758fc89464fd8dacc1f428ff49ccfb3cc574c5b6d988685b8",
        ),
        (
            8,
            "02130e587aa300a65aaa33c5c36f27dd2833e332cee07b1d5534927ecf5a0fcd",
        ),
        (
            9,
            "9a197d709e5a4c809e5036e8863134df97093641b5786f612f70c8df186d3096",
        ),
    ] {
        assert_eq!(
            hex(&expected_signature(kind, &key, &s2)),
            sig,
            "S2 type {kind}"
        );
    }

    // SWF verification with a dummy 8-byte SWF.
    let swf = [0x46, 0x57, 0x53, 0, 0, 0, 0, 0];
    let hash = swf_hash(&swf);
    assert_eq!(
        hex(&hash),
        "a5518213480b1e32bce2a3c0693d9355fbbe71bcf56c1819131535efab797f5d"
    );
    let tail: [u8; 32] = s1[HANDSHAKE_SIZE - 32..].try_into().unwrap();
    let token = swf_verification_token(&hash, swf.len() as u32, &tail);
    assert_eq!(token[..10], [1, 1, 0, 0, 0, 8, 0, 0, 0, 8]);
    assert_eq!(
        hex(&token[10..]),
        "bd6ee21b528fb14288db90740f9bc79423eb41e35558fb0a987070dc8dd166ff"
    );
}

/// The client fed the A.4 S1 (with S0 = 6) must find B through the scheme-0 digest and derive
/// the same c→s key as the vector; checked through a server-side pair built from b.
#[test]
fn rtmpe_client_locates_the_server_key_through_the_validated_scheme() {
    let mut s1: [u8; HANDSHAKE_SIZE] = std::array::from_fn(|i| ((29 * i + 3) % 256) as u8);
    s1[..8].copy_from_slice(&[0, 0, 0, 0, 3, 5, 1, 1]);
    let b = KeyPair::generate(&mut rng(40));
    let at = Scheme::Zero.dh_pos(&s1);
    s1[at..at + DH_KEY_LEN].copy_from_slice(b.public_key());
    imprint_digest(&mut s1, Scheme::Zero, FMS_DIGEST_KEY);

    let mut client = ClientHandshake::new(ClientMode::Rtmpe { kind: 6 }, 0, &mut rng(41));
    let c0c1 = client.poll_transmit().unwrap();
    let c1: [u8; HANDSHAKE_SIZE] = c0c1[1..].try_into().unwrap();
    let mut reply = vec![6];
    reply.extend_from_slice(&s1);
    reply.extend_from_slice(&c1); // a plain echo as S2 is accepted
    assert_eq!(client.handle_input(&reply).unwrap(), reply.len());
    let mut out = client.into_outcome();
    assert!(out.digest_verified);
    assert!(out.warnings.is_empty(), "{:?}", out.warnings);
    let mut server = agree(&b, &c1, Scheme::One.dh_pos(&c1), "client").unwrap();
    server.warm_up();
    let mut msg = *b"hello";
    out.cipher.as_mut().unwrap().encrypt(&mut msg);
    server.decrypt(&mut msg);
    assert_eq!(&msg, b"hello");
}
