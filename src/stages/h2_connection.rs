//! The HTTP/2 connection stage. A connection that speaks HTTP/2 (ALPN `h2`
//! after a TLS handshake, or the h2c preface on a plain listener) is pushed
//! onto this stage's per-worker queue; a loop per worker gives each one a
//! green thread that owns the socket, the HPACK state and flow control
//! (the `h2` crate, on this runtime through `AsyncStream`).
//!
//! Each stream's request goes down the line like any other request: it
//! becomes a `Conn` whose stream is one end of an in-memory pipe and whose
//! read buffer holds the request as an HTTP/1.1 preamble
//! (`http::h2_mapping`), pushed onto the worker's pending queue. The same
//! dispatcher and handler serve it; the handler's HTTP/1.1 response comes
//! back through the pipe, and this stage sends it as HEADERS and DATA
//! under the client's flow control. A pipe holds at most
//! [`STREAM_BUFFER`] bytes each way, so a client that does not read holds
//! a bounded amount of memory per stream, and its handler meets the write
//! timeout as with a slow HTTP/1.1 reader.

use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::{Buf, Bytes};
use h2::server::SendResponse;
use h2::{Reason, RecvStream, SendStream};
use http::{Method, Request, StatusCode};

use crate::config::{Client, Config, Overload};
use crate::http::h2_mapping::{self, Head, RequestBody, ResponseBody};
use crate::http::{ChunkedDecoder, Step};
use crate::runtime::{self, pipe, timeout, timeout_at, AsyncStream, Handle, PipeEnd, Stream};
use crate::service::read_buffer_size;
use crate::service::status::Http2Report;

use super::conn::WorkerQueues;
use super::h2_guard::{Guarded, Meter};
use super::pending::admit;
use super::{Conn, Line};

/// Bytes a stream's pipe holds each way: what one stream's response may
/// hold in memory while the client's window is shut.
pub const STREAM_BUFFER: usize = 32 * 1024;
/// Resets a client may cause beyond the responses it lets finish: more,
/// and it is sent GOAWAY with ENHANCE_YOUR_CALM (CVE-2023-44487).
pub(crate) const RESET_BUDGET: u64 = 200;
/// A response head longer than this is not one the handler writes.
const MAX_HEAD: usize = 64 * 1024;

/// The stage: its queues and figures.
pub struct Http2 {
    queues: WorkerQueues,
    pub(crate) connections: AtomicU64,
    pub(crate) streams_open: AtomicU64,
    pub(crate) streams_waiting: AtomicU64,
    pub(crate) streams: AtomicU64,
    pub(crate) calmed: AtomicU64,
}

/// What one connection's streams know of it.
struct Origin {
    peer: Option<std::net::SocketAddr>,
    secure: bool,
    /// The SNI name of the connection: each stream's, for `[[sites]]`.
    server_name: Option<Arc<str>>,
    proxied: Option<Client>,
    /// Resets the client may still cause (see [`RESET_BUDGET`]).
    resets_left: std::cell::Cell<u64>,
}

impl Http2 {
    /// A stage for `workers` workers, each queue holding `capacity` connections.
    pub fn new(workers: usize, capacity: usize) -> Http2 {
        Http2 {
            queues: WorkerQueues::new(workers, capacity),
            connections: AtomicU64::new(0),
            streams_open: AtomicU64::new(0),
            streams_waiting: AtomicU64::new(0),
            streams: AtomicU64::new(0),
            calmed: AtomicU64::new(0),
        }
    }

    /// Takes a connection that speaks HTTP/2 onto the calling worker's
    /// queue, by the overload policy (a full queue under `reject` closes it).
    pub async fn admit(&self, line: &Line, conn: Conn) {
        let worker = runtime::current_worker().unwrap_or(0);
        let queue = self.queues.of(worker);
        match line.config.load().queue.overload {
            Overload::Wait | Overload::Codel => queue.send(conn).await,
            Overload::Reject => drop(queue.try_send(conn)),
        }
    }

    /// Starts the loop on every worker that gives each queued connection a
    /// green thread.
    pub fn start(self: &Arc<Self>, runtime: &Handle, line: &Arc<Line>) {
        WorkerQueues::start(self, |s| &s.queues, Self::serve, runtime, line);
    }

