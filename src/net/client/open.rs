//! Opening a connection, the same way for every driver: transport, handshake, `connect`,
//! authentication rounds (each a new connection), then publish or play, all within the
//! configured timeout. Also what a driver keeps around its connections: the context
//! ([`Ctx`]), the state it shares with the element's handle ([`Shared`]), the media counters
//! ([`Meter`]) and one open connection ([`Link`]).

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};

use super::hold::HoldBook;
use super::media::MediaFrame;
use super::{AuthMode, ClientConfig, ClientError, Notice, NoticeFn, ProgressKind, Stats};
use crate::net::transport::{self, Stream, TransportKind};
use crate::rtmp::amf0::Value;
use crate::rtmp::auth;
use crate::rtmp::command::{Status, StatusCode};
use crate::rtmp::handshake::ClientMode;
use crate::rtmp::session::{self, ClientEvent, ClientRole, ClientSession, SessionError};
use crate::rtmp::url::{RtmpUrl, Scheme};

/// Connections one `open` may take for authentication (plain, user, response, and one spare
/// for servers that ask for the method before the user).
const MAX_AUTH_ROUNDS: usize = 4;
/// How long a finished connection waits for the server to close its side.
pub(super) const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Everything a connection task needs, shared by both roles.
pub(super) struct Ctx {
    pub(super) cfg: ClientConfig,
    pub(super) role: ClientRole,
    /// Outgoing chunk size, publisher only.
    pub(super) chunk_size: Option<u32>,
    pub(super) notice: NoticeFn,
    pub(super) shared: Arc<Shared>,
}

impl Ctx {
    /// The same context for another server (an Enhanced RTMP ReconnectRequest's tcUrl).
    pub(super) fn moved_to(&self, url: RtmpUrl) -> Ctx {
        let mut cfg = self.cfg.clone();
        cfg.url = url;
        Ctx {
            cfg,
            role: self.role,
            chunk_size: self.chunk_size,
            notice: self.notice.clone(),
            shared: self.shared.clone(),
        }
    }

    pub(super) fn target(&self) -> String {
        let url = &self.cfg.url;
        if url.host.contains(':') {
            format!("[{}]:{}", url.host, url.port_or_default())
        } else {
            format!("{}:{}", url.host, url.port_or_default())
        }
    }

    pub(super) fn progress(&self, kind: ProgressKind, code: &'static str, text: String) {
        (self.notice)(Notice::Progress { kind, code, text });
    }

    pub(super) fn warn(&self, text: String) {
        (self.notice)(Notice::Warning(text));
    }

    fn action(&self) -> &'static str {
        match self.role {
            ClientRole::Publish => "publish",
            ClientRole::Play => "play",
        }
    }

    /// `base` with the auth query appended (to the app and the tcUrl alike).
    fn with_query(base: &str, query: Option<&str>) -> String {
        match query {
            None => base.to_string(),
            Some(q) if base.contains('?') => format!("{base}&{}", q.trim_start_matches('?')),
            Some(q) => format!("{base}{q}"),
        }
    }

    /// The query for the next connection after a rejected `connect`, or the error to report.
    fn auth_answer(&self, code: &str, description: &str) -> Result<String, ClientError> {
        let target = self.target();
        let rejected = || ClientError::Rejected {
            target: target.clone(),
            code: code.to_string(),
            description: description.to_string(),
        };
        if self.cfg.authmod == AuthMode::None {
            return Err(rejected());
        }
        let rejection = auth::parse_rejection(description);
        let Some(method) = rejection.method else {
            return Err(rejected());
        };
        let allowed = match self.cfg.authmod {
            AuthMode::Auto => true,
            AuthMode::Adobe => method == auth::AuthMethod::Adobe,
            AuthMode::Llnw => method == auth::AuthMethod::Llnw,
            AuthMode::None => false,
        };
        if !allowed {
            return Err(ClientError::Auth {
                target,
                reason: format!(
                    "server asks for {} authentication but authmod is {:?} ({code}: {description})",
                    method.as_str(),
                    self.cfg.authmod
                ),
            });
        }
        let (Some(user), Some(password)) = (&self.cfg.url.username, &self.cfg.url.password) else {
            return Err(ClientError::Auth {
                target,
                reason: format!(
                    "server asks for {} authentication but no username and password are set \
                     ({code}: {description})",
                    method.as_str()
                ),
            });
        };
        let app = self.cfg.url.app.split('?').next().unwrap_or_default();
        auth::next_query(
            description,
            user,
            password,
            app,
            &auth::client_nonce(rand::random()),
        )
        .map_err(|e| ClientError::Auth {
            target,
            reason: format!("{e} ({code}: {description})"),
        })
    }
}

