//! The request handler: reads a preamble (within the header timeout), parses
//! it, routes it to a service, writes the response, and recycles the
//! connection onto the pending queue or closes it.
//!
//! Pipelining: every complete request already buffered is answered before
//! the first write, so their responses leave together in one write.

use std::time::Instant;

use crate::config::Config;
use crate::http::{parse_request, BodyFraming, Limits, Method, Request};
use crate::service::static_files::StaticFiles;
use crate::service::{echo, flush, status, Exchange, Outcome, Reading};

use super::{Conn, Handler, Line, LocalFuture};

/// Responses buffered beyond this are written before answering more
/// pipelined requests.
const FLUSH_AT: usize = 64 * 1024;
/// Bodies sent to routes that ignore them are read and dropped up to this
/// size (so the connection can stay open); larger ones close it.
const DRAIN_LIMIT: u64 = 64 * 1024;

pub struct HttpHandler {
    limits: Limits,
    files: StaticFiles,
    access_log: Option<crate::access_log::AccessLog>,
}

/// The read buffer must hold a whole preamble at the configured limits.
pub fn read_buffer_size(config: &Config) -> usize {
    (config.limits.max_request_line + config.limits.max_header_bytes + 1024).max(16 * 1024)
}

impl HttpHandler {
    pub fn new(
        config: &Config,
        workers: usize,
        access_log: Option<crate::access_log::AccessLog>,
    ) -> std::io::Result<HttpHandler> {
        Ok(HttpHandler {
            limits: Limits {
                max_request_line: config.limits.max_request_line,
                max_header_bytes: config.limits.max_header_bytes,
                max_headers: config.limits.max_headers,
            },
            files: StaticFiles::new(&config.root, &config.static_files, workers)?,
            access_log,
        })
    }

    async fn serve(&self, mut conn: Conn, line: &Line) {
        let reading = Reading::new(line.metrics.here());
        let next = self.serve_ready(&mut conn, line).await;
        drop(reading);
        if line.shutdown.is_set() {
            return;
        }
        match next {
            Next::Recycle => line.local_pending().recycle(conn, line),
            Next::Park => line.local_pending().park(conn),
            Next::Close => {}
        }
    }

    /// Answers every complete request buffered (reading first if there is
    /// none). Returns what becomes of the connection.
    async fn serve_ready(&self, conn: &mut Conn, line: &Line) -> Next {
        let config = &line.config;
        let deadline = conn.ready_since + config.timeouts.header_read;
        let mut out = OutBuffer::take();
        let out = &mut out.0;
        let mut answered = 0u32;
        loop {
            let parsed = parse_request(conn.input.pending(), &self.limits);
            match parsed {
                Err(e) => {
                    crate::http::write_error(out, e.status, e.message, false, &[]);
                    self.record(line, conn, None, e.status, 0, Instant::now());
                    let _ = flush(&conn.stream, out, line).await;
                    return Next::Close;
                }
                Ok(Some(req)) => {
                    let started = crate::runtime::now();
                    let outcome = self.answer(&req, conn, out, line).await;
                    self.record(
                        line,
                        conn,
                        Some(&req),
                        outcome.status,
                        outcome.body_bytes,
                        started,
                    );
                    answered += 1;
                    if !outcome.keep_alive {
                        let _ = flush(&conn.stream, out, line).await;
                        return Next::Close;
                    }
                    if out.len() >= FLUSH_AT && flush(&conn.stream, out, line).await.is_err() {
                        return Next::Close;
                    }
                }
                Ok(None) if answered > 0 => {
                    // Responses for what was buffered; the rest of the next
                    // request (if any) goes round the line again.
                    return match flush(&conn.stream, out, line).await {
                        Ok(()) => Next::Recycle,
                        Err(_) => Next::Close,
                    };
                }
                Ok(None) if !conn.input.has_pending() => {
                    // Nothing of a request yet: read what is there, or wait
                    // parked rather than here with a read buffer.
                    let size = read_buffer_size(config);
                    match conn.try_fill(size, line.metrics.here()) {
                        Ok(Some(n)) if n > 0 => {}
                        Ok(None) => return Next::Park,
                        _ => return Next::Close,
                    }
                }
                Ok(None) => {
                    if !self.read_more(conn, line, deadline, out).await {
                        let _ = flush(&conn.stream, out, line).await;
                        return Next::Close;
                    }
                }
            }
        }
    }

