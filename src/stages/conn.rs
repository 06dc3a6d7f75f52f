//! `Conn`: what travels between stages — a socket, the bytes read ahead of the
//! next request, and per-connection state.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Client;
use crate::http::{Limits, Request};
use crate::metrics::{Metrics, WorkerMetrics};
use crate::runtime::pooled::PooledBox;
use crate::runtime::{timeout_at, Handle, Queue, ReadBuffer, Stream};

use super::per_client::ClientHold;
use super::Line;

/// The connection limit (`limits.max_connections`): free slots, and the
/// gauge of open connections.
pub struct ConnectionSlots {
    free: Queue<()>,
    metrics: Arc<Metrics>,
}

impl ConnectionSlots {
    pub(crate) fn new(max_connections: usize, metrics: Arc<Metrics>) -> Arc<ConnectionSlots> {
        let free = Queue::bounded(max_connections);
        for _ in 0..max_connections {
            let _ = free.try_send(());
        }
        Arc::new(ConnectionSlots { free, metrics })
    }

    /// A free slot, if there is one.
    pub fn try_take(self: &Arc<Self>) -> Option<ConnectionSlot> {
        self.free.try_recv().map(|()| ConnectionSlot::new(self))
    }

    /// The next free slot, parking until one is given back.
    pub async fn take(self: &Arc<Self>) -> ConnectionSlot {
        self.free.recv().await;
        ConnectionSlot::new(self)
    }
}

/// One open connection's slot: given back, and the gauge kept right,
/// however the connection ends. One pointer: every idle connection has one.
pub struct ConnectionSlot(Arc<ConnectionSlots>);

impl ConnectionSlot {
    fn new(slots: &Arc<ConnectionSlots>) -> ConnectionSlot {
        WorkerMetrics::inc(&slots.metrics.here().open);
        ConnectionSlot(slots.clone())
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        WorkerMetrics::dec(&self.0.metrics.here().open);
        let _ = self.0.free.try_send(());
    }
}

/// A stage's per-worker queues of connections, each drained by a loop
/// on its worker that gives every connection a green thread of its own
/// (the handshake and HTTP/2 stages).
pub(crate) struct WorkerQueues(Vec<Queue<Conn>>);

impl WorkerQueues {
    /// One queue per worker, each holding `capacity` connections.
    pub(crate) fn new(workers: usize, capacity: usize) -> WorkerQueues {
        WorkerQueues(
            (0..workers.max(1))
                .map(|_| Queue::bounded(capacity.max(1)))
                .collect(),
        )
    }

    /// `worker`'s queue.
    pub(crate) fn of(&self, worker: usize) -> &Queue<Conn> {
        &self.0[worker % self.0.len()]
    }

    /// The queues' depth and capacity, summed over the workers.
    pub(crate) fn depth_and_capacity(&self) -> (u64, u64) {
        self.0
            .iter()
            .map(Queue::snapshot)
            .fold((0, 0), |(d, c), s| {
                (d + s.depth, c + s.capacity.unwrap_or(0))
            })
    }

    /// Starts, on every worker, the loop that runs `run` for each
    /// connection of the stage (`queues` finds its queues) on a green
    /// thread of its own.
    pub(crate) fn start<S, F>(
        stage: &Arc<S>,
        queues: fn(&S) -> &WorkerQueues,
        run: fn(Arc<S>, Conn, Arc<Line>) -> F,
        runtime: &Handle,
        line: &Arc<Line>,
    ) where
        S: Send + Sync + 'static,
        F: std::future::Future<Output = ()> + 'static,
    {
        for worker in 0..runtime.workers() {
            let (stage, line) = (stage.clone(), line.clone());
            runtime
                .spawn_on(worker, async move {
                    let queue = queues(&stage).of(worker);
                    loop {
                        let conn = queue.recv().await;
                        crate::runtime::spawn_detached(run(stage.clone(), conn, line.clone()));
                    }
                })
                .detach();
        }
    }
}

