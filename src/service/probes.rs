//! `/livez` and `/readyz`: the probes a load balancer or an orchestrator
//! asks before sending traffic.
//!
//! - `/livez` answers 200 while the process runs and serves at all: a
//!   failing one means "restart me".
//! - `/readyz` answers 200 only while the server accepts connections and is
//!   not stopping: 503 before the listeners are up and from the moment a
//!   stop begins (SIGTERM), so a load balancer takes the replica out during
//!   `shutdown.drain_delay`, while it still serves, instead of finding out
//!   from refused connections.

use std::sync::atomic::{AtomicU8, Ordering};

use crate::http::Method;

use super::{Exchange, Outcome};

const STARTING: u8 = 0;
const READY: u8 = 1;
const DRAINING: u8 = 2;

/// Where a server is in its life, as the readiness probe reports it:
/// starting, then ready once it accepts, then draining once a stop begins.
/// It never goes back: a drained server is not made ready again.
#[derive(Debug, Default)]
pub struct Readiness(AtomicU8);

/// The state [`Readiness`] is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// The listeners are not all up yet.
    Starting,
    /// Accepting, and not stopping.
    Ready,
    /// A stop has begun: still serving, about to stop accepting.
    Draining,
}

impl State {
    /// The word the probe's body and `/status` use.
    pub fn name(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Ready => "ready",
            State::Draining => "draining",
        }
    }
}

impl Readiness {
    /// Starting: not ready until [`Readiness::mark_ready`].
    pub fn new() -> Readiness {
        Readiness::default()
    }

    /// The server accepts: ready, unless a stop has already begun.
    pub fn mark_ready(&self) {
        let _ = self
            .0
            .compare_exchange(STARTING, READY, Ordering::AcqRel, Ordering::Acquire);
    }

    /// A stop has begun: not ready from now on, whatever came before.
    pub fn drain(&self) {
        self.0.store(DRAINING, Ordering::Release);
    }

    /// The current state.
    pub fn state(&self) -> State {
        match self.0.load(Ordering::Acquire) {
            STARTING => State::Starting,
            READY => State::Ready,
            _ => State::Draining,
        }
    }

    /// Whether a stop has begun.
    pub fn is_draining(&self) -> bool {
        self.state() == State::Draining
    }
}

/// Headers both probes send: an answer about this moment, never cached.
const NO_STORE: [(&str, &str); 1] = [("Cache-Control", "no-store")];

/// `/livez`: 200 `ok` to GET and HEAD while the process serves; 405 for
/// other methods.
pub fn live(ex: &mut Exchange<'_>) -> Outcome {
    ex.consume_preamble();
    if !matches!(ex.req.method, Method::Get | Method::Head) {
        return ex.error(405, "use GET or HEAD", &[("Allow", "GET, HEAD")]);
    }
    ex.respond(200, "text/plain; charset=utf-8", b"ok\n", &NO_STORE)
}

/// `/readyz`: 200 `ready` while accepting; 503 `starting` or `draining`
/// otherwise (with `Retry-After`, as any 503 here); 405 for other methods.
pub fn ready(ex: &mut Exchange<'_>) -> Outcome {
    ex.consume_preamble();
    if !matches!(ex.req.method, Method::Get | Method::Head) {
        return ex.error(405, "use GET or HEAD", &[("Allow", "GET, HEAD")]);
    }
    let state = ex.ctx.readiness.state();
    let (status, body): (u16, &[u8]) = match state {
        State::Ready => (200, b"ready\n"),
        State::Starting => (503, b"starting\n"),
        State::Draining => (503, b"draining\n"),
    };
    let headers: &[(&str, &str)] = match status {
        200 => &NO_STORE,
        _ => &[("Cache-Control", "no-store"), ("Retry-After", "1")],
    };
    ex.respond(status, "text/plain; charset=utf-8", body, headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_goes_starting_ready_draining_and_never_back() {
        let r = Readiness::new();
        assert_eq!(r.state(), State::Starting);
        r.mark_ready();
        assert_eq!(r.state(), State::Ready);
        r.drain();
        assert!(r.is_draining());
        r.mark_ready();
        assert_eq!(r.state(), State::Draining, "a drained server stays drained");

        let early = Readiness::new();
        early.drain();
        early.mark_ready();
        assert_eq!(
            early.state(),
            State::Draining,
            "a stop before the listeners came up"
        );
    }
}
