//! `/echo`: preambles reflected, bodies streamed back (Content-Length and
//! chunked), `100 Continue`, method errors, bodies on routes that ignore
//! them, and constant memory for a large stream.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::harness::*;

/// Body bytes: a 65521-byte pattern (prime, so it never lines up with
/// buffer sizes) whose first 8 bytes are the block number, so a lost,
/// repeated or reordered piece is seen.
struct Pattern {
    base: Vec<u8>,
}

impl Pattern {
    const BLOCK: usize = 65521;

    fn new() -> Pattern {
        Pattern {
            base: (0..Self::BLOCK as u32)
                .map(|n| (n.wrapping_mul(131) >> 3) as u8)
                .collect(),
        }
    }

    /// Block `k` in `buf` (which must be BLOCK long).
    fn fill_block(&self, buf: &mut Vec<u8>, k: u64) {
        buf.clear();
        buf.extend_from_slice(&self.base);
        buf[..8].copy_from_slice(&k.to_le_bytes());
    }

    fn bytes(&self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + Self::BLOCK);
        let mut block = Vec::new();
        let mut k = 0;
        while out.len() < len {
            self.fill_block(&mut block, k);
            out.extend_from_slice(&block);
            k += 1;
        }
        out.truncate(len);
        out
    }

    /// Whether `data` is what belongs at offset `pos` of the stream.
    fn matches(&self, mut pos: usize, mut data: &[u8]) -> bool {
        while !data.is_empty() {
            let k = (pos / Self::BLOCK) as u64;
            let off = pos % Self::BLOCK;
            let n = (Self::BLOCK - off).min(data.len());
            let (here, rest) = data.split_at(n);
            let counter = k.to_le_bytes();
            for (i, byte) in here.iter().enumerate().take(8usize.saturating_sub(off)) {
                if *byte != counter[off + i] {
                    return false;
                }
            }
            let skip = 8usize.saturating_sub(off).min(n);
            if here[skip..] != self.base[off + skip..off + n] {
                return false;
            }
            pos += n;
            data = rest;
        }
        true
    }
}

/// Writes `head` then `body` on a clone of `stream` from another thread, so
/// the echo coming back is read concurrently (else the TCP windows fill up
/// and both sides wait on each other).
fn send_in_background(
    stream: &TcpStream,
    head: Vec<u8>,
    body: Vec<u8>,
) -> std::thread::JoinHandle<()> {
    let mut writer = stream.try_clone().expect("clone");
    std::thread::spawn(move || {
        writer.write_all(&head).expect("send head");
        writer.write_all(&body).expect("send body");
    })
}

#[test]
fn get_echo_returns_the_request_preamble_as_text() {
    each_server(
        |_| {},
        |server| {
            let mut stream = server.connect();
            let request = b"GET /echo?x=1&y=%20 HTTP/1.1\r\nHost: test\r\nX-Custom: a \"quoted\" value\r\nAccept: */*\r\n\r\n";
            stream.write_all(request).expect("send");
            let response = read_response(&mut stream);
            assert_eq!(response.status, 200, "{}", server.label);
            assert_eq!(
                response.header("Content-Type"),
                Some("text/plain; charset=utf-8"),
                "{}",
                server.label
            );
            assert_eq!(response.body, request.to_vec(), "{}", server.label);
            // It mirrors one request: no cache may keep it (REDbot).
            assert_eq!(
                response.header("Cache-Control"),
                Some("no-store"),
                "{}",
                server.label
            );
            // Kept alive.
            assert_eq!(response.header("Connection"), None, "{}", server.label);
            assert!(
                get(&mut stream, "/echo")
                    .text()
                    .starts_with("GET /echo HTTP/1.1\r\n"),
                "{}",
                server.label
            );
        },
    );
}

