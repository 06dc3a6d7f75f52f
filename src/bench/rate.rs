//! `--rate R`: the open-loop schedule (wrk2's constant throughput). Each
//! connection sends on its own fixed timetable; a request's latency is
//! measured from when the timetable said to send it, so a server stall
//! that holds the connection is charged to every request that should have
//! gone out meanwhile (coordinated-omission correction).

use std::time::{Duration, Instant};

/// The runtime's timers wake on whole milliseconds (rounded up); the
/// timetable asks to be woken this much before a send is due.
pub(crate) const TIMER_RESOLUTION: Duration = Duration::from_millis(1);

/// A send more than this past its scheduled time counts as late. The
/// timetable is kept with the runtime's timers, which wake on whole
/// milliseconds, so a send can be up to ~1 ms off its time.
pub(crate) const LATE_AFTER: Duration = Duration::from_millis(2);

/// One connection's timetable: sends at `first + k × interval`.
#[derive(Clone, Debug)]
pub(crate) struct Pacer {
    first: Instant,
    interval_secs: f64,
    sent: u64,
}

impl Pacer {
    /// The timetable of connection `index` of `connections`, together
    /// sending `rate` requests per second from `start`: each connection
    /// sends every `connections / rate` seconds, the connections staggered
    /// `1 / rate` apart so the sends spread evenly.
    pub(crate) fn new(start: Instant, rate: f64, connections: usize, index: usize) -> Pacer {
        Pacer {
            first: after(start, index as f64 / rate),
            interval_secs: connections as f64 / rate,
            sent: 0,
        }
    }

    /// When the next request is due; advances the timetable.
    pub(crate) fn next_send(&mut self) -> Instant {
        let at = after(self.first, self.sent as f64 * self.interval_secs);
        self.sent += 1;
        at
    }
}

/// `secs` after `base`; a time too far to represent (a tiny `--rate`)
/// becomes a century, which no run reaches.
fn after(base: Instant, secs: f64) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    let far = base.checked_add(CENTURY).unwrap_or(base);
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| *d < CENTURY)
        .and_then(|d| base.checked_add(d))
        .unwrap_or(far)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_share_the_rate_evenly() {
        let start = Instant::now();
        // 1000 req/s over 4 connections: each every 4 ms, staggered by 1 ms.
        let mut all: Vec<Duration> = (0..4)
            .flat_map(|i| {
                let mut p = Pacer::new(start, 1000.0, 4, i);
                (0..250).map(move |_| p.next_send() - start)
            })
            .collect();
        all.sort();
        assert_eq!(all.len(), 1000);
        // A rate too small to schedule is never due, and does not panic.
        let mut slow = Pacer::new(start, 1e-300, 4, 3);
        assert!(slow.next_send() > start + Duration::from_secs(1 << 30));
        for (k, at) in all.iter().enumerate() {
            let want = Duration::from_millis(k as u64);
            let diff = at.as_secs_f64() - want.as_secs_f64();
            assert!(diff.abs() < 1e-6, "send {k} at {at:?}");
        }
    }
}
