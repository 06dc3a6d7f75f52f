//! Failed logins per client address, in a table of fixed size: 4096
//! slots in sets of 8, a set chosen by a keyed hash of the address
//! (IPv6 grouped by /64, as one host holds a whole /64). Each slot counts
//! the failures of a one-minute window that starts at its first failure.
//! A full set gives up its slot whose window began longest ago, so the
//! table never grows, whatever the number of addresses (~160 KiB).

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use crate::config::Client;

const SLOTS: usize = 4096;
const WAYS: usize = 8;
/// The window, in seconds.
pub(super) const WINDOW: u64 = 60;

#[derive(Clone, Copy, Default)]
struct Slot {
    /// The address; 0 with `count` 0: free.
    key: u128,
    /// When the window began, in seconds since the table was made.
    start: u64,
    count: u32,
}

/// Failed logins per client address, kept across reloads.
pub struct AuthFailures {
    slots: Mutex<Box<[Slot]>>,
    hasher: RandomState,
    made: Instant,
}

impl Default for AuthFailures {
    fn default() -> Self {
        AuthFailures {
            slots: Mutex::new(vec![Slot::default(); SLOTS].into_boxed_slice()),
            hasher: RandomState::new(),
            made: Instant::now(),
        }
    }
}

impl AuthFailures {
    /// Seconds until `client` may try again, when it has used up `max`
    /// failures this window.
    pub(super) fn blocked(&self, client: Client, max: u32, now: Instant) -> Option<u64> {
        let (key, at) = (key_of(client), self.seconds(now));
        let slots = self.lock();
        let slot = self
            .set(&slots, key)
            .iter()
            .find(|s| s.key == key && s.count > 0)?;
        let left = (slot.start + WINDOW).saturating_sub(at);
        (left > 0 && slot.count >= max).then_some(left)
    }

    /// Counts a failure of `client`.
    pub(super) fn fail(&self, client: Client, now: Instant) {
        let (key, at) = (key_of(client), self.seconds(now));
        let mut slots = self.lock();
        let base = self.base(key);
        let set = &mut slots[base..base + WAYS];
        let live = |s: &Slot| s.count > 0 && s.start + WINDOW > at;
        let slot = match set.iter().position(|s| s.key == key && s.count > 0) {
            Some(i) => &mut set[i],
            // A free or expired slot, else the one whose window is oldest.
            None => match set.iter().position(|s| !live(s)) {
                Some(i) => &mut set[i],
                None => set
                    .iter_mut()
                    .min_by_key(|s| s.start)
                    .unwrap_or_else(|| unreachable!("a set has {WAYS} slots")),
            },
        };
        if slot.key != key || !live(slot) {
            *slot = Slot {
                key,
                start: at,
                count: 0,
            };
        }
        slot.count = slot.count.saturating_add(1);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Box<[Slot]>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn seconds(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.made).as_secs()
    }

    fn base(&self, key: u128) -> usize {
        (self.hasher.hash_one(key) as usize % (SLOTS / WAYS)) * WAYS
    }

    fn set<'s>(&self, slots: &'s [Slot], key: u128) -> &'s [Slot] {
        let base = self.base(key);
        &slots[base..base + WAYS]
    }
}

/// An address as the table keys it: IPv4 mapped into IPv6, IPv6 cut to
/// its /64; the clients with no address share a key each.
fn key_of(client: Client) -> u128 {
    match client {
        Client::Ip(IpAddr::V4(v4)) => u128::from(v4.to_ipv6_mapped()),
        Client::Ip(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(_) => u128::from(v6),
            None => u128::from(v6) & !((1u128 << 64) - 1),
        },
        Client::Unix => 1,
        Client::Unknown => 2,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn ip(s: &str) -> Client {
        Client::Ip(s.parse().unwrap())
    }

    #[test]
    fn blocks_after_max_until_the_window_ends() {
        let table = AuthFailures::default();
        let t0 = table.made;
        let a = ip("192.0.2.1");
        for _ in 0..3 {
            assert_eq!(table.blocked(a, 3, t0), None);
            table.fail(a, t0);
        }
        assert_eq!(table.blocked(a, 3, t0), Some(60));
        assert_eq!(table.blocked(ip("192.0.2.2"), 3, t0), None);
        let later = t0 + Duration::from_secs(45);
        assert_eq!(table.blocked(a, 3, later), Some(15));
        assert_eq!(table.blocked(a, 3, t0 + Duration::from_secs(60)), None);
        // A new window starts with the next failure.
        table.fail(a, t0 + Duration::from_secs(61));
        assert_eq!(table.blocked(a, 2, t0 + Duration::from_secs(61)), None);
    }

    #[test]
    fn ipv6_counts_per_64_and_the_table_stays_its_size() {
        let table = AuthFailures::default();
        let t0 = table.made;
        table.fail(ip("2001:db8::1"), t0);
        table.fail(ip("2001:db8::2"), t0);
        assert_eq!(table.blocked(ip("2001:db8::ffff"), 2, t0), Some(60));
        assert_eq!(table.blocked(ip("2001:db8:0:1::1"), 2, t0), None);
        for i in 0..100_000u32 {
            table.fail(Client::Ip(IpAddr::V4(i.into())), t0);
        }
        assert_eq!(table.lock().len(), SLOTS);
    }
}
