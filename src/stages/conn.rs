//! `Conn`: what travels between stages — a socket, the bytes read ahead of the
//! next request, and per-connection state.

use std::cell::{Cell, RefCell};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::metrics::{Metrics, WorkerMetrics};
use crate::runtime::{timeout_at, Queue, TcpStream};

/// Buffers kept per worker for reuse.
const POOL_LIMIT: usize = 256;

thread_local! {
    static BUFFERS: RefCell<Vec<Box<[u8]>>> = const { RefCell::new(Vec::new()) };
    /// Numbers this worker's socket reads in order (see `Conn::received_seq`).
    static READ_SEQ: Cell<u64> = const { Cell::new(0) };
}

/// The number the next read on this worker will get: anything done now
/// happened after every read numbered below it.
pub fn read_seq_now() -> u64 {
    READ_SEQ.with(Cell::get)
}

fn take_buffer(size: usize) -> Box<[u8]> {
    BUFFERS
        .with(|pool| pool.borrow_mut().pop())
        .filter(|buf| buf.len() == size)
        .unwrap_or_else(|| vec![0; size].into_boxed_slice())
}

fn give_buffer(buf: Box<[u8]>) {
    BUFFERS.with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.len() < POOL_LIMIT {
            pool.push(buf);
        }
    });
}

/// Bytes received but not yet consumed. An idle connection holds none: its
/// buffer goes back to the worker's pool.
#[derive(Default)]
pub struct ReadBuffer {
    buf: Option<Box<[u8]>>,
    start: u32,
    end: u32,
}

impl ReadBuffer {
    /// Offsets are u32 (buffers are at most a few MiB): this struct is part
    /// of every idle connection.
    fn bounds(&self) -> (usize, usize) {
        (self.start as usize, self.end as usize)
    }

    fn set_bounds(&mut self, start: usize, end: usize) {
        // Both are within a buffer whose size came from a u32-sized config.
        self.start = u32::try_from(start).unwrap_or(u32::MAX);
        self.end = u32::try_from(end).unwrap_or(u32::MAX);
    }

    /// The unconsumed bytes.
    pub fn pending(&self) -> &[u8] {
        let (start, end) = self.bounds();
        match &self.buf {
            Some(buf) => &buf[start..end],
            None => &[],
        }
    }

    pub fn has_pending(&self) -> bool {
        self.start < self.end
    }

    pub fn consume(&mut self, n: usize) {
        let (start, end) = self.bounds();
        let start = (start + n).min(end);
        if start == end {
            self.set_bounds(0, 0);
        } else {
            self.set_bounds(start, end);
        }
    }

    /// Free room to read into, after moving pending bytes to the front; a
    /// buffer of `size` bytes is taken from the pool if there is none. Empty
    /// when the buffer is full of pending bytes.
    pub fn spare(&mut self, size: usize) -> &mut [u8] {
        let (mut start, mut end) = self.bounds();
        let buf = self.buf.get_or_insert_with(|| take_buffer(size));
        if start > 0 && end == buf.len() {
            buf.copy_within(start..end, 0);
            end -= start;
            start = 0;
        }
        self.set_bounds(start, end);
        match &mut self.buf {
            Some(buf) => &mut buf[end..],
            None => &mut [],
        }
    }

    /// Marks `n` bytes of the last `spare` as received.
    pub fn filled(&mut self, n: usize) {
        let len = self.buf.as_ref().map_or(0, |b| b.len());
        let (start, end) = self.bounds();
        self.set_bounds(start, (end + n).min(len));
    }

    /// Returns the buffer to the pool if nothing is pending.
    pub fn release_if_empty(&mut self) {
        if !self.has_pending() {
            if let Some(buf) = self.buf.take() {
                give_buffer(buf);
            }
            self.start = 0;
            self.end = 0;
        }
    }
}

impl Drop for ReadBuffer {
    fn drop(&mut self) {
        if let Some(buf) = self.buf.take() {
            give_buffer(buf);
        }
    }
}

/// The connection limit (`limits.max_connections`): free slots, and the
/// gauge of open connections.
pub struct Slots {
    free: Queue<()>,
    metrics: Arc<Metrics>,
}

impl Slots {
    pub fn new(max_connections: usize, metrics: Arc<Metrics>) -> Arc<Slots> {
        let free = Queue::bounded(max_connections);
        for _ in 0..max_connections {
            let _ = free.try_send(());
        }
        Arc::new(Slots { free, metrics })
    }

    /// A free slot, if there is one.
    pub fn try_take(self: &Arc<Self>) -> Option<Slot> {
        self.free.try_recv().map(|()| Slot::new(self))
    }

    /// The next free slot, parking until one is given back.
    pub async fn take(self: &Arc<Self>) -> Slot {
        self.free.recv().await;
        Slot::new(self)
    }
}

/// One open connection's slot: given back, and the gauge kept right,
/// however the connection ends. One pointer: every idle connection has one.
pub struct Slot(Arc<Slots>);

impl Slot {
    fn new(slots: &Arc<Slots>) -> Slot {
        WorkerMetrics::inc(&slots.metrics.here().open);
        Slot(slots.clone())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        WorkerMetrics::dec(&self.0.metrics.here().open);
        let _ = self.0.free.try_send(());
    }
}

/// A client connection on its way along the line.
pub struct Conn {
    pub stream: TcpStream,
    pub input: ReadBuffer,
    /// Requests served so far on this connection.
    pub requests: u32,
    /// When the connection was accepted or last became readable again.
    pub ready_since: Instant,
    /// The worker's read number of the last read on this connection: its
    /// buffered requests arrived no later than that read.
    pub received_seq: u64,
    _slot: Slot,
}

impl Conn {
    pub fn new(stream: TcpStream, slot: Slot) -> Conn {
        Conn {
            stream,
            input: ReadBuffer::default(),
            requests: 0,
            ready_since: crate::runtime::now(),
            received_seq: 0,
            _slot: slot,
        }
    }

    /// The client's address. Asked of the kernel when needed (access log)
    /// rather than kept: every byte of a `Conn` is paid per idle connection.
    pub fn peer(&self) -> Option<SocketAddr> {
        self.stream.get_ref().peer_addr().ok()
    }

    /// Reads more bytes into the input buffer (of `size` bytes), by
    /// `deadline`. Ok(0) means the peer closed; a full buffer is an error.
    pub async fn fill(
        &mut self,
        size: usize,
        deadline: Instant,
        metrics: &WorkerMetrics,
    ) -> io::Result<usize> {
        let spare = self.input.spare(size);
        if spare.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "read buffer full",
            ));
        }
        let n = timeout_at(deadline, self.stream.read(spare)).await??;
        self.received(n, metrics);
        Ok(n)
    }

    /// Reads what has arrived without waiting: None if nothing has (and
    /// then the connection holds no read buffer). Ok(Some(0)): peer closed.
    pub fn try_fill(&mut self, size: usize, metrics: &WorkerMetrics) -> io::Result<Option<usize>> {
        let read = match self.input.spare(size) {
            [] => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "read buffer full",
            )),
            spare => self.stream.try_read(spare),
        };
        match read {
            Ok(n) => {
                self.received(n, metrics);
                Ok(Some(n))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.input.release_if_empty();
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn received(&mut self, n: usize, metrics: &WorkerMetrics) {
        self.input.filled(n);
        self.received_seq = READ_SEQ.with(|seq| {
            let this = seq.get();
            seq.set(this + 1);
            this
        });
        metrics.bytes_in.add_local(n as u64);
    }
}
