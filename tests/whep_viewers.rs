//! WHEP against GStreamer's own WebRTC stack: the fanout of `examples/browser/` serving 20
//! webrtcbin players at once from one RTMP ingest, the WHEP status codes, and the walls
//! between viewers: one that vanishes, one whose branch fails inside the server, and garbage
//! offers leave the others playing and the ingest running.

mod common;
mod webrtc;

#[path = "../examples/browser/mod.rs"]
mod browser;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use gst::prelude::*;

use browser::fanout::{Fanout, shared_branches};
use common::server_peers::wait_until;
use common::{PipelineGuard, ffmpeg_publisher, free_port, init_gst, pipeline, test_media};
use webrtc::{Player, bus_errors, http, post_offer, publisher};

const VIEWERS: usize = 20;
const WHEP: &str = "/live/ingest/whep";

/// The ingest (rtmpserversrc ! flvdemux) with the shared branches, its fanout and its WHEP
/// server: (pipeline, fanout, HTTP server, RTMP port).
fn start_server() -> (PipelineGuard, Fanout, browser::http::Server, u16) {
    init_gst();
    let rtmp_port = free_port();
    let server = pipeline(&format!(
        "rtmpserversrc address=127.0.0.1 port={rtmp_port} application=live stream=ingest ! \
         flvdemux name=d  d.video ! queue ! tee name=v  d.audio ! queue ! tee name=a {}",
        shared_branches("v. ! ", "a. ! ")
    ));
    server.set_state(gst::State::Playing).unwrap();
    let fanout = Fanout::attach(&server, vec!["127.0.0.1".into()], 50).unwrap();
    let streams = HashMap::from([("live/ingest".to_string(), fanout.clone())]);
    let site = Arc::new(browser::http::Site::new(streams, None));
    let http_server = browser::http::serve("127.0.0.1:0", site).unwrap();
    (server, fanout, http_server, rtmp_port)
}

