//! Connections along the line: keep-alive, pipelining, timeouts, limits,
//! backpressure, graceful shutdown and `/status`, on real sockets, for every
//! acceptor × dispatcher combination.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::harness::status::{connections, parse, status, Figures};
use crate::harness::*;
use conveyor::config::Overload;
use conveyor::runtime::{Handle, Latch};
use conveyor::stages::{Dispatcher, Handler, Line};
use serde_json::Value;

const SHORT: Duration = Duration::from_millis(250);
/// Generous upper bound for "soon" on a loaded 2-core CI machine.
const SOON: Duration = Duration::from_secs(3);
/// How late a timeout may act, at most.
const SLACK: Duration = Duration::from_secs(1);

/// A field summed over all the per-worker pending queues.
fn queues_sum(json: &Value, field: &str) -> i64 {
    json.at("queues")
        .arr()
        .iter()
        .map(|q| q.at(field).int())
        .sum()
}

// ---------------------------------------------------------------------------

#[test]
fn keep_alive_serves_100_requests_on_one_socket() {
    each_server(
        |_| {},
        |server| {
            let before = status(server);
            let style = std::fs::read(server.root.join("style.css")).expect("style.css");
            let mut stream = server.connect();
            for i in 0..100 {
                let response = get(&mut stream, "/style.css");
                assert_eq!(response.status, 200, "{} request {i}", server.label);
                assert_eq!(response.body, style, "{} request {i}", server.label);
                assert_eq!(response.header("Connection"), None, "{}", server.label);
            }
            let recycled_before = before.at("connections.recycled").int();
            // The last recycle happens just after the last response left.
            assert!(
                wait_until(SOON, || connections(server, "recycled") - recycled_before
                    >= 100),
                "{}: recycled grew by {} for 100 kept-alive responses",
                server.label,
                connections(server, "recycled") - recycled_before
            );
            let after = status(server);
            assert_eq!(
                after.at("connections.accepted").int() - before.at("connections.accepted").int(),
                1,
                "{}: one socket, one accept",
                server.label
            );
            assert_eq!(
                after.at("requests.2xx").int() - before.at("requests.2xx").int(),
                100,
                "{}",
                server.label
            );
            assert_eq!(
                queues_sum(&after, "recycled") - queues_sum(&before, "recycled"),
                after.at("connections.recycled").int() - recycled_before,
                "{}: per-queue recycled adds up to the total",
                server.label
            );
        },
    );
}

#[test]
fn sixteen_pipelined_requests_in_one_write_are_answered_in_order() {
    each_server(
        |_| {},
        |server| {
            // Distinct bodies so order is checkable; one file is big enough to
            // go by sendfile (not cached, > sendfile_min_size) mid-pipeline,
            // and every fourth request is /echo.
            let mut expected = Vec::new();
            let mut batch = Vec::new();
            for i in 0..16 {
                if i % 4 == 3 {
                    let request = format!("GET /echo?seq={i} HTTP/1.1\r\nHost: test\r\n\r\n");
                    batch.extend_from_slice(request.as_bytes());
                    expected.push(request.into_bytes());
                } else {
                    let body: Vec<u8> = if i == 6 {
                        (0..200 * 1024u32).map(|n| (n % 253) as u8).collect()
                    } else {
                        format!("file number {i}\n").repeat(i + 1).into_bytes()
                    };
                    std::fs::write(server.root.join(format!("f{i}.txt")), &body).expect("write");
                    write!(batch, "GET /f{i}.txt HTTP/1.1\r\nHost: test\r\n\r\n").expect("fmt");
                    expected.push(body);
                }
            }
            let mut stream = server.connect();
            stream.write_all(&batch).expect("one write");
            let mut carry = Vec::new();
            for (i, body) in expected.iter().enumerate() {
                let response = read_response_with(&mut stream, &mut carry, false);
                assert_eq!(response.status, 200, "{} response {i}", server.label);
                assert!(
                    response.body == *body,
                    "{}: response {i} out of order or wrong: {:?}",
                    server.label,
                    String::from_utf8_lossy(&response.body[..response.body.len().min(60)])
                );
            }
            assert!(carry.is_empty(), "{}: extra bytes", server.label);
            // And the connection is still good afterwards.
            assert_eq!(
                get(&mut stream, "/f0.txt").body,
                expected[0],
                "{}",
                server.label
            );
        },
    );
}

