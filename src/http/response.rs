//! Response heads written straight into a caller-owned buffer.

use crate::http::date::http_date_now;
use crate::http::status::reason;

/// The interim response sent before reading a body the client is waiting to send.
pub const CONTINUE_100: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
/// The `Server` header value: `conveyor/` and the crate version.
pub const SERVER: &str = concat!("conveyor/", env!("CARGO_PKG_VERSION"));

/// What [`write_head`] writes: a response's status and headers.
#[derive(Debug, Clone, Copy)]
pub struct Head<'a> {
    /// The status code; the reason phrase comes from [`reason`].
    pub status: u16,
    /// The Content-Length header; `None` writes none (e.g. chunked bodies).
    pub content_length: Option<u64>,
    /// The Content-Type header; `None` writes none.
    pub content_type: Option<&'a str>,
    /// Header lines formatted in advance, each ending in CRLF (a cached
    /// file's Content-Type, ETag, …), written as they are after
    /// Content-Type: the fast path's per-response work is the rest.
    pub prebuilt: &'a [u8],
    /// False adds "Connection: close".
    pub keep_alive: bool,
    /// The request was HTTP/1.0 with keep-alive: say "Connection: keep-alive",
    /// since 1.0 clients assume close otherwise. Ignored when `!keep_alive`.
    pub http10_keep_alive: bool,
    /// More headers as (name, value), written last; CR and LF become spaces.
    pub extra: &'a [(&'a str, &'a str)],
}

