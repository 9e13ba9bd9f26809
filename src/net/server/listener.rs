//! The server side's listening sockets and routing.
//!
//! One listening socket per address:port in the process, whatever the number of server
//! elements that name it: a serversrc and a serversink can share port 1935. Each element adds a
//! *route* (application + stream key + what it does: take a publisher or serve players) to the
//! listener of its address; the listener lives as long as one route on it does.
//!
//! Every accepted connection goes through the same transport-agnostic path: the first byte
//! says what it is (0x03 plain RTMP; 0x06/0x08/0x09 RTMPE; 0x16 TLS; an ASCII letter an HTTP
//! tunnel request), the transport turns it into one byte stream, and the RTMP connection driver
//! (`conn`) runs the session over that stream and asks this module where a
//! publish or play goes. RTMPE needs nothing from the transport (its cipher lives in the
//! session). Inside TLS the first decrypted byte tells RTMPS (0x03) from RTMPTS (a letter);
//! RTMPE inside TLS is refused. Each RTMPT session a [`TunnelServer`] opens becomes a
//! connection like an accepted socket (its own slot, the `/open` sender as peer), and its
//! first payload byte tells RTMPT from RTMPTE. Tunnels opened over TLS live in a tunnel server
//! of their own, so a session id learnt in the clear cannot be continued inside TLS or back.
//!
//! Which transports are served: TLS only when the listener has a certificate (fixed by the
//! first element on the port; later ones must name the same files); then a connection whose
//! transport no element on the port accepts is closed at once, and a publish or play routed
//! to an element that does not accept it is refused. Every refusal is logged with its reason.
//!
//! Limits: connections that have not yet been routed to an element ("unrouted": handshaking,
//! connecting, or idle) are capped at [`MAX_UNROUTED`] and at `max-clients`; when a new
//! connection would pass a cap, the oldest unrouted connection is closed to make room, so a
//! flood of half-open connections cannot lock a well-behaved client out. Routed connections
//! are never evicted; when they alone fill `max-clients`, new connections are closed at once.
//! HTTP connections that carry tunnels are no RTMP connection themselves: each holds a slot
//! only until it is sniffed, then counts against [`MAX_HTTP_CONNECTIONS`]; the tunnel server's
//! header timeout and session limits bound them further.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::net::runtime::runtime;
use crate::net::transport::tls::{TlsAcceptor, TlsError, TlsServerConfig};
use crate::net::transport::tunnel::{AcceptedTunnel, Rewind, TunnelServer, TunnelServerConfig};

use super::CAT;
use super::port::*;

/// A bound listening socket and its accept loop. Shared through the registry.
pub struct Listener {
    shared: Arc<Shared>,
    key: SocketAddr,
    accept_task: tokio::task::JoinHandle<()>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.accept_task.abort();
        let mut reg = lock(&REGISTRY);
        for key in [self.key, self.shared.local_addr] {
            if reg.get(&key).is_some_and(|w| w.strong_count() == 0) {
                reg.remove(&key);
            }
        }
        gst::debug!(CAT, "stopped listening on {}", self.shared.local_addr);
    }
}

/// Listeners by the address they were asked for and the address they got (they differ for
/// port 0).
static REGISTRY: LazyLock<Mutex<HashMap<SocketAddr, Weak<Listener>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// An element's route on a listener; removing it (drop) ends its connections, and the last
/// route on a listener closes the listening socket.
pub struct RouteGuard {
    listener: Arc<Listener>,
    route: Arc<Route>,
}