#[test]
fn request_trickled_one_byte_at_a_time_is_answered() {
    each_server(
        |_| {},
        |server| {
            let mut stream = server.connect(); // TCP_NODELAY: one segment per byte
            let request = b"GET /app.js HTTP/1.1\r\nHost: test\r\nUser-Agent: trickle\r\n\r\n";
            for byte in request {
                stream.write_all(&[*byte]).expect("byte");
                stream.flush().expect("flush");
                std::thread::sleep(Duration::from_micros(500));
            }
            let response = read_response(&mut stream);
            assert_eq!(response.status, 200, "{}", server.label);
            let on_disk = std::fs::read(server.root.join("app.js")).expect("app.js");
            assert_eq!(response.body, on_disk, "{}", server.label);
            // Still usable for a normal request.
            assert_eq!(get(&mut stream, "/app.js").status, 200, "{}", server.label);
        },
    );
}

#[test]
fn max_requests_per_connection_closes_after_the_last() {
    each_server(
        |c| c.limits.max_requests_per_connection = 3,
        |server| {
            let mut stream = server.connect();
            for i in 1..=3 {
                let response = get(&mut stream, "/style.css");
                assert_eq!(response.status, 200, "{} request {i}", server.label);
                let close = response.header("Connection");
                if i < 3 {
                    assert_eq!(close, None, "{} request {i}", server.label);
                } else {
                    assert_eq!(close, Some("close"), "{} request {i}", server.label);
                }
            }
            assert!(
                closed_within(&mut stream, SOON),
                "{}: not closed",
                server.label
            );
        },
    );
}

#[test]
fn header_timeout_answers_408_and_closes_and_drops_silent_connections() {
    each_server(
        |c| c.timeouts.header_read = SHORT,
        |server| {
            let started = Instant::now();
            let mut half = server.connect();
            let mut silent = server.connect();
            half.write_all(b"GET /index.ht")
                .expect("half a request line");

            let response = read_response(&mut half);
            let elapsed = started.elapsed();
            assert_eq!(response.status, 408, "{}", server.label);
            assert_eq!(
                response.header("Connection"),
                Some("close"),
                "{}",
                server.label
            );
            assert!(
                elapsed >= SHORT * 9 / 10 && elapsed < SHORT + SLACK,
                "{}: 408 after {elapsed:?}, header_read {SHORT:?}",
                server.label
            );
            assert!(
                closed_within(&mut half, SOON),
                "{}: 408 but open",
                server.label
            );

            // The silent one had the same deadline (both accepted at once).
            assert!(
                closed_within(&mut silent, SOON),
                "{}: silent connection still open after {:?}",
                server.label,
                started.elapsed()
            );
            let elapsed = started.elapsed();
            assert!(
                elapsed >= SHORT * 9 / 10 && elapsed < SHORT + SLACK,
                "{}: silent connection closed after {elapsed:?}, header_read {SHORT:?}",
                server.label
            );
            assert!(
                wait_until(SOON, || connections(server, "open") == 0),
                "{}: connections still counted open",
                server.label
            );
        },
    );
}

/// With TCP_DEFER_ACCEPT (the default) the kernel holds a connection until
/// its first bytes arrive: the server neither sees nor counts a silent one,
/// and a talking one is served as usual.
#[test]
fn deferred_accept_keeps_silent_connections_out_of_the_server() {
    each_server(
        |c| c.runtime.tcp_defer_accept = Duration::from_secs(1),
        |server| {
            let silent = server.connect();
            let mut talker = server.connect();
            assert_eq!(
                get(&mut talker, "/style.css").status,
                200,
                "{}",
                server.label
            );
            // The talker is open and idle; the silent one was never handed over.
            assert!(
                wait_until(SOON, || connections(server, "idle_keepalive") == 1),
                "{}",
                server.label
            );
            assert_eq!(connections(server, "open"), 1, "{}", server.label);
            assert_eq!(connections(server, "accepted"), 1, "{}", server.label);
            drop(silent);
        },
    );
}

#[test]
fn idle_keep_alive_connection_is_closed_after_keepalive_idle() {
    each_server(
        |c| c.timeouts.keepalive_idle = SHORT,
        |server| {
            let mut stream = server.connect();
            assert_eq!(
                get(&mut stream, "/style.css").status,
                200,
                "{}",
                server.label
            );
            let answered = Instant::now();
            assert!(
                wait_until(SOON, || connections(server, "idle_keepalive") == 1),
                "{}: idle_keepalive never 1",
                server.label
            );
            let during = status(server);
            assert_eq!(during.at("connections.open").int(), 1, "{}", server.label);
            assert_eq!(
                during.at("connections.reading").int(),
                0,
                "{}",
                server.label
            );

            assert!(
                closed_within(&mut stream, SOON),
                "{}: idle connection never closed",
                server.label
            );
            let elapsed = answered.elapsed();
            assert!(
                // The idle clock starts just before the response is read.
                elapsed >= SHORT / 2 && elapsed < SHORT + SLACK,
                "{}: closed after {elapsed:?}, keepalive_idle {SHORT:?}",
                server.label
            );
            assert!(
                wait_until(SOON, || {
                    let s = status(server);
                    s.at("connections.idle_keepalive").int() == 0
                        && s.at("connections.open").int() == 0
                }),
                "{}: gauges not back to 0: {}",
                server.label,
                server.status_json()
            );
        },
    );
}