    /// The figures `/status` shows.
    pub fn snapshot(&self) -> Http2Report {
        Http2Report {
            connections: self.connections.load(Ordering::Relaxed),
            streams_open: self.streams_open.load(Ordering::Relaxed),
            streams_waiting: self.streams_waiting.load(Ordering::Relaxed),
            streams: self.streams.load(Ordering::Relaxed),
            calmed: self.calmed.load(Ordering::Relaxed),
        }
    }

    /// Runs one connection: the handshake (SETTINGS) within the header
    /// timeout, then streams until the client goes, the connection idles
    /// past `timeouts.keepalive_idle`, or the server stops (GOAWAY, then
    /// the streams in flight finish).
    async fn serve(self: Arc<Self>, conn: Conn, line: Arc<Line>) {
        if line.shutdown.is_set() {
            return;
        }
        if line.config.load().http2.engine == crate::config::Http2Engine::Native {
            return super::h2_native::serve(self, conn, line).await;
        }
        let config = line.config.load();
        let origin = Rc::new(Origin {
            peer: conn.stream.peer_addr(),
            secure: conn.stream.is_secure(),
            server_name: conn.stream.with_server_name(|name| name.map(Arc::from)),
            proxied: conn.proxied(),
            resets_left: std::cell::Cell::new(RESET_BUDGET),
        });
        let deadline = conn.ready_since + config.timeouts.header_read;
        let (stream, input, _slot) = conn.into_parts();
        let builder = builder(&config);
        let meter = Meter::new();
        let io = Guarded::new(AsyncStream::new(stream, input), meter.clone());
        let handshake = builder.handshake::<_, Bytes>(io);
        let Ok(Ok(mut connection)) = timeout_at(deadline, handshake).await else {
            return;
        };
        let _open = Gauge::up(&self.connections);
        let (idle, write_limit) = (config.timeouts.keepalive_idle, config.timeouts.write);
        drop(config);
        let mut stop = std::pin::pin!(line.shutdown.wait());
        let (mut stopping, mut calmed, mut closing) = (false, false, false);
        let mut idle_timer: Option<runtime::Sleep> = None;
        let mut stall_timer: Option<(std::time::Instant, runtime::Sleep)> = None;
        loop {
            let event = poll_fn(|cx| {
                if let Poll::Ready(next) = connection.poll_accept(cx) {
                    return Poll::Ready(Event::Accepted(next));
                }
                if !calmed && (origin.resets_left.get() == 0 || meter.exhausted()) {
                    return Poll::Ready(Event::Calm);
                }
                match meter.blocked_since() {
                    Some(since) => {
                        if stall_timer.as_ref().is_none_or(|(s, _)| *s != since) {
                            stall_timer = Some((since, runtime::sleep_until(since + write_limit)));
                        }
                        if let Some((_, timer)) = stall_timer.as_mut() {
                            if std::pin::Pin::new(timer).poll(cx).is_ready() {
                                return Poll::Ready(Event::Stalled);
                            }
                        }
                    }
                    None => stall_timer = None,
                }
                if !stopping && stop.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Event::Stop);
                }
                if stopping && !closing && !connection.has_streams() {
                    return Poll::Ready(Event::Drained);
                }
                if connection.has_streams() || stopping {
                    idle_timer = None;
                } else {
                    let timer = idle_timer.get_or_insert_with(|| runtime::sleep(idle));
                    if std::pin::Pin::new(timer).poll(cx).is_ready() {
                        return Poll::Ready(Event::Idle);
                    }
                }
                Poll::Pending
            })
            .await;
            match event {
                Event::Accepted(Some(Ok((request, respond)))) => {
                    idle_timer = None;
                    self.streams.fetch_add(1, Ordering::Relaxed);
                    let stream =
                        self.clone()
                            .exchange(line.clone(), origin.clone(), request, respond);
                    runtime::spawn_detached(stream);
                    // Draining: where an HTTP/1.1 response says
                    // `Connection: close`, GOAWAY sends the client's next
                    // requests to a new connection (another replica); the
                    // streams in flight finish.
                    if !stopping && line.readiness.is_draining() {
                        connection.graceful_shutdown();
                        stopping = true;
                    }
                }
                Event::Accepted(_) | Event::Stalled => return,
                Event::Calm => {
                    self.calmed.fetch_add(1, Ordering::Relaxed);
                    connection.abrupt_shutdown(Reason::ENHANCE_YOUR_CALM);
                    (calmed, stopping) = (true, true);
                }
                Event::Stop | Event::Idle => {
                    connection.graceful_shutdown();
                    stopping = true;
                }
                Event::Drained => {
                    // The streams in flight are done (their frames are
                    // queued): GOAWAY names the last one, and the
                    // connection closes once it is written, without
                    // waiting on the client's answer to the graceful PING.
                    connection.abrupt_shutdown(Reason::NO_ERROR);
                    closing = true;
                }
            }
        }
    }

    /// One stream: its request down the line, its response back.
    async fn exchange(
        self: Arc<Self>,
        line: Arc<Line>,
        origin: Rc<Origin>,
        request: Request<RecvStream>,
        mut respond: SendResponse<Bytes>,
    ) {
        let _open = Gauge::up(&self.streams_open);
        let (parts, body) = request.into_parts();
        let size = read_buffer_size(&line.config.load());
        let (handler_end, ours) = pipe(STREAM_BUFFER);
        let stream = Stream::pipe(handler_end, origin.peer, origin.secure)
            .naming(origin.server_name.clone());
        let Some((conn, framing)) =
            stream_conn(&parts, body.is_end_stream(), stream, &origin, size)
        else {
            let refusal = h2_mapping::empty_response(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
            let _ = respond.send_response(refusal, true);
            return;
        };
        let ours = Rc::new(ours);
        if framing != RequestBody::None {
            runtime::spawn_detached(pump_body(body, ours.clone(), framing));
        }
        let waiting = Gauge::up(&self.streams_waiting);
        admit(&line, line.local_pending(), conn).await;
        let write_limit = line.config.load().timeouts.write;
        let sent = respond_from(&ours, &mut respond, &parts.method, waiting, write_limit).await;
        match sent {
            Ok(()) => {
                let left = origin.resets_left.get();
                origin
                    .resets_left
                    .set(left.saturating_add(1).min(RESET_BUDGET));
            }
            Err(Cut::H2(e)) if e.is_remote() || e.reason() == Some(Reason::CANCEL) => {
                origin
                    .resets_left
                    .set(origin.resets_left.get().saturating_sub(1));
            }
            Err(Cut::Stalled) => respond.send_reset(Reason::CANCEL),
            Err(_) => respond.send_reset(Reason::INTERNAL_ERROR),
        }
    }
}

