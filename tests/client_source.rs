//! rtmpclientsrc against a scripted engine server: timestamps (DTS from the RTMP timestamp
//! extended across the 32-bit wrap, PTS adding the composition time), and how a stream ends:
//! StreamEOF, a close without StreamEOF (EOS, or an error with `no-eof-is-error`), silence
//! with `idle-timeout`; and `async-connect=false`.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::{PlayScript, ScriptedServer, ServeEnd};
use gst::prelude::*;
use gstrsrtmp::rtmp::message::{Message, msg_type};

const BOUND: Duration = Duration::from_secs(60);

fn message(type_id: u8, timestamp: u32, payload: &'static [u8]) -> Message {
    Message {
        type_id,
        timestamp,
        stream_id: 1,
        payload: Bytes::from_static(payload),
    }
}

/// AVC sequence header, then key and inter frames across the 32-bit wrap, with composition
/// times 0x21 and 0x42 ms, and AAC.
fn wrapping_stream() -> Vec<Message> {
    let near = u32::MAX - 40;
    vec![
        message(
            msg_type::VIDEO,
            near,
            &[0x17, 0x00, 0, 0, 0, 1, 0x64, 0, 0x1f],
        ),
        message(msg_type::AUDIO, near, &[0xaf, 0x00, 0x11, 0x90]),
        message(msg_type::VIDEO, near, &[0x17, 0x01, 0, 0, 0x21, 0xaa]),
        message(msg_type::AUDIO, near.wrapping_add(21), &[0xaf, 0x01, 0x21]),
        message(
            msg_type::VIDEO,
            near.wrapping_add(33),
            &[0x27, 0x01, 0, 0, 0x42, 0xbb],
        ),
        message(msg_type::AUDIO, 1, &[0xaf, 0x01, 0x22]),
        message(msg_type::VIDEO, 26, &[0x27, 0x01, 0, 0, 0x21, 0xcc]),
    ]
}

/// (dts ms, pts ms, flags) of every buffer the source pushes.
type Seen = Arc<Mutex<Vec<(u64, u64, gst::BufferFlags)>>>;

fn play(server: &ScriptedServer, extra: &str) -> (common::RunEnd, Seen) {
    common::init_gst();
    // Nothing here waits for `timeout`: it only has to outlast the opening on a slow machine.
    let p = common::pipeline(&format!(
        "rtmpclientsrc name=src location=rtmp://127.0.0.1:{}/live/s timeout=30 {extra} ! fakesink",
        server.port
    ));
    let seen: Seen = Arc::default();
    let s = seen.clone();
    p.by_name("src")
        .unwrap()
        .static_pad("src")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(gst::PadProbeData::Buffer(b)) = &info.data {
                let ms = |t: Option<gst::ClockTime>| t.map_or(u64::MAX, |t| t.mseconds());
                s.lock()
                    .unwrap()
                    .push((ms(b.dts()), ms(b.pts()), b.flags()));
            }
            gst::PadProbeReturn::Ok
        });
    let end = common::run(&p, BOUND);
    (end, seen)
}

#[test]
fn timestamps_extend_across_the_wrap_and_pts_adds_composition_time() {
    let server = ScriptedServer::start(
        Box::new(|_, _| Ok(())),
        PlayScript::Serve(wrapping_stream(), ServeEnd::StreamEof),
    );
    let (end, seen) = play(&server, "");
    end.expect_eos();
    let seen = seen.lock().unwrap();
    let media: Vec<(u64, u64)> = seen
        .iter()
        .filter(|(_, _, f)| !f.contains(gst::BufferFlags::HEADER))
        .map(|(d, p, _)| (*d, *p))
        .collect();
    let base = u64::from(u32::MAX - 40);
    let wrap = 1u64 << 32;
    assert_eq!(
        media,
        vec![
            (base, base + 0x21),
            (base + 21, base + 21),
            (base + 33, base + 33 + 0x42),
            (wrap + 1, wrap + 1),
            (wrap + 26, wrap + 26 + 0x21),
        ]
    );
    // FLV header and the two sequence headers first, flagged HEADER.
    assert_eq!(seen.len(), 3 + 5);
    assert!(
        seen[..3]
            .iter()
            .all(|(_, _, f)| f.contains(gst::BufferFlags::HEADER))
    );
    assert!(
        seen[5].2.contains(gst::BufferFlags::DELTA_UNIT),
        "inter frame"
    );
}

#[test]
fn a_close_without_stream_eof_is_eos_or_an_error_as_configured() {
    let server = ScriptedServer::start(
        Box::new(|_, _| Ok(())),
        PlayScript::Serve(wrapping_stream(), ServeEnd::Close),
    );
    let (end, seen) = play(&server, "reconnect=false");
    end.expect_eos();
    assert_eq!(
        seen.lock().unwrap().len(),
        8,
        "everything before the close arrived"
    );

    let (end, _) = play(&server, "reconnect=false no-eof-is-error=true");
    let (e, _) = end.expect_error();
    println!("{e}");
    assert!(e.matches(gst::ResourceError::Read), "{e}");
    assert!(e.message().contains("connection lost"), "{e}");
}

#[test]
fn idle_timeout_ends_a_silent_stream() {
    let server = ScriptedServer::start(
        Box::new(|_, _| Ok(())),
        PlayScript::Serve(wrapping_stream(), ServeEnd::Silent),
    );
    let (end, seen) = play(&server, "idle-timeout=1");
    end.expect_eos();
    assert_eq!(seen.lock().unwrap().len(), 8);
}

#[test]
fn async_connect_false_connects_on_the_first_request() {
    let server = ScriptedServer::start(
        Box::new(|_, _| Ok(())),
        PlayScript::Serve(wrapping_stream(), ServeEnd::StreamEof),
    );
    let (end, seen) = play(&server, "async-connect=false");
    end.expect_eos();
    assert_eq!(seen.lock().unwrap().len(), 8);
    assert_eq!(server.log().connects.len(), 1);
}
