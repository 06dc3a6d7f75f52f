//! Response heads written straight into a caller-owned buffer.

use crate::http::date::http_date_now;
use crate::http::hpack;
use crate::http::plain::TOKEN;
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
    /// More headers as (name, value), written after the connection
    /// fields; CR and LF become spaces.
    pub extra: &'a [(&'a str, &'a str)],
    /// Header lines formatted in advance (each ending in CRLF), written
    /// last, in order: fields made once for many responses (a header
    /// rule's, CORS). Every field goes in before the head is written; none
    /// is inserted into a head afterwards.
    pub extra_lines: &'a [&'a [u8]],
}

/// Append a decimal number without allocating.
pub fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    // Most numbers written are short (a small file's length): up to four
    // digits are one fixed-size copy, with no loop and no call to memcpy
    // (callgrind: 84 instructions down to about 30).
    if n < 10_000 {
        let n = n as u16;
        let digits = [
            b'0' + (n / 1000) as u8,
            b'0' + (n / 100 % 10) as u8,
            b'0' + (n / 10 % 10) as u8,
            b'0' + (n % 10) as u8,
        ];
        match n {
            0..=9 => out.push(digits[3]),
            10..=99 => out.extend_from_slice(&digits[2..]),
            100..=999 => out.extend_from_slice(&digits[1..]),
            _ => out.extend_from_slice(&digits),
        }
        return;
    }
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
    let bytes = s.as_bytes();
    // The common case, no CR or LF, is one copy rather than a push a byte.
    if !bytes.iter().any(|&b| b == b'\r' || b == b'\n') {
        out.extend_from_slice(bytes);
        return;
    }
    out.extend(
        bytes
            .iter()
            .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
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
    match status {
        // Every status has three digits; written as such, without a division loop.
        100..=999 => out.extend_from_slice(&[
            b'0' + (status / 100) as u8,
            b'0' + (status / 10 % 10) as u8,
            b'0' + (status % 10) as u8,
        ]),
        _ => push_u64(out, u64::from(status)),
    }
    out.push(b' ');
    out.extend_from_slice(reason(status).as_bytes());
    out.extend_from_slice(SERVER_AND_DATE.as_bytes());
    out.extend_from_slice(&http_date_now());
    out.extend_from_slice(b"\r\n");
}

/// What follows the reason phrase up to the Date value, as one copy.
const SERVER_AND_DATE: &str = concat!(
    "\r\nServer: conveyor/",
    env!("CARGO_PKG_VERSION"),
    "\r\nDate: "
);

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
    for lines in head.extra_lines {
        out.extend_from_slice(lines);
    }
    out.extend_from_slice(b"\r\n");
}

/// The Content-Type of the text error responses.
const ERROR_TYPE: &str = "text/plain; charset=utf-8";

/// Append a complete text/plain error response: "{status} {reason}: {message}\n".
/// Returns the body's length.
pub fn write_error(
    out: &mut Vec<u8>,
    status: u16,
    message: &str,
    keep_alive: bool,
    extra: &[(&str, &str)],
) -> u64 {
    let head = Head {
        status,
        content_length: None,
        content_type: None,
        prebuilt: &[],
        keep_alive,
        http10_keep_alive: false,
        extra,
        extra_lines: &[],
    };
    write_error_as(out, &head, message, true)
}

/// Append a text/plain error response for `head`'s status, with its
/// connection and extra fields: "{status} {reason}: {message}\n", the body
/// only when `with_body` (not for HEAD). Returns the body's length.
pub fn write_error_as(out: &mut Vec<u8>, head: &Head, message: &str, with_body: bool) -> u64 {
    let why = reason(head.status);
    let body_len = decimal_len(u64::from(head.status)) + 1 + why.len() + 2 + message.len() + 1;
    let head = Head {
        content_length: Some(body_len as u64),
        content_type: Some(ERROR_TYPE),
        ..*head
    };
    write_head(out, &head);
    if with_body {
        push_error_body(out, head.status, message);
    }
    body_len as u64
}

