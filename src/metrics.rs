//! Server counters and gauges, one set per worker so the hot path writes
//! only its own cache lines (no shared atomics); `/status` sums them.
//!
//! Every gauge is held by a guard that gives it back on drop, however the
//! work ends (a panic included): `open` by the connection's `ConnectionSlot`,
//! `reading` and `writing` by `service::{Reading, Writing}`. The idle
//! count is not kept here: it is the length of the idle sets.

use std::time::Duration;

use crate::runtime::current_worker;
use crate::runtime::stats::{Counter, Gauge};

/// Latency histogram: 4 sub-buckets per power of two of microseconds, so a
/// percentile is known to within 25 %.
const SUB_BUCKETS: usize = 4;
const BUCKETS: usize = 40 * SUB_BUCKETS;

/// The `le` bounds (µs) of the request-duration histogram `/status`
/// exports to Prometheus: the 21 powers of two from 16 µs to 16.8 s. Each
/// is an edge of the buckets above, so each count is exact, not spread
/// over a bucket it cuts; and a fixed set, so replicas' buckets add up.
pub(crate) const EXPORTED_BOUNDS_US: [u64; 21] = {
    let mut bounds = [0; 21];
    let mut i = 0;
    while i < bounds.len() {
        bounds[i] = 16 << i;
        i += 1;
    }
    bounds
};

#[derive(Default)]
#[repr(align(128))]
pub struct WorkerMetrics {
    pub accepted: Counter,
    pub rejected: Counter,
    /// Incremented and decremented by whichever worker sees the change, so
    /// one worker's value may go below zero; only the sum means anything.
    pub open: Gauge,
    pub reading: Gauge,
    pub writing: Gauge,
    pub recycled: Counter,
    pub requests: Counter,
    pub status_classes: [Counter; 5],
    pub bytes_in: Counter,
    pub bytes_out: Counter,
    /// `/echo` bodies refused (malformed, or over the limit) after their
    /// 200 went out: each response was cut short (no last chunk) and its
    /// connection closed.
    pub echo_cut_short: Counter,
    latency: Vec<Counter>,
    /// Every response's latency added up, ns: the histogram's `_sum`.
    latency_sum_ns: Counter,
}

pub(crate) struct Metrics {
    workers: Vec<WorkerMetrics>,
    /// Live `/status` streams open now, across workers: taken and given
    /// back once per subscriber (never per request), against
    /// `status.max_subscribers`.
    pub(crate) subscribers: std::sync::atomic::AtomicUsize,
}

/// Sums over all workers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub accepted: u64,
    pub rejected: u64,
    pub open: i64,
    pub reading: i64,
    pub writing: i64,
    pub idle: i64,
    pub recycled: u64,
    pub requests: u64,
    pub status_classes: [u64; 5],
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// `/echo` responses cut short by a body refused after the 200.
    pub echo_cut_short: u64,
    /// p50, p90, p99 request latency in microseconds.
    pub latency_us: [u64; 3],
    /// The same latencies as a histogram with fixed bounds.
    pub latency: LatencyHistogram,
}

/// Request latency over `EXPORTED_BOUNDS_US`: what Prometheus needs to
/// add histograms up across replicas and compute quantiles from the sum.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LatencyHistogram {
    /// For each bound, the responses that took less (cumulative).
    /// Prometheus's `le` reads "at most": the two differ only for a
    /// latency of exactly a bound, to the nanosecond.
    pub below: [u64; EXPORTED_BOUNDS_US.len()],
    /// All responses.
    pub count: u64,
    /// Their latencies added up, ns.
    pub sum_ns: u64,
}

impl LatencyHistogram {
    fn new(buckets: &[u64], sum_ns: u64) -> LatencyHistogram {
        LatencyHistogram {
            below: EXPORTED_BOUNDS_US.map(|bound| buckets[..bucket(bound)].iter().sum()),
            count: buckets.iter().sum(),
            sum_ns,
        }
    }
}

impl Metrics {
    pub(crate) fn new(workers: usize) -> Metrics {
        Metrics {
            workers: (0..workers.max(1))
                .map(|_| WorkerMetrics {
                    latency: (0..BUCKETS).map(|_| Counter::default()).collect(),
                    ..WorkerMetrics::default()
                })
                .collect(),
            subscribers: Default::default(),
        }
    }

    /// The latency histogram summed over workers: one count per bucket,
    /// for percentiles over an interval (two copies subtracted).
    pub(crate) fn latency_histogram(&self) -> Vec<u64> {
        let mut latency = vec![0u64; BUCKETS];
        for w in &self.workers {
            for (sum, c) in latency.iter_mut().zip(&w.latency) {
                *sum += c.get();
            }
        }
        latency
    }

    /// The calling worker's counters (worker 0's off the runtime).
    /// Inlined: asked several times per request.
    #[inline(always)]
    pub(crate) fn here(&self) -> &WorkerMetrics {
        self.worker(current_worker().unwrap_or(0))
    }

    /// One worker's counters (modulo the worker count).
    pub(crate) fn worker(&self, index: usize) -> &WorkerMetrics {
        &self.workers[crate::runtime::wrap_index(index, self.workers.len())]
    }

