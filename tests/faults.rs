//! Fault injection against the server elements, each outcome checked frame by frame.
//!
//! - A publisher dies mid-GOP (socket closed, no unpublish) in front of a relay
//!   (`rtmpserversrc ! rtmpserversink`): by default the relay keeps its players, marks a
//!   discontinuity and goes on with the next publisher; with `eos-on-unpublish=true` it ends
//!   the stream and the players are told so. Nothing the dead publisher sent is lost, and
//!   every frame of the next publisher arrives.
//! - A player stops reading next to players that read: the readers get every frame; the stalled
//!   one skips to keyframes only, its skips are counted in the sink's stats, and when it reads
//!   again it resumes at a keyframe and gets the rest.
//! - Our server (an `rtmpserversrc` pipeline on a fixed port) is set to NULL and back to
//!   PLAYING under a reconnecting `rtmpclientsink`: the sink reconnects by itself, drops
//!   nothing within `max-hold-time`, and the new server's output starts at a keyframe.
//! - A relay is set to NULL with a publisher and players (ffmpeg, rtmpdump, engine clients)
//!   connected: the state change returns, every client sees its connection closed, and the
//!   relay serves again on the same port when set back to PLAYING.
//! - rtmpserversink reaches EOS, then the route is published again: new players get the new
//!   stream only (its frame counts, its metadata), nothing cached from the old one.
//!
//! Synthetic media carries a per-kind sequence number in every payload (video
//! `[0x17|0x27, 1, cts×3, seq u32 BE, filler]`, audio `[0xAF, 1, seq u32 BE, filler]`), so the
//! engine-client players can tell exactly which frames arrived, in what order, and which one
//! followed a gap. Real media (ffmpeg's test file) is used where a real peer plays it.

mod common;

use std::net::{Shutdown, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use common::server_peers::*;
use common::{ChildGuard, TempDir, ffprobe_counts, free_port, require, test_media};
use gst::prelude::*;
use gstrsrtmp::rtmp::flv::{FlvHeader, Tag, write_header, write_tag};
use gstrsrtmp::rtmp::message::msg_type;
use gstrsrtmp::rtmp::session::{ClientEvent, ClientRole, MediaKind};

const DEADLINE: Duration = Duration::from_secs(60);
/// Frames per group of pictures in the synthetic media.
const GOP: u32 = 10;

// ---------------------------------------------------------------------------------------------
// Synthetic media

fn video_sequence_header() -> Bytes {
    Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 0])
}

fn audio_sequence_header() -> Bytes {
    // AAC LC, 48 kHz, stereo.
    Bytes::from_static(&[0xAF, 0, 0x11, 0x90])
}

fn video_frame(key: bool, seq: u32, len: usize) -> Bytes {
    let mut b = BytesMut::with_capacity(len.max(9));
    b.put_u8(if key { 0x17 } else { 0x27 });
    b.put_slice(&[1, 0, 0, 0]);
    b.put_u32(seq);
    b.resize(len.max(9), 0x5a);
    b.freeze()
}

fn audio_frame(seq: u32) -> Bytes {
    let mut b = BytesMut::with_capacity(64);
    b.put_slice(&[0xAF, 1]);
    b.put_u32(seq);
    b.resize(64, 0xa5);
    b.freeze()
}

/// One media message as a player saw it.
#[derive(Debug, Clone, Copy)]
struct Got {
    video: bool,
    ts: u32,
    key: bool,
    /// The synthetic sequence number; None for sequence headers and for real media.
    seq: Option<u32>,
}

fn classify(type_id: u8, ts: u32, p: &[u8]) -> Option<Got> {
    match type_id {
        msg_type::VIDEO if p.len() >= 2 => Some(Got {
            video: true,
            ts,
            key: p[0] >> 4 == 1,
            seq: (p[1] == 1 && p.len() >= 9).then(|| u32::from_be_bytes([p[5], p[6], p[7], p[8]])),
        }),
        msg_type::AUDIO if p.len() >= 2 => Some(Got {
            video: false,
            ts,
            key: false,
            seq: (p[1] == 1 && p.len() >= 6).then(|| u32::from_be_bytes([p[2], p[3], p[4], p[5]])),
        }),
        _ => None,
    }
}

