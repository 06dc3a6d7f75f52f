//! `[limits.per_client]` against real sockets (issue 23): a request rate
//! per client (429 + Retry-After beyond the burst, over HTTP/1.1 and h2c),
//! open connections per address (503 at accept), the client as `[proxy]`
//! establishes it, and a bounded table under many source addresses. The
//! whole of 127.0.0.0/8 is local: each test's clients bind their own
//! addresses in it, so tests running at once never share a bucket.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::harness::h2_client::{session, Target};
use crate::harness::status::{status, Figures};
use crate::harness::*;
use conveyor::config::{AddrRange, Config};

fn limited(rate: u32, burst: u32, connections: u32) -> impl FnOnce(&mut Config) {
    move |config: &mut Config| {
        let limits = &mut config.limits.per_client;
        limits.rate = rate;
        limits.burst = burst;
        limits.connections = connections;
    }
}

/// `n` pipelined GETs of `/` on `stream` (one write), with `headers`;
/// the statuses and each response's `Retry-After` and `Connection`.
fn pipelined(stream: &mut TcpStream, n: usize, headers: &str) -> Vec<Response> {
    let one = format!("GET / HTTP/1.1\r\nHost: test\r\n{headers}\r\n");
    stream.write_all(one.repeat(n).as_bytes()).expect("send");
    let mut carry = Vec::new();
    (0..n)
        .map(|_| read_response_with(stream, &mut carry, false))
        .collect()
}

fn statuses(responses: &[Response]) -> Vec<u16> {
    responses.iter().map(|r| r.status).collect()
}

#[test]
fn beyond_the_burst_a_client_gets_429_with_retry_after_over_http1() {
    let server = start("readiness", "spawn", limited(1, 3, 0));
    let mut stream = connect_from("127.1.0.1", server.addr);
    let responses = pipelined(&mut stream, 5, "");
    assert_eq!(statuses(&responses), [200, 200, 200, 429, 429]);
    let refused = &responses[3];
    assert_eq!(refused.header("Retry-After"), Some("1"), "{refused:?}");
    assert!(refused.text().contains("too many requests"), "{refused:?}");
    // Refused, not dropped: the connection stays open for later.
    assert_eq!(refused.header("Connection"), None, "{refused:?}");
    // Another address has its own bucket; the probes are never limited.
    assert_eq!(
        get(&mut connect_from("127.1.0.2", server.addr), "/").status,
        200
    );
    for _ in 0..5 {
        assert_eq!(get(&mut stream, "/livez").status, 200);
    }
    // A second later a token is back.
    assert!(wait_until(Duration::from_secs(5), || {
        get(&mut stream, "/").status == 200
    }));
    let figures = status(&server);
    assert!(figures.at("per_client.refused_requests").int() >= 2);
    assert_eq!(figures.at("per_client.capacity").int(), 16_384);
}

#[test]
fn each_h2c_stream_counts_as_a_request() {
    let server = start("readiness", "spawn", limited(1, 3, 1));
    // One connection allowed per address: the h2 connection counts once,
    // however many streams it carries.
    let target = Target::Cleartext(server.addr);
    let responses = session(&target, |h2| async move {
        let mut out = Vec::new();
        for _ in 0..5 {
            out.push(h2.request("GET", "/", &[], None).await.expect("a response"));
        }
        out
    });
    assert_eq!(statuses(&responses), [200, 200, 200, 429, 429]);
    assert_eq!(responses[4].header("retry-after"), Some("1"));
    assert!(status(&server).at("per_client.refused_requests").int() >= 2);
}

#[test]
fn connections_past_the_limit_are_answered_503_at_accept() {
    // Every acceptor counts them (the same accept loop), each from its own
    // addresses.
    for (n, acceptor) in ACCEPTORS.iter().enumerate() {
        past_the_connection_limit(acceptor, &format!("127.2.{n}"));
    }
}

fn past_the_connection_limit(acceptor: &str, net: &str) {
    let server = start(acceptor, "spawn", limited(0, 20, 2));
    let from = &format!("{net}.1");
    let mut first = connect_from(from, server.addr);
    let mut second = connect_from(from, server.addr);
    // Served, so both are surely accepted and counted.
    assert_eq!(get(&mut first, "/").status, 200);
    assert_eq!(get(&mut second, "/").status, 200);
    // The third is answered 503 unread and closed.
    let mut third = connect_from(from, server.addr);
    let (bytes, closed) = read_until_closed(&mut third, Duration::from_secs(5));
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("HTTP/1.1 503 "), "{acceptor}: {text}");
    assert!(text.contains("Retry-After: 1\r\n"), "{text}");
    assert!(text.contains("too many connections"), "{text}");
    assert!(closed);
    // Another address is not held back.
    assert_eq!(
        get(&mut connect_from("127.2.0.2", server.addr), "/").status,
        200
    );
    // One closes: the address may connect again once the server saw it go.
    drop(first);
    assert!(wait_until(Duration::from_secs(5), || {
        let mut again = connect_from(from, server.addr);
        let _ = write!(again, "GET / HTTP/1.1\r\nHost: test\r\n\r\n");
        let mut head = [0u8; 12];
        again.read_exact(&mut head).is_ok() && head.ends_with(b"200")
    }));
    let figures = status(&server);
    assert!(figures.at("per_client.refused_connections").int() >= 1);
    assert_eq!(get(&mut second, "/").status, 200);
}