/// Reads a response that arrives unasked (a 503 from the acceptor).
///
/// The rejected client sends nothing: the server closes at once, and unread
/// request bytes would make the kernel answer with a reset that could
/// overtake the 503.
fn read_unasked(server: &TestServer) -> (Response, TcpStream) {
    let mut stream = server.connect();
    let response = read_response(&mut stream);
    (response, stream)
}

/// Sends the first half of a request: the connection is mid-request.
fn half_request(stream: &mut TcpStream) {
    stream
        .write_all(b"GET /app.js HTTP/1.1\r\n")
        .expect("half a request");
}

/// Sends the rest of `half_request`'s request and reads the response.
fn finish_request(stream: &mut TcpStream) -> Response {
    stream
        .write_all(b"Host: test\r\n\r\n")
        .expect("the rest of the request");
    read_response(stream)
}

/// A dispatcher that takes nothing off the pending queues until `open` is
/// set, then serves their connections one at a time.
struct Gated {
    open: Arc<Latch>,
}

impl Dispatcher for Gated {
    fn name(&self) -> &str {
        "gated"
    }

    fn start(&self, runtime: &Handle, line: &Arc<Line>, handler: Arc<dyn Handler>) {
        for worker in 0..runtime.workers() {
            let (line, handler, open) = (line.clone(), handler.clone(), self.open.clone());
            runtime
                .spawn_local_on(worker, move || async move {
                    open.wait().await;
                    loop {
                        let conn = line.pending[worker].pop().await;
                        handler.handle(conn, &line).await;
                    }
                })
                .detach();
        }
    }
}

/// A full pending queue answers 503 under `overload = "reject"`. The queue
/// is kept full by a dispatcher that pops nothing until told: neither
/// built-in one lets it stay full (`spawn` starts a green thread per
/// connection, and a `pool` handler never waits on a client). With one
/// worker and a queue of one, A queued fills the line; B gets 503.
#[test]
fn full_pending_queue_rejects_with_503() {
    for acceptor in ACCEPTORS {
        let open = Arc::new(Latch::new());
        let gated = Arc::new(Gated { open: open.clone() });
        let server = start_with(
            acceptor,
            "spawn",
            |c| {
                c.workers = 1;
                c.queue.capacity = 1;
                c.queue.overload = Overload::Reject;
            },
            |builder| builder.dispatcher(gated),
        );
        let label = &server.label;
        let rejected_before = connections(&server, "rejected");

        // A: waits in the queue.
        let mut a = server.connect();
        a.write_all(b"GET /app.js HTTP/1.1\r\nHost: test\r\n\r\n")
            .expect("A");
        assert!(
            wait_until(SOON, || queues_sum(&status(&server), "depth") == 1),
            "{label}: A never queued: {}",
            server.status_json()
        );
        // B: no room.
        let (response, mut b) = read_unasked(&server);
        assert_eq!(response.status, 503, "{label}");
        assert_eq!(response.header("Retry-After"), Some("1"), "{label}");
        assert!(closed_within(&mut b, SOON), "{label}: B left open");
        assert_eq!(
            connections(&server, "rejected") - rejected_before,
            1,
            "{label}"
        );

        // Open the gate: A is answered.
        open.set();
        let response = read_response(&mut a);
        assert_eq!(response.status, 200, "{label}: A");
        let on_disk = std::fs::read(server.root.join("app.js")).expect("app.js");
        assert_eq!(response.body, on_disk, "{label}: A");
    }
}

