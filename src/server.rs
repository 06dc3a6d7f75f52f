//! Assembles the line: runtime, queues, stages; and takes it down gracefully.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::access_log::AccessLog;
use crate::config::{resolve_workers, Config, SharedConfig};
use crate::metrics::Metrics;
use crate::runtime::{race, Latch, Runtime};
use crate::service::{Service, StatusSource};
use crate::stages::handler::HttpHandler;
use crate::stages::pressure::{FdBudget, Pressure};
use crate::stages::{
    acceptor_for, dispatcher_for, Acceptor, Dispatcher, Handler, Line, PendingQueue, Slots,
    StageNames, Waiting,
};

/// Builds a server from a config, with any stage swapped for your own.
pub struct ServerBuilder {
    config: Config,
    acceptor: Option<Arc<dyn Acceptor>>,
    dispatcher: Option<Arc<dyn Dispatcher>>,
    handler: Option<Arc<dyn Handler>>,
    routes: Vec<(String, Arc<dyn Service>)>,
}

/// A running server. Dropping it stops it at once; `shutdown` stops it gracefully.
pub struct Server {
    runtime: Runtime,
    line: Arc<Line>,
    addrs: Vec<SocketAddr>,
    access_log: Option<AccessLog>,
}

/// Why the server could not listen on an address, worded for the person
/// running it: the address, what is wrong, and what to do. Carried inside
/// the `io::Error` that [`ServerBuilder::start`] returns (find it with
/// `get_ref()` and `downcast_ref`); its kind is the underlying error's.
#[derive(Debug)]
pub struct ListenError {
    /// The address (or `host:port`) that could not be listened on.
    pub addr: String,
    /// What the system said.
    pub source: io::Error,
}

impl ListenError {
    fn wrap(addr: impl fmt::Display, source: io::Error) -> io::Error {
        let kind = source.kind();
        let addr = addr.to_string();
        io::Error::new(kind, ListenError { addr, source })
    }

    /// The message, with `option` (like `--listen` or `listen in
    /// config/conveyor.toml`) named as where the address came from and
    /// where to change it.
    pub fn describe(&self, option: &str) -> String {
        let addr = &self.addr;
        let port = addr.rsplit_once(':').map_or("", |(_, p)| p);
        let host = addr.rsplit_once(':').map_or(addr.as_str(), |(h, _)| h);
        let why = match self.source.kind() {
            io::ErrorKind::AddrInUse => format!(
                "port {port} is already in use by another process; stop that process, \
                 or choose another port with {option}"
            ),
            io::ErrorKind::AddrNotAvailable => format!(
                "this machine has no address {host}; with {option}, use one of its own, \
                 like 127.0.0.1:{port} (this machine only) or 0.0.0.0:{port} (every IPv4 address)"
            ),
            io::ErrorKind::PermissionDenied => format!(
                "ports below 1024 need root or CAP_NET_BIND_SERVICE; choose a port from 1024 up \
                 with {option}, like 8080"
            ),
            _ => format!("{}; check the address given by {option}", self.source),
        };
        format!("cannot listen on {addr} ({option}): {why}")
    }
}

impl fmt::Display for ListenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe("the `listen` setting"))
    }
}

impl std::error::Error for ListenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// What a graceful stop ([`Server::shutdown`]) found and did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stopped {
    /// Connections with a request being read or answered when the stop began.
    pub in_flight: u64,
    /// Open connections with no request in flight (idle keep-alive ones,
    /// new ones that have sent nothing), closed at once.
    pub idle_closed: u64,
    /// Connections still reading or answering when the grace period ran
    /// out, and closed unfinished.
    pub cut: u64,
    /// The grace period (`timeouts.shutdown_grace`).
    pub grace: Duration,
    /// How long the stop took.
    pub took: Duration,
}

impl ServerBuilder {
    /// A builder with the stages `config` names; swap any with the methods below.
    pub fn new(config: Config) -> ServerBuilder {
        ServerBuilder {
            config,
            acceptor: None,
            dispatcher: None,
            handler: None,
            routes: Vec::new(),
        }
    }

