//! The request handler: reads a preamble (within the header timeout), parses
//! it, routes it to a service, writes the response, and recycles the
//! connection onto the pending queue or closes it.
//!
//! Pipelining: every complete request already buffered is answered before
//! the first write, so their responses leave together in one write.

use std::sync::Arc;
use std::time::Instant;

use crate::access_log::{RequestLine, Sent};
use crate::config::Config;
use crate::http::h2_mapping::{neither_protocol, preface, Preface};
use crate::http::{parse_request, Limits, Request};
use crate::runtime::pooled::PooledBox;
use crate::runtime::swap::Swap;
use crate::service::acme_challenge::http_challenge;
use crate::service::auth::AuthFailures;
use crate::service::redirect::never_redirected;
use crate::service::rewrite::Ruled;
use crate::service::sites::{SiteParts, Sites, SitesReport, TOP_LEVEL};
use crate::service::static_files::CacheFigures;
use crate::service::{flush, Exchange, Outcome, Reading, Service, ServiceContext, Target};

use super::admission::Verdict;
use super::body::{drain, drainable, may_still_send};
use super::https_redirect::https_redirect;
use super::out_buffer::{OutBuffer, FLUSH_AT};
use super::proxy_header::{self, HeaderRead};
use super::{Conn, Handler, HandlerFuture, Line};

mod record;
use record::{raw, Logged};

/// The built-in handler: parses each request, routes it, writes the
/// response, then recycles or closes the connection.
pub struct HttpHandler {
    /// What the config builds: replaced whole by a reload ([`Self::rebuild`]);
    /// each turn of a connection takes the current one.
    current: Swap<Built>,
    /// Services mounted by the library user, kept across rebuilds.
    mounted: Vec<(String, Arc<dyn Service>)>,
    workers: usize,
    /// Failed logins per client, kept across reloads.
    failures: Arc<AuthFailures>,
}

/// A [`Built`] waiting for the rest of a reload to succeed.
pub(crate) struct PreparedHandler(Built);

/// The limits, routes (static files included) and access log one config
/// makes.
struct Built {
    limits: Limits,
    /// The top-level site: routes, rules, watched site files.
    top: SiteParts,
    /// `[[sites]]`, chosen by host before routing; None without any.
    sites: Option<Box<Sites>>,
    /// No `[[sites]]`, no rules and no `[[auth]]` at the top level: the
    /// handler asks none of them (a copy of `answer` without them).
    plain: bool,
    /// Some site reads `_redirects` and `_headers`: each turn asks whether
    /// they changed.
    watched: bool,
    access_log: Option<crate::access_log::AccessLog>,
}

impl HttpHandler {
    /// The built-in routes for `workers` workers, without an access log
    /// (for a library user wrapping it in a handler of their own).
    pub fn new(config: &Config, workers: usize) -> std::io::Result<HttpHandler> {
        Self::with_routes(config, workers, None, Vec::new())
    }

    /// The built-in routes (the endpoints the config turns on, static files) with
    /// `mounted` services on top: `"/x"` for that path, `"/x/*"` for every
    /// path under it.
    pub(crate) fn with_routes(
        config: &Config,
        workers: usize,
        access_log: Option<crate::access_log::AccessLog>,
        mounted: Vec<(String, Arc<dyn Service>)>,
    ) -> std::io::Result<HttpHandler> {
        let failures = Arc::default();
        let built = Built::new(config, workers, access_log, &mounted, &failures, None)?;
        Ok(HttpHandler {
            current: Swap::new(built, workers),
            mounted,
            workers,
            failures,
        })
    }

    /// Builds the routes, static files and limits of `config`, for
    /// [`Self::commit`]; on error nothing changes.
    pub(crate) fn prepare(
        &self,
        config: &Config,
        access_log: Option<crate::access_log::AccessLog>,
    ) -> std::io::Result<PreparedHandler> {
        let previous = self.current.load();
        let (workers, failures) = (self.workers, &self.failures);
        let sites = previous.sites.as_deref();
        Built::new(config, workers, access_log, &self.mounted, failures, sites).map(PreparedHandler)
    }