/// Why a stream's response stopped short.
enum Cut {
    /// An error of the h2 crate's: the client reset the stream, the
    /// connection ended, or (ours) the handler's response broke off.
    H2(h2::Error),
    /// The client's window stayed shut for `timeouts.write`.
    Stalled,
}

impl From<h2::Error> for Cut {
    fn from(e: h2::Error) -> Cut {
        Cut::H2(e)
    }
}

impl From<Reason> for Cut {
    fn from(reason: Reason) -> Cut {
        Cut::H2(reason.into())
    }
}

/// What `poll_accept` gives: a stream's request and its response handle,
/// a connection error, or None once the connection is done.
type Accepted = Option<Result<(Request<RecvStream>, SendResponse<Bytes>), h2::Error>>;

/// What wakes a connection's green thread. Large, but one lives on its
/// stack at a time: boxing it would cost an allocation per stream.
#[allow(clippy::large_enum_variant)]
enum Event {
    Accepted(Accepted),
    /// The client spent its reset or frame budget.
    Calm,
    /// The socket took nothing for `timeouts.write`.
    Stalled,
    /// Stopping, and no stream is left.
    Drained,
    Stop,
    Idle,
}

/// The connection settings: the stream limit from the config, the header
/// list as large as the handler accepts (a larger one is refused before
/// it is decoded in full), send buffers no larger than a pipe.
fn builder(config: &Config) -> h2::server::Builder {
    let mut builder = h2::server::Builder::new();
    let header_list = config.limits.max_request_line + config.limits.max_header_bytes;
    builder
        .max_concurrent_streams(config.http2.max_concurrent_streams)
        .max_header_list_size(u32::try_from(header_list).unwrap_or(u32::MAX))
        .max_send_buffer_size(STREAM_BUFFER)
        .initial_window_size(1 << 20)
        .initial_connection_window_size(1 << 20)
        .max_local_error_reset_streams(Some(1024));
    builder
}

