//! `conveyor bench` arguments: the options, their defaults, and reading
//! them (with lexopt, like the server's flags in `cli.rs`).

use std::ffi::OsString;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use conveyor::config::{parse_duration, ConfigError};
use lexopt::Arg;

use super::baseline::{self, Baseline};
use super::check::{self, Threshold};
use super::tls::{self, Trust};
use crate::cli::explain;

/// The `conveyor bench --help` text.
pub(crate) const USAGE: &str = "\
usage: conveyor bench URL [-c CONNECTIONS] [-d DURATION | -n REQUESTS] [--pipeline DEPTH]
                          [--close] [--threads N] [--max-errors PERCENT] [--json]
                          [--rate R] [--warmup D] [--server-status] [--check TERMS]
                          [--baseline OLD.json] [--hdr-out FILE] [-H 'NAME: VALUE']
                          [--h2 [--streams M]] [-k | --cacert FILE]

  URL              http://HOST:PORT/PATH or https://HOST:PORT/PATH (TLS);
                   HTTP/1.1 keep-alive unless --h2
  --h2             speak HTTP/2: prior knowledge (h2c) on http://, ALPN h2 on
                   https:// (a server that does not choose h2 fails the run)
  -m, --streams M  with --h2: requests in flight on each connection at once
                   (default 1), like h2load -m; -c N -m M keeps N x M in flight
  -k, --insecure   https://: accept any certificate, unverified (a self-signed
                   test server); without it the certificate is verified
  --cacert FILE    https://: trust the CA certificates in FILE (PEM) instead of
                   the system's (SSL_CERT_FILE, else the distribution bundle)
  -c, --connections N
                   concurrent connections (default 64); the soft open-file
                   limit is raised to fit them when the hard limit allows
  -d, --duration DURATION
                   run for this long, e.g. 5s, 500ms (default 5s); connecting,
                   requests and timeouts all stop when it is up
  -n, --requests N stop after N requests instead
  --pipeline D     send D requests per write and read D responses (default 1)
  --close          a new connection per request (Connection: close)
  -H, --header 'NAME: VALUE'
                   add this header to every request (repeatable), e.g.
                   -H 'Accept-Encoding: gzip'
  --threads N      client worker threads (default: number of cores)
  --max-errors P   fail the run when more than P % of requests fail (default 1);
                   a failed request is an error or a non-2xx answer, so
                   --max-errors 100 benchmarks a 404 or redirect path
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
  --server-status  print the server's own figures of each second beside the
                   client's: request rate, p50 and p99, connection states,
                   queue depth, from its live stream (/status?stream=1); a
                   server without one is polled at /status, whose latency is
                   since start-up and so left out of the second's columns
  --check TERMS    thresholds for CI, e.g. 'p99<2ms,errors=0,rps>50000';
                   figures: p50 p75 p90 p99 p99.9 p99.99 max (latency; us, ms
                   or s), rps, errors (a count, or errors<1% as a share),
                   late, requests; comparisons < <= > >= =
  --baseline FILE  print every figure beside the same one in FILE, the --json
                   output of an earlier run, with the change in percent;
                   totals (requests, statuses, errors) as rates per second of
                   each run, and a note when the durations differ
  --hdr-out FILE   write the latency distribution (corrected, with --rate) in
                   HdrHistogram's percentile format, values in milliseconds
  -h, --help       print this help

Options take `-c 8`, `--connections 8` or `--connections=8`.

A progress line is printed to stderr each second: requests/s, p99 and errors
of that second (and late sends with --rate, the server's figures with
--server-status).

Errors are counted by class: connection refused, too many open files (the
fd limit), connection reset or closed mid-response, timeout (10 s, or the run
ending while connecting), bad response (unparseable or badly framed). A
complete non-2xx response is not an error but a failed request, counted by
its status code: it is timed and its connection kept; --max-errors and
--check errors count both. Connections the server closes (Connection: close, e.g.
its max_requests_per_connection) are reopened and counted as such. The same
errors are also grouped by where they happened: connect, read, timeout, bad
status, bad body.

