//! RTMPT: RTMP tunnelled through HTTP POST requests (`rtmpt://`, `rtmpts://`, `rtmpte://`).
//!
//! Both roles turn a tunnel into one [`TunnelStream`], an ordinary `AsyncRead + AsyncWrite`
//! byte stream, so the RTMP session code above never knows it is tunnelled. RTMPTE needs
//! nothing extra here: its RC4 layer is applied by the engine to the payload bytes, and the
//! HTTP framing and the polling byte are never encrypted.
//!
//! Behind a `TunnelStream` runs a task (client) or the HTTP handlers (server) holding the far
//! end of a `tokio::io::duplex` pipe. When that side fails, it records why before it lets go
//! of the pipe; the stream then reports that reason as an I/O error instead of a bare EOF.

pub mod client;
pub mod server;

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};

pub use client::{TunnelClientOptions, TunnelError};
pub use server::{AcceptedTunnel, TunnelServer, TunnelServerConfig};

pub(crate) static CAT: std::sync::LazyLock<gst::DebugCategory> = std::sync::LazyLock::new(|| {
    gst::DebugCategory::new(
        "rsrtmp-tunnel",
        gst::DebugColorFlags::empty(),
        Some("rsrtmp RTMPT (HTTP tunnel) client and server"),
    )
});

/// Bytes the duplex pipe between the stream and its tunnel task holds in each direction.
const PIPE_CAPACITY: usize = 256 * 1024;

/// MIME type of every RTMPT request and response body.
pub const CONTENT_TYPE: &str = "application/x-fcs";

/// Why the far side of a tunnel stream stopped, shared between the stream and its task.
#[derive(Debug, Default)]
struct Failure(Mutex<Option<(io::ErrorKind, String)>>);

impl Failure {
    fn set(&self, kind: io::ErrorKind, reason: impl Into<String>) {
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        // The first reason is the real one; later ones are consequences.
        if slot.is_none() {
            *slot = Some((kind, reason.into()));
        }
    }

    fn get(&self) -> Option<io::Error> {
        let slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        slot.as_ref()
            .map(|(kind, reason)| io::Error::new(*kind, reason.clone()))
    }
}

/// One RTMPT session seen as a plain byte stream: what is written goes to the peer in
/// `send` bodies, what the peer sends comes out of reads. Dropping it (or shutting down its
/// write side) ends the session.
#[derive(Debug)]
pub struct TunnelStream {
    io: DuplexStream,
    failure: Arc<Failure>,
    session_id: String,
}

impl TunnelStream {
    fn pair(session_id: String) -> (TunnelStream, DuplexStream, Arc<Failure>) {
        let (near, far) = tokio::io::duplex(PIPE_CAPACITY);
        let failure = Arc::new(Failure::default());
        let stream = TunnelStream {
            io: near,
            failure: failure.clone(),
            session_id,
        };
        (stream, far, failure)
    }

    /// The RTMPT session id the server assigned.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }
}

impl AsyncRead for TunnelStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            // End of stream: say why, if the tunnel failed rather than closed.
            Poll::Ready(Ok(())) if buf.filled().len() == before && buf.remaining() > 0 => {
                match this.failure.get() {
                    Some(e) => Poll::Ready(Err(e)),
                    None => Poll::Ready(Ok(())),
                }
            }
            other => other,
        }
    }
}

impl AsyncWrite for TunnelStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write(cx, buf) {
            Poll::Ready(Err(e)) => Poll::Ready(Err(this.failure.get().unwrap_or(e))),
            other => other,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// A stream with some bytes already read from it put back in front, for a listener that had
/// to read (not peek) the first bytes to learn what the connection is — e.g. the first
/// decrypted byte of a TLS connection, which tells `rtmps` from `rtmpts`.
#[derive(Debug)]
pub struct Rewind<IO> {
    prefix: Bytes,
    io: IO,
}

impl<IO> Rewind<IO> {
    /// `prefix` is returned by reads before anything from `io`.
    pub fn new(prefix: Bytes, io: IO) -> Self {
        Rewind { prefix, io }
    }

    /// The wrapped stream (the prefix bytes not yet read are lost).
    pub fn into_inner(self) -> IO {
        self.io
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Rewind<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix[..n]);
            this.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Rewind<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// Reads what `io` has ready right now into `out` (at most `limit` bytes in total in `out`)
/// without waiting. Returns `Ok(true)` when `io` reached end of stream.
async fn read_ready<R: AsyncRead + Unpin>(
    io: &mut R,
    out: &mut bytes::BytesMut,
    limit: usize,
) -> io::Result<bool> {
    let mut chunk = [0u8; 16 * 1024];
    while out.len() < limit {
        let want = chunk.len().min(limit - out.len());
        let mut buf = ReadBuf::new(&mut chunk[..want]);
        let polled = std::future::poll_fn(|cx| match Pin::new(&mut *io).poll_read(cx, &mut buf) {
            Poll::Pending => Poll::Ready(None),
            Poll::Ready(r) => Poll::Ready(Some(r)),
        })
        .await;
        match polled {
            None => return Ok(false),
            Some(Err(e)) => return Err(e),
            Some(Ok(())) if buf.filled().is_empty() => return Ok(true),
            Some(Ok(())) => out.extend_from_slice(buf.filled()),
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn rewind_replays_the_prefix_first() {
        let (a, mut b) = tokio::io::duplex(64);
        b.write_all(b" world").await.unwrap();
        drop(b);
        let mut r = Rewind::new(Bytes::from_static(b"hello"), a);
        let mut s = String::new();
        r.read_to_string(&mut s).await.unwrap();
        assert_eq!(s, "hello world");
    }

    #[tokio::test]
    async fn a_failed_tunnel_reports_its_reason_at_eof() {
        let (mut stream, far, failure) = TunnelStream::pair("abc".into());
        failure.set(io::ErrorKind::TimedOut, "session abc expired");
        drop(far);
        let mut buf = [0u8; 8];
        let err = stream.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(err.to_string(), "session abc expired");
        let err = stream.write_all(b"x").await.unwrap_err();
        assert_eq!(err.to_string(), "session abc expired");
    }

    #[tokio::test]
    async fn read_ready_never_waits() {
        let (mut a, mut b) = tokio::io::duplex(64);
        let mut out = bytes::BytesMut::new();
        assert!(!read_ready(&mut a, &mut out, 100).await.unwrap());
        assert!(out.is_empty());
        b.write_all(b"0123456789").await.unwrap();
        assert!(!read_ready(&mut a, &mut out, 4).await.unwrap());
        assert_eq!(&out[..], b"0123");
        drop(b);
        assert!(read_ready(&mut a, &mut out, 100).await.unwrap());
        assert_eq!(&out[..], b"0123456789");
    }
}