thread_local! {
    /// Where a stream's preamble is written before it is copied into the
    /// stream's read buffer: one per worker, so it costs a stream no
    /// allocation.
    static PREAMBLE: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(1024));
}

/// The stream's request as a `Conn` on `stream`, its read buffer (of
/// `size` bytes) holding the request's HTTP/1.1 preamble, and how the body
/// follows; None if the preamble does not fit.
fn stream_conn(
    parts: &http::request::Parts,
    end_of_stream: bool,
    stream: Stream,
    origin: &Origin,
    size: usize,
) -> Option<(Conn, RequestBody)> {
    PREAMBLE.with(|preamble| {
        let mut preamble = preamble.borrow_mut();
        preamble.clear();
        let framing = h2_mapping::write_preamble(
            &parts.method,
            &parts.uri,
            &parts.headers,
            end_of_stream,
            &mut preamble,
        );
        let made = (preamble.len() <= size).then(|| {
            (
                Conn::for_stream(stream, origin.proxied, &preamble, size),
                framing,
            )
        });
        if preamble.capacity() > 16 * 1024 {
            *preamble = Vec::with_capacity(1024);
        }
        made
    })
}

/// Copies a request's body into the pipe, re-framed as chunks when the
/// client sent no length; each piece's window goes back to the client once
/// the pipe took it, so the handler's reading paces the client.
async fn pump_body(mut body: RecvStream, to_handler: Rc<PipeEnd>, framing: RequestBody) {
    let mut chunk = Vec::new();
    while let Some(data) = poll_fn(|cx| body.poll_data(cx)).await {
        let Ok(data) = data else { return };
        let len = data.len();
        let piece: &[u8] = match framing {
            RequestBody::Chunked => {
                chunk.clear();
                crate::http::chunked::push_chunk(&mut chunk, &data);
                &chunk
            }
            _ => &data,
        };
        if write_all(&to_handler, piece).await.is_err() {
            return;
        }
        let _ = body.flow_control().release_capacity(len);
    }
    if framing == RequestBody::Chunked {
        let _ = write_all(&to_handler, b"0\r\n\r\n").await;
    }
}

async fn write_all(end: &PipeEnd, mut buf: &[u8]) -> std::io::Result<()> {
    while !buf.is_empty() {
        let n = end.write(buf).await?;
        buf = &buf[n..];
    }
    Ok(())
}

/// What the handler wrote, taken whole; None once it has closed its end.
async fn take(end: &PipeEnd) -> Option<Vec<u8>> {
    poll_fn(|cx| end.poll_take(cx)).await
}

/// Reads the handler's response from the pipe and sends it on the stream;
/// a client that keeps the stream's window shut for `limit` (the write
/// timeout) has it reset.
async fn respond_from(
    ours: &PipeEnd,
    respond: &mut SendResponse<Bytes>,
    method: &Method,
    waiting: Gauge<'_>,
    limit: Duration,
) -> Result<(), Cut> {
    let mut buf = Bytes::new();
    let (response, body, len) = loop {
        let Some(more) = take(ours).await else {
            return Err(Reason::INTERNAL_ERROR.into());
        };
        buf = match buf.is_empty() {
            true => Bytes::from(more),
            // A head in pieces (rare): joined. Nothing holds a slice of
            // `buf` when the head is partial, so this takes its Vec back.
            false => {
                let mut joined = Vec::from(std::mem::take(&mut buf));
                joined.extend_from_slice(&more);
                Bytes::from(joined)
            }
        };
        match head_of(&mut buf, method) {
            Ok(Some(head)) => break head,
            Ok(None) if buf.len() < MAX_HEAD => {}
            _ => return Err(Reason::INTERNAL_ERROR.into()),
        }
    };
    drop(waiting);
    let mut send = respond.send_response(response, body == ResponseBody::Empty)?;
    let mut rest = buf;
    rest.advance(len);
    match body {
        ResponseBody::Empty => Ok(()),
        ResponseBody::Length(n) => send_length(ours, &mut send, rest, n, limit).await,
        ResponseBody::Chunked => send_chunked(ours, &mut send, rest, limit).await,
        ResponseBody::UntilEnd => {
            send_data(&mut send, rest, false, limit).await?;
            while let Some(more) = take(ours).await {
                send_data(&mut send, Bytes::from(more), false, limit).await?;
            }
            Ok(send.send_data(Bytes::new(), true)?)
        }
    }
}

