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
//!   request, which then comes round through the step;
//! - the step counts requests exactly as the handler's parser reads them
//!   (`Preambles`): a request the parser refuses is not counted (the
//!   handler answers it with an error and closes), nor any after a
//!   request with a body or one that closes the connection, nor more
//!   than the connection may still serve. `fuzz/fuzz_targets/per_client_step.rs`
//!   holds it to the parser.
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
use crate::http::{parse_request, scan_plain, write_error_as, BodyFraming, Head, Limits, Method};
use crate::service::client::{connection_client, forwarded_for};
use crate::service::redirect::never_redirected;
use crate::service::{read_buffer_size, write_all_timed};

use super::out_buffer::FLUSH_AT;
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
        // A read buffer of tiny requests refused: their answers, several
        // times its size, go out as the handler's would, not all at once.
        if out.len() >= FLUSH_AT && !send(&conn, &mut out, line, &config).await {
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
    let table = &line.pressure.per_client;
    let now = Instant::now();
    // The connection's client, or its trusted proxy's address (`Err`):
    // then each request's `X-Forwarded-For` names its client.
    let client = connection_client(&config.proxy, conn.proxied(), &conn.stream);
    let closing = line.shutdown.is_set() || line.readiness.is_draining();
    let most = answerable(conn.requests, config, closing);
    let mut admitted = 0u32;
    for req in Preambles::new(conn.input.pending(), client, config).take(most) {
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
                    && !closing;
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
    }
    Front::Admitted(admitted)
}

/// Most requests the handler can still answer on a connection that has
/// answered `requests`: it closes after the one that reaches
/// `limits.max_requests_per_connection`, after the first while the server
/// drains or stops, and after the only one a stream's pipe carries. None
/// past that is counted: a token is never spent on a request the handler
/// will not answer. At most [`MOST_ADMITTED`].
fn answerable(requests: u32, config: &Config, closing: bool) -> usize {
    if closing {
        return 1;
    }
    let left = config
        .limits
        .max_requests_per_connection
        .saturating_sub(u64::from(requests))
        .max(1);
    usize::try_from(left.min(MOST_ADMITTED)).unwrap_or(1)
}

/// Most requests admitted in one turn: far below `u32::MAX`, which says
/// the step did not run.
const MOST_ADMITTED: u64 = 1 << 16;

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

/// The complete requests at the front of a connection's input, in order,
/// as the handler will read them: each ends where the handler's parser
/// says it does, and the last is the first with a body (where the next
/// one starts is for its body to say) or the first that closes the
/// connection (the handler answers none after it). Stops at the first
/// the step cannot count.
struct Preambles<'a> {
    rest: &'a [u8],
    client: Result<Client, Client>,
    config: &'a Config,
    parsing: Limits,
}

impl<'a> Preambles<'a> {
    fn new(input: &'a [u8], client: Result<Client, Client>, config: &'a Config) -> Self {
        let parsing = Limits {
            max_request_line: config.limits.max_request_line,
            max_header_bytes: config.limits.max_header_bytes,
            max_headers: config.limits.max_headers,
        };
        Preambles {
            rest: input,
            client,
            config,
            parsing,
        }
    }
}

impl Iterator for Preambles<'_> {
    type Item = Counted;

    fn next(&mut self) -> Option<Counted> {
        if self.rest.is_empty() {
            return None;
        }
        let Some(req) = count_one(self.rest, self.client, self.config, &self.parsing) else {
            self.rest = &[];
            return None;
        };
        self.rest = match req.has_body || !req.keep_alive {
            true => &[],
            false => self.rest.get(req.len..).unwrap_or_default(),
        };
        Some(req)
    }
}

