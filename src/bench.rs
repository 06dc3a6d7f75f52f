//! `conveyor bench`: a keep-alive HTTP/1.1 load generator on Conveyor's own
//! runtime — one green thread per connection — for any server.
//!
//! Every response is checked (status line, framing, byte count); latency is
//! recorded per request in an HDR histogram (per worker, merged at the end).

use std::cell::RefCell;
use std::ffi::OsString;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::config::{parse_duration, ConfigError};
use crate::http::{ChunkedDecoder, Step};
use crate::runtime::{self, timeout, Runtime, TcpStream};

/// The `conveyor bench --help` text.
pub const USAGE: &str = "\
usage: conveyor bench URL [-c CONNECTIONS] [-d DURATION | -n REQUESTS] [--pipeline DEPTH]
                          [--close] [--threads N] [--json]

  URL            http://HOST:PORT/PATH (plain HTTP/1.1)
  -c N           concurrent connections (default 64)
  -d DURATION    run for this long, e.g. 5s, 500ms (default 5s)
  -n N           stop after N requests instead
  --pipeline D   send D requests per write and read D responses (default 1)
  --close        a new connection per request (Connection: close)
  --threads N    client worker threads (default: number of cores)
  --json         print the result as JSON
";

/// How to run the load, as parsed from `conveyor bench` arguments.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchOptions {
    /// The address connected to: the URL's host, resolved (port 80 if none).
    pub addr: SocketAddr,
    /// The URL's `HOST[:PORT]`, sent as the Host header.
    pub host: String,
    /// The request target, from the URL (`/` if it has none).
    pub path: String,
    /// `-c`: connections kept open at once (default 64).
    pub connections: usize,
    /// `-d`: how long to run (default 5 s); ignored when `requests` is set.
    pub duration: Duration,
    /// `-n`: stop after this many requests instead of after `duration`.
    pub requests: Option<u64>,
    /// `--pipeline`: requests sent per write, and responses read per batch (default 1).
    pub pipeline: usize,
    /// `--close`: a new connection per request, sending `Connection: close`.
    pub close: bool,
    /// `--threads`: client worker threads (default: one per core).
    pub threads: usize,
    /// `--json`: print the result as JSON rather than a table.
    pub json: bool,
}

/// What a run measured.
#[derive(Clone, Debug)]
pub struct BenchReport {
    /// Wall-clock time of the run.
    pub elapsed: Duration,
    /// Requests answered with a valid 2xx or 3xx response.
    pub requests: u64,
    /// Response bytes received, heads and bodies.
    pub bytes: u64,
    /// Requests that failed: connect error, timeout (10 s), bad or error response.
    pub errors: u64,
    /// Connections opened during the run, reconnects included.
    pub connections_opened: u64,
    /// Latency in microseconds, one sample per request: from sending its
    /// batch (`--pipeline`) until the whole batch is answered.
    pub latency: Histogram<u64>,
}

