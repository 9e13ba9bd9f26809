//! One listening port's shared state: the routes its elements added, its connection slots
//! and their caps, and the types a route is made of. The listener (`listener`) owns the socket
//! and hands connections their slot; a connection (`conn`) asks the port where its publish or
//! play goes. Both import this module and not each other.
//!
//! Lock order: `routes`, then `conns`; neither is held across a wait.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

use crate::net::server::hub::Hub;
use crate::net::server::ingest::Ingest;
use crate::net::transport::tls::{TlsAcceptor, TlsError, TlsServerConfig};
use crate::net::transport::tunnel::TunnelServer;

use super::CAT;

/// SO_SNDBUF of accepted connections (Linux doubles it).
pub const SEND_BUFFER: usize = 128 * 1024;

/// Most connections kept at once per listener before they are routed to an element.
pub const MAX_UNROUTED: usize = 1024;

/// Most HTTP (tunnel carrier) connections open at once per listener.
pub const MAX_HTTP_CONNECTIONS: usize = 1024;

/// A transport a server connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Plain RTMP over TCP.
    Rtmp,
    /// RTMPE (encrypted handshake, RC4) over TCP.
    Rtmpe,
    /// Plain RTMP inside TLS.
    Rtmps,
    /// Plain RTMP in an HTTP tunnel.
    Rtmpt,
    /// Plain RTMP in an HTTP tunnel inside TLS.
    Rtmpts,
    /// RTMPE in an HTTP tunnel.
    Rtmpte,
}

impl Transport {
    /// Every transport, in flag order.
    pub const ALL: [Transport; 6] = [
        Transport::Rtmp,
        Transport::Rtmpe,
        Transport::Rtmps,
        Transport::Rtmpt,
        Transport::Rtmpts,
        Transport::Rtmpte,
    ];

    /// The URL scheme that names it.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Rtmp => "rtmp",
            Transport::Rtmpe => "rtmpe",
            Transport::Rtmps => "rtmps",
            Transport::Rtmpt => "rtmpt",
            Transport::Rtmpts => "rtmpts",
            Transport::Rtmpte => "rtmpte",
        }
    }

    /// Needs the listener's TLS certificate.
    pub fn needs_tls(self) -> bool {
        matches!(self, Transport::Rtmps | Transport::Rtmpts)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of transports (the `transports` property).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Transports(u8);

impl Transports {
    pub const NONE: Transports = Transports(0);
    pub const ALL: Transports = Transports(0b11_1111);

    pub fn contains(self, t: Transport) -> bool {
        self.0 & t.bit() != 0
    }

    pub fn with(self, t: Transport) -> Transports {
        Transports(self.0 | t.bit())
    }

    pub fn without(self, t: Transport) -> Transports {
        Transports(self.0 & !t.bit())
    }

    pub fn union(self, other: Transports) -> Transports {
        Transports(self.0 | other.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Is any of `ts` in the set?
    pub fn any_of(self, ts: &[Transport]) -> bool {
        ts.iter().any(|t| self.contains(*t))
    }
}

impl FromIterator<Transport> for Transports {
    fn from_iter<I: IntoIterator<Item = Transport>>(iter: I) -> Self {
        iter.into_iter().fold(Transports::NONE, Transports::with)
    }
}

impl std::fmt::Display for Transports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = Transport::ALL
            .iter()
            .filter(|t| self.contains(**t))
            .map(|t| t.name())
            .collect();
        if names.is_empty() {
            f.write_str("(none)")
        } else {
            f.write_str(&names.join("+"))
        }
    }
}

/// How a listener's TLS is set, for the messages that compare two elements' settings.
pub(super) fn describe_tls(tls: Option<&TlsServerConfig>) -> String {
    match tls {
        Some(c) => format!(
            "tls-certificate-file={} tls-key-file={}",
            c.certificate_file.display(),
            c.key_file.display()
        ),
        None => "no TLS (tls-certificate-file and tls-key-file unset)".into(),
    }
}

/// Why a route could not be added.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "route application={app:?} stream={stream:?} on {addr} is already served by another element"
    )]
    RouteTaken {
        addr: SocketAddr,
        app: String,
        stream: String,
    },
    #[error(
        "{addr} is already served with {theirs}; this element asks for {ours}: elements sharing a port must use the same TLS certificate and key"
    )]
    TlsMismatch {
        addr: SocketAddr,
        theirs: String,
        ours: String,
    },
    #[error("cannot offer TLS on {addr}: {source}")]
    Tls { addr: SocketAddr, source: TlsError },
}

/// What a route does with the clients it gets.
#[derive(Clone)]
pub enum Endpoint {
    /// Takes one publisher at a time (rtmpserversrc).
    Ingest(Arc<Ingest>),
    /// Serves players (rtmpserversink).
    Playout(Arc<Hub>),
}

impl Endpoint {
    pub(super) fn is_publish(&self) -> bool {
        matches!(self, Endpoint::Ingest(_))
    }
}

