//! The plain preamble: a line scan of the common HTTP/1.1 request that
//! says where it ends, for a reader in front of the handler (the
//! per-client rate step) that must count requests exactly as the
//! handler's parser ([`parse_request`](super::parse_request)) will read
//! them, without parsing each preamble twice.
//!
//! **The contract:** [`scan_plain`] answers `Some` only for a preamble at
//! the front of `buf` that `parse_request` under the same [`Limits`]
//! accepts as a complete request, with the same length, HTTP/1.1, no
//! body, the same `keep_alive`, the same path and HEAD or not. Anything
//! it does not check as strictly as the parser is `None`, for the caller
//! to ask the parser: a byte outside printable ASCII anywhere (obs-text),
//! a bare LF or CR, obs-fold, a space in or after a field name, a field
//! that frames a body (`Content-Length`, `Transfer-Encoding`), `Expect`,
//! a repeated singleton field, no `Host` or two, past a limit, another
//! version or form of target. A rule added to the parser that can refuse
//! a request this accepts must be added here too:
//! `fuzz/fuzz_targets/per_client_step.rs` checks the two against each
//! other (its corpus is replayed by `cargo test`).

use super::uri::valid_host;
use super::Limits;

/// What [`scan_plain`] read of one request preamble.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plain<'a> {
    /// Bytes of the preamble, through the empty line.
    pub len: usize,
    /// The target before `?`, as `Request::path` gives it.
    pub path: &'a str,
    /// No `Connection: close`.
    pub keep_alive: bool,
    /// The method is `HEAD`.
    pub head: bool,
}

/// Most fields the scan reads; a request with more goes to the parser.
const MOST_FIELDS: usize = 32;

/// The singleton fields the parser refuses to see twice, by bit.
const SINGLETONS: [&[u8]; 4] = [
    b"if-modified-since",
    b"if-unmodified-since",
    b"range",
    b"if-range",
];

/// Fields whose value the parser may refuse or which frame a body: their
/// requests are the parser's to read.
const PARSER_ONLY: [&[u8]; 3] = [b"content-length", b"transfer-encoding", b"expect"];

/// The request at the front of `buf`, if it is a plain one (see the
/// module's contract); `None` for anything else, complete or not.
pub fn scan_plain<'a>(buf: &'a [u8], limits: &Limits) -> Option<Plain<'a>> {
    let line_end = crlf(buf, 0)?;
    if line_end > limits.max_request_line {
        return None;
    }
    let line = &buf[..line_end];
    let space = line.iter().position(|&b| b == b' ')?;
    let (method, rest) = (&line[..space], &line[space + 1..]);
    let space = rest.iter().position(|&b| b == b' ')?;
    let (target, version) = (&rest[..space], &rest[space + 1..]);
    if version != b"HTTP/1.1"
        || method.is_empty()
        || !method.iter().all(|&b| TOKEN[usize::from(b)])
        || method == b"CONNECT"
        || target.first() != Some(&b'/')
        || !target.iter().all(|&b| TARGET[usize::from(b)])
    {
        return None;
    }
    let fields_start = line_end + 2;
    let mut at = fields_start;
    let mut hosts = 0u8;
    let mut singletons = 0u8;
    let mut close = false;
    for _ in 0..=limits.max_headers.min(MOST_FIELDS) {
        let end = crlf(buf, at)?;
        let field = &buf[at..end];
        at = end + 2;
        if field.is_empty() {
            if hosts != 1 || at - fields_start > limits.max_header_bytes {
                return None;
            }
            let path = target.split(|&b| b == b'?').next().unwrap_or(target);
            return Some(Plain {
                len: at,
                // ASCII, checked above.
                path: std::str::from_utf8(path).ok()?,
                keep_alive: !close,
                head: method == b"HEAD",
            });
        }
        let colon = field.iter().position(|&b| b == b':')?;
        let (name, raw) = (&field[..colon], &field[colon + 1..]);
        if name.is_empty()
            || !name.iter().all(|&b| TOKEN[usize::from(b)])
            || !raw
                .iter()
                .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b))
        {
            return None;
        }
        let value = raw.trim_ascii();
        if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
            // ASCII: `valid_host` sees what the parser's `utf8` would.
            if hosts > 1 || !valid_host(std::str::from_utf8(value).ok()?) {
                return None;
            }
        } else if name.eq_ignore_ascii_case(b"connection") {
            close |= value
                .split(|&b| b == b',')
                .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"close"));
        } else if PARSER_ONLY.iter().any(|n| name.eq_ignore_ascii_case(n)) {
            return None;
        } else if let Some(bit) = SINGLETONS.iter().position(|n| name.eq_ignore_ascii_case(n)) {
            let bit = 1u8 << bit;
            if singletons & bit != 0 {
                return None;
            }
            singletons |= bit;
        }
    }
    None
}

/// Where the first CRLF at or after `from` is.
fn crlf(buf: &[u8], from: usize) -> Option<usize> {
    let at = buf.get(from..)?.windows(2).position(|w| w == b"\r\n")?;
    Some(from + at)
}

/// tchar (RFC 9110 §5.6.2): a method or field name byte.
pub(super) const TOKEN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = (b as u8).is_ascii_alphanumeric();
        b += 1;
    }
    let punctuation = b"!#$%&'*+-.^_`|~";
    let mut i = 0;
    while i < punctuation.len() {
        table[punctuation[i] as usize] = true;
        i += 1;
    }
    table
};

