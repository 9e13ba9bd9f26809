//! TLS for `rtmps://` and `rtmpts://`, both roles, on tokio-rustls with the ring provider.
//!
//! Client: [`TlsClientConfig`] turns into a [`TlsConnector`]. Verification is on by default,
//! against the system's trusted roots plus an optional `tls-ca-file`. That file trusts what
//! users put in it: a CA that signed the server's certificate, or the server's own
//! (self-signed) certificate, which is then pinned: it must be exactly the certificate the
//! server presents, and its host name and validity period are still checked (see `verify`).
//! `verify: false` accepts any certificate but still checks that the server owns the key it
//! presents. The server name (SNI and the name the certificate must carry) is the URL's host;
//! IP literals are matched against the certificate's IP addresses.
//!
//! Server: [`TlsServerConfig`] loads a PEM certificate chain and a PEM private key (PKCS#8,
//! PKCS#1 or SEC1) into a [`TlsAcceptor`], which loads them again when the files change
//! (`reload`): new handshakes get the renewed certificate, open connections are untouched.
//!
//! Every failure names the host, the peer or the file and says in plain words what is wrong
//! and what to do (`explain`); rustls' own error goes to the debug log.
//!
//! The provider is passed explicitly to every config, so nothing here depends on (or sets) a
//! process-wide rustls default.

mod explain;
mod inspect;
mod reload;
mod verify;

use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};

use rustls::RootCertStore;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};

pub use reload::RELOAD_CHECK_INTERVAL;
use reload::ReloadingCert;
use verify::{AcceptAnyCertificate, Recording, TrustFileVerifier};

/// A TLS stream on the client side.
pub type ClientTlsStream<IO> = tokio_rustls::client::TlsStream<IO>;
/// A TLS stream on the server side.
pub type ServerTlsStream<IO> = tokio_rustls::server::TlsStream<IO>;

pub(crate) static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "rsrtmp-tls",
        gst::DebugColorFlags::empty(),
        Some("rsrtmp TLS: certificates, verification, handshakes"),
    )
});

/// What went wrong while setting up TLS or during a TLS handshake.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read CA file {path}: {reason}")]
    CaFile { path: PathBuf, reason: String },
    #[error("cannot use CA file {path}: {reason}")]
    CaFileContent { path: PathBuf, reason: String },
    #[error(
        "certificate verification is on but no trusted root is available: the system store is empty ({reason}) and no CA file is set"
    )]
    NoRoots { reason: String },
    #[error("cannot read TLS certificate file {path}: {reason}")]
    CertificateFile { path: PathBuf, reason: String },
    #[error("cannot read TLS key file {path}: {reason}")]
    KeyFile { path: PathBuf, reason: String },
    #[error("TLS certificate file {cert} and key file {key} do not form a usable pair: {reason}")]
    CertifiedKey {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
    #[error("{host:?} is not a valid TLS server name: {reason}")]
    ServerName { host: String, reason: String },
    /// `host` is `host:port` when the port is known; `reason` is the plain explanation.
    #[error("TLS handshake with {host} failed: {reason}")]
    Handshake { host: String, reason: String },
    #[error("TLS handshake with client {peer} failed: {reason}")]
    Accept { peer: String, reason: String },
    #[error("cannot build the TLS configuration: {0}")]
    Config(String),
}

fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: LazyLock<Arc<CryptoProvider>> =
        LazyLock::new(|| Arc::new(rustls::crypto::ring::default_provider()));
    PROVIDER.clone()
}

/// The system's trusted roots, loaded once per process (reading the store is slow).
/// Unreadable entries are skipped; the text says what could not be loaded.
fn system_roots() -> &'static (Vec<CertificateDer<'static>>, String) {
    static ROOTS: LazyLock<(Vec<CertificateDer<'static>>, String)> = LazyLock::new(|| {
        let found = rustls_native_certs::load_native_certs();
        let errors = found
            .errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("; ");
        (found.certs, errors)
    });
    &ROOTS
}

/// Client-side TLS settings (the `tls-validation-flags` / `tls-ca-file` properties).
#[derive(Debug, Clone)]
pub struct TlsClientConfig {
    /// Verify the server's certificate chain and name. Default `true`.
    pub verify: bool,
    /// PEM file of certificates to trust in addition to the system roots: CAs, or a server's
    /// own certificate, which is then pinned (see the module comment).
    pub ca_file: Option<PathBuf>,
}

impl Default for TlsClientConfig {
    fn default() -> Self {
        TlsClientConfig {
            verify: true,
            ca_file: None,
        }
    }
}

