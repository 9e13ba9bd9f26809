//! Adobe (`authmod=adobe`) and Limelight (`authmod=llnw`) connect authentication
//! (protocol-facts §7.5, §7.6), both roles, as pure functions.
//!
//! Both schemes take three connections: a plain `connect` that the server rejects naming the
//! method, a `connect` whose app carries `?authmod=..&user=..` that the server rejects with a
//! salt/challenge (Adobe) or nonce (Limelight), then a `connect` carrying the response. The
//! query built here is appended to both `app` and `tcUrl` by the caller. Nothing here draws
//! random numbers or remembers anything between connections: challenges come in as arguments,
//! so the server side decides how it keeps (or derives) what it issued.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use md5::{Digest, Md5};

/// Which scheme a server asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    Adobe,
    Llnw,
}

impl AuthMethod {
    /// The `authmod=` value.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Adobe => "adobe",
            AuthMethod::Llnw => "llnw",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "adobe" => Some(AuthMethod::Adobe),
            "llnw" => Some(AuthMethod::Llnw),
            _ => None,
        }
    }
}

/// The `reason=` of a rejection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RejectReason {
    NeedAuth,
    AuthFailed,
    NoSuchUser,
    Other(String),
}

/// What a server's `NetConnection.Connect.Rejected` description says about authentication.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rejection {
    /// `authmod=` anywhere in the description.
    pub method: Option<AuthMethod>,
    /// `code=NNN` (403 on the first step).
    pub code: Option<u32>,
    /// `reason=` from the `?...` query part.
    pub reason: Option<RejectReason>,
    /// Every `key=value` of the `?...` query part, in order.
    pub params: Vec<(String, String)>,
}

impl Rejection {
    /// A query parameter by name.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Why the client cannot go on with authentication.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("server rejected the connection without naming an auth method: {0:?}")]
    NoMethod(String),
    #[error("server rejected the credentials (reason={0})")]
    Failed(String),
    #[error("server asked for {method} auth but its challenge lacks `{missing}`: {description:?}")]
    MissingParam {
        method: &'static str,
        missing: &'static str,
        description: String,
    },
}

/// Parses the description of a `NetConnection.Connect.Rejected` status, e.g.
/// `[ AccessManager.Reject ] : [ code=403 need auth; authmod=adobe ] : ` or
/// `[ AccessManager.Reject ] : [ authmod=adobe ] : ?reason=needauth&user=u&salt=s&challenge=c&opaque=o`.
pub fn parse_rejection(description: &str) -> Rejection {
    let mut r = Rejection::default();
    let (head, query) = match description.find('?') {
        Some(i) => (&description[..i], Some(&description[i + 1..])),
        None => (description, None),
    };
    for word in head.split(|c: char| c.is_whitespace() || c == ';' || c == '[' || c == ']') {
        if let Some(m) = word.strip_prefix("authmod=") {
            r.method = r.method.or(AuthMethod::parse(m));
        } else if let Some(c) = word.strip_prefix("code=") {
            r.code = r.code.or(c.parse().ok());
        }
    }
    if let Some(q) = query {
        r.params = parse_query(q.trim_end());
        if let Some(m) = r.param("authmod").and_then(AuthMethod::parse) {
            r.method = r.method.or(Some(m));
        }
        r.reason = r.param("reason").map(|s| match s {
            "needauth" => RejectReason::NeedAuth,
            "authfailed" => RejectReason::AuthFailed,
            "nosuchuser" => RejectReason::NoSuchUser,
            other => RejectReason::Other(other.to_owned()),
        });
    }
    r
}

/// Splits `a=1&b=2` (a leading `?` is skipped) into pairs; a key without `=` gets "".
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .strip_prefix('?')
        .unwrap_or(query)
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (p.to_owned(), String::new()),
        })
        .collect()
}

