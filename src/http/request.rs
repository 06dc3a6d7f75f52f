//! Strict request preamble parsing (RFC 9112 §2–§7) on top of httparse.

use std::borrow::BorrowMut;
use std::fmt;
use std::mem::MaybeUninit;

use compact_str::CompactString;

use crate::http::field_name::FieldName;
use crate::http::fields::Field;
use crate::http::method::Method;
use crate::http::request_version::refused_version;
use crate::http::uri::{path_len_of, split_target, valid_host, valid_host_bytes, Split};

/// Size limits for the request preamble.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest request line (without CRLF) before 414.
    pub max_request_line: usize,
    /// Largest header section before 431: the bytes after the request
    /// line's line ending, through the empty line ending the preamble
    /// (empty lines before the request line count too).
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
    pub target: CompactString,
    /// The `d` in `HTTP/1.d`: 0 or 1.
    pub minor_version: u8,
    /// The Host header, or the authority of an absolute-form target; always
    /// set for HTTP/1.1.
    pub host: Option<CompactString>,
    /// The connection may serve another request: HTTP/1.1 without
    /// `Connection: close`, or HTTP/1.0 with `Connection: keep-alive`.
    pub keep_alive: bool,
    /// How the body is delimited.
    pub body: BodyFraming,
    /// An HTTP/1.1 request sent `Expect: 100-continue` (ignored in HTTP/1.0).
    pub expect_continue: bool,
    /// The conditional and range fields, when any was sent: boxed, as
    /// most requests send none, so a request is smaller to move.
    conditions: Option<Box<Conditions>>,
    /// Accept-Encoding: the content codings the client takes, raw.
    pub accept_encoding: Option<CompactString>,
    /// Bytes of leading empty lines + request line + headers + final CRLF.
    pub preamble_len: usize,
    /// Length of the target before '?' (found once: routing asks often).
    path_len: usize,
    /// Where each [`Field`] first sits in the preamble (start, end).
    /// [`NO_SPAN`]: none yet. Not an Option: 48 bytes, not 72, to move.
    field_spans: [(u32, u32); Field::ALL.len()],
}

/// The conditional and range fields of a request ([`Request::if_match`]…).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Conditions {
    if_match: Option<String>,
    if_none_match: Option<String>,
    if_modified_since: Option<String>,
    if_unmodified_since: Option<String>,
    range: Option<String>,
    if_range: Option<String>,
}

impl Request {
    /// If-Match, repeated fields joined with ", ".
    pub fn if_match(&self) -> Option<&str> {
        self.conditions.as_ref()?.if_match.as_deref()
    }

    /// If-None-Match, repeated fields joined with ", ".
    pub fn if_none_match(&self) -> Option<&str> {
        self.conditions.as_ref()?.if_none_match.as_deref()
    }

    /// If-Modified-Since, unparsed.
    pub fn if_modified_since(&self) -> Option<&str> {
        self.conditions.as_ref()?.if_modified_since.as_deref()
    }

    /// If-Unmodified-Since, unparsed.
    pub fn if_unmodified_since(&self) -> Option<&str> {
        self.conditions.as_ref()?.if_unmodified_since.as_deref()
    }

    /// Range, unparsed.
    pub fn range(&self) -> Option<&str> {
        self.conditions.as_ref()?.range.as_deref()
    }

    /// If-Range, unparsed.
    pub fn if_range(&self) -> Option<&str> {
        self.conditions.as_ref()?.if_range.as_deref()
    }

    /// The conditions, made when the first conditional field is read.
    fn conditions_mut(&mut self) -> &mut Conditions {
        self.conditions.get_or_insert_with(Box::default)
    }

    /// Target before '?'.
    #[inline(always)]
    pub fn path(&self) -> &str {
        self.target.get(..self.path_len).unwrap_or(&self.target)
    }

    /// Target after the first '?', if any.
    #[inline(always)]
    pub fn query(&self) -> Option<&str> {
        self.target.get(self.path_len..)?.strip_prefix('?')
    }

