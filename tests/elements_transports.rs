//! Our client elements against our server elements, over every scheme: rtmpclientsink
//! publishes a real H.264+AAC FLV into rtmpserversrc, and rtmpclientsrc plays what
//! rtmpserversink serves. Every frame must arrive, with timestamps that never go back.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::server_peers::*;
use common::{TempDir, ffprobe_counts, self_signed_cert, test_media};
use gst::prelude::*;

const DEADLINE: Duration = Duration::from_secs(60);
/// Both ends run their handshakes (RTMPE's Diffie-Hellman, TLS, the tunnel's polling) in this
/// debug build, on the same machine: the client's `timeout` and the server's
/// `handshake-timeout` are made generous so that a loaded machine never hits them.
const TIMEOUTS_CLIENT: &str = "timeout=30";
const TIMEOUTS_SERVER: &str = "handshake-timeout=30";

/// TLS properties for the server (a fresh self-signed certificate), empty for schemes that do
/// not need them.
fn server_tls(scheme: &str, dir: &Path) -> String {
    if scheme == "rtmps" || scheme == "rtmpts" {
        let (cert, key) = self_signed_cert(dir, scheme);
        format!(
            "tls-certificate-file={} tls-key-file={}",
            cert.display(),
            key.display()
        )
    } else {
        String::new()
    }
}

fn media() -> PathBuf {
    test_media(3)
}

fn publish_into_serversrc(scheme: &str) {
    let media = media();
    let dir = TempDir::new(&format!("el-pub-{scheme}"));
    let server = Pipeline::parse(&format!(
        "rtmpserversrc name=src address=127.0.0.1 port=0 stream=s eos-on-unpublish=true \
         {TIMEOUTS_SERVER} {} ! \
         flvdemux name=d \
         d.video ! queue ! appsink name=v sync=false \
         d.audio ! queue ! appsink name=a sync=false",
        server_tls(scheme, dir.path())
    ));
    let v = count_appsink(&server, "v");
    let a = count_appsink(&server, "a");
    server.play();
    let port = server.port("src");

    // Raw FLV straight from the file: rtmpclientsink parses it.
    let client = Pipeline::parse(&format!(
        "filesrc location={} ! rtmpclientsink name=sink \
         location={scheme}://127.0.0.1:{port}/live/s tls-validation-flags=0 {TIMEOUTS_CLIENT}",
        media.display()
    ));
    client.play();
    client.wait_eos(DEADLINE);
    server.wait_eos(DEADLINE);

    let (nv, na) = ffprobe_counts(&media);
    let (v, a) = (v.lock().unwrap().clone(), a.lock().unwrap().clone());
    assert_eq!(v.buffers as u64, nv, "{scheme}: video frames");
    assert_eq!(a.buffers as u64, na, "{scheme}: audio frames");
    assert_eq!(
        v.backwards + a.backwards,
        0,
        "{scheme}: timestamps went back"
    );
}

fn play_from_serversink(scheme: &str) {
    let media = media();
    let dir = TempDir::new(&format!("el-play-{scheme}"));
    // The sink serves the file paced by the clock so the player is in before the first frame
    // would have gone out; the GOP cache covers the start in any case.
    let server = Pipeline::parse(&format!(
        "filesrc location={} ! flvdemux name=d \
         flvmux name=m streamable=true ! rtmpserversink name=sink address=127.0.0.1 port=0 \
         stream=s sync=true {TIMEOUTS_SERVER} {} \
         d.video ! queue ! m.video  d.audio ! queue ! m.audio",
        media.display(),
        server_tls(scheme, dir.path())
    ));
    let (connected, _) = count_clients(&server.by_name("sink"));
    // Start paused so nothing flows before the player is there.
    server
        .0
        .set_state(gst::State::Paused)
        .expect("server to PAUSED");
    let port = wait_port(&server);

    let client = Pipeline::parse(&format!(
        "rtmpclientsrc location={scheme}://127.0.0.1:{port}/live/s tls-validation-flags=0 \
         reconnect=false {TIMEOUTS_CLIENT} ! flvdemux name=d \
         d.video ! queue ! appsink name=v sync=false \
         d.audio ! queue ! appsink name=a sync=false"
    ));
    let v = count_appsink(&client, "v");
    let a = count_appsink(&client, "a");
    client.play();
    wait_until("the player", DEADLINE, || {
        connected.load(Ordering::SeqCst) == 1
    });
    server.play();
    server.wait_eos(DEADLINE);
    client.wait_eos(DEADLINE);

    let (nv, na) = ffprobe_counts(&media);
    let (v, a) = (v.lock().unwrap().clone(), a.lock().unwrap().clone());
    assert_eq!(v.buffers as u64, nv, "{scheme}: video frames");
    assert_eq!(a.buffers as u64, na, "{scheme}: audio frames");
    assert_eq!(
        v.backwards + a.backwards,
        0,
        "{scheme}: timestamps went back"
    );
}

/// The sink binds its port when it starts (READY→PAUSED); read it back.
fn wait_port(p: &Pipeline) -> u16 {
    let mut port = 0u32;
    wait_until("the server port", DEADLINE, || {
        port = p.by_name("sink").property("port");
        port != 0
    });
    port as u16
}

#[test]
fn clientsink_to_serversrc_over_rtmp() {
    publish_into_serversrc("rtmp");
}
#[test]
fn clientsink_to_serversrc_over_rtmps() {
    publish_into_serversrc("rtmps");
}
#[test]
fn clientsink_to_serversrc_over_rtmpt() {
    publish_into_serversrc("rtmpt");
}
#[test]
fn clientsink_to_serversrc_over_rtmpts() {
    publish_into_serversrc("rtmpts");
}
#[test]
fn clientsink_to_serversrc_over_rtmpe() {
    publish_into_serversrc("rtmpe");
}
#[test]
fn clientsink_to_serversrc_over_rtmpte() {
    publish_into_serversrc("rtmpte");
}
#[test]
fn clientsrc_from_serversink_over_rtmp() {
    play_from_serversink("rtmp");
}
#[test]
fn clientsrc_from_serversink_over_rtmps() {
    play_from_serversink("rtmps");
}
#[test]
fn clientsrc_from_serversink_over_rtmpt() {
    play_from_serversink("rtmpt");
}
#[test]
fn clientsrc_from_serversink_over_rtmpts() {
    play_from_serversink("rtmpts");
}
#[test]
fn clientsrc_from_serversink_over_rtmpe() {
    play_from_serversink("rtmpe");
}
#[test]
fn clientsrc_from_serversink_over_rtmpte() {
    play_from_serversink("rtmpte");
}
