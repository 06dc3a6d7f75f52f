//! TCP on the reactor: listeners built with `socket2`, accepted streams
//! conditioned for serving, and `sendfile`. A listener may also hold a
//! Unix-domain or inherited socket (`sockets.rs`): accept, read, write and
//! sendfile are the same calls on any stream socket; TCP options are only
//! set on TCP ones.

use std::fs::File;
use std::io;
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::task::{Context, Poll};
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, SockRef, Socket, TcpKeepalive, Type};

use super::io::Async;
use super::sys::syscall;

/// How a listening socket is built.
#[derive(Clone, Debug)]
pub struct ListenOptions {
    /// SO_REUSEPORT: several listeners on one port, the kernel spreads connections.
    pub reuse_port: bool,
    /// Length of the queue of connections not yet accepted (`listen(2)`).
    pub backlog: i32,
    /// TCP_DEFER_ACCEPT: hand over a connection only once its first bytes
    /// have arrived (or this long has passed): a new connection then never
    /// needs a poller registration and a wait before its first read.
    pub defer_accept: Option<Duration>,
    /// IPV6_V6ONLY for an IPv6 address: false (the default) also takes IPv4
    /// connections on `[::]`; true when `0.0.0.0` on the port is listened
    /// on by a listener of its own.
    pub only_v6: bool,
}

impl Default for ListenOptions {
    fn default() -> Self {
        ListenOptions {
            reuse_port: false,
            backlog: 1024,
            defer_accept: None,
            only_v6: false,
        }
    }
}

/// How an accepted stream is conditioned.
#[derive(Clone, Debug)]
pub struct StreamOptions {
    /// TCP_NODELAY: send small writes at once instead of batching (Nagle off).
    pub nodelay: bool,
    /// SO_KEEPALIVE probes: idle time before the first, interval between them.
    pub keepalive: Option<(Duration, Duration)>,
    /// TCP_NOTSENT_LOWAT: the most bytes left queued but not yet sent
    /// before the socket stops taking more (and reads as not writable).
    pub notsent_lowat: Option<u32>,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            nodelay: true,
            keepalive: Some((Duration::from_secs(60), Duration::from_secs(10))),
            notsent_lowat: None,
        }
    }
}

/// A non-blocking listener whose `accept` parks the green thread: TCP, or
/// a Unix-domain stream socket (see [`TcpListener::is_tcp`]).
#[derive(Debug)]
pub struct TcpListener {
    pub(super) inner: Async<StdListener>,
    pub(super) tcp: bool,
}

impl TcpListener {
    /// Binds with SO_REUSEADDR (and SO_REUSEPORT when asked).
    pub fn bind(addr: SocketAddr, options: &ListenOptions) -> io::Result<TcpListener> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        if options.reuse_port {
            socket.set_reuse_port(true)?;
        }
        if addr.is_ipv6() {
            socket.set_only_v6(options.only_v6)?;
        }
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(options.backlog)?;
        if let Some(wait) = options.defer_accept {
            set_defer_accept(socket.as_raw_fd(), wait)?;
        }
        Ok(TcpListener {
            inner: Async::new_nonblocking(socket.into()),
            tcp: true,
        })
    }

    /// Whether it is a TCP listener (else a Unix-domain one): only TCP
    /// sockets take TCP options.
    pub fn is_tcp(&self) -> bool {
        self.tcp
    }

    /// Wraps a bound, listening std listener, switching it to non-blocking
    /// mode.
    pub fn from_std(listener: StdListener) -> io::Result<TcpListener> {
        Ok(TcpListener {
            inner: Async::new(listener)?,
            tcp: true,
        })
    }

    /// The address the listener is bound to (with the actual port after
    /// binding port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().local_addr()
    }

    /// Accepts one connection, already non-blocking (accept4 with
    /// SOCK_NONBLOCK saves an fcntl per connection). The peer's address is
    /// `None` on a Unix-domain socket.
    pub async fn accept(&self) -> io::Result<(StdStream, Option<SocketAddr>)> {
        self.inner.read_with(accept_nonblocking).await
    }

    /// One accept attempt; `WouldBlock` when no connection is waiting.
    pub fn try_accept(&self) -> io::Result<(StdStream, Option<SocketAddr>)> {
        accept_nonblocking(self.inner.get_ref())
    }
}