#[test]
fn twenty_viewers_and_the_misbehaving_ones() {
    let (server, fanout, http_server, rtmp_port) = start_server();
    let port = http_server.port;

    // Nothing published yet: 409 with Retry-After; the other refusals need no stream.
    let early = Player::new();
    let r = post_offer(port, WHEP, &early.offer);
    assert_eq!(r.status, 409, "{r:?}");
    assert!(r.header("Retry-After").is_some());
    assert_eq!(
        post_offer(port, "/live/other/whep", &early.offer).status,
        404
    );
    let wrong_type = http(port, "POST", WHEP, &[("Content-Type", "text/plain")], "v=0");
    assert_eq!(wrong_type.status, 415);
    assert_eq!(http(port, "GET", WHEP, &[], "").status, 405);
    let options = http(port, "OPTIONS", WHEP, &[], "");
    assert_eq!(options.status, 204);
    assert_eq!(options.header("Accept-Post"), Some("application/sdp"));
    drop(early);

    let publisher = publisher(
        &format!("rtmp://127.0.0.1:{rtmp_port}/live/ingest"),
        320,
        180,
    );
    wait_until("the stream is live", Duration::from_secs(60), || {
        fanout.stats().live
    });

    // Twenty players join at once, each on its own thread.
    let joins: Vec<_> = (0..VIEWERS)
        .map(|_| {
            std::thread::spawn(move || {
                let mut p = Player::new();
                let r = p.join(port, WHEP);
                assert_eq!(r.status, 201, "POST: {r:?}");
                assert_eq!(r.header("Content-Type"), Some("application/sdp"));
                let location = r.header("Location").expect("a Location").to_string();
                assert!(location.starts_with("/live/ingest/whep/"), "{location}");
                assert!(
                    r.body.contains("a=candidate"),
                    "the answer has its candidates"
                );
                p
            })
        })
        .collect();
    let players: Vec<Player> = joins.into_iter().map(|j| j.join().unwrap()).collect();
    assert_eq!(fanout.stats().viewers, VIEWERS);
    wait_until(
        "every player decodes video and audio",
        Duration::from_secs(120),
        || {
            players.iter().all(|p| {
                let (v, a) = p.frames();
                v >= 30 && a >= 10
            })
        },
    );
    let counts: Vec<(u64, u64)> = players.iter().map(Player::frames).collect();
    println!("frames and audio buffers of each player: {counts:?}");

    // Offers the server cannot take: not SDP (400), SDP without H.264 (422).
    let garbage = post_offer(port, WHEP, "this is not an offer\r\n");
    assert_eq!(garbage.status, 400, "{garbage:?}");
    let no_h264 = post_offer(port, WHEP, &players[2].offer.replace("H264", "H266"));
    assert_eq!(no_h264.status, 422, "{no_h264:?}");

    // An offer webrtcbin refuses (no ICE credentials, no DTLS fingerprint): a 500, and the
    // server goes on.
    let broken: String = players[3]
        .offer
        .lines()
        .filter(|l| !l.starts_with("a=ice-") && !l.starts_with("a=fingerprint"))
        .map(|l| format!("{l}\r\n"))
        .collect();
    let refused = post_offer(port, WHEP, &broken);
    println!(
        "an offer without ICE credentials: {} {}",
        refused.status,
        refused.body.trim()
    );
    assert_eq!(refused.status, 500, "{refused:?}");
    assert_eq!(fanout.stats().viewers, VIEWERS);

    let mut players = players.into_iter();
    // Player 0 vanishes without a DELETE.
    drop(players.next());
    // Player 1's branch fails inside the server: the viewer goes, nothing else does.
    let failing = players.next().unwrap();
    let id = failing
        .session
        .as_deref()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap();
    let bin = server
        .by_name(&format!("whep-viewer-{id}"))
        .expect("the viewer's bin");
    let inside = bin
        .downcast_ref::<gst::Bin>()
        .unwrap()
        .iterate_elements()
        .into_iter()
        .flatten()
        .find(|e| e.factory().is_some_and(|f| f.name() == "webrtcbin"))
        .expect("the viewer's webrtcbin");
    gst::element_error!(inside, gst::StreamError::Failed, ["injected by the test"]);
    wait_until(
        "the failed viewer is removed",
        Duration::from_secs(30),
        || fanout.stats().viewers == VIEWERS - 1,
    );

    let rest: Vec<Player> = players.collect();
    let before: Vec<(u64, u64)> = rest.iter().map(Player::frames).collect();
    wait_until(
        "the other players keep playing",
        Duration::from_secs(120),
        || {
            rest.iter().zip(&before).all(|(p, (v0, a0))| {
                let (v, a) = p.frames();
                v >= v0 + 30 && a >= a0 + 10
            })
        },
    );

    // PATCH: trickled candidates are taken (204), ICE restarts are not (422).
    let session = rest[0].session.clone().unwrap();
    let frag = "a=ice-ufrag:abcd\r\na=ice-pwd:efghijklmnopqrstuvwxyz12\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\n\
                a=mid:0\r\na=candidate:1 1 UDP 2015363327 127.0.0.1 9 typ host\r\n";
    let trickle = [("Content-Type", "application/trickle-ice-sdpfrag")];
    assert_eq!(http(port, "PATCH", &session, &trickle, frag).status, 204);
    let restart = [trickle[0], ("If-Match", "*")];
    assert_eq!(http(port, "PATCH", &session, &restart, frag).status, 422);
    assert_eq!(
        http(port, "PATCH", "/live/ingest/whep/nope", &trickle, frag).status,
        404
    );

    // DELETE ends a session once.
    assert_eq!(http(port, "DELETE", &session, &[], "").status, 200);
    assert_eq!(http(port, "DELETE", &session, &[], "").status, 404);
    // The vanished player's receiver reports stopped: its viewer times out.
    wait_until(
        "the vanished player's viewer is removed",
        Duration::from_secs(120),
        || fanout.stats().viewers == VIEWERS - 3,
    );

    assert_eq!(
        bus_errors(&server),
        Vec::<String>::new(),
        "the ingest pipeline"
    );
    assert_eq!(
        bus_errors(&publisher),
        Vec::<String>::new(),
        "the publisher"
    );
    assert!(fanout.stats().live, "the stream is still live");
    assert!(
        !fanout.stats().reencoding,
        "x264 zerolatency has no B-frames"
    );
    drop(rest);
    fanout.remove_all();
}

/// FFmpeg publishes with B-frames (re-encoded for browsers), leaves, and rtmpclientsink
/// publishes without: the viewer that joined during the first stays and is moved back to
/// pass-through.
#[test]
fn a_viewer_follows_publishers_with_and_without_b_frames() {
    let (server, fanout, http_server, rtmp_port) = start_server();
    let url = format!("rtmp://127.0.0.1:{rtmp_port}/live/ingest");
    // FFmpeg's libx264 at its defaults (veryfast) makes B-frames.
    let mut ffmpeg = ffmpeg_publisher(&test_media(20), &url);
    wait_until("the B-frames are seen", Duration::from_secs(60), || {
        let s = fanout.stats();
        s.live && s.reencoding
    });
    let mut player = Player::new();
    let r = player.join(http_server.port, WHEP);
    assert_eq!(r.status, 201, "{r:?}");
    wait_until(
        "the re-encoded stream decodes",
        Duration::from_secs(60),
        || player.frames().0 >= 30,
    );

    common::interrupt(&mut ffmpeg);
    drop(ffmpeg);
    wait_until(
        "the first publisher is gone",
        Duration::from_secs(30),
        || !fanout.stats().live,
    );
    let _publisher = publisher(&url, 320, 180);
    wait_until(
        "the second publisher is live",
        Duration::from_secs(60),
        || {
            let s = fanout.stats();
            s.live && !s.reencoding
        },
    );
    let before = player.frames().0;
    wait_until(
        "the viewer decodes the pass-through stream",
        Duration::from_secs(60),
        || player.frames().0 >= before + 30,
    );
    assert_eq!(fanout.stats().viewers, 1);
    assert_eq!(
        bus_errors(&server),
        Vec::<String>::new(),
        "the ingest pipeline"
    );
    drop(player);
    fanout.remove_all();
}
