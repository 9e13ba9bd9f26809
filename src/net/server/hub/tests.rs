//! The hub's tests: sharing, GOP cache and late joiners, drops, direct players, strict policy.
use super::*;
use rsrtmp_engine::flv::FourCc;
use std::io::{self, IoSlice};
use std::sync::atomic::Ordering;

fn peer() -> SocketAddr {
    "127.0.0.1:5000".parse().unwrap()
}

fn shared(kind: Kind, key: bool, tag: u8, len: usize) -> Arc<Frame> {
    // The queue tests look at the first byte only: the tag stands in for encoded bytes.
    Arc::new(Frame {
        bytes: Bytes::from(vec![tag; len]),
        chunk_size: 4096,
        kind,
        keyframe: key,
        time: 0,
        needs: Needs::default(),
    })
}

fn frame(kind: Kind, key: bool, tag: u8, len: usize) -> Input {
    Input::Frame(shared(kind, key, tag, len))
}

/// A frame stamped `time` ms: what the input lateness is measured from.
fn timed(kind: Kind, key: bool, tag: u8, len: usize, time: u32) -> Input {
    let f = shared(kind, key, tag, len);
    Input::Frame(Arc::new(Frame {
        bytes: f.bytes.clone(),
        time,
        ..*f
    }))
}

fn header(tag: u8) -> Arc<Frame> {
    shared(Kind::Data, false, tag, 1)
}

fn track_header(kind: Kind, type_id: u8, track: u8, tag: u8) -> Input {
    let key = HeaderKey {
        type_id,
        track,
        packet: 0,
    };
    Input::Header(key, shared(kind, false, tag, 1))
}

fn vheader(tag: u8) -> Input {
    track_header(Kind::Video, 9, 0, tag)
}

fn aheader(tag: u8) -> Input {
    track_header(Kind::Audio, 8, 0, tag)
}

fn drain(p: &PlayerQueue) -> Vec<u8> {
    let mut out = Vec::new();
    p.take(&mut out, usize::MAX);
    out.iter()
        .map(|i| match i {
            Item::Frame(b, _) => b.bytes[0],
            Item::Own(b) => b[0],
            Item::End => 0xEE,
        })
        .collect()
}

#[test]
fn every_player_shares_the_same_bytes() {
    let hub = Hub::new(HubConfig::default());
    let a = hub.add_player(peer());
    let b = hub.add_player(peer());
    let f = shared(Kind::Video, true, 7, 5);
    let bytes = f.bytes.clone();
    hub.push(Input::Frame(f));
    let (mut qa, mut qb) = (Vec::new(), Vec::new());
    a.take(&mut qa, 10);
    b.take(&mut qb, 10);
    let (Item::Frame(x, _), Item::Frame(y, _)) = (&qa[0], &qb[0]) else {
        panic!("expected bytes, got {qa:?} {qb:?}");
    };
    // Same allocation: the payload was not copied per player.
    assert_eq!(x.bytes.as_ptr(), bytes.as_ptr());
    assert_eq!(y.bytes.as_ptr(), bytes.as_ptr());
}

#[test]
fn late_player_gets_headers_then_gop_from_last_keyframe() {
    let hub = Hub::new(HubConfig::default());
    hub.push(Input::Metadata(header(1)));
    hub.push(vheader(2));
    hub.push(aheader(3));
    hub.push(frame(Kind::Video, true, 10, 4));
    hub.push(frame(Kind::Audio, false, 11, 4));
    hub.push(frame(Kind::Video, true, 20, 4));
    hub.push(frame(Kind::Audio, false, 21, 4));
    hub.push(frame(Kind::Video, false, 22, 4));
    let p = hub.add_player(peer());
    hub.push(frame(Kind::Video, false, 23, 4));
    assert_eq!(drain(&p), vec![1, 2, 3, 20, 21, 22, 23]);
}

