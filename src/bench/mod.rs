//! `conveyor bench`: a keep-alive HTTP/1.1 load generator on Conveyor's own
//! runtime — one green thread per connection — for any server.
//!
//! Every response is checked (status line, framing, byte count) and counted
//! by status; latency is recorded per response in an HDR histogram (per
//! worker, merged at the end). A run that failed says so: errors are counted
//! by class (refused, reset, timeout, bad response, fd limit) and non-2xx
//! responses by status, connections that could not be opened are reported
//! with the reason, and [`BenchReport::failures`] lists why the run should
//! not be trusted (the binary exits 1 when it is not empty).
//!
//! Closed loop by default (each connection sends when its last answer
//! came); `--rate` runs open loop on a timetable ([`rate`]) and reports
//! latency corrected for coordinated omission. The run also keeps a
//! per-second series ([`series`]), can sample the server's `/status`
//! ([`server_status`]), check thresholds ([`check`]), compare against an
//! earlier run ([`baseline`]) and write the distribution ([`hdr`]).

pub mod baseline;
pub mod check;
pub mod hdr;
pub mod json;
pub mod rate;
pub mod series;
pub mod server_status;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use self::baseline::Baseline;
use self::check::Threshold;
use self::rate::{Pacer, LATE_AFTER, TIMER_RESOLUTION};
use self::series::{Live, Series};
use self::server_status::Sample;
use crate::config::{parse_duration, ConfigError};
use crate::http::json::json_string;
use crate::http::{ChunkedDecoder, Step};
use crate::runtime::sys::limits::{self, FdLimit};
use crate::runtime::{self, timeout_at, Runtime, TcpStream};

/// The `conveyor bench --help` text.
pub const USAGE: &str = "\
usage: conveyor bench URL [-c CONNECTIONS] [-d DURATION | -n REQUESTS] [--pipeline DEPTH]
                          [--close] [--threads N] [--max-errors PERCENT] [--json]
                          [--rate R] [--warmup D] [--server-status] [--check TERMS]
                          [--baseline OLD.json] [--hdr-out FILE] [-H 'NAME: VALUE']

  URL              http://HOST:PORT/PATH (plain HTTP/1.1)
  -c N             concurrent connections (default 64); the soft open-file
                   limit is raised to fit them when the hard limit allows
  -d DURATION      run for this long, e.g. 5s, 500ms (default 5s); connecting,
                   requests and timeouts all stop when it is up
  -n N             stop after N requests instead
  --pipeline D     send D requests per write and read D responses (default 1)
  --close          a new connection per request (Connection: close)
  -H 'NAME: VALUE' add this header to every request (repeatable), e.g.
                   -H 'Accept-Encoding: gzip'
  --threads N      client worker threads (default: number of cores)
  --max-errors P   fail the run when more than P % of requests fail (default 1)
  --json           print the result as JSON (URL, options, counts, failures,
                   per-second series)
  --rate R         open loop: send R requests per second in all, each
                   connection on a fixed timetable, whatever the answers do;
                   latency is measured from when each request should have
                   been sent (corrected for coordinated omission) and also
                   from when it was sent (uncorrected); a send more than 2 ms
                   behind its time counts as late (the timetable's timers
                   wake on whole milliseconds, so sends go out up to 1 ms
                   early, and are then timed from when they went out)
  --warmup D       run D first and discard it from the results (with -d)
  --server-status  sample the target's /status each second and print its
                   request rate, latency, connection states and queue depth
                   beside the client's
  --check TERMS    thresholds for CI, e.g. 'p99<2ms,errors=0,rps>50000';
                   figures: p50 p75 p90 p99 p99.9 p99.99 max (latency; us, ms
                   or s), rps, errors (a count, or errors<1% as a share),
                   late, requests; comparisons < <= > >= =
  --baseline FILE  print every figure beside the same one in FILE, the --json
                   output of an earlier run, with the change in percent
  --hdr-out FILE   write the latency distribution (corrected, with --rate) in
                   HdrHistogram's percentile format, values in milliseconds

A progress line is printed to stderr each second: requests/s, p99 and errors
of that second (and late sends with --rate, the server's figures with
--server-status).

Errors are counted by class: connection refused, too many open files (the
fd limit), connection reset or closed mid-response, timeout (10 s, or the run
ending while connecting), bad response (unparseable or badly framed); a
complete non-2xx response is an error counted by its status code, and its
connection is kept. Connections the server closes (Connection: close, e.g.
its max_requests_per_connection) are reopened and counted as such. The same
errors are also grouped by where they happened: connect, read, timeout, bad
status, bad body.

Exit status: 0 when the run succeeded; 1 when no request got a 2xx answer,
when errors exceed --max-errors, when some of the -c connections could
never be opened (each reason is printed), or when --hdr-out cannot be
written; 2 for bad arguments; 3 when the run succeeded but a --check
threshold failed.
";

/// The per-request timeout, when the run's end is not sooner.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// `--max-errors`: the share of failed requests, in percent, above
    /// which the run fails (default 1).
    pub max_errors_pct: f64,
    /// `--json`: print the result as JSON rather than a table.
    pub json: bool,
    /// `--rate`: requests per second in all, sent open loop on a timetable.
    pub rate: Option<f64>,
    /// `--warmup`: run this long first, its results discarded.
    pub warmup: Duration,
    /// `--server-status`: sample the target's `/status` each second.
    pub server_status: bool,
    /// `--check`: thresholds the run must meet.
    pub checks: Vec<Threshold>,
    /// `--baseline`: an earlier run to compare against.
    pub baseline: Option<Baseline>,
    /// `--hdr-out`: where to write the latency distribution.
    pub hdr_out: Option<String>,
    /// `-H`: extra request header lines (`Name: value`), sent as given.
    pub headers: Vec<String>,
}

impl BenchOptions {
    /// The options' defaults, aimed at `addr` and `path`.
    pub fn new(addr: SocketAddr, path: &str) -> BenchOptions {
        BenchOptions {
            addr,
            host: addr.to_string(),
            path: path.to_string(),
            connections: 64,
            duration: Duration::from_secs(5),
            requests: None,
            pipeline: 1,
            close: false,
            threads: crate::config::resolve_workers(0),
            max_errors_pct: 1.0,
            json: false,
            rate: None,
            warmup: Duration::ZERO,
            server_status: false,
            checks: Vec::new(),
            baseline: None,
            hdr_out: None,
            headers: Vec::new(),
        }
    }

    /// The target as a URL.
    pub fn url(&self) -> String {
        format!("http://{}{}", self.host, self.path)
    }
}

/// Why a request failed, or a connection could not be opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    Refused,
    FdLimit,
    Reset,
    Timeout,
    BadResponse,
    Other,
}

impl Failure {
    fn of(e: &io::Error) -> Failure {
        match e.raw_os_error() {
            Some(libc::ECONNREFUSED) => return Failure::Refused,
            Some(libc::EMFILE | libc::ENFILE) => return Failure::FdLimit,
            Some(libc::ECONNRESET | libc::EPIPE | libc::ECONNABORTED) => return Failure::Reset,
            Some(libc::ETIMEDOUT) => return Failure::Timeout,
            _ => {}
        }
        match e.kind() {
            io::ErrorKind::ConnectionRefused => Failure::Refused,
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof => Failure::Reset,
            io::ErrorKind::TimedOut => Failure::Timeout,
            io::ErrorKind::InvalidData => Failure::BadResponse,
            _ => Failure::Other,
        }
    }
}

