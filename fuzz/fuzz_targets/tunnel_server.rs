//! The RTMPT server (hyper HTTP/1.1 + session table) fed arbitrary request bytes over an
//! in-memory duplex, on a current-thread tokio runtime with paused time (timeouts fire as
//! soon as everything is idle, so runs are quick and repeatable).
//!
//! Session ids are random, so the input may say `@ID@` wherever it wants the id of the
//! latest opened session: the harness sends the bytes before the marker, reads the answers,
//! and puts the id from the last `/open` answer in the marker's place. Accepted tunnels are
//! served by an echo task, so `send`/`idle` answers carry data.
//!
//! Requires the `tunnel` feature (links the root crate and GStreamer).

#![no_main]

use std::net::SocketAddr;
use std::sync::Once;
use std::time::Duration;

use gstrsrtmp::net::transport::tunnel::{TunnelServer, TunnelServerConfig};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MARKER: &[u8] = b"@ID@";

/// The id in the last `200` answer whose body is 16 alphanumerics and a newline.
fn last_id(answers: &[u8]) -> Option<Vec<u8>> {
    let mut found = None;
    let mut rest = answers;
    while let Some(i) = rest.windows(4).position(|w| w == b"\r\n\r\n") {
        let body = &rest[i + 4..];
        if body.len() >= 17 && body[16] == b'\n' && body[..16].iter().all(u8::is_ascii_alphanumeric)
        {
            found = Some(body[..16].to_vec());
        }
        rest = body;
    }
    found
}

async fn read_for(client: &mut tokio::io::DuplexStream, wait: Duration, out: &mut Vec<u8>) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(wait, client.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return false,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return true,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let _ = gst::init();
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    rt.block_on(async {
        let config = TunnelServerConfig {
            session_timeout: Duration::from_secs(5),
            max_body: 8192,
            max_response: 2048,
            max_sessions: 4,
            header_timeout: Duration::from_secs(2),
        };
        let (server, mut accepted) = TunnelServer::new(config);
        tokio::spawn(async move {
            while let Some(tunnel) = accepted.recv().await {
                tokio::spawn(async move {
                    let mut stream = tunnel.stream;
                    let _ = stream.session_id();
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = stream.read(&mut buf).await {
                        if n == 0 || stream.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = stream.shutdown().await;
                });
            }
        });
        let (mut client, server_io) = tokio::io::duplex(64 * 1024);
        let peer: SocketAddr = "127.0.0.1:1935".parse().expect("address");
        let conn = tokio::spawn({
            let server = server.clone();
            async move { server.serve_connection(server_io, peer).await }
        });

        let mut answers = Vec::new();
        let mut segments = Vec::new();
        let mut rest = data;
        while let Some(i) = rest.windows(MARKER.len()).position(|w| w == MARKER) {
            segments.push(&rest[..i]);
            rest = &rest[i + MARKER.len()..];
        }
        segments.push(rest);

        let mut open = true;
        for (i, segment) in segments.iter().enumerate() {
            if i > 0 {
                if !read_for(&mut client, Duration::from_millis(50), &mut answers).await {
                    open = false;
                }
                let id = last_id(&answers).unwrap_or_else(|| b"0000000000000000".to_vec());
                if !open || client.write_all(&id).await.is_err() {
                    break;
                }
            }
            if client.write_all(segment).await.is_err() {
                open = false;
                break;
            }
        }
        if open {
            let _ = client.shutdown().await;
        }
        // Read everything until the server closes (paused time: the header timeout ends a
        // stalled connection at once).
        let _ = tokio::time::timeout(Duration::from_secs(30), async {
            let mut buf = [0u8; 4096];
            while let Ok(n) = client.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
        drop(client);
        let _ = tokio::time::timeout(Duration::from_secs(30), conn).await;
        assert!(
            server.session_count() <= 4,
            "more sessions than max_sessions"
        );
    });
});
