//! `Async<T>`: any non-blocking file descriptor, awaited by green threads.
//!
//! The descriptor is registered with the reactor of the worker that first has
//! to park on it, and stays there; a green thread on another worker is still
//! woken, through that worker's injection queue.

use std::future::poll_fn;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::{Arc, OnceLock};
use std::task::{ready, Context, Poll, Waker};

use super::executor::{poll_budget, with_local};
use super::reactor::{Direction, Reactor, Source};
use super::sys::syscall;

/// A non-blocking descriptor whose operations park the green thread on
/// `WouldBlock` instead of spinning.
pub struct Async<T: AsFd> {
    source: OnceLock<Arc<Source>>,
    io: Option<T>,
}

/// Puts a descriptor into non-blocking mode.
pub fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor number has no memory effects; a bad
    // descriptor yields EBADF, which we report.
    let flags = syscall!(libc::fcntl(fd, libc::F_GETFL))?;
    if flags & libc::O_NONBLOCK == 0 {
        // SAFETY: as above.
        syscall!(libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK))?;
    }
    Ok(())
}

impl<T: AsFd> Async<T> {
    /// Wraps `io`, switching it to non-blocking mode.
    pub fn new(io: T) -> io::Result<Async<T>> {
        set_nonblocking(io.as_fd().as_raw_fd())?;
        Ok(Async::new_nonblocking(io))
    }

    /// Wraps `io`, which the caller has already made non-blocking.
    pub fn new_nonblocking(io: T) -> Async<T> {
        Async {
            source: OnceLock::new(),
            io: Some(io),
        }
    }

    /// The wrapped descriptor.
    pub fn get_ref(&self) -> &T {
        match &self.io {
            Some(io) => io,
            None => unreachable!("Async::io is only taken by into_inner"),
        }
    }

    /// Stops watching the descriptor and returns it.
    pub fn into_inner(mut self) -> T {
        self.deregister();
        match self.io.take() {
            Some(io) => io,
            None => unreachable!("Async::io is only taken by into_inner"),
        }
    }

    fn deregister(&mut self) {
        if let Some(source) = self.source.take() {
            source.deregister();
        }
    }

    fn source(&self) -> io::Result<&Arc<Source>> {
        if let Some(source) = self.source.get() {
            return Ok(source);
        }
        let fd = self.get_ref().as_fd().as_raw_fd();
        let source =
            with_local(|local| Reactor::register(&local.shared, fd)).unwrap_or_else(|| {
                Err(io::Error::other(
                    "Async I/O used outside a conveyor runtime worker",
                ))
            })?;
        // A green thread has `&self` only on one worker at a time, so the
        // cell is empty here; if not, keep the first registration.
        match self.source.set(source) {
            Ok(()) => {}
            Err(extra) => extra.deregister(),
        }
        self.source
            .get()
            .ok_or_else(|| io::Error::other("registration lost"))
    }

    fn tick(&self, direction: Direction) -> u32 {
        self.source.get().map_or(0, |s| s.tick(direction))
    }

