//! An in-memory duplex byte pipe between two green threads: what a
//! [`Stream`](super::Stream) reads and writes when its peer is not a socket
//! but another part of this server (one HTTP/2 stream's request and
//! response, for instance). Each direction holds at most `capacity` bytes:
//! a writer parks while its direction is full, so a slow consumer holds
//! memory bounded by the capacity, as a socket's buffers bound it.
//!
//! Both ends may live on different threads (the end is `Send`), but the
//! two usually share one worker; the lock is then never contended. It is
//! a spin lock, not a `Mutex`: a pipe is locked about five times per
//! HTTP/2 request, and a `Mutex`'s poison checks cost each lock some 30
//! instructions more. What it guards is a few field updates and at most
//! one copy of `capacity` bytes; wakers are woken after it is released.

use std::cell::UnsafeCell;
use std::io;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

/// One direction of the pipe.
#[derive(Default)]
struct Half {
    bytes: Vec<u8>,
    /// Where the reader is in `bytes`.
    read: usize,
    /// The writer will write no more: the reader sees end of stream.
    closed: bool,
    reader: Option<Waker>,
    writer: Option<Waker>,
}

impl Half {
    fn pending(&self) -> usize {
        self.bytes.len() - self.read
    }
}

/// What the lock guards.
struct Inner {
    halves: [Half; 2],
    capacity: usize,
}

struct Shared {
    locked: AtomicBool,
    inner: UnsafeCell<Inner>,
}

// SAFETY: `inner` is reached only through `Shared::lock`, whose guard is
// held by one thread at a time (the flag is taken with Acquire and given
// back with Release), or through `&mut Shared`.
unsafe impl Sync for Shared {}

impl Shared {
    fn new(inner: Inner) -> Shared {
        Shared {
            locked: AtomicBool::new(false),
            inner: UnsafeCell::new(inner),
        }
    }

    fn lock(&self) -> Guard<'_> {
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            // Held by the other end's thread, for a few field updates or
            // one copy: spin, and give the core away if it was preempted.
            let mut spins = 0u32;
            while self.locked.load(Ordering::Relaxed) {
                spins += 1;
                if spins < 64 {
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
        }
        Guard(self)
    }

    fn get_mut(&mut self) -> &mut Inner {
        self.inner.get_mut()
    }
}

/// The lock held; released when dropped (an unwinding panic too: every
/// change under it is a single assignment, so the halves stay consistent).
struct Guard<'a>(&'a Shared);

impl Deref for Guard<'_> {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        // SAFETY: the guard holds the lock: no other reference to `inner`
        // lives until it is dropped.
        unsafe { &*self.0.inner.get() }
    }
}

impl DerefMut for Guard<'_> {
    fn deref_mut(&mut self) -> &mut Inner {
        // SAFETY: as in `deref`, and `&mut self` makes this one unique.
        unsafe { &mut *self.0.inner.get() }
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        self.0.locked.store(false, Ordering::Release);
    }
}

/// Leaves `waker` in `slot`, unless the one there wakes the same task.
fn park(slot: &mut Option<Waker>, waker: &Waker) {
    match slot {
        Some(parked) if parked.will_wake(waker) => {}
        _ => *slot = Some(waker.clone()),
    }
}

/// Wakes `waker`, if any (after the lock is released).
fn wake(waker: Option<Waker>) {
    if let Some(waker) = waker {
        waker.wake();
    }
}

/// One end of a pipe: it reads what the other end writes, and the other
/// way round. Dropping it closes both directions from its side.
pub struct PipeEnd {
    shared: Arc<Shared>,
    /// The direction this end reads; it writes the other one.
    side: usize,
}

/// A pipe whose directions hold at most `capacity` bytes each.
pub fn pipe(capacity: usize) -> (PipeEnd, PipeEnd) {
    let shared = Arc::new(Shared::new(Inner {
        halves: [Half::default(), Half::default()],
        capacity: capacity.max(1),
    }));
    let a = PipeEnd {
        shared: shared.clone(),
        side: 0,
    };
    (a, PipeEnd { shared, side: 1 })
}

