//! The server's certificate: loaded from `tls-certificate-file` and `tls-key-file`, and loaded
//! again when either file changes (a renewal by certbot or a script), without a restart.
//!
//! [`ReloadingCert`] is the rustls certificate resolver of a listener. At a handshake it looks
//! at the two files' size, modification time and inode, at most once per
//! [`RELOAD_CHECK_INTERVAL`]; when they changed it loads the new pair, and new handshakes get
//! it. Connections already open keep the session they have: nothing is dropped. A new pair that
//! does not load (half written, key and certificate not matching yet, a typo) is logged as a
//! warning naming the file and the error, and the pair loaded before stays in use until the
//! files change again.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::inspect::{CertInfo, format_time};
use super::{CAT, TlsError, provider, read_certificates, read_key};

/// How often, at most, a handshake looks at the files for a renewal.
pub const RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// What tells one version of a file from the next: size, modification time and inode (a
/// renewal that switches a symlink, as certbot's `live/` folder does, changes the inode).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp(Option<(u64, SystemTime, u64, u64)>);

impl Stamp {
    fn of(path: &Path) -> Stamp {
        use std::os::unix::fs::MetadataExt;
        Stamp(std::fs::metadata(path).ok().map(|m| {
            (
                m.len(),
                m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                m.ino(),
                m.dev(),
            )
        }))
    }
}

/// A certificate chain and its key, checked to belong together, with what the leaf says.
#[derive(Debug, Clone)]
pub(crate) struct LoadedPair {
    pub key: Arc<CertifiedKey>,
    pub leaf: Option<CertInfo>,
}

impl LoadedPair {
    /// `for localhost, 127.0.0.1, valid from … until …`, for log lines.
    fn describe(&self) -> String {
        match &self.leaf {
            Some(info) => format!(
                "{} ({}), {}",
                info.subject,
                info.names_text(),
                info.validity_text()
            ),
            None => "a certificate that does not parse".to_string(),
        }
    }
}

/// Loads the pair and checks the key belongs to the first certificate of the chain.
pub(crate) fn load_pair(cert_file: &Path, key_file: &Path) -> Result<LoadedPair, TlsError> {
    let certs = read_certificates(cert_file).map_err(|reason| {
        let hint = if file_mentions(cert_file, "PRIVATE KEY") {
            " (it holds a private key: are tls-certificate-file and tls-key-file swapped?)"
        } else {
            ""
        };
        TlsError::CertificateFile {
            path: cert_file.to_path_buf(),
            reason: format!("{reason}{hint}"),
        }
    })?;
    let key = read_key(key_file).map_err(|reason| TlsError::KeyFile {
        path: key_file.to_path_buf(),
        reason,
    })?;
    let pair_error = |reason: String| TlsError::CertifiedKey {
        cert: cert_file.to_path_buf(),
        key: key_file.to_path_buf(),
        reason,
    };
    let signing_key = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| pair_error(format!("the private key cannot be used: {e}")))?;
    let leaf = CertInfo::parse(&certs[0]);
    let certified = CertifiedKey::new(certs.clone(), signing_key.clone());
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            // A chain written root or intermediate first is a common mistake: say so.
            let later = certs.iter().enumerate().skip(1).find(|(_, c)| {
                CertifiedKey::new(vec![(*c).clone()], signing_key.clone())
                    .keys_match()
                    .is_ok()
            });
            let subject = leaf
                .as_ref()
                .map_or_else(String::new, |i| format!(" ({})", i.subject));
            return Err(pair_error(match later {
                Some((i, _)) => format!(
                    "the private key belongs to certificate {} of the chain, not to the first{subject}: \
                     the file must start with the server's own certificate, then the intermediates",
                    i + 1
                ),
                None => format!(
                    "the private key does not belong to the certificate{subject}: use the key made \
                     together with this certificate"
                ),
            }));
        }
        Err(e) => return Err(pair_error(format!("the certificate cannot be used: {e}"))),
    }
    Ok(LoadedPair {
        key: Arc::new(certified),
        leaf,
    })
}

