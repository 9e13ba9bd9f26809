//! The RTMPT tunnel, client and server, on loopback: bytes both ways (several MB, byte-exact),
//! pipelined requests, sessions spread over connections, expiry, and the server's answers to
//! hostile or broken requests (unknown session, absurd Content-Length, non-POST). Raw
//! requests are written by hand on a TcpStream so the server is checked against exact bytes.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use gstrsrtmp::net::transport::tunnel::{
    AcceptedTunnel, TunnelClientOptions, TunnelServer, TunnelServerConfig, client,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const DEADLINE: Duration = Duration::from_secs(30);

/// A tunnel server on a free loopback port, every connection served on its own task.
async fn start_server(
    config: TunnelServerConfig,
) -> (SocketAddr, TunnelServer, mpsc::Receiver<AcceptedTunnel>) {
    common::init_gst();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (server, accepted) = TunnelServer::new(config);
    let s = server.clone();
    tokio::spawn(async move {
        while let Ok((sock, peer)) = listener.accept().await {
            let s = s.clone();
            tokio::spawn(async move { s.serve_connection(sock, peer).await });
        }
    });
    (addr, server, accepted)
}

async fn next_tunnel(accepted: &mut mpsc::Receiver<AcceptedTunnel>) -> AcceptedTunnel {
    tokio::time::timeout(DEADLINE, accepted.recv())
        .await
        .expect("no tunnel session arrived in time")
        .expect("accept queue closed")
}

/// Deterministic bytes that differ everywhere, so a lost, doubled or reordered piece shows.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Echoes everything on every session it is given until the client ends it.
fn spawn_echo(mut accepted: mpsc::Receiver<AcceptedTunnel>) {
    tokio::spawn(async move {
        while let Some(t) = accepted.recv().await {
            tokio::spawn(async move {
                let (mut rd, mut wr) = tokio::io::split(t.stream);
                let _ = tokio::io::copy(&mut rd, &mut wr).await;
            });
        }
    });
}

struct RawResponse {
    status_line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn status(&self) -> u16 {
        self.status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }
}

fn raw_request(method: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-fcs\r\n\
         Connection: Keep-Alive\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// Reads one HTTP response the way librtmp does: status line, headers, Content-Length body.
async fn read_response(rd: &mut BufReader<TcpStream>) -> RawResponse {
    tokio::time::timeout(DEADLINE, async {
        let mut status_line = String::new();
        rd.read_line(&mut status_line).await.unwrap();
        assert!(
            !status_line.is_empty(),
            "connection closed before a response"
        );
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            rd.read_line(&mut line).await.unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (n, v) = line.split_once(':').expect("header line");
            headers.push((n.trim().to_string(), v.trim().to_string()));
        }
        let mut r = RawResponse {
            status_line: status_line.trim_end().to_string(),
            headers,
            body: Vec::new(),
        };
        assert!(
            r.header("transfer-encoding").is_none(),
            "chunked answers break librtmp: {}",
            r.status_line
        );
        let len: usize = r
            .header("content-length")
            .expect("every answer has Content-Length")
            .parse()
            .unwrap();
        r.body = vec![0; len];
        rd.read_exact(&mut r.body).await.unwrap();
        r
    })
    .await
    .expect("no response in time")
}

async fn connect_raw(addr: SocketAddr) -> BufReader<TcpStream> {
    BufReader::new(TcpStream::connect(addr).await.unwrap())
}

async fn post(conn: &mut BufReader<TcpStream>, path: &str, body: &[u8]) -> RawResponse {
    conn.get_mut()
        .write_all(&raw_request("POST", path, body))
        .await
        .unwrap();
    read_response(conn).await
}