impl PipeEnd {
    fn lock(&self) -> Guard<'_> {
        self.shared.lock()
    }

    /// Copies what has arrived into `buf`: Ready(0) at end of stream.
    pub fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let mut shared = self.lock();
        let half = &mut shared.halves[self.side];
        if half.pending() == 0 {
            if half.closed || buf.is_empty() {
                return Poll::Ready(Ok(0));
            }
            park(&mut half.reader, cx.waker());
            return Poll::Pending;
        }
        let n = half.pending().min(buf.len());
        buf[..n].copy_from_slice(&half.bytes[half.read..half.read + n]);
        half.read += n;
        if half.read == half.bytes.len() {
            half.bytes.clear();
            half.read = 0;
        }
        let waker = half.writer.take();
        drop(shared);
        wake(waker);
        Poll::Ready(Ok(n))
    }

    /// Takes everything that has arrived, whole (no copy): Ready(None) at
    /// end of stream.
    pub fn poll_take(&self, cx: &mut Context<'_>) -> Poll<Option<Vec<u8>>> {
        let mut bytes = Vec::new();
        self.poll_take_into(cx, &mut bytes)
            .map(|open| open.then_some(bytes))
    }

    /// Takes everything that has arrived into `buf`: Ready(false) at end
    /// of stream. An empty `buf` is swapped with the pipe's buffer (no
    /// copy), its room kept by the pipe for what is written next, so that
    /// a reader taking turn after turn allocates nothing; a `buf` holding
    /// bytes gets the new ones appended.
    pub fn poll_take_into(&self, cx: &mut Context<'_>, buf: &mut Vec<u8>) -> Poll<bool> {
        let mut shared = self.lock();
        let half = &mut shared.halves[self.side];
        if half.pending() == 0 {
            if half.closed {
                return Poll::Ready(false);
            }
            park(&mut half.reader, cx.waker());
            return Poll::Pending;
        }
        if buf.is_empty() {
            std::mem::swap(&mut half.bytes, buf);
            if half.read > 0 {
                buf.drain(..half.read);
            }
        } else {
            buf.extend_from_slice(&half.bytes[half.read..]);
            half.bytes.clear();
        }
        half.read = 0;
        let waker = half.writer.take();
        drop(shared);
        wake(waker);
        Poll::Ready(true)
    }

    /// Whether bytes have arrived or the other end has closed: a read
    /// would not wait. Otherwise leaves `waker` to be woken when so.
    pub fn arm_readable(&self, waker: &Waker) -> bool {
        let mut shared = self.lock();
        let half = &mut shared.halves[self.side];
        if half.pending() > 0 || half.closed {
            return true;
        }
        park(&mut half.reader, waker);
        false
    }

    /// Whether the other end is gone (dropped, or made a spare of).
    pub fn is_alone(&self) -> bool {
        Arc::strong_count(&self.shared) == 1
    }

    /// Whether bytes have arrived that were not read.
    pub fn has_unread(&self) -> bool {
        self.lock().halves[self.side].pending() > 0
    }

    /// Appends what fits of `buf` to the other end's direction; parks while
    /// it is full. `BrokenPipe` once the other end is gone.
    pub fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let mut shared = self.lock();
        let capacity = shared.capacity;
        let half = &mut shared.halves[1 - self.side];
        if half.closed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        let room = capacity.saturating_sub(half.pending());
        if room == 0 && !buf.is_empty() {
            park(&mut half.writer, cx.waker());
            return Poll::Pending;
        }
        let n = room.min(buf.len());
        half.bytes.extend_from_slice(&buf[..n]);
        let waker = half.reader.take();
        drop(shared);
        wake(waker);
        Poll::Ready(Ok(n))
    }

    /// Room in the other end's direction: Ready(n > 0) once some is
    /// free, parking while it is full. A write of at most `n` bytes made
    /// before any other task runs takes them all.
    pub fn poll_room(&self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let mut shared = self.lock();
        let capacity = shared.capacity;
        let half = &mut shared.halves[1 - self.side];
        if half.closed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        match capacity.saturating_sub(half.pending()) {
            0 => {
                park(&mut half.writer, cx.waker());
                Poll::Pending
            }
            room => Poll::Ready(Ok(room)),
        }
    }

    /// Writes what fits of `buf` now, without parking: `WouldBlock` if
    /// nothing does.
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        let waker = Waker::noop();
        match self.poll_write(&mut Context::from_waker(waker), buf) {
            Poll::Ready(done) => done,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    /// Ends this end's writing: the other end reads what is buffered, then
    /// end of stream. Reads still work.
    pub fn shutdown_write(&self) {
        let mut shared = self.lock();
        let half = &mut shared.halves[1 - self.side];
        half.closed = true;
        let waker = half.reader.take();
        drop(shared);
        wake(waker);
    }

    /// Reads some bytes, parking until some arrive; 0 at end of stream.
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_read(cx, buf)).await
    }

    /// Writes some of `buf`, parking while the pipe is full.
    pub async fn write(&self, buf: &[u8]) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_write(cx, buf)).await
    }
}

