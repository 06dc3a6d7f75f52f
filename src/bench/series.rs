//! The per-second time series (oha's, k6's): each worker counts responses,
//! errors, late sends and latency by second of the measured run; once a
//! second each worker publishes the second just ended for the live line,
//! and at the end the workers' series are merged for `--json`.

use std::fmt::Write as _;
use std::sync::Mutex;

use hdrhistogram::Histogram;

/// One second of the run.
#[derive(Clone, Debug)]
pub(crate) struct Second {
    /// Complete responses, any status.
    pub(crate) responses: u64,
    /// Failed requests: error classes and non-2xx responses.
    pub(crate) errors: u64,
    /// Sends that went out late (`--rate`).
    pub(crate) late: u64,
    /// Latency in µs (with `--rate`, from the scheduled send), at two
    /// significant figures: enough for a per-second p99. It grows with the
    /// largest value recorded: a few KiB for a second whose latencies stay
    /// in milliseconds.
    pub(crate) latency: Histogram<u32>,
}

impl Default for Second {
    fn default() -> Second {
        Second {
            responses: 0,
            errors: 0,
            late: 0,
            // Two significant figures, auto-resizing: a valid constant.
            latency: Histogram::new(2).expect("valid histogram precision"),
        }
    }
}

impl Second {
    /// Adds another worker's counts for the same second.
    pub(crate) fn merge(&mut self, other: &Second) {
        self.responses += other.responses;
        self.errors += other.errors;
        self.late += other.late;
        let _ = self.latency.add(&other.latency);
    }

    /// The latency at quantile `q` in µs (0 with no responses).
    pub(crate) fn latency_us(&self, q: f64) -> u64 {
        self.latency.value_at_quantile(q)
    }
}

/// Seconds indexed from the start of the measured run.
#[derive(Clone, Debug, Default)]
pub(crate) struct Series {
    /// Second `i` covers `[i, i + 1)` seconds after the measured start.
    pub(crate) seconds: Vec<Second>,
}

impl Series {
    /// The counts of second `index`, created (with the ones before) on use.
    pub(crate) fn at(&mut self, index: usize) -> &mut Second {
        if self.seconds.len() <= index {
            self.seconds.resize_with(index + 1, Second::default);
        }
        &mut self.seconds[index]
    }

    /// Adds another worker's series.
    pub(crate) fn merge(&mut self, other: &Series) {
        for (i, second) in other.seconds.iter().enumerate() {
            self.at(i).merge(second);
        }
    }
}

/// The seconds the workers have published so far, for the live line.
#[derive(Default)]
pub(crate) struct LiveSeconds {
    seconds: Mutex<Series>,
}

impl LiveSeconds {
    /// Adds a worker's counts for second `index`.
    pub(crate) fn publish(&self, index: usize, second: &Second) {
        if let Ok(mut series) = self.seconds.lock() {
            series.at(index).merge(second);
        }
    }

    /// The merged counts of second `index`, if any worker published it.
    pub(crate) fn get(&self, index: usize) -> Option<Second> {
        self.seconds.lock().ok()?.seconds.get(index).cloned()
    }
}

/// The live line for one second: `  3 s  51234 req/s  p99 1.2 ms  errors 0`.
pub(crate) fn line(index: usize, second: &Second, rate: bool) -> String {
    let mut out = format!(
        "  {:>3} s  {:>7} req/s  p99 {:>9}  errors {}",
        index + 1,
        second.responses,
        human_us(second.latency_us(0.99)),
        second.errors
    );
    if rate {
        let _ = write!(out, "  late {}", second.late);
    }
    out
}

/// A latency in µs for people: `850 µs`, `1.25 ms`, `2.50 s`.
pub(crate) fn human_us(us: u64) -> String {
    if us < 1000 {
        format!("{us} µs")
    } else if us < 1_000_000 {
        format!("{:.2} ms", us as f64 / 1e3)
    } else {
        format!("{:.2} s", us as f64 / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_merge_by_second() {
        let mut a = Series::default();
        a.at(0).responses = 3;
        let _ = a.at(0).latency.record(100);
        let mut b = Series::default();
        b.at(2).responses = 5;
        b.at(2).errors = 1;
        // Two significant figures: 2000 µs reads back as its bucket's top.
        let _ = b.at(2).latency.record(2000);
        a.merge(&b);
        assert_eq!(a.seconds.len(), 3);
        let figures = |s: &Second| (s.responses, s.errors, s.latency_us(0.5), s.latency.max());
        assert_eq!(
            a.seconds.iter().map(figures).collect::<Vec<_>>(),
            vec![(3, 0, 100, 100), (0, 0, 0, 0), (5, 1, 2007, 2007)]
        );
        assert_eq!(
            line(2, &a.seconds[2], true),
            "    3 s        5 req/s  p99   2.01 ms  errors 1  late 0"
        );
    }
}
