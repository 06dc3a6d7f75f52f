//! The dispatcher against hostile or broken traffic: handler panics,
//! bodies on routes that ignore them (request smuggling), and slow clients
//! that would hold every pool handler.

use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::pin::Pin;
use std::sync::{Arc, Once};
use std::task::Poll;
use std::time::{Duration, Instant};

use crate::harness::status::{connections, parse, Figures};
use crate::harness::*;
use conveyor::config::Config;
use conveyor::stages::http_handler::HttpHandler;
use conveyor::stages::{Conn, Handler, HandlerFuture, Line};

// ---------------------------------------------------------------------------
// Helpers

/// The sum of one scheduler counter over the workers in `/status` JSON.
fn scheduler_sum(json: &str, name: &str) -> i64 {
    parse(json)
        .at("scheduler")
        .arr()
        .iter()
        .map(|worker| worker.at(name).int())
        .sum()
}

/// The open/reading/writing gauges.
fn gauges(server: &TestServer) -> [i64; 3] {
    ["open", "reading", "writing"].map(|name| connections(server, name))
}

/// The next response on `stream`, or None if the server closed first.
fn next_response(stream: &mut TcpStream, carry: &mut Vec<u8>) -> Option<Response> {
    if carry.is_empty() {
        let mut buf = [0u8; 4096];
        match stream.read(&mut buf) {
            Ok(0) => return None,
            Ok(n) => carry.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return None,
            Err(e) => panic!("no response and no close: {e}"),
        }
    }
    Some(read_response_with(stream, carry, false))
}

/// Sends `GET path` on a fresh connection and returns how long the whole
/// response took to arrive, or None if it did not within `limit`.
fn timed_get(addr: SocketAddr, path: &str, limit: Duration) -> Option<Duration> {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    stream.set_nonblocking(true).expect("nonblocking");
    let started = Instant::now();
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .expect("send");
    let mut got = Vec::new();
    let complete = |got: &[u8]| {
        let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") else {
            return false;
        };
        let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
        let len: usize = head
            .split("\r\n")
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        got.len() >= end + 4 + len
    };
    let answered = wait_until(limit, || {
        let mut buf = [0u8; 65536];
        match stream.read(&mut buf) {
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => panic!("GET {path}: {e}"),
        }
        complete(&got)
    });
    answered.then(|| started.elapsed())
}

// ---------------------------------------------------------------------------
// Issue 8.3: a panicking handler must not take a dispatcher down.

const DELIBERATE: &str = "deliberate test panic";

/// Keeps the deliberate panics out of the test output; others still print.
fn quiet_deliberate_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str));
            if message != Some(DELIBERATE) {
                default(info);
            }
        }));
    });
}

/// The HTTP handler, except on two paths: `/panic-now` panics before
/// anything is read; `/panic-mid` (sent without its final blank line)
/// panics while the HTTP handler waits for the rest of the preamble, i.e.
/// with its `reading` gauge up.
struct Panicky {
    http: HttpHandler,
}

impl Handler for Panicky {
    fn name(&self) -> &str {
        "panicky"
    }

    fn handle<'a>(&'a self, conn: Conn, line: &'a Line) -> HandlerFuture<'a> {
        HandlerFuture::new(async move {
            // Look before the HTTP handler reads, waiting for the request
            // if it has not arrived (the panic then comes in a later poll).
            let mut peeked = [0u8; 16];
            let n = loop {
                let Some(socket) = conn.stream.get_ref() else {
                    return;
                };
                match socket.peek(&mut peeked) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        if conn.stream.readable().await.is_err() {
                            return;
                        }
                    }
                    Err(_) => return,
                }
            };
            let peeked = &peeked[..n];
            if peeked.starts_with(b"GET /panic-now") {
                panic!("{DELIBERATE}");
            }
            let mut inner = self.http.handle(conn, line);
            if peeked.starts_with(b"GET /panic-mid") {
                poll_fn(|cx| match Pin::new(&mut inner).poll(cx) {
                    Poll::Ready(()) => Poll::Ready(()),
                    Poll::Pending => panic!("{DELIBERATE}"),
                })
                .await;
            }
            inner.await
        })
    }
}

