//! Assembles the line: runtime, queues, stages; and takes it down gracefully.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::access_log::AccessLog;
use crate::config::{resolve_workers, Config, SharedConfig};
use crate::metrics::Metrics;
use crate::runtime::{Latch, Runtime};
use crate::service::{Service, StatusSource};
use crate::stages::handler::HttpHandler;
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
    addr: SocketAddr,
    access_log: Option<AccessLog>,
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
            slots: Slots::new(config.limits.max_connections, metrics.clone()),
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
                        line.pending[worker].run_idle(waiting).await
                    })
                    .detach();
            }
        }
        dispatcher.start(runtime.handle(), &line, handler);
        let listen = line.config.load().listen;
        let addr = acceptor.start(runtime.handle(), listen, &line)?;
        Ok(Server {
            runtime,
            line,
            addr,
            access_log,
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

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
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

    /// Stops accepting, lets in-flight requests finish (up to
    /// `timeouts.shutdown_grace`), then closes every connection, idle
    /// keep-alive ones included.
    pub fn shutdown(self) {
        self.line.shutdown.set();
        let deadline = Instant::now() + self.line.config.load().timeouts.shutdown_grace;
        while Instant::now() < deadline {
            let t = self.line.metrics.totals();
            // Connections that have not sent a byte of a request are not
            // in flight: they are parked, and close with the idle ones.
            if t.reading <= 0 && t.writing <= 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        self.runtime.shutdown();
        for pending in &self.line.pending {
            pending.close_idle();
        }
        self.flush_log();
    }
}
