//! The RTMPT client: one tunnel session over HTTP/1.1 (hyper), seen as a [`TunnelStream`].
//!
//! A pump task owns the HTTP connection. It issues one request at a time, in the order
//! FFmpeg does (never pipelined): `POST /open/1` once, then `/send/<sid>/<seq>` with
//! everything the RTMP side wrote since the previous request, or `/idle/<sid>/<seq>` when
//! there is nothing to send, and `/close/<sid>/<seq>` when the RTMP side is done. `seq` starts
//! at 0 after the open and grows by one per request. Every `send`/`idle` answer starts with a
//! polling byte, which is stripped; the rest is RTMP data for the reader.
//!
//! Idle polls back off while the server has nothing to say: none after an answer that carried
//! data, then 5 ms doubling up to `max_poll_interval`. Writes wake the pump at once.
//!
//! A keep-alive connection the server closed between two requests is reopened once (only when
//! [`connect`] made it, and only while the request was not written yet); any other HTTP
//! failure ends the session, and the stream's next read or write reports the reason.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::{CONTENT_TYPE, Failure, TunnelStream, read_ready};
use crate::net::transport::tls::{TlsConnector, TlsError};

/// Largest `send` body: what the RTMP side wrote beyond it waits for the next request.
/// Well below the 1 MiB a server like ours accepts.
const MAX_SEND: usize = 256 * 1024;
/// Largest answer body accepted from a server (Red5 sends at most 32 KiB, ours 64 KiB).
const MAX_RESPONSE: usize = 8 * 1024 * 1024;
/// Received bytes held for a reader that is not reading before polling pauses.
const MAX_INBOUND: usize = 1024 * 1024;
/// First delay after an empty answer; doubled per further empty answer.
const FIRST_BACKOFF: Duration = Duration::from_millis(5);

/// Tunables of the client side; `Default` gives sane values.
#[derive(Debug, Clone)]
pub struct TunnelClientOptions {
    /// Longest wait for the answer to one request (connecting included).
    pub request_timeout: Duration,
    /// Longest pause between two idle polls while the server has nothing to send.
    pub max_poll_interval: Duration,
}

impl Default for TunnelClientOptions {
    fn default() -> Self {
        TunnelClientOptions {
            request_timeout: Duration::from_secs(30),
            max_poll_interval: Duration::from_millis(200),
        }
    }
}

/// Why a tunnel could not be opened or went down.
#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    #[error("cannot connect to RTMPT server {addr}: {source}")]
    Connect { addr: String, source: io::Error },
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("HTTP exchange with RTMPT server {host} failed on POST {path}: {reason}")]
    Http {
        host: String,
        path: String,
        reason: String,
    },
    #[error("RTMPT server {host} answered {status} to POST {path}")]
    Status {
        host: String,
        path: String,
        status: StatusCode,
    },
    #[error("RTMPT server {host} did not answer POST {path} within {timeout:?}")]
    Timeout {
        host: String,
        path: String,
        timeout: Duration,
    },
    #[error("RTMPT server {host} answered POST /open/1 with an unusable session id {id:?}")]
    SessionId { host: String, id: String },
    #[error(
        "RTMPT server {host} answered POST {path} with an empty body (a polling byte is required)"
    )]
    EmptyBody { host: String, path: String },
    #[error("the HTTP connection to RTMPT server {host} closed and this tunnel cannot reopen it")]
    Closed { host: String },
}

impl TunnelError {
    fn kind(&self) -> io::ErrorKind {
        match self {
            TunnelError::Timeout { .. } => io::ErrorKind::TimedOut,
            TunnelError::Closed { .. } => io::ErrorKind::ConnectionAborted,
            TunnelError::Connect { source, .. } => source.kind(),
            _ => io::ErrorKind::Other,
        }
    }
}

trait IoStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> IoStream for T {}
type BoxIo = Box<dyn IoStream>;
type ConnectFuture = Pin<Box<dyn Future<Output = Result<BoxIo, TunnelError>> + Send>>;
type Connector = Box<dyn FnMut() -> ConnectFuture + Send>;

