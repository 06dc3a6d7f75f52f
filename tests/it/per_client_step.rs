//! The per-client rate as an admission step before the handler (issue 23):
//! a request refused for want of a token is answered 429 by the step, and
//! no handler runs for it — the access log, which the handler writes, has
//! no line for it — over HTTP/1.1 (pipelined batches cost a token each)
//! and HTTP/2, under both dispatchers. Each test's clients bind their own
//! addresses in 127.0.0.0/8, so tests running at once never share a bucket.

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;

use crate::harness::h2_client::{session, Target};
use crate::harness::status::{status, Figures};
use crate::harness::*;
use conveyor::config::{AddrRange, Config};

/// A rate of one a second after a burst of `burst`, with an access log in
/// `dir`.
fn limited(burst: u32, dir: &Path, dispatcher: &str) -> impl FnOnce(&mut Config) {
    let log = dir.join(format!("access-{dispatcher}.log"));
    move |config: &mut Config| {
        let limits = &mut config.limits.per_client;
        limits.rate = 1;
        limits.burst = burst;
        config.log.access_log = true;
        config.log.access_log_path = log.display().to_string();
    }
}

/// The requests in `batch` written at once; `n` responses read.
fn pipelined(stream: &mut TcpStream, batch: &str, n: usize) -> Vec<Response> {
    stream.write_all(batch.as_bytes()).expect("send");
    let mut carry = Vec::new();
    (0..n)
        .map(|_| read_response_with(stream, &mut carry, false))
        .collect()
}

fn statuses(responses: &[Response]) -> Vec<u16> {
    responses.iter().map(|r| r.status).collect()
}

/// Access log lines naming `client`.
fn logged(server: &TestServer, client: &str) -> usize {
    let log = server.access_log();
    let lines = log.lines();
    lines
        .filter(|l| l.starts_with(&format!("{client} - - [")))
        .count()
}

const GET: &str = "GET / HTTP/1.1\r\nHost: test\r\n\r\n";