Exit status: 0 when the run succeeded; 1 when no request got a complete
answer, when failed requests (errors and non-2xx answers) exceed
--max-errors, when some of the -c connections could
never be opened (each reason is printed), or when --hdr-out cannot be
written; 2 for bad arguments; 3 when the run succeeded but a --check
threshold failed.
";

/// How to run the load, as parsed from `conveyor bench` arguments.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct BenchOptions {
    /// The address connected to: the URL's host, resolved (port 80 if none).
    pub(crate) addr: SocketAddr,
    /// The URL's `HOST[:PORT]`, sent as the Host header.
    pub(crate) host: String,
    /// The request target, from the URL (`/` if it has none).
    pub(crate) path: String,
    /// `-c`: connections kept open at once (default 64).
    pub(crate) connections: usize,
    /// `-d`: how long to run (default 5 s); ignored when `requests` is set.
    pub(crate) duration: Duration,
    /// `-n`: stop after this many requests instead of after `duration`.
    pub(crate) requests: Option<u64>,
    /// `--pipeline`: requests sent per write, and responses read per batch (default 1).
    pub(crate) pipeline: usize,
    /// `--close`: a new connection per request, sending `Connection: close`.
    pub(crate) close: bool,
    /// `--threads`: client worker threads (default: one per core).
    pub(crate) threads: usize,
    /// `--max-errors`: the share of failed requests, in percent, above
    /// which the run fails (default 1).
    pub(crate) max_errors_pct: f64,
    /// `--json`: print the result as JSON rather than a table.
    pub(crate) json: bool,
    /// `--rate`: requests per second in all, sent open loop on a timetable.
    pub(crate) rate: Option<f64>,
    /// `--warmup`: run this long first, its results discarded.
    pub(crate) warmup: Duration,
    /// `--server-status`: follow the target's figures each second.
    pub(crate) server_status: bool,
    /// `--check`: thresholds the run must meet.
    pub(crate) checks: Vec<Threshold>,
    /// `--baseline`: an earlier run to compare against.
    pub(crate) baseline: Option<Baseline>,
    /// `--hdr-out`: where to write the latency distribution.
    pub(crate) hdr_out: Option<PathBuf>,
    /// `-H`: extra request header lines (`Name: value`), sent as given.
    pub(crate) headers: Vec<String>,
    /// The URL is `https://`: how its certificate is checked.
    pub(crate) tls: Option<Trust>,
    /// `--h2`: HTTP/2 (h2c by prior knowledge, or ALPN h2 over TLS).
    pub(crate) h2: bool,
    /// `--streams`: requests in flight per connection with `--h2` (default 1).
    pub(crate) streams: usize,
    /// `--cacert`, as given (resolved into `tls` once the URL is read).
    cacert: Option<PathBuf>,
    /// `-k`/`--insecure`, as given.
    insecure: bool,
    /// `--streams` was given (it needs `--h2`).
    streams_given: bool,
}

impl BenchOptions {
    /// The options' defaults, aimed at `addr` and `path`.
    pub(crate) fn new(addr: SocketAddr, path: &str) -> BenchOptions {
        BenchOptions {
            addr,
            host: addr.to_string(),
            path: path.to_string(),
            connections: 64,
            duration: Duration::from_secs(5),
            requests: None,
            pipeline: 1,
            close: false,
            threads: conveyor::config::resolve_workers(0),
            max_errors_pct: 1.0,
            json: false,
            rate: None,
            warmup: Duration::ZERO,
            server_status: false,
            checks: Vec::new(),
            baseline: None,
            hdr_out: None,
            headers: Vec::new(),
            tls: None,
            h2: false,
            streams: 1,
            cacert: None,
            insecure: false,
            streams_given: false,
        }
    }

    /// The target as a URL.
    pub(crate) fn url(&self) -> String {
        format!("{}://{}{}", self.scheme(), self.host, self.path)
    }

