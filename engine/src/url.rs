//! RTMP URLs for all six schemes: `rtmp`, `rtmps`, `rtmpt`, `rtmpts`, `rtmpe`, `rtmpte`.
//!
//! The split of the path follows rtmp2: the last path segment is the stream, everything before
//! it is the application, so multi-segment applications (`live/sub`) work. A query string stays
//! with the segment it is attached to (`live/key?token=abc` puts it on the stream,
//! `app?auth=x/stream` on the application). Text after the first space is a list of librtmp-style
//! `key=value` options, so `location` strings written for the old librtmp `rtmpsrc` keep working;
//! `app=` and `playpath=` are applied to the application and stream and not kept as options.
//!
//! Invariants: a parsed [`RtmpUrl`] has a non-empty host and a non-empty application, and its
//! [`Display`](fmt::Display) form parses back to an equal value. Only the user info is
//! percent-decoded; the path is kept as written because stream keys are opaque to us and the
//! server compares them byte for byte. Passwords never appear in `Debug` output or errors.

use std::fmt;
use std::str::FromStr;

/// One of the six RTMP URL schemes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// Plain RTMP over TCP.
    Rtmp,
    /// RTMP inside TLS.
    Rtmps,
    /// RTMP tunnelled through HTTP.
    Rtmpt,
    /// RTMP tunnelled through HTTPS.
    Rtmpts,
    /// RTMP with the RTMPE (Diffie-Hellman + RC4) handshake and encryption.
    Rtmpe,
    /// RTMPE tunnelled through HTTP.
    Rtmpte,
}

impl Scheme {
    /// All schemes, in declaration order.
    pub const ALL: [Scheme; 6] = [
        Scheme::Rtmp,
        Scheme::Rtmps,
        Scheme::Rtmpt,
        Scheme::Rtmpts,
        Scheme::Rtmpe,
        Scheme::Rtmpte,
    ];

    /// The port used when the URL gives none (protocol-facts §4: TLS beats HTTP, HTTP beats
    /// plain).
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Rtmp | Scheme::Rtmpe => 1935,
            Scheme::Rtmps | Scheme::Rtmpts => 443,
            Scheme::Rtmpt | Scheme::Rtmpte => 80,
        }
    }

    /// Whether the transport runs inside TLS.
    pub fn is_tls(self) -> bool {
        matches!(self, Scheme::Rtmps | Scheme::Rtmpts)
    }

    /// Whether the transport is the RTMPT HTTP tunnel.
    pub fn is_tunneled(self) -> bool {
        matches!(self, Scheme::Rtmpt | Scheme::Rtmpts | Scheme::Rtmpte)
    }

    /// Whether the RTMPE handshake and RC4 encryption are used.
    pub fn is_encrypted(self) -> bool {
        matches!(self, Scheme::Rtmpe | Scheme::Rtmpte)
    }

    /// The lower-case scheme name, as written in URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Rtmp => "rtmp",
            Scheme::Rtmps => "rtmps",
            Scheme::Rtmpt => "rtmpt",
            Scheme::Rtmpts => "rtmpts",
            Scheme::Rtmpe => "rtmpe",
            Scheme::Rtmpte => "rtmpte",
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scheme {
    type Err = UrlError;

    /// Parses a scheme name, ignoring ASCII case.
    fn from_str(s: &str) -> Result<Self, UrlError> {
        Scheme::ALL
            .into_iter()
            .find(|scheme| scheme.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UrlError::UnknownScheme(s.to_owned()))
    }
}

