//! The preamble-pending queue: per worker and bounded, it holds connections
//! whose next request preamble is believed ready to read.
//!
//! Connections enter it three ways: fresh from the acceptor, recycled with
//! pipelined bytes already buffered, or recycled idle — then they wait in the
//! reactor (no handler, no read buffer) until readable, and only then enter.
//! A connection a handler finds with nothing to read (a new one whose
//! request has not arrived yet) is parked the same way.

use std::time::Duration;

use crate::config::Overload;
use crate::metrics::WorkerMetrics;
use crate::runtime::idle::{Arm, IdleSet, Ready};
use crate::runtime::{self, Full, Queue, QueueSnapshot, Stream};

use super::{Conn, Line};

/// One worker's bounded queue of connections whose next preamble may be
/// read, and the idle sets where the others wait until readable.
pub struct PendingQueue {
    queue: Queue<Conn>,
    /// Idle keep-alive connections, waiting to become readable; closed
    /// after `timeouts.keepalive_idle`.
    idle: IdleSet<Conn>,
    /// New connections that have sent nothing yet; closed after
    /// `timeouts.header_read`, like a request that never arrives.
    fresh: IdleSet<Conn>,
}

/// What a parked connection waits for: its first request, or its next one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Waiting {
    /// A new connection that has sent nothing yet (`timeouts.header_read`).
    FirstRequest,
    /// A kept-alive connection between requests (`timeouts.keepalive_idle`).
    KeepAlive,
}

/// A queue's counters for `/status`.
#[derive(Clone, Copy, Debug, Default)]
pub struct PendingSnapshot {
    /// The queue's depth, capacity and totals.
    pub queue: QueueSnapshot,
    /// Kept-alive connections put back through `recycle` by this worker.
    pub recycled: u64,
    /// Connections parked in the reactor until their next request arrives
    /// (idle keep-alive ones, and new ones that have sent nothing yet).
    pub idle: u64,
}

impl PendingQueue {
    /// `keepalive_idle`: how long an idle connection may stay silent;
    /// `header_read`: how long a new one may.
    pub fn new(capacity: usize, keepalive_idle: Duration, header_read: Duration) -> PendingQueue {
        let arm: Arm<Conn> = |conn, waker| conn.stream.arm_readable(waker);
        PendingQueue {
            queue: Queue::bounded(capacity),
            idle: IdleSet::new(arm, keepalive_idle),
            fresh: IdleSet::new(arm, header_read),
        }
    }

    fn parked(&self, waiting: Waiting) -> &IdleSet<Conn> {
        match waiting {
            Waiting::FirstRequest => &self.fresh,
            Waiting::KeepAlive => &self.idle,
        }
    }

    /// Moves parked connections that became readable onto the queue and
    /// closes those that stayed silent too long. One per worker and kind of
    /// wait, for the server's lifetime.
    pub async fn run_idle(&self, waiting: Waiting) {
        let parked = self.parked(waiting);
        let mut expired = 0u32;
        loop {
            match parked.next().await {
                Ready::Readable(mut conn) => {
                    conn.ready_since = runtime::now();
                    self.queue.send(conn).await;
                }
                Ready::Expired(conn) => {
                    drop(conn);
                    // Thousands may expire together (all parked in one
                    // burst): closing them must not hold the worker. 16
                    // closes take ~80 µs, well inside a scheduler tick.
                    expired = expired.wrapping_add(1);
                    if expired.is_multiple_of(16) {
                        runtime::yield_now().await;
                    }
                }
            }
        }
    }

    /// When this worker's longest-idle keep-alive connection would time out.
    pub fn oldest_idle(&self) -> Option<std::time::Instant> {
        self.idle.oldest_deadline()
    }

    /// Takes out this worker's longest-idle keep-alive connection (to close
    /// it: the server is out of slots or descriptors). Never one that holds
    /// a request, nor a new one that has sent nothing yet.
    pub fn evict_oldest_idle(&self) -> Option<Conn> {
        self.idle.take_oldest()
    }

