//! A client's FIN that arrives with (or just after) its last bytes is
//! seen at once, on every path that reads a client: the HTTP/2 connection
//! (the fuzz input that first showed the miss), HTTP/1.1 keep-alive, a
//! request body, and TLS. Each case runs many times against real sockets,
//! each run with a deadline far below the server's timeouts (30 s here):
//! a missed FIN shows as a connection still open at the deadline.
//!
//! The miss was the runtime's: a short read marked the socket drained,
//! though the FIN queued behind the bytes had already been signalled by
//! the same edge (`src/runtime/reactor.rs`, `Source::fire`). The test
//! that shows it every time is `runtime::io::tests` in the library; these
//! caught it one run in a few hundred.

use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

use crate::harness::{self, tls, TestServer};

/// Runs per case: the miss was about one in a few hundred.
const RUNS: usize = 300;
/// Far below the server's timeouts, far above a loopback round trip.
const DEADLINE: Duration = Duration::from_secs(3);

/// The server's timeouts, long enough that only a seen FIN closes a
/// connection within [`DEADLINE`].
fn slow_timeouts(config: &mut conveyor::config::Config) {
    let long = Duration::from_secs(30);
    config.timeouts.header_read = long;
    config.timeouts.body_read = long;
    config.timeouts.keepalive_idle = long;
    config.timeouts.write = long;
}

fn server(tweak: impl FnOnce(&mut conveyor::config::Config)) -> TestServer {
    harness::start(harness::ACCEPTORS[0], harness::DISPATCHERS[0], |config| {
        slow_timeouts(config);
        tweak(config);
    })
}

/// Sends `bytes` and a FIN on a fresh connection; true if the server
/// closed it within the deadline.
fn send_and_close(addr: SocketAddr, bytes: &[u8]) -> bool {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    stream.write_all(bytes).expect("write");
    stream.shutdown(Shutdown::Write).expect("shutdown");
    harness::read_until_closed(&mut stream, DEADLINE).1
}

/// Runs `case` [`RUNS`] times, or until it fails (false: the FIN was
/// missed), so a failing run costs one deadline, not hundreds.
fn every_run(what: &str, mut case: impl FnMut() -> bool) {
    if let Some(run) = (1..=RUNS).find(|_| !case()) {
        panic!("{what}: run {run} of {RUNS} still open {DEADLINE:?} after the client's FIN");
    }
}

#[test]
fn http2_post_cut_short_by_the_fin() {
    let server = server(|_| {});
    let input = std::fs::read(harness::repo("fuzz/regressions/h2_connection/eof-mid-body"))
        .expect("the fuzz input");
    let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    bytes.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    bytes.extend_from_slice(&input);
    every_run("h2c", || send_and_close(server.addr, &bytes));
}

#[test]
fn http1_keep_alive_request_then_the_fin() {
    let server = server(|_| {});
    let request = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
    every_run("keep-alive", || send_and_close(server.addr, request));
}

#[test]
fn http1_body_cut_short_by_the_fin() {
    let server = server(|_| {});
    let request = b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\nhello";
    every_run("body", || send_and_close(server.addr, request));
}

#[test]
fn tls_request_then_the_fin() {
    let pki = tls::localhost_pki();
    let server = server(|config| tls::with_tls(config, &pki));
    let client = tls::client(&pki.ders, tls::BOTH);
    let addr = tls::tls_addr(&server);
    every_run("TLS", || {
        let mut stream = tls::connect(addr, &client, "localhost");
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .expect("write");
        // No close notice: the FIN alone ends the client's side.
        stream.sock.shutdown(Shutdown::Write).expect("shutdown");
        harness::read_until_closed(&mut stream.sock, DEADLINE).1
    });
}