/// Why an RTMP URL was rejected. URL values in messages have any password replaced by `***`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// The text before `://` is not one of the six schemes.
    #[error("unknown URL scheme {0:?} (expected rtmp, rtmps, rtmpt, rtmpts, rtmpe or rtmpte)")]
    UnknownScheme(String),
    /// There is no `scheme://` prefix at all.
    #[error("URL {0:?} has no scheme (expected e.g. rtmp://host/app/stream)")]
    MissingScheme(String),
    /// Nothing between `://` (or the user info) and the port or path.
    #[error("URL {0:?} has no host")]
    MissingHost(String),
    /// The host contains characters no host name can hold.
    #[error("bad host {0:?} in RTMP URL")]
    BadHost(String),
    /// The port is not a number in 1..=65535.
    #[error("bad port {0:?} in RTMP URL (expected 1..=65535)")]
    BadPort(String),
    /// No `/` after the host, and no `app=` option.
    #[error("URL {0:?} has no path (expected /app or /app/stream after the host)")]
    NoPath(String),
    /// The application part of the path is empty (`rtmp://host/` or `rtmp://host//stream`).
    #[error("URL {0:?} has an empty application name")]
    EmptyApp(String),
    /// A bracketed host is not a valid IPv6 address, or the brackets are unbalanced.
    #[error("bad IPv6 literal {0:?} in RTMP URL")]
    BadIpv6(String),
    /// The user name or password has a broken `%xx` escape or is not UTF-8 once decoded.
    #[error("bad percent-encoding in the {0} of the URL user info")]
    BadUserinfo(&'static str),
    /// A librtmp option after the URL is not of the form `key=value`.
    #[error("librtmp option {0:?} is not of the form key=value")]
    BadOption(String),
}

/// A parsed RTMP URL: `scheme://[user[:pass]@]host[:port]/app[/more/app]/stream[ key=value]*`.
#[derive(Clone, PartialEq, Eq)]
pub struct RtmpUrl {
    /// Transport scheme.
    pub scheme: Scheme,
    /// Host name or address; IPv6 addresses are stored without brackets.
    pub host: String,
    /// Port given in the URL, if any; see [`RtmpUrl::port_or_default`].
    pub port: Option<u16>,
    /// Application: every path segment but the last, joined by `/`. Never empty after parsing.
    pub app: String,
    /// Stream name: the last path segment with its query string. May be empty (`rtmp://h/app`);
    /// callers that need a stream reject that themselves.
    pub stream: String,
    /// Percent-decoded user name from the user info.
    pub username: Option<String>,
    /// Percent-decoded password from the user info.
    pub password: Option<String>,
    /// librtmp-style options after the URL, in order, with `\xx` escapes decoded. `app` and
    /// `playpath` are applied to [`app`](Self::app) and [`stream`](Self::stream) instead.
    pub options: Vec<(String, String)>,
}

impl RtmpUrl {
    /// Parses a URL; same as [`str::parse`].
    pub fn parse(s: &str) -> Result<Self, UrlError> {
        s.parse()
    }

    /// The explicit port, or the scheme's default.
    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or(self.scheme.default_port())
    }

    /// The `tcUrl` for `connect`: `scheme://host[:port]/app`, with the port only when the URL
    /// gave one and an IPv6 host in brackets. User info never goes into it.
    pub fn tc_url(&self) -> String {
        let mut out = format!("{}://", self.scheme);
        self.write_host_port(&mut out);
        out.push('/');
        out.push_str(&self.app);
        out
    }

    /// Where an Enhanced RTMP `ReconnectRequest` sends this stream: `tc_url` absolute
    /// (`rtmp://host:1935/app`), scheme-relative (`//host/app`) or path-only (`/app`), resolved
    /// against this URL; the stream name, credentials and options stay.
    pub fn resolve_tc_url(&self, tc_url: &str) -> Result<RtmpUrl, UrlError> {
        let tc_url = tc_url.trim().trim_end_matches('/');
        let base = if tc_url.contains("://") {
            tc_url.to_string()
        } else if let Some(rest) = tc_url.strip_prefix("//") {
            format!("{}://{rest}", self.scheme)
        } else {
            let mut out = format!("{}://", self.scheme);
            self.write_host_port(&mut out);
            out.push('/');
            out.push_str(tc_url.trim_start_matches('/'));
            out
        };
        let mut url: RtmpUrl = format!("{base}/{}", self.stream).parse()?;
        url.stream = self.stream.clone();
        if url.username.is_none() {
            url.username = self.username.clone();
            url.password = self.password.clone();
        }
        url.options = self.options.clone();
        Ok(url)
    }

    /// The value of the first librtmp option named `key` (case-sensitive, as librtmp is).
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn write_host_port(&self, out: &mut String) {
        if self.host.contains(':') {
            out.push('[');
            out.push_str(&self.host);
            out.push(']');
        } else {
            out.push_str(&self.host);
        }
        if let Some(port) = self.port {
            out.push(':');
            out.push_str(&port.to_string());
        }
    }

    /// How `Display` writes the path: `Some(path)` when [`split_path`] gives the same app and
    /// stream back, `None` when they must travel as `app=` / `playpath=` options instead.
    fn path_form(&self) -> Option<String> {
        // Any whitespace, not just the space and tab that separate options: parsing trims the
        // whole text, so a vertical tab or newline at the end of the path would be lost.
        if self.app.is_empty()
            || self.app.contains(char::is_whitespace)
            || self.stream.contains(char::is_whitespace)
        {
            return None;
        }
        let app_query = self.app.contains('?');
        let app_slash = self.app.contains('/');
        if self.stream.is_empty() {
            return match (app_slash, app_query) {
                (false, _) => Some(self.app.clone()),
                (true, false) => Some(format!("{}/", self.app)),
                (true, true) => None,
            };
        }
        let stream_path = self.stream.split('?').next().unwrap_or_default();
        let fits = if app_query {
            // The split can only come from after the app's query: nothing else may hold a '/'.
            !app_slash && !self.stream.contains('/')
        } else {
            !stream_path.contains('/')
        };
        fits.then(|| format!("{}/{}", self.app, self.stream))
    }
}

