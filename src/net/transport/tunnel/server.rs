//! The RTMPT server: HTTP/1.1 (hyper) connections in, one [`TunnelStream`] per tunnel
//! session out, handed over like an accepted socket.
//!
//! A session belongs to the [`TunnelServer`], not to a TCP connection: a client may spread
//! its requests over several connections, one after the other or at once. Requests on one
//! connection are answered in order, which is all librtmp's pipelined `send`s need. Requests
//! of one session are served one at a time (the session's lock), so bytes keep their order.
//!
//! Answers are always `200` with `Content-Length` (never chunked: librtmp needs both; and
//! Title-Case header names, as librtmp looks for the exact text `Content-`) and
//! `Content-Type: application/x-fcs`. `send`/`idle` answers carry a polling byte and then at
//! most `max_response` pending bytes, or as many as the request's body had when that is more.
//! The polling byte follows Red5's backoff: 1 while data flows and for the first ten empty
//! answers, then 3, 5, 9, 0x11 and 0x21 at most; 0 says the session is over (the RTMP side
//! closed and everything it wrote was delivered).
//!
//! Limits: bodies above `max_body` get 413 and the connection is closed; sessions with no
//! request for `session_timeout` expire (their stream reads fail with that reason); at most
//! `max_sessions` live at once. Everything else odd (non-POST: 405, unknown path or session:
//! 404) is answered and logged, and the connection stays usable.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use rand::Rng;
use tokio::io::{
    AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf,
};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{CAT, CONTENT_TYPE, Failure, Rewind, TunnelStream, read_ready};

/// Newly opened sessions waiting for the listener to take them; past it `/open` gets 503. A
/// burst of clients opening at once (all reconnecting after a restart, say) must fit.
const ACCEPT_QUEUE: usize = 1024;

/// Tunables of the tunnel server; `Default` gives sane values.
#[derive(Debug, Clone)]
pub struct TunnelServerConfig {
    /// A session with no request for this long is closed.
    pub session_timeout: Duration,
    /// Largest request body; larger gets 413 and the connection is closed.
    pub max_body: usize,
    /// Most RTMP bytes in one `send`/`idle` answer (after the polling byte).
    pub max_response: usize,
    /// Most sessions alive at once; `/open` beyond it gets 503.
    pub max_sessions: usize,
    /// Longest wait for a request's headers (the first one included), and then for its body.
    pub header_timeout: Duration,
}

impl Default for TunnelServerConfig {
    fn default() -> Self {
        TunnelServerConfig {
            session_timeout: Duration::from_secs(45),
            max_body: 1024 * 1024,
            max_response: 64 * 1024,
            max_sessions: 4096,
            header_timeout: Duration::from_secs(30),
        }
    }
}

/// A tunnel session a client just opened: the listener serves RTMP on `stream` as it would on
/// an accepted TCP socket from `peer`.
#[derive(Debug)]
pub struct AcceptedTunnel {
    pub stream: TunnelStream,
    /// The address that sent `/open/1`.
    pub peer: SocketAddr,
}

/// The shared state of every tunnel session of one listener; cheap to clone.
#[derive(Clone)]
pub struct TunnelServer {
    inner: Arc<Inner>,
}

struct Inner {
    config: TunnelServerConfig,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    accepted: mpsc::Sender<AcceptedTunnel>,
}

struct Session {
    id: String,
    /// Who opened it (requests may come from other connections later).
    peer: SocketAddr,
    io: tokio::sync::Mutex<SessionIo>,
    last_seen: Mutex<Instant>,
    failure: Arc<Failure>,
}

struct SessionIo {
    /// Our end of the stream's pipe; `None` once the session is over, which the stream's
    /// reader sees as end of stream.
    pipe: Option<(ReadHalf<DuplexStream>, WriteHalf<DuplexStream>)>,
    /// Bytes the RTMP side wrote that no answer carried yet.
    pending: BytesMut,
    /// The RTMP side closed its stream.
    app_eof: bool,
    empty_answers: u32,
    delay: u8,
}

impl SessionIo {
    /// Red5's polling byte: see the module comment.
    fn polling_byte(&mut self, had_data: bool) -> u8 {
        if had_data {
            self.empty_answers = 0;
            self.delay = 0;
        } else {
            self.empty_answers = self.empty_answers.saturating_add(1);
            if self.empty_answers > 10 {
                self.delay = if self.delay == 0 {
                    2
                } else {
                    (self.delay * 2).min(32)
                };
            }
        }
        self.delay + 1
    }
}

