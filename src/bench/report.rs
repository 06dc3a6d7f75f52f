//! What a run measured, and the figures derived from it: rates, latency,
//! failures and why the run should not be trusted.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::args::BenchOptions;
use super::check;
use super::counts::{ConnectionCounts, ErrorCounts, FdLimitNote};
use super::series::Series;
use super::server_status::Sample;

#[cfg(doc)]
use super::rate::LATE_AFTER;

/// What a run measured.
#[derive(Clone, Debug)]
pub(crate) struct BenchReport {
    /// Wall-clock time of the run.
    pub(crate) elapsed: Duration,
    /// Complete, well-formed responses received, whatever their status.
    pub(crate) requests: u64,
    /// Those responses by status code.
    pub(crate) statuses: BTreeMap<u16, u64>,
    /// Response bytes received, heads and bodies.
    pub(crate) bytes: u64,
    /// Requests that got no complete response, by why (non-2xx responses
    /// are in `statuses`, not here).
    pub(crate) errors: ErrorCounts,
    /// The first error of class `other`, as the OS or parser put it.
    pub(crate) other_error: Option<String>,
    /// Requests still unanswered when the run's time was up (not errors).
    pub(crate) unanswered_at_end: u64,
    /// The connections: asked for, opened, reopened and why, never opened.
    pub(crate) connections: ConnectionCounts,
    /// The open-file limit, if it could be read.
    pub(crate) fd_limit: Option<FdLimitNote>,
    /// Latency in microseconds, one sample per response: from sending its
    /// batch (`--pipeline`) until the response is complete; with `--rate`,
    /// from when the timetable said to send it (corrected).
    pub(crate) latency: Histogram<u64>,
    /// With `--rate`: latency from the actual send (uncorrected).
    pub(crate) uncorrected: Option<Histogram<u64>>,
    /// With `--rate`: the target and how the timetable was kept.
    pub(crate) rate: Option<RateFigures>,
    /// Second by second, from the measured start.
    pub(crate) series: Series,
    /// `--server-status` samples (empty without it).
    pub(crate) server: Vec<Sample>,
    /// Each client worker thread's CPU use over the run, in cores (1.0: one
    /// core all the time).
    pub(crate) client_cpu: Vec<f64>,
    /// Those of `errors` that happened while connecting.
    pub(crate) connect_errors: ErrorCounts,
    /// The warm-up run first and discarded.
    pub(crate) warmup: Duration,
}

/// How the `--rate` timetable was kept.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct RateFigures {
    /// Requests per second asked for.
    pub(crate) target: f64,
    /// Requests sent in the measured run.
    pub(crate) sent: u64,
    /// Of those, sent more than [`LATE_AFTER`] behind their time.
    pub(crate) late: u64,
}

/// Failed requests by where they failed; the field names are the JSON keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ErrorPlaces {
    pub(crate) connect: u64,
    pub(crate) read: u64,
    pub(crate) timeout: u64,
    pub(crate) bad_status: u64,
    pub(crate) bad_body: u64,
}

impl ErrorPlaces {
    /// `(label, count)` for every place, in a fixed order.
    pub(crate) fn labelled(&self) -> [(&'static str, u64); 5] {
        [
            ("connect", self.connect),
            ("read", self.read),
            ("timeout", self.timeout),
            ("bad status", self.bad_status),
            ("bad body", self.bad_body),
        ]
    }
}

/// A client thread busier than this share of a core makes the client the
/// likely bottleneck.
pub(crate) const CLIENT_BOUND: f64 = 0.9;

/// The quantiles printed and put in the JSON (as `p50` … `p99_99`).
pub(crate) const QUANTILES: [(f64, &str, &str); 6] = [
    (0.5, "p50", "p50"),
    (0.75, "p75", "p75"),
    (0.9, "p90", "p90"),
    (0.99, "p99", "p99"),
    (0.999, "p99_9", "p99.9"),
    (0.9999, "p99_99", "p99.99"),
];

impl BenchReport {
    /// Errors grouped by where they happened: connecting, reading (reset,
    /// closed, other I/O), timeouts waiting for a response, a non-2xx
    /// status, a bad response.
    pub(crate) fn error_places(&self) -> ErrorPlaces {
        let e = &self.errors;
        let c = &self.connect_errors;
        ErrorPlaces {
            connect: c.total(),
            read: (e.reset + e.other + e.refused + e.fd_limit)
                .saturating_sub(c.reset + c.other + c.refused + c.fd_limit),
            timeout: e.timeout.saturating_sub(c.timeout),
            bad_status: self.non_2xx(),
            bad_body: e.bad_response.saturating_sub(c.bad_response),
        }
    }

    /// Requests answered per connection opened: with perfect keep-alive
    /// every `-c` connection is opened once.
    pub(crate) fn requests_per_connection(&self) -> f64 {
        self.requests as f64 / self.connections.opened.max(1) as f64
    }

    /// The busiest client thread's CPU use, in cores.
    pub(crate) fn busiest_client_thread(&self) -> f64 {
        self.client_cpu.iter().copied().fold(0.0, f64::max)
    }

