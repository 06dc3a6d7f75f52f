//! Connection pressure: how many connections the server can hold, what it
//! does when they run out, and what it says about it.
//!
//! - At start, the soft open-file limit is raised to the hard one (nginx's
//!   `worker_rlimit_nofile`), and `limits.max_connections = 0` (the
//!   default) takes the slots that limit allows, less a headroom for files
//!   being sent and the cache ([`FdBudget`]). The figure is logged.
//! - When every slot is taken, the longest-idle keep-alive connection is
//!   closed to admit the newcomer (nginx reuses idle keep-alive connections
//!   the same way when `worker_connections` run short). Idle ones head their
//!   worker's idle set, so finding one is O(workers). A connection mid-request
//!   is never in that set, so never closed for this.
//! - Out of descriptors (`EMFILE`, `ENFILE`) does the same (closing an idle
//!   connection frees a descriptor), and both troubles are counted for
//!   `/status` and logged at most once per [`WARN_EVERY`], with the fix.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::runtime::sys::limits::{fd_limit, raise_fd_limit, FdLimit};
use crate::runtime::{race, sleep, Either};

use super::admission::Admission;
use super::conn::ConnectionSlot;
use super::per_client::PerClient;
use super::Line;

/// The least time between two warnings of one kind.
pub const WARN_EVERY: Duration = Duration::from_secs(10);

/// The open-file limit a server never raises past, when the hard limit is
/// "unlimited" (Linux refuses more than `fs.nr_open`, 1 Mi by default).
const FD_CEILING: u64 = 1 << 20;

/// How many connections the open-file limit allows, decided once at start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdBudget {
    /// The soft open-file limit before the raise.
    pub limit_before: u64,
    /// The soft open-file limit now in force.
    pub limit: u64,
    /// Descriptors kept for anything but client sockets: files being sent,
    /// the cache's watches, listeners, logs.
    pub headroom: u64,
    /// The connection slots: `limits.max_connections`, or from the limit.
    pub max_connections: usize,
    /// Whether `max_connections` came from the limit (the key was 0).
    pub automatic: bool,
}

impl FdBudget {
    /// Raises the soft open-file limit to the hard one and sizes the slots:
    /// `configured` (`limits.max_connections`), or for 0 the limit less its
    /// headroom (1/16 of it, at least 256), at least 1.
    pub fn plan(configured: usize) -> FdBudget {
        let before = fd_limit().unwrap_or(FdLimit {
            soft: 1024,
            hard: 1024,
        });
        let now = raise_fd_limit(before.hard.min(FD_CEILING)).unwrap_or(before);
        FdBudget::from_limit(before.soft, now.soft.min(FD_CEILING), configured)
    }

    /// The budget for a soft limit of `limit` (pure; `plan` reads the limit).
    /// The headroom is 1/16 of the limit, at least 256 (or a quarter of a
    /// limit under 1024).
    pub fn from_limit(limit_before: u64, limit: u64, configured: usize) -> FdBudget {
        let headroom = (limit / 16).max((limit / 4).min(256));
        let allowed = usize::try_from(limit.saturating_sub(headroom))
            .unwrap_or(usize::MAX)
            .max(1);
        FdBudget {
            limit_before,
            limit,
            headroom,
            max_connections: if configured == 0 { allowed } else { configured },
            automatic: configured == 0,
        }
    }

    /// The start-up note: the figures chosen and why.
    pub fn note(&self) -> String {
        let raised = match self.limit_before < self.limit {
            true => format!(", raised from {}", self.limit_before),
            false => String::new(),
        };
        let from = match self.automatic {
            true => format!("{} kept for files", self.headroom),
            false => "as configured".to_string(),
        };
        format!(
            "conveyor: limits.max_connections = {} (open-file limit {}{raised}; {from})",
            self.max_connections, self.limit
        )
    }

    /// A warning when a configured figure exceeds what the limit allows.
    pub fn warning(&self) -> Option<String> {
        let allowed = self.limit.saturating_sub(self.headroom);
        (!self.automatic && self.max_connections as u64 > allowed).then(|| {
            format!(
                "conveyor: warning: limits.max_connections = {} but the open-file limit {} \
                 leaves room for about {allowed}: accept will fail with EMFILE first \
                 (raise `ulimit -n`, or set limits.max_connections = 0 to follow it)",
                self.max_connections, self.limit
            )
        })
    }
}

