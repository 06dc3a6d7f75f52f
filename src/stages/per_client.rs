//! Per-client limits (`[limits.per_client]`): an admission step that keeps
//! one address from taking the line for itself.
//!
//! - **Connections** (`connections`, nginx's `limit_conn`): counted at the
//!   acceptor, by the TCP peer's address, before a connection slot is
//!   taken. One over the limit is answered `503` with `Retry-After` in one
//!   non-blocking write, unread, and closed, as a full line answers
//!   (`pending::reject_stream`): it never reaches a queue or a handler. A
//!   connection from a peer the PROXY protocol is expected from counts for
//!   the client its header names instead, once the handler has read it
//!   ([`admit_proxied`]); one over the limit is answered the same 503 there
//!   and closed lingering (its first request may be arriving). An HTTP/2
//!   connection counts once, however many streams it carries.
//! - **Requests** (`rate`, `burst`): a token bucket per client, checked by
//!   an admission step between the pending queue and the handler
//!   ([`super::per_client_step`]): every HTTP/1.1 request and every HTTP/2
//!   stream spends a token before a handler takes it. Out of tokens: `429`
//!   with `Retry-After` (the seconds until a token is back), written by
//!   that step; no handler runs, nothing is routed or logged. The probes
//!   and `/status` are not counted (a load balancer's health checks come
//!   from one address).
//!
//! IPv6 addresses count by /64 (one host usually holds a whole /64);
//! IPv4-mapped IPv6 addresses as the IPv4 address. Unix-domain peers and
//! clients a proxy named with garbage (`Unknown`) are not limited.
//!
//! **Bounded memory.** The table is allocated once, the first time a limit
//! is on, with `table_size` entries (16 384 by default, 32 bytes each) in
//! sets of [`WAYS`], a set chosen by a keyed hash (the key is random per
//! process, so a client cannot aim its addresses at one set). A new client takes an empty way of
//! its set, else evicts the entry whose forgetting gives away the least:
//! never one holding open connections (its count must come down when they
//! close); of the others, the one with the most tokens once refilled (a
//! full bucket is exactly what a forgotten client starts with again), then
//! the least recently seen. A client being limited has no tokens, so it is
//! the last to go: a flood of new addresses each spend one token and leave
//! fuller buckets behind, which are evicted first. Only when every way of a
//! set is in debt (all eight clients limited at once) is the oldest of them
//! forgotten, and it gets one fresh burst back — the trade-off for a fixed
//! size. A set whose eight ways all hold open connections has no room: the
//! newcomer is let through untracked and counted (`untracked` in
//! `/status`); `limits.max_connections` still bounds it.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Instant;

use crate::config::{Client, Config, PerClientConfig};
use crate::runtime::Stream;
use crate::service::status::PerClientReport;

use super::Line;

/// Entries (ways) per set.
pub const WAYS: usize = 8;

/// One client's state.
#[derive(Clone, Copy, Default)]
struct Entry {
    /// The client's key ([`key_of`]); 0: the way is empty.
    key: u128,
    /// When it was last brought up to date, µs after the table's epoch.
    stamp_us: u64,
    /// Tokens in its bucket as of `stamp_us`.
    tokens: f32,
    /// Connections open.
    conns: u32,
}

impl Entry {
    /// Tokens now: refilled at `rate` since the stamp, at most `burst`.
    fn tokens_at(&self, now_us: u64, config: &PerClientConfig) -> f32 {
        let elapsed = now_us.saturating_sub(self.stamp_us) as f32 / 1e6;
        (self.tokens + elapsed * config.rate as f32).min(config.burst as f32)
    }

    /// Brings it up to date as of `now_us`.
    fn refresh(&mut self, now_us: u64, config: &PerClientConfig) {
        self.tokens = self.tokens_at(now_us, config);
        self.stamp_us = now_us;
    }
}

type Set = [Entry; WAYS];

/// The fixed-size table.
struct Table {
    sets: Box<[Mutex<Set>]>,
    hasher: RandomState,
}

/// The per-client state of a line and its counters.
pub struct PerClient {
    /// Allocated the first time a limit is on.
    table: OnceLock<Table>,
    epoch: Instant,
    refused_requests: AtomicU64,
    refused_connections: AtomicU64,
    evictions: AtomicU64,
    untracked: AtomicU64,
}

