//! Tools for the hostile-input suite: a transport-aware raw connection ([`Wire`]) that speaks
//! each of the six transports up to the point where RTMP bytes flow (TCP, TLS, the RTMPT
//! tunnel, RTMPE's RC4 layer) and then writes whatever bytes a case asks for; hand-made chunk
//! headers; a well-behaved player that records the sequence number of every frame it gets; a
//! paced FLV feeder; in-process RSS sampling; and a capture of the server's debug log.
//!
//! Invariants: every wait here is bounded (no helper can hang a test); a `Wire` encrypts
//! every byte it writes after an RTMPE handshake and decrypts every byte it reads, in order,
//! so hostile bytes reach the server's chunk reader exactly as written.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use gst::prelude::*;
use gstrsrtmp::net::transport::tls::TlsClientConfig;
use gstrsrtmp::net::transport::tunnel::{self, TunnelClientOptions};
use gstrsrtmp::rtmp::amf0::{self, Value};
use gstrsrtmp::rtmp::chunk::{ChunkLimits, ChunkReader, encode_message_full};
use gstrsrtmp::rtmp::command;
use gstrsrtmp::rtmp::handshake::{ClientHandshake, ClientMode, Rc4Pair};
use gstrsrtmp::rtmp::message::{Control, Message, UserControl, msg_type};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The six transports a client can reach the server's one port with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tx {
    Rtmp,
    Rtmps,
    Rtmpt,
    Rtmpts,
    Rtmpe,
    Rtmpte,
}

impl Tx {
    pub const ALL: [Tx; 6] = [
        Tx::Rtmp,
        Tx::Rtmps,
        Tx::Rtmpt,
        Tx::Rtmpts,
        Tx::Rtmpe,
        Tx::Rtmpte,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Tx::Rtmp => "rtmp",
            Tx::Rtmps => "rtmps",
            Tx::Rtmpt => "rtmpt",
            Tx::Rtmpts => "rtmpts",
            Tx::Rtmpe => "rtmpe",
            Tx::Rtmpte => "rtmpte",
        }
    }

    pub fn tls(self) -> bool {
        matches!(self, Tx::Rtmps | Tx::Rtmpts)
    }

    pub fn tunnel(self) -> bool {
        matches!(self, Tx::Rtmpt | Tx::Rtmpts | Tx::Rtmpte)
    }

    pub fn encrypted(self) -> bool {
        matches!(self, Tx::Rtmpe | Tx::Rtmpte)
    }

    /// The C0 byte a client of this transport starts its handshake with.
    pub fn c0(self) -> u8 {
        if self.encrypted() { 6 } else { 3 }
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The runtime every client of the suite runs on (the server has its own).
pub fn client_runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("client runtime")
    })
}

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// One connection to the server over a transport, below RTMP: what is written goes out as is
/// (through RC4 after an RTMPE handshake), what comes back is decrypted and kept.
pub struct Wire {
    pub tx: Tx,
    io: Box<dyn Io>,
    /// Local port of the TCP connection (for the tunnel: the one that sent `/open`), which the
    /// server's log lines name.
    pub local_port: u16,
    cipher: Option<Rc4Pair>,
    reader: ChunkReader,
    /// Every chunk-stream byte received after the handshake, decrypted.
    pub inbound: Vec<u8>,
    /// Our outgoing chunk size for [`Wire::send_msg`].
    pub out_chunk: u32,
    window: Option<u32>,
    acked: u64,
    handshaken: bool,
}

impl Wire {
    /// Opens the transport: TCP, then TLS (no verification: the certificate is self-signed),
    /// then the tunnel's `/open` for the HTTP transports. Nothing of RTMP is sent yet.
    pub async fn open(tx: Tx, port: u16) -> io::Result<Wire> {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        tcp.set_nodelay(true)?;
        let local_port = tcp.local_addr()?.port();
        let base: Box<dyn Io> = if tx.tls() {
            let connector = TlsClientConfig {
                verify: false,
                ca_file: None,
            }
            .connector()
            .map_err(other)?;
            Box::new(connector.connect("127.0.0.1", tcp).await.map_err(other)?)
        } else {
            Box::new(tcp)
        };
        let io: Box<dyn Io> = if tx.tunnel() {
            let options = TunnelClientOptions {
                request_timeout: Duration::from_secs(20),
                max_poll_interval: Duration::from_millis(50),
            };
            let stream = tunnel::client::open(base, &format!("127.0.0.1:{port}"), &options)
                .await
                .map_err(other)?;
            Box::new(stream)
        } else {
            base
        };
        Ok(Wire {
            tx,
            io,
            local_port,
            cipher: None,
            reader: ChunkReader::new(ChunkLimits::default()),
            inbound: Vec::new(),
            out_chunk: 128,
            window: None,
            acked: 0,
            handshaken: false,
        })
    }