impl RouteGuard {
    /// The address actually listened on (the port is the chosen one when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.shared.local_addr
    }

    /// Connections on the whole listener: (unrouted, routed).
    pub fn conn_counts(&self) -> (usize, usize) {
        self.listener.shared.conn_counts()
    }

    /// Connections of this route whose publish or play ended but that still run: their peer
    /// has not collected everything and hung up yet.
    pub fn finishing(&self) -> usize {
        self.route
            .finishing
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The route's linger (see [`RouteConfig::linger`]).
    pub fn linger(&self) -> Duration {
        self.route.linger
    }

    /// Takes the route off the port and ends its connections now, as dropping the guard does,
    /// but keeps the port until the guard goes: a publisher is told why (`NetStream.Failed`)
    /// and the element can wait for it to hang up (see [`RouteGuard::finishing`]). New
    /// connections find no route meanwhile (a publisher reconnecting at once is refused, not
    /// taken and cut again).
    pub fn end_connections(&self) {
        lock(&self.listener.shared.routes).retain(|r| r.id != self.route.id);
        self.route.cancel.cancel();
    }
}

impl Drop for RouteGuard {
    fn drop(&mut self) {
        let shared = &self.listener.shared;
        lock(&shared.routes).retain(|r| r.id != self.route.id);
        self.route.cancel.cancel();
    }
}

/// Binds `addr` (or finds the listener already bound there) and adds a route to it.
///
/// Port 0 always opens a new listener on a free port; other elements can then name that port.
pub fn add_route(addr: SocketAddr, config: RouteConfig) -> Result<RouteGuard, ServerError> {
    // Load the files even when joining a listener: a typo fails here, naming the file.
    let acceptor = config
        .tls
        .as_ref()
        .map(|c| c.acceptor().map(|a| (c.clone(), a)))
        .transpose()
        .map_err(|source| ServerError::Tls { addr, source })?;
    let listener = listener_for(addr, acceptor)?;
    let shared = &listener.shared;
    let theirs = shared.tls.as_ref().map(|(c, _)| c);
    let same = match (theirs, config.tls.as_ref()) {
        (None, None) => true,
        (Some(a), Some(b)) => a.certificate_file == b.certificate_file && a.key_file == b.key_file,
        _ => false,
    };
    if !same {
        return Err(ServerError::TlsMismatch {
            addr: shared.local_addr,
            theirs: describe_tls(theirs),
            ours: describe_tls(config.tls.as_ref()),
        });
    }
    let mut routes = lock(&shared.routes);
    let publish = config.endpoint.is_publish();
    if let Some(r) = routes.iter().find(|r| {
        r.app == config.app && r.stream == config.stream && r.endpoint.is_publish() == publish
    }) {
        return Err(ServerError::RouteTaken {
            addr: shared.local_addr,
            app: r.app.clone(),
            stream: r.stream.clone(),
        });
    }
    let route = Arc::new(Route {
        id: shared
            .next_route
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        app: config.app,
        stream: config.stream,
        endpoint: config.endpoint,
        hooks: config.hooks,
        max_clients: config.max_clients,
        handshake_timeout: config.handshake_timeout,
        idle_timeout: config.idle_timeout,
        linger: config.linger,
        transports: config.transports,
        cancel: CancellationToken::new(),
        finishing: std::sync::atomic::AtomicUsize::new(0),
    });
    routes.push(route.clone());
    drop(routes);
    Ok(RouteGuard { listener, route })
}

