//! The HTTP side, on one port: the player page, WHEP, the HLS files and the stats line.
//!
//! | request | answer |
//! |---|---|
//! | `GET /` | the page: a WebRTC player and an HLS player side by side, and the stats line |
//! | `POST /APP/STREAM/whep` (`application/sdp`) | 201, `Location: /APP/STREAM/whep/ID`, the answer; 400 not SDP, 404 no such stream, 409 not live, 415 not `application/sdp`, 422 no H.264, 503 full, 500 webrtcbin failed |
//! | `PATCH /APP/STREAM/whep/ID` (`application/trickle-ice-sdpfrag`) | 204, candidates added; 422 for an ICE restart (not supported); 404 unknown session |
//! | `DELETE /APP/STREAM/whep/ID` | 200; 404 unknown session |
//! | `GET /hls/NAME` | the playlist (`application/vnd.apple.mpegurl`, never cached) or a segment (`video/mp2t`) |
//! | `GET /stats` | the application's stats line, as text |
//! | `POST /report`, `GET /report` | the page's own player statistics (`key=value` lines): kept, and read back |
//!
//! Handlers that wait on GStreamer run on tokio's blocking threads; the runtime is the
//! example's own (two workers), so a slow negotiation never stalls the RTMP side.

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use super::fanout::{Fanout, WhepError};

const PAGE: &str = include_str!("page.html");
const MAX_BODY: usize = 256 * 1024;

/// What the server serves. `streams` maps `"APP/STREAM"` to its fanout.
pub struct Site {
    pub streams: HashMap<String, Fanout>,
    /// Where hlssink2 writes (`playlist.m3u8` and its segments); `None`: no HLS.
    pub hls_dir: Option<PathBuf>,
    /// The application's stats line, shown by the page.
    pub status: Mutex<String>,
    /// The last `POST /report` body.
    pub report: Mutex<String>,
}

impl Site {
    pub fn new(streams: HashMap<String, Fanout>, hls_dir: Option<PathBuf>) -> Site {
        Site {
            streams,
            hls_dir,
            status: Mutex::default(),
            report: Mutex::default(),
        }
    }

    /// The last report from a page, as numbers (`webrtc.framesDecoded` → 243.0).
    pub fn report_values(&self) -> HashMap<String, f64> {
        parse_report(&self.report.lock().unwrap())
    }
}

/// `key=value` lines → numbers; lines whose value is no number are left out.
pub fn parse_report(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once('=')?;
            Some((k.trim().to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// The running server; stops when dropped.
pub struct Server {
    runtime: Option<tokio::runtime::Runtime>,
    pub port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Listens on `addr` (port 0: any free port) and serves `site`.
pub fn serve(addr: &str, site: Arc<Site>) -> Result<Server, String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("http")
        .build()
        .map_err(|e| format!("cannot start the HTTP runtime: {e}"))?;
    let listener =
        std::net::TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    runtime.spawn(async move {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => return eprintln!("http: {e}"),
        };
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let site = site.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| handle(site.clone(), req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(Server {
        runtime: Some(runtime),
        port,
    })
}

type Reply = Response<Full<Bytes>>;

fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, content_type.parse().unwrap());
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*".parse().unwrap());
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        "ETag, Location, Accept-Patch, Link".parse().unwrap(),
    );
    r
}

fn text(status: StatusCode, body: impl Into<String>) -> Reply {
    let mut body = body.into();
    body.push('\n');
    reply(status, "text/plain; charset=utf-8", body)
}

fn with(mut r: Reply, name: header::HeaderName, value: &str) -> Reply {
    if let Ok(v) = value.parse() {
        r.headers_mut().insert(name, v);
    }
    r
}

async fn body(req: Request<Incoming>) -> Result<Bytes, Reply> {
    match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(_) => Err(text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is over {MAX_BODY} bytes"),
        )),
    }
}

fn content_type_is(req: &Request<Incoming>, wanted: &str) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(wanted))
}

async fn handle(site: Arc<Site>, req: Request<Incoming>) -> Result<Reply, Infallible> {
    let path: Vec<String> = req
        .uri()
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let parts: Vec<&str> = path.iter().map(String::as_str).collect();
    // HEAD is GET without the body (hyper leaves the body out).
    let method = match req.method() {
        &Method::HEAD => Method::GET,
        m => m.clone(),
    };
    let r = match (&method, parts.as_slice()) {
        (&Method::OPTIONS, _) => options(),
        (&Method::GET, []) => page(&site),
        (&Method::GET, ["hls", name]) => hls(&site, name),
        (&Method::GET, ["stats"]) => text(StatusCode::OK, site.status.lock().unwrap().clone()),
        (&Method::GET, ["report"]) => text(StatusCode::OK, site.report.lock().unwrap().clone()),
        (&Method::POST, ["report"]) => match body(req).await {
            Ok(b) => {
                *site.report.lock().unwrap() = String::from_utf8_lossy(&b).into_owned();
                text(StatusCode::OK, "thanks")
            }
            Err(r) => r,
        },
        (m, [app, stream, "whep", rest @ ..]) if rest.len() <= 1 => {
            let key = format!("{app}/{stream}");
            match site.streams.get(&key).cloned() {
                None => text(StatusCode::NOT_FOUND, format!("no stream {key}")),
                Some(fanout) => whep(fanout, m, &key, rest.first().copied(), req).await,
            }
        }
        _ => text(StatusCode::NOT_FOUND, "not found"),
    };
    Ok(r)
}

