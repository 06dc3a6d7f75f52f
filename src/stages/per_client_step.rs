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
                // close does not reset the answer away: on a green thread
                // of its own, whose 4 KiB buffer this future then does not
                // carry (and copy) for every request.
                let limit = config.timeouts.lingering;
                crate::runtime::spawn(conn.close_lingering(limit)).detach();
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
        let Some(req) = count_one(rest, client, config, &parsing) else {
            break;
        };
        if !req.exempt {
            if let Err(retry_after) = table.take_token(req.client, limits, now) {
                if admitted > 0 {
                    break;
                }
                let keep_alive = req.keep_alive
                    && !req.has_body
                    && !conn.stream.is_pipe()
                    && u64::from(conn.requests.saturating_add(1))
                        < config.limits.max_requests_per_connection
                    && !line.shutdown.is_set()
                    && !line.readiness.is_draining();
                return Front::Refused(Refused {
                    preamble_len: req.len,
                    retry_after,
                    keep_alive,
                    http10: req.http10,
                    head: req.head,
                    has_body: req.has_body,
                });
            }
        }
        admitted += 1;
        if req.has_body {
            // Where the next request starts is for its body to say: it
            // comes round once the handler has read this one.
            break;
        }
        at += req.len;
    }
    Front::Admitted(admitted)
}

/// What the step reads of one request preamble.
struct Counted {
    len: usize,
    /// A probe or `/status`: never counted.
    exempt: bool,
    client: Client,
    has_body: bool,
    keep_alive: bool,
    http10: bool,
    head: bool,
}

/// The request at the front of `rest`, if complete and accepted: the
/// common case ([`plain`]) read without allocating, anything else (a body,
/// HTTP/1.0, `X-Forwarded-For` to read, what httparse alone refuses) by
/// the handler's own parser.
fn count_one(
    rest: &[u8],
    client: Result<Client, Client>,
    config: &Config,
    parsing: &Limits,
) -> Option<Counted> {
    if let Some(plain) = client.ok().and_then(|client| plain(rest, client, config)) {
        return Some(plain);
    }
    let req = parse_request(rest, parsing).ok()??;
    let client = match client {
        Ok(client) => client,
        Err(peer) => forwarded_for(&config.proxy, peer, &req, rest),
    };
    Some(Counted {
        len: req.preamble_len,
        exempt: never_redirected(req.path(), config),
        client,
        has_body: req.body != BodyFraming::None,
        keep_alive: req.keep_alive,
        http10: req.minor_version == 0,
        head: req.method == Method::Head,
    })
}

/// Header fields [`plain`] reads; a request with more goes to the full
/// parser.
const PLAIN_HEADERS: usize = 32;

/// An HTTP/1.1 request in origin form, every line ending in CRLF, with
/// neither `Content-Length` nor `Transfer-Encoding`, read by a scan of its
/// lines: no allocation, no second copy of httparse (the full parser, run
/// twice per request, doubled what a rate costs; httparse called from here
/// too stopped being inlined into the handler's parser, +90 instructions
/// a request with no rate at all: callgrind). None for anything else,
/// which the full parser then reads. A request the handler refuses (no
/// `Host`, a bad field) has still spent its token.
fn plain(rest: &[u8], client: Client, config: &Config) -> Option<Counted> {
    let line_end = crlf(rest, 0)?;
    let mut words = rest[..line_end].split(|&b| b == b' ');
    let (method, target) = (words.next()?, words.next()?);
    if words.next()? != b"HTTP/1.1" || words.next().is_some() || method.is_empty() {
        return None;
    }
    if !target.starts_with(b"/") || rest[..line_end].contains(&b'\n') {
        return None;
    }
    let mut at = line_end + 2;
    let mut close = false;
    for _ in 0..=PLAIN_HEADERS {
        let end = crlf(rest, at)?;
        let field = &rest[at..end];
        at = end + 2;
        if field.is_empty() {
            let path = &target[..target
                .iter()
                .position(|&b| b == b'?')
                .unwrap_or(target.len())];
            return Some(Counted {
                len: at,
                exempt: never_redirected(std::str::from_utf8(path).ok()?, config),
                client,
                has_body: false,
                keep_alive: !close,
                http10: false,
                head: method == b"HEAD",
            });
        }
        let colon = field.iter().position(|&b| b == b':')?;
        let (name, value) = (&field[..colon], &field[colon + 1..]);
        if field.contains(&b'\n')
            || name.eq_ignore_ascii_case(b"content-length")
            || name.eq_ignore_ascii_case(b"transfer-encoding")
        {
            return None;
        }
        if name.eq_ignore_ascii_case(b"connection") {
            close |= value
                .split(|&b| b == b',')
                .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"close"));
        }
    }
    None
}

/// Where the first CRLF at or after `from` is.
fn crlf(buf: &[u8], from: usize) -> Option<usize> {
    let at = buf.get(from..)?.windows(2).position(|w| w == b"\r\n")?;
    Some(from + at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Option<Counted> {
        plain(text.as_bytes(), Client::Unknown, &Config::default())
    }

    #[test]
    fn the_plain_case_is_read_without_the_full_parser_and_the_rest_is_not() {
        let get = read("GET /a?b HTTP/1.1\r\nHost: t\r\nConnection: x, Close\r\n\r\nGET /");
        let get = get.expect("plain");
        assert_eq!(
            get.len,
            "GET /a?b HTTP/1.1\r\nHost: t\r\nConnection: x, Close\r\n\r\n".len()
        );
        assert!(!get.keep_alive && !get.head && !get.has_body && !get.exempt);
        let head = read("HEAD /status HTTP/1.1\r\nHost: t\r\n\r\n").expect("plain");
        assert!(head.head && head.keep_alive && head.exempt);
        for other in [
            "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET / HTTP/1.0\r\n\r\n",
            "GET http://t/ HTTP/1.1\r\nHost: t\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: t\r\n",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        ] {
            assert!(read(other).is_none(), "{other:?}");
        }
        let many = format!("GET / HTTP/1.1\r\n{}\r\n", "X: y\r\n".repeat(40));
        assert!(read(&many).is_none(), "more fields than slots");
        // Bare LF line ends: the full parser's to read.
        let lf = "GET / HTTP/1.1\nHost: t\n\nGET / HTTP/1.1\r\nHost: t\r\n\r\n";
        assert!(read(lf).is_none());
        assert!(read("GET / HTTP/1.1\r\nHost: t\nX: y\r\n\r\n").is_none());
        // Where it says the request ends is where the handler's parser does.
        let limits = Limits {
            max_request_line: 8192,
            max_header_bytes: 8192,
            max_headers: 100,
        };
        for text in [
            "GET / HTTP/1.1\r\nHost: t\r\n\r\n",
            "GET /x?y=1 HTTP/1.1\r\nHost: t\r\nAccept: */*\r\nConnection: close\r\n\r\nGET /",
        ] {
            let full = parse_request(text.as_bytes(), &limits).unwrap().unwrap();
            let plain = read(text).expect("plain");
            assert_eq!(plain.len, full.preamble_len, "{text:?}");
            assert_eq!(plain.keep_alive, full.keep_alive, "{text:?}");
        }
    }
}
