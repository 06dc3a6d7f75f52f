//! HTTP/1.x connection handling and error statuses over raw TCP, in every
//! stage combination.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::harness::*;
use conveyor::config::Config;

const SERVER: &str = concat!("conveyor/", env!("CARGO_PKG_VERSION"));
const CLOSE_LIMIT: Duration = Duration::from_secs(3);

/// Every response carries Date (IMF-fixdate) and Server.
fn assert_common_headers(r: &Response, what: &str) {
    let date = r
        .header("Date")
        .unwrap_or_else(|| panic!("{what}: no Date header"));
    assert!(
        date.len() == 29 && date.ends_with(" GMT") && date.as_bytes()[3] == b',',
        "{what}: Date {date:?}"
    );
    assert_eq!(r.header("Server"), Some(SERVER), "{what}");
}

/// Sends `request` on a new connection; returns the first response and the
/// still-open stream (to check whether the server closes it).
fn send(server: &TestServer, request: &[u8]) -> (Response, TcpStream) {
    let mut stream = server.connect();
    stream.write_all(request).expect("send");
    let mut carry = Vec::new();
    let response = read_response_with(&mut stream, &mut carry, request.starts_with(b"HEAD "));
    assert!(
        carry.is_empty(),
        "{}: bytes after the response: {:?}",
        server.label,
        String::from_utf8_lossy(&carry)
    );
    (response, stream)
}

/// An error response: the status, a short text body naming it, the common
/// headers, `Connection: close`, and the connection really closed.
fn assert_error_and_close(server: &TestServer, request: &[u8], status: u16) -> Response {
    let what = format!(
        "{} {:?}",
        server.label,
        String::from_utf8_lossy(&request[..request.len().min(80)])
    );
    let (r, mut stream) = send(server, request);
    assert_eq!(r.status, status, "{what}: body {:?}", r.text());
    assert_common_headers(&r, &what);
    assert_eq!(r.header("Connection"), Some("close"), "{what}");
    assert_eq!(
        r.header("Content-Type"),
        Some("text/plain; charset=utf-8"),
        "{what}"
    );
    assert!(
        r.text().starts_with(&format!("{status} ")) && r.body.len() < 200,
        "{what}: body {:?}",
        r.text()
    );
    assert!(
        closed_within(&mut stream, CLOSE_LIMIT),
        "{what}: not closed"
    );
    r
}

fn small_limits(config: &mut Config) {
    config.limits.max_request_line = 512;
    config.limits.max_header_bytes = 1024;
    config.limits.max_headers = 8;
    config.limits.max_echo_body = 100;
}

#[test]
fn http10_gets_a_response_and_the_connection_closes() {
    each_server(
        |_| {},
        |server| {
            let label = &server.label;
            let (r, mut stream) = send(server, b"GET /index.html HTTP/1.0\r\n\r\n");
            assert_file(server, &r, "index.html", label);
            assert_common_headers(&r, label);
            assert!(
                r.header("Connection")
                    .is_none_or(|c| c.eq_ignore_ascii_case("close")),
                "{label}"
            );
            assert!(
                closed_within(&mut stream, CLOSE_LIMIT),
                "{label}: 1.0 not closed"
            );
        },
    );
}