/// Counts by failure class: failed requests in [`BenchReport::errors`],
/// connections never opened in [`ConnectionCounts::not_opened`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ErrorCounts {
    /// `ECONNREFUSED`: nothing listens at the address.
    pub refused: u64,
    /// `EMFILE`/`ENFILE`: the open-file limit stopped a new socket.
    pub fd_limit: u64,
    /// The connection was reset, or closed before a response was complete.
    pub reset: u64,
    /// No answer (or no connection) within the timeout.
    pub timeout: u64,
    /// A response that could not be parsed or was badly framed.
    pub bad_response: u64,
    /// Any other I/O error (see [`BenchReport::other_error`]).
    pub other: u64,
}

impl ErrorCounts {
    /// All classes together.
    pub fn total(&self) -> u64 {
        self.classes().iter().map(|(_, _, n)| n).sum()
    }

    /// `(json key, label, count)` for every class, in a fixed order.
    pub fn classes(&self) -> [(&'static str, &'static str, u64); 6] {
        [
            ("refused", "connection refused", self.refused),
            ("fd_limit", "too many open files (fd limit)", self.fd_limit),
            (
                "reset",
                "connection reset or closed mid-response",
                self.reset,
            ),
            ("timeout", "timeout", self.timeout),
            ("bad_response", "bad response", self.bad_response),
            ("other", "other", self.other),
        ]
    }

    fn add(&mut self, failure: Failure, n: u64) {
        let slot = match failure {
            Failure::Refused => &mut self.refused,
            Failure::FdLimit => &mut self.fd_limit,
            Failure::Reset => &mut self.reset,
            Failure::Timeout => &mut self.timeout,
            Failure::BadResponse => &mut self.bad_response,
            Failure::Other => &mut self.other,
        };
        *slot += n;
    }

    fn merge(&mut self, other: &ErrorCounts) {
        self.refused += other.refused;
        self.fd_limit += other.fd_limit;
        self.reset += other.reset;
        self.timeout += other.timeout;
        self.bad_response += other.bad_response;
        self.other += other.other;
    }

    /// The non-zero classes as `label N, label N`.
    fn summary(&self) -> String {
        self.classes()
            .iter()
            .filter(|(_, _, n)| *n > 0)
            .map(|(_, label, n)| format!("{label} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// As a JSON object: `total` (which may count more than the classes),
    /// then every class, then `extra` (`,"key":value` pairs).
    fn json(&self, total: u64, extra: &str) -> String {
        let mut out = format!("{{\"total\":{total}");
        for (key, _, n) in self.classes() {
            let _ = write!(out, ",\"{key}\":{n}");
        }
        out.push_str(extra);
        out.push('}');
        out
    }
}

/// What happened to the `-c` connections: every open is counted once, in
/// `opened`, and the reopens by why the previous connection ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnectionCounts {
    /// `-c`: the connections asked for.
    pub requested: u64,
    /// Connections opened during the run, reopens included.
    pub opened: u64,
    /// Reopened because the server closed the previous one deliberately
    /// (`Connection: close`, e.g. its `max_requests_per_connection`).
    pub reopened_server_closed: u64,
    /// Reopened because of `--close` (one connection per request).
    pub reopened_close: u64,
    /// Reopened after an error on the previous one.
    pub reopened_after_error: u64,
    /// Connections (of `requested`) that never opened, by their last failure.
    pub not_opened: ErrorCounts,
    /// Connections that never opened because the run ended first (their
    /// turn to connect, or the handshake, came too late).
    pub not_opened_run_ended: u64,
}

impl ConnectionCounts {
    /// Connections of `requested` that were open at least once.
    pub fn connected(&self) -> u64 {
        self.opened - self.reopened_server_closed - self.reopened_close - self.reopened_after_error
    }

    /// Connections of `requested` that never opened.
    pub fn not_opened_total(&self) -> u64 {
        self.not_opened.total() + self.not_opened_run_ended
    }

    /// Why connections of `requested` never opened, as `label N, …`.
    pub fn not_opened_summary(&self) -> String {
        let mut parts = vec![self.not_opened.summary()];
        if self.not_opened_run_ended > 0 {
            parts.push(format!(
                "the run ended before they connected {}",
                self.not_opened_run_ended
            ));
        }
        parts.retain(|p| !p.is_empty());
        parts.join(", ")
    }

    fn merge(&mut self, other: &ConnectionCounts) {
        self.opened += other.opened;
        self.reopened_server_closed += other.reopened_server_closed;
        self.reopened_close += other.reopened_close;
        self.reopened_after_error += other.reopened_after_error;
        self.not_opened.merge(&other.not_opened);
        self.not_opened_run_ended += other.not_opened_run_ended;
    }

    /// One line: how many opened, and why more than `requested` did.
    fn explain(&self) -> String {
        let mut out = format!(
            "{} ({} of {} connected",
            self.opened,
            self.connected(),
            self.requested
        );
        if self.reopened_server_closed > 0 {
            let _ = write!(
                out,
                "; {} reopened after the server closed them (Connection: close, e.g. its max_requests_per_connection)",
                self.reopened_server_closed
            );
        }
        if self.reopened_close > 0 {
            let _ = write!(out, "; {} new per request (--close)", self.reopened_close);
        }
        if self.reopened_after_error > 0 {
            let _ = write!(out, "; {} reopened after errors", self.reopened_after_error);
        }
        let missing = self.not_opened_total();
        if missing > 0 {
            let _ = write!(
                out,
                "; {missing} could not be opened: {}",
                self.not_opened_summary()
            );
        }
        out.push(')');
        out
    }
}

/// The open-file limit as the run found and left it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdLimitNote {
    /// The soft limit before the run.
    pub soft_before: u64,
    /// The limit during the run (soft raised toward `wanted` if it was lower).
    pub now: FdLimit,
    /// Descriptors the run wants: the connections plus the runtime's own.
    pub wanted: u64,
}

impl FdLimitNote {
    /// Whether the limit now in force is below what the run wants.
    pub fn short(&self) -> bool {
        self.now.soft < self.wanted
    }

    fn describe(&self, connections: usize) -> Option<String> {
        if self.short() {
            Some(format!(
                "soft {} (hard {}) is below the ~{} that -c {connections} needs; \
                 raise the hard limit (ulimit -Hn as root, or limits.conf)",
                self.now.soft, self.now.hard, self.wanted
            ))
        } else if self.now.soft > self.soft_before {
            Some(format!(
                "soft limit raised from {} to {} for -c {connections}",
                self.soft_before, self.now.soft
            ))
        } else {
            None
        }
    }
}

/// What a run measured.
#[derive(Clone, Debug)]
pub struct BenchReport {
    /// Wall-clock time of the run.
    pub elapsed: Duration,
    /// Complete, well-formed responses received, whatever their status.
    pub requests: u64,
    /// Those responses by status code.
    pub statuses: BTreeMap<u16, u64>,
    /// Response bytes received, heads and bodies.
    pub bytes: u64,
    /// Requests that got no complete response, by why (non-2xx responses
    /// are in `statuses`, not here).
    pub errors: ErrorCounts,
    /// The first error of class `other`, as the OS or parser put it.
    pub other_error: Option<String>,
    /// Requests still unanswered when the run's time was up (not errors).
    pub unanswered_at_end: u64,
    /// The connections: asked for, opened, reopened and why, never opened.
    pub connections: ConnectionCounts,
    /// The open-file limit, if it could be read.
    pub fd_limit: Option<FdLimitNote>,
    /// Latency in microseconds, one sample per response: from sending its
    /// batch (`--pipeline`) until the response is complete; with `--rate`,
    /// from when the timetable said to send it (corrected).
    pub latency: Histogram<u64>,
    /// With `--rate`: latency from the actual send (uncorrected).
    pub uncorrected: Option<Histogram<u64>>,
    /// With `--rate`: the target and how the timetable was kept.
    pub rate: Option<RateFigures>,
    /// Second by second, from the measured start.
    pub series: Series,
    /// `--server-status` samples (empty without it).
    pub server: Vec<Sample>,
    /// Each client worker thread's CPU use over the run, in cores (1.0: one
    /// core all the time).
    pub client_cpu: Vec<f64>,
    /// Those of `errors` that happened while connecting.
    pub connect_errors: ErrorCounts,
    /// The warm-up run first and discarded.
    pub warmup: Duration,
}

/// How the `--rate` timetable was kept.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateFigures {
    /// Requests per second asked for.
    pub target: f64,
    /// Requests sent in the measured run.
    pub sent: u64,
    /// Of those, sent more than [`LATE_AFTER`] behind their time.
    pub late: u64,
}