impl fmt::Debug for RtmpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RtmpUrl")
            .field("scheme", &self.scheme)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("app", &self.app)
            .field("stream", &self.stream)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("options", &self.options)
            .finish()
    }
}

impl fmt::Display for RtmpUrl {
    /// Re-forms the URL, password included. Applications or streams that the path cannot carry
    /// unambiguously (a `/` in the stream, spaces) are written as `app=` / `playpath=` options.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = format!("{}://", self.scheme);
        // An empty user name parses back as none, so it is written as none.
        if let Some(user) = self.username.as_ref().filter(|u| !u.is_empty()) {
            percent_encode_into(user, &mut out);
            if let Some(pass) = &self.password {
                out.push(':');
                percent_encode_into(pass, &mut out);
            }
            out.push('@');
        } else if let Some(pass) = &self.password {
            out.push(':');
            percent_encode_into(pass, &mut out);
            out.push('@');
        }
        self.write_host_port(&mut out);
        let path = self.path_form();
        out.push('/');
        // Any non-empty placeholder will do when both halves come from the options.
        out.push_str(path.as_deref().unwrap_or("_"));
        let mut options = Vec::with_capacity(self.options.len() + 2);
        if path.is_none() {
            options.push(("app", self.app.as_str()));
            options.push(("playpath", self.stream.as_str()));
        }
        options.extend(self.options.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        for (key, value) in options {
            out.push(' ');
            escape_option_into(key, &mut out);
            out.push('=');
            escape_option_into(value, &mut out);
        }
        f.write_str(&out)
    }
}

impl FromStr for RtmpUrl {
    type Err = UrlError;

    fn from_str(input: &str) -> Result<Self, UrlError> {
        let input = input.trim();
        let (url, option_text) = match input.find([' ', '\t']) {
            Some(i) => (&input[..i], &input[i..]),
            None => (input, ""),
        };
        let redacted = || redact(url);

        let (scheme_text, rest) = url
            .split_once("://")
            .ok_or_else(|| UrlError::MissingScheme(redacted()))?;
        let scheme: Scheme = scheme_text.parse()?;

        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(authority_end);

        let (userinfo, hostport) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        let (username, password) = match userinfo {
            None => (None, None),
            Some(info) => {
                let (user, pass) = match info.split_once(':') {
                    Some((user, pass)) => (user, Some(pass)),
                    None => (info, None),
                };
                let user = Some(percent_decode(user, "user name")?).filter(|u| !u.is_empty());
                let pass = pass.map(|p| percent_decode(p, "password")).transpose()?;
                (user, pass)
            }
        };

        let (host, port_text) = split_host_port(hostport)?;
        if host.is_empty() {
            return Err(UrlError::MissingHost(redacted()));
        }
        let port = port_text.map(parse_port).transpose()?;

        let mut options = Vec::new();
        let mut app_override = None;
        let mut playpath_override = None;
        for token in option_text.split([' ', '\t']).filter(|t| !t.is_empty()) {
            let (key, value) = token
                .split_once('=')
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| UrlError::BadOption(token.to_owned()))?;
            let (key, value) = (unescape_option(key), unescape_option(value));
            match key.as_str() {
                "app" => app_override = Some(value),
                "playpath" => playpath_override = Some(value),
                _ => options.push((key, value)),
            }
        }

