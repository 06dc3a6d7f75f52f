//! `Stream`: a client connection's socket, read and written either directly
//! or through a record layer (a [`Session`], such as TLS), so every layer
//! above uses one type for both. The runtime knows only the sans-I/O
//! interface; what the records mean is the session's business.
//!
//! A secure stream's `write` encrypts at most the session's buffer limit
//! and sends every record before it returns, so a connection holds a
//! bounded amount of ciphertext; its `sendfile` reads the file in pieces
//! into a per-worker scratch buffer (no `sendfile(2)` through user-space
//! encryption).

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::TcpStream as StdStream;
use std::os::unix::fs::FileExt;
use std::task::Waker;

use super::TcpStream;

/// A record layer over a socket: ciphertext in and out on one side,
/// plaintext on the other (a TLS connection after its handshake).
pub trait Session: Send {
    /// Reads ciphertext from `socket` (one read) and processes it. Ok(0)
    /// means the peer closed the socket; a bad record is an error.
    fn read_tls(&mut self, socket: &mut dyn Read) -> io::Result<usize>;
    /// Takes received plaintext: `WouldBlock` when none is buffered, Ok(0)
    /// after the peer's close notice.
    fn read_plain(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    /// Encrypts some of `buf` into the outgoing records; returns how much
    /// was taken (the session bounds what it buffers).
    fn write_plain(&mut self, buf: &[u8]) -> io::Result<usize>;
    /// Whether records wait to be sent.
    fn wants_write(&self) -> bool;
    /// Sends waiting records to `socket` (one write).
    fn write_tls(&mut self, socket: &mut dyn Write) -> io::Result<usize>;
    /// Whether received plaintext is buffered, ready to read.
    fn has_plain(&mut self) -> bool;
    /// Queues a close notice, sent (if the socket takes it) as the stream drops.
    fn close(&mut self);
}

/// Bytes of a file encrypted per step of a secure `sendfile`: four full
/// TLS records, sent in one write.
const FILE_PIECE: usize = 64 * 1024;

thread_local! {
    /// Where a secure `sendfile` reads file pieces: one per worker, never
    /// held across a wait, so memory does not grow with connections.
    static PIECE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A client connection: a non-blocking socket and, for TLS, its session.
pub struct Stream {
    socket: TcpStream,
    session: Option<Box<RefCell<dyn Session>>>,
}

impl Stream {
    /// A stream read and written as is.
    pub fn plain(socket: TcpStream) -> Stream {
        Stream {
            socket,
            session: None,
        }
    }

    /// From now on, reads and writes go through `session` (its handshake done).
    pub fn secure(&mut self, session: Box<RefCell<dyn Session>>) {
        self.session = Some(session);
    }

    /// Whether a session (TLS) sits between the socket and its users.
    pub fn is_secure(&self) -> bool {
        self.session.is_some()
    }

    /// The socket, as the reactor watches it.
    pub fn socket(&self) -> &TcpStream {
        &self.socket
    }

    /// The underlying standard socket (addresses, options).
    pub fn get_ref(&self) -> &StdStream {
        self.socket.get_ref()
    }

    /// Reads some plaintext; 0 means the peer closed.
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(session) = &self.session else {
            return self.socket.read(buf).await;
        };
        loop {
            if let Some(done) = buffered_plain(session, buf) {
                return done;
            }
            let got = self
                .socket
                .read_with(|mut socket| session.borrow_mut().read_tls(&mut socket))
                .await;
            let got = self.after_read(session, got)?;
            self.send_records(session).await?;
            if got == 0 {
                return closed(session.borrow_mut().read_plain(buf));
            }
        }
    }

    /// Reads what has arrived without waiting: `WouldBlock` if nothing has.
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(session) = &self.session else {
            return self.socket.try_read(buf);
        };
        loop {
            if let Some(done) = buffered_plain(session, buf) {
                return done;
            }
            let got = self
                .socket
                .try_read_with(|mut socket| session.borrow_mut().read_tls(&mut socket));
            let got = self.after_read(session, got)?;
            // Records the peer's data called for (a key update): sent now
            // if the socket takes them, else with the next write.
            self.try_send_records(session);
            if got == 0 {
                return closed(session.borrow_mut().read_plain(buf));
            }
        }
    }

    /// A failed record read still sends the alert the session queued.
    fn after_read(
        &self,
        session: &RefCell<dyn Session>,
        got: io::Result<usize>,
    ) -> io::Result<usize> {
        if matches!(&got, Err(e) if e.kind() == io::ErrorKind::InvalidData) {
            self.try_send_records(session);
        }
        got
    }

    /// Writes some of `buf`, parking while the socket is not writable;
    /// returns how many bytes were taken (and, for TLS, sent).
    pub async fn write(&self, buf: &[u8]) -> io::Result<usize> {
        let Some(session) = &self.session else {
            return self.socket.write(buf).await;
        };
        let taken = session.borrow_mut().write_plain(buf)?;
        self.send_records(session).await?;
        Ok(taken)
    }