    /// `http` or `https`.
    pub(crate) fn scheme(&self) -> &'static str {
        match self.tls {
            Some(_) => "https",
            None => "http",
        }
    }

    /// The protocol spoken, for the report: `h2`, `h2c` or `http/1.1`.
    pub(crate) fn protocol(&self) -> &'static str {
        match (self.h2, self.tls.is_some()) {
            (true, true) => "h2",
            (true, false) => "h2c",
            (false, _) => "http/1.1",
        }
    }

    /// Request slots kept busy at once: `-c` connections, times `--streams`
    /// with `--h2` (each slot has its own place on the `--rate` timetable).
    pub(crate) fn slots(&self) -> usize {
        self.connections.saturating_mul(self.streams)
    }
}

fn bad(message: String) -> ConfigError {
    crate::cli::usage_error("conveyor bench", message)
}

/// Parses the arguments after `bench`; `Ok(None)` means help was asked for.
/// Every option takes `-c 8`, `--connections 8` or `--connections=8`.
pub(crate) fn parse_args(args: Vec<OsString>) -> Result<Option<BenchOptions>, ConfigError> {
    let mut parser = lexopt::Parser::from_args(args);
    // The target is filled in from the URL once every option is read.
    let mut options = BenchOptions::new(SocketAddr::from(([127, 0, 0, 1], 80)), "/");
    let mut url = None;
    while let Some(arg) = parser.next().map_err(|e| bad(explain(e)))? {
        let flag = match arg {
            Arg::Value(value) if url.is_none() => {
                url = Some(value.into_string().map_err(|value| {
                    bad(format!(
                        "URL {} is not valid UTF-8",
                        value.to_string_lossy()
                    ))
                })?);
                continue;
            }
            Arg::Value(value) => {
                return Err(bad(format!(
                    "unexpected argument {}",
                    value.to_string_lossy()
                )))
            }
            Arg::Short(c) => format!("-{c}"),
            Arg::Long(name) => format!("--{name}"),
        };
        if option(&mut options, &flag, &mut parser)? == Asked::Help {
            return Ok(None);
        }
    }
    let url = url.ok_or_else(|| bad("missing URL".into()))?;
    options.aim(&url)?;
    options.check_combinations()?;
    options.trust()?;
    Ok(Some(options))
}

/// Whether an option asked for the help text instead of a run.
#[derive(PartialEq)]
enum Asked {
    Run,
    Help,
}

/// The value of `flag`; `what` names it in a message (`-c N needs a value`).
fn text(parser: &mut lexopt::Parser, flag: &str, what: &str) -> Result<String, ConfigError> {
    crate::cli::text(parser, &format!("{flag} {what}")).map_err(bad)
}

fn positive(flag: &str, v: &str) -> Result<u64, ConfigError> {
    v.parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| bad(format!("{flag} {v} is not a positive whole number")))
}

fn duration(flag: &str, v: &str, like: &str) -> Result<Duration, ConfigError> {
    parse_duration(v).ok_or_else(|| {
        bad(format!(
            "{flag} {v} is not a duration; write it like {like} or 500ms"
        ))
    })
}

/// Reads one option (`flag`, as written) and its value into `o`.
fn option(
    o: &mut BenchOptions,
    flag: &str,
    parser: &mut lexopt::Parser,
) -> Result<Asked, ConfigError> {
    match flag {
        "-h" | "--help" => return Ok(Asked::Help),
        "-c" | "--connections" => {
            o.connections = positive(flag, &text(parser, flag, "N")?)? as usize
        }
        "-n" | "--requests" => o.requests = Some(positive(flag, &text(parser, flag, "N")?)?),
        "--pipeline" => o.pipeline = positive(flag, &text(parser, flag, "DEPTH")?)? as usize,
        "--threads" => o.threads = positive(flag, &text(parser, flag, "N")?)? as usize,
        "-d" | "--duration" => o.duration = duration(flag, &text(parser, flag, "DURATION")?, "5s")?,
        "--warmup" => o.warmup = duration(flag, &text(parser, flag, "DURATION")?, "2s")?,
        "--max-errors" => o.max_errors_pct = percentage(flag, &text(parser, flag, "PERCENT")?)?,
        "--rate" => o.rate = Some(rate(flag, &text(parser, flag, "R")?)?),
        "--check" => o
            .checks
            .extend(check::parse(&text(parser, flag, "TERMS")?).map_err(bad)?),
        "--baseline" => {
            let file = crate::cli::value(parser, "--baseline FILE").map_err(bad)?;
            o.baseline = Some(baseline::load(Path::new(&file)).map_err(bad)?);
        }
        "--hdr-out" => {
            let file = crate::cli::value(parser, "--hdr-out FILE").map_err(bad)?;
            o.hdr_out = Some(PathBuf::from(file));
        }
        "-H" | "--header" => o
            .headers
            .push(header_line(text(parser, flag, "'NAME: VALUE'")?)?),
        "-m" | "--streams" => {
            o.streams = positive(flag, &text(parser, flag, "M")?)? as usize;
            o.streams_given = true;
        }
        "--cacert" => {
            let file = crate::cli::value(parser, "--cacert FILE").map_err(bad)?;
            o.cacert = Some(PathBuf::from(file));
        }
        "-k" | "--insecure" => o.insecure = true,
        "--h2" | "--http2" => o.h2 = true,
        "--server-status" => o.server_status = true,
        "--close" => o.close = true,
        "--json" => o.json = true,
        _ => return Err(bad(format!("unknown option {flag}"))),
    }
    Ok(Asked::Run)
}