    /// The same request for another origin-form `target` (an internal
    /// rewrite): its fields, and their places in the preamble, unchanged.
    pub fn with_target(&self, target: String) -> Request {
        let path_len = path_len_of(&target);
        Request {
            target: target.into(),
            path_len,
            ..self.clone()
        }
    }

    /// The value of the first `field` line (OWS trimmed), read from
    /// `preamble`: the bytes this request was parsed from, such as
    /// `Exchange::preamble`. None when the request has no such field.
    pub fn field<'p>(&self, preamble: &'p [u8], field: Field) -> Option<&'p [u8]> {
        let (start, end) = self.field_spans[field as usize];
        // NO_SPAN's start is past its end: None.
        preamble.get(start as usize..end as usize)
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

pub(super) const fn bad(message: &'static str) -> HttpError {
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
        Err(e) => return refused_by_httparse(buf, limits, e),
    };
    check_limits(buf, len, limits)?;

    // httparse fills all three on Complete; treat absence as malformed, never panic.
    let (Some(method), Some(raw_target), Some(minor_version)) = (req.method, req.path, req.version)
    else {
        return Err(bad("malformed request line"));
    };
    let fields = req
        .headers
        .iter()
        .map(|h| (h.name.as_bytes(), trim_ows(h.value)));
    let line = (method, raw_target, minor_version);
    assemble(buf, line, len, fields, |request| request).map(Some)
}

/// The request of a preamble of `len` bytes whose lines are found: its
/// method, target and minor version, and each field line's name and value
/// (slices of `buf`, OWS trimmed). What [`parse_request`] does once
/// httparse has found the lines, and what a preamble laid out by its
/// writer needs without looking for them
/// ([`request_of_lines`](super::request_lines::request_of_lines)).
/// The request is built where `hold` puts it (a box, say), not moved
/// there afterwards: it is 192 bytes.
#[inline(always)]
pub(super) fn assemble<'b, R: BorrowMut<Request>>(
    buf: &'b [u8],
    (method, raw_target, minor_version): (&str, &str, u8),
    len: usize,
    fields: impl Iterator<Item = (&'b [u8], &'b [u8])>,
    hold: impl FnOnce(Request) -> R,
) -> Result<R, HttpError> {
    let method = Method::from_token(method);
    if method.as_str() == "CONNECT" {
        return Err(HttpError::new(501, "CONNECT not supported"));
    }
    let Split {
        target,
        path_len,
        authority,
    } = split_target(&method, raw_target)?;
    let mut held = hold(Request::blank(
        method,
        (target, path_len),
        minor_version,
        len,
    ));
    let out: &mut Request = held.borrow_mut();
    let mut framing = Framing::default();
    for (name, value) in fields {
        out.read_field(&mut framing, buf, name, value)?;
    }

    if minor_version == 1 && framing.host_count == 0 {
        return Err(bad("missing Host header"));
    }
    // Absolute-form authority overrides Host (RFC 9112 §3.2.2).
    if let Some(auth) = authority {
        if !valid_host(auth) {
            return Err(bad("invalid authority in request target"));
        }
        out.host = Some(auth.into());
    }
    out.keep_alive = !framing.conn_close && (minor_version == 1 || framing.conn_keep_alive);
    out.body = framing.body(minor_version)?;
    Ok(held)
}

/// What a preamble httparse refused gets: an error, or (for a version
/// it does not know) a second look.
fn refused_by_httparse(
    buf: &[u8],
    limits: &Limits,
    error: httparse::Error,
) -> Result<Option<Request>, HttpError> {
    match error {
        httparse::Error::TooManyHeaders => Err(HttpError::new(431, "too many header fields")),
        httparse::Error::Version => refused_version(buf, limits),
        httparse::Error::HeaderName | httparse::Error::HeaderValue => {
            Err(bad("malformed header line"))
        }
        _ => Err(bad("malformed request line")),
    }
}

/// What the fields say about the connection and the body, gathered over
/// all of them before anything is decided: a repeat may conflict.
#[derive(Default)]
struct Framing {
    host_count: usize,
    conn_close: bool,
    conn_keep_alive: bool,
    content_length: Option<u64>,
    te_seen: bool,
    te_last_chunked: bool,
    te_codings: usize,
    te_chunked_count: usize,
}

