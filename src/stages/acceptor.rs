//! Acceptors: accept a connection, condition its socket (non-blocking,
//! TCP_NODELAY, keep-alive probes, TCP_NOTSENT_LOWAT), wrap it as a `Conn`
//! and push it onto a pending queue. They know nothing of HTTP: a connection
//! there is no room for goes to `pending::reject_stream`, which answers 503
//! and closes. The options are set on the listener, whose connections
//! inherit them (checked on the first), so conditioning costs no syscall
//! per connection.
//!
//! - `readiness` (default): one listener; the acceptor parks on it until the
//!   poller reports it readable, and deals connections round-robin to the
//!   workers' queues.
//! - `reuseport`: one SO_REUSEPORT listener and acceptor per worker; the
//!   kernel spreads connections and each stays on the worker that accepted it.
//!   It refuses a port another process listens on, with or without
//!   SO_REUSEPORT: sharing is only between this server's own listeners.
//! - `spin`: the original design's loop — try `accept`, `yield_now` when there
//!   is nothing. It never lets its worker sleep: one core at 100 % when idle.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{AcceptorKind, Config, Overload};
use crate::runtime::net::{condition_listener, condition_stream, has_options};
use crate::runtime::{
    race, sleep, yield_now, Async, Either, Handle, Latch, ListenOptions, Stream, StreamOptions,
    TcpListener,
};

use super::handshake::Handshake;

use super::pending::{admit, reject_stream};
use super::per_client;
use super::pressure;
use super::{Acceptor, Bound, Conn, Line, Origin};

/// One listener on worker 0 dealing connections to every worker's queue;
/// `readiness` parks until the listener is readable, `spin` polls it.
pub struct SingleListener {
    wait: Wait,
}

/// The `readiness` acceptor.
pub const READINESS: SingleListener = SingleListener { wait: Wait::Park };
/// The `spin` acceptor.
pub const SPIN: SingleListener = SingleListener { wait: Wait::Spin };

/// The `reuseport` acceptor: one SO_REUSEPORT listener and acceptor per
/// worker, each feeding its own worker's queue.
pub struct ReusePort;

/// How an acceptor waits for the next connection.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wait {
    Park,
    Spin,
}

/// How accepted sockets get their options.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Conditioning {
    /// Set on the listener; not yet seen on an accepted socket.
    Unchecked,
    /// Accepted sockets come with them.
    Inherited,
    /// Set on each accepted socket.
    PerStream,
}

/// Which pending queue gets the connection.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Deal {
    RoundRobin,
    Local,
}

/// The [`Acceptor`] methods of a built-in acceptor: each way to start goes
/// through its [`Launch`], with the entry that way calls for.
macro_rules! started_through_launch {
    () => {
        fn start(
            &self,
            runtime: &Handle,
            addr: SocketAddr,
            line: &Arc<Line>,
        ) -> io::Result<SocketAddr> {
            self.bind_and_launch(runtime, addr, line, Entry::Line)
        }

        fn start_listener(
            &self,
            runtime: &Handle,
            bound: Bound,
            line: &Arc<Line>,
            stop: &Arc<Latch>,
        ) -> io::Result<()> {
            self.launch(
                bound,
                Launching {
                    runtime,
                    line,
                    stop,
                    entry: Entry::Line,
                },
            )
        }

        fn start_tls(
            &self,
            runtime: &Handle,
            addr: SocketAddr,
            line: &Arc<Line>,
            handshake: &Arc<Handshake>,
        ) -> io::Result<SocketAddr> {
            self.bind_and_launch(runtime, addr, line, Entry::Handshake(handshake.clone()))
        }
    };
}

impl Acceptor for SingleListener {
    fn name(&self) -> &str {
        match self.wait {
            Wait::Park => AcceptorKind::Readiness.name(),
            Wait::Spin => AcceptorKind::Spin.name(),
        }
    }

    started_through_launch!();
}