        let (mut app, mut stream) = match path.strip_prefix('/') {
            Some(path) => split_path(path),
            None if app_override.is_some() => (String::new(), String::new()),
            None => return Err(UrlError::NoPath(redacted())),
        };
        if let Some(value) = app_override {
            app = value;
        }
        if let Some(value) = playpath_override {
            stream = value;
        }
        if app.is_empty() {
            return Err(UrlError::EmptyApp(redacted()));
        }

        Ok(RtmpUrl {
            scheme,
            host,
            port,
            app,
            stream,
            username,
            password,
            options,
        })
    }
}

/// Splits the path (without its leading `/`) into application and stream. The query goes with
/// the segment it follows: if the part before `?` has a `/`, the split is there (so a `/` inside
/// a stream token is harmless); otherwise a `/` after the query means the query belongs to the
/// application (`app?auth=x/stream`).
fn split_path(path: &str) -> (String, String) {
    let query_start = path.find('?').unwrap_or(path.len());
    let split = path[..query_start]
        .rfind('/')
        .or_else(|| path[query_start..].rfind('/').map(|i| query_start + i));
    match split {
        Some(i) => (path[..i].to_owned(), path[i + 1..].to_owned()),
        None => (path.to_owned(), String::new()),
    }
}

/// Splits `host[:port]` or `[v6]:port`; returns the host without brackets.
fn split_host_port(hostport: &str) -> Result<(String, Option<&str>), UrlError> {
    if let Some(bracketed) = hostport.strip_prefix('[') {
        let end = bracketed
            .find(']')
            .ok_or_else(|| UrlError::BadIpv6(hostport.to_owned()))?;
        let addr = &bracketed[..end];
        if !is_ipv6_literal(addr) {
            return Err(UrlError::BadIpv6(addr.to_owned()));
        }
        let after = &bracketed[end + 1..];
        let port = match after.strip_prefix(':') {
            Some(port) => Some(port),
            None if after.is_empty() => None,
            None => return Err(UrlError::BadIpv6(hostport.to_owned())),
        };
        return Ok((addr.to_owned(), port));
    }
    let (host, port) = match hostport.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (hostport, None),
    };
    if host.contains(['[', ']']) {
        return Err(UrlError::BadIpv6(hostport.to_owned()));
    }
    if host.contains(':') {
        // More than one colon without brackets: an unbracketed IPv6 address.
        return Err(UrlError::BadIpv6(hostport.to_owned()));
    }
    if host
        .chars()
        .any(|c| c.is_control() || c == '%' || c == '\\')
    {
        return Err(UrlError::BadHost(host.to_owned()));
    }
    Ok((host.to_owned(), port))
}

fn parse_port(text: &str) -> Result<u16, UrlError> {
    let bad = || UrlError::BadPort(text.to_owned());
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match text.parse::<u16>() {
        Ok(0) | Err(_) => Err(bad()),
        Ok(port) => Ok(port),
    }
}