/// A server (readiness acceptor) whose handler is [`Panicky`]; `tweak`
/// adjusts the test config.
fn start_panicky(dispatcher: &str, tweak: impl FnOnce(&mut Config)) -> TestServer {
    // `start_with` tweaks the config, then hands over the builder: keep a
    // copy on the way to build the HTTP handler from.
    let config = RefCell::new(None);
    start_with(
        "readiness",
        dispatcher,
        |c| {
            tweak(c);
            *config.borrow_mut() = Some(c.clone());
        },
        |builder| {
            let config = config.borrow_mut().take().expect("config tweaked first");
            let http = HttpHandler::new(&config, config.workers).expect("handler");
            builder.handler(Arc::new(Panicky { http }))
        },
    )
}

#[test]
fn a_thousand_handler_panics_leave_every_worker_serving_and_the_gauges_at_baseline() {
    quiet_deliberate_panics();
    for dispatcher in DISPATCHERS {
        // A slot not given back would soon leave none: accepting would stop.
        let server = start_panicky(dispatcher, |c| c.limits.max_connections = 16);
        let addr = server.addr;
        let baseline = gauges(&server);

        for i in 0..1000 {
            let mut stream = TcpStream::connect(addr).expect("connect");
            let probe: &[u8] = if i % 2 == 0 {
                b"GET /panic-now HTTP/1.1\r\nHost: x\r\n\r\n"
            } else {
                b"GET /panic-mid HTTP/1.1\r\nHost: x\r\n"
            };
            stream.write_all(probe).expect("send");
            assert!(
                closed_within(&mut stream, Duration::from_secs(2)),
                "{dispatcher}: connection {i} (after {i} panics) was not closed; {}",
                server.status_json()
            );
        }

        // Round-robin dealing: consecutive connections cover every worker.
        for i in 0..8 {
            let mut stream = TcpStream::connect(addr).expect("connect");
            stream
                .set_read_timeout(Some(Duration::from_secs(2)))
                .expect("timeout");
            for _ in 0..2 {
                let response = get(&mut stream, "/index.html");
                assert_eq!(response.status, 200, "{dispatcher}: connection {i}");
            }
        }

        // Served by a worker: `server.status_json()` has no scheduler counters.
        let mut stream = TcpStream::connect(addr).expect("connect");
        let json = get(&mut stream, "/status").text();
        drop(stream);
        assert!(
            scheduler_sum(&json, "panicked") >= 1000,
            "{dispatcher}: panics not counted: {json}"
        );
        let settled = wait_until(Duration::from_secs(5), || gauges(&server) == baseline);
        assert!(
            settled,
            "{dispatcher}: open/reading/writing {:?}, baseline {baseline:?}",
            gauges(&server)
        );
        server.shutdown();
    }
}