    /// Writes all of `buf`, parking as needed; `WriteZero` if a write
    /// accepts nothing.
    pub async fn write_all(&self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let n = self.write(buf).await?;
            super::io::written(&mut buf, n)?;
        }
        Ok(())
    }

    /// Writes like `write`; on a plain socket with MSG_MORE (a head that a
    /// `sendfile` body follows).
    pub async fn write_more(&self, buf: &[u8]) -> io::Result<usize> {
        match &self.session {
            None => self.socket.write_more(buf).await,
            Some(_) => self.write(buf).await,
        }
    }

    /// Sends up to `count` bytes of `file` from `*offset`, advancing it:
    /// with sendfile(2) on a plain socket; through the session in pieces
    /// of at most 64 KiB otherwise.
    pub async fn sendfile(&self, file: &File, offset: &mut u64, count: usize) -> io::Result<usize> {
        let Some(session) = &self.session else {
            return self.socket.sendfile(file, offset, count).await;
        };
        let want = count.min(FILE_PIECE);
        let taken = PIECE.with(|piece| -> io::Result<usize> {
            let mut piece = piece.borrow_mut();
            if piece.len() < FILE_PIECE {
                piece.resize(FILE_PIECE, 0);
            }
            let read = file.read_at(&mut piece[..want], *offset)?;
            let mut taken = 0;
            let mut session = session.borrow_mut();
            while taken < read {
                match session.write_plain(&piece[taken..read])? {
                    0 => break,
                    n => taken += n,
                }
            }
            Ok(taken)
        })?;
        *offset += taken as u64;
        self.send_records(session).await?;
        Ok(taken)
    }

    /// True if a read may find something (bytes arrived, or plaintext is
    /// buffered); otherwise leaves `waker` to be woken when readable.
    pub fn arm_readable(&self, waker: &Waker) -> io::Result<bool> {
        if let Some(session) = &self.session {
            if session.borrow_mut().has_plain() {
                return Ok(true);
            }
        }
        self.socket.arm_readable(waker)
    }

    /// Waits until a read may find something: plaintext buffered, or the
    /// socket readable.
    pub async fn readable(&self) -> io::Result<()> {
        if let Some(session) = &self.session {
            if session.borrow_mut().has_plain() {
                return Ok(());
            }
        }
        self.socket.readable().await
    }

    /// Sends every waiting record, parking while the socket is full.
    async fn send_records(&self, session: &RefCell<dyn Session>) -> io::Result<()> {
        while session.borrow().wants_write() {
            let sent = self
                .socket
                .write_with(|mut socket| session.borrow_mut().write_tls(&mut socket))
                .await?;
            if sent == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
        }
        Ok(())
    }

    /// Ends the sending side: a session's close notice first (if the
    /// socket takes it now), then a FIN. Reads still work, so what the peer
    /// is still sending can be read and dropped (a lingering close).
    pub fn shutdown_write(&self) -> io::Result<()> {
        if let Some(session) = &self.session {
            session.borrow_mut().close();
            self.try_send_records(session);
        }
        self.socket.get_ref().shutdown(std::net::Shutdown::Write)
    }

    /// Whether the peer has sent bytes not read yet: one peek,
    /// without waiting.
    pub fn has_unread(&self) -> bool {
        matches!(self.socket.get_ref().peek(&mut [0u8; 1]), Ok(n) if n > 0)
    }

    /// Reads raw bytes off the socket, past any session, to be dropped:
    /// after [`Self::shutdown_write`] nothing the peer sends is answered.
    pub async fn read_to_discard(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.socket.read(buf).await
    }

    /// Sends what waiting records the socket takes now, without parking.
    fn try_send_records(&self, session: &RefCell<dyn Session>) {
        let mut session = session.borrow_mut();
        while session.wants_write() {
            match session.write_tls(&mut self.socket.get_ref()) {
                Ok(n) if n > 0 => {}
                _ => break,
            }
        }
    }
}

/// Plaintext the session already holds (`None`: nothing buffered, read
/// more records).
fn buffered_plain(session: &RefCell<dyn Session>, buf: &mut [u8]) -> Option<io::Result<usize>> {
    match session.borrow_mut().read_plain(buf) {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
        done => Some(done),
    }
}

/// What a read after the peer's close returns: the plaintext still
/// buffered, else 0 (closed), also when the peer sent no close notice.
fn closed(last: io::Result<usize>) -> io::Result<usize> {
    match last {
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::UnexpectedEof
            ) =>
        {
            Ok(0)
        }
        other => other,
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        // A close notice, if the socket takes it at once: a client can then
        // tell the end of the stream from a cut connection.
        if let Some(session) = &self.session {
            session.borrow_mut().close();
            self.try_send_records(session);
        }
    }
}
