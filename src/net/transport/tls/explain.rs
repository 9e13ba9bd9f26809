//! TLS failures in plain words: what is wrong and what to do, naming the property and the
//! value involved. rustls' own error stays in the debug log; these texts are what users read
//! in an element error or a server log line.
//!
//! The client side knows the certificates the server presented (recorded by the verifier), so
//! a refusal names the certificate's subject, issuer, names and dates. The server side knows
//! the name the client asked for (SNI) and its own certificate.

use std::io;
use std::net::IpAddr;
use std::path::Path;

use rustls::pki_types::CertificateDer;
use rustls::{AlertDescription, CertificateError, PeerIncompatible};

use super::inspect::{CertInfo, format_time};

/// What a client's message can draw on.
pub(crate) struct ClientSide<'a> {
    /// The host as the location names it (an IPv6 literal may be bracketed).
    pub host: &'a str,
    pub port: Option<u16>,
    pub ca_file: Option<&'a Path>,
    /// The certificates the server presented, its own first (empty before it sent them).
    pub presented: &'a [CertificateDer<'static>],
    /// The server's own certificate is one of `tls-ca-file`'s (pinned).
    pub pinned: bool,
}

impl ClientSide<'_> {
    pub fn target(&self) -> String {
        match self.port {
            Some(port) if self.host.contains(':') && !self.host.starts_with('[') => {
                format!("[{}]:{port}", self.host)
            }
            Some(port) => format!("{}:{port}", self.host),
            None => self.host.to_string(),
        }
    }

    fn bare_host(&self) -> &str {
        self.host.trim_start_matches('[').trim_end_matches(']')
    }

    fn host_is_ip(&self) -> bool {
        self.bare_host().parse::<IpAddr>().is_ok()
    }

    /// `tls-ca-file is not set` / `tls-ca-file /x.pem does not hold it`.
    fn ca_file_state(&self) -> String {
        match self.ca_file {
            None => "tls-ca-file is not set".to_string(),
            Some(path) => format!("tls-ca-file {} does not hold it", path.display()),
        }
    }

    /// What an IP-address location means for SNI, for failures a missing SNI can cause.
    fn sni_note(&self) -> &'static str {
        if self.host_is_ip() {
            "; no server name (SNI) was sent, because the location names an IP address: a \
             server that serves several names needs one, so put its host name in the location"
        } else {
            ""
        }
    }

    fn leaf(&self) -> Option<CertInfo> {
        self.presented.first().and_then(|c| CertInfo::parse(c))
    }
}

/// `HandshakeFailure` → `handshake_failure`, the alert's name in the TLS specification.
fn alert_name(alert: AlertDescription) -> String {
    let mut out = String::new();
    let mut after_lower = false;
    for ch in format!("{alert:?}").chars() {
        if ch.is_ascii_uppercase() && after_lower {
            out.push('_');
        }
        after_lower = ch.is_ascii_lowercase() || ch.is_ascii_digit();
        out.push(ch.to_ascii_lowercase());
    }
    out
}

/// The rustls error inside an I/O error from tokio-rustls, if there is one.
pub(crate) fn rustls_error(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
}

