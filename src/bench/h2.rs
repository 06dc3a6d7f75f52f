//! `--h2`: the load over HTTP/2, with the `h2` crate as the client on
//! Conveyor's own runtime (through `AsyncStream`, as the server's HTTP/2
//! stage uses it; no tokio runtime). Each of the `-c` connection slots
//! opens a connection (h2c by prior knowledge on `http://`, ALPN `h2` on
//! `https://`), drives it on its green thread, and keeps `--streams`
//! requests in flight on it, one green thread per stream slot; each
//! stream slot has its own place on the `--rate` timetable. The counts are
//! the HTTP/1.1 loop's: a response of any status is recorded with its
//! latency, a stream the server resets is a failed request (`reset`), a
//! connection that breaks fails the requests in flight on it and is
//! reopened, and a GOAWAY without error (the server closing) hands the
//! requests it did not take back to the budget.

use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::io;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use conveyor::runtime::{self, timeout, timeout_at, AsyncStream, ReadBuffer, Stream};
use h2::client::{ResponseFuture, SendRequest};
use h2::Reason;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Request, Uri};

use super::args::BenchOptions;
use super::connection::{wait_for_turn, Opener, Reopen, RunOver};
use super::counts::Failure;
use super::rate::Pacer;
use super::response::Response;
use super::run::Shared;
use super::tally::Tally;

/// The flow-control windows the client grants, per stream and for the
/// connection: h2load's defaults (`-w 30 -W 30`, 2^30 - 1), so a response
/// never waits on the client's window and the two clients compare.
const WINDOW: u32 = (1 << 30) - 1;
/// How long a connection whose streams are done may take to close
/// (GOAWAY sent, socket flushed).
const CLOSE_GRACE: Duration = Duration::from_millis(100);

/// Header fields HTTP/2 forbids (RFC 9113 section 8.2.2): a `-H` line
/// naming one is refused with `--h2` (`TE` is allowed as `trailers` only).
pub(crate) fn forbidden_header(line: &str) -> bool {
    let Some((name, value)) = line.split_once(':') else {
        return false;
    };
    let name = name.trim().to_ascii_lowercase();
    matches!(
        name.as_str(),
        "connection" | "keep-alive" | "proxy-connection" | "transfer-encoding" | "upgrade"
    ) || (name == "te" && !value.trim().eq_ignore_ascii_case("trailers"))
}

/// The request every stream sends: `GET` of the URL, with the `-H` fields.
struct Template {
    uri: Uri,
    headers: HeaderMap,
}

impl Template {
    fn new(options: &BenchOptions) -> Result<Template, String> {
        let url = options.url();
        let uri = url
            .parse::<Uri>()
            .map_err(|e| format!("{url} is not a URI HTTP/2 can send: {e}"))?;
        let mut headers = HeaderMap::new();
        for line in &options.headers {
            let (name, value) = line.split_once(':').unwrap_or((line, ""));
            let name = HeaderName::from_bytes(name.trim().to_ascii_lowercase().as_bytes());
            let value = HeaderValue::from_str(value.trim());
            match (name, value) {
                (Ok(name), Ok(value)) => {
                    headers.append(name, value);
                }
                _ => return Err(format!("-H {line:?} is not a header HTTP/2 can send")),
            }
        }
        Ok(Template { uri, headers })
    }

    fn request(&self) -> Request<()> {
        let mut request = Request::new(());
        *request.uri_mut() = self.uri.clone();
        *request.headers_mut() = self.headers.clone();
        request
    }
}

/// How a connection's streams ended, in the order the slot heeds them.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum End {
    /// The run is over (time up, budget spent).
    RunOver,
    /// The server closed the connection without error (GOAWAY NO_ERROR).
    ServerClosed,
    /// The connection broke: reopen it.
    Broken,
}

/// What a slot's stream green threads share.
struct Slot {
    options: Rc<BenchOptions>,
    shared: Arc<Shared>,
    tally: Rc<RefCell<Tally>>,
    template: Template,
    /// Whether the current connection has answered a request yet.
    answered: Cell<bool>,
}

impl Slot {
    /// `n` requests failed with `error`.
    fn fail(&self, error: &io::Error, n: u64) {
        self.tally
            .borrow_mut()
            .fail(&self.shared, Failure::of(error), n, error);
    }

