//! The stages of the line and what connects them.
//!
//! ```text
//!  listener ─► [acceptor] ──push──► pending queue (per worker) ──pop──► [dispatcher] ──► [handler]
//!                                        ▲                                                 │
//!                                        └──────── recycle: keep-alive stream ◄────────────┘
//! ```
//!
//! Stages share nothing but the [`Line`]: the per-worker pending queues a
//! [`Conn`] travels on, the settings and the counters. Each stage is a trait
//! with several implementations, chosen by name (config, CLI) or supplied by
//! a library user.

pub mod acceptor;
pub mod admission;
mod body;
pub mod conn;
pub mod dispatcher;
pub mod h2_connection;
mod h2_guard;
mod h2_native;
pub mod handshake;
pub mod http_handler;
mod https_redirect;
mod out_buffer;
pub mod pending;
pub mod per_client;
mod per_client_step;
pub mod pressure;
mod proxy_header;
mod report;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::config::{AcceptorKind, DispatcherKind, SharedConfig};
use crate::metrics::Metrics;
use crate::runtime::{Handle, Latch, TcpListener};
use crate::service::Readiness;

pub use conn::{Conn, ConnectionSlots};
pub use pending::{PendingQueue, Waiting};
#[doc(hidden)]
pub use per_client_step::{counted_preambles, CountedPreamble};
pub use pressure::Pressure;

/// A boxed future that stays on its worker (`HandlerFuture::new(async { … })`).
/// Its block is reused from the worker's pool: handlers make one per request.
pub type HandlerFuture<'a> = crate::runtime::PooledFuture<'a, ()>;

/// What every stage can see.
pub struct Line {
    /// The configuration, replaceable while the line runs: a handler takes
    /// the current one each time it takes a connection.
    pub config: SharedConfig,
    /// One pending queue per worker.
    pub pending: Vec<PendingQueue>,
    pub(crate) metrics: Arc<Metrics>,
    /// Free connection slots (`limits.max_connections`): an acceptor takes one
    /// per connection; a closing connection gives it back.
    pub slots: Arc<ConnectionSlots>,
    /// What the open-file limit allowed, the pressure counters, and the
    /// `codel` admission state (`src/stages/pressure.rs`, `admission.rs`).
    pub pressure: Pressure,
    /// Set when the server begins to stop.
    pub shutdown: Latch,
    /// Starting, ready (accepting) or draining: what `/readyz` answers.
    pub readiness: Readiness,
    /// When the server started (uptime in `/status`).
    pub started: Instant,
    /// Names of the stage implementations in use, for `/status`.
    pub stage_names: StageNames,
    /// The handshake stage, when TLS listeners feed the line.
    pub tls: std::sync::OnceLock<Arc<handshake::Handshake>>,
    /// Set once the acceptors may accept: when the server starts, or when
    /// its owner says so (`ServerBuilder::hold_accepting`).
    pub accepting: Latch,
    /// The HTTP/2 connection stage: connections that speak HTTP/2 are
    /// pushed onto its queues.
    pub http2: Arc<h2_connection::Http2>,
    /// The ACME challenges published now: the plain listeners answer the
    /// http-01 ones, the TLS handshakes the tls-alpn-01 ones.
    pub challenges: Arc<crate::tls::Challenges>,
    /// What the ACME manager reports to `/status`, when one runs.
    pub acme: crate::service::status::AcmeStatus,
}

/// The names of the stage implementations a line runs.
#[derive(Clone, Debug, Default)]
pub struct StageNames {
    /// The acceptor's `Acceptor::name`.
    pub acceptor: String,
    /// The dispatcher's `Dispatcher::name`.
    pub dispatcher: String,
    /// The handler's `Handler::name`.
    pub handler: String,
}

impl Line {
    /// The pending queue of the calling worker.
    #[inline(always)]
    pub fn local_pending(&self) -> &PendingQueue {
        self.pending_of(crate::runtime::current_worker().unwrap_or(0))
    }

    /// The pending queue of worker `worker` (modulo the workers), for a
    /// caller that knows which worker it runs on.
    #[inline(always)]
    pub fn pending_of(&self, worker: usize) -> &PendingQueue {
        &self.pending[crate::runtime::wrap_index(worker, self.pending.len())]
    }
}

/// Accepts connections and pushes them onto the pending queues.
pub trait Acceptor: Send + Sync {
    /// What `/status` and the start-up line call it.
    fn name(&self) -> &str;

    /// Binds to `addr` and spawns the accepting green threads on `runtime`.
    /// Returns the bound address (useful with port 0).
    fn start(&self, runtime: &Handle, addr: SocketAddr, line: &Arc<Line>)
        -> io::Result<SocketAddr>;