#[test]
fn a_header_after_media_empties_the_gop_until_the_next_keyframe() {
    let hub = Hub::new(HubConfig::default());
    hub.push(vheader(2));
    hub.push(frame(Kind::Video, true, 10, 4));
    hub.push(frame(Kind::Video, false, 11, 4));
    // The publisher reconnected (or its encoder restarted): the configuration again.
    hub.push(vheader(3));
    hub.push(frame(Kind::Video, false, 12, 4));
    let early = hub.add_player(peer());
    hub.push(frame(Kind::Video, true, 20, 4));
    hub.push(frame(Kind::Video, false, 21, 4));
    let late = hub.add_player(peer());
    // Nothing of the old configuration's GOP reaches a joiner; from the next keyframe on the
    // GOP is cached again.
    assert_eq!(drain(&early), vec![3, 20, 21]);
    assert_eq!(drain(&late), vec![3, 20, 21]);

    // A new audio configuration takes only the cached audio out.
    hub.push(frame(Kind::Audio, false, 22, 4));
    hub.push(aheader(4));
    hub.push(frame(Kind::Video, false, 23, 4));
    let third = hub.add_player(peer());
    assert_eq!(drain(&third), vec![3, 4, 20, 21, 23]);
}

#[test]
fn a_player_there_before_the_first_frame_gets_every_frame() {
    for gop_cache in [true, false] {
        let hub = Hub::new(HubConfig {
            gop_cache,
            ..HubConfig::default()
        });
        let p = hub.add_player(peer());
        hub.push(vheader(2));
        hub.push(aheader(3));
        // Audio ahead of the first keyframe (an encoder with a video delay).
        hub.push(frame(Kind::Audio, false, 10, 4));
        hub.push(frame(Kind::Video, true, 11, 4));
        hub.push(frame(Kind::Audio, false, 12, 4));
        assert_eq!(drain(&p), vec![2, 3, 10, 11, 12], "gop_cache {gop_cache}");
        assert_eq!(p.stats().drops, 0);
    }
}

#[test]
fn a_late_player_gets_the_headers_of_every_track() {
    let hub = Hub::new(HubConfig::default());
    hub.push(Input::Metadata(header(1)));
    hub.push(vheader(2));
    hub.push(track_header(Kind::Audio, 8, 0, 3));
    hub.push(track_header(Kind::Audio, 8, 1, 4));
    hub.push(frame(Kind::Video, true, 10, 4));
    // A new header of track 0 replaces that track's only.
    hub.push(track_header(Kind::Audio, 8, 0, 5));
    let p = hub.add_player(peer());
    assert_eq!(drain(&p), vec![1, 2, 5, 4, 10]);
}

#[test]
fn without_gop_cache_a_late_player_waits_for_a_keyframe() {
    let hub = Hub::new(HubConfig {
        gop_cache: false,
        ..HubConfig::default()
    });
    hub.push(vheader(2));
    hub.push(frame(Kind::Video, true, 10, 4));
    let p = hub.add_player(peer());
    hub.push(frame(Kind::Audio, false, 11, 4));
    hub.push(frame(Kind::Video, false, 12, 4));
    hub.push(frame(Kind::Video, true, 20, 4));
    hub.push(frame(Kind::Audio, false, 21, 4));
    assert_eq!(drain(&p), vec![2, 20, 21]);
    assert_eq!(p.stats().drops, 2);
}

#[test]
fn audio_only_streams_sync_on_any_audio_frame() {
    let hub = Hub::new(HubConfig {
        gop_cache: false,
        ..HubConfig::default()
    });
    hub.push(aheader(3));
    let p = hub.add_player(peer());
    hub.push(frame(Kind::Audio, false, 11, 4));
    assert_eq!(drain(&p), vec![3, 11]);
}

#[test]
fn slow_player_skips_to_next_keyframe_and_counts_drops() {
    let hub = Hub::new(HubConfig {
        gop_cache: true,
        queue_limit: 10,
        strict: false,
        merge_window: None,
        queue_time: None,
    });
    let slow = hub.add_player(peer());
    let fast = hub.add_player(peer());
    hub.push(frame(Kind::Video, true, 10, 4));
    drain(&fast);
    hub.push(frame(Kind::Video, false, 11, 4));
    drain(&fast);
    // 8 bytes queued for the slow one: the next 4 do not fit.
    hub.push(frame(Kind::Video, false, 12, 4));
    drain(&fast);
    hub.push(frame(Kind::Audio, false, 13, 1));
    drain(&fast);
    // The slow player catches up, but must still wait for a keyframe.
    assert_eq!(drain(&slow), vec![10, 11]);
    for (tag, key) in [(14, false), (20, true), (21, false)] {
        hub.push(frame(Kind::Video, key, tag, 4));
        drain(&fast);
    }
    assert_eq!(drain(&slow), vec![20, 21]);
    assert_eq!(slow.stats().drops, 3);
    assert_eq!(fast.stats().drops, 0);
}

