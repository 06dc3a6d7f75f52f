//! Request bodies that arrive too slowly (issue 8, 5a): `timeouts.body_read`
//! and `timeouts.body_min_rate`, mod_reqtimeout style. Before a response has
//! begun, a body that is too slow gets 408 and the connection closes; once
//! the echo's 200 head is out, the response is cut short and the connection
//! closes, with no second status line.
//!
//! The behaviour lives in /echo, not in a stage, so one acceptor is enough;
//! the trickle and the body that never starts run under both dispatchers
//! (the pool hands a request that waits on its client to a green thread of
//! its own). The clients sleep between bytes: that is the behaviour under
//! test; what is asserted is a deadline on the server's close.

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::harness::*;
use conveyor::config::Config;

/// The body must start within 1 s and then keep up 1000 B/s.
const BODY_READ: Duration = Duration::from_secs(1);
/// How long after the body deadline the close may come (a loaded CI box).
const SLACK: Duration = Duration::from_secs(3);
/// One byte per interval: about 7 B/s, far below the minimum rate, and
/// (before the fix) far within the old per-read `header_read` of 5 s.
const TRICKLE: Duration = Duration::from_millis(150);
/// The trickle gives up after this long even if the server never closes.
const TRICKLE_FOR: Duration = Duration::from_secs(8);

fn slow_body_limits(config: &mut Config) {
    config.timeouts.body_read = BODY_READ;
    config.timeouts.body_min_rate = 1000;
}

fn start_server(dispatcher: &str) -> TestServer {
    start("readiness", dispatcher, slow_body_limits)
}

/// Writes `pattern`'s bytes one at a time, cycling, every TRICKLE until the
/// server closes (a write fails), `stop` is set, or TRICKLE_FOR has passed.
fn trickle(stream: &TcpStream, pattern: &'static [u8], stop: Arc<AtomicBool>) -> JoinHandle<()> {
    let mut writer = stream.try_clone().expect("clone");
    std::thread::spawn(move || {
        let started = Instant::now();
        for byte in pattern.iter().cycle() {
            if stop.load(Ordering::Relaxed) || started.elapsed() > TRICKLE_FOR {
                return;
            }
            std::thread::sleep(TRICKLE);
            if writer.write_all(&[*byte]).is_err() {
                return;
            }
        }
    })
}

/// Sends `request`, reads up to the end of the response head, then trickles
/// `pattern` and reads until the server closes. Returns everything received
/// and how long after the head the close came (None: not within the limit).
fn trickle_after_head(
    server: &TestServer,
    request: &[u8],
    pattern: &'static [u8],
) -> (Vec<u8>, Option<Duration>) {
    let mut stream = server.connect();
    stream.write_all(request).expect("send");
    let mut got = Vec::new();
    let head_seen = wait_until(Duration::from_secs(5), || {
        let mut buf = [0u8; 4096];
        stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        if let Ok(n) = std::io::Read::read(&mut stream, &mut buf) {
            got.extend_from_slice(&buf[..n]);
        }
        count(&got, b"\r\n\r\n") > 0
    });
    assert!(
        head_seen,
        "no response head: {:?}",
        String::from_utf8_lossy(&got)
    );
    let head_at = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = trickle(&stream, pattern, stop.clone());
    let (rest, closed) = read_until_closed(&mut stream, BODY_READ + SLACK);
    let took = head_at.elapsed();
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("trickle");
    got.extend_from_slice(&rest);
    (got, closed.then_some(took))
}

/// One status line in all that was received, and it is the 200's.
fn assert_one_status_line(got: &[u8]) {
    let text = String::from_utf8_lossy(got);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text:?}");
    assert_eq!(count(got, b"HTTP/1."), 1, "a second status line: {text:?}");
}

#[test]
fn a_trickled_content_length_body_is_cut_short_after_its_head() {
    trickled_content_length_body("spawn");
}

#[test]
fn a_trickled_content_length_body_is_cut_short_under_the_pool() {
    trickled_content_length_body("pool");
}