    /// A warning when the client, not the server, may set the pace.
    pub(crate) fn client_bound_warning(&self) -> Option<String> {
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
    pub(crate) fn figures(&self) -> check::Figures {
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
    pub(crate) fn requests_per_sec(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Response bytes received per second of `elapsed`.
    pub(crate) fn bytes_per_sec(&self) -> f64 {
        self.bytes as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Latency at quantile `q` in microseconds.
    pub(crate) fn latency_us(&self, q: f64) -> u64 {
        if q >= 1.0 {
            self.latency.max()
        } else {
            self.latency.value_at_quantile(q)
        }
    }

    /// Responses with a 2xx status: the requests that succeeded.
    pub(crate) fn succeeded(&self) -> u64 {
        self.statuses.range(200..300).map(|(_, n)| n).sum()
    }

    /// Complete responses whose status was not 2xx.
    pub(crate) fn non_2xx(&self) -> u64 {
        self.requests - self.succeeded()
    }

    /// Failed requests: errors of every class plus non-2xx responses.
    pub(crate) fn failed(&self) -> u64 {
        self.errors.total() + self.non_2xx()
    }

    /// Failed requests as a percentage of the requests that finished one
    /// way or the other (0 when none did).
    pub(crate) fn error_pct(&self) -> f64 {
        let finished = self.requests + self.errors.total();
        if finished == 0 {
            0.0
        } else {
            self.failed() as f64 * 100.0 / finished as f64
        }
    }

    /// Every failed request by cause: error classes, then `status N`.
    pub(crate) fn error_summary(&self) -> String {
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
    pub(crate) fn failures(&self, options: &BenchOptions) -> Vec<String> {
        let mut out = Vec::new();
        // A run with no complete response measured nothing, whatever
        // --max-errors allows; a non-2xx answer is a measurement, failed
        // or not as --max-errors says.
        if self.requests == 0 {
            let why = match (self.errors.total(), self.unanswered_at_end) {
                (0, 0) => "no request was sent".to_string(),
                (0, n) => format!("{n} requests were still unanswered when the run ended"),
                _ => self.error_summary(),
            };
            out.push(format!("no response arrived: {why}"));
        } else if self.error_pct() > options.max_errors_pct {
            let mut line = format!(
                "{:.2} % of requests failed ({}), over the --max-errors threshold of {} %",
                self.error_pct(),
                self.error_summary(),
                options.max_errors_pct
            );
            if self.errors.total() == 0 {
                line.push_str(
                    "; every failure is a complete non-2xx answer: to measure that path \
                     (a 404 page, a redirect), pass --max-errors 100",
                );
            }
            out.push(line);
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
}

#[cfg(test)]
mod tests {
    use super::super::schema::ReportJson;
    use super::super::tally::new_histogram;
    use super::*;

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
            failures[0].contains("100.00 % of requests failed (status 404 50)")
                && failures[0].contains("pass --max-errors 100"),
            "{failures:?}"
        );
        // A non-2xx path is benchmarked with --max-errors 100; a run with
        // no answer at all fails whatever the threshold.
        let mut all = options.clone();
        all.max_errors_pct = 100.0;
        assert!(report(&[(404, 50)], ErrorCounts::default())
            .failures(&all)
            .is_empty());
        let failures = report(&[], refused).failures(&all);
        assert!(
            failures[0].contains("no response arrived: connection refused 10"),
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
        assert_eq!(
            r.error_places(),
            ErrorPlaces {
                connect: 2,
                read: 1,
                timeout: 1,
                bad_status: 5,
                bad_body: 0
            }
        );
    }

    #[test]
    fn the_json_report_keeps_its_field_names_and_reads_back_as_written() {
        let options = BenchOptions::new("127.0.0.1:1".parse().expect("addr"), "/x");
        let json = ReportJson::of(
            &report(&[(200, 96), (404, 4)], ErrorCounts::default()),
            &options,
        );
        let text = serde_json::to_string(&json).expect("serializes");
        for field in [
            "{\"url\":\"http://127.0.0.1:1/x\",\"options\":{\"connections\":64,",
            "\"statuses\":{\"200\":96,\"404\":4},\"non_2xx\":4,\"errors\":4,\"error_pct\":4.0,",
            "\"errors_by_class\":{\"total\":0,\"refused\":0,\"fd_limit\":0,\"reset\":0,\
             \"timeout\":0,\"bad_response\":0,\"other\":0},",
            "\"not_opened\":{\"total\":0,\"refused\":0,\"fd_limit\":0,\"reset\":0,\
             \"timeout\":0,\"bad_response\":0,\"other\":0,\"run_ended\":0}},\"fd_limit\":null,",
            "\"latency_uncorrected_us\":null,\"rate\":null,",
            "\"series\":[],\"server_status\":null,\"checks\":[],\"ok\":false,\"failures\":[",
        ] {
            assert!(text.contains(field), "{field} in {text}");
        }
        // What --json writes, --baseline reads back, figure for figure.
        let back: ReportJson = serde_json::from_str(&text).expect("reads back");
        assert_eq!(back, json);
    }
}