#[test]
fn headers_are_never_dropped() {
    let hub = Hub::new(HubConfig {
        gop_cache: true,
        queue_limit: 4,
        strict: false,
        merge_window: None,
        queue_time: None,
    });
    let p = hub.add_player(peer());
    hub.push(frame(Kind::Video, true, 10, 4));
    hub.push(frame(Kind::Video, false, 11, 4));
    hub.push(vheader(2));
    assert_eq!(drain(&p), vec![10, 2]);
}

#[test]
fn oversized_gop_is_not_cached() {
    let hub = Hub::new(HubConfig {
        gop_cache: true,
        queue_limit: 6,
        strict: false,
        merge_window: None,
        queue_time: None,
    });
    hub.push(frame(Kind::Video, true, 10, 4));
    hub.push(frame(Kind::Video, false, 11, 4));
    let p = hub.add_player(peer());
    hub.push(frame(Kind::Video, false, 12, 4));
    hub.push(frame(Kind::Video, true, 20, 4));
    assert_eq!(drain(&p), vec![20]);
}

#[test]
fn end_stream_tells_players_and_the_next_stream_starts_fresh() {
    let hub = Hub::new(HubConfig::default());
    hub.push(vheader(2));
    hub.push(frame(Kind::Video, true, 10, 4));
    let p = hub.add_player(peer());
    hub.end_stream();
    assert_eq!(drain(&p), vec![2, 10, 0xEE]);
    let mut out = Vec::new();
    assert!(!p.take(&mut out, 10), "an ended queue reports its end");
    assert_eq!(hub.player_count(), 0);
    // A new stream: nothing of the old one is replayed.
    hub.push(vheader(5));
    let q = hub.add_player(peer());
    hub.push(frame(Kind::Video, true, 30, 4));
    assert_eq!(drain(&q), vec![5, 30]);
}

#[test]
fn take_respects_the_batch_size_and_keeps_the_byte_count() {
    let hub = Hub::new(HubConfig::default());
    let p = hub.add_player(peer());
    hub.push(frame(Kind::Audio, false, 1, 3));
    for i in 0..5 {
        hub.push(frame(Kind::Audio, false, i, 3));
    }
    let mut out = Vec::new();
    assert!(p.take(&mut out, 2));
    assert_eq!(out.len(), 2);
    assert_eq!(p.queued_bytes(), 12);
}

/// A socket stand-in that takes at most `room` bytes (then `WouldBlock`) and keeps them.
fn enhanced(kind: Kind, key: bool, tag: u8, fourcc: FourCc) -> Arc<Frame> {
    Arc::new(Frame {
        bytes: Bytes::from(vec![tag; 4]),
        chunk_size: 4096,
        kind,
        keyframe: key,
        time: 0,
        needs: Needs {
            fourcc: Some(fourcc),
            ..Needs::default()
        },
    })
}

#[test]
fn the_strict_policy_gives_each_player_what_it_announced() {
    let hub = Hub::new(HubConfig {
        strict: true,
        ..HubConfig::default()
    });
    let hevc_header = enhanced(Kind::Video, false, 1, FourCc::HVC1);
    let key = HeaderKey {
        type_id: 9,
        track: 0,
        packet: 0,
    };
    hub.push(Input::Header(key, hevc_header));
    hub.push(aheader(2));
    hub.push(Input::Frame(enhanced(Kind::Video, true, 3, FourCc::HVC1)));
    hub.push(frame(Kind::Audio, false, 4, 4));
    // Joining mid-stream: a legacy player, one that announced hvc1.
    let legacy = hub.add_player(peer());
    let caps = EnhancedCaps::for_codecs(&[FourCc::HVC1], 1, 0);
    let modern = hub.add_player_with(peer(), None, Vec::new(), Some(&caps));
    hub.push(frame(Kind::Audio, false, 5, 4));
    hub.push(Input::Frame(enhanced(Kind::Video, false, 6, FourCc::HVC1)));
    hub.push(frame(Kind::Audio, false, 7, 4));
    assert_eq!(
        drain(&legacy),
        vec![2, 4, 5, 7],
        "audio only, from its header on"
    );
    assert_eq!(drain(&modern), vec![1, 2, 3, 4, 5, 6, 7]);
}

