//! The transports against real clients: a minimal RTMP relay (the engine's ServerSession on
//! tokio) sits behind one listening port that tells plain RTMP, TLS and HTTP (RTMPT) apart by
//! the first byte, as the real listener will. ffmpeg publishes over one transport; ffmpeg and
//! rtmpdump play over others; every frame must arrive (ffprobe counts against the input).
//!
//! The relay keeps every message of the publish and replays it to each new player, so a
//! player that joins late still gets every frame; players wait for the publisher otherwise.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use gstrsrtmp::net::runtime::runtime;
use gstrsrtmp::net::tls::{TlsAcceptor, TlsServerConfig};
use gstrsrtmp::net::tunnel::{Rewind, TunnelServer, TunnelServerConfig};
use gstrsrtmp::rtmp::message::Message;
use gstrsrtmp::rtmp::session::{ServerConfig, ServerEvent, ServerSession};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

enum Item {
    Media(Message),
    End,
}

/// The one route of the relay (`live/s`): the publish so far and the players.
#[derive(Default)]
struct Hub {
    state: Mutex<HubState>,
}

#[derive(Default)]
struct HubState {
    backlog: Vec<Message>,
    ended: bool,
    players: Vec<mpsc::UnboundedSender<Item>>,
    /// Players whose play was accepted, ever.
    players_started: usize,
    /// Transports the relay's connections came in on, for the assertions.
    transports: Vec<&'static str>,
}