fn options() -> Reply {
    let mut r = text(StatusCode::NO_CONTENT, "");
    *r.body_mut() = Full::new(Bytes::new());
    let r = with(
        r,
        header::ACCESS_CONTROL_ALLOW_METHODS,
        "OPTIONS, GET, POST, PATCH, DELETE",
    );
    let r = with(
        r,
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        "Authorization, Content-Type, If-Match",
    );
    with(
        r,
        header::HeaderName::from_static("accept-post"),
        "application/sdp",
    )
}

fn page(site: &Site) -> Reply {
    let whep = site
        .streams
        .keys()
        .min()
        .map(|k| format!("/{k}/whep"))
        .unwrap_or_default();
    let hls = if site.hls_dir.is_some() {
        "/hls/playlist.m3u8"
    } else {
        ""
    };
    let html = PAGE.replace("{{WHEP}}", &whep).replace("{{HLS}}", hls);
    with(
        reply(StatusCode::OK, "text/html; charset=utf-8", html),
        header::CACHE_CONTROL,
        "no-cache",
    )
}

fn hls(site: &Site, name: &str) -> Reply {
    let Some(dir) = &site.hls_dir else {
        return text(StatusCode::NOT_FOUND, "no HLS here");
    };
    let safe = !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    let (mime, cache) = match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("m3u8") => ("application/vnd.apple.mpegurl", "no-cache, no-store"),
        Some("ts") => ("video/mp2t", "max-age=60"),
        _ => return text(StatusCode::NOT_FOUND, "not an HLS file"),
    };
    if !safe {
        return text(StatusCode::NOT_FOUND, "not an HLS file");
    }
    match std::fs::read(dir.join(name)) {
        Ok(data) => with(
            reply(StatusCode::OK, mime, data),
            header::CACHE_CONTROL,
            cache,
        ),
        Err(_) => with(
            text(StatusCode::NOT_FOUND, format!("{name} is not there (yet)")),
            header::CACHE_CONTROL,
            "no-cache, no-store",
        ),
    }
}

async fn whep(
    fanout: Fanout,
    method: &Method,
    key: &str,
    session: Option<&str>,
    req: Request<Incoming>,
) -> Reply {
    let allow = if session.is_some() {
        "OPTIONS, PATCH, DELETE"
    } else {
        "OPTIONS, POST"
    };
    match (method, session) {
        (&Method::POST, None) => {
            if !content_type_is(&req, "application/sdp") {
                return text(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "a WHEP offer is Content-Type: application/sdp",
                );
            }
            let offer = match body(req).await {
                Ok(b) => String::from_utf8_lossy(&b).into_owned(),
                Err(r) => return r,
            };
            let result = tokio::task::spawn_blocking(move || fanout.add_viewer(&offer)).await;
            match result {
                Ok(Ok((id, answer))) => {
                    let r = reply(StatusCode::CREATED, "application/sdp", answer);
                    let r = with(r, header::LOCATION, &format!("/{key}/whep/{id}"));
                    let r = with(r, header::ETAG, &format!("\"{id}\""));
                    with(
                        r,
                        header::HeaderName::from_static("accept-patch"),
                        "application/trickle-ice-sdpfrag",
                    )
                }
                Ok(Err(e)) => whep_error(e),
                Err(e) => text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("the answer failed: {e}"),
                ),
            }
        }
        (&Method::PATCH, Some(id)) => {
            if !content_type_is(&req, "application/trickle-ice-sdpfrag") {
                return text(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "PATCH takes Content-Type: application/trickle-ice-sdpfrag",
                );
            }
            let restart = req
                .headers()
                .get(header::IF_MATCH)
                .is_some_and(|v| v == "*");
            let frag = match body(req).await {
                Ok(b) => String::from_utf8_lossy(&b).into_owned(),
                Err(r) => return r,
            };
            if restart {
                return text(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "ICE restarts are not supported",
                );
            }
            let id = id.to_string();
            match tokio::task::spawn_blocking(move || fanout.add_candidates(&id, &frag)).await {
                Ok(Some(_)) => {
                    let mut r = text(StatusCode::NO_CONTENT, "");
                    *r.body_mut() = Full::new(Bytes::new());
                    r
                }
                Ok(None) => text(StatusCode::NOT_FOUND, "no such session"),
                Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            }
        }
        (&Method::DELETE, Some(id)) => {
            let id = id.to_string();
            match tokio::task::spawn_blocking(move || fanout.remove_viewer(&id)).await {
                Ok(true) => text(StatusCode::OK, "session ended"),
                Ok(false) => text(StatusCode::NOT_FOUND, "no such session"),
                Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            }
        }
        _ => with(
            text(StatusCode::METHOD_NOT_ALLOWED, format!("allowed: {allow}")),
            header::ALLOW,
            allow,
        ),
    }
}

fn whep_error(e: WhepError) -> Reply {
    match e {
        WhepError::NotLive => with(
            text(
                StatusCode::CONFLICT,
                "nothing is being published on this stream",
            ),
            header::RETRY_AFTER,
            "2",
        ),
        WhepError::BadOffer(m) => text(StatusCode::BAD_REQUEST, m),
        WhepError::Unsupported(m) => text(StatusCode::UNPROCESSABLE_ENTITY, m),
        WhepError::Full => with(
            text(StatusCode::SERVICE_UNAVAILABLE, "too many viewers"),
            header::RETRY_AFTER,
            "10",
        ),
        WhepError::Failed(m) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the answer failed: {m}"),
        ),
    }
}