#[derive(Default)]
struct Sock {
    room: Mutex<usize>,
    got: Mutex<Vec<u8>>,
    broken: std::sync::atomic::AtomicBool,
    /// Calls that wrote something.
    writes: std::sync::atomic::AtomicUsize,
    /// How long each write takes (an overloaded core).
    stall: Mutex<std::time::Duration>,
}

impl DirectSocket for Sock {
    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        if self.broken.load(Ordering::Relaxed) {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        std::thread::sleep(*self.stall.lock().unwrap());
        let mut room = self.room.lock().unwrap();
        if *room == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let mut n = 0;
        for b in bufs {
            let take = b.len().min(*room);
            self.got.lock().unwrap().extend_from_slice(&b[..take]);
            *room -= take;
            n += take;
        }
        self.writes.fetch_add(1, Ordering::Relaxed);
        Ok(n)
    }
}

fn direct_player(hub: &Hub, room: usize, preamble: &[u8]) -> (Arc<PlayerQueue>, Arc<Sock>) {
    let sock = Arc::new(Sock::default());
    *sock.room.lock().unwrap() = room;
    let pre = vec![Bytes::copy_from_slice(preamble)];
    let p = hub.add_player_with(
        peer(),
        Some(sock.clone() as Arc<dyn DirectSocket>),
        pre,
        None,
    );
    (p, sock)
}

#[test]
fn a_direct_player_is_written_by_the_hub_while_its_socket_has_room() {
    let hub = Hub::new(HubConfig::default());
    hub.push(vheader(2));
    let (p, sock) = direct_player(&hub, 1 << 20, b"own");
    // The preamble and the cache wait for the task's first flush.
    assert_eq!(p.flush_direct().unwrap(), Flushed::Empty);
    assert_eq!(&sock.got.lock().unwrap()[..], b"own\x02");
    hub.push(frame(Kind::Video, true, 10, 3));
    hub.push(frame(Kind::Audio, false, 11, 2));
    // Written through at once: nothing queued for the task.
    assert!(p.is_empty());
    assert_eq!(&sock.got.lock().unwrap()[4..], [10, 10, 10, 11, 11]);
    assert_eq!(p.sent(), 9);
}

#[test]
fn what_a_full_socket_does_not_take_is_queued_in_order() {
    let hub = Hub::new(HubConfig::default());
    let (p, sock) = direct_player(&hub, 2, b"x");
    assert_eq!(p.flush_direct().unwrap(), Flushed::Empty);
    // One byte of room left: the frame goes out in part, the rest and the next frame wait.
    hub.push(frame(Kind::Video, true, 10, 3));
    hub.push(frame(Kind::Video, false, 11, 2));
    p.push_own(Bytes::from_static(&[12]));
    assert_eq!(p.queued_bytes(), 6);
    assert_eq!(p.flush_direct().unwrap(), Flushed::Full);
    *sock.room.lock().unwrap() = 100;
    assert_eq!(p.flush_direct().unwrap(), Flushed::Empty);
    assert_eq!(&sock.got.lock().unwrap()[..], b"x\x0a\x0a\x0a\x0b\x0b\x0c");
    assert_eq!(p.queued_bytes(), 0);
    // Caught up: written through again.
    hub.push(frame(Kind::Audio, false, 13, 1));
    assert!(p.is_empty());
    assert_eq!(sock.got.lock().unwrap().last(), Some(&13));
}

#[test]
fn a_direct_player_ends_after_everything_before_the_end() {
    let hub = Hub::new(HubConfig::default());
    let (p, sock) = direct_player(&hub, 0, b"x");
    hub.push(frame(Kind::Video, true, 10, 2));
    hub.end_stream();
    assert_eq!(p.flush_direct().unwrap(), Flushed::Full);
    *sock.room.lock().unwrap() = 100;
    assert_eq!(p.flush_direct().unwrap(), Flushed::End);
    assert_eq!(&sock.got.lock().unwrap()[..], b"x\x0a\x0a");
    // The end-of-stream messages still go out after the end.
    p.push_own(Bytes::from_static(b"eos"));
    assert_eq!(p.flush_direct().unwrap(), Flushed::Empty);
    assert!(p.is_finished());
}

