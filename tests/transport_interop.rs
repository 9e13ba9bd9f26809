//! The transports against real clients: the relay of `common::relay` (the engine's
//! ServerSession on tokio behind one port that tells plain RTMP, RTMPE, TLS and HTTP apart by
//! the first byte). ffmpeg publishes over one transport; ffmpeg and rtmpdump play over others;
//! every frame must arrive (ffprobe counts against the input).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::relay::{Player, Relay, ffmpeg_player, rtmpdump_player, start_relay};
use common::*;
use gstrsrtmp::net::transport::tls::TlsServerConfig;
use gstrsrtmp::net::transport::tunnel::TunnelServerConfig;

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
    let deadline = Instant::now() + Duration::from_secs(60);
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
    // Short enough for the check at the end (sessions of clients that left without `/close`
    // expire), long enough that no polling client comes near it, however loaded the machine.
    let relay = start_relay(
        None,
        TunnelServerConfig {
            session_timeout: Duration::from_secs(10),
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
    let deadline = Instant::now() + Duration::from_secs(60);
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