    /// Runs `op` until it stops saying `WouldBlock`, parking in between.
    /// `drained(&r)` says whether a successful result proves the descriptor
    /// is now empty (a short read).
    fn poll_io<R>(
        &self,
        cx: &mut Context<'_>,
        direction: Direction,
        mut op: impl FnMut(&T) -> io::Result<R>,
        drained: impl Fn(&R) -> bool,
    ) -> Poll<io::Result<R>> {
        ready!(poll_budget(cx));
        loop {
            let seen = self.tick(direction);
            match self.attempt(seen, direction, &mut op, &drained) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if self.source()?.park(cx, direction, seen) {
                        return Poll::Pending;
                    }
                }
                done => return Poll::Ready(done),
            }
        }
    }

    /// One try of `op` as of readiness tick `seen`: `WouldBlock` (recorded,
    /// so the next try costs no syscall until an event arrives) or its result.
    fn attempt<R>(
        &self,
        seen: u32,
        direction: Direction,
        mut op: impl FnMut(&T) -> io::Result<R>,
        drained: impl Fn(&R) -> bool,
    ) -> io::Result<R> {
        // Known exhausted and no event since: the syscall could only say
        // EAGAIN. Readiness always arrives as a new event (edge mode), or
        // on re-arming (oneshot mode).
        if let Some(source) = self.source.get() {
            if source.drained_tick(direction) == seen {
                return Err(io::ErrorKind::WouldBlock.into());
            }
        }
        loop {
            match op(self.get_ref()) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.source()?.mark_drained(direction, seen);
                    return Err(e);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(result) => {
                    if direction == Direction::Read && drained(&result) {
                        if let Some(source) = self.source.get() {
                            source.mark_drained(direction, seen);
                        }
                    }
                    return Ok(result);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Polls a read-side operation: retried on `Interrupted`, and on
    /// `WouldBlock` the task is parked until the descriptor is readable.
    /// Fails with `op`'s error, or if it must park outside a runtime worker.
    pub fn poll_read_with<R>(
        &self,
        cx: &mut Context<'_>,
        op: impl FnMut(&T) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        self.poll_io(cx, Direction::Read, op, |_| false)
    }

    /// As [`Async::poll_read_with`] for an `op` that also says whether its
    /// read was short (fewer bytes than it asked for, but some): the
    /// descriptor is then known empty, and the next read costs no syscall
    /// until an event arrives, as for [`Async::poll_read`].
    pub fn poll_read_short<R>(
        &self,
        cx: &mut Context<'_>,
        op: impl FnMut(&T) -> io::Result<(R, bool)>,
    ) -> Poll<io::Result<(R, bool)>> {
        self.poll_io(cx, Direction::Read, op, |&(_, short)| short)
    }

    /// [`Async::try_read_with`] for an `op` as [`Async::poll_read_short`]'s.
    pub fn try_read_short<R>(
        &self,
        op: impl FnMut(&T) -> io::Result<(R, bool)>,
    ) -> io::Result<(R, bool)> {
        let seen = self.tick(Direction::Read);
        self.attempt(seen, Direction::Read, op, |&(_, short)| short)
    }

    /// Polls a write-side operation, parking on `WouldBlock` until the
    /// descriptor is writable; errors as [`Async::poll_read_with`].
    pub fn poll_write_with<R>(
        &self,
        cx: &mut Context<'_>,
        op: impl FnMut(&T) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        self.poll_io(cx, Direction::Write, op, |_| false)
    }

    /// Tries a read-side operation once, without parking: `WouldBlock` if
    /// the descriptor has nothing (known without a syscall when the last
    /// read drained it).
    pub fn try_read_with<R>(&self, op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        let seen = self.tick(Direction::Read);
        self.attempt(seen, Direction::Read, op, |_| false)
    }

    /// Runs a read-side operation (read, accept, recv) until it does not block.
    pub async fn read_with<R>(&self, mut op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        poll_fn(|cx| self.poll_read_with(cx, &mut op)).await
    }

    /// Runs a write-side operation until it does not block.
    pub async fn write_with<R>(&self, mut op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        poll_fn(|cx| self.poll_write_with(cx, &mut op)).await
    }

    /// Waits until the descriptor may be read without blocking. Cheap on the
    /// keep-alive path: after a short read it parks without another syscall.
    pub async fn readable(&self) -> io::Result<()> {
        poll_fn(|cx| self.poll_ready(cx, Direction::Read)).await
    }

    /// Waits until the descriptor may be written without blocking.
    pub async fn writable(&self) -> io::Result<()> {
        poll_fn(|cx| self.poll_ready(cx, Direction::Write)).await
    }

    fn poll_ready(&self, cx: &mut Context<'_>, direction: Direction) -> Poll<io::Result<()>> {
        match self.arm(cx.waker(), direction)? {
            true => Poll::Ready(Ok(())),
            false => Poll::Pending,
        }
    }

    /// True if the descriptor may be readable (an event arrived since it
    /// was last found empty); otherwise leaves `waker` to be woken when it
    /// becomes readable and returns false. For waiters that are not green
    /// threads (see `IdleSet`).
    pub fn arm_readable(&self, waker: &Waker) -> io::Result<bool> {
        self.arm(waker, Direction::Read)
    }

    fn arm(&self, waker: &Waker, direction: Direction) -> io::Result<bool> {
        let source = self.source()?;
        loop {
            let drained = source.drained_tick(direction);
            if source.tick(direction) != drained {
                return Ok(true);
            }
            if source.park_waker(waker, direction, drained) {
                return Ok(false);
            }
        }
    }
}

impl<T: AsFd> Async<T>
where
    for<'a> &'a T: Read,
{
    /// Polls one read into `buf`, parking until readable; `Ready(Ok(0))`
    /// means the peer closed (or `buf` is empty).
    pub fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let len = buf.len();
        self.poll_io(
            cx,
            Direction::Read,
            |mut io| io.read(buf),
            |&n| n > 0 && n < len,
        )
    }

    /// Reads some bytes; 0 means the peer closed.
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_read(cx, buf)).await
    }

    /// Reads without waiting: `WouldBlock` if nothing has arrived (known
    /// without a syscall when the last read drained the descriptor).
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let len = buf.len();
        let seen = self.tick(Direction::Read);
        self.attempt(
            seen,
            Direction::Read,
            |mut io| io.read(buf),
            |&n| n > 0 && n < len,
        )
    }
}