    /// Builds the routes again for a changed `_redirects` or `_headers`
    /// (a fresh file cache: the heads `_headers` shapes are rebuilt); a
    /// file that does not read keeps the rules in use, said on stderr.
    fn reread_site_files(&self, built: Arc<Built>, line: &Line) -> Arc<Built> {
        let config = line.config.load();
        let log = built.access_log.clone();
        let (failures, sites) = (&self.failures, built.sites.as_deref());
        match Built::new(&config, self.workers, log, &self.mounted, failures, sites) {
            Ok(new) => {
                eprintln!("conveyor: _redirects or _headers changed: read again");
                self.current.replace(new);
                self.current.load()
            }
            Err(e) => {
                eprintln!("conveyor: {e}; the rules in use stay until it is fixed");
                built
            }
        }
    }

    /// What serves `conn`'s turn: the current build, made again first if
    /// a `_redirects` or `_headers` it watches changed since `conn` was
    /// ready. Inlined into both callers: a call of its own cost more.
    #[inline(always)]
    fn built_for(&self, conn: &Conn, line: &Line) -> Arc<Built> {
        let built = self.current.load();
        let since = conn.ready_since;
        let changed = built.watched
            && (built.top.changed(since) || built.sites.as_ref().is_some_and(|s| s.changed(since)));
        match changed {
            true => self.reread_site_files(built, line),
            false => built,
        }
    }

    /// The figures of the static files' cache in use, for `/status`.
    pub(crate) fn cache_figures(&self) -> Option<CacheFigures> {
        let built = self.current.load();
        crate::service::sites::cache_figures(&built.top, built.sites.as_deref())
    }

    /// The requests per site, for `/status`; None without `[[sites]]`.
    pub(crate) fn site_figures(&self) -> Option<SitesReport> {
        self.current.load().sites.as_ref().map(|s| s.figures())
    }

    /// Makes what `prepare` built current for every connection's next
    /// turn; a turn under way finishes with the old one.
    pub(crate) fn commit(&self, prepared: PreparedHandler) {
        self.current.replace(prepared.0);
    }
}

