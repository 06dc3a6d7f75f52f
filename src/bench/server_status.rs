//! `--server-status`: the server's own figures beside the client's, once
//! a second, on a thread and connection of their own. From a Conveyor
//! server they come from its live stream
//! ([`live_stream`](super::live_stream)), whose
//! latency and request rate are of the second just ended, like the
//! client's; a server without the stream is sampled through `GET /status`
//! instead, whose latency is since the server started, so it is kept apart
//! (`p99_since_start_us`) and never shown as the second's. Fields are read
//! defensively: a server whose report lacks one (or is not Conveyor) shows
//! `-` there, never a failed run.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use conveyor::http::{ChunkedDecoder, Step};
use serde_json::Value;

use super::live_stream::Events;
use super::tls::Client;

/// How long one sample may take: connecting, and each read.
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(1);
/// A `/status` body larger than this is not read.
const MAX_STATUS_BYTES: usize = 1 << 20;

/// One sample of the server's figures.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Sample {
    /// Seconds since the measured run started.
    pub(crate) t: f64,
    /// Why the sample failed, when it did (the figures are then `None`).
    pub(crate) error: Option<String>,
    /// Why the figures were polled from `/status` rather than streamed
    /// (`None` for a streamed sample).
    pub(crate) note: Option<String>,
    /// `requests.total`: responses the server has sent since it started.
    pub(crate) requests_total: Option<f64>,
    /// `live.requests / live.interval_secs`: the server's responses per
    /// second over the second before the sample (stream only).
    pub(crate) live_rps: Option<f64>,
    /// `connections.open`.
    pub(crate) open: Option<f64>,
    /// `connections.reading`.
    pub(crate) reading: Option<f64>,
    /// `connections.writing`.
    pub(crate) writing: Option<f64>,
    /// `connections.idle_keepalive`.
    pub(crate) idle: Option<f64>,
    /// The sum of `queues[].depth`: connections waiting in the line.
    pub(crate) queue_depth: Option<f64>,
    /// `live.latency_us.p50`: the server's own, of the second before the
    /// sample (stream only).
    pub(crate) p50_us: Option<f64>,
    /// `live.latency_us.p99`, the same second's.
    pub(crate) p99_us: Option<f64>,
    /// `latency_us.p99`: since the server started, not comparable with a
    /// second's figures.
    pub(crate) p99_since_start_us: Option<f64>,
}

impl Sample {
    /// The figures of a parsed `/status` document, or of a live-stream
    /// event (which adds the `live` object).
    pub(crate) fn from_status(t: f64, status: &Value) -> Sample {
        let num = |pointer: &str| status.pointer(pointer).and_then(Value::as_f64);
        let queue_depth = match status.get("queues") {
            Some(Value::Array(queues)) => queues
                .iter()
                .map(|q| q.get("depth").and_then(Value::as_f64))
                .sum::<Option<f64>>(),
            _ => None,
        };
        let live_rps = num("/live/requests")
            .zip(num("/live/interval_secs").filter(|&secs| secs > 0.0))
            .map(|(requests, secs)| requests / secs);
        Sample {
            t,
            error: None,
            note: None,
            requests_total: num("/requests/total"),
            live_rps,
            open: num("/connections/open"),
            reading: num("/connections/reading"),
            writing: num("/connections/writing"),
            idle: num("/connections/idle_keepalive"),
            queue_depth,
            p50_us: num("/live/latency_us/p50"),
            p99_us: num("/live/latency_us/p99"),
            p99_since_start_us: num("/latency_us/p99"),
        }
    }
}

/// A figure for the table: the number, or `-` when the server lacks it.
fn cell(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.0}"))
}

/// Server responses per second: of the second before the sample (stream),
/// or between two polled samples.
pub(crate) fn rate(prev: Option<&Sample>, s: &Sample) -> Option<f64> {
    if s.live_rps.is_some() {
        return s.live_rps;
    }
    let prev = prev?;
    let dt = s.t - prev.t;
    (dt > 0.0).then_some((s.requests_total? - prev.requests_total?) / dt)
}