impl Launch for SingleListener {
    fn launch(&self, bound: Bound, to: Launching<'_>) -> io::Result<()> {
        let (line, wait, stop, entry) = (to.line.clone(), self.wait, to.stop.clone(), to.entry);
        to.runtime
            .spawn_on(0, async move {
                accept_loop(
                    &line,
                    &bound.listener,
                    wait,
                    Deal::RoundRobin,
                    &stop,
                    &entry,
                )
                .await
            })
            .detach();
        Ok(())
    }
}

impl Acceptor for ReusePort {
    fn name(&self) -> &str {
        AcceptorKind::ReusePort.name()
    }

    started_through_launch!();
}

impl Launch for ReusePort {
    fn launch(&self, bound: Bound, to: Launching<'_>) -> io::Result<()> {
        let runtime = to.runtime;
        let Origin::Fresh { only_v6 } = bound.origin else {
            // A Unix socket or an inherited one cannot be bound again per
            // worker: one acceptor shares it, dealing round-robin.
            eprintln!(
                "conveyor: reuseport: {} cannot be split per worker; one acceptor shares it \
                 and deals its connections round-robin",
                bound.describe()
            );
            return READINESS.launch(bound, to);
        };
        // SO_REUSEPORT lets any process of the same user that listens on
        // the port with it too share it: two servers would split the
        // connections between two sites. The server's bind without it
        // (`bound`) failed if anyone listened there; only this server's
        // listeners, bound next, share.
        let addr = bound.listener.local_addr()?;
        drop(bound);
        let options = bind_options(&to.line.config.load(), true, only_v6);
        let mut listeners = Vec::with_capacity(runtime.workers());
        for _ in 0..runtime.workers() {
            listeners.push(TcpListener::bind(addr, &options)?);
        }
        for (worker, listener) in listeners.into_iter().enumerate() {
            let (line, stop, entry) = (to.line.clone(), to.stop.clone(), to.entry.clone());
            runtime
                .spawn_on(worker, async move {
                    accept_loop(&line, &listener, Wait::Park, Deal::Local, &stop, &entry).await
                })
                .detach();
        }
        Ok(())
    }
}

/// Where accepted connections go: straight onto the line, or (TLS
/// listeners) to the handshake stage first.
#[derive(Clone)]
enum Entry {
    Line,
    Handshake(Arc<Handshake>),
}

/// Where a launched acceptor runs and sends what it accepts.
struct Launching<'a> {
    runtime: &'a Handle,
    line: &'a Arc<Line>,
    /// Set when the listener is removed (a reload).
    stop: &'a Arc<Latch>,
    entry: Entry,
}

