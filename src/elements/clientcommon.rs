//! What `rtmpclientsrc` and `rtmpclientsink` share: the location properties (rtmp2's names,
//! defaults and meanings), authentication, timeouts, reconnection, and the `stats` structure.
//!
//! The location is kept as its parts (scheme, host, port, application, stream, credentials),
//! as rtmp2 does: setting `location` parses it into the parts; reading it formats them back,
//! without the credentials, so a location read for a log never carries a password.

use std::time::Duration;

use gst::glib;
use gst::prelude::*;

use crate::net::client::{self, AuthMode, ClientConfig, ReconnectPolicy, Stats};
use crate::net::transport::tls::TlsClientConfig;
use crate::rtmp::url::{RtmpUrl, Scheme};

pub const DEFAULT_SCHEME: RtmpScheme = RtmpScheme::Rtmp;
pub const DEFAULT_HOST: &str = "localhost";
pub const DEFAULT_PORT: u32 = 1935;
pub const DEFAULT_APPLICATION: &str = "live";
pub const DEFAULT_STREAM: &str = "myStream";
pub const DEFAULT_AUTHMOD: RtmpAuthmod = RtmpAuthmod::Auto;
pub const DEFAULT_TIMEOUT: u32 = 5;
pub const DEFAULT_ASYNC_CONNECT: bool = true;
pub const DEFAULT_RECONNECT_ATTEMPTS: i32 = 10;
pub const DEFAULT_RECONNECT_DELAY: u32 = 500;
pub const DEFAULT_RECONNECT_MAX_DELAY: u32 = 5000;
/// rtmp2's default: every check on.
pub const DEFAULT_TLS_VALIDATION_FLAGS: gio::TlsCertificateFlags =
    gio::TlsCertificateFlags::VALIDATE_ALL;

/// The URL schemes the client elements connect with (and handle as URIs).
pub const SUPPORTED_SCHEMES: &[&str] = &["rtmp", "rtmps", "rtmpt", "rtmpts", "rtmpe", "rtmpte"];

/// Transport scheme, as rtmp2's `scheme` property (which has only the first two).
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstRsRtmpScheme")]
pub enum RtmpScheme {
    #[enum_value(name = "RTMP over TCP", nick = "rtmp")]
    Rtmp = 0,
    #[enum_value(name = "RTMP over TLS", nick = "rtmps")]
    Rtmps = 1,
    #[enum_value(name = "RTMP tunnelled in HTTP", nick = "rtmpt")]
    Rtmpt = 2,
    #[enum_value(name = "RTMP tunnelled in HTTPS", nick = "rtmpts")]
    Rtmpts = 3,
    #[enum_value(name = "Encrypted RTMP (RTMPE)", nick = "rtmpe")]
    Rtmpe = 4,
    #[enum_value(name = "RTMPE tunnelled in HTTP", nick = "rtmpte")]
    Rtmpte = 5,
}

impl From<RtmpScheme> for Scheme {
    fn from(s: RtmpScheme) -> Scheme {
        match s {
            RtmpScheme::Rtmp => Scheme::Rtmp,
            RtmpScheme::Rtmps => Scheme::Rtmps,
            RtmpScheme::Rtmpt => Scheme::Rtmpt,
            RtmpScheme::Rtmpts => Scheme::Rtmpts,
            RtmpScheme::Rtmpe => Scheme::Rtmpe,
            RtmpScheme::Rtmpte => Scheme::Rtmpte,
        }
    }
}

impl From<Scheme> for RtmpScheme {
    fn from(s: Scheme) -> RtmpScheme {
        match s {
            Scheme::Rtmp => RtmpScheme::Rtmp,
            Scheme::Rtmps => RtmpScheme::Rtmps,
            Scheme::Rtmpt => RtmpScheme::Rtmpt,
            Scheme::Rtmpts => RtmpScheme::Rtmpts,
            Scheme::Rtmpe => RtmpScheme::Rtmpe,
            Scheme::Rtmpte => RtmpScheme::Rtmpte,
        }
    }
}