#[test]
fn requests_refused_over_http1_never_reach_the_handler() {
    let dir = temp_dir("per-client-step");
    for (n, dispatcher) in DISPATCHERS.iter().enumerate() {
        let server = start("readiness", dispatcher, limited(3, &dir, dispatcher));
        let label = &server.label;
        let from = format!("127.6.{n}.1");
        let mut stream = connect_from(&from, server.addr);
        // Five pipelined in one write: three tokens, so three served by
        // the handler, two answered by the step, in order.
        let responses = pipelined(&mut stream, &GET.repeat(5), 5);
        assert_eq!(statuses(&responses), [200, 200, 200, 429, 429], "{label}");
        assert_eq!(responses[3].header("Retry-After"), Some("1"), "{label}");
        assert_eq!(responses[4].header("Connection"), None, "{label}");
        // The connection stays usable; a HEAD refused has no body.
        // (A body after it would be read as the next response's head.)
        stream
            .write_all(b"HEAD / HTTP/1.1\r\nHost: test\r\n\r\n")
            .expect("send");
        let mut carry = Vec::new();
        let head = read_response_with(&mut stream, &mut carry, true);
        assert_eq!((head.status, carry.len()), (429, 0), "{label}");
        // One with a body is answered and the connection closed: its body
        // is never read as a request.
        let post = "POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n\r\nGET /";
        let refused = pipelined(&mut stream, post, 1);
        assert_eq!(refused[0].status, 429, "{label}");
        assert_eq!(refused[0].header("Connection"), Some("close"), "{label}");
        // The handler logged the three it served, none of the rest.
        assert_eq!(
            logged(&server, &from),
            3,
            "{label}:\n{}",
            server.access_log()
        );
        let figures = status(&server);
        assert!(
            figures.at("per_client.refused_requests").int() >= 4,
            "{label}"
        );
        // The probes are never counted: served by the handler.
        let mut probe = connect_from(&from, server.addr);
        for _ in 0..4 {
            assert_eq!(get(&mut probe, "/livez").status, 200, "{label}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn h2_streams_refused_never_reach_the_handler() {
    let dir = temp_dir("per-client-step-h2");
    for dispatcher in DISPATCHERS {
        let server = start("readiness", dispatcher, limited(3, &dir, dispatcher));
        let label = &server.label;
        let target = Target::Cleartext(server.addr);
        let responses = session(&target, |h2| async move {
            let mut out = Vec::new();
            for _ in 0..6 {
                out.push(h2.request("GET", "/", &[], None).await.expect("a response"));
            }
            out
        });
        assert_eq!(
            statuses(&responses),
            [200, 200, 200, 429, 429, 429],
            "{label}"
        );
        assert_eq!(responses[5].header("retry-after"), Some("1"), "{label}");
        // h2 clients come from 127.0.0.1: only they are in this log.
        assert_eq!(logged(&server, "127.0.0.1"), 3, "{label}");
        let figures = status(&server);
        assert_eq!(
            figures.at("per_client.refused_requests").int(),
            3,
            "{label}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn each_pipelined_request_counts_for_the_client_its_trusted_proxy_names() {
    let dir = temp_dir("per-client-step-xff");
    let server = start("readiness", "spawn", |config| {
        limited(1, &dir, "spawn")(config);
        config.proxy.trusted = vec![AddrRange::parse("127.6.9.1").expect("a range")];
    });
    let mut proxy = connect_from("127.6.9.1", server.addr);
    let from = |ip: &str| format!("GET / HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: {ip}\r\n\r\n");
    // One token each: A served, A refused (by the step, between two the
    // handler serves), B served.
    let batch = [
        from("203.0.113.7"),
        from("203.0.113.7"),
        from("203.0.113.8"),
    ]
    .concat();
    assert_eq!(statuses(&pipelined(&mut proxy, &batch, 3)), [200, 429, 200]);
    assert_eq!(logged(&server, "203.0.113.7"), 1);
    assert_eq!(logged(&server, "203.0.113.8"), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn behind_the_proxy_protocol_the_client_its_header_names_is_counted() {
    let dir = temp_dir("per-client-step-proxy");
    let server = start("readiness", "spawn", |config| {
        limited(2, &dir, "spawn")(config);
        config.proxy.trusted = vec![AddrRange::parse("127.6.10.1").expect("a range")];
        config.proxy.protocol = true;
    });
    // The header and three requests in one write: the step admits nothing
    // before the handler has read the header, then counts for its client.
    let mut proxy = connect_from("127.6.10.1", server.addr);
    let batch = format!(
        "PROXY TCP4 192.0.2.9 127.0.0.1 5000 80\r\n{}",
        GET.repeat(3)
    );
    assert_eq!(statuses(&pipelined(&mut proxy, &batch, 3)), [200, 200, 429]);
    assert_eq!(logged(&server, "192.0.2.9"), 2);
    // Another client behind the same proxy has its own bucket.
    let mut other = connect_from("127.6.10.1", server.addr);
    let batch = format!("PROXY TCP4 192.0.2.10 127.0.0.1 5001 80\r\n{GET}");
    assert_eq!(statuses(&pipelined(&mut other, &batch, 1)), [200]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Reads what `stream` still sends until it closes; the bytes after the
/// responses read so far (`carry`) included.
fn rest_until_closed(stream: &mut TcpStream, carry: Vec<u8>) -> Vec<u8> {
    use std::io::Read;
    let mut rest = carry;
    stream.read_to_end(&mut rest).expect("read until closed");
    rest
}

#[test]
fn no_token_is_spent_on_a_request_the_handler_never_answers() {
    let dir = temp_dir("per-client-step-unanswered");
    for (n, dispatcher) in DISPATCHERS.iter().enumerate() {
        let server = start("readiness", dispatcher, limited(4, &dir, dispatcher));
        let label = &server.label;
        let from = format!("127.6.{}.1", 20 + n);
        // Two pipelined after one that closes the connection: the handler
        // answers the first and closes; one token spent, not three.
        let mut first = connect_from(&from, server.addr);
        let close = "GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n";
        first
            .write_all(format!("{close}{GET}{GET}").as_bytes())
            .expect("send");
        let mut carry = Vec::new();
        let answered = read_response_with(&mut first, &mut carry, false);
        assert_eq!(answered.status, 200, "{label}");
        assert_eq!(answered.header("Connection"), Some("close"), "{label}");
        let rest = rest_until_closed(&mut first, carry);
        assert!(
            rest.is_empty(),
            "{label}: {:?}",
            String::from_utf8_lossy(&rest)
        );
        // One the handler's parser refuses (obs-fold) after one it serves:
        // answered 400 by the handler, and no token spent on it.
        let mut second = connect_from(&from, server.addr);
        let folded = "GET / HTTP/1.1\r\nHost: test\r\n x: y\r\n\r\n";
        let responses = pipelined(&mut second, &format!("{GET}{folded}"), 2);
        assert_eq!(statuses(&responses), [200, 400], "{label}");
        // Two of four tokens spent: two more served, then 429.
        let mut third = connect_from(&from, server.addr);
        let responses = pipelined(&mut third, &GET.repeat(3), 3);
        assert_eq!(statuses(&responses), [200, 200, 429], "{label}");
        assert_eq!(logged(&server, &from), 5, "{label}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_long_pipelined_flood_is_refused_in_order_in_pieces() {
    let dir = temp_dir("per-client-step-flood");
    let server = start("readiness", "pool", limited(1, &dir, "pool"));
    let mut stream = connect_from("127.6.30.1", server.addr);
    // 900 requests (24 KB, more than a read buffer): one served, the rest
    // answered 429 by the step (over 100 KB, sent as it goes). Fewer than
    // `limits.max_requests_per_connection`, so the connection stays.
    let responses = pipelined(&mut stream, &GET.repeat(900), 900);
    let refused = responses.iter().filter(|r| r.status == 429).count();
    assert_eq!((responses[0].status, refused), (200, 899));
    // Still in step: the next request is answered in its place.
    let after = pipelined(&mut stream, GET, 1);
    assert_eq!(after[0].status, 429);
    assert_eq!(logged(&server, "127.6.30.1"), 1);
    let _ = std::fs::remove_dir_all(&dir);
}