/// The synthetic stream as FLV for an appsrc: the first piece is the file header and the
/// sequence headers, then one piece per frame (a video tag and an audio tag).
fn synthetic_flv(frames: u32, video_len: usize) -> Vec<Vec<u8>> {
    let tag = |out: &mut BytesMut, tag_type: u8, timestamp: u32, data: Bytes| {
        let t = Tag {
            tag_type,
            timestamp,
            stream_id: 0,
            data,
        };
        write_tag(&t, out).expect("valid tag");
    };
    let mut head = BytesMut::new();
    write_header(&FlvHeader::new(true, true), &mut head);
    tag(&mut head, 9, 0, video_sequence_header());
    tag(&mut head, 8, 0, audio_sequence_header());
    let mut pieces = vec![head.to_vec()];
    for i in 0..frames {
        let mut b = BytesMut::new();
        let ts = i * 33;
        tag(
            &mut b,
            9,
            ts,
            video_frame(i.is_multiple_of(GOP), i, video_len),
        );
        tag(&mut b, 8, ts, audio_frame(i));
        pieces.push(b.to_vec());
    }
    pieces
}

// ---------------------------------------------------------------------------------------------
// Engine-client players and publishers

#[derive(Debug, Default)]
struct Log {
    started: bool,
    media: Vec<Got>,
    /// onMetaData payloads.
    data: Vec<Bytes>,
    /// StreamEOF, Play.Stop or Play.UnpublishNotify arrived.
    told_ended: bool,
    statuses: Vec<String>,
    closed: bool,
}

impl Log {
    fn seqs(&self, video: bool) -> Vec<u32> {
        self.media
            .iter()
            .filter(|g| g.video == video)
            .filter_map(|g| g.seq)
            .collect()
    }

    fn frames(&self, video: bool) -> usize {
        self.media
            .iter()
            .filter(|g| g.video == video && g.seq.is_some())
            .count()
    }

    fn record(&mut self, e: &ClientEvent) {
        match e {
            ClientEvent::PlayStarted { .. } => self.started = true,
            ClientEvent::Media(m) if m.type_id == msg_type::DATA_AMF0 => {
                self.data.push(m.payload.clone())
            }
            ClientEvent::Media(m) => {
                if let Some(g) = classify(m.type_id, m.timestamp, &m.payload) {
                    self.media.push(g);
                }
            }
            ClientEvent::StreamEof(_) => self.told_ended = true,
            ClientEvent::Status { status, .. } => {
                if status.code.contains("Play.Stop") || status.code.contains("UnpublishNotify") {
                    self.told_ended = true;
                }
                self.statuses.push(status.code.clone());
            }
            ClientEvent::Closed(_) => self.closed = true,
            _ => {}
        }
    }
}

