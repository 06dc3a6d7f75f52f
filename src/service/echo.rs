//! `/echo`: GET/HEAD answer with the request's own preamble as text; POST/PUT
//! stream the body back as it arrives, in constant memory. Reading waits for
//! each chunk to be written, so a slow reader slows the sender (flow control
//! both ways through the TCP windows).

use std::io;
use std::time::{Duration, Instant};

use crate::http::chunked::{ChunkSize, CHUNKED_FIELD, CHUNK_DATA_END, LAST_CHUNK};
use crate::http::response::CONTINUE_100;
use crate::http::{write_head, BodyFraming, ChunkedDecoder, HttpError, Method, Step};

use super::{write_all_timed, Exchange, Outcome, Writing};

const ALLOW: &[(&str, &str)] = &[("Allow", "GET, HEAD, POST, PUT")];

/// Answers one `/echo` request: GET/HEAD with the preamble, POST/PUT with the
/// body streamed back (up to `limits.max_echo_body`), 405 for other methods.
pub async fn serve(ex: &mut Exchange<'_>) -> Outcome {
    match ex.req.method {
        Method::Get | Method::Head => {
            let raw = without_credentials(ex.preamble());
            ex.consume_preamble();
            // The body mirrors this one request: no cache may store it or
            // give it a heuristic freshness (REDbot warns otherwise).
            ex.respond(
                200,
                "text/plain; charset=utf-8",
                &raw,
                &[("Cache-Control", "no-store")],
            )
        }
        Method::Post | Method::Put => {
            ex.consume_preamble();
            match stream_body(ex).await {
                Ok(outcome) => outcome,
                // Head already sent: all we can do is close.
                Err(_) => Outcome {
                    status: 200,
                    body_bytes: 0,
                    keep_alive: false,
                },
            }
        }
        // A body sent with these is not read here: the handler drains it
        // or closes the connection, as for every route that ignores one.
        _ => {
            ex.consume_preamble();
            ex.error(405, "use GET, HEAD, POST or PUT", ALLOW)
        }
    }
}

/// Fields `GET /echo` never reflects: a page script that can read the
/// echo (same origin, or a permissive CORS elsewhere) would read the
/// user's cookies and credentials, even `HttpOnly` ones — the old TRACE
/// hole (cross-site tracing).
const UNECHOED: [&str; 3] = ["cookie", "authorization", "proxy-authorization"];

/// The preamble as received, without the lines of [`UNECHOED`] fields
/// (and any continuation of them).
fn without_credentials(preamble: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(preamble.len());
    let mut skipping = false;
    for line in preamble.split_inclusive(|&b| b == b'\n') {
        let continuation = matches!(line.first(), Some(b' ' | b'\t'));
        if !continuation {
            let name = line.split(|&b| b == b':').next().unwrap_or_default();
            skipping = line.contains(&b':')
                && UNECHOED
                    .iter()
                    .any(|u| name.trim_ascii().eq_ignore_ascii_case(u.as_bytes()));
        }
        if !skipping {
            out.extend_from_slice(line);
        }
    }
    out
}

/// Echoes a POST/PUT body. Never returns Err: every way a body can stop is
/// answered here, by an error response while no status line has been
/// written, or by cutting the 200 short (and closing) once one has.
async fn stream_body(ex: &mut Exchange<'_>) -> io::Result<Outcome> {
    let max = ex.ctx.config.limits.max_echo_body;
    let too_large = match ex.req.body {
        BodyFraming::Length(n) => n > max,
        _ => false,
    };
    if too_large {
        ex.keep_alive = false;
        return Ok(ex.error(413, "body larger than limits.max_echo_body", &[]));
    }
    if ex.req.expect_continue && ex.req.body != BodyFraming::None {
        ex.out.extend_from_slice(CONTINUE_100);
    }
    let _writing = Writing::new(ex.ctx.metrics.here());
    let timeouts = &ex.ctx.config.timeouts;
    let mut echo = Echo {
        clock: BodyClock::start(Instant::now(), timeouts.body_read, timeouts.body_min_rate),
        head_started: false,
        sent: 0,
    };
    let copied = match ex.req.body {
        BodyFraming::None | BodyFraming::Length(0) => {
            return Ok(ex.respond(200, "application/octet-stream", &[], &[]))
        }
        BodyFraming::Length(len) => copy_exact(ex, &mut echo, len).await,
        BodyFraming::Chunked => copy_chunked(ex, &mut echo, max).await,
    };
    Ok(match copied {
        Ok(()) => Outcome {
            status: 200,
            body_bytes: echo.sent,
            keep_alive: ex.keep_alive,
        },
        Err(stop) => echo.stopped(ex, stop),
    })
}

