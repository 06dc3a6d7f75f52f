//! What the handler serves: `/echo`, `/status`, static files, and services
//! a library user mounts.
//!
//! A service gets an [`Exchange`]: the parsed request, the connection's
//! stream and read buffer (whose bytes still start with the request's
//! preamble), the output buffer and a [`ServiceContext`]. Small responses
//! are appended to the buffer, so pipelined responses leave in one write; a
//! service that streams (sendfile, echo bodies) flushes the buffer first and
//! then writes to the socket itself.
//!
//! Services sit below the stages: they see the request, the connection's
//! bytes and the context, never the line.

pub mod acme_challenge;
pub mod auth;
pub mod client;
pub mod dashboard;
pub mod echo;
pub mod netlify;
pub mod probes;
pub mod redirect;
pub mod rewrite;
pub mod routes;
pub mod sites;
pub mod static_files;
pub mod status;

use std::cell::Cell;
use std::future::{poll_fn, Future};
use std::io;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use crate::config::{Client, Config};
use crate::http::{write_error_as, write_head, Head, PreparedError, Request};
use crate::metrics::{Metrics, WorkerMetrics};
use crate::runtime::{timeout, Latch, PooledFuture, ReadBuffer, Stream};

pub use probes::Readiness;
pub use routes::{RouteTable, Target};
pub use status::StatusSource;

/// What a service may know of the server beyond its request. Built by the
/// handler each time it takes a connection.
pub struct ServiceContext<'a> {
    /// The configuration this request is served under: a snapshot, so a
    /// request sees one config from start to end.
    pub config: Arc<Config>,
    pub(crate) metrics: &'a Metrics,
    /// When the server started.
    pub started: Instant,
    /// Set when the server begins to stop.
    pub shutdown: &'a Latch,
    /// What `/status` reports about the line.
    pub status: &'a dyn StatusSource,
    /// Starting, ready or draining: what `/readyz` answers.
    pub readiness: &'a Readiness,
    /// The static files being served, for their figures in the report.
    pub(crate) files: Option<&'a static_files::StaticFiles>,
    /// The `[[sites]]`, for their figures in the report.
    pub(crate) sites: Option<&'a sites::Sites>,
}

impl ServiceContext<'_> {
    /// What `/status` reports: the line's report with the static files'
    /// cache figures.
    pub(crate) fn report(&self) -> status::Report {
        let mut report = self.status.report();
        if let Some(files) = self.files {
            report.file_cache = files.cache_figures();
        }
        if let Some(sites) = self.sites {
            sites.add_cache_figures(&mut report.file_cache);
            report.sites = Some(sites.figures());
        }
        report
    }

    /// The time this scheduler turn began (`runtime::now`): one clock read
    /// per turn, for timestamps that tolerate being a turn old.
    pub fn now(&self) -> Instant {
        crate::runtime::now()
    }

    /// The read buffer must hold a whole preamble at the configured limits.
    pub fn read_buffer_size(&self) -> usize {
        read_buffer_size(&self.config)
    }
}

/// The size of a connection's read buffer: a whole preamble at the
/// configured limits fits.
pub fn read_buffer_size(config: &Config) -> usize {
    (config.limits.max_request_line + config.limits.max_header_bytes + 1024).max(16 * 1024)
}

/// A service a library user mounts on a path (`ServerBuilder::route`).
///
/// The handler consumes the request's preamble after `serve` if the service
/// did not (`Exchange::consume_preamble`). A service that does not read the
/// body (`reads_body` false, the default) never sees it: the handler reads
/// and drops a small Content-Length body after the response, or closes the
/// connection, so a body is never read as the next request.
pub trait Service: Send + Sync {
    /// Whether `serve` reads this request's body itself (from
    /// `Exchange::input`, after the preamble).
    fn reads_body(&self, req: &Request) -> bool {
        let _ = req;
        false
    }

    /// Answers one request. The future's block is reused per worker
    /// (`ServiceFuture::new(async move { … })`): no allocation per request.
    fn serve<'a>(&'a self, ex: &'a mut Exchange<'_>) -> ServiceFuture<'a>;
}

/// The future a [`Service`] returns.
pub type ServiceFuture<'a> = PooledFuture<'a, Outcome>;

/// One request and everything needed to answer it.
pub struct Exchange<'a> {
    /// The parsed request.
    pub req: &'a Request,
    /// The connection, for services that write to it themselves.
    pub stream: &'a Stream,
    /// The connection's unconsumed bytes: the preamble (until consumed),
    /// then the body and any pipelined requests.
    pub input: &'a mut ReadBuffer,
    /// The output buffer: responses are appended here and sent on flush.
    pub out: &'a mut Vec<u8>,
    /// What the service may know of the server.
    pub ctx: &'a ServiceContext<'a>,
    /// Whether the connection may stay open after this response.
    pub keep_alive: bool,
    /// The preamble is still at the front of `input`.
    preamble_pending: bool,
    /// What the connection's PROXY header said of the client.
    proxied: Option<Client>,
    /// The client, once asked.
    client: Cell<Option<Client>>,
    /// The status a rewrite rule asks the answer to have (404), if any.
    serve_as: Option<u16>,
}

