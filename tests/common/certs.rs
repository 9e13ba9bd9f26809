//! Certificates made the way users make them: with the `openssl` CLI (the self-signed
//! one-liner of the README, whose certificate OpenSSL 3 marks CA:TRUE; a private CA with an
//! intermediate; leaf keys as PKCS#8, PKCS#1 and SEC1 PEM), and with rcgen where OpenSSL 3.0
//! cannot go (a validity period in the past). Plus the certificate a TLS server presents now,
//! to see a renewal arrive.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use gstrsrtmp::net::transport::tls::TlsClientConfig;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Runs `openssl` with `args` in `dir`; panics with its output when it fails.
pub fn openssl(dir: &Path, args: &[&str]) {
    super::require("openssl", "openssl");
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The README's one-liner: `openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=<cn>
/// -addext subjectAltName=<san>`, 30 days. The key is PKCS#8. Returns (certificate, key).
pub fn openssl_self_signed(dir: &Path, tag: &str, cn: &str, san: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (format!("{tag}-cert.pem"), format!("{tag}-key.pem"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &cert,
            "-days",
            "30",
            "-subj",
            &format!("/CN={cn}"),
            "-addext",
            &format!("subjectAltName={san}"),
        ],
    );
    (dir.join(cert), dir.join(key))
}

/// The private key formats users have.
#[derive(Debug, Clone, Copy)]
pub enum KeyFormat {
    /// `-----BEGIN PRIVATE KEY-----` (EC P-256, `openssl genpkey`).
    Pkcs8,
    /// `-----BEGIN RSA PRIVATE KEY-----` (`openssl genrsa -traditional`).
    Pkcs1Rsa,
    /// `-----BEGIN EC PRIVATE KEY-----` (`openssl ecparam -genkey -noout`).
    Sec1Ec,
}

/// A new private key in `format`, as `<tag>-key.pem`.
pub fn openssl_key(dir: &Path, tag: &str, format: KeyFormat) -> PathBuf {
    let key = format!("{tag}-key.pem");
    match format {
        KeyFormat::Pkcs8 => openssl(
            dir,
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                &key,
            ],
        ),
        KeyFormat::Pkcs1Rsa => openssl(dir, &["genrsa", "-traditional", "-out", &key, "2048"]),
        KeyFormat::Sec1Ec => openssl(
            dir,
            &[
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
                &key,
            ],
        ),
    }
    let path = dir.join(key);
    let head = std::fs::read_to_string(&path).unwrap();
    let want = match format {
        KeyFormat::Pkcs8 => "-----BEGIN PRIVATE KEY-----",
        KeyFormat::Pkcs1Rsa => "-----BEGIN RSA PRIVATE KEY-----",
        KeyFormat::Sec1Ec => "-----BEGIN EC PRIVATE KEY-----",
    };
    assert!(head.contains(want), "{format:?} key without {want}: {head}");
    path
}

/// A CA made with openssl: its certificate and key files.
pub struct Ca {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A root CA as `openssl req -x509` makes it (CA:TRUE), named `cn`.
pub fn openssl_root_ca(dir: &Path, tag: &str, cn: &str) -> Ca {
    let key = openssl_key(dir, tag, KeyFormat::Pkcs8);
    let cert = format!("{tag}-cert.pem");
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            key.to_str().unwrap(),
            "-out",
            &cert,
            "-days",
            "30",
            "-subj",
            &format!("/CN={cn}"),
        ],
    );
    Ca {
        cert: dir.join(cert),
        key,
    }
}

/// A certificate for `key`, named `cn` with the extensions `ext` (openssl config lines),
/// signed by `issuer`.
fn openssl_signed(dir: &Path, tag: &str, key: &Path, cn: &str, ext: &str, issuer: &Ca) -> PathBuf {
    let (csr, ext_file, cert) = (
        format!("{tag}.csr"),
        format!("{tag}.ext"),
        format!("{tag}-cert.pem"),
    );
    std::fs::write(dir.join(&ext_file), ext).unwrap();
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-key",
            key.to_str().unwrap(),
            "-subj",
            &format!("/CN={cn}"),
            "-out",
            &csr,
        ],
    );
    let serial = format!("0x{:x}", rand::random::<u64>());
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            issuer.cert.to_str().unwrap(),
            "-CAkey",
            issuer.key.to_str().unwrap(),
            "-set_serial",
            &serial,
            "-days",
            "30",
            "-extfile",
            &ext_file,
            "-out",
            &cert,
        ],
    );
    dir.join(cert)
}