/// Authentication method, with rtmp2's value nicks. The type name differs from rtmp2's
/// `GstRtmpAuthmod` so both plugins can be loaded in one process.
#[derive(Debug, Eq, PartialEq, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstRsRtmpAuthmod")]
pub enum RtmpAuthmod {
    #[enum_value(name = "Never authenticate", nick = "none")]
    None = 0,
    #[enum_value(name = "Answer the method the server asks for", nick = "auto")]
    Auto = 1,
    #[enum_value(name = "Adobe authentication", nick = "adobe")]
    Adobe = 2,
    #[enum_value(name = "Limelight authentication", nick = "llnw")]
    Llnw = 3,
}

impl From<RtmpAuthmod> for AuthMode {
    fn from(a: RtmpAuthmod) -> AuthMode {
        match a {
            RtmpAuthmod::None => AuthMode::None,
            RtmpAuthmod::Auto => AuthMode::Auto,
            RtmpAuthmod::Adobe => AuthMode::Adobe,
            RtmpAuthmod::Llnw => AuthMode::Llnw,
        }
    }
}

/// The settings both client elements have.
#[derive(Debug, Clone)]
pub struct CommonSettings {
    pub scheme: RtmpScheme,
    pub host: String,
    pub port: u32,
    pub application: String,
    pub stream: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub authmod: RtmpAuthmod,
    /// Seconds.
    pub timeout: u32,
    pub flash_version: Option<String>,
    pub async_connect: bool,
    pub extra_connect_args: Option<String>,
    pub reconnect: bool,
    /// -1: no limit.
    pub reconnect_attempts: i32,
    /// Milliseconds.
    pub reconnect_delay: u32,
    /// Milliseconds.
    pub reconnect_max_delay: u32,
    /// rtmp2's `tls-validation-flags`: empty turns certificate verification off; any other
    /// value turns all of it on (rustls cannot skip single checks).
    pub tls_validation_flags: gio::TlsCertificateFlags,
    /// PEM file of certificates trusted in addition to the system's: CAs, or a server's own
    /// certificate (pinned).
    pub tls_ca_file: Option<String>,
    /// FourCCs announced in `connect`, comma-separated; empty: a legacy connect.
    pub enhanced_codecs: String,
}

impl CommonSettings {
    /// Defaults; `reconnect` differs between the elements.
    pub fn new(reconnect: bool) -> Self {
        CommonSettings {
            scheme: DEFAULT_SCHEME,
            host: DEFAULT_HOST.into(),
            port: DEFAULT_PORT,
            application: DEFAULT_APPLICATION.into(),
            stream: DEFAULT_STREAM.into(),
            username: None,
            password: None,
            authmod: DEFAULT_AUTHMOD,
            timeout: DEFAULT_TIMEOUT,
            flash_version: None,
            async_connect: DEFAULT_ASYNC_CONNECT,
            extra_connect_args: None,
            reconnect,
            reconnect_attempts: DEFAULT_RECONNECT_ATTEMPTS,
            reconnect_delay: DEFAULT_RECONNECT_DELAY,
            reconnect_max_delay: DEFAULT_RECONNECT_MAX_DELAY,
            tls_validation_flags: DEFAULT_TLS_VALIDATION_FLAGS,
            tls_ca_file: None,
            enhanced_codecs: client::DEFAULT_ENHANCED_CODECS.into(),
        }
    }

    /// The TLS settings the properties describe.
    pub fn tls_config(&self) -> TlsClientConfig {
        TlsClientConfig {
            verify: !self.tls_validation_flags.is_empty(),
            ca_file: self
                .tls_ca_file
                .as_deref()
                .filter(|f| !f.is_empty())
                .map(Into::into),
        }
    }

    fn url(&self, with_credentials: bool) -> RtmpUrl {
        let scheme = Scheme::from(self.scheme);
        RtmpUrl {
            scheme,
            host: self.host.clone(),
            port: u16::try_from(self.port)
                .ok()
                .filter(|&p| p != scheme.default_port()),
            app: self.application.clone(),
            stream: self.stream.clone(),
            username: self.username.clone().filter(|_| with_credentials),
            password: self.password.clone().filter(|_| with_credentials),
            options: Vec::new(),
        }
    }

    /// The location without credentials.
    pub fn location(&self) -> String {
        self.url(false).to_string()
    }