/// RFC 4291 text form: eight groups of 1–4 hex digits, one `::` allowed to stand for one or more
/// zero groups, and an optional dotted IPv4 tail counting as two groups. Zone ids are rejected.
fn is_ipv6_literal(addr: &str) -> bool {
    fn count_groups(part: &str, allow_v4_tail: bool) -> Option<usize> {
        if part.is_empty() {
            return Some(0);
        }
        let groups: Vec<&str> = part.split(':').collect();
        let last = groups.len() - 1;
        let mut count = 0;
        for (i, group) in groups.iter().enumerate() {
            if i == last && allow_v4_tail && group.contains('.') {
                if !is_ipv4(group) {
                    return None;
                }
                count += 2;
            } else if (1..=4).contains(&group.len()) && group.bytes().all(|b| b.is_ascii_hexdigit())
            {
                count += 1;
            } else {
                return None;
            }
        }
        Some(count)
    }
    match addr.split_once("::") {
        Some((head, tail)) => {
            if tail.contains("::") {
                return false;
            }
            match (count_groups(head, false), count_groups(tail, true)) {
                (Some(h), Some(t)) => h + t <= 7,
                _ => false,
            }
        }
        None => count_groups(addr, true) == Some(8),
    }
}

fn is_ipv4(text: &str) -> bool {
    let parts: Vec<&str> = text.split('.').collect();
    parts.len() == 4
        && parts.iter().all(|p| {
            (1..=3).contains(&p.len())
                && p.bytes().all(|b| b.is_ascii_digit())
                && p.parse::<u8>().is_ok()
        })
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn percent_decode(text: &str, what: &'static str) -> Result<String, UrlError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = bytes.get(i + 1).copied().and_then(hex_value);
            let lo = bytes.get(i + 2).copied().and_then(hex_value);
            match (hi, lo) {
                (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                _ => return Err(UrlError::BadUserinfo(what)),
            }
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| UrlError::BadUserinfo(what))
}

/// Escapes everything outside RFC 3986 "unreserved" plus sub-delims other than those that would
/// end the user info (`:` `@` `/`), so the decoded value comes back unchanged.
fn percent_encode_into(text: &str, out: &mut String) {
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// librtmp writes awkward bytes in option values as `\xx` (two hex digits); a backslash not
/// followed by two hex digits is kept as is.
fn unescape_option(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            let hi = bytes.get(i + 1).copied().and_then(hex_value);
            let lo = bytes.get(i + 2).copied().and_then(hex_value);
            if let (Some(hi), Some(lo)) = (hi, lo) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    // An escape may have produced invalid UTF-8; keep what can be kept rather than fail.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

fn escape_option_into(text: &str, out: &mut String) {
    // Every whitespace character is escaped (byte by byte, as `\xx` escapes are bytes), not
    // only the separators: one at the end of the text would otherwise be trimmed away.
    for c in text.chars() {
        if c == '\\' || c == '=' || c.is_whitespace() {
            for b in c.encode_utf8(&mut [0; 4]).bytes() {
                out.push_str(&format!("\\{b:02x}"));
            }
        } else {
            out.push(c);
        }
    }
}

/// The URL with any password replaced, for error messages.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rfind('@') {
        Some(at) => match authority[..at].split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***{}", &rest[at..]),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> RtmpUrl {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn schemes_and_default_ports() {
        let table = [
            ("rtmp", Scheme::Rtmp, 1935, false, false, false),
            ("rtmps", Scheme::Rtmps, 443, true, false, false),
            ("rtmpt", Scheme::Rtmpt, 80, false, true, false),
            ("rtmpts", Scheme::Rtmpts, 443, true, true, false),
            ("rtmpe", Scheme::Rtmpe, 1935, false, false, true),
            ("rtmpte", Scheme::Rtmpte, 80, false, true, true),
        ];
        for (name, scheme, port, tls, tunnel, enc) in table {
            assert_eq!(name.parse::<Scheme>().unwrap(), scheme);
            assert_eq!(name.to_uppercase().parse::<Scheme>().unwrap(), scheme);
            assert_eq!(scheme.as_str(), name);
            assert_eq!(scheme.default_port(), port, "{name}");
            assert_eq!(scheme.is_tls(), tls, "{name}");
            assert_eq!(scheme.is_tunneled(), tunnel, "{name}");
            assert_eq!(scheme.is_encrypted(), enc, "{name}");

            let u = url(&format!("{name}://example.com/live/key"));
            assert_eq!(u.scheme, scheme);
            assert_eq!(u.port, None);
            assert_eq!(u.port_or_default(), port);
            assert_eq!(u.tc_url(), format!("{name}://example.com/live"));
            let u = url(&format!(
                "{}://example.com:1234/live/key",
                name.to_uppercase()
            ));
            assert_eq!(u.scheme, scheme);
            assert_eq!(u.port_or_default(), 1234);
        }
    }

    #[test]
    fn path_splitting() {
        // (url, app, stream)
        let table = [
            ("rtmp://h/live/key", "live", "key"),
            ("rtmp://h/live/sub/key", "live/sub", "key"),
            ("rtmp://h/a/b/c/key", "a/b/c", "key"),
            ("rtmp://h/live", "live", ""),
            ("rtmp://h/live/", "live", ""),
            ("rtmp://h/live/key?token=abc", "live", "key?token=abc"),
            (
                "rtmp://h/live/key?token=ab/cd==",
                "live",
                "key?token=ab/cd==",
            ),
            ("rtmp://h/app?auth=x/stream", "app?auth=x", "stream"),
            ("rtmp://h/live?token=x", "live?token=x", ""),
            (
                "rtmp://h/vod/mp4:folder/file.mp4",
                "vod/mp4:folder",
                "file.mp4",
            ),
            ("rtmp://h/vod/mp4:file.mp4", "vod", "mp4:file.mp4"),
            ("rtmp://h/vod/flv:clip", "vod", "flv:clip"),
            ("rtmp://h/live/a%20b", "live", "a%20b"),
        ];
        for (s, app, stream) in table {
            let u = url(s);
            assert_eq!(u.app, app, "{s}");
            assert_eq!(u.stream, stream, "{s}");
            assert_eq!(u.host, "h", "{s}");
        }
    }

    #[test]
    fn ipv6_hosts() {
        let u = url("rtmp://[::1]:1935/live/key");
        assert_eq!(u.host, "::1");
        assert_eq!(u.port, Some(1935));
        assert_eq!(u.tc_url(), "rtmp://[::1]:1935/live");
        let u = url("rtmps://[2001:db8::8a2e:370:7334]/app/s");
        assert_eq!(u.host, "2001:db8::8a2e:370:7334");
        assert_eq!(u.port_or_default(), 443);
        assert_eq!(u.tc_url(), "rtmps://[2001:db8::8a2e:370:7334]/app");
        let u = url("rtmp://[::ffff:192.0.2.1]/app/s");
        assert_eq!(u.host, "::ffff:192.0.2.1");
        let u = url("rtmp://[1:2:3:4:5:6:7:8]/app/s");
        assert_eq!(u.host, "1:2:3:4:5:6:7:8");
        let u = url("rtmp://127.0.0.1:19350/app/s");
        assert_eq!(u.host, "127.0.0.1");
        assert_eq!(u.port, Some(19350));
    }

    #[test]
    fn userinfo() {
        let u = url("rtmp://alice:s%40cr%3At@h/live/key");
        assert_eq!(u.username.as_deref(), Some("alice"));
        assert_eq!(u.password.as_deref(), Some("s@cr:t"));
        assert_eq!(u.host, "h");
        assert_eq!(u.tc_url(), "rtmp://h/live");
        let u = url("rtmp://bob@h/live/key");
        assert_eq!(u.username.as_deref(), Some("bob"));
        assert_eq!(u.password, None);
        let u = url("rtmp://b%C3%B6b:@h/live/key");
        assert_eq!(u.username.as_deref(), Some("böb"));
        assert_eq!(u.password.as_deref(), Some(""));
        // The last '@' ends the user info, so a raw '@' in a password still works.
        let u = url("rtmp://u:p@ss@h/live/key");
        assert_eq!(u.password.as_deref(), Some("p@ss"));
        assert_eq!(u.host, "h");
        let debug = format!("{u:?}");
        assert!(!debug.contains("p@ss"), "{debug}");
    }

    #[test]
    fn librtmp_options() {
        let u = url("rtmp://h/app/s live=1 swfUrl=http://x/y.swf conn=S:a\\20b");
        assert_eq!(u.app, "app");
        assert_eq!(u.stream, "s");
        assert_eq!(
            u.options,
            vec![
                ("live".to_owned(), "1".to_owned()),
                ("swfUrl".to_owned(), "http://x/y.swf".to_owned()),
                ("conn".to_owned(), "S:a b".to_owned()),
            ]
        );
        assert_eq!(u.option("live"), Some("1"));
        assert_eq!(u.option("Live"), None);

        let u = url("rtmp://h/app/s  app=other/inst   playpath=mp4:dir/file.mp4 ");
        assert_eq!(u.app, "other/inst");
        assert_eq!(u.stream, "mp4:dir/file.mp4");
        assert!(u.options.is_empty());
        assert_eq!(u.tc_url(), "rtmp://h/other/inst");

        // With app= the URL needs no path at all.
        let u = url("rtmp://h:1936 app=live playpath=key");
        assert_eq!((u.app.as_str(), u.stream.as_str()), ("live", "key"));
        assert_eq!(u.port, Some(1936));
    }

    #[test]
    fn display_round_trip() {
        let inputs = [
            "rtmp://h/live/key",
            "rtmps://h:8443/live/sub/key",
            "rtmpte://h/live",
            "rtmp://h/live/key?token=abc",
            "rtmp://h/app?auth=x/stream",
            "rtmp://h/live?token=x",
            "rtmp://h/live/key?token=ab/cd==",
            "rtmp://[::1]:1935/live/key",
            "rtmp://alice:s%40cr%3At@h/live/key",
            "rtmp://bob@h/live/key",
            "rtmp://u:@h/live/key",
            "rtmp://h/app/s live=1 conn=S:a\\20b",
            "rtmp://h/app/s playpath=mp4:dir/file.mp4",
            "rtmp://h/x app=a\\20b",
            "rtmp://h/vod/mp4:file.mp4",
        ];
        for s in inputs {
            let u = url(s);
            let shown = u.to_string();
            assert_eq!(url(&shown), u, "{s} -> {shown}");
        }
        assert_eq!(url("RTMP://h/live/key").to_string(), "rtmp://h/live/key");
        assert_eq!(
            url("rtmp://alice:s%40cr%3At@[::1]:99/a/b c=d").to_string(),
            "rtmp://alice:s%40cr%3At@[::1]:99/a/b c=d"
        );
    }

    #[test]
    fn display_of_built_values_round_trips() {
        let built = RtmpUrl {
            scheme: Scheme::Rtmpt,
            host: "h".into(),
            port: None,
            app: "a b".into(),
            stream: "x/y z".into(),
            username: None,
            password: Some("p w".into()),
            options: vec![("k".into(), "v=w".into())],
        };
        assert_eq!(url(&built.to_string()), built);
    }

    #[test]
    fn errors() {
        let table: &[(&str, UrlError)] = &[
            ("http://h/a/s", UrlError::UnknownScheme("http".into())),
            ("rtmfp://h/a/s", UrlError::UnknownScheme("rtmfp".into())),
            ("h/a/s", UrlError::MissingScheme("h/a/s".into())),
            ("rtmp:///a/s", UrlError::MissingHost("rtmp:///a/s".into())),
            (
                "rtmp://u:pw@/a/s",
                UrlError::MissingHost("rtmp://u:***@/a/s".into()),
            ),
            (
                "rtmp://:1935/a/s",
                UrlError::MissingHost("rtmp://:1935/a/s".into()),
            ),
            ("rtmp://h:0/a/s", UrlError::BadPort("0".into())),
            ("rtmp://h:65536/a/s", UrlError::BadPort("65536".into())),
            ("rtmp://h:x1/a/s", UrlError::BadPort("x1".into())),
            ("rtmp://h:/a/s", UrlError::BadPort("".into())),
            ("rtmp://h:+1/a/s", UrlError::BadPort("+1".into())),
            ("rtmp://h", UrlError::NoPath("rtmp://h".into())),
            ("rtmp://h:1935", UrlError::NoPath("rtmp://h:1935".into())),
            ("rtmp://h/", UrlError::EmptyApp("rtmp://h/".into())),
            ("rtmp://h//s", UrlError::EmptyApp("rtmp://h//s".into())),
            ("rtmp://[::1/a/s", UrlError::BadIpv6("[::1".into())),
            ("rtmp://[::g]/a/s", UrlError::BadIpv6("::g".into())),
            (
                "rtmp://[1:2:3:4:5:6:7:8:9]/a/s",
                UrlError::BadIpv6("1:2:3:4:5:6:7:8:9".into()),
            ),
            ("rtmp://[1::2::3]/a/s", UrlError::BadIpv6("1::2::3".into())),
            ("rtmp://[]/a/s", UrlError::BadIpv6("".into())),
            ("rtmp://[::1]x/a/s", UrlError::BadIpv6("[::1]x".into())),
            ("rtmp://::1/a/s", UrlError::BadIpv6("::1".into())),
            (
                "rtmp://[::1%eth0]/a/s",
                UrlError::BadIpv6("::1%eth0".into()),
            ),
            ("rtmp://u:p%zz@h/a/s", UrlError::BadUserinfo("password")),
            ("rtmp://%ff@h/a/s", UrlError::BadUserinfo("user name")),
            ("rtmp://h/a/s live", UrlError::BadOption("live".into())),
            ("rtmp://h/a/s =1", UrlError::BadOption("=1".into())),
        ];
        for (input, expected) in table {
            assert_eq!(&RtmpUrl::parse(input).unwrap_err(), expected, "{input}");
        }
        let msg = RtmpUrl::parse("rtmp://h:99999/a/s")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("99999"), "{msg}");
        let msg = RtmpUrl::parse("rtmp://u:hunter2@h")
            .unwrap_err()
            .to_string();
        assert!(!msg.contains("hunter2"), "{msg}");
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,60}") {
            let _ = RtmpUrl::parse(&s);
        }

        #[test]
        fn parsed_urls_round_trip(
            scheme in 0usize..6,
            host in "[a-z0-9.-]{1,12}",
            port in proptest::option::of(1u16..),
            app in "[a-zA-Z0-9_:.-]{1,8}(/[a-zA-Z0-9_.-]{1,8}){0,2}(\\?[a-z]=[a-z0-9/= ]{0,4})?",
            stream in "[a-zA-Z0-9_:./ -]{0,10}(\\?[a-z]=[a-z0-9/=]{0,6})?",
            user in proptest::option::of("\\PC{1,8}"),
            pass in proptest::option::of("\\PC{0,8}"),
        ) {
            let built = RtmpUrl {
                scheme: Scheme::ALL[scheme],
                host,
                port,
                app,
                stream,
                username: user,
                password: pass,
                options: Vec::new(),
            };
            let text = built.to_string();
            let parsed = RtmpUrl::parse(&text).map_err(|e| proptest::test_runner::TestCaseError::fail(format!("{text}: {e}")))?;
            proptest::prop_assert_eq!(parsed, built, "{}", text);
        }
    }

    #[test]
    fn reconnect_tc_urls_resolve_against_the_current_url() {
        let url: RtmpUrl = "rtmp://u:p@origin:1935/live/key?x=1".parse().unwrap();
        let abs = url.resolve_tc_url("rtmps://edge.example:443/app2").unwrap();
        assert_eq!(
            (
                abs.scheme,
                abs.host.as_str(),
                abs.port,
                abs.app.as_str(),
                abs.stream.as_str()
            ),
            (Scheme::Rtmps, "edge.example", Some(443), "app2", "key?x=1")
        );
        assert_eq!(abs.username.as_deref(), Some("u"));
        let rel = url.resolve_tc_url("//192.0.2.7/live").unwrap();
        assert_eq!(
            (rel.scheme, rel.host.as_str(), rel.port),
            (Scheme::Rtmp, "192.0.2.7", None)
        );
        let path = url.resolve_tc_url("/other/").unwrap();
        assert_eq!(
            (
                path.host.as_str(),
                path.port,
                path.app.as_str(),
                path.stream.as_str()
            ),
            ("origin", Some(1935), "other", "key?x=1")
        );
        assert!(url.resolve_tc_url("gopher://x/y").is_err());
    }
}