#[test]
fn x_forwarded_for_counts_from_a_trusted_proxy_only() {
    let server = start("readiness", "spawn", |config| {
        limited(1, 2, 0)(config);
        config.proxy.trusted = vec![AddrRange::parse("127.3.0.1").expect("a range")];
    });
    // Through the trusted proxy, each client its own bucket.
    let mut proxy = connect_from("127.3.0.1", server.addr);
    let a = pipelined(&mut proxy, 3, "X-Forwarded-For: 203.0.113.5\r\n");
    assert_eq!(statuses(&a), [200, 200, 429]);
    let b = pipelined(&mut proxy, 2, "X-Forwarded-For: 203.0.113.6\r\n");
    assert_eq!(statuses(&b), [200, 200]);
    // From anyone else the field is not believed: a new address in each
    // request buys nothing.
    let mut other = connect_from("127.3.0.2", server.addr);
    let mut seen = Vec::new();
    for i in 0..3 {
        let field = format!("X-Forwarded-For: 198.51.100.{i}\r\n");
        seen.extend(statuses(&pipelined(&mut other, 1, &field)));
    }
    assert_eq!(seen, [200, 200, 429]);
}

#[test]
fn many_source_addresses_keep_memory_flat_and_a_client_served() {
    const ADDRESSES: u32 = 3000;
    const TABLE: usize = 512;
    let server = start("readiness", "spawn", |config| {
        limited(1, 5, 4)(config);
        config.limits.per_client.table_size = TABLE;
    });
    // A client that keeps asking for more than its rate, three requests on
    // a new connection each time (its entry is held by no connection
    // between them: only its empty bucket keeps it in the table).
    let flood = || {
        statuses(&pipelined(
            &mut connect_from("127.4.0.1", server.addr),
            3,
            "",
        ))
    };
    let mut seen = flood();
    seen.extend(flood());
    assert_eq!(seen.last(), Some(&429), "{seen:?}");
    let one = |i: u32| {
        let from = format!("127.5.{}.{}", i / 250, i % 250 + 1);
        let mut stream = connect_from(&from, server.addr);
        let responses = pipelined(&mut stream, 1, "Connection: close\r\n");
        assert_eq!(responses[0].status, 200, "from {from}");
    };
    // Warm up (the table, buffers), then measure the rest.
    for i in 0..500 {
        one(i);
    }
    let before = rss_bytes();
    let started = Instant::now();
    for i in 500..ADDRESSES {
        one(i);
        if i % 50 == 0 {
            let seen = flood();
            assert_eq!(seen.last(), Some(&429), "after {i} addresses: {seen:?}");
        }
        assert!(started.elapsed() < Duration::from_secs(60), "too slow");
    }
    let grown = rss_bytes().saturating_sub(before);
    let figures = status(&server);
    let clients = figures.at("per_client.clients").int();
    eprintln!(
        "{ADDRESSES} addresses in {:?}: RSS +{grown} bytes, {clients} clients, {} evictions",
        started.elapsed(),
        figures.at("per_client.evictions").int()
    );
    assert!(
        clients <= TABLE as i64,
        "{clients} clients in a table of {TABLE}"
    );
    assert!(figures.at("per_client.evictions").int() > 0);
    // Six times the table in new addresses; the RSS of the whole test
    // process (other tests run in it too) stays within a few MiB.
    assert!(grown < 16 << 20, "RSS grew {grown} bytes");
    // And a legitimate client is served.
    assert_eq!(
        get(&mut connect_from("127.4.0.2", server.addr), "/").status,
        200
    );
}

#[test]
fn a_burst_below_one_with_a_rate_stops_start_up_naming_the_fix() {
    let dir = temp_dir("per-client-config");
    let config = dir.join("conveyor.toml");
    std::fs::write(
        &config,
        "listen = \"127.0.0.1:0\"\n[limits.per_client]\nrate = 10\nburst = 0\n",
    )
    .expect("write config");
    let out = std::process::Command::new(crate::harness::process::BIN)
        .arg("--config")
        .arg(&config)
        .output()
        .expect("runs");
    let _ = std::fs::remove_dir_all(&dir);
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("limits.per_client.burst = 0"), "{text}");
    assert!(text.contains("set burst to at least 1"), "{text}");
}