#[test]
fn http10_keep_alive_serves_a_second_request() {
    each_server(
        |_| {},
        |server| {
            let label = &server.label;
            let (r, mut stream) = send(
                server,
                b"GET /style.css HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
            );
            assert_eq!(r.status, 200, "{label}");
            assert_eq!(r.header("Connection"), Some("keep-alive"), "{label}");
            // Errors from a service keep the connection too, and say so.
            stream
                .write_all(b"GET /missing HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
                .unwrap();
            let r = read_response(&mut stream);
            assert_eq!(r.status, 404, "{label}");
            assert_common_headers(&r, label);
            stream
                .write_all(b"GET /index.html HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
                .unwrap();
            let r = read_response(&mut stream);
            assert_file(
                server,
                &r,
                "index.html",
                &format!("{label}: second request"),
            );
            // A plain 1.0 request on the same connection ends it.
            stream.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
            assert_eq!(read_response(&mut stream).status, 200, "{label}");
            assert!(closed_within(&mut stream, CLOSE_LIMIT), "{label}");
        },
    );
}

#[test]
fn http11_keeps_alive_until_connection_close() {
    each_server(
        |_| {},
        |server| {
            let label = &server.label;
            let mut stream = server.connect();
            for _ in 0..3 {
                let r = get(&mut stream, "/");
                assert_eq!(r.status, 200, "{label}");
                assert!(r.header("Connection").is_none(), "{label}");
            }
            stream
                .write_all(b"GET /style.css HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                .unwrap();
            let r = read_response(&mut stream);
            assert_eq!(r.status, 200, "{label}");
            assert_eq!(r.header("Connection"), Some("close"), "{label}");
            assert_common_headers(&r, label);
            assert!(
                closed_within(&mut stream, CLOSE_LIMIT),
                "{label}: not closed"
            );
        },
    );
}

#[test]
fn absolute_form_target_is_served() {
    each_server(
        |_| {},
        |server| {
            let label = &server.label;
            let (r, _stream) = send(
                server,
                b"GET http://example.com/index.html HTTP/1.1\r\nHost: example.com\r\n\r\n",
            );
            assert_file(server, &r, "index.html", label);
            let (r, _stream) = send(
                server,
                b"GET HTTP://Example.COM:8080/docs?x=1 HTTP/1.1\r\nHost: other\r\n\r\n",
            );
            assert_eq!(r.status, 301, "{label}");
            assert_eq!(r.header("Location"), Some("/docs/?x=1"), "{label}");
            let (r, _stream) = send(
                server,
                b"GET http://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n",
            );
            assert_file(server, &r, "index.html", label);
        },
    );
}

#[test]
fn malformed_requests_are_400_and_close() {
    each_server(
        |_| {},
        |server| {
            for request in [
            &b"GET  / HTTP/1.1\r\nHost: t\r\n\r\n"[..],
            b"GET / HTTP/1.1 extra\r\nHost: t\r\n\r\n",
            b"G(T / HTTP/1.1\r\nHost: t\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: t\r\nNoColonHere\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost : t\r\n\r\n",
            b"GET / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nUser-Agent: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc",
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3, 4\r\n\r\nabcd",
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: -3\r\n\r\nabc",
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            b"GET /a#frag HTTP/1.1\r\nHost: t\r\n\r\n",
            b"GET nothing HTTP/1.1\r\nHost: t\r\n\r\n",
        ] {
            assert_error_and_close(server, request, 400);
        }
        },
    );
}

#[test]
fn bad_chunked_bodies_on_echo_are_400_and_close() {
    each_server(
        |_| {},
        |server| {
            for request in [
            &b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"[..],
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\nabc\r\n0\r\n\r\n",
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\r\nabc\r\n0\r\n\r\n",
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n11111111111111111\r\nabc\r\n",
            // Size lines once read leniently as size 4 (issue 8, 6c).
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n4 5\r\nabcd\r\n0\r\n\r\n",
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n4\tzz\r\nabcd\r\n0\r\n\r\n",
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n4;\r\nabcd\r\n0\r\n\r\n",
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n4;a=\"x\"y\r\nabcd\r\n0\r\n\r\n",
        ] {
            assert_error_and_close(server, request, 400);
        }
            // Well-formed chunked bodies still stream back.
            let (r, _s) = send(
            server,
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n",
        );
            assert_eq!(r.status, 200, "{}", server.label);
            assert_eq!(r.body, b"abcde", "{}", server.label);
            // Whitespace and extensions the grammar allows are still fine.
            let (r, _s) = send(
            server,
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3 ; a = \"x;y\" ;b\r\nabc\r\n2\t\r\nde\r\n0\r\n\r\n",
        );
            assert_eq!(r.status, 200, "{}", server.label);
            assert_eq!(r.body, b"abcde", "{}", server.label);
        },
    );
}

#[test]
fn request_without_version_gets_a_400_status_line_not_http09() {
    each_server(
        |_| {},
        |server| {
            let label = &server.label;
            for request in [&b"GET /\r\n\r\n"[..], b"GET /index.html\r\n"] {
                let mut stream = server.connect();
                stream.write_all(request).unwrap();
                let mut all = Vec::new();
                // The server answers and closes: read everything it sends.
                stream.read_to_end(&mut all).expect("read to close");
                let text = String::from_utf8_lossy(&all);
                assert!(
                    text.starts_with("HTTP/1.1 400 "),
                    "{label} {request:?}: got {text:?}"
                );
                assert!(
                    !text.contains("<html") && !text.contains("<!"),
                    "{label}: HTML leaked"
                );
            }
            assert_error_and_close(server, b"GET /\r\n\r\n", 400);
        },
    );
}

#[test]
fn not_found_and_method_not_allowed() {
    each_server(
        |_| {},
        |server| {
            let label = &server.label;
            let (r, mut stream) = send(
                server,
                b"GET /no/such/file.html HTTP/1.1\r\nHost: t\r\n\r\n",
            );
            assert_eq!(r.status, 404, "{label}");
            assert_common_headers(&r, label);
            assert!(
                r.text().starts_with("404 ") && r.body.len() < 200,
                "{label}: {:?}",
                r.text()
            );
            // Service errors keep the connection open.
            assert_eq!(get(&mut stream, "/").status, 200, "{label}");

            let (r, mut stream) = send(server, b"DELETE /index.html HTTP/1.1\r\nHost: t\r\n\r\n");
            assert_eq!(r.status, 405, "{label}");
            assert_eq!(r.header("Allow"), Some("GET, HEAD"), "{label}");
            assert!(
                r.text().starts_with("405 ") && r.body.len() < 200,
                "{label}"
            );
            assert_common_headers(&r, label);
            assert_eq!(get(&mut stream, "/").status, 200, "{label}");

            let (r, _stream) = send(server, b"DELETE /echo HTTP/1.1\r\nHost: t\r\n\r\n");
            assert_eq!(r.status, 405, "{label}");
            assert_eq!(r.header("Allow"), Some("GET, HEAD, POST, PUT"), "{label}");

            // Methods are case-sensitive: "get" is some other method.
            let (r, _stream) = send(server, b"get /index.html HTTP/1.1\r\nHost: t\r\n\r\n");
            assert_eq!(r.status, 405, "{label}");
        },
    );
}

#[test]
fn echo_body_over_the_limit_is_413() {
    each_server(small_limits, |server| {
        let label = &server.label;
        let body = "x".repeat(101);
        let request =
            format!("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 101\r\n\r\n{body}");
        assert_error_and_close(server, request.as_bytes(), 413);
        // Announced size alone decides: nothing of the body needs to arrive.
        assert_error_and_close(
            server,
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n",
            413,
        );
        // Chunked: the head waits for the first chunk, so a first chunk
        // over the limit is refused before any response has begun.
        let body = "z".repeat(101);
        let request = format!(
            "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n65\r\n{body}\r\n0\r\n\r\n"
        );
        assert_error_and_close(server, request.as_bytes(), 413);
        // At the limit it is echoed.
        let body = "y".repeat(100);
        let request =
            format!("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n{body}");
        let (r, _s) = send(server, request.as_bytes());
        assert_eq!(r.status, 200, "{label}");
        assert_eq!(r.body, body.as_bytes(), "{label}");
    });
}

#[test]
fn long_request_line_is_414() {
    each_server(small_limits, |server| {
        let label = &server.label;
        let long = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(600));
        assert_error_and_close(server, long.as_bytes(), 414);
        // Without the end of the line ever arriving too.
        let partial = format!("GET /{}", "b".repeat(600));
        assert_error_and_close(server, partial.as_bytes(), 414);
        // Just under the limit is parsed (and is merely not found).
        let path = "c".repeat(512 - "GET / HTTP/1.1".len());
        let fits = format!("GET /{path} HTTP/1.1\r\nHost: t\r\n\r\n");
        let (r, _s) = send(server, fits.as_bytes());
        assert_eq!(r.status, 404, "{label}");
    });
}

#[test]
fn large_or_many_headers_are_431() {
    each_server(small_limits, |server| {
        let label = &server.label;
        let big = format!(
            "GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
            "v".repeat(1600)
        );
        assert_error_and_close(server, big.as_bytes(), 431);
        let mut many = String::from("GET / HTTP/1.1\r\nHost: t\r\n");
        for i in 0..9 {
            many.push_str(&format!("X-H{i}: v\r\n"));
        }
        many.push_str("\r\n");
        assert_error_and_close(server, many.as_bytes(), 431);
        // At the header count limit (8 incl. Host) it is fine.
        let mut fits = String::from("GET / HTTP/1.1\r\nHost: t\r\n");
        for i in 0..7 {
            fits.push_str(&format!("X-H{i}: v\r\n"));
        }
        fits.push_str("\r\n");
        let (r, _s) = send(server, fits.as_bytes());
        assert_eq!(r.status, 200, "{label}");
    });
}

#[test]
fn unsupported_transfer_coding_is_501() {
    each_server(
        |_| {},
        |server| {
            assert_error_and_close(
            server,
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
            501,
        );
            assert_error_and_close(
            server,
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            501,
        );
            assert_error_and_close(
                server,
                b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com\r\n\r\n",
                501,
            );
        },
    );
}

#[test]
fn unsupported_versions_are_505() {
    each_server(
        |_| {},
        |server| {
            assert_error_and_close(server, b"GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505);
            assert_error_and_close(server, b"GET / HTTP/3.0\r\n\r\n", 505);
            // Not even a version: malformed.
            assert_error_and_close(server, b"GET / HTTP/1.10\r\nHost: t\r\n\r\n", 400);
            assert_error_and_close(server, b"GET / http/1.1\r\nHost: t\r\n\r\n", 400);
        },
    );
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    each_server(
        |_| {},
        |server| {
            let label = &server.label;
            let mut stream = server.connect();
            stream
            .write_all(
                b"GET /style.css HTTP/1.1\r\nHost: t\r\n\r\nGET /nope HTTP/1.1\r\nHost: t\r\n\r\nGET /echo HTTP/1.1\r\nHost: t\r\nX-Mark: 3\r\n\r\n",
            )
            .unwrap();
            let mut carry = Vec::new();
            let a = read_response_with(&mut stream, &mut carry, false);
            let b = read_response_with(&mut stream, &mut carry, false);
            let c = read_response_with(&mut stream, &mut carry, false);
            assert_eq!((a.status, b.status, c.status), (200, 404, 200), "{label}");
            assert_file(server, &a, "style.css", label);
            assert!(c.text().contains("X-Mark: 3"), "{label}: {:?}", c.text());
            for r in [&a, &b, &c] {
                assert_common_headers(r, label);
            }
            // A bad request after good ones: the good ones are answered, then 400 and close.
            stream
            .write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\nBad Header\r\n\r\n")
            .unwrap();
            let ok = read_response_with(&mut stream, &mut carry, false);
            let bad = read_response_with(&mut stream, &mut carry, false);
            assert_eq!((ok.status, bad.status), (200, 400), "{label}");
            assert!(carry.is_empty(), "{label}");
            assert!(
                closed_within(&mut stream, CLOSE_LIMIT),
                "{label}: not closed after 400"
            );
        },
    );
}

#[test]
fn echo_expect_continue_then_chunked_body() {
    each_server(
        |_| {},
        |server| {
            let label = &server.label;
            let mut stream = server.connect();
            stream
            .write_all(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n")
            .unwrap();
            // The body is withheld until the server asks for it.
            let mut carry = Vec::new();
            let interim = read_response_with(&mut stream, &mut carry, false);
            assert_eq!(interim.status, 100, "{label}");
            stream.write_all(b"5\r\nhello\r\n").unwrap();
            // The head and first chunk come back while the body is still open.
            assert!(
                read_until_seen(&mut stream, &mut carry, b"hello", Duration::from_secs(5)),
                "{label}: first chunk not echoed while the body is open: {:?}",
                String::from_utf8_lossy(&carry)
            );
            stream.write_all(b"6\r\n world\r\n0\r\n\r\n").unwrap();
            let r = read_response_with(&mut stream, &mut carry, false);
            assert_eq!(r.status, 200, "{label}");
            assert_eq!(r.body, b"hello world", "{label}");
            assert!(carry.is_empty(), "{label}");
            assert_eq!(
                get(&mut stream, "/").status,
                200,
                "{label}: connection kept"
            );
        },
    );
}

#[test]
fn raw_space_or_forbidden_character_in_target_is_400_not_505() {
    each_server(
        |_| {},
        |server| {
            for request in [
                &b"GET /a b HTTP/1.1\r\nHost: t\r\n\r\n"[..],
                b"GET /a b HTTP/2.0\r\nHost: t\r\n\r\n",
                b"GET /index.html HTTP/1.1 HTTP/1.1\r\nHost: t\r\n\r\n",
                b"GET /a\"b HTTP/1.1\r\nHost: t\r\n\r\n",
                b"GET /<script> HTTP/1.1\r\nHost: t\r\n\r\n",
            ] {
                assert_error_and_close(server, request, 400);
            }
            // 505 stays for a well-formed version other than 1.x.
            assert_error_and_close(server, b"GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505);
        },
    );
}

#[test]
fn higher_http1_minor_version_is_served_as_http11() {
    each_server(
        |_| {},
        |server| {
            let label = &server.label;
            let mut stream = server.connect();
            stream
                .write_all(
                    b"GET / HTTP/1.2\r\nHost: t\r\n\r\nGET /style.css HTTP/1.9\r\nHost: t\r\n\r\n",
                )
                .unwrap();
            let mut carry = Vec::new();
            let first = read_response_with(&mut stream, &mut carry, false);
            assert_eq!(first.status, 200, "{label}");
            assert_eq!(first.header("Connection"), None, "{label}: kept alive");
            let second = read_response_with(&mut stream, &mut carry, false);
            assert_eq!(second.status, 200, "{label}");
            assert!(second
                .header("Content-Type")
                .unwrap_or("")
                .starts_with("text/css"));
            // Still HTTP/1.1 rules: no Host is a 400.
            assert_error_and_close(server, b"GET / HTTP/1.2\r\n\r\n", 400);
        },
    );
}

#[test]
fn dot_segments_are_removed_before_mapping_to_the_root() {
    each_server(
        |_| {},
        |server| {
            let label = &server.label;
            let index = std::fs::read(server.root.join("index.html")).unwrap();
            for path in [
                "/docs/../index.html",
                "/docs/%2e%2e/index.html",
                "/docs/./../index.html",
                "/../index.html",
                "/../../index.html",
                "/docs/..",
                "/..",
            ] {
                let (r, _s) = send(
                    server,
                    format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes(),
                );
                assert_eq!(r.status, 200, "{label} {path}");
                assert_eq!(r.body, index, "{label} {path}");
            }
        },
    );
}

const CHUNKED_ECHO: &[u8] = b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";

#[test]
fn echo_body_malformed_after_a_good_chunk_in_one_write_is_400_not_a_cut_200() {
    each_server(
        |_| {},
        |server| {
            for body in [
                &b"3\r\nabc\r\nzz\r\ndata\r\n0\r\n\r\n"[..],
                // Chunk data longer than its size.
                b"3\r\nabc\r\n2\r\ndef\r\n0\r\n\r\n",
                // Bare LF after a size or after data.
                b"3\r\nabc\r\n2\nde\r\n0\r\n\r\n",
                b"3\r\nabc\r\n2\r\nde\n0\r\n\r\n",
                b"3\r\nabc\r\n0\r\n\n",
            ] {
                let request = [CHUNKED_ECHO, body].concat();
                assert_error_and_close(server, &request, 400);
            }
        },
    );
}

#[test]
fn echo_body_over_the_limit_in_one_write_is_413_not_a_cut_200() {
    each_server(
        |c| c.limits.max_echo_body = 5,
        |server| {
            let request = [CHUNKED_ECHO, b"3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n"].concat();
            assert_error_and_close(server, &request, 413);
        },
    );
}

#[test]
fn echo_body_malformed_after_the_200_is_cut_short_closed_and_counted() {
    each_server(
        |_| {},
        |server| {
            let label = &server.label;
            assert!(
                server.status_json().contains("\"echo_cut_short\":0"),
                "{label}"
            );
            let mut stream = server.connect();
            stream.write_all(CHUNKED_ECHO).unwrap();
            stream.write_all(b"5\r\nhello\r\n").unwrap();
            let mut got = Vec::new();
            assert!(
                read_until_seen(&mut stream, &mut got, b"hello", Duration::from_secs(5)),
                "{label}: first chunk not echoed: {:?}",
                String::from_utf8_lossy(&got)
            );
            stream.write_all(b"zz\r\n").unwrap();
            let (rest, closed) = read_until_closed(&mut stream, CLOSE_LIMIT);
            assert!(closed, "{label}: not closed");
            got.extend_from_slice(&rest);
            let text = String::from_utf8_lossy(&got);
            assert!(text.starts_with("HTTP/1.1 200 "), "{label}: {text:?}");
            assert_eq!(
                count(&got, b"HTTP/1.1"),
                1,
                "{label}: a second status line: {text:?}"
            );
            assert!(
                text.ends_with("5\r\nhello\r\n"),
                "{label}: not cut after the last good chunk: {text:?}"
            );
            assert!(
                wait_until(Duration::from_secs(5), || server
                    .status_json()
                    .contains("\"echo_cut_short\":1")),
                "{label}: {}",
                server.status_json()
            );
            let prom = raw(
                server.addr,
                b"GET /status?format=prometheus HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
            );
            assert!(
                prom.text().contains("\nconveyor_echo_cut_short_total 1\n"),
                "{label}"
            );
        },
    );
}