fn file_mentions(path: &Path, needle: &str) -> bool {
    std::fs::read(path).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
}

/// Warns when a certificate is outside its validity period: clients that verify refuse it.
fn warn_if_not_valid_now(cert_file: &Path, pair: &LoadedPair) {
    let Some(info) = &pair.leaf else { return };
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    if now > info.not_after {
        gst::warning!(
            CAT,
            "the certificate in tls-certificate-file {} ({}) expired on {}: clients that verify \
             certificates refuse it; renew it (the server picks up the new files by itself)",
            cert_file.display(),
            info.subject,
            format_time(info.not_after)
        );
    } else if now < info.not_before {
        gst::warning!(
            CAT,
            "the certificate in tls-certificate-file {} ({}) is not valid before {}: clients that \
             verify certificates refuse it until then; check this machine's clock",
            cert_file.display(),
            info.subject,
            format_time(info.not_before)
        );
    }
}

struct State {
    pair: LoadedPair,
    /// The files' stamps when `pair` was loaded.
    loaded: (Stamp, Stamp),
    /// The stamps of a version that failed to load: not retried (nor logged again) until the
    /// files change once more.
    failed: Option<(Stamp, Stamp)>,
    checked: Instant,
}

/// The listener's certificate resolver: one pair, reloaded when its files change.
pub struct ReloadingCert {
    cert_file: PathBuf,
    key_file: PathBuf,
    state: Mutex<State>,
}

impl std::fmt::Debug for ReloadingCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingCert")
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .finish_non_exhaustive()
    }
}

impl ReloadingCert {
    /// Loads the pair for the first time; an error here is a settings error.
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<ReloadingCert, TlsError> {
        let loaded = (Stamp::of(cert_file), Stamp::of(key_file));
        let pair = load_pair(cert_file, key_file)?;
        warn_if_not_valid_now(cert_file, &pair);
        gst::debug!(CAT, "{}: {}", cert_file.display(), pair.describe());
        Ok(ReloadingCert {
            cert_file: cert_file.to_path_buf(),
            key_file: key_file.to_path_buf(),
            state: Mutex::new(State {
                pair,
                loaded,
                failed: None,
                checked: Instant::now(),
            }),
        })
    }

    /// The certificate file this resolver loads.
    pub(crate) fn cert_file(&self) -> &Path {
        &self.cert_file
    }

    /// The pair in use, without a look at the files.
    pub(crate) fn loaded(&self) -> LoadedPair {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pair
            .clone()
    }

    /// The pair new handshakes use, after a look at the files if the last one is old enough.
    pub(crate) fn current(&self) -> LoadedPair {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.checked.elapsed() >= RELOAD_CHECK_INTERVAL {
            state.checked = Instant::now();
            let stamps = (Stamp::of(&self.cert_file), Stamp::of(&self.key_file));
            if stamps != state.loaded && state.failed.as_ref() != Some(&stamps) {
                self.reload(&mut state, stamps);
            }
        }
        state.pair.clone()
    }

    fn reload(&self, state: &mut State, stamps: (Stamp, Stamp)) {
        match load_pair(&self.cert_file, &self.key_file) {
            Ok(pair) => {
                gst::info!(
                    CAT,
                    "tls-certificate-file {} or tls-key-file {} changed: new TLS handshakes use {}",
                    self.cert_file.display(),
                    self.key_file.display(),
                    pair.describe()
                );
                warn_if_not_valid_now(&self.cert_file, &pair);
                state.pair = pair;
                state.loaded = stamps;
                state.failed = None;
            }
            Err(e) => {
                gst::warning!(
                    CAT,
                    "the TLS files changed but cannot be used, so new TLS handshakes keep the \
                     certificate loaded before ({}): {e}",
                    state.pair.describe()
                );
                state.failed = Some(stamps);
            }
        }
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current().key)
    }
}
