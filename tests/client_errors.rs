//! Failures reach the application as clear errors in the right GStreamer domain, carrying the
//! server's own description, within the `timeout` (the runs are bounded; no test measures
//! time): nothing listening, a peer that accepts and closes, one that sends garbage, one that
//! never answers, a server that rejects the connect, and a stream that does not exist.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{PlayScript, ScriptedServer};
use gst::prelude::*;

const BOUND: Duration = Duration::from_secs(60);
/// The `timeout` of runs that fail for another reason: long enough never to fire first.
const GENEROUS: u32 = 30;

/// How a hand-made bad peer behaves once it accepted a connection.
#[derive(Clone, Copy)]
enum Bad {
    AcceptAndClose,
    Garbage,
    Silent,
}

/// A loopback listener that misbehaves as told, until dropped.
struct BadPeer {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BadPeer {
    fn start(mode: Bad) -> BadPeer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            while !stop2.load(Ordering::SeqCst) {
                let Ok((mut s, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                s.set_nonblocking(false).unwrap();
                match mode {
                    Bad::AcceptAndClose => drop(s),
                    Bad::Garbage => {
                        let mut c0c1 = [0u8; 1537];
                        let _ = s.read_exact(&mut c0c1);
                        // An HTTP answer where S0 (the version byte 3) belongs, then noise.
                        let mut junk = b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec();
                        junk.extend((0..4000u32).map(|i| (i * 7919 % 251) as u8));
                        let _ = s.write_all(&junk);
                        held.push(s);
                    }
                    Bad::Silent => held.push(s),
                }
            }
        });
        BadPeer {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for BadPeer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Runs a source and a sink pipeline with `timeout` (seconds) against `port` and returns
/// both errors.
fn both_fail(port: u16, timeout: u32) -> [(gst::glib::Error, String); 2] {
    common::init_gst();
    let media = common::test_media(3);
    let src = common::pipeline(&format!(
        "rtmpclientsrc location=rtmp://127.0.0.1:{port}/live/s timeout={timeout} ! fakesink"
    ));
    let sink = common::pipeline(&format!(
        "filesrc location={} ! rtmpclientsink location=rtmp://127.0.0.1:{port}/live/s timeout={timeout}",
        media.display()
    ));
    [
        common::run(&src, BOUND).expect_error(),
        common::run(&sink, BOUND).expect_error(),
    ]
}

fn check(errors: [(gst::glib::Error, String); 2], expect: &[&str]) {
    let [(src, _), (sink, _)] = errors;
    println!("source: {src}\nsink:   {sink}");
    assert!(src.matches(gst::ResourceError::OpenRead), "{src}");
    assert!(sink.matches(gst::ResourceError::OpenWrite), "{sink}");
    for text in expect {
        assert!(src.message().contains(text), "{src} lacks {text:?}");
        assert!(sink.message().contains(text), "{sink} lacks {text:?}");
    }
}

#[test]
fn nothing_listening_is_refused() {
    let port = common::free_port();
    check(
        both_fail(port, GENEROUS),
        &[&format!("127.0.0.1:{port}"), "refused"],
    );
}

#[test]
fn a_peer_that_accepts_and_closes() {
    let peer = BadPeer::start(Bad::AcceptAndClose);
    // Closed or reset, depending on whether our C0+C1 was read: either way, in the handshake.
    check(
        both_fail(peer.port, GENEROUS),
        &[&format!("127.0.0.1:{}", peer.port), "handshake"],
    );
}

#[test]
fn a_peer_that_sends_garbage() {
    let peer = BadPeer::start(Bad::Garbage);
    check(
        both_fail(peer.port, GENEROUS),
        &[&format!("127.0.0.1:{}", peer.port), "handshake"],
    );
}

#[test]
fn a_peer_that_never_answers_times_out() {
    let peer = BadPeer::start(Bad::Silent);
    // The one run here that waits for the timeout: nothing else has to happen before it.
    check(
        both_fail(peer.port, 2),
        &[
            &format!("127.0.0.1:{}", peer.port),
            "no answer within 2000 ms",
        ],
    );
}

#[test]
fn a_rejected_connect_is_not_authorized_with_the_servers_words() {
    let description = "[ AccessManager.Reject ] : [ code=403 ] : go away";
    let server = ScriptedServer::start(
        Box::new(move |_, _| Err(description.to_string())),
        PlayScript::NotFound(String::new()),
    );
    let [(src, _), (sink, _)] = both_fail(server.port, GENEROUS);
    for e in [&src, &sink] {
        println!("{e}");
        assert!(e.matches(gst::ResourceError::NotAuthorized), "{e}");
        assert!(e.message().contains(description), "{e}");
        assert!(
            e.message().contains("NetConnection.Connect.Rejected"),
            "{e}"
        );
    }
}

#[test]
fn a_missing_stream_is_not_found_with_the_servers_words() {
    common::init_gst();
    let server = ScriptedServer::start(
        Box::new(|_, _| Ok(())),
        PlayScript::NotFound("No such stream: nothere".into()),
    );
    let p = common::pipeline(&format!(
        "rtmpclientsrc location=rtmp://127.0.0.1:{}/live/nothere timeout={GENEROUS} ! fakesink",
        server.port
    ));
    let (e, _) = common::run(&p, BOUND).expect_error();
    println!("{e}");
    assert!(e.matches(gst::ResourceError::NotFound), "{e}");
    assert!(e.message().contains("No such stream: nothere"), "{e}");
    assert!(e.message().contains("NetStream.Play.StreamNotFound"), "{e}");
}

#[test]
fn errors_post_connect_progress_first() {
    common::init_gst();
    let port = common::free_port();
    let p = common::pipeline(&format!(
        "rtmpclientsrc location=rtmp://127.0.0.1:{port}/live/s ! fakesink"
    ));
    let bus = p.bus().unwrap();
    let _ = p.set_state(gst::State::Playing);
    let mut kinds = Vec::new();
    while let Some(msg) = bus.timed_pop(gst::ClockTime::from_seconds(60)) {
        match msg.view() {
            gst::MessageView::Progress(pr) => kinds.push(pr.get().0),
            gst::MessageView::Error(_) => break,
            _ => {}
        }
    }
    p.set_state(gst::State::Null).unwrap();
    assert_eq!(
        kinds,
        vec![gst::ProgressType::Start, gst::ProgressType::Error]
    );
}

#[test]
fn input_that_is_not_flv_is_a_decode_error() {
    common::init_gst();
    let server =
        ScriptedServer::start(Box::new(|_, _| Ok(())), PlayScript::NotFound(String::new()));
    let dir = common::TempDir::new("notflv");
    let junk = dir.path().join("junk.bin");
    std::fs::write(&junk, b"this is a text file, not FLV at all\n".repeat(100)).unwrap();
    let p = common::pipeline(&format!(
        "filesrc location={} ! rtmpclientsink location=rtmp://127.0.0.1:{}/live/s",
        junk.display(),
        server.port
    ));
    let (e, _) = common::run(&p, BOUND).expect_error();
    println!("{e}");
    assert!(e.matches(gst::StreamError::Decode), "{e}");
    assert!(e.message().contains("not FLV"), "{e}");
}

#[test]
fn a_refused_publish_is_not_authorized_with_the_servers_words() {
    common::init_gst();
    let server = ScriptedServer::start_with(
        Box::new(|_, _| Ok(())),
        PlayScript::NotFound(String::new()),
        Some("Stream key taken: s".into()),
    );
    let media = common::test_media(3);
    let p = common::pipeline(&format!(
        "filesrc location={} ! rtmpclientsink location=rtmp://127.0.0.1:{}/live/s timeout={GENEROUS}",
        media.display(),
        server.port
    ));
    let (e, _) = common::run(&p, BOUND).expect_error();
    println!("{e}");
    assert!(e.matches(gst::ResourceError::NotAuthorized), "{e}");
    assert!(e.message().contains("NetStream.Publish.BadName"), "{e}");
    assert!(e.message().contains("Stream key taken: s"), "{e}");
}