#[test]
fn max_connections_with_reject_answers_503_to_the_third() {
    each_server(
        |c| {
            c.limits.max_connections = 2;
            c.queue.overload = Overload::Reject;
        },
        |server| {
            let mut a = server.connect();
            let mut b = server.connect();
            assert_eq!(get(&mut a, "/style.css").status, 200, "{}", server.label);
            assert_eq!(get(&mut b, "/style.css").status, 200, "{}", server.label);
            // Both mid-request: an idle one would be closed to admit C.
            half_request(&mut a);
            half_request(&mut b);
            assert!(
                wait_until(SOON, || connections(server, "idle_keepalive") == 0),
                "{}: A and B still idle",
                server.label
            );

            let (response, mut c) = read_unasked(server);
            assert_eq!(response.status, 503, "{}", server.label);
            assert_eq!(
                response.header("Retry-After"),
                Some("1"),
                "{}",
                server.label
            );
            assert_eq!(
                response.header("Connection"),
                Some("close"),
                "{}",
                server.label
            );
            assert!(closed_within(&mut c, SOON), "{}: C left open", server.label);
            assert_eq!(connections(server, "rejected"), 1, "{}", server.label);

            // The first two are still served.
            assert_eq!(finish_request(&mut a).status, 200, "{}", server.label);

            // Once one closes, its slot serves the next newcomer.
            drop(a);
            assert!(
                wait_until(SOON, || connections(server, "open") == 1),
                "{}: A's slot not freed",
                server.label
            );
            let mut d = server.connect();
            let response = get(&mut d, "/style.css");
            assert_eq!(
                response.status, 200,
                "{}: D after a slot freed",
                server.label
            );
            assert_eq!(finish_request(&mut b).status, 200, "{}", server.label);
        },
    );
}

#[test]
fn max_connections_with_wait_serves_the_third_once_one_closes() {
    each_server(
        |c| {
            c.limits.max_connections = 2;
            c.queue.overload = Overload::Wait;
        },
        |server| {
            let mut a = server.connect();
            let mut b = server.connect();
            assert_eq!(get(&mut a, "/style.css").status, 200, "{}", server.label);
            assert_eq!(get(&mut b, "/style.css").status, 200, "{}", server.label);
            // Both mid-request: an idle one would be closed to admit C.
            half_request(&mut a);
            half_request(&mut b);
            assert!(
                wait_until(SOON, || connections(server, "idle_keepalive") == 0),
                "{}: A and B still idle",
                server.label
            );

            // C completes its handshake in the kernel backlog, but is not
            // accepted while both slots are taken.
            let mut c = server.connect();
            c.write_all(b"GET /app.js HTTP/1.1\r\nHost: test\r\n\r\n")
                .expect("C");
            c.set_read_timeout(Some(SHORT)).expect("timeout");
            let mut byte = [0u8; 1];
            match c.read(&mut byte) {
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                other => {
                    let mut rest = vec![0u8; 300];
                    let n = c.read(&mut rest).unwrap_or(0);
                    panic!(
                        "{}: C answered while the line was full: {other:?} {:?}{} {}",
                        server.label,
                        byte,
                        String::from_utf8_lossy(&rest[..n]),
                        server.status_json()
                    )
                }
            }
            assert_eq!(connections(server, "accepted"), 2, "{}", server.label);

            drop(a);
            c.set_read_timeout(Some(SOON)).expect("timeout");
            let response = read_response(&mut c);
            assert_eq!(response.status, 200, "{}: C once A closed", server.label);
            let on_disk = std::fs::read(server.root.join("app.js")).expect("app.js");
            assert_eq!(response.body, on_disk, "{}", server.label);
            assert_eq!(connections(server, "rejected"), 0, "{}", server.label);
            assert_eq!(finish_request(&mut b).status, 200, "{}", server.label);
        },
    );
}

fn big_file() -> &'static [u8] {
    static BIG: OnceLock<Vec<u8>> = OnceLock::new();
    BIG.get_or_init(|| {
        // A 4093-byte pattern (prime, so it never lines up with buffer sizes)
        // with a running block number every block: a lost or repeated piece shows.
        let pattern: Vec<u8> = (0..4093u32).map(|n| (n * 7 % 251) as u8).collect();
        let mut data = Vec::with_capacity(8 << 20);
        let mut block = 0u32;
        while data.len() < 8 << 20 {
            data.extend_from_slice(&block.to_le_bytes());
            data.extend_from_slice(&pattern);
            block += 1;
        }
        data.truncate(8 << 20);
        data
    })
}

