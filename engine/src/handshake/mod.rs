//! RTMP handshakes, both roles: plain (C0 = 3, unversioned C1), FP9 digest (C0 = 3, versioned
//! C1 with an HMAC digest) and RTMPE (C0 = 6, 8 or 9: digest plus Diffie-Hellman and RC4).
//!
//! Both state machines are sans-IO: bytes go in through `handle_input`, bytes to send come out
//! of `poll_transmit`, and randomness is drawn from a generator seeded once from the caller's
//! RNG in `new`. Invariants:
//! - `handle_input` consumes exactly the handshake bytes and never a byte past the last one, so
//!   whatever follows (the first chunk, RC4-encrypted under RTMPE) stays with the caller.
//! - Buffers are fixed at 1536 bytes; nothing is sized from the wire.
//! - Echo and signature mismatches in C2/S2 are warnings in the outcome, never errors, because
//!   deployed peers (FFmpeg publishers, nginx) do not all sign them; a bad C0, a bad C1 digest
//!   under RTMPE or an invalid DH key are errors, and after an error every later call returns it
//!   again.

mod cipher;
mod dh;
mod digest;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

pub use cipher::Rc4Pair;
pub use dh::DhKeyProblem;

use cipher::encipher_signature;
use dh::KeyPair;
use digest::{
    DH_KEY_LEN, DIGEST_LEN, FMS_DIGEST_KEY, FP_DIGEST_KEY, GENUINE_FMS_KEY, GENUINE_FP_KEY, Scheme,
    find_digest, imprint_digest, signature, signature_key,
};

/// Size of C1, C2, S1 and S2.
pub const HANDSHAKE_SIZE: usize = 1536;

/// C0/S0 of an unencrypted handshake.
pub const TYPE_PLAIN: u8 = 3;

/// C1 version of the digest handshake (9.0.124.2, what FFmpeg sends).
const DIGEST_CLIENT_VERSION: [u8; 4] = [0x09, 0x00, 0x7C, 0x02];

/// C1 version of an RTMPE client (128.0.3.2, what librtmp and FFmpeg send).
const RTMPE_CLIENT_VERSION: [u8; 4] = [0x80, 0x00, 0x03, 0x02];

/// How a client introduces itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientMode {
    /// C0 = 3, C1 version 0 and no digest: the RTMP 1.0 spec handshake.
    Plain,
    /// C0 = 3, C1 version 9.0.124.2 with a scheme-0 digest (FP9 handshake).
    Digest,
    /// RTMPE with C0 = `kind` (6, 8 or 9).
    Rtmpe {
        /// The C0 byte: 6 (RC4 only), 8 (XTEA-enciphered C2/S2 signature) or 9 (Blowfish).
        kind: u8,
    },
}

/// Server-side policy.
#[derive(Debug, Clone)]
pub struct ServerHandshakeConfig {
    /// Accept C0 = 3 (plain and digest handshakes).
    pub allow_plain: bool,
    /// Accept C0 = 6, 8 or 9 (RTMPE).
    pub allow_rtmpe: bool,
    /// S1 version bytes. Keep them non-zero with a major of at least 3: clients skip S1
    /// validation otherwise.
    pub version: [u8; 4],
}

impl Default for ServerHandshakeConfig {
    fn default() -> Self {
        Self {
            allow_plain: true,
            allow_rtmpe: true,
            version: [3, 5, 1, 1],
        }
    }
}

