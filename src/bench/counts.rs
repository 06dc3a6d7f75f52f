//! What went wrong and what happened to the connections: failures by
//! class, connections opened, reopened and never opened, the fd limit.

use std::fmt::Write as _;
use std::io;

use conveyor::runtime::sys::limits::FdLimit;
use serde::{Deserialize, Serialize};

#[cfg(doc)]
use super::report::BenchReport;

/// Why a request failed, or a connection could not be opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    Refused,
    FdLimit,
    Reset,
    Timeout,
    BadResponse,
    Other,
}

impl Failure {
    pub(crate) fn of(e: &io::Error) -> Failure {
        match e.raw_os_error() {
            Some(libc::ECONNREFUSED) => return Failure::Refused,
            Some(libc::EMFILE | libc::ENFILE) => return Failure::FdLimit,
            Some(libc::ECONNRESET | libc::EPIPE | libc::ECONNABORTED) => return Failure::Reset,
            Some(libc::ETIMEDOUT) => return Failure::Timeout,
            _ => {}
        }
        match e.kind() {
            io::ErrorKind::ConnectionRefused => Failure::Refused,
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof => Failure::Reset,
            io::ErrorKind::TimedOut => Failure::Timeout,
            io::ErrorKind::InvalidData => Failure::BadResponse,
            _ => Failure::Other,
        }
    }
}

/// Counts by failure class: failed requests in [`BenchReport::errors`],
/// connections never opened in [`ConnectionCounts::not_opened`]. The field
/// names are the JSON keys of the classes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ErrorCounts {
    /// `ECONNREFUSED`: nothing listens at the address.
    pub(crate) refused: u64,
    /// `EMFILE`/`ENFILE`: the open-file limit stopped a new socket.
    pub(crate) fd_limit: u64,
    /// The connection was reset, or closed before a response was complete.
    pub(crate) reset: u64,
    /// No answer (or no connection) within the timeout.
    pub(crate) timeout: u64,
    /// A response that could not be parsed or was badly framed.
    pub(crate) bad_response: u64,
    /// Any other I/O error (see [`BenchReport::other_error`]).
    pub(crate) other: u64,
}

impl ErrorCounts {
    /// All classes together.
    pub(crate) fn total(&self) -> u64 {
        self.classes().iter().map(|(_, n)| n).sum()
    }