#[test]
fn head_echo_has_the_length_but_no_body() {
    each_server(
        |_| {},
        |server| {
            let mut stream = server.connect();
            let head = b"HEAD /echo HTTP/1.1\r\nHost: test\r\n\r\n";
            let next = b"GET /echo HTTP/1.1\r\nHost: next\r\n\r\n";
            // Both in one write: the HEAD response must not carry a body, or
            // the GET's response would be misread.
            stream
                .write_all(&[&head[..], &next[..]].concat())
                .expect("send");
            let mut carry = Vec::new();
            let response = read_response_with(&mut stream, &mut carry, true);
            assert_eq!(response.status, 200, "{}", server.label);
            assert_eq!(
                response.header("Content-Length"),
                Some(head.len().to_string().as_str()),
                "{}",
                server.label
            );
            let response = read_response_with(&mut stream, &mut carry, false);
            assert!(
                response.headers.iter().all(|(n, _)| !n.starts_with("HEAD")),
                "{}",
                server.label
            );
            assert_eq!(response.body, next.to_vec(), "{}", server.label);
            assert!(carry.is_empty(), "{}", server.label);
        },
    );
}

fn echo_with_length(server: &TestServer, stream: &mut TcpStream, method: &str, body: Vec<u8>) {
    let head = format!(
        "{method} /echo HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let expected = body.clone();
    let writer = send_in_background(stream, head.into_bytes(), body);
    let response = read_response(stream);
    writer.join().expect("writer");
    assert_eq!(response.status, 200, "{} {method}", server.label);
    assert_eq!(
        response.header("Content-Type"),
        Some("application/octet-stream"),
        "{}",
        server.label
    );
    assert_eq!(
        response.header("Content-Length"),
        Some(expected.len().to_string().as_str()),
        "{}",
        server.label
    );
    assert_eq!(
        response.body.len(),
        expected.len(),
        "{} {method}",
        server.label
    );
    assert!(
        response.body == expected,
        "{} {method}: body differs",
        server.label
    );
}

#[test]
fn post_with_content_length_echoes_small_and_4_mib_bodies() {
    let big = Pattern::new().bytes(4 << 20);
    each_server(
        |_| {},
        |server| {
            let mut stream = server.connect();
            echo_with_length(server, &mut stream, "POST", b"hello, conveyor\n".to_vec());
            echo_with_length(server, &mut stream, "POST", Vec::new());
            echo_with_length(server, &mut stream, "POST", big.clone());
            // Same connection still in step.
            assert_eq!(
                get(&mut stream, "/style.css").status,
                200,
                "{}",
                server.label
            );
        },
    );
}

#[test]
fn put_echoes_the_body() {
    each_server(
        |_| {},
        |server| {
            let mut stream = server.connect();
            echo_with_length(server, &mut stream, "PUT", Pattern::new().bytes(100_000));
            echo_with_length(server, &mut stream, "PUT", b"x".to_vec());
        },
    );
}

#[test]
fn post_chunked_with_extensions_echoes_chunked() {
    let big = Pattern::new().bytes(300_000);
    each_server(
        |_| {},
        |server| {
            let mut stream = server.connect();
            let mut request =
                b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            let mut expected = Vec::new();
            let pieces: [(&str, &[u8]); 5] = [
                ("5;name=value", b"hello"),
                ("1;a;b=\"quoted;\"", b" "),
                ("1a ; spaced = ext", b"abcdefghijklmnopqrstuvwxyz"),
                ("493E0", &big),
                ("2", b"\r\n"),
            ];
            for (size_line, data) in pieces {
                request.extend_from_slice(size_line.as_bytes());
                request.extend_from_slice(b"\r\n");
                request.extend_from_slice(data);
                request.extend_from_slice(b"\r\n");
                expected.extend_from_slice(data);
            }
            request.extend_from_slice(b"0;last=yes\r\nX-Trailer: ignored\r\n\r\n");
            // The next request follows in the same write.
            request.extend_from_slice(b"GET /echo HTTP/1.1\r\nHost: after\r\n\r\n");
            let writer = send_in_background(&stream, request, Vec::new());
            let mut carry = Vec::new();
            let response = read_response_with(&mut stream, &mut carry, false);
            writer.join().expect("writer");
            assert_eq!(response.status, 200, "{}", server.label);
            assert_eq!(
                response.header("Transfer-Encoding"),
                Some("chunked"),
                "{}",
                server.label
            );
            assert_eq!(response.header("Content-Length"), None, "{}", server.label);
            assert_eq!(response.body.len(), expected.len(), "{}", server.label);
            assert!(response.body == expected, "{}: body differs", server.label);
            let next = read_response_with(&mut stream, &mut carry, false);
            assert_eq!(
                next.text(),
                "GET /echo HTTP/1.1\r\nHost: after\r\n\r\n",
                "{}",
                server.label
            );
            assert!(carry.is_empty(), "{}", server.label);
        },
    );
}

#[test]
fn expect_100_continue_is_answered_before_the_body_is_sent() {
    each_server(
        |_| {},
        |server| {
            for framing in ["Content-Length: 11", "Transfer-Encoding: chunked"] {
                let mut stream = server.connect();
                write!(
                    stream,
                    "POST /echo HTTP/1.1\r\nHost: test\r\nExpect: 100-continue\r\n{framing}\r\n\r\n"
                )
                .expect("head");
                // No body sent yet: only the interim response can arrive.
                let mut carry = Vec::new();
                let interim = read_response_with(&mut stream, &mut carry, false);
                assert_eq!(interim.status, 100, "{} {framing}", server.label);
                assert!(interim.headers.is_empty(), "{} {framing}", server.label);
                let body: &[u8] = if framing.starts_with("Content") {
                    b"hello world"
                } else {
                    b"b\r\nhello world\r\n0\r\n\r\n"
                };
                stream.write_all(body).expect("body");
                let response = read_response_with(&mut stream, &mut carry, false);
                assert_eq!(response.status, 200, "{} {framing}", server.label);
                assert_eq!(response.text(), "hello world", "{} {framing}", server.label);
                assert!(carry.is_empty(), "{} {framing}", server.label);
            }
            // The interim line is exactly that.
            let mut stream = server.connect();
            stream
                .write_all(b"PUT /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
                .expect("head");
            let mut first = [0u8; 25];
            stream.read_exact(&mut first).expect("100 Continue");
            assert_eq!(&first, b"HTTP/1.1 100 Continue\r\n\r\n", "{}", server.label);
        },
    );
}

#[test]
fn delete_echo_is_405_with_allow() {
    each_server(
        |_| {},
        |server| {
            let mut stream = server.connect();
            stream
                .write_all(b"DELETE /echo HTTP/1.1\r\nHost: test\r\n\r\n")
                .expect("send");
            let response = read_response(&mut stream);
            assert_eq!(response.status, 405, "{}", server.label);
            let allow = response.header("Allow").unwrap_or_default();
            for method in ["GET", "HEAD", "POST", "PUT"] {
                assert!(allow.contains(method), "{}: Allow {allow:?}", server.label);
            }
            assert!(!allow.contains("DELETE"), "{}", server.label);
            // No body: the connection may stay open, and does.
            assert!(get(&mut stream, "/echo").status == 200, "{}", server.label);
        },
    );
}

#[test]
fn a_body_on_a_static_route_is_never_read_as_a_request() {
    each_server(
        |_| {},
        |server| {
            let style = std::fs::read(server.root.join("style.css")).expect("style.css");
            let app = std::fs::read(server.root.join("app.js")).expect("app.js");
            // The body looks like a request: if it were misread, a 404 for
            // /smuggled would show up among the responses.
            let body = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
            let head = format!(
                "POST /index.html HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            let next = b"GET /style.css HTTP/1.1\r\nHost: test\r\n\r\n";

            // All in one write, then the body in a write of its own.
            for split in [false, true] {
                let mut stream = server.connect();
                if split {
                    stream.write_all(head.as_bytes()).expect("head");
                    std::thread::sleep(Duration::from_millis(20));
                    stream
                        .write_all(&[&body[..], &next[..]].concat())
                        .expect("rest");
                } else {
                    stream
                        .write_all(&[head.as_bytes(), &body[..], &next[..]].concat())
                        .expect("send");
                }
                let mut carry = Vec::new();
                let refused = read_response_with(&mut stream, &mut carry, false);
                assert_eq!(refused.status, 405, "{} split={split}", server.label);
                let second = read_response_with(&mut stream, &mut carry, false);
                assert_eq!(second.status, 200, "{} split={split}", server.label);
                assert_eq!(second.body, style, "{} split={split}", server.label);
                assert!(carry.is_empty(), "{} split={split}", server.label);
                // And the one after that is still the next one asked for.
                let third = get(&mut stream, "/app.js");
                assert_eq!(third.body, app, "{} split={split}", server.label);
            }

            // A body that cannot be skipped (chunked) closes the connection
            // after the response rather than risk misreading it.
            let mut stream = server.connect();
            stream
                .write_all(b"POST /index.html HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
                .expect("send");
            let refused = read_response(&mut stream);
            assert_eq!(refused.status, 405, "{}", server.label);
            assert_eq!(
                refused.header("Connection"),
                Some("close"),
                "{}",
                server.label
            );
            assert!(
                closed_within(&mut stream, Duration::from_secs(3)),
                "{}",
                server.label
            );
        },
    );
}

/// Streams `total` body bytes through /echo: a writer thread generates them,
/// this thread checks them as they return. Returns the peak RSS seen.
fn stream_echo(server: &TestServer, total: usize) -> u64 {
    let pattern = std::sync::Arc::new(Pattern::new());
    let mut stream = server.connect();
    let mut writer = stream.try_clone().expect("clone");
    let source = pattern.clone();
    let writer = std::thread::spawn(move || {
        write!(
            writer,
            "POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: {total}\r\n\r\n"
        )
        .expect("head");
        let mut block = Vec::with_capacity(Pattern::BLOCK);
        let mut sent = 0;
        let mut k = 0;
        while sent < total {
            source.fill_block(&mut block, k);
            let n = block.len().min(total - sent);
            writer.write_all(&block[..n]).expect("body");
            sent += n;
            k += 1;
        }
    });

    let mut buf = vec![0u8; 256 * 1024];
    let mut got = Vec::new();
    let head_end = loop {
        let n = stream.read(&mut buf).expect("head");
        assert!(n > 0, "{}: closed before the head", server.label);
        got.extend_from_slice(&buf[..n]);
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
    };
    let head = String::from_utf8_lossy(&got[..head_end]).into_owned();
    assert!(
        head.starts_with("HTTP/1.1 200 "),
        "{}: {head}",
        server.label
    );
    assert!(
        head.contains(&format!("Content-Length: {total}\r\n")),
        "{}: {head}",
        server.label
    );
    let mut pos = 0;
    let first = &got[head_end..];
    assert!(
        pattern.matches(pos, first),
        "{}: differs at 0",
        server.label
    );
    pos += first.len();
    let mut peak = rss_bytes();
    let mut next_sample = 0;
    while pos < total {
        let n = stream.read(&mut buf).expect("body");
        assert!(n > 0, "{}: cut off at {pos} of {total}", server.label);
        assert!(
            pos + n <= total,
            "{}: more than {total} bytes",
            server.label
        );
        assert!(
            pattern.matches(pos, &buf[..n]),
            "{}: body differs within {pos}..{}",
            server.label,
            pos + n
        );
        pos += n;
        if pos >= next_sample {
            peak = peak.max(rss_bytes());
            next_sample = pos + (1 << 20);
        }
    }
    writer.join().expect("writer");
    // Kept alive and in step afterwards.
    assert_eq!(
        get(&mut stream, "/style.css").status,
        200,
        "{}",
        server.label
    );
    peak.max(rss_bytes())
}

/// One combination only, to keep CI time low. In a debug build, 256 MiB
/// takes about 1 s here.
#[test]
fn a_256_mib_echo_streams_in_constant_memory() {
    const TOTAL: usize = 256 << 20;
    const BUDGET: u64 = 32 << 20;
    if !process::alone(module_path!(), "a_256_mib_echo_streams_in_constant_memory") {
        return;
    }
    let server = start("readiness", "spawn", |_| {});
    // Warm up: the runtime, buffers and thread stacks are in place before the
    // baseline is taken.
    stream_echo(&server, 4 << 20);
    let baseline = rss_bytes();
    let started = Instant::now();
    let peak = stream_echo(&server, TOTAL);
    let took = started.elapsed();
    eprintln!(
        "{}: {} MiB echoed in {took:?}, RSS {} -> peak {} KiB",
        server.label,
        TOTAL >> 20,
        baseline >> 10,
        peak >> 10
    );
    assert!(
        peak.saturating_sub(baseline) < BUDGET,
        "{}: RSS grew by {} KiB while streaming {} MiB (baseline {} KiB)",
        server.label,
        peak.saturating_sub(baseline) >> 10,
        TOTAL >> 20,
        baseline >> 10
    );
}