/// Why a handshake failed. Each variant carries the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The client's first byte is not a handshake type this server knows.
    #[error("unknown handshake type C0 = {0} (0x{0:02x}); expected 3, 6, 8 or 9")]
    UnknownClientType(u8),
    /// The client's handshake type is known but switched off in the server configuration.
    #[error("handshake type C0 = {0} is disabled by the server configuration")]
    DisallowedClientType(u8),
    /// The server answered with a type the client cannot continue with.
    #[error("server answered S0 = {got} (0x{got:02x}) to C0 = {sent}")]
    UnexpectedServerType {
        /// What the client sent in C0.
        sent: u8,
        /// What came back in S0.
        got: u8,
    },
    /// A client was created with an RTMPE kind that does not exist.
    #[error("RTMPE type {0} does not exist; use 6, 8 or 9")]
    UnsupportedRtmpeKind(u8),
    /// RTMPE needs the digest handshake, but the client sent an unversioned C1.
    #[error(
        "RTMPE (C0 = {kind}) needs a versioned C1 with a digest, but C1 version is 00 00 00 00"
    )]
    UnversionedRtmpeC1 {
        /// The C0 byte.
        kind: u8,
    },
    /// An RTMPE C1 whose digest validates under neither placement.
    #[error(
        "C1 digest matches neither scheme 0 nor scheme 1 (C0 = {kind}, C1 version {version:02x?})"
    )]
    InvalidC1Digest {
        /// The C0 byte.
        kind: u8,
        /// C1 bytes 4..8.
        version: [u8; 4],
    },
    /// An RTMPE S1 whose digest validates under neither placement and that has no valid DH
    /// key at the scheme-0 position either.
    #[error(
        "S1 digest matches neither scheme 0 nor scheme 1 (S0 = {kind}, S1 version {version:02x?}) and no valid DH key was found"
    )]
    InvalidS1Digest {
        /// The S0 byte.
        kind: u8,
        /// S1 bytes 4..8.
        version: [u8; 4],
    },
    /// The peer's DH public key fails the validity check.
    #[error(
        "{side} DH public key at offset {offset} is invalid: {problem} (key starts {head:02x?})"
    )]
    InvalidPublicKey {
        /// "client" (found in C1) or "server" (found in S1).
        side: &'static str,
        /// Where in C1/S1 the key was read.
        offset: usize,
        /// What is wrong with it.
        problem: DhKeyProblem,
        /// Its first 8 bytes.
        head: [u8; 8],
    },
}

/// Reads the peer's DH key at `offset` and computes the shared secret and the RC4 pair.
fn agree(
    own: &KeyPair,
    packet: &[u8; HANDSHAKE_SIZE],
    offset: usize,
    side: &'static str,
) -> Result<Rc4Pair, HandshakeError> {
    let peer: &[u8; DH_KEY_LEN] = packet[offset..offset + DH_KEY_LEN]
        .try_into()
        .expect("DH positions keep the key inside the packet");
    let secret = own.shared_secret(peer).map_err(|problem| {
        let mut head = [0u8; 8];
        head.copy_from_slice(&peer[..8]);
        HandshakeError::InvalidPublicKey {
            side,
            offset,
            problem,
            head,
        }
    })?;
    Ok(Rc4Pair::derive(&secret, own.public_key(), peer))
}

/// What a finished handshake established.
#[derive(Debug)]
pub struct HandshakeOutcome {
    /// The C0/S0 type in effect (3, 6, 8 or 9).
    pub kind: u8,
    /// The RC4 stream pair for RTMPE, already advanced past the 1536-byte warm-up; `None` for
    /// type 3.
    pub cipher: Option<Rc4Pair>,
    /// The peer's C1/S1 bytes 4..8.
    pub peer_version: [u8; 4],
    /// Whether the peer's C1 (server role) or S1 (client role) digest validated.
    pub digest_verified: bool,
    /// Non-fatal oddities, such as an unsigned C2 or a C2/S2 that does not echo.
    pub warnings: Vec<String>,
    /// Client role only: the last 32 bytes of S1, the HMAC key of the SWF verification answer
    /// (see [`swf_verification_token`]).
    pub swf_verification_key: Option<[u8; DIGEST_LEN]>,
}

/// Answer to a server's SWF verification request: `01 01`, the SWF size twice (u32 BE), then
/// HMAC-SHA256 of the SWF hash under the last 32 bytes of S1.
pub fn swf_verification_token(
    swf_hash: &[u8; DIGEST_LEN],
    swf_size: u32,
    s1_tail: &[u8; DIGEST_LEN],
) -> [u8; 42] {
    let mut token = [0u8; 42];
    token[0] = 1;
    token[1] = 1;
    token[2..6].copy_from_slice(&swf_size.to_be_bytes());
    token[6..10].copy_from_slice(&swf_size.to_be_bytes());
    token[10..].copy_from_slice(&digest::hmac_sha256(s1_tail, &[swf_hash]));
    token
}