fn push_error_body(out: &mut Vec<u8>, status: u16, message: &str) {
    push_u64(out, u64::from(status));
    out.push(b' ');
    out.extend_from_slice(reason(status).as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(message.as_bytes());
    out.push(b'\n');
}

/// A text/plain error response made once and sent many times (a 404 for
/// every missing path): its fields and body are bytes ready to copy, so a
/// response costs the status line, the Date and the connection fields.
#[derive(Debug, Clone)]
pub struct PreparedError {
    status: u16,
    /// Content-Type and Content-Length lines.
    fields: Vec<u8>,
    body: Vec<u8>,
}

impl PreparedError {
    /// The response [`write_error`] writes for `status` and `message`.
    pub fn new(status: u16, message: &str) -> PreparedError {
        let mut body = Vec::new();
        push_error_body(&mut body, status, message);
        let mut fields = Vec::new();
        push_header(&mut fields, "Content-Type", ERROR_TYPE);
        fields.extend_from_slice(b"Content-Length: ");
        push_u64(&mut fields, body.len() as u64);
        fields.extend_from_slice(b"\r\n");
        PreparedError {
            status,
            fields,
            body,
        }
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Appends the response with `head`'s connection fields (its status,
    /// length, type and extra fields are this response's own), the body
    /// only when `with_body`. Returns the body bytes written.
    pub fn write(&self, out: &mut Vec<u8>, head: &Head, with_body: bool) -> u64 {
        let head = Head {
            status: self.status,
            content_length: None,
            content_type: None,
            prebuilt: &self.fields,
            extra: &[],
            extra_lines: &[],
            ..*head
        };
        write_head(out, &head);
        if !with_body {
            return 0;
        }
        out.extend_from_slice(&self.body);
        self.body.len() as u64
    }
}

/// A head read back by [`read_head`]: its status and length in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadHead {
    /// The status code.
    pub status: u16,
    /// The head's bytes, its blank line included: the body follows.
    pub len: usize,
}

/// Where [`read_head`] hands what it reads: the status, then each field
/// in order.
pub trait HeadSink {
    /// The status code, before any field.
    fn status(&mut self, code: u16);
    /// A field as written (its name in the writer's case), with the
    /// name's HPACK static table index as [`hpack::name_index`] gives it.
    fn field(&mut self, name: &[u8], index: Option<u8>, value: &[u8]);
}

/// Reads back a final response head (status 200 or more) exactly as
/// [`write_head`] writes it into `sink`: its status, then each field in
/// order, Server and Date first. The writer and this reader are one format in
/// one place, so a head from it costs a few compares, not a parse.
///
/// `None` for anything else (an interim response, a head not all there
/// yet, a line not in the writer's form, a name that is no token, a
/// control byte in a value): what was handed over so far is then to
/// be dropped and the head parsed in full. Nothing unexpected is trusted.
#[inline(never)]
pub fn read_head(buf: &[u8], sink: &mut impl HeadSink) -> Option<ReadHead> {
    let rest = buf.strip_prefix(b"HTTP/1.1 ")?;
    let (&[a, b, c, b' '], rest) = rest.split_first_chunk::<4>()? else {
        return None;
    };
    if !(a.is_ascii_digit() && b.is_ascii_digit() && c.is_ascii_digit()) || a < b'2' {
        return None;
    }
    let status = u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0');
    let rest = rest.strip_prefix(reason(status).as_bytes())?;
    // The Server line and the Date line's name, whole.
    let mut rest = rest.strip_prefix(SERVER_AND_DATE.as_bytes())?;
    sink.status(status);
    sink.field(b"Server", Some(SERVER_INDEX), SERVER.as_bytes());
    let (mut name, mut index): (&[u8], _) = (b"Date", Some(DATE_INDEX));
    loop {
        // `rest` starts with the value of the field `name`.
        let (value, after) = rest.split_at(first_control(rest)?);
        let after = after.strip_prefix(b"\r\n")?;
        if padded(value) {
            return None;
        }
        sink.field(name, index, value);
        if let Some(body) = after.strip_prefix(b"\r\n") {
            let len = buf.len() - body.len();
            return Some(ReadHead { status, len });
        }
        (name, index, rest) = match known(after) {
            // A name the writer writes, in its spelling, and ": ".
            Some(line) => (&after[..line.len - 2], line.index, &after[line.len..]),
            None => {
                // The name up to its first byte that is no token: the colon.
                let colon = name_end(after)?;
                let (name, value) = after.split_at(colon);
                if name.is_empty() {
                    return None;
                }
                (name, hpack::name_index(name), value.strip_prefix(b": ")?)
            }
        };
    }
}

/// The static table indexes of `server` and `date`.
const SERVER_INDEX: u8 = 54;
const DATE_INDEX: u8 = 33;

/// A field name the writer writes, as it spells it, with ": ": its
/// length, static table index, and its bytes as words to compare.
struct Line {
    len: usize,
    index: Option<u8>,
    /// The first eight bytes (those there), and which those are.
    first: u64,
    mask: u64,
    /// Bytes 8..16, and the last eight (lines over eight bytes).
    mid: u64,
    end: u64,
}

impl Line {
    const fn new(line: &[u8], index: Option<u8>) -> Line {
        let n = line.len();
        assert!(n >= 6 && n <= 24);
        let mut first = 0u64;
        let mut i = 0;
        while i < 8 && i < n {
            first |= (line[i] as u64) << (8 * i);
            i += 1;
        }
        let mask = if n >= 8 {
            u64::MAX
        } else {
            u64::MAX >> (64 - 8 * n)
        };
        Line {
            len: n,
            index,
            first,
            mask,
            mid: if n > 16 { const_word(line, 8) } else { 0 },
            end: if n > 8 { const_word(line, n - 8) } else { 0 },
        }
    }

    /// Whether `rest`, whose first eight bytes are `first`, starts
    /// with this line.
    #[inline]
    fn starts(&self, rest: &[u8], first: u64) -> bool {
        if first & self.mask != self.first {
            return false;
        }
        if self.len <= 8 {
            return true;
        }
        word_at(rest, self.len - 8) == Some(self.end)
            && (self.len <= 16 || word_at(rest, 8) == Some(self.mid))
    }
}

/// Eight bytes of `line` from `at`, little-endian, at compile time.
const fn const_word(line: &[u8], at: usize) -> u64 {
    let mut w = 0u64;
    let mut i = 0;
    while i < 8 {
        w |= (line[at + i] as u64) << (8 * i);
        i += 1;
    }
    w
}

/// Eight bytes of `bytes` from `at`, little-endian.
#[inline]
fn word_at(bytes: &[u8], at: usize) -> Option<u64> {
    let word = bytes.get(at..)?.first_chunk::<8>()?;
    Some(u64::from_le_bytes(*word))
}

/// The fields the writer writes most, by their first byte.
const KNOWN_C: &[Line] = &[
    Line::new(b"Content-Type: ", Some(31)),
    Line::new(b"Content-Length: ", Some(hpack::CONTENT_LENGTH)),
    Line::new(b"Connection: ", None),
    Line::new(b"Cache-Control: ", Some(24)),
    Line::new(b"Content-Encoding: ", Some(26)),
    Line::new(b"Content-Range: ", Some(30)),
];
const KNOWN_D: &[Line] = &[Line::new(b"Date: ", Some(33))];
const KNOWN_E: &[Line] = &[
    Line::new(b"ETag: ", Some(34)),
    Line::new(b"Expires: ", Some(36)),
];
const KNOWN_L: &[Line] = &[
    Line::new(b"Last-Modified: ", Some(44)),
    Line::new(b"Location: ", Some(46)),
];
const KNOWN_A: &[Line] = &[
    Line::new(b"Accept-Ranges: ", Some(18)),
    Line::new(b"Allow: ", Some(22)),
];
const KNOWN_V: &[Line] = &[Line::new(b"Vary: ", Some(59))];
const KNOWN_T: &[Line] = &[Line::new(
    b"Transfer-Encoding: ",
    Some(hpack::TRANSFER_ENCODING),
)];
const KNOWN_R: &[Line] = &[Line::new(b"Retry-After: ", Some(53))];

/// The known line `rest` starts with, if any: a jump on its first byte,
/// then a word compare or three a candidate.
#[inline]
fn known(rest: &[u8]) -> Option<&'static Line> {
    let known = match rest.first()? {
        b'C' => KNOWN_C,
        b'D' => KNOWN_D,
        b'E' => KNOWN_E,
        b'L' => KNOWN_L,
        b'A' => KNOWN_A,
        b'V' => KNOWN_V,
        b'T' => KNOWN_T,
        b'R' => KNOWN_R,
        _ => return None,
    };
    let first = word_at(rest, 0)?;
    known.iter().find(|line| line.starts(rest, first))
}