fn percentage(flag: &str, v: &str) -> Result<f64, ConfigError> {
    v.trim_end_matches('%')
        .parse::<f64>()
        .ok()
        .filter(|p| (0.0..=100.0).contains(p))
        .ok_or_else(|| {
            bad(format!(
                "{flag} {v} is not a percentage from 0 to 100, like 1 or 0.5%"
            ))
        })
}

fn rate(flag: &str, v: &str) -> Result<f64, ConfigError> {
    v.parse::<f64>()
        .ok()
        .filter(|r| r.is_finite() && *r > 0.0)
        .ok_or_else(|| {
            bad(format!(
                "{flag} {v} is not a positive number of requests per second"
            ))
        })
}

impl BenchOptions {
    /// Points the options at `url`: the address resolved, the Host header
    /// and the request target.
    fn aim(&mut self, url: &str) -> Result<(), ConfigError> {
        let (secure, host, path) = split_url(url).ok_or_else(|| {
            bad(format!(
                "{url} is not an http:// or https://HOST[:PORT]/PATH URL"
            ))
        })?;
        let with_port = if host.contains(':') && !host.ends_with(']') {
            host.clone()
        } else if secure {
            format!("{host}:443")
        } else {
            format!("{host}:80")
        };
        // Checked, and the certificates read, by `trust` once every
        // option is known.
        self.tls = secure.then_some(Trust::Insecure);
        self.addr = with_port
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| bad(format!("cannot resolve {host}")))?;
        self.host = host;
        self.path = path;
        Ok(())
    }

    /// Options that make no sense together.
    fn check_combinations(&self) -> Result<(), ConfigError> {
        if self.close && self.pipeline > 1 {
            return Err(bad("--close and --pipeline do not mix".into()));
        }
        if self.rate.is_some() && self.pipeline > 1 {
            return Err(bad(
                "--rate and --pipeline do not mix: a timetable sends one request at a time".into(),
            ));
        }
        if self.streams_given && !self.h2 {
            return Err(bad(
                "--streams needs --h2: an HTTP/1.1 connection has one request in flight \
                 (use --pipeline to send several per write)"
                    .into(),
            ));
        }
        if self.h2 && self.pipeline > 1 {
            return Err(bad(
                "--h2 and --pipeline do not mix: use --streams M for M requests in flight \
                 per connection"
                    .into(),
            ));
        }
        if self.h2 && self.close {
            return Err(bad(
                "--h2 and --close do not mix: an HTTP/2 connection is not closed per request"
                    .into(),
            ));
        }
        if self.insecure && self.cacert.is_some() {
            return Err(bad(
                "-k/--insecure and --cacert do not mix: either verify the certificate \
                 against FILE, or do not verify it"
                    .into(),
            ));
        }
        if self.tls.is_none() && (self.insecure || self.cacert.is_some()) {
            return Err(bad(format!(
                "{} applies to https:// URLs only; {} is plain HTTP",
                if self.insecure {
                    "-k/--insecure"
                } else {
                    "--cacert"
                },
                self.url()
            )));
        }
        if self.h2 {
            super::h2::check(self).map_err(bad)?;
            if let Some(line) = self.headers.iter().find(|l| super::h2::forbidden_header(l)) {
                return Err(bad(format!(
                    "-H {line:?}: HTTP/2 has no connection-specific header fields \
                     (RFC 9113 section 8.2.2); leave it out with --h2"
                )));
            }
        }
        if self.requests.is_some() && !self.warmup.is_zero() {
            return Err(bad(
                "--warmup needs a timed run (-d), not -n: the warm-up would eat the budget".into(),
            ));
        }
        Ok(())
    }
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

