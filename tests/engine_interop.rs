//! The engine against real peers, before any element exists: a small blocking-TCP driver runs
//! the engine's sessions.
//!
//! - client: the engine's ClientSession publishes a real H.264+AAC FLV to nginx-rtmp while an
//!   ffmpeg player records what nginx relays; every frame must arrive.
//! - server: the engine's ServerSession (a tiny one-route relay) accepts an ffmpeg publisher
//!   and serves an rtmpdump player and an ffmpeg player; every frame must arrive at both.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use gstrsrtmp::rtmp::flv::{FlvItem, FlvParser, Tag};
use gstrsrtmp::rtmp::message::{Message, msg_type};
use gstrsrtmp::rtmp::session::{
    ClientConfig, ClientEvent, ClientRole, ClientSession, MediaKind, ServerConfig, ServerEvent,
    ServerSession, StopCommands,
};

fn now_ms(start: Instant) -> u64 {
    start.elapsed().as_millis() as u64
}

fn read_tags(path: &Path) -> Vec<Tag> {
    let mut parser = FlvParser::new();
    parser.push(&std::fs::read(path).unwrap());
    let mut tags = Vec::new();
    while let Some(item) = parser.next_item().expect("test media parses") {
        if let FlvItem::Tag(tag) = item {
            tags.push(tag);
        }
    }
    tags
}

/// Writes everything the session has queued.
fn flush_client(session: &mut ClientSession, sock: &mut TcpStream) {
    while let Some(bytes) = session.poll_transmit() {
        sock.write_all(&bytes).expect("write to nginx");
    }
}

/// Reads what is available (waiting at most the socket's read timeout) into the session.
fn pump_client(session: &mut ClientSession, sock: &mut TcpStream, start: Instant) -> bool {
    let mut buf = [0u8; 65536];
    match sock.read(&mut buf) {
        Ok(0) => {
            session.handle_peer_closed();
            false
        }
        Ok(n) => {
            session.handle_input(&buf[..n], now_ms(start));
            true
        }
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            session.handle_timeout(now_ms(start));
            true
        }
        Err(e) => panic!("read from nginx: {e}"),
    }
}