impl<T: AsFd> Async<T>
where
    for<'a> &'a T: Write,
{
    /// Writes some of `buf`, parking while the descriptor is not writable;
    /// returns how many bytes went out.
    pub async fn write(&self, buf: &[u8]) -> io::Result<usize> {
        self.write_with(|mut io| io.write(buf)).await
    }

    /// Writes all of `buf`, parking as needed; `WriteZero` if a write
    /// accepts nothing.
    pub async fn write_all(&self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let n = self.write(buf).await?;
            written(&mut buf, n)?;
        }
        Ok(())
    }
}

/// Moves `buf` past the `n` bytes a write took; `WriteZero` if it took
/// none (a `write_all` would loop for ever).
pub(crate) fn written(buf: &mut &[u8], n: usize) -> io::Result<()> {
    if n == 0 {
        return Err(io::ErrorKind::WriteZero.into());
    }
    *buf = &buf[n..];
    Ok(())
}

impl<T: AsFd> AsRawFd for Async<T> {
    fn as_raw_fd(&self) -> RawFd {
        self.get_ref().as_fd().as_raw_fd()
    }
}

impl<T: AsFd> Drop for Async<T> {
    fn drop(&mut self) {
        // Deregister before `io` (dropped after this) closes the descriptor.
        self.deregister();
    }
}

impl<T: AsFd + std::fmt::Debug> std::fmt::Debug for Async<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Async").field("io", &self.io).finish()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    use super::Async;
    use crate::runtime::{race, sleep, Either, PollMode, Runtime};

    /// Longer than any loopback delivery; a lost wake-up shows as this.
    const LIMIT: Duration = Duration::from_secs(2);

    /// A connected pair of loopback sockets: (client, server).
    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        (client, server)
    }

    /// Blocks until `fd` reports the peer's end (`POLLRDHUP`: a FIN or a
    /// reset); the bytes before it are in the socket too.
    fn wait_for_fin(fd: i32) {
        let mut poll = libc::pollfd {
            fd,
            events: libc::POLLRDHUP,
            revents: 0,
        };
        // SAFETY: one live pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut poll, 1, LIMIT.as_millis() as i32) };
        assert_eq!(n, 1, "the end did not arrive");
    }

    /// Ends the client's side after its bytes: a FIN, or a reset (a close
    /// with a zero linger time).
    fn end(client: TcpStream, reset: bool) {
        if !reset {
            return client.shutdown(Shutdown::Write).expect("shutdown");
        }
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: passes a live `linger` of the size given, on an open socket.
        let set = unsafe {
            libc::setsockopt(
                client.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            )
        };
        assert_eq!(set, 0, "SO_LINGER");
        drop(client);
    }

    /// Bytes and the client's FIN (or reset) that arrive together, while
    /// the reader is parked on a drained socket, come as one edge: the
    /// short read of the bytes must not hide the end behind them (a missed
    /// close that left a connection waiting for a timeout, one run in a
    /// few hundred).
    #[test]
    fn a_short_read_does_not_hide_the_fin_behind_it() {
        let mut missed = Vec::new();
        for mode in [PollMode::Edge, PollMode::Oneshot] {
            for (wait, reset) in [("read", false), ("readable", false), ("read", true)] {
                let outcome = Runtime::builder().poll_mode(mode).block_on(async move {
                    let (mut client, server) = pair();
                    let fd = server.as_raw_fd();
                    let reader = Async::new(server).expect("async");
                    let mut buf = [0u8; 64];
                    // Found empty: registered and marked drained.
                    let empty = reader.try_read(&mut buf).map_err(|e| e.kind());
                    assert_eq!(empty, Err(std::io::ErrorKind::WouldBlock));
                    client.write_all(b"hello").expect("write");
                    end(client, reset);
                    wait_for_fin(fd);
                    assert_eq!(reader.read(&mut buf).await.expect("read"), 5, "short");
                    let closed = async {
                        if wait == "readable" {
                            reader.readable().await.expect("readable");
                        }
                        reader.read(&mut buf).await.map_err(|e| e.kind())
                    };
                    match race(closed, sleep(LIMIT)).await {
                        Either::Left(n) => Some(n),
                        Either::Right(()) => None,
                    }
                });
                let seen = match (reset, &outcome) {
                    (false, Some(Ok(0))) => true,
                    (true, Some(got)) => {
                        matches!(got, Ok(0) | Err(std::io::ErrorKind::ConnectionReset))
                    }
                    _ => false,
                };
                if !seen {
                    missed.push(format!("{mode:?} {wait} reset={reset}: {outcome:?}"));
                }
            }
        }
        assert!(
            missed.is_empty(),
            "end not seen within {LIMIT:?}: {missed:?}"
        );
    }
}