impl Session {
    fn touch(&self) {
        *self.last_seen.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    fn idle_for(&self) -> Duration {
        self.last_seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed()
    }
}

impl TunnelServer {
    /// A server with no session yet, and the queue its newly opened sessions arrive on.
    /// Starts a task (on the current tokio runtime, else the shared one) that expires idle
    /// sessions; it ends with the last clone of the server.
    pub fn new(config: TunnelServerConfig) -> (TunnelServer, mpsc::Receiver<AcceptedTunnel>) {
        let (accepted, rx) = mpsc::channel(ACCEPT_QUEUE);
        let inner = Arc::new(Inner {
            config,
            sessions: Mutex::new(HashMap::new()),
            accepted,
        });
        let handle = tokio::runtime::Handle::try_current()
            .unwrap_or_else(|_| crate::net::runtime::runtime().handle().clone());
        handle.spawn(reap(Arc::downgrade(&inner)));
        (TunnelServer { inner }, rx)
    }

    /// Serves HTTP/1.1 on `io` (whose first byte the caller may have peeked, not consumed)
    /// until the client closes it or breaks the protocol. Never fails: problems are logged.
    pub async fn serve_connection<IO>(&self, io: IO, peer: SocketAddr)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        self.serve_connection_within(io, peer, self.inner.config.header_timeout)
            .await
    }

    /// Like [`serve_connection`](Self::serve_connection), with `request_timeout` for each
    /// request's headers and body instead of the configured one (a listener's handshake
    /// timeout, so that a slow HTTP client is held no longer than a slow RTMP one).
    pub async fn serve_connection_within<IO>(
        &self,
        io: IO,
        peer: SocketAddr,
        request_timeout: Duration,
    ) where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let inner = self.inner.clone();
        let service = service_fn(move |req| {
            let inner = inner.clone();
            async move { Ok::<_, Infallible>(inner.handle(req, peer, request_timeout).await) }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .keep_alive(true)
            // librtmp looks for the exact text "Content-" before a case-insensitive
            // "length:": hyper's default lower-case header names would hide the length.
            .title_case_headers(true)
            .timer(TokioTimer::new())
            .header_read_timeout(request_timeout);
        if let Err(e) = builder.serve_connection(TokioIo::new(io), service).await {
            gst::debug!(CAT, "RTMPT connection from {peer} ended: {e}");
        }
    }

    /// Like [`serve_connection`](Self::serve_connection) for a connection whose first bytes
    /// the caller already read: `prefix` is served before the rest of `io`.
    pub async fn serve_connection_with_prefix<IO>(&self, prefix: Bytes, io: IO, peer: SocketAddr)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        self.serve_connection(Rewind::new(prefix, io), peer).await
    }

    /// Number of live sessions.
    pub fn session_count(&self) -> usize {
        self.inner.lock_sessions().len()
    }
}

/// Expires sessions nobody polled for `session_timeout`, until the server is gone.
async fn reap(inner: Weak<Inner>) {
    let period = match inner.upgrade() {
        Some(i) => {
            (i.config.session_timeout / 4).clamp(Duration::from_millis(20), Duration::from_secs(5))
        }
        None => return,
    };
    loop {
        tokio::time::sleep(period).await;
        let Some(inner) = inner.upgrade() else { return };
        let timeout = inner.config.session_timeout;
        let expired: Vec<Arc<Session>> = {
            let mut sessions = inner.lock_sessions();
            let ids: Vec<String> = sessions
                .values()
                // A session in the middle of a request is alive, however long it takes.
                .filter(|s| s.idle_for() >= timeout && s.io.try_lock().is_ok())
                .map(|s| s.id.clone())
                .collect();
            ids.iter().filter_map(|id| sessions.remove(id)).collect()
        };
        for session in expired {
            gst::info!(
                CAT,
                "RTMPT session {} from {} expired: no request for {timeout:?}",
                session.id,
                session.peer
            );
            session.failure.set(
                io::ErrorKind::TimedOut,
                format!(
                    "RTMPT session {} from {} expired: no request for {timeout:?}",
                    session.id, session.peer
                ),
            );
            session.io.lock().await.pipe = None;
        }
    }
}

fn answer(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(CONTENT_TYPE),
    );
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache"),
    );
    headers.insert(
        header::CONNECTION,
        header::HeaderValue::from_static("Keep-Alive"),
    );
    response
}

/// An answer after which the connection is closed.
fn answer_and_close(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = answer(status, body);
    response.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    response
}

impl Inner {
    fn lock_sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Session>>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn session(&self, id: &str, peer: SocketAddr, path: &str) -> Option<Arc<Session>> {
        let found = self.lock_sessions().get(id).cloned();
        if found.is_none() {
            gst::info!(
                CAT,
                "{peer}: POST {path}: unknown or closed RTMPT session {id:?}"
            );
        }
        found
    }