/// The server's figures for the live line.
pub(crate) fn live(prev: Option<&Sample>, s: &Sample) -> String {
    if let Some(e) = &s.error {
        return format!("  | server: /status failed: {e}");
    }
    format!(
        "  | server {} req/s  p99 {} µs  open {} (reading {}, writing {}, idle {})  queued {}",
        cell(rate(prev, s)),
        cell(s.p99_us),
        cell(s.open),
        cell(s.reading),
        cell(s.writing),
        cell(s.idle),
        cell(s.queue_depth)
    )
}

/// The samples as a Markdown table beside the client's per-second p99.
pub(crate) fn table(samples: &[Sample], client_p99_us: impl Fn(f64) -> Option<u64>) -> String {
    let mut out = String::from(
        "\nthe server's figures each second (its live stream; both p99 columns are of \
         the same second, the client's from send to response, the server's from parsing \
         the request to handing off the response):\n\n\
         | t (s) | client p99 µs | server p99 µs | server p50 µs | server req/s | open | reading | writing | idle | queued |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let mut notes = Vec::new();
    for (i, s) in samples.iter().enumerate() {
        let client = client_p99_us(s.t).map_or_else(|| "-".into(), |v| v.to_string());
        if let Some(e) = &s.error {
            let _ = writeln!(out, "| {:.1} | {client} | /status failed: {e} |", s.t);
            continue;
        }
        if let Some(note) = &s.note {
            if !notes.contains(note) {
                notes.push(note.clone());
            }
        }
        let _ = writeln!(
            out,
            "| {:.1} | {client} | {} | {} | {} | {} | {} | {} | {} | {} |",
            s.t,
            cell(s.p99_us),
            cell(s.p50_us),
            cell(rate(i.checked_sub(1).and_then(|p| samples.get(p)), s)),
            cell(s.open),
            cell(s.reading),
            cell(s.writing),
            cell(s.idle),
            cell(s.queue_depth),
        );
    }
    for note in notes {
        let _ = writeln!(out, "\n{note}");
    }
    out
}

/// Where the server's figures are asked for: the bench's target, over
/// HTTP/1.1 (over TLS, offering `http/1.1` by ALPN, for an `https://` URL,
/// whatever protocol the load speaks).
#[derive(Clone)]
pub(crate) struct Target {
    pub(crate) addr: SocketAddr,
    /// `HOST[:PORT]`, sent as the Host header.
    pub(crate) host: String,
    pub(crate) tls: Option<Client>,
}

/// A blocking connection, plain or TLS.
pub(crate) trait Io: Read + Write + Send {}

impl<T: Read + Write + Send> Io for T {}

/// Connects to the target within `timeout`, sends `request`, and returns
/// the stream with `read_timeout` set for reading the answer.
pub(crate) fn ask(
    target: &Target,
    request: &str,
    timeout: Duration,
    read_timeout: Duration,
) -> Result<Box<dyn Io>, String> {
    let socket = TcpStream::connect_timeout(&target.addr, timeout).map_err(|e| e.to_string())?;
    // The TLS handshake runs within the write: it may wait `timeout` for
    // the server's records, not just a read slice.
    socket
        .set_read_timeout(Some(timeout))
        .and_then(|()| socket.set_write_timeout(Some(timeout)))
        .map_err(|e| e.to_string())?;
    let mut stream: Box<dyn Io> = match &target.tls {
        Some(client) => Box::new(
            client
                .blocking(socket.try_clone().map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?,
        ),
        None => Box::new(socket.try_clone().map_err(|e| e.to_string())?),
    };
    stream
        .write_all(request.as_bytes())
        .and_then(|()| stream.flush())
        .map_err(|e| e.to_string())?;
    socket
        .set_read_timeout(Some(read_timeout))
        .map_err(|e| e.to_string())?;
    Ok(stream)
}

/// Fetches `GET /status` from the target on a new connection.
pub(crate) fn fetch(target: &Target) -> Result<Value, String> {
    let host = &target.host;
    let request = format!(
        "GET /status HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    );
    let mut stream = ask(target, &request, SAMPLE_TIMEOUT, SAMPLE_TIMEOUT)?;
    // Read one response, framed as the server frames it: a server may keep
    // the connection open whatever Connection: close asked.
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = stream.read(&mut buf).map_err(|e| e.to_string())?;
        raw.extend_from_slice(&buf[..n]);
        if let Some(result) = body_json(&raw, n == 0) {
            return result;
        }
        if raw.len() > MAX_STATUS_BYTES {
            return Err("response too large".into());
        }
    }
}

/// The JSON body of the raw response so far: `None` while it is not
/// complete (`eof`: the server closed, so it is as complete as it gets).
fn body_json(raw: &[u8], eof: bool) -> Option<Result<Value, String>> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head = match response.parse(raw) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if !eof => return None,
        _ => return Some(Err("not an HTTP response".into())),
    };
    if response.code != Some(200) {
        return Some(Err(format!("status {}", response.code.unwrap_or(0))));
    }
    let header = |name: &str| field(response.headers, name);
    let rest = &raw[head..];
    let body = if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case(b"chunked")) {
        let mut decoder = ChunkedDecoder::new();
        let mut body = Vec::new();
        let mut at = 0;
        loop {
            match decoder.step(&rest[at..]) {
                Err(_) => return Some(Err("bad chunked body".into())),
                Ok(Step::Data(r)) => {
                    body.extend_from_slice(&rest[at + r.start..at + r.end]);
                    at += r.end;
                }
                Ok(Step::Skip(n)) => at += n,
                Ok(Step::Done(_)) => break body,
                Ok(Step::NeedMore) if eof => return Some(Err("chunked body cut short".into())),
                Ok(Step::NeedMore) => return None,
            }
        }
    } else if let Some(length) = header("content-length") {
        let Some(length) = std::str::from_utf8(length)
            .ok()
            .and_then(|l| l.trim().parse::<usize>().ok())
        else {
            return Some(Err("bad Content-Length".into()));
        };
        match rest.get(..length) {
            Some(body) => body.to_vec(),
            None if eof => return Some(Err("body cut short".into())),
            None => return None,
        }
    } else if eof {
        rest.to_vec()
    } else {
        return None;
    };
    // serde_json bounds the nesting (128 levels), so a hostile /status
    // cannot recurse the client's stack away.
    Some(serde_json::from_slice(&body).map_err(|e| format!("not JSON: {e}")))
}

