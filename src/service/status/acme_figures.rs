//! The `"acme"` object of `/status`: what the ACME manager is doing for
//! its domains. The manager writes an [`AcmeReport`] into the line's
//! [`AcmeStatus`]; `/status` reads it.

use std::sync::{Mutex, PoisonError};

use super::render::{counter, gauge, http_date as date, Figure, Value};

use Value::{Count, Flag, Null, Text};

/// What the ACME manager is doing, as `/status` shows it (`"acme"`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AcmeReport {
    /// The names of the certificate (`acme.domains`).
    pub domains: Vec<String>,
    /// `"ordering"` (no certificate yet, or renewing), `"valid"` (serving
    /// one, renewal scheduled), `"error"` (the last order failed; a retry
    /// is scheduled) or `"waiting"` (another replica holds the lock and
    /// orders; this one installs what it writes).
    pub state: &'static str,
    /// Whether this process holds `state_dir`'s lock and so orders.
    pub orders: bool,
    /// The account's URL at the CA, once this process has used it.
    pub account: Option<String>,
    /// The certificate in use: its end of validity, Unix seconds.
    pub not_after_unix: Option<u64>,
    /// When the next order (a renewal, or a retry after an error) or, for
    /// a replica, the next look at `state_dir` is due, Unix seconds.
    pub next_renewal_unix: Option<u64>,
    /// Why the last order failed, or why the certificate it brought is
    /// ordered again early (already due); `None` once one succeeds.
    pub last_error: Option<String>,
    /// Orders begun since start.
    pub attempts: u64,
    /// Orders failed in a row (0 after a success): the backoff's exponent.
    pub failures: u64,
    /// Certificates issued and installed since start.
    pub issued: u64,
}

/// Where the manager leaves its report.
#[derive(Debug, Default)]
pub struct AcmeStatus(Mutex<Option<AcmeReport>>);

impl AcmeStatus {
    /// Replaces the report.
    pub fn set(&self, report: AcmeReport) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(report);
    }

    /// The report, once a manager runs.
    pub fn get(&self) -> Option<AcmeReport> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

pub(super) const ACME: &[Figure<AcmeReport>] = &[
    Figure::json("domains", |a| Text(a.domains.join(" "))),
    Figure::json("state", |a| Text(a.state.into())),
    Figure::both(
        "orders",
        gauge(
            "acme_lock_held",
            "1 when this process holds acme.state_dir's lock and orders certificates.",
        ),
        |a| Flag(a.orders),
    ),
    Figure::json("account", |a| a.account.clone().map_or(Null, Text)),
    Figure::json("not_after", |a| date(a.not_after_unix)),
    Figure::both(
        "not_after_unix",
        gauge(
            "acme_certificate_not_after_seconds",
            "End of validity of the ACME certificate in use, Unix time; 0 before one.",
        ),
        |a| Count(a.not_after_unix.unwrap_or(0)),
    ),
    Figure::json("next_renewal", |a| date(a.next_renewal_unix)),
    Figure::both(
        "next_renewal_unix",
        gauge(
            "acme_next_order_seconds",
            "When the next ACME order (renewal or retry) is due, or for a replica without the lock its next look in acme.state_dir, Unix time.",
        ),
        |a| Count(a.next_renewal_unix.unwrap_or(0)),
    ),
    Figure::json("last_error", |a| a.last_error.clone().map_or(Null, Text)),
    Figure::both(
        "attempts",
        counter("acme_orders_total", "ACME orders begun since start."),
        |a| Count(a.attempts),
    ),
    Figure::both(
        "failures",
        gauge(
            "acme_order_failures",
            "ACME orders failed in a row (0 after a success).",
        ),
        |a| Count(a.failures),
    ),
    Figure::both(
        "issued",
        counter(
            "acme_certificates_issued_total",
            "ACME certificates issued and installed since start.",
        ),
        |a| Count(a.issued),
    ),
];
