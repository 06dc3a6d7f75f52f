//! A native HTTP/2 connection: its loop, its frames in and out.

use std::future::{poll_fn, Future};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::http::hpack::Decoder;
use crate::http::Limits;
use crate::runtime::{self, Stream};

use super::frame::{self, Code, Header, MAX_FRAME};
use super::request::Scratch;
use super::stream::H2Stream;
use crate::stages::h2_connection::{Gauge, Http2, RESET_BUDGET};
use crate::stages::h2_guard::Meter;
use crate::stages::{Conn, Line};

/// Bytes of frames the server queues before it stops reading and taking
/// responses, until the socket takes them.
const OUT_LIMIT: usize = 64 * 1024;
/// The connection window the server grants (the streams' stay 65,535).
const CONNECTION_WINDOW: i64 = 1 << 20;
/// The stream window a client starts with (RFC 9113's default).
const STREAM_WINDOW: i64 = 65_535;
/// How long a connection with no stream keeps its buffers.
const RELEASE_AFTER: Duration = Duration::from_millis(100);
/// Reset budget (docs/http2.md): a reset after the response head, or a
/// stream error, costs 5 of 1,000 units; a finished response earns 5.
const LATE_RESET: u64 = 5;
/// One before it costs 1: its request, if queued, is dropped unrun.
const EARLY_RESET: u64 = 1;
const RESET_UNITS: u64 = RESET_BUDGET * LATE_RESET;
/// Streams a connection opens in a turn; then the worker's others run.
const TURN_STREAMS: usize = 32;
/// Pipes a connection keeps from closed streams for its next ones.
const SPARE_PIPES: usize = 16;

mod answer;
mod open;
mod recv;
mod timer;

use timer::Tally;