/// How a response ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The status code sent.
    pub status: u16,
    /// Response bytes after the head, as the access log reports them.
    pub body_bytes: u64,
    /// False when the connection must close after this response.
    pub keep_alive: bool,
}

impl<'a> Exchange<'a> {
    /// An exchange whose preamble is still at the front of `input`.
    pub fn new(
        req: &'a Request,
        stream: &'a Stream,
        input: &'a mut ReadBuffer,
        out: &'a mut Vec<u8>,
        ctx: &'a ServiceContext<'a>,
        keep_alive: bool,
    ) -> Exchange<'a> {
        Exchange {
            req,
            stream,
            input,
            out,
            ctx,
            keep_alive,
            preamble_pending: true,
            proxied: None,
            client: Cell::new(None),
            serve_as: None,
        }
    }

    /// The exchange for a request a rewrite rule asks to be answered with
    /// `status` (Netlify's 404 rules: the file at the path, as a 404).
    pub fn serving_as(mut self, status: Option<u16>) -> Exchange<'a> {
        self.serve_as = status;
        self
    }

    /// The exchange on a connection whose PROXY protocol header named
    /// `client`.
    pub fn proxied(mut self, client: Option<Client>) -> Exchange<'a> {
        self.proxied = client;
        self
    }
}

impl Exchange<'_> {
    /// Who the client is, for every per-client decision: the peer, or what
    /// a proxy in `proxy.trusted` said of it (`service::client`). Asked of the
    /// kernel on first use (no syscall for a request that never asks);
    /// ask before the preamble is consumed, or a trusted proxy's client
    /// is `Unknown`.
    pub fn client(&self) -> Client {
        if let Some(client) = self.client.get() {
            return client;
        }
        let preamble = self.preamble_pending.then(|| (self.req, self.preamble()));
        let client = client::client_of(&self.ctx.config.proxy, self.proxied, self.stream, preamble);
        self.client.set(Some(client));
        client
    }

    /// The status a rewrite rule asked for, if not the file's own.
    pub fn serve_as(&self) -> Option<u16> {
        self.serve_as
    }

    /// The client, if [`Self::client`] was asked.
    pub fn client_known(&self) -> Option<Client> {
        self.client.get()
    }

    /// The request's raw preamble, until it is consumed.
    pub fn preamble(&self) -> &[u8] {
        match self.preamble_pending {
            true => self
                .input
                .pending()
                .get(..self.req.preamble_len)
                .unwrap_or(&[]),
            false => &[],
        }
    }

    /// Drops the preamble from the input, once: what follows is the body.
    pub fn consume_preamble(&mut self) {
        if std::mem::take(&mut self.preamble_pending) {
            self.input.consume(self.req.preamble_len);
        }
    }

    /// Reads more of the connection's bytes into `input`, by `deadline`.
    /// Ok(0): the peer closed.
    pub async fn fill(&mut self, deadline: Instant) -> io::Result<usize> {
        let size = self.ctx.read_buffer_size();
        let n = self.input.read_from(self.stream, size, deadline).await?;
        self.ctx.metrics.here().bytes_in.add_local(n as u64);
        Ok(n)
    }

    /// A response head for this request: its keep-alive, and the
    /// `Connection: keep-alive` an HTTP/1.0 client needs.
    pub fn head<'h>(
        &self,
        status: u16,
        length: Option<u64>,
        content_type: Option<&'h str>,
        extra: &'h [(&'h str, &'h str)],
    ) -> Head<'h> {
        Head {
            status,
            content_length: length,
            content_type,
            prebuilt: &[],
            keep_alive: self.keep_alive,
            http10_keep_alive: self.req.minor_version == 0,
            extra,
            extra_lines: &[],
        }
    }

    /// Appends a complete small response (head, and body unless HEAD).
    pub fn respond(
        &mut self,
        status: u16,
        content_type: &str,
        body: &[u8],
        extra: &[(&str, &str)],
    ) -> Outcome {
        let head = self.head(status, None, Some(content_type), extra);
        self.respond_with(&head, body)
    }

    /// [`respond`](Self::respond) under a head made with [`head`](Self::head)
    /// and then given more fields; its Content-Length is the body's.
    pub fn respond_with(&mut self, head: &Head, body: &[u8]) -> Outcome {
        let head = Head {
            content_length: Some(body.len() as u64),
            ..*head
        };
        write_head(self.out, &head);
        let is_head = self.req.method == crate::http::Method::Head;
        if !is_head {
            self.out.extend_from_slice(body);
        }
        Outcome {
            status: head.status,
            body_bytes: if is_head { 0 } else { body.len() as u64 },
            keep_alive: self.keep_alive,
        }
    }

    /// Appends an error response with a short text body (none for HEAD).
    pub fn error(&mut self, status: u16, message: &str, extra: &[(&str, &str)]) -> Outcome {
        let head = self.head(status, None, None, extra);
        self.error_with(&head, message)
    }

    /// [`error`](Self::error) under a head made with [`head`](Self::head)
    /// and then given more fields.
    pub fn error_with(&mut self, head: &Head, message: &str) -> Outcome {
        let with_body = self.req.method != crate::http::Method::Head;
        let body_bytes = match write_error_as(self.out, head, message, with_body) {
            len if with_body => len,
            _ => 0,
        };
        Outcome {
            status: head.status,
            body_bytes,
            keep_alive: self.keep_alive,
        }
    }

    /// Appends an error response made in advance (none of its body for HEAD).
    pub fn prepared_error(&mut self, prepared: &PreparedError) -> Outcome {
        let head = self.head(prepared.status(), None, None, &[]);
        let with_body = self.req.method != crate::http::Method::Head;
        Outcome {
            status: prepared.status(),
            body_bytes: prepared.write(self.out, &head, with_body),
            keep_alive: self.keep_alive,
        }
    }

    /// Sends what is buffered.
    pub async fn flush(&mut self) -> io::Result<()> {
        flush(self.stream, self.out, self.ctx).await
    }

    /// Sends what is buffered when more follows at once (a body streamed
    /// with sendfile): the kernel joins it to what comes next.
    pub async fn flush_more(&mut self) -> io::Result<()> {
        send_buffered(self.stream, self.out, self.ctx, Push::More).await
    }
}