/// What a lingering close reads and drops at most, past which the client
/// is not waiting for an answer anyway (nginx bounds it by time only).
pub const LINGER_BYTES: u64 = 64 * 1024 * 1024;

/// What a connection holds while it is open, apart from it: dropped, the
/// slot and the client's hold are given back.
pub(crate) struct Held {
    _slot: Option<ConnectionSlot>,
    _extra: Option<PooledBox<Extra>>,
}

/// What only some connections carry; see [`Conn`]'s `extra`.
#[derive(Default)]
struct Extra {
    /// What its PROXY protocol header said of the client (`proxy.protocol`);
    /// None until read, and always without the protocol.
    proxied: Option<Client>,
    /// Counts against its client's connections
    /// (`limits.per_client.connections`) until the connection closes; it
    /// goes where the connection goes (to the HTTP/2 stage).
    hold: Option<ClientHold>,
    /// The request of the preamble in `input`, when the stage that wrote
    /// it built it too (HTTP/2): the handler need not parse it again. With
    /// the limits it was built under: a reload may change them before the
    /// handler takes it.
    request: Option<(PooledBox<Request>, Limits)>,
}

/// A client connection on its way along the line.
pub struct Conn {
    /// The client's socket, non-blocking.
    pub stream: Stream,
    /// Bytes read ahead of the next request; also numbers the last read
    /// (`ReadBuffer::received_seq`).
    pub input: ReadBuffer,
    /// Requests served so far on this connection.
    pub requests: u32,
    /// Requests the handler may answer this turn before it gives the
    /// connection back to the line: what the per-client rate step
    /// admitted (`per_client_step`); `u32::MAX` without a rate.
    pub admitted: u32,
    /// When the connection was accepted or last became readable again.
    pub ready_since: Instant,
    /// When the connection was accepted: its first request's headers are
    /// due `timeouts.header_read` after this, however it trickles them.
    pub accepted: Instant,
    /// What few connections carry (a PROXY header's client, a hold on
    /// the client's connection count, an HTTP/2 stream's request). Boxed:
    /// 8 bytes on every idle connection (a `Conn` stays 128 bytes, moved
    /// inline), allocated only when there is something to carry; pooled,
    /// as every HTTP/2 stream makes and drops one.
    extra: Option<PooledBox<Extra>>,
    /// None for a request multiplexed on a connection that holds one.
    _slot: Option<ConnectionSlot>,
}

impl Conn {
    /// A fresh connection holding `slot` until it is dropped: no bytes
    /// buffered, no requests served, ready as of the worker's current turn.
    pub fn new(stream: Stream, slot: ConnectionSlot) -> Conn {
        let now = crate::runtime::now();
        Conn {
            stream,
            input: ReadBuffer::default(),
            requests: 0,
            admitted: u32::MAX,
            ready_since: now,
            accepted: now,
            extra: None,
            _slot: Some(slot),
        }
    }

    /// The connection, counting against its client's connections until
    /// it closes.
    pub fn held_by(mut self, hold: Option<ClientHold>) -> Conn {
        self.hold(hold);
        self
    }

    /// Before the handler reads more of a turn's input: the rate step
    /// counted none of the requests in it, so none is admitted this turn
    /// (it comes round through the step). Only reached with nothing
    /// answered; were the step ever to count a request the handler then
    /// found incomplete, it would not answer later ones in its place.
    pub(crate) fn admit_none_unread(&mut self) {
        if self.admitted != u32::MAX {
            self.admitted = 0;
        }
    }

    /// Whether it counts against a client's connections already.
    pub(crate) fn is_held(&self) -> bool {
        self.extra.as_ref().is_some_and(|e| e.hold.is_some())
    }

    /// Counts it against its client's connections (the one its PROXY
    /// header named) until it closes, wherever it goes.
    pub(crate) fn hold(&mut self, hold: Option<ClientHold>) {
        if hold.is_some() {
            self.extra.get_or_insert_with(PooledBox::default).hold = hold;
        }
    }