#[test]
fn a_failed_direct_write_is_reported_to_the_task() {
    let hub = Hub::new(HubConfig::default());
    let (p, sock) = direct_player(&hub, 100, b"x");
    assert_eq!(p.flush_direct().unwrap(), Flushed::Empty);
    sock.broken.store(true, Ordering::Relaxed);
    hub.push(frame(Kind::Video, true, 10, 2));
    let err = p.flush_direct().unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
}

#[test]
fn a_large_hub_delivers_through_two_threads_in_order() {
    let hub = Hub::new(HubConfig::default());
    hub.push(vheader(2));
    let n = PARALLEL_FROM * 2 + 1;
    let players: Vec<_> = (0..n).map(|_| hub.add_player(peer())).collect();
    for i in 0..50u8 {
        hub.push(frame(Kind::Video, i % 10 == 0, 10 + i, 3));
    }
    let want: Vec<u8> = std::iter::once(2).chain(10..60).collect();
    for (i, p) in players.iter().enumerate() {
        assert_eq!(drain(p), want, "player {i}");
    }
    // Leaving players are not delivered to, the others still are.
    for p in &players[..n / 2] {
        hub.remove_player(p);
    }
    hub.push(frame(Kind::Audio, false, 99, 1));
    assert!(players[0].is_finished());
    assert_eq!(drain(&players[n - 1]), vec![99]);
}

fn merging_hub(window: std::time::Duration) -> Hub {
    Hub::new(HubConfig {
        merge_window: Some(window),
        ..HubConfig::default()
    })
}

#[test]
fn merged_writes_queue_and_go_out_in_one_send_per_window() {
    // A window that never ends during the test: the round is run by hand.
    let hub = merging_hub(std::time::Duration::from_secs(3600));
    hub.push(vheader(2));
    let (p, sock) = direct_player(&hub, 1 << 20, b"own");
    // The join goes out at once (the task's first flush).
    assert_eq!(p.flush_direct().unwrap(), Flushed::Empty);
    let joined = sock.writes.load(Ordering::Relaxed);
    for i in 0..5 {
        hub.push(frame(Kind::Video, i == 0, 10 + i, 2));
    }
    hub.push(frame(Kind::Audio, false, 20, 1));
    // Nothing written while the window runs; everything queued, in order.
    assert_eq!(sock.writes.load(Ordering::Relaxed), joined);
    assert_eq!(p.queued_bytes(), 11);
    merge::flush(&p);
    assert_eq!(sock.writes.load(Ordering::Relaxed), joined + 1, "one send");
    assert_eq!(
        &sock.got.lock().unwrap()[4..],
        [10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 20]
    );
    assert!(p.is_empty());
}

#[test]
fn the_merging_thread_flushes_every_player() {
    let hub = merging_hub(std::time::Duration::from_millis(20));
    let (p, sock) = direct_player(&hub, 1 << 20, b"x");
    assert_eq!(p.flush_direct().unwrap(), Flushed::Empty);
    let queued = hub.add_player(peer());
    for i in 0..3 {
        hub.push(frame(Kind::Video, i == 0, 10 + i, 1));
    }
    // Ends a hung test; never a measure of speed.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while sock.got.lock().unwrap().len() < 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "the merging thread never wrote"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(&sock.got.lock().unwrap()[..], b"x\x0a\x0b\x0c");
    // A task-written player's queue waits for its task, woken by the round.
    assert_eq!(drain(&queued), vec![10, 11, 12]);
    drop(hub);
}

fn aging_hub(queue_time: Option<std::time::Duration>) -> Hub {
    Hub::new(HubConfig {
        queue_time,
        ..HubConfig::default()
    })
}

fn ms(n: u64) -> std::time::Duration {
    std::time::Duration::from_millis(n)
}

