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
use std::future::poll_fn;
use std::io::{self, Read, Write};
use std::net::TcpStream as StdStream;
use std::os::unix::fs::FileExt;
use std::task::{Context, Poll, Waker};

use super::pipe::PipeEnd;
use super::pooled::PooledBox;
use super::TcpStream;

mod poll;

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
    /// Encrypts all of `parts`, in order, into the outgoing records, past
    /// the bound `write_plain` keeps: for a caller that bounds what it
    /// queues itself. The parts may share records.
    fn write_plain_all(&mut self, parts: &[&[u8]]) -> io::Result<()> {
        for mut part in parts.iter().copied() {
            while !part.is_empty() {
                match self.write_plain(part)? {
                    0 => return Err(io::ErrorKind::WouldBlock.into()),
                    n => part = &part[n..],
                }
            }
        }
        Ok(())
    }
    /// Whether records wait to be sent.
    fn wants_write(&self) -> bool;
    /// Sends waiting records to `socket` (one write).
    fn write_tls(&mut self, socket: &mut dyn Write) -> io::Result<usize>;
    /// Whether received plaintext is buffered, ready to read.
    fn has_plain(&mut self) -> bool;
    /// Queues a close notice, sent (if the socket takes it) as the stream drops.
    fn close(&mut self);
    /// The host name the client asked for in its handshake (TLS SNI), if any.
    fn server_name(&self) -> Option<&str> {
        None
    }
}

/// Bytes of a file encrypted per step of a secure `sendfile`: four full
/// TLS records, sent in one write.
const FILE_PIECE: usize = 64 * 1024;