    /// What the connection's PROXY protocol header said of the client.
    pub fn proxied(&self) -> Option<Client> {
        self.extra.as_ref().and_then(|e| e.proxied)
    }

    /// Records what the PROXY protocol header said of the client.
    pub(crate) fn set_proxied(&mut self, client: Client) {
        self.extra.get_or_insert_with(PooledBox::default).proxied = Some(client);
    }

    /// One request multiplexed on a connection (an HTTP/2 stream): its
    /// preamble already buffered in a read buffer of `size` bytes (or
    /// the preamble's size, if larger), no slot of its own.
    pub fn for_stream(
        stream: Stream,
        proxied: Option<Client>,
        preamble: &[u8],
        size: usize,
    ) -> Conn {
        Conn::for_stream_with(stream, proxied, preamble.len(), size, |spare| {
            let n = spare.len().min(preamble.len());
            spare[..n].copy_from_slice(&preamble[..n]);
            n
        })
    }

    /// [`Conn::for_stream`] with a preamble of `len` bytes that `write`
    /// puts straight into the read buffer (at most the room it is given;
    /// it says how much it wrote): no copy of it is made first.
    pub fn for_stream_with(
        stream: Stream,
        proxied: Option<Client>,
        len: usize,
        size: usize,
        write: impl FnOnce(&mut [u8]) -> usize,
    ) -> Conn {
        let now = crate::runtime::now();
        let mut input = ReadBuffer::default();
        let n = write(input.spare(size.max(len)));
        input.filled(n);
        Conn {
            stream,
            input,
            requests: 0,
            admitted: u32::MAX,
            ready_since: now,
            accepted: now,
            extra: proxied.map(|proxied| {
                PooledBox::new(Extra {
                    proxied: Some(proxied),
                    ..Extra::default()
                })
            }),
            _slot: None,
        }
    }

    /// Gives the connection the request of the preamble it was made with
    /// ([`Conn::for_stream_with`]), as its writer built it under `limits`.
    pub(crate) fn set_request(&mut self, request: Option<PooledBox<Request>>, limits: Limits) {
        if let Some(request) = request {
            let extra = self.extra.get_or_insert_with(PooledBox::default);
            extra.request = Some((request, limits));
        }
    }

    /// The request set with [`Conn::set_request`], once: if no request was
    /// answered yet (the per-client step may have answered it 429 and
    /// consumed its preamble) and it was built under `limits`, the
    /// handler's; else None, and the handler parses what is buffered.
    pub(crate) fn take_request(&mut self, limits: &Limits) -> Option<PooledBox<Request>> {
        let (request, built_under) = self.extra.as_mut()?.request.take()?;
        (self.requests == 0 && built_under == *limits).then_some(request)
    }

    /// The stream, the bytes read ahead, and what the connection holds
    /// while open (its slot, its client's hold), for a stage that takes the
    /// connection over (HTTP/2).
    pub(crate) fn into_parts(self) -> (Stream, ReadBuffer, Held) {
        let held = Held {
            _slot: self._slot,
            _extra: self.extra,
        };
        (self.stream, self.input, held)
    }

    /// The client's address. Asked of the kernel when needed (access log)
    /// rather than kept: every byte of a `Conn` is paid per idle connection.
    pub fn peer(&self) -> Option<SocketAddr> {
        self.stream.peer_addr()
    }

    /// The client apart from any request: what the PROXY protocol header
    /// said, or the peer (an IP address, `Unix` on a Unix-domain socket,
    /// `Unknown`). A request's client, which `X-Forwarded-For` may name,
    /// is `Exchange::client`. Displays as the access log writes it.
    pub fn client(&self) -> Client {
        match self.proxied() {
            Some(client) => client,
            None => crate::service::client::peer_of(&self.stream),
        }
    }

    /// Reads more bytes into the input buffer (of `size` bytes), by
    /// `deadline`. Ok(0) means the peer closed; a full buffer is an error.
    pub(crate) async fn fill(
        &mut self,
        size: usize,
        deadline: Instant,
        metrics: &WorkerMetrics,
    ) -> io::Result<usize> {
        let n = self.input.read_from(&self.stream, size, deadline).await?;
        metrics.bytes_in.add_local(n as u64);
        Ok(n)
    }