impl Built {
    fn new(
        config: &Config,
        workers: usize,
        access_log: Option<crate::access_log::AccessLog>,
        mounted: &[(String, Arc<dyn Service>)],
        failures: &Arc<AuthFailures>,
        previous: Option<&Sites>,
    ) -> std::io::Result<Built> {
        let refused = config
            .endpoint_clash()
            .or_else(|| config.proxy_clash())
            .or_else(|| config.static_files.cors.refusal())
            .or_else(|| config.limits.per_client.refusal());
        if let Some(refused) = refused {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                refused,
            ));
        }
        let top = SiteParts::build(config, workers, mounted, failures)?;
        let sites = Sites::build(config, workers, mounted, failures, previous)?.map(Box::new);
        let plain = sites.is_none() && top.rules.is_empty() && top.auth.is_empty();
        let watched = top.netlify.is_some() || sites.is_some();
        Ok(Built {
            plain,
            watched,
            limits: config.limits.preamble(),
            top,
            sites,
            access_log,
        })
    }

    /// Owns its `Built`, and `line` (an `Arc` from `spawn_handle`): the
    /// future holds them directly, with no wrapper future to move them.
    async fn serve<L: std::ops::Deref<Target = Line>>(self: Arc<Self>, mut conn: Conn, line: L) {
        let line: &Line = &line;
        // Asked once: a thread-local read each time (callgrind).
        let worker = crate::runtime::current_worker().unwrap_or(0);
        let reading = Reading::new(line.metrics.worker(worker));
        // One config snapshot for everything this turn answers.
        let ctx = ServiceContext {
            config: line.config.load(),
            metrics: &line.metrics,
            started: line.started,
            shutdown: &line.shutdown,
            status: line,
            readiness: &line.readiness,
            files: self.top.routes.files(),
            sites: self.sites.as_deref(),
        };
        // How long it waited since queued; `codel` may shed it for that.
        let fresh = conn.requests == 0;
        let verdict = line.pressure.admission.on_take(
            worker,
            conn.ready_since,
            Instant::now(),
            fresh,
            &ctx.config,
        );
        if verdict == Verdict::Shed {
            self.shed(&mut conn, line, &ctx).await;
            return;
        }
        let next = self.serve_ready(&mut conn, line, &ctx).await;
        drop(reading);
        if line.shutdown.is_set() {
            return;
        }
        match next {
            Next::Recycle => line.pending_of(worker).recycle(conn, line),
            Next::Park => line.pending_of(worker).park(conn),
            Next::Close => {}
            Next::Http2 => line.http2.admit(line, conn).await,
            // On a green thread of its own: the handler (a pool's slot)
            // is free while the client finishes sending.
            Next::Linger => {
                let limit = line.config.load().timeouts.lingering;
                crate::runtime::spawn(conn.close_lingering(limit)).detach();
            }
        }
    }

    /// Answers a new connection 503 with `Retry-After` and closes it: the
    /// queue wait stayed above `queue.codel_target`. What the request sent
    /// is read first, so the close does not reset the answer away.
    async fn shed(&self, conn: &mut Conn, line: &Line, ctx: &ServiceContext<'_>) {
        let _ = conn.try_fill(ctx.read_buffer_size(), line.metrics.here());
        let mut out = OutBuffer::take();
        let out = &mut out.0;
        let bytes = crate::http::write_error(
            out,
            503,
            "server overloaded, retry shortly",
            false,
            &[("Retry-After", "1")],
        );
        self.record(line, conn, raw(conn), 503, bytes, Instant::now());
        let _ = flush(&conn.stream, out, ctx).await;
    }

    /// Answers every complete request buffered (reading first if there is
    /// none). Returns what becomes of the connection.
    async fn serve_ready(&self, conn: &mut Conn, line: &Line, ctx: &ServiceContext<'_>) -> Next {
        // A first request's headers are due a header timeout after the
        // accept, a later one's after its first bytes arrived: a client
        // trickling them never holds its slot longer.
        let since = match conn.requests {
            0 => conn.accepted,
            _ => conn.ready_since,
        };
        // The deadline itself is worked out only where a read waits: most
        // turns answer what is buffered (callgrind).
        if proxy_header::wanted(conn, ctx) {
            let deadline = since + ctx.config.timeouts.header_read;
            match proxy_header::read(conn, line, ctx, deadline).await {
                HeaderRead::Done => {}
                HeaderRead::Park => return Next::Park,
                HeaderRead::Close => return Next::Close,
                HeaderRead::Refused => return Next::Linger,
            }
        }
        let mut out = OutBuffer::take();
        let out = &mut out.0;
        let mut answered = 0u32;
        loop {
            let h2c_possible = may_be_h2c(conn, ctx);
            if h2c_possible {
                match preface(conn.input.pending()) {
                    Preface::Complete => return Next::Http2,
                    Preface::Partial => {
                        if !self.read_more(conn, line, ctx, since, out).await {
                            return Next::Close;
                        }
                        continue;
                    }
                    _ => {}
                }
            }
            // An HTTP/2 stream's request comes built with its preamble.
            let parsed = match conn.take_request(&self.limits) {
                Some(built) => {
                    #[cfg(debug_assertions)]
                    same_as_parsed(&built, conn, &self.limits);
                    Ok(Some(PooledBox::into_inner(built)))
                }
                None => parse_request(conn.input.pending(), &self.limits),
            };
            // Matched by reference: the request stays where it was parsed,
            // not copied (192 bytes) into a slot of its own in the future.
            match &parsed {
                Err(e) if h2c_possible && neither_protocol(conn.input.pending()) => {
                    // Neither HTTP/1.1 nor the h2c preface: logged with
                    // its status, but nothing is sent (RFC 9113 §3.4).
                    self.record(line, conn, raw(conn), e.status, 0, Instant::now());
                    return Next::Close;
                }
                Err(e) => {
                    let bytes = crate::http::write_error(out, e.status, e.message, false, &[]);
                    self.record(line, conn, raw(conn), e.status, bytes, Instant::now());
                    // What follows a bad request is never read as one.
                    return match flush(&conn.stream, out, ctx).await {
                        Ok(()) => Next::Linger,
                        Err(_) => Next::Close,
                    };
                }
                // The per-client rate step admitted no more this turn: the
                // rest come round through it again.
                Ok(Some(_)) if answered >= conn.admitted => {
                    return match flush(&conn.stream, out, ctx).await {
                        Ok(()) => Next::Recycle,
                        Err(_) => Next::Close,
                    };
                }
                Ok(Some(req)) => {
                    let outcome = match self.plain {
                        true => self.answer::<true>(req, conn, out, ctx, line).await,
                        false => self.answer::<false>(req, conn, out, ctx, line).await,
                    };
                    answered += 1;
                    if !outcome.keep_alive {
                        let flushed = flush(&conn.stream, out, ctx).await;
                        return match flushed {
                            Ok(()) if may_still_send(req, conn, outcome.status) => Next::Linger,
                            _ => Next::Close,
                        };
                    }
                    if out.len() >= FLUSH_AT && flush(&conn.stream, out, ctx).await.is_err() {
                        return Next::Close;
                    }
                }
                Ok(None) if answered > 0 => {
                    // Responses for what was buffered; the rest of the next
                    // request (if any) goes round the line again.
                    return match flush(&conn.stream, out, ctx).await {
                        Ok(()) => Next::Recycle,
                        Err(_) => Next::Close,
                    };
                }
                Ok(None) if !conn.input.has_pending() => {
                    // Nothing of a request yet: read what is there, or wait
                    // parked rather than here with a read buffer.
                    conn.admit_none_unread();
                    let size = ctx.read_buffer_size();
                    match conn.try_fill(size, line.metrics.here()) {
                        Ok(Some(n)) if n > 0 => {}
                        Ok(None) => return Next::Park,
                        _ => return Next::Close,
                    }
                }
                Ok(None) => {
                    conn.admit_none_unread();
                    if !self.read_more(conn, line, ctx, since, out).await {
                        let _ = flush(&conn.stream, out, ctx).await;
                        return Next::Close;
                    }
                }
            }
        }
    }

    /// Reads more of a preamble, due a header timeout after `since`; false
    /// when the connection should close (peer gone, error, or header
    /// timeout — answered 408).
    async fn read_more(
        &self,
        conn: &mut Conn,
        line: &Line,
        ctx: &ServiceContext<'_>,
        since: Instant,
        out: &mut Vec<u8>,
    ) -> bool {
        let deadline = since + ctx.config.timeouts.header_read;
        let size = ctx.read_buffer_size();
        let filled = conn.fill(size, deadline, line.metrics.here()).await;
        match filled {
            Ok(n) => n > 0,
            Err(e) if e.kind() != std::io::ErrorKind::TimedOut => false,
            Err(_) => {
                let bytes = crate::http::write_error(
                    out,
                    408,
                    "request header not received in time",
                    false,
                    &[],
                );
                self.record(line, conn, raw(conn), 408, bytes, deadline);
                false
            }
        }
    }

    /// Answers one request. `PLAIN`: no `[[sites]]`, rules or `[[auth]]`
    /// ([`Built::plain`]), so none is asked: that copy routes the request
    /// as it came, at the cost it had before they existed (callgrind).
    async fn answer<const PLAIN: bool>(
        &self,
        req: &Request,
        conn: &mut Conn,
        out: &mut Vec<u8>,
        ctx: &ServiceContext<'_>,
        line: &Line,
    ) -> Outcome {
        let started = crate::runtime::now();
        conn.requests = conn.requests.saturating_add(1);
        // A stream's pipe carries one request: its response ends with it.
        let keep_alive = req.keep_alive
            && !conn.stream.is_pipe()
            && u64::from(conn.requests) < ctx.config.limits.max_requests_per_connection
            && !ctx.shutdown.is_set()
            // Draining: each response closes its connection, so clients
            // (a load balancer's pool) move off before the stop.
            && !ctx.readiness.is_draining();
        // The site by its host: the top level without `[[sites]]`, and for
        // the probes and /status (a health check asking by address).
        let (site, refused, site_name) = match &self.sites {
            _ if PLAIN => (&self.top, None, "-"),
            Some(sites) if !never_redirected(req.path(), &ctx.config) => {
                sites.serving(&self.top, req.host.as_deref(), &conn.stream)
            }
            Some(_) => (&self.top, None, TOP_LEVEL),
            None => (&self.top, None, "-"),
        };
        // Worked out here, not passed in: an `Option<Target>` argument is
        // copied into the future whole (128 bytes) for every request.
        let on =
            line.challenges.answers_http() && !conn.stream.is_secure() && !conn.stream.is_pipe();
        let first = http_challenge(on, req.path(), |t| line.challenges.http(t));
        let ruled = match first.or_else(|| https_redirect(line, conn, req, ctx)) {
            Some(redirect) => Ruled::Answer(redirect),
            None if PLAIN || refused.is_some() => Ruled::Pass,
            None if site.rules.is_empty() || never_redirected(req.path(), &ctx.config) => {
                Ruled::Pass
            }
            None => site.rules.apply(req),
        };
        // The request routed and served: the one the client sent, or the
        // rules' rewrite of it (the log keeps the one sent).
        let routed = ruled.request().unwrap_or(req);
        let target = match (ruled.answer(), refused) {
            (Some(answer), _) => answer,
            (None, Some(refused)) => refused,
            (None, None) => site.routes.find(routed.path()),
        };
        // A body the route does not read is drained below or the connection
        // closes, never parsed as the next request: the same for every route.
        let ignored_body = match target.reads_body(req) {
            true => Some(0),
            false => drainable(req),
        };
        let proxied = conn.proxied();
        let mut ex = Exchange::new(
            routed,
            &conn.stream,
            &mut conn.input,
            out,
            ctx,
            keep_alive && ignored_body.is_some(),
        )
        .proxied(proxied)
        .serving_as(ruled.status());
        // For the log, while X-Forwarded-For, Referer and User-Agent can
        // still be read; without a log nothing asks unless the route does.
        let sent = self.access_log.is_some().then(|| {
            ex.client();
            Sent::of(req, ex.preamble())
        });
        // `[[auth]]` for what is served and what was asked (not redirects);
        // no rules, nothing asked. (`[limits.per_client]` rate: the step
        // before the handler, `per_client_step`.)
        let mut user = None;
        let mut outcome = 'served: {
            if !PLAIN && !site.auth.is_empty() {
                let asked = ruled.answer().is_none().then(|| req.path());
                // Boxed: the handler's future is kept small.
                match Box::pin(site.auth.refuse(target, &mut ex, asked)).await {
                    Ok(passed) => user = passed,
                    Err(refused) => break 'served refused,
                }
            }
            // The static files' future polled from here, the others'
            // through `Target::serve`: a layer fewer on the common path.
            match target {
                Target::Files(files) => files.serve(&mut ex).await,
                target => target.serve(&mut ex).await,
            }
        };
        let client = ex.client_known();
        ex.consume_preamble();
        if let Some(len) = ignored_body.filter(|len| *len > 0 && outcome.keep_alive) {
            // Boxed: rare, and the handler's future is kept small.
            outcome.keep_alive = Box::pin(drain(conn, ctx, len)).await;
        }
        // Recorded here: the client need not be carried out of the future.
        let logged = Logged {
            request: match conn.stream.is_pipe() {
                true => RequestLine::Http2(req, sent.as_deref()),
                false => RequestLine::Parsed(req, sent.as_deref()),
            },
            client,
            user,
            site: site_name,
        };
        self.record(
            line,
            conn,
            logged,
            outcome.status,
            outcome.body_bytes,
            started,
        );
        outcome
    }
}

