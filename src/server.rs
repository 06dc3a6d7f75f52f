//! Assembles the line: runtime, queues, stages; and takes it down gracefully.

mod acme;

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::access_log::AccessLog;
use crate::config::{resolve_workers, Config, SharedConfig};
pub use crate::listening::ListenError;
use crate::listening::OpenListener;
use crate::metrics::Metrics;
use crate::runtime::sys::account::Account;
use crate::runtime::{race, Latch, Runtime};
use crate::service::{Readiness, Service, StatusSource};
use crate::stages::h2_connection::Http2;
use crate::stages::http_handler::HttpHandler;
use crate::stages::pressure::{FdBudget, Pressure};
use crate::stages::{
    acceptor_for, dispatcher_for, Acceptor, ConnectionSlots, Dispatcher, Handler, Line,
    PendingQueue, StageNames, Waiting,
};

/// Builds a server from a config, with any stage swapped for your own.
pub struct ServerBuilder {
    config: Config,
    acceptor: Option<Arc<dyn Acceptor>>,
    dispatcher: Option<Arc<dyn Dispatcher>>,
    handler: Option<Arc<dyn Handler>>,
    routes: Vec<(String, Arc<dyn Service>)>,
    hold_accepting: bool,
}

/// A running server. Dropping it stops it at once; `shutdown` stops it gracefully.
pub struct Server {
    pub(crate) runtime: Runtime,
    line: Arc<Line>,
    addrs: Vec<SocketAddr>,
    tls_addrs: Vec<SocketAddr>,
    /// The access log in use (the built-in handler's, replaced by a reload).
    pub(crate) access_log: Mutex<Option<AccessLog>>,
    pub(crate) acceptor: Arc<dyn Acceptor>,
    /// Every listener accepted on; a reload adds and removes.
    pub(crate) listening: Mutex<Vec<OpenListener>>,
    /// The built-in handler, rebuilt by a reload; `None` with a custom one.
    pub(crate) http: Option<Arc<HttpHandler>>,
    /// The ACME manager's thread, when `acme.domains` are set; started
    /// with accepting (after a switch to `user`, so `state_dir` is that
    /// account's).
    acme: Mutex<Option<acme::AcmeManager>>,
}