#[test]
fn graceful_shutdown_finishes_a_download_closes_idle_and_refuses_new() {
    let big = big_file();
    matrix(|acceptor, dispatcher| {
        let server = start(acceptor, dispatcher, |_| {});
        let label = server.label.clone();
        let addr = server.addr;
        std::fs::write(server.root.join("big.bin"), big).expect("big.bin");

        // An idle keep-alive connection.
        let mut idle = server.connect();
        assert_eq!(get(&mut idle, "/style.css").status, 200, "{label}");
        assert!(
            wait_until(SOON, || connections(&server, "idle_keepalive") == 1),
            "{label}: never idle"
        );

        // A download read only a few KB in.
        let mut download = small_window_connect(server.addr);
        download
            .write_all(b"GET /big.bin HTTP/1.1\r\nHost: test\r\n\r\n")
            .expect("request");
        let mut got = Vec::new();
        let mut buf = vec![0u8; 2048];
        let head_end = loop {
            let n = download.read(&mut buf).expect("read head");
            assert!(n > 0, "{label}: closed before the head");
            got.extend_from_slice(&buf[..n]);
            if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                if got.len() >= end + 4 + 4096 {
                    break end + 4;
                }
            }
        };
        let head = String::from_utf8_lossy(&got[..head_end]).into_owned();
        assert!(head.starts_with("HTTP/1.1 200 "), "{label}: {head}");
        assert!(
            head.contains(&format!("Content-Length: {}\r\n", big.len())),
            "{label}: {head}"
        );
        let mut body = got.split_off(head_end);
        assert!(
            wait_until(SOON, || connections(&server, "writing") == 1),
            "{label}: the download is not mid-write"
        );

        let shutdown_started = Instant::now();
        let stopper = std::thread::spawn(move || server.shutdown());

        // New connections are refused as soon as the acceptors stop…
        assert!(
            wait_until(SOON, || TcpStream::connect(addr).is_err()),
            "{label}: still accepting during shutdown"
        );
        // …while the download in flight completes, byte for byte.
        let mut buf = vec![0u8; 64 * 1024];
        while body.len() < big.len() {
            let n = download.read(&mut buf).expect("read body");
            assert!(n > 0, "{label}: cut off at {} of {}", body.len(), big.len());
            body.extend_from_slice(&buf[..n]);
        }
        assert_eq!(body.len(), big.len(), "{label}: extra bytes");
        assert!(body == big, "{label}: body differs");
        assert!(
            closed_within(&mut download, SOON),
            "{label}: download left open"
        );
        assert!(
            closed_within(&mut idle, SOON),
            "{label}: idle connection left open"
        );

        stopper.join().expect("shutdown thread");
        // It waited for the download, not for the whole grace period.
        assert!(
            shutdown_started.elapsed() < Duration::from_secs(4),
            "{label}: shutdown took {:?}",
            shutdown_started.elapsed()
        );
        assert!(
            TcpStream::connect(addr).is_err(),
            "{label}: port still open"
        );
    });
}

#[test]
fn status_json_and_prometheus_report_everything() {
    each_server(
        |_| {},
        |server| {
            let label = &server.label;
            let mut stream = server.connect();
            assert_eq!(get(&mut stream, "/style.css").status, 200, "{label}");
            assert_eq!(get(&mut stream, "/nope.txt").status, 404, "{label}");
            let response = get(&mut stream, "/status");
            assert_eq!(response.status, 200, "{label}");
            assert_eq!(
                response.header("Content-Type"),
                Some("application/json"),
                "{label}"
            );
            assert_eq!(
                response.header("Cache-Control"),
                Some("no-store"),
                "{label}"
            );
            check_status_json(label, &parse(&response.text()));

            let response = get(&mut stream, "/status?format=prometheus");
            assert_eq!(response.status, 200, "{label}");
            assert!(
                response
                    .header("Content-Type")
                    .is_some_and(|t| t.starts_with("text/plain")),
                "{label}"
            );
            check_prometheus(label, &response.text());
        },
    );
}