/// Why a body stopped before its end.
#[derive(Debug)]
enum BodyCut {
    /// It did not keep up with `timeouts.body_read` / `body_min_rate`.
    TimedOut,
    /// The client closed its side first.
    Incomplete,
    /// Malformed framing, or over `limits.max_echo_body`.
    Refused(HttpError),
    /// A write failed or a read errored: nothing more can be sent.
    Broken,
}

/// A body on its way back.
struct Echo {
    clock: BodyClock,
    /// A status line has been handed to the socket (perhaps only in part):
    /// from then on, an error may only cut the response short. A second
    /// status line would land inside this response's body.
    head_started: bool,
    /// Body bytes echoed so far.
    sent: u64,
}

impl Echo {
    /// The outcome of a body that stopped; the connection closes.
    fn stopped(&self, ex: &mut Exchange<'_>, stop: BodyCut) -> Outcome {
        ex.keep_alive = false;
        if self.head_started {
            // Cut short: a Content-Length response ends early, a chunked
            // one lacks its last chunk; either way the client can tell.
            if matches!(stop, BodyCut::Refused(_)) {
                ex.ctx.metrics.here().echo_cut_short.bump();
            }
            return Outcome {
                status: 200,
                body_bytes: self.sent,
                keep_alive: false,
            };
        }
        match stop {
            BodyCut::TimedOut => ex.error(408, "request body not received in time", &[]),
            BodyCut::Incomplete => ex.error(400, "request body incomplete", &[]),
            BodyCut::Refused(e) => ex.error(e.status, e.message, &[]),
            // Nothing can be sent; the status is for the log.
            BodyCut::Broken => Outcome {
                status: 400,
                body_bytes: 0,
                keep_alive: false,
            },
        }
    }
}

/// The deadline for a request body, as Apache mod_reqtimeout's
/// `body=<body_read>,MinRate=<body_min_rate>`: `body_read` to start, and
/// each byte received moves the deadline 1/rate s later. Unlike
/// mod_reqtimeout, the deadline is never more than `body_read` from the
/// last read, so bytes sent fast early cannot buy a long silence later:
/// no one wait for body bytes outlasts `body_read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BodyClock {
    deadline: Instant,
    limit: Duration,
    /// Bytes per second; 0 = the deadline never moves.
    rate: u64,
}

impl BodyClock {
    fn start(now: Instant, limit: Duration, rate: u64) -> BodyClock {
        BodyClock {
            deadline: later(now, limit),
            limit,
            rate,
        }
    }

    /// `n` more bytes arrived at `now`.
    fn received(&mut self, n: usize, now: Instant) {
        if self.rate == 0 {
            return;
        }
        let nanos = n as u128 * 1_000_000_000 / u128::from(self.rate);
        let credit = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
        self.deadline = later(self.deadline, credit).min(later(now, self.limit));
    }
}

/// `t + d`, saturating far in the future rather than panicking on a
/// duration from the config too large for `Instant`.
fn later(t: Instant, d: Duration) -> Instant {
    t.checked_add(d)
        .or_else(|| t.checked_add(Duration::from_secs(u64::from(u32::MAX))))
        .unwrap_or(t)
}