/// An engine client playing on its own thread, recording what arrives into a shared [`Log`].
struct Player {
    name: String,
    addr: String,
    log: Arc<Mutex<Log>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Player {
    /// Connects, plays `stream` and waits for Play.Start.
    fn start(name: &str, port: u16, stream: &str) -> Player {
        let c = play_client(
            TcpStream::connect(("127.0.0.1", port)).expect("connect"),
            port,
            stream,
        );
        Player::keep_reading(name, c)
    }

    /// Reads on with a client that has already started playing.
    fn keep_reading(name: &str, mut c: RawClient) -> Player {
        let addr = c.sock.local_addr().unwrap().to_string();
        let log = Arc::new(Mutex::new(Log {
            started: true,
            ..Log::default()
        }));
        // What arrived along with Play.Start is recorded too.
        for e in &c.events {
            if !matches!(e, ClientEvent::PlayStarted { .. }) {
                log.lock().unwrap().record(e);
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let (l, s) = (log.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                let closed = c
                    .run_until(Duration::from_millis(200), |e| {
                        l.lock().unwrap().record(e);
                        matches!(e, ClientEvent::Closed(_))
                    })
                    .is_some();
                c.events.clear();
                if closed || l.lock().unwrap().closed {
                    return;
                }
            }
        });
        Player {
            name: name.to_string(),
            addr,
            log,
            stop,
            thread: Some(thread),
        }
    }

    fn log(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().unwrap()
    }

    fn wait_frames(&self, video: usize, audio: usize) {
        wait_until(
            &format!(
                "{} to get {video} video and {audio} audio frames",
                self.name
            ),
            DEADLINE,
            || {
                let l = self.log();
                assert!(
                    !l.closed,
                    "{}: connection closed after {} video / {} audio frames",
                    self.name,
                    l.frames(true),
                    l.frames(false)
                );
                l.frames(true) >= video && l.frames(false) >= audio
            },
        );
    }

    fn wait_closed(&self) {
        wait_until(
            &format!("{} to see its connection closed", self.name),
            DEADLINE,
            || self.log().closed,
        );
    }
}

impl Drop for Player {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn play_client(sock: TcpStream, port: u16, stream: &str) -> RawClient {
    let mut c = RawClient::over(sock, port, "live", ClientRole::Play);
    c.session.play(stream, -2000.0).unwrap();
    let ev = c.run_until(DEADLINE, |e| {
        matches!(
            e,
            ClientEvent::PlayStarted { .. } | ClientEvent::StreamRejected(_)
        )
    });
    assert!(
        matches!(ev, Some(ClientEvent::PlayStarted { .. })),
        "play {stream} on port {port}: {ev:?}"
    );
    c
}

/// An engine client publishing synthetic frames; frame `i` of this publisher carries sequence
/// number `base + i` and is a keyframe when `i` is a multiple of [`GOP`]. Its timestamps start
/// at 0, as a freshly started encoder's do.
struct Publisher {
    c: RawClient,
    base: u32,
    sent: u32,
}

impl Publisher {
    fn start(port: u16, stream: &str, base: u32) -> Publisher {
        let mut c = RawClient::connect(port, "live", ClientRole::Publish);
        c.session.publish(stream).unwrap();
        let ev = c.run_until(DEADLINE, |e| {
            matches!(
                e,
                ClientEvent::PublishStarted { .. } | ClientEvent::StreamRejected(_)
            )
        });
        assert!(
            matches!(ev, Some(ClientEvent::PublishStarted { .. })),
            "publish {stream} on port {port}: {ev:?}"
        );
        for (kind, payload) in [
            (MediaKind::Video, video_sequence_header()),
            (MediaKind::Audio, audio_sequence_header()),
        ] {
            c.session.send_media(kind, 0, payload).unwrap();
        }
        c.flush();
        Publisher { c, base, sent: 0 }
    }

    fn frames(&mut self, n: u32) {
        for _ in 0..n {
            let i = self.sent;
            let ts = i * 33;
            let seq = self.base + i;
            self.c
                .session
                .send_media(
                    MediaKind::Video,
                    ts,
                    video_frame(i.is_multiple_of(GOP), seq, 1500),
                )
                .unwrap();
            self.c
                .session
                .send_media(MediaKind::Audio, ts, audio_frame(seq))
                .unwrap();
            self.c.flush();
            self.sent += 1;
        }
    }

    /// Dies without a word: the socket is closed with no FCUnpublish/deleteStream.
    fn kill(self) {
        let _ = self.c.sock.shutdown(Shutdown::Both);
    }
}

fn relay(port: u16, extra: &str) -> Pipeline {
    Pipeline::parse(&format!(
        "rtmpserversrc name=src address=127.0.0.1 port={port} stream=in {extra} ! \
         rtmpserversink name=sink address=127.0.0.1 port={port} stream=out"
    ))
}

/// Counts buffers with the DISCONT flag leaving `element`'s src pad.
fn count_disconts(element: &gst::Element) -> Arc<AtomicUsize> {
    let n = Arc::new(AtomicUsize::new(0));
    let c = n.clone();
    element
        .static_pad("src")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(gst::PadProbeData::Buffer(b)) = &info.data
                && b.flags().contains(gst::BufferFlags::DISCONT)
            {
                c.fetch_add(1, Ordering::SeqCst);
            }
            gst::PadProbeReturn::Ok
        });
    n
}

fn range(from: u32, n: u32) -> Vec<u32> {
    (from..from + n).collect()
}

/// (address, bytes, drops) per client of a server element.
fn client_stats(element: &gst::Element) -> Vec<(String, u64, u64)> {
    let stats: gst::Structure = element.property("stats");
    stats
        .get::<gst::Array>("client-stats")
        .unwrap()
        .iter()
        .map(|v| {
            let s = v.get::<gst::Structure>().unwrap();
            (
                s.get::<String>("address").unwrap(),
                s.get::<u64>("bytes").unwrap(),
                s.get::<u64>("drops").unwrap(),
            )
        })
        .collect()
}