    /// Parses `location` into the parts. User info in the URL replaces the credentials, and
    /// their absence clears them (rtmp2 behaves the same way).
    pub fn set_location(&mut self, location: &str) -> Result<(), glib::Error> {
        let url = RtmpUrl::parse(location).map_err(|e| {
            glib::Error::new(
                gst::URIError::BadUri,
                &format!("invalid RTMP location {location:?}: {e}"),
            )
        })?;
        self.scheme = url.scheme.into();
        self.port = url.port_or_default().into();
        self.host = url.host;
        self.application = url.app;
        self.stream = url.stream;
        self.username = url.username;
        self.password = url.password;
        Ok(())
    }

    /// Checks the settings and turns them into the driver's configuration. The error names
    /// the offending value.
    pub fn client_config(&self) -> Result<ClientConfig, String> {
        let scheme = Scheme::from(self.scheme);
        if self.host.is_empty() {
            return Err("host is empty".into());
        }
        if self.application.is_empty() {
            return Err("application is empty".into());
        }
        if self.stream.is_empty() {
            return Err("stream is empty".into());
        }
        let extra_connect_args = match &self.extra_connect_args {
            Some(text) => client::parse_extra_connect_args(text)?,
            None => Vec::new(),
        };
        // Built here, once per start: a bad CA file is a settings error, and reconnects
        // reuse the loaded roots.
        let tls = if scheme.is_tls() {
            Some(
                self.tls_config()
                    .connector()
                    .map_err(|e| format!("TLS settings for {}: {e}", scheme.as_str()))?,
            )
        } else {
            None
        };
        let enhanced_codecs = client::parse_enhanced_codecs(&self.enhanced_codecs)?;
        Ok(ClientConfig {
            tls,
            enhanced_codecs,
            url: self.url(true),
            authmod: self.authmod.into(),
            timeout: Duration::from_secs(self.timeout.into()),
            flash_version: self.flash_version.clone().filter(|v| !v.is_empty()),
            extra_connect_args,
            reconnect: ReconnectPolicy {
                enabled: self.reconnect,
                max_attempts: u32::try_from(self.reconnect_attempts).ok(),
                initial_delay: Duration::from_millis(self.reconnect_delay.into()),
                max_delay: Duration::from_millis(self.reconnect_max_delay.into()),
            },
        })
    }
}

