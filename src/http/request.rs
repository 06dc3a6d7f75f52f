//! Strict request preamble parsing (RFC 9112 §2–§7) on top of httparse.

use std::fmt;
use std::mem::MaybeUninit;

/// Size limits for the request preamble.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest request line (without CRLF) before 414.
    pub max_request_line: usize,
    /// Header budget: the whole preamble may be at most
    /// `max_request_line + max_header_bytes` bytes, else 431.
    pub max_header_bytes: usize,
    /// Most header lines before 431.
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_line: 8192,
            max_header_bytes: 8192,
            max_headers: 100,
        }
    }
}

/// A request method; matched case-sensitively, so `get` is `Other`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    /// `GET`.
    Get,
    /// `HEAD`.
    Head,
    /// `POST`.
    Post,
    /// `PUT`.
    Put,
    /// `DELETE`.
    Delete,
    /// `OPTIONS`.
    Options,
    /// `PATCH`.
    Patch,
    /// Any other token, as sent.
    Other(String),
}

impl Method {
    // Methods are case-sensitive (RFC 9110 §9.1), so "get" is Other.
    fn from_token(s: &str) -> Method {
        match s {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            "PATCH" => Method::Patch,
            other => Method::Other(other.to_string()),
        }
    }

    /// The method token as it appears on the request line.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Patch => "PATCH",
            Method::Other(s) => s,
        }
    }
}

/// How the request body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No Content-Length or Transfer-Encoding: no body.
    None,
    /// `Content-Length`: exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`; decode with [`ChunkedDecoder`](crate::http::ChunkedDecoder).
    Chunked,
}

/// A parsed request preamble: the request line and the headers the server acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The request method.
    pub method: Method,
    /// origin-form path and query (absolute-form is reduced to this), or "*".
    pub target: String,
    /// The `d` in `HTTP/1.d`: 0 or 1.
    pub minor_version: u8,
    /// The Host header, or the authority of an absolute-form target; always
    /// set for HTTP/1.1.
    pub host: Option<String>,
    /// The connection may serve another request: HTTP/1.1 without
    /// `Connection: close`, or HTTP/1.0 with `Connection: keep-alive`.
    pub keep_alive: bool,
    /// How the body is delimited.
    pub body: BodyFraming,
    /// An HTTP/1.1 request sent `Expect: 100-continue` (ignored in HTTP/1.0).
    pub expect_continue: bool,
    /// If-Match, repeated fields joined with ", ".
    pub if_match: Option<String>,
    /// If-None-Match, repeated fields joined with ", ".
    pub if_none_match: Option<String>,
    /// If-Modified-Since, unparsed.
    pub if_modified_since: Option<String>,
    /// If-Unmodified-Since, unparsed.
    pub if_unmodified_since: Option<String>,
    /// Range, unparsed.
    pub range: Option<String>,
    /// If-Range, unparsed.
    pub if_range: Option<String>,
    /// Accept-Encoding: the content codings the client takes, raw.
    pub accept_encoding: Option<String>,
    /// The first User-Agent, invalid UTF-8 replaced (for the access log).
    pub user_agent: Option<String>,
    /// The first Referer, invalid UTF-8 replaced (for the access log).
    pub referer: Option<String>,
    /// Bytes of leading empty lines + request line + headers + final CRLF.
    pub preamble_len: usize,
    /// Length of the target before '?' (found once: routing asks often).
    path_len: usize,
}

impl Request {
    /// Target before '?'.
    pub fn path(&self) -> &str {
        self.target.get(..self.path_len).unwrap_or(&self.target)
    }

    /// Target after the first '?', if any.
    pub fn query(&self) -> Option<&str> {
        self.target.get(self.path_len..)?.strip_prefix('?')
    }
}

/// A request the server must refuse; the connection should be closed afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpError {
    /// The status code to answer with (400, 414, 431, 501, …).
    pub status: u16,
    /// Short human text for the error body.
    pub message: &'static str,
}

impl HttpError {
    /// An error answered with `status` and `message`.
    pub const fn new(status: u16, message: &'static str) -> Self {
        HttpError { status, message }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.message)
    }
}

impl std::error::Error for HttpError {}

const fn bad(message: &'static str) -> HttpError {
    HttpError::new(400, message)
}

/// Header slots kept on the stack; larger `max_headers` falls back to the heap.
const STACK_HEADERS: usize = 100;