/// A publish or play request, as handed to the element's `authorize` signal.
#[derive(Debug, Clone)]
pub struct AuthRequest {
    pub peer: SocketAddr,
    pub app: String,
    pub stream: String,
    pub query: String,
    pub publish: bool,
}

/// How a route talks back to its element. Called on runtime threads (`authorize` on a blocking
/// one): implementations must not wait on the element's streaming thread.
pub trait RouteHooks: Send + Sync + 'static {
    /// Accept or refuse a publish/play that matched the route.
    fn authorize(&self, req: &AuthRequest) -> bool;
    fn client_connected(&self, peer: SocketAddr);
    fn client_disconnected(&self, peer: SocketAddr);

    /// Whether application code may run in the hooks (a signal handler is connected). When
    /// not, the driver calls them in place instead of on a thread of their own.
    fn has_handlers(&self) -> bool {
        true
    }
}

/// What an element asks for.
pub struct RouteConfig {
    /// Application name, exact match.
    pub app: String,
    /// Stream key, exact match in constant time; empty accepts any name.
    pub stream: String,
    pub endpoint: Endpoint,
    pub hooks: Arc<dyn RouteHooks>,
    /// Listener-wide cap this element asks for; the listener uses the largest (0 = unlimited).
    pub max_clients: u32,
    /// Deadline from accept until the connection is routed; the listener uses the largest.
    pub handshake_timeout: Duration,
    /// Close a routed connection that moved no bytes for this long.
    pub idle_timeout: Option<Duration>,
    /// How long a connection whose publish or play ended waits for its peer to collect what
    /// it was sent and hang up (a tunnel client polls for it), and how long the element waits
    /// for such connections before it lets the port go.
    pub linger: Duration,
    /// Transports this element takes clients on.
    pub transports: Transports,
    /// The certificate the port offers TLS with; every element on the port must agree.
    pub tls: Option<TlsServerConfig>,
}

pub(crate) struct Route {
    pub(super) id: u64,
    pub(crate) app: String,
    pub(crate) stream: String,
    pub(crate) endpoint: Endpoint,
    pub(crate) hooks: Arc<dyn RouteHooks>,
    pub(super) max_clients: u32,
    pub(super) handshake_timeout: Duration,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) linger: Duration,
    pub(crate) transports: Transports,
    /// Cancelled when the element removes the route: its connections end.
    pub(crate) cancel: CancellationToken,
    /// Connections whose publish or play ended and that still run (see [`Finishing`]).
    pub(super) finishing: std::sync::atomic::AtomicUsize,
}

/// Held by a connection from the end of its publish or play until its task returns, after
/// its peer collected the last bytes and hung up (or the route's linger passed): what an
/// element waits for before it lets the port go.
pub(crate) struct Finishing(Arc<Route>);

impl Finishing {
    pub(crate) fn new(route: &Arc<Route>) -> Finishing {
        route
            .finishing
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Finishing(route.clone())
    }
}