/// Connects to `host:port` over TCP (and TLS when `tls` is given: `rtmpts`) and opens a
/// tunnel session. `host` is a name or an IP literal (IPv6 with or without brackets).
/// Runs on the caller's tokio runtime, where the pump task is spawned too.
pub async fn connect(
    host: &str,
    port: u16,
    tls: Option<&TlsConnector>,
    options: &TunnelClientOptions,
) -> Result<TunnelStream, TunnelError> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
        .to_string();
    let host_header = if bare.contains(':') {
        format!("[{bare}]:{port}")
    } else {
        format!("{bare}:{port}")
    };
    let tls = tls.cloned();
    let addr = host_header.clone();
    let connector: Connector = Box::new(move || {
        let (bare, addr, tls) = (bare.clone(), addr.clone(), tls.clone());
        Box::pin(async move {
            let tcp = TcpStream::connect((bare.as_str(), port))
                .await
                .map_err(|source| TunnelError::Connect { addr, source })?;
            // Requests are small and latency-bound: never let Nagle hold one back.
            let _ = tcp.set_nodelay(true);
            // MSG_NOSIGNAL writes: a host process's SIGPIPE must not hinge on the server.
            let tcp = crate::net::transport::tcp::Tcp::new(tcp);
            Ok(match tls {
                Some(tls) => Box::new(tls.connect_to(&bare, port, tcp).await?) as BoxIo,
                None => Box::new(tcp) as BoxIo,
            })
        })
    });
    start(Http::new(host_header, connector, options), options).await
}

/// Opens a tunnel session over an HTTP connection the caller already made (TCP or TLS).
/// `host_header` is sent as `Host` (`host:port`). If the server closes this connection the
/// tunnel ends, as it cannot open another one.
pub async fn open<IO>(
    io: IO,
    host_header: &str,
    options: &TunnelClientOptions,
) -> Result<TunnelStream, TunnelError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut slot = Some(Box::new(io) as BoxIo);
    let host = host_header.to_string();
    let connector: Connector = Box::new(move || {
        let io = slot
            .take()
            .ok_or(TunnelError::Closed { host: host.clone() });
        Box::pin(async move { io })
    });
    start(
        Http::new(host_header.to_string(), connector, options),
        options,
    )
    .await
}

async fn start(mut http: Http, options: &TunnelClientOptions) -> Result<TunnelStream, TunnelError> {
    let reply = http.post("/open/1", Bytes::from_static(&[0])).await?;
    let id = String::from_utf8_lossy(&reply).trim_end().to_string();
    let usable = !id.is_empty()
        && id.len() <= 256
        && id
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b'?');
    if !usable {
        return Err(TunnelError::SessionId {
            host: http.host.clone(),
            id,
        });
    }
    let (stream, far, failure) = TunnelStream::pair(id.clone());
    let pump = Pump {
        http: Arc::new(tokio::sync::Mutex::new(http)),
        sid: id,
        seq: 0,
        failure,
        max_interval: options.max_poll_interval,
    };
    tokio::spawn(pump.run(far));
    Ok(stream)
}

/// The HTTP side: one keep-alive connection, reopened through `connect` when needed.
struct Http {
    host: String,
    sender: Option<SendRequest<Full<Bytes>>>,
    connect: Connector,
    timeout: Duration,
}

impl Http {
    fn new(host: String, connect: Connector, options: &TunnelClientOptions) -> Http {
        Http {
            host,
            sender: None,
            connect,
            timeout: options.request_timeout,
        }
    }

    fn error(&self, path: &str, reason: impl ToString) -> TunnelError {
        TunnelError::Http {
            host: self.host.clone(),
            path: path.to_string(),
            reason: reason.to_string(),
        }
    }