    /// The address the server's log lines name this connection by.
    pub fn tag(&self) -> String {
        format!("127.0.0.1:{}", self.local_port)
    }

    /// The RTMP handshake: plain, or RTMPE (type 6) for rtmpe and rtmpte, after which every
    /// byte goes through RC4.
    pub async fn handshake(&mut self) -> io::Result<()> {
        let mode = if self.tx.encrypted() {
            ClientMode::Rtmpe { kind: 6 }
        } else {
            ClientMode::Plain
        };
        let mut hs = ClientHandshake::new(mode, 0, &mut rand::rng());
        let mut buf = vec![0u8; 8192];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let mut rest = Vec::new();
        loop {
            while let Some(b) = hs.poll_transmit() {
                self.io.write_all(&b).await?;
            }
            self.io.flush().await?;
            if hs.is_complete() {
                break;
            }
            let n = tokio::time::timeout_at(deadline, self.io.read(&mut buf))
                .await
                .map_err(|_| other("no handshake answer within 20 s"))??;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let used = hs.handle_input(&buf[..n]).map_err(other)?;
            rest = buf[used..n].to_vec();
        }
        self.cipher = hs.into_outcome().cipher;
        self.handshaken = true;
        self.take_in(&mut rest);
        Ok(())
    }

    fn take_in(&mut self, data: &mut [u8]) {
        if data.is_empty() {
            return;
        }
        if let Some(c) = &mut self.cipher {
            c.decrypt(data);
        }
        if self.handshaken {
            self.inbound.extend_from_slice(data);
            self.reader.feed(data);
        }
    }

