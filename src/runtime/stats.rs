//! Counters and gauges, the runtime's and the server's: written by their
//! worker without locked instructions, readable from any thread (for
//! `/status`).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// A relaxed count of events, only ever added to. `bump`/`add_local` are for
/// the one thread that owns it (a plain load and store, no `lock` prefix);
/// `add` is for any thread.
#[derive(Default, Debug)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one; owning thread only.
    #[inline]
    pub fn bump(&self) {
        self.add_local(1);
    }

    /// Adds `n` with a plain load and store; owning thread only, or counts
    /// are lost.
    #[inline]
    pub fn add_local(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    /// Adds `n` atomically; safe from any thread.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The count now (wraps at `u64::MAX`).
    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A relaxed level that goes up and down (connections open, green threads
/// alive), written only by the thread that owns it, with a plain load and
/// store. A thing counted on one worker and uncounted on another leaves
/// each worker's gauge off by one, in opposite directions: only the sum over
/// workers means anything then, which is why the value is signed.
#[derive(Default, Debug)]
pub struct Gauge(AtomicI64);

impl Gauge {
    /// Raises the level by one; owning thread only.
    #[inline]
    pub fn inc(&self) {
        self.add_local(1);
    }

    /// Lowers the level by one; owning thread only.
    #[inline]
    pub fn dec(&self) {
        self.add_local(-1);
    }

    #[inline]
    fn add_local(&self, n: i64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    /// Replaces the level with `n`.
    #[inline]
    pub fn set(&self, n: i64) {
        self.0.store(n, Ordering::Relaxed);
    }

    /// The level now; may be negative on one worker (see above).
    #[inline]
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Per-worker scheduler counters.
#[derive(Default, Debug)]
pub(crate) struct WorkerStats {
    /// Green threads started on the worker, locally or injected.
    pub(crate) spawned: Counter,
    /// Green threads that ran to completion.
    pub(crate) completed: Counter,
    /// Green threads that panicked, plus panics reported by `count_panic`.
    pub(crate) panicked: Counter,
    /// Green threads currently alive on the worker.
    pub(crate) alive: Gauge,
    /// Times a green thread was polled.
    pub(crate) polls: Counter,
    /// Polls that ended `Pending`.
    pub(crate) parks: Counter,
    /// Wakes made on the worker itself, straight onto its ready queue.
    pub(crate) wakes_local: Counter,
    /// Wakes that arrived from another thread through the injection queue.
    pub(crate) wakes_remote: Counter,
    /// Readiness events the worker's reactor returned.
    pub(crate) io_events: Counter,
    /// Timers (sleeps, timeouts) that fired on the worker.
    pub(crate) timer_fires: Counter,
}

/// A copy of one worker's counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkerSnapshot {
    /// The worker's index, from 0.
    pub worker: usize,
    /// Green threads started, locally or injected.
    pub spawned: u64,
    /// Green threads that ran to completion.
    pub completed: u64,
    /// Green threads that panicked, plus panics counted by `count_panic`.
    pub panicked: u64,
    /// Green threads alive at the moment of the copy.
    pub alive: u64,
    /// Times a green thread was polled.
    pub polls: u64,
    /// Polls that ended `Pending`.
    pub parks: u64,
    /// Wakes made on the worker itself.
    pub wakes_local: u64,
    /// Wakes that arrived from another thread through the injection queue.
    pub wakes_remote: u64,
    /// Readiness events from the worker's reactor.
    pub io_events: u64,
    /// Timers that fired.
    pub timer_fires: u64,
    /// Spawns and wakes sent to the worker but not yet taken in.
    pub injected_pending: u64,
}

impl WorkerStats {
    pub(crate) fn snapshot(&self, worker: usize, injected_pending: usize) -> WorkerSnapshot {
        WorkerSnapshot {
            worker,
            spawned: self.spawned.get(),
            completed: self.completed.get(),
            panicked: self.panicked.get(),
            alive: u64::try_from(self.alive.get()).unwrap_or(0),
            polls: self.polls.get(),
            parks: self.parks.get(),
            wakes_local: self.wakes_local.get(),
            wakes_remote: self.wakes_remote.get(),
            io_events: self.io_events.get(),
            timer_fires: self.timer_fires.get(),
            injected_pending: injected_pending as u64,
        }
    }
}

/// CPU time consumed by the calling thread so far.
pub fn thread_cpu_time() -> std::time::Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, exclusively borrowed timespec for the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return std::time::Duration::ZERO;
    }
    std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}
