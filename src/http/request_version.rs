//! A request line whose version httparse refused: a higher HTTP/1.x is
//! read as HTTP/1.1 (RFC 9110 §2.5), any other full version is a 505, and
//! a version still arriving waits for more bytes.

use crate::http::request::{
    bad, check_limits, leading_empty_len, parse_request, HttpError, Limits, Request,
};

/// What a preamble whose version httparse refused gets.
pub(super) fn refused_version(buf: &[u8], limits: &Limits) -> Result<Option<Request>, HttpError> {
    // Only the request line is judged here: the bytes after it may
    // be anything (the next request, a body, garbage).
    check_limits(buf, request_line_end(buf), limits)?;
    match version_error(buf) {
        VersionShape::Higher1(at) => parse_as_http11(buf, at, limits),
        VersionShape::Full => Err(HttpError::new(505, "only HTTP/1.x")),
        VersionShape::Prefix => Ok(None),
        VersionShape::No => Err(bad("malformed request line")),
    }
}

/// Where the request line ends in `buf` (just past its LF), or `buf.len()`
/// if it has not ended yet.
fn request_line_end(buf: &[u8]) -> usize {
    let start = leading_empty_len(buf);
    match buf[start..].iter().position(|&b| b == b'\n') {
        Some(i) => start + i + 1,
        None => buf.len(),
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