fn is_hang_up(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

const NOT_TLS_HINT: &str = "rtmps:// needs the server's TLS port, often 443; plain RTMP is \
                            rtmp://, usually port 1935";

const TLS_WE_SPEAK: &str = "TLS 1.2 or 1.3 with ECDHE key exchange and AES-GCM or \
                            ChaCha20-Poly1305";

/// Why the client's TLS handshake failed, in plain words.
pub(crate) fn client_failure(e: &io::Error, side: &ClientSide<'_>) -> String {
    let target = side.target();
    let Some(err) = rustls_error(e) else {
        if is_hang_up(e) {
            return format!(
                "the server at {target} closed the connection during the TLS handshake: it does \
                 not speak TLS on this port ({NOT_TLS_HINT}), or it refused this client (its log \
                 says why){}",
                side.sni_note()
            );
        }
        return format!("the connection to {target} failed during the TLS handshake: {e}");
    };
    match err {
        rustls::Error::InvalidCertificate(cert_error) => certificate_failure(cert_error, side),
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            format!(
                "the server at {target} does not speak TLS on this port: what it sent is not a \
                 TLS handshake ({NOT_TLS_HINT})"
            )
        }
        rustls::Error::AlertReceived(alert) => {
            let name = alert_name(*alert);
            match alert {
                AlertDescription::ProtocolVersion
                | AlertDescription::HandshakeFailure
                | AlertDescription::InsufficientSecurity => format!(
                    "the server at {target} refused the TLS handshake (alert {name}): it shares \
                     no TLS version or cipher suite with this client ({TLS_WE_SPEAK}), or it \
                     needs something this client did not send{}",
                    side.sni_note()
                ),
                AlertDescription::UnrecognisedName => format!(
                    "the server at {target} does not serve the name {:?} (alert {name}){}",
                    side.bare_host(),
                    side.sni_note()
                ),
                AlertDescription::CertificateRequired => format!(
                    "the server at {target} asks for a client certificate (alert {name}), which \
                     this client cannot send"
                ),
                _ => format!(
                    "the server at {target} ended the TLS handshake with the alert {name}{}",
                    side.sni_note()
                ),
            }
        }
        rustls::Error::PeerIncompatible(why) => {
            let what = match why {
                PeerIncompatible::ServerDoesNotSupportTls12Or13 => {
                    "supports neither TLS 1.2 nor 1.3"
                }
                _ => "supports no TLS version or cipher suite this client accepts",
            };
            format!(
                "the server at {target} {what} (this client speaks {TLS_WE_SPEAK}): a server \
                 that offers only TLS 1.0 or 1.1 cannot be used"
            )
        }
        rustls::Error::NoCertificatesPresented => {
            format!("the server at {target} sent no certificate")
        }
        rustls::Error::PeerMisbehaved(_) => {
            format!("the server at {target} broke the TLS protocol during the handshake")
        }
        other => format!("the TLS handshake with {target} failed: {other}"),
    }
}

