//! The `--json` report: one schema, derived with serde, that `--json`
//! writes and `--baseline` reads back. The field names are the report's
//! interface (scripts and the tests read them): rename none.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::args::BenchOptions;
use super::check;
use super::counts::ErrorCounts;
use super::report::{BenchReport, ErrorPlaces, QUANTILES};
use super::series::Series;
use super::server_status::{self, Sample};
use super::tls::Trust;

/// A `conveyor bench --json` report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct ReportJson {
    pub(crate) url: String,
    pub(crate) options: OptionsJson,
    pub(crate) duration_secs: f64,
    pub(crate) requests: u64,
    pub(crate) succeeded: u64,
    pub(crate) requests_per_sec: f64,
    pub(crate) bytes_per_sec: f64,
    pub(crate) latency_us: LatencyJson,
    pub(crate) latency_uncorrected_us: Option<LatencyJson>,
    pub(crate) rate: Option<RateJson>,
    pub(crate) statuses: BTreeMap<u16, u64>,
    pub(crate) non_2xx: u64,
    pub(crate) errors: u64,
    pub(crate) error_pct: f64,
    pub(crate) errors_by_class: ErrorsJson,
    pub(crate) other_error: Option<String>,
    pub(crate) unanswered_at_end: u64,
    pub(crate) error_places: ErrorPlaces,
    pub(crate) connections_opened: u64,
    pub(crate) connections: ConnectionsJson,
    pub(crate) fd_limit: Option<FdLimitJson>,
    pub(crate) client_cpu: ClientCpuJson,
    pub(crate) series: Vec<SecondJson>,
    pub(crate) server_status: Option<Vec<SampleJson>>,
    pub(crate) checks: Vec<CheckJson>,
    pub(crate) ok: bool,
    pub(crate) failures: Vec<String>,
    /// With `--baseline`: every figure beside the earlier run's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) baseline: Option<BaselineJson>,
}

/// The options the run was made with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct OptionsJson {
    pub(crate) connections: usize,
    pub(crate) duration_secs: f64,
    pub(crate) requests: Option<u64>,
    pub(crate) pipeline: usize,
    pub(crate) close: bool,
    pub(crate) threads: usize,
    pub(crate) max_errors_pct: f64,
    pub(crate) rate: Option<f64>,
    pub(crate) warmup_secs: f64,
    pub(crate) server_status: bool,
    /// `http/1.1`, `h2c` (HTTP/2 by prior knowledge) or `h2` (over TLS);
    /// absent from reports made before `--h2` (read as HTTP/1.1).
    #[serde(default = "http1")]
    pub(crate) protocol: String,
    /// Whether the URL is `https://`.
    #[serde(default)]
    pub(crate) tls: bool,
    /// With `tls`: whether the server's certificate was verified (false
    /// with `-k`).
    #[serde(default)]
    pub(crate) tls_verified: bool,
    /// `--streams`: requests in flight per connection (1 over HTTP/1.1).
    #[serde(default = "one")]
    pub(crate) streams: usize,
}

fn http1() -> String {
    "http/1.1".into()
}

fn one() -> usize {
    1
}

/// Latency quantiles in µs (`p99_9` is p99.9).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct LatencyJson {
    pub(crate) p50: u64,
    pub(crate) p75: u64,
    pub(crate) p90: u64,
    pub(crate) p99: u64,
    pub(crate) p99_9: u64,
    pub(crate) p99_99: u64,
    pub(crate) max: u64,
}

/// How the `--rate` timetable was kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct RateJson {
    pub(crate) target: f64,
    pub(crate) achieved: f64,
    pub(crate) sent: u64,
    pub(crate) late: u64,
    pub(crate) late_pct: f64,
}

/// Failed requests by class, with their total.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct ErrorsJson {
    pub(crate) total: u64,
    #[serde(flatten)]
    pub(crate) classes: ErrorCounts,
}

/// Connections never opened, by their last failure.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct NotOpenedJson {
    pub(crate) total: u64,
    #[serde(flatten)]
    pub(crate) classes: ErrorCounts,
    pub(crate) run_ended: u64,
}