impl BenchReport {
    /// Answered requests per second of `elapsed`.
    pub fn requests_per_sec(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Response bytes received per second of `elapsed`.
    pub fn bytes_per_sec(&self) -> f64 {
        self.bytes as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Latency at quantile `q` in microseconds.
    pub fn latency_us(&self, q: f64) -> u64 {
        self.latency.value_at_quantile(q)
    }

    /// The result as a Markdown table, headed by what was run.
    pub fn table(&self, options: &BenchOptions) -> String {
        let mode = if options.close {
            "close".to_string()
        } else if options.pipeline > 1 {
            format!("keep-alive, pipelined x{}", options.pipeline)
        } else {
            "keep-alive".to_string()
        };
        format!(
            "| metric | value |\n|---|---|\n\
             | target | http://{}{} ({mode}, {} connections) |\n\
             | duration | {:.2} s |\n| requests | {} |\n| requests/s | {:.0} |\n\
             | bytes/s | {:.1} MB/s |\n| latency p50 | {} µs |\n| latency p90 | {} µs |\n\
             | latency p99 | {} µs |\n| latency max | {} µs |\n| errors | {} |\n\
             | connections opened | {} |\n",
            options.host,
            options.path,
            options.connections,
            self.elapsed.as_secs_f64(),
            self.requests,
            self.requests_per_sec(),
            self.bytes_per_sec() / 1e6,
            self.latency_us(0.5),
            self.latency_us(0.9),
            self.latency_us(0.99),
            self.latency.max(),
            self.errors,
            self.connections_opened
        )
    }

    /// The result as one JSON object (rates, latency percentiles in µs, errors).
    pub fn json(&self) -> String {
        format!(
            "{{\"duration_secs\":{:.3},\"requests\":{},\"requests_per_sec\":{:.1},\"bytes_per_sec\":{:.1},\"latency_us\":{{\"p50\":{},\"p90\":{},\"p99\":{},\"max\":{}}},\"errors\":{},\"connections_opened\":{}}}",
            self.elapsed.as_secs_f64(),
            self.requests,
            self.requests_per_sec(),
            self.bytes_per_sec(),
            self.latency_us(0.5),
            self.latency_us(0.9),
            self.latency_us(0.99),
            self.latency.max(),
            self.errors,
            self.connections_opened
        )
    }
}

fn bad(message: String) -> ConfigError {
    ConfigError::new(format!("{message} (see conveyor bench --help)"))
}

/// Parses the arguments after `bench`; `Ok(None)` means help was asked for.
pub fn parse_args(args: Vec<OsString>) -> Result<Option<BenchOptions>, ConfigError> {
    let mut url = None;
    let mut connections = 64usize;
    let mut duration = Duration::from_secs(5);
    let mut requests = None;
    let mut pipeline = 1usize;
    let mut close = false;
    let mut threads = crate::config::resolve_workers(0);
    let mut json = false;
    let mut args = args.into_iter().map(|a| a.to_string_lossy().into_owned());
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| {
            args.next()
                .ok_or_else(|| bad(format!("{flag} needs a value")))
        };
        let number = |flag: &str, v: String| -> Result<u64, ConfigError> {
            v.parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| bad(format!("{flag} {v} is not a positive whole number")))
        };
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "-c" => connections = number("-c", value("-c")?)? as usize,
            "-n" => requests = Some(number("-n", value("-n")?)?),
            "--pipeline" => pipeline = number("--pipeline", value("--pipeline")?)? as usize,
            "--threads" => threads = number("--threads", value("--threads")?)? as usize,
            "-d" => {
                let v = value("-d")?;
                duration = parse_duration(&v).ok_or_else(|| {
                    bad(format!(
                        "-d {v} is not a duration; write it like 5s or 500ms"
                    ))
                })?;
            }
            "--close" => close = true,
            "--json" => json = true,
            other if other.starts_with('-') => return Err(bad(format!("unknown option {other}"))),
            other if url.is_none() => url = Some(other.to_string()),
            other => return Err(bad(format!("unexpected argument {other}"))),
        }
    }
    let url = url.ok_or_else(|| bad("missing URL".into()))?;
    let (host, path) = split_url(&url)
        .ok_or_else(|| bad(format!("{url} is not an http://HOST[:PORT]/PATH URL")))?;
    let with_port = if host.contains(':') && !host.ends_with(']') {
        host.clone()
    } else {
        format!("{host}:80")
    };
    let addr = with_port
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| bad(format!("cannot resolve {host}")))?;
    if close && pipeline > 1 {
        return Err(bad("--close and --pipeline do not mix".into()));
    }
    Ok(Some(BenchOptions {
        addr,
        host,
        path,
        connections,
        duration,
        requests,
        pipeline,
        close,
        threads,
        json,
    }))
}

fn split_url(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("http://")?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    (!host.is_empty()).then(|| (host.to_string(), path.to_string()))
}

/// Shared between the client's green threads and the progress printer.
struct Shared {
    requests: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
    opened: AtomicU64,
    /// Requests still allowed to start under `-n` (`u64::MAX` with `-d`).
    budget: AtomicU64,
    stop: AtomicBool,
}

impl Shared {
    /// Claims `n` requests of the budget; fewer (maybe 0) near the end.
    fn claim(&self, n: u64) -> u64 {
        let mut left = self.budget.load(Ordering::Relaxed);
        loop {
            let take = left.min(n);
            if take == 0 || self.stop.load(Ordering::Relaxed) {
                return 0;
            }
            match self.budget.compare_exchange_weak(
                left,
                left - take,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return take,
                Err(actual) => left = actual,
            }
        }
    }
}