fn certificate_failure(error: &CertificateError, side: &ClientSide<'_>) -> String {
    let host = side.bare_host();
    let leaf = side.leaf();
    let subject = leaf
        .as_ref()
        .map_or_else(|| "the certificate".to_string(), |i| i.subject.clone());
    let other_error_text = match error {
        CertificateError::Other(other) => format!("{:?}", other.0),
        _ => String::new(),
    };
    let self_signed = leaf.as_ref().is_some_and(|i| i.self_issued);
    let unknown_issuer = matches!(error, CertificateError::UnknownIssuer)
        || other_error_text.contains("CaUsedAsEndEntity");
    if unknown_issuer && self_signed {
        return format!(
            "the server's certificate ({subject}) is self-signed, and this client does not trust \
             it: set tls-ca-file to a copy of that certificate (PEM) to trust exactly it ({}), or \
             set tls-validation-flags=0 to accept any certificate",
            side.ca_file_state()
        );
    }
    if other_error_text.contains("CaUsedAsEndEntity") {
        return format!(
            "the server presents a CA certificate ({subject}, CA:TRUE) as its own, which is only \
             accepted when it is pinned: put exactly this certificate into tls-ca-file ({}), or \
             give the server a certificate issued by that CA",
            side.ca_file_state()
        );
    }
    match error {
        CertificateError::UnknownIssuer => {
            let issuer = leaf
                .as_ref()
                .map_or_else(|| "an issuer".to_string(), |i| i.issuer.clone());
            let chain_hint = if side.presented.len() == 1 {
                format!(
                    "; if {issuer} is an intermediate CA, the server must send its certificate \
                     too (the server's certificate file holds its own certificate, then the \
                     intermediates)"
                )
            } else {
                String::new()
            };
            format!(
                "the server's certificate ({subject}) is issued by {issuer}, which no trusted CA \
                 vouches for: set tls-ca-file to a PEM file with the certificate of the CA that \
                 issued it ({}){chain_hint}",
                side.ca_file_state()
            )
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            let names = match (&leaf, error) {
                (Some(info), _) => info.names_text(),
                (None, CertificateError::NotValidForNameContext { presented, .. }) => {
                    presented.join(", ")
                }
                _ => "other names".to_string(),
            };
            let entry = if side.host_is_ip() { "IP" } else { "DNS" };
            format!(
                "the server's certificate ({subject}) is for {names}, not for {host}: use one of \
                 its names in the location, or give the server a certificate whose \
                 subjectAltName has {entry}:{host}"
            )
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            let (expired_on, now) = match (error, &leaf) {
                (CertificateError::ExpiredContext { time, not_after }, _) => (
                    format_time(not_after.as_secs() as i64),
                    format!(" (it is now {})", format_time(time.as_secs() as i64)),
                ),
                (_, Some(info)) => (format_time(info.not_after), String::new()),
                _ => ("an earlier date".to_string(), String::new()),
            };
            let pin = if side.pinned {
                ", and copy the new certificate into tls-ca-file, which pins this one"
            } else {
                ""
            };
            format!(
                "the server's certificate ({subject}) expired on {expired_on}{now}: the server \
                 must renew it{pin} (or this machine's clock is wrong)"
            )
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            let (valid_from, now) = match (error, &leaf) {
                (CertificateError::NotValidYetContext { time, not_before }, _) => (
                    format_time(not_before.as_secs() as i64),
                    format!(" (it is now {})", format_time(time.as_secs() as i64)),
                ),
                (_, Some(info)) => (format_time(info.not_before), String::new()),
                _ => ("a later date".to_string(), String::new()),
            };
            format!(
                "the server's certificate ({subject}) is not valid before {valid_from}{now}: the \
                 clock of this machine or of the one that made the certificate is wrong"
            )
        }
        CertificateError::BadEncoding => {
            "the server's certificate is not a valid X.509 certificate (bad encoding)".to_string()
        }
        CertificateError::BadSignature => {
            let issuer = leaf
                .as_ref()
                .map_or_else(|| "its issuer".to_string(), |i| i.issuer.clone());
            format!(
                "the signature on the server's certificate ({subject}) does not match the key of \
                 {issuer}: the server's chain is broken, or tls-ca-file holds another CA of the \
                 same name"
            )
        }
        #[allow(deprecated)]
        CertificateError::UnsupportedSignatureAlgorithm
        | CertificateError::UnsupportedSignatureAlgorithmContext { .. }
        | CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => format!(
            "the server's certificate ({subject}) is signed with an algorithm this client does \
             not accept (such as SHA-1 or MD5): the server needs one signed with SHA-256 or better"
        ),
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            format!(
                "the server's certificate ({subject}) is not for TLS servers: its extended key \
                 usage lacks serverAuth"
            )
        }
        CertificateError::UnhandledCriticalExtension => format!(
            "the server's certificate ({subject}) has a critical extension this client does not \
             understand"
        ),
        CertificateError::Revoked => format!("the server's certificate ({subject}) is revoked"),
        other => format!("the server's certificate ({subject}) is refused: {other}"),
    }
}

/// What a server's message can draw on.
pub(crate) struct ServerSide<'a> {
    /// The name the client asked for; `None` when its ClientHello had none (or did not come).
    pub sni: Option<&'a str>,
    /// The ClientHello arrived (so `sni` is what the client sent).
    pub hello: bool,
    pub cert_file: &'a Path,
    pub leaf: Option<&'a CertInfo>,
}