#[test]
fn a_player_further_behind_than_queue_time_drops_its_queued_media_and_resumes_at_a_keyframe() {
    let t0 = Instant::now();
    for bound in [None, Some(ms(1000))] {
        let hub = aging_hub(bound);
        hub.push_at(vheader(2), t0);
        hub.push_at(aheader(3), t0);
        let slow = hub.add_player(peer());
        let fast = hub.add_player(peer());
        // The fast player reads everything at once.
        let mut fast_got = drain(&fast);
        let mut at = 0;
        for (tag, kind, key) in [
            (10, Kind::Video, true),
            (11, Kind::Audio, false),
            (12, Kind::Video, false),
        ] {
            at += 400;
            hub.push_at(timed(kind, key, tag, 4, at), t0 + ms(at.into()));
            fast_got.extend(drain(&fast));
        }
        // 1.6 s after the player's first message, still nothing taken.
        hub.push_at(timed(Kind::Video, false, 13, 4, 1600), t0 + ms(1600));
        fast_got.extend(drain(&fast));
        assert_eq!(fast_got, vec![2, 3, 10, 11, 12, 13]);
        match bound {
            // Only the byte bound: the player reads it all, 1.6 s late.
            None => {
                assert_eq!(drain(&slow), vec![2, 3, 10, 11, 12, 13]);
                assert_eq!(slow.stats().drops, 0);
            }
            // Its media went (10, 11, 12, and 13 which is no sync point); the headers stay.
            Some(_) => {
                assert_eq!(drain(&slow), vec![2, 3]);
                assert_eq!(slow.stats().drops, 4);
                hub.push_at(timed(Kind::Audio, false, 14, 4, 1700), t0 + ms(1700));
                hub.push_at(timed(Kind::Video, true, 20, 4, 1800), t0 + ms(1800));
                hub.push_at(timed(Kind::Audio, false, 21, 4, 1900), t0 + ms(1900));
                assert_eq!(drain(&slow), vec![20, 21]);
                assert_eq!(slow.stats().drops, 5);
                assert_eq!(fast.stats().drops, 0);
            }
        }
    }
}

#[test]
fn the_age_bound_keeps_a_partly_written_message_and_the_cache_is_not_lag() {
    let t0 = Instant::now();
    let hub = aging_hub(Some(ms(1000)));
    let (p, sock) = direct_player(&hub, 2, b"x");
    assert_eq!(p.flush_direct().unwrap(), Flushed::Empty);
    hub.push_at(timed(Kind::Video, true, 10, 3, 0), t0);
    hub.push_at(timed(Kind::Video, false, 11, 2, 100), t0 + ms(100));
    // The front message is half out: it stays, and so the player is still late.
    hub.push_at(timed(Kind::Video, false, 12, 2, 1200), t0 + ms(1200));
    hub.push_at(timed(Kind::Video, true, 20, 2, 1300), t0 + ms(1300));
    assert_eq!(p.stats().drops, 3);
    *sock.room.lock().unwrap() = 100;
    assert_eq!(p.flush_direct().unwrap(), Flushed::Empty);
    hub.push_at(timed(Kind::Video, true, 30, 1, 1400), t0 + ms(1400));
    assert_eq!(&sock.got.lock().unwrap()[..], [b'x', 10, 10, 10, 30]);

    // A player that joins now gets the cached GOP queued at its join, however old the
    // frames are: a backlog to read, not a lag.
    let late = hub.add_player(peer());
    hub.push_at(timed(Kind::Video, false, 31, 1, 1500), Instant::now());
    assert_eq!(drain(&late), vec![30, 31]);
    assert_eq!(late.stats().drops, 0);
}