    pub(crate) fn totals(&self) -> Totals {
        let mut t = Totals::default();
        let mut latency_sum_ns = 0u64;
        for w in &self.workers {
            t.accepted += w.accepted.get();
            t.rejected += w.rejected.get();
            t.open = t.open.wrapping_add(w.open.get());
            t.reading = t.reading.wrapping_add(w.reading.get());
            t.writing = t.writing.wrapping_add(w.writing.get());
            t.recycled += w.recycled.get();
            t.requests += w.requests.get();
            for (sum, c) in t.status_classes.iter_mut().zip(&w.status_classes) {
                *sum += c.get();
            }
            t.bytes_in += w.bytes_in.get();
            t.bytes_out += w.bytes_out.get();
            t.echo_cut_short += w.echo_cut_short.get();
            latency_sum_ns = latency_sum_ns.wrapping_add(w.latency_sum_ns.get());
        }
        let buckets = self.latency_histogram();
        t.latency_us = percentiles(&buckets);
        t.latency = LatencyHistogram::new(&buckets, latency_sum_ns);
        t
    }
}

impl WorkerMetrics {
    pub fn record_response(&self, status: u16, latency: Duration) {
        self.requests.bump();
        if let Some(class) = (status as usize / 100).checked_sub(1) {
            if let Some(counter) = self.status_classes.get(class) {
                counter.bump();
            }
        }
        self.latency[bucket(latency.as_micros() as u64)].bump();
        self.latency_sum_ns
            .add_local(u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Raises a gauge of this worker's; for the guards that hold one.
    pub fn inc(gauge: &Gauge) {
        gauge.inc();
    }

    /// Lowers a gauge of this worker's; from the guards' `Drop`.
    pub fn dec(gauge: &Gauge) {
        gauge.dec();
    }
}

fn bucket(us: u64) -> usize {
    if us < SUB_BUCKETS as u64 {
        return us as usize;
    }
    let power = 63 - us.leading_zeros() as usize; // >= 2
    let sub = ((us >> (power - 2)) & 0b11) as usize;
    ((power - 1) * SUB_BUCKETS + sub).min(BUCKETS - 1)
}

/// The lower bound (µs) of the bucket a value falls in.
fn bucket_floor(index: usize) -> u64 {
    if index < SUB_BUCKETS {
        return index as u64;
    }
    let power = index / SUB_BUCKETS + 1;
    let sub = (index % SUB_BUCKETS) as u64;
    (1u64 << power) + (sub << (power - 2))
}

/// p50, p90 and p99 (µs) of a latency histogram; 0 when it is empty.
pub(crate) fn percentiles(buckets: &[u64]) -> [u64; 3] {
    [0.5, 0.9, 0.99].map(|q| percentile(buckets, q))
}

fn percentile(buckets: &[u64], q: f64) -> u64 {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return 0;
    }
    let rank = ((total as f64) * q).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (index, count) in buckets.iter().enumerate() {
        seen += count;
        if seen >= rank {
            return bucket_floor(index);
        }
    }
    bucket_floor(buckets.len() - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_round_down_within_a_quarter() {
        for us in [0u64, 1, 3, 4, 5, 7, 8, 100, 1000, 12345, 1 << 30] {
            let floor = bucket_floor(bucket(us));
            assert!(floor <= us, "{us}: floor {floor}");
            assert!(us - floor <= us / 4 + 1, "{us}: floor {floor}");
        }
    }

    #[test]
    fn percentiles_pick_the_right_bucket() {
        let m = Metrics::new(1);
        for us in 1..=100u64 {
            m.here()
                .record_response(200, Duration::from_micros(us * 10));
        }
        let t = m.totals();
        assert_eq!(t.requests, 100);
        assert_eq!(t.status_classes[1], 100);
        let [p50, p90, p99] = t.latency_us;
        assert!((384..=500).contains(&p50), "p50 {p50}");
        assert!((768..=900).contains(&p90), "p90 {p90}");
        assert!((768..=990).contains(&p99), "p99 {p99}");
    }

    #[test]
    fn the_exported_bounds_are_bucket_edges() {
        for bound in EXPORTED_BOUNDS_US {
            assert_eq!(bucket_floor(bucket(bound)), bound);
        }
        assert_eq!(EXPORTED_BOUNDS_US[0], 16);
        assert_eq!(EXPORTED_BOUNDS_US[20], 16_777_216);
    }

    #[test]
    fn the_exported_histogram_counts_below_each_bound() {
        let m = Metrics::new(2);
        // 15 µs, 16 µs, 100 µs, 1 ms, 20 s: one under the first bound, one
        // on it (counted from the next), one past the last.
        for us in [15, 16, 100, 1000, 20_000_000] {
            m.worker(us as usize % 2)
                .record_response(200, Duration::from_micros(us));
        }
        let h = m.totals().latency;
        assert_eq!(h.count, 5);
        assert_eq!(h.sum_ns, 20_001_131_000);
        let at = |bound: u64| {
            let i = EXPORTED_BOUNDS_US.iter().position(|b| *b == bound);
            h.below[i.expect("a bound")]
        };
        assert_eq!(at(16), 1);
        assert_eq!(at(32), 2);
        assert_eq!(at(64), 2);
        assert_eq!(at(128), 3);
        assert_eq!(at(1024), 4);
        assert_eq!(at(16_777_216), 4);
        assert!(h.below.windows(2).all(|w| w[0] <= w[1]), "cumulative");
    }
}