/// A connection refused: its address holds `limits.per_client.connections`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverLimit;

/// A client's hold on one of its connections: counted until dropped.
pub struct ClientHold {
    table: Arc<PerClient>,
    key: u128,
}

impl Drop for ClientHold {
    fn drop(&mut self) {
        let Some(table) = self.table.table.get() else {
            return;
        };
        let mut set = table.lock(self.key);
        if let Some(e) = set.iter_mut().find(|e| e.key == self.key) {
            e.conns = e.conns.saturating_sub(1);
        }
    }
}

impl Default for PerClient {
    fn default() -> Self {
        PerClient {
            table: OnceLock::new(),
            epoch: Instant::now(),
            refused_requests: AtomicU64::new(0),
            refused_connections: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            untracked: AtomicU64::new(0),
        }
    }
}

impl Table {
    fn new(clients: usize) -> Table {
        Table {
            sets: (0..clients.div_ceil(WAYS).max(1))
                .map(|_| Mutex::new([Entry::default(); WAYS]))
                .collect(),
            hasher: RandomState::new(),
        }
    }

    fn lock(&self, key: u128) -> std::sync::MutexGuard<'_, Set> {
        let set = (self.hasher.hash_one(key) % self.sets.len() as u64) as usize;
        self.sets[set]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// What a lookup found or made room for.
enum Found {
    /// The client's way in its set.
    At(usize),
    /// No room: every way holds open connections.
    Full,
}

impl PerClient {
    fn table(&self, config: &PerClientConfig) -> &Table {
        self.table.get_or_init(|| Table::new(config.table_size))
    }

    fn now_us(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_micros()).unwrap_or(u64::MAX)
    }

    /// The way holding `key` in `set`, after making room for it if new.
    fn find(&self, set: &mut Set, key: u128, now_us: u64, config: &PerClientConfig) -> Found {
        if let Some(at) = set.iter().position(|e| e.key == key) {
            set[at].refresh(now_us, config);
            return Found::At(at);
        }
        let victim = set
            .iter()
            .enumerate()
            .filter(|(_, e)| e.conns == 0)
            .max_by(|(_, a), (_, b)| {
                let (ta, tb) = (a.tokens_at(now_us, config), b.tokens_at(now_us, config));
                // Empty first, then the fullest bucket, then the oldest.
                (a.key == 0)
                    .cmp(&(b.key == 0))
                    .then(ta.total_cmp(&tb))
                    .then(b.stamp_us.cmp(&a.stamp_us))
            })
            .map(|(at, _)| at);
        let Some(at) = victim else {
            self.untracked.fetch_add(1, Ordering::Relaxed);
            return Found::Full;
        };
        if set[at].key != 0 {
            self.evictions.fetch_add(1, Ordering::Relaxed);
        }
        set[at] = Entry {
            key,
            stamp_us: now_us,
            tokens: config.burst as f32,
            conns: 0,
        };
        Found::At(at)
    }

    /// Spends a token of `client`'s bucket; `Err(seconds)` to wait when
    /// it has none (the request is refused and costs nothing; the caller
    /// counts it with [`Self::count_refused`] once it answers it).
    pub fn take_token(
        &self,
        client: Client,
        config: &PerClientConfig,
        now: Instant,
    ) -> Result<(), u64> {
        let Some(key) = client_key(client) else {
            return Ok(());
        };
        let now_us = self.now_us(now);
        let mut set = self.table(config).lock(key);
        let Found::At(at) = self.find(&mut set, key, now_us, config) else {
            return Ok(());
        };
        let e = &mut set[at];
        if e.tokens >= 1.0 {
            e.tokens -= 1.0;
            return Ok(());
        }
        let missing = 1.0 - e.tokens;
        drop(set);
        Err(retry_after(missing, config))
    }