/// Issue 9: a handler that panics with its `reading` gauge up gives it back
/// (the gauges are guards), so a graceful shutdown, which waits for
/// `reading` and `writing` to reach 0, ends at once instead of waiting out
/// `timeouts.shutdown_grace`.
#[test]
fn after_handler_panics_the_gauges_settle_and_shutdown_does_not_wait_out_the_grace() {
    quiet_deliberate_panics();
    // Only a shutdown that waits out the grace takes anything like it: the
    // bound is far above a busy machine's delays and far below the grace.
    const GRACE: Duration = Duration::from_secs(30);
    const PROMPT: Duration = Duration::from_secs(5);
    for dispatcher in DISPATCHERS {
        let server = start_panicky(dispatcher, |c| c.timeouts.shutdown_grace = GRACE);
        let label = &server.label;
        // A client that stays connected through it all, idle in between.
        let mut bystander = server.connect();
        assert_eq!(get(&mut bystander, "/index.html").status, 200, "{label}");

        for probe in [
            &b"GET /panic-mid HTTP/1.1\r\nHost: x\r\n"[..],
            b"GET /panic-now HTTP/1.1\r\nHost: x\r\n\r\n",
        ] {
            let mut stream = server.connect();
            stream.write_all(probe).expect("send");
            assert!(
                closed_within(&mut stream, Duration::from_secs(2)),
                "{label}: a panicking request's connection was not closed"
            );
        }

        // Others are still served: the bystander, and a new connection.
        assert_eq!(get(&mut bystander, "/index.html").status, 200, "{label}");
        assert_eq!(
            get(&mut server.connect(), "/index.html").status,
            200,
            "{label}"
        );

        // Idle values: the bystander open and idle, nothing in flight.
        let idle = |server: &TestServer| {
            ["open", "reading", "writing", "idle_keepalive"].map(|name| connections(server, name))
        };
        let settled = wait_until(Duration::from_secs(2), || idle(&server) == [1, 0, 0, 1]);
        assert!(
            settled,
            "{label}: open/reading/writing/idle_keepalive {:?}, want [1, 0, 0, 1]",
            idle(&server)
        );

        let started = Instant::now();
        server.shutdown();
        let took = started.elapsed();
        assert!(
            took < PROMPT,
            "{dispatcher}: shutdown took {took:?} (grace {GRACE:?}): a gauge was left up"
        );
        assert!(
            closed_within(&mut bystander, Duration::from_secs(1)),
            "{dispatcher}: the idle bystander was not closed by the shutdown"
        );
    }
}

// ---------------------------------------------------------------------------
// Issue 8.4: a body on a route that does not read it is never run as a
// request.

/// Answered with "smuggled" in its body if it is ever run.
const SMUGGLED: &str = "GET /echo?smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
const FOLLOW: &str = "GET /echo?follow HTTP/1.1\r\nHost: x\r\n\r\n";

#[derive(Clone, Copy, Debug)]
enum Body {
    /// Content-Length framed, small enough to drain: the connection stays.
    Length,
    /// Content-Length beyond the drain limit (only its start sent): closes.
    TooLong,
    /// Chunked: never drained, closes.
    Chunked,
}

fn probe(method: &str, path: &str, body: Body) -> Vec<u8> {
    let head = format!("{method} {path} HTTP/1.1\r\nHost: x\r\n");
    let framed = match body {
        Body::Length => format!("Content-Length: {}\r\n\r\n{SMUGGLED}", SMUGGLED.len()),
        Body::TooLong => format!("Content-Length: 1000000\r\n\r\n{SMUGGLED}"),
        Body::Chunked => format!(
            "Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{SMUGGLED}\r\n0\r\n\r\n",
            SMUGGLED.len()
        ),
    };
    (head + &framed).into_bytes()
}

#[test]
fn a_body_sent_where_it_is_not_read_is_never_answered_as_a_request() {
    let routes: [(&str, &str, u16); 8] = [
        ("GET", "/echo", 200),
        ("HEAD", "/echo", 200),
        ("DELETE", "/echo", 405),
        ("OPTIONS", "/echo", 405),
        ("GET", "/status", 200),
        ("GET", "/index.html", 200),
        ("POST", "/index.html", 405),
        ("GET", "/no-such-file", 404),
    ];
    each_server(
        |_| {},
        |server| {
            for (method, path, status) in routes {
                for body in [Body::Length, Body::TooLong, Body::Chunked] {
                    let what = format!("{}: {method} {path} with {body:?}", server.label);
                    let mut stream = server.connect();
                    stream.write_all(&probe(method, path, body)).expect("send");
                    let mut carry = Vec::new();
                    let first = read_response_with(&mut stream, &mut carry, method == "HEAD");
                    assert_eq!(first.status, status, "{what}");
                    // Written only now: a closing server must not see it early.
                    let _ = stream.write_all(FOLLOW.as_bytes());
                    match next_response(&mut stream, &mut carry) {
                        Some(next) => {
                            let text = next.text();
                            assert!(
                                !text.contains("smuggled"),
                                "{what}: the body was answered as a request"
                            );
                            assert!(
                                text.contains("/echo?follow"),
                                "{what}: unexpected second response {} {text:?}",
                                next.status
                            );
                            assert!(
                                matches!(body, Body::Length),
                                "{what}: kept open with an undrained body"
                            );
                        }
                        None => assert!(
                            !matches!(body, Body::Length),
                            "{what}: a small Content-Length body was not drained"
                        ),
                    }
                }
            }
        },
    );
}

