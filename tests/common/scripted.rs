//! A scripted RTMP server built from the engine: one connection at a time on a free port,
//! connects decided by a script, plays answered with a script of media or failures.

use super::*;

pub use gstrsrtmp::rtmp::session::{ServerConfig, ServerEvent, ServerSession};

/// What a scripted server decides about a connect: accept, or reject with a description.
pub type ConnectScript = Box<dyn FnMut(&str, Option<&str>) -> Result<(), String> + Send>;

/// What a scripted server recorded.
#[derive(Debug, Default, Clone)]
pub struct ServerLog {
    /// (app, query) of every connect, in order.
    pub connects: Vec<(String, Option<String>)>,
    /// Per connect: whether it carried Enhanced RTMP fields (fourCcList, maps, capsEx).
    pub enhanced: Vec<bool>,
    /// Media messages received from publishers.
    pub media: Vec<gstrsrtmp::rtmp::message::Message>,
    pub unpublished: bool,
}

/// How a scripted server answers play requests.
#[derive(Clone)]
pub enum PlayScript {
    /// `NetStream.Play.StreamNotFound` with this description.
    NotFound(String),
    /// Accept, send these messages, then end as told.
    Serve(Vec<gstrsrtmp::rtmp::message::Message>, ServeEnd),
}

/// How a scripted server ends a played stream.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ServeEnd {
    /// StreamEOF, connection kept until the client closes it.
    StreamEof,
    /// Close the connection without a word.
    Close,
    /// Keep the connection and send nothing more.
    Silent,
}

/// An RTMP server on a free loopback port, one connection at a time, run by the engine's
/// `ServerSession` on a plain thread, answering as its scripts say.
pub struct ScriptedServer {
    pub port: u16,
    pub log: std::sync::Arc<Mutex<ServerLog>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ScriptedServer {
    /// A server that accepts every publish.
    pub fn start(connect: ConnectScript, play: PlayScript) -> ScriptedServer {
        Self::start_with(connect, play, None)
    }

    /// A server that predates Enhanced RTMP and chokes on its connect fields: a connect that
    /// carries them is rejected (`drop` false) or answered by closing the connection (`drop`
    /// true); other connects are accepted.
    pub fn start_legacy_only(play: PlayScript, drop: bool) -> ScriptedServer {
        Self::start_full(Box::new(|_, _| Ok(())), play, None, Some(drop))
    }

    /// `reject_publish`: answer publish requests with `NetStream.Publish.BadName` and this
    /// description.
    pub fn start_with(
        connect: ConnectScript,
        play: PlayScript,
        reject_publish: Option<String>,
    ) -> ScriptedServer {
        Self::start_full(connect, play, reject_publish, None)
    }

    fn start_full(
        mut connect: ConnectScript,
        play: PlayScript,
        reject_publish: Option<String>,
        refuse_enhanced: Option<bool>,
    ) -> ScriptedServer {
        use std::sync::atomic::Ordering;
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let log = std::sync::Arc::new(Mutex::new(ServerLog::default()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (log2, stop2) = (log.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        serve_one(
                            stream,
                            &mut connect,
                            &play,
                            reject_publish.as_deref(),
                            refuse_enhanced,
                            &log2,
                            &stop2,
                        );
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        ScriptedServer {
            port,
            log,
            stop,
            thread: Some(thread),
        }
    }

    pub fn log(&self) -> ServerLog {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_one(
    mut stream: TcpStream,
    connect: &mut ConnectScript,
    play: &PlayScript,
    reject_publish: Option<&str>,
    refuse_enhanced: Option<bool>,
    log: &Mutex<ServerLog>,
    stop: &std::sync::atomic::AtomicBool,
) {
    use std::io::Write;
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let epoch = Instant::now();
    let now = || epoch.elapsed().as_millis() as u64;
    let mut session = ServerSession::new(ServerConfig::default(), 0, &mut rand::rng());
    let mut buf = vec![0u8; 65536];
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        while let Some(bytes) = session.poll_transmit() {
            if stream.write_all(&bytes).is_err() {
                return;
            }
        }
        let mut closed = false;
        while let Some(event) = session.poll_event() {
            match event {
                ServerEvent::ConnectRequest { app, query, .. } => {
                    let enhanced = session.client_caps().is_some();
                    {
                        let mut log = log.lock().unwrap();
                        log.connects.push((app.clone(), query.clone()));
                        log.enhanced.push(enhanced);
                    }
                    match refuse_enhanced {
                        Some(true) if enhanced => return,
                        Some(false) if enhanced => {
                            session
                                .reject_connect("unknown connect properties")
                                .unwrap();
                            continue;
                        }
                        _ => {}
                    }
                    match connect(&app, query.as_deref()) {
                        Ok(()) => session.accept_connect().unwrap(),
                        Err(description) => session.reject_connect(&description).unwrap(),
                    }
                }
                ServerEvent::PublishRequest { stream_id, .. } => match reject_publish {
                    Some(description) => session.reject_publish(stream_id, description).unwrap(),
                    None => session.accept_publish(stream_id).unwrap(),
                },
                ServerEvent::PlayRequest { stream_id, .. } => match play {
                    PlayScript::NotFound(description) => {
                        session.reject_play(stream_id, description).unwrap()
                    }
                    PlayScript::Serve(messages, end) => {
                        session.accept_play(stream_id).unwrap();
                        for m in messages {
                            session.send_media(stream_id, m).unwrap();
                        }
                        match end {
                            ServeEnd::StreamEof => session.end_stream(stream_id).unwrap(),
                            ServeEnd::Close => {
                                while let Some(bytes) = session.poll_transmit() {
                                    let _ = stream.write_all(&bytes);
                                }
                                // Read what the client sent, so closing is a FIN, not a reset.
                                let _ = stream.read(&mut buf);
                                return;
                            }
                            ServeEnd::Silent => {}
                        }
                    }
                },
                ServerEvent::Media { message, .. } => log.lock().unwrap().media.push(message),
                ServerEvent::Unpublished { .. } => log.lock().unwrap().unpublished = true,
                ServerEvent::Closed(_) => closed = true,
                _ => {}
            }
        }
        if closed {
            while let Some(bytes) = session.poll_transmit() {
                let _ = stream.write_all(&bytes);
            }
            return;
        }
        if stop.load(std::sync::atomic::Ordering::SeqCst) || Instant::now() > deadline {
            return;
        }
        match stream.read(&mut buf) {
            Ok(0) => session.handle_peer_closed(),
            Ok(n) => session.handle_input(&buf[..n], now()),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                session.handle_timeout(now())
            }
            Err(_) => session.handle_peer_closed(),
        }
    }
}