    /// Writes `bytes` (encrypted on RTMPE) and flushes.
    pub async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut b = bytes.to_vec();
        if let Some(c) = &mut self.cipher {
            c.encrypt(&mut b);
        }
        self.io.write_all(&b).await?;
        self.io.flush().await
    }

    /// Sends one message, chunked at our chunk size with a full first header.
    pub async fn send_msg(&mut self, csid: u32, msg: &Message) -> io::Result<()> {
        let mut out = BytesMut::new();
        encode_message_full(csid, msg, self.out_chunk, &mut out);
        self.send(&out).await
    }

    async fn send_cmd(&mut self, stream_id: u32, cmd: &command::Command) -> io::Result<()> {
        let csid = if stream_id == 0 { 3 } else { 8 };
        self.send_msg(csid, &cmd.to_message(stream_id)).await
    }

    /// Reads once, waiting until `deadline`. Ok(false) at end of stream.
    async fn read_some(&mut self, deadline: tokio::time::Instant) -> io::Result<bool> {
        let mut buf = vec![0u8; 65536];
        let n = tokio::time::timeout_at(deadline, self.io.read(&mut buf))
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
        self.take_in(&mut buf[..n]);
        Ok(n > 0)
    }

    /// The next message from the server; None at end of stream. Answers pings and
    /// acknowledges like a well-behaved client.
    pub async fn next_msg(&mut self, wait: Duration) -> io::Result<Option<Message>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(m) = self.reader.read_message().map_err(other)? {
                self.housekeeping(&m).await?;
                return Ok(Some(m));
            }
            if !self.read_some(deadline).await? {
                return Ok(None);
            }
        }
    }

    async fn housekeeping(&mut self, m: &Message) -> io::Result<()> {
        if let Ok(Some(c)) = Control::parse(m) {
            match c {
                Control::WindowAckSize(w) => self.window = Some(w.max(2)),
                Control::UserControl(UserControl::PingRequest(t)) => {
                    let pong = Control::UserControl(UserControl::PingResponse(t)).to_message();
                    self.send_msg(2, &pong).await?;
                }
                _ => {}
            }
        }
        let got = self.reader.bytes_received();
        if let Some(w) = self.window
            && got - self.acked >= u64::from(w / 2)
        {
            self.acked = got;
            self.send_msg(2, &Control::Acknowledgement(got as u32).to_message())
                .await?;
        }
        Ok(())
    }

    /// Reads messages until a command satisfies `pred`.
    async fn await_command(
        &mut self,
        what: &str,
        mut pred: impl FnMut(&command::Command) -> bool,
    ) -> io::Result<command::Command> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let m = self
                .next_msg(left)
                .await?
                .ok_or_else(|| other(format!("closed while waiting for {what}")))?;
            if (m.type_id == msg_type::COMMAND_AMF0 || m.type_id == msg_type::COMMAND_AMF3)
                && let Ok(c) = command::Command::parse(&m)
                && pred(&c)
            {
                return Ok(c);
            }
        }
    }

    /// `connect` to `app`, until its `_result`.
    pub async fn connect(&mut self, app: &str) -> io::Result<()> {
        let props = vec![
            ("app".to_string(), Value::String(app.into())),
            ("type".to_string(), Value::String("nonprivate".into())),
            (
                "tcUrl".to_string(),
                Value::String(format!("rtmp://127.0.0.1/{app}")),
            ),
        ];
        self.send_cmd(0, &command::connect(1.0, props, vec![]))
            .await?;
        let c = self
            .await_command("the connect answer", |c| {
                c.transaction_id == 1.0 && (c.name == "_result" || c.name == "_error")
            })
            .await?;
        if c.name != "_result" {
            return Err(other(format!("connect refused: {c:?}")));
        }
        Ok(())
    }

    /// `createStream`; returns the stream id.
    pub async fn create_stream(&mut self) -> io::Result<u32> {
        self.send_cmd(0, &command::create_stream(2.0)).await?;
        let c = self
            .await_command("the createStream answer", |c| {
                c.transaction_id == 2.0 && c.name == "_result"
            })
            .await?;
        c.arg(0)
            .and_then(Value::as_f64)
            .map(|v| v as u32)
            .ok_or_else(|| other(format!("createStream answer without an id: {c:?}")))
    }

    async fn await_status(&mut self, code: &str) -> io::Result<()> {
        let code = code.to_string();
        self.await_command(&code.clone(), |c| {
            c.name == "onStatus"
                && c.arg(0)
                    .and_then(|v| v.get("code"))
                    .and_then(Value::as_str)
                    .is_some_and(|s| s == code || s.ends_with("Failed") || s.contains("Bad"))
        })
        .await
        .and_then(|c| {
            let got = c
                .arg(0)
                .and_then(|v| v.get("code"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if got == code {
                Ok(())
            } else {
                Err(other(format!("expected {code}, got {got}: {c:?}")))
            }
        })
    }

    /// createStream + publish `name`, until `NetStream.Publish.Start`.
    pub async fn publish(&mut self, name: &str) -> io::Result<u32> {
        let sid = self.create_stream().await?;
        self.send_cmd(sid, &command::publish(3.0, name, "live"))
            .await?;
        self.await_status("NetStream.Publish.Start").await?;
        Ok(sid)
    }

    /// createStream + play `name`, until `NetStream.Play.Start`.
    pub async fn play(&mut self, name: &str) -> io::Result<u32> {
        let sid = self.create_stream().await?;
        self.send_cmd(sid, &command::play(3.0, name, -2.0, None, None))
            .await?;
        self.await_status("NetStream.Play.Start").await?;
        Ok(sid)
    }

    /// Reads until the server ends the connection (true) or `limit` passes (false).
    /// The payloads of the messages received and not read yet, reassembled from their chunks
    /// (the server may chunk its answers at 128 bytes: it does to RTMPE clients) and joined,
    /// as text. Stops at what the reader cannot take.
    pub fn received_text(&mut self) -> String {
        let mut text = String::new();
        while let Ok(Some(m)) = self.reader.read_message() {
            text.push_str(&String::from_utf8_lossy(&m.payload));
        }
        text
    }

    pub async fn closed_within(&mut self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match self.read_some(deadline).await {
                Ok(true) => {}
                Ok(false) => return true,
                Err(e) if e.kind() == io::ErrorKind::TimedOut => return false,
                Err(_) => return true,
            }
        }
    }
}

// ---- hand-made chunks -------------------------------------------------------------------------