/// A warning said at most once per [`WARN_EVERY`]; the times it was held
/// back are told with the next one.
#[derive(Default)]
pub(crate) struct Warning {
    last: Mutex<Option<Instant>>,
    held_back: AtomicU64,
}

impl Warning {
    /// Never said yet.
    pub(crate) const fn new() -> Warning {
        Warning {
            last: Mutex::new(None),
            held_back: AtomicU64::new(0),
        }
    }

    pub(crate) fn say(&self, message: impl FnOnce() -> String) {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if last.is_some_and(|at| at.elapsed() < WARN_EVERY) {
            self.held_back.fetch_add(1, Ordering::Relaxed);
            return;
        }
        *last = Some(Instant::now());
        let held = self.held_back.swap(0, Ordering::Relaxed);
        let more = match held {
            0 => String::new(),
            n => format!(" [{n} more since the last warning]"),
        };
        eprintln!("conveyor: warning: {}{more}", message());
    }
}

/// The line's pressure counters and overload state, for `/status`.
pub struct Pressure {
    /// What the open-file limit allowed at start.
    pub budget: FdBudget,
    /// The `codel` admission state, per worker.
    pub admission: Admission,
    /// `[limits.per_client]`: each client's requests and connections.
    pub per_client: Arc<PerClient>,
    evicted_idle: AtomicU64,
    slots_exhausted: AtomicU64,
    accept_emfile: AtomicU64,
    accept_enfile: AtomicU64,
    slots_warning: Warning,
    fd_warning: Warning,
}

/// The counters as `/status` shows them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PressureCounts {
    /// Idle keep-alive connections closed to admit a new one.
    pub evicted_idle: u64,
    /// New connections that found every slot taken.
    pub slots_exhausted: u64,
    /// `accept` failures for the process's descriptor limit.
    pub accept_emfile: u64,
    /// `accept` failures for the system's descriptor limit.
    pub accept_enfile: u64,
}

impl Pressure {
    /// Counters at zero, for `workers` workers.
    pub fn new(budget: FdBudget, workers: usize) -> Pressure {
        Pressure {
            budget,
            admission: Admission::new(workers),
            per_client: Arc::new(PerClient::default()),
            evicted_idle: AtomicU64::new(0),
            slots_exhausted: AtomicU64::new(0),
            accept_emfile: AtomicU64::new(0),
            accept_enfile: AtomicU64::new(0),
            slots_warning: Warning::default(),
            fd_warning: Warning::default(),
        }
    }

    /// The counters now.
    pub fn counts(&self) -> PressureCounts {
        PressureCounts {
            evicted_idle: self.evicted_idle.load(Ordering::Relaxed),
            slots_exhausted: self.slots_exhausted.load(Ordering::Relaxed),
            accept_emfile: self.accept_emfile.load(Ordering::Relaxed),
            accept_enfile: self.accept_enfile.load(Ordering::Relaxed),
        }
    }
}

/// Closes the longest-idle keep-alive connection of any worker; false if
/// none is idle. Its slot and descriptor are free when this returns. One
/// whose next request has arrived but not yet been reported by the reactor
/// is not closed: it goes on to its queue, and the next oldest is tried.
pub fn evict_idle(line: &Line) -> bool {
    const TRIES: usize = 4;
    for _ in 0..TRIES {
        let oldest = line
            .pending
            .iter()
            .filter_map(|q| q.oldest_idle().map(|deadline| (deadline, q)))
            .min_by_key(|(deadline, _)| *deadline);
        let Some((queue, conn)) = oldest.and_then(|(_, q)| Some((q, q.evict_oldest_idle()?)))
        else {
            return false;
        };
        // Non-blocking: WouldBlock means idle; 0 means the client closed.
        if conn.stream.has_unread() {
            queue.resume(conn);
            continue;
        }
        drop(conn);
        line.pressure.evicted_idle.fetch_add(1, Ordering::Relaxed);
        return true;
    }
    false
}