/// The final head at the front of `buf`, interim (1xx) heads dropped.
fn head_of(
    buf: &mut Bytes,
    method: &Method,
) -> Result<Option<(http::Response<()>, ResponseBody, usize)>, httparse::Error> {
    loop {
        match h2_mapping::parse_response_head(buf, method)? {
            Head::Partial => return Ok(None),
            Head::Interim(len) => buf.advance(len),
            Head::Final {
                response,
                body,
                len,
            } => return Ok(Some((response, body, len))),
        }
    }
}

async fn send_length(
    ours: &PipeEnd,
    send: &mut SendStream<Bytes>,
    mut rest: Bytes,
    mut left: u64,
    limit: Duration,
) -> Result<(), Cut> {
    loop {
        let take_now = usize::try_from(left).map_or(rest.len(), |l| l.min(rest.len()));
        let piece = rest.split_to(take_now);
        left -= piece.len() as u64;
        send_data(send, piece, left == 0, limit).await?;
        if left == 0 {
            return Ok(());
        }
        match take(ours).await {
            Some(more) => rest = Bytes::from(more),
            None => return Err(Reason::INTERNAL_ERROR.into()),
        }
    }
}

async fn send_chunked(
    ours: &PipeEnd,
    send: &mut SendStream<Bytes>,
    mut rest: Bytes,
    limit: Duration,
) -> Result<(), Cut> {
    let mut decoder = ChunkedDecoder::new();
    loop {
        match decoder.step(&rest) {
            Ok(Step::Data(range)) => {
                let piece = rest.slice(range.clone());
                rest.advance(range.end);
                send_data(send, piece, false, limit).await?;
            }
            Ok(Step::Skip(n)) => rest.advance(n),
            Ok(Step::Done(_)) => return Ok(send.send_data(Bytes::new(), true)?),
            Ok(Step::NeedMore) => match take(ours).await {
                Some(more) => {
                    let mut joined = Vec::with_capacity(rest.len() + more.len());
                    joined.extend_from_slice(&rest);
                    joined.extend_from_slice(&more);
                    rest = Bytes::from(joined);
                }
                None => return Err(Reason::INTERNAL_ERROR.into()),
            },
            Err(_) => return Err(Reason::INTERNAL_ERROR.into()),
        }
    }
}

/// Sends `data` as the client's window allows, ending the stream with
/// the last piece if `end`. A window that stays shut for `limit` (the
/// write timeout) cuts the stream, as a slow HTTP/1.1 reader is cut.
async fn send_data(
    send: &mut SendStream<Bytes>,
    mut data: Bytes,
    end: bool,
    limit: Duration,
) -> Result<(), Cut> {
    if data.is_empty() {
        return match end {
            true => Ok(send.send_data(data, true)?),
            false => Ok(()),
        };
    }
    while !data.is_empty() {
        send.reserve_capacity(data.len());
        let mut granted = send.capacity();
        while granted == 0 {
            granted = match timeout(limit, poll_fn(|cx| send.poll_capacity(cx))).await {
                Ok(Some(granted)) => granted?,
                Ok(None) => return Err(Reason::CANCEL.into()),
                Err(_) => return Err(Cut::Stalled),
            };
        }
        let piece = data.split_to(granted.min(data.len()));
        send.send_data(piece, end && data.is_empty())?;
    }
    Ok(())
}

/// A gauge held up while this lives.
pub(super) struct Gauge<'a>(&'a AtomicU64);

impl Gauge<'_> {
    pub(super) fn up(gauge: &AtomicU64) -> Gauge<'_> {
        gauge.fetch_add(1, Ordering::Relaxed);
        Gauge(gauge)
    }
}

impl Drop for Gauge<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