/// A client thread busier than this share of a core makes the client the
/// likely bottleneck.
pub const CLIENT_BOUND: f64 = 0.9;

/// The quantiles printed and put in the JSON (as `p50` … `p99_99`).
const QUANTILES: [(f64, &str, &str); 6] = [
    (0.5, "p50", "p50"),
    (0.75, "p75", "p75"),
    (0.9, "p90", "p90"),
    (0.99, "p99", "p99"),
    (0.999, "p99_9", "p99.9"),
    (0.9999, "p99_99", "p99.99"),
];

fn latency_json(h: &Histogram<u64>) -> String {
    let mut out = String::from("{");
    for (q, key, _) in QUANTILES {
        let _ = write!(out, "\"{key}\":{},", h.value_at_quantile(q));
    }
    let _ = write!(out, "\"max\":{}}}", h.max());
    out
}

impl BenchReport {
    /// Errors grouped by where they happened, as `(json key, label,
    /// count)`: connecting, reading (reset, closed, other I/O), timeouts
    /// waiting for a response, a non-2xx status, a bad response.
    pub fn error_places(&self) -> [(&'static str, &'static str, u64); 5] {
        let e = &self.errors;
        let c = &self.connect_errors;
        [
            ("connect", "connect", c.total()),
            (
                "read",
                "read",
                (e.reset + e.other + e.refused + e.fd_limit)
                    .saturating_sub(c.reset + c.other + c.refused + c.fd_limit),
            ),
            ("timeout", "timeout", e.timeout.saturating_sub(c.timeout)),
            ("bad_status", "bad status", self.non_2xx()),
            (
                "bad_body",
                "bad body",
                e.bad_response.saturating_sub(c.bad_response),
            ),
        ]
    }

    /// Requests answered per connection opened: with perfect keep-alive
    /// every `-c` connection is opened once.
    pub fn requests_per_connection(&self) -> f64 {
        self.requests as f64 / self.connections.opened.max(1) as f64
    }

    /// The busiest client thread's CPU use, in cores.
    pub fn busiest_client_thread(&self) -> f64 {
        self.client_cpu.iter().copied().fold(0.0, f64::max)
    }

    /// A warning when the client, not the server, may set the pace.
    pub fn client_bound_warning(&self) -> Option<String> {
        let busiest = self.busiest_client_thread();
        (busiest >= CLIENT_BOUND).then(|| {
            format!(
                "the client may be the bottleneck: its busiest thread used {:.0} % of a core \
                 ({} threads); add --threads (with cores to run them) or read the server's \
                 CPU per request instead of requests/s",
                busiest * 100.0,
                self.client_cpu.len()
            )
        })
    }

    /// The figures `--check` thresholds are tested against.
    pub fn figures(&self) -> check::Figures {
        check::Figures {
            latency_us: check::QUANTILES
                .iter()
                .map(|&q| (q, self.latency_us(q)))
                .collect(),
            rps: self.requests_per_sec(),
            errors: self.failed(),
            error_pct: self.error_pct(),
            late: self.rate.map_or(0, |r| r.late),
            requests: self.requests,
        }
    }