    /// Uses this acceptor instead of the one named in `stages.acceptor`.
    pub fn acceptor(mut self, acceptor: Arc<dyn Acceptor>) -> Self {
        self.acceptor = Some(acceptor);
        self
    }

    /// Uses this dispatcher instead of the one named in `stages.dispatcher`.
    pub fn dispatcher(mut self, dispatcher: Arc<dyn Dispatcher>) -> Self {
        self.dispatcher = Some(dispatcher);
        self
    }

    /// Uses this request handler instead of the built-in HTTP handler.
    pub fn handler(mut self, handler: Arc<dyn Handler>) -> Self {
        self.handler = Some(handler);
        self
    }

    /// Mounts `service` on `path` beside the built-in routes: `"/healthz"`
    /// answers that path alone, `"/api/*"` every path under `/api/`. A
    /// mounted path wins over `/echo`, `/status` and the static files. Not
    /// used when a custom `handler` replaces the built-in one.
    pub fn route(mut self, path: &str, service: Arc<dyn Service>) -> Self {
        self.routes.push((path.to_string(), service));
        self
    }

    /// Binds the listener, starts the workers and the stages, and returns
    /// once the server accepts connections.
    pub fn start(self) -> io::Result<Server> {
        let config = self.config;
        let acceptor = self
            .acceptor
            .unwrap_or_else(|| acceptor_for(config.stages.acceptor));
        let dispatcher = self
            .dispatcher
            .unwrap_or_else(|| dispatcher_for(config.stages.dispatcher, config.stages.pool_size));
        let workers = resolve_workers(config.workers);
        let access_log = if config.log.access_log {
            Some(AccessLog::open(&config.log.access_log_path)?)
        } else {
            None
        };
        let handler: Arc<dyn Handler> = match self.handler {
            Some(h) => h,
            None => Arc::new(HttpHandler::with_routes(
                &config,
                workers,
                access_log.clone(),
                self.routes,
            )?),
        };
        let runtime = Runtime::builder()
            .workers(workers)
            .poll_mode(config.runtime.poll_mode)
            .build()?;
        let metrics = Arc::new(Metrics::new(workers));
        // Raises the open-file limit; sizes the slots by it (the binary
        // prints the note); warns of a configured figure it cannot hold.
        let budget = FdBudget::plan(config.limits.max_connections);
        if let Some(warning) = budget.warning() {
            eprintln!("{warning}");
        }
        let line = Arc::new(Line {
            pending: (0..workers)
                .map(|_| {
                    PendingQueue::new(
                        config.queue.capacity,
                        config.timeouts.keepalive_idle,
                        config.timeouts.header_read,
                    )
                })
                .collect(),
            slots: Slots::new(budget.max_connections, metrics.clone()),
            pressure: Pressure::new(budget, workers),
            metrics,
            shutdown: Latch::new(),
            started: Instant::now(),
            stage_names: StageNames {
                acceptor: acceptor.name().to_string(),
                dispatcher: dispatcher.name().to_string(),
                handler: handler.name().to_string(),
            },
            config: SharedConfig::new(config),
        });
        for worker in 0..workers {
            for waiting in [Waiting::FirstRequest, Waiting::KeepAlive] {
                let line = line.clone();
                runtime
                    .spawn_on(worker, async move {
                        let pending = &line.pending[worker];
                        race(pending.run_idle(waiting), line.shutdown.wait()).await;
                        // A stop closes idle connections at once: they hold
                        // no request, so the grace period is not theirs.
                        pending.close_idle();
                    })
                    .detach();
            }
        }
        dispatcher.start(runtime.handle(), &line, handler);
        let addrs = listen(acceptor.as_ref(), &runtime, &line)?;
        Ok(Server {
            runtime,
            line,
            addrs,
            access_log,
        })
    }
}