/// What the built-in acceptors share: every way they start goes through
/// `launch`, which spawns the accepting green threads for a listener.
trait Launch {
    fn launch(&self, bound: Bound, to: Launching<'_>) -> io::Result<()>;

    /// Binds `addr` (no SO_REUSEPORT: the bind fails if anyone listens
    /// there) and launches on it until the server stops.
    fn bind_and_launch(
        &self,
        runtime: &Handle,
        addr: SocketAddr,
        line: &Arc<Line>,
        entry: Entry,
    ) -> io::Result<SocketAddr> {
        let listener = TcpListener::bind(addr, &bind_options(&line.config.load(), false, false))?;
        let addr = listener.local_addr()?;
        let bound = Bound::fresh(listener, false);
        let stop = &Arc::new(Latch::new());
        self.launch(
            bound,
            Launching {
                runtime,
                line,
                stop,
                entry,
            },
        )?;
        Ok(addr)
    }
}

/// How a TCP listener is bound under `config`.
pub fn bind_options(config: &Config, reuse_port: bool, only_v6: bool) -> ListenOptions {
    let defer = config.runtime.tcp_defer_accept;
    ListenOptions {
        reuse_port,
        backlog: i32::try_from(config.runtime.backlog).unwrap_or(i32::MAX),
        defer_accept: (!defer.is_zero()).then_some(defer),
        only_v6,
    }
}

async fn accept_loop(
    line: &Line,
    listener: &TcpListener,
    wait: Wait,
    deal: Deal,
    stop: &Latch,
    entry: &Entry,
) {
    // Not one connection before the server may serve (the binary switches
    // to its user first).
    line.accepting.wait().await;
    let config = line.config.load();
    let stream_options = StreamOptions {
        nodelay: true,
        keepalive: Some((
            config.runtime.tcp_keepalive_idle,
            config.runtime.tcp_keepalive_interval,
        )),
        notsent_lowat: match config.runtime.tcp_notsent_lowat {
            0 => None,
            bytes => Some(u32::try_from(bytes).unwrap_or(u32::MAX)),
        },
    };
    // Conditioning the listener conditions what it accepts (Linux copies
    // the options); checked on the first connection, else done one by one.
    // A Unix-domain socket takes no TCP options.
    let mut conditioning = match condition_listener(listener, &stream_options) {
        _ if !listener.is_tcp() => Conditioning::Inherited,
        Ok(()) => Conditioning::Unchecked,
        Err(_) => Conditioning::PerStream,
    };
    let mut next_queue = 0usize;
    // Stops at shutdown, or when a reload removes this listener (`stop`):
    // the connections it accepted carry on.
    let stopping = || async { race(line.shutdown.wait(), stop.wait()).await };
    while !line.shutdown.is_set() && !stop.is_set() {
        let accepted = match wait {
            Wait::Park => match race(listener.accept(), stopping()).await {
                Either::Left(result) => result,
                Either::Right(_) => break,
            },
            Wait::Spin => spin_accept(listener, line, stop).await,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                // Out of descriptors: an idle keep-alive connection gives
                // one back and the accept is retried at once; otherwise back
                // off instead of spinning. Counted, and said once per interval.
                if !pressure::accept_failed(line, &e) {
                    sleep(Duration::from_millis(10)).await;
                }
                continue;
            }
        };
        if conditioning == Conditioning::Unchecked {
            conditioning = match has_options(&stream, &stream_options) {
                true => Conditioning::Inherited,
                false => Conditioning::PerStream,
            };
        }
        if conditioning == Conditioning::PerStream {
            // Best effort: a socket that refuses an option still works.
            let _ = condition_stream(&stream, &stream_options);
        }
        let stream = Stream::plain(Async::new_nonblocking(stream));
        // Its address's connections counted before it takes a slot; one
        // too many is answered 503, unread, and closed here.
        let Some(hold) = per_client::admit_connection(line, peer, &stream) else {
            continue;
        };
        // A free connection slot is taken only now, with a connection in
        // hand: an acceptor parked on an empty listener must not hold one
        // that a connection waiting on another listener (reuseport), or one
        // closing meanwhile, would free for the next newcomer. None free:
        // the longest-idle keep-alive connection makes room; none idle:
        // under "wait" (or "codel") this newcomer waits unread until a slot
        // frees up, and the kernel backlog holds the ones after it.
        let mut slot = line.slots.try_take().or_else(|| pressure::make_room(line));
        if slot.is_none() && config.queue.overload != Overload::Reject {
            match pressure::wait_for_slot(line).await {
                Some(taken) => slot = Some(taken),
                None => break,
            }
        }
        let Some(slot) = slot else {
            reject_stream(line, &stream);
            continue;
        };
        line.metrics.here().accepted.bump();
        let conn = Conn::new(stream, slot).held_by(hold);
        let worker = match deal {
            Deal::Local => crate::runtime::current_worker().unwrap_or(0) % line.pending.len(),
            Deal::RoundRobin => {
                next_queue = next_queue.wrapping_add(1);
                next_queue % line.pending.len()
            }
        };
        match entry {
            Entry::Line => admit(line, &line.pending[worker], conn).await,
            Entry::Handshake(stage) => stage.admit(line, worker, conn).await,
        }
    }
}

/// Tries `accept`, yielding to the other green threads between attempts.
async fn spin_accept(
    listener: &TcpListener,
    line: &Line,
    stop: &Latch,
) -> io::Result<(std::net::TcpStream, Option<SocketAddr>)> {
    loop {
        match listener.try_accept() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if line.shutdown.is_set() || stop.is_set() {
                    return Err(io::ErrorKind::ConnectionAborted.into());
                }
                yield_now().await;
            }
            result => return result,
        }
    }
}
