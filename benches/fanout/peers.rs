//! The servers nobody here packages for Debian: node-media-server (npm) and xiu (crates.io),
//! installed on demand into a cache, pinned to one version each, and started in the
//! foreground with RTMP on one loopback port and nothing else they can turn off.
//!
//! The cache is `$RSRTMP_BENCH_CACHE`, else `$XDG_CACHE_HOME/rsrtmp-bench`, else
//! `~/.cache/rsrtmp-bench`; each server lives in a folder named with its version, so a
//! version change installs next to the old one instead of over it. Nothing is installed
//! when `CI` is set: CI runs only the smoke run (nginx-rtmp and rsrtmp), and a bench that
//! fetches servers there would be a surprise.
//!
//! - node-media-server 4.4.3 (current in the 4.x line; its `bin/app.js` wants a config file it
//!   rewrites with generated secrets, so the bench writes a small launcher instead that builds
//!   the config in memory: RTMP on 127.0.0.1:PORT, no HTTP/HTTPS/RTMPS listener, no admin
//!   console, logger at `warn`). Players play the publisher's own path, `live/s`.
//! - xiu 0.14.0: `xiu -r PORT -l warn` (RTMP only; HTTP-FLV, HLS, RTSP, WebRTC off, GOP cache
//!   of 1 as its default). Also `live/s` for both sides. xiu listens on 0.0.0.0 (its
//!   address is not configurable); the bench still only connects over 127.0.0.1.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub const NMS_VERSION: &str = "4.4.3";
pub const XIU_VERSION: &str = "0.14.0";

/// Where installed servers are kept.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("RSRTMP_BENCH_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("rsrtmp-bench");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
    home.join(".cache").join("rsrtmp-bench")
}

fn nms_dir() -> PathBuf {
    cache_dir().join(format!("node-media-server-{NMS_VERSION}"))
}

fn xiu_dir() -> PathBuf {
    cache_dir().join(format!("xiu-{XIU_VERSION}"))
}

/// True when `program --version` runs and succeeds.
fn runs(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn refuse_in_ci(what: &str, fix: &str) -> Result<(), String> {
    if std::env::var_os("CI").is_some() {
        return Err(format!(
            "{what} is not installed and CI is set, so the bench does not install it; \
             install it by hand: {fix}"
        ));
    }
    Ok(())
}

/// Runs an install step, its output going to the terminal; `fix` is what to run by hand.
/// When the bench is pinned the step inherits the load tool's one CPU: slower, but a build
/// of xiu does not take the whole of a shared machine.
fn install_step(cmd: &mut Command, fix: &str) -> Result<(), String> {
    println!("  $ {cmd:?}");
    let status = cmd
        .stdin(Stdio::null())
        .status()
        .map_err(|e| format!("{cmd:?}: {e}; install by hand: {fix}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed ({status}); install by hand: {fix}"))
    }
}

/// Debian `packages` with apt-get when `present` says they are missing, as root only (the
/// bench never sudoes), printing what it does. `what` names what needs them.
fn ensure_apt(what: &str, packages: &[&str], present: impl Fn() -> bool) -> Result<(), String> {
    if present() {
        return Ok(());
    }
    let fix = format!("apt-get install -y {}", packages.join(" "));
    refuse_in_ci(what, &fix)?;
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root || !runs("apt-get") {
        return Err(format!("{what} is missing: {fix} (as root)"));
    }
    println!("fanout: {what} missing; installing the Debian packages {packages:?} with apt-get");
    install_step(Command::new("apt-get").arg("update"), &fix)?;
    install_step(
        Command::new("apt-get")
            .args(["install", "-y"])
            .args(packages)
            .env("DEBIAN_FRONTEND", "noninteractive"),
        &fix,
    )?;
    if present() {
        Ok(())
    } else {
        Err(format!(
            "apt-get installed {packages:?} but {what} is still missing: {fix}"
        ))
    }
}