/// Starts `acceptor` on every address `listen` names (a host name may have
/// several, like `localhost`: 127.0.0.1 and ::1). Errors name the address.
fn listen(
    acceptor: &dyn Acceptor,
    runtime: &Runtime,
    line: &Arc<Line>,
) -> io::Result<Vec<SocketAddr>> {
    let listen = line.config.load().listen.clone();
    let wanted = listen
        .resolve()
        .map_err(|e| ListenError::wrap(&listen, e))?;
    let several = wanted.len() > 1;
    let mut bound: Vec<SocketAddr> = Vec::new();
    let mut first_error = None;
    for mut addr in wanted {
        // Port 0 on a name: every address gets the port the first one got.
        if let (0, Some(first)) = (addr.port(), bound.first()) {
            addr.set_port(first.port());
        }
        match acceptor.start(runtime.handle(), addr, line) {
            Ok(local) => bound.push(local),
            // A name may resolve to a family this machine lacks (::1 with
            // IPv6 off): skipped while another address serves; the start-up
            // line lists the addresses bound.
            Err(e) if several && lacks_address(&e) => {
                first_error.get_or_insert(ListenError::wrap(addr, e));
            }
            Err(e) => return Err(ListenError::wrap(addr, e)),
        }
    }
    match (bound.is_empty(), first_error) {
        (true, Some(e)) => Err(e),
        _ => Ok(bound),
    }
}

fn lacks_address(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::AddrNotAvailable || e.raw_os_error() == Some(libc::EAFNOSUPPORT)
}

impl Server {
    /// Starts a server with the stages named in `config`.
    pub fn start(config: Config) -> io::Result<Server> {
        ServerBuilder::new(config).start()
    }

    /// A builder, to swap stages or mount services before starting.
    pub fn builder(config: Config) -> ServerBuilder {
        ServerBuilder::new(config)
    }

    /// The address actually bound (useful with port 0); the first of
    /// [`Self::local_addrs`].
    pub fn local_addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// Every address bound: one, or each address a `listen` host name has.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Makes `config` current for every connection the handler takes from
    /// now on (a kept-alive one included, from its next request); returns
    /// its generation. Settings read per request take effect: `limits`, the
    /// header, body and write timeouts, `queue.overload`. Those read at
    /// start-up (listener, workers, stages, queue capacity, idle timeouts,
    /// root and `static`, the access log) need a restart.
    pub fn replace_config(&self, config: Config) -> u64 {
        self.line.config.replace(config)
    }

    /// The line the stages share: queues, config, shutdown latch.
    pub fn line(&self) -> &Arc<Line> {
        &self.line
    }

    /// What `/status` answers, as JSON.
    pub fn status_json(&self) -> String {
        crate::service::status::to_json(&StatusSource::report(&*self.line))
    }

    /// Writes out what the access log has buffered.
    pub fn flush_log(&self) {
        if let Some(log) = &self.access_log {
            log.flush();
        }
    }

    /// Stops accepting and closes idle connections at once, lets in-flight
    /// requests finish (up to `timeouts.shutdown_grace`), then closes every
    /// connection left. Says what it found and whether the grace period cut
    /// any.
    pub fn shutdown(self) -> Stopped {
        let started = Instant::now();
        // A handler counts a connection as reading while it serves it, the
        // write of its response included: "reading" is the number in flight.
        let in_flight = |t: &crate::metrics::Totals| t.reading.max(t.writing).max(0) as u64;
        let before = self.line.metrics.totals();
        self.line.shutdown.set();
        let grace = self.line.config.load().timeouts.shutdown_grace;
        let deadline = started + grace;
        let mut left = in_flight(&before);
        while left > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
            // Connections that have not sent a byte of a request are not
            // in flight: they are parked, and closed with the idle ones.
            left = in_flight(&self.line.metrics.totals());
        }
        self.runtime.shutdown();
        for pending in &self.line.pending {
            pending.close_idle();
        }
        self.flush_log();
        Stopped {
            in_flight: in_flight(&before),
            idle_closed: (before.open.max(0) as u64).saturating_sub(in_flight(&before)),
            cut: left,
            grace,
            took: started.elapsed(),
        }
    }
}