/// What happened to the `-c` connections.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct ConnectionsJson {
    pub(crate) requested: u64,
    pub(crate) opened: u64,
    pub(crate) connected: u64,
    pub(crate) reconnects: u64,
    pub(crate) requests_per_connection: f64,
    pub(crate) reopened_server_closed: u64,
    pub(crate) reopened_close: u64,
    pub(crate) reopened_after_error: u64,
    pub(crate) not_opened: NotOpenedJson,
}

/// The open-file limit as the run found and left it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct FdLimitJson {
    pub(crate) soft_before: u64,
    pub(crate) soft: u64,
    pub(crate) hard: u64,
    pub(crate) wanted: u64,
}

/// The client's own CPU use, in cores.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct ClientCpuJson {
    pub(crate) threads: usize,
    pub(crate) busiest_thread_cores: f64,
    pub(crate) total_cores: f64,
    pub(crate) client_bound: bool,
}

/// One second of the measured run; `t` is its end in seconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct SecondJson {
    pub(crate) t: u64,
    pub(crate) requests: u64,
    pub(crate) errors: u64,
    pub(crate) p50_us: u64,
    pub(crate) p99_us: u64,
    pub(crate) max_us: u64,
    /// With `--rate` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) late: Option<u64>,
}

/// One `--server-status` sample; a figure the server lacks is `null`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct SampleJson {
    pub(crate) t: f64,
    pub(crate) error: Option<String>,
    /// Why the figures were polled from `/status`, not streamed: then the
    /// second's `p50_us` and `p99_us` are `null`.
    #[serde(default)]
    pub(crate) note: Option<String>,
    pub(crate) requests_per_sec: Option<f64>,
    pub(crate) requests_total: Option<f64>,
    pub(crate) open: Option<f64>,
    pub(crate) reading: Option<f64>,
    pub(crate) writing: Option<f64>,
    pub(crate) idle_keepalive: Option<f64>,
    pub(crate) queue_depth: Option<f64>,
    /// The server's latency over the second before `t` (its live stream).
    pub(crate) p50_us: Option<f64>,
    pub(crate) p99_us: Option<f64>,
    /// The server's p99 since it started: not the second's.
    #[serde(default)]
    pub(crate) p99_since_start_us: Option<f64>,
}

/// One `--check` threshold; `measured` is `null` when not finite.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct CheckJson {
    pub(crate) term: String,
    pub(crate) ok: bool,
    pub(crate) measured: Option<f64>,
}

/// The `--baseline` comparison: figure (a dotted path) to its change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct BaselineJson {
    pub(crate) file: String,
    /// Each run's measured seconds (absent in reports from before it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) duration_secs: Option<ChangeJson>,
    /// Whether they differ by more than 2 %.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) durations_differ: Option<bool>,
    /// Totals appear per second, as `FIGURE/s`.
    pub(crate) changes: BTreeMap<String, ChangeJson>,
}

/// One figure in both runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct ChangeJson {
    pub(crate) before: f64,
    pub(crate) now: f64,
    /// `null` when `before` is 0.
    pub(crate) change_pct: Option<f64>,
}

/// `x` rounded to `decimals` places: the report's figures are read by
/// people too, and `123456.78912` says no more than `123456.8`.
pub(crate) fn round(x: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (x * scale).round() / scale
}

impl LatencyJson {
    fn of(h: &Histogram<u64>) -> LatencyJson {
        let q = |i: usize| h.value_at_quantile(QUANTILES[i].0);
        LatencyJson {
            p50: q(0),
            p75: q(1),
            p90: q(2),
            p99: q(3),
            p99_9: q(4),
            p99_99: q(5),
            max: h.max(),
        }
    }
}

impl OptionsJson {
    fn of(o: &BenchOptions) -> OptionsJson {
        OptionsJson {
            connections: o.connections,
            duration_secs: round(o.duration.as_secs_f64(), 3),
            requests: o.requests,
            pipeline: o.pipeline,
            close: o.close,
            threads: o.threads,
            max_errors_pct: o.max_errors_pct,
            rate: o.rate,
            warmup_secs: round(o.warmup.as_secs_f64(), 3),
            server_status: o.server_status,
            protocol: o.protocol().into(),
            tls: o.tls.is_some(),
            tls_verified: matches!(o.tls, Some(Trust::Roots(_))),
            streams: o.streams,
        }
    }
}