/// Whether a connection may still turn out to speak h2c: a plain one
/// (not a stream's pipe) before its first request, with h2c on.
fn may_be_h2c(conn: &Conn, ctx: &ServiceContext<'_>) -> bool {
    conn.requests == 0
        && ctx.config.http2.cleartext
        && !conn.stream.is_secure()
        && !conn.stream.is_pipe()
        && ctx.config.http2.allowed_on(|| conn.stream.local_addr())
}

/// What becomes of a connection after its handler is done with it.
enum Next {
    /// The connection opened with the HTTP/2 preface (h2c).
    Http2,
    /// Responses sent; back round the line for the next request.
    Recycle,
    /// Nothing to read yet: wait in the reactor for the first bytes.
    Park,
    Close,
    /// Responses sent, but the client may still be sending (more
    /// pipelined requests, a body not read): close lingering.
    Linger,
}

impl Handler for HttpHandler {
    fn name(&self) -> &str {
        "http"
    }

    fn handle<'a>(&'a self, conn: Conn, line: &'a Line) -> HandlerFuture<'a> {
        let built = self.built_for(&conn, line);
        // Made in its block: no 2.3 KB copy of the future (callgrind).
        HandlerFuture::new_with(move || built.serve(conn, line))
    }

    /// The green thread's future is `Built::serve`'s itself, not one that
    /// awaits a boxed `handle` future: a block, a move of the connection
    /// and a poll through a pointer fewer per request.
    fn spawn_handle(self: Arc<Self>, conn: Conn, line: Arc<Line>) {
        let built = self.built_for(&conn, &line);
        crate::runtime::spawn_detached_with(move || built.serve(conn, line));
    }
}

/// A request built with its preamble is the one the parse makes of it:
/// checked in debug builds, so every HTTP/2 test checks it.
#[cfg(debug_assertions)]
fn same_as_parsed(built: &Request, conn: &Conn, limits: &Limits) {
    let parsed = parse_request(conn.input.pending(), limits);
    assert_eq!(parsed.as_ref().map(Option::as_ref), Ok(Some(built)));
}