async fn open_raw(conn: &mut BufReader<TcpStream>) -> String {
    let r = post(conn, "/open/1", &[0]).await;
    assert!(
        r.status_line.starts_with("HTTP/1.1 200 "),
        "{}",
        r.status_line
    );
    assert_eq!(r.header("content-type"), Some("application/x-fcs"));
    let text = String::from_utf8(r.body).unwrap();
    assert!(text.ends_with('\n'), "session id line {text:?}");
    let id = text.trim_end().to_string();
    assert!(
        id.len() >= 8 && id.bytes().all(|b| b.is_ascii_alphanumeric()),
        "session id {id:?}"
    );
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn megabytes_flow_both_ways_byte_exact() {
    let (addr, server, mut accepted) = start_server(TunnelServerConfig::default()).await;
    let up = pattern(5 * 1024 * 1024 + 17, 1);
    let down = pattern(6 * 1024 * 1024 + 3, 2);

    let stream = client::connect(
        "127.0.0.1",
        addr.port(),
        None,
        &TunnelClientOptions::default(),
    )
    .await
    .unwrap();
    let tunnel = next_tunnel(&mut accepted).await;
    assert_eq!(tunnel.stream.session_id(), stream.session_id());
    assert_eq!(tunnel.peer.ip(), addr.ip());

    let (up2, down2) = (up.clone(), down.clone());
    let server_side = tokio::spawn(async move {
        let (mut rd, mut wr) = tokio::io::split(tunnel.stream);
        let writer = tokio::spawn(async move {
            wr.write_all(&down2).await.unwrap();
            wr
        });
        let mut got = vec![0u8; up2.len()];
        rd.read_exact(&mut got).await.unwrap();
        let wr = writer.await.unwrap();
        (got == up2, rd.unsplit(wr))
    });
    let (mut rd, mut wr) = tokio::io::split(stream);
    let writer = tokio::spawn(async move {
        wr.write_all(&up).await.unwrap();
        wr
    });
    let mut got = vec![0u8; down.len()];
    tokio::time::timeout(DEADLINE, rd.read_exact(&mut got))
        .await
        .expect("download timed out")
        .unwrap();
    assert!(got == down, "server→client bytes differ");
    let _wr = writer.await.unwrap();
    let (up_ok, _server_stream) = tokio::time::timeout(DEADLINE, server_side)
        .await
        .expect("upload timed out")
        .unwrap();
    assert!(up_ok, "client→server bytes differ");
    assert_eq!(server.session_count(), 1);
}

/// An echo answers everything it gets: the server must not let unsent answers pile up until
/// the echo (blocked writing) stops reading the next upload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_echo_never_stalls() {
    let (addr, _server, accepted) = start_server(TunnelServerConfig::default()).await;
    spawn_echo(accepted);
    let stream = client::connect(
        "127.0.0.1",
        addr.port(),
        None,
        &TunnelClientOptions::default(),
    )
    .await
    .unwrap();
    let data = pattern(4 * 1024 * 1024, 3);
    let (mut rd, mut wr) = tokio::io::split(stream);
    let sent = data.clone();
    let writer = tokio::spawn(async move { wr.write_all(&sent).await.map(|_| wr) });
    let mut back = vec![0u8; data.len()];
    tokio::time::timeout(DEADLINE, rd.read_exact(&mut back))
        .await
        .expect("echo stalled")
        .unwrap();
    assert!(back == data, "echoed bytes differ");
    writer.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_small_round_trips() {
    let (addr, _server, accepted) = start_server(TunnelServerConfig::default()).await;
    spawn_echo(accepted);
    let mut stream = client::connect(
        "127.0.0.1",
        addr.port(),
        None,
        &TunnelClientOptions::default(),
    )
    .await
    .unwrap();
    for i in 0..200u32 {
        let msg = pattern(1 + (i as usize * 37) % 3000, i as u64 + 10);
        stream.write_all(&msg).await.unwrap();
        let mut back = vec![0u8; msg.len()];
        tokio::time::timeout(DEADLINE, stream.read_exact(&mut back))
            .await
            .expect("echo timed out")
            .unwrap();
        assert_eq!(back, msg, "round trip {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_close_ends_the_server_stream_and_the_session() {
    let (addr, server, mut accepted) = start_server(TunnelServerConfig::default()).await;
    let mut stream = client::connect(
        "127.0.0.1",
        addr.port(),
        None,
        &TunnelClientOptions::default(),
    )
    .await
    .unwrap();
    let mut tunnel = next_tunnel(&mut accepted).await;
    stream.write_all(b"last words").await.unwrap();
    stream.shutdown().await.unwrap();
    drop(stream);
    let mut got = Vec::new();
    tokio::time::timeout(DEADLINE, tunnel.stream.read_to_end(&mut got))
        .await
        .expect("server stream did not end")
        .unwrap();
    assert_eq!(got, b"last words");
    assert_eq!(server.session_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_close_reaches_the_client_as_end_of_stream() {
    let (addr, server, mut accepted) = start_server(TunnelServerConfig::default()).await;
    let mut stream = client::connect(
        "127.0.0.1",
        addr.port(),
        None,
        &TunnelClientOptions::default(),
    )
    .await
    .unwrap();
    let mut tunnel = next_tunnel(&mut accepted).await;
    tunnel.stream.write_all(b"goodbye").await.unwrap();
    drop(tunnel);
    let mut got = Vec::new();
    tokio::time::timeout(DEADLINE, stream.read_to_end(&mut got))
        .await
        .expect("client stream did not end")
        .expect("a clean end, not an error");
    assert_eq!(got, b"goodbye");
    assert_eq!(server.session_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_order() {
    let (addr, _server, accepted) = start_server(TunnelServerConfig::default()).await;
    spawn_echo(accepted);
    let mut conn = connect_raw(addr).await;
    let id = open_raw(&mut conn).await;

    // librtmp style: several sends written back to back, then an idle, without waiting.
    let mut burst = Vec::new();
    burst.extend(raw_request("POST", &format!("/send/{id}/0"), b"abc"));
    burst.extend(raw_request("POST", &format!("/send/{id}/1"), b"defg"));
    burst.extend(raw_request("POST", &format!("/idle/{id}/2"), &[0]));
    burst.extend(raw_request("POST", &format!("/send/{id}/3"), b"hij"));
    conn.get_mut().write_all(&burst).await.unwrap();
    let mut echoed = Vec::new();
    for _ in 0..4 {
        let r = read_response(&mut conn).await;
        assert!(
            r.status_line.starts_with("HTTP/1.1 200 "),
            "{}",
            r.status_line
        );
        assert_eq!(r.header("content-type"), Some("application/x-fcs"));
        assert!(!r.body.is_empty(), "send/idle answers carry a polling byte");
        assert!(r.body[0] >= 1, "polling byte {}", r.body[0]);
        echoed.extend_from_slice(&r.body[1..]);
    }
    // Whatever the echo had not written yet comes with later idles.
    let mut seq = 4;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while echoed.len() < 10 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "echoed so far: {echoed:?}"
        );
        let r = post(&mut conn, &format!("/idle/{id}/{seq}"), &[0]).await;
        echoed.extend_from_slice(&r.body[1..]);
        seq += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(echoed, b"abcdefghij");
    let r = post(&mut conn, &format!("/close/{id}/{seq}"), &[0]).await;
    assert_eq!((r.status(), r.body.as_slice()), (200, &[0u8][..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_outlives_its_connection() {
    let (addr, _server, accepted) = start_server(TunnelServerConfig::default()).await;
    spawn_echo(accepted);
    let id = {
        let mut first = connect_raw(addr).await;
        open_raw(&mut first).await
    };
    let mut second = connect_raw(addr).await;
    let r = post(&mut second, &format!("/send/{id}/0"), b"hello").await;
    assert_eq!(r.status(), 200);
    let mut echoed = r.body[1..].to_vec();
    drop(second);
    let mut third = connect_raw(addr).await;
    let mut seq = 1;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while echoed.len() < 5 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "echoed so far: {echoed:?}"
        );
        let r = post(&mut third, &format!("/idle/{id}/{seq}"), &[0]).await;
        assert_eq!(r.status(), 200);
        echoed.extend_from_slice(&r.body[1..]);
        seq += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(echoed, b"hello");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_polls_back_off_like_red5() {
    let (addr, _server, mut accepted) = start_server(TunnelServerConfig::default()).await;
    let mut conn = connect_raw(addr).await;
    let id = open_raw(&mut conn).await;
    let _tunnel = next_tunnel(&mut accepted).await;
    let mut bytes = Vec::new();
    for seq in 0..16 {
        let r = post(&mut conn, &format!("/idle/{id}/{seq}"), &[0]).await;
        assert_eq!(r.body.len(), 1, "nothing pending, so only the polling byte");
        bytes.push(r.body[0]);
    }
    assert_eq!(
        bytes,
        [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 5, 9, 0x11, 0x21, 0x21]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sessions_expire() {
    let config = TunnelServerConfig {
        session_timeout: Duration::from_millis(300),
        ..TunnelServerConfig::default()
    };
    let (addr, server, mut accepted) = start_server(config).await;
    let mut conn = connect_raw(addr).await;
    let id = open_raw(&mut conn).await;
    // (Not asserting the session is there now: on a loaded machine it may be gone already.)
    let mut tunnel = next_tunnel(&mut accepted).await;

    // The RTMP side learns why its stream ended.
    let mut buf = [0u8; 16];
    let err = tokio::time::timeout(DEADLINE, tunnel.stream.read(&mut buf))
        .await
        .expect("expiry never came")
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    assert!(
        err.to_string().contains(&id) && err.to_string().contains("expired"),
        "{err}"
    );
    assert_eq!(server.session_count(), 0);
    let r = post(&mut conn, &format!("/idle/{id}/0"), &[0]).await;
    assert_eq!(r.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_session_is_refused_and_the_connection_stays_usable() {
    let (addr, _server, _accepted) = start_server(TunnelServerConfig::default()).await;
    let mut conn = connect_raw(addr).await;
    for path in [
        "/idle/NoSuchSession/0",
        "/send/NoSuchSession/0",
        "/close/x/1",
        "/what",
    ] {
        let r = post(&mut conn, path, &[0]).await;
        assert_eq!(r.status(), 404, "{path}: {}", r.status_line);
    }
    let r = post(&mut conn, "/fcs/ident2", &[0]).await;
    assert_eq!(r.status(), 404);
    open_raw(&mut conn).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_content_length_gets_413_and_the_connection_closed() {
    let (addr, _server, accepted) = start_server(TunnelServerConfig::default()).await;
    spawn_echo(accepted);
    let mut conn = connect_raw(addr).await;
    let id = open_raw(&mut conn).await;
    let head = format!(
        "POST /send/{id}/0 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-fcs\r\n\
         Content-Length: 1000000000\r\n\r\nxxxxxxxx"
    );
    conn.get_mut().write_all(head.as_bytes()).await.unwrap();
    let r = read_response(&mut conn).await;
    assert_eq!(r.status(), 413, "{}", r.status_line);
    let mut rest = Vec::new();
    let n = tokio::time::timeout(DEADLINE, conn.read_to_end(&mut rest))
        .await
        .expect("connection not closed after 413")
        .unwrap_or(0);
    assert_eq!(n, 0, "nothing may follow the 413");

    // Another client is still served, and so is the session on a new connection.
    let mut other = connect_raw(addr).await;
    open_raw(&mut other).await;
    let r = post(&mut other, &format!("/send/{id}/1"), b"ok").await;
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_post_is_served() {
    let (addr, _server, _accepted) = start_server(TunnelServerConfig::default()).await;
    let mut conn = connect_raw(addr).await;
    for method in ["GET", "PUT", "DELETE"] {
        conn.get_mut()
            .write_all(&raw_request(method, "/open/1", &[0]))
            .await
            .unwrap();
        let r = read_response(&mut conn).await;
        assert_eq!(r.status(), 405, "{method}: {}", r.status_line);
        assert_eq!(r.header("allow"), Some("POST"));
    }
    open_raw(&mut conn).await;
}

/// A stand-in server that answers `/open/1` with `open_body` and every later request with
/// `status`, to see how the client reports a broken server.
async fn broken_server(open_body: &'static str, status: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut conn = BufReader::new(sock);
                loop {
                    let mut request_line = String::new();
                    if conn.read_line(&mut request_line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let mut len = 0usize;
                    loop {
                        let mut line = String::new();
                        conn.read_line(&mut line).await.unwrap();
                        let line = line.trim_end().to_ascii_lowercase();
                        if line.is_empty() {
                            break;
                        }
                        if let Some(v) = line.strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0u8; len];
                    conn.read_exact(&mut body).await.unwrap();
                    let answer = if request_line.contains("/open/1") {
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{open_body}",
                            open_body.len()
                        )
                    } else {
                        format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n")
                    };
                    conn.get_mut().write_all(answer.as_bytes()).await.unwrap();
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_reports_a_failing_server_on_read() {
    common::init_gst();
    let addr = broken_server("abc123\n", "500 Internal Server Error").await;
    let mut stream = client::connect(
        "127.0.0.1",
        addr.port(),
        None,
        &TunnelClientOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(stream.session_id(), "abc123");
    let mut buf = [0u8; 8];
    let err = tokio::time::timeout(DEADLINE, stream.read(&mut buf))
        .await
        .expect("no error in time")
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("500") && text.contains("/idle/abc123/0"),
        "error should name the status and the request: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_refuses_an_unusable_session_id() {
    let addr = broken_server("bad/id?\n", "200 OK").await;
    let err = client::connect(
        "127.0.0.1",
        addr.port(),
        None,
        &TunnelClientOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("\"bad/id?\""), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_names_an_unreachable_server() {
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = client::connect("127.0.0.1", port, None, &TunnelClientOptions::default())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
}