    /// The connection ended under a stream with `error`: a GOAWAY without
    /// error gives the request back (the server did not take it),
    /// anything else fails it.
    fn lost(&self, error: h2::Error) -> End {
        if error.is_go_away() && error.reason() == Some(Reason::NO_ERROR) {
            self.shared.unclaim(1);
            return End::ServerClosed;
        }
        let error = match error.is_io() || error.is_remote() || self.answered.get() {
            true => io_error(error),
            // A server that does not speak HTTP/2 answers the preface with
            // something that is not a frame (the client's own protocol
            // error): say what is likely wrong.
            false => io::Error::other(format!(
                "HTTP/2 failed before any answer ({error}): does {} speak it{}?",
                self.options.host,
                match self.options.tls {
                    Some(_) => "",
                    None => " in cleartext (h2c by prior knowledge; Conveyor: http2.cleartext)",
                }
            )),
        };
        self.fail(&error, 1);
        End::Broken
    }
}

/// An h2 error as the I/O error the counts class it by: the socket's own,
/// a stream reset (`reset`), or a protocol error (`bad_response`).
fn io_error(error: h2::Error) -> io::Error {
    if error.is_reset() && !error.is_go_away() {
        return io::Error::new(io::ErrorKind::ConnectionReset, error.to_string());
    }
    let text = error.to_string();
    error
        .into_io()
        .unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidData, text))
}

/// Keeps connection slot `index` busy until the run ends: opens its
/// connection, runs `--streams` stream slots on it, and reopens it when
/// it breaks or the server closes it.
pub(crate) async fn connection_loop(
    options: Rc<BenchOptions>,
    shared: Arc<Shared>,
    tally: Rc<RefCell<Tally>>,
    index: usize,
) {
    let template = match Template::new(&options) {
        Ok(template) => template,
        Err(e) => {
            tally.borrow_mut().other_error.get_or_insert(e);
            return;
        }
    };
    let mut pacers: Vec<Option<Pacer>> = (0..options.streams)
        .map(|s| {
            let at = index * options.streams + s;
            options
                .rate
                .map(|rate| Pacer::new(shared.started, rate, options.slots(), at))
        })
        .collect();
    let slot = Rc::new(Slot {
        options,
        shared,
        tally,
        template,
        answered: Cell::new(false),
    });
    let mut opener = Opener::default();
    loop {
        // A connection is opened only while there are requests to send;
        // the one claimed is failed if it cannot be, else given back.
        if slot.shared.claim(1) == 0 {
            break;
        }
        let opened = opener
            .open(&slot.options, &slot.shared, &slot.tally, 1)
            .await;
        let stream = match opened {
            Ok(Some((stream, _))) => stream,
            Ok(None) => continue,
            Err(RunOver) => break,
        };
        let end = match handshake(&slot, stream).await {
            Ok(Some((send, connection))) => {
                slot.shared.unclaim(1);
                slot.answered.set(false);
                let (end, back) = run_streams(&slot, send, connection, pacers).await;
                pacers = back;
                end
            }
            Ok(None) => End::Broken,
            Err(RunOver) => break,
        };
        match end {
            End::RunOver => break,
            End::ServerClosed => opener.reopen = Some(Reopen::ServerClosed),
            End::Broken => opener.reopen = Some(Reopen::AfterError),
        }
        if end == End::Broken && !slot.answered.get() {
            pause(&slot.shared).await;
        }
    }
    opener.count_never_opened(&slot.shared, &slot.tally);
}

type Connection = h2::client::Connection<AsyncStream, Bytes>;

/// The HTTP/2 handshake (preface and SETTINGS) on a new connection:
/// `None` when it failed (the claimed request counted as failed).
async fn handshake(
    slot: &Slot,
    stream: Stream,
) -> Result<Option<(SendRequest<Bytes>, Connection)>, RunOver> {
    let shared = &slot.shared;
    let handshake = h2::client::Builder::new()
        .initial_window_size(WINDOW)
        .initial_connection_window_size(WINDOW)
        .handshake::<_, Bytes>(AsyncStream::new(stream, ReadBuffer::default()));
    let error = match timeout_at(shared.limit(), handshake).await {
        Ok(Ok(pair)) => return Ok(Some(pair)),
        Ok(Err(e)) => io_error(e),
        Err(_) if shared.ended() => {
            shared.unclaim(1);
            return Err(RunOver);
        }
        Err(_) => io::ErrorKind::TimedOut.into(),
    };
    slot.fail(&error, 1);
    pause(shared).await;
    Ok(None)
}

/// A pause before reconnecting after a connection that never answered:
/// not a busy loop against a server that will not speak HTTP/2.
async fn pause(shared: &Shared) {
    runtime::sleep_until(
        shared
            .limit()
            .min(Instant::now() + Duration::from_millis(10)),
    )
    .await;
}