/// The installed node-media-server package folder (what `require` takes), installing it
/// first when missing.
pub fn nms_module() -> Result<PathBuf, String> {
    let dir = nms_dir();
    let module = dir.join("node_modules").join("node-media-server");
    let version = std::fs::read_to_string(module.join("package.json")).unwrap_or_default();
    if version.contains(&format!("\"version\": \"{NMS_VERSION}\"")) {
        return Ok(module);
    }
    let fix = format!(
        "npm install --prefix {} node-media-server@{NMS_VERSION}",
        dir.display()
    );
    refuse_in_ci("node-media-server", &fix)?;
    ensure_apt(
        "node/npm (for node-media-server)",
        &["nodejs", "npm"],
        || runs("node") && runs("npm"),
    )?;
    println!(
        "fanout: installing node-media-server {NMS_VERSION} into {}",
        dir.display()
    );
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    install_step(
        Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--prefix"])
            .arg(&dir)
            .arg(format!("node-media-server@{NMS_VERSION}")),
        &fix,
    )?;
    if module.join("package.json").exists() {
        Ok(module)
    } else {
        Err(format!(
            "npm finished but {} is missing; {fix}",
            module.display()
        ))
    }
}

/// The installed xiu binary, building it with `cargo install` first when missing (several
/// minutes: it pulls in an S3 client among other things). Its WebRTC side links libopus,
/// found with pkg-config (without it audiopus_sys wants cmake to build Opus from source).
pub fn xiu_binary() -> Result<PathBuf, String> {
    let dir = xiu_dir();
    let bin = dir.join("bin").join("xiu");
    if bin.exists() {
        return Ok(bin);
    }
    let fix = format!(
        "cargo install --locked xiu --version {XIU_VERSION} --root {}",
        dir.display()
    );
    refuse_in_ci("xiu", &fix)?;
    if !runs("cargo") {
        return Err(format!(
            "xiu is built from crates.io and needs cargo, which is missing (https://rustup.rs), \
             then: {fix}"
        ));
    }
    ensure_apt(
        "libopus-dev (for xiu)",
        &["libopus-dev", "pkg-config"],
        || {
            Command::new("pkg-config")
                .args(["--exists", "opus"])
                .status()
                .is_ok_and(|s| s.success())
        },
    )?;
    println!(
        "fanout: installing xiu {XIU_VERSION} into {} (a release build, several minutes)",
        dir.display()
    );
    install_step(
        Command::new("nice")
            .args([
                "-n",
                "10",
                "cargo",
                "install",
                "--locked",
                "xiu",
                "--version",
            ])
            .arg(XIU_VERSION)
            .arg("--root")
            .arg(&dir),
        &fix,
    )?;
    if bin.exists() {
        Ok(bin)
    } else {
        Err(format!(
            "cargo install finished but {} is missing; {fix}",
            bin.display()
        ))
    }
}

/// The launcher node runs: node-media-server with RTMP only, the config in memory.
const NMS_LAUNCHER: &str = r#"// Written by the rsrtmp fan-out bench (benches/fanout/peers.rs).
// node nms-launch.cjs PACKAGE PORT DIR: node-media-server with RTMP on 127.0.0.1:PORT only.
const [pkg, port, dir] = process.argv.slice(2);
const NodeMediaServer = require(pkg);
const logger = require(pkg + "/src/core/logger.js");
const config = {
  bind: "127.0.0.1",
  rtmp: { port: Number(port) },
  store: { path: dir + "/data" },
  record: { auto: false, path: dir + "/record" },
  notify: { url: "" },
  webadmin: { enable: false },
};
const nms = new NodeMediaServer(config, dir + "/nms.json");
// The constructor sets "debug"; per-session lines at thousands of players would be work the
// other servers do not do (nginx-rtmp logs at warn here, xiu too).
logger.level = "warn";
nms.run();
"#;

/// The command that runs node-media-server on `port`, its files in `dir`.
pub fn nms_command(dir: &Path, port: u16) -> Result<Command, String> {
    let module = nms_module()?;
    let launcher = dir.join("nms-launch.cjs");
    std::fs::write(&launcher, NMS_LAUNCHER)
        .map_err(|e| format!("write {}: {e}", launcher.display()))?;
    let mut cmd = Command::new("node");
    cmd.arg(launcher).arg(module).arg(port.to_string()).arg(dir);
    Ok(cmd)
}

/// The command that runs xiu on `port`.
pub fn xiu_command(port: u16) -> Result<Command, String> {
    let mut cmd = Command::new(xiu_binary()?);
    cmd.args(["-r", &port.to_string(), "-l", "warn"]);
    Ok(cmd)
}