/// An intermediate CA named `cn`, signed by `parent`.
pub fn openssl_intermediate_ca(dir: &Path, tag: &str, cn: &str, parent: &Ca) -> Ca {
    let key = openssl_key(dir, tag, KeyFormat::Pkcs8);
    let cert = openssl_signed(
        dir,
        tag,
        &key,
        cn,
        "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n",
        parent,
    );
    Ca { cert, key }
}

/// A server certificate for `san` (e.g. `DNS:localhost,IP:127.0.0.1`) with a key in
/// `format`, signed by `issuer`. The certificate file is the chain a server needs: the leaf,
/// then `intermediates`. Returns (chain file, key file).
pub fn openssl_leaf(
    dir: &Path,
    tag: &str,
    issuer: &Ca,
    intermediates: &[&Ca],
    san: &str,
    format: KeyFormat,
) -> (PathBuf, PathBuf) {
    let key = openssl_key(dir, tag, format);
    let leaf = openssl_signed(
        dir,
        tag,
        &key,
        "localhost",
        &format!(
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
             extendedKeyUsage=serverAuth\nsubjectAltName={san}\n"
        ),
        issuer,
    );
    let mut chain = std::fs::read_to_string(&leaf).unwrap();
    for ca in intermediates {
        chain.push_str(&std::fs::read_to_string(&ca.cert).unwrap());
    }
    let chain_file = dir.join(format!("{tag}-chain.pem"));
    std::fs::write(&chain_file, chain).unwrap();
    (chain_file, key)
}

/// A leaf for `localhost` and 127.0.0.1 that expired on 2021-01-01, signed by a CA that is
/// valid now (rcgen: OpenSSL 3.0 cannot set past dates). Returns (CA certificate, leaf,
/// leaf key).
pub fn rcgen_expired_leaf(dir: &Path, tag: &str) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Expired Leaf Test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);

    let leaf_key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let leaf = params.signed_by(&leaf_key, &issuer).unwrap();

    let files = (
        dir.join(format!("{tag}-ca.pem")),
        dir.join(format!("{tag}-cert.pem")),
        dir.join(format!("{tag}-key.pem")),
    );
    std::fs::write(&files.0, ca_cert.pem()).unwrap();
    std::fs::write(&files.1, leaf.pem()).unwrap();
    std::fs::write(&files.2, leaf_key.serialize_pem()).unwrap();
    files
}

/// The first certificate of a PEM file, as DER.
pub fn first_der(path: &Path) -> Vec<u8> {
    CertificateDer::pem_file_iter(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .next()
        .unwrap_or_else(|| panic!("no certificate in {}", path.display()))
        .unwrap()
        .to_vec()
}

/// The certificate the TLS server on 127.0.0.1:`port` presents to a new handshake now (no
/// verification), as DER; `None` when the handshake fails. For tests outside a runtime.
pub fn served_certificate(port: u16) -> Option<Vec<u8>> {
    super::hostile::client_runtime().block_on(served_certificate_async(port))
}

/// [`served_certificate`] for async tests.
pub async fn served_certificate_async(port: u16) -> Option<Vec<u8>> {
    let connector = TlsClientConfig {
        verify: false,
        ca_file: None,
    }
    .connector()
    .unwrap();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let tls = tokio::time::timeout(Duration::from_secs(30), connector.connect("localhost", tcp))
        .await
        .ok()?
        .ok()?;
    let der = tls.get_ref().1.peer_certificates()?.first()?.to_vec();
    // A polite goodbye (close_notify), so the server logs a short look, not a broken read.
    let mut tls = tls;
    let _ = tokio::io::AsyncWriteExt::shutdown(&mut tls).await;
    Some(der)
}

/// Replaces `dst` with `src` in one step (write a new file, rename it over), as a renewal
/// tool does.
pub fn replace_file(src: &Path, dst: &Path) {
    let tmp = dst.with_extension("renewing");
    std::fs::copy(src, &tmp).unwrap();
    std::fs::rename(&tmp, dst).unwrap();
}