    /// POSTs `body` to `path` and returns the answer's body.
    async fn post(&mut self, path: &str, body: Bytes) -> Result<Bytes, TunnelError> {
        match tokio::time::timeout(self.timeout, self.exchange(path, body)).await {
            Ok(result) => result,
            Err(_) => {
                // The connection is in an unknown state now; never reuse it.
                self.sender = None;
                Err(TunnelError::Timeout {
                    host: self.host.clone(),
                    path: path.to_string(),
                    timeout: self.timeout,
                })
            }
        }
    }

    async fn exchange(&mut self, path: &str, body: Bytes) -> Result<Bytes, TunnelError> {
        let mut fresh = false;
        loop {
            let mut sender = match self.sender.take() {
                Some(s) if !s.is_closed() => s,
                _ => {
                    fresh = true;
                    self.open_connection(path).await?
                }
            };
            let request = Request::post(path)
                .header(header::HOST, &self.host)
                .header(header::CONTENT_TYPE, CONTENT_TYPE)
                .header(header::CACHE_CONTROL, "no-cache")
                // Some servers (crtmpserver) close the connection after each answer unless
                // the request asks for keep-alive explicitly.
                .header(header::CONNECTION, "Keep-Alive")
                // The agent string the other RTMPT clients send; some servers look for it.
                .header(header::USER_AGENT, "Shockwave Flash")
                .body(Full::new(body.clone()))
                .map_err(|e| self.error(path, e))?;
            let sent = match sender.ready().await {
                Ok(()) => sender.try_send_request(request).await.map_err(|mut e| {
                    let unsent = e.take_message().is_some();
                    (unsent, e.into_error())
                }),
                Err(e) => Err((true, e)),
            };
            match sent {
                Ok(response) => {
                    self.sender = Some(sender);
                    return self.read_answer(path, response).await;
                }
                // A stale keep-alive connection: the request never left, so it is safe to
                // try once more on a new connection.
                Err((true, _)) if !fresh => continue,
                Err((_, e)) => return Err(self.error(path, e)),
            }
        }
    }

    async fn open_connection(
        &mut self,
        path: &str,
    ) -> Result<SendRequest<Full<Bytes>>, TunnelError> {
        let io = (self.connect)().await?;
        let (sender, conn) = hyper::client::conn::http1::Builder::new()
            .handshake(TokioIo::new(io))
            .await
            .map_err(|e| self.error(path, e))?;
        tokio::spawn(async move {
            // Its errors also fail the request in flight, which reports them.
            let _ = conn.await;
        });
        Ok(sender)
    }

    async fn read_answer(
        &mut self,
        path: &str,
        response: http::Response<hyper::body::Incoming>,
    ) -> Result<Bytes, TunnelError> {
        let status = response.status();
        if status != StatusCode::OK {
            // Whatever follows on this connection is not worth trusting.
            self.sender = None;
            return Err(TunnelError::Status {
                host: self.host.clone(),
                path: path.to_string(),
                status,
            });
        }
        let body = Limited::new(response.into_body(), MAX_RESPONSE)
            .collect()
            .await
            .map_err(|e| {
                self.sender = None;
                self.error(path, e)
            })?;
        Ok(body.to_bytes())
    }
}

type Exchange = Pin<Box<dyn Future<Output = Result<Bytes, TunnelError>> + Send>>;

/// Moves bytes between the RTMP side (the far end of the stream's pipe) and the server.
struct Pump {
    http: Arc<tokio::sync::Mutex<Http>>,
    sid: String,
    seq: u64,
    failure: Arc<Failure>,
    max_interval: Duration,
}

impl Pump {
    fn request(&mut self, command: &str, body: Bytes) -> (String, Exchange) {
        let path = format!("/{command}/{}/{}", self.sid, self.seq);
        self.seq += 1;
        let http = self.http.clone();
        let p = path.clone();
        let exchange = Box::pin(async move { http.lock().await.post(&p, body).await });
        (path, exchange)
    }

    fn backoff(&self, empty_answers: u32) -> Duration {
        if empty_answers == 0 {
            return Duration::ZERO;
        }
        let factor = 1u32 << (empty_answers - 1).min(16);
        (FIRST_BACKOFF * factor).min(self.max_interval)
    }