impl Framing {
    /// How the body is delimited (RFC 9112 §6.3).
    fn body(&self, minor_version: u8) -> Result<BodyFraming, HttpError> {
        if !self.te_seen {
            return Ok(match self.content_length {
                Some(n) => BodyFraming::Length(n),
                None => BodyFraming::None,
            });
        }
        if minor_version == 0 {
            return Err(bad("Transfer-Encoding in HTTP/1.0"));
        }
        if self.content_length.is_some() {
            return Err(bad("both Transfer-Encoding and Content-Length"));
        }
        // Body length is undeterminable unless chunked is final and applied once (§6.3).
        if self.te_codings == 0 || !self.te_last_chunked || self.te_chunked_count > 1 {
            return Err(bad("chunked must be the final transfer coding"));
        }
        if self.te_codings > 1 {
            return Err(HttpError::new(501, "unsupported transfer coding"));
        }
        Ok(BodyFraming::Chunked)
    }

    fn content_length(&mut self, value: &[u8]) -> Result<(), HttpError> {
        // A comma list or repeats are only tolerated when all values agree (§6.3).
        for item in value.split(|&b| b == b',').map(trim_ows) {
            let n = parse_decimal(item).ok_or(bad("invalid Content-Length"))?;
            match self.content_length {
                Some(prev) if prev != n => return Err(bad("conflicting Content-Length")),
                _ => self.content_length = Some(n),
            }
        }
        Ok(())
    }

    fn transfer_encoding(&mut self, value: &[u8]) {
        self.te_seen = true;
        for coding in list(value) {
            self.te_codings += 1;
            // Transfer parameters (";q=..") are not allowed on chunked; compare whole item.
            self.te_last_chunked = coding.eq_ignore_ascii_case(b"chunked");
            if self.te_last_chunked {
                self.te_chunked_count += 1;
            }
        }
    }
}

impl Request {
    /// A request with its line read (`target` and its path's length) and
    /// no field yet.
    fn blank(
        method: Method,
        (target, path_len): (CompactString, usize),
        minor_version: u8,
        preamble_len: usize,
    ) -> Request {
        Request {
            method,
            target,
            minor_version,
            host: None,
            keep_alive: false,
            body: BodyFraming::None,
            expect_continue: false,
            conditions: None,
            accept_encoding: None,
            preamble_len,
            path_len,
            field_spans: [NO_SPAN; Field::ALL.len()],
        }
    }

    /// Takes in one field line of `buf` (`value` OWS-trimmed); what frames
    /// the body goes to `framing`.
    // Inlined into both callers of `assemble`, as it was into the one.
    #[inline(always)]
    fn read_field(
        &mut self,
        framing: &mut Framing,
        buf: &[u8],
        name: &[u8],
        value: &[u8],
    ) -> Result<(), HttpError> {
        let Some(known) = FieldName::of(name) else {
            return Ok(());
        };
        match known {
            FieldName::Host => {
                framing.host_count += 1;
                if framing.host_count > 1 {
                    return Err(bad("more than one Host header"));
                }
                if !valid_host_bytes(value) {
                    // Not UTF-8 is refused as it was when that was checked first.
                    utf8(value)?;
                    return Err(bad("invalid Host header"));
                }
                self.host = Some(utf8(value)?.into());
            }
            FieldName::Connection => {
                for tok in list(value) {
                    framing.conn_close |= tok.eq_ignore_ascii_case(b"close");
                    framing.conn_keep_alive |= tok.eq_ignore_ascii_case(b"keep-alive");
                }
            }
            FieldName::ContentLength => framing.content_length(value)?,
            FieldName::TransferEncoding => framing.transfer_encoding(value),
            FieldName::Expect => {
                if !value.eq_ignore_ascii_case(b"100-continue") {
                    return Err(HttpError::new(417, "unsupported expectation"));
                }
                // A 100-continue expectation in HTTP/1.0 MUST be ignored (RFC 9110 §10.1.1).
                self.expect_continue = self.minor_version == 1;
            }
            FieldName::IfMatch => append_list(&mut self.conditions_mut().if_match, utf8(value)?),
            FieldName::IfNoneMatch => {
                append_list(&mut self.conditions_mut().if_none_match, utf8(value)?);
            }
            FieldName::IfModifiedSince => {
                set_once(&mut self.conditions_mut().if_modified_since, value)?;
            }
            FieldName::IfUnmodifiedSince => {
                set_once(&mut self.conditions_mut().if_unmodified_since, value)?;
            }
            FieldName::Range => set_once(&mut self.conditions_mut().range, value)?,
            FieldName::IfRange => set_once(&mut self.conditions_mut().if_range, value)?,
            FieldName::AcceptEncoding => {
                // Lossy: a stray byte makes a coding unknown, not the request bad.
                match crate::runtime::ascii_str(value) {
                    Some(text) => append_list(&mut self.accept_encoding, text),
                    None => append_list(&mut self.accept_encoding, &String::from_utf8_lossy(value)),
                }
            }
            FieldName::Noted(field) => {
                // The first one (User-Agent, Referer: informational, obs-text
                // tolerated): where it is, not a copy.
                let span = &mut self.field_spans[field as usize];
                if *span == NO_SPAN {
                    *span = span_in(buf, value).unwrap_or(NO_SPAN);
                }
            }
        }
        Ok(())
    }
}