fn accept_nonblocking(listener: &StdListener) -> io::Result<(StdStream, Option<SocketAddr>)> {
    // SAFETY: accept4 writes at most `*len` bytes of the peer's address into
    // the storage socket2 provides; on success it returns a new descriptor.
    // The address comes with the call: no getpeername per connection.
    let (fd, peer) = unsafe {
        SockAddr::try_init(|storage, len| {
            syscall!(libc::accept4(
                listener.as_raw_fd(),
                storage.cast(),
                len,
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC
            ))
        })?
    };
    // SAFETY: `fd` is a freshly accepted socket owned by nobody else. A
    // Unix-domain stream is carried as a `TcpStream` too: its reads, writes
    // and sendfile are the same calls; only TCP options would fail, and the
    // acceptor sets none on it.
    let stream = unsafe { StdStream::from_raw_fd(fd) };
    Ok((stream, peer.as_socket()))
}

/// Sets `options` on a listening socket. Linux copies them to every
/// connection the listener accepts, which then needs no setsockopt of its
/// own (five per connection otherwise); `has_options` checks that.
pub fn condition_listener(listener: &TcpListener, options: &StreamOptions) -> io::Result<()> {
    set_options(SockRef::from(listener.inner.get_ref()), options)
}

/// Whether `stream` carries `options` already (inherited from its listener).
pub fn has_options(stream: &StdStream, options: &StreamOptions) -> bool {
    let socket = SockRef::from(stream);
    let nodelay = !options.nodelay || socket.tcp_nodelay().unwrap_or(false);
    let lowat = match options.notsent_lowat {
        None => true,
        Some(bytes) => notsent_lowat(stream.as_raw_fd()).ok() == Some(bytes),
    };
    let keepalive = match options.keepalive {
        None => true,
        Some((idle, interval)) => {
            socket.keepalive().unwrap_or(false)
                && socket.tcp_keepalive_time().ok() == Some(idle)
                && socket.tcp_keepalive_interval().ok() == Some(interval)
        }
    };
    nodelay && lowat && keepalive
}

/// Sets TCP_NODELAY, keep-alive probes and TCP_NOTSENT_LOWAT on an
/// accepted stream.
pub fn condition_stream(stream: &StdStream, options: &StreamOptions) -> io::Result<()> {
    set_options(SockRef::from(stream), options)
}

fn set_options(socket: SockRef<'_>, options: &StreamOptions) -> io::Result<()> {
    if options.nodelay {
        socket.set_tcp_nodelay(true)?;
    }
    if let Some(bytes) = options.notsent_lowat {
        set_notsent_lowat(socket.as_raw_fd(), bytes)?;
    }
    if let Some((idle, interval)) = options.keepalive {
        let keepalive = TcpKeepalive::new().with_time(idle).with_interval(interval);
        socket.set_tcp_keepalive(&keepalive)?;
    }
    Ok(())
}

fn set_notsent_lowat(fd: RawFd, bytes: u32) -> io::Result<()> {
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    set_tcp_option(fd, libc::TCP_NOTSENT_LOWAT, value)
}

fn set_defer_accept(fd: RawFd, wait: Duration) -> io::Result<()> {
    // Whole seconds (the kernel's unit), at least one.
    let seconds = libc::c_int::try_from(wait.as_secs().max(1)).unwrap_or(libc::c_int::MAX);
    set_tcp_option(fd, libc::TCP_DEFER_ACCEPT, seconds)
}

/// An IPPROTO_TCP option socket2 has no setter for.
fn set_tcp_option(fd: RawFd, option: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: `value` is a live c_int and the length passed is its size.
    syscall!(libc::setsockopt(
        fd,
        libc::IPPROTO_TCP,
        option,
        (&value as *const libc::c_int).cast(),
        std::mem::size_of::<libc::c_int>() as libc::socklen_t
    ))?;
    Ok(())
}