fn md5(parts: &[&str]) -> [u8; 16] {
    let mut h = Md5::new();
    for p in parts {
        h.update(p.as_bytes());
    }
    h.finalize().into()
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(32), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// A client challenge / cnonce in FFmpeg's form: `%08x` of a random u32.
pub fn client_nonce(random: u32) -> String {
    format!("{random:08x}")
}

/// Adobe: `base64(MD5(base64(MD5(user‖salt‖password)) ‖ challenge ‖ client_challenge))`, where
/// `challenge` is the server's opaque when it sent one, else its challenge.
pub fn adobe_response(
    user: &str,
    password: &str,
    salt: &str,
    challenge: &str,
    client_challenge: &str,
) -> String {
    let hash1 = STANDARD.encode(md5(&[user, salt, password]));
    STANDARD.encode(md5(&[&hash1, challenge, client_challenge]))
}

/// Adobe step 1 query: `?authmod=adobe&user=<user>`.
pub fn initial_query(method: AuthMethod, user: &str) -> String {
    format!("?authmod={}&user={user}", method.as_str())
}

/// Adobe step 3 query (FFmpeg's form):
/// `?authmod=adobe&user=u&challenge=<cchal>&response=<resp>[&opaque=<op>]`.
pub fn adobe_query(
    user: &str,
    password: &str,
    salt: &str,
    challenge: &str,
    opaque: Option<&str>,
    client_challenge: &str,
) -> String {
    let resp = adobe_response(
        user,
        password,
        salt,
        opaque.unwrap_or(challenge),
        client_challenge,
    );
    let mut q = format!("?authmod=adobe&user={user}&challenge={client_challenge}&response={resp}");
    if let Some(op) = opaque {
        q.push_str("&opaque=");
        q.push_str(op);
    }
    q
}

/// Limelight: digest response over `publish:/<app>[/_definst_]` (app without its query; the
/// instance is added when the app has no `/`).
pub fn llnw_response(user: &str, password: &str, app: &str, nonce: &str, cnonce: &str) -> String {
    let app = app.split('?').next().unwrap_or(app);
    let ha1 = hex(&md5(&[user, ":live:", password]));
    let inst = if app.contains('/') { "" } else { "/_definst_" };
    let ha2 = hex(&md5(&["publish:/", app, inst]));
    hex(&md5(&[
        &ha1, ":", nonce, ":", "00000001", ":", cnonce, ":auth:", &ha2,
    ]))
}

/// Limelight step 3 query (FFmpeg's form):
/// `?authmod=llnw&user=u&nonce=n&cnonce=c&nc=00000001&response=r`.
pub fn llnw_query(user: &str, password: &str, app: &str, nonce: &str, cnonce: &str) -> String {
    let r = llnw_response(user, password, app, nonce, cnonce);
    format!("?authmod=llnw&user={user}&nonce={nonce}&cnonce={cnonce}&nc=00000001&response={r}")
}

/// The query for the client's next connection after a rejection described by `description`.
/// `app` is the application without any query; `client_challenge` comes from
/// [`client_nonce`]. Errors when the server gave up (authfailed, nosuchuser) or gave no method.
pub fn next_query(
    description: &str,
    user: &str,
    password: &str,
    app: &str,
    client_challenge: &str,
) -> Result<String, AuthError> {
    let r = parse_rejection(description);
    let method = r
        .method
        .ok_or_else(|| AuthError::NoMethod(description.to_owned()))?;
    let missing = |m: &'static str| AuthError::MissingParam {
        method: method.as_str(),
        missing: m,
        description: description.to_owned(),
    };
    match &r.reason {
        None => Ok(initial_query(method, user)),
        Some(RejectReason::NeedAuth) => match method {
            AuthMethod::Adobe => {
                let salt = r.param("salt").ok_or_else(|| missing("salt"))?;
                let challenge = r.param("challenge").unwrap_or("");
                let opaque = r.param("opaque");
                if challenge.is_empty() && opaque.is_none() {
                    return Err(missing("challenge"));
                }
                Ok(adobe_query(
                    user,
                    password,
                    salt,
                    challenge,
                    opaque,
                    client_challenge,
                ))
            }
            AuthMethod::Llnw => {
                let nonce = r.param("nonce").ok_or_else(|| missing("nonce"))?;
                Ok(llnw_query(user, password, app, nonce, client_challenge))
            }
        },
        Some(RejectReason::AuthFailed) => Err(AuthError::Failed("authfailed".into())),
        Some(RejectReason::NoSuchUser) => Err(AuthError::Failed("nosuchuser".into())),
        Some(RejectReason::Other(o)) => Err(AuthError::Failed(o.clone())),
    }
}