/// The JSON report after one 200 and one 404 on a connection still open
/// (the request for the report itself is the one being read).
fn check_status_json(label: &str, json: &Value) {
    assert_eq!(
        json.at("version").str(),
        env!("CARGO_PKG_VERSION"),
        "{label}"
    );
    assert!(json.at("uptime_secs").num() >= 0.0, "{label}");
    assert_eq!(json.at("workers").int(), 2, "{label}");
    let (acceptor, dispatcher) = label.split_once('×').expect("label");
    assert_eq!(json.at("stages.acceptor").str(), acceptor, "{label}");
    assert_eq!(json.at("stages.dispatcher").str(), dispatcher, "{label}");
    assert_eq!(json.at("stages.handler").str(), "http", "{label}");

    let conn = json.at("connections");
    assert_eq!(conn.at("accepted").int(), 1, "{label}");
    assert_eq!(conn.at("open").int(), 1, "{label}");
    assert_eq!(conn.at("reading").int(), 1, "{label}: this very request");
    for field in ["writing", "idle_keepalive", "rejected", "recycled"] {
        assert!(conn.at(field).int() >= 0, "{label}: {field}");
    }
    assert!(conn.at("recycled").int() >= 2, "{label}");

    let requests = json.at("requests");
    assert_eq!(requests.at("2xx").int(), 1, "{label}");
    assert_eq!(requests.at("4xx").int(), 1, "{label}");
    for class in ["1xx", "3xx", "5xx"] {
        assert_eq!(requests.at(class).int(), 0, "{label}: {class}");
    }
    assert_eq!(requests.at("total").int(), 2, "{label}");
    assert!(json.at("bytes.in").int() > 0, "{label}");
    assert!(json.at("bytes.out").int() > 0, "{label}");

    let latency = json.at("latency_us");
    let [p50, p90, p99] = ["p50", "p90", "p99"].map(|p| latency.at(p).int());
    assert!(p50 <= p90 && p90 <= p99, "{label}: {p50} {p90} {p99}");

    let queues = json.at("queues").arr();
    assert_eq!(queues.len(), 2, "{label}");
    for (i, q) in queues.iter().enumerate() {
        assert_eq!(q.at("worker").int(), i as i64, "{label}");
        assert_eq!(q.at("capacity").int(), 1024, "{label}");
        let (pushed, popped) = (q.at("pushed").int(), q.at("popped").int());
        let depth = q.at("depth").int();
        assert_eq!(pushed - popped, depth, "{label}: queue {i}");
        assert!(q.at("recycled").int() >= 0, "{label}");
    }
    assert!(queues_sum(json, "pushed") >= 3, "{label}");

    let scheduler = json.at("scheduler").arr();
    assert_eq!(scheduler.len(), 2, "{label}: read from a worker");
    for w in scheduler {
        for field in [
            "worker",
            "spawned",
            "alive",
            "completed",
            "panicked",
            "polls",
            "parks",
            "wakes_local",
            "wakes_remote",
            "io_events",
            "timer_fires",
            "injected_pending",
        ] {
            assert!(w.at(field).int() >= 0, "{label}: {field}");
        }
        assert_eq!(w.at("panicked").int(), 0, "{label}");
    }
    assert!(
        scheduler.iter().map(|w| w.at("polls").int()).sum::<i64>() > 0,
        "{label}"
    );
}

/// The Prometheus text: typed families, labelled per-worker series, and the
/// same counts as the JSON.
fn check_prometheus(label: &str, text: &str) {
    assert!(
        text.contains("# TYPE conveyor_requests_total counter\n"),
        "{label}: {text}"
    );
    let two_xx = text
        .lines()
        .find_map(|l| l.strip_prefix("conveyor_requests_total{class=\"2xx\"} "))
        .unwrap_or_else(|| panic!("{label}: no 2xx sample in {text}"));
    assert_eq!(two_xx, "2", "{label}: style.css and the JSON /status");
    // Per-worker families carry one sample per worker, labelled.
    for family in [
        "queue_idle",
        "green_threads_spawned_total",
        "shed_codel_total",
    ] {
        for worker in 0..2 {
            let series = format!("conveyor_{family}{{worker=\"{worker}\"}} ");
            assert!(text.contains(&series), "{label}: no {series} in {text}");
        }
    }
    let mut typed = Vec::new();
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE line");
            let kinds = ["counter", "gauge", "histogram"];
            assert!(kinds.contains(&kind), "{label}: {l}");
            typed.push(name.to_string());
        } else if !l.starts_with("# HELP ") {
            let (series, value) = l.rsplit_once(' ').expect("sample line");
            let name = series.split('{').next().expect("name");
            // A histogram's samples are its name plus a suffix.
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .filter(|f| typed.iter().any(|t| t == f))
                .unwrap_or(name);
            assert!(typed.iter().any(|t| t == family), "{label}: untyped {l}");
            assert!(value.parse::<f64>().is_ok(), "{label}: {l}");
        }
    }
    for name in [
        "conveyor_connections_accepted_total",
        "conveyor_queue_pushed_total",
        "conveyor_queue_popped_total",
        "conveyor_request_duration_seconds",
        "conveyor_scheduler_polls_total",
    ] {
        assert!(typed.iter().any(|t| t == name), "{label}: no {name}");
    }
}

#[test]
fn load_moves_the_queue_counters() {
    const CLIENTS: usize = 4;
    const REQUESTS: usize = 200;
    each_server(
        |_| {},
        |server| {
            let before = status(server);
            std::thread::scope(|scope| {
                for _ in 0..CLIENTS {
                    scope.spawn(|| {
                        let mut stream = server.connect();
                        for i in 0..REQUESTS {
                            let response = get(&mut stream, "/style.css");
                            assert_eq!(response.status, 200, "{} request {i}", server.label);
                        }
                    });
                }
            });
            let total = (CLIENTS * REQUESTS) as i64;
            let after = status(server);
            // Every request is preceded by a push: the fresh connection's, or
            // the recycled one's once it became readable again.
            let pushed = queues_sum(&after, "pushed") - queues_sum(&before, "pushed");
            let popped = queues_sum(&after, "popped") - queues_sum(&before, "popped");
            assert!(pushed >= total, "{}: pushed +{pushed}", server.label);
            assert!(popped >= total, "{}: popped +{popped}", server.label);
            assert_eq!(
                after.at("requests.2xx").int() - before.at("requests.2xx").int(),
                total,
                "{}",
                server.label
            );
            assert_eq!(
                after.at("connections.accepted").int() - before.at("connections.accepted").int(),
                CLIENTS as i64,
                "{}",
                server.label
            );
        },
    );
}