    /// `(label, count)` for every class, in a fixed order.
    pub(crate) fn classes(&self) -> [(&'static str, u64); 6] {
        [
            ("connection refused", self.refused),
            ("too many open files (fd limit)", self.fd_limit),
            ("connection reset or closed mid-response", self.reset),
            ("timeout", self.timeout),
            ("bad response", self.bad_response),
            ("other", self.other),
        ]
    }

    pub(crate) fn add(&mut self, failure: Failure, n: u64) {
        let slot = match failure {
            Failure::Refused => &mut self.refused,
            Failure::FdLimit => &mut self.fd_limit,
            Failure::Reset => &mut self.reset,
            Failure::Timeout => &mut self.timeout,
            Failure::BadResponse => &mut self.bad_response,
            Failure::Other => &mut self.other,
        };
        *slot += n;
    }

    pub(crate) fn merge(&mut self, other: &ErrorCounts) {
        self.refused += other.refused;
        self.fd_limit += other.fd_limit;
        self.reset += other.reset;
        self.timeout += other.timeout;
        self.bad_response += other.bad_response;
        self.other += other.other;
    }

    /// The non-zero classes as `label N, label N`.
    pub(crate) fn summary(&self) -> String {
        self.classes()
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(label, n)| format!("{label} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// What happened to the `-c` connections: every open is counted once, in
/// `opened`, and the reopens by why the previous connection ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ConnectionCounts {
    /// `-c`: the connections asked for.
    pub(crate) requested: u64,
    /// Connections opened during the run, reopens included.
    pub(crate) opened: u64,
    /// Reopened because the server closed the previous one deliberately
    /// (`Connection: close`, e.g. its `max_requests_per_connection`).
    pub(crate) reopened_server_closed: u64,
    /// Reopened because of `--close` (one connection per request).
    pub(crate) reopened_close: u64,
    /// Reopened after an error on the previous one.
    pub(crate) reopened_after_error: u64,
    /// Connections (of `requested`) that never opened, by their last failure.
    pub(crate) not_opened: ErrorCounts,
    /// Connections that never opened because the run ended first (their
    /// turn to connect, or the handshake, came too late).
    pub(crate) not_opened_run_ended: u64,
}

impl ConnectionCounts {
    /// Connections of `requested` that were open at least once.
    pub(crate) fn connected(&self) -> u64 {
        self.opened - self.reopened_server_closed - self.reopened_close - self.reopened_after_error
    }

    /// Connections of `requested` that never opened.
    pub(crate) fn not_opened_total(&self) -> u64 {
        self.not_opened.total() + self.not_opened_run_ended
    }

    /// Why connections of `requested` never opened, as `label N, …`.
    pub(crate) fn not_opened_summary(&self) -> String {
        let mut parts = vec![self.not_opened.summary()];
        if self.not_opened_run_ended > 0 {
            parts.push(format!(
                "the run ended before they connected {}",
                self.not_opened_run_ended
            ));
        }
        parts.retain(|p| !p.is_empty());
        parts.join(", ")
    }

    pub(crate) fn merge(&mut self, other: &ConnectionCounts) {
        self.opened += other.opened;
        self.reopened_server_closed += other.reopened_server_closed;
        self.reopened_close += other.reopened_close;
        self.reopened_after_error += other.reopened_after_error;
        self.not_opened.merge(&other.not_opened);
        self.not_opened_run_ended += other.not_opened_run_ended;
    }

    /// One line: how many opened, and why more than `requested` did.
    pub(crate) fn explain(&self) -> String {
        let mut out = format!(
            "{} ({} of {} connected",
            self.opened,
            self.connected(),
            self.requested
        );
        if self.reopened_server_closed > 0 {
            let _ = write!(
                out,
                "; {} reopened after the server closed them (Connection: close, e.g. its max_requests_per_connection)",
                self.reopened_server_closed
            );
        }
        if self.reopened_close > 0 {
            let _ = write!(out, "; {} new per request (--close)", self.reopened_close);
        }
        if self.reopened_after_error > 0 {
            let _ = write!(out, "; {} reopened after errors", self.reopened_after_error);
        }
        let missing = self.not_opened_total();
        if missing > 0 {
            let _ = write!(
                out,
                "; {missing} could not be opened: {}",
                self.not_opened_summary()
            );
        }
        out.push(')');
        out
    }
}

/// The open-file limit as the run found and left it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FdLimitNote {
    /// The soft limit before the run.
    pub(crate) soft_before: u64,
    /// The limit during the run (soft raised toward `wanted` if it was lower).
    pub(crate) now: FdLimit,
    /// Descriptors the run wants: the connections plus the runtime's own.
    pub(crate) wanted: u64,
}

impl FdLimitNote {
    /// Whether the limit now in force is below what the run wants.
    pub(crate) fn short(&self) -> bool {
        self.now.soft < self.wanted
    }

    pub(crate) fn describe(&self, connections: usize) -> Option<String> {
        if self.short() {
            Some(format!(
                "soft {} (hard {}) is below the ~{} that -c {connections} needs; \
                 raise the hard limit (ulimit -Hn as root, or limits.conf)",
                self.now.soft, self.now.hard, self.wanted
            ))
        } else if self.now.soft > self.soft_before {
            Some(format!(
                "soft limit raised from {} to {} for -c {connections}",
                self.soft_before, self.now.soft
            ))
        } else {
            None
        }
    }
}