    /// Counts a request answered `429` (for `/status`).
    pub fn count_refused(&self) {
        self.refused_requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a connection from `peer` against its limit: `Ok(hold)`
    /// (`None` when nothing is counted), `Err(OverLimit)` when it holds as
    /// many as it may already.
    pub fn hold_connection(
        self: &Arc<Self>,
        peer: IpAddr,
        config: &PerClientConfig,
        now: Instant,
    ) -> Result<Option<ClientHold>, OverLimit> {
        if config.connections == 0 {
            return Ok(None);
        }
        let key = key_of(peer);
        let now_us = self.now_us(now);
        let mut set = self.table(config).lock(key);
        let Found::At(at) = self.find(&mut set, key, now_us, config) else {
            return Ok(None);
        };
        let e = &mut set[at];
        if e.conns >= config.connections {
            drop(set);
            self.refused_connections.fetch_add(1, Ordering::Relaxed);
            return Err(OverLimit);
        }
        e.conns += 1;
        Ok(Some(ClientHold {
            table: self.clone(),
            key,
        }))
    }

    /// The figures now (counting the clients reads every set: for
    /// `/status`, not per request).
    pub fn counts(&self) -> PerClientReport {
        let (clients, capacity) = match self.table.get() {
            None => (0, 0),
            Some(t) => {
                let clients = t
                    .sets
                    .iter()
                    .map(|s| {
                        let set = s.lock().unwrap_or_else(PoisonError::into_inner);
                        set.iter().filter(|e| e.key != 0).count() as u64
                    })
                    .sum();
                (clients, (t.sets.len() * WAYS) as u64)
            }
        };
        PerClientReport {
            refused_requests: self.refused_requests.load(Ordering::Relaxed),
            refused_connections: self.refused_connections.load(Ordering::Relaxed),
            clients,
            capacity,
            evictions: self.evictions.load(Ordering::Relaxed),
            untracked: self.untracked.load(Ordering::Relaxed),
        }
    }
}

/// Whole seconds until `missing` tokens are back at `config.rate`, at least 1.
fn retry_after(missing: f32, config: &PerClientConfig) -> u64 {
    let secs = (missing / config.rate.max(1) as f32).ceil() as u64;
    secs.max(1)
}

/// What the table keys a client by: an IPv4 address (as IPv4-mapped
/// IPv6), an IPv6 address's /64 (its low bit set, so never 0).
pub fn key_of(ip: IpAddr) -> u128 {
    match ip.to_canonical() {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => (u128::from(v6) & !u128::from(u64::MAX)) | 1,
    }
}

fn client_key(client: Client) -> Option<u128> {
    match client {
        Client::Ip(ip) => Some(key_of(ip)),
        _ => None,
    }
}

/// The connection admission at the acceptor: `Some(hold)` to go on (the
/// hold counts it until the connection closes), `None` when its peer holds
/// `limits.per_client.connections` already — then it has been answered
/// `503` with `Retry-After`, unread, and is closed when dropped.
///
/// A connection from a peer the PROXY protocol is expected from (a
/// trusted peer, `proxy.protocol` on) is not counted here: the client is
/// whoever its header names, and [`admit_proxied`] counts it once the
/// handler has read it. Counted here, every connection through a load
/// balancer would count against the balancer.
pub(crate) fn admit_connection(
    line: &Line,
    peer: Option<SocketAddr>,
    stream: &Stream,
) -> Option<Option<ClientHold>> {
    let config = line.config.load();
    let limits = &config.limits.per_client;
    let Some(peer) = peer.filter(|_| limits.connections > 0) else {
        return Some(None);
    };
    if config.proxy.protocol && config.proxy.trusts(Client::Ip(peer.ip())) {
        return Some(None);
    }
    let table = &line.pressure.per_client;
    match table.hold_connection(peer.ip(), limits, Instant::now()) {
        Ok(hold) => Some(hold),
        Err(OverLimit) => {
            refuse(stream);
            None
        }
    }
}

/// The connection admission once a trusted peer's PROXY header named
/// `client`: as [`admit_connection`], for that client (a Unix or unknown
/// client is not counted). `Err(OverLimit)`: it has been answered `503`
/// with `Retry-After`; the caller closes it.
pub(crate) fn admit_proxied(
    line: &Line,
    config: &Config,
    client: Client,
    stream: &Stream,
) -> Result<Option<ClientHold>, OverLimit> {
    let limits = &config.limits.per_client;
    let Client::Ip(ip) = client else {
        return Ok(None);
    };
    let held = line
        .pressure
        .per_client
        .hold_connection(ip, limits, Instant::now());
    if held.is_err() {
        refuse(stream);
    }
    held
}

/// Answers `503` with `Retry-After`: one non-blocking attempt, as for a
/// full line.
fn refuse(stream: &Stream) {
    let mut out = Vec::with_capacity(256);
    crate::http::write_error(
        &mut out,
        503,
        "too many connections from your address",
        false,
        &[("Retry-After", "1")],
    );
    let _ = stream.write_now(&out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limits(rate: u32, burst: u32, connections: u32) -> PerClientConfig {
        PerClientConfig {
            rate,
            burst,
            connections,
            table_size: 1024,
        }
    }

    fn ip(s: &str) -> Client {
        Client::Ip(s.parse().unwrap())
    }

    #[test]
    fn a_burst_then_the_rate_with_the_wait_said() {
        let t = PerClient::default();
        let config = limits(2, 3, 0);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(t.take_token(ip("192.0.2.1"), &config, t0), Ok(()));
        }
        assert_eq!(t.take_token(ip("192.0.2.1"), &config, t0), Err(1));
        // Another client has its own bucket.
        assert_eq!(t.take_token(ip("192.0.2.2"), &config, t0), Ok(()));
        // Half a second later one token is back (2 per second).
        let later = t0 + Duration::from_millis(500);
        assert_eq!(t.take_token(ip("192.0.2.1"), &config, later), Ok(()));
        assert!(t.take_token(ip("192.0.2.1"), &config, later).is_err());
        // Unix peers and unknown clients are not limited.
        for _ in 0..10 {
            assert_eq!(t.take_token(Client::Unix, &config, t0), Ok(()));
        }
        // Refusals are counted where they are answered.
        assert_eq!(t.counts().refused_requests, 0);
        // A slow rate says the seconds to wait.
        let slow = limits(1, 1, 0);
        let t2 = PerClient::default();
        assert_eq!(t2.take_token(ip("192.0.2.9"), &slow, t0), Ok(()));
        assert_eq!(t2.take_token(ip("192.0.2.9"), &slow, t0), Err(1));
    }

    #[test]
    fn ipv6_counts_by_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(key_of(a), key_of(b));
        assert_ne!(key_of(a), key_of(c));
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(key_of(v4), key_of(mapped));
        assert_ne!(key_of("::".parse().unwrap()), 0);
    }

