//! The smaller fixes of issue 21 (items 9 and 16), each over real sockets:
//! the header limit, the access log of a malformed request, listings that
//! cannot spoof names, the fallback and `..`, a missing index explained,
//! `static.default_type`, and server messages kept off stdout.

use std::time::Duration;

use crate::harness::*;

fn one(tweak: impl FnOnce(&mut conveyor::config::Config)) -> TestServer {
    start("readiness", "spawn", tweak)
}

/// A request whose header section (every byte after the request line) is
/// exactly `size` bytes.
fn with_header_section(size: usize) -> String {
    // "Host: t\r\n" + "X-Pad: " + pad + "\r\n" + "\r\n"
    let fixed = "Host: t\r\n".len() + "X-Pad: \r\n".len() + "\r\n".len();
    let pad = "p".repeat(size - fixed);
    let request = format!("GET /style.css HTTP/1.1\r\nHost: t\r\nX-Pad: {pad}\r\n\r\n");
    assert_eq!(request.len() - "GET /style.css HTTP/1.1\r\n".len(), size);
    request
}

#[test]
fn max_header_bytes_is_the_header_section_to_the_byte() {
    let server = one(|c| c.limits.max_header_bytes = 8192);
    let at = ask(&server, &with_header_section(8192));
    assert_eq!(at.status, 200, "{}", at.text());
    let over = ask(&server, &with_header_section(8193));
    assert_eq!(over.status, 431, "{}", over.text());
    // The 16 KiB the old sum (request line + headers) let through.
    let big = ask(&server, &with_header_section(16 * 1024));
    assert_eq!(big.status, 431);
    // A long request line does not lend the header section its room.
    let path = "a".repeat(4000);
    let pad = "p".repeat(8192 + 100);
    let long = ask(
        &server,
        &format!("GET /{path} HTTP/1.1\r\nHost: t\r\nX-Pad: {pad}\r\n\r\n"),
    );
    assert_eq!(long.status, 431);
    let _ = Duration::ZERO;
}
