//! One worker's counts: latency, statuses, errors and the per-second
//! series, recorded from the measured start and merged at the end.

use std::collections::BTreeMap;
use std::io;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::counts::{ConnectionCounts, ErrorCounts, Failure};
use super::rate::LATE_AFTER;
use super::response::Response;
use super::run::Shared;
use super::series::Series;

/// Microseconds in `d`, saturating.
pub(crate) fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

pub(crate) fn new_histogram() -> Histogram<u64> {
    // 1 µs .. 100 s at 3 significant figures; the bounds are constants.
    Histogram::new_with_bounds(1, 100_000_000, 3).expect("valid histogram bounds")
}

/// One worker's counts, merged into the report at the end. Results
/// (latency, statuses, errors, series) count from the measured start only;
/// connections are counted over the whole run, warm-up included.
#[derive(Clone)]
pub(crate) struct Tally {
    /// From the scheduled send with `--rate`, else from the actual send.
    pub(crate) latency: Histogram<u64>,
    /// With `--rate`: from the actual send.
    pub(crate) uncorrected: Option<Histogram<u64>>,
    pub(crate) statuses: BTreeMap<u16, u64>,
    pub(crate) bytes: u64,
    pub(crate) errors: ErrorCounts,
    /// Those of `errors` that happened while connecting.
    pub(crate) connect_errors: ErrorCounts,
    pub(crate) other_error: Option<String>,
    pub(crate) unanswered: u64,
    pub(crate) connections: ConnectionCounts,
    /// Requests sent on the timetable (`--rate`), and those sent late.
    pub(crate) sent: u64,
    pub(crate) late: u64,
    pub(crate) series: Series,
    /// CPU time of each worker thread over the run.
    pub(crate) cpu: Vec<Duration>,
}

impl Tally {
    pub(crate) fn new(rate: bool) -> Tally {
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
    pub(crate) fn second(shared: &Shared, at: Instant) -> Option<usize> {
        let since = at.checked_duration_since(shared.measure_from)?;
        Some(since.as_secs() as usize)
    }

    /// A request went out at `sent_at`, due at `due` (`--rate`).
    pub(crate) fn sent(&mut self, shared: &Shared, sent_at: Instant, due: Instant) {
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
    pub(crate) fn record(
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

    pub(crate) fn merge(&mut self, other: &Tally) {
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
    pub(crate) fn fail(&mut self, shared: &Shared, failure: Failure, n: u64, error: &io::Error) {
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