    /// Reads more of a preamble; false when the connection should close
    /// (peer gone, error, or header timeout — answered 408).
    async fn read_more(
        &self,
        conn: &mut Conn,
        line: &Line,
        deadline: Instant,
        out: &mut Vec<u8>,
    ) -> bool {
        let size = read_buffer_size(&line.config);
        let filled = conn.fill(size, deadline, line.metrics.here()).await;
        match filled {
            Ok(n) => n > 0,
            Err(e) if e.kind() != std::io::ErrorKind::TimedOut => false,
            Err(_) => {
                crate::http::write_error(
                    out,
                    408,
                    "request header not received in time",
                    false,
                    &[],
                );
                self.record(line, conn, None, 408, 0, deadline);
                false
            }
        }
    }

    async fn answer(
        &self,
        req: &Request,
        conn: &mut Conn,
        out: &mut Vec<u8>,
        line: &Line,
    ) -> Outcome {
        conn.requests = conn.requests.saturating_add(1);
        let keep_alive = req.keep_alive
            && u64::from(conn.requests) < line.config.limits.max_requests_per_connection
            && !line.shutdown.is_set();
        let path = req.path();
        let echo = path == "/echo";
        if echo && matches!(req.method, Method::Post | Method::Put) {
            // The one route that reads the body: it streams it back.
            let mut ex = Exchange {
                req,
                conn,
                out,
                line,
                keep_alive,
            };
            // Boxed, like the other rare paths (draining, sendfile): the
            // handler's future is allocated per request, so it is kept small.
            return Box::pin(echo::serve(&mut ex)).await;
        }
        // Every other route leaves the body unread: it is drained below or
        // the connection closes, never parsed as the next request.
        let ignored_body = drainable(req);
        let mut ex = Exchange {
            req,
            conn,
            out,
            line,
            keep_alive: keep_alive && ignored_body.is_some(),
        };
        let mut outcome = if echo {
            Box::pin(echo::serve(&mut ex)).await
        } else if path == "/status" {
            status::serve(&mut ex)
        } else {
            self.files.serve(&mut ex).await
        };
        if let Some(len) = ignored_body.filter(|len| *len > 0 && outcome.keep_alive) {
            outcome.keep_alive = Box::pin(drain(conn, line, len)).await;
        }
        outcome
    }

    fn record(
        &self,
        line: &Line,
        conn: &Conn,
        req: Option<&Request>,
        status: u16,
        bytes: u64,
        started: Instant,
    ) {
        line.metrics
            .here()
            .record_response(status, started.elapsed());
        if let Some(log) = &self.access_log {
            log.record(conn.peer(), req, status, bytes);
        }
    }
}

/// What becomes of a connection after its handler is done with it.
enum Next {
    /// Responses sent; back round the line for the next request.
    Recycle,
    /// Nothing to read yet: wait in the reactor for the first bytes.
    Park,
    Close,
}

/// A body sent to a route that ignores it can be read and dropped (so the
/// connection stays open) when it is small and Content-Length framed, and
/// the client is not waiting for `100 Continue`. Any other such body closes
/// the connection after the response: it is never misread as a request.
fn drainable(req: &Request) -> Option<u64> {
    match req.body {
        BodyFraming::None => Some(0),
        BodyFraming::Length(len) if len <= DRAIN_LIMIT && !req.expect_continue => Some(len),
        _ => None,
    }
}

/// Reads and drops `len` body bytes. False if the body did not arrive.
async fn drain(conn: &mut Conn, line: &Line, mut len: u64) -> bool {
    let deadline = Instant::now() + line.config.timeouts.header_read;
    let size = read_buffer_size(&line.config);
    loop {
        let take = conn.input.pending().len().min(len as usize);
        conn.input.consume(take);
        len -= take as u64;
        if len == 0 {
            return true;
        }
        match conn.fill(size, deadline, line.metrics.here()).await {
            Ok(n) if n > 0 => {}
            _ => return false,
        }
    }
}

thread_local! {
    static OUT_BUFFERS: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A response buffer from the worker's pool, returned on drop: no
/// allocation per request once the pool is warm.
struct OutBuffer(Vec<u8>);

impl OutBuffer {
    fn take() -> OutBuffer {
        let buf = OUT_BUFFERS.with(|pool| pool.borrow_mut().pop());
        OutBuffer(buf.unwrap_or_else(|| Vec::with_capacity(1024)))
    }
}

impl Drop for OutBuffer {
    fn drop(&mut self) {
        let mut buf = std::mem::take(&mut self.0);
        // Keep modest buffers only; a pipelined burst may have grown one.
        if buf.capacity() <= FLUSH_AT * 2 {
            buf.clear();
            OUT_BUFFERS.with(|pool| {
                let mut pool = pool.borrow_mut();
                if pool.len() < 256 {
                    pool.push(buf);
                }
            });
        }
    }
}

impl Handler for HttpHandler {
    fn name(&self) -> &str {
        "http"
    }

    fn handle<'a>(&'a self, conn: Conn, line: &'a Line) -> LocalFuture<'a> {
        LocalFuture::new(self.serve(conn, line))
    }
}
