//! Lingering close: when Conveyor answers and closes while the client is
//! still sending, the answer must still arrive. A plain close with unread
//! bytes makes the kernel send a reset, which destroys the response in
//! flight; so the server shuts down its side, reads and drops the rest,
//! and closes when the client does (as nginx's `lingering_close`).
//!
//! Each case sends its request, then 1 MB more, from a writer thread while
//! the test reads: the whole answer must arrive every time.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::thread;

use socket2::{Domain, Socket, Type};
use std::time::Duration;

use crate::harness::{count, localhost_certificate, read_until_closed, start, temp_dir};

const MORE: usize = 1_000_000;

/// Sends `head` then 1 MB of `filler` on a thread of its own, asserts all of
/// it could be sent, then returns everything the server sent until it
/// closed (or 20 s passed).
fn send_and_read(addr: SocketAddr, head: Vec<u8>, filler: u8) -> Vec<u8> {
    // A small receive buffer keeps most of the answer in the server's send
    // queue until the test reads: the queue a reset would throw away.
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    socket.connect(&addr.into()).expect("connect");
    let mut reader: TcpStream = socket.into();
    let mut writer = reader.try_clone().expect("clone");
    let sending = thread::spawn(move || -> std::io::Result<()> {
        writer.write_all(&head)?;
        let chunk = vec![filler; 64 * 1024];
        let mut sent = 0;
        while sent < MORE {
            writer.write_all(&chunk)?;
            sent += chunk.len();
        }
        writer.shutdown(std::net::Shutdown::Write)
    });
    // Read only once everything is sent: the answer then waits in the
    // socket buffers when the server closes, where a reset would drop it.
    // A client that meets a reset while sending (curl with a body) stops
    // there and never reads the answer: all of it must go through.
    let sent = sending.join().expect("writer");
    assert!(sent.is_ok(), "the client could send all it had: {sent:?}");
    let (got, closed) = read_until_closed(&mut reader, Duration::from_secs(20));
    assert!(closed, "the server closed the connection");
    got
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_bad_request_after_pipelined_ones_is_answered_with_all_of_them() {
    let server = start("readiness", "spawn", |_| {});
    let mut head = Vec::new();
    for _ in 0..200 {
        head.extend_from_slice(b"GET /index.html HTTP/1.1\r\nHost: t\r\n\r\n");
    }
    head.extend_from_slice(b"NOT A REQUEST LINE\r\n\r\n");
    let got = send_and_read(server.addr, head, b'x');
    assert_eq!(
        count(&got, b"HTTP/1.1 200 OK\r\n"),
        200,
        "every pipelined answer"
    );
    assert_eq!(
        count(&got, b"HTTP/1.1 400 "),
        1,
        "and the 400: {}",
        text(&got[got.len().saturating_sub(400)..])
    );
}

#[test]
fn a_refused_body_still_gets_its_answer() {
    let server = start("readiness", "spawn", |config| {
        config.limits.max_echo_body = 1024;
    });
    // 405: a static path takes no POST; its 20 MB body is not read.
    let post = b"POST /index.html HTTP/1.1\r\nHost: t\r\nContent-Length: 20000000\r\n\r\n".to_vec();
    let got = send_and_read(server.addr, post, b'b');
    assert!(text(&got).starts_with("HTTP/1.1 405 "), "{}", text(&got));
    // 413: /echo takes bodies up to limits.max_echo_body.
    let post = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 20000000\r\n\r\n".to_vec();
    let got = send_and_read(server.addr, post, b'b');
    assert!(text(&got).starts_with("HTTP/1.1 413 "), "{}", text(&got));
}

#[test]
fn the_last_request_of_a_connection_is_answered_with_more_on_the_way() {
    let server = start("readiness", "spawn", |config| {
        config.limits.max_requests_per_connection = 5;
    });
    let mut head = Vec::new();
    for _ in 0..10 {
        head.extend_from_slice(b"GET /index.html HTTP/1.1\r\nHost: t\r\n\r\n");
    }
    let got = send_and_read(server.addr, head, b'\n');
    assert_eq!(
        count(&got, b"HTTP/1.1 200 OK\r\n"),
        5,
        "{}",
        text(&got[..200.min(got.len())])
    );
    assert_eq!(count(&got, b"Connection: close\r\n"), 1);
}

#[test]
fn plain_http_on_the_tls_port_reads_its_400() {
    let dir = temp_dir("linger-tls");
    let certificate = localhost_certificate(&dir);
    let server = start("readiness", "spawn", |config| {
        config.tls.listen = vec!["127.0.0.1:0".parse().expect("addr")];
        config.tls.certificates = vec![certificate];
    });
    let tls = server.server().tls_addrs()[0];
    let post = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n".to_vec();
    let got = send_and_read(tls, post, b'p');
    assert!(text(&got).starts_with("HTTP/1.1 400 "), "{}", text(&got));
    assert!(
        text(&got).contains("this port speaks HTTPS"),
        "{}",
        text(&got)
    );
    drop(server);
    std::fs::remove_dir_all(&dir).expect("clean up");
}