/// The property specs both elements have. `what` ("publish" / "play") goes into blurbs.
pub fn properties(reconnect_default: bool, reconnect_blurb: &str) -> Vec<glib::ParamSpec> {
    vec![
        glib::ParamSpecString::builder("location")
            .nick("Location")
            .blurb(
                "Location of the stream: scheme://[user[:password]@]host[:port]/application/stream \
                 (sets scheme, host, port, application, stream, username and password; \
                 reading it gives no credentials)",
            )
            .default_value(Some("rtmp://localhost/live/myStream"))
            .mutable_ready()
            .build(),
        glib::ParamSpecEnum::builder_with_default("scheme", DEFAULT_SCHEME)
            .nick("Scheme")
            .blurb(
                "RTMP transport: rtmp (TCP, port 1935), rtmps (TLS, 443), rtmpt (HTTP \
                 tunnel, 80), rtmpts (HTTP tunnel over TLS, 443), rtmpe (encrypted \
                 handshake and RC4, 1935), rtmpte (RTMPE in the HTTP tunnel, 80)",
            )
            .mutable_ready()
            .build(),
        glib::ParamSpecString::builder("host")
            .nick("Host")
            .blurb("Server host name or address")
            .default_value(Some(DEFAULT_HOST))
            .mutable_ready()
            .build(),
        glib::ParamSpecInt::builder("port")
            .nick("Port")
            .blurb("Server port")
            .minimum(1)
            .maximum(65535)
            .default_value(DEFAULT_PORT as i32)
            .mutable_ready()
            .build(),
        glib::ParamSpecString::builder("application")
            .nick("Application")
            .blurb("RTMP application (the path before the stream name)")
            .default_value(Some(DEFAULT_APPLICATION))
            .mutable_ready()
            .build(),
        glib::ParamSpecString::builder("stream")
            .nick("Stream")
            .blurb("Stream name (stream key) to publish or play")
            .default_value(Some(DEFAULT_STREAM))
            .mutable_ready()
            .build(),
        glib::ParamSpecString::builder("username")
            .nick("User name")
            .blurb("User name for authentication (default: none)")
            .mutable_ready()
            .build(),
        glib::ParamSpecString::builder("password")
            .nick("Password")
            .blurb("Password for authentication (default: none)")
            .mutable_ready()
            .build(),
        glib::ParamSpecEnum::builder_with_default("authmod", DEFAULT_AUTHMOD)
            .nick("Authentication mode")
            .blurb(
                "Authentication to answer a rejected connect with: none, auto (the method \
                 the server asks for), adobe or llnw",
            )
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt::builder("timeout")
            .nick("Timeout")
            .blurb(
                "Seconds allowed for opening a connection: DNS, TCP, handshake, connect (each \
                 authentication round) and the publish or play answer",
            )
            .minimum(1)
            .default_value(DEFAULT_TIMEOUT)
            .mutable_ready()
            .build(),
        glib::ParamSpecString::builder("flash-version")
            .nick("Flash version")
            .blurb("flashVer value sent in connect (default: none, the field is omitted)")
            .mutable_ready()
            .build(),
        glib::ParamSpecBoolean::builder("async-connect")
            .nick("Async connect")
            .blurb(
                "Connect when the element starts (READY to PAUSED); when false, connect on \
                 the first buffer (sink) or the first request for data (source)",
            )
            .default_value(DEFAULT_ASYNC_CONNECT)
            .mutable_ready()
            .build(),
        glib::ParamSpecString::builder("enhanced-codecs")
            .nick("Enhanced RTMP codecs")
            .blurb(
                "FourCCs announced in connect (fourCcList, videoFourCcInfoMap, \
                 audioFourCcInfoMap, with capsEx), comma-separated as FFmpeg's \
                 -rtmp_enhanced_codecs; servers such as MediaMTX give a player only the codecs \
                 it lists. Empty: a legacy connect. A server that refuses the fields is asked \
                 again without them",
            )
            .default_value(Some(client::DEFAULT_ENHANCED_CODECS))
            .mutable_ready()
            .build(),
        glib::ParamSpecString::builder("extra-connect-args")
            .nick("Extra connect arguments")
            .blurb(
                "Extra arguments for connect, librtmp style: space-separated conn=TYPE:VALUE \
                 with TYPE B (0 or 1), N (number), S (string) or Z (null) (default: none)",
            )
            .mutable_ready()
            .build(),
        glib::ParamSpecBoxed::builder::<gst::Structure>("stats")
            .nick("Stats")
            .blurb(
                "Connection statistics: rtmp2's in/out chunk size, window ack size, bytes \
                 total and bytes acked, plus bitrate (bit/s), frames, drops, reconnects, \
                 reconnect-requests, held and resent; tracks: per track kind, id, codec \
                 (FourCC), enhanced, frames, keyframes, bytes",
            )
            .read_only()
            .build(),
        glib::ParamSpecBoolean::builder("reconnect")
            .nick("Reconnect")
            .blurb(reconnect_blurb)
            .default_value(reconnect_default)
            .mutable_ready()
            .build(),
        glib::ParamSpecInt::builder("reconnect-attempts")
            .nick("Reconnect attempts")
            .blurb("Attempts per outage before giving up (-1: no limit)")
            .minimum(-1)
            .default_value(DEFAULT_RECONNECT_ATTEMPTS)
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt::builder("reconnect-delay")
            .nick("Reconnect delay")
            .blurb("Milliseconds to wait before the first reconnect attempt; doubled after each failure")
            .default_value(DEFAULT_RECONNECT_DELAY)
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt::builder("reconnect-max-delay")
            .nick("Reconnect maximum delay")
            .blurb("Milliseconds the doubling reconnect delay never exceeds")
            .default_value(DEFAULT_RECONNECT_MAX_DELAY)
            .mutable_ready()
            .build(),
        glib::ParamSpecFlags::builder::<gio::TlsCertificateFlags>("tls-validation-flags")
        .default_value(DEFAULT_TLS_VALIDATION_FLAGS)
        .nick("TLS validation flags")
        .blurb(
            "Certificate checks for rtmps and rtmpts, as rtmp2's: 0 turns verification off \
             (any certificate is accepted); any other value verifies the chain, the host \
             name and the dates in full",
        )
        .mutable_ready()
        .build(),
        glib::ParamSpecString::builder("tls-ca-file")
            .nick("TLS CA file")
            .blurb(
                "PEM file of certificates to trust for rtmps and rtmpts, in addition to the \
                 system's: CAs, or a server's own (self-signed) certificate, which is then \
                 pinned (the server must present exactly it; its host name and dates are \
                 still checked). Default: none",
            )
            .mutable_ready()
            .build(),
    ]
}