/// The largest buffer a spare pipe keeps in each direction.
const SPARE_BUFFER: usize = 4096;

/// A pipe whose both ends are gone, kept to be made a new pipe without
/// allocating (an HTTP/2 connection keeps a few for its next streams).
pub struct Spare(Arc<Shared>, usize);

impl PipeEnd {
    /// Drops this end; if the other end is gone too, what the pipe was
    /// made of, emptied, for [`Spare::pipe`].
    pub fn into_spare(self) -> Option<Spare> {
        self.into_spare_with(Vec::new(), None)
    }

    /// [`into_spare`](Self::into_spare), `buf` (what this end took with
    /// [`poll_take_into`](Self::poll_take_into)) going back to the
    /// direction this end read, for the next pipe's writer; `reader`,
    /// if given, waits on that direction already (as if the end on this
    /// side of the next pipe had been polled with it), and is woken by
    /// its first write or by the other end's drop.
    pub fn into_spare_with(self, buf: Vec<u8>, reader: Option<&Waker>) -> Option<Spare> {
        if !self.is_alone() {
            return None;
        }
        // Alone: nothing can reach the pipe but through this end, so it is
        // taken apart without the closing and waking of a drop.
        let side = self.side;
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never used nor dropped again: the Arc is moved
        // out of it once.
        let mut shared = unsafe { std::ptr::read(&this.shared) };
        let inner = Arc::get_mut(&mut shared)?.get_mut();
        // Each half emptied where it is (no Half built and moved in).
        let [first, second] = &mut inner.halves;
        let (mine, theirs) = match side {
            0 => (first, second),
            _ => (second, first),
        };
        if buf.capacity() > mine.bytes.capacity() {
            mine.bytes = buf;
        }
        for half in [&mut *mine, theirs] {
            // Small buffers are kept; a large one is not held idle.
            match half.bytes.capacity() <= SPARE_BUFFER {
                true => half.bytes.clear(),
                false => half.bytes = Vec::new(),
            }
            half.read = 0;
            half.closed = false;
            half.reader = None;
            half.writer = None;
        }
        mine.reader = reader.cloned();
        Some(Spare(shared, side))
    }
}

impl Spare {
    /// A new pipe, as [`pipe`] makes one, with the spare's capacity: the
    /// second end is on the side of the end the spare was made of.
    pub fn pipe(self) -> (PipeEnd, PipeEnd) {
        let a = PipeEnd {
            shared: self.0.clone(),
            side: 1 - self.1,
        };
        (
            a,
            PipeEnd {
                shared: self.0,
                side: self.1,
            },
        )
    }
}