/// A field's span when it was not sent: a range no slice has.
const NO_SPAN: (u32, u32) = (u32::MAX, 0);

/// Where `value`, a slice of `buf`, sits in it; None past 4 GiB.
fn span_in(buf: &[u8], value: &[u8]) -> Option<(u32, u32)> {
    let start = (value.as_ptr() as usize).checked_sub(buf.as_ptr() as usize)?;
    let end = start.checked_add(value.len())?;
    if end > buf.len() {
        return None;
    }
    Some((u32::try_from(start).ok()?, u32::try_from(end).ok()?))
}

/// Enforce limits on the preamble seen so far (`end` bytes of `buf`), same
/// result whether or not the preamble is complete: the request line (without
/// its line ending) at most `max_request_line` bytes, and the header section
/// (every byte after the request line's line ending, up to and including
/// the empty line that ends the preamble, plus any empty lines before the
/// request line) at most `max_header_bytes`.
pub(super) fn check_limits(buf: &[u8], end: usize, limits: &Limits) -> Result<(), HttpError> {
    let seen = &buf[..end.min(buf.len())];
    if seen.len() <= limits.max_request_line.min(limits.max_header_bytes) {
        // No line in it can be too long, nor the header section too large:
        // the usual case, without a scan for the line's end.
        return Ok(());
    }
    let start = leading_empty_len(seen);
    let line = &seen[start..];
    let (line_len, headers) = match line.iter().position(|&b| b == b'\n') {
        Some(i) if i > 0 && line[i - 1] == b'\r' => (i - 1, line.len() - i - 1),
        Some(i) => (i, line.len() - i - 1),
        // Incomplete: a CR at the end may be the start of the line's CRLF.
        None => (line.len() - usize::from(line.ends_with(b"\r")), 0),
    };
    if line_len > limits.max_request_line {
        return Err(HttpError::new(414, "request line too long"));
    }
    // Leading empty lines count too, so an endless CRLF stream is bounded.
    if start.saturating_add(headers) > limits.max_header_bytes {
        return Err(HttpError::new(431, "header section too large"));
    }
    Ok(())
}

