//! Adaptive admission on the pending queue (`queue.overload = "codel"`).
//!
//! Each time a handler takes a connection, the time it waited since it was
//! queued (accepted, recycled, or became readable) is measured. As CoDel
//! does for a packet queue, a wait above `queue.codel_target` is tolerated
//! for `queue.codel_interval`: a burst the worker drains soon is served. If
//! it stays above the target that long, the worker sheds — each new
//! connection it takes while the wait is still above the target is answered
//! `503` with `Retry-After` and closed, which costs far less than serving
//! it, so the backlog drains — until a connection is taken with a wait below
//! the target. As in CoDel (RFC 8289), a worker that shed recently (within
//! 16 intervals) sheds again as soon as the wait is back above the target,
//! without tolerating another interval: the overload has not gone away.
//! Connections that already had a request served (keep-alive)
//! are never shed: their clients were admitted. This is CoDel's detection
//! with a SEDA stage controller's response (refuse new work), per worker.
//!
//! Under `wait` and `reject` the wait is measured the same (for `/status`)
//! and nothing is shed for it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::config::{Config, Overload};

/// One worker's queue wait and shedding state. Written only by that
/// worker's handlers; read by `/status`.
#[derive(Default)]
struct WorkerAdmission {
    /// The last wait measured, µs.
    wait_us: AtomicU64,
    /// A moving average of the wait (weight 1/8 to each new one), µs.
    wait_avg_us: AtomicU64,
    /// When the wait went above the target and stayed there, µs after
    /// `Admission::epoch` plus one (0: it is not above).
    above_since: AtomicU64,
    shedding: AtomicBool,
    /// When it last shed, µs after `Admission::epoch` plus one (0: never).
    last_shed: AtomicU64,
    shed: AtomicU64,
}

/// How long after shedding a worker sheds again without waiting an
/// interval, in intervals (CoDel's "recently dropping" window).
const RECENT_INTERVALS: u64 = 16;

/// The per-worker admission state of a line.
pub struct Admission {
    workers: Box<[WorkerAdmission]>,
    epoch: Instant,
}

/// A worker's admission figures, for `/status`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AdmissionSnapshot {
    /// The last queue wait measured, µs.
    pub wait_us: u64,
    /// Its moving average, µs.
    pub wait_avg_us: u64,
    /// Whether the worker is shedding new connections now.
    pub shedding: bool,
    /// New connections answered 503 because the wait stayed high.
    pub shed: u64,
}

/// What to do with a connection a handler has just taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Serve it.
    Admit,
    /// Answer 503 with `Retry-After` and close.
    Shed,
}

impl Admission {
    /// Nothing measured yet, for `workers` workers.
    pub fn new(workers: usize) -> Admission {
        Admission {
            workers: (0..workers.max(1))
                .map(|_| WorkerAdmission::default())
                .collect(),
            epoch: Instant::now(),
        }
    }

    /// Records that `worker` took a connection queued at `queued`, now;
    /// `fresh` if no request has been served on it. Says whether to shed it.
    /// Inlined: asked every turn; a call of its own cost ~60 instructions
    /// more (callgrind).
    #[inline(always)]
    pub fn on_take(
        &self,
        worker: usize,
        queued: Instant,
        now: Instant,
        fresh: bool,
        config: &Config,
    ) -> Verdict {
        let slot = crate::runtime::wrap_index(worker, self.workers.len());
        let Some(w) = self.workers.get(slot) else {
            return Verdict::Admit;
        };
        let wait = now.saturating_duration_since(queued);
        let wait_us = micros(wait);
        w.wait_us.store(wait_us, Ordering::Relaxed);
        let avg = w.wait_avg_us.load(Ordering::Relaxed);
        let avg = avg - avg / 8 + wait_us / 8;
        w.wait_avg_us.store(avg, Ordering::Relaxed);
        let queue = &config.queue;
        if wait < queue.codel_target {
            w.above_since.store(0, Ordering::Relaxed);
            w.shedding.store(false, Ordering::Relaxed);
            return Verdict::Admit;
        }
        let now_us = micros(now.saturating_duration_since(self.epoch)) + 1;
        let since = match w.above_since.load(Ordering::Relaxed) {
            0 => {
                w.above_since.store(now_us, Ordering::Relaxed);
                now_us
            }
            since => since,
        };
        let interval = micros(queue.codel_interval);
        let last_shed = w.last_shed.load(Ordering::Relaxed);
        let recently = last_shed != 0 && now_us - last_shed < interval * RECENT_INTERVALS;
        if !recently && now_us - since < interval {
            return Verdict::Admit;
        }
        w.shedding.store(true, Ordering::Relaxed);
        w.last_shed.store(now_us, Ordering::Relaxed);
        if !fresh || queue.overload != Overload::Codel {
            return Verdict::Admit;
        }
        w.shed.fetch_add(1, Ordering::Relaxed);
        Verdict::Shed
    }