/// A basic header in the shortest form for `csid`, or the 3-byte form from 320 on.
pub fn basic_header(fmt: u8, csid: u32) -> Vec<u8> {
    let f = fmt << 6;
    match csid {
        2..=63 => vec![f | csid as u8],
        64..=319 => vec![f, (csid - 64) as u8],
        _ => {
            let v = csid - 64;
            vec![f | 1, (v & 0xFF) as u8, (v >> 8) as u8]
        }
    }
}

fn u24(v: u32) -> [u8; 3] {
    let b = v.min(0xFF_FFFF).to_be_bytes();
    [b[1], b[2], b[3]]
}

/// A chunk header: fmt 0 (all fields), 1 (delta, length, type), 2 (delta) or 3 (nothing).
/// A timestamp (or delta) of 0xFFFFFF or more is written as an extended timestamp; with
/// `ext_on_type3`, a fmt 3 header repeats `ts` as the extended field.
pub fn chunk_header(
    fmt: u8,
    csid: u32,
    ts: u32,
    len: u32,
    type_id: u8,
    stream_id: u32,
    ext_on_type3: bool,
) -> Vec<u8> {
    let mut h = basic_header(fmt, csid);
    if fmt <= 2 {
        h.extend_from_slice(&u24(ts));
    }
    if fmt <= 1 {
        h.extend_from_slice(&u24(len));
        h.push(type_id);
    }
    if fmt == 0 {
        h.extend_from_slice(&stream_id.to_le_bytes());
    }
    if (fmt <= 2 && ts >= 0xFF_FFFF) || (fmt == 3 && ext_on_type3) {
        h.extend_from_slice(&ts.to_be_bytes());
    }
    h
}

/// A whole message chunked at `chunk_size` on `csid` (type-0 header, then type 3).
pub fn message(
    csid: u32,
    type_id: u8,
    ts: u32,
    stream_id: u32,
    payload: &[u8],
    chunk_size: u32,
) -> Vec<u8> {
    let msg = Message {
        type_id,
        timestamp: ts,
        stream_id,
        payload: bytes::Bytes::copy_from_slice(payload),
    };
    let mut out = BytesMut::new();
    encode_message_full(csid, &msg, chunk_size, &mut out);
    out.to_vec()
}

/// A protocol control message on csid 2, at the default chunk size.
pub fn control(c: Control) -> Vec<u8> {
    let m = c.to_message();
    message(2, m.type_id, 0, 0, &m.payload, 128)
}

/// A type-20 command from AMF0 values, on csid 3, chunk size 128.
pub fn command_msg(values: &[Value], stream_id: u32) -> Vec<u8> {
    message(
        3,
        msg_type::COMMAND_AMF0,
        0,
        stream_id,
        &amf0::encode_all(values),
        128,
    )
}

/// The body of an `FCUnpublish` whose answer (`onFCUnpublish`, "<name> unpublished") proves
/// the server still reads this connection's commands; `pad` lengthens the name.
pub fn probe_payload(name: &str, pad: usize) -> (Vec<u8>, String) {
    let full = format!("{name}{}", "p".repeat(pad));
    let payload = amf0::encode_all(&[
        Value::String("FCUnpublish".into()),
        Value::Number(9.0),
        Value::Null,
        Value::String(full.clone()),
    ]);
    (payload.to_vec(), format!("{full} unpublished"))
}

/// Deterministic junk.
pub fn junk(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

// ---- RTMPE C1 with a chosen DH key ----------------------------------------------------------

/// SHA-256 (FIPS 180-4); the round constants are derived from the primes as the standard
/// defines them, so no table has to be trusted.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    fn primes(n: usize) -> Vec<u32> {
        let mut p = Vec::new();
        let mut k = 2u32;
        while p.len() < n {
            if p.iter().all(|q| !k.is_multiple_of(*q)) {
                p.push(k);
            }
            k += 1;
        }
        p
    }
    let frac32 = |x: f64| ((x - x.floor()) * 4_294_967_296.0) as u32;
    let ps = primes(64);
    let k: Vec<u32> = ps.iter().map(|&p| frac32(f64::from(p).cbrt())).collect();
    let mut h: Vec<u32> = ps[..8]
        .iter()
        .map(|&p| frac32(f64::from(p).sqrt()))
        .collect();
    let mut msg = data.to_vec();
    let bits = (data.len() as u64) * 8;
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bits.to_be_bytes());
    for block in msg.chunks(64) {
        let mut w = [0u32; 64];
        for i in 0..16 {
            w[i] = u32::from_be_bytes(block[4 * i..4 * i + 4].try_into().unwrap());
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let mut v = [h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]];
        for i in 0..64 {
            let [a, b, c, d, e, f, g, hh] = v;
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(k[i])
                .wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            v = [t1.wrapping_add(t2), a, b, c, d.wrapping_add(t1), e, f, g];
        }
        for (x, y) in h.iter_mut().zip(v) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 32];
    for (i, x) in h.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&x.to_be_bytes());
    }
    out
}