    /// Queues a connection taken out of the idle set that turned out to hold
    /// its next request already.
    pub fn resume(&self, mut conn: Conn) {
        conn.ready_since = runtime::now();
        if let Err(conn) = self.try_push(conn) {
            let queue = self.queue.clone();
            runtime::spawn_detached(async move { queue.send(conn).await });
        }
    }

    /// Closes every parked connection (shutdown).
    pub fn close_idle(&self) {
        self.idle.clear();
        self.fresh.clear();
    }

    /// Pushes a new connection, parking while the queue is full (overload "wait").
    pub async fn push(&self, conn: Conn) {
        self.queue.send(conn).await
    }

    /// Pushes without waiting (overload "reject"); gives the connection back when full.
    // A `Conn` travels by value everywhere on the line; boxing it only here
    // would cost an allocation for nothing.
    #[allow(clippy::result_large_err)]
    pub fn try_push(&self, conn: Conn) -> Result<(), Conn> {
        self.queue.try_send(conn).map_err(|Full(conn)| conn)
    }

    /// Takes the next ready connection, parking while there is none. Not
    /// an `async fn`: its future is the queue's own, a layer fewer per
    /// request (callgrind: ~30 instructions).
    pub fn pop(&self) -> impl std::future::Future<Output = Conn> + '_ {
        self.queue.recv()
    }

    /// Puts a kept-alive connection back on the line once its next preamble
    /// may be read: at once if bytes are buffered or it is readable already,
    /// else it waits in the idle set — no green thread, no read buffer —
    /// until readable, or is closed after the keep-alive timeout.
    #[inline(always)]
    pub fn recycle(&self, conn: Conn, line: &Line) {
        line.metrics.here().recycled.bump();
        self.requeue(conn);
    }

    /// Puts back a connection a handler found nothing to read on (a new
    /// one whose request has not arrived): it waits in the reactor, holding
    /// no handler and no read buffer.
    pub fn park(&self, conn: Conn) {
        self.requeue(conn);
    }

    fn requeue(&self, mut conn: Conn) {
        if !conn.input.has_pending() {
            conn.input.release_if_empty();
            let waiting = match conn.requests {
                0 => Waiting::FirstRequest,
                _ => Waiting::KeepAlive,
            };
            match self.parked(waiting).park(conn) {
                Some(ready) => conn = ready,
                None => return,
            }
        }
        conn.ready_since = runtime::now();
        if let Err(conn) = self.try_push(conn) {
            let queue = self.queue.clone();
            runtime::spawn_detached(async move { queue.send(conn).await });
        }
    }

    /// `metrics`: the counters of this queue's worker, who alone recycles
    /// onto it (`Line::local_pending`), so its count is the queue's.
    pub fn snapshot(&self, metrics: &WorkerMetrics) -> PendingSnapshot {
        PendingSnapshot {
            queue: self.queue.snapshot(),
            recycled: metrics.recycled.get(),
            idle: (self.idle.len() + self.fresh.len()) as u64,
        }
    }
}

/// What an acceptor does with a new connection, by the overload policy.
pub async fn admit(line: &Line, pending: &PendingQueue, conn: Conn) {
    match line.config.load().queue.overload {
        Overload::Wait | Overload::Codel => pending.push(conn).await,
        Overload::Reject => {
            if let Err(conn) = pending.try_push(conn) {
                reject_stream(line, &conn.stream);
            }
        }
    }
}

/// Answers 503 with `Retry-After` and closes: the line is full.
pub fn reject_stream(line: &Line, stream: &Stream) {
    line.metrics.here().rejected.bump();
    let mut out = Vec::with_capacity(256);
    crate::http::write_error(
        &mut out,
        503,
        "server busy, retry shortly",
        false,
        &[("Retry-After", "1")],
    );
    // One non-blocking attempt: a client too slow to take 200 bytes gets
    // only the close.
    let _ = stream.write_now(&out);
}