/// Ok(None) = incomplete, need more bytes. Ok(Some(req)) = complete;
/// `req.preamble_len` says how much of `buf` it used.
pub fn parse_request(buf: &[u8], limits: &Limits) -> Result<Option<Request>, HttpError> {
    // Uninitialised slots: httparse writes only those it fills, so a parse
    // does not first clear 100 × 32 bytes.
    let mut stack = [const { MaybeUninit::<httparse::Header>::uninit() }; STACK_HEADERS];
    let mut heap;
    let slots: &mut [MaybeUninit<httparse::Header>] = if limits.max_headers <= STACK_HEADERS {
        &mut stack[..limits.max_headers]
    } else {
        heap = Vec::with_capacity(limits.max_headers);
        heap.resize_with(limits.max_headers, MaybeUninit::uninit);
        &mut heap
    };
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, slots) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            check_limits(buf, buf.len(), limits)?;
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HttpError::new(431, "too many header fields"))
        }
        Err(httparse::Error::Version) => {
            check_limits(buf, buf.len(), limits)?;
            return match version_error(buf) {
                VersionShape::Higher1(at) => parse_as_http11(buf, at, limits),
                VersionShape::Full => Err(HttpError::new(505, "only HTTP/1.x")),
                VersionShape::Prefix => Ok(None),
                VersionShape::No => Err(bad("malformed request line")),
            };
        }
        Err(httparse::Error::HeaderName) | Err(httparse::Error::HeaderValue) => {
            return Err(bad("malformed header line"))
        }
        Err(_) => return Err(bad("malformed request line")),
    };
    check_limits(buf, len, limits)?;

    // httparse fills all three on Complete; treat absence as malformed, never panic.
    let (Some(method), Some(raw_target), Some(minor_version)) = (req.method, req.path, req.version)
    else {
        return Err(bad("malformed request line"));
    };
    let method = Method::from_token(method);
    if method.as_str() == "CONNECT" {
        return Err(HttpError::new(501, "CONNECT not supported"));
    }
    let (target, authority) = split_target(&method, raw_target)?;

    let mut out = Request {
        method,
        target,
        minor_version,
        host: None,
        keep_alive: false,
        body: BodyFraming::None,
        expect_continue: false,
        if_match: None,
        if_none_match: None,
        if_modified_since: None,
        if_unmodified_since: None,
        range: None,
        if_range: None,
        accept_encoding: None,
        user_agent: None,
        referer: None,
        preamble_len: len,
        path_len: 0,
    };
    out.path_len = out
        .target
        .bytes()
        .position(|b| b == b'?')
        .unwrap_or(out.target.len());

    let mut host_count = 0;
    let mut conn_close = false;
    let mut conn_keep_alive = false;
    let mut content_length: Option<u64> = None;
    let mut te_seen = false;
    let mut te_last_chunked = false;
    let mut te_codings = 0usize;
    let mut te_chunked_count = 0usize;

    for h in req.headers.iter() {
        let name = h.name;
        let value = trim_ows(h.value);
        if name.eq_ignore_ascii_case("host") {
            host_count += 1;
            if host_count > 1 {
                return Err(bad("more than one Host header"));
            }
            let v = utf8(value)?;
            if !valid_host(v) {
                return Err(bad("invalid Host header"));
            }
            out.host = Some(v.to_string());
        } else if name.eq_ignore_ascii_case("connection") {
            for tok in list(value) {
                conn_close |= tok.eq_ignore_ascii_case(b"close");
                conn_keep_alive |= tok.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            // A comma list or repeats are only tolerated when all values agree (§6.3).
            for item in value.split(|&b| b == b',').map(trim_ows) {
                let n = parse_decimal(item).ok_or(bad("invalid Content-Length"))?;
                match content_length {
                    Some(prev) if prev != n => return Err(bad("conflicting Content-Length")),
                    _ => content_length = Some(n),
                }
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            te_seen = true;
            for coding in list(value) {
                te_codings += 1;
                // Transfer parameters (";q=..") are not allowed on chunked; compare whole item.
                te_last_chunked = coding.eq_ignore_ascii_case(b"chunked");
                if te_last_chunked {
                    te_chunked_count += 1;
                }
            }
        } else if name.eq_ignore_ascii_case("expect") {
            if !value.eq_ignore_ascii_case(b"100-continue") {
                return Err(HttpError::new(417, "unsupported expectation"));
            }
            // A 100-continue expectation in HTTP/1.0 MUST be ignored (RFC 9110 §10.1.1).
            out.expect_continue = minor_version == 1;
        } else if name.eq_ignore_ascii_case("if-match") {
            append_list(&mut out.if_match, utf8(value)?);
        } else if name.eq_ignore_ascii_case("if-none-match") {
            append_list(&mut out.if_none_match, utf8(value)?);
        } else if name.eq_ignore_ascii_case("if-modified-since") {
            set_once(&mut out.if_modified_since, value)?;
        } else if name.eq_ignore_ascii_case("if-unmodified-since") {
            set_once(&mut out.if_unmodified_since, value)?;
        } else if name.eq_ignore_ascii_case("range") {
            set_once(&mut out.range, value)?;
        } else if name.eq_ignore_ascii_case("if-range") {
            set_once(&mut out.if_range, value)?;
        } else if name.eq_ignore_ascii_case("accept-encoding") {
            // Lossy: a stray byte makes a coding unknown, not the request bad.
            append_list(&mut out.accept_encoding, &String::from_utf8_lossy(value));
        } else if name.eq_ignore_ascii_case("user-agent") {
            // Informational only: keep the first, tolerate obs-text.
            if out.user_agent.is_none() {
                out.user_agent = Some(String::from_utf8_lossy(value).into_owned());
            }
        } else if name.eq_ignore_ascii_case("referer") && out.referer.is_none() {
            out.referer = Some(String::from_utf8_lossy(value).into_owned());
        }
    }

    if minor_version == 1 && host_count == 0 {
        return Err(bad("missing Host header"));
    }
    // Absolute-form authority overrides Host (RFC 9112 §3.2.2).
    if let Some(auth) = authority {
        if !valid_host(auth) {
            return Err(bad("invalid authority in request target"));
        }
        out.host = Some(auth.to_string());
    }

    out.keep_alive = !conn_close && (minor_version == 1 || conn_keep_alive);

    if te_seen {
        if minor_version == 0 {
            return Err(bad("Transfer-Encoding in HTTP/1.0"));
        }
        if content_length.is_some() {
            return Err(bad("both Transfer-Encoding and Content-Length"));
        }
        // Body length is undeterminable unless chunked is final and applied once (§6.3).
        if te_codings == 0 || !te_last_chunked || te_chunked_count > 1 {
            return Err(bad("chunked must be the final transfer coding"));
        }
        if te_codings > 1 {
            return Err(HttpError::new(501, "unsupported transfer coding"));
        }
        out.body = BodyFraming::Chunked;
    } else if let Some(n) = content_length {
        out.body = BodyFraming::Length(n);
    }

    Ok(Some(out))
}

/// Enforce limits on the preamble seen so far (`end` bytes of `buf`), same
/// result whether or not the preamble is complete.
fn check_limits(buf: &[u8], end: usize, limits: &Limits) -> Result<(), HttpError> {
    let seen = &buf[..end.min(buf.len())];
    if seen.len() <= limits.max_request_line {
        // No line in it can be too long, nor the whole too large: the
        // usual case, without a scan for the line's end.
        return Ok(());
    }
    let start = leading_empty_len(seen);
    let line = &seen[start..];
    let line_len = match line.iter().position(|&b| b == b'\n') {
        Some(i) if i > 0 && line[i - 1] == b'\r' => i - 1,
        Some(i) => i,
        // Incomplete: a CR at the end may be the start of the line's CRLF.
        None => line.len() - usize::from(line.ends_with(b"\r")),
    };
    if line_len > limits.max_request_line {
        return Err(HttpError::new(414, "request line too long"));
    }
    // Leading empty lines count too, so an endless CRLF stream is bounded.
    if seen.len()
        > limits
            .max_request_line
            .saturating_add(limits.max_header_bytes)
    {
        return Err(HttpError::new(431, "header section too large"));
    }
    Ok(())
}

/// Bytes of CRLF / LF lines before the request line (httparse skips these).
fn leading_empty_len(buf: &[u8]) -> usize {
    let mut i = 0;
    loop {
        if buf[i..].starts_with(b"\r\n") {
            i += 2;
        } else if buf[i..].starts_with(b"\n") {
            i += 1;
        } else {
            return i;
        }
    }
}

/// A request sent as `HTTP/1.x`, x > 1, parsed as HTTP/1.1: a recipient
/// may treat a higher minor version as the highest it supports (RFC 9110
/// §2.5). `at` is the index of the minor digit in `buf`. httparse knows
/// only 1.0 and 1.1, so the digit is rewritten in a copy; this path is
/// rare and never taken by a 1.0/1.1 request.
fn parse_as_http11(buf: &[u8], at: usize, limits: &Limits) -> Result<Option<Request>, HttpError> {
    let mut patched = buf.to_vec();
    match patched.get_mut(at) {
        Some(digit) if digit.is_ascii_digit() && *digit > b'1' => *digit = b'1',
        // Cannot happen (version_error found the digit); never loop.
        _ => return Err(bad("malformed HTTP version")),
    }
    parse_request(&patched, limits)
}

enum VersionShape {
    /// "HTTP/1.d" with d > 1, its minor digit at this index: served as 1.1.
    Higher1(usize),
    /// "HTTP/d.d" with d != 1: a well-formed but unsupported version.
    Full,
    /// Could still become "HTTP/d.d" once more bytes arrive.
    Prefix,
    No,
}

/// Classify the version token after httparse rejected it. The line must
/// be `method SP target SP version`: a third space means the target held
/// a raw space, which makes the line malformed (400), whatever follows.
fn version_error(buf: &[u8]) -> VersionShape {
    let start = leading_empty_len(buf);
    let rest = &buf[start..];
    let (line, complete) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], true),
        None => (rest, false),
    };
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().filter(|&&b| b == b' ').count() != 2 {
        return VersionShape::No;
    }
    let (tok, tok_at) = match line.iter().rposition(|&b| b == b' ') {
        Some(i) => (&line[i + 1..], start + i + 1),
        None => return VersionShape::No,
    };
    let fits = tok.len() <= 8
        && tok.iter().enumerate().all(|(i, &b)| match i {
            0..=4 => b == b"HTTP/"[i],
            5 | 7 => b.is_ascii_digit(),
            _ => b == b'.',
        });
    match (fits, tok.len() == 8, complete) {
        (true, true, _) if tok[5] == b'1' => VersionShape::Higher1(tok_at + 7),
        (true, true, _) => VersionShape::Full,
        (true, false, false) => VersionShape::Prefix,
        _ => VersionShape::No,
    }
}