#[test]
fn engine_client_publishes_to_nginx_and_ffmpeg_receives_every_frame() {
    let media = test_media(3);
    let expected = ffprobe_counts(&media);
    assert!(
        expected.0 >= 80 && expected.1 >= 100,
        "test media too short: {expected:?}"
    );
    let tags = read_tags(&media);

    let nginx = Nginx::start();
    let dir = TempDir::new("engine-client");
    let out = dir.path().join("out.flv");
    let url = format!("rtmp://127.0.0.1:{}/live/s", nginx.port);

    let start = Instant::now();
    let mut sock = TcpStream::connect(("127.0.0.1", nginx.port)).unwrap();
    sock.set_nodelay(true).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(10)))
        .unwrap();
    let tc_url = format!("rtmp://127.0.0.1:{}/live", nginx.port);
    let config = ClientConfig::new("live", tc_url, ClientRole::Publish);
    let mut session = ClientSession::new(config, 0, &mut rand::rng());
    session.publish("s").unwrap();

    // Connect and wait for NetStream.Publish.Start.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut started = false;
    while !started {
        assert!(Instant::now() < deadline, "no Publish.Start from nginx");
        flush_client(&mut session, &mut sock);
        assert!(pump_client(&mut session, &mut sock, start), "nginx closed");
        while let Some(ev) = session.poll_event() {
            match ev {
                ClientEvent::PublishStarted { .. } => started = true,
                ClientEvent::Closed(reason) => panic!("session closed: {reason}"),
                _ => {}
            }
        }
    }

    // nginx (idle_streams off) only lets a player in once the stream is published, and ends
    // the player when the publisher leaves: start the player now, before any media.
    let mut player = ChildGuard::spawn(
        "ffmpeg player",
        Command::new("ffmpeg")
            .args([
                "-nostdin",
                "-loglevel",
                "error",
                "-i",
                &url,
                "-c",
                "copy",
                "-f",
                "flv",
            ])
            .arg(&out)
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !nginx.error_log().contains("play: name='s'") {
        assert!(
            Instant::now() < deadline,
            "the ffmpeg player never reached nginx"
        );
        flush_client(&mut session, &mut sock);
        assert!(pump_client(&mut session, &mut sock, start), "nginx closed");
        while let Some(ev) = session.poll_event() {
            if let ClientEvent::Closed(reason) = ev {
                panic!("session closed: {reason}");
            }
        }
    }

    // Send the file at 4x real time so nginx's per-player queue never overflows.
    let pace_start = Instant::now();
    for tag in &tags {
        let kind = match tag.tag_type {
            8 => MediaKind::Audio,
            9 => MediaKind::Video,
            18 => MediaKind::Data,
            other => panic!("unexpected tag type {other}"),
        };
        let due = Duration::from_millis(u64::from(tag.timestamp) / 4);
        if let Some(wait) = due.checked_sub(pace_start.elapsed()) {
            std::thread::sleep(wait);
        }
        session
            .send_media(kind, tag.timestamp, tag.data.clone())
            .unwrap();
        flush_client(&mut session, &mut sock);
        // Keep reading so acknowledgements and pings are answered.
        sock.set_nonblocking(true).unwrap();
        let _ = pump_client(&mut session, &mut sock, start);
        sock.set_nonblocking(false).unwrap();
    }
    session.stop(StopCommands::default()).unwrap();
    flush_client(&mut session, &mut sock);
    std::thread::sleep(Duration::from_millis(200));
    drop(sock);

    let Some(status) = player.try_wait_timeout(Duration::from_secs(60)) else {
        panic!(
            "ffmpeg player did not finish: {}\nnginx log:\n{}",
            player.stderr_text(),
            nginx.error_log()
        );
    };
    let stderr = player.stderr_text();
    assert!(status.success(), "ffmpeg player failed: {stderr}");
    let got = ffprobe_counts(&out);
    assert_eq!(got, expected, "frames (video, audio) received vs sent");
}

/// One route of a tiny relay server: what players need to start, and the players.
#[derive(Default)]
struct Route {
    publishing: bool,
    headers: Vec<Message>,
    players: Vec<mpsc::Sender<Option<Message>>>,
    players_ready: usize,
}

fn is_header(msg: &Message) -> bool {
    match msg.type_id {
        msg_type::DATA_AMF0 => true,
        msg_type::VIDEO => {
            msg.payload.len() >= 2 && msg.payload[0] & 0x0f == 7 && msg.payload[1] == 0
        }
        msg_type::AUDIO => {
            msg.payload.len() >= 2 && msg.payload[0] >> 4 == 10 && msg.payload[1] == 0
        }
        _ => false,
    }
}