#[test]
fn input_later_than_queue_time_is_dropped_for_everyone_up_to_the_next_keyframe() {
    let t0 = Instant::now();
    for bound in [None, Some(ms(500))] {
        let hub = aging_hub(bound);
        hub.push_at(vheader(2), t0);
        let p = hub.add_player(peer());
        let mut got = drain(&p);
        // The player reads everything at once: it never falls behind itself.
        let mut push = |input: Input, at: Instant| {
            hub.push_at(input, at);
            got.extend(drain(&p));
        };
        // On time: a keyframe, audio, an inter frame.
        push(timed(Kind::Video, true, 10, 4, 0), t0);
        push(timed(Kind::Audio, false, 11, 4, 20), t0 + ms(20));
        push(timed(Kind::Video, false, 12, 4, 40), t0 + ms(40));
        // The server falls behind: each frame 200 ms later than the last.
        for (i, tag) in (13..18).enumerate() {
            let time = 80 + 40 * i as u32;
            let at = t0 + ms(u64::from(time) + 200 * (i as u64 + 1));
            push(timed(Kind::Video, false, tag, 4, time), at);
        }
        // Headers and data still go while media is dropped; then a keyframe, later still.
        push(vheader(3), t0 + ms(1400));
        push(timed(Kind::Data, false, 4, 4, 280), t0 + ms(1400));
        push(timed(Kind::Audio, false, 18, 4, 280), t0 + ms(1400));
        push(timed(Kind::Video, true, 20, 4, 300), t0 + ms(1500));
        push(timed(Kind::Video, false, 21, 4, 340), t0 + ms(1540));
        // Caught up (the backlog went with the dropped media): on time again.
        push(timed(Kind::Video, true, 30, 4, 2000), t0 + ms(2000));
        push(timed(Kind::Video, false, 31, 4, 2040), t0 + ms(2040));
        match bound {
            None => {
                assert_eq!(
                    got,
                    [2, 10, 11, 12, 13, 14, 15, 16, 17, 3, 4, 18, 20, 21, 30, 31]
                );
                assert_eq!(hub.late_drops(), 0);
            }
            // 13 and 14 are 200 and 400 ms late, 15 600 ms: from there to the keyframe all
            // media goes. The keyframe, late too, goes out (nothing to skip to), and the next
            // frame, still late, starts another skip, which the on-time keyframe ends.
            Some(_) => {
                assert_eq!(got, [2, 10, 11, 12, 13, 14, 3, 4, 20, 30, 31]);
                assert_eq!(hub.late_drops(), 5);
            }
        }
        assert_eq!(p.stats().drops, 0, "the player itself never fell behind");
        // A late joiner: the header, and the cached GOP from the last keyframe.
        let joiner = hub.add_player(peer());
        assert_eq!(drain(&joiner), [3, 30, 31]);
    }
}

#[test]
fn a_delivery_slower_than_queue_time_makes_what_comes_after_it_late() {
    let t0 = Instant::now();
    let hub = aging_hub(Some(ms(500)));
    hub.push_at(vheader(2), t0);
    let (p, sock) = direct_player(&hub, 1 << 20, b"x");
    assert_eq!(p.flush_direct().unwrap(), Flushed::Empty);
    hub.push_at(timed(Kind::Video, true, 10, 1, 0), t0);
    // Sending frame 11 takes 1.2 s (a thousand players on a starved core)...
    *sock.stall.lock().unwrap() = ms(1200);
    hub.push_at(timed(Kind::Video, false, 11, 1, 40), t0 + ms(40));
    *sock.stall.lock().unwrap() = ms(0);
    // ... so the frames after it arrive 1.2 s late. That jump is no pause in the input (the
    // hub was busy all along): they are dropped up to the next keyframe, which comes on time.
    hub.push_at(timed(Kind::Video, false, 12, 1, 80), t0 + ms(1280));
    hub.push_at(timed(Kind::Video, false, 13, 1, 120), t0 + ms(1290));
    hub.push_at(timed(Kind::Video, true, 20, 1, 1300), t0 + ms(1300));
    hub.push_at(timed(Kind::Video, false, 21, 1, 1340), t0 + ms(1340));
    assert_eq!(&sock.got.lock().unwrap()[..], b"x\x02\x0a\x0b\x14\x15");
    assert_eq!(hub.late_drops(), 2);
    assert_eq!(p.stats().drops, 0, "the player itself never fell behind");
}

