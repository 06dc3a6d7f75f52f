//! A [`Stream`] as tokio's `AsyncRead` and `AsyncWrite`, for protocol
//! crates written against those traits (the `h2` crate). Only the traits:
//! no tokio runtime, reactor or timer is involved; wakers are this
//! runtime's.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{ReadBuffer, Stream};

/// A stream, and the bytes already read from it, read first.
pub struct AsyncStream {
    stream: Stream,
    ahead: ReadBuffer,
}

impl AsyncStream {
    /// `stream`, whose reads start with what `ahead` holds.
    pub fn new(stream: Stream, ahead: ReadBuffer) -> AsyncStream {
        AsyncStream { stream, ahead }
    }

    /// The stream beneath.
    pub fn stream(&self) -> &Stream {
        &self.stream
    }
}

impl AsyncRead for AsyncStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.ahead.has_pending() {
            let pending = this.ahead.pending();
            let n = pending.len().min(buf.remaining());
            buf.put_slice(&pending[..n]);
            this.ahead.consume(n);
            this.ahead.release_if_empty();
            return Poll::Ready(Ok(()));
        }
        let got = this.stream.poll_read(cx, buf.initialize_unfilled());
        match got {
            Poll::Ready(Ok(n)) => {
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for AsyncStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.stream.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.stream.poll_flush(cx) {
            Poll::Ready(_) => Poll::Ready(self.stream.shutdown_write()),
            Poll::Pending => Poll::Pending,
        }
    }
}