/// Bytes of CRLF / LF lines before the request line (httparse skips these).
pub(super) fn leading_empty_len(buf: &[u8]) -> usize {
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

fn trim_ows(v: &[u8]) -> &[u8] {
    let ows = |b: &u8| *b == b' ' || *b == b'\t';
    if v.first().is_some_and(|b| !ows(b)) && v.last().is_some_and(|b| !ows(b)) {
        // The usual value, nothing to trim: httparse skips the OWS around it.
        return v;
    }
    let start = v.iter().position(|b| !ows(b));
    let end = v.iter().rposition(|b| !ows(b));
    match (start, end) {
        (Some(s), Some(e)) => &v[s..=e],
        // Empty, but still within `v`: `span_in` places it.
        _ => &v[..0],
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

#[inline(always)]
fn utf8(v: &[u8]) -> Result<&str, HttpError> {
    // ASCII, nearly always: checked a word at a time.
    match crate::runtime::ascii_str(v) {
        Some(text) => Ok(text),
        None => std::str::from_utf8(v).map_err(|_| bad("header value is not UTF-8")),
    }
}

fn append_list<'v, S: From<&'v str> + Extend<&'v str>>(slot: &mut Option<S>, v: &'v str) {
    match slot {
        Some(s) => s.extend([", ", v]),
        None => *slot = Some(v.into()),
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
        // The header section (after the request line) may be 30 bytes.
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
        // Exactly at the limit: "X-A: " + 21 bytes + CRLF + CRLF = 30.
        let fits = format!("GET / HTTP/1.0\r\nX-A: {}\r\n\r\n", "b".repeat(21));
        assert_eq!(fits.len() - "GET / HTTP/1.0\r\n".len(), 30);
        assert!(matches!(
            parse_request(fits.as_bytes(), &limits),
            Ok(Some(_))
        ));
        // Every prefix of it is still pending.
        for i in 0..fits.len() {
            assert_eq!(parse_request(&fits.as_bytes()[..i], &limits), Ok(None));
        }
        // One byte more is refused, complete or not.
        let over = format!("GET / HTTP/1.0\r\nX-A: {}\r\n\r\n", "b".repeat(22));
        assert_eq!(
            parse_request(over.as_bytes(), &limits).map_err(|e| e.status),
            Err(431)
        );
        let partial = format!("GET / HTTP/1.0\r\nX-A: {}", "b".repeat(26));
        assert_eq!(
            parse_request(partial.as_bytes(), &limits).map_err(|e| e.status),
            Err(431)
        );
        // A short request line leaves the header section no more room.
        let long_line = format!(
            "GET /{} HTTP/1.0\r\nX-A: {}\r\n\r\n",
            "a".repeat(6),
            "b".repeat(22)
        );
        assert_eq!(
            parse_request(long_line.as_bytes(), &limits).map_err(|e| e.status),
            Err(431)
        );
        // Endless empty lines are bounded too.
        let crlfs = "\r\n".repeat(30);
        assert_eq!(
            parse_request(crlfs.as_bytes(), &limits).map_err(|e| e.status),
            Err(431)
        );
    }

    /// A line httparse refuses for its version is judged alone: what
    /// follows it (1 MB of anything) is no header section to measure.
    #[test]
    fn a_bad_version_line_is_400_whatever_follows() {
        let mut buf = b"NOT A REQUEST LINE\r\n\r\n".to_vec();
        buf.extend(std::iter::repeat_n(b'x', 1 << 20));
        assert_eq!(
            parse_request(&buf, &Limits::default()).map_err(|e| e.status),
            Err(400)
        );
        let mut next = b"GET / HTTP/9.9\r\n\r\n".to_vec();
        next.extend(std::iter::repeat_n(b'x', 1 << 20));
        assert_eq!(
            parse_request(&next, &Limits::default()).map_err(|e| e.status),
            Err(505)
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
        assert_eq!(r.range(), Some("bytes=0-1"));
        assert_eq!(r.if_none_match(), Some("\"a\""));
    }

    #[test]
    fn fields_are_looked_up_where_the_parse_found_them() {
        let pre = "GET / HTTP/1.1\r\nHost: x\r\norigin:  https://a.example \r\n\
                   Accept: text/html\r\nACCEPT: application/json\r\n\
                   access-control-request-method: PUT\r\n\r\n";
        let r = ok(pre);
        let field = |f| r.field(pre.as_bytes(), f);
        assert_eq!(field(Field::Origin), Some(&b"https://a.example"[..]));
        // The first of two, as for User-Agent.
        assert_eq!(field(Field::Accept), Some(&b"text/html"[..]));
        assert_eq!(field(Field::AccessControlRequestMethod), Some(&b"PUT"[..]));
        let r = ok("GET /origin:x HTTP/1.1\r\nHost: x\r\nOrigin:\r\n\r\n");
        let pre = b"GET /origin:x HTTP/1.1\r\nHost: x\r\nOrigin:\r\n\r\n";
        assert_eq!(r.field(pre, Field::Origin), Some(&b""[..]));
        assert_eq!(r.field(pre, Field::Accept), None);
        // Leading empty lines and a 1.x version read as 1.1 keep their places.
        let pre = b"\r\nGET / HTTP/1.7\r\nHost: x\r\nOrigin: o\r\n\r\n";
        let r = parse(std::str::from_utf8(pre).unwrap()).unwrap().unwrap();
        assert_eq!(r.field(pre, Field::Origin), Some(&b"o"[..]));
        // Refused by the same rules as any field: no second, looser reader.
        assert_eq!(
            status("GET / HTTP/1.1\r\nHost: x\r\nOrigin : o\r\n\r\n"),
            400
        );
        assert_eq!(
            status("GET / HTTP/1.1\r\nHost: x\r\n Origin: o\r\n\r\n"),
            400
        );
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
        assert_eq!(r.if_match(), Some("\"a\", \"b\""));
        assert_eq!(r.if_none_match(), Some("*"));
        assert_eq!(r.if_modified_since(), Some("Sun, 06 Nov 1994 08:49:37 GMT"));
        assert_eq!(
            r.if_unmodified_since(),
            Some("Sun, 06 Nov 1994 08:49:38 GMT")
        );
        assert_eq!(r.if_range(), Some("\"e\""));
        assert_eq!(r.range(), Some("bytes=1-"));
        let pre = concat!(
            "GET / HTTP/1.1\r\nHost: x\r\n",
            "User-Agent: ua/1\r\nUser-Agent: ua/2\r\nReferer: http://r/\r\n\r\n"
        );
        let r = ok(pre);
        assert_eq!(
            r.field(pre.as_bytes(), Field::UserAgent),
            Some(&b"ua/1"[..])
        );
        assert_eq!(
            r.field(pre.as_bytes(), Field::Referer),
            Some(&b"http://r/"[..])
        );
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
    fn a_request_is_no_larger_to_move() {
        // 192 bytes with String fields; CompactString is as large.
        assert!(std::mem::size_of::<Request>() <= 192);
    }

    #[test]
    fn short_values_are_kept_inline() {
        let r = ok("GET /small.txt HTTP/1.1\r\nHost: 127.0.0.1:19000\r\nAccept-Encoding: gzip, deflate, br, zstd\r\n\r\n");
        assert!(!r.target.is_heap_allocated());
        assert!(!r.host.as_ref().is_some_and(|h| h.is_heap_allocated()));
        assert_eq!(
            r.accept_encoding.as_deref(),
            Some("gzip, deflate, br, zstd")
        );
        assert!(!r
            .accept_encoding
            .as_ref()
            .is_some_and(|a| a.is_heap_allocated()));
        // Longer ones are kept whole.
        let long = format!("/{}", "a".repeat(100));
        let r = ok(&format!(
            "GET {long} HTTP/1.1\r\nHost: x\r\nAccept-Encoding: a\r\naccept-encoding: {}\r\n\r\n",
            "b".repeat(40)
        ));
        assert_eq!(r.target, long);
        assert_eq!(r.accept_encoding.as_deref().map(str::len), Some(43));
    }

    #[test]
    fn a_bad_host_is_refused_as_before() {
        let refused = |pre: &[u8]| parse_request(pre, &Limits::default()).map_err(|e| e.message);
        let not_utf8 = refused(b"GET / HTTP/1.1\r\nHost: a\xffb\r\n\r\n");
        assert_eq!(not_utf8, Err("header value is not UTF-8"));
        let not_host = refused("GET / HTTP/1.1\r\nHost: caf\u{e9}\r\n\r\n".as_bytes());
        assert_eq!(not_host, Err("invalid Host header"));
        assert_eq!(
            refused(b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"),
            Err("invalid Host header")
        );
    }

    #[test]
    fn error_display() {
        assert_eq!(HttpError::new(400, "x").to_string(), "400 x");
    }
}
