//! Lingering close: when Conveyor answers and closes while the client is
//! still sending, the answer must still arrive. A plain close with unread
//! bytes makes the kernel send a reset, which destroys the response in
//! flight; so the server shuts down its side, reads and drops the rest,
//! and closes when the client does (as nginx's `lingering_close`).
//!
//! Each case sends its request, then 1 MB more, from a writer thread while
//! the test reads: the whole answer must arrive every time.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::thread;

use std::time::Duration;

use crate::harness::tls::{client, handshake, localhost_pki, tls_addr, with_tls, BOTH};
use crate::harness::{
    count, localhost_certificate, read_until_closed, small_window_connect, start, temp_dir,
};

const MORE: usize = 1_000_000;

/// Sends `head` then 1 MB of `filler` on a thread of its own, asserts all of
/// it could be sent, then returns everything the server sent until it
/// closed (or 20 s passed).
fn send_and_read(addr: SocketAddr, head: Vec<u8>, filler: u8) -> Vec<u8> {
    // A small receive window keeps most of the answer in the server's send
    // queue until the test reads: the queue a reset throws away.
    let mut reader = small_window_connect(addr);
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

/// 1,500 requests pipelined over TLS, then 1 MB more, on a connection
/// that closes after 1,000: the 1,000 answers all arrive. The records are
/// written from one thread while another collects what comes back, and
/// the answers are decrypted once the sending is done.
#[test]
fn pipelined_requests_over_tls_past_the_connection_limit_all_get_their_answer() {
    let pki = localhost_pki();
    let server = start("readiness", "spawn", |config| {
        with_tls(config, &pki);
        config.limits.max_requests_per_connection = 1000;
    });
    let config = client(&pki.ders, BOTH);
    let tls = handshake(
        small_window_connect(tls_addr(&server)),
        &config,
        "localhost",
    )
    .expect("TLS handshake");
    let (mut conn, sock) = (tls.conn, tls.sock);
    let mut receiving = sock.try_clone().expect("clone");
    let collecting = thread::spawn(move || {
        let (got, closed) = read_until_closed(&mut receiving, Duration::from_secs(20));
        assert!(closed, "the server closed the connection");
        got
    });
    let one = b"GET /index.html HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let mut plain: Vec<u8> = one.iter().copied().cycle().take(one.len() * 1500).collect();
    plain.resize(plain.len() + MORE, b'x');
    let mut sending = &sock;
    for piece in plain.chunks(16 * 1024) {
        conn.writer().write_all(piece).expect("encrypt");
        while conn.wants_write() {
            conn.write_tls(&mut sending)
                .expect("the client could send all it had");
        }
    }
    let ciphertext = collecting.join().expect("collector");
    let mut records = &ciphertext[..];
    let mut got = Vec::new();
    while !records.is_empty() && conn.read_tls(&mut records).expect("records") > 0 {
        conn.process_new_packets().expect("valid records");
        let _ = conn.reader().read_to_end(&mut got);
    }
    assert_eq!(count(&got, b"HTTP/1.1 200 OK\r\n"), 1000);
    assert!(got.ends_with(b"</html>\n"), "the last answer whole");
}