impl Drop for PipeEnd {
    fn drop(&mut self) {
        let mut shared = self.lock();
        // Spelled out, not a loop over an array of wakers: an HTTP/2
        // stream drops one end per request (callgrind).
        let [a, b] = &mut shared.halves;
        a.closed = true;
        b.closed = true;
        let wakers = (a.reader.take(), a.writer.take());
        let more = (b.reader.take(), b.writer.take());
        drop(shared);
        wake(wakers.0);
        wake(wakers.1);
        wake(more.0);
        wake(more.1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_cross_both_ways_and_a_drop_is_end_of_stream() {
        super::super::block_on(async {
            let (a, b) = pipe(4);
            assert_eq!(a.write(b"hello").await.expect("write"), 4);
            let mut buf = [0u8; 8];
            assert_eq!(b.read(&mut buf).await.expect("read"), 4);
            assert_eq!(&buf[..4], b"hell");
            assert_eq!(b.write(b"ok").await.expect("write"), 2);
            assert_eq!(a.read(&mut buf).await.expect("read"), 2);
            drop(a);
            assert_eq!(b.read(&mut buf).await.expect("read"), 0);
            assert!(b.try_write(b"x").is_err());
        });
    }

    #[test]
    fn a_full_pipe_parks_the_writer_until_the_reader_takes() {
        super::super::block_on(async {
            let (a, b) = pipe(3);
            assert_eq!(a.try_write(b"abc").expect("fits"), 3);
            assert_eq!(
                a.try_write(b"d").map_err(|e| e.kind()),
                Err(io::ErrorKind::WouldBlock)
            );
            let writer = super::super::spawn(async move {
                a.write(b"def").await.expect("write");
                a.shutdown_write();
                a
            });
            let mut got = Vec::new();
            while let Some(bytes) = std::future::poll_fn(|cx| b.poll_take(cx)).await {
                got.extend_from_slice(&bytes);
            }
            assert_eq!(got, b"abcdef");
            drop(writer.await);
        });
    }

    #[test]
    fn taking_into_a_buffer_swaps_it_and_a_spare_keeps_the_reader_s_buffer() {
        let mut cx = Context::from_waker(Waker::noop());
        let (handler, ours) = pipe(64);
        let mut buf = Vec::with_capacity(48);
        buf.extend_from_slice(b"old");
        assert_eq!(handler.try_write(b"head").expect("fits"), 4);
        // A buffer holding bytes gets the new ones appended.
        assert_eq!(ours.poll_take_into(&mut cx, &mut buf), Poll::Ready(true));
        assert_eq!(buf, b"oldhead");
        assert!(ours.poll_take_into(&mut cx, &mut buf).is_pending());
        // An empty one is swapped: the pipe keeps its room.
        buf.clear();
        let room = buf.as_ptr();
        assert_eq!(handler.try_write(b"body").expect("fits"), 4);
        assert_eq!(ours.poll_take_into(&mut cx, &mut buf), Poll::Ready(true));
        assert_eq!(buf, b"body");
        buf.clear();
        assert_eq!(handler.try_write(b"more").expect("fits"), 4);
        assert_eq!(ours.poll_take_into(&mut cx, &mut buf), Poll::Ready(true));
        assert_eq!(buf.as_ptr(), room, "the buffer came back through the pipe");
        drop(handler);
        assert_eq!(ours.poll_take_into(&mut cx, &mut buf), Poll::Ready(false));
        let spare = ours.into_spare_with(buf, None).expect("both ends gone");
        let (handler, ours) = spare.pipe();
        assert_eq!(handler.try_write(b"next").expect("fits"), 4);
        let mut next = Vec::new();
        assert_eq!(ours.poll_take_into(&mut cx, &mut next), Poll::Ready(true));
        assert_eq!((next.as_ptr(), &next[..]), (room, &b"next"[..]));
    }

    #[test]
    fn a_spare_is_had_only_once_both_ends_are_gone_and_is_a_fresh_pipe() {
        super::super::block_on(async {
            let (a, b) = pipe(4);
            assert_eq!(a.try_write(b"ab").expect("fits"), 2);
            assert!(a.into_spare().is_none(), "the other end still lives");
            drop(b);
            let (c, d) = pipe(4);
            assert_eq!(d.try_write(b"left").expect("fits"), 4);
            drop(d);
            let (a, b) = c.into_spare().expect("both ends gone").pipe();
            assert_eq!(a.try_write(b"wxyz").expect("fits"), 4);
            let mut buf = [0u8; 8];
            assert_eq!(b.read(&mut buf).await.expect("read"), 4);
            assert_eq!(&buf[..4], b"wxyz");
            assert!(!a.has_unread() && !b.has_unread());
        });
    }

    #[test]
    fn a_parked_reader_is_woken_by_a_write_and_by_the_writer_s_drop() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let count = Arc::new(super::super::timer::tests::Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let (handler, ours) = pipe(8);
        let mut buf = Vec::new();
        // Armed, as a connection arms a new stream's pipe: no wake yet.
        assert!(!ours.arm_readable(&waker));
        assert!(ours.poll_take_into(&mut cx, &mut buf).is_pending());
        assert_eq!(count.0.load(Ordering::Relaxed), 0);
        // Parked twice with the same waker, it is woken once (the lock
        // released first: the waker could lock the pipe itself).
        assert_eq!(handler.try_write(b"head").expect("fits"), 4);
        assert_eq!(count.0.load(Ordering::Relaxed), 1);
        assert_eq!(ours.poll_take_into(&mut cx, &mut buf), Poll::Ready(true));
        assert_eq!(buf, b"head");
        assert!(ours.poll_take_into(&mut cx, &mut Vec::new()).is_pending());
        drop(handler);
        assert_eq!(count.0.load(Ordering::Relaxed), 2);
        assert!(ours.arm_readable(&waker), "the other end is gone");
    }
}