/// Runs the load; `progress` is called about once a second with the
/// requests done so far.
pub fn run(
    options: &BenchOptions,
    mut progress: impl FnMut(u64, Duration),
) -> io::Result<BenchReport> {
    let runtime = Runtime::builder()
        .workers(options.threads)
        .thread_name("bench")
        .build()?;
    let shared = Arc::new(Shared {
        requests: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        opened: AtomicU64::new(0),
        budget: AtomicU64::new(options.requests.unwrap_or(u64::MAX)),
        stop: AtomicBool::new(false),
    });
    let started = Instant::now();
    let workers = runtime.workers();
    let handles: Vec<_> = (0..workers)
        .map(|worker| {
            let options = options.clone();
            let shared = shared.clone();
            let share =
                options.connections / workers + usize::from(worker < options.connections % workers);
            runtime.spawn_local_on(worker, move || run_worker(options, shared, share))
        })
        .collect();
    let deadline = started + options.duration;
    let mut next_progress = started + Duration::from_secs(1);
    while !handles.iter().all(|h| h.is_finished()) {
        let now = Instant::now();
        if options.requests.is_none() && now >= deadline {
            shared.stop.store(true, Ordering::Relaxed);
        }
        if now >= next_progress {
            progress(shared.requests.load(Ordering::Relaxed), now - started);
            next_progress += Duration::from_secs(1);
        }
        // The client's own threads do the work; this one only watches.
        std::thread::sleep(Duration::from_millis(5));
    }
    let elapsed = started.elapsed();
    let mut latency = new_histogram();
    for handle in handles {
        if let Ok(h) = runtime.block_on(handle) {
            let _ = latency.add(h);
        }
    }
    Ok(BenchReport {
        elapsed,
        requests: shared.requests.load(Ordering::Relaxed),
        bytes: shared.bytes.load(Ordering::Relaxed),
        errors: shared.errors.load(Ordering::Relaxed),
        connections_opened: shared.opened.load(Ordering::Relaxed),
        latency,
    })
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs .. 100 s at 3 significant figures; the bounds are constants.
    Histogram::new_with_bounds(1, 100_000_000, 3).expect("valid histogram bounds")
}

/// One worker's share of the connections; returns its latency histogram.
async fn run_worker(
    options: BenchOptions,
    shared: Arc<Shared>,
    connections: usize,
) -> Histogram<u64> {
    let histogram = Rc::new(RefCell::new(new_histogram()));
    let options = Rc::new(options);
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            runtime::spawn(connection_loop(
                options.clone(),
                shared.clone(),
                histogram.clone(),
            ))
        })
        .collect();
    for task in tasks {
        let _ = task.await;
    }
    let histogram = histogram.borrow().clone();
    histogram
}

fn request_bytes(options: &BenchOptions) -> Vec<u8> {
    let one = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\n{}\r\n",
        options.path,
        options.host,
        if options.close {
            "Connection: close\r\n"
        } else {
            ""
        }
    );
    one.repeat(options.pipeline).into_bytes()
}

