//! What rtmpserversrc and rtmpserversink share: the listener properties (TLS and the
//! accepted transports included), the signals (`authorize`, `client-connected`,
//! `client-disconnected`) and the hooks that let the listener's connections reach the element.

use std::net::{SocketAddr, ToSocketAddrs};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use gst::glib;
use gst::prelude::*;

use crate::net::server::{AuthRequest, Endpoint, RouteConfig, RouteHooks, Transport, Transports};
use crate::net::transport::tls::TlsServerConfig;
use crate::rtmp::session::EnhancedCaps;

/// The `enhanced-codecs` stats field: what a client's connect announced, comma-separated
/// (empty for a legacy client).
pub fn announced_codecs(caps: Option<&EnhancedCaps>) -> String {
    caps.map(|c| c.codecs().join(",")).unwrap_or_default()
}

pub const DEFAULT_ADDRESS: &str = "0.0.0.0";
pub const DEFAULT_PORT: u32 = 1935;
pub const DEFAULT_APPLICATION: &str = "live";
pub const DEFAULT_STREAM: &str = "";
pub const DEFAULT_MAX_CLIENTS: u32 = 1000;
pub const DEFAULT_HANDSHAKE_TIMEOUT: u32 = 10;
pub const DEFAULT_IDLE_TIMEOUT: u32 = 30;
/// Seconds a server element waits for its clients to collect the end of a stream.
pub const DEFAULT_LINGER: u32 = 5;

/// The `transports` property: which transports an element takes clients on.
#[glib::flags(name = "GstRsRtmpServerTransports")]
pub enum ServerTransports {
    #[flags_value(name = "Plain RTMP over TCP", nick = "rtmp")]
    RTMP = 1 << 0,
    #[flags_value(name = "RTMPE (encrypted) over TCP", nick = "rtmpe")]
    RTMPE = 1 << 1,
    #[flags_value(name = "RTMP inside TLS (needs the TLS files)", nick = "rtmps")]
    RTMPS = 1 << 2,
    #[flags_value(name = "RTMP tunnelled in HTTP", nick = "rtmpt")]
    RTMPT = 1 << 3,
    #[flags_value(
        name = "RTMP tunnelled in HTTPS (needs the TLS files)",
        nick = "rtmpts"
    )]
    RTMPTS = 1 << 4,
    #[flags_value(name = "RTMPE tunnelled in HTTP", nick = "rtmpte")]
    RTMPTE = 1 << 5,
}

impl ServerTransports {
    fn to_set(self) -> Transports {
        let pairs = [
            (ServerTransports::RTMP, Transport::Rtmp),
            (ServerTransports::RTMPE, Transport::Rtmpe),
            (ServerTransports::RTMPS, Transport::Rtmps),
            (ServerTransports::RTMPT, Transport::Rtmpt),
            (ServerTransports::RTMPTS, Transport::Rtmpts),
            (ServerTransports::RTMPTE, Transport::Rtmpte),
        ];
        pairs
            .into_iter()
            .filter(|(f, _)| self.contains(*f))
            .map(|(_, t)| t)
            .collect()
    }
}

/// The listener properties of a server element.
#[derive(Debug, Clone)]
pub struct ListenSettings {
    pub address: String,
    pub port: u32,
    pub application: String,
    pub stream: String,
    pub max_clients: u32,
    /// Seconds.
    pub handshake_timeout: u32,
    /// Seconds; 0 = none.
    pub idle_timeout: u32,
    /// Seconds; 0 = close at once.
    pub linger: u32,
    pub tls_certificate_file: Option<String>,
    pub tls_key_file: Option<String>,
    pub transports: ServerTransports,
}

impl Default for ListenSettings {
    fn default() -> Self {
        ListenSettings {
            address: DEFAULT_ADDRESS.into(),
            port: DEFAULT_PORT,
            application: DEFAULT_APPLICATION.into(),
            stream: DEFAULT_STREAM.into(),
            max_clients: DEFAULT_MAX_CLIENTS,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            linger: DEFAULT_LINGER,
            tls_certificate_file: None,
            tls_key_file: None,
            transports: ServerTransports::all(),
        }
    }
}