/// The listener on `addr`, or a new one offering TLS with `tls` (only a new listener takes
/// it: an existing one keeps what its first element set).
fn listener_for(
    addr: SocketAddr,
    tls: Option<(TlsServerConfig, TlsAcceptor)>,
) -> Result<Arc<Listener>, ServerError> {
    let mut reg = lock(&REGISTRY);
    if addr.port() != 0
        && let Some(l) = reg.get(&addr).and_then(Weak::upgrade)
    {
        return Ok(l);
    }
    // Creating tokio sockets needs the runtime's reactor.
    let _enter = runtime().enter();
    let std_listener =
        bind_with_retry(addr).map_err(|source| ServerError::Bind { addr, source })?;
    let local_addr = std_listener
        .local_addr()
        .map_err(|source| ServerError::Bind { addr, source })?;
    let (tunnel, tunnels) = TunnelServer::new(TunnelServerConfig::default());
    let (tunnel_tls, tls_tunnels) = TunnelServer::new(TunnelServerConfig::default());
    let shared = Arc::new(Shared {
        local_addr,
        routes: Mutex::new(Vec::new()),
        conns: Mutex::new(Conns::default()),
        next_route: std::sync::atomic::AtomicU64::new(0),
        tls,
        tunnel,
        tunnel_tls,
        http_connections: std::sync::atomic::AtomicUsize::new(0),
    });
    let tokio_listener =
        TcpListener::from_std(std_listener).map_err(|source| ServerError::Bind { addr, source })?;
    let accept_task = runtime().spawn(accept_loop(tokio_listener, Arc::downgrade(&shared)));
    // These end when the shared state (holding the tunnel servers' senders) is gone.
    runtime().spawn(tunnel_loop(tunnels, Arc::downgrade(&shared), false));
    runtime().spawn(tunnel_loop(tls_tunnels, Arc::downgrade(&shared), true));
    let listener = Arc::new(Listener {
        shared,
        key: addr,
        accept_task,
    });
    // Port 0 asked for "a new free port": only the port it got is worth finding again.
    if addr.port() != 0 {
        reg.insert(addr, Arc::downgrade(&listener));
    }
    reg.insert(local_addr, Arc::downgrade(&listener));
    gst::info!(CAT, "listening on {local_addr}");
    Ok(listener)
}