// ---- server side --------------------------------------------------------------------------

/// What a connect's app query carries, from the server's point of view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthAttempt {
    /// No `authmod`: step 1, answer with [`need_auth_description`].
    None,
    /// `authmod` and `user` only: step 2, answer with a challenge description.
    User { method: AuthMethod, user: String },
    /// Adobe step 3.
    Adobe {
        user: String,
        client_challenge: String,
        response: String,
        opaque: Option<String>,
    },
    /// Limelight step 3.
    Llnw {
        user: String,
        nonce: String,
        cnonce: String,
        response: String,
    },
    /// `authmod` present but unusable (unknown method, no user).
    Malformed(String),
}

/// Reads the auth parameters of a connect `app` query (without the `?`).
pub fn parse_attempt(query: Option<&str>) -> AuthAttempt {
    let Some(q) = query else {
        return AuthAttempt::None;
    };
    let p = parse_query(q);
    let get = |k: &str| p.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone());
    let Some(m) = get("authmod") else {
        return AuthAttempt::None;
    };
    let Some(method) = AuthMethod::parse(&m) else {
        return AuthAttempt::Malformed(format!("unknown authmod {m:?}"));
    };
    let Some(user) = get("user") else {
        return AuthAttempt::Malformed(format!("authmod={m} without user"));
    };
    match method {
        AuthMethod::Adobe => match (get("challenge"), get("response")) {
            (Some(c), Some(r)) => AuthAttempt::Adobe {
                user,
                client_challenge: c,
                response: r,
                opaque: get("opaque").filter(|o| !o.is_empty()),
            },
            _ => AuthAttempt::User { method, user },
        },
        AuthMethod::Llnw => match (get("nonce"), get("cnonce"), get("response")) {
            (Some(n), Some(c), Some(r)) => AuthAttempt::Llnw {
                user,
                nonce: n,
                cnonce: c,
                response: r,
            },
            _ => AuthAttempt::User { method, user },
        },
    }
}

/// Step-1 rejection description: `[ AccessManager.Reject ] : [ code=403 need auth; authmod=<m> ] : `.
pub fn need_auth_description(method: AuthMethod) -> String {
    format!(
        "[ AccessManager.Reject ] : [ code=403 need auth; authmod={} ] : ",
        method.as_str()
    )
}

/// Step-2 Adobe rejection description carrying salt, challenge and opaque.
pub fn adobe_challenge_description(
    user: &str,
    salt: &str,
    challenge: &str,
    opaque: &str,
) -> String {
    format!(
        "[ AccessManager.Reject ] : [ authmod=adobe ] : ?reason=needauth&user={user}&salt={salt}&challenge={challenge}&opaque={opaque}"
    )
}

/// Step-2 Limelight rejection description carrying the nonce.
pub fn llnw_challenge_description(user: &str, nonce: &str) -> String {
    format!(
        "[ AccessManager.Reject ] : [ authmod=llnw ] : ?reason=needauth&user={user}&nonce={nonce}"
    )
}

/// Rejection description for wrong credentials.
pub fn auth_failed_description(method: AuthMethod) -> String {
    format!(
        "[ AccessManager.Reject ] : [ authmod={} ] : ?reason=authfailed",
        method.as_str()
    )
}