    /// Complete responses per second of `elapsed`.
    pub fn requests_per_sec(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Response bytes received per second of `elapsed`.
    pub fn bytes_per_sec(&self) -> f64 {
        self.bytes as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Latency at quantile `q` in microseconds.
    pub fn latency_us(&self, q: f64) -> u64 {
        if q >= 1.0 {
            self.latency.max()
        } else {
            self.latency.value_at_quantile(q)
        }
    }

    /// Responses with a 2xx status: the requests that succeeded.
    pub fn succeeded(&self) -> u64 {
        self.statuses.range(200..300).map(|(_, n)| n).sum()
    }

    /// Complete responses whose status was not 2xx.
    pub fn non_2xx(&self) -> u64 {
        self.requests - self.succeeded()
    }

    /// Failed requests: errors of every class plus non-2xx responses.
    pub fn failed(&self) -> u64 {
        self.errors.total() + self.non_2xx()
    }

    /// Failed requests as a percentage of the requests that finished one
    /// way or the other (0 when none did).
    pub fn error_pct(&self) -> f64 {
        let finished = self.requests + self.errors.total();
        if finished == 0 {
            0.0
        } else {
            self.failed() as f64 * 100.0 / finished as f64
        }
    }

    /// Every failed request by cause: error classes, then `status N`.
    pub fn error_summary(&self) -> String {
        let mut parts = vec![self.errors.summary()];
        for (status, n) in &self.statuses {
            if !(200..300).contains(status) {
                parts.push(format!("status {status} {n}"));
            }
        }
        if self.errors.other > 0 {
            if let Some(e) = &self.other_error {
                parts.push(format!("(first other error: {e})"));
            }
        }
        parts.retain(|p| !p.is_empty());
        parts.join(", ")
    }

    /// Why this run's numbers should not be trusted; empty when it succeeded.
    pub fn failures(&self, options: &BenchOptions) -> Vec<String> {
        let mut out = Vec::new();
        if self.succeeded() == 0 {
            let why = match (self.failed(), self.unanswered_at_end) {
                (0, 0) => "no request was sent".to_string(),
                (0, n) => format!("{n} requests were still unanswered when the run ended"),
                _ => self.error_summary(),
            };
            out.push(format!("no request succeeded: {why}"));
        } else if self.error_pct() > options.max_errors_pct {
            out.push(format!(
                "{:.2} % of requests failed ({}), over the --max-errors threshold of {} %",
                self.error_pct(),
                self.error_summary(),
                options.max_errors_pct
            ));
        }
        let missing = self.connections.not_opened_total();
        if missing > 0 {
            let mut line = format!(
                "{missing} of {} connections could not be opened: {}",
                self.connections.requested,
                self.connections.not_opened_summary()
            );
            if self.connections.not_opened.fd_limit > 0 {
                if let Some(note) = self.fd_limit.filter(FdLimitNote::short) {
                    let _ = write!(
                        line,
                        " (fd limit: {})",
                        note.describe(options.connections).unwrap_or_default()
                    );
                }
            }
            out.push(line);
        }
        out
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
        let errors = if self.failed() == 0 {
            "0".to_string()
        } else {
            format!(
                "{} ({:.2} %): {}",
                self.failed(),
                self.error_pct(),
                self.error_summary()
            )
        };
        let mode = match options.rate {
            Some(rate) => format!("{mode}, open loop at {rate} req/s"),
            None => mode,
        };
        let mut out = format!(
            "| metric | value |\n|---|---|\n\
             | target | {} ({mode}, {} connections) |\n\
             | duration | {:.2} s |\n| requests | {} ({} 2xx) |\n| requests/s | {:.0} |\n\
             | bytes/s | {:.1} MB/s |\n",
            options.url(),
            options.connections,
            self.elapsed.as_secs_f64(),
            self.requests,
            self.succeeded(),
            self.requests_per_sec(),
            self.bytes_per_sec() / 1e6,
        );
        if !self.warmup.is_zero() {
            let _ = writeln!(
                out,
                "| warm-up | {:.2} s, discarded |",
                self.warmup.as_secs_f64()
            );
        }
        if let Some(rate) = &self.rate {
            let _ = writeln!(
                out,
                "| rate | target {} req/s, achieved {:.0} req/s; {} sent, {} late ({:.2} %) |",
                rate.target,
                self.requests_per_sec(),
                rate.sent,
                rate.late,
                rate.late as f64 * 100.0 / rate.sent.max(1) as f64
            );
        }
        let quantiles = QUANTILES
            .iter()
            .map(|&(q, _, label)| (q, label))
            .chain([(1.0, "max")]);
        for (q, label) in quantiles {
            match &self.uncorrected {
                Some(h) => {
                    let raw = if q >= 1.0 {
                        h.max()
                    } else {
                        h.value_at_quantile(q)
                    };
                    let _ = writeln!(
                        out,
                        "| latency {label} | {} µs (uncorrected {raw} µs) |",
                        self.latency_us(q)
                    );
                }
                None => {
                    let _ = writeln!(out, "| latency {label} | {} µs |", self.latency_us(q));
                }
            }
        }
        let _ = writeln!(out, "| errors | {errors} |");
        if self.failed() > 0 {
            let places = self
                .error_places()
                .iter()
                .map(|(_, label, n)| format!("{label} {n}"))
                .collect::<Vec<_>>()
                .join(", ");
            let _ = writeln!(out, "| errors by where | {places} |");
        }
        let _ = writeln!(
            out,
            "| connections opened | {} |\n| requests per connection | {:.1} |",
            self.connections.explain(),
            self.requests_per_connection()
        );
        let _ = writeln!(
            out,
            "| client CPU | busiest thread {:.0} % of a core ({} threads) |",
            self.busiest_client_thread() * 100.0,
            self.client_cpu.len()
        );
        if let Some(note) = self.fd_limit.and_then(|n| n.describe(options.connections)) {
            let _ = writeln!(out, "| fd limit | {note} |");
        }
        out
    }

    /// The result as one JSON object: the URL, the options, rates, latency
    /// percentiles in µs, statuses, errors by class, connection counts and
    /// the failures (empty when the run succeeded).
    pub fn json(&self, options: &BenchOptions) -> String {
        let mut out = String::from("{");
        let _ = write!(
            out,
            "\"url\":{},\"options\":{{\"connections\":{},\"duration_secs\":{:.3},\"requests\":{},\
             \"pipeline\":{},\"close\":{},\"threads\":{},\"max_errors_pct\":{},\
             \"rate\":{},\"warmup_secs\":{:.3},\"server_status\":{}}},",
            json_string(&options.url()),
            options.connections,
            options.duration.as_secs_f64(),
            options
                .requests
                .map_or_else(|| "null".to_string(), |n| n.to_string()),
            options.pipeline,
            options.close,
            options.threads,
            options.max_errors_pct,
            options
                .rate
                .map_or_else(|| "null".to_string(), |r| r.to_string()),
            options.warmup.as_secs_f64(),
            options.server_status,
        );
        let _ = write!(
            out,
            "\"duration_secs\":{:.3},\"requests\":{},\"succeeded\":{},\"requests_per_sec\":{:.1},\
             \"bytes_per_sec\":{:.1},\"latency_us\":{},\"latency_uncorrected_us\":{},",
            self.elapsed.as_secs_f64(),
            self.requests,
            self.succeeded(),
            self.requests_per_sec(),
            self.bytes_per_sec(),
            latency_json(&self.latency),
            self.uncorrected
                .as_ref()
                .map_or_else(|| "null".to_string(), latency_json),
        );
        match &self.rate {
            Some(rate) => {
                let _ = write!(
                    out,
                    "\"rate\":{{\"target\":{},\"achieved\":{:.1},\"sent\":{},\"late\":{},\
                     \"late_pct\":{:.3}}},",
                    rate.target,
                    self.requests_per_sec(),
                    rate.sent,
                    rate.late,
                    rate.late as f64 * 100.0 / rate.sent.max(1) as f64
                );
            }
            None => out.push_str("\"rate\":null,"),
        }
        let statuses = self
            .statuses
            .iter()
            .map(|(s, n)| format!("\"{s}\":{n}"))
            .collect::<Vec<_>>()
            .join(",");
        let _ = write!(
            out,
            "\"statuses\":{{{statuses}}},\"non_2xx\":{},\"errors\":{},\"error_pct\":{:.3},\
             \"errors_by_class\":{},\"other_error\":{},\"unanswered_at_end\":{},",
            self.non_2xx(),
            self.failed(),
            self.error_pct(),
            self.errors.json(self.errors.total(), ""),
            self.other_error
                .as_deref()
                .map_or_else(|| "null".to_string(), json_string),
            self.unanswered_at_end,
        );
        out.push_str("\"error_places\":{");
        for (i, (key, _, n)) in self.error_places().iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            let _ = write!(out, "{sep}\"{key}\":{n}");
        }
        out.push_str("},");
        let c = &self.connections;
        let _ = write!(
            out,
            "\"connections_opened\":{},\"connections\":{{\"requested\":{},\"opened\":{},\"connected\":{},\
             \"reconnects\":{},\"requests_per_connection\":{:.1},\
             \"reopened_server_closed\":{},\"reopened_close\":{},\"reopened_after_error\":{},\
             \"not_opened\":{}}},",
            c.opened,
            c.requested,
            c.opened,
            c.connected(),
            c.opened - c.connected(),
            self.requests_per_connection(),
            c.reopened_server_closed,
            c.reopened_close,
            c.reopened_after_error,
            c.not_opened.json(
                c.not_opened_total(),
                &format!(",\"run_ended\":{}", c.not_opened_run_ended)
            ),
        );
        match self.fd_limit {
            Some(note) => {
                let _ = write!(
                    out,
                    "\"fd_limit\":{{\"soft_before\":{},\"soft\":{},\"hard\":{},\"wanted\":{}}},",
                    note.soft_before, note.now.soft, note.now.hard, note.wanted
                );
            }
            None => out.push_str("\"fd_limit\":null,"),
        }
        let _ = write!(
            out,
            "\"client_cpu\":{{\"threads\":{},\"busiest_thread_cores\":{:.3},\"total_cores\":{:.3},\
             \"client_bound\":{}}},\"series\":{},\"server_status\":{},\"checks\":[",
            self.client_cpu.len(),
            self.busiest_client_thread(),
            self.client_cpu.iter().sum::<f64>(),
            self.client_bound_warning().is_some(),
            self.series.json(self.rate.is_some()),
            if options.server_status {
                server_status::json(&self.server)
            } else {
                "null".to_string()
            },
        );
        for (i, o) in check::evaluate(&options.checks, &self.figures())
            .iter()
            .enumerate()
        {
            let sep = if i == 0 { "" } else { "," };
            let _ = write!(
                out,
                "{sep}{{\"term\":{},\"ok\":{},\"measured\":{}}}",
                json_string(&o.threshold.text),
                o.ok,
                if o.value.is_finite() {
                    o.value.to_string()
                } else {
                    "null".to_string()
                }
            );
        }
        out.push_str("],");
        let failures = self.failures(options);
        let _ = write!(
            out,
            "\"ok\":{},\"failures\":[{}]}}",
            failures.is_empty(),
            failures
                .iter()
                .map(|f| json_string(f))
                .collect::<Vec<_>>()
                .join(",")
        );
        out
    }
}

/// Prints the finished run — JSON or tables, the `--baseline` changes,
/// the failures, `--check` outcomes and warnings — writes `--hdr-out`, and
/// returns the exit status: 0 success, 1 a failed run (or `--hdr-out` not
/// written), 3 a failed `--check` threshold.
pub fn finish(report: &BenchReport, options: &BenchOptions) -> u8 {
    let mut failures = report.failures(options);
    if let Some(file) = &options.hdr_out {
        if let Err(e) = std::fs::write(file, hdr::percentile_distribution(&report.latency)) {
            failures.push(format!("cannot write --hdr-out {file}: {e}"));
        }
    }
    let outcomes = check::evaluate(&options.checks, &report.figures());
    let mut json_text = report.json(options);
    let changes = options.baseline.as_ref().map(|b| {
        let now = json::parse(&json_text).unwrap_or(json::Value::Null);
        (b, baseline::compare(b, &now))
    });
    if options.json {
        if let Some((b, changes)) = &changes {
            json_text.pop();
            let _ = write!(json_text, ",\"baseline\":{}}}", baseline::json(b, changes));
        }
        println!("{json_text}");
    } else {
        print!("{}", report.table(options));
        if options.server_status {
            print!(
                "{}",
                server_status::table(&report.server, |t| {
                    // The client's p99 in the second that ended at `t`.
                    let index = (t.round() as usize).checked_sub(1)?;
                    report.series.seconds.get(index).map(|s| s.latency_us(0.99))
                })
            );
        }
        if let Some((b, changes)) = &changes {
            print!("{}", baseline::table(b, changes));
        }
    }
    if let Some(warning) = report.client_bound_warning() {
        eprintln!("conveyor bench: warning: {warning}");
    }
    for outcome in &outcomes {
        eprintln!("conveyor bench: check {outcome}");
    }
    // A failed run must not look like a result: say why, exit 1.
    for failure in &failures {
        eprintln!("conveyor bench: FAILED: {failure}");
    }
    if !failures.is_empty() {
        1
    } else if outcomes.iter().any(|o| !o.ok) {
        3
    } else {
        0
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
    let mut max_errors_pct = 1.0;
    let mut json = false;
    let mut rate = None;
    let mut warmup = Duration::ZERO;
    let mut server_status = false;
    let mut checks = Vec::new();
    let mut baseline = None;
    let mut hdr_out = None;
    let mut headers = Vec::new();
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
            "--max-errors" => {
                let v = value("--max-errors")?;
                max_errors_pct = v
                    .trim_end_matches('%')
                    .parse::<f64>()
                    .ok()
                    .filter(|p| (0.0..=100.0).contains(p))
                    .ok_or_else(|| {
                        bad(format!(
                            "--max-errors {v} is not a percentage from 0 to 100, like 1 or 0.5%"
                        ))
                    })?;
            }
            "--rate" => {
                let v = value("--rate")?;
                rate = Some(
                    v.parse::<f64>()
                        .ok()
                        .filter(|r| r.is_finite() && *r > 0.0)
                        .ok_or_else(|| {
                            bad(format!(
                                "--rate {v} is not a positive number of requests per second"
                            ))
                        })?,
                );
            }
            "--warmup" => {
                let v = value("--warmup")?;
                warmup = parse_duration(&v).ok_or_else(|| {
                    bad(format!(
                        "--warmup {v} is not a duration; write it like 2s or 500ms"
                    ))
                })?;
            }
            "--check" => {
                let v = value("--check")?;
                checks.extend(check::parse(&v).map_err(bad)?);
            }
            "--baseline" => {
                let v = value("--baseline")?;
                baseline = Some(baseline::load(&v).map_err(bad)?);
            }
            "--hdr-out" => hdr_out = Some(value("--hdr-out")?),
            "-H" => headers.push(header_line(value("-H")?)?),
            "--server-status" => server_status = true,
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
    if rate.is_some() && pipeline > 1 {
        return Err(bad(
            "--rate and --pipeline do not mix: a timetable sends one request at a time".into(),
        ));
    }
    if requests.is_some() && !warmup.is_zero() {
        return Err(bad(
            "--warmup needs a timed run (-d), not -n: the warm-up would eat the budget".into(),
        ));
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
        max_errors_pct,
        json,
        rate,
        warmup,
        server_status,
        checks,
        baseline,
        hdr_out,
        headers,
    }))
}

