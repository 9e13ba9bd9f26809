//! TLS for `rtmps://` and `rtmpts://`, both roles, on tokio-rustls with the ring provider.
//!
//! Client: [`TlsClientConfig`] turns into a [`TlsConnector`]. Verification is on by default,
//! against the system's trusted roots plus an optional extra CA file; `verify: false` accepts
//! any certificate (self-signed test servers) but still checks that the server owns the key
//! it presents. The server name (SNI and the name the certificate must carry) is the URL's
//! host; IP literals are matched against the certificate's IP addresses.
//!
//! Server: [`TlsServerConfig`] loads a PEM certificate chain and a PEM private key into a
//! [`TlsAcceptor`]. Every error names the host or the file and says what was wrong.
//!
//! The provider is passed explicitly to every config, so nothing here depends on (or sets) a
//! process-wide rustls default.

use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};

/// A TLS stream on the client side.
pub type ClientTlsStream<IO> = tokio_rustls::client::TlsStream<IO>;
/// A TLS stream on the server side.
pub type ServerTlsStream<IO> = tokio_rustls::server::TlsStream<IO>;

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

/// Client-side TLS settings (the `tls-validate` / `tls-ca-file` style properties).
#[derive(Debug, Clone)]
pub struct TlsClientConfig {
    /// Verify the server's certificate chain and name. Default `true`.
    pub verify: bool,
    /// Extra PEM file of trusted CA certificates, used in addition to the system roots.
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
        let config = if self.verify {
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
                    roots.add(cert).map_err(|e| TlsError::CaFileContent {
                        path: path.clone(),
                        reason: e.to_string(),
                    })?;
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
            builder.with_root_certificates(roots).with_no_client_auth()
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider())))
                .with_no_client_auth()
        };
        Ok(TlsConnector {
            inner: tokio_rustls::TlsConnector::from(Arc::new(config)),
        })
    }
}

/// Opens TLS client connections; cheap to clone.
#[derive(Clone)]
pub struct TlsConnector {
    inner: tokio_rustls::TlsConnector,
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
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let name = ServerName::try_from(bare.to_string()).map_err(|e| TlsError::ServerName {
            host: host.to_string(),
            reason: e.to_string(),
        })?;
        self.inner
            .connect(name, io)
            .await
            .map_err(|e| TlsError::Handshake {
                host: host.to_string(),
                reason: e.to_string(),
            })
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
    /// Loads both files and checks that the key belongs to the certificate.
    pub fn acceptor(&self) -> Result<TlsAcceptor, TlsError> {
        let certs = read_certificates(&self.certificate_file).map_err(|reason| {
            TlsError::CertificateFile {
                path: self.certificate_file.clone(),
                reason,
            }
        })?;
        let key = read_key(&self.key_file).map_err(|reason| TlsError::KeyFile {
            path: self.key_file.clone(),
            reason,
        })?;
        let pair_error = |reason: String| TlsError::CertifiedKey {
            cert: self.certificate_file.clone(),
            key: self.key_file.clone(),
            reason,
        };
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| pair_error(e.to_string()))?;
        // No TLS 1.3 session tickets: librtmp (gnutls) fails its first read when one arrives
        // after the handshake, and RTMP clients never resume sessions anyway.
        config.send_tls13_tickets = 0;
        Ok(TlsAcceptor {
            inner: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        })
    }
}

/// Accepts TLS server connections; cheap to clone.
#[derive(Clone)]
pub struct TlsAcceptor {
    inner: tokio_rustls::TlsAcceptor,
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
        self.inner.accept(io).await.map_err(|e| TlsError::Accept {
            peer: peer.to_string(),
            reason: e.to_string(),
        })
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
            "no PEM private key section (PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY) in it"
                .to_string()
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

/// The verifier behind `verify: false`: any chain and any name pass, but the handshake
/// signatures are still checked, so the peer must hold the key of the certificate it sent.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
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