impl ListenSettings {
    pub fn properties() -> Vec<glib::ParamSpec> {
        vec![
            glib::ParamSpecString::builder("address")
                .nick("Address")
                .blurb("Local address to listen on (0.0.0.0 or :: for all interfaces)")
                .default_value(Some(DEFAULT_ADDRESS))
                .mutable_ready()
                .build(),
            glib::ParamSpecUInt::builder("port")
                .nick("Port")
                .blurb("TCP port to listen on; 0 picks a free one, readable here after start")
                .maximum(u16::MAX.into())
                .default_value(DEFAULT_PORT)
                .mutable_ready()
                .build(),
            glib::ParamSpecString::builder("application")
                .nick("Application")
                .blurb("RTMP application name this element serves (exact match)")
                .default_value(Some(DEFAULT_APPLICATION))
                .mutable_ready()
                .build(),
            glib::ParamSpecString::builder("stream")
                .nick("Stream")
                .blurb("Stream name / key (exact match, compared in constant time); empty accepts any")
                .default_value(Some(DEFAULT_STREAM))
                .mutable_ready()
                .build(),
            glib::ParamSpecUInt::builder("max-clients")
                .nick("Max clients")
                .blurb("Most connections on the listening socket at once (0 = unlimited); the largest value among elements sharing the port applies")
                .default_value(DEFAULT_MAX_CLIENTS)
                .mutable_ready()
                .build(),
            glib::ParamSpecUInt::builder("handshake-timeout")
                .nick("Handshake timeout")
                .blurb("Seconds a new connection has to complete the handshake and publish or play")
                .minimum(1)
                .default_value(DEFAULT_HANDSHAKE_TIMEOUT)
                .mutable_ready()
                .build(),
            glib::ParamSpecUInt::builder("linger")
                .nick("Linger")
                .blurb(
                    "Seconds to wait at EOS and on stop for clients to collect what was sent \
                     to them and hang up (tunnel clients poll for it) before the port closes \
                     (0 = close at once)",
                )
                .maximum(3600)
                .default_value(DEFAULT_LINGER)
                .mutable_ready()
                .build(),
            glib::ParamSpecUInt::builder("idle-timeout")
                .nick("Idle timeout")
                .blurb("Seconds without traffic after which a client is disconnected (0 = never)")
                .default_value(DEFAULT_IDLE_TIMEOUT)
                .mutable_ready()
                .build(),
            glib::ParamSpecString::builder("tls-certificate-file")
                .nick("TLS certificate file")
                .blurb("PEM certificate chain (leaf first, then intermediates) offered to RTMPS/RTMPTS clients; with tls-key-file, enables TLS on the port. Loaded again when the files change (a renewal), for new handshakes; a pair that does not load is logged and the old one kept. Elements sharing a port must set the same files")
                .mutable_ready()
                .build(),
            glib::ParamSpecString::builder("tls-key-file")
                .nick("TLS key file")
                .blurb("PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC; unencrypted) of tls-certificate-file")
                .mutable_ready()
                .build(),
            glib::ParamSpecFlags::builder::<ServerTransports>("transports")
                .nick("Transports")
                .blurb("Transports this element takes clients on; rtmps and rtmpts only when the TLS files are set. A client on another transport is refused")
                .default_value(ServerTransports::all())
                .mutable_ready()
                .build(),
        ]
    }