impl TlsClientConfig {
    /// Builds the connector: loads the roots (and the CA file), once.
    pub fn connector(&self) -> Result<TlsConnector, TlsError> {
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let mut pinned = Vec::new();
        let verifier: Arc<dyn rustls::client::danger::ServerCertVerifier> = if self.verify {
            let mut roots = RootCertStore::empty();
            let (system, system_errors) = system_roots();
            // Some system bundles hold certificates rustls cannot parse; skipping them is
            // what every TLS client does.
            roots.add_parsable_certificates(system.iter().cloned());
            if let Some(path) = &self.ca_file {
                let certs = read_certificates(path).map_err(|reason| TlsError::CaFile {
                    path: path.clone(),
                    reason,
                })?;
                for cert in certs {
                    roots
                        .add(cert.clone())
                        .map_err(|e| TlsError::CaFileContent {
                            path: path.clone(),
                            reason: e.to_string(),
                        })?;
                    pinned.push(cert);
                }
            }
            if roots.is_empty() {
                let reason = if system_errors.is_empty() {
                    "no certificate found".to_string()
                } else {
                    system_errors.clone()
                };
                return Err(TlsError::NoRoots { reason });
            }
            let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| TlsError::Config(e.to_string()))?;
            Arc::new(TrustFileVerifier::new(webpki, pinned.clone()))
        } else {
            Arc::new(AcceptAnyCertificate(provider()))
        };
        let config = builder
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone())
            .with_no_client_auth();
        Ok(TlsConnector {
            config: Arc::new(config),
            verifier,
            settings: Arc::new((self.clone(), pinned)),
        })
    }
}

/// Opens TLS client connections; cheap to clone.
#[derive(Clone)]
pub struct TlsConnector {
    config: Arc<rustls::ClientConfig>,
    verifier: Arc<dyn rustls::client::danger::ServerCertVerifier>,
    /// The settings and the pinned certificates of the CA file, for messages.
    settings: Arc<(TlsClientConfig, Vec<CertificateDer<'static>>)>,
}

impl std::fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsConnector")
    }
}

impl TlsConnector {
    /// Runs the TLS handshake over `io` with `host` as the server name. `host` may be a DNS
    /// name or an IP literal (IPv6 with or without brackets).
    pub async fn connect<IO>(&self, host: &str, io: IO) -> Result<ClientTlsStream<IO>, TlsError>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        self.handshake(host, None, io).await
    }

    /// [`connect`](Self::connect), with the port named in errors.
    pub async fn connect_to<IO>(
        &self,
        host: &str,
        port: u16,
        io: IO,
    ) -> Result<ClientTlsStream<IO>, TlsError>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        self.handshake(host, Some(port), io).await
    }

    async fn handshake<IO>(
        &self,
        host: &str,
        port: Option<u16>,
        io: IO,
    ) -> Result<ClientTlsStream<IO>, TlsError>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let name = ServerName::try_from(bare.to_string()).map_err(|e| TlsError::ServerName {
            host: host.to_string(),
            reason: e.to_string(),
        })?;
        // A verifier of its own per connection records what this server presented, so that a
        // refusal can name the certificate.
        let presented: verify::Presented = Arc::new(Mutex::new(Vec::new()));
        let mut config = (*self.config).clone();
        config
            .dangerous()
            .set_certificate_verifier(Arc::new(Recording::new(
                self.verifier.clone(),
                presented.clone(),
            )));
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        match connector.connect(name, io).await {
            Ok(stream) => Ok(stream),
            Err(e) => {
                let presented = presented.lock().map(|p| p.clone()).unwrap_or_default();
                let (settings, pins) = &*self.settings;
                let side = explain::ClientSide {
                    host,
                    port,
                    ca_file: settings.ca_file.as_deref(),
                    pinned: presented
                        .first()
                        .is_some_and(|leaf| pins.iter().any(|p| p == leaf)),
                    presented: &presented,
                };
                let reason = explain::client_failure(&e, &side);
                let target = side.target();
                gst::debug!(
                    CAT,
                    "TLS handshake with {target} failed: {e} ({:?}); certificates presented: {}",
                    explain::rustls_error(&e),
                    presented.len()
                );
                Err(TlsError::Handshake {
                    host: target,
                    reason,
                })
            }
        }
    }
}

