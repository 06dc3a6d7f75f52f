//! The connection's one timer, for its next deadline (see
//! `Connection::due`), and its tally of the stage's stream figures.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Context;
use std::time::Instant;

use super::super::stream::{H2Stream, Phase};
use crate::runtime::{self, Sleep};
use crate::stages::h2_connection::Http2;

/// A timer once set stays until its time: a later deadline keeps it (it
/// wakes the connection early, which then sets the next one), and one no
/// longer needed wakes the connection once for nothing. A new deadline
/// per turn would otherwise cost each turn a timer's removal and
/// insertion (and a read of the clock): a connection between two
/// bursts of streams moves its release deadline every turn.
#[derive(Default)]
pub(super) struct Timer(Option<(Instant, Sleep)>);

impl Timer {
    /// Wakes the connection by `due`, `now` being the turn's time (the
    /// one timers fire at: a timer set for no later has fired).
    pub(super) fn set(&mut self, due: Option<Instant>, now: Instant, cx: &mut Context<'_>) {
        if self.0.as_ref().is_some_and(|(t, _)| now >= *t) {
            self.0 = None;
        }
        let Some(at) = due else { return };
        if at <= now {
            cx.waker().wake_by_ref();
            return;
        }
        if self.0.as_ref().is_some_and(|(t, _)| *t <= at) {
            return;
        }
        let mut sleep = runtime::sleep_until(at);
        match Pin::new(&mut sleep).poll(cx).is_ready() {
            true => cx.waker().wake_by_ref(),
            false => self.0 = Some((at, sleep)),
        }
    }
}

/// Changes to the stage's stream figures (`/status`), made as streams
/// open and close and added to the shared counters once a turn: a turn
/// of ten streams makes 50 changes, each a locked instruction on a
/// cache line every worker writes.
#[derive(Default)]
pub(super) struct Tally {
    pub(super) streams: u64,
    pub(super) open: i64,
    pub(super) waiting: i64,
}

impl Tally {
    /// A stream closed: no longer open, nor waiting if its head had not come.
    pub(super) fn closed(&mut self, s: &H2Stream) {
        self.open -= 1;
        self.waiting -= i64::from(matches!(s.phase, Phase::Head(_)));
    }

    /// Adds the changes to `stage`'s figures, and starts again.
    pub(super) fn settle(&mut self, stage: &Http2) {
        let add = |gauge: &AtomicU64, by: i64| match by {
            0 => {}
            1.. => drop(gauge.fetch_add(by.unsigned_abs(), Ordering::Relaxed)),
            _ => drop(gauge.fetch_sub(by.unsigned_abs(), Ordering::Relaxed)),
        };
        if self.streams > 0 {
            stage.streams.fetch_add(self.streams, Ordering::Relaxed);
        }
        add(&stage.streams_open, self.open);
        add(&stage.streams_waiting, self.waiting);
        *self = Tally::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tally_adds_its_changes_once_and_starts_again() {
        let stage = Http2::new(1, 1);
        let mut tally = Tally {
            streams: 3,
            open: 3,
            waiting: 3,
        };
        tally.settle(&stage);
        (tally.open, tally.waiting) = (-2, -3);
        tally.settle(&stage);
        let figures = stage.snapshot();
        assert_eq!(
            (
                figures.streams,
                figures.streams_open,
                figures.streams_waiting
            ),
            (3, 1, 0)
        );
        tally.settle(&stage);
        assert_eq!(stage.snapshot().streams_open, 1, "settled changes go once");
    }
}