/// Reads more body bytes into the connection's buffer, by the body
/// deadline. Whatever is buffered for the client (`100 Continue`, earlier
/// pipelined responses) goes out first: it may be what the client waits for.
async fn fill(ex: &mut Exchange<'_>, echo: &mut Echo) -> Result<(), BodyCut> {
    ex.flush().await.map_err(|_| BodyCut::Broken)?;
    match ex.fill(echo.clock.deadline).await {
        Ok(0) => Err(BodyCut::Incomplete),
        Ok(n) => {
            echo.clock.received(n, Instant::now());
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::TimedOut => Err(BodyCut::TimedOut),
        Err(_) => Err(BodyCut::Broken),
    }
}

/// Starts the 200 response: `length` for Content-Length, None for chunked.
/// Sent with MSG_MORE: the first body bytes follow at once.
async fn start_response(
    ex: &mut Exchange<'_>,
    echo: &mut Echo,
    length: Option<u64>,
) -> Result<(), BodyCut> {
    let chunked = [CHUNKED_FIELD];
    let extra: &[(&str, &str)] = if length.is_none() { &chunked } else { &[] };
    let head = ex.head(200, length, Some("application/octet-stream"), extra);
    write_head(ex.out, &head);
    echo.head_started = true;
    ex.flush_more().await.map_err(|_| BodyCut::Broken)
}

/// Echoes a Content-Length body. The 200 head waits for the first body
/// bytes, so a body that never starts gets its 408 (not a response cut
/// short before its first byte).
async fn copy_exact(ex: &mut Exchange<'_>, echo: &mut Echo, len: u64) -> Result<(), BodyCut> {
    let limit = ex.ctx.config.timeouts.write;
    let mut left = len;
    while left > 0 {
        if !ex.input.has_pending() {
            fill(ex, echo).await?;
        }
        if !echo.head_started {
            start_response(ex, echo, Some(len)).await?;
        }
        let pending = ex.input.pending();
        let take = pending
            .len()
            .min(usize::try_from(left).unwrap_or(usize::MAX));
        write_all_timed(ex.stream, &pending[..take], limit)
            .await
            .map_err(|_| BodyCut::Broken)?;
        ex.input.consume(take);
        ex.ctx.metrics.here().bytes_out.add_local(take as u64);
        left -= take as u64;
        echo.sent += take as u64;
    }
    Ok(())
}

/// Flush the output at this size even within one read's worth of input.
const BATCH_MAX: usize = 64 * 1024;

/// Streams a chunked body back, chunked. The 200 head waits until the first
/// chunk (or the end) has been decoded, so a body malformed, too large or
/// too slow from the start still gets its 400, 413 or 408 (RFC 9112 §2.2).
///
/// The data of every chunk decoded from one read is sent back as one
/// chunk, in one write: a client sending 1-byte chunks costs a write per
/// read, not three per chunk. Reading waits for that write (the flush in
/// [`fill`]), so a slow reader still slows the sender.
async fn copy_chunked(ex: &mut Exchange<'_>, echo: &mut Echo, max: u64) -> Result<(), BodyCut> {
    // Where in `ex.out` the data of the chunk being gathered starts.
    let mut gathering: Option<usize> = None;
    let copied = gather_chunks(ex, echo, max, &mut gathering).await;
    // Cut short: what was gathered still goes out framed (the client's
    // bytes are never sent where they could read as framing).
    close_chunk(ex.out, gathering.take());
    copied
}

async fn gather_chunks(
    ex: &mut Exchange<'_>,
    echo: &mut Echo,
    max: u64,
    gathering: &mut Option<usize>,
) -> Result<(), BodyCut> {
    let mut decoder = ChunkedDecoder::new();
    loop {
        match decoder.step(ex.input.pending()).map_err(BodyCut::Refused)? {
            Step::Data(range) => {
                let len = range.len();
                if echo.sent + len as u64 > max {
                    let e = HttpError::new(413, "body larger than limits.max_echo_body");
                    return Err(BodyCut::Refused(e));
                }
                if !echo.head_started {
                    check_buffered(&decoder, &ex.input.pending()[range.end..], len as u64, max)
                        .map_err(BodyCut::Refused)?;
                    // Leaves with the first data, in the same write.
                    let chunked = [CHUNKED_FIELD];
                    let head = ex.head(200, None, Some("application/octet-stream"), &chunked);
                    write_head(ex.out, &head);
                    echo.head_started = true;
                }
                let start = *gathering.get_or_insert(ex.out.len());
                ex.out.extend_from_slice(&ex.input.pending()[range.clone()]);
                ex.input.consume(range.end);
                echo.sent += len as u64;
                if ex.out.len() - start >= BATCH_MAX {
                    close_chunk(ex.out, gathering.take());
                    ex.flush().await.map_err(|_| BodyCut::Broken)?;
                }
            }
            Step::Skip(n) => ex.input.consume(n),
            Step::NeedMore => {
                close_chunk(ex.out, gathering.take());
                // Sends the batch, then reads.
                fill(ex, echo).await?;
            }
            Step::Done(n) => {
                ex.input.consume(n);
                close_chunk(ex.out, gathering.take());
                if !echo.head_started {
                    // An empty body: the whole response fits the output
                    // buffer, and leaves with any pipelined ones.
                    let chunked = [CHUNKED_FIELD];
                    let head = ex.head(200, None, Some("application/octet-stream"), &chunked);
                    write_head(ex.out, &head);
                }
                // The handler sends it, with any pipelined responses.
                ex.out.extend_from_slice(LAST_CHUNK);
                return Ok(());
            }
        }
    }
}

/// Frames the data gathered in `out` from `start` as one chunk: its size
/// line goes before it, CRLF after.
fn close_chunk(out: &mut Vec<u8>, start: Option<usize>) {
    let Some(start) = start else { return };
    let Some(size) = ChunkSize::new(out.len() - start) else {
        return;
    };
    out.splice(start..start, size.line().iter().copied());
    out.extend_from_slice(CHUNK_DATA_END);
}

/// Decodes, without consuming, the rest of what is already buffered
/// (`input`, from where `decoder` stands; `total` body bytes so far), so a
/// body that arrived whole gets its 400 or 413 rather than a 200 cut short.
/// Bounded by the input buffer; taken once per body, before the head.
fn check_buffered(
    decoder: &ChunkedDecoder,
    mut input: &[u8],
    mut total: u64,
    max: u64,
) -> Result<(), HttpError> {
    let mut look = decoder.clone();
    loop {
        match look.step(input)? {
            Step::Data(range) => {
                total += range.len() as u64;
                if total > max {
                    return Err(HttpError::new(413, "body larger than limits.max_echo_body"));
                }
                input = &input[range.end..];
            }
            Step::Skip(n) => input = &input[n..],
            Step::NeedMore | Step::Done(_) => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    /// `check_buffered` from the first data step of `body`.
    fn precheck(body: &[u8], max: u64) -> Result<(), u16> {
        let mut dec = ChunkedDecoder::new();
        let mut at = 0;
        loop {
            match dec.step(&body[at..]).map_err(|e| e.status)? {
                Step::Skip(n) => at += n,
                Step::Data(r) => {
                    return check_buffered(&dec, &body[at + r.end..], r.len() as u64, max)
                        .map_err(|e| e.status)
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn buffered_chunks_are_checked_before_the_head() {
        assert_eq!(precheck(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", 100), Ok(()));
        // Incomplete is fine: the rest is checked as it comes.
        assert_eq!(precheck(b"3\r\nabc\r\n2\r\nd", 100), Ok(()));
        assert_eq!(precheck(b"3\r\nabc\r\nzz\r\n", 100), Err(400));
        assert_eq!(precheck(b"3\r\nabcd\r\n0\r\n\r\n", 100), Err(400));
        assert_eq!(precheck(b"3\r\nabc\r\n2\nde\r\n", 100), Err(400));
        assert_eq!(precheck(b"3\r\nabc\r\n0\r\n\n", 100), Err(400));
        assert_eq!(precheck(b"3\r\nabc\r\n3\r\ndef\r\n", 5), Err(413));
        assert_eq!(precheck(b"3\r\nabc\r\n2\r\nde\r\n", 5), Ok(()));
    }

    #[test]
    fn body_clock_starts_with_the_allowance() {
        let t0 = Instant::now();
        let clock = BodyClock::start(t0, 10 * S, 500);
        assert_eq!(clock.deadline, t0 + 10 * S);
    }

    #[test]
    fn each_byte_buys_one_rate_th_of_a_second() {
        let t0 = Instant::now();
        let mut clock = BodyClock::start(t0, 10 * S, 500);
        // 250 bytes at t0 + 5 s: half a second more.
        clock.received(250, t0 + 5 * S);
        assert_eq!(clock.deadline, t0 + 10 * S + S / 2);
        clock.received(1, t0 + 6 * S);
        assert_eq!(
            clock.deadline,
            t0 + 10 * S + S / 2 + Duration::from_millis(2)
        );
    }

    #[test]
    fn the_deadline_is_never_more_than_the_allowance_ahead() {
        let t0 = Instant::now();
        let mut clock = BodyClock::start(t0, 10 * S, 500);
        // A megabyte at once would buy 2000 s; it buys up to now + 10 s.
        clock.received(1 << 20, t0 + S);
        assert_eq!(clock.deadline, t0 + 11 * S);
    }

    #[test]
    fn a_trickle_below_the_rate_runs_out() {
        // One byte every 5 s against 500 B/s: each buys 2 ms.
        let t0 = Instant::now();
        let mut clock = BodyClock::start(t0, 10 * S, 500);
        let mut now = t0;
        let mut reads = 0;
        while now + 5 * S < clock.deadline {
            now += 5 * S;
            clock.received(1, now);
            reads += 1;
        }
        assert_eq!(reads, 2);
        assert!(clock.deadline < t0 + 11 * S);
    }

    #[test]
    fn rate_zero_fixes_the_deadline() {
        let t0 = Instant::now();
        let mut clock = BodyClock::start(t0, 10 * S, 0);
        clock.received(1 << 30, t0 + S);
        assert_eq!(clock.deadline, t0 + 10 * S);
    }

    #[test]
    fn huge_durations_do_not_panic() {
        let t0 = Instant::now();
        let mut clock = BodyClock::start(t0, Duration::MAX, 1);
        clock.received(usize::MAX, t0);
        assert!(clock.deadline > t0);
    }
}