/// The SWF hash used by SWF verification: HMAC-SHA256 of the uncompressed SWF file under the
/// 30-byte Flash Player key.
pub fn swf_hash(uncompressed_swf: &[u8]) -> [u8; DIGEST_LEN] {
    digest::hmac_sha256(FP_DIGEST_KEY, &[uncompressed_swf])
}

/// Collects a fixed-size packet from input that arrives in arbitrary pieces.
#[derive(Debug)]
struct Collector {
    buf: Vec<u8>,
}

impl Collector {
    fn new() -> Self {
        Self {
            buf: Vec::with_capacity(HANDSHAKE_SIZE),
        }
    }

    /// Takes bytes from the front of `data` until a whole packet is held. Returns how many bytes
    /// were taken and the packet once it is complete (the collector is then empty again).
    fn take(&mut self, data: &[u8]) -> (usize, Option<Box<[u8; HANDSHAKE_SIZE]>>) {
        let n = (HANDSHAKE_SIZE - self.buf.len()).min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() < HANDSHAKE_SIZE {
            return (n, None);
        }
        let full = std::mem::replace(&mut self.buf, Vec::with_capacity(HANDSHAKE_SIZE));
        let packet: Box<[u8; HANDSHAKE_SIZE]> = full
            .into_boxed_slice()
            .try_into()
            .expect("collector holds exactly HANDSHAKE_SIZE bytes");
        (n, Some(packet))
    }
}

fn version_of(packet: &[u8; HANDSHAKE_SIZE]) -> [u8; 4] {
    [packet[4], packet[5], packet[6], packet[7]]
}

fn random_packet(rng: &mut StdRng) -> Box<[u8; HANDSHAKE_SIZE]> {
    let mut packet = Box::new([0u8; HANDSHAKE_SIZE]);
    rng.fill_bytes(&mut packet[..]);
    packet
}

/// Whether `echo` repeats `original`'s random part. Bytes 0..8 (times) are left out because the
/// spec lets the echoing side put its own read time at 4..8.
fn echoes(echo: &[u8; HANDSHAKE_SIZE], original: &[u8; HANDSHAKE_SIZE]) -> bool {
    echo[8..] == original[8..]
}

fn is_rtmpe_kind(kind: u8) -> bool {
    matches!(kind, 6 | 8 | 9)
}

/// The signature a C2/S2 of handshake type `kind` must end with.
fn expected_signature(
    kind: u8,
    key: &[u8; DIGEST_LEN],
    packet: &[u8; HANDSHAKE_SIZE],
) -> [u8; DIGEST_LEN] {
    let mut sig = signature(key, packet);
    encipher_signature(kind, key, &mut sig);
    sig
}

/// A packet whose last 32 bytes sign the rest: what a digest handshake sends as C2/S2.
fn signed_packet(kind: u8, mut body: Box<[u8; HANDSHAKE_SIZE]>, key: &[u8; DIGEST_LEN]) -> Bytes {
    let sig = expected_signature(kind, key, &body);
    body[HANDSHAKE_SIZE - DIGEST_LEN..].copy_from_slice(&sig);
    Bytes::from(body.to_vec())
}

