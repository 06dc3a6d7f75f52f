//! `Stream`'s poll-based reads and writes, for callers that are futures
//! written by hand (tokio's I/O traits in `compat.rs`).

use std::cell::RefCell;
use std::io::{self, Write};
use std::task::{Context, Poll};

use super::{buffered_plain, closed, read_tls, Session, Stream, Transport};

impl Stream {
    /// Polls one read of plaintext, for callers that are futures by hand
    /// (the tokio I/O traits); `Ready(Ok(0))`: the peer closed.
    pub fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let socket = match &self.transport {
            Transport::Socket(socket) => socket,
            Transport::Pipe(pipe) => return pipe.end.poll_read(cx, buf),
        };
        let Some(session) = &self.session else {
            return socket.poll_read(cx, buf);
        };
        loop {
            if let Some(done) = buffered_plain(session, buf) {
                return Poll::Ready(done);
            }
            let got = match socket.poll_read_short(cx, |s| read_tls(session, s)) {
                Poll::Ready(got) => got.map(|(n, _)| n),
                Poll::Pending => return Poll::Pending,
            };
            let got = self.after_read(session, got)?;
            self.try_send_records(session);
            if got == 0 {
                return Poll::Ready(closed(session.borrow_mut().read_plain(buf)));
            }
        }
    }

    /// Polls one write: how much of `buf` was taken. Through a session the
    /// records go out as the socket takes them; [`Self::poll_flush`] sends
    /// the rest.
    pub fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let socket = match &self.transport {
            Transport::Socket(socket) => socket,
            Transport::Pipe(pipe) => return pipe.end.poll_write(cx, buf),
        };
        let Some(session) = &self.session else {
            return socket.poll_write_with(cx, |mut io| io.write(buf));
        };
        loop {
            let taken = session.borrow_mut().write_plain(buf)?;
            if taken > 0 || buf.is_empty() {
                // Progress now if the socket takes it; the rest on flush.
                let _ = self.poll_send_records(cx, session);
                return Poll::Ready(Ok(taken));
            }
            match self.poll_send_records(cx, session) {
                Poll::Ready(Ok(())) => {}
                other => return other.map(|r| r.map(|()| 0)),
            }
        }
    }

    /// Encrypts all of `parts` into the session's outgoing records at once,
    /// without sending them ([`Self::poll_flush`] does) and past the bound
    /// [`Self::poll_write`] keeps: the caller bounds what it queues. None
    /// without a session (nothing is written). Saves a caller the copy of
    /// large payloads into a buffer of its own before the session's.
    pub fn write_plain_all(&self, parts: &[&[u8]]) -> Option<io::Result<()>> {
        let session = self.session.as_ref().filter(|_| !self.is_pipe())?;
        let mut session = session.borrow_mut();
        Some(session.write_plain_all(parts))
    }

    /// Polls until every record written is sent (nothing to do for a
    /// plain socket or a pipe).
    pub fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &self.session {
            Some(session) if !self.is_pipe() => self.poll_send_records(cx, session),
            _ => Poll::Ready(Ok(())),
        }
    }

    fn poll_send_records(
        &self,
        cx: &mut Context<'_>,
        session: &RefCell<dyn Session>,
    ) -> Poll<io::Result<()>> {
        let socket = self.raw()?;
        while session.borrow().wants_write() {
            let sent = socket
                .poll_write_with(cx, |mut socket| session.borrow_mut().write_tls(&mut socket));
            match sent {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}