thread_local! {
    /// Where the socket is read: frames are taken from here, and only a
    /// frame's unread tail is kept by the connection.
    static SCRATCH: std::cell::RefCell<Box<[u8]>> =
        std::cell::RefCell::new(vec![0; 64 * 1024].into_boxed_slice());
    /// The output buffer of the connection that last wrote all it had:
    /// the next one to frame takes it, still in cache. Each keeping its
    /// own, 16 connections cycled 16 cold buffers (callgrind's cache
    /// simulator, h2c: 6 L1 misses per request more).
    static SPARE_OUT: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Why the connection ends.
enum End {
    /// Send GOAWAY with this code, then close.
    Error(Code),
    /// Close now: the socket failed or the client went.
    Close,
}

struct Connection {
    stream: Stream,
    /// Bytes of an incomplete frame (or preface) carried to the next read.
    carry: Vec<u8>,
    out: Vec<u8>,
    written: usize,
    /// Bytes of frames put straight into the TLS session since the last
    /// flush (large DATA payloads, see `Room::direct`).
    staged: usize,
    /// The TLS session refused bytes put straight into it.
    broken: bool,
    /// Whether the stream is a TLS session (large DATA goes straight in).
    direct: bool,
    decoder: Decoder,
    encoder: super::head_memo::Encoder,
    scratch: Scratch,
    /// A header block being gathered: its stream, END_STREAM, the bytes.
    gathering: Option<(u32, bool)>,
    block: Vec<u8>,
    /// Bytes of frame headers of the block being gathered.
    block_frames: usize,
    streams: Vec<H2Stream>,
    /// Pipes of closed streams, for the next ones (at most SPARE_PIPES).
    spares: Vec<runtime::Spare>,
    last_id: u32,
    /// Streams the server reset, whose frames in flight are ignored.
    reset_by_us: [u32; 16],
    reset_next: usize,
    window: i64,
    recv_window: i64,
    recv_unacked: i64,
    peer_initial: i64,
    max_frame: usize,
    preface: bool,
    settings_seen: bool,
    /// GOAWAY sent or received: no stream past this id is opened.
    goaway: Option<u32>,
    peer_gone: bool,
    /// What is left of the reset budget, in units of [`EARLY_RESET`].
    resets_left: u64,
    /// This turn's streams opened, reset early; one more waits? (TURN_STREAMS)
    turn_streams: usize,
    turn_resets: usize,
    turn_full: bool,
    /// No frame is read until then (`Connection::pace`).
    paused_until: Option<Instant>,
    streak: recv::Streak,
    meter: Rc<Meter>,
    max_streams: usize,
    header_limit: usize,
    write_limit: Duration,
    blocked_since: Option<Instant>,
    /// This turn's task waker, read buffer size and preamble limits
    /// (`Connection::turn`), for the streams it opens.
    turn_waker: Option<std::task::Waker>,
    turn_config: Option<(usize, Limits)>,
    /// Changes to the stage's stream figures, added to them once a turn.
    tally: Tally,
    origin: Origin,
    /// The connection's slot and its client's hold, kept while it is open.
    _held: crate::stages::conn::Held,
}

/// What each stream's `Conn` says of the connection.
struct Origin {
    peer: Option<std::net::SocketAddr>,
    secure: bool,
    server_name: Option<Arc<str>>,
    proxied: Option<crate::config::Client>,
}

/// Runs one connection until it ends.
pub(crate) async fn serve(stage: Arc<Http2>, conn: Conn, line: Arc<Line>) {
    if line.shutdown.is_set() {
        return;
    }
    let config = line.config.load();
    let handshake_by = conn.ready_since + config.timeouts.header_read;
    let idle = config.timeouts.keepalive_idle;
    let mut c = Connection::new(conn, &config);
    drop(config);
    let _open = Gauge::up(&stage.connections);
    let mut stop = std::pin::pin!(line.shutdown.wait());
    // The shutdown latch keeps the waker it is polled with until it is
    // set: polled once, then read (its poll scans every waiter).
    let mut watching = false;
    let mut timer = timer::Timer::default();
    let mut idle_since = runtime::now();
    let ended = poll_fn(|cx| {
        let stopped = match watching {
            true => line.shutdown.is_set(),
            false => stop.as_mut().poll(cx).is_ready(),
        };
        watching = true;
        if c.goaway.is_none() && stopped {
            c.go_away(Code::NoError);
        }
        if let Err(end) = c.turn(cx, &stage, &line) {
            // A turn that ended early settled none of its figures.
            c.tally.settle(&stage);
            return Poll::Ready(end);
        }
        let now = runtime::now();
        if !c.streams.is_empty() {
            idle_since = now;
        }
        let due = match c.due(now, idle_since, idle, handshake_by) {
            Ok(due) => due,
            Err(end) => return Poll::Ready(end),
        };
        timer.set(due, now, cx);
        Poll::Pending
    })
    .await;
    if let End::Error(code) = ended {
        c.go_away(code);
    }
    // What is queued (GOAWAY among it) goes out if the socket takes it.
    let _ = runtime::timeout(Duration::from_secs(1), poll_fn(|cx| c.poll_flush_out(cx))).await;
    for s in c.streams.drain(..) {
        c.tally.closed(&s);
    }
    c.tally.settle(&stage);
    let _ = c.stream.shutdown_write();
}

impl Connection {
    fn new(conn: Conn, config: &crate::config::Config) -> Connection {
        let origin = Origin {
            peer: conn.stream.peer_addr(),
            secure: conn.stream.is_secure(),
            server_name: conn.stream.with_server_name(|name| name.map(Arc::from)),
            proxied: conn.proxied(),
        };
        let (stream, input, held) = conn.into_parts();
        let direct = stream.is_secure() && !stream.is_pipe();
        let header_limit = config.limits.max_request_line + config.limits.max_header_bytes;
        let max_streams = config.http2.max_concurrent_streams;
        let mut out = Vec::new();
        frame::settings(
            &mut out,
            max_streams,
            u32::try_from(header_limit).unwrap_or(u32::MAX),
        );
        frame::window_update(&mut out, 0, (CONNECTION_WINDOW - STREAM_WINDOW) as u32);
        Connection {
            stream,
            carry: input.pending().to_vec(),
            out,
            written: 0,
            staged: 0,
            broken: false,
            direct,
            decoder: Decoder::new(4096),
            encoder: super::head_memo::Encoder::new(),
            scratch: Scratch::default(),
            gathering: None,
            block: Vec::new(),
            block_frames: 0,
            streams: Vec::new(),
            spares: Vec::new(),
            last_id: 0,
            reset_by_us: [0; 16],
            reset_next: 0,
            window: STREAM_WINDOW,
            recv_window: CONNECTION_WINDOW,
            recv_unacked: 0,
            peer_initial: STREAM_WINDOW,
            max_frame: MAX_FRAME,
            preface: false,
            settings_seen: false,
            goaway: None,
            peer_gone: false,
            resets_left: RESET_UNITS,
            turn_streams: 0,
            turn_resets: 0,
            turn_full: false,
            paused_until: None,
            streak: recv::Streak::default(),
            meter: Meter::new(),
            max_streams: max_streams as usize,
            header_limit,
            write_limit: config.timeouts.write,
            blocked_since: None,
            turn_waker: None,
            turn_config: None,
            tally: Tally::default(),
            origin,
            _held: held,
        }
    }

    /// When the connection must next look at the time (a handshake, idle,
    /// stall or write deadline); an error if it is to end now. With no
    /// stream since `idle_since`, it gives back its buffers after
    /// [`RELEASE_AFTER`] and says GOAWAY after `idle`.
    fn due(
        &mut self,
        now: Instant,
        idle_since: Instant,
        idle: Duration,
        handshake_by: Instant,
    ) -> Result<Option<Instant>, End> {
        let mut due: Option<Instant> = None;
        let mut at = |t: Instant| due = Some(due.map_or(t, |d: Instant| d.min(t)));
        if !self.settings_seen {
            if now >= handshake_by {
                return Err(End::Close);
            }
            at(handshake_by);
        }
        if self.streams.is_empty() {
            if self.goaway.is_some() || self.peer_gone {
                if self.written >= self.out.len() {
                    return Err(End::Close);
                }
            } else if now >= idle_since + idle {
                self.go_away(Code::NoError);
                at(now);
            } else if now >= idle_since + RELEASE_AFTER {
                self.release();
                at(idle_since + idle);
            } else {
                // Not yet: a connection between two bursts of streams
                // keeps its buffers.
                at(idle_since + RELEASE_AFTER);
            }
        }
        if let Some(t) = self.paused_until {
            at(t);
        }
        for s in &self.streams {
            if let Some(since) = s.stalled_since {
                at(since + self.write_limit);
            }
        }
        if let Some(since) = self.blocked_since {
            if now >= since + self.write_limit {
                return Err(End::Close);
            }
            at(since + self.write_limit);
        }
        Ok(due)
    }

    /// One turn: read and answer frames, move the streams' bytes, write.
    fn turn(&mut self, cx: &mut Context<'_>, stage: &Http2, line: &Arc<Line>) -> Result<(), End> {
        // Reads while the output has room; a turn reads a bounded amount.
        let mut reads = 0;
        // Whether the socket may hold more than this turn read.
        let mut more = false;
        (self.turn_streams, self.turn_resets, self.turn_full) = (0, 0, false);
        self.turn_config = None;
        if !self
            .turn_waker
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            self.turn_waker = Some(cx.waker().clone());
        }
        if self.out.capacity() == 0 {
            self.out = SPARE_OUT.with(std::cell::Cell::take);
        }
        let paused = self.paused_until.is_some_and(|t| Instant::now() < t);
        loop {
            if self.peer_gone || paused {
                break;
            }
            if self.queued() >= OUT_LIMIT || reads == 4 || self.turn_full {
                more = true;
                break;
            }
            // Whole frames already here (what came with the connection,
            // or what a full output left) before the socket is read.
            if self.carry_ready() {
                let carry = std::mem::take(&mut self.carry);
                let used = self.frames(&carry, stage, line)?;
                self.carry = carry;
                self.carry.drain(..used);
                continue;
            }
            reads += 1;
            let got = SCRATCH.with(|scratch| {
                let mut scratch = scratch.borrow_mut();
                // At most an incomplete frame is carried: room is left.
                let carried = self.carry.len();
                scratch[..carried].copy_from_slice(&self.carry);
                match self.stream.poll_read(cx, &mut scratch[carried..]) {
                    Poll::Pending => Ok(None),
                    Poll::Ready(Ok(0)) => Ok(Some(0)),
                    Poll::Ready(Ok(n)) => {
                        self.carry.clear();
                        let used = self.frames(&scratch[..carried + n], stage, line)?;
                        self.carry.extend_from_slice(&scratch[used..carried + n]);
                        Ok(Some(n))
                    }
                    Poll::Ready(Err(_)) => Err(End::Close),
                }
            })?;
            match got {
                None => break,
                Some(0) => {
                    self.peer_gone = true;
                    // The client sends no more: a request not yet whole
                    // never will be, and its handler is let go at once.
                    let mut i = 0;
                    while i < self.streams.len() {
                        match self.streams[i].remote_done {
                            true => i += 1,
                            false => self.close_stream(i),
                        }
                    }
                    break;
                }
                Some(_) => {}
            }
            if self.meter.exhausted() {
                stage.calmed.fetch_add(1, Ordering::Relaxed);
                return Err(End::Error(Code::EnhanceYourCalm));
            }
        }
        if self.carry.is_empty() && self.carry.capacity() > 0 {
            self.carry = Vec::new();
        }
        more &= !self.pace(paused);
        more |= self.poll_streams(cx);
        if self.resets_left == 0 {
            stage.calmed.fetch_add(1, Ordering::Relaxed);
            return Err(End::Error(Code::EnhanceYourCalm));
        }
        // The figures are the stage's before a response they count ends
        // at the client: one that then asks /status sees them.
        self.tally.settle(stage);
        match self.poll_flush_out(cx) {
            Poll::Ready(Err(())) => Err(End::Close),
            // Read on in the next turn, as nothing else will wake this one
            // (past OUT_LIMIT, the socket's writability does).
            Poll::Ready(Ok(())) if more => {
                cx.waker().wake_by_ref();
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Whether the bytes carried hold a whole frame (or the preface), or
    /// one too large to ever fit: they are to be handled before reading.
    fn carry_ready(&self) -> bool {
        if !self.preface {
            return self.carry.len() >= crate::http::h2_mapping::PREFACE.len();
        }
        Header::parse(&self.carry)
            .is_some_and(|h| h.len > MAX_FRAME || self.carry.len() >= 9 + h.len)
    }

    /// Writes what is queued: Ready once all is sent.
    fn poll_flush_out(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ()>> {
        if self.broken {
            return Poll::Ready(Err(()));
        }
        while self.written < self.out.len() {
            match self.stream.poll_write(cx, &self.out[self.written..]) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(Err(())),
                Poll::Ready(Ok(n)) => {
                    self.written += n;
                    self.meter.wrote(n);
                }
                Poll::Pending => {
                    self.blocked_since.get_or_insert_with(runtime::now);
                    return Poll::Pending;
                }
            }
        }
        match self.stream.poll_flush(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(_)) => return Poll::Ready(Err(())),
            Poll::Pending => {
                self.blocked_since.get_or_insert_with(runtime::now);
                return Poll::Pending;
            }
        }
        self.blocked_since = None;
        self.written = 0;
        self.meter.wrote(self.staged);
        self.staged = 0;
        // All written: the buffer is the worker's spare (a large one is
        // not kept; nor the spare it replaces).
        let mut out = std::mem::take(&mut self.out);
        if out.capacity() > 0 && out.capacity() <= 4 * OUT_LIMIT {
            out.clear();
            let _ = SPARE_OUT.try_with(|spare| spare.replace(out));
        }
        Poll::Ready(Ok(()))
    }

    /// Gives back what an idle connection need not hold.
    fn release(&mut self) {
        if self.written >= self.out.len() {
            self.out = Vec::new();
            self.written = 0;
        }
        if self.gathering.is_none() {
            self.block = Vec::new();
        }
        if self.streams.is_empty() {
            self.streams = Vec::new();
        }
        self.spares = Vec::new();
        self.scratch.release();
        self.decoder.release();
        self.encoder.release();
    }

    fn go_away(&mut self, code: Code) {
        if self.goaway.is_none() || code != Code::NoError {
            frame::goaway(&mut self.out, self.last_id, code);
        }
        self.goaway = Some(self.last_id);
    }

    /// Bytes queued for the socket: in `out` and in the TLS session.
    fn queued(&self) -> usize {
        self.out.len() + self.staged
    }

    fn find(&self, id: u32) -> Option<usize> {
        self.streams.iter().position(|s| s.id == id)
    }
}

/// A padded frame's content (RFC 9113 §6.1): a pad length past the
/// payload is a connection error.
fn unpad(h: Header, payload: &[u8]) -> Result<&[u8], End> {
    if h.flags & frame::PADDED == 0 {
        return Ok(payload);
    }
    let (&pad, rest) = payload.split_first().ok_or(End::Error(Code::Protocol))?;
    let pad = usize::from(pad);
    if pad >= payload.len() {
        return Err(End::Error(Code::Protocol));
    }
    Ok(&rest[..rest.len() - pad])
}

/// Whether a priority block says the stream depends on itself.
fn self_dependent(id: u32, priority: &[u8]) -> bool {
    priority.len() >= 4
        && u32::from_be_bytes([priority[0], priority[1], priority[2], priority[3]]) & 0x7fff_ffff
            == id
}