/// Append a decimal number without allocating.
pub fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// Append header text, turning CR/LF into spaces so no value can split the response.
fn push_text(out: &mut Vec<u8>, s: &str) {
    out.extend(
        s.bytes()
            .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
}

fn push_header(out: &mut Vec<u8>, name: &str, value: &str) {
    push_text(out, name);
    out.extend_from_slice(b": ");
    push_text(out, value);
    out.extend_from_slice(b"\r\n");
}

/// "HTTP/1.1 {status} {reason}\r\nServer: ...\r\nDate: ...\r\n".
fn write_status_line_and_date(out: &mut Vec<u8>, status: u16) {
    out.extend_from_slice(b"HTTP/1.1 ");
    push_u64(out, u64::from(status));
    out.push(b' ');
    out.extend_from_slice(reason(status).as_bytes());
    out.extend_from_slice(b"\r\nServer: ");
    out.extend_from_slice(SERVER.as_bytes());
    out.extend_from_slice(b"\r\nDate: ");
    out.extend_from_slice(&http_date_now());
    out.extend_from_slice(b"\r\n");
}

/// Append a full response head, ending with the blank line. The one writer
/// of heads: the `Connection` rules live here alone.
pub fn write_head(out: &mut Vec<u8>, head: &Head) {
    write_status_line_and_date(out, head.status);
    if let Some(ct) = head.content_type {
        push_header(out, "Content-Type", ct);
    }
    out.extend_from_slice(head.prebuilt);
    if let Some(len) = head.content_length {
        out.extend_from_slice(b"Content-Length: ");
        push_u64(out, len);
        out.extend_from_slice(b"\r\n");
    }
    if !head.keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if head.http10_keep_alive {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    for (name, value) in head.extra {
        push_header(out, name, value);
    }
    out.extend_from_slice(b"\r\n");
}

/// Append a complete text/plain error response: "{status} {reason}: {message}\n".
/// For HEAD, the caller drops the body (it is the last Content-Length bytes).
pub fn write_error(
    out: &mut Vec<u8>,
    status: u16,
    message: &str,
    keep_alive: bool,
    extra: &[(&str, &str)],
) {
    let why = reason(status);
    let body_len = decimal_len(u64::from(status)) + 1 + why.len() + 2 + message.len() + 1;
    write_head(
        out,
        &Head {
            status,
            content_length: Some(body_len as u64),
            content_type: Some("text/plain; charset=utf-8"),
            prebuilt: &[],
            keep_alive,
            http10_keep_alive: false,
            extra,
        },
    );
    push_u64(out, u64::from(status));
    out.push(b' ');
    out.extend_from_slice(why.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(message.as_bytes());
    out.push(b'\n');
}

fn decimal_len(mut n: u64) -> usize {
    let mut len = 1;
    while n >= 10 {
        n /= 10;
        len += 1;
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(out: &[u8]) -> &str {
        std::str::from_utf8(out).expect("utf8")
    }

    /// Replace the variable Date value with a fixed marker.
    fn mask_date(s: &str) -> String {
        let start = s.find("Date: ").expect("date") + 6;
        format!("{}<DATE>{}", &s[..start], &s[start + 29..])
    }

    #[test]
    fn push_u64_edges() {
        for n in [0, 7, 10, 12345, u64::MAX] {
            let mut v = Vec::new();
            push_u64(&mut v, n);
            assert_eq!(text(&v), n.to_string());
        }
    }

    #[test]
    fn full_head() {
        let mut out = b"prefix".to_vec();
        write_head(
            &mut out,
            &Head {
                status: 200,
                content_length: Some(1234),
                content_type: Some("text/html"),
                prebuilt: &[],
                keep_alive: true,
                http10_keep_alive: false,
                extra: &[("ETag", "\"abc\""), ("Accept-Ranges", "bytes")],
            },
        );
        let s = text(&out);
        assert!(s.starts_with("prefixHTTP/1.1 200 OK\r\n"));
        assert_eq!(
            mask_date(&s[6..]),
            format!(
                "HTTP/1.1 200 OK\r\nServer: {SERVER}\r\nDate: <DATE>\r\nContent-Type: text/html\r\n\
                 Content-Length: 1234\r\nETag: \"abc\"\r\nAccept-Ranges: bytes\r\n\r\n"
            )
        );
    }

    #[test]
    fn prebuilt_fields_go_where_content_type_would() {
        let mut out = Vec::new();
        write_head(
            &mut out,
            &Head {
                status: 200,
                content_length: Some(5),
                content_type: None,
                prebuilt: b"Content-Type: text/css\r\nETag: \"e\"\r\n",
                keep_alive: true,
                http10_keep_alive: true,
                extra: &[],
            },
        );
        assert_eq!(
            mask_date(text(&out)),
            format!(
                "HTTP/1.1 200 OK\r\nServer: {SERVER}\r\nDate: <DATE>\r\nContent-Type: text/css\r\n\
                 ETag: \"e\"\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\n"
            )
        );
    }

    #[test]
    fn connection_headers() {
        let mut head = Head {
            status: 304,
            content_length: None,
            content_type: None,
            prebuilt: &[],
            keep_alive: false,
            http10_keep_alive: true,
            extra: &[],
        };
        let mut out = Vec::new();
        write_head(&mut out, &head);
        let s = text(&out);
        assert!(s.contains("Connection: close\r\n"));
        assert!(!s.contains("keep-alive"));
        assert!(!s.contains("Content-Length"));
        head.keep_alive = true;
        out.clear();
        write_head(&mut out, &head);
        assert!(text(&out).contains("Connection: keep-alive\r\n"));
        head.http10_keep_alive = false;
        out.clear();
        write_head(&mut out, &head);
        assert!(!text(&out).contains("Connection"));
    }

    #[test]
    fn header_injection_neutralised() {
        let mut out = Vec::new();
        write_head(
            &mut out,
            &Head {
                status: 301,
                content_length: Some(0),
                content_type: None,
                prebuilt: &[],
                keep_alive: true,
                http10_keep_alive: false,
                extra: &[("Location", "/x\r\nSet-Cookie: a=b")],
            },
        );
        assert!(text(&out).contains("Location: /x  Set-Cookie: a=b\r\n"));
    }

    #[test]
    fn error_response() {
        let mut out = Vec::new();
        write_error(&mut out, 405, "use GET", true, &[("Allow", "GET, HEAD")]);
        let s = text(&out);
        let body = "405 Method Not Allowed: use GET\n";
        assert_eq!(
            mask_date(s),
            format!(
                "HTTP/1.1 405 Method Not Allowed\r\nServer: {SERVER}\r\nDate: <DATE>\r\n\
                 Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\
                 Allow: GET, HEAD\r\n\r\n{body}",
                body.len()
            )
        );
        let mut out = b"keep".to_vec();
        write_error(&mut out, 400, "bad", false, &[]);
        let s = text(&out);
        assert!(s.starts_with("keepHTTP/1.1 400 Bad Request\r\n"));
        assert!(s.contains("Connection: close\r\n"));
        assert!(s.ends_with("\r\n\r\n400 Bad Request: bad\n"));
    }

    #[test]
    fn continue_and_unknown_status() {
        assert_eq!(CONTINUE_100, b"HTTP/1.1 100 Continue\r\n\r\n");
        let mut out = Vec::new();
        write_status_line_and_date(&mut out, 599);
        assert!(text(&out).starts_with("HTTP/1.1 599 Unknown\r\nServer: conveyor/"));
        assert!(text(&out).ends_with(" GMT\r\n"));
    }
}