impl ConnectionsJson {
    fn of(report: &BenchReport) -> ConnectionsJson {
        let c = &report.connections;
        ConnectionsJson {
            requested: c.requested,
            opened: c.opened,
            connected: c.connected(),
            reconnects: c.opened - c.connected(),
            requests_per_connection: round(report.requests_per_connection(), 1),
            reopened_server_closed: c.reopened_server_closed,
            reopened_close: c.reopened_close,
            reopened_after_error: c.reopened_after_error,
            not_opened: NotOpenedJson {
                total: c.not_opened_total(),
                classes: c.not_opened,
                run_ended: c.not_opened_run_ended,
            },
        }
    }
}

fn series(series: &Series, rate: bool) -> Vec<SecondJson> {
    let second = |(i, s): (usize, &super::series::Second)| SecondJson {
        t: i as u64 + 1,
        requests: s.responses,
        errors: s.errors,
        p50_us: s.latency_us(0.5),
        p99_us: s.latency_us(0.99),
        max_us: s.latency.max(),
        late: rate.then_some(s.late),
    };
    series.seconds.iter().enumerate().map(second).collect()
}

fn samples(samples: &[Sample]) -> Vec<SampleJson> {
    let sample = |(i, s): (usize, &Sample)| SampleJson {
        t: round(s.t, 3),
        error: s.error.clone(),
        note: s.note.clone(),
        requests_per_sec: server_status::rate(i.checked_sub(1).and_then(|p| samples.get(p)), s),
        requests_total: s.requests_total,
        open: s.open,
        reading: s.reading,
        writing: s.writing,
        idle_keepalive: s.idle,
        queue_depth: s.queue_depth,
        p50_us: s.p50_us,
        p99_us: s.p99_us,
        p99_since_start_us: s.p99_since_start_us,
    };
    samples.iter().enumerate().map(sample).collect()
}

impl ReportJson {
    /// The report of a finished run made with `options`.
    pub(crate) fn of(r: &BenchReport, options: &BenchOptions) -> ReportJson {
        let failures = r.failures(options);
        ReportJson {
            url: options.url(),
            options: OptionsJson::of(options),
            // To the µs: --baseline divides totals by it.
            duration_secs: round(r.elapsed.as_secs_f64(), 6),
            requests: r.requests,
            succeeded: r.succeeded(),
            requests_per_sec: round(r.requests_per_sec(), 1),
            bytes_per_sec: round(r.bytes_per_sec(), 1),
            latency_us: LatencyJson::of(&r.latency),
            latency_uncorrected_us: r.uncorrected.as_ref().map(LatencyJson::of),
            rate: r.rate.map(|rate| RateJson {
                target: rate.target,
                achieved: round(r.requests_per_sec(), 1),
                sent: rate.sent,
                late: rate.late,
                late_pct: round(rate.late as f64 * 100.0 / rate.sent.max(1) as f64, 3),
            }),
            statuses: r.statuses.clone(),
            non_2xx: r.non_2xx(),
            errors: r.failed(),
            error_pct: round(r.error_pct(), 3),
            errors_by_class: ErrorsJson {
                total: r.errors.total(),
                classes: r.errors,
            },
            other_error: r.other_error.clone(),
            unanswered_at_end: r.unanswered_at_end,
            error_places: r.error_places(),
            connections_opened: r.connections.opened,
            connections: ConnectionsJson::of(r),
            fd_limit: r.fd_limit.map(|note| FdLimitJson {
                soft_before: note.soft_before,
                soft: note.now.soft,
                hard: note.now.hard,
                wanted: note.wanted,
            }),
            client_cpu: ClientCpuJson {
                threads: r.client_cpu.len(),
                busiest_thread_cores: round(r.busiest_client_thread(), 3),
                total_cores: round(r.client_cpu.iter().sum::<f64>(), 3),
                client_bound: r.client_bound_warning().is_some(),
            },
            series: series(&r.series, r.rate.is_some()),
            server_status: options.server_status.then(|| samples(&r.server)),
            checks: check::evaluate(&options.checks, &r.figures())
                .into_iter()
                .map(|o| CheckJson {
                    term: o.threshold.text,
                    ok: o.ok,
                    measured: o.value.is_finite().then_some(o.value),
                })
                .collect(),
            ok: failures.is_empty(),
            failures,
            baseline: None,
        }
    }
}