    /// Sets one of the listener properties; false when `name` is not one of them.
    pub fn set(&mut self, name: &str, value: &glib::Value) -> bool {
        match name {
            "address" => {
                self.address = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .unwrap_or_else(|| DEFAULT_ADDRESS.into())
            }
            "port" => self.port = value.get().expect("type checked upstream"),
            "application" => {
                self.application = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .unwrap_or_default()
            }
            "stream" => {
                self.stream = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .unwrap_or_default()
            }
            "max-clients" => self.max_clients = value.get().expect("type checked upstream"),
            "handshake-timeout" => {
                self.handshake_timeout = value.get().expect("type checked upstream")
            }
            "idle-timeout" => self.idle_timeout = value.get().expect("type checked upstream"),
            "linger" => self.linger = value.get().expect("type checked upstream"),
            "tls-certificate-file" => {
                self.tls_certificate_file = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .filter(|s| !s.is_empty())
            }
            "tls-key-file" => {
                self.tls_key_file = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .filter(|s| !s.is_empty())
            }
            "transports" => self.transports = value.get().expect("type checked upstream"),
            _ => return false,
        }
        true
    }

    /// Reads one of the listener properties. `bound_port` is the port actually listened on
    /// while started, which is what `port` reports then.
    pub fn get(&self, name: &str, bound_port: Option<u16>) -> Option<glib::Value> {
        Some(match name {
            "address" => self.address.to_value(),
            "port" => bound_port.map_or(self.port, u32::from).to_value(),
            "application" => self.application.to_value(),
            "stream" => self.stream.to_value(),
            "max-clients" => self.max_clients.to_value(),
            "handshake-timeout" => self.handshake_timeout.to_value(),
            "idle-timeout" => self.idle_timeout.to_value(),
            "linger" => self.linger.to_value(),
            "tls-certificate-file" => self.tls_certificate_file.to_value(),
            "tls-key-file" => self.tls_key_file.to_value(),
            "transports" => self.transports.to_value(),
            _ => return None,
        })
    }

    /// Resolves `address`:`port`, with a message naming the value when it does not resolve.
    pub fn socket_addr(&self) -> Result<SocketAddr, gst::ErrorMessage> {
        let port = u16::try_from(self.port).map_err(|_| {
            gst::error_msg!(
                gst::ResourceError::Settings,
                ["port {} out of range 0..=65535", self.port]
            )
        })?;
        let host = self.address.trim_start_matches('[').trim_end_matches(']');
        (host, port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut it| it.next())
            .ok_or_else(|| {
                gst::error_msg!(
                    gst::ResourceError::Settings,
                    [
                        "address {:?} is not a local address to listen on",
                        self.address
                    ]
                )
            })
    }

    /// The TLS files, when both are set; an error naming the one that is set alone.
    pub fn tls(&self) -> Result<Option<TlsServerConfig>, gst::ErrorMessage> {
        match (&self.tls_certificate_file, &self.tls_key_file) {
            (None, None) => Ok(None),
            (Some(cert), Some(key)) => Ok(Some(TlsServerConfig {
                certificate_file: cert.into(),
                key_file: key.into(),
            })),
            (Some(cert), None) => Err(gst::error_msg!(
                gst::ResourceError::Settings,
                ["tls-certificate-file is {cert:?} but tls-key-file is not set: TLS needs both"]
            )),
            (None, Some(key)) => Err(gst::error_msg!(
                gst::ResourceError::Settings,
                ["tls-key-file is {key:?} but tls-certificate-file is not set: TLS needs both"]
            )),
        }
    }

    /// Checks the settings together: TLS files in pairs, and a transport set that leaves
    /// something to serve.
    pub fn check(&self) -> Result<(), gst::ErrorMessage> {
        let tls = self.tls()?;
        let mut usable = self.transports.to_set();
        if tls.is_none() {
            usable = usable.without(Transport::Rtmps).without(Transport::Rtmpts);
        }
        if usable.is_empty() {
            let asked = self.transports.to_set();
            return Err(gst::error_msg!(
                gst::ResourceError::Settings,
                [
                    "transports={asked} leaves nothing to serve{}",
                    if tls.is_none() && !asked.is_empty() {
                        " without tls-certificate-file and tls-key-file"
                    } else {
                        ""
                    }
                ]
            ));
        }
        Ok(())
    }