// ---------------------------------------------------------------------------
// Issue 8.5b: clients that make the server wait never hold a pool handler.

#[test]
fn slow_clients_never_keep_a_fresh_request_waiting() {
    const SLOW: usize = 200;
    for dispatcher in DISPATCHERS {
        let server = start("readiness", dispatcher, |config| {
            // The production default: far fewer handlers than slow clients.
            config.stages.pool_size = 32;
            // The slow clients must hold for the whole test.
            config.timeouts.header_read = Duration::from_secs(60);
            config.timeouts.write = Duration::from_secs(60);
        });
        std::fs::write(server.root.join("big.bin"), vec![b'x'; 1 << 20]).expect("big file");
        let baseline = gauges(&server);

        let mut slow = Vec::with_capacity(SLOW);
        for i in 0..SLOW {
            let mut stream = server.connect();
            let bytes = match i % 3 {
                // Partial headers: the blank line never comes.
                0 => b"GET /index.html HTTP/1.1\r\nHost: x\r\n".to_vec(),
                // A body trickled to /echo: its first bytes, then nothing.
                1 => {
                    let mut b = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
                        .to_vec();
                    b.extend_from_slice(&[b'y'; 100]);
                    b
                }
                // Large responses pipelined and never read.
                _ => b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n".repeat(4),
            };
            stream.write_all(&bytes).expect("send");
            slow.push(stream);
        }
        // Every slow client is inside a handler (or the pool is full).
        let all_held = wait_until(Duration::from_secs(10), || {
            connections(&server, "reading") >= SLOW as i64
        });

        // The slow clients hold their handlers for 60 s: a fresh request
        // answered well within that did not wait for any of them, however
        // busy the machine. (How fast it is answered is the benchmarks' job.)
        for i in 0..4 {
            let waited = timed_get(server.addr, "/index.html", Duration::from_secs(10));
            let waited = waited.unwrap_or_else(|| {
                panic!("{dispatcher}: request {i} not answered in 10 s beside {SLOW} slow clients")
            });
            eprintln!(
                "{dispatcher}: request {i} answered in {waited:?} beside {SLOW} slow clients"
            );
        }
        assert!(
            all_held,
            "{dispatcher}: the slow clients were not all served"
        );

        drop(slow);
        let settled = wait_until(Duration::from_secs(5), || gauges(&server) == baseline);
        assert!(
            settled,
            "{dispatcher}: open/reading/writing {:?} after the slow clients left, baseline {baseline:?}",
            gauges(&server)
        );
    }
}

/// The pool runs a request in place unless it waits on the client: a
/// keep-alive request answered at once, static files (which yield once to
/// batch their inotify check) included, spawns no green thread.
#[test]
fn the_pool_spawns_nothing_for_requests_answered_at_once() {
    let server = start("readiness", "pool", |_| {});
    let mut stream = server.connect();
    // Each request in one write (`get` formats in pieces, which may arrive
    // apart: a partial preamble waits on the client, and is handed off).
    let mut ask = |path: &str| {
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
        stream.write_all(request.as_bytes()).expect("send");
        read_response(&mut stream)
    };
    let before = scheduler_sum(&ask("/status").text(), "spawned");
    for _ in 0..100 {
        assert_eq!(ask("/index.html").status, 200);
        assert_eq!(ask("/echo").status, 200);
    }
    let after = scheduler_sum(&ask("/status").text(), "spawned");
    assert!(
        after - before < 10,
        "{} green threads spawned for 200 requests",
        after - before
    );
}