/// HMAC-SHA256 for keys up to 64 bytes.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    assert!(key.len() <= 64);
    let mut k = [0u8; 64];
    k[..key.len()].copy_from_slice(key);
    let mut inner: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    inner.extend_from_slice(data);
    let mut outer: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    outer.extend_from_slice(&sha256(&inner));
    sha256(&outer)
}

/// The C1 digest key: the text "Genuine Adobe Flash Player 001".
const FP_KEY: &[u8] = b"Genuine Adobe Flash Player 001";

fn sum4(p: &[u8], at: usize) -> usize {
    p[at..at + 4].iter().map(|&b| usize::from(b)).sum()
}

/// An RTMPE C0+C1 (type 6) whose scheme-1 digest is valid but whose DH public key is `key`.
/// Built from the engine client's own C1, after checking that our HMAC reproduces its digest
/// (so a refusal can only be about the key).
pub fn rtmpe_c1_with_key(key: &[u8; 128]) -> Vec<u8> {
    let mut hs = ClientHandshake::new(ClientMode::Rtmpe { kind: 6 }, 0, &mut rand::rng());
    let mut c0c1 = hs.poll_transmit().expect("C0+C1").to_vec();
    let c1 = &mut c0c1[1..];
    let dpos = sum4(c1, 772) % 728 + 776;
    let digest = |c1: &[u8]| {
        let mut msg = c1[..dpos].to_vec();
        msg.extend_from_slice(&c1[dpos + 32..]);
        hmac_sha256(FP_KEY, &msg)
    };
    assert_eq!(
        digest(c1),
        c1[dpos..dpos + 32],
        "our HMAC-SHA256 does not reproduce the engine's C1 digest"
    );
    let kpos = sum4(c1, 768) % 632 + 8;
    c1[kpos..kpos + 128].copy_from_slice(key);
    let d = digest(c1);
    c1[dpos..dpos + 32].copy_from_slice(&d);
    c0c1
}

// ---- the server's log --------------------------------------------------------------------------

/// The server and tunnel categories' lines at DEBUG and above (the "session closed" and
/// "connection ends" lines of routed connections and HTTP parse failures are DEBUG).
pub fn debug_log() -> Arc<Mutex<Vec<String>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<String>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        // First the INFO capture (it sets the thresholds), then raise them for ours.
        super::server_peers::server_log();
        gst::log::set_threshold_for_name("rsrtmp-server", gst::DebugLevel::Debug);
        gst::log::set_threshold_for_name("rsrtmp-tunnel", gst::DebugLevel::Debug);
        // Hundreds of DEBUG lines a second would bury the test output; GST_DEBUG still shows
        // them when asked for.
        if std::env::var_os("GST_DEBUG").is_none() {
            gst::log::remove_default_log_function();
        }
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        gst::log::add_log_function(move |cat, level, _file, _func, _line, _obj, msg| {
            if (cat.name() == "rsrtmp-server" || cat.name() == "rsrtmp-tunnel")
                && level <= gst::DebugLevel::Debug
                && let Some(text) = msg.get()
            {
                sink.lock().unwrap().push(text.to_string());
            }
        });
        lines
    })
    .clone()
}

/// Whether `line` names the address `tag` ("127.0.0.1:PORT"), not a longer port.
fn mentions(line: &str, tag: &str) -> bool {
    line.match_indices(tag).any(|(at, _)| {
        !line[at + tag.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit())
    })
}

/// Log lines naming the address `tag`.
pub fn lines_with(tag: &str) -> Vec<String> {
    debug_log()
        .lock()
        .unwrap()
        .iter()
        .filter(|l| mentions(l, tag))
        .cloned()
        .collect()
}