/// A slot for a new connection when none was free: closes the longest-idle
/// keep-alive connection to free one. None if no connection is idle (the
/// acceptor then waits or rejects, by `queue.overload`).
pub fn make_room(line: &Line) -> Option<ConnectionSlot> {
    let pressure = &line.pressure;
    pressure.slots_exhausted.fetch_add(1, Ordering::Relaxed);
    let slot = evict_idle(line).then(|| line.slots.try_take()).flatten();
    let max = pressure.budget.max_connections;
    pressure.slots_warning.say(|| match slot {
        Some(_) => format!(
            "all {max} connection slots are taken: closing the longest-idle keep-alive \
             connections to admit new ones (raise `ulimit -n` or limits.max_connections)"
        ),
        None => format!(
            "all {max} connection slots are taken, none by an idle keep-alive connection: \
             new connections wait (raise `ulimit -n` or limits.max_connections)"
        ),
    });
    slot
}

/// How often an acceptor waiting for a slot looks again for an idle
/// connection to close: connections busy when it first looked may have gone
/// idle since, without giving their slot back.
const RECHECK_EVERY: Duration = Duration::from_millis(20);

/// Waits for a slot when none was free and none idle: one given back, or
/// one an idle keep-alive connection frees. None once the server stops.
pub async fn wait_for_slot(line: &Line) -> Option<ConnectionSlot> {
    loop {
        let stopped = race(line.shutdown.wait(), sleep(RECHECK_EVERY));
        match race(line.slots.take(), stopped).await {
            Either::Left(slot) => return Some(slot),
            Either::Right(Either::Left(())) => return None,
            Either::Right(Either::Right(())) => {
                if evict_idle(line) {
                    if let Some(slot) = line.slots.try_take() {
                        return Some(slot);
                    }
                }
            }
        }
    }
}

/// Counts and reports a failed `accept`. True if the acceptor may retry at
/// once: it was out of descriptors and an idle connection gave one back.
pub fn accept_failed(line: &Line, e: &io::Error) -> bool {
    let pressure = &line.pressure;
    let (counter, which) = match e.raw_os_error() {
        Some(libc::EMFILE) => (&pressure.accept_emfile, "this process's"),
        Some(libc::ENFILE) => (&pressure.accept_enfile, "the system's"),
        _ => {
            pressure
                .fd_warning
                .say(|| format!("accept failed ({e}); retrying every 10 ms"));
            return false;
        }
    };
    counter.fetch_add(1, Ordering::Relaxed);
    let evicted = evict_idle(line);
    let limit = fd_limit().map_or(pressure.budget.limit, |l| l.soft);
    let max = pressure.budget.max_connections;
    pressure.fd_warning.say(|| {
        let action = match evicted {
            true => "closing the longest-idle keep-alive connections to accept new ones",
            false => "new connections wait in the kernel backlog until some close",
        };
        format!(
            "accept failed ({e}): out of file descriptors ({which} limit; ours is {limit}): \
             {action} (raise `ulimit -n` or lower limits.max_connections, now {max})"
        )
    });
    evicted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_automatic_budget_keeps_a_sixteenth_or_256_for_files() {
        let small = FdBudget::from_limit(1024, 1024, 0);
        assert_eq!((small.headroom, small.max_connections), (256, 768));
        let big = FdBudget::from_limit(1024, 20_000, 0);
        assert_eq!((big.headroom, big.max_connections), (1250, 18_750));
        let note = big.note();
        assert!(
            note.contains("= 18750") && note.contains("raised from 1024"),
            "{note}"
        );
        assert_eq!(big.warning(), None);
        // Small limits keep a quarter; the tiniest still leave one slot.
        assert_eq!(FdBudget::from_limit(64, 64, 0).max_connections, 48);
        assert_eq!(FdBudget::from_limit(1, 1, 0).max_connections, 1);
    }

    #[test]
    fn a_configured_figure_is_kept_and_warned_about_only_past_the_limit() {
        let fits = FdBudget::from_limit(20_000, 20_000, 10_000);
        assert_eq!((fits.max_connections, fits.warning()), (10_000, None));
        let over = FdBudget::from_limit(1024, 1024, 10_000);
        assert_eq!(over.max_connections, 10_000);
        assert!(over.warning().is_some_and(|m| m.contains("ulimit -n")));
    }
}
