//! The no-protocol floor's feeder: the bench file's FLV tags written one write per tag, each
//! at its own timestamp, to a pipe (`fdsrc`) or a loopback TCP connection (`tcpclientsrc`).
//! A player over RTMP gets one message per tag at that pace, so the floor gets the same
//! buffers at the same rate — with no protocol — and the difference is the RTMP source's own
//! work (the TCP floor also keeps the transport, leaving only RTMP's).

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One FLV tag as written: its 11-byte header, body and the 4-byte previous-tag size.
struct Tag {
    at: Duration,
    bytes: Vec<u8>,
}

/// The file header and every tag of an FLV file, or what is wrong with it.
fn read_tags(media: &Path) -> Result<(Vec<u8>, Vec<Tag>), String> {
    let data = std::fs::read(media).map_err(|e| format!("read {}: {e}", media.display()))?;
    if data.len() < 13 || &data[..3] != b"FLV" {
        return Err(format!("{} is not an FLV file", media.display()));
    }
    let header_len = u32::from_be_bytes(data[5..9].try_into().unwrap()) as usize;
    let head = data[..header_len + 4].to_vec();
    let mut tags = Vec::new();
    let mut at = header_len + 4;
    while at + 11 <= data.len() {
        let size = u32::from_be_bytes([0, data[at + 1], data[at + 2], data[at + 3]]) as usize;
        let ts = u32::from_be_bytes([data[at + 7], data[at + 4], data[at + 5], data[at + 6]]);
        let end = at + 11 + size + 4;
        if end > data.len() {
            break;
        }
        tags.push(Tag {
            at: Duration::from_millis(ts.into()),
            bytes: data[at..end].to_vec(),
        });
        at = end;
    }
    if tags.is_empty() {
        return Err(format!("{} has no FLV tags", media.display()));
    }
    Ok((head, tags))
}

/// Writes the tags at their pace until `stop`, the file's end or a failed write (the reader
/// went away).
fn pace(out: &mut dyn Write, head: &[u8], tags: &[Tag], stop: &AtomicBool) {
    if out.write_all(head).is_err() {
        return;
    }
    let start = Instant::now();
    for tag in tags {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        if let Some(wait) = tag.at.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
        if out.write_all(&tag.bytes).is_err() {
            return;
        }
    }
}

/// A running feeder; stops (and its thread ends) when dropped.
pub struct Feeder {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Feeder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Feeds `media` into a new pipe; returns the feeder and the pipe's reading end.
pub fn to_pipe(media: &Path) -> Result<(Feeder, std::io::PipeReader), String> {
    let (head, tags) = read_tags(media)?;
    let (reader, mut writer) = std::io::pipe().map_err(|e| format!("pipe: {e}"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::spawn(move || pace(&mut writer, &head, &tags, &flag));
    Ok((
        Feeder {
            stop,
            thread: Some(thread),
        },
        reader,
    ))
}

/// Feeds `media` to the first connection to a new loopback listener; returns the feeder and
/// the listener's port. Nothing is written before someone connects.
pub fn to_tcp(media: &Path) -> Result<(Feeder, u16), String> {
    let (head, tags) = read_tags(media)?;
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("listener: {e}"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::spawn(move || {
        let mut conn: TcpStream = loop {
            if flag.load(Ordering::Relaxed) {
                return;
            }
            match listener.accept() {
                Ok((c, _)) => break c,
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        };
        if conn.set_nonblocking(false).is_err() || conn.set_nodelay(true).is_err() {
            return;
        }
        pace(&mut conn, &head, &tags, &flag);
    });
    Ok((
        Feeder {
            stop,
            thread: Some(thread),
        },
        port,
    ))
}