/// Why a sample came from polling `/status`: its latency is then only the
/// server's since start-up, left out of the second's columns.
fn polled_note(why: &str) -> String {
    format!(
        "no live stream ({why}): polling /status instead, whose latency is since \
         the server started, so the server p99 of each second is unknown \
         (p99_since_start_us in --json)"
    )
}

/// Sleeps until `at`; false if `stop` was set first.
fn sleep_until(at: Instant, stop: &AtomicBool) -> bool {
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let left = at.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(Duration::from_millis(20)));
    }
}

/// From `start` until `stop`: subscribes to the server's live stream and
/// keeps a sample per event; without a stream (or once it fails), fetches
/// `/status` at `start + 1 s`, `+ 2 s`, … instead.
pub(crate) fn spawn(
    target: Target,
    start: Instant,
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
) -> std::io::Result<JoinHandle<()>> {
    let push = move |sample: Sample| {
        if let Ok(mut all) = samples.lock() {
            all.push(sample);
        }
    };
    std::thread::Builder::new()
        .name("bench-status".into())
        .spawn(move || {
            // Subscribing as the measured run starts lines the server's
            // seconds up with the client's (the warm-up is not sampled).
            if !sleep_until(start, &stop) {
                return;
            }
            let why = match Events::subscribe(&target) {
                Ok(events) => match follow(events, start, &stop, &push) {
                    None => return,
                    Some(why) => why,
                },
                Err(why) => why,
            };
            poll(&target, start, &stop, &push, &polled_note(&why));
        })
}