fn trickled_content_length_body(dispatcher: &str) {
    let server = start_server(dispatcher);
    // The first body byte comes with the head, so the echo's head goes out.
    let request = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\na";
    let (got, closed) = trickle_after_head(&server, request, b"b");
    let took = closed.unwrap_or_else(|| {
        panic!(
            "{}: still open {:?} after the head: {:?}",
            server.label,
            BODY_READ + SLACK,
            String::from_utf8_lossy(&got)
        )
    });
    assert_one_status_line(&got);
    let head_end = got.windows(4).position(|w| w == b"\r\n\r\n").expect("head") + 4;
    assert!(
        String::from_utf8_lossy(&got[..head_end]).contains("Content-Length: 1000\r\n"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    // Cut short: what came back is the start of what was sent, no more.
    let body = &got[head_end..];
    assert!(body.len() < 1000, "{} body bytes", body.len());
    assert!(body.starts_with(b"a"), "{body:?}");
    assert!(body[1..].iter().all(|b| *b == b'b'), "{body:?}");
    eprintln!("closed {took:?} after the head, {} body bytes", body.len());
}

#[test]
fn a_trickled_chunked_body_is_cut_short_after_its_head() {
    let server = start_server("spawn");
    let request = b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n";
    let (got, closed) = trickle_after_head(&server, request, b"1\r\nb\r\n");
    assert!(
        closed.is_some(),
        "still open {:?} after the head: {:?}",
        BODY_READ + SLACK,
        String::from_utf8_lossy(&got)
    );
    assert_one_status_line(&got);
    let text = String::from_utf8_lossy(&got);
    assert!(text.contains("Transfer-Encoding: chunked\r\n"), "{text:?}");
    assert!(text.contains("\r\n\r\n1\r\na\r\n"), "{text:?}");
    // No last chunk: the client can tell the response was cut short.
    assert!(!text.contains("\r\n0\r\n"), "{text:?}");
}

/// A body that never starts: the echo's head waits for the first body
/// bytes, so the answer is a 408 and the connection closes, whichever the
/// framing and whether or not `100 Continue` was sent.
#[test]
fn a_body_that_never_starts_gets_408_and_close() {
    body_never_starts("spawn");
}

#[test]
fn a_body_that_never_starts_gets_408_and_close_under_the_pool() {
    body_never_starts("pool");
}

fn body_never_starts(dispatcher: &str) {
    let server = start_server(dispatcher);
    // The cases wait side by side: each takes the whole allowance.
    std::thread::scope(|scope| {
        for (framing, expect_continue) in [
            ("Content-Length: 10", false),
            ("Transfer-Encoding: chunked", false),
            ("Content-Length: 10", true),
        ] {
            let server = &server;
            scope.spawn(move || never_starts(server, framing, expect_continue));
        }
    });
}

fn never_starts(server: &TestServer, framing: &str, expect_continue: bool) {
    let what = format!(
        "{} {framing} expect_continue={expect_continue}",
        server.label
    );
    let mut stream = server.connect();
    let expect = if expect_continue {
        "Expect: 100-continue\r\n"
    } else {
        ""
    };
    write!(
        stream,
        "POST /echo HTTP/1.1\r\nHost: t\r\n{expect}{framing}\r\n\r\n"
    )
    .expect("send");
    let sent = Instant::now();
    let (got, closed) = read_until_closed(&mut stream, BODY_READ + SLACK);
    let took = sent.elapsed();
    let text = String::from_utf8_lossy(&got);
    assert!(closed, "{what}: still open after {took:?}: {text:?}");
    let response = if expect_continue {
        let rest = text
            .strip_prefix("HTTP/1.1 100 Continue\r\n\r\n")
            .unwrap_or_else(|| panic!("{what}: no 100 Continue first: {text:?}"));
        rest.to_string()
    } else {
        text.to_string()
    };
    assert!(
        response.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{what}: {text:?}"
    );
    assert!(
        response.contains("\r\nConnection: close\r\n"),
        "{what}: {text:?}"
    );
    assert_eq!(
        count(response.as_bytes(), b"HTTP/1."),
        1,
        "{what}: {text:?}"
    );
    // Not before the allowance was up.
    assert!(
        took >= BODY_READ - Duration::from_millis(100),
        "{what}: {took:?}"
    );
}

/// A body slower than `body_read` in total but above the minimum rate is
/// echoed whole: the deadline moves as the bytes arrive.
#[test]
fn a_body_at_the_minimum_rate_is_echoed_whole() {
    let server = start_server("spawn");
    const PIECE: usize = 1500;
    const PIECES: usize = 4;
    let mut stream = server.connect();
    let mut writer = stream.try_clone().expect("clone");
    let sender = std::thread::spawn(move || {
        write!(
            writer,
            "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
            PIECE * PIECES
        )
        .expect("head");
        for k in 0..PIECES {
            // 1500 B every 0.6 s: 2500 B/s, 1.8 s in all (more than body_read).
            writer.write_all(&[b'a' + k as u8; PIECE]).expect("piece");
            std::thread::sleep(Duration::from_millis(600));
        }
    });
    let response = read_response(&mut stream);
    sender.join().expect("sender");
    assert_eq!(response.status, 200);
    assert_eq!(response.body.len(), PIECE * PIECES);
    for (k, piece) in response.body.chunks(PIECE).enumerate() {
        assert!(piece.iter().all(|b| *b == b'a' + k as u8), "piece {k}");
    }
    // Kept alive.
    assert_eq!(get(&mut stream, "/style.css").status, 200);
}