/// Applies a shared property. Returns false when `name` is not one of them.
pub fn set_property(
    settings: &mut CommonSettings,
    name: &str,
    value: &glib::Value,
) -> Result<bool, glib::Error> {
    match name {
        "location" => {
            if let Some(location) = value.get::<Option<String>>().expect("type checked") {
                settings.set_location(&location)?;
            }
        }
        "scheme" => settings.scheme = value.get().expect("type checked"),
        "host" => {
            settings.host = value
                .get::<Option<String>>()
                .expect("type checked")
                .unwrap_or_default()
        }
        "port" => settings.port = value.get::<i32>().expect("type checked") as u32,
        "application" => {
            settings.application = value
                .get::<Option<String>>()
                .expect("type checked")
                .unwrap_or_default()
        }
        "stream" => {
            settings.stream = value
                .get::<Option<String>>()
                .expect("type checked")
                .unwrap_or_default()
        }
        "username" => settings.username = value.get().expect("type checked"),
        "password" => settings.password = value.get().expect("type checked"),
        "authmod" => settings.authmod = value.get().expect("type checked"),
        "timeout" => settings.timeout = value.get().expect("type checked"),
        "flash-version" => settings.flash_version = value.get().expect("type checked"),
        "async-connect" => settings.async_connect = value.get().expect("type checked"),
        "extra-connect-args" => settings.extra_connect_args = value.get().expect("type checked"),
        "enhanced-codecs" => {
            settings.enhanced_codecs = value
                .get::<Option<String>>()
                .expect("type checked")
                .unwrap_or_default()
        }
        "reconnect" => settings.reconnect = value.get().expect("type checked"),
        "reconnect-attempts" => settings.reconnect_attempts = value.get().expect("type checked"),
        "reconnect-delay" => settings.reconnect_delay = value.get().expect("type checked"),
        "reconnect-max-delay" => settings.reconnect_max_delay = value.get().expect("type checked"),
        "tls-validation-flags" => {
            settings.tls_validation_flags = value.get().expect("type checked")
        }
        "tls-ca-file" => settings.tls_ca_file = value.get().expect("type checked"),
        _ => return Ok(false),
    }
    Ok(true)
}

/// Reads a shared property other than `stats`; `None` when `name` is not one of them.
pub fn property(settings: &CommonSettings, name: &str) -> Option<glib::Value> {
    Some(match name {
        "location" => settings.location().to_value(),
        "scheme" => settings.scheme.to_value(),
        "host" => settings.host.to_value(),
        "port" => (settings.port as i32).to_value(),
        "application" => settings.application.to_value(),
        "stream" => settings.stream.to_value(),
        "username" => settings.username.to_value(),
        "password" => settings.password.to_value(),
        "authmod" => settings.authmod.to_value(),
        "timeout" => settings.timeout.to_value(),
        "flash-version" => settings.flash_version.to_value(),
        "async-connect" => settings.async_connect.to_value(),
        "extra-connect-args" => settings.extra_connect_args.to_value(),
        "enhanced-codecs" => settings.enhanced_codecs.to_value(),
        "reconnect" => settings.reconnect.to_value(),
        "reconnect-attempts" => settings.reconnect_attempts.to_value(),
        "reconnect-delay" => settings.reconnect_delay.to_value(),
        "reconnect-max-delay" => settings.reconnect_max_delay.to_value(),
        "tls-validation-flags" => settings.tls_validation_flags.to_value(),
        "tls-ca-file" => settings.tls_ca_file.to_value(),
        _ => return None,
    })
}