/// Equality that does not stop at the first difference, so response checks do not leak how
/// much of a guess was right through timing.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks an Adobe response. Clients hash with the opaque when the server sent one and with the
/// challenge otherwise, so both are tried (the server issued both).
pub fn adobe_verify(
    user: &str,
    password: &str,
    salt: &str,
    server_challenge: &str,
    server_opaque: &str,
    client_challenge: &str,
    response: &str,
) -> bool {
    let with_opaque = adobe_response(user, password, salt, server_opaque, client_challenge);
    let with_chal = adobe_response(user, password, salt, server_challenge, client_challenge);
    // Evaluate both before combining so timing does not reveal which one matched.
    let a = constant_time_eq(with_opaque.as_bytes(), response.as_bytes());
    let b = constant_time_eq(with_chal.as_bytes(), response.as_bytes());
    a | b
}

/// Checks a Limelight response for the `nonce` the server issued.
pub fn llnw_verify(
    user: &str,
    password: &str,
    app: &str,
    nonce: &str,
    cnonce: &str,
    response: &str,
) -> bool {
    let expect = llnw_response(user, password, app, nonce, cnonce);
    constant_time_eq(expect.as_bytes(), response.to_ascii_lowercase().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values computed independently with python3 hashlib/base64:
    //   h1 = b64(md5(user+salt+pass)); r = b64(md5(h1+opaque+cchal)); r2 = ...challenge...
    //   llnw: md5hex(ha1:nonce:00000001:cnonce:auth:ha2)
    const USER: &str = "alice";
    const PASS: &str = "s3cret";
    const SALT: &str = "SaLt12==";
    const CHAL: &str = "ChAl34==";
    const OPAQUE: &str = "OpAq56==";
    const CCHAL: &str = "0a1b2c3d";

    #[test]
    fn adobe_response_matches_python() {
        assert_eq!(
            adobe_response(USER, PASS, SALT, OPAQUE, CCHAL),
            "5JwPQGEOu3DgyG8zsQc9Eg=="
        );
        assert_eq!(
            adobe_response(USER, PASS, SALT, CHAL, CCHAL),
            "0uBV3wMtIHwIBjshBy80gg=="
        );
        assert_eq!(
            adobe_query(USER, PASS, SALT, CHAL, Some(OPAQUE), CCHAL),
            "?authmod=adobe&user=alice&challenge=0a1b2c3d&response=5JwPQGEOu3DgyG8zsQc9Eg==&opaque=OpAq56=="
        );
        assert_eq!(
            adobe_query(USER, PASS, SALT, CHAL, None, CCHAL),
            "?authmod=adobe&user=alice&challenge=0a1b2c3d&response=0uBV3wMtIHwIBjshBy80gg=="
        );
    }

    #[test]
    fn llnw_response_matches_python() {
        assert_eq!(
            llnw_response(USER, PASS, "live", "NoNcE99", "deadbeef"),
            "98e127af4e271a2528931d2f20889048"
        );
        // App with an instance: no _definst_; the query is ignored.
        assert_eq!(
            llnw_response(USER, PASS, "app/inst?x=1", "NoNcE99", "deadbeef"),
            "977e51459ab10987740f542a3a6c7baf"
        );
        assert_eq!(
            llnw_query(USER, PASS, "live", "NoNcE99", "deadbeef"),
            "?authmod=llnw&user=alice&nonce=NoNcE99&cnonce=deadbeef&nc=00000001&response=98e127af4e271a2528931d2f20889048"
        );
    }

    #[test]
    fn parses_rejections() {
        let r =
            parse_rejection("[ AccessManager.Reject ] : [ code=403 need auth; authmod=adobe ] : ");
        assert_eq!(r.method, Some(AuthMethod::Adobe));
        assert_eq!(r.code, Some(403));
        assert_eq!(r.reason, None);
        let r = parse_rejection(&adobe_challenge_description(USER, SALT, CHAL, OPAQUE));
        assert_eq!(r.reason, Some(RejectReason::NeedAuth));
        assert_eq!(r.param("salt"), Some(SALT));
        assert_eq!(r.param("challenge"), Some(CHAL));
        assert_eq!(r.param("opaque"), Some(OPAQUE));
        assert_eq!(r.param("user"), Some(USER));
        let r = parse_rejection(
            "[ AccessManager.Reject ] : [ authmod=adobe ] : ?reason=authfailed&opaque=vgoAAA==",
        );
        assert_eq!(r.reason, Some(RejectReason::AuthFailed));
        let r = parse_rejection(&llnw_challenge_description(USER, "n1"));
        assert_eq!(r.method, Some(AuthMethod::Llnw));
        assert_eq!(r.param("nonce"), Some("n1"));
        assert_eq!(parse_rejection("whatever"), Rejection::default());
    }

    #[test]
    fn client_walks_all_three_steps() {
        let d1 = need_auth_description(AuthMethod::Adobe);
        assert_eq!(
            next_query(&d1, USER, PASS, "live", CCHAL).unwrap(),
            "?authmod=adobe&user=alice"
        );
        let d2 = adobe_challenge_description(USER, SALT, CHAL, OPAQUE);
        let q = next_query(&d2, USER, PASS, "live", CCHAL).unwrap();
        assert!(q.ends_with("&opaque=OpAq56=="), "{q}");
        let d3 = auth_failed_description(AuthMethod::Adobe);
        assert_eq!(
            next_query(&d3, USER, PASS, "live", CCHAL),
            Err(AuthError::Failed("authfailed".into()))
        );
        assert!(matches!(
            next_query("no method here", USER, PASS, "live", CCHAL),
            Err(AuthError::NoMethod(_))
        ));
        let e = next_query(
            "[ authmod=adobe ] : ?reason=needauth&user=a",
            USER,
            PASS,
            "live",
            CCHAL,
        )
        .unwrap_err();
        assert!(e.to_string().contains("salt"), "{e}");
        let ll = next_query(
            &llnw_challenge_description(USER, "NoNcE99"),
            USER,
            PASS,
            "live",
            "deadbeef",
        )
        .unwrap();
        assert!(ll.ends_with("98e127af4e271a2528931d2f20889048"));
    }

    #[test]
    fn server_verifies_both_client_variants() {
        // FFmpeg-style (opaque) and a client hashing with the challenge both pass.
        let q = adobe_query(USER, PASS, SALT, CHAL, Some(OPAQUE), CCHAL);
        let AuthAttempt::Adobe {
            user,
            client_challenge,
            response,
            opaque,
        } = parse_attempt(Some(&q[1..]))
        else {
            panic!()
        };
        assert_eq!(opaque.as_deref(), Some(OPAQUE));
        assert!(adobe_verify(
            &user,
            PASS,
            SALT,
            CHAL,
            OPAQUE,
            &client_challenge,
            &response
        ));
        assert!(!adobe_verify(
            &user,
            "wrong",
            SALT,
            CHAL,
            OPAQUE,
            &client_challenge,
            &response
        ));
        let q = adobe_query(USER, PASS, SALT, CHAL, None, CCHAL);
        let AuthAttempt::Adobe { response, .. } = parse_attempt(Some(&q)) else {
            panic!()
        };
        assert!(adobe_verify(
            USER, PASS, SALT, CHAL, OPAQUE, CCHAL, &response
        ));

        let q = llnw_query(USER, PASS, "live", "n", "c");
        let AuthAttempt::Llnw {
            nonce,
            cnonce,
            response,
            ..
        } = parse_attempt(Some(&q))
        else {
            panic!()
        };
        assert!(llnw_verify(USER, PASS, "live", &nonce, &cnonce, &response));
        assert!(!llnw_verify(
            USER, PASS, "other", &nonce, &cnonce, &response
        ));

        assert_eq!(parse_attempt(None), AuthAttempt::None);
        assert_eq!(parse_attempt(Some("x=1")), AuthAttempt::None);
        assert_eq!(
            parse_attempt(Some("authmod=adobe&user=bob")),
            AuthAttempt::User {
                method: AuthMethod::Adobe,
                user: "bob".into()
            }
        );
        assert!(matches!(
            parse_attempt(Some("authmod=kerberos&user=bob")),
            AuthAttempt::Malformed(_)
        ));
    }

    #[test]
    fn constant_time_eq_works() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
