//! The per-client rate step (`[limits.per_client] rate`): an admission
//! step between the pending queue and the handler. The dispatcher runs it
//! on each connection it pops, before the handler takes it; without a rate
//! it is skipped (one atomic load per connection popped, [`RateOn`]).
//!
//! The step reads what the connection has buffered (one non-blocking read
//! if nothing is) and parses only the request preambles there, each for
//! its client and path; it routes nothing. Each request costs one token of
//! its client's bucket, in order:
//!
//! - the requests at the front that get a token are **admitted**: the
//!   handler may answer that many this turn (`Conn::admitted`), then gives
//!   the connection back to the line, and the step counts the next ones.
//!   A pipelined batch of 16 costs 16 tokens, never one per read;
//! - a request at the front that gets none is answered **`429`** with
//!   `Retry-After` by the step itself, and so are those after it while they
//!   get none; no handler runs for them (nothing is routed, served or
//!   written to the access log). One with a body closes the connection
//!   after the answer: its body is never read as a request;
//! - what the step cannot count yet (an incomplete preamble, the rest of a
//!   body, bytes that are not HTTP/1.1 such as the h2c preface) is left to
//!   the handler with nothing admitted: it reads or answers what is not a
//!   request as always, and gives the connection back before serving a
//!   request, which then comes round through the step.
//!
//! **The client** is the one `[proxy]` establishes, as for every
//! per-client decision (`service::client`): a PROXY header's client (the
//! handler reads the header first: the step admits nothing on a connection
//! whose header is still to come, so its first request comes round once
//! the header is read), else the peer, else — from a trusted peer — the
//! address `X-Forwarded-For` names in each request's own preamble, which
//! the step parses for that. Each HTTP/2 stream is a `Conn` of one request
//! on the pending queue, carrying its connection's PROXY client and peer.
//!
//! The probes and `/status` are never counted (a load balancer's health
//! checks come from one address).

use std::time::Instant;

use crate::config::{Client, Config};
use crate::http::{parse_request, write_error_as, BodyFraming, Head, Limits, Method};
use crate::service::client::{connection_client, forwarded_for};
use crate::service::redirect::never_redirected;
use crate::service::{read_buffer_size, write_all_timed};

use super::{Conn, Line};

/// Whether a rate is configured, as of the config generation last seen:
/// a dispatcher asks for each connection it pops and pays one atomic load
/// while the config stays the same.
pub(crate) struct RateOn {
    generation: u64,
    on: bool,
}

impl RateOn {
    pub(crate) fn new() -> RateOn {
        RateOn {
            generation: 0,
            on: false,
        }
    }

    pub(crate) fn get(&mut self, line: &Line) -> bool {
        let generation = line.config.generation();
        if generation != self.generation {
            self.on = line.config.load().limits.per_client.rate > 0;
            self.generation = generation;
        }
        self.on
    }
}

/// What the step found at the front of the connection's input.
enum Front {
    /// This many requests got a token (or are never counted); 0 when there
    /// is nothing the step can count.
    Admitted(u32),
    /// The first request got none.
    Refused(Refused),
}

/// A request refused for want of a token.
struct Refused {
    preamble_len: usize,
    retry_after: u64,
    keep_alive: bool,
    http10: bool,
    head: bool,
    has_body: bool,
}