    /// The route this element asks the listener for (after [`check`](Self::check)).
    pub fn route_config(&self, endpoint: Endpoint, hooks: Arc<dyn RouteHooks>) -> RouteConfig {
        RouteConfig {
            transports: self.transports.to_set(),
            tls: self.tls().ok().flatten(),
            app: self.application.trim_end_matches('/').to_string(),
            stream: self.stream.clone(),
            endpoint,
            hooks,
            max_clients: self.max_clients,
            handshake_timeout: Duration::from_secs(self.handshake_timeout.into()),
            idle_timeout: (self.idle_timeout > 0)
                .then(|| Duration::from_secs(self.idle_timeout.into())),
            linger: Duration::from_secs(self.linger.into()),
        }
    }
}

/// The signals both server elements have.
pub fn signals() -> Vec<glib::subclass::Signal> {
    vec![
        // authorize(peer, app, stream, query, publish) -> accept?
        glib::subclass::Signal::builder("authorize")
            .param_types([
                String::static_type(),
                String::static_type(),
                String::static_type(),
                String::static_type(),
                bool::static_type(),
            ])
            .return_type::<bool>()
            .run_last()
            // Without a handler, the route's stream key already decided: accept.
            .class_handler(|_| Some(true.to_value()))
            // The first handler's answer is final.
            .accumulator(|_hint, _acc, value| ControlFlow::Break(value.clone()))
            .build(),
        glib::subclass::Signal::builder("client-connected")
            .param_types([String::static_type()])
            .build(),
        glib::subclass::Signal::builder("client-disconnected")
            .param_types([String::static_type()])
            .build(),
    ]
}

/// The action signal `request-reconnect(tc-url, description) -> R` of a server element
/// (Enhanced RTMP ReconnectRequest; "" = the same place): `ask` sends it and says to how many.
pub fn request_reconnect_signal<E, R>(ask: fn(&E, String, String) -> R) -> glib::subclass::Signal
where
    E: IsA<gst::Element> + for<'a> glib::value::FromValue<'a> + 'static,
    R: ToValue + glib::types::StaticType + 'static,
{
    glib::subclass::Signal::builder("request-reconnect")
        .param_types([String::static_type(), String::static_type()])
        .return_type::<R>()
        .action()
        .class_handler(move |args| {
            let element = args[0].get::<E>().expect("the element");
            let tc_url = args[1].get::<String>().unwrap_or_default();
            let description = args[2].get::<String>().unwrap_or_default();
            Some(ask(&element, tc_url, description).to_value())
        })
        .build()
}

/// Connects a listener route to an element's signals. Holds only a weak reference: a route
/// never keeps its element alive.
pub struct ElementHooks<T: IsA<gst::Element>> {
    pub element: glib::WeakRef<T>,
}

impl<T: IsA<gst::Element> + Send + Sync> RouteHooks for ElementHooks<T> {
    fn authorize(&self, req: &AuthRequest) -> bool {
        let Some(element) = self.element.upgrade() else {
            return false;
        };
        element.emit_by_name::<bool>(
            "authorize",
            &[
                &req.peer.to_string(),
                &req.app,
                &req.stream,
                &req.query,
                &req.publish,
            ],
        )
    }

    fn client_connected(&self, peer: SocketAddr) {
        if let Some(element) = self.element.upgrade() {
            element.emit_by_name::<()>("client-connected", &[&peer.to_string()]);
        }
    }

    fn client_disconnected(&self, peer: SocketAddr) {
        if let Some(element) = self.element.upgrade() {
            element.emit_by_name::<()>("client-disconnected", &[&peer.to_string()]);
        }
    }

    fn has_handlers(&self) -> bool {
        let Some(element) = self.element.upgrade() else {
            return false;
        };
        ["authorize", "client-connected", "client-disconnected"]
            .into_iter()
            .filter_map(|name| glib::subclass::SignalId::lookup(name, element.type_()))
            .any(|id| glib::signal::signal_has_handler_pending(&element, id, None, true))
    }
}
