//! Logins that passed lately, remembered for [`TTL`]: a browser sends the
//! same `Authorization` with every request, and a page with 30 assets
//! would otherwise cost 30 bcrypt checks (Caddy keeps such a cache too).
//! Only a 128-bit keyed hash of user and password is kept (two SipHash
//! keys drawn at random when the rules are built), never the password, in
//! a fixed table of [`SLOTS`]; a reload (SIGHUP) starts it empty, so a
//! user removed from the file is refused at once.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long a passed login is taken without a new bcrypt check.
pub(super) const TTL: Duration = Duration::from_secs(300);
const SLOTS: usize = 1024;

/// A remembered login: its digest and when it passed.
type Slot = Option<(u128, Instant)>;

pub(super) struct Remembered {
    keys: [RandomState; 2],
    slots: Mutex<Box<[Slot]>>,
}

impl Default for Remembered {
    fn default() -> Self {
        Remembered {
            keys: [RandomState::new(), RandomState::new()],
            slots: Mutex::new(vec![None; SLOTS].into_boxed_slice()),
        }
    }
}

impl Remembered {
    fn digest(&self, user: &str, password: &[u8]) -> u128 {
        let half = |key: &RandomState| key.hash_one((user, password));
        u128::from(half(&self.keys[0])) << 64 | u128::from(half(&self.keys[1]))
    }

    /// Whether this login passed less than [`TTL`] ago.
    pub(super) fn knows(&self, user: &str, password: &[u8], now: Instant) -> bool {
        let digest = self.digest(user, password);
        let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        matches!(slots[digest as usize % SLOTS],
            Some((d, at)) if d == digest && now.saturating_duration_since(at) < TTL)
    }

    /// Notes a login that passed (replacing whatever shared its slot).
    pub(super) fn remember(&self, user: &str, password: &[u8], now: Instant) {
        let digest = self.digest(user, password);
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots[digest as usize % SLOTS] = Some((digest, now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_the_exact_login_for_a_while() {
        let r = Remembered::default();
        let t0 = Instant::now();
        assert!(!r.knows("alice", b"pw", t0));
        r.remember("alice", b"pw", t0);
        assert!(r.knows("alice", b"pw", t0 + Duration::from_secs(10)));
        assert!(!r.knows("alice", b"pW", t0));
        assert!(!r.knows("alicepw", b"", t0));
        assert!(!r.knows("alice", b"pw", t0 + TTL));
    }
}