impl Drop for Finishing {
    fn drop(&mut self) {
        self.0
            .finishing
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Why a publish or play was refused before `authorize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No route with this application: `NetConnection.Connect.Rejected`.
    UnknownApp,
    /// No publish route matches: `NetStream.Publish.BadName`.
    NoPublishRoute,
    /// No play route matches: `NetStream.Play.StreamNotFound`.
    NoPlayRoute,
}

#[derive(Default)]
pub(super) struct Conns {
    pub(super) next_id: u64,
    /// Unrouted connections by age (the id grows), with the token that closes them.
    pub(super) unrouted: BTreeMap<u64, CancellationToken>,
    pub(super) routed: usize,
}

/// State shared by a listener's accept loop and its connections.
pub(crate) struct Shared {
    pub(crate) local_addr: SocketAddr,
    pub(super) routes: Mutex<Vec<Arc<Route>>>,
    pub(super) conns: Mutex<Conns>,
    pub(super) next_route: std::sync::atomic::AtomicU64,
    /// Set by the first element on the port; fixed for the listener's life.
    pub(super) tls: Option<(TlsServerConfig, TlsAcceptor)>,
    /// Tunnels opened in the clear (RTMPT, RTMPTE).
    pub(super) tunnel: TunnelServer,
    /// Tunnels opened inside TLS (RTMPTS).
    pub(super) tunnel_tls: TunnelServer,
    /// HTTP connections open now.
    pub(super) http_connections: std::sync::atomic::AtomicUsize,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Compares a stream key without an early exit on the first differing byte, so the time taken
/// says nothing about how much of a guess was right.
pub fn key_matches(expected: &str, given: &str) -> bool {
    let (e, g) = (expected.as_bytes(), given.as_bytes());
    let mut diff = (e.len() ^ g.len()) as u64;
    for (i, b) in e.iter().enumerate() {
        let other = if g.is_empty() { 0 } else { g[i % g.len()] };
        diff |= u64::from(b ^ other);
    }
    diff == 0
}

/// Splits `name?query` into its parts.
pub fn split_query(s: &str) -> (&str, &str) {
    match s.split_once('?') {
        Some((a, b)) => (a, b),
        None => (s, ""),
    }
}

/// The application name a client asked for, without query or trailing slashes.
pub fn normalize_app(app: &str) -> &str {
    split_query(app).0.trim_end_matches('/')
}

impl Shared {
    /// Is any element serving this application?
    pub(crate) fn has_app(&self, app: &str) -> bool {
        let app = normalize_app(app);
        lock(&self.routes).iter().any(|r| r.app == app)
    }

    /// Finds the route for a publish (or play) of `name` (without query) in `app`. Exact keys
    /// win over a catch-all route. Every route of the app is compared, match or not, so the
    /// time taken does not depend on which key matched.
    pub(crate) fn lookup(
        &self,
        app: &str,
        name: &str,
        publish: bool,
    ) -> Result<Arc<Route>, Refusal> {
        let app = normalize_app(app);
        let routes = lock(&self.routes);
        let mut any_app = false;
        let mut exact = None;
        let mut wildcard = None;
        for r in routes.iter().filter(|r| r.app == app) {
            any_app = true;
            if r.endpoint.is_publish() != publish {
                continue;
            }
            if r.stream.is_empty() {
                wildcard.get_or_insert_with(|| r.clone());
            } else if key_matches(&r.stream, name) && exact.is_none() {
                exact = Some(r.clone());
            }
        }
        if !any_app {
            return Err(Refusal::UnknownApp);
        }
        exact.or(wildcard).ok_or(if publish {
            Refusal::NoPublishRoute
        } else {
            Refusal::NoPlayRoute
        })
    }

    /// Transports some element on the port takes (TLS ones only with a certificate).
    pub(crate) fn served_transports(&self) -> Transports {
        let all = lock(&self.routes)
            .iter()
            .fold(Transports::NONE, |acc, r| acc.union(r.transports));
        if self.tls.is_some() {
            all
        } else {
            all.without(Transport::Rtmps).without(Transport::Rtmpts)
        }
    }

    /// Deadline for a connection to get routed: the largest any element asked for.
    pub(crate) fn handshake_timeout(&self) -> Duration {
        lock(&self.routes)
            .iter()
            .map(|r| r.handshake_timeout)
            .max()
            .unwrap_or(Duration::from_secs(5))
    }

    pub(super) fn max_clients(&self) -> Option<usize> {
        let routes = lock(&self.routes);
        if routes.iter().any(|r| r.max_clients == 0) {
            return None;
        }
        routes.iter().map(|r| r.max_clients as usize).max()
    }

    /// Admits a new connection, evicting the oldest unrouted one when a cap is reached.
    /// `None` when the listener is full of routed connections.
    pub(super) fn admit(self: &Arc<Self>, peer: SocketAddr) -> Option<ConnSlot> {
        let max = self.max_clients();
        let mut c = lock(&self.conns);
        let over = |c: &Conns| {
            c.unrouted.len() >= MAX_UNROUTED
                || max.is_some_and(|m| c.unrouted.len() + c.routed >= m)
        };
        while over(&c) {
            let (old, token) = c.unrouted.pop_first()?;
            gst::debug!(
                CAT,
                "{}: closing unrouted connection #{old} to admit {peer}",
                self.local_addr
            );
            token.cancel();
        }
        let id = c.next_id;
        c.next_id += 1;
        let cancel = CancellationToken::new();
        c.unrouted.insert(id, cancel.clone());
        Some(ConnSlot {
            shared: self.clone(),
            id,
            cancel,
            routed: false,
        })
    }

    /// Number of connections: (unrouted, routed).
    pub(crate) fn conn_counts(&self) -> (usize, usize) {
        let c = lock(&self.conns);
        (c.unrouted.len(), c.routed)
    }
}

/// A connection's place in its listener's table; frees it on drop.
pub(crate) struct ConnSlot {
    pub(crate) shared: Arc<Shared>,
    pub(super) id: u64,
    /// Cancelled when the listener evicts this connection.
    pub(crate) cancel: CancellationToken,
    pub(super) routed: bool,
}

impl ConnSlot {
    /// The connection now serves a route: it no longer counts as unrouted and is never evicted.
    pub(crate) fn mark_routed(&mut self) {
        if self.routed {
            return;
        }
        let mut c = lock(&self.shared.conns);
        c.unrouted.remove(&self.id);
        c.routed += 1;
        self.routed = true;
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        let mut c = lock(&self.shared.conns);
        if self.routed {
            c.routed -= 1;
        } else {
            c.unrouted.remove(&self.id);
        }
    }
}

/// Any byte stream a transport produces; the RTMP driver runs over one of these.
pub trait ByteStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> ByteStream for T {}
