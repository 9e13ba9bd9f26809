//! Adobe and Limelight authentication against a scripted server built from the engine's
//! `ServerSession`. The server's expected answers are computed here, independently of the code
//! under test: another MD5 implementation (the `md5` crate, where the engine uses `md-5`), a
//! base64 encoder written below, and the formulas of protocol-facts §7.5–7.6.

mod common;

use std::time::Duration;

use common::{PlayScript, ScriptedServer};

const BOUND: Duration = Duration::from_secs(60);
const USER: &str = "alice";
const PASSWORD: &str = "s3cret";
const SALT: &str = "NaCl4u";
const CHALLENGE: &str = "chAll3nge";
const OPAQUE: &str = "0paqu3==";
const NONCE: &str = "5eedf00d";

fn base64(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn md5_raw(s: &str) -> [u8; 16] {
    md5::compute(s.as_bytes()).0
}

fn md5_hex(s: &str) -> String {
    format!("{:x}", md5::compute(s.as_bytes()))
}

fn param<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// Adobe, as crtmpserver answers it (opaque present, so the response uses it).
fn adobe_server() -> ScriptedServer {
    ScriptedServer::start(
        Box::new(|_app, query| {
            let Some(q) = query.filter(|q| q.contains("authmod=adobe")) else {
                return Err(
                    "[ AccessManager.Reject ] : [ code=403 need auth; authmod=adobe ] : ".into(),
                );
            };
            let user = param(q, "user").unwrap_or_default();
            let Some(response) = param(q, "response") else {
                return Err(format!(
                    "[ AccessManager.Reject ] : [ authmod=adobe ] : \
                     ?reason=needauth&user={user}&salt={SALT}&challenge={CHALLENGE}&opaque={OPAQUE}"
                ));
            };
            let client_challenge = param(q, "challenge").unwrap_or_default();
            let hash1 = base64(&md5_raw(&format!("{USER}{SALT}{PASSWORD}")));
            let expected = base64(&md5_raw(&format!("{hash1}{OPAQUE}{client_challenge}")));
            if user == USER && response == expected && param(q, "opaque") == Some(OPAQUE) {
                Ok(())
            } else {
                Err("[ AccessManager.Reject ] : [ authmod=adobe ] : ?reason=authfailed&opaque=vgoAAA==".into())
            }
        }),
        PlayScript::NotFound(String::new()),
    )
}

/// Limelight: digest over `publish:/live/_definst_`.
fn llnw_server() -> ScriptedServer {
    ScriptedServer::start(
        Box::new(|app, query| {
            let Some(q) = query.filter(|q| q.contains("authmod=llnw")) else {
                return Err(
                    "[ AccessManager.Reject ] : [ code=403 need auth; authmod=llnw ] : ".into(),
                );
            };
            let user = param(q, "user").unwrap_or_default();
            let Some(response) = param(q, "response") else {
                return Err(format!(
                    "[ AccessManager.Reject ] : [ authmod=llnw ] : ?reason=needauth&user={user}&nonce={NONCE}"
                ));
            };
            let cnonce = param(q, "cnonce").unwrap_or_default();
            let ha1 = md5_hex(&format!("{USER}:live:{PASSWORD}"));
            let ha2 = md5_hex(&format!("publish:/{app}/_definst_"));
            let expected = md5_hex(&format!("{ha1}:{NONCE}:00000001:{cnonce}:auth:{ha2}"));
            if user == USER
                && param(q, "nonce") == Some(NONCE)
                && param(q, "nc") == Some("00000001")
                && response == expected
            {
                Ok(())
            } else {
                Err("[ AccessManager.Reject ] : [ authmod=llnw ] : ?reason=authfailed".into())
            }
        }),
        PlayScript::NotFound(String::new()),
    )
}

/// (audio, video, data) tags of an FLV file, walked by hand.
fn flv_tags(path: &std::path::Path) -> (usize, usize, usize) {
    let b = std::fs::read(path).unwrap();
    let mut pos = 13;
    let mut counts = (0, 0, 0);
    while pos + 11 <= b.len() {
        let size = (usize::from(b[pos + 1]) << 16)
            | (usize::from(b[pos + 2]) << 8)
            | usize::from(b[pos + 3]);
        match b[pos] & 0x1f {
            8 => counts.0 += 1,
            9 => counts.1 += 1,
            18 => counts.2 += 1,
            _ => {}
        }
        pos += 11 + size + 4;
    }
    counts
}

fn publish(port: u16, credentials: &str, extra: &str) -> common::RunEnd {
    common::init_gst();
    let media = common::test_media(3);
    // Nothing here waits for the timeout: it only has to outlast every round on a slow machine.
    let p = common::pipeline(&format!(
        "filesrc location={} ! rtmpclientsink location=rtmp://{credentials}127.0.0.1:{port}/live/key timeout=30 {extra}",
        media.display()
    ));
    common::run(&p, BOUND)
}

fn check_published(server: &ScriptedServer, method: &str) {
    let media = common::test_media(3);
    let (audio, video, data) = flv_tags(&media);
    let log = server.log();
    let queries: Vec<Option<String>> = log.connects.iter().map(|(_, q)| q.clone()).collect();
    println!("connects: {queries:?}");
    assert_eq!(log.connects.len(), 3, "plain, user, response");
    assert_eq!(queries[0], None);
    assert_eq!(
        queries[1].as_deref(),
        Some(format!("authmod={method}&user={USER}").as_str())
    );
    assert!(log.connects.iter().all(|(app, _)| app == "live"));
    let count = |t| log.media.iter().filter(|m| m.type_id == t).count();
    assert_eq!(
        (count(8), count(9), count(18)),
        (audio, video, data),
        "every tag arrived"
    );
    assert!(log.unpublished, "stop commands arrived");
}

#[test]
fn adobe_auth_publishes_after_two_challenges() {
    let server = adobe_server();
    publish(server.port, &format!("{USER}:{PASSWORD}@"), "").expect_eos();
    check_published(&server, "adobe");
}

#[test]
fn limelight_auth_publishes_after_two_challenges() {
    let server = llnw_server();
    publish(server.port, &format!("{USER}:{PASSWORD}@"), "").expect_eos();
    check_published(&server, "llnw");
}

#[test]
fn a_wrong_password_is_not_authorized() {
    for server in [adobe_server(), llnw_server()] {
        let (e, _) = publish(server.port, &format!("{USER}:wrong@"), "").expect_error();
        println!("{e}");
        assert!(e.matches(gst::ResourceError::NotAuthorized), "{e}");
        assert!(e.message().contains("authfailed"), "{e}");
        assert_eq!(server.log().connects.len(), 3);
    }
}

#[test]
fn explicit_authmod_starts_with_the_user_query_and_checks_the_method() {
    let server = adobe_server();
    publish(server.port, &format!("{USER}:{PASSWORD}@"), "authmod=adobe").expect_eos();
    assert_eq!(
        server.log().connects.len(),
        2,
        "the plain connect is skipped"
    );

    let server = adobe_server();
    let (e, _) =
        publish(server.port, &format!("{USER}:{PASSWORD}@"), "authmod=llnw").expect_error();
    println!("{e}");
    assert!(e.matches(gst::ResourceError::NotAuthorized), "{e}");
    assert!(e.message().contains("adobe"), "{e}");
}

#[test]
fn no_credentials_or_authmod_none_report_the_servers_request() {
    let server = adobe_server();
    let (e, _) = publish(server.port, "", "").expect_error();
    println!("{e}");
    assert!(e.matches(gst::ResourceError::NotAuthorized), "{e}");
    assert!(e.message().contains("no username and password"), "{e}");

    let server = adobe_server();
    let (e, _) =
        publish(server.port, &format!("{USER}:{PASSWORD}@"), "authmod=none").expect_error();
    println!("{e}");
    assert!(
        e.message().contains("code=403 need auth; authmod=adobe"),
        "{e}"
    );
    assert_eq!(server.log().connects.len(), 1);
}

#[test]
fn the_base64_used_here_is_right() {
    assert_eq!(base64(b""), "");
    assert_eq!(base64(b"f"), "Zg==");
    assert_eq!(base64(b"fo"), "Zm8=");
    assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    // RFC 1321 test vector for the MD5 used here.
    assert_eq!(md5_hex("abc"), "900150983cd24fb0d6963f7d28e17f72");
}