/// A listener that was just dropped closes its socket on a runtime thread a moment later; a
/// quick restart on the same port waits for that instead of failing.
fn bind_with_retry(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    // An element restarted on its own port waits for its old listener, which closes on a
    // runtime thread: 5 s, so that a loaded machine is not mistaken for a port in use.
    let mut tries = 0;
    loop {
        match bind(addr) {
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && tries < 100 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    let listener = socket.listen(1024)?;
    let std = listener.into_std()?;
    Ok(std)
}

async fn accept_loop(listener: TcpListener, shared: Weak<Shared>) {
    loop {
        let accepted = listener.accept().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        match accepted {
            Ok((sock, peer)) => {
                let Some(slot) = shared.admit(peer) else {
                    gst::warning!(
                        CAT,
                        "{}: refusing {peer}: max-clients reached",
                        shared.local_addr
                    );
                    continue;
                };
                let _ = sock.set_nodelay(true);
                // A fixed send buffer: the kernel's share of a slow player's backlog stays
                // bounded (autotuning would let it grow to megabytes per player), and the
                // player's own queue, which skips to keyframes, takes over sooner.
                let _ = socket2::SockRef::from(&sock).set_send_buffer_size(SEND_BUFFER);
                tokio::spawn(handle_connection(slot, sock, peer));
            }
            Err(e) => {
                // Out of file descriptors and the like: wait instead of spinning; evictions
                // and timeouts free descriptors.
                gst::warning!(CAT, "{}: accept failed: {e}", shared.local_addr);
                drop(shared);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// What the first byte of a connection says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    /// C0 = 3.
    Plain,
    /// C0 = 6, 8 or 9.
    Rtmpe(u8),
    /// A TLS ClientHello (record type 22).
    Tls,
    /// An HTTP request line (RTMPT): starts with an ASCII letter.
    Http,
    /// None of the above.
    Unknown(u8),
}

/// Classifies a connection by its first byte.
pub fn sniff(first: u8) -> Sniffed {
    match first {
        0x03 => Sniffed::Plain,
        0x06 | 0x08 | 0x09 => Sniffed::Rtmpe(first),
        0x16 => Sniffed::Tls,
        b if b.is_ascii_alphabetic() => Sniffed::Http,
        b => Sniffed::Unknown(b),
    }
}

/// Why a transport is not served here, or `None` when it is.
fn refusal(shared: &Shared, t: Transport) -> Option<String> {
    if t.needs_tls() && shared.tls.is_none() {
        return Some(format!(
            "{} needs TLS, and no element on this port sets tls-certificate-file and tls-key-file",
            t.name()
        ));
    }
    let served = shared.served_transports();
    (!served.contains(t)).then(|| {
        format!(
            "no element on this port accepts {} (transports served: {served})",
            t.name()
        )
    })
}

/// Runs `fut` until the connection's deadline or its eviction; `Err` says which ended it.
async fn within<F: std::future::Future>(
    slot: &ConnSlot,
    deadline: Instant,
    fut: F,
) -> Result<F::Output, String> {
    tokio::select! {
        r = tokio::time::timeout_at(deadline, fut) => r.map_err(|_| {
            format!("no handshake within {:?}", slot.shared.handshake_timeout())
        }),
        _ = slot.cancel.cancelled() => Err("evicted to make room for a new connection".into()),
    }
}

async fn handle_connection(slot: ConnSlot, sock: TcpStream, peer: SocketAddr) {
    let local = slot.shared.local_addr;
    let accepted_at = Instant::now();
    let deadline = accepted_at + slot.shared.handshake_timeout();
    let mut first = [0u8; 1];
    let kind = match within(&slot, deadline, sock.peek(&mut first)).await {
        Ok(Ok(1)) => sniff(first[0]),
        Ok(Ok(_)) => return,
        Ok(Err(e)) => {
            gst::debug!(
                CAT,
                "{local}: {peer}: read failed before the handshake: {e}"
            );
            return;
        }
        Err(why) => {
            gst::debug!(CAT, "{local}: {peer}: closing: sent nothing: {why}");
            return;
        }
    };
    let close = |why: String| gst::info!(CAT, "{local}: {peer}: closing: {why}");
    // Every write from here on is MSG_NOSIGNAL (see `tcp`).
    let sock = crate::net::transport::tcp::Tcp::new(sock);
    let transport = match kind {
        Sniffed::Plain => Transport::Rtmp,
        Sniffed::Rtmpe(_) => Transport::Rtmpe,
        Sniffed::Http => {
            let shared = &slot.shared;
            if !shared
                .served_transports()
                .any_of(&[Transport::Rtmpt, Transport::Rtmpte])
            {
                return close(format!(
                    "an HTTP request, and no element on this port accepts rtmpt or rtmpte (transports served: {})",
                    shared.served_transports()
                ));
            }
            let shared = shared.clone();
            // The tunnel sessions it carries get their own slots.
            drop(slot);
            // Boxed, like the TLS path: the task of every connection is as large as its largest
            // path, and hyper's and rustls' state would make each plain one kilobytes larger.
            Box::pin(serve_http(shared, sock, peer, false)).await;
            return;
        }
        Sniffed::Tls => {
            return Box::pin(serve_tls(slot, sock, peer, deadline, accepted_at)).await;
        }
        Sniffed::Unknown(b) => {
            return close(format!(
                "first byte 0x{b:02x} starts no RTMP (0x03), RTMPE (0x06, 0x08, 0x09), TLS (0x16) or HTTP (a letter)"
            ));
        }
    };
    if let Some(why) = refusal(&slot.shared, transport) {
        return close(why);
    }
    let stream = Box::new(sock.clone());
    crate::net::server::conn::serve(slot, stream, Some(sock), peer, transport, accepted_at).await;
}

/// Serves HTTP (tunnel requests) on a carrier connection, within the listener's cap.
async fn serve_http<IO: ByteStream>(shared: Arc<Shared>, io: IO, peer: SocketAddr, tls: bool) {
    use std::sync::atomic::Ordering;
    let open = shared.http_connections.fetch_add(1, Ordering::Relaxed);
    struct Count<'a>(&'a std::sync::atomic::AtomicUsize);
    impl Drop for Count<'_> {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::Relaxed);
        }
    }
    let _count = Count(&shared.http_connections);
    if open >= MAX_HTTP_CONNECTIONS {
        gst::warning!(
            CAT,
            "{}: {peer}: closing: {open} HTTP connections are open, the limit",
            shared.local_addr
        );
        return;
    }
    let server = if tls {
        &shared.tunnel_tls
    } else {
        &shared.tunnel
    };
    server
        .serve_connection_within(io, peer, shared.handshake_timeout())
        .await;
}

/// TLS: the handshake, then the first decrypted byte says RTMPS or RTMPTS.
async fn serve_tls(
    slot: ConnSlot,
    sock: crate::net::transport::tcp::Tcp,
    peer: SocketAddr,
    deadline: Instant,
    accepted_at: Instant,
) {
    let local = slot.shared.local_addr;
    let close = |why: String| gst::info!(CAT, "{local}: {peer}: closing: {why}");
    let Some((_, acceptor)) = slot.shared.tls.clone() else {
        return close(
            "a TLS ClientHello, and no element on this port sets tls-certificate-file and tls-key-file"
                .into(),
        );
    };
    let served = slot.shared.served_transports();
    if !served.any_of(&[Transport::Rtmps, Transport::Rtmpts]) {
        return close(format!(
            "a TLS ClientHello, and no element on this port accepts rtmps or rtmpts (transports served: {served})"
        ));
    }
    let mut tls = match within(&slot, deadline, acceptor.accept(sock, peer)).await {
        Ok(Ok(s)) => s,
        // The line names the peer already.
        Ok(Err(TlsError::Accept { reason, .. })) => {
            return close(format!("TLS handshake failed: {reason}"));
        }
        Ok(Err(e)) => return close(e.to_string()),
        Err(why) => return close(format!("TLS handshake unfinished: {why}")),
    };
    // A TLS stream cannot be peeked: read the byte and put it back in front.
    let mut first = [0u8; 1];
    let inner = match within(&slot, deadline, tls.read(&mut first)).await {
        Ok(Ok(1)) => first[0],
        Ok(Ok(_)) => return,
        // rustls reports a hang-up without close_notify as UnexpectedEof: a client that only
        // looked at the certificate, or gave up on it after the handshake.
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            return close(
                "the client hung up right after the TLS handshake, before sending anything".into(),
            );
        }
        Ok(Err(e)) => return close(format!("read failed inside TLS: {e}")),
        Err(why) => return close(format!("nothing sent inside TLS: {why}")),
    };
    let stream = Rewind::new(Bytes::copy_from_slice(&first), tls);
    match sniff(inner) {
        Sniffed::Plain => {
            if let Some(why) = refusal(&slot.shared, Transport::Rtmps) {
                return close(why);
            }
            crate::net::server::conn::serve(
                slot,
                Box::new(stream),
                None,
                peer,
                Transport::Rtmps,
                accepted_at,
            )
            .await;
        }
        Sniffed::Http => {
            if let Some(why) = refusal(&slot.shared, Transport::Rtmpts) {
                return close(why);
            }
            let shared = slot.shared.clone();
            drop(slot);
            serve_http(shared, stream, peer, true).await;
        }
        Sniffed::Rtmpe(b) => close(format!(
            "RTMPE (C0 0x{b:02x}) inside TLS: TLS carries plain RTMP (rtmps) or HTTP (rtmpts) only"
        )),
        Sniffed::Tls | Sniffed::Unknown(_) => close(format!(
            "first byte 0x{inner:02x} inside TLS starts neither RTMP (0x03) nor HTTP (a letter)"
        )),
    }
}

/// Takes the tunnel sessions a tunnel server opens and serves each as a connection.
async fn tunnel_loop(
    mut accepted: tokio::sync::mpsc::Receiver<AcceptedTunnel>,
    shared: Weak<Shared>,
    tls: bool,
) {
    while let Some(tunnel) = accepted.recv().await {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let peer = tunnel.peer;
        let Some(slot) = shared.admit(peer) else {
            gst::warning!(
                CAT,
                "{}: refusing the tunnel session {} of {peer}: max-clients reached",
                shared.local_addr,
                tunnel.stream.session_id()
            );
            continue;
        };
        tokio::spawn(handle_tunnel(slot, tunnel, tls));
    }
}

/// A tunnel session: its first payload byte says RTMPT or RTMPTE.
async fn handle_tunnel(slot: ConnSlot, tunnel: AcceptedTunnel, tls: bool) {
    let local = slot.shared.local_addr;
    let AcceptedTunnel { mut stream, peer } = tunnel;
    let id = stream.session_id().to_string();
    let close =
        |why: String| gst::info!(CAT, "{local}: {peer}: closing tunnel session {id}: {why}");
    let accepted_at = Instant::now();
    let deadline = accepted_at + slot.shared.handshake_timeout();
    let mut first = [0u8; 1];
    let b = match within(&slot, deadline, stream.read(&mut first)).await {
        Ok(Ok(1)) => first[0],
        Ok(Ok(_)) => return,
        Ok(Err(e)) => return close(format!("read failed: {e}")),
        Err(why) => return close(format!("nothing sent: {why}")),
    };
    let transport = match (sniff(b), tls) {
        (Sniffed::Plain, false) => Transport::Rtmpt,
        (Sniffed::Plain, true) => Transport::Rtmpts,
        (Sniffed::Rtmpe(_), false) => Transport::Rtmpte,
        (Sniffed::Rtmpe(b), true) => {
            return close(format!(
                "RTMPE (C0 0x{b:02x}) in a tunnel inside TLS: rtmpts carries plain RTMP only"
            ));
        }
        _ => {
            return close(format!(
                "first byte 0x{b:02x} in the tunnel starts neither RTMP (0x03) nor RTMPE (0x06, 0x08, 0x09)"
            ));
        }
    };
    if let Some(why) = refusal(&slot.shared, transport) {
        return close(why);
    }
    let stream = Rewind::new(Bytes::copy_from_slice(&first), stream);
    crate::net::server::conn::serve(slot, Box::new(stream), None, peer, transport, accepted_at)
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_compare_by_value() {
        assert!(key_matches("key123", "key123"));
        assert!(!key_matches("key123", "key124"));
        assert!(!key_matches("key123", "key12"));
        assert!(!key_matches("key123", "key1234"));
        assert!(!key_matches("key123", ""));
        assert!(key_matches("", ""));
    }

    #[test]
    fn sniffing_the_first_byte() {
        assert_eq!(sniff(3), Sniffed::Plain);
        assert_eq!(sniff(6), Sniffed::Rtmpe(6));
        assert_eq!(sniff(9), Sniffed::Rtmpe(9));
        assert_eq!(sniff(0x16), Sniffed::Tls);
        assert_eq!(sniff(b'P'), Sniffed::Http);
        assert_eq!(sniff(0xFF), Sniffed::Unknown(0xFF));
    }

    #[test]
    fn transport_sets_name_their_members() {
        let set: Transports = [Transport::Rtmps, Transport::Rtmp].into_iter().collect();
        assert_eq!(set.to_string(), "rtmp+rtmps");
        assert!(set.contains(Transport::Rtmps) && !set.contains(Transport::Rtmpt));
        assert_eq!(set.without(Transport::Rtmp).to_string(), "rtmps");
        assert_eq!(Transports::NONE.to_string(), "(none)");
        assert_eq!(
            Transports::ALL.to_string(),
            "rtmp+rtmpe+rtmps+rtmpt+rtmpts+rtmpte"
        );
        assert!(Transports::ALL.any_of(&[Transport::Rtmpte]));
        assert!(!Transports::NONE.any_of(&Transport::ALL));
    }

    #[test]
    fn app_and_query_split() {
        assert_eq!(normalize_app("live/?a=b"), "live");
        assert_eq!(split_query("key?token=1"), ("key", "token=1"));
        assert_eq!(split_query("key"), ("key", ""));
    }
}
