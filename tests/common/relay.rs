//! A minimal RTMP relay for the interop tests: the engine's ServerSession on tokio behind one
//! listening port that tells plain RTMP (C0 = 3), RTMPE (C0 = 6/8/9, accepted by the default
//! handshake policy), TLS and HTTP (RTMPT, RTMPTE) apart by the first byte, as the real
//! listener does. It serves one route, `live/<anything>`: it keeps every message of the
//! publish and replays it to each new player, so a player that joins late still gets every
//! frame; players wait for the publisher otherwise. Also: players (ffmpeg, rtmpdump) whose
//! stderr goes to a file next to their output.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gstrsrtmp::net::runtime::runtime;
use gstrsrtmp::net::transport::tls::TlsAcceptor;
use gstrsrtmp::net::transport::tunnel::{Rewind, TunnelServer, TunnelServerConfig};
use gstrsrtmp::rtmp::message::Message;
use gstrsrtmp::rtmp::session::{ServerConfig, ServerEvent, ServerSession};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::ChildGuard;

pub enum Item {
    Media(Message),
    End,
}

/// The one route of the relay (`live/s`): the publish so far and the players.
#[derive(Default)]
pub struct Hub {
    state: Mutex<HubState>,
}

#[derive(Default)]
pub struct HubState {
    pub backlog: Vec<Message>,
    pub ended: bool,
    pub players: Vec<mpsc::UnboundedSender<Item>>,
    /// Players whose play was accepted, ever.
    pub players_started: usize,
    /// Transports the relay's connections came in on, for the assertions.
    pub transports: Vec<&'static str>,
    /// (transport, C0) of every connection that sent a byte: 3 plain, 6/8/9 RTMPE.
    pub handshakes: Vec<(&'static str, u8)>,
}

impl Hub {
    pub fn lock(&self) -> std::sync::MutexGuard<'_, HubState> {
        self.state.lock().unwrap()
    }

    pub fn media(&self, message: Message) {
        let mut st = self.lock();
        st.players
            .retain(|p| p.send(Item::Media(message.clone())).is_ok());
        st.backlog.push(message);
    }

    pub fn end(&self) {
        let mut st = self.lock();
        st.ended = true;
        for p in st.players.drain(..) {
            let _ = p.send(Item::End);
        }
    }

    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<Item> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut st = self.lock();
        for m in &st.backlog {
            let _ = tx.send(Item::Media(m.clone()));
        }
        if st.ended {
            let _ = tx.send(Item::End);
        } else {
            st.players.push(tx);
        }
        st.players_started += 1;
        rx
    }
}

/// Runs one RTMP connection on the engine's ServerSession until it closes.
pub async fn serve_rtmp<S>(stream: S, hub: Arc<Hub>, transport: &'static str)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    hub.lock().transports.push(transport);
    let start = Instant::now();
    let now = || start.elapsed().as_millis() as u64;
    let mut session = ServerSession::new(ServerConfig::default(), 0, &mut rand::rng());
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut buf = vec![0u8; 64 * 1024];
    let mut player: Option<(u32, mpsc::UnboundedReceiver<Item>)> = None;
    let mut publishing = false;
    let mut first_read = true;
    loop {
        while let Some(event) = session.poll_event() {
            match event {
                ServerEvent::ConnectRequest { app, .. } => {
                    if app == "live" {
                        session.accept_connect().unwrap();
                    } else {
                        session
                            .reject_connect(&format!("no application {app:?}"))
                            .unwrap();
                    }
                }
                ServerEvent::PublishRequest { stream_id, .. } => {
                    publishing = true;
                    session.accept_publish(stream_id).unwrap();
                }
                ServerEvent::PlayRequest { stream_id, .. } => {
                    session.accept_play(stream_id).unwrap();
                    player = Some((stream_id, hub.subscribe()));
                }
                ServerEvent::Media { message, .. } => hub.media(message),
                ServerEvent::Unpublished { .. } => {
                    publishing = false;
                    hub.end();
                }
                _ => {}
            }
        }
        while let Some(bytes) = session.poll_transmit() {
            if wr.write_all(&bytes).await.is_err() {
                session.handle_peer_closed();
                break;
            }
        }
        if session.close_reason().is_some() {
            if publishing {
                hub.end();
            }
            let _ = wr.shutdown().await;
            return;
        }
        let deadline = session
            .poll_timeout()
            .map(|t| tokio::time::Instant::from_std(start + Duration::from_millis(t)))
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            r = rd.read(&mut buf) => match r {
                Ok(0) | Err(_) => session.handle_peer_closed(),
                Ok(n) => {
                    if std::mem::take(&mut first_read) {
                        hub.lock().handshakes.push((transport, buf[0]));
                    }
                    session.handle_input(&buf[..n], now())
                }
            },
            item = async {
                match player.as_mut() {
                    Some((_, rx)) => rx.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                let stream_id = player.as_ref().map_or(0, |(id, _)| *id);
                match item {
                    Some(Item::Media(m)) => session.send_media(stream_id, &m).unwrap(),
                    Some(Item::End) => {
                        session.end_stream(stream_id).unwrap();
                        player = None;
                    }
                    None => player = None,
                }
            }
            () = tokio::time::sleep_until(deadline) => session.handle_timeout(now()),
        }
    }
}

