//! The preamble-pending queue: per worker and bounded, it holds connections
//! whose next request preamble is believed ready to read.
//!
//! Connections enter it three ways: fresh from the acceptor, recycled with
//! pipelined bytes already buffered, or recycled idle — then they wait in the
//! reactor (no handler, no read buffer) until readable, and only then enter.

use std::time::Instant;

use crate::config::Overload;
use crate::metrics::WorkerMetrics;
use crate::runtime::{self, stats::Counter, timeout, Full, Queue, QueueSnapshot, TcpStream};

use super::{Conn, Line};

pub struct PendingQueue {
    queue: Queue<Conn>,
    recycled: Counter,
}

/// A queue's counters for `/status`.
#[derive(Clone, Copy, Debug, Default)]
pub struct PendingSnapshot {
    pub queue: QueueSnapshot,
    pub recycled: u64,
}

impl PendingQueue {
    pub fn new(capacity: usize) -> PendingQueue {
        PendingQueue {
            queue: Queue::bounded(capacity),
            recycled: Counter::default(),
        }
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

    /// Takes the next ready connection, parking while there is none.
    pub async fn pop(&self) -> Conn {
        self.queue.recv().await
    }

    /// Puts a kept-alive connection back on the line once its next preamble
    /// may be read: at once if bytes are buffered, else when it becomes
    /// readable. An idle connection that stays silent for the keep-alive
    /// timeout, or is caught by shutdown, is closed.
    pub fn recycle(&self, mut conn: Conn, line: &Line) {
        self.recycled.add(1);
        WorkerMetrics::inc(&line.metrics.here().recycled);
        if conn.input.has_pending() {
            conn.ready_since = Instant::now();
            if let Err(conn) = self.try_push(conn) {
                let queue = self.queue.clone();
                runtime::spawn(async move { queue.send(conn).await }).detach();
            }
            return;
        }
        conn.input.release_if_empty();
        let queue = self.queue.clone();
        let idle = line.config.timeouts.keepalive_idle;
        let metrics = line.metrics.clone();
        WorkerMetrics::inc(&metrics.here().idle);
        runtime::spawn(async move {
            let readable = timeout(idle, conn.stream.readable()).await;
            WorkerMetrics::dec(&metrics.here().idle);
            if let Ok(Ok(())) = readable {
                conn.ready_since = Instant::now();
                queue.send(conn).await;
            }
        })
        .detach();
    }

    pub fn snapshot(&self) -> PendingSnapshot {
        PendingSnapshot {
            queue: self.queue.snapshot(),
            recycled: self.recycled.get(),
        }
    }
}

/// What an acceptor does with a new connection, by the overload policy.
pub async fn admit(line: &Line, pending: &PendingQueue, conn: Conn) {
    match line.config.queue.overload {
        Overload::Wait => pending.push(conn).await,
        Overload::Reject => {
            if let Err(conn) = pending.try_push(conn) {
                reject_stream(line, &conn.stream);
            }
        }
    }
}

/// Answers 503 with `Retry-After` and closes: the line is full.
pub fn reject_stream(line: &Line, stream: &TcpStream) {
    use std::io::Write;
    WorkerMetrics::inc(&line.metrics.here().rejected);
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
    let _ = stream.get_ref().write(&out);
}