    async fn handle(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
        body_timeout: Duration,
    ) -> Response<Full<Bytes>> {
        let path = req.uri().path().to_string();
        if req.method() != Method::POST {
            gst::info!(CAT, "{peer}: {} {path}: only POST is served", req.method());
            let mut response = answer(StatusCode::METHOD_NOT_ALLOWED, "RTMPT takes POST only\n");
            response
                .headers_mut()
                .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
            return response;
        }
        let max_body = self.config.max_body;
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if let Some(len) = declared.filter(|len| *len > max_body as u64) {
            gst::warning!(
                CAT,
                "{peer}: POST {path}: Content-Length {len} is over the limit of {max_body} bytes; closing the connection"
            );
            return answer_and_close(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n");
        }
        // A body that never arrives must not hold the connection (and its request) forever:
        // hyper's header timeout ends at the headers, so the body gets the same bound.
        let collect = Limited::new(req.into_body(), max_body).collect();
        let body = match tokio::time::timeout(body_timeout, collect).await {
            Err(_) => {
                gst::warning!(
                    CAT,
                    "{peer}: POST {path}: the body did not arrive within {body_timeout:?}; closing the connection"
                );
                return answer_and_close(StatusCode::REQUEST_TIMEOUT, "request body too slow\n");
            }
            Ok(Ok(body)) => body.to_bytes(),
            Ok(Err(e)) => {
                gst::warning!(CAT, "{peer}: POST {path}: cannot read the body: {e}");
                let status = if e.is::<http_body_util::LengthLimitError>() {
                    StatusCode::PAYLOAD_TOO_LARGE
                } else {
                    StatusCode::BAD_REQUEST
                };
                return answer_and_close(status, "unreadable request body\n");
            }
        };
        let mut parts = path.trim_start_matches('/').split('/');
        match (parts.next(), parts.next()) {
            (Some("open"), _) => self.open(peer),
            (Some("send"), Some(id)) => self.exchange(id, Some(body), peer, &path).await,
            (Some("idle"), Some(id)) => self.exchange(id, None, peer, &path).await,
            (Some("close"), Some(id)) => self.close(id, peer, &path).await,
            // The Flash Player's identity probes: clients ignore the answer.
            (Some("fcs"), _) => answer(StatusCode::NOT_FOUND, Bytes::new()),
            _ => {
                gst::info!(CAT, "{peer}: POST {path}: not an RTMPT request");
                answer(StatusCode::NOT_FOUND, "not an RTMPT request\n")
            }
        }
    }

    fn open(&self, peer: SocketAddr) -> Response<Full<Bytes>> {
        let unavailable = |why: &str| {
            gst::warning!(CAT, "{peer}: POST /open/1 refused: {why}");
            answer(StatusCode::SERVICE_UNAVAILABLE, Bytes::new())
        };
        let mut sessions = self.lock_sessions();
        if sessions.len() >= self.config.max_sessions {
            return unavailable(&format!(
                "{} sessions are open, the limit",
                self.config.max_sessions
            ));
        }
        let id = loop {
            let id: String = rand::rng()
                .sample_iter(rand::distr::Alphanumeric)
                .take(16)
                .map(char::from)
                .collect();
            if !sessions.contains_key(&id) {
                break id;
            }
        };
        let (stream, far, failure) = TunnelStream::pair(id.clone());
        match self.accepted.try_send(AcceptedTunnel { stream, peer }) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                return unavailable("the listener is not taking new sessions fast enough");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                return unavailable("no listener takes tunnel sessions any more");
            }
        }
        let (rd, wr) = tokio::io::split(far);
        sessions.insert(
            id.clone(),
            Arc::new(Session {
                id: id.clone(),
                peer,
                io: tokio::sync::Mutex::new(SessionIo {
                    pipe: Some((rd, wr)),
                    pending: BytesMut::new(),
                    app_eof: false,
                    empty_answers: 0,
                    delay: 0,
                }),
                last_seen: Mutex::new(Instant::now()),
                failure,
            }),
        );
        gst::debug!(CAT, "{peer}: opened RTMPT session {id}");
        answer(StatusCode::OK, format!("{id}\n"))
    }

    /// `send` (with a body to deliver) and `idle`: answer with what the RTMP side wrote.
    async fn exchange(
        &self,
        id: &str,
        upload: Option<Bytes>,
        peer: SocketAddr,
        path: &str,
    ) -> Response<Full<Bytes>> {
        let Some(session) = self.session(id, peer, path) else {
            return answer(StatusCode::NOT_FOUND, "unknown RTMPT session\n");
        };
        session.touch();
        let mut guard = session.io.lock().await;
        let io = &mut *guard;
        let Some((rd, wr)) = io.pipe.as_mut() else {
            gst::info!(CAT, "{peer}: POST {path}: RTMPT session {id} is closed");
            return answer(StatusCode::NOT_FOUND, "unknown RTMPT session\n");
        };
        // An answer carries at least as many bytes as its request brought: otherwise a peer
        // that answers all it gets (an echo, or heavy two-way traffic) would make `pending`
        // grow with every request until both sides wait on each other.
        let uploaded = upload.as_ref().map_or(0, Bytes::len);
        let max = self.config.max_response.max(uploaded);
        if let Some(body) = upload.filter(|b| !b.is_empty()) {
            // Server→client bytes held while the body goes in, before the RTMP side's
            // writes wait: room for one full answer to this body and one ordinary one.
            let pending_cap = body.len() + self.config.max_response;
            let delivered = tokio::time::timeout(
                self.config.session_timeout,
                write_draining(rd, wr, &mut io.pending, &body, pending_cap),
            )
            .await;
            match delivered {
                Ok(Ok(())) => {}
                // The RTMP side is gone; what it wrote before still goes out below.
                Ok(Err(_)) => io.app_eof = true,
                Err(_) => {
                    let why = format!(
                        "RTMPT session {id} from {peer}: the RTMP side took no data for {:?}",
                        self.config.session_timeout
                    );
                    gst::warning!(CAT, "{why}");
                    session.failure.set(io::ErrorKind::TimedOut, why);
                    io.pipe = None;
                    self.lock_sessions().remove(id);
                    return answer(StatusCode::SERVICE_UNAVAILABLE, Bytes::new());
                }
            }
        }
        if let Some((rd, _)) = io.pipe.as_mut()
            && read_ready(rd, &mut io.pending, max).await.unwrap_or(true)
        {
            io.app_eof = true;
        }
        let data = io.pending.split_to(io.pending.len().min(max));
        let byte = if data.is_empty() && io.app_eof {
            // Everything the RTMP side wrote was delivered: the session is over.
            gst::debug!(CAT, "{peer}: RTMPT session {id} closed by the server side");
            io.pipe = None;
            self.lock_sessions().remove(id);
            0
        } else {
            io.polling_byte(!data.is_empty())
        };
        session.touch();
        let mut body = BytesMut::with_capacity(1 + data.len());
        body.extend_from_slice(&[byte]);
        body.extend_from_slice(&data);
        answer(StatusCode::OK, body.freeze())
    }

    async fn close(&self, id: &str, peer: SocketAddr, path: &str) -> Response<Full<Bytes>> {
        let Some(session) = self.lock_sessions().remove(id) else {
            gst::info!(
                CAT,
                "{peer}: POST {path}: unknown or closed RTMPT session {id:?}"
            );
            return answer(StatusCode::NOT_FOUND, "unknown RTMPT session\n");
        };
        gst::debug!(CAT, "{peer}: RTMPT session {id} closed by the client");
        session.io.lock().await.pipe = None;
        answer(StatusCode::OK, Bytes::from_static(&[0]))
    }
}