/// The context a ReconnectRequest sends the stream to, or `None` (with a warning) when its
/// `tcUrl` cannot be used.
pub(super) fn follow_target(ctx: &Ctx, tc_url: Option<&str>) -> Option<Ctx> {
    let url = match tc_url {
        None => ctx.cfg.url.clone(),
        Some(t) => match ctx.cfg.url.resolve_tc_url(t) {
            Ok(url) => url,
            Err(e) => {
                ctx.warn(format!(
                    "{} asked to reconnect to {t:?}, which is not usable ({e}); staying",
                    ctx.target()
                ));
                return None;
            }
        },
    };
    ctx.progress(
        ProgressKind::Start,
        "reconnect",
        format!(
            "{} asks to reconnect: connecting to {} before leaving",
            ctx.target(),
            url.tc_url()
        ),
    );
    Some(ctx.moved_to(url))
}

/// The `tcUrl` of a ReconnectRequest status; `None` for the same place.
pub(super) fn reconnect_tc_url(status: &Status) -> Option<String> {
    status.extra.iter().find_map(|(k, v)| match v {
        Value::String(url) if k == "tcUrl" && !url.is_empty() => Some(url.clone()),
        _ => None,
    })
}

pub(super) fn transport_kind(scheme: Scheme) -> TransportKind {
    match scheme {
        Scheme::Rtmp | Scheme::Rtmpe => TransportKind::Tcp,
        Scheme::Rtmps => TransportKind::Tls,
        Scheme::Rtmpt | Scheme::Rtmpte => TransportKind::HttpTunnel,
        Scheme::Rtmpts => TransportKind::HttpTunnelTls,
    }
}

/// State shared between the task and the element's handle.
#[derive(Default)]
pub(super) struct Shared {
    stats: Mutex<Stats>,
    failure: Mutex<Option<ClientError>>,
}

impl Shared {
    pub(super) fn update(&self, f: impl FnOnce(&mut Stats)) {
        f(&mut self.stats.lock().unwrap_or_else(|e| e.into_inner()));
    }