fn signature_of(packet: &[u8; HANDSHAKE_SIZE]) -> &[u8] {
    &packet[HANDSHAKE_SIZE - DIGEST_LEN..]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientState {
    AwaitS0,
    AwaitS1,
    AwaitS2,
    Done,
}

/// The client role. Create it, send what [`poll_transmit`](Self::poll_transmit) yields, feed
/// everything received to [`handle_input`](Self::handle_input) until
/// [`is_complete`](Self::is_complete), then take the [`HandshakeOutcome`].
#[derive(Debug)]
pub struct ClientHandshake {
    mode: ClientMode,
    rng: StdRng,
    c1: Box<[u8; HANDSHAKE_SIZE]>,
    /// The digest we put in C1 (digest and RTMPE modes).
    c1_digest: Option<[u8; DIGEST_LEN]>,
    state: ClientState,
    collector: Collector,
    pending: Vec<u8>,
    error: Option<HandshakeError>,
    server_kind: u8,
    peer_version: [u8; 4],
    /// The S1 digest, once it validated.
    s1_digest: Option<[u8; DIGEST_LEN]>,
    s1_tail: Option<[u8; DIGEST_LEN]>,
    warnings: Vec<String>,
    /// Our DH key pair (RTMPE).
    dh: Option<KeyPair>,
    cipher: Option<Rc4Pair>,
}

impl ClientHandshake {
    /// C0+C1 are ready in [`poll_transmit`](Self::poll_transmit) right away. `time` goes in C1
    /// bytes 0..4. An RTMPE `kind` other than 6, 8 or 9 makes a handshake that sends nothing
    /// and fails with [`HandshakeError::UnsupportedRtmpeKind`] on the first `handle_input`.
    pub fn new(mode: ClientMode, time: u32, rng: &mut dyn RngCore) -> Self {
        let mut rng = StdRng::from_rng(&mut &mut *rng);
        let mut c1 = random_packet(&mut rng);
        c1[0..4].copy_from_slice(&time.to_be_bytes());
        let mut error = None;
        let mut c1_digest = None;
        let mut dh = None;
        let kind = match mode {
            ClientMode::Plain => {
                c1[4..8].fill(0);
                TYPE_PLAIN
            }
            ClientMode::Digest => {
                c1[4..8].copy_from_slice(&DIGEST_CLIENT_VERSION);
                c1_digest = Some(imprint_digest(&mut c1, Scheme::Zero, FP_DIGEST_KEY));
                TYPE_PLAIN
            }
            ClientMode::Rtmpe { kind } if is_rtmpe_kind(kind) => {
                c1[4..8].copy_from_slice(&RTMPE_CLIENT_VERSION);
                let pair = KeyPair::generate(&mut rng);
                let at = Scheme::One.dh_pos(&c1);
                c1[at..at + DH_KEY_LEN].copy_from_slice(pair.public_key());
                c1_digest = Some(imprint_digest(&mut c1, Scheme::One, FP_DIGEST_KEY));
                dh = Some(pair);
                kind
            }
            ClientMode::Rtmpe { kind } => {
                error = Some(HandshakeError::UnsupportedRtmpeKind(kind));
                kind
            }
        };
        let mut pending = Vec::new();
        if error.is_none() {
            pending.reserve(1 + HANDSHAKE_SIZE);
            pending.push(kind);
            pending.extend_from_slice(&c1[..]);
        }
        Self {
            mode,
            rng,
            c1,
            c1_digest,
            state: ClientState::AwaitS0,
            collector: Collector::new(),
            pending,
            error,
            server_kind: 0,
            peer_version: [0; 4],
            s1_digest: None,
            s1_tail: None,
            warnings: Vec::new(),
            dh,
            cipher: None,
        }
    }

    fn c0(&self) -> u8 {
        match self.mode {
            ClientMode::Plain | ClientMode::Digest => TYPE_PLAIN,
            ClientMode::Rtmpe { kind } => kind,
        }
    }

    /// Consumes handshake bytes from the front of `data` and returns how many it used; bytes
    /// after the end of the handshake are NOT consumed (they belong to the chunk stream).
    pub fn handle_input(&mut self, data: &[u8]) -> Result<usize, HandshakeError> {
        if let Some(err) = &self.error {
            return Err(err.clone());
        }
        let result = self.consume(data);
        if let Err(err) = &result {
            self.error = Some(err.clone());
        }
        result
    }

    fn consume(&mut self, data: &[u8]) -> Result<usize, HandshakeError> {
        let mut used = 0;
        while used < data.len() {
            let rest = &data[used..];
            match self.state {
                ClientState::AwaitS0 => {
                    self.on_s0(rest[0])?;
                    used += 1;
                    self.state = ClientState::AwaitS1;
                }
                ClientState::AwaitS1 => {
                    let (n, packet) = self.collector.take(rest);
                    used += n;
                    if let Some(s1) = packet {
                        self.on_s1(s1)?;
                        self.state = ClientState::AwaitS2;
                    }
                }
                ClientState::AwaitS2 => {
                    let (n, packet) = self.collector.take(rest);
                    used += n;
                    if let Some(s2) = packet {
                        self.on_s2(&s2);
                        self.state = ClientState::Done;
                    }
                }
                ClientState::Done => break,
            }
        }
        Ok(used)
    }

    fn on_s0(&mut self, s0: u8) -> Result<(), HandshakeError> {
        let sent = self.c0();
        let acceptable = if is_rtmpe_kind(sent) {
            // A server may pick another RTMPE flavour (librtmp answers 8 to 6); the S0 type
            // decides how C2/S2 signatures are enciphered.
            is_rtmpe_kind(s0)
        } else {
            s0 == TYPE_PLAIN
        };
        if !acceptable {
            return Err(HandshakeError::UnexpectedServerType { sent, got: s0 });
        }
        self.server_kind = s0;
        Ok(())
    }

    fn on_s1(&mut self, s1: Box<[u8; HANDSHAKE_SIZE]>) -> Result<(), HandshakeError> {
        self.peer_version = version_of(&s1);
        let mut tail = [0u8; DIGEST_LEN];
        tail.copy_from_slice(&s1[HANDSHAKE_SIZE - DIGEST_LEN..]);
        self.s1_tail = Some(tail);

        let validate = match self.mode {
            ClientMode::Plain => false,
            // A plain server (S1 version 0) has no digest to look for.
            ClientMode::Digest => s1[4] != 0,
            ClientMode::Rtmpe { .. } => true,
        };
        let mut scheme = None;
        if validate {
            match find_digest(&s1, FMS_DIGEST_KEY) {
                Some((found, digest)) => {
                    self.s1_digest = Some(digest);
                    scheme = Some(found);
                }
                None => self.warnings.push(format!(
                    "S1 digest (S1 version {:02x?}) matches neither scheme; answering with a plain C2",
                    self.peer_version
                )),
            }
        }

        if let Some(own) = &self.dh {
            let offset = match scheme {
                Some(scheme) => scheme.dh_pos(&s1),
                // Without a valid digest, accept a valid key at the scheme-0 position (where
                // FFmpeg looks in that case); random bytes there fail the check half the time
                // and the range check almost never, so this is not a blind guess.
                None => {
                    let at = Scheme::Zero.dh_pos(&s1);
                    let key: &[u8; DH_KEY_LEN] = s1[at..at + DH_KEY_LEN]
                        .try_into()
                        .expect("DH positions keep the key inside the packet");
                    if dh::check_public_key(key).is_err() {
                        return Err(HandshakeError::InvalidS1Digest {
                            kind: self.server_kind,
                            version: self.peer_version,
                        });
                    }
                    at
                }
            };
            self.cipher = Some(agree(own, &s1, offset, "server")?);
        }

        let c2 = match self.s1_digest {
            Some(s1_digest) => {
                let key = signature_key(&GENUINE_FP_KEY, &s1_digest);
                signed_packet(self.server_kind, random_packet(&mut self.rng), &key)
            }
            None => Bytes::from(s1.to_vec()),
        };
        self.pending.extend_from_slice(&c2);
        Ok(())
    }

    fn on_s2(&mut self, s2: &[u8; HANDSHAKE_SIZE]) {
        match (self.s1_digest, self.c1_digest) {
            (Some(_), Some(c1_digest)) => {
                let key = signature_key(&GENUINE_FMS_KEY, &c1_digest);
                let expected = expected_signature(self.server_kind, &key, s2);
                if signature_of(s2) != expected && !echoes(s2, &self.c1) {
                    self.warnings.push(format!(
                        "S2 signature {:02x?} does not match the expected {expected:02x?}",
                        signature_of(s2)
                    ));
                }
            }
            _ => {
                if !echoes(s2, &self.c1) {
                    self.warnings.push("S2 does not echo C1".to_owned());
                }
            }
        }
        if let Some(cipher) = &mut self.cipher {
            cipher.warm_up();
        }
    }

    /// Bytes to send: C0+C1 at first, C2 once S1 arrived. Worth polling again after every
    /// `handle_input`.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        if self.pending.is_empty() {
            return None;
        }
        Some(Bytes::from(std::mem::take(&mut self.pending)))
    }

    /// True once S2 was received and C2 queued.
    pub fn is_complete(&self) -> bool {
        self.state == ClientState::Done && self.error.is_none()
    }

    /// What the handshake established. Meaningful once [`is_complete`](Self::is_complete).
    pub fn into_outcome(self) -> HandshakeOutcome {
        HandshakeOutcome {
            kind: self.server_kind,
            cipher: self.cipher,
            peer_version: self.peer_version,
            digest_verified: self.s1_digest.is_some(),
            warnings: self.warnings,
            swf_verification_key: self.s1_tail,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerState {
    AwaitC0,
    AwaitC1,
    AwaitC2,
    Done,
}

/// The server role. Feed received bytes to [`handle_input`](Self::handle_input); S0+S1+S2
/// appear in [`poll_transmit`](Self::poll_transmit) once C0+C1 are in; the handshake is
/// complete when C2 was read.
#[derive(Debug)]
pub struct ServerHandshake {
    config: ServerHandshakeConfig,
    rng: StdRng,
    time: u32,
    kind: u8,
    state: ServerState,
    collector: Collector,
    pending: Vec<u8>,
    error: Option<HandshakeError>,
    s1: Option<Box<[u8; HANDSHAKE_SIZE]>>,
    s1_digest: [u8; DIGEST_LEN],
    peer_version: [u8; 4],
    /// The C1 digest, when the client did the digest handshake.
    c1_digest: Option<[u8; DIGEST_LEN]>,
    warnings: Vec<String>,
    cipher: Option<Rc4Pair>,
}

impl ServerHandshake {
    /// A server waiting for C0. `time` goes in S1 bytes 0..4.
    pub fn new(config: ServerHandshakeConfig, time: u32, rng: &mut dyn RngCore) -> Self {
        Self {
            config,
            rng: StdRng::from_rng(&mut &mut *rng),
            time,
            kind: 0,
            state: ServerState::AwaitC0,
            collector: Collector::new(),
            pending: Vec::new(),
            error: None,
            s1: None,
            s1_digest: [0; DIGEST_LEN],
            peer_version: [0; 4],
            c1_digest: None,
            warnings: Vec::new(),
            cipher: None,
        }
    }

    /// Consumes handshake bytes from the front of `data` and returns how many it used; bytes
    /// after C2 are NOT consumed (they belong to the chunk stream).
    pub fn handle_input(&mut self, data: &[u8]) -> Result<usize, HandshakeError> {
        if let Some(err) = &self.error {
            return Err(err.clone());
        }
        let result = self.consume(data);
        if let Err(err) = &result {
            self.error = Some(err.clone());
        }
        result
    }

    fn consume(&mut self, data: &[u8]) -> Result<usize, HandshakeError> {
        let mut used = 0;
        while used < data.len() {
            let rest = &data[used..];
            match self.state {
                ServerState::AwaitC0 => {
                    self.on_c0(rest[0])?;
                    used += 1;
                    self.state = ServerState::AwaitC1;
                }
                ServerState::AwaitC1 => {
                    let (n, packet) = self.collector.take(rest);
                    used += n;
                    if let Some(c1) = packet {
                        self.on_c1(&c1)?;
                        self.state = ServerState::AwaitC2;
                    }
                }
                ServerState::AwaitC2 => {
                    let (n, packet) = self.collector.take(rest);
                    used += n;
                    if let Some(c2) = packet {
                        self.on_c2(&c2);
                        self.state = ServerState::Done;
                    }
                }
                ServerState::Done => break,
            }
        }
        Ok(used)
    }

    fn on_c0(&mut self, c0: u8) -> Result<(), HandshakeError> {
        let allowed = match c0 {
            TYPE_PLAIN => self.config.allow_plain,
            k if is_rtmpe_kind(k) => self.config.allow_rtmpe,
            other => return Err(HandshakeError::UnknownClientType(other)),
        };
        if !allowed {
            return Err(HandshakeError::DisallowedClientType(c0));
        }
        self.kind = c0;
        Ok(())
    }

    fn on_c1(&mut self, c1: &[u8; HANDSHAKE_SIZE]) -> Result<(), HandshakeError> {
        let kind = self.kind;
        let version = version_of(c1);
        self.peer_version = version;
        let rtmpe = is_rtmpe_kind(kind);
        let found = if version == [0; 4] {
            if rtmpe {
                return Err(HandshakeError::UnversionedRtmpeC1 { kind });
            }
            None
        } else {
            let found = find_digest(c1, FP_DIGEST_KEY);
            if found.is_none() {
                if rtmpe {
                    return Err(HandshakeError::InvalidC1Digest { kind, version });
                }
                self.warnings.push(format!(
                    "C1 version {version:02x?} but its digest matches neither scheme; using the plain handshake"
                ));
            }
            found
        };
        let mut s1 = random_packet(&mut self.rng);
        s1[0..4].copy_from_slice(&self.time.to_be_bytes());
        s1[4..8].copy_from_slice(&self.config.version);
        if let (true, Some((scheme, _))) = (rtmpe, found) {
            // Check the client's key before spending a modular exponentiation on our own.
            let client_at = scheme.dh_pos(c1);
            let client_key: &[u8; DH_KEY_LEN] = c1[client_at..client_at + DH_KEY_LEN]
                .try_into()
                .expect("DH positions keep the key inside the packet");
            dh::check_public_key(client_key).map_err(|problem| {
                let mut head = [0u8; 8];
                head.copy_from_slice(&client_key[..8]);
                HandshakeError::InvalidPublicKey {
                    side: "client",
                    offset: client_at,
                    problem,
                    head,
                }
            })?;
            let own = KeyPair::generate(&mut self.rng);
            let at = Scheme::Zero.dh_pos(&s1);
            s1[at..at + DH_KEY_LEN].copy_from_slice(own.public_key());
            self.cipher = Some(agree(&own, c1, client_at, "client")?);
        }
        self.s1_digest = imprint_digest(&mut s1, Scheme::Zero, FMS_DIGEST_KEY);

        let s2 = match found {
            Some((_scheme, c1_digest)) => {
                self.c1_digest = Some(c1_digest);
                // Built on C1 so that a client that only checks the echo is content as well.
                let key = signature_key(&GENUINE_FMS_KEY, &c1_digest);
                signed_packet(kind, Box::new(*c1), &key)
            }
            None => Bytes::copy_from_slice(c1),
        };

        self.pending.reserve(1 + 2 * HANDSHAKE_SIZE);
        self.pending.push(kind);
        self.pending.extend_from_slice(&s1[..]);
        self.pending.extend_from_slice(&s2);
        self.s1 = Some(s1);
        Ok(())
    }

    fn on_c2(&mut self, c2: &[u8; HANDSHAKE_SIZE]) {
        let Some(s1) = &self.s1 else { return };
        if self.c1_digest.is_some() {
            let key = signature_key(&GENUINE_FP_KEY, &self.s1_digest);
            let expected = expected_signature(self.kind, &key, c2);
            if echoes(c2, s1) {
                self.warnings.push(
                    "C2 is an echo of S1 instead of a signed C2 (FFmpeg style); accepted"
                        .to_owned(),
                );
            } else if signature_of(c2) != expected {
                self.warnings.push(format!(
                    "C2 signature {:02x?} does not match the expected {expected:02x?}",
                    signature_of(c2)
                ));
            }
        } else if !echoes(c2, s1) {
            self.warnings.push("C2 does not echo S1".to_owned());
        }
        if let Some(cipher) = &mut self.cipher {
            cipher.warm_up();
        }
    }

    /// S0+S1+S2 (3073 bytes) once C0+C1 are in, then nothing. Worth polling again after every
    /// `handle_input`.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        if self.pending.is_empty() {
            return None;
        }
        Some(Bytes::from(std::mem::take(&mut self.pending)))
    }

    /// True once C2 was received.
    pub fn is_complete(&self) -> bool {
        self.state == ServerState::Done && self.error.is_none()
    }

    /// What the handshake established. Meaningful once [`is_complete`](Self::is_complete).
    pub fn into_outcome(self) -> HandshakeOutcome {
        HandshakeOutcome {
            kind: self.kind,
            cipher: self.cipher,
            peer_version: self.peer_version,
            digest_verified: self.c1_digest.is_some(),
            warnings: self.warnings,
            swf_verification_key: None,
        }
    }
}

#[cfg(test)]
mod tests;