/// Runs the step on a connection just popped: `Some(conn)` for the handler,
/// with `conn.admitted` set; `None` when the step answered everything it
/// had and put the connection back on the line, or closed it.
pub(crate) async fn admit(mut conn: Conn, line: &Line) -> Option<Conn> {
    let config = line.config.load();
    conn.admitted = 0;
    if config.proxy.protocol && conn.proxied().is_none() && conn.requests == 0 {
        // The client is not known before the PROXY header, which the
        // handler reads.
        return Some(conn);
    }
    let metrics = line.metrics.here();
    if !conn.input.has_pending() {
        match conn.try_fill(read_buffer_size(&config), metrics) {
            Ok(Some(n)) if n > 0 => {}
            // Nothing yet, or the peer gone: the handler parks or closes.
            _ => return Some(conn),
        }
    }
    let mut out = Vec::new();
    loop {
        let refused = match front(&conn, line, &config) {
            Front::Admitted(n) => {
                conn.admitted = n;
                break;
            }
            Front::Refused(refused) => refused,
        };
        let started = crate::runtime::now();
        let secs = refused.retry_after.to_string();
        let extra = [("Retry-After", secs.as_str())];
        let head = Head {
            status: 429,
            content_length: None,
            content_type: None,
            prebuilt: &[],
            keep_alive: refused.keep_alive,
            http10_keep_alive: refused.http10,
            extra: &extra,
            extra_lines: &[],
        };
        let message = "too many requests from your address, retry later";
        write_error_as(&mut out, &head, message, !refused.head);
        conn.requests = conn.requests.saturating_add(1);
        conn.input.consume(refused.preamble_len);
        line.pressure.per_client.count_refused();
        metrics.record_response(429, started.elapsed());
        if !refused.keep_alive {
            let sent = send(&conn, &mut out, line, &config).await;
            let unread = refused.has_body || conn.input.has_pending();
            if sent && unread && !conn.stream.is_pipe() {
                // What the client still sends is read and dropped, so the
                // close does not reset the answer away.
                conn.close_lingering(config.timeouts.lingering).await;
            }
            return None;
        }
        if !conn.input.has_pending() {
            if send(&conn, &mut out, line, &config).await && !line.shutdown.is_set() {
                line.local_pending().recycle(conn, line);
            }
            return None;
        }
    }
    if !send(&conn, &mut out, line, &config).await {
        return None;
    }
    Some(conn)
}

/// Writes the step's answers (if any); false when the client is gone.
async fn send(conn: &Conn, out: &mut Vec<u8>, line: &Line, config: &Config) -> bool {
    if out.is_empty() {
        return true;
    }
    let sent = write_all_timed(&conn.stream, out, config.timeouts.write).await;
    line.metrics.here().bytes_out.add_local(out.len() as u64);
    out.clear();
    sent.is_ok()
}

/// Spends a token for each complete request at the front of the input, in
/// order, until one gets none.
fn front(conn: &Conn, line: &Line, config: &Config) -> Front {
    let limits = &config.limits.per_client;
    let parsing = Limits {
        max_request_line: config.limits.max_request_line,
        max_header_bytes: config.limits.max_header_bytes,
        max_headers: config.limits.max_headers,
    };
    let table = &line.pressure.per_client;
    let now = Instant::now();
    // The connection's client, or its trusted proxy's address (`Err`):
    // then each request's `X-Forwarded-For` names its client.
    let client = connection_client(&config.proxy, conn.proxied(), &conn.stream);
    let pending = conn.input.pending();
    let mut at = 0;
    let mut admitted = 0u32;
    while let Some(rest) = pending.get(at..).filter(|rest| !rest.is_empty()) {
        let Ok(Some(req)) = parse_request(rest, &parsing) else {
            break;
        };
        if !never_redirected(req.path(), config) {
            let client: Client = match client {
                Ok(client) => client,
                Err(peer) => forwarded_for(&config.proxy, peer, &req, rest),
            };
            if let Err(retry_after) = table.take_token(client, limits, now) {
                if admitted > 0 {
                    break;
                }
                let has_body = req.body != BodyFraming::None;
                let keep_alive = req.keep_alive
                    && !has_body
                    && !conn.stream.is_pipe()
                    && u64::from(conn.requests.saturating_add(1))
                        < config.limits.max_requests_per_connection
                    && !line.shutdown.is_set()
                    && !line.readiness.is_draining();
                return Front::Refused(Refused {
                    preamble_len: req.preamble_len,
                    retry_after,
                    keep_alive,
                    http10: req.minor_version == 0,
                    head: req.method == Method::Head,
                    has_body,
                });
            }
        }
        admitted += 1;
        if req.body != BodyFraming::None {
            // Where the next request starts is for its body to say: it
            // comes round once the handler has read this one.
            break;
        }
        at += req.preamble_len;
    }
    Front::Admitted(admitted)
}