/// A target byte the parser takes (visible ASCII) and `split_target` does
/// not refuse (`#`, `"`, `<`, `>`).
const TARGET: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = b'!' as usize;
    while b <= b'~' as usize {
        table[b] = !matches!(b as u8, b'#' | b'"' | b'<' | b'>');
        b += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{parse_request, BodyFraming, Method};

    fn limits() -> Limits {
        Limits::default()
    }

    /// The scan's answer, checked against the parser's when it has one.
    fn scan(text: &str) -> Option<Plain<'_>> {
        let plain = scan_plain(text.as_bytes(), &limits())?;
        let req = parse_request(text.as_bytes(), &limits());
        let req = req.expect("the parser accepts").expect("complete");
        assert_eq!(plain.len, req.preamble_len, "{text:?}");
        assert_eq!(plain.keep_alive, req.keep_alive, "{text:?}");
        assert_eq!(plain.path, req.path(), "{text:?}");
        assert_eq!(plain.head, req.method == Method::Head, "{text:?}");
        assert_eq!((req.body, req.minor_version), (BodyFraming::None, 1));
        Some(plain)
    }

    #[test]
    fn the_common_request_is_read_where_the_parser_reads_it() {
        let text = "GET /a?b HTTP/1.1\r\nHost: t\r\nConnection: x, Close\r\n\r\nGET /";
        let get = scan(text).expect("plain");
        assert_eq!(get.len, text.len() - "GET /".len());
        assert!(!get.keep_alive && !get.head);
        assert_eq!(get.path, "/a");
        let head = scan("HEAD /status HTTP/1.1\r\nhost:\tt \r\nRange: bytes=0-1\r\n\r\n");
        assert!(head.expect("plain").head);
        let many = format!("GET / HTTP/1.1\r\nHost: t\r\n{}\r\n", "X: y\r\n".repeat(31));
        assert!(scan(&many).is_some(), "32 fields");
    }

    #[test]
    fn what_the_parser_refuses_or_reads_otherwise_is_left_to_it() {
        for other in [
            // Framing, expectations, versions, forms of target.
            "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n\r\n",
            "GET / HTTP/1.0\r\n\r\n",
            "GET / HTTP/1.2\r\nHost: t\r\n\r\n",
            "GET http://t/ HTTP/1.1\r\nHost: t\r\n\r\n",
            "OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            // Incomplete.
            "GET / HTTP/1.1\r\nHost: t\r\n",
            // What the parser refuses.
            "GET / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: t\r\nHost: t\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: t\r\n folded: x\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: t\r\nBad Name: x\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: t\r\nContent-Length : 5\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: t\r\n: x\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: t\r\nX: a\rb\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: t\r\nX: a\x7fb\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: t\r\nRange: a\r\nrange: b\r\n\r\n",
            "G(T / HTTP/1.1\r\nHost: t\r\n\r\n",
            "CONNECT / HTTP/1.1\r\nHost: t\r\n\r\n",
            "GET /a#b HTTP/1.1\r\nHost: t\r\n\r\n",
            "GET /\"x\" HTTP/1.1\r\nHost: t\r\n\r\n",
            "GET  / HTTP/1.1\r\nHost: t\r\n\r\n",
            "GET / HTTP/1.1 \r\nHost: t\r\n\r\n",
            "\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n",
            // Bare LF line ends, or one among CRLFs.
            "GET / HTTP/1.1\nHost: t\n\n",
            "GET / HTTP/1.1\r\nHost: t\nX: y\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: t\r\n\n",
            // obs-text: valid to the parser, but not checked here.
            "GET /caf\u{e9} HTTP/1.1\r\nHost: t\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: t\r\nUser-Agent: \u{e9}\r\n\r\n",
        ] {
            assert!(
                scan_plain(other.as_bytes(), &limits()).is_none(),
                "{other:?}"
            );
        }
        let many = format!("GET / HTTP/1.1\r\nHost: t\r\n{}\r\n", "X: y\r\n".repeat(32));
        assert!(
            scan_plain(many.as_bytes(), &limits()).is_none(),
            "33 fields"
        );
    }

    #[test]
    fn past_a_limit_is_left_to_the_parser() {
        let text = "GET /abcdef HTTP/1.1\r\nHost: t\r\nA: b\r\nC: d\r\n\r\n";
        let fits = Limits {
            max_request_line: 20,
            max_header_bytes: 23,
            max_headers: 3,
        };
        let plain = scan_plain(text.as_bytes(), &fits).expect("at every limit");
        assert!(parse_request(text.as_bytes(), &fits).is_ok_and(|r| r.is_some()));
        assert_eq!(plain.len, text.len());
        for over in [
            Limits {
                max_request_line: 19,
                ..fits
            },
            Limits {
                max_header_bytes: 22,
                ..fits
            },
            Limits {
                max_headers: 2,
                ..fits
            },
        ] {
            assert!(scan_plain(text.as_bytes(), &over).is_none(), "{over:?}");
            assert!(parse_request(text.as_bytes(), &over).is_err(), "{over:?}");
        }
    }
}