    /// Each worker's figures now, in worker order.
    pub fn snapshot(&self, config: &Config) -> Vec<AdmissionSnapshot> {
        let codel = config.queue.overload == Overload::Codel;
        self.workers
            .iter()
            .map(|w| AdmissionSnapshot {
                wait_us: w.wait_us.load(Ordering::Relaxed),
                wait_avg_us: w.wait_avg_us.load(Ordering::Relaxed),
                shedding: codel && w.shedding.load(Ordering::Relaxed),
                shed: w.shed.load(Ordering::Relaxed),
            })
            .collect()
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codel() -> Config {
        let mut config = Config::default();
        config.queue.overload = Overload::Codel;
        config.queue.codel_target = Duration::from_millis(5);
        config.queue.codel_interval = Duration::from_millis(100);
        config
    }

    #[test]
    fn sheds_new_work_only_once_the_wait_stays_above_target_for_an_interval() {
        let config = codel();
        let a = Admission::new(1);
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let long = Duration::from_millis(20);
        // Above target, but not yet for an interval: admitted.
        assert_eq!(
            a.on_take(0, at(0), at(0) + long, true, &config),
            Verdict::Admit
        );
        assert_eq!(
            a.on_take(0, at(50), at(50) + long, true, &config),
            Verdict::Admit
        );
        // Still above an interval later: shed, but never a kept-alive one.
        assert_eq!(
            a.on_take(0, at(101), at(101) + long, true, &config),
            Verdict::Shed
        );
        assert_eq!(
            a.on_take(0, at(102), at(102) + long, false, &config),
            Verdict::Admit
        );
        assert!(a.snapshot(&config)[0].shedding);
        // One wait below target ends it.
        let short = Duration::from_millis(1);
        let take = |ms: u64, wait: Duration, fresh: bool| {
            a.on_take(0, at(ms), at(ms) + wait, fresh, &config)
        };
        assert_eq!(take(130, short, true), Verdict::Admit);
        let s = a.snapshot(&config)[0];
        assert_eq!((s.shed, s.shedding, s.wait_us), (1, false, 1_000));
        // Above target again soon after shedding: shed at once.
        assert_eq!(take(131, long, true), Verdict::Shed);
        assert_eq!(take(132, short, true), Verdict::Admit);
        // Long after (16 intervals), an interval is tolerated again.
        let later = 131 + 16 * 100 + 1;
        assert_eq!(take(later, long, true), Verdict::Admit);
        assert_eq!(take(later + 50, long, true), Verdict::Admit);
        assert_eq!(take(later + 101, long, true), Verdict::Shed);
        assert_eq!(a.snapshot(&config)[0].shed, 3);
    }

    #[test]
    fn wait_measures_but_never_sheds() {
        let config = Config::default();
        assert_eq!(config.queue.overload, Overload::Wait);
        let a = Admission::new(2);
        let t0 = Instant::now();
        for ms in 0..50 {
            let queued = t0 + Duration::from_millis(ms * 10);
            let verdict = a.on_take(1, queued, queued + Duration::from_secs(1), true, &config);
            assert_eq!(verdict, Verdict::Admit);
        }
        let s = a.snapshot(&config);
        assert_eq!(
            (s[1].wait_us, s[1].shed, s[1].shedding),
            (1_000_000, 0, false)
        );
        assert_eq!(s[0].wait_us, 0);
    }
}