/// Runs the stream slots on one connection, driving the connection on
/// this green thread meanwhile, until every stream slot is done; then
/// closes it. Returns why, and the timetables back.
async fn run_streams(
    slot: &Rc<Slot>,
    send: SendRequest<Bytes>,
    connection: Connection,
    pacers: Vec<Option<Pacer>>,
) -> (End, Vec<Option<Pacer>>) {
    let tasks: Vec<_> = pacers
        .into_iter()
        .map(|pacer| runtime::spawn(stream_loop(slot.clone(), send.clone(), pacer)))
        .collect();
    drop(send);
    let all = async {
        let mut end = End::RunOver;
        let mut pacers = Vec::with_capacity(tasks.len());
        for task in tasks {
            let (ended, pacer) = task.await.unwrap_or((End::Broken, None));
            end = end.max(ended);
            pacers.push(pacer);
        }
        (end, pacers)
    };
    let mut connection = std::pin::pin!(connection);
    let mut all = std::pin::pin!(all);
    let mut driving = true;
    let done = poll_fn(|cx| {
        if driving && connection.as_mut().poll(cx).is_ready() {
            driving = false;
        }
        all.as_mut().poll(cx)
    })
    .await;
    if driving {
        // Every handle is dropped: the connection sends GOAWAY and ends.
        let _ = timeout(CLOSE_GRACE, connection.as_mut()).await;
    }
    done
}

/// One stream slot: sends a request when the last answer came (or on its
/// timetable with `--rate`) until the run ends or the connection does.
async fn stream_loop(
    slot: Rc<Slot>,
    mut send: SendRequest<Bytes>,
    mut pacer: Option<Pacer>,
) -> (End, Option<Pacer>) {
    let shared = &slot.shared;
    loop {
        if shared.claim(1) == 0 {
            return (End::RunOver, pacer);
        }
        let Ok(due) = wait_for_turn(pacer.as_mut(), shared, 1).await else {
            return (End::RunOver, pacer);
        };
        // Waits while the server's SETTINGS_MAX_CONCURRENT_STREAMS are open.
        match timeout_at(shared.limit(), poll_fn(|cx| send.poll_ready(cx))).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return (slot.lost(e), pacer),
            Err(_) if shared.ended() => {
                shared.unclaim(1);
                return (End::RunOver, pacer);
            }
            Err(_) => {
                slot.fail(&io::ErrorKind::TimedOut.into(), 1);
                return (End::Broken, pacer);
            }
        }
        let sent_at = Instant::now();
        if let Some(due) = due {
            slot.tally.borrow_mut().sent(shared, sent_at, due);
        }
        let response = match send.send_request(slot.template.request(), true) {
            Ok((response, _)) => response,
            Err(e) => return (slot.lost(e), pacer),
        };
        match timeout_at(shared.limit(), read_response(response)).await {
            Ok(Ok(response)) => {
                slot.answered.set(true);
                slot.tally
                    .borrow_mut()
                    .record(shared, Instant::now(), sent_at, due, &response);
                shared.responses.fetch_add(1, Ordering::Relaxed);
            }
            // The server reset this stream: the connection goes on.
            Ok(Err(e)) if e.is_reset() && !e.is_go_away() => slot.fail(&io_error(e), 1),
            Ok(Err(e)) => return (slot.lost(e), pacer),
            Err(_) if shared.ended() => {
                slot.tally.borrow_mut().unanswered += 1;
                return (End::RunOver, pacer);
            }
            // Dropping the response resets the stream (CANCEL).
            Err(_) => slot.fail(&io::ErrorKind::TimedOut.into(), 1),
        }
    }
}

/// Waits for a response and reads its body to the end, counting it and
/// giving the window back as it goes.
async fn read_response(response: ResponseFuture) -> Result<Response, h2::Error> {
    let response = response.await?;
    let status = response.status().as_u16();
    let mut body = response.into_body();
    let mut bytes = 0u64;
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        bytes += chunk.len() as u64;
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    Ok(Response {
        status,
        bytes,
        closes: false,
    })
}

/// Checks the `-H` lines and URL make a request HTTP/2 can send.
pub(crate) fn check(options: &BenchOptions) -> Result<(), String> {
    Template::new(options).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_specific_fields_are_forbidden() {
        for line in [
            "Connection: close",
            "keep-alive: 5",
            "TE: gzip",
            "Upgrade: h2c",
        ] {
            assert!(forbidden_header(line), "{line}");
        }
        for line in ["TE: trailers", "Accept-Encoding: gzip", "X-Trace: 1"] {
            assert!(!forbidden_header(line), "{line}");
        }
    }
}