/// Returns (origin-form target, authority from absolute-form).
fn split_target<'a>(method: &Method, raw: &'a str) -> Result<(String, Option<&'a str>), HttpError> {
    // One pass for the four bytes refused below: most targets hold none.
    if raw.bytes().any(|b| matches!(b, b'#' | b'"' | b'<' | b'>')) {
        // Fragments are never part of a request-target (RFC 9112 §3.2).
        if raw.contains('#') {
            return Err(bad("fragment in request target"));
        }
        // httparse lets through every visible byte; these three are never
        // sent raw by a URL-conforming client (WHATWG percent-encodes them
        // in path and query alike), so one in a target is a malformed
        // request line.
        return Err(bad("invalid character in request target"));
    }
    if raw.starts_with('/') {
        return Ok((raw.to_string(), None));
    }
    if raw == "*" {
        return match method {
            Method::Options => Ok((raw.to_string(), None)),
            _ => Err(bad("asterisk-form only allowed for OPTIONS")),
        };
    }
    let rest = strip_prefix_ci(raw, "http://")
        .or_else(|| strip_prefix_ci(raw, "https://"))
        .ok_or(bad("invalid request target"))?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if authority.is_empty() || authority.contains('@') {
        return Err(bad("invalid authority in request target"));
    }
    let target = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    Ok((target, Some(authority)))
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// uri-host [":" port] characters; rejects '/', '\\', '@', spaces and controls.
fn valid_host(h: &str) -> bool {
    h.bytes().all(|b| HOST_BYTES[usize::from(b)])
}

/// The bytes `valid_host` takes: letters, digits and `-._~:[]!$&'()*+,;=%`,
/// as a table (a search of the list per byte cost more than the rest of
/// the Host check).
const HOST_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = (b as u8).is_ascii_alphanumeric();
        b += 1;
    }
    let punctuation = b"-._~:[]!$&'()*+,;=%";
    let mut i = 0;
    while i < punctuation.len() {
        table[punctuation[i] as usize] = true;
        i += 1;
    }
    table
};