/// The `stats` structure. Named as rtmp2's, so code reading rtmp2's stats reads ours.
pub fn stats_structure(stats: &Stats) -> gst::Structure {
    gst::Structure::builder("GstRtmpConnectionStats")
        .field("in-chunk-size", stats.in_chunk_size)
        .field("out-chunk-size", stats.out_chunk_size)
        .field("in-window-ack-size", stats.in_window_ack_size)
        .field("out-window-ack-size", stats.out_window_ack_size)
        .field("in-bytes-total", stats.in_bytes_total)
        .field("out-bytes-total", stats.out_bytes_total)
        .field("in-bytes-acked", stats.in_bytes_acked)
        .field("out-bytes-acked", stats.out_bytes_acked)
        .field("bitrate", stats.bitrate)
        .field("frames", stats.frames)
        .field("drops", stats.drops)
        .field("reconnects", stats.reconnects)
        .field("reconnect-requests", stats.reconnect_requests)
        .field("held", stats.held)
        .field("resent", stats.resent)
        .build()
}

/// Cancels an element thread's wait on its connection task: `unlock()` sets it,
/// `unlock_stop()` clears it. Only the wait is cancelled, never the connection.
pub struct Flushing(tokio::sync::watch::Sender<bool>);

impl Default for Flushing {
    fn default() -> Self {
        Flushing(tokio::sync::watch::channel(false).0)
    }
}

impl Flushing {
    pub fn set(&self, flushing: bool) {
        self.0.send_replace(flushing);
    }

    pub fn is_set(&self) -> bool {
        *self.0.borrow()
    }

    /// Runs `fut` on the calling (GStreamer, never runtime) thread until it completes or
    /// flushing starts; `None` in the second case.
    pub fn wait<F: std::future::Future>(&self, fut: F) -> Option<F::Output> {
        let mut flushing = self.0.subscribe();
        futures::executor::block_on(async move {
            tokio::select! {
                biased;
                _ = flushing.wait_for(|f| *f) => None,
                out = fut => Some(out),
            }
        })
    }
}

/// The GStreamer error for a driver failure (design.md §5).
pub fn error_message(e: &client::ClientError, is_sink: bool) -> gst::ErrorMessage {
    use client::ErrorKind;
    let text = e.to_string();
    match (e.kind(), is_sink) {
        (ErrorKind::Open, true) => gst::error_msg!(gst::ResourceError::OpenWrite, ("{text}")),
        (ErrorKind::Open, false) => gst::error_msg!(gst::ResourceError::OpenRead, ("{text}")),
        (ErrorKind::NotAuthorized, _) => {
            gst::error_msg!(gst::ResourceError::NotAuthorized, ("{text}"))
        }
        (ErrorKind::NotFound, _) => gst::error_msg!(gst::ResourceError::NotFound, ("{text}")),
        (ErrorKind::Lost, true) => gst::error_msg!(gst::ResourceError::Write, ("{text}")),
        (ErrorKind::Lost, false) => gst::error_msg!(gst::ResourceError::Read, ("{text}")),
    }
}

/// A notice callback that turns the driver's notices into bus messages from `element`.
pub fn notice_fn(
    element: &gst::Element,
    cat: gst::DebugCategory,
    is_sink: bool,
) -> client::NoticeFn {
    let weak = element.downgrade();
    std::sync::Arc::new(move |notice| {
        let Some(element) = weak.upgrade() else {
            return;
        };
        match notice {
            client::Notice::Progress { kind, code, text } => {
                gst::info!(cat, obj = element, "{code}: {text}");
                let kind = match kind {
                    client::ProgressKind::Start => gst::ProgressType::Start,
                    client::ProgressKind::Complete => gst::ProgressType::Complete,
                    client::ProgressKind::Error => gst::ProgressType::Error,
                };
                let msg = gst::message::Progress::builder(kind, code, &text)
                    .src(&element)
                    .build();
                let _ = element.post_message(msg);
            }
            client::Notice::Warning(text) => {
                gst::warning!(cat, obj = element, "{text}");
                let domain = if is_sink {
                    gst::ResourceError::Write
                } else {
                    gst::ResourceError::Read
                };
                let msg = gst::message::Warning::builder(domain, &text)
                    .src(&element)
                    .build();
                let _ = element.post_message(msg);
            }
            client::Notice::Error(e) => {
                gst::error!(cat, obj = element, "{e}");
                element.post_error_message(error_message(&e, is_sink));
            }
        }
    })
}