/// The relay on a free loopback port: plain RTMP, RTMPT, and (with a certificate) RTMPS and
/// RTMPTS on the same port.
pub struct Relay {
    pub port: u16,
    pub hub: Arc<Hub>,
    pub tunnel: TunnelServer,
}

pub fn start_relay(tls: Option<TlsAcceptor>, tunnel_config: TunnelServerConfig) -> Relay {
    crate::common::init_gst();
    let hub = Arc::new(Hub::default());
    let (tunnel, mut accepted) = TunnelServer::new(tunnel_config);
    let listener = runtime()
        .block_on(TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    {
        let hub = hub.clone();
        runtime().spawn(async move {
            while let Some(t) = accepted.recv().await {
                let hub = hub.clone();
                runtime().spawn(serve_rtmp(t.stream, hub, "tunnel"));
            }
        });
    }
    let (hub2, tunnel2) = (hub.clone(), tunnel.clone());
    runtime().spawn(async move {
        while let Ok((sock, peer)) = listener.accept().await {
            let (hub, tunnel, tls) = (hub2.clone(), tunnel2.clone(), tls.clone());
            runtime().spawn(async move {
                route(sock, peer, hub, tunnel, tls).await;
            });
        }
    });
    Relay { port, hub, tunnel }
}

/// What the real listener will do: the first byte says which transport this is.
pub async fn route(
    sock: tokio::net::TcpStream,
    peer: SocketAddr,
    hub: Arc<Hub>,
    tunnel: TunnelServer,
    tls: Option<TlsAcceptor>,
) {
    let _ = sock.set_nodelay(true);
    let mut first = [0u8; 1];
    match tokio::time::timeout(Duration::from_secs(10), sock.peek(&mut first)).await {
        Ok(Ok(1)) => {}
        _ => return,
    }
    match (first[0], tls) {
        (0x16, Some(acceptor)) => {
            let Ok(mut stream) = acceptor.accept(sock, peer).await else {
                return;
            };
            // A TLS stream cannot be peeked: read the byte and hand it back with the stream.
            let mut inner = [0u8; 1];
            if stream.read_exact(&mut inner).await.is_err() {
                return;
            }
            let prefix = Bytes::copy_from_slice(&inner);
            if inner[0].is_ascii_alphabetic() {
                tunnel
                    .serve_connection_with_prefix(prefix, stream, peer)
                    .await;
            } else {
                serve_rtmp(Rewind::new(prefix, stream), hub, "tls").await;
            }
        }
        (b, _) if b.is_ascii_alphabetic() => tunnel.serve_connection(sock, peer).await,
        _ => serve_rtmp(sock, hub, "tcp").await,
    }
}

/// Where a child's stderr goes: a file next to its output, read when something fails (a pipe
/// could fill up and stall a chatty child).
pub fn log_file(out: &Path) -> (Stdio, PathBuf) {
    let path = out.with_extension("log");
    (Stdio::from(std::fs::File::create(&path).unwrap()), path)
}

pub struct Player {
    pub guard: ChildGuard,
    pub out: PathBuf,
    pub log: PathBuf,
}

pub fn ffmpeg_player(url: &str, out: &Path) -> Player {
    let (stderr, log) = log_file(out);
    let guard = ChildGuard::spawn(
        &format!("ffmpeg player {url}"),
        Command::new("ffmpeg")
            .args(["-nostdin", "-loglevel", "error", "-i", url])
            .args(["-c", "copy", "-f", "flv"])
            .arg(out)
            .stdout(Stdio::null())
            .stderr(stderr),
    );
    Player {
        guard,
        out: out.to_path_buf(),
        log,
    }
}

pub fn rtmpdump_player(url: &str, out: &Path) -> Player {
    let (stderr, log) = log_file(out);
    let guard = ChildGuard::spawn(
        &format!("rtmpdump {url}"),
        Command::new("rtmpdump")
            .args(["-V", "-v", "-r", url, "-o"])
            .arg(out)
            .stdout(Stdio::null())
            .stderr(stderr),
    );
    Player {
        guard,
        out: out.to_path_buf(),
        log,
    }
}