/// Server-side TLS settings (`tls-certificate-file`, `tls-key-file`).
#[derive(Debug, Clone)]
pub struct TlsServerConfig {
    /// PEM file with the certificate chain, leaf first.
    pub certificate_file: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

impl TlsServerConfig {
    /// Loads both files and checks that the key belongs to the certificate. The acceptor loads
    /// them again when they change.
    pub fn acceptor(&self) -> Result<TlsAcceptor, TlsError> {
        let certs = Arc::new(ReloadingCert::load(&self.certificate_file, &self.key_file)?);
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(certs.clone());
        // No TLS 1.3 session tickets: librtmp (gnutls) fails its first read when one arrives
        // after the handshake, and RTMP clients never resume sessions anyway.
        config.send_tls13_tickets = 0;
        Ok(TlsAcceptor {
            config: Arc::new(config),
            certs,
        })
    }
}

/// Accepts TLS server connections; cheap to clone.
#[derive(Clone)]
pub struct TlsAcceptor {
    config: Arc<rustls::ServerConfig>,
    certs: Arc<ReloadingCert>,
}

impl std::fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsAcceptor")
    }
}

impl TlsAcceptor {
    /// Runs the server side of the TLS handshake; `peer` only names the client in errors.
    pub async fn accept<IO>(
        &self,
        io: IO,
        peer: impl std::fmt::Display,
    ) -> Result<ServerTlsStream<IO>, TlsError>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let peer = peer.to_string();
        // The ClientHello first, so that a failure can say which name the client asked for.
        let mut sni = None;
        let mut hello = false;
        let result = async {
            let start =
                tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), io)
                    .await?;
            hello = true;
            sni = start.client_hello().server_name().map(str::to_string);
            start.into_stream(self.config.clone()).await
        }
        .await;
        result.map_err(|e| {
            let pair = self.certs.loaded();
            let reason = explain::server_failure(
                &e,
                &explain::ServerSide {
                    sni: sni.as_deref(),
                    hello,
                    cert_file: self.certs.cert_file(),
                    leaf: pair.leaf.as_ref(),
                },
            );
            gst::debug!(
                CAT,
                "TLS handshake with client {peer} failed: {e} ({:?}); SNI {sni:?}",
                explain::rustls_error(&e)
            );
            TlsError::Accept { peer, reason }
        })
    }

    /// The certificate new handshakes get now (after a look at the files for a renewal), as
    /// DER, leaf first.
    pub fn current_certificates(&self) -> Vec<CertificateDer<'static>> {
        self.certs.current().key.cert.clone()
    }
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(pem_reason)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_reason)?;
    if certs.is_empty() {
        return Err("no PEM CERTIFICATE section in it".to_string());
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            if text.contains("ENCRYPTED PRIVATE KEY") || text.contains("Proc-Type: 4,ENCRYPTED") {
                format!(
                    "the private key is encrypted with a passphrase, which a server cannot ask \
                     for: write it out unencrypted with `openssl pkey -in {0} -out {0}.plain`",
                    path.display()
                )
            } else {
                "no PEM private key section (PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY) in it"
                    .to_string()
            }
        }
        other => pem_reason(other),
    })
}

fn pem_reason(e: rustls::pki_types::pem::Error) -> String {
    match e {
        rustls::pki_types::pem::Error::Io(io) => io.to_string(),
        other => format!("not valid PEM: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_files_are_named() {
        let cfg = TlsServerConfig {
            certificate_file: "/nonexistent/cert.pem".into(),
            key_file: "/nonexistent/key.pem".into(),
        };
        let err = cfg.acceptor().unwrap_err().to_string();
        assert!(err.contains("/nonexistent/cert.pem"), "{err}");

        let client = TlsClientConfig {
            verify: true,
            ca_file: Some("/nonexistent/ca.pem".into()),
        };
        let err = client.connector().unwrap_err().to_string();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
    }

    #[test]
    fn file_without_pem_is_refused_with_its_name() {
        let dir = std::env::temp_dir().join(format!("rsrtmp-tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "hello, not a certificate\n").unwrap();
        let cfg = TlsServerConfig {
            certificate_file: junk.clone(),
            key_file: junk.clone(),
        };
        let err = cfg.acceptor().unwrap_err().to_string();
        assert!(
            err.contains("junk.pem") && err.contains("no PEM CERTIFICATE"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn bad_server_names_are_named() {
        let connector = TlsClientConfig {
            verify: false,
            ca_file: None,
        }
        .connector()
        .unwrap();
        let (a, _b) = tokio::io::duplex(64);
        let err = connector.connect("bad name!", a).await.unwrap_err();
        assert!(err.to_string().contains("\"bad name!\""), "{err}");
    }
}