/// Keeps one connection busy until the run ends, reconnecting after errors
/// (and after every request with `--close`).
async fn connection_loop(
    options: Rc<BenchOptions>,
    shared: Arc<Shared>,
    histogram: Rc<RefCell<Histogram<u64>>>,
) {
    let request = request_bytes(&options);
    let mut reader = ResponseReader::default();
    let mut stream: Option<TcpStream> = None;
    loop {
        let batch = shared.claim(options.pipeline as u64);
        if batch == 0 {
            return;
        }
        if stream.is_none() {
            match timeout(Duration::from_secs(10), TcpStream::connect(options.addr)).await {
                Ok(Ok(s)) => {
                    shared.opened.fetch_add(1, Ordering::Relaxed);
                    reader = ResponseReader::default();
                    stream = Some(s);
                }
                _ => {
                    shared.errors.fetch_add(batch, Ordering::Relaxed);
                    runtime::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
        }
        let Some(conn) = stream.as_ref() else {
            continue;
        };
        let sent_at = Instant::now();
        let bytes = &request[..request.len() / options.pipeline * batch as usize];
        let outcome = timeout(
            Duration::from_secs(10),
            exchange(conn, bytes, batch, &mut reader),
        )
        .await;
        match outcome {
            Ok(Ok(Exchanged {
                answered,
                bytes,
                closed,
            })) => {
                let micros = sent_at.elapsed().as_micros() as u64;
                let mut h = histogram.borrow_mut();
                for _ in 0..answered {
                    let _ = h.record(micros.max(1));
                }
                shared.requests.fetch_add(answered, Ordering::Relaxed);
                shared.bytes.fetch_add(bytes, Ordering::Relaxed);
                if closed {
                    // The server ended the connection deliberately (e.g. its
                    // per-connection request limit): requests it did not
                    // answer go back to the budget, not into the errors.
                    if shared.budget.load(Ordering::Relaxed) != u64::MAX {
                        shared.budget.fetch_add(batch - answered, Ordering::Relaxed);
                    }
                    stream = None;
                }
            }
            _ => {
                shared.errors.fetch_add(batch, Ordering::Relaxed);
                stream = None;
            }
        }
    }
}

struct Exchanged {
    answered: u64,
    bytes: u64,
    /// The last response said `Connection: close`.
    closed: bool,
}

/// Sends the requests and reads `count` complete, well-formed responses
/// (fewer if one of them closes the connection).
async fn exchange(
    stream: &TcpStream,
    request: &[u8],
    count: u64,
    reader: &mut ResponseReader,
) -> io::Result<Exchanged> {
    stream.write_all(request).await?;
    let mut done = Exchanged {
        answered: 0,
        bytes: 0,
        closed: false,
    };
    while done.answered < count && !done.closed {
        let (bytes, closed) = reader.next(stream).await?;
        done.answered += 1;
        done.bytes += bytes;
        done.closed = closed;
    }
    Ok(done)
}

/// Reads responses off a stream, keeping bytes of the next one.
#[derive(Default)]
struct ResponseReader {
    /// Received bytes live in `buf[start..end]`; the buffer is zeroed once
    /// and reused (re-zeroing 64 KiB per read cost a quarter of the client).
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_string())
}

impl ResponseReader {
    async fn fill(&mut self, stream: &TcpStream) -> io::Result<()> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            let grown = (self.buf.len() * 2).max(64 * 1024);
            self.buf.resize(grown, 0);
        }
        let n = stream.read(&mut self.buf[self.end..]).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.end += n;
        Ok(())
    }

    /// One response: a 2xx/3xx status line and a body framed by
    /// Content-Length or chunked. Returns the response's size in bytes and
    /// whether it closes the connection.
    async fn next(&mut self, stream: &TcpStream) -> io::Result<(u64, bool)> {
        let (head_len, framing, closes) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            match response.parse(&self.buf[self.start..self.end]) {
                Ok(httparse::Status::Complete(n)) => {
                    let status = response.code.unwrap_or(0);
                    if !(200..400).contains(&status) {
                        return Err(invalid("error status"));
                    }
                    let closes = response.headers.iter().any(|h| {
                        h.name.eq_ignore_ascii_case("connection")
                            && h.value.eq_ignore_ascii_case(b"close")
                    });
                    break (n, framing_of(response.headers)?, closes);
                }
                Ok(httparse::Status::Partial) => self.fill(stream).await?,
                Err(_) => return Err(invalid("malformed response")),
            }
        };
        self.start += head_len;
        let body = match framing {
            Framing::Length(len) => {
                let len = usize::try_from(len).map_err(|_| invalid("huge body"))?;
                // Large bodies are counted as they pass, not kept.
                let mut left = len;
                loop {
                    let have = (self.end - self.start).min(left);
                    self.start += have;
                    left -= have;
                    if left == 0 {
                        break;
                    }
                    self.fill(stream).await?;
                }
                len
            }
            Framing::Chunked => {
                let mut decoder = ChunkedDecoder::new();
                let mut len = 0;
                loop {
                    match decoder
                        .step(&self.buf[self.start..self.end])
                        .map_err(|_| invalid("bad chunk"))?
                    {
                        Step::Data(r) => {
                            len += r.len();
                            self.start += r.end;
                        }
                        Step::Skip(n) => self.start += n,
                        Step::NeedMore => self.fill(stream).await?,
                        Step::Done(n) => {
                            self.start += n;
                            break len;
                        }
                    }
                }
            }
        };
        Ok(((head_len + body) as u64, closes))
    }
}

enum Framing {
    Length(u64),
    Chunked,
}

fn framing_of(headers: &[httparse::Header<'_>]) -> io::Result<Framing> {
    for h in headers {
        if h.name.eq_ignore_ascii_case("content-length") {
            let text = std::str::from_utf8(h.value).map_err(|_| invalid("bad length"))?;
            return text
                .trim()
                .parse()
                .map(Framing::Length)
                .map_err(|_| invalid("bad length"));
        }
        if h.name.eq_ignore_ascii_case("transfer-encoding")
            && h.value.eq_ignore_ascii_case(b"chunked")
        {
            return Ok(Framing::Chunked);
        }
    }
    Err(invalid("response without framing"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn parses_url_and_flags() {
        let o = parse_args(args(&[
            "http://127.0.0.1:8080/small.txt",
            "-c",
            "8",
            "-n",
            "100",
            "--pipeline",
            "4",
            "--json",
        ]))
        .expect("parses")
        .expect("not help");
        assert_eq!(o.addr, "127.0.0.1:8080".parse().expect("addr"));
        assert_eq!(o.path, "/small.txt");
        assert_eq!(
            (o.connections, o.requests, o.pipeline, o.json),
            (8, Some(100), 4, true)
        );
        assert_eq!(
            request_bytes(&o).len(),
            4 * b"GET /small.txt HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n".len()
        );
    }

    #[test]
    fn rejects_bad_input_with_a_reason() {
        for (list, needle) in [
            (vec!["ftp://x/"], "not an http"),
            (vec!["http://127.0.0.1:1/", "-c", "0"], "positive"),
            (vec!["http://127.0.0.1:1/", "-d", "soon"], "duration"),
            (
                vec!["http://127.0.0.1:1/", "--close", "--pipeline", "2"],
                "do not mix",
            ),
            (vec![], "missing URL"),
        ] {
            let err = parse_args(args(&list)).expect_err("rejected");
            assert!(err.to_string().contains(needle), "{err}");
        }
    }
}