thread_local! {
    /// Where a secure `sendfile` reads file pieces: one per worker, never
    /// held across a wait, so memory does not grow with connections.
    static PIECE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A client connection: a non-blocking socket and, for TLS, its session;
/// or one end of an in-memory pipe standing in for a connection (a
/// request multiplexed on another one, such as an HTTP/2 stream).
pub struct Stream {
    transport: Transport,
    /// Boxed twice: a thin pointer, so that a `Conn` (moved between
    /// queues on every keep-alive request) stays 128 bytes, moved inline
    /// rather than by a call to memcpy; the transport's enum tag took the
    /// eight bytes a fat pointer needs. One more load per TLS operation.
    session: Option<Box<Box<RefCell<dyn Session>>>>,
}

enum Transport {
    Socket(TcpStream),
    /// Boxed: a socket stream, the common case, stays two words. The box
    /// is pooled: an HTTP/2 stream makes and drops one per request.
    Pipe(PooledBox<PipeStream>),
}

/// A pipe standing in for a connection, and what the real connection
/// beneath it says of the client.
struct PipeStream {
    end: PipeEnd,
    peer: Option<std::net::SocketAddr>,
    secure: bool,
    /// The SNI name of the connection beneath, if it had one.
    server_name: Option<std::sync::Arc<str>>,
}

impl Stream {
    /// A stream read and written as is.
    pub fn plain(socket: TcpStream) -> Stream {
        Stream {
            transport: Transport::Socket(socket),
            session: None,
        }
    }

    /// A stream over one end of a pipe, for a connection whose client is
    /// `peer` and which is `secure` (TLS) or not.
    pub fn pipe(end: PipeEnd, peer: Option<std::net::SocketAddr>, secure: bool) -> Stream {
        Stream {
            transport: Transport::Pipe(PooledBox::new(PipeStream {
                end,
                peer,
                secure,
                server_name: None,
            })),
            session: None,
        }
    }

    /// A pipe's stream that answers [`Self::with_server_name`] with `name`
    /// (the SNI name of the connection it stands in for); a socket's
    /// stream is returned as it is (its session knows its own).
    pub fn naming(mut self, name: Option<std::sync::Arc<str>>) -> Stream {
        if let Transport::Pipe(pipe) = &mut self.transport {
            pipe.server_name = name;
        }
        self
    }

    /// Calls `f` with the host name the client gave in its TLS handshake
    /// (SNI): the session's, or for a pipe the one of the connection it
    /// stands in for; `None` without TLS or without SNI.
    pub fn with_server_name<R>(&self, f: impl FnOnce(Option<&str>) -> R) -> R {
        match (&self.transport, &self.session) {
            (Transport::Pipe(pipe), _) => f(pipe.server_name.as_deref()),
            (Transport::Socket(_), Some(session)) => match session.try_borrow() {
                Ok(session) => f(session.server_name()),
                Err(_) => f(None),
            },
            (Transport::Socket(_), None) => f(None),
        }
    }

    /// The pipe end, if this stream is a pipe.
    fn pipe_end(&self) -> Option<&PipeEnd> {
        match &self.transport {
            Transport::Pipe(pipe) => Some(&pipe.end),
            Transport::Socket(_) => None,
        }
    }

    /// Whether this stream is a pipe standing in for a connection.
    pub fn is_pipe(&self) -> bool {
        matches!(self.transport, Transport::Pipe(_))
    }

    /// Whether this stream is a pipe whose other end is gone: no one is
    /// left to read what is written (an HTTP/2 stream the client reset).
    pub fn is_abandoned(&self) -> bool {
        self.pipe_end().is_some_and(PipeEnd::is_alone)
    }

    /// The client's address: the socket's peer, or the one the pipe's
    /// connection was opened by.
    pub fn peer_addr(&self) -> Option<std::net::SocketAddr> {
        match &self.transport {
            Transport::Socket(socket) => socket.get_ref().peer_addr().ok(),
            Transport::Pipe(pipe) => pipe.peer,
        }
    }

    /// The address the connection came in on: the socket's own (None for
    /// a pipe).
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.get_ref().and_then(|s| s.local_addr().ok())
    }

    /// Writes what the socket takes at once, without parking (a last word
    /// before a close).
    pub fn write_now(&self, buf: &[u8]) -> io::Result<usize> {
        match &self.transport {
            Transport::Socket(socket) => (&mut socket.get_ref()).write(buf),
            Transport::Pipe(pipe) => pipe.end.try_write(buf),
        }
    }

    /// Whether the peer has sent bytes not read yet, without waiting (one
    /// peek on a socket).
    pub fn has_unread(&self) -> bool {
        match &self.transport {
            Transport::Socket(socket) => {
                matches!(socket.get_ref().peek(&mut [0u8; 1]), Ok(n) if n > 0)
            }
            Transport::Pipe(pipe) => pipe.end.has_unread(),
        }
    }

    /// From now on, reads and writes go through `session` (its handshake done).
    pub fn secure(&mut self, session: Box<RefCell<dyn Session>>) {
        self.session = Some(Box::new(session));
    }

    /// Whether a session (TLS) sits between the socket and its users.
    pub fn is_secure(&self) -> bool {
        match &self.transport {
            Transport::Socket(_) => self.session.is_some(),
            Transport::Pipe(pipe) => pipe.secure,
        }
    }

    /// The socket, as the reactor watches it; None for a pipe.
    pub fn socket(&self) -> Option<&TcpStream> {
        match &self.transport {
            Transport::Socket(socket) => Some(socket),
            Transport::Pipe(_) => None,
        }
    }

    /// The underlying standard socket (addresses, options); None for a pipe.
    pub fn get_ref(&self) -> Option<&StdStream> {
        self.socket().map(TcpStream::get_ref)
    }

    /// The socket beneath, which a pipe does not have: every caller
    /// handles pipes first.
    fn raw(&self) -> io::Result<&TcpStream> {
        self.socket()
            .ok_or_else(|| io::Error::new(io::ErrorKind::Unsupported, "not a socket"))
    }

    /// Reads some plaintext; 0 means the peer closed.
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let socket = match &self.transport {
            Transport::Socket(socket) => socket,
            Transport::Pipe(pipe) => return pipe.end.read(buf).await,
        };
        let Some(session) = &self.session else {
            return socket.read(buf).await;
        };
        loop {
            if let Some(done) = buffered_plain(session, buf) {
                return done;
            }
            let got = poll_fn(|cx| socket.poll_read_short(cx, |s| read_tls(session, s)))
                .await
                .map(|(n, _)| n);
            let got = self.after_read(session, got)?;
            self.send_records(session).await?;
            if got == 0 {
                return closed(session.borrow_mut().read_plain(buf));
            }
        }
    }

    /// Reads what has arrived without waiting: `WouldBlock` if nothing has.
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let socket = match &self.transport {
            Transport::Socket(socket) => socket,
            Transport::Pipe(pipe) => {
                let waker = Waker::noop();
                return match pipe.end.poll_read(&mut Context::from_waker(waker), buf) {
                    Poll::Ready(done) => done,
                    Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
                };
            }
        };
        let Some(session) = &self.session else {
            return socket.try_read(buf);
        };
        loop {
            if let Some(done) = buffered_plain(session, buf) {
                return done;
            }
            let got = socket
                .try_read_short(|s| read_tls(session, s))
                .map(|(n, _)| n);
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
        let socket = match &self.transport {
            Transport::Socket(socket) => socket,
            Transport::Pipe(pipe) => return pipe.end.write(buf).await,
        };
        let Some(session) = &self.session else {
            return socket.write(buf).await;
        };
        let taken = session.borrow_mut().write_plain(buf)?;
        self.send_records(session).await?;
        Ok(taken)
    }

    /// One poll of what `write` (`more`: `write_more`) does, made in
    /// place with no future of its own; None under a session (TLS),
    /// whose write is one.
    pub fn poll_write_direct(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
        more: bool,
    ) -> Option<Poll<io::Result<usize>>> {
        match (&self.transport, &self.session) {
            (Transport::Pipe(pipe), _) => Some(pipe.end.poll_write(cx, buf)),
            (Transport::Socket(socket), None) if more => Some(socket.poll_write_more(cx, buf)),
            (Transport::Socket(socket), None) => {
                Some(socket.poll_write_with(cx, |mut io| io.write(buf)))
            }
            (Transport::Socket(_), Some(_)) => None,
        }
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
        match (&self.transport, &self.session) {
            (Transport::Socket(socket), None) => socket.write_more(buf).await,
            _ => self.write(buf).await,
        }
    }

    /// Sends up to `count` bytes of `file` from `*offset`, advancing it:
    /// with sendfile(2) on a plain socket; through the session in pieces
    /// of at most 64 KiB otherwise.
    pub async fn sendfile(&self, file: &File, offset: &mut u64, count: usize) -> io::Result<usize> {
        let session = match (&self.transport, &self.session) {
            (Transport::Socket(socket), None) => return socket.sendfile(file, offset, count).await,
            (Transport::Pipe(pipe), _) => return pipe_file(&pipe.end, file, offset, count).await,
            (Transport::Socket(_), Some(session)) => session,
        };
        let taken = with_piece(count, |piece| -> io::Result<usize> {
            let read = file.read_at(piece, *offset)?;
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
        if let Some(end) = self.pipe_end() {
            return Ok(end.arm_readable(waker));
        }
        if let Some(session) = &self.session {
            if session.borrow_mut().has_plain() {
                return Ok(true);
            }
        }
        self.raw()?.arm_readable(waker)
    }

    /// Waits until a read may find something: plaintext buffered, or the
    /// socket readable.
    pub async fn readable(&self) -> io::Result<()> {
        if let Some(end) = self.pipe_end() {
            std::future::poll_fn(|cx| match end.arm_readable(cx.waker()) {
                true => Poll::Ready(()),
                false => Poll::Pending,
            })
            .await;
            return Ok(());
        }
        if let Some(session) = &self.session {
            if session.borrow_mut().has_plain() {
                return Ok(());
            }
        }
        self.raw()?.readable().await
    }

    /// Sends every waiting record, parking while the socket is full.
    async fn send_records(&self, session: &RefCell<dyn Session>) -> io::Result<()> {
        let socket = self.raw()?;
        while session.borrow().wants_write() {
            let sent = socket
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
        if let Some(end) = self.pipe_end() {
            end.shutdown_write();
            return Ok(());
        }
        if let Some(session) = &self.session {
            session.borrow_mut().close();
            self.try_send_records(session);
        }
        self.raw()?.get_ref().shutdown(std::net::Shutdown::Write)
    }

    /// Reads raw bytes off the socket, past any session, to be dropped:
    /// after [`Self::shutdown_write`] nothing the peer sends is answered.
    pub async fn read_to_discard(&self, buf: &mut [u8]) -> io::Result<usize> {
        match &self.transport {
            Transport::Socket(socket) => socket.read(buf).await,
            Transport::Pipe(pipe) => pipe.end.read(buf).await,
        }
    }

    /// Sends what waiting records the socket takes now, without parking.
    fn try_send_records(&self, session: &RefCell<dyn Session>) {
        let Ok(socket) = self.raw() else { return };
        let mut session = session.borrow_mut();
        while session.wants_write() {
            match session.write_tls(&mut socket.get_ref()) {
                Ok(n) if n > 0 => {}
                _ => break,
            }
        }
    }
}

/// One read of records from `socket` into `session`, and whether it was
/// short (the socket gave fewer bytes than the session asked for): the
/// socket is then empty, and the next read waits for an event instead of
/// a syscall that could only say `WouldBlock`. Half the reads of a busy
/// HTTP/2 connection were such syscalls.
fn read_tls(session: &RefCell<dyn Session>, socket: &StdStream) -> io::Result<(usize, bool)> {
    let mut noting = Noting {
        socket,
        short: false,
    };
    let n = session.borrow_mut().read_tls(&mut noting)?;
    Ok((n, noting.short))
}

/// A socket that notes whether its last read was short.
struct Noting<'a> {
    socket: &'a StdStream,
    short: bool,
}

impl Read for Noting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (&mut &*self.socket).read(buf)?;
        self.short = n > 0 && n < buf.len();
        Ok(n)
    }
}

/// A file's bytes into a pipe: as many as it has room for now (at most
/// 64 KiB), read into the worker's file piece and written before anything
/// else runs, so no buffer is held across the wait for room. It was a new
/// zeroed 64 KiB buffer per piece: a sixth of the instructions of a 1 MiB
/// file sent over HTTP/2 (callgrind).
async fn pipe_file(
    end: &PipeEnd,
    file: &File,
    offset: &mut u64,
    count: usize,
) -> io::Result<usize> {
    let room = poll_fn(|cx| end.poll_room(cx)).await?;
    let taken = with_piece(count.min(room), |piece| -> io::Result<usize> {
        let read = file.read_at(piece, *offset)?;
        match read {
            0 => Ok(0),
            _ => end.try_write(&piece[..read]),
        }
    })?;
    *offset += taken as u64;
    Ok(taken)
}

/// Runs `f` on the first `want` bytes (at most [`FILE_PIECE`]) of this
/// worker's piece buffer.
fn with_piece<R>(want: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
    PIECE.with(|piece| {
        let mut piece = piece.borrow_mut();
        if piece.len() < FILE_PIECE {
            piece.resize(FILE_PIECE, 0);
        }
        f(&mut piece[..want.min(FILE_PIECE)])
    })
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