/// Writes all of `out` (then clears it), giving each write `timeouts.write`
/// to make progress: a client that stops reading is dropped.
// Not an `async fn`: its future is `send_buffered`'s own, a layer fewer
// per response (callgrind).
pub fn flush<'a>(
    stream: &'a Stream,
    out: &'a mut Vec<u8>,
    ctx: &'a ServiceContext<'a>,
) -> impl Future<Output = io::Result<()>> + 'a {
    send_buffered(stream, out, ctx, Push::Now)
}

/// Whether a write ends what there is to send, or more follows at once.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Push {
    Now,
    More,
}

async fn send_buffered(
    stream: &Stream,
    out: &mut Vec<u8>,
    ctx: &ServiceContext<'_>,
    send: Push,
) -> io::Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    // One write tried in place first, polled with this task's context as
    // the timed write's first poll would be: most responses go whole in
    // it, with no timer and no nested futures (callgrind: -150
    // instructions a response). The timer starts, as before, only once a
    // write waits.
    let more = send == Push::More;
    let first = poll_fn(|cx| Poll::Ready(stream.poll_write_direct(cx, out, more))).await;
    let limit = ctx.config.timeouts.write;
    let result = match first {
        Some(Poll::Ready(Ok(n))) if n == out.len() => Ok(()),
        Some(Poll::Ready(Ok(0))) => Err(io::ErrorKind::WriteZero.into()),
        Some(Poll::Ready(Ok(n))) => write_timed(stream, &out[n..], limit, send).await,
        Some(Poll::Ready(Err(e))) => Err(e),
        Some(Poll::Pending) | None => write_timed(stream, out, limit, send).await,
    };
    ctx.metrics.here().bytes_out.add_local(out.len() as u64);
    out.clear();
    result
}

/// Writes all of `bytes` straight to `stream`, giving each write `limit` to
/// make progress; bypasses `out` and the byte counters.
pub async fn write_all_timed(stream: &Stream, bytes: &[u8], limit: Duration) -> io::Result<()> {
    write_timed(stream, bytes, limit, Push::Now).await
}

async fn write_timed(
    stream: &Stream,
    mut bytes: &[u8],
    limit: Duration,
    send: Push,
) -> io::Result<()> {
    while !bytes.is_empty() {
        let n = match send {
            Push::Now => timeout(limit, stream.write(bytes)).await??,
            Push::More => timeout(limit, stream.write_more(bytes)).await??,
        };
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        bytes = &bytes[n..];
    }
    Ok(())
}

/// Counts a connection as "writing" while a response streams.
pub struct Writing<'a>(&'a WorkerMetrics);

impl<'a> Writing<'a> {
    pub(crate) fn new(metrics: &'a WorkerMetrics) -> Self {
        WorkerMetrics::inc(&metrics.writing);
        Writing(metrics)
    }
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        WorkerMetrics::dec(&self.0.writing);
    }
}

/// Counts a connection as "reading" while a handler serves it. A guard, so
/// a handler that panics (its future dropped mid-request) still gives it back.
pub struct Reading<'a>(&'a WorkerMetrics);

impl<'a> Reading<'a> {
    pub(crate) fn new(metrics: &'a WorkerMetrics) -> Self {
        WorkerMetrics::inc(&metrics.reading);
        Reading(metrics)
    }
}

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        WorkerMetrics::dec(&self.0.reading);
    }
}