#[test]
fn a_client_that_stops_reading_is_dropped_after_the_write_timeout() {
    let big = big_file();
    each_server(
        |c| c.timeouts.write = SHORT,
        |server| {
            let label = &server.label;
            std::fs::write(server.root.join("big.bin"), big).expect("big file");
            let mut stream = small_window_connect(server.addr);
            stream
                .write_all(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
                .expect("send");
            // The client reads nothing: the server's sendfile stalls on a
            // full window, and the write timeout must end the connection.
            assert!(
                wait_until(SOON, || connections(server, "writing") == 1),
                "{label}: the response never started"
            );
            let stalled = Instant::now();
            assert!(
                wait_until(SOON, || connections(server, "open") == 0),
                "{label}: a client that stopped reading was never dropped"
            );
            assert!(
                stalled.elapsed() < SHORT + SLACK,
                "{label}: {:?}",
                stalled.elapsed()
            );
            // What had been sent can still be read, then EOF: the body is short.
            let mut received = Vec::new();
            let _ = stream.read_to_end(&mut received);
            assert!(received.len() < big.len(), "{label}: got everything anyway");
        },
    );
}

// ---------------------------------------------------------------------------
// Connection pressure and admission control (README "Connection pressure",
// "Admission control").

#[test]
fn the_longest_idle_keep_alive_connection_is_closed_to_admit_a_new_client() {
    each_server(
        |c| c.limits.max_connections = 2,
        |server| {
            let label = &server.label;
            let mut a = server.connect();
            assert_eq!(get(&mut a, "/style.css").status, 200, "{label}");
            assert!(
                wait_until(SOON, || connections(server, "idle_keepalive") == 1),
                "{label}: A never idle"
            );
            // Idle deadlines are kept to the millisecond: let B's come later.
            std::thread::sleep(Duration::from_millis(20));
            let mut b = server.connect();
            assert_eq!(get(&mut b, "/style.css").status, 200, "{label}");
            assert!(
                wait_until(SOON, || connections(server, "idle_keepalive") == 2),
                "{label}: B never idle"
            );

            // Both slots are held by idle connections: C is served at once,
            // and A, idle longest, pays for it; B stays open.
            let mut c = server.connect();
            assert_eq!(get(&mut c, "/app.js").status, 200, "{label}: C");
            assert!(closed_within(&mut a, SOON), "{label}: A still open");
            assert_eq!(get(&mut b, "/app.js").status, 200, "{label}: B");
            let pressure = status(server).at("pressure").clone();
            assert_eq!(pressure.at("evicted_idle").int(), 1, "{label}");
            assert_eq!(pressure.at("slots_exhausted").int(), 1, "{label}");
            assert_eq!(pressure.at("max_connections").int(), 2, "{label}");
            assert_eq!(
                pressure.at("max_connections_auto"),
                &Value::Bool(false),
                "{label}"
            );
            assert_eq!(connections(server, "rejected"), 0, "{label}");
        },
    );
}

#[test]
fn by_default_slots_follow_the_open_file_limit() {
    let server = start("readiness", "spawn", |c| c.limits.max_connections = 0);
    let pressure = status(&server).at("pressure").clone();
    assert_eq!(pressure.at("max_connections_auto"), &Value::Bool(true));
    let limit = pressure.at("fd_limit").int();
    let max = pressure.at("max_connections").int();
    // The limit less a sixteenth (at least 256, or a quarter below 1024).
    let headroom = (limit / 16).max((limit / 4).min(256));
    assert_eq!(max, (limit - headroom).max(1), "{pressure:?}");
    assert!(limit >= pressure.at("fd_limit_at_start").int());
}

#[test]
fn a_client_trickling_its_first_headers_loses_its_slot_at_the_header_timeout() {
    const HEADER_READ: Duration = Duration::from_secs(2);
    each_server(
        |c| {
            c.limits.max_connections = 1;
            c.timeouts.header_read = HEADER_READ;
        },
        |server| {
            let label = server.label.clone();
            let started = Instant::now();
            let mut slow = server.connect();
            // D waits for the one slot, which the slow client holds.
            let mut d = server.connect();
            d.write_all(b"GET /app.js HTTP/1.1\r\nHost: test\r\n\r\n")
                .expect("D");
            // Silent for most of the header timeout, then a byte at a time:
            // each byte must not buy it more time.
            let mut writer = slow.try_clone().expect("clone");
            let trickle = std::thread::spawn(move || {
                std::thread::sleep(HEADER_READ * 3 / 4);
                let request =
                    b"GET /app.js HTTP/1.1\r\nHost: test\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaa";
                for byte in request {
                    if writer.write_all(&[*byte]).is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            });
            let response = read_response(&mut slow);
            let cut = started.elapsed();
            assert_eq!(response.status, 408, "{label}");
            assert!(
                cut >= HEADER_READ * 9 / 10 && cut < HEADER_READ + SLACK,
                "{label}: 408 after {cut:?}, header_read {HEADER_READ:?}"
            );
            // Its slot goes to D.
            let answer = read_response(&mut d);
            assert_eq!(answer.status, 200, "{label}: D");
            assert!(
                started.elapsed() < HEADER_READ + SLACK + SOON,
                "{label}: D served after {:?}",
                started.elapsed()
            );
            trickle.join().expect("trickler");
        },
    );
}

/// A mounted service that holds its worker for 15 ms per request (a
/// CPU-bound request), so connections queue behind each other.
struct Slow;

impl conveyor::service::Service for Slow {
    fn serve<'a>(
        &'a self,
        ex: &'a mut conveyor::service::Exchange<'_>,
    ) -> conveyor::service::ServiceFuture<'a> {
        conveyor::service::ServiceFuture::new(async move {
            std::thread::sleep(Duration::from_millis(15));
            ex.respond(200, "text/plain", b"ok\n", &[])
        })
    }
}

