//! TCP sockets as the drivers use them: shared between a connection's task and a fan-out hub,
//! and written with `MSG_NOSIGNAL` (server connections, and client ones under TLS or the tunnel).
//!
//! A write to a connection the peer has reset raises SIGPIPE unless the call says otherwise, and
//! a host such as `gst-launch-1.0` leaves SIGPIPE at its default action, which kills the
//! process: one player hanging up would take the whole pipeline down. `writev(2)` (what tokio's
//! vectored writes use) has no flag for it, so every write here is `sendmsg(2)` with
//! `MSG_NOSIGNAL` and a reset peer is an `EPIPE` error on its own connection.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use socket2::SockRef;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

use crate::net::server::hub::DirectSocket;

/// A connected TCP socket; clones share it.
#[derive(Clone)]
pub struct Tcp(Arc<TcpStream>);

impl Tcp {
    pub fn new(stream: TcpStream) -> Tcp {
        Tcp(Arc::new(stream))
    }

    /// Writes what the socket takes now, through tokio (so that a `WouldBlock` clears the
    /// readiness [`writable`](Self::writable) waits for).
    pub fn try_send_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.0
            .try_io(Interest::WRITABLE, || send_vectored(&self.0, bufs))
    }

    /// Waits until the socket may take more.
    pub async fn writable(&self) -> io::Result<()> {
        self.0.writable().await
    }
}

fn send_vectored(sock: &TcpStream, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    SockRef::from(sock).send_vectored_with_flags(bufs, libc::MSG_NOSIGNAL)
}

impl DirectSocket for Tcp {
    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        // Straight to the kernel: this is the hub's per-player hot path. A `WouldBlock` here
        // leaves tokio's readiness as it was; the player's task retries through
        // `try_send_vectored`, which clears it, before it waits.
        send_vectored(&self.0, bufs)
    }

    fn try_write_vectored_then_wait(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.try_send_vectored(bufs)
    }
}

impl AsyncRead for Tcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            ready!(self.0.poll_read_ready(cx))?;
            match self.0.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for Tcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.0.poll_write_ready(cx))?;
            match self.try_send_vectored(bufs) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                r => return Poll::Ready(r),
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(SockRef::from(&*self.0).shutdown(std::net::Shutdown::Write))
    }
}