fn notsent_lowat(fd: RawFd) -> io::Result<u32> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are live and sized for the option.
    syscall!(libc::getsockopt(
        fd,
        libc::IPPROTO_TCP,
        libc::TCP_NOTSENT_LOWAT,
        (&mut value as *mut libc::c_int).cast(),
        &mut len
    ))?;
    Ok(value as u32)
}

/// A connected, non-blocking TCP stream.
pub type TcpStream = Async<StdStream>;

impl Async<StdStream> {
    /// Connects without blocking the worker: a non-blocking connect, then a
    /// park until the socket is writable.
    pub async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_nonblocking(true)?;
        socket.set_tcp_nodelay(true)?;
        match socket.connect(&addr.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(e),
        }
        let stream = Async::new_nonblocking(StdStream::from(socket));
        stream.writable().await?;
        match stream.get_ref().take_error()? {
            Some(e) => Err(e),
            None => Ok(stream),
        }
    }

    /// Sends up to `count` bytes of `file` from `*offset` with sendfile(2):
    /// the bytes never pass through user space. Advances `offset`.
    pub async fn sendfile(&self, file: &File, offset: &mut u64, count: usize) -> io::Result<usize> {
        self.write_with(|stream| sendfile_once(stream, file, offset, count))
            .await
    }

    /// Writes like `write`, with MSG_MORE: the kernel holds a short tail
    /// back until the next write, so a head followed by `sendfile` leaves in
    /// full segments rather than as a small one of its own.
    pub async fn write_more(&self, buf: &[u8]) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_write_more(cx, buf)).await
    }

    /// [`write_more`](Self::write_more) as one poll.
    pub fn poll_write_more(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_write_with(cx, |stream| {
            // SAFETY: `buf` is valid for `buf.len()` bytes for the call's duration.
            let sent = syscall!(libc::send(
                stream.as_raw_fd(),
                buf.as_ptr().cast(),
                buf.len(),
                libc::MSG_MORE | libc::MSG_NOSIGNAL
            ))?;
            Ok(sent as usize)
        })
    }
}

fn sendfile_once(
    stream: &StdStream,
    file: &File,
    offset: &mut u64,
    count: usize,
) -> io::Result<usize> {
    let mut off = libc::off_t::try_from(*offset)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))?;
    // SAFETY: both descriptors are open for the duration of the call and
    // `off` is a valid, exclusively borrowed off_t.
    let sent = syscall!(libc::sendfile(
        stream.as_raw_fd(),
        file.as_raw_fd(),
        &mut off,
        count
    ))?;
    *offset = off as u64;
    Ok(sent as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lowat_options() -> StreamOptions {
        StreamOptions {
            notsent_lowat: Some(16 * 1024),
            keepalive: Some((Duration::from_secs(42), Duration::from_secs(7))),
            ..StreamOptions::default()
        }
    }

    #[test]
    fn condition_stream_sets_the_options() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = StdStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        assert!(!has_options(&accepted, &lowat_options()));
        condition_stream(&accepted, &lowat_options()).unwrap();
        assert_eq!(notsent_lowat(accepted.as_raw_fd()).unwrap(), 16 * 1024);
        assert!(has_options(&accepted, &lowat_options()));
        condition_stream(&client, &StreamOptions::default()).unwrap();
        assert_ne!(notsent_lowat(client.as_raw_fd()).unwrap(), 16 * 1024);
    }

    /// What lets the acceptor skip setsockopt per connection.
    #[test]
    fn accepted_streams_inherit_the_listeners_options() {
        let listener =
            TcpListener::bind("127.0.0.1:0".parse().unwrap(), &ListenOptions::default()).unwrap();
        condition_listener(&listener, &lowat_options()).unwrap();
        let addr = listener.local_addr().unwrap();
        let client = StdStream::connect(addr).unwrap();
        let (accepted, peer) = listener.try_accept().unwrap();
        assert_eq!(
            peer,
            Some(client.local_addr().unwrap()),
            "peer address from accept4"
        );
        assert!(has_options(&accepted, &lowat_options()));
    }
}