/// `n` new connections each sending one `GET /slow` (Connection: close) at
/// once to a one-worker server under `overload`; their responses' statuses,
/// and the server.
fn burst(overload: Overload, n: usize) -> (Vec<Response>, TestServer) {
    let server = start_with(
        "readiness",
        "spawn",
        |c| {
            c.workers = 1;
            c.queue.overload = overload;
            c.queue.codel_target = Duration::from_millis(5);
            c.queue.codel_interval = Duration::from_millis(50);
        },
        |b| b.route("/slow", Arc::new(Slow)),
    );
    let mut clients: Vec<TcpStream> = (0..n)
        .map(|_| {
            let mut s = server.connect();
            s.write_all(b"GET /slow HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                .expect("send");
            s
        })
        .collect();
    let responses = clients.iter_mut().map(read_response).collect();
    (responses, server)
}

#[test]
fn codel_sheds_new_connections_with_503_while_the_queue_wait_stays_high() {
    let (responses, server) = burst(Overload::Codel, 24);
    let served = responses.iter().filter(|r| r.status == 200).count();
    let shed: Vec<&Response> = responses.iter().filter(|r| r.status == 503).collect();
    assert_eq!(served + shed.len(), 24, "{responses:?}");
    // At 15 ms each, the wait passes the 5 ms target with the second one
    // and stays above it: shedding starts after the 50 ms interval.
    assert!(served >= 2, "{served} served");
    assert!(shed.len() >= 8, "only {} shed", shed.len());
    for r in &shed {
        assert_eq!(r.header("Retry-After"), Some("1"), "{r:?}");
        assert_eq!(r.header("Connection"), Some("close"), "{r:?}");
    }
    let pressure = status(&server).at("pressure").clone();
    assert_eq!(pressure.at("shed_codel").int(), shed.len() as i64);
    assert_eq!(pressure.at("overload").str(), "codel");
    // Once the backlog is gone the wait falls, and new clients are served.
    let mut late = server.connect();
    assert_eq!(get(&mut late, "/slow").status, 200);
    let after = status(&server);
    let worker = &after.at("pressure").at("queue_wait").arr()[0];
    assert_eq!(worker.at("shedding"), &Value::Bool(false), "{worker:?}");
    assert!(worker.at("wait_us").int() < 5_000, "{worker:?}");
}

#[test]
fn wait_serves_every_connection_however_long_the_queue_wait() {
    let (responses, server) = burst(Overload::Wait, 24);
    assert!(
        responses.iter().all(|r| r.status == 200),
        "{:?}",
        responses.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    let pressure = status(&server).at("pressure").clone();
    assert_eq!(pressure.at("shed_codel").int(), 0);
    // The wait was measured all the same: the last ones queued behind the
    // others' 15 ms each.
    let worker = &pressure.at("queue_wait").arr()[0];
    assert!(worker.at("wait_avg_us").int() > 5_000, "{worker:?}");
    assert_eq!(worker.at("shedding"), &Value::Bool(false), "{worker:?}");
}