/// Waits up to `wait` for a line containing `tag` and one of the `|`-separated alternatives
/// of `reason`; returns it.
pub async fn find_log(tag: &str, reason: &str, wait: Duration) -> Option<String> {
    let deadline = Instant::now() + wait;
    loop {
        if let Some(l) = lines_with(tag)
            .into_iter()
            .find(|l| reason.split('|').any(|alt| l.contains(alt)))
        {
            return Some(l);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

// ---- memory ------------------------------------------------------------------------------------

/// This process's resident set, in KiB.
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

/// Samples RSS every 20 ms on a thread, keeping the peak.
pub struct RssWatch {
    pub start: u64,
    peak: Arc<AtomicU32>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssWatch {
    pub fn start() -> RssWatch {
        let start = rss_kib();
        let peak = Arc::new(AtomicU32::new(start as u32));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (peak.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(rss_kib() as u32, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        RssWatch {
            start,
            peak,
            stop,
            thread: Some(thread),
        }
    }

    pub fn peak(&self) -> u64 {
        u64::from(self.peak.load(Ordering::Relaxed)).max(rss_kib())
    }

    /// (start, peak, now) in KiB.
    pub fn finish(mut self) -> (u64, u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let now = rss_kib();
        (self.start, self.peak(), now)
    }
}

impl Drop for RssWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

// ---- the well-behaved side ---------------------------------------------------------------------

/// An FLV tag (with its trailing previous-tag-size).
pub fn flv_tag(type_id: u8, ts: u32, payload: &[u8]) -> Vec<u8> {
    let mut t = vec![type_id];
    t.extend_from_slice(&u24(payload.len() as u32));
    t.extend_from_slice(&u24(ts & 0xFF_FFFF));
    t.push((ts >> 24) as u8);
    t.extend_from_slice(&[0, 0, 0]);
    t.extend_from_slice(payload);
    t.extend_from_slice(&(11 + payload.len() as u32).to_be_bytes());
    t
}

/// The FLV file header for a video-only stream.
pub const FLV_HEADER_VIDEO: [u8; 13] = [b'F', b'L', b'V', 1, 1, 0, 0, 0, 9, 0, 0, 0, 0];

/// A video frame carrying sequence number `seq`: a Sorenson H.263 keyframe (so every frame
/// is a sync point and none depends on another), the number in its first payload bytes.
pub fn numbered_frame(seq: u32) -> Vec<u8> {
    let mut p = vec![0x12];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&[0xAB; 120]);
    flv_tag(9, seq * 10, &p)
}

/// What the feeder does next.
pub enum Feed {
    Push(Vec<u8>),
    /// Hold until the cases are done.
    Hold,
    End,
}

/// Pushes FLV into an appsrc at a steady pace on a thread; `next(i, done)` says what the
/// `i`th push is, `done` tells it the hostile cases are over.
pub struct Feeder {
    done: Arc<AtomicBool>,
    pushed: Arc<AtomicU32>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Feeder {
    pub fn start(
        appsrc: &gst::Element,
        interval: Duration,
        mut next: impl FnMut(u32, bool) -> Feed + Send + 'static,
    ) -> Feeder {
        let src = appsrc
            .clone()
            .downcast::<gst_app::AppSrc>()
            .expect("an appsrc");
        let done = Arc::new(AtomicBool::new(false));
        let pushed = Arc::new(AtomicU32::new(0));
        let (d, p) = (done.clone(), pushed.clone());
        let thread = std::thread::spawn(move || {
            let mut i = 0;
            loop {
                match next(i, d.load(Ordering::SeqCst)) {
                    Feed::Push(bytes) => {
                        if src.push_buffer(gst::Buffer::from_slice(bytes)).is_err() {
                            return;
                        }
                        i += 1;
                        p.store(i, Ordering::SeqCst);
                    }
                    Feed::Hold => {}
                    Feed::End => break,
                }
                std::thread::sleep(interval);
            }
            let _ = src.end_of_stream();
        });
        Feeder {
            done,
            pushed,
            thread: Some(thread),
        }
    }

    /// Pushes so far.
    pub fn pushed(&self) -> u32 {
        self.pushed.load(Ordering::SeqCst)
    }

    /// Lets the feeder push the rest and EOS; returns the number of pushes.
    pub fn finish(mut self) -> u32 {
        self.done.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().expect("feeder thread");
        }
        self.pushed()
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
    }
}

/// Numbered frames until the cases are done, then `tail` more, then EOS.
pub fn numbered_feed(tail: u32) -> impl FnMut(u32, bool) -> Feed + Send + 'static {
    let mut end_at: Option<u32> = None;
    move |i, done| {
        if i == 0 {
            return Feed::Push(FLV_HEADER_VIDEO.to_vec());
        }
        if done && end_at.is_none() {
            end_at = Some(i + tail);
        }
        match end_at {
            Some(e) if i >= e => Feed::End,
            // Push 0 is the header; frame numbers start at 0 with push 1.
            _ => Feed::Push(numbered_frame(i - 1)),
        }
    }
}

/// What a well-behaved player saw.
#[derive(Debug, Default)]
pub struct Played {
    pub seqs: Vec<u32>,
    /// The server said the stream stopped (`NetStream.Play.Stop` or StreamEOF).
    pub stopped: bool,
}

/// A player over `tx` that plays `stream` to its end, recording frame numbers; `ready` fires
/// once `NetStream.Play.Start` arrived.
pub async fn good_player(
    tx: Tx,
    port: u16,
    stream: &str,
    ready: tokio::sync::oneshot::Sender<()>,
) -> Result<Played, String> {
    let ctx = |what: &str, e: io::Error| format!("good player over {}: {what}: {e}", tx.name());
    let mut w = Wire::open(tx, port).await.map_err(|e| ctx("open", e))?;
    w.handshake().await.map_err(|e| ctx("handshake", e))?;
    w.connect("live").await.map_err(|e| ctx("connect", e))?;
    w.play(stream).await.map_err(|e| ctx("play", e))?;
    let _ = ready.send(());
    let mut played = Played::default();
    loop {
        let m = match w.next_msg(Duration::from_secs(60)).await {
            Ok(Some(m)) => m,
            Ok(None) => break,
            Err(e) => return Err(ctx(&format!("reading after {:?}", played.seqs.last()), e)),
        };
        match m.type_id {
            msg_type::VIDEO if m.payload.len() >= 5 && m.payload[0] == 0x12 => {
                played
                    .seqs
                    .push(u32::from_be_bytes(m.payload[1..5].try_into().unwrap()));
            }
            msg_type::USER_CONTROL
                if matches!(
                    Control::parse(&m),
                    Ok(Some(Control::UserControl(UserControl::StreamEof(_))))
                ) =>
            {
                played.stopped = true;
            }
            msg_type::COMMAND_AMF0 => {
                if let Ok(c) = command::Command::parse(&m)
                    && c.arg(0).and_then(|v| v.get("code")).and_then(Value::as_str)
                        == Some("NetStream.Play.Stop")
                {
                    played.stopped = true;
                    break;
                }
            }
            _ => {}
        }
    }
    Ok(played)
}

/// Checks frame numbers are exactly 0..n: none missing, none twice, in order.
pub fn check_sequence(seqs: &[u32], n: u32) -> Result<(), String> {
    if seqs.len() == n as usize && seqs.iter().enumerate().all(|(i, &s)| s == i as u32) {
        return Ok(());
    }
    let mut missing = Vec::new();
    let mut seen = vec![0u32; n as usize];
    let mut extra = Vec::new();
    for &s in seqs {
        match seen.get_mut(s as usize) {
            Some(c) => *c += 1,
            None => extra.push(s),
        }
    }
    for (i, &c) in seen.iter().enumerate() {
        if c == 0 {
            missing.push(i);
        }
    }
    let dups: Vec<usize> = seen
        .iter()
        .enumerate()
        .filter(|(_, c)| **c > 1)
        .map(|(i, _)| i)
        .collect();
    let backwards = seqs.windows(2).filter(|w| w[1] <= w[0]).count();
    Err(format!(
        "got {} frames of {n}: missing {} (first {:?}), duplicated {:?}, unknown {:?}, \
         {backwards} out of order",
        seqs.len(),
        missing.len(),
        &missing[..missing.len().min(10)],
        &dups[..dups.len().min(10)],
        &extra[..extra.len().min(10)],
    ))
}