impl BenchOptions {
    /// For an `https://` URL: the certificates trusted (`--cacert`, else
    /// the system's), or none checked (`-k`).
    fn trust(&mut self) -> Result<(), ConfigError> {
        if self.tls.is_none() {
            return Ok(());
        }
        self.tls = Some(if self.insecure {
            Trust::Insecure
        } else {
            let roots = match &self.cacert {
                Some(file) => tls::read_roots(file),
                None => tls::system_roots(),
            };
            Trust::Roots(roots.map_err(bad)?)
        });
        if let Some(trust) = &self.tls {
            // The host must be a name a certificate can hold.
            tls::Client::new(trust, &self.host, self.h2).map_err(bad)?;
        }
        Ok(())
    }
}

/// The URL's scheme (`true` for https), `HOST[:PORT]` and path.
fn split_url(url: &str) -> Option<(bool, String, String)> {
    let (secure, rest) = match url.strip_prefix("https://") {
        Some(rest) => (true, rest),
        None => (false, url.strip_prefix("http://")?),
    };
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    (!host.is_empty()).then(|| (secure, host.to_string(), path.to_string()))
}

/// The bytes of one batch: `--pipeline` copies of the request.
pub(crate) fn request_bytes(options: &BenchOptions) -> Vec<u8> {
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
                "--hdr-out FILE needs a value",
            ),
            (
                vec!["http://127.0.0.1:1/", "--streams", "8"],
                "--streams needs --h2",
            ),
            (
                vec!["http://127.0.0.1:1/", "--h2", "--pipeline", "2"],
                "--h2 and --pipeline do not mix",
            ),
            (
                vec!["http://127.0.0.1:1/", "--h2", "--close"],
                "--h2 and --close do not mix",
            ),
            (
                vec!["http://127.0.0.1:1/", "-k"],
                "applies to https:// URLs only",
            ),
            (
                vec!["https://127.0.0.1:1/", "-k", "--cacert", "x.pem"],
                "do not mix",
            ),
            (
                vec!["https://127.0.0.1:1/", "--cacert", "/nonexistent.pem"],
                "cannot read it",
            ),
            (
                vec!["http://127.0.0.1:1/", "--h2", "-H", "Connection: close"],
                "connection-specific",
            ),
            (
                vec!["http://127.0.0.1:1/", "--h2", "-m", "0"],
                "-m 0 is not a positive",
            ),
        ] {
            let err = parse_args(args(&list)).expect_err("rejected");
            assert!(err.to_string().contains(needle), "{err}");
        }
    }

    #[test]
    fn https_and_h2_flags() {
        let o = parse_args(args(&[
            "https://localhost/small.txt",
            "--h2",
            "-m",
            "10",
            "-k",
        ]))
        .expect("parses")
        .expect("not help");
        assert_eq!(o.addr.port(), 443);
        assert_eq!((o.h2, o.streams, o.slots()), (true, 10, 640));
        assert_eq!((o.protocol(), o.tls.clone()), ("h2", Some(Trust::Insecure)));
        assert_eq!(o.url(), "https://localhost/small.txt");
        let plain = parse_args(args(&["http://127.0.0.1:1/", "--h2"]))
            .expect("parses")
            .expect("not help");
        assert_eq!((plain.protocol(), plain.streams), ("h2c", 1));
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
}