#[test]
fn a_player_reached_later_than_queue_time_into_a_delivery_skips_to_the_next_keyframe() {
    let hub = aging_hub(Some(ms(500)));
    hub.push(vheader(2));
    let (first, slow) = direct_player(&hub, 1 << 20, b"x");
    let (second, sock) = direct_player(&hub, 1 << 20, b"y");
    for p in [&first, &second] {
        assert_eq!(p.flush_direct().unwrap(), Flushed::Empty);
    }
    let t0 = Instant::now();
    hub.push_at(timed(Kind::Video, true, 10, 1, 0), t0);
    // The first player's send of frame 11 takes 700 ms: the second one's turn comes later
    // than the bound, so frame 11 is stale for it, and so is what follows up to a keyframe.
    *slow.stall.lock().unwrap() = ms(700);
    hub.push_at(timed(Kind::Video, false, 11, 1, 40), t0 + ms(40));
    *slow.stall.lock().unwrap() = ms(0);
    // The stream goes on from a keyframe, on time.
    let t1 = Instant::now();
    let time = t1.duration_since(t0).as_millis() as u32;
    hub.push_at(timed(Kind::Video, true, 20, 1, time), t1);
    hub.push_at(timed(Kind::Video, false, 21, 1, time + 40), t1 + ms(40));
    assert_eq!(&slow.got.lock().unwrap()[..], b"x\x02\x0a\x0b\x14\x15");
    assert_eq!(&sock.got.lock().unwrap()[..], b"y\x02\x0a\x14\x15");
    assert_eq!((first.stats().drops, second.stats().drops), (0, 1));
    assert_eq!(hub.late_drops(), 0, "the input itself was on time");
}

#[test]
fn a_batch_goes_to_each_direct_player_in_one_send_and_in_order() {
    let hub = Hub::new(HubConfig::default());
    hub.push(vheader(2));
    let (p, sock) = direct_player(&hub, 1 << 20, b"");
    assert_eq!(p.flush_direct().unwrap(), Flushed::Empty);
    let queued = hub.add_player(peer());
    assert_eq!(drain(&queued), vec![2]);
    let before = sock.writes.load(Ordering::Relaxed);
    hub.push_batch([
        frame(Kind::Video, true, 10, 3),
        frame(Kind::Audio, false, 11, 2),
        aheader(3),
        frame(Kind::Video, false, 12, 1),
    ]);
    assert_eq!(sock.writes.load(Ordering::Relaxed) - before, 1, "one send");
    assert_eq!(&sock.got.lock().unwrap()[1..], [10, 10, 10, 11, 11, 3, 12]);
    assert!(p.is_empty());
    assert_eq!(p.stats().sends, 2);
    // A task-written player gets the same, queued in order.
    assert_eq!(drain(&queued), vec![10, 11, 3, 12]);
    // A joiner after the batch: headers and the GOP the batch started.
    let late = hub.add_player(peer());
    // (The audio header after media took the cached audio out.)
    assert_eq!(drain(&late), vec![2, 3, 10, 12]);
}

#[test]
fn a_batch_keeps_each_players_bounds_message_by_message() {
    let hub = Hub::new(HubConfig {
        queue_limit: 8,
        ..HubConfig::default()
    });
    let (p, sock) = direct_player(&hub, 100, b"x");
    assert_eq!(p.flush_direct().unwrap(), Flushed::Empty);
    // A batch is written after its last message, so until then its messages count toward
    // the player's bound: 10 and 11 fit (6 bytes), 12 would pass 8 and starts a skip that
    // the keyframe 20 cannot end (it does not fit either); 21 goes with the skip.
    hub.push_batch([
        frame(Kind::Video, true, 10, 3),
        frame(Kind::Video, false, 11, 3),
        frame(Kind::Video, false, 12, 3),
        frame(Kind::Video, true, 20, 3),
        frame(Kind::Video, false, 21, 3),
    ]);
    assert_eq!(&sock.got.lock().unwrap()[1..], [10, 10, 10, 11, 11, 11]);
    assert_eq!(p.stats().drops, 3);
    // The next keyframe finds the queue empty again.
    hub.push(frame(Kind::Video, true, 30, 3));
    assert_eq!(&sock.got.lock().unwrap()[7..], [30, 30, 30]);
}

#[test]
fn a_batch_waits_for_the_merging_thread_with_merged_writes() {
    let hub = Hub::new(HubConfig {
        merge_window: Some(std::time::Duration::from_secs(3600)),
        ..HubConfig::default()
    });
    let (p, sock) = direct_player(&hub, 1 << 20, b"x");
    hub.push_batch([
        frame(Kind::Video, true, 10, 1),
        frame(Kind::Audio, false, 11, 1),
    ]);
    // Nothing written before the window (an hour) ends: only queued.
    assert_eq!(&sock.got.lock().unwrap()[..], b"");
    assert_eq!(p.queued_bytes(), 3);
}
