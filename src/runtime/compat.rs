//! A [`Stream`] as tokio's `AsyncRead` and `AsyncWrite`, for protocol
//! crates written against those traits (the `h2` crate). Only the traits:
//! no tokio runtime, reactor or timer is involved; wakers are this
//! runtime's.

use std::cell::RefCell;
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
        // Read into a scratch buffer zeroed once per thread, then copy
        // what came: `buf` is uninitialised, and zeroing the whole of it
        // on every read (h2 offers 8 KiB and more) cost a tenth of an
        // HTTP/2 request's instructions; what a read brings is far less.
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let want = buf.remaining().min(scratch.len());
            match this.stream.poll_read(cx, &mut scratch[..want]) {
                Poll::Ready(Ok(n)) => {
                    buf.put_slice(&scratch[..n]);
                    Poll::Ready(Ok(()))
                }
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            }
        })
    }
}

/// Bytes one read of an [`AsyncStream`] brings at most.
const SCRATCH_SIZE: usize = 16 * 1024;

thread_local! {
    /// Where an [`AsyncStream`] reads before copying into the caller's
    /// uninitialised buffer.
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0u8; SCRATCH_SIZE].into_boxed_slice());
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