    #[test]
    fn connections_are_counted_until_their_holds_drop() {
        let t = Arc::new(PerClient::default());
        let config = limits(0, 20, 2);
        let now = Instant::now();
        let peer: IpAddr = "192.0.2.1".parse().unwrap();
        let a = t.hold_connection(peer, &config, now).unwrap();
        let b = t.hold_connection(peer, &config, now).unwrap();
        assert!(a.is_some() && b.is_some());
        assert!(t.hold_connection(peer, &config, now).is_err());
        drop(a);
        let c = t.hold_connection(peer, &config, now).unwrap();
        assert!(c.is_some());
        assert_eq!(t.counts().refused_connections, 1);
        // Off: nothing counted.
        assert!(matches!(
            t.hold_connection(peer, &limits(0, 20, 0), now),
            Ok(None)
        ));
    }

    #[test]
    fn a_flood_of_new_addresses_evicts_others_before_a_limited_client() {
        let t = PerClient::default();
        let config = limits(1, 10, 0);
        let now = Instant::now();
        let limited = ip("10.0.0.1");
        for _ in 0..10 {
            assert!(t.take_token(limited, &config, now).is_ok());
        }
        assert!(t.take_token(limited, &config, now).is_err());
        // Ten times the table's size in new addresses, one request each.
        for i in 0..10 * 1024 {
            let addr = IpAddr::V4(std::net::Ipv4Addr::from(0x0b00_0000 + i));
            assert!(t.take_token(Client::Ip(addr), &config, now).is_ok());
        }
        let counts = t.counts();
        assert_eq!((counts.clients, counts.capacity), (1024, 1024));
        assert!(counts.evictions > 0);
        // Still limited: it was never the one with the most tokens.
        assert!(t.take_token(limited, &config, now).is_err());
    }
}