/// Drives one accepted connection with the engine's ServerSession until it closes.
fn serve_connection(mut sock: TcpStream, route: Arc<Mutex<Route>>) {
    let start = Instant::now();
    sock.set_nodelay(true).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(5)))
        .unwrap();
    let mut session = ServerSession::new(ServerConfig::default(), 0, &mut rand::rng());
    let mut player: Option<(u32, mpsc::Receiver<Option<Message>>)> = None;
    let mut buf = vec![0u8; 65536];
    loop {
        match sock.read(&mut buf) {
            Ok(0) => session.handle_peer_closed(),
            Ok(n) => session.handle_input(&buf[..n], now_ms(start)),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                session.handle_timeout(now_ms(start))
            }
            Err(_) => session.handle_peer_closed(),
        }
        while let Some(ev) = session.poll_event() {
            match ev {
                ServerEvent::ConnectRequest { app, .. } => {
                    if app == "live" {
                        session.accept_connect().unwrap();
                    } else {
                        session
                            .reject_connect(&format!("unknown application {app:?}"))
                            .unwrap();
                    }
                }
                ServerEvent::PublishRequest {
                    stream_id, name, ..
                } => {
                    let mut r = route.lock().unwrap();
                    if name == "s" && !r.publishing {
                        r.publishing = true;
                        session.accept_publish(stream_id).unwrap();
                    } else {
                        session.reject_publish(stream_id, "route busy").unwrap();
                    }
                }
                ServerEvent::PlayRequest { stream_id, .. } => {
                    session.accept_play(stream_id).unwrap();
                    let (tx, rx) = mpsc::channel();
                    let mut r = route.lock().unwrap();
                    for h in &r.headers {
                        tx.send(Some(h.clone())).unwrap();
                    }
                    r.players.push(tx);
                    r.players_ready += 1;
                    player = Some((stream_id, rx));
                }
                ServerEvent::Media { message, .. } => {
                    let mut r = route.lock().unwrap();
                    if is_header(&message) {
                        r.headers.push(message.clone());
                    }
                    r.players.retain(|p| p.send(Some(message.clone())).is_ok());
                }
                ServerEvent::Unpublished { .. } => {
                    let mut r = route.lock().unwrap();
                    for p in r.players.drain(..) {
                        let _ = p.send(None);
                    }
                }
                ServerEvent::Closed(_) => {}
                _ => {}
            }
        }
        if let Some((stream_id, rx)) = &player {
            while let Ok(item) = rx.try_recv() {
                match item {
                    Some(msg) => session.send_media(*stream_id, &msg).unwrap(),
                    None => session.end_stream(*stream_id).unwrap(),
                }
            }
        }
        while let Some(bytes) = session.poll_transmit() {
            if sock.write_all(&bytes).is_err() {
                session.handle_peer_closed();
                break;
            }
        }
        if session.close_reason().is_some() {
            return;
        }
    }
}

#[test]
fn engine_server_accepts_ffmpeg_publisher_and_serves_rtmpdump_and_ffmpeg() {
    require("rtmpdump", "rtmpdump");
    let media = test_media(3);
    let expected = ffprobe_counts(&media);

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let route = Arc::new(Mutex::new(Route::default()));
    {
        let route = route.clone();
        std::thread::spawn(move || {
            for sock in listener.incoming().map_while(Result::ok) {
                let route = route.clone();
                std::thread::spawn(move || serve_connection(sock, route));
            }
        });
    }

    let dir = TempDir::new("engine-server");
    let url = format!("rtmp://127.0.0.1:{port}/live/s");
    let dump_out = dir.path().join("rtmpdump.flv");
    let ff_out = dir.path().join("ffmpeg.flv");
    let mut dump = ChildGuard::spawn(
        "rtmpdump",
        Command::new("rtmpdump")
            .args(["-q", "-v", "-r", &url, "-o"])
            .arg(&dump_out)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let mut ffplayer = ChildGuard::spawn(
        "ffmpeg player",
        Command::new("ffmpeg")
            .args([
                "-nostdin",
                "-loglevel",
                "error",
                "-i",
                &url,
                "-c",
                "copy",
                "-f",
                "flv",
            ])
            .arg(&ff_out)
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while route.lock().unwrap().players_ready < 2 {
        assert!(Instant::now() < deadline, "players never started playing");
        std::thread::sleep(Duration::from_millis(20));
    }

    let mut publisher = ChildGuard::spawn(
        "ffmpeg publisher",
        Command::new("ffmpeg")
            .args(["-nostdin", "-loglevel", "error", "-i"])
            .arg(&media)
            .args(["-c", "copy", "-f", "flv", &url])
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    let status = publisher.wait_timeout(Duration::from_secs(60));
    assert!(
        status.success(),
        "ffmpeg publisher failed: {}",
        publisher.stderr_text()
    );

    dump.wait_timeout(Duration::from_secs(60));
    let status = ffplayer.wait_timeout(Duration::from_secs(60));
    assert!(
        status.success(),
        "ffmpeg player failed: {}",
        ffplayer.stderr_text()
    );
    let results = [
        ("rtmpdump", ffprobe_counts(&dump_out)),
        ("ffmpeg", ffprobe_counts(&ff_out)),
    ];
    for (player, got) in results {
        assert_eq!(
            got, expected,
            "{player}: frames (video, audio) received vs published"
        );
    }
}