/// Checks a `-H` value: `Name: value` with a token name and no line breaks,
/// so the request it goes into stays well-formed.
fn header_line(line: String) -> Result<String, ConfigError> {
    let name_ok = |name: &str| {
        !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    };
    match line.split_once(':') {
        Some((name, _)) if name_ok(name) && !line.contains(['\r', '\n']) => Ok(line),
        _ => Err(bad(format!(
            "-H {line:?} is not a header; write it like -H 'Accept-Encoding: gzip'"
        ))),
    }
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
    /// Complete responses so far, for the progress line.
    responses: AtomicU64,
    /// Requests still allowed to start under `-n` (`u64::MAX` with `-d`).
    budget: AtomicU64,
    /// The end of the run with `-d`; every wait is cut there.
    deadline: Option<Instant>,
    stop: AtomicBool,
    /// When the run started (the warm-up, if any, first).
    started: Instant,
    /// When the measured run starts: results before it are discarded.
    measure_from: Instant,
    /// The seconds published so far, for the live line.
    live: Live,
}

impl Shared {
    /// Whether the run's time is up (never, with `-n`).
    fn ended(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// When a wait starting now gives up: the request timeout, or the end
    /// of the run if that comes first.
    fn limit(&self) -> Instant {
        let timeout = Instant::now() + REQUEST_TIMEOUT;
        self.deadline.map_or(timeout, |d| d.min(timeout))
    }

    /// Claims `n` requests of the budget; fewer (maybe 0) near the end.
    fn claim(&self, n: u64) -> u64 {
        if self.ended() {
            return 0;
        }
        let mut left = self.budget.load(Ordering::Relaxed);
        loop {
            let take = left.min(n);
            if take == 0 {
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

    /// Gives claimed requests that were never sent back to the budget.
    fn unclaim(&self, n: u64) {
        if n > 0 && self.budget.load(Ordering::Relaxed) != u64::MAX {
            self.budget.fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// Descriptors a run needs beyond its connections: each worker's poller and
/// wake-up descriptors, stdio, and slack for the runtime.
fn fds_wanted(options: &BenchOptions) -> u64 {
    options.connections as u64 + 64 + 8 * options.threads as u64
}

/// Runs the load; `progress` is given the live line about once a second.
pub fn run(options: &BenchOptions, mut progress: impl FnMut(&str)) -> io::Result<BenchReport> {
    // Every connection is a descriptor: raise the soft limit before the
    // runtime opens its own, so -c is not cut short by EMFILE.
    let wanted = fds_wanted(options);
    let fd_limit = limits::fd_limit().ok().map(|before| FdLimitNote {
        soft_before: before.soft,
        now: limits::raise_fd_limit(wanted).unwrap_or(before),
        wanted,
    });
    let runtime = Runtime::builder()
        .workers(options.threads)
        .thread_name("bench")
        .spin_before_blocking(IDLE_SPIN)
        .build()?;
    let started = Instant::now();
    let measure_from = started + options.warmup;
    let deadline = options
        .requests
        .is_none()
        .then(|| measure_from + options.duration);
    let shared = Arc::new(Shared {
        responses: AtomicU64::new(0),
        budget: AtomicU64::new(options.requests.unwrap_or(u64::MAX)),
        deadline,
        stop: AtomicBool::new(false),
        started,
        measure_from,
        live: Live::default(),
    });
    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let sampler_stop = Arc::new(AtomicBool::new(false));
    let sampler = if options.server_status {
        Some(server_status::spawn(
            options.addr,
            options.host.clone(),
            measure_from,
            sampler_stop.clone(),
            samples.clone(),
        )?)
    } else {
        None
    };
    let workers = runtime.workers();
    let mut first_index = 0;
    let handles: Vec<_> = (0..workers)
        .map(|worker| {
            let options = options.clone();
            let shared = shared.clone();
            let share =
                options.connections / workers + usize::from(worker < options.connections % workers);
            let first = first_index;
            first_index += share;
            runtime.spawn_local_on(worker, move || run_worker(options, shared, first, share))
        })
        .collect();
    let mut warmup_second = 1u64;
    let mut warmup_responses = 0;
    let mut next_line = 0usize;
    // Each second's line is printed a little after it ends, once the
    // workers have published it.
    const LINE_LAG: Duration = Duration::from_millis(200);
    while !handles.iter().all(|h| h.is_finished()) {
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            shared.stop.store(true, Ordering::Relaxed);
        }
        let warmup_tick = started + Duration::from_secs(warmup_second);
        if warmup_tick <= measure_from && now >= warmup_tick {
            let responses = shared.responses.load(Ordering::Relaxed);
            progress(&format!(
                "  warm-up {warmup_second:>2} s  {:>7} req/s (discarded)",
                responses - warmup_responses
            ));
            warmup_responses = responses;
            warmup_second += 1;
        }
        if now >= measure_from + Duration::from_secs(next_line as u64 + 1) + LINE_LAG {
            if let Some(second) = shared.live.get(next_line) {
                let mut line = series::line(next_line, &second, options.rate.is_some());
                if let Ok(samples) = samples.lock() {
                    if let Some(last) = samples.last() {
                        let prev = samples.len().checked_sub(2).and_then(|i| samples.get(i));
                        line.push_str(&server_status::live(prev, last));
                    }
                }
                progress(&line);
            }
            next_line += 1;
        }
        // The client's own threads do the work; this one only watches.
        std::thread::sleep(Duration::from_millis(5));
    }
    let ended = Instant::now();
    let elapsed = ended.saturating_duration_since(measure_from);
    sampler_stop.store(true, Ordering::Relaxed);
    if let Some(sampler) = sampler {
        let _ = sampler.join();
    }
    let mut total = Tally::new(options.rate.is_some());
    for handle in handles {
        if let Ok(tally) = runtime.block_on(handle) {
            total.merge(&tally);
        }
    }
    total.connections.requested = options.connections as u64;
    // The seconds that ended with the run, from the final counts.
    let full_seconds = (elapsed.as_secs() as usize).min(total.series.seconds.len());
    for index in next_line..full_seconds {
        progress(&series::line(
            index,
            &total.series.seconds[index],
            options.rate.is_some(),
        ));
    }
    let run_secs = (ended - started).as_secs_f64().max(1e-9);
    let server = samples.lock().map(|s| s.clone()).unwrap_or_default();
    Ok(BenchReport {
        uncorrected: total.uncorrected,
        rate: options.rate.map(|target| RateFigures {
            target,
            sent: total.sent,
            late: total.late,
        }),
        series: total.series,
        server,
        client_cpu: total
            .cpu
            .iter()
            .map(|cpu| cpu.as_secs_f64() / run_secs)
            .collect(),
        connect_errors: total.connect_errors,
        warmup: options.warmup,
        elapsed,
        requests: total.statuses.values().sum(),
        statuses: total.statuses,
        bytes: total.bytes,
        errors: total.errors,
        other_error: total.other_error,
        unanswered_at_end: total.unanswered,
        connections: total.connections,
        fd_limit,
        latency: total.latency,
    })
}

/// Microseconds in `d`, saturating.
fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs .. 100 s at 3 significant figures; the bounds are constants.
    Histogram::new_with_bounds(1, 100_000_000, 3).expect("valid histogram bounds")
}

/// One worker's counts, merged into the report at the end. Results
/// (latency, statuses, errors, series) count from the measured start only;
/// connections are counted over the whole run, warm-up included.
#[derive(Clone)]
struct Tally {
    /// From the scheduled send with `--rate`, else from the actual send.
    latency: Histogram<u64>,
    /// With `--rate`: from the actual send.
    uncorrected: Option<Histogram<u64>>,
    statuses: BTreeMap<u16, u64>,
    bytes: u64,
    errors: ErrorCounts,
    /// Those of `errors` that happened while connecting.
    connect_errors: ErrorCounts,
    other_error: Option<String>,
    unanswered: u64,
    connections: ConnectionCounts,
    /// Requests sent on the timetable (`--rate`), and those sent late.
    sent: u64,
    late: u64,
    series: Series,
    /// CPU time of each worker thread over the run.
    cpu: Vec<Duration>,
}

impl Tally {
    fn new(rate: bool) -> Tally {
        Tally {
            latency: new_histogram(),
            uncorrected: rate.then(new_histogram),
            statuses: BTreeMap::new(),
            bytes: 0,
            errors: ErrorCounts::default(),
            connect_errors: ErrorCounts::default(),
            other_error: None,
            unanswered: 0,
            connections: ConnectionCounts::default(),
            sent: 0,
            late: 0,
            series: Series::default(),
            cpu: Vec::new(),
        }
    }

    /// The second of the measured run `at` falls in; `None` in the warm-up.
    fn second(shared: &Shared, at: Instant) -> Option<usize> {
        let since = at.checked_duration_since(shared.measure_from)?;
        Some(since.as_secs() as usize)
    }

    /// A request went out at `sent_at`, due at `due` (`--rate`).
    fn sent(&mut self, shared: &Shared, sent_at: Instant, due: Instant) {
        let Some(second) = Tally::second(shared, sent_at) else {
            return;
        };
        self.sent += 1;
        if sent_at > due + LATE_AFTER {
            self.late += 1;
            self.series.at(second).late += 1;
        }
    }

    /// A complete response at `done` to a request sent at `sent_at` (due
    /// at `due` with `--rate`).
    fn record(
        &mut self,
        shared: &Shared,
        done: Instant,
        sent_at: Instant,
        due: Option<Instant>,
        response: &Response,
    ) {
        let Some(second) = Tally::second(shared, done) else {
            return;
        };
        let actual = micros(done.saturating_duration_since(sent_at)).max(1);
        // From when it was due, or from when it went out if that was
        // earlier (the timetable may send up to a timer tick early).
        let main = due.map_or(actual, |due| {
            micros(done.saturating_duration_since(due.min(sent_at))).max(1)
        });
        let _ = self.latency.record(main);
        if let Some(h) = self.uncorrected.as_mut() {
            let _ = h.record(actual);
        }
        *self.statuses.entry(response.status).or_default() += 1;
        self.bytes += response.bytes;
        let s = self.series.at(second);
        s.responses += 1;
        if !(200..300).contains(&response.status) {
            s.errors += 1;
        }
        let _ = s.latency.record(main);
    }

    fn merge(&mut self, other: &Tally) {
        let _ = self.latency.add(&other.latency);
        if let (Some(mine), Some(theirs)) = (self.uncorrected.as_mut(), &other.uncorrected) {
            let _ = mine.add(theirs);
        }
        self.connect_errors.merge(&other.connect_errors);
        self.sent += other.sent;
        self.late += other.late;
        self.series.merge(&other.series);
        self.cpu.extend_from_slice(&other.cpu);
        for (status, n) in &other.statuses {
            *self.statuses.entry(*status).or_default() += n;
        }
        self.bytes += other.bytes;
        self.errors.merge(&other.errors);
        if self.other_error.is_none() {
            self.other_error.clone_from(&other.other_error);
        }
        self.unanswered += other.unanswered;
        self.connections.merge(&other.connections);
    }

    /// `n` requests failed with `failure` (`error` says how, for `other`);
    /// not counted in the warm-up.
    fn fail(&mut self, shared: &Shared, failure: Failure, n: u64, error: &io::Error) {
        let Some(second) = Tally::second(shared, Instant::now()) else {
            return;
        };
        self.series.at(second).errors += n;
        self.errors.add(failure, n);
        if failure == Failure::Other && self.other_error.is_none() {
            self.other_error = Some(error.to_string());
        }
    }
}

/// One worker's share of the connections, numbered from `first`; returns
/// its counts. Once a second it publishes the second just ended.
async fn run_worker(
    options: BenchOptions,
    shared: Arc<Shared>,
    first: usize,
    connections: usize,
) -> Tally {
    let cpu_before = runtime::stats::thread_cpu_time();
    let spun_before = runtime::idle_spin_time();
    let tally = Rc::new(RefCell::new(Tally::new(options.rate.is_some())));
    let options = Rc::new(options);
    let tasks: Vec<_> = (first..first + connections)
        .map(|index| {
            runtime::spawn(connection_loop(
                options.clone(),
                shared.clone(),
                tally.clone(),
                index,
            ))
        })
        .collect();
    let all_done = async {
        for task in tasks {
            let _ = task.await;
        }
    };
    let publisher = async {
        for index in 0usize.. {
            runtime::sleep_until(shared.measure_from + Duration::from_secs(index as u64 + 1)).await;
            let second = tally.borrow_mut().series.at(index).clone();
            shared.live.publish(index, &second);
        }
    };
    runtime::race(all_done, publisher).await;
    let mut tally = tally.borrow().clone();
    // Idle spinning (see `run`) is waiting, not work: it is left out.
    let spun = runtime::idle_spin_time().saturating_sub(spun_before);
    tally.cpu = vec![runtime::stats::thread_cpu_time()
        .saturating_sub(cpu_before)
        .saturating_sub(spun)];
    tally
}

/// Idle for a moment, a client worker keeps polling instead of sleeping in
/// epoll_wait: a closed loop otherwise loses each wake-up's latency (tens of
/// µs on a VM) with the server idle too, and measures less than wrk (−4 to
/// −6 % with no spin). Spinning longer is not free either: a client that
/// never sleeps spares the server the wake-ups its sends would cost, and
/// measures more than wrk (+3 to +4 % at 50 µs). 15 µs sits between; the
/// figures are in BENCHMARKS.md.
const IDLE_SPIN: Duration = Duration::from_micros(15);

fn request_bytes(options: &BenchOptions) -> Vec<u8> {
    let mut one = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\n",
        options.path, options.host
    );
    for line in &options.headers {
        one.push_str(line);
        one.push_str("\r\n");
    }
    if options.close {
        one.push_str("Connection: close\r\n");
    }
    one.push_str("\r\n");
    one.repeat(options.pipeline).into_bytes()
}

/// Why a slot's next connection is opened.
#[derive(Clone, Copy)]
enum Reopen {
    ServerClosed,
    CloseMode,
    AfterError,
}

/// Keeps one connection busy until the run ends: responses of any status
/// keep it; it is reopened after the server closes it (and after every
/// request with `--close`) and after errors. A connection that cannot be
/// opened because of the fd limit is given up: retrying cannot help.
///
/// With `--rate`, connection `index` sends on its own timetable: it waits
/// for a request's time (or sends at once when behind), and the request's
/// latency counts from that time.
async fn connection_loop(
    options: Rc<BenchOptions>,
    shared: Arc<Shared>,
    tally: Rc<RefCell<Tally>>,
    index: usize,
) {
    let mut pacer = options
        .rate
        .map(|rate| Pacer::new(shared.started, rate, options.connections, index));
    let request = request_bytes(&options);
    let one_len = request.len() / options.pipeline;
    let mut reader = ResponseReader::default();
    let mut stream: Option<TcpStream> = None;
    let mut ever_opened = false;
    let mut last_failure: Option<Failure> = None;
    let mut reopen: Option<Reopen> = None;
    loop {
        let batch = shared.claim(options.pipeline as u64);
        if batch == 0 {
            break;
        }
        let due = pacer.as_mut().map(Pacer::next_send);
        if let Some(due) = due {
            if shared.deadline.is_some_and(|end| due >= end) {
                shared.unclaim(batch);
                break;
            }
            // The timers wake on whole milliseconds, rounded up: asking for
            // one resolution early lands the send in [due - 1 ms, due]
            // rather than [due, due + 1 ms], so the client's own timer does
            // not show up as latency (an early send is timed from when it
            // went out).
            let wake = due.checked_sub(TIMER_RESOLUTION).unwrap_or(due);
            if wake > Instant::now() {
                runtime::sleep_until(wake).await;
            }
        }
        if stream.is_none() {
            let connected = timeout_at(shared.limit(), TcpStream::connect(options.addr)).await;
            let error = match connected {
                Ok(Ok(s)) => {
                    let mut t = tally.borrow_mut();
                    t.connections.opened += 1;
                    match reopen.take() {
                        Some(Reopen::ServerClosed) => t.connections.reopened_server_closed += 1,
                        Some(Reopen::CloseMode) => t.connections.reopened_close += 1,
                        Some(Reopen::AfterError) => t.connections.reopened_after_error += 1,
                        None => {}
                    }
                    ever_opened = true;
                    reader = ResponseReader::default();
                    stream = Some(s);
                    None
                }
                Ok(Err(e)) => Some(e),
                // Cut by the run's end: neither sent nor failed.
                Err(_) if shared.ended() => {
                    shared.unclaim(batch);
                    break;
                }
                Err(_) => Some(io::ErrorKind::TimedOut.into()),
            };
            if let Some(e) = error {
                let failure = Failure::of(&e);
                {
                    let mut t = tally.borrow_mut();
                    t.fail(&shared, failure, batch, &e);
                    if Tally::second(&shared, Instant::now()).is_some() {
                        t.connect_errors.add(failure, batch);
                    }
                }
                last_failure = Some(failure);
                if failure == Failure::FdLimit {
                    break;
                }
                // Not a busy loop against a server that refuses.
                runtime::sleep_until(
                    shared
                        .limit()
                        .min(Instant::now() + Duration::from_millis(10)),
                )
                .await;
                continue;
            }
        }
        let Some(conn) = stream.as_ref() else {
            continue;
        };
        let sent_at = Instant::now();
        if let Some(due) = due {
            tally.borrow_mut().sent(&shared, sent_at, due);
        }
        let bytes = &request[..one_len * batch as usize];
        let mut answered = 0;
        let mut record = |response: Response| {
            tally
                .borrow_mut()
                .record(&shared, Instant::now(), sent_at, due, &response);
            shared.responses.fetch_add(1, Ordering::Relaxed);
        };
        let outcome = timeout_at(
            shared.limit(),
            exchange(conn, bytes, batch, &mut reader, &mut answered, &mut record),
        )
        .await;
        let unanswered = batch - answered;
        match outcome {
            Ok(Ok(closed)) => {
                if closed || options.close {
                    // The server ended the connection deliberately (e.g. its
                    // per-connection request limit): requests it did not
                    // answer go back to the budget, not into the errors.
                    shared.unclaim(unanswered);
                    stream = None;
                    reopen = Some(if options.close {
                        Reopen::CloseMode
                    } else {
                        Reopen::ServerClosed
                    });
                }
            }
            Ok(Err(e)) => {
                tally
                    .borrow_mut()
                    .fail(&shared, Failure::of(&e), unanswered, &e);
                stream = None;
                reopen = Some(Reopen::AfterError);
            }
            Err(_) if shared.ended() => {
                tally.borrow_mut().unanswered += unanswered;
                break;
            }
            Err(_) => {
                let e = io::ErrorKind::TimedOut.into();
                tally
                    .borrow_mut()
                    .fail(&shared, Failure::Timeout, unanswered, &e);
                stream = None;
                reopen = Some(Reopen::AfterError);
            }
        }
    }
    if !ever_opened {
        let mut t = tally.borrow_mut();
        match last_failure {
            Some(failure) => t.connections.not_opened.add(failure, 1),
            // Never tried, or cut while connecting: with -d the run ended
            // first; with -n the budget was spent by others (not a failure).
            None if shared.deadline.is_some() => t.connections.not_opened_run_ended += 1,
            None => {}
        }
    }
}

/// One complete response.
struct Response {
    status: u16,
    /// Head and body.
    bytes: u64,
    /// It ends the connection (`Connection: close`, or a body read to EOF).
    closes: bool,
}

/// Sends the requests and reads `count` complete, well-formed responses of
/// any status (fewer if one of them closes the connection), passing each to
/// `record` and counting it in `answered`. Returns whether the connection
/// is closed.
async fn exchange(
    stream: &TcpStream,
    request: &[u8],
    count: u64,
    reader: &mut ResponseReader,
    answered: &mut u64,
    record: &mut impl FnMut(Response),
) -> io::Result<bool> {
    stream.write_all(request).await?;
    while *answered < count {
        let response = reader.next(stream).await?;
        *answered += 1;
        let closes = response.closes;
        record(response);
        if closes {
            return Ok(true);
        }
    }
    Ok(false)
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
    /// Reads more bytes; `Ok(false)` at end of stream.
    async fn fill_or_eof(&mut self, stream: &TcpStream) -> io::Result<bool> {
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
        self.end += n;
        Ok(n > 0)
    }

    async fn fill(&mut self, stream: &TcpStream) -> io::Result<()> {
        if self.fill_or_eof(stream).await? {
            Ok(())
        } else {
            Err(io::ErrorKind::UnexpectedEof.into())
        }
    }

    /// One response of any status, its body framed by Content-Length,
    /// chunked, or (with neither) the end of the connection.
    async fn next(&mut self, stream: &TcpStream) -> io::Result<Response> {
        let (head_len, status, framing, closes) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            match response.parse(&self.buf[self.start..self.end]) {
                Ok(httparse::Status::Complete(n)) => {
                    let status = response.code.unwrap_or(0);
                    let closes = response.headers.iter().any(|h| {
                        h.name.eq_ignore_ascii_case("connection")
                            && h.value.eq_ignore_ascii_case(b"close")
                    });
                    let framing = if status < 200 {
                        // An interim response (100 Continue) before the real one.
                        return Err(invalid("unexpected 1xx response"));
                    } else if status == 204 || status == 304 {
                        Framing::Length(0)
                    } else {
                        framing_of(response.headers)?
                    };
                    break (n, status, framing, closes);
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
            Framing::UntilClose => {
                let mut len = self.end - self.start;
                self.start = self.end;
                while self.fill_or_eof(stream).await? {
                    len += self.end - self.start;
                    self.start = self.end;
                }
                len
            }
        };
        Ok(Response {
            status,
            bytes: (head_len + body) as u64,
            closes: closes || matches!(framing, Framing::UntilClose),
        })
    }
}

enum Framing {
    Length(u64),
    Chunked,
    /// Neither header: the body ends with the connection (RFC 9112 §6.3).
    UntilClose,
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
    Ok(Framing::UntilClose)
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
    fn extra_headers_go_into_every_pipelined_request() {
        let o = parse_args(args(&[
            "http://127.0.0.1:8080/text.css",
            "-H",
            "Accept-Encoding: gzip",
            "-H",
            "X-Trace:1",
            "--pipeline",
            "2",
        ]))
        .expect("parses")
        .expect("not help");
        let one = "GET /text.css HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\
                   Accept-Encoding: gzip\r\nX-Trace:1\r\n\r\n";
        assert_eq!(request_bytes(&o), one.repeat(2).into_bytes());
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
            (
                vec!["http://127.0.0.1:1/", "--max-errors", "101"],
                "percentage",
            ),
            (
                vec!["http://127.0.0.1:1/", "--rate", "100", "--pipeline", "4"],
                "--rate and --pipeline do not mix",
            ),
            (
                vec!["http://127.0.0.1:1/", "--rate", "0"],
                "--rate 0 is not",
            ),
            (
                vec!["http://127.0.0.1:1/", "-H", "Accept-Encoding gzip"],
                "is not a header",
            ),
            (
                vec!["http://127.0.0.1:1/", "-H", "X: a\r\nHost: b"],
                "is not a header",
            ),
            (
                vec!["http://127.0.0.1:1/", "--rate", "NaN"],
                "--rate NaN is not",
            ),
            (
                vec!["http://127.0.0.1:1/", "-n", "5", "--warmup", "1s"],
                "--warmup needs a timed run",
            ),
            (
                vec!["http://127.0.0.1:1/", "--warmup", "soon"],
                "--warmup soon",
            ),
            (
                vec!["http://127.0.0.1:1/", "--check", "p99<2ms,fast"],
                "\"fast\" has no",
            ),
            (
                vec!["http://127.0.0.1:1/", "--hdr-out"],
                "--hdr-out needs a value",
            ),
        ] {
            let err = parse_args(args(&list)).expect_err("rejected");
            assert!(err.to_string().contains(needle), "{err}");
        }
    }

    #[test]
    fn max_errors_takes_a_percentage() {
        for (value, pct) in [("5", 5.0), ("0.5%", 0.5), ("0", 0.0)] {
            let o = parse_args(args(&["http://127.0.0.1:1/", "--max-errors", value]))
                .expect("parses")
                .expect("not help");
            assert_eq!(o.max_errors_pct, pct);
        }
    }

    fn report(statuses: &[(u16, u64)], errors: ErrorCounts) -> BenchReport {
        let statuses: BTreeMap<u16, u64> = statuses.iter().copied().collect();
        BenchReport {
            elapsed: Duration::from_secs(1),
            requests: statuses.values().sum(),
            statuses,
            bytes: 0,
            errors,
            other_error: None,
            unanswered_at_end: 0,
            connections: ConnectionCounts {
                requested: 4,
                opened: 4,
                ..ConnectionCounts::default()
            },
            fd_limit: None,
            latency: new_histogram(),
            uncorrected: None,
            rate: None,
            series: Series::default(),
            server: Vec::new(),
            client_cpu: vec![0.5],
            connect_errors: ErrorCounts::default(),
            warmup: Duration::ZERO,
        }
    }

    #[test]
    fn a_run_fails_on_no_success_or_errors_over_the_threshold() {
        let options = BenchOptions::new("127.0.0.1:1".parse().expect("addr"), "/");
        assert!(report(&[(200, 1000)], ErrorCounts::default())
            .failures(&options)
            .is_empty());
        // 1 % exactly is within the default threshold; more is not.
        let refused = ErrorCounts {
            refused: 10,
            ..ErrorCounts::default()
        };
        assert!(report(&[(200, 990)], refused).failures(&options).is_empty());
        let failures = report(&[(200, 980), (503, 10)], refused).failures(&options);
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert!(
            failures[0].contains("connection refused 10") && failures[0].contains("status 503 10"),
            "{failures:?}"
        );
        let failures = report(&[(404, 50)], ErrorCounts::default()).failures(&options);
        assert!(
            failures[0].contains("no request succeeded: status 404 50"),
            "{failures:?}"
        );
    }

    #[test]
    fn a_busy_client_thread_is_flagged_and_errors_are_placed() {
        let mut r = report(&[(200, 90), (500, 5)], ErrorCounts::default());
        assert!(r.client_bound_warning().is_none());
        r.client_cpu = vec![0.4, 0.95];
        let warning = r.client_bound_warning().expect("bound");
        assert!(warning.contains("95 % of a core (2 threads)"), "{warning}");
        // Two refused while connecting, one reset mid-response, one timeout.
        r.errors = ErrorCounts {
            refused: 2,
            reset: 1,
            timeout: 1,
            ..ErrorCounts::default()
        };
        r.connect_errors = ErrorCounts {
            refused: 2,
            ..ErrorCounts::default()
        };
        let places: Vec<(&str, u64)> = r.error_places().iter().map(|(k, _, n)| (*k, *n)).collect();
        assert_eq!(
            places,
            vec![
                ("connect", 2),
                ("read", 1),
                ("timeout", 1),
                ("bad_status", 5),
                ("bad_body", 0)
            ]
        );
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
    }
}