    pub(super) fn snapshot(&self) -> Stats {
        self.stats.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(super) fn fail(&self, e: ClientError) {
        *self.failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
    }

    pub(super) fn failure(&self) -> Option<ClientError> {
        self.failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Media counters kept by the task across connections; folded into [`Stats`].
pub(super) struct Meter {
    /// Byte totals of the connections before the current one.
    base_in: u64,
    base_out: u64,
    frames: u64,
    media_bytes: u64,
    last_tick_bytes: u64,
    last_tick: Instant,
    bitrate: u64,
}

impl Meter {
    pub(super) fn new() -> Self {
        Meter {
            base_in: 0,
            base_out: 0,
            frames: 0,
            media_bytes: 0,
            last_tick_bytes: 0,
            last_tick: Instant::now(),
            bitrate: 0,
        }
    }

    pub(super) fn count(&mut self, frame: &MediaFrame) {
        self.frames += 1;
        self.media_bytes += frame.payload.len() as u64;
    }

    pub(super) fn tick(&mut self) {
        let ms = self.last_tick.elapsed().as_millis().max(1) as u64;
        self.bitrate = (self.media_bytes - self.last_tick_bytes) * 8 * 1000 / ms;
        self.last_tick_bytes = self.media_bytes;
        self.last_tick = Instant::now();
    }

    /// The current connection is over: its totals move into the base.
    pub(super) fn close_link(&mut self, session: &ClientSession) {
        let s = session.stats();
        self.base_in += s.in_bytes_total;
        self.base_out += s.out_bytes_total;
    }

    pub(super) fn publish(
        &self,
        shared: &Shared,
        session: Option<&ClientSession>,
        hold: Option<&HoldBook>,
    ) {
        shared.update(|st| {
            if let Some(session) = session {
                let s = session.stats();
                st.in_chunk_size = s.in_chunk_size;
                st.out_chunk_size = s.out_chunk_size;
                st.in_window_ack_size = s.in_window_ack_size;
                st.out_window_ack_size = s.out_window_ack_size;
                st.in_bytes_total = self.base_in + s.in_bytes_total;
                st.out_bytes_total = self.base_out + s.out_bytes_total;
                st.in_bytes_acked = s.in_bytes_acked;
                st.out_bytes_acked = s.out_bytes_acked;
            }
            st.frames = self.frames;
            st.bitrate = self.bitrate;
            if let Some(hold) = hold {
                st.held = hold.counters.held;
                st.resent = hold.counters.resent;
                st.drops = hold.counters.dropped;
            }
        });
    }
}

/// One open connection: the session and the two halves of its transport.
pub(super) struct Link {
    pub(super) session: ClientSession,
    pub(super) reader: ReadHalf<Box<dyn Stream>>,
    pub(super) writer: WriteHalf<Box<dyn Stream>>,
    pub(super) out: VecDeque<Bytes>,
    pub(super) out_len: usize,
    pub(super) buf: Vec<u8>,
    pub(super) eof: bool,
    /// Bytes read from the transport, whatever the session made of them.
    received: u64,
    /// The session's clock starts here.
    pub(super) epoch: Instant,
}

impl Link {
    /// A link over a connected stream: a new connection's, or one already playing (what the
    /// direct player hands back when it stops reading the socket itself).
    pub(super) fn resume(
        session: ClientSession,
        stream: Box<dyn Stream>,
        out: VecDeque<Bytes>,
        buf: Vec<u8>,
        eof: bool,
        epoch: Instant,
    ) -> Link {
        let (reader, writer) = tokio::io::split(stream);
        let out_len = out.iter().map(Bytes::len).sum();
        Link {
            session,
            reader,
            writer,
            out,
            out_len,
            buf,
            eof,
            received: 0,
            epoch,
        }
    }

    fn queue_transmit(&mut self) {
        while let Some(b) = self.session.poll_transmit() {
            self.out_len += b.len();
            self.out.push_back(b);
        }
    }

    /// One I/O step: bytes read and fed to the session, or queued bytes written, or the
    /// session's deadline fired. Cancel-safe: dropping it loses nothing.
    pub(super) async fn step(&mut self) -> io::Result<()> {
        self.queue_transmit();
        let epoch = self.epoch;
        let deadline = self
            .session
            .poll_timeout()
            .map(|ms| tokio::time::Instant::from_std(epoch + Duration::from_millis(ms)));
        let Link {
            session,
            reader,
            writer,
            out,
            out_len,
            buf,
            eof,
            received,
            ..
        } = self;
        let reading = !*eof;
        let writing = !out.is_empty();
        let far = tokio::time::Instant::now() + Duration::from_secs(3600);
        tokio::select! {
            r = reader.read(buf), if reading => {
                let now = epoch.elapsed().as_millis() as u64;
                match r? {
                    0 => {
                        *eof = true;
                        session.handle_peer_closed();
                    }
                    n => {
                        *received += n as u64;
                        session.handle_input(&buf[..n], now);
                    }
                }
            }
            r = writer.write(out.front().map_or(&[][..], |b| &b[..])), if writing => {
                let n = r?;
                if n == 0 {
                    return Err(io::ErrorKind::WriteZero.into());
                }
                *out_len -= n;
                let front = out.front_mut().expect("writing only with queued bytes");
                if n == front.len() {
                    out.pop_front();
                } else {
                    let _ = front.split_to(n);
                }
            }
            _ = tokio::time::sleep_until(deadline.unwrap_or(far)), if deadline.is_some() => {
                session.handle_timeout(epoch.elapsed().as_millis() as u64);
            }
            else => std::future::pending::<()>().await,
        }
        Ok(())
    }

    /// Writes everything queued.
    async fn flush(&mut self) -> io::Result<()> {
        self.queue_transmit();
        while let Some(front) = self.out.pop_front() {
            self.out_len -= front.len();
            self.writer.write_all(&front).await?;
        }
        self.writer.flush().await
    }

    /// Ends the connection politely: queued bytes out, our side shut, then the server's
    /// remaining bytes read until it closes too (closing with unread data would reset the
    /// connection, and a reset can make the server drop what it has not read yet).
    pub(super) async fn close(mut self) {
        let polite = async {
            self.flush().await?;
            self.writer.shutdown().await?;
            let mut sink = [0u8; 4096];
            while self.reader.read(&mut sink).await? > 0 {}
            io::Result::Ok(())
        };
        let _ = tokio::time::timeout(CLOSE_GRACE, polite).await;
    }
}

enum Attempt {
    /// `connect` was rejected; authentication may answer it.
    Rejected {
        code: String,
        description: String,
    },
    Failed(ClientError),
}

/// One connection: transport, handshake, `connect` (with the Enhanced RTMP fields when
/// `enhanced`), then publish or play, within the timeout.
async fn attempt(ctx: &Ctx, query: Option<&str>, enhanced: bool) -> Result<Link, Attempt> {
    let cfg = &ctx.cfg;
    let url = &cfg.url;
    let target = ctx.target();
    let deadline = tokio::time::Instant::now() + cfg.timeout;
    let transport = transport::connect(
        transport_kind(url.scheme),
        &url.host,
        url.port_or_default(),
        cfg.timeout,
        cfg.tls.as_ref(),
    )
    .await
    .map_err(|e| Attempt::Failed(ClientError::Transport(Arc::new(e))))?;

    let mut sc = session::ClientConfig::new(
        Ctx::with_query(&url.app, query),
        Ctx::with_query(&url.tc_url(), query),
        ctx.role,
    );
    sc.flash_ver = cfg.flash_version.clone();
    if url.scheme.is_encrypted() {
        // Type 6 (RC4 only) is what librtmp and FFmpeg send; every RTMPE server takes it.
        sc.handshake = ClientMode::Rtmpe { kind: 6 };
    }
    sc.extra_connect_args = cfg.extra_connect_args.clone();
    if enhanced && !cfg.enhanced_codecs.is_empty() {
        sc.enhanced = Some(super::enhanced_caps(&cfg.enhanced_codecs, ctx.role));
    }
    // The whole attempt is bounded below; one deadline is enough.
    sc.handshake_timeout_ms = None;
    if let Some(size) = ctx.chunk_size {
        sc.chunk_size = size;
    }
    let epoch = Instant::now();
    let session = ClientSession::new(sc, 0, &mut rand::rng());
    let mut link = Link::resume(
        session,
        transport.stream,
        VecDeque::new(),
        vec![0; 64 * 1024],
        false,
        epoch,
    );
    let started = match ctx.role {
        ClientRole::Publish => link.session.publish(&url.stream),
        ClientRole::Play => link.session.play(&url.stream, -2000.0),
    };
    if let Err(e) = started {
        return Err(Attempt::Failed(ClientError::Failed {
            target,
            stage: "starting",
            reason: e.to_string(),
        }));
    }

    let mut connected = false;
    loop {
        while let Some(event) = link.session.poll_event() {
            match event {
                ClientEvent::Connected { .. } => connected = true,
                ClientEvent::PublishStarted { .. } | ClientEvent::PlayStarted { .. } => {
                    return Ok(link);
                }
                ClientEvent::ConnectRejected { code, description } => {
                    return Err(Attempt::Rejected { code, description });
                }
                ClientEvent::StreamRejected(status) => {
                    let not_found =
                        StatusCode::from_code(&status.code) == Some(StatusCode::PlayStreamNotFound);
                    return Err(Attempt::Failed(if not_found {
                        ClientError::NotFound {
                            target,
                            stream: url.stream.clone(),
                            code: status.code,
                            description: status.description,
                        }
                    } else {
                        ClientError::StreamRejected {
                            target,
                            action: ctx.action(),
                            stream: url.stream.clone(),
                            code: status.code,
                            description: status.description,
                        }
                    }));
                }
                ClientEvent::Closed(reason) => {
                    let handshake = matches!(
                        *reason,
                        SessionError::Handshake(_) | SessionError::HandshakeTimeout { .. }
                    );
                    return Err(Attempt::Failed(ClientError::Failed {
                        target,
                        stage: if handshake {
                            "in the handshake"
                        } else {
                            stage(&link, connected, ctx.role)
                        },
                        reason: reason.to_string(),
                    }));
                }
                _ => {}
            }
        }
        match tokio::time::timeout_at(deadline, link.step()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return Err(Attempt::Failed(ClientError::Failed {
                    target,
                    stage: stage(&link, connected, ctx.role),
                    reason: e.to_string(),
                }));
            }
            Err(_) => {
                return Err(Attempt::Failed(ClientError::TimedOut {
                    target,
                    stage: stage(&link, connected, ctx.role),
                    timeout: cfg.timeout,
                }));
            }
        }
    }
}

/// The stage after the handshake, before the connect `_result`.
pub(super) const STAGE_CONNECT_RESULT: &str = "waiting for the connect result";

/// What a connection that has not started its stream yet was waiting for.
fn stage(link: &Link, connected: bool, role: ClientRole) -> &'static str {
    let received = link.received;
    if connected {
        match role {
            ClientRole::Publish => "waiting for NetStream.Publish.Start",
            ClientRole::Play => "waiting for NetStream.Play.Start",
        }
    } else if received == 0 {
        "waiting for the handshake (no byte from the server)"
    } else if received < 1 + 2 * 1536 {
        "in the handshake"
    } else {
        STAGE_CONNECT_RESULT
    }
}

/// Opens a connection, answering authentication challenges with new connections.
pub(super) async fn open(ctx: &Ctx) -> Result<Link, ClientError> {
    let url = &ctx.cfg.url;
    let mut query = match (ctx.cfg.authmod, &url.username) {
        (AuthMode::Adobe, Some(user)) => Some(auth::initial_query(auth::AuthMethod::Adobe, user)),
        (AuthMode::Llnw, Some(user)) => Some(auth::initial_query(auth::AuthMethod::Llnw, user)),
        _ => None,
    };
    let mut last = String::new();
    // Servers that predate Enhanced RTMP may refuse, or drop, a connect with its fields: the
    // first such failure is retried once without them.
    let mut enhanced = !ctx.cfg.enhanced_codecs.is_empty();
    for _ in 0..MAX_AUTH_ROUNDS {
        match attempt(ctx, query.as_deref(), enhanced).await {
            Ok(link) => return Ok(link),
            Err(Attempt::Failed(e)) if enhanced && e.failed_at_connect() => {
                ctx.warn(format!(
                    "{e}; connecting again without the Enhanced RTMP connect fields"
                ));
                enhanced = false;
            }
            Err(Attempt::Failed(e)) => return Err(e),
            Err(Attempt::Rejected { code, description })
                if enhanced && auth::parse_rejection(&description).method.is_none() =>
            {
                // Not an authentication request: perhaps the fields.
                ctx.warn(format!(
                    "{} rejected the connect ({code}: {description}); connecting again \
                     without the Enhanced RTMP connect fields",
                    ctx.target()
                ));
                enhanced = false;
            }
            Err(Attempt::Rejected { code, description }) => {
                query = Some(ctx.auth_answer(&code, &description)?);
                last = format!("{code}: {description}");
            }
        }
    }
    Err(ClientError::Auth {
        target: ctx.target(),
        reason: format!("still rejected after {MAX_AUTH_ROUNDS} connections ({last})"),
    })
}

/// The first connection, with its progress messages.
/// The first connection, with the progress messages around it ("Publishing"/"Playing" when it
/// worked, the error when not).
pub(super) async fn first_open(ctx: &Ctx) -> Result<Link, ClientError> {
    let target = ctx.target();
    ctx.progress(
        ProgressKind::Start,
        "connect",
        format!("Connecting to {target}"),
    );
    match open(ctx).await {
        Ok(link) => {
            let stream = &ctx.cfg.url.stream;
            let done = match ctx.role {
                ClientRole::Publish => format!("Publishing {stream:?} on {target}"),
                ClientRole::Play => format!("Playing {stream:?} from {target}"),
            };
            ctx.progress(ProgressKind::Complete, "connect", done);
            Ok(link)
        }
        Err(e) => {
            ctx.progress(ProgressKind::Error, "connect", e.to_string());
            Err(e)
        }
    }
}

/// Announces reconnect attempt `attempt_no` (1 for the first) and returns the delay before it.
pub(super) fn reconnect_attempt(ctx: &Ctx, attempt_no: u32) -> Duration {
    let delay = ctx.cfg.reconnect.delay(attempt_no);
    ctx.progress(
        ProgressKind::Start,
        "reconnect",
        format!(
            "Reconnecting to {} in {} ms (attempt {attempt_no})",
            ctx.target(),
            delay.as_millis()
        ),
    );
    delay
}

/// After reconnect attempt `attempt_no` failed with `e`: `Some` error to give up with (`e`
/// itself when it is final, `ReconnectFailed` when the attempts are used up), `None` to try
/// again. Warns either way.
pub(super) fn failed_attempt(
    ctx: &Ctx,
    attempt_no: u32,
    reason: &str,
    e: ClientError,
) -> Option<ClientError> {
    if e.is_final() {
        return Some(e);
    }
    ctx.warn(format!("reconnect attempt {attempt_no} failed: {e}"));
    if ctx
        .cfg
        .reconnect
        .max_attempts
        .is_some_and(|max| attempt_no >= max)
    {
        ctx.progress(ProgressKind::Error, "reconnect", e.to_string());
        return Some(ClientError::ReconnectFailed {
            target: ctx.target(),
            reason: reason.to_string(),
            attempts: attempt_no,
            last: Box::new(e),
        });
    }
    None
}
