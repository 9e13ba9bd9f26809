//! The client's certificate verifiers.
//!
//! [`TrustFileVerifier`] is what `tls-ca-file` means: a certificate in the file is trusted as a
//! CA *and* pinned. A server that presents exactly one of the file's certificates as its own
//! (the self-signed certificate of a test or LAN server, which OpenSSL 3 marks CA:TRUE and the
//! WebPKI rules therefore refuse as a server certificate) passes when the host name and the
//! validity period fit; the chain rules do not apply to it. Every other certificate goes to
//! rustls' WebPKI verifier with the system roots and the file's certificates as anchors. The
//! handshake signatures are always checked, so the server must hold the certificate's key.
//!
//! [`Recording`] wraps a verifier for one connection and keeps the certificates the server
//! presented, so that a refusal can be explained with the certificate's own names and dates.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};

use super::inspect::CertInfo;

/// WebPKI verification plus the pins of `tls-ca-file` (see the module comment).
#[derive(Debug)]
pub(crate) struct TrustFileVerifier {
    webpki: Arc<WebPkiServerVerifier>,
    pinned: Vec<CertificateDer<'static>>,
}

impl TrustFileVerifier {
    /// `pinned` are the certificates of the CA file; they must also be among `webpki`'s roots
    /// for the chains they sign.
    pub fn new(webpki: Arc<WebPkiServerVerifier>, pinned: Vec<CertificateDer<'static>>) -> Self {
        TrustFileVerifier { webpki, pinned }
    }
}

/// Checks a pinned certificate: the name the client asked for and the validity period, as
/// WebPKI would, with the same errors (so messages and TLS alerts are the same too).
fn verify_pinned(
    end_entity: &CertificateDer<'_>,
    server_name: &ServerName<'_>,
    now: UnixTime,
) -> Result<(), rustls::Error> {
    let parsed = ParsedCertificate::try_from(end_entity)?;
    rustls::client::verify_server_name(&parsed, server_name)?;
    let info = CertInfo::parse(end_entity).ok_or(CertificateError::BadEncoding)?;
    let at = |secs: i64| UnixTime::since_unix_epoch(Duration::from_secs(secs.max(0) as u64));
    let time = now.as_secs();
    if (time as i64) < info.not_before {
        return Err(CertificateError::NotValidYetContext {
            time: now,
            not_before: at(info.not_before),
        }
        .into());
    }
    if (time as i64) > info.not_after {
        return Err(CertificateError::ExpiredContext {
            time: now,
            not_after: at(info.not_after),
        }
        .into());
    }
    Ok(())
}

impl ServerCertVerifier for TrustFileVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self
            .pinned
            .iter()
            .any(|pin| pin.as_ref() == end_entity.as_ref())
        {
            verify_pinned(end_entity, server_name, now)?;
            return Ok(ServerCertVerified::assertion());
        }
        self.webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }

    fn root_hint_subjects(&self) -> Option<&[DistinguishedName]> {
        self.webpki.root_hint_subjects()
    }
}

/// The certificates a server presented on one connection: its own first, then the rest of
/// its chain.
pub(crate) type Presented = Arc<Mutex<Vec<CertificateDer<'static>>>>;

/// A verifier for one connection that remembers what the server presented.
#[derive(Debug)]
pub(crate) struct Recording {
    inner: Arc<dyn ServerCertVerifier>,
    presented: Presented,
}

impl Recording {
    pub fn new(inner: Arc<dyn ServerCertVerifier>, presented: Presented) -> Self {
        Recording { inner, presented }
    }
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Ok(mut seen) = self.presented.lock() {
            *seen = std::iter::once(end_entity)
                .chain(intermediates)
                .map(|c| c.clone().into_owned())
                .collect();
        }
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn root_hint_subjects(&self) -> Option<&[DistinguishedName]> {
        self.inner.root_hint_subjects()
    }
}

/// The verifier behind `verify: false`: any chain and any name pass, but the handshake
/// signatures are still checked, so the peer must hold the key of the certificate it sent.
#[derive(Debug)]
pub(crate) struct AcceptAnyCertificate(pub Arc<rustls::crypto::CryptoProvider>);

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
