//! Helpers shared by the fuzz targets: deterministic split points and handshake prefixes.
//!
//! Everything here is deterministic for a given input, so a crash replays exactly: RNGs are
//! seeded with constants and split points come from a byte of the input.

#![allow(dead_code)]

use rand::SeedableRng;
use rand::rngs::StdRng;
use rsrtmp_engine::handshake::{
    ClientHandshake, ClientMode, HandshakeOutcome, ServerHandshake, ServerHandshakeConfig,
};

/// The RNG every target uses: a fixed seed, so the same input takes the same path.
pub fn rng() -> StdRng {
    StdRng::seed_from_u64(0x5EED)
}

/// Cuts `data` into pieces. `seed` 0 gives the whole input at once, 1 gives single bytes,
/// anything else pseudo-random lengths (1..=seed*4 bytes) from a small xorshift generator.
pub struct Splitter<'a> {
    data: &'a [u8],
    state: u32,
    max: usize,
}

impl<'a> Splitter<'a> {
    pub fn new(data: &'a [u8], seed: u8) -> Self {
        let max = match seed {
            0 => usize::MAX,
            1 => 1,
            s => usize::from(s) * 4,
        };
        Splitter {
            data,
            state: u32::from(seed) | 0x9E37_0000,
            max,
        }
    }
}

impl<'a> Iterator for Splitter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.data.is_empty() {
            return None;
        }
        let len = if self.max == usize::MAX || self.max == 1 {
            self.max
        } else {
            self.state ^= self.state << 13;
            self.state ^= self.state >> 17;
            self.state ^= self.state << 5;
            1 + (self.state as usize % self.max)
        };
        let (piece, rest) = self.data.split_at(len.min(self.data.len()));
        self.data = rest;
        Some(piece)
    }
}

/// The client mode a selector byte picks: plain, digest, or RTMPE 6/8/9 (and an invalid kind
/// now and then, which must fail cleanly).
pub fn client_mode(sel: u8) -> ClientMode {
    match sel % 6 {
        0 => ClientMode::Plain,
        1 => ClientMode::Digest,
        2 => ClientMode::Rtmpe { kind: 6 },
        3 => ClientMode::Rtmpe { kind: 8 },
        4 => ClientMode::Rtmpe { kind: 9 },
        _ => ClientMode::Rtmpe { kind: 7 },
    }
}

fn drain_client(c: &mut ClientHandshake) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(b) = c.poll_transmit() {
        out.extend_from_slice(&b);
    }
    out
}

fn drain_server(s: &mut ServerHandshake) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(b) = s.poll_transmit() {
        out.extend_from_slice(&b);
    }
    out
}

/// A complete, valid handshake between our own client and server in `mode`, with fixed seeds.
pub struct Handshaken {
    /// C0+C1+C2 as the client sent them.
    pub c2s: Vec<u8>,
    /// S0+S1+S2 as the server sent them.
    pub s2c: Vec<u8>,
    pub client: HandshakeOutcome,
    pub server: HandshakeOutcome,
}

/// Runs a handshake between the engine's two roles. `None` if `mode` cannot complete (an
/// invalid RTMPE kind), which is itself exercised by the handshake targets.
pub fn handshake(mode: ClientMode) -> Option<Handshaken> {
    let mut rng = rng();
    let mut client = ClientHandshake::new(mode, 0, &mut rng);
    let mut server = ServerHandshake::new(ServerHandshakeConfig::default(), 0, &mut rng);
    let c01 = drain_client(&mut client);
    let used = server.handle_input(&c01).ok()?;
    assert_eq!(used, c01.len(), "server must consume all of C0+C1");
    let s012 = drain_server(&mut server);
    let used = client.handle_input(&s012).ok()?;
    assert_eq!(used, s012.len(), "client must consume all of S0+S1+S2");
    let c2 = drain_client(&mut client);
    let used = server.handle_input(&c2).ok()?;
    assert_eq!(used, c2.len(), "server must consume all of C2");
    assert!(client.is_complete() && server.is_complete());
    let mut c2s = c01;
    c2s.extend_from_slice(&c2);
    Some(Handshaken {
        c2s,
        s2c: s012,
        client: client.into_outcome(),
        server: server.into_outcome(),
    })
}

/// Just C0+C1 of a client in `mode` (fixed seed), for feeding a server.
pub fn client_hello(mode: ClientMode) -> Vec<u8> {
    let mut rng = rng();
    let mut client = ClientHandshake::new(mode, 0, &mut rng);
    drain_client(&mut client)
}