fn trim_ows(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|&b| b != b' ' && b != b'\t');
    let end = v.iter().rposition(|&b| b != b' ' && b != b'\t');
    match (start, end) {
        (Some(s), Some(e)) => &v[s..=e],
        _ => &[],
    }
}

/// Comma-separated list items, trimmed, empty items skipped (RFC 9110 §5.6.1).
fn list(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|&b| b == b',')
        .map(trim_ows)
        .filter(|t| !t.is_empty())
}

fn parse_decimal(v: &[u8]) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.iter().try_fold(0u64, |acc, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

fn utf8(v: &[u8]) -> Result<&str, HttpError> {
    std::str::from_utf8(v).map_err(|_| bad("header value is not UTF-8"))
}

fn append_list(slot: &mut Option<String>, v: &str) {
    match slot {
        Some(s) => {
            s.push_str(", ");
            s.push_str(v);
        }
        None => *slot = Some(v.to_string()),
    }
}

/// Singleton fields: a repeat is ambiguous, so refuse it.
fn set_once(slot: &mut Option<String>, v: &[u8]) -> Result<(), HttpError> {
    if slot.is_some() {
        return Err(bad("repeated singleton header"));
    }
    *slot = Some(utf8(v)?.to_string());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Option<Request>, HttpError> {
        parse_request(s.as_bytes(), &Limits::default())
    }

    fn ok(s: &str) -> Request {
        match parse(s) {
            Ok(Some(r)) => r,
            other => panic!("expected request for {s:?}, got {other:?}"),
        }
    }

    fn status(s: &str) -> u16 {
        match parse(s) {
            Err(e) => e.status,
            other => panic!("expected error for {s:?}, got {other:?}"),
        }
    }

    #[test]
    fn a_line_at_the_limit_may_arrive_up_to_its_cr() {
        // Found by fuzzing: a read ending between the CR and the LF of a
        // request line exactly `max_request_line` long was refused with 414.
        let limits = Limits {
            max_request_line: 20,
            ..Limits::default()
        };
        let line = format!("GET /{} HTTP/1.1", "a".repeat(20 - 14));
        assert_eq!(line.len(), 20);
        let partial = format!("{line}\r");
        assert_eq!(parse_request(partial.as_bytes(), &limits), Ok(None));
        let whole = format!("{line}\r\nHost: x\r\n\r\n");
        assert!(matches!(
            parse_request(whole.as_bytes(), &limits),
            Ok(Some(_))
        ));
        let over = format!("GET /{} HTTP/1.1\r", "a".repeat(7));
        assert_eq!(
            parse_request(over.as_bytes(), &limits).map_err(|e| e.status),
            Err(414)
        );
    }

    #[test]
    fn simple_get() {
        let s = "GET /a/b?x=1&y HTTP/1.1\r\nHost: example.com\r\n\r\nBODY";
        let r = ok(s);
        assert_eq!(r.method, Method::Get);
        assert_eq!(r.target, "/a/b?x=1&y");
        assert_eq!(r.path(), "/a/b");
        assert_eq!(r.query(), Some("x=1&y"));
        assert_eq!(r.minor_version, 1);
        assert_eq!(r.host.as_deref(), Some("example.com"));
        assert!(r.keep_alive);
        assert_eq!(r.body, BodyFraming::None);
        assert_eq!(r.preamble_len, s.len() - 4);
    }

    #[test]
    fn methods() {
        for (m, want) in [
            ("GET", Method::Get),
            ("HEAD", Method::Head),
            ("POST", Method::Post),
            ("PUT", Method::Put),
            ("DELETE", Method::Delete),
            ("OPTIONS", Method::Options),
            ("PATCH", Method::Patch),
            ("get", Method::Other("get".into())),
        ] {
            let r = ok(&format!("{m} / HTTP/1.0\r\n\r\n"));
            assert_eq!(r.method, want);
            assert_eq!(r.method.as_str(), m);
        }
        assert_eq!(
            status("CONNECT example.com:443 HTTP/1.1\r\nHost: x\r\n\r\n"),
            501
        );
        assert_eq!(status("G(T / HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
    }

    #[test]
    fn incomplete_needs_more() {
        let full = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        for i in 0..full.len() {
            assert_eq!(parse(&full[..i]), Ok(None), "prefix {i}");
        }
        assert!(ok(full).preamble_len == full.len());
    }

    #[test]
    fn request_line_limits() {
        let limits = Limits {
            max_request_line: 20,
            max_header_bytes: 30,
            max_headers: 100,
        };
        // Incomplete, no CRLF yet, already too long.
        let long = format!("GET /{} ", "a".repeat(30));
        assert_eq!(
            parse_request(long.as_bytes(), &limits).map_err(|e| e.status),
            Err(414)
        );
        // Complete but too long.
        let full = format!("GET /{} HTTP/1.0\r\n\r\n", "a".repeat(10));
        assert_eq!(
            parse_request(full.as_bytes(), &limits).map_err(|e| e.status),
            Err(414)
        );
        // Exactly at the limit is fine (20 bytes).
        let edge = "GET /abc123 HTTP/1.0\r\n\r\n";
        assert_eq!(edge.find('\r'), Some(20));
        assert!(matches!(
            parse_request(edge.as_bytes(), &limits),
            Ok(Some(_))
        ));
        // Incomplete short line stays pending.
        assert_eq!(parse_request(b"GET /a", &limits), Ok(None));
    }

    #[test]
    fn header_section_limit() {
        let limits = Limits {
            max_request_line: 20,
            max_header_bytes: 30,
            max_headers: 100,
        };
        // Total preamble budget is 50 bytes.
        let pending = format!("GET / HTTP/1.0\r\nX-A: {}", "b".repeat(40));
        assert_eq!(
            parse_request(pending.as_bytes(), &limits).map_err(|e| e.status),
            Err(431)
        );
        let complete = format!("GET / HTTP/1.0\r\nX-A: {}\r\n\r\n", "b".repeat(40));
        assert_eq!(
            parse_request(complete.as_bytes(), &limits).map_err(|e| e.status),
            Err(431)
        );
        let fits = "GET / HTTP/1.0\r\nX-A: bbbbbbbbbbbbbbbbbbbbbbbbb\r\n\r\n";
        assert_eq!(fits.len(), 50);
        assert!(matches!(
            parse_request(fits.as_bytes(), &limits),
            Ok(Some(_))
        ));
        // Endless empty lines are bounded too.
        let crlfs = "\r\n".repeat(30);
        assert_eq!(
            parse_request(crlfs.as_bytes(), &limits).map_err(|e| e.status),
            Err(431)
        );
    }

    #[test]
    fn too_many_headers() {
        let limits = Limits {
            max_headers: 2,
            ..Limits::default()
        };
        let s = "GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\n\r\n";
        assert_eq!(
            parse_request(s.as_bytes(), &limits).map_err(|e| e.status),
            Err(431)
        );
        let mut many = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
        for i in 0..120 {
            many.push_str(&format!("X-{i}: v\r\n"));
        }
        many.push_str("\r\n");
        assert_eq!(status(&many), 431);
        // Heap fallback when the limit exceeds the stack array.
        let big = Limits {
            max_headers: 200,
            ..Limits::default()
        };
        assert!(matches!(parse_request(many.as_bytes(), &big), Ok(Some(_))));
    }

    #[test]
    fn leading_empty_lines_skipped() {
        let s = "\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n";
        let r = ok(s);
        assert_eq!(r.preamble_len, s.len());
        assert_eq!(parse("\r\n"), Ok(None));
    }

    #[test]
    fn malformed_lines() {
        // obs-fold
        assert_eq!(
            status("GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n"),
            400
        );
        // space before colon
        assert_eq!(status("GET / HTTP/1.1\r\nHost : x\r\n\r\n"), 400);
        // invalid token char in name
        assert_eq!(status("GET / HTTP/1.1\r\nHo(st: x\r\n\r\n"), 400);
        // missing colon
        assert_eq!(status("GET / HTTP/1.1\r\nHost\r\n\r\n"), 400);
        // double space / missing target
        assert_eq!(status("GET  / HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
        // no version: never HTTP/0.9
        assert_eq!(status("GET /\r\n\r\n"), 400);
        // control char in value
        assert_eq!(
            status("GET / HTTP/1.1\r\nHost: x\r\nX: a\x01b\r\n\r\n"),
            400
        );
        // CR not followed by LF
        assert_eq!(status("GET / HTTP/1.1\rHost: x\r\n\r\n"), 400);
        // leading whitespace before first header
        assert_eq!(status("GET / HTTP/1.1\r\n Host: x\r\n\r\n"), 400);
    }

    #[test]
    fn bare_lf_per_httparse() {
        // httparse accepts bare LF line endings; we follow it.
        let r = ok("GET / HTTP/1.1\nHost: x\n\n");
        assert_eq!(r.preamble_len, 24);
    }

    #[test]
    fn versions() {
        assert_eq!(ok("GET / HTTP/1.0\r\n\r\n").minor_version, 0);
        assert_eq!(status("GET / HTTP/2.0\r\n\r\n"), 505);
        assert_eq!(status("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 505);
        assert_eq!(status("GET / HTTP/0.9\r\n\r\n"), 505);
        assert_eq!(status("GET / HTTP/3.1\r\nHost: x\r\n\r\n"), 505);
        // Could still turn into HTTP/2.0: wait.
        assert_eq!(parse("GET / HTTP/2"), Ok(None));
        assert_eq!(status("GET / HTTP/2\r\n\r\n"), 400);
        assert_eq!(status("GET / http/1.1\r\n\r\n"), 400);
        assert_eq!(status("GET / HTTP/1.10\r\n\r\n"), 400);
        assert_eq!(status("GET / FOO/1.1\r\n\r\n"), 400);
    }

    #[test]
    fn higher_http1_minor_versions_are_served_as_http11() {
        for v in ["1.2", "1.9"] {
            let s = format!("GET /a?b HTTP/{v}\r\nHost: x\r\n\r\nBODY");
            let r = ok(&s);
            assert_eq!((r.minor_version, r.target.as_str()), (1, "/a?b"), "{v}");
            assert!(r.keep_alive);
            assert_eq!(r.preamble_len, s.len() - 4);
            // Still HTTP/1.1 rules: Host is required.
            assert_eq!(status(&format!("GET / HTTP/{v}\r\n\r\n")), 400);
        }
        assert_eq!(parse("GET / HTTP/1.2"), Ok(None));
        assert_eq!(parse("GET / HTTP/1.2\r\nHost: x\r\n"), Ok(None));
    }

    #[test]
    fn raw_space_or_forbidden_byte_in_target_is_400_not_505() {
        for line in [
            "GET /a b HTTP/1.1",
            "GET /a b HTTP/2.0",
            "GET / HTTP/1.1 HTTP/1.1",
            "GET /a  HTTP/1.1",
            "GET /a\tb HTTP/1.1",
            "GET /a\x01b HTTP/1.1",
            "GET /a\x7fb HTTP/1.1",
            "GET /a\"b HTTP/1.1",
            "GET /a<b> HTTP/1.1",
            "GET /?q=<x> HTTP/1.1",
            "GET http://h/a<b HTTP/1.1",
        ] {
            assert_eq!(
                status(&format!("{line}\r\nHost: x\r\n\r\n")),
                400,
                "{line:?}"
            );
        }
        // Decided without waiting for the rest of the line.
        assert_eq!(status("GET /a b HTTP/1.1"), 400);
        assert_eq!(status("GET /a b"), 400);
        // What browsers send raw is accepted (WHATWG URL; nginx does too).
        for target in ["/a[1]", "/a|b", "/?x={y}^`", "/a\\b"] {
            assert_eq!(
                ok(&format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n")).target,
                target
            );
        }
    }

    #[test]
    fn host_rules() {
        assert_eq!(status("GET / HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(status("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n"), 400);
        assert_eq!(ok("GET / HTTP/1.0\r\n\r\n").host, None);
        let r = ok("GET / HTTP/1.1\r\nhOsT: \t example.com:8080 \t\r\n\r\n");
        assert_eq!(r.host.as_deref(), Some("example.com:8080"));
        assert_eq!(status("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), 400);
        assert_eq!(status("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), 400);
        // The table holds exactly letters, digits and the listed punctuation.
        for b in 0..=255u8 {
            let listed = b.is_ascii_alphanumeric() || b"-._~:[]!$&'()*+,;=%".contains(&b);
            assert_eq!(HOST_BYTES[usize::from(b)], listed, "byte {b}");
        }
    }

    #[test]
    fn refused_target_bytes_and_the_query() {
        for (target, status_code) in [("/a#b", 400), ("/a\"b", 400), ("/<", 400), ("/a>", 400)] {
            let line = format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n");
            assert_eq!(status(&line), status_code, "{target}");
        }
        let r = ok("GET /a/b?c?d HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!((r.path(), r.query()), ("/a/b", Some("c?d")));
        let r = ok("GET /plain HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!((r.path(), r.query()), ("/plain", None));
    }

    #[test]
    fn values_trimmed_and_names_case_insensitive() {
        let r = ok(
            "GET / HTTP/1.1\r\nHOST: x\r\nrAnGe:  bytes=0-1\t \r\nIF-NONE-MATCH:\t\"a\"\r\n\r\n",
        );
        assert_eq!(r.range.as_deref(), Some("bytes=0-1"));
        assert_eq!(r.if_none_match.as_deref(), Some("\"a\""));
    }

    #[test]
    fn conditional_and_informational_headers() {
        let r = ok(concat!(
            "GET / HTTP/1.1\r\nHost: x\r\n",
            "If-Match: \"a\"\r\nIf-Match: \"b\"\r\n",
            "If-None-Match: *\r\n",
            "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n",
            "If-Unmodified-Since: Sun, 06 Nov 1994 08:49:38 GMT\r\n",
            "If-Range: \"e\"\r\nRange: bytes=1-\r\n",
            "User-Agent: ua/1\r\nUser-Agent: ua/2\r\nReferer: http://r/\r\n\r\n"
        ));
        assert_eq!(r.if_match.as_deref(), Some("\"a\", \"b\""));
        assert_eq!(r.if_none_match.as_deref(), Some("*"));
        assert_eq!(
            r.if_modified_since.as_deref(),
            Some("Sun, 06 Nov 1994 08:49:37 GMT")
        );
        assert_eq!(
            r.if_unmodified_since.as_deref(),
            Some("Sun, 06 Nov 1994 08:49:38 GMT")
        );
        assert_eq!(r.if_range.as_deref(), Some("\"e\""));
        assert_eq!(r.range.as_deref(), Some("bytes=1-"));
        assert_eq!(r.user_agent.as_deref(), Some("ua/1"));
        assert_eq!(r.referer.as_deref(), Some("http://r/"));
        assert_eq!(
            status("GET / HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1\r\nRange: bytes=2-3\r\n\r\n"),
            400
        );
        // obs-text in User-Agent is tolerated, in a conditional header it is not.
        let ua = b"GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: \xff\r\n\r\n";
        assert!(matches!(parse_request(ua, &Limits::default()), Ok(Some(_))));
        let ims = b"GET / HTTP/1.1\r\nHost: x\r\nIf-Range: \xff\r\n\r\n";
        assert_eq!(
            parse_request(ims, &Limits::default()).map_err(|e| e.status),
            Err(400)
        );
    }

    #[test]
    fn keep_alive_rules() {
        assert!(ok("GET / HTTP/1.1\r\nHost: x\r\n\r\n").keep_alive);
        assert!(!ok("GET / HTTP/1.1\r\nHost: x\r\nConnection: Close\r\n\r\n").keep_alive);
        assert!(!ok("GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade, close\r\n\r\n").keep_alive);
        assert!(ok("GET / HTTP/1.1\r\nHost: x\r\nConnection: closed\r\n\r\n").keep_alive);
        assert!(!ok("GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(ok("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
        assert!(ok("GET / HTTP/1.0\r\nConnection: foo,keep-alive\r\n\r\n").keep_alive);
        assert!(
            !ok("GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n").keep_alive
        );
    }

    #[test]
    fn content_length_rules() {
        let base = "POST / HTTP/1.1\r\nHost: x\r\n";
        assert_eq!(
            ok(&format!("{base}Content-Length: 42\r\n\r\n")).body,
            BodyFraming::Length(42)
        );
        assert_eq!(
            ok(&format!(
                "{base}Content-Length: 5\r\nContent-Length: 5\r\n\r\n"
            ))
            .body,
            BodyFraming::Length(5)
        );
        assert_eq!(
            ok(&format!("{base}Content-Length: 5, 5\r\n\r\n")).body,
            BodyFraming::Length(5)
        );
        assert_eq!(
            status(&format!(
                "{base}Content-Length: 5\r\nContent-Length: 6\r\n\r\n"
            )),
            400
        );
        assert_eq!(status(&format!("{base}Content-Length: 5, 6\r\n\r\n")), 400);
        assert_eq!(status(&format!("{base}Content-Length: -1\r\n\r\n")), 400);
        assert_eq!(status(&format!("{base}Content-Length: +1\r\n\r\n")), 400);
        assert_eq!(status(&format!("{base}Content-Length: 1x\r\n\r\n")), 400);
        assert_eq!(status(&format!("{base}Content-Length: \r\n\r\n")), 400);
        assert_eq!(status(&format!("{base}Content-Length: 5,\r\n\r\n")), 400);
        assert_eq!(
            status(&format!(
                "{base}Content-Length: 99999999999999999999\r\n\r\n"
            )),
            400
        );
        assert_eq!(
            ok(&format!(
                "{base}Content-Length: 18446744073709551615\r\n\r\n"
            ))
            .body,
            BodyFraming::Length(u64::MAX)
        );
    }

    #[test]
    fn transfer_encoding_rules() {
        let base = "POST / HTTP/1.1\r\nHost: x\r\n";
        assert_eq!(
            ok(&format!("{base}Transfer-Encoding: chunked\r\n\r\n")).body,
            BodyFraming::Chunked
        );
        assert_eq!(
            ok(&format!("{base}Transfer-Encoding: CHUNKED\r\n\r\n")).body,
            BodyFraming::Chunked
        );
        assert_eq!(
            status(&format!(
                "{base}Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
            )),
            400
        );
        assert_eq!(
            status(&format!(
                "{base}Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
            )),
            400
        );
        // chunked final but other codings before it: we cannot decode them.
        assert_eq!(
            status(&format!("{base}Transfer-Encoding: gzip, chunked\r\n\r\n")),
            501
        );
        assert_eq!(
            status(&format!(
                "{base}Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
            )),
            501
        );
        // chunked not final / absent: body length undeterminable (RFC 9112 §6.3).
        assert_eq!(
            status(&format!("{base}Transfer-Encoding: gzip\r\n\r\n")),
            400
        );
        assert_eq!(
            status(&format!("{base}Transfer-Encoding: chunked, gzip\r\n\r\n")),
            400
        );
        assert_eq!(
            status(&format!(
                "{base}Transfer-Encoding: chunked, chunked\r\n\r\n"
            )),
            400
        );
        assert_eq!(status(&format!("{base}Transfer-Encoding: \r\n\r\n")), 400);
        assert_eq!(
            status(&format!("{base}Transfer-Encoding: xchunked\r\n\r\n")),
            400
        );
        assert_eq!(
            status("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            400
        );
    }

    #[test]
    fn expect_rules() {
        let base = "PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n";
        assert!(ok(&format!("{base}Expect: 100-Continue\r\n\r\n")).expect_continue);
        assert!(!ok(&format!("{base}\r\n")).expect_continue);
        assert_eq!(status(&format!("{base}Expect: 200-ok\r\n\r\n")), 417);
        assert!(
            !ok("PUT / HTTP/1.0\r\nContent-Length: 1\r\nExpect: 100-continue\r\n\r\n")
                .expect_continue
        );
    }

    #[test]
    fn target_forms() {
        let r = ok("GET HTTP://Example.com:80/p?q HTTP/1.1\r\nHost: other\r\n\r\n");
        assert_eq!(r.target, "/p?q");
        assert_eq!(r.host.as_deref(), Some("Example.com:80"));
        let r = ok("GET https://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n");
        assert_eq!(r.target, "/");
        let r = ok("GET http://example.com?q=1 HTTP/1.0\r\n\r\n");
        assert_eq!(r.target, "/?q=1");
        assert_eq!(r.host.as_deref(), Some("example.com"));
        assert_eq!(ok("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n").target, "*");
        assert_eq!(status("GET * HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
        assert_eq!(status("GET foo HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
        assert_eq!(status("GET ftp://x/ HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
        assert_eq!(status("GET http:///p HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
        assert_eq!(status("GET http://u@h/p HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
        assert_eq!(status("GET /a#frag HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
        // Absolute-form still needs Host in HTTP/1.1.
        assert_eq!(status("GET http://h/ HTTP/1.1\r\n\r\n"), 400);
    }

    #[test]
    fn non_utf8_target() {
        let s = b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(
            parse_request(s, &Limits::default()).map_err(|e| e.status),
            Err(400)
        );
        // Valid UTF-8 (as httparse allows) is kept verbatim.
        assert_eq!(
            ok("GET /caf\u{e9} HTTP/1.1\r\nHost: x\r\n\r\n").target,
            "/caf\u{e9}"
        );
    }

    #[test]
    fn path_and_query() {
        let r = ok("GET /a?b?c HTTP/1.0\r\n\r\n");
        assert_eq!(r.path(), "/a");
        assert_eq!(r.query(), Some("b?c"));
        let r = ok("GET /a HTTP/1.0\r\n\r\n");
        assert_eq!(r.query(), None);
        assert_eq!(ok("GET /a? HTTP/1.0\r\n\r\n").query(), Some(""));
    }

    #[test]
    fn error_display() {
        assert_eq!(HttpError::new(400, "x").to_string(), "400 x");
    }
}