    async fn run(mut self, app: DuplexStream) {
        let (mut app_rd, mut app_wr) = tokio::io::split(app);
        let mut outbound = BytesMut::new();
        let mut inbound = BytesMut::new();
        let mut chunk = vec![0u8; 64 * 1024];
        // The RTMP side shut down its write half or dropped the stream.
        let mut app_done = false;
        // The server's polling byte 0: the session is over on its side.
        let mut server_closing = false;
        let mut empty_answers = 0u32;
        let mut in_flight: Option<(String, Exchange)> = None;
        let idle = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(idle);

        loop {
            if in_flight.is_none() && !server_closing {
                if !outbound.is_empty() {
                    // Let writes already queued join this body (C0 and C1 must travel
                    // together: Red5 needs the whole 1537 bytes in one request).
                    tokio::task::yield_now().await;
                    match read_ready(&mut app_rd, &mut outbound, MAX_SEND).await {
                        Ok(eof) => app_done |= eof,
                        Err(_) => app_done = true,
                    }
                    in_flight = Some(self.request("send", outbound.split().freeze()));
                } else if app_done {
                    self.close(&mut app_wr, inbound).await;
                    return;
                }
            }
            if server_closing && in_flight.is_none() && inbound.is_empty() {
                let _ = app_wr.shutdown().await;
                return;
            }

            tokio::select! {
                result = async {
                    match in_flight.as_mut() {
                        Some((_, exchange)) => exchange.await,
                        None => std::future::pending().await,
                    }
                } => {
                    let path = in_flight.take().map(|(path, _)| path).unwrap_or_default();
                    let body = match result {
                        Ok(body) => body,
                        Err(e) => return self.fail(e),
                    };
                    if body.is_empty() {
                        let host = self.http.lock().await.host.clone();
                        return self.fail(TunnelError::EmptyBody { host, path });
                    }
                    let data = &body[1..];
                    if body[0] == 0 {
                        server_closing = true;
                    }
                    empty_answers = match data.is_empty() {
                        true => empty_answers.saturating_add(1),
                        false => 0,
                    };
                    inbound.extend_from_slice(data);
                    idle.as_mut().reset(Instant::now() + self.backoff(empty_answers));
                }
                r = app_rd.read(&mut chunk), if !app_done && outbound.len() < MAX_SEND => {
                    match r {
                        Ok(0) | Err(_) => app_done = true,
                        Ok(n) => outbound.extend_from_slice(&chunk[..n]),
                    }
                }
                r = app_wr.write(&inbound), if !inbound.is_empty() => {
                    match r {
                        Ok(n) => inbound.advance(n),
                        // Nobody reads any more: the stream was dropped.
                        Err(_) => {
                            inbound.clear();
                            app_done = true;
                        }
                    }
                }
                () = &mut idle, if in_flight.is_none()
                    && outbound.is_empty()
                    && !app_done
                    && !server_closing
                    && inbound.len() < MAX_INBOUND => {
                    in_flight = Some(self.request("idle", Bytes::from_static(&[0])));
                }
            }
        }
    }

    /// Ends the session politely and hands the reader what is left.
    async fn close(
        &mut self,
        app_wr: &mut tokio::io::WriteHalf<DuplexStream>,
        mut inbound: BytesMut,
    ) {
        let (_, exchange) = self.request("close", Bytes::from_static(&[0]));
        if let Ok(body) = exchange.await
            && body.len() > 1
        {
            inbound.extend_from_slice(&body[1..]);
        }
        // The reader may be gone already, or may never read again: do not wait long.
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            app_wr.write_all(&inbound).await?;
            app_wr.shutdown().await
        })
        .await;
    }

    fn fail(&self, e: TunnelError) {
        gst::debug!(
            crate::net::transport::tunnel::CAT,
            "RTMPT session {}: {e}",
            self.sid
        );
        self.failure.set(e.kind(), e.to_string());
    }
}