impl Hub {
    fn lock(&self) -> std::sync::MutexGuard<'_, HubState> {
        self.state.lock().unwrap()
    }

    fn media(&self, message: Message) {
        let mut st = self.lock();
        st.players
            .retain(|p| p.send(Item::Media(message.clone())).is_ok());
        st.backlog.push(message);
    }

    fn end(&self) {
        let mut st = self.lock();
        st.ended = true;
        for p in st.players.drain(..) {
            let _ = p.send(Item::End);
        }
    }

    fn subscribe(&self) -> mpsc::UnboundedReceiver<Item> {
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
async fn serve_rtmp<S>(stream: S, hub: Arc<Hub>, transport: &'static str)
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
                Ok(n) => session.handle_input(&buf[..n], now()),
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
struct Relay {
    port: u16,
    hub: Arc<Hub>,
    tunnel: TunnelServer,
}

fn start_relay(tls: Option<TlsAcceptor>, tunnel_config: TunnelServerConfig) -> Relay {
    let _ = gst::init();
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
async fn route(
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
fn log_file(out: &Path) -> (Stdio, PathBuf) {
    let path = out.with_extension("log");
    (Stdio::from(std::fs::File::create(&path).unwrap()), path)
}

struct Player {
    guard: ChildGuard,
    out: PathBuf,
    log: PathBuf,
}

fn ffmpeg_player(url: &str, out: &Path) -> Player {
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

fn rtmpdump_player(url: &str, out: &Path) -> Player {
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

fn ffmpeg_publish(url: &str, media: &Path, log: &Path) -> ChildGuard {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-loglevel", "error", "-i"])
        .arg(media);
    if url.starts_with("rtmpt") {
        // FFmpeg's RTMPT layer holds writes until it next reads (every `rtmp_flush_interval`
        // packets) and throws away what it still holds when it closes, so the last packets
        // of a publish never leave it. Flushing after every packet sends them all.
        cmd.args(["-rtmp_flush_interval", "1"]);
    }
    cmd.args(["-c", "copy", "-f", "flv", url])
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(log).unwrap()));
    ChildGuard::spawn(&format!("ffmpeg publisher {url}"), &mut cmd)
}

/// Starts the players, waits until the relay accepted all their plays, publishes, and checks
/// every player got every frame.
fn publish_and_play(relay: &Relay, publish_url: &str, players: Vec<Player>, media: &Path) {
    let expected = ffprobe_counts(media);
    assert!(expected.0 > 0 && expected.1 > 0, "test media {expected:?}");
    let logs = |players: &[Player]| -> String {
        players
            .iter()
            .map(|p| {
                let text = std::fs::read_to_string(&p.log).unwrap_or_default();
                format!("\n--- {}:\n{text}", p.guard.name)
            })
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while relay.hub.lock().players_started < players.len() {
        if Instant::now() > deadline {
            let started = relay.hub.lock().players_started;
            panic!("only {started} players started playing:{}", logs(&players));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let publish_log = players[0].out.with_file_name("publisher.log");
    let mut publisher = ffmpeg_publish(publish_url, media, &publish_log);
    let status = publisher.wait_timeout(Duration::from_secs(60));
    assert!(
        status.success(),
        "publisher on {publish_url} failed: {}",
        std::fs::read_to_string(&publish_log).unwrap_or_default()
    );
    let mut players = players;
    for p in &mut players {
        p.guard.wait_timeout(Duration::from_secs(60));
    }
    for p in &players {
        let got = ffprobe_counts(&p.out);
        assert_eq!(
            got,
            expected,
            "{}: frames (video, audio) received vs published{}",
            p.guard.name,
            logs(std::slice::from_ref(p))
        );
    }
}

#[test]
fn ffmpeg_publishes_over_rtmpt_and_ffmpeg_and_rtmpdump_play_over_rtmpt() {
    require("rtmpdump", "rtmpdump");
    let media = test_media(3);
    let relay = start_relay(
        None,
        TunnelServerConfig {
            session_timeout: Duration::from_secs(3),
            ..TunnelServerConfig::default()
        },
    );
    let dir = TempDir::new("interop-rtmpt");
    let url = format!("rtmpt://127.0.0.1:{}/live/s", relay.port);
    let ff_out = dir.path().join("ffmpeg.flv");
    let dump_out = dir.path().join("rtmpdump.flv");
    let players = vec![
        ffmpeg_player(&url, &ff_out),
        rtmpdump_player(&url, &dump_out),
    ];
    publish_and_play(&relay, &url, players, &media);
    let transports = relay.hub.lock().transports.clone();
    assert_eq!(
        transports, ["tunnel"; 3],
        "every client came through the tunnel"
    );
    // No session outlives its client: closed with `/close`, or expired when a client left
    // without one (librtmp may reset the connection before its `/close` is read).
    let deadline = Instant::now() + Duration::from_secs(15);
    while relay.tunnel.session_count() > 0 {
        assert!(Instant::now() < deadline, "tunnel sessions left open");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn rtmpdump_plays_over_rtmpte_what_ffmpeg_publishes_over_rtmp() {
    require("rtmpdump", "rtmpdump");
    let media = test_media(3);
    let relay = start_relay(None, TunnelServerConfig::default());
    let dir = TempDir::new("interop-rtmpte");
    let dump_out = dir.path().join("rtmpdump.flv");
    let players = vec![rtmpdump_player(
        &format!("rtmpte://127.0.0.1:{}/live/s", relay.port),
        &dump_out,
    )];
    publish_and_play(
        &relay,
        &format!("rtmp://127.0.0.1:{}/live/s", relay.port),
        players,
        &media,
    );
    let mut transports = relay.hub.lock().transports.clone();
    transports.sort();
    assert_eq!(transports, ["tcp", "tunnel"]);
}

#[test]
fn over_tls_ffmpeg_publishes_rtmps_and_players_use_rtmps_and_rtmpts() {
    require("rtmpdump", "rtmpdump");
    let media = test_media(3);
    let dir = TempDir::new("interop-tls");
    let (cert, key) = self_signed_cert(dir.path(), "relay");
    let acceptor = TlsServerConfig {
        certificate_file: cert,
        key_file: key,
    }
    .acceptor()
    .unwrap();
    let relay = start_relay(Some(acceptor), TunnelServerConfig::default());
    let port = relay.port;
    let url = |scheme: &str| format!("{scheme}://127.0.0.1:{port}/live/s");
    let players = vec![
        ffmpeg_player(&url("rtmpts"), &dir.path().join("ff-rtmpts.flv")),
        rtmpdump_player(&url("rtmpts"), &dir.path().join("dump-rtmpts.flv")),
        ffmpeg_player(&url("rtmps"), &dir.path().join("ff-rtmps.flv")),
        rtmpdump_player(&url("rtmps"), &dir.path().join("dump-rtmps.flv")),
    ];
    publish_and_play(
        &relay,
        &format!("rtmps://127.0.0.1:{port}/live/s"),
        players,
        &media,
    );
    let mut transports = relay.hub.lock().transports.clone();
    transports.sort();
    assert_eq!(transports, ["tls", "tls", "tls", "tunnel", "tunnel"]);
}