/// The request at the front of `rest`, if complete and accepted: the
/// common case ([`scan_plain`]) read without allocating, anything else (a
/// body, HTTP/1.0, `X-Forwarded-For` to read, what the scan leaves to the
/// parser) by the handler's own parser. A request the parser refuses is
/// not counted: the handler answers it with an error and closes.
fn count_one(
    rest: &[u8],
    client: Result<Client, Client>,
    config: &Config,
    parsing: &Limits,
) -> Option<Counted> {
    if let Ok(client) = client {
        if let Some(plain) = scan_plain(rest, parsing) {
            return Some(Counted {
                len: plain.len,
                exempt: never_redirected(plain.path, config),
                client,
                has_body: false,
                keep_alive: plain.keep_alive,
                http10: false,
                head: plain.head,
            });
        }
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

/// One request the step counts, for the fuzz target that holds the step to
/// the handler's parser (`fuzz/fuzz_targets/per_client_step.rs`).
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountedPreamble {
    /// Where it starts in the input.
    pub start: usize,
    /// Bytes of its preamble.
    pub len: usize,
    /// A probe or `/status`: no token spent.
    pub exempt: bool,
    /// Whose token it spends.
    pub client: Client,
    /// It has a body: the last counted.
    pub has_body: bool,
    /// The connection stays open after it.
    pub keep_alive: bool,
    /// HTTP/1.0.
    pub http10: bool,
    /// A HEAD request.
    pub head: bool,
}

/// The requests the step would count in `input` (before tokens), on a
/// connection whose client is `client` (`Err(peer)`: a trusted proxy whose
/// requests name their clients): for the fuzz target only.
#[doc(hidden)]
pub fn counted_preambles(
    input: &[u8],
    client: Result<Client, Client>,
    config: &Config,
) -> Vec<CountedPreamble> {
    let mut start = 0;
    Preambles::new(input, client, config)
        .map(|req| {
            let counted = CountedPreamble {
                start,
                len: req.len,
                exempt: req.exempt,
                client: req.client,
                has_body: req.has_body,
                keep_alive: req.keep_alive,
                http10: req.http10,
                head: req.head,
            };
            start += req.len;
            counted
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AddrRange;

    const PEER: Client = Client::Unix;

    fn count(text: &str, config: &Config) -> Vec<CountedPreamble> {
        counted_preambles(text.as_bytes(), Ok(PEER), config)
    }

    /// (start, len) of each request counted.
    fn spans(text: &str) -> Vec<(usize, usize)> {
        let counted = count(text, &Config::default());
        counted.iter().map(|c| (c.start, c.len)).collect()
    }

    const GET: &str = "GET / HTTP/1.1\r\nHost: t\r\n\r\n";

    #[test]
    fn a_pipelined_batch_is_counted_where_the_parser_reads_it() {
        let get = GET.len();
        let odd = "GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
        let text = format!("{GET}{odd}{GET}GET / HT");
        assert_eq!(
            spans(&text),
            [(0, get), (get, odd.len()), (get + odd.len(), get)]
        );
        let counted = count(&text, &Config::default());
        assert!(counted[1].http10 && counted[1].keep_alive);
        assert!(counted.iter().all(|c| c.client == PEER && !c.exempt));
        // A probe is exempt, whichever reader read it.
        let probes = count(
            "GET /livez HTTP/1.1\r\nHost: t\r\n\r\nHEAD /livez?x HTTP/1.0\r\n\r\n",
            &Config::default(),
        );
        assert!(probes.iter().all(|c| c.exempt), "{probes:?}");
        assert!(probes[1].head);
    }

    #[test]
    fn nothing_is_counted_that_the_handler_will_not_answer_in_turn() {
        // Partial, or refused by the parser: nothing.
        for text in [
            "GET / HTTP/1.1\r\nHost: t\r\n",
            "GET / HTTP/1.1\r\n folded\r\n\r\n",
        ] {
            assert!(spans(text).is_empty(), "{text:?}");
        }
        // Up to one the parser refuses (obs-fold), which the handler
        // answers 400 and closes on.
        let folded = format!("{GET}GET / HTTP/1.1\r\nHost: t\r\n x: y\r\n\r\n{GET}");
        assert_eq!(spans(&folded).len(), 1);
        // After a request with a body: where the next starts is the body's.
        let post = format!("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\n{GET}");
        let counted = count(&post, &Config::default());
        assert_eq!(counted.len(), 1);
        assert!(counted[0].has_body);
        // After one that closes the connection, none.
        let close = format!("GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n{GET}");
        assert_eq!(spans(&close).len(), 1);
        let http10 = format!("GET / HTTP/1.0\r\n\r\n{GET}");
        assert_eq!(spans(&http10).len(), 1);
    }

    #[test]
    fn no_more_are_admitted_than_the_connection_may_still_serve() {
        let mut config = Config::default();
        config.limits.max_requests_per_connection = 5;
        assert_eq!(answerable(0, &config, false), 5);
        assert_eq!(answerable(3, &config, false), 2);
        assert_eq!(answerable(5, &config, false), 1);
        assert_eq!(answerable(0, &config, true), 1);
        config.limits.max_requests_per_connection = u64::MAX;
        assert_eq!(answerable(0, &config, false), 1 << 16);
        assert!((answerable(0, &config, false) as u64) < u64::from(u32::MAX));
    }

    #[test]
    fn each_request_from_a_trusted_proxy_counts_for_the_client_it_names() {
        let mut config = Config::default();
        config.proxy.trusted = vec![AddrRange::parse("10.0.0.1").expect("range")];
        let proxy = Client::Ip("10.0.0.1".parse().expect("ip"));
        let from = |ip: &str| format!("GET / HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: {ip}\r\n\r\n");
        let text = [
            from("192.0.2.1"),
            GET.to_string(),
            from("192.0.2.2, 10.0.0.1"),
        ]
        .concat();
        let counted = counted_preambles(text.as_bytes(), Err(proxy), &config);
        let clients: Vec<Client> = counted.iter().map(|c| c.client).collect();
        let ip = |s: &str| Client::Ip(s.parse().expect("ip"));
        assert_eq!(clients, [ip("192.0.2.1"), proxy, ip("192.0.2.2")]);
        // From an untrusted peer the header names no one.
        let counted = counted_preambles(text.as_bytes(), Ok(PEER), &config);
        assert!(counted.iter().all(|c| c.client == PEER));
    }
}