/// What a graceful stop ([`Server::shutdown`]) found and did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stopped {
    /// Connections with a request being read or answered when the stop
    /// began, and HTTP/2 connections (each waited for until it closes).
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
            hold_accepting: false,
        }
    }

    /// Binds every listener but accepts nothing until
    /// [`Server::start_accepting`]: for an owner with something to do
    /// first (the binary switches from root to `user`, so that no request
    /// is ever served as root). `/readyz` answers 503 until then.
    pub fn hold_accepting(mut self) -> ServerBuilder {
        self.hold_accepting = true;
        self
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
        let http = match self.handler {
            Some(_) => None,
            None => Some(Arc::new(HttpHandler::with_routes(
                &config,
                workers,
                access_log.clone(),
                self.routes,
            )?)),
        };
        let handler: Arc<dyn Handler> = match (self.handler, &http) {
            (Some(h), _) => h,
            (None, Some(http)) => http.clone(),
            (None, None) => unreachable!("built above when no handler was given"),
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
        let http2 = Arc::new(Http2::new(workers, config.queue.capacity));
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
            slots: ConnectionSlots::new(budget.max_connections, metrics.clone()),
            pressure: Pressure::new(budget, workers),
            metrics,
            shutdown: Latch::new(),
            readiness: Readiness::new(),
            started: Instant::now(),
            stage_names: StageNames {
                acceptor: acceptor.name().to_string(),
                dispatcher: dispatcher.name().to_string(),
                handler: handler.name().to_string(),
            },
            config: SharedConfig::new(config),
            tls: std::sync::OnceLock::new(),
            accepting: Latch::new(),
            http2,
            challenges: Default::default(),
            acme: Default::default(),
        });
        line.http2.start(runtime.handle(), &line);
        if !self.hold_accepting {
            // Each listener accepts as soon as it is open.
            line.accepting.set();
        }
        start_idle_pumps(&runtime, &line);
        dispatcher.start(runtime.handle(), &line, handler);
        let listening =
            crate::listening::open(acceptor.as_ref(), &runtime, &line, &line.config.load(), &[])?;
        let addrs = listening.iter().filter_map(|l| l.addr).collect();
        let tls_addrs =
            crate::listening::open_tls(acceptor.as_ref(), runtime.handle(), &line, workers)?;
        let acme = match self.hold_accepting {
            true => acme::check(&line, &line.config.load()).map(|()| None)?,
            false => acme::start(&line, &line.config.load())?,
        };
        // Every listener accepts: only now may `/readyz` say so.
        if !self.hold_accepting {
            line.readiness.mark_ready();
        }
        Ok(Server {
            runtime,
            line,
            addrs,
            tls_addrs,
            access_log: Mutex::new(access_log),
            acceptor,
            listening: Mutex::new(listening),
            http,
            acme: Mutex::new(acme),
        })
    }
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

    /// Lets the acceptors take connections, after
    /// [`ServerBuilder::hold_accepting`] (at once otherwise).
    pub fn start_accepting(&self) {
        self.line.accepting.set();
        self.line.readiness.mark_ready();
        let mut acme = lock(&self.acme);
        if acme.is_none() {
            match acme::start(&self.line, &self.line.config.load()) {
                Ok(started) => *acme = started,
                Err(e) => eprintln!("conveyor: acme: cannot start: {e}"),
            }
        }
    }

    /// The address actually bound (useful with port 0); the first of
    /// [`Self::local_addrs`], or 0.0.0.0:0 when only Unix or inherited
    /// sockets are listened on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addrs
            .first()
            .copied()
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Every TCP address bound at start-up: one per `listen` address, or
    /// each address a host name has.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Every address bound for HTTPS (`tls.listen`, `--tls-listen`).
    pub fn tls_addrs(&self) -> &[SocketAddr] {
        &self.tls_addrs
    }

    /// The handshake stage, when the server serves HTTPS: its
    /// `reload` loads new certificates (SIGHUP).
    pub fn tls(&self) -> Option<&Arc<crate::stages::handshake::Handshake>> {
        self.line.tls.get()
    }

    /// Every listener accepted on now, as the start-up line shows them:
    /// `http://127.0.0.1:8080`, `unix:/run/conveyor.sock`, or a systemd
    /// socket's name.
    pub fn listeners(&self) -> Vec<String> {
        lock(&self.listening)
            .iter()
            .map(|l| l.shown.clone())
            .collect()
    }

    /// Makes `config` current for every connection the handler takes from
    /// now on (a kept-alive one included, from its next request); returns
    /// its generation. Only settings read per request take effect: `limits`,
    /// the header, body and write timeouts, `queue.overload`. To apply root,
    /// `static`, the access log and listeners too, use [`Server::reload`].
    pub fn replace_config(&self, config: Config) -> u64 {
        self.line.config.replace(config)
    }

    /// The line the stages share: queues, config, shutdown latch.
    pub fn line(&self) -> &Arc<Line> {
        &self.line
    }

    /// What `/status` answers, as JSON.
    pub fn status_json(&self) -> String {
        let mut report = StatusSource::report(&*self.line);
        if let Some(figures) = self.http.as_ref().and_then(|h| h.cache_figures()) {
            report.file_cache = figures;
        }
        report.sites = self.http.as_ref().and_then(|h| h.site_figures());
        crate::service::status::to_json(&report)
    }

    /// Gives the access log's file to `account`, the one the process is
    /// about to switch to: opened as root, it would stay root's, and a
    /// SIGUSR1 with no rotation before it (the same file opened again, as
    /// that account) would fail. On the open file, as nginx's master does.
    pub fn give_log_to(&self, account: Account) -> io::Result<()> {
        match &*lock(&self.access_log) {
            Some(log) => log.give_to(account.uid, account.gid),
            None => Ok(()),
        }
    }

    /// Writes out what the access log has buffered.
    pub fn flush_log(&self) {
        if let Some(log) = &*lock(&self.access_log) {
            log.flush();
        }
    }

    /// Begins a stop without stopping: `/readyz` answers 503 from now on
    /// and every response closes its connection, while the server goes on
    /// accepting and serving, so a load balancer can take it out of
    /// rotation before [`Self::shutdown`] (after `shutdown.drain_delay`).
    pub fn drain(&self) {
        self.line.readiness.drain();
    }

    /// Stops accepting and closes idle connections at once, lets in-flight
    /// requests finish (up to `timeouts.shutdown_grace`), then closes every
    /// connection left. Says what it found and whether the grace period cut
    /// any.
    pub fn shutdown(self) -> Stopped {
        let started = Instant::now();
        // A handler counts a connection as reading while it serves it, the
        // write of its response included: "reading" is the number in flight.
        // An HTTP/2 connection holds its streams' last bytes (in their
        // pipes, and within the client's window) after the handler has
        // written them: it counts until it closes, which it does once its
        // streams are done (GOAWAY is sent on the latch), at once if none.
        let in_flight = |t: &crate::metrics::Totals, line: &Line| {
            t.reading.max(t.writing).max(0) as u64 + line.http2.snapshot().connections
        };
        let before = self.line.metrics.totals();
        let in_flight_before = in_flight(&before, &self.line);
        self.line.readiness.drain();
        self.line.shutdown.set();
        let grace = self.line.config.load().timeouts.shutdown_grace;
        let deadline = started + grace;
        let mut left = in_flight_before;
        while left > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
            // Connections that have not sent a byte of a request are not
            // in flight: they are parked, and closed with the idle ones.
            left = in_flight(&self.line.metrics.totals(), &self.line);
        }
        self.runtime.shutdown();
        // Unix socket files go with their listeners.
        lock(&self.listening).clear();
        for pending in &self.line.pending {
            pending.close_idle();
        }
        self.flush_log();
        Stopped {
            in_flight: in_flight_before,
            idle_closed: (before.open.max(0) as u64).saturating_sub(in_flight_before),
            cut: left,
            grace,
            took: started.elapsed(),
        }
    }
}

/// Per worker, the pumps of the two idle sets (new connections that sent
/// nothing yet, kept-alive ones).
fn start_idle_pumps(runtime: &Runtime, line: &Arc<Line>) {
    for worker in 0..line.pending.len() {
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
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