/// Hands `body` to the RTMP side while taking in what it writes meanwhile, so a driver that
/// writes before it reads cannot deadlock against us.
async fn write_draining(
    rd: &mut ReadHalf<DuplexStream>,
    wr: &mut WriteHalf<DuplexStream>,
    pending: &mut BytesMut,
    body: &[u8],
    pending_cap: usize,
) -> io::Result<()> {
    let mut written = 0;
    let mut chunk = vec![0u8; 16 * 1024];
    let mut reader_done = false;
    while written < body.len() {
        tokio::select! {
            r = wr.write(&body[written..]) => match r? {
                0 => return Err(io::ErrorKind::WriteZero.into()),
                n => written += n,
            },
            r = rd.read(&mut chunk), if !reader_done && pending.len() < pending_cap => match r {
                Ok(0) | Err(_) => reader_done = true,
                Ok(n) => pending.extend_from_slice(&chunk[..n]),
            },
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polling_byte_backs_off_like_red5() {
        let mut io = SessionIo {
            pipe: None,
            pending: BytesMut::new(),
            app_eof: false,
            empty_answers: 0,
            delay: 0,
        };
        let empties: Vec<u8> = (0..16).map(|_| io.polling_byte(false)).collect();
        assert_eq!(
            empties,
            [
                1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0x03, 0x05, 0x09, 0x11, 0x21, 0x21
            ]
        );
        assert_eq!(io.polling_byte(true), 1);
        assert_eq!(io.polling_byte(false), 1);
    }
}