/// Keeps a sample per live event until `stop` (`None`), or until the
/// stream fails (why).
fn follow(
    mut events: Events,
    start: Instant,
    stop: &AtomicBool,
    push: &impl Fn(Sample),
) -> Option<String> {
    loop {
        let event = match events.next(stop) {
            Ok(Some(event)) => event,
            Ok(None) => return None,
            Err(why) => return Some(format!("the stream failed: {why}")),
        };
        let sample = Sample::from_status(start.elapsed().as_secs_f64(), &event);
        // The first event covers the moment since subscribing: no second.
        if event.pointer("/live/interval_secs").and_then(Value::as_f64) < Some(0.5) {
            continue;
        }
        if sample.p99_us.is_none() {
            return Some("its events have no live latency".into());
        }
        push(sample);
    }
}

/// Fetches `/status` at the next whole second after `start`, and each
/// second after, until `stop`; each figured sample carries `note`.
fn poll(target: &Target, start: Instant, stop: &AtomicBool, push: &impl Fn(Sample), note: &str) {
    let whole = start.elapsed().as_secs() + 1;
    let mut next = start + Duration::from_secs(whole);
    while sleep_until(next, stop) {
        let t = start.elapsed().as_secs_f64();
        push(match fetch(target) {
            Ok(status) => Sample {
                // A since-start figure is not the second's.
                p50_us: None,
                p99_us: None,
                live_rps: None,
                note: Some(note.to_string()),
                ..Sample::from_status(t, &status)
            },
            Err(error) => Sample {
                t,
                error: Some(error),
                ..Sample::default()
            },
        });
        // A slow sample skips the ticks it overran.
        while next <= Instant::now() {
            next += Duration::from_secs(1);
        }
    }
}

/// The value of the first field `name` (any case) among `headers`.
pub(crate) fn field<'h>(headers: &[httparse::Header<'h>], name: &str) -> Option<&'h [u8]> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_conveyors_status_and_tolerates_others() {
        let body = r#"{"connections":{"open":5,"reading":1,"writing":2,"idle_keepalive":2},
            "requests":{"total":100},"latency_us":{"p50":40,"p90":80,"p99":120},
            "live":{"interval_secs":0.5,"requests":30,"latency_us":{"p50":9,"p90":10,"p99":11}},
            "queues":[{"worker":0,"depth":3},{"worker":1,"depth":4}],"dash":{"new":[1]}}"#;
        let raw = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        // Not complete without its last byte; complete with it.
        assert!(body_json(&raw.as_bytes()[..raw.len() - 1], false).is_none());
        let status = body_json(raw.as_bytes(), false).expect("complete");
        let s = Sample::from_status(2.0, &status.expect("parses"));
        assert_eq!(
            (
                s.open,
                s.reading,
                s.writing,
                s.idle,
                s.queue_depth,
                s.p99_us
            ),
            (
                Some(5.0),
                Some(1.0),
                Some(2.0),
                Some(2.0),
                Some(7.0),
                Some(11.0)
            )
        );
        // The second's figures, the since-start one apart.
        assert_eq!(
            (s.p50_us, s.p99_since_start_us, rate(None, &s)),
            (Some(9.0), Some(120.0), Some(60.0))
        );
        // Chunked, and a status without most fields.
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n2\r\n1}\r\n0\r\n\r\n";
        let status = body_json(raw, false).expect("complete");
        let s = Sample::from_status(1.0, &status.expect("parses"));
        assert_eq!(s.open, None);
        assert!(live(None, &s).contains("open -"));
        assert_eq!(
            body_json(b"HTTP/1.1 404 Not Found\r\n\r\n", false),
            Some(Err("status 404".to_string()))
        );
        // Neither length nor chunks: the body ends with the connection.
        let raw = b"HTTP/1.1 200 OK\r\n\r\n{\"x\":1}";
        assert!(body_json(raw, false).is_none());
        assert!(matches!(body_json(raw, true), Some(Ok(_))));
    }
}