impl ServerSide<'_> {
    /// `CN=x from tls-certificate-file /c.pem, for localhost, 127.0.0.1`.
    fn ours(&self) -> String {
        match self.leaf {
            Some(info) => format!(
                "{} from tls-certificate-file {}, for {}",
                info.subject,
                self.cert_file.display(),
                info.names_text()
            ),
            None => format!("from tls-certificate-file {}", self.cert_file.display()),
        }
    }

    /// What the client asked for, and whether the certificate names it.
    fn sni_text(&self) -> String {
        if !self.hello {
            return String::new();
        }
        match self.sni {
            None => "; it sent no server name (SNI): it connected by IP address, or it never \
                     sends one"
                .to_string(),
            Some(name) => {
                let named = self
                    .leaf
                    .is_none_or(|info| info.names.iter().any(|n| name_matches(n, name)));
                if named {
                    format!("; it asked for {name:?}")
                } else {
                    format!("; it asked for {name:?}, which our certificate does not name")
                }
            }
        }
    }
}

/// A certificate name (maybe `*.example.com`) against a host name, ASCII case-insensitively.
fn name_matches(pattern: &str, host: &str) -> bool {
    let (pattern, host) = (pattern.to_ascii_lowercase(), host.to_ascii_lowercase());
    match pattern.strip_prefix("*.") {
        Some(suffix) => host
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
        None => pattern == host,
    }
}

/// Why a client's TLS handshake with the server failed, in plain words.
pub(crate) fn server_failure(e: &io::Error, side: &ServerSide<'_>) -> String {
    let sni = side.sni_text();
    let ours = side.ours();
    let Some(err) = rustls_error(e) else {
        if is_hang_up(e) {
            return format!(
                "the client closed the connection during the TLS handshake without saying why; \
                 a client that does not trust our certificate ({ours}) may do that{sni}"
            );
        }
        return format!("the connection failed during the TLS handshake: {e}");
    };
    match err {
        rustls::Error::AlertReceived(alert) => {
            let name = alert_name(*alert);
            match alert {
                AlertDescription::UnknownCA => format!(
                    "the client does not trust the issuer of our certificate ({ours}; alert \
                     {name}): give the client the certificate of the CA that issued it, or for \
                     a self-signed certificate the certificate itself (rtmpclientsrc and \
                     rtmpclientsink: tls-ca-file; FFmpeg: -ca_file){sni}"
                ),
                AlertDescription::BadCertificate
                | AlertDescription::CertificateUnknown
                | AlertDescription::UnsupportedCertificate => format!(
                    "the client refused our certificate ({ours}; alert {name}): it does not \
                     trust it, or it connected by a name the certificate does not have{sni}"
                ),
                AlertDescription::CertificateExpired => {
                    let validity = side
                        .leaf
                        .map_or_else(String::new, |i| format!(", {}", i.validity_text()));
                    format!(
                        "the client says our certificate has expired ({ours}{validity}; alert \
                         {name}): renew it (new handshakes pick up the new files by themselves), \
                         or check the client's clock"
                    )
                }
                AlertDescription::ProtocolVersion
                | AlertDescription::HandshakeFailure
                | AlertDescription::InsufficientSecurity => format!(
                    "the client shares no TLS version or cipher suite with this server (alert \
                     {name}; this server speaks {TLS_WE_SPEAK})"
                ),
                _ => format!("the client ended the TLS handshake with the alert {name}{sni}"),
            }
        }
        rustls::Error::PeerIncompatible(_) => format!(
            "the client offers no TLS version or cipher suite this server supports (this server \
             speaks {TLS_WE_SPEAK}): a client with only TLS 1.0 or 1.1 cannot connect"
        ),
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            "the client sent bytes that are not a TLS handshake".to_string()
        }
        rustls::Error::PeerMisbehaved(_) => {
            "the client broke the TLS protocol during the handshake".to_string()
        }
        other => format!("the TLS handshake failed: {other}{sni}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_are_named_as_in_the_specification() {
        assert_eq!(alert_name(AlertDescription::UnknownCA), "unknown_ca");
        assert_eq!(
            alert_name(AlertDescription::HandshakeFailure),
            "handshake_failure"
        );
    }

    #[test]
    fn wildcards_match_one_label() {
        assert!(name_matches("*.example.com", "a.example.com"));
        assert!(!name_matches("*.example.com", "a.b.example.com"));
        assert!(!name_matches("*.example.com", "example.com"));
        assert!(name_matches("LocalHost", "localhost"));
    }
}