fn clients(element: &gst::Element) -> u32 {
    element
        .property::<gst::Structure>("stats")
        .get::<u32>("clients")
        .unwrap()
}

fn timestamps_never_go_back(who: &str, media: &[Got]) {
    for video in [true, false] {
        let ts: Vec<u32> = media
            .iter()
            .filter(|g| g.video == video && g.seq.is_some())
            .map(|g| g.ts)
            .collect();
        if let Some(w) = ts.windows(2).find(|w| w[1] < w[0]) {
            panic!(
                "{who}: {} timestamp went back {} -> {}",
                if video { "video" } else { "audio" },
                w[0],
                w[1]
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Publisher drops mid-GOP

#[test]
fn publisher_dying_mid_gop_keeps_relay_players_for_the_next_publisher() {
    let port = free_port();
    let p = relay(port, "");
    let src = p.by_name("src");
    let disconts = count_disconts(&src);
    p.play();
    let players = [
        Player::start("player 1", port, "out"),
        Player::start("player 2", port, "out"),
    ];

    // First publisher: 25 frames, i.e. it dies in the middle of its third GOP.
    let mut a = Publisher::start(port, "in", 0);
    a.frames(25);
    a.kill();
    for pl in &players {
        pl.wait_frames(25, 25);
    }
    wait_until("the source to see the publisher gone", DEADLINE, || {
        clients(&src) == 0
    });
    let disconts_before = disconts.load(Ordering::SeqCst);

    // Second publisher on the same stream key, timestamps from 0 again.
    let mut b = Publisher::start(port, "in", 1000);
    b.frames(30);
    for pl in &players {
        pl.wait_frames(55, 55);
    }
    // A player joining now starts at B's latest keyframe, with nothing of A.
    let late = Player::start("late player", port, "out");
    b.frames(10);
    for pl in &players {
        pl.wait_frames(65, 65);
    }
    late.wait_frames(10, 10);
    b.kill();

    for pl in &players {
        let l = pl.log();
        let mut want = range(0, 25);
        want.extend(range(1000, 40));
        assert_eq!(l.seqs(true), want, "{}: video sequence numbers", pl.name);
        assert_eq!(l.seqs(false), want, "{}: audio sequence numbers", pl.name);
        assert!(
            !l.told_ended && !l.closed,
            "{}: the relay should keep its players between publishers: {:?}",
            pl.name,
            l.statuses
        );
        timestamps_never_go_back(&pl.name, &l.media);
    }
    let l = late.log();
    let video = l.seqs(true);
    assert_eq!(
        video,
        range(1020, 20),
        "late player: video from B's last keyframe on"
    );
    let first = l.media.iter().find(|g| g.video && g.seq.is_some()).unwrap();
    assert!(first.key, "late player starts with a keyframe: {first:?}");
    assert!(
        l.seqs(false).iter().all(|s| *s >= 1000),
        "late player got audio of the dead publisher: {:?}",
        l.seqs(false)
    );
    assert!(
        disconts.load(Ordering::SeqCst) > disconts_before,
        "the source marked no discontinuity for the second publisher"
    );
    assert!(p.error_within(Duration::ZERO).is_none());
}

#[test]
fn publisher_dying_mid_gop_ends_the_relay_stream_with_eos_on_unpublish() {
    let port = free_port();
    let p = relay(port, "eos-on-unpublish=true");
    p.play();
    let players = [
        Player::start("player 1", port, "out"),
        Player::start("player 2", port, "out"),
    ];
    let mut a = Publisher::start(port, "in", 0);
    a.frames(25);
    a.kill();
    p.wait_eos(DEADLINE);
    for pl in &players {
        pl.wait_closed();
        let l = pl.log();
        assert_eq!(
            l.seqs(true),
            range(0, 25),
            "{}: video before the end",
            pl.name
        );
        assert_eq!(
            l.seqs(false),
            range(0, 25),
            "{}: audio before the end",
            pl.name
        );
        assert!(
            l.told_ended,
            "{}: closed without being told the stream ended: {:?}",
            pl.name, l.statuses
        );
    }

    // The policy ends the stream, so the next publish needs the pipeline started again.
    p.0.set_state(gst::State::Null).unwrap();
    p.play();
    let player = Player::start("new player", port, "out");
    let mut b = Publisher::start(port, "in", 1000);
    b.frames(30);
    b.kill();
    p.wait_eos(DEADLINE);
    player.wait_closed();
    let l = player.log();
    assert_eq!(l.seqs(true), range(1000, 30), "new player: video");
    assert_eq!(l.seqs(false), range(1000, 30), "new player: audio");
    assert!(l.told_ended, "new player: {:?}", l.statuses);
}

// ---------------------------------------------------------------------------------------------
// Network stall

/// A socket with a tiny receive buffer, so that a player that stops reading stalls early.
fn small_window_socket(port: u16) -> TcpStream {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.set_recv_buffer_size(4096).unwrap();
    s.connect(&std::net::SocketAddr::from(([127, 0, 0, 1], port)).into())
        .unwrap();
    s.into()
}

#[test]
fn stalled_player_is_skipped_to_keyframes_counted_and_resumes_at_one() {
    stalled_player_resumes_at_a_keyframe("queue-size=65536", Duration::ZERO);
}

/// The age bound: the queue may hold 64 MiB (the test's whole stream is 1.2 MB), so only
/// `queue-time` can make the stalled player skip. The frames are paced (20 ms apart) and
/// pushed until it was skipped, so the stall outlasts the bound however slow the machine;
/// the bound is long enough that a reader descheduled for a while is not taken for one.
#[test]
fn a_player_stalled_longer_than_queue_time_is_skipped_and_resumes_at_a_keyframe() {
    stalled_player_resumes_at_a_keyframe(
        "queue-size=67108864 queue-time=2000",
        Duration::from_millis(20),
    );
}

/// Two readers and a player that stops reading (a tiny receive window) under `bounds`, the
/// stream pushed `pace` apart: the stalled player is skipped (drops in its stats) while the
/// readers lose nothing; when it reads again it gets every later message or a count of it as
/// dropped, and after every gap it restarts at a keyframe.
fn stalled_player_resumes_at_a_keyframe(bounds: &str, pace: Duration) {
    const FRAMES: u32 = 300;
    let pieces = synthetic_flv(FRAMES, 4000);
    let p = Pipeline::parse(&format!(
        "appsrc name=src format=bytes caps=video/x-flv ! \
         rtmpserversink name=sink address=127.0.0.1 port=0 stream=s {bounds}",
    ));
    p.play();
    let sink = p.by_name("sink");
    let port = p.port("sink");
    let readers = [
        Player::start("reader 1", port, "s"),
        Player::start("reader 2", port, "s"),
    ];
    let stalled = play_client(small_window_socket(port), port, "s");
    let stalled_addr = stalled.sock.local_addr().unwrap().to_string();
    let src = p.by_name("src").downcast::<gst_app::AppSrc>().unwrap();
    let drops_of = |addr: &str| {
        let stats = client_stats(&sink);
        stats
            .iter()
            .find(|s| s.0 == addr)
            .unwrap_or_else(|| panic!("no stats for {addr}: {stats:?}"))
            .2
    };
    // Pushes frames [from, to), no faster than the readers take them: only the stalled
    // player's queue may overflow.
    let push = |from: u32, to: u32| {
        for i in from..to {
            let piece = &pieces[i as usize + 1];
            src.push_buffer(gst::Buffer::from_slice(piece.clone()))
                .unwrap();
            let behind = i.saturating_sub(4) as usize;
            for r in &readers {
                r.wait_frames(behind, behind);
            }
            std::thread::sleep(pace);
        }
    };
    src.push_buffer(gst::Buffer::from_slice(pieces[0].clone()))
        .unwrap();
    // Half the stream, and on until the stalled player was skipped (drops are counted as
    // messages are pushed).
    let mut pushed = FRAMES / 2;
    push(0, pushed);
    while drops_of(&stalled_addr) == 0 {
        assert!(
            pushed < FRAMES - 30,
            "the stalled player was never skipped ({bounds})"
        );
        push(pushed, pushed + 1);
        pushed += 1;
    }

    // It reads again: from here on it keeps up.
    let resumed = Player::keep_reading("resumed player", stalled);
    push(pushed, FRAMES);
    let total = 2 * FRAMES as u64;
    for r in &readers {
        r.wait_frames(FRAMES as usize, FRAMES as usize);
    }
    // Everything pushed is either delivered to it or counted as dropped, exactly.
    wait_until(
        "the resumed player to account for every frame",
        DEADLINE,
        || {
            let l = resumed.log();
            l.frames(true) as u64 + l.frames(false) as u64 + drops_of(&resumed.addr) == total
        },
    );
    let drops = drops_of(&resumed.addr);
    let reader_drops: Vec<u64> = readers.iter().map(|r| drops_of(&r.addr)).collect();
    src.end_of_stream().unwrap();
    p.wait_eos(DEADLINE);

    for r in &readers {
        r.wait_closed();
        let l = r.log();
        assert_eq!(l.seqs(true), range(0, FRAMES), "{}: video", r.name);
        assert_eq!(l.seqs(false), range(0, FRAMES), "{}: audio", r.name);
        assert!(l.told_ended, "{}: {:?}", r.name, l.statuses);
    }
    assert_eq!(reader_drops, vec![0, 0], "the reading players lost nothing");

    resumed.wait_closed();
    let l = resumed.log();
    // Push order: frame i is video 2i then audio 2i+1.
    let order: Vec<(u32, Got)> = l
        .media
        .iter()
        .filter_map(|g| g.seq.map(|s| (2 * s + u32::from(!g.video), *g)))
        .collect();
    assert_eq!(
        order.first().map(|o| o.0),
        Some(0),
        "the stalled player started at frame 0"
    );
    assert_eq!(
        order.last().map(|o| o.0),
        Some(2 * FRAMES - 1),
        "the resumed player got the end of the stream"
    );
    let mut gaps = 0;
    for w in order.windows(2) {
        let ((prev, _), (next, g)) = (w[0], w[1]);
        assert!(next > prev, "stalled player: order {prev} then {next}");
        if next != prev + 1 {
            gaps += 1;
            assert!(
                g.video && g.key,
                "after a skip ({prev} -> {next}) the player must restart at a keyframe, got {g:?}"
            );
        }
    }
    assert!(gaps > 0, "the stalled player skipped nothing");
    println!(
        "stalled player: {} of {total} messages delivered, {drops} dropped, {gaps} skips",
        order.len()
    );
    assert!(l.told_ended, "resumed player: {:?}", l.statuses);
}

// ---------------------------------------------------------------------------------------------
// Server restart under a reconnecting rtmpclientsink

/// (dts ms, keyframe) per FLV tag of one kind.
fn largest_gap(v: &[(u64, bool)]) -> u64 {
    v.windows(2)
        .map(|w| w[1].0.saturating_sub(w[0].0))
        .max()
        .unwrap_or(0)
}

#[test]
fn clientsink_rides_out_a_restart_of_our_server_without_drops() {
    let port = free_port();
    let server = Pipeline::parse(&format!(
        "rtmpserversrc name=src address=127.0.0.1 port={port} stream=re eos-on-unpublish=true ! \
         appsink name=out sync=false"
    ));
    let (video, audio) = collect_tags(&server, "out");
    server.play();
    let publisher = Pipeline::parse(&format!(
        "videotestsrc is-live=true num-buffers=300 ! video/x-raw,width=320,height=240,framerate=30/1 ! \
         x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 bitrate=400 ! h264parse ! \
         flvmux name=m streamable=true ! \
         rtmpclientsink name=sink location=rtmp://127.0.0.1:{port}/live/re reconnect-delay=1000 \
         reconnect-max-delay=1000 reconnect-attempts=-1 max-hold-time=10000 \
         audiotestsrc is-live=true num-buffers=469 samplesperbuffer=1024 ! \
         audio/x-raw,rate=48000,channels=1 ! voaacenc ! aacparse ! m."
    ));
    let sink = publisher.by_name("sink");
    publisher.play();
    wait_until("3 s of video at our server", DEADLINE, || {
        video.lock().unwrap().len() > 90
    });

    // Restart: NULL drops the route and its connection; the port is bound again at PLAYING.
    // What arrived is counted once NULL returned (nothing arrives after), so a slow test
    // thread loses no frame between counting and clearing.
    server.0.set_state(gst::State::Null).unwrap();
    let before = video.lock().unwrap().len();
    video.lock().unwrap().clear();
    audio.lock().unwrap().clear();
    // The old listening socket closes on a runtime thread: bind again once it is gone. The
    // sink tries again every second meanwhile, for as long as it takes.
    wait_until("the port to close in NULL", DEADLINE, || {
        TcpStream::connect(("127.0.0.1", port)).is_err()
    });
    server.play();
    server.wait_eos(DEADLINE);
    publisher.wait_eos(DEADLINE);
    let stats: gst::Structure = sink.property("stats");
    let stat = |f: &str| common::stat(&stats, f);
    println!(
        "before the restart {before} video frames; stats {stats}; after: {} video, {} audio",
        video.lock().unwrap().len(),
        audio.lock().unwrap().len()
    );
    assert_eq!(stat("reconnects"), 1, "stats {stats}");
    assert_eq!(stat("drops"), 0, "the outage fits max-hold-time: {stats}");
    assert!(stat("held") > 0, "media of the outage was held: {stats}");
    assert!(stat("resent") > 0, "headers and GOP re-sent: {stats}");

    let v = video.lock().unwrap().clone();
    let a = audio.lock().unwrap().clone();
    assert!(
        v[0].1,
        "the new server's output starts with a keyframe: {:?}",
        &v[..3]
    );
    // The whole rest of the stream: at most the GOP before the cut is sent twice, nothing
    // is missing (300 frames in all).
    assert!(
        before + v.len() >= 300,
        "{before} frames before the restart + {} after < 300",
        v.len()
    );
    assert!(largest_gap(&v) <= 67, "video gap {} ms", largest_gap(&v));
    assert!(largest_gap(&a) <= 43, "audio gap {} ms", largest_gap(&a));
}

// ---------------------------------------------------------------------------------------------
// NULL while clients are connected

fn ffmpeg_publisher(media: &std::path::Path, url: &str) -> ChildGuard {
    require("ffmpeg", "ffmpeg");
    ChildGuard::spawn(
        "ffmpeg publisher",
        Command::new("ffmpeg")
            .args(["-nostdin", "-loglevel", "error", "-re", "-i"])
            .arg(media)
            .args(["-c", "copy", "-f", "flv", url])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
}

fn ffmpeg_player(url: &str, out: &std::path::Path) -> ChildGuard {
    require("ffmpeg", "ffmpeg");
    ChildGuard::spawn(
        "ffmpeg player",
        Command::new("ffmpeg")
            .args(["-nostdin", "-loglevel", "error", "-y", "-i", url])
            .args(["-c", "copy", "-f", "flv"])
            .arg(out)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
}

fn rtmpdump_player(url: &str, out: &std::path::Path) -> ChildGuard {
    require("rtmpdump", "rtmpdump");
    ChildGuard::spawn(
        "rtmpdump",
        Command::new("rtmpdump")
            .args(["-q", "-v", "-m", "30", "-r", url, "-o"])
            .arg(out)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
}

/// Sets `p` to NULL on another thread; panics when that does not return within `bound`.
fn null_within(p: &Pipeline, bound: Duration) {
    let pipeline = p.0.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = pipeline.set_state(gst::State::Null);
        let _ = tx.send(r.map(|_| ()).map_err(|e| e.to_string()));
    });
    match rx.recv_timeout(bound) {
        Ok(r) => r.expect("set_state(NULL)"),
        Err(_) => panic!("set_state(NULL) with clients connected did not return within {bound:?}"),
    }
}

#[test]
fn null_with_clients_connected_closes_them_and_serves_again() {
    let media = test_media(8);
    let port = free_port();
    let p = relay(port, "");
    p.play();
    let sink = p.by_name("sink");
    let out_url = format!("rtmp://127.0.0.1:{port}/live/out");
    let dir = TempDir::new("faults-null");
    let mut programs = vec![
        ffmpeg_player(&out_url, &dir.path().join("ffmpeg.flv")),
        rtmpdump_player(&out_url, &dir.path().join("rtmpdump.flv")),
    ];
    let raws = [
        Player::start("engine player 1", port, "out"),
        Player::start("engine player 2", port, "out"),
    ];
    wait_until("four players", DEADLINE, || clients(&sink) == 4);
    programs.push(ffmpeg_publisher(
        &media,
        &format!("rtmp://127.0.0.1:{port}/live/in"),
    ));
    // Every player is receiving media.
    for r in &raws {
        r.wait_frames(30, 30);
    }
    wait_until("every player to have 100 KB", DEADLINE, || {
        let s = client_stats(&sink);
        s.len() == 4 && s.iter().all(|c| c.1 > 100_000)
    });

    null_within(&p, Duration::from_secs(20));
    // The listening socket closes on the runtime shortly after its last route went.
    wait_until(
        "the port to stop accepting connections in NULL",
        DEADLINE,
        || TcpStream::connect(("127.0.0.1", port)).is_err(),
    );
    for r in &raws {
        r.wait_closed();
    }
    for prog in &mut programs {
        // Exit codes vary (a cut stream is an error to ffmpeg): what matters is that each
        // one noticed and ended.
        let name = prog.name.clone();
        assert!(
            prog.try_wait_timeout(DEADLINE).is_some(),
            "{name} still runs after the server went to NULL"
        );
    }

    // Back to PLAYING on the same port: it serves again.
    p.play();
    let player = Player::start("player after restart", port, "out");
    let mut publisher = Publisher::start(port, "in", 0);
    publisher.frames(30);
    player.wait_frames(30, 30);
    publisher.kill();
    let l = player.log();
    assert_eq!(l.seqs(true), range(0, 30), "player after restart: video");
    assert_eq!(l.seqs(false), range(0, 30), "player after restart: audio");
}

// ---------------------------------------------------------------------------------------------
// A new publish after EOS is a fresh stream

/// The `duration` number of an onMetaData payload.
fn metadata_duration(payload: &[u8]) -> Option<f64> {
    let at = payload.windows(8).position(|w| w == b"duration")? + 8;
    let rest = payload.get(at..at + 9)?;
    (rest[0] == 0).then(|| f64::from_be_bytes(rest[1..9].try_into().unwrap()))
}

#[test]
fn a_new_stream_after_eos_carries_nothing_of_the_old_one() {
    let port = free_port();
    let p = Pipeline::parse(&format!(
        "appsrc name=src format=bytes caps=video/x-flv ! \
         rtmpserversink name=sink address=127.0.0.1 port={port} stream=s"
    ));
    let url = format!("rtmp://127.0.0.1:{port}/live/s");
    let dir = TempDir::new("faults-fresh");
    for (round, seconds) in [(1, 4), (2, 2)] {
        let media = test_media(seconds);
        let want = ffprobe_counts(&media);
        p.play();
        let sink = p.by_name("sink");
        let out = dir.path().join(format!("round{round}.flv"));
        let mut ffmpeg = ffmpeg_player(&url, &out);
        let raw = Player::start(&format!("engine player, round {round}"), port, "s");
        wait_until("both players", DEADLINE, || clients(&sink) == 2);
        push_file(
            &p.by_name("src"),
            &std::fs::read(&media).unwrap(),
            64 * 1024,
        );
        p.wait_eos(DEADLINE);
        raw.wait_closed();
        let status = ffmpeg.try_wait_timeout(DEADLINE);
        assert!(
            status.is_some_and(|s| s.success()),
            "round {round}: ffmpeg player did not finish cleanly: {status:?}"
        );
        assert_eq!(ffprobe_counts(&out), want, "round {round}: ffmpeg frames");
        let l = raw.log();
        assert!(l.told_ended, "round {round}: {:?}", l.statuses);
        let got = (l.frames(true) as u64, l.frames(false) as u64);
        assert_eq!(
            got, want,
            "round {round}: engine player frames (video, audio)"
        );
        let durations: Vec<Option<f64>> = l.data.iter().map(|d| metadata_duration(d)).collect();
        assert!(
            !durations.is_empty()
                && durations
                    .iter()
                    .all(|d| d.is_some_and(|d| (d - f64::from(seconds)).abs() < 0.5)),
            "round {round}: metadata durations {durations:?}, want {seconds} s"
        );
        drop(l);
        p.0.set_state(gst::State::Null).unwrap();
    }
}
