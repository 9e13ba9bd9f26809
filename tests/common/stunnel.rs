//! stunnel in front of a plain RTMP server: the usual production RTMPS setup. It runs in the
//! foreground on a free loopback port with a fresh self-signed certificate (for `localhost`
//! and 127.0.0.1), its files in a temp dir, and is killed when the guard drops.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{ChildGuard, TempDir, free_port, require, self_signed_cert, wait_for_port};

/// A running stunnel that terminates TLS on `port` and forwards to a plain TCP port.
pub struct Stunnel {
    pub port: u16,
    /// The certificate stunnel presents (PEM), to trust as a CA.
    pub cert: PathBuf,
    pub dir: TempDir,
    pub guard: ChildGuard,
}

impl Stunnel {
    /// TLS on a free port, forwarded to 127.0.0.1:`target`.
    pub fn start(target: u16) -> Stunnel {
        Self::start_on(free_port(), target)
    }

    /// TLS on `port` (to restart a killed stunnel), forwarded to 127.0.0.1:`target`.
    pub fn start_on(port: u16, target: u16) -> Stunnel {
        require("stunnel4", "stunnel4");
        let dir = TempDir::new("stunnel");
        let (cert, key) = self_signed_cert(dir.path(), "stunnel");
        let conf = dir.path().join("stunnel.conf");
        let log = dir.path().join("stunnel.log");
        std::fs::write(
            &conf,
            format!(
                "foreground = yes\npid =\noutput = {log}\ndebug = 5\n\
                 [rtmps]\naccept = 127.0.0.1:{port}\nconnect = 127.0.0.1:{target}\n\
                 cert = {cert}\nkey = {key}\n",
                log = log.display(),
                cert = cert.display(),
                key = key.display(),
            ),
        )
        .unwrap();
        let guard = ChildGuard::spawn(
            "stunnel",
            Command::new("stunnel4")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        wait_for_port(port, Duration::from_secs(30));
        Stunnel {
            port,
            cert,
            dir,
            guard,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stunnel.log")).unwrap_or_default()
    }
}
