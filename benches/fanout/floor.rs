//! The fan-out floor: the least work a server can do that still sends every message to every
//! player in its own send, as nginx-rtmp and our relay do by default. It runs in a child
//! process (this bench binary with `--serve-floor PORT`) and is measured like the real servers
//! (`--server floor`), so its CPU, memory and latency show how far a server's figures are from
//! what the kernel alone costs on this machine.
//!
//! What it does, and nothing more:
//! - each connection gets a thread that runs an engine [`ServerSession`] over a blocking socket
//!   through the handshake, `connect` and `publish` or `play` (any app and stream name);
//! - a player, once its play is accepted, is handed to the fan-out list and its thread ends: no
//!   reads from it after that (its acknowledgements wait in the socket), no per-player queue,
//!   timer or buffer;
//! - the publisher's thread reads its socket; each media message is chunked once (type-0
//!   header, type-3 continuations, so no per-player chunk state is needed) and written to every
//!   player with one blocking `write` each, in join order. No GOP cache, no late-player logic,
//!   no GStreamer, no async runtime, no thread switch between the publisher's read and the
//!   players' sends.
//!
//! A player whose write fails is dropped. Nothing here is meant to be a server: it is the
//! measuring stick.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::BytesMut;
use rsrtmp_engine::chunk::encode_message_full;
use rsrtmp_engine::message::{Message, msg_type};
use rsrtmp_engine::session::{ServerConfig, ServerEvent, ServerSession};

/// Players that started, as `(message stream id, socket)`, in join order.
type Players = Arc<Mutex<Vec<(u32, TcpStream)>>>;

/// Accepts connections on 127.0.0.1:`port` until the process is killed.
pub fn serve(port: u16) -> Result<(), String> {
    let listener = TcpListener::bind(("127.0.0.1", port))
        .map_err(|e| format!("floor: bind 127.0.0.1:{port}: {e}"))?;
    let players: Players = Arc::default();
    let start = Instant::now();
    for conn in listener.incoming() {
        let stream = match conn {
            Ok(s) => s,
            Err(e) => {
                eprintln!("floor: accept: {e}");
                continue;
            }
        };
        let players = players.clone();
        // Small stacks and buffers: the setup threads' memory is not what the floor measures.
        let spawned = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || {
                if let Err(e) = connection(stream, &players, start) {
                    eprintln!("floor: {e}");
                }
            });
        if let Err(e) = spawned {
            eprintln!("floor: spawn a connection thread: {e}");
        }
    }
    Ok(())
}

/// What a connection turned out to be.
enum Role {
    Undecided,
    Publisher,
    /// Played on this message stream id: the thread hands the socket over and ends.
    Player(u32),
}

fn connection(mut stream: TcpStream, players: &Players, start: Instant) -> Result<(), String> {
    stream
        .set_nodelay(true)
        .map_err(|e| format!("set_nodelay: {e}"))?;
    let now = || start.elapsed().as_millis() as u64;
    let mut session = ServerSession::new(ServerConfig::default(), now(), &mut rand::rng());
    let mut role = Role::Undecided;
    let mut buf = vec![0u8; 16 * 1024];
    let mut chunks = BytesMut::new();
    loop {
        let n = stream.read(&mut buf).map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Ok(());
        }
        session.handle_input(&buf[..n], now());
        while let Some(ev) = session.poll_event() {
            match ev {
                ServerEvent::ConnectRequest { .. } => session
                    .accept_connect()
                    .map_err(|e| format!("accept_connect: {e}"))?,
                ServerEvent::PublishRequest { stream_id, .. } => {
                    session
                        .accept_publish(stream_id)
                        .map_err(|e| format!("accept_publish: {e}"))?;
                    role = Role::Publisher;
                }
                ServerEvent::PlayRequest { stream_id, .. } => {
                    session
                        .accept_play(stream_id)
                        .map_err(|e| format!("accept_play: {e}"))?;
                    role = Role::Player(stream_id);
                }
                ServerEvent::Media { message, .. } => {
                    fan_out(&message, session.chunk_size(), players, &mut chunks)
                }
                ServerEvent::Closed(reason) => return Err(format!("session closed: {reason}")),
                _ => {}
            }
        }
        while let Some(out) = session.poll_transmit() {
            stream.write_all(&out).map_err(|e| format!("write: {e}"))?;
        }
        if let Role::Player(stream_id) = role {
            players
                .lock()
                .expect("players lock")
                .push((stream_id, stream));
            return Ok(());
        }
    }
}

/// Chunks `message` once per message stream id in use (one, with the bench's players) and
/// writes it to every player.
fn fan_out(message: &Message, chunk_size: u32, players: &Players, chunks: &mut BytesMut) {
    let csid = match message.type_id {
        msg_type::AUDIO => 20,
        msg_type::VIDEO => 21,
        _ => 22,
    };
    let mut encoded_for = None;
    let mut players = players.lock().expect("players lock");
    players.retain_mut(|(stream_id, socket)| {
        if encoded_for != Some(*stream_id) {
            chunks.clear();
            let m = Message {
                stream_id: *stream_id,
                ..message.clone()
            };
            encode_message_full(csid, &m, chunk_size, chunks);
            encoded_for = Some(*stream_id);
        }
        socket.write_all(chunks).is_ok()
    });
}