    /// Binds a TLS listener to `addr`: its connections go to `handshake`
    /// (the handshake stage) rather than straight to the pending queues.
    /// The built-in acceptors do; by default an acceptor refuses.
    fn start_tls(
        &self,
        runtime: &Handle,
        addr: SocketAddr,
        line: &Arc<Line>,
        handshake: &Arc<handshake::Handshake>,
    ) -> io::Result<SocketAddr> {
        let _ = (runtime, addr, line, handshake);
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("the {} acceptor cannot serve TLS listeners", self.name()),
        ))
    }

    /// Spawns the accepting green threads for a listener the server has
    /// bound (TCP or Unix) or inherited (systemd); they stop accepting once
    /// `stop` is set (a reload removed the listener) or the server stops,
    /// and what they accepted carries on. An acceptor that does not
    /// implement it takes TCP addresses only, through `start`.
    fn start_listener(
        &self,
        _runtime: &Handle,
        bound: Bound,
        _line: &Arc<Line>,
        _stop: &Arc<Latch>,
    ) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "the {} acceptor takes TCP addresses only, not {}",
                self.name(),
                bound.describe()
            ),
        ))
    }
}

/// A listening socket handed to an acceptor, and where it came from.
pub struct Bound {
    /// The listener, bound and listening.
    pub listener: TcpListener,
    /// Where it came from.
    pub origin: Origin,
}

/// Where a [`Bound`] listener came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Bound by this server to a TCP address: an acceptor may bind the
    /// address again (SO_REUSEPORT) with the same IPV6_V6ONLY.
    Fresh {
        /// IPV6_V6ONLY, as bound.
        only_v6: bool,
    },
    /// A Unix-domain socket at this path.
    Unix(std::path::PathBuf),
    /// Passed by the service manager: how messages name it.
    Inherited(String),
}

impl Bound {
    /// A TCP listener this server bound.
    pub fn fresh(listener: TcpListener, only_v6: bool) -> Bound {
        Bound {
            listener,
            origin: Origin::Fresh { only_v6 },
        }
    }

    /// What a message calls it: the address, `unix:PATH`, or the systemd name.
    pub fn describe(&self) -> String {
        match &self.origin {
            Origin::Fresh { .. } => match self.listener.local_addr() {
                Ok(addr) => addr.to_string(),
                Err(_) => "a TCP listener".to_string(),
            },
            Origin::Unix(path) => format!("unix:{}", path.display()),
            Origin::Inherited(name) => name.clone(),
        }
    }
}

/// Takes connections off a worker's pending queue and runs the handler on them.
pub trait Dispatcher: Send + Sync {
    /// What `/status` and the start-up line call it.
    fn name(&self) -> &str;

    /// Spawns the dispatching green threads on every worker.
    fn start(&self, runtime: &Handle, line: &Arc<Line>, handler: Arc<dyn Handler>);
}

/// Serves the next request(s) of a connection, then recycles it onto the
/// pending queue or closes it.
pub trait Handler: Send + Sync {
    /// What `/status` and the start-up line call it.
    fn name(&self) -> &str;

    /// Serves what is ready on `conn`, then recycles it onto the worker's
    /// pending queue or drops (closes) it.
    fn handle<'a>(&'a self, conn: Conn, line: &'a Line) -> HandlerFuture<'a>;

    /// Serves `conn` on a green thread of its own on this worker, as the
    /// `spawn` dispatcher does for each connection it pops: by default one
    /// that awaits [`Self::handle`]. A handler may make that green thread's
    /// future its own instead, saving a boxed future per request.
    fn spawn_handle(self: Arc<Self>, conn: Conn, line: Arc<Line>)
    where
        Self: 'static,
    {
        crate::runtime::spawn_detached_with(move || async move { self.handle(conn, &line).await });
    }
}

/// The built-in acceptor of a kind, as named in config and on the CLI.
pub fn acceptor_for(kind: AcceptorKind) -> Arc<dyn Acceptor> {
    match kind {
        AcceptorKind::Readiness => Arc::new(acceptor::READINESS),
        AcceptorKind::ReusePort => Arc::new(acceptor::ReusePort),
        AcceptorKind::Spin => Arc::new(acceptor::SPIN),
    }
}

/// The built-in dispatcher of a kind; `pool_size` is used by the pool.
pub fn dispatcher_for(kind: DispatcherKind, pool_size: usize) -> Arc<dyn Dispatcher> {
    match kind {
        DispatcherKind::Spawn => Arc::new(dispatcher::SpawnPerRequest),
        DispatcherKind::Pool => Arc::new(dispatcher::Pool { size: pool_size }),
    }
}