/// A value with white space at its start or end, which a full parse trims.
fn padded(value: &[u8]) -> bool {
    value.first() == Some(&b' ') || value.last() == Some(&b' ')
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `x` below 0x20 or equal to 0x7f (DEL):
/// the lowest one flagged is exact (a borrow only runs upwards from a
/// byte truly flagged), the ones above it may not be.
#[inline]
fn controls(x: u64) -> u64 {
    let del = x ^ (ONES * 0x7f);
    (x.wrapping_sub(ONES * 0x20) & !x | del.wrapping_sub(ONES) & !del) & HIGH
}

/// Where the first byte of `bytes` that is no token is: eight bytes a
/// step, each step a mask of which are tokens (no branch a byte).
#[inline]
fn name_end(bytes: &[u8]) -> Option<usize> {
    let mut at = 0;
    while let Some(word) = bytes.get(at..).and_then(|rest| rest.first_chunk::<8>()) {
        let mut tokens = 0u32;
        for (i, &b) in word.iter().enumerate() {
            tokens |= u32::from(TOKEN[usize::from(b)]) << i;
        }
        if tokens != 0xff {
            return Some(at + (!tokens).trailing_zeros() as usize);
        }
        at += 8;
    }
    let rest = bytes.get(at..)?;
    rest.iter()
        .position(|&b| !TOKEN[usize::from(b)])
        .map(|i| at + i)
}

/// Where the first control byte (below 0x20, or DEL) in `bytes` is,
/// sixteen bytes a step (a few vector instructions each), the last
/// fifteen or fewer by words: a value's end (its CR) is found and the
/// value checked in the one pass.
#[inline]
fn first_control(bytes: &[u8]) -> Option<usize> {
    let mut at = 0;
    while let Some(block) = bytes.get(at..).and_then(|rest| rest.first_chunk::<16>()) {
        let found = controls16(block);
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 16;
    }
    let rest = bytes.get(at..)?;
    first_control_words(rest).map(|i| at + i)
}

/// 0xff for each byte of `block` below 0x20 or DEL, written so that it
/// compiles to a vector compare.
#[inline]
fn controls16(block: &[u8; 16]) -> u128 {
    let mut flags = [0u8; 16];
    for (flag, &b) in flags.iter_mut().zip(block) {
        *flag = if b < 0x20 || b == 0x7f { 0xff } else { 0 };
    }
    u128::from_le_bytes(flags)
}

/// [`first_control`] eight bytes a step.
#[inline]
fn first_control_words(bytes: &[u8]) -> Option<usize> {
    let mut words = bytes.chunks_exact(8);
    let mut at = 0;
    for word in &mut words {
        let Some(word) = word.first_chunk::<8>() else {
            break;
        };
        let found = controls(u64::from_le_bytes(*word));
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    let tail = words.remainder().len();
    if tail == 0 {
        return None;
    }
    // The last eight bytes again, rather than a byte at a time: those
    // before the tail were clear, so their flags are exact zeros and
    // shifting them out leaves the tail's first flag lowest.
    if let Some(last) = bytes.last_chunk::<8>() {
        let found = controls(u64::from_le_bytes(*last)) >> ((8 - tail) * 8);
        return (found != 0).then(|| at + (found.trailing_zeros() / 8) as usize);
    }
    bytes.iter().position(|&b| b < 0x20 || b == 0x7f)
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
        for n in [
            0,
            7,
            9,
            10,
            99,
            100,
            128,
            999,
            1000,
            9999,
            10_000,
            12345,
            u64::MAX,
        ] {
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
                extra_lines: &[],
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
                extra_lines: &[],
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
    fn extra_lines_go_last_in_order() {
        let mut out = Vec::new();
        let head = Head {
            status: 206,
            content_length: Some(2),
            content_type: Some("text/css"),
            prebuilt: &[],
            keep_alive: false,
            http10_keep_alive: false,
            extra: &[("Content-Range", "bytes 0-1/9")],
            extra_lines: &[b"X-Rule: 1\r\n", b"", b"Vary: Origin\r\nX-Cors: 2\r\n"],
        };
        write_head(&mut out, &head);
        assert_eq!(
            mask_date(text(&out)),
            format!(
                "HTTP/1.1 206 Partial Content\r\nServer: {SERVER}\r\nDate: <DATE>\r\n\
                 Content-Type: text/css\r\nContent-Length: 2\r\nConnection: close\r\n\
                 Content-Range: bytes 0-1/9\r\nX-Rule: 1\r\nVary: Origin\r\nX-Cors: 2\r\n\r\n"
            )
        );
        // An error response carries them too, its body after the blank line.
        let mut out = Vec::new();
        write_error_as(
            &mut out,
            &Head {
                status: 404,
                ..head
            },
            "x",
            true,
        );
        assert!(text(&out).contains(
            "Connection: close\r\nContent-Range: bytes 0-1/9\r\n\
                                     X-Rule: 1\r\nVary: Origin\r\nX-Cors: 2\r\n\r\n404 "
        ));
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
            extra_lines: &[],
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
                extra_lines: &[],
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
    fn prepared_error_is_the_written_one() {
        for (keep_alive, http10) in [(true, false), (false, false), (true, true)] {
            let head = Head {
                status: 404,
                content_length: None,
                content_type: None,
                prebuilt: &[],
                keep_alive,
                http10_keep_alive: http10,
                extra: &[],
                extra_lines: &[],
            };
            let mut written = Vec::new();
            let len = write_error_as(&mut written, &head, "cannot serve that path", true);
            let prepared = PreparedError::new(404, "cannot serve that path");
            let mut sent = Vec::new();
            assert_eq!(prepared.write(&mut sent, &head, true), len);
            assert_eq!(mask_date(text(&sent)), mask_date(text(&written)));
            assert!(text(&sent).ends_with("\r\n\r\n404 Not Found: cannot serve that path\n"));
            // Without the body (HEAD): the same head, Content-Length included.
            let mut head_only = Vec::new();
            assert_eq!(prepared.write(&mut head_only, &head, false), 0);
            assert_eq!(text(&head_only), &text(&sent)[..sent.len() - len as usize]);
        }
        let mut old = Vec::new();
        write_error(&mut old, 404, "x", true, &[]);
        let mut new = Vec::new();
        let head = Head {
            status: 404,
            content_length: None,
            content_type: None,
            prebuilt: &[],
            keep_alive: true,
            http10_keep_alive: false,
            extra: &[],
            extra_lines: &[],
        };
        PreparedError::new(404, "x").write(&mut new, &head, true);
        assert_eq!(mask_date(text(&new)), mask_date(text(&old)));
    }

    #[test]
    fn status_lines_of_every_width() {
        for (status, line) in [
            (200, "HTTP/1.1 200 OK\r\n"),
            (404, "HTTP/1.1 404 Not Found\r\n"),
            (999, "HTTP/1.1 999 \r\n"),
            (42, "HTTP/1.1 42 \r\n"),
            (1000, "HTTP/1.1 1000 \r\n"),
        ] {
            let mut out = Vec::new();
            write_status_line_and_date(&mut out, status);
            assert!(text(&out).starts_with(line), "{}", text(&out));
            assert!(text(&out).contains(&format!("\r\nServer: {SERVER}\r\nDate: ")));
        }
    }

    /// A sink that keeps what `read_head` hands over.
    #[derive(Default, Debug, PartialEq)]
    struct Kept {
        status: Option<u16>,
        fields: Vec<(Vec<u8>, Vec<u8>)>,
    }

    impl HeadSink for Kept {
        fn status(&mut self, code: u16) {
            self.status = Some(code);
        }
        fn field(&mut self, name: &[u8], index: Option<u8>, value: &[u8]) {
            assert_eq!(index, hpack::name_index(name), "{name:?}");
            self.fields.push((name.to_vec(), value.to_vec()));
        }
    }

    /// What httparse reads of `buf`, in the same form, if complete.
    fn full_parse(buf: &[u8]) -> Option<(Kept, usize)> {
        let mut fields = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Response::new(&mut fields);
        let Ok(httparse::Status::Complete(len)) = parsed.parse(buf) else {
            return None;
        };
        let mut kept = Kept {
            status: parsed.code,
            ..Kept::default()
        };
        for f in parsed.headers.iter() {
            kept.field(
                f.name.as_bytes(),
                hpack::name_index(f.name.as_bytes()),
                f.value,
            );
        }
        Some((kept, len))
    }

    /// Heads as the handler writes them, bodies after some.
    fn written_heads() -> Vec<Vec<u8>> {
        let base = Head {
            status: 200,
            content_length: Some(128),
            content_type: Some("text/plain; charset=utf-8"),
            prebuilt: b"ETag: \"6b1-80\"\r\nLast-Modified: Sun, 06 Dec 2026 13:25:24 GMT\r\n",
            keep_alive: true,
            http10_keep_alive: false,
            extra: &[("Accept-Ranges", "bytes"), ("X-Empty", "")],
            extra_lines: &[b"X-Rule: a\tb\r\n", b"Vary: Origin\r\n"],
        };
        let mut heads = Vec::new();
        for status in [200, 204, 206, 304, 404, 418, 599] {
            let mut out = Vec::new();
            write_head(&mut out, &Head { status, ..base });
            out.extend_from_slice(b"body");
            heads.push(out);
        }
        let mut out = Vec::new();
        write_head(
            &mut out,
            &Head {
                extra_lines: &[],
                ..base
            },
        );
        heads.push(out);
        let mut out = Vec::new();
        write_error(&mut out, 405, "use GET", false, &[("Allow", "GET, HEAD")]);
        heads.push(out);
        // Every name the reader knows in the writer's spelling, and
        // names near them.
        let extra = [
            ("Cache-Control", "no-cache"),
            ("Content-Encoding", "gzip"),
            ("Content-Range", "bytes 0-1/2"),
            ("Expires", "0"),
            ("Location", "/a"),
            ("Transfer-Encoding", "chunked"),
            ("Retry-After", "1"),
            ("Content-Types", "x"),
            ("Dates", "x"),
            ("Content-Lengths", "1"),
            ("Transfer-Encodings", "x"),
            ("content-length", "2"),
        ];
        let mut out = Vec::new();
        write_head(
            &mut out,
            &Head {
                extra: &extra,
                extra_lines: &[],
                ..base
            },
        );
        heads.push(out);
        let mut out = Vec::new();
        PreparedError::new(404, "no").write(&mut out, &base, true);
        heads.push(out);
        heads
    }

    #[test]
    fn heads_written_are_read_back_as_a_full_parse_reads_them() {
        let mut read = 0;
        for head in written_heads() {
            let mut kept = Kept::default();
            let full = full_parse(&head).expect("complete");
            match read_head(&head, &mut kept) {
                Some(got) => {
                    read += 1;
                    assert_eq!(Some(got.status), kept.status);
                    assert_eq!((kept, got.len), full);
                }
                // A tab in a value: left to the full parse.
                None => assert!(head.windows(2).any(|w| w == b"a\t")),
            }
        }
        assert_eq!(read, 4, "the heads without a tab");
    }

    #[test]
    fn read_head_takes_nothing_a_full_parse_reads_otherwise() {
        // Every byte of each head replaced by bytes that matter, and every
        // head cut short: what the reader takes, the full parse reads the
        // same; what it does not, is left to it.
        let swaps = [
            0, b'\t', b' ', b':', b'\r', b'\n', 0x7f, 0x80, b'A', b'1', b'"',
        ];
        let mut taken = 0;
        for head in written_heads() {
            for at in 0..head.len() {
                let cut = read_head(&head[..at], &mut Kept::default());
                let full = full_parse(&head[..at]).map(|(_, len)| len);
                assert!(cut.is_none() || cut.map(|h| h.len) == full, "cut at {at}");
                for &b in &swaps {
                    let mut bad = head.clone();
                    bad[at] = b;
                    let mut kept = Kept::default();
                    if let Some(got) = read_head(&bad, &mut kept) {
                        taken += 1;
                        let full = full_parse(&bad).expect("the full parse reads it too");
                        assert_eq!(Some(got.status), kept.status);
                        assert_eq!((kept, got.len), full, "{}", String::from_utf8_lossy(&bad));
                    }
                }
            }
        }
        assert!(taken > 0);
    }

    #[test]
    fn known_lines_are_their_names_with_their_static_index() {
        let lines: usize = [
            KNOWN_C, KNOWN_D, KNOWN_E, KNOWN_L, KNOWN_A, KNOWN_V, KNOWN_T, KNOWN_R,
        ]
        .iter()
        .map(|t| t.len())
        .sum();
        assert_eq!(lines, 16, "each known line is listed below");
        // Each line is found by its own bytes, its index is name_index's,
        // and one byte changed anywhere in it finds no line of its name.
        for (spelled, index) in [
            ("Date", Some(33)),
            ("Content-Type", Some(31)),
            ("Content-Length", Some(28)),
            ("Connection", None),
            ("ETag", Some(34)),
            ("Last-Modified", Some(44)),
            ("Accept-Ranges", Some(18)),
            ("Cache-Control", Some(24)),
            ("Content-Encoding", Some(26)),
            ("Content-Range", Some(30)),
            ("Expires", Some(36)),
            ("Location", Some(46)),
            ("Allow", Some(22)),
            ("Vary", Some(59)),
            ("Transfer-Encoding", Some(57)),
            ("Retry-After", Some(53)),
        ] {
            let text = format!("{spelled}: value\r\n\r\n");
            let found = known(text.as_bytes()).expect(spelled);
            assert_eq!((found.len, found.index), (spelled.len() + 2, index));
            assert_eq!(index, hpack::name_index(spelled.as_bytes()));
            for at in 0..spelled.len() + 2 {
                let mut bad = text.clone().into_bytes();
                bad[at] ^= 0x20;
                if let Some(other) = known(&bad) {
                    assert_ne!(other.len, found.len, "{:?}", String::from_utf8_lossy(&bad));
                }
            }
        }
    }

    #[test]
    fn read_head_leaves_the_unusual_to_the_full_parse() {
        let ok = b"HTTP/1.1 200 OK\r\nServer: SERVER\r\nDate: Sun, 06 Dec 2026 13:25:24 GMT\r\n";
        let ok = String::from_utf8_lossy(ok).replace("SERVER", SERVER);
        let read = |rest: &str| read_head(format!("{ok}{rest}").as_bytes(), &mut Kept::default());
        assert_eq!(read("A: b\r\n\r\n").map(|h| h.status), Some(200));
        for rest in [
            "A: b\r\n",         // not all there
            "A: b\r\n\r",       // nor here
            "A:b\r\n\r\n",      // not the writer's form
            "A : b\r\n\r\n",    // a space in the name
            ": b\r\n\r\n",      // no name
            "A: b \r\n\r\n",    // trailing white space
            "A:  b\r\n\r\n",    // leading
            "A: b\n\r\n",       // a bare LF
            "A: b\rc\r\n\r\n",  // a bare CR
            "A: b\x7f\r\n\r\n", // DEL
            "A\x01: b\r\n\r\n", // a control byte in the name
            " A: b\r\n\r\n",    // obs-fold
        ] {
            assert_eq!(read(rest), None, "{rest:?}");
        }
        // An interim response, another version, a reason not the writer's.
        for head in [
            CONTINUE_100,
            b"HTTP/1.0 200 OK\r\n\r\n",
            b"HTTP/1.1 200 Fine\r\nServer: x\r\n\r\n",
        ] {
            assert_eq!(read_head(head, &mut Kept::default()), None);
        }
    }

    #[test]
    fn names_end_at_their_first_byte_that_is_no_token() {
        let naive = |bytes: &[u8]| bytes.iter().position(|&b| !TOKEN[usize::from(b)]);
        for len in 0..=40 {
            for at in 0..len {
                for b in [b':', b' ', 0, b'\r', 0x7f, 0x80, b'"', b'(', b'-', b'~'] {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = b;
                    bytes[len - 1] = if at + 1 < len { b':' } else { bytes[len - 1] };
                    assert_eq!(name_end(&bytes), naive(&bytes), "{bytes:?}");
                }
            }
            assert_eq!(name_end(&vec![b'Z'; len]), None);
        }
    }

    #[test]
    fn control_bytes_are_found_at_every_place_and_length() {
        let naive = |bytes: &[u8]| bytes.iter().position(|&b| b < 0x20 || b == 0x7f);
        for len in 0..=40 {
            for at in 0..len {
                for b in [0, b'\t', b'\r', 0x1f, 0x7f, b':', b' ', 0x80, 0xff, 0x7e] {
                    // A second one later never hides the first.
                    for later in [b'a', b'\n', 0x7f] {
                        let mut bytes = vec![b'a'; len];
                        bytes[at] = b;
                        if at + 1 < len {
                            bytes[len - 1] = later;
                        }
                        assert_eq!(first_control(&bytes), naive(&bytes), "{bytes:?}");
                    }
                }
            }
            assert_eq!(first_control(&vec![b'a'; len]), None);
        }
    }

    #[test]
    fn continue_and_unknown_status() {
        assert_eq!(CONTINUE_100, b"HTTP/1.1 100 Continue\r\n\r\n");
        let mut out = Vec::new();
        write_status_line_and_date(&mut out, 599);
        assert!(text(&out).starts_with("HTTP/1.1 599 \r\nServer: conveyor/"));
        assert!(text(&out).ends_with(" GMT\r\n"));
    }
}
