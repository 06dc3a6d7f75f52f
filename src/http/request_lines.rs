//! The request of a preamble its writer laid out: an HTTP/2 stream's,
//! whose lines the connection stage knows as it writes them. It is the
//! request [`parse_request`](super::parse_request) makes of those bytes,
//! without httparse looking for the lines again (about a tenth of an
//! HTTP/2 request's instructions, callgrind).

use std::borrow::BorrowMut;

use super::request::{assemble, check_limits, Limits, Request};
use super::words::{is_target, refused_in_http1};

/// What [`parse_request`](super::parse_request) makes of `buf`: a whole
/// preamble written as `method SP target SP HTTP/1.1 CRLF`, then each of
/// `fields` as `name: value CRLF` (both slices of `buf`, in order), then
/// CRLF. The caller checked the fields as a field line's: each name a
/// token, and no value with a control byte other than tab, or DEL. None
/// where the parse might answer otherwise (a method it does not know by
/// name, a target byte or a size HTTP/1.1 refuses, a request it refuses):
/// the caller then parses `buf` and gets its answer. Built where `hold`
/// puts it.
pub(crate) fn request_of_lines<'b, R: BorrowMut<Request>>(
    buf: &'b [u8],
    (method, target): (&[u8], &[u8]),
    fields: impl Iterator<Item = (&'b [u8], &'b [u8])>,
    limits: &Limits,
    hold: impl FnOnce(Request) -> R,
) -> Option<R> {
    let method = match method {
        b"GET" => "GET",
        b"HEAD" => "HEAD",
        b"POST" => "POST",
        b"PUT" => "PUT",
        b"DELETE" => "DELETE",
        b"OPTIONS" => "OPTIONS",
        b"PATCH" => "PATCH",
        _ => return None,
    };
    if !is_target(target) {
        return None;
    }
    let target = match crate::runtime::ascii_str(target) {
        Some(target) => target,
        None => std::str::from_utf8(target).ok()?,
    };
    check_limits(buf, buf.len(), limits).ok()?;
    let mut count = 0;
    let fields = fields.inspect(|(_, value)| {
        count += 1;
        debug_assert!(!value.iter().copied().any(refused_in_http1));
    });
    let request = assemble(buf, (method, target, 1), buf.len(), fields, hold).ok()?;
    (count <= limits.max_headers).then_some(request)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::parse_request;

    /// The lines of a preamble written as the HTTP/2 stage writes it.
    fn lines(buf: &[u8]) -> Vec<(&[u8], &[u8])> {
        let text = &buf[..buf.len() - 2];
        let mut out = Vec::new();
        let mut at = text.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1);
        while at < text.len() {
            let end = at + text[at..].iter().position(|&b| b == b'\n').unwrap_or(0);
            let line = &text[at..end - 1];
            let colon = line.iter().position(|&b| b == b':').unwrap_or(0);
            out.push((&line[..colon], &line[colon + 2..]));
            at = end + 1;
        }
        out
    }

    fn both(text: &str, limits: &Limits) -> (Option<Request>, Option<Request>) {
        let buf = text.as_bytes();
        let first = text.split(' ').collect::<Vec<_>>();
        let line = (first[0].as_bytes(), first[1].as_bytes());
        let fast = request_of_lines(buf, line, lines(buf).into_iter(), limits, Box::new);
        (fast.map(|r| *r), parse_request(buf, limits).ok().flatten())
    }

    #[test]
    fn the_same_request_as_the_parse() {
        let limits = Limits::default();
        for text in [
            "GET /a?b HTTP/1.1\r\nhost: x\r\n\r\n",
            "HEAD / HTTP/1.1\r\nhost: x:1\r\naccept-encoding: gzip, br\r\nuser-agent: u a\r\n\r\n",
            "GET /f HTTP/1.1\r\nhost: x\r\nif-none-match: \"a\"\r\nrange: bytes=0-1\r\n\r\n",
            "POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\n",
            "POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n",
            "GET / HTTP/1.1\r\nhost: x\r\ncookie: a=1; b=2\r\nx-tab: a\tb\r\n\r\n",
            "OPTIONS * HTTP/1.1\r\nhost: x\r\n\r\n",
        ] {
            let (fast, parsed) = both(text, &limits);
            assert!(fast.is_some(), "{text:?}");
            assert_eq!(fast, parsed, "{text:?}");
        }
    }

    #[test]
    fn none_where_the_parse_may_answer_otherwise() {
        let limits = Limits {
            max_headers: 2,
            ..Limits::default()
        };
        for text in [
            // A method known only by its token, a refused request, a target
            // byte HTTP/1.1 refuses, a limit passed.
            "PROPFIND / HTTP/1.1\r\nhost: x\r\n\r\n",
            "GET / HTTP/1.1\r\nhost: x\r\nexpect: nothing\r\n\r\n",
            "GET /\u{7f} HTTP/1.1\r\nhost: x\r\n\r\n",
            "GET / HTTP/1.1\r\nhost: x\r\na: 1\r\nb: 2\r\n\r\n",
            "GET / HTTP/1.1\r\nhost: a b\r\n\r\n",
        ] {
            assert_eq!(both(text, &limits).0, None, "{text:?}");
        }
        let long = format!("GET /{} HTTP/1.1\r\nhost: x\r\n\r\n", "a".repeat(9000));
        assert_eq!(both(&long, &Limits::default()).0, None);
    }
}