    /// Reads what has arrived without waiting: None if nothing has (and
    /// then the connection holds no read buffer). Ok(Some(0)): peer closed.
    pub(crate) fn try_fill(
        &mut self,
        size: usize,
        metrics: &WorkerMetrics,
    ) -> io::Result<Option<usize>> {
        let read = self.input.try_read_from(&self.stream, size)?;
        if let Some(n) = read {
            metrics.bytes_in.add_local(n as u64);
        }
        Ok(read)
    }

    /// Closes as nginx's `lingering_close` does: a FIN, then what the
    /// client still sends is read and dropped until it closes too, for at
    /// most `limit` (`timeouts.lingering`) and [`LINGER_BYTES`]. Closing with unread bytes would
    /// make the kernel answer with a reset, and a reset can destroy the
    /// response still in flight (a 400 followed by more pipelined
    /// requests, a 413 whose body is still coming).
    pub(crate) async fn close_lingering(self, limit: Duration) {
        if limit.is_zero() || self.stream.shutdown_write().is_err() {
            return;
        }
        let deadline = crate::runtime::now() + limit;
        let mut scratch = [0u8; 4096];
        let mut left = LINGER_BYTES;
        while left > 0 {
            match timeout_at(deadline, self.stream.read_to_discard(&mut scratch)).await {
                Ok(Ok(n)) if n > 0 => left = left.saturating_sub(n as u64),
                _ => break,
            }
        }
    }
}
#[cfg(test)]
mod size {
    /// A `Conn` moves between queues several times per keep-alive
    /// request: at 128 bytes the moves are inline; at 136 (HTTP/2's
    /// transport tag) each was a call to memcpy, +3 % instructions per
    /// HTTP/1.1 request (callgrind).
    #[test]
    fn a_conn_stays_within_128_bytes() {
        assert!(std::mem::size_of::<super::Conn>() <= 128);
    }
}

#[cfg(test)]
mod built_request {
    use super::Conn;
    use crate::http::{parse_request, Limits};
    use crate::runtime::pooled::PooledBox;
    use crate::runtime::{pipe, Stream};

    /// A stream's `Conn` with `preamble` buffered and its request built
    /// under `limits`, as the HTTP/2 stage makes it.
    fn stream_conn(preamble: &[u8], limits: Limits) -> Conn {
        let (end, _other) = pipe(1024);
        let stream = Stream::pipe(end, None, false);
        let mut conn = Conn::for_stream_with(stream, None, preamble.len(), 4096, |buf| {
            buf[..preamble.len()].copy_from_slice(preamble);
            preamble.len()
        });
        let built = parse_request(preamble, &limits).ok().flatten();
        conn.set_request(built.map(PooledBox::new), limits);
        conn
    }

    const GET: &[u8] = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n";

    #[test]
    fn taken_once_under_the_limits_it_was_built_under() {
        let limits = Limits::default();
        let mut conn = stream_conn(GET, limits);
        assert!(conn.take_request(&limits).is_some());
        assert!(conn.take_request(&limits).is_none());
    }

    #[test]
    fn not_taken_after_a_reload_changed_the_limits() {
        let mut conn = stream_conn(GET, Limits::default());
        let reloaded = Limits {
            max_headers: 0,
            ..Limits::default()
        };
        assert!(conn.take_request(&reloaded).is_none());
        // The handler's parse then answers under the new limits.
        assert!(parse_request(conn.input.pending(), &reloaded).is_err());
    }

    #[test]
    fn not_taken_once_a_request_was_answered() {
        // The per-client step answered it 429 and consumed its preamble.
        let limits = Limits::default();
        let mut conn = stream_conn(GET, limits);
        conn.requests = 1;
        conn.input.consume(GET.len());
        assert!(conn.take_request(&limits).is_none());
    }
}
