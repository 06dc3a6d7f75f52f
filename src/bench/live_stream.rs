//! The server's live stream (`GET /status?stream=1`, Server-Sent Events):
//! Conveyor sends its `/status` report once a second with a `"live"`
//! object, the latency percentiles and request count *of that second*.
//! `--server-status` reads it so that the server's p99 beside the client's
//! covers the same second, not the server's whole life.

use std::io::{ErrorKind, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use conveyor::http::{ChunkedDecoder, Step};
use serde_json::Value;

use super::server_status::{Io, Target};

/// How long connecting and the response's head may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How often a read gives up to look at the stop flag.
const READ_SLICE: Duration = Duration::from_millis(100);
/// A stream with no event for this long has stalled (the server sends one
/// a second).
const STALLED_AFTER: Duration = Duration::from_secs(3);
/// An event (or a head) larger than this is not read.
const MAX_EVENT_BYTES: usize = 1 << 20;

/// An open live stream, read one event at a time.
pub(crate) struct Events {
    stream: Box<dyn Io>,
    /// Bytes read but not yet decoded (chunked framing).
    raw: Vec<u8>,
    /// `Some` when the body is chunked.
    chunked: Option<ChunkedDecoder>,
    /// The decoded body not yet split into events.
    body: Vec<u8>,
    /// When the last event (or the head) arrived.
    last: Instant,
}

impl Events {
    /// Subscribes: `GET /status?stream=1`; an error when the answer is not
    /// an event stream (another server, an older Conveyor, or the cap of
    /// `status.max_subscribers` reached: the status is in the message).
    pub(crate) fn subscribe(target: &Target) -> Result<Events, String> {
        let host = &target.host;
        let request = format!(
            "GET /status?stream=1 HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n"
        );
        let mut stream = super::server_status::ask(target, &request, CONNECT_TIMEOUT, READ_SLICE)?;
        let started = Instant::now();
        let mut raw = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => return Err("the server closed the connection".into()),
                Ok(n) => raw.extend_from_slice(&buf[..n]),
                Err(e) if is_timeout(&e) => {}
                Err(e) => return Err(e.to_string()),
            }
            if let Some(head) = head(&raw)? {
                let (length, chunked) = head;
                raw.drain(..length);
                let mut events = Events {
                    stream,
                    raw: Vec::new(),
                    chunked: chunked.then(ChunkedDecoder::new),
                    body: Vec::new(),
                    last: Instant::now(),
                };
                events.feed(&raw)?;
                return Ok(events);
            }
            if started.elapsed() > CONNECT_TIMEOUT || raw.len() > MAX_EVENT_BYTES {
                return Err("no response head".into());
            }
        }
    }

    /// The next event's JSON; `Ok(None)` once `stop` is set.
    pub(crate) fn next(&mut self, stop: &AtomicBool) -> Result<Option<Value>, String> {
        let mut buf = [0u8; 16 * 1024];
        loop {
            while let Some(end) = self.body.windows(2).position(|w| w == b"\n\n") {
                let event: Vec<u8> = self.body.drain(..end + 2).collect();
                if let Some(data) = data_of(&event) {
                    self.last = Instant::now();
                    // serde_json bounds the nesting (128 levels), so a
                    // hostile server cannot recurse the client's stack away.
                    return serde_json::from_slice(&data)
                        .map(Some)
                        .map_err(|e| format!("an event is not JSON: {e}"));
                }
            }
            if stop.load(Ordering::Relaxed) {
                return Ok(None);
            }
            if self.last.elapsed() > STALLED_AFTER {
                return Err(format!("no event for {} s", STALLED_AFTER.as_secs()));
            }
            match self.stream.read(&mut buf) {
                Ok(0) => return Err("the server ended the stream".into()),
                Ok(n) => self.feed(&buf[..n])?,
                Err(e) if is_timeout(&e) => {}
                Err(e) => return Err(e.to_string()),
            }
            if self.body.len() > MAX_EVENT_BYTES {
                return Err("an event larger than 1 MiB".into());
            }
        }
    }

    /// Adds bytes read from the socket to the decoded body.
    fn feed(&mut self, bytes: &[u8]) -> Result<(), String> {
        let Some(decoder) = &mut self.chunked else {
            self.body.extend_from_slice(bytes);
            return Ok(());
        };
        self.raw.extend_from_slice(bytes);
        let mut at = 0;
        loop {
            match decoder.step(&self.raw[at..]) {
                Err(_) => return Err("bad chunked framing".into()),
                Ok(Step::Data(r)) => {
                    self.body
                        .extend_from_slice(&self.raw[at + r.start..at + r.end]);
                    at += r.end;
                }
                Ok(Step::Skip(n)) => at += n,
                Ok(Step::Done(_)) => return Err("the server ended the stream".into()),
                Ok(Step::NeedMore) => break,
            }
        }
        self.raw.drain(..at);
        Ok(())
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// The head's length and whether the body is chunked, once the head is
/// complete; an error when it is not a `200` event stream.
fn head(raw: &[u8]) -> Result<Option<(usize, bool)>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let length = match response.parse(raw) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err("not an HTTP response".into()),
    };
    let header = |name: &str| super::server_status::field(response.headers, name);
    match response.code {
        Some(200) => {}
        Some(503) => {
            return Err("status 503 (the server's status.max_subscribers streams are open)".into())
        }
        code => return Err(format!("status {}", code.unwrap_or(0))),
    }
    let event_stream = header("content-type")
        .is_some_and(|v| v.to_ascii_lowercase().starts_with(b"text/event-stream"));
    if !event_stream {
        return Err("not an event stream".into());
    }
    let chunked = header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case(b"chunked"));
    Ok(Some((length, chunked)))
}

/// The `data:` lines of one event, joined by newlines (`None` without any:
/// a `retry:` or a comment).
fn data_of(event: &[u8]) -> Option<Vec<u8>> {
    let mut data: Option<Vec<u8>> = None;
    for line in event.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(value) = line.strip_prefix(b"data:") else {
            continue;
        };
        let value = value.strip_prefix(b" ").unwrap_or(value);
        match &mut data {
            Some(d) => {
                d.push(b'\n');
                d.extend_from_slice(value);
            }
            None => data = Some(value.to_vec()),
        }
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_head_and_the_events_data() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\nretry: 2000\n\n";
        assert_eq!(head(&raw[..20]), Ok(None));
        let (length, chunked) = head(raw).expect("valid").expect("complete");
        assert_eq!((&raw[length..], chunked), (&b"retry: 2000\n\n"[..], false));
        assert!(head(b"HTTP/1.1 503 Service Unavailable\r\n\r\n")
            .is_err_and(|e| e.contains("max_subscribers")));
        assert_eq!(
            head(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n"),
            Err("not an event stream".to_string())
        );
        assert_eq!(data_of(b"retry: 2000\n\n"), None);
        assert_eq!(
            data_of(b"data: {\"a\":\r\ndata:1}\n\n").as_deref(),
            Some(&b"{\"a\":\n1}"[..])
        );
    }
}
