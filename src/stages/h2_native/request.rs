//! A stream's request head, decoded from HPACK straight into the HTTP/1.1
//! preamble the handler reads, checked as RFC 9113 §8.2 and §8.3 ask: a
//! malformed request is a stream error (PROTOCOL_ERROR), and no byte of a
//! field can break the preamble's lines (CR, LF and NUL are refused).

use crate::http::h2_mapping::RequestBody;
use crate::http::hpack::{DecodeError, Decoded, Decoder, Fields};
use crate::http::words::{any_word, below, is_target, refused_in_http1, LOW};
use crate::http::{request_of_lines, Limits, Request};
use crate::runtime::pooled::PooledBox;

/// What a header block held, for the stream it opens.
pub(super) struct Parsed {
    /// How the body follows (None: the HEADERS frame ended the stream).
    pub(super) body: RequestBody,
    pub(super) content_length: Option<u64>,
    pub(super) head: bool,
}

/// Why a block opens no stream.
pub(super) enum Refused {
    /// Not valid HTTP/2: a stream error (PROTOCOL_ERROR).
    Malformed,
    /// Larger than the header list limit: answered 431 by the stage.
    TooLarge,
    /// Larger than ten times the limit: the client is sent GOAWAY
    /// (ENHANCE_YOUR_CALM).
    Bomb,
}

/// Where the parts of a request head are gathered while decoding, and
/// how its preamble is to be written of them.
#[derive(Default)]
pub(super) struct Scratch {
    method: Vec<u8>,
    path: Vec<u8>,
    authority: Vec<u8>,
    cookie: Vec<u8>,
    fields: Vec<u8>,
    /// The name's and the value's length of each line of `fields`.
    field_lines: Vec<(usize, usize)>,
    /// CONNECT: the target is the authority.
    connect: bool,
    /// A `host` line of the authority.
    host: bool,
    /// A `transfer-encoding: chunked` line: a body of no stated length.
    chunked: bool,
    /// A value holds a byte HTTP/1.1 refuses: the handler parses the
    /// preamble ([`Scratch::request_of`]).
    odd: bool,
}

/// What decoding has seen so far.
#[derive(Default)]
struct Seen {
    method: bool,
    path: bool,
    scheme: bool,
    authority: bool,
    regular: bool,
    host: bool,
    malformed: bool,
    /// A value holds a byte HTTP/1.1 refuses ([`value_check`]).
    odd: bool,
    content_length: Option<u64>,
}

/// Bytes of a token (RFC 9110 §5.6.2): 1, and 2 if also allowed in an
/// HTTP/2 field name (not uppercase); 4 for the bytes a field value must
/// not hold (NUL, CR, LF); 8 for those a target or authority must not
/// (controls, space, DEL); 16 for those a method must not (not a token).
/// A value's bytes are classed in one pass ([`value_class`]), which
/// answers for the pseudo-header fields too.
static CLASS: [u8; 256] = {
    let mut class = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        let token = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.'
            )
            || matches!(c, b'^' | b'_' | b'`' | b'|' | b'~');
        if token {
            class[b] = if c.is_ascii_uppercase() { 1 } else { 3 };
        } else {
            class[b] = 16;
        }
        if c <= b' ' || c == 0x7f {
            class[b] |= 8;
        }
        if matches!(c, 0 | b'\r' | b'\n') {
            class[b] |= 4;
        }
        b += 1;
    }
    class
};

fn is_name(name: &[u8]) -> bool {
    // The bytes' classes and-ed: one pass, no branch per byte.
    let class = name
        .iter()
        .fold(2, |class, &b| class & CLASS[usize::from(b)]);
    !name.is_empty() && class & 2 != 0
}

/// RFC 9113 §8.2.1: no NUL, CR or LF, and no whitespace at either end.
fn is_value(value: &[u8]) -> bool {
    value_class(value).is_some()
}

/// None for a value RFC 9113 §8.2.1 refuses (NUL, CR or LF, whitespace
/// at either end), else its bytes' classes or-ed: one pass, no branch
/// per byte.
fn value_class(value: &[u8]) -> Option<u8> {
    let class = classes(value);
    (class & 4 == 0 && plain_ends(value)).then_some(class)
}

/// The classes of `value`'s bytes, or-ed.
fn classes(value: &[u8]) -> u8 {
    value
        .iter()
        .fold(0, |class, &b| class | CLASS[usize::from(b)])
}

/// Neither end of `value` is whitespace (space or tab).
fn plain_ends(value: &[u8]) -> bool {
    let ends = |b: Option<&u8>| !matches!(b, Some(b' ' | b'\t'));
    ends(value.first()) && ends(value.last())
}

/// [`is_value`], eight bytes at a time: None for a value it refuses, else
/// whether the value holds a byte HTTP/1.1 refuses too (a control byte
/// other than tab, or DEL), whose request the handler then parses itself
/// (and refuses). A value with no control byte or DEL at all (the common
/// case) needs only its ends looked at.
fn value_check(value: &[u8]) -> Option<bool> {
    if !any_word(value, |w| below(w, 0x20) | below(w ^ (0x7f * LOW), 1)) {
        return plain_ends(value).then_some(false);
    }
    is_value(value).then(|| value.iter().copied().any(refused_in_http1))
}

/// A `:method` value: a token.
fn is_method(value: &[u8]) -> bool {
    !value.is_empty() && classes(value) & 16 == 0
}

/// The decoder's fields into a scratch.
struct Gather<'a> {
    scratch: &'a mut Scratch,
    seen: Seen,
}

impl Fields for Gather<'_> {
    #[inline(always)]
    fn field(&mut self, name: &[u8], value: &[u8]) {
        self.scratch.field(&mut self.seen, name, value, &mut false);
    }

    /// An indexed field's mark says its name and value passed the checks
    /// that depend on them alone ([`Scratch::field`]'s): a client's
    /// repeated fields (authority, user agent, cookies) are checked once.
    #[inline(always)]
    fn indexed(&mut self, name: &[u8], value: &[u8], checked: &mut bool) {
        self.scratch.field(&mut self.seen, name, value, checked);
    }
}

/// A Content-Length value: digits only (`str::parse` takes a `+`).
fn length(value: &[u8]) -> Option<u64> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

impl Scratch {
    /// Decodes a request's header block, within the header list `limit`;
    /// its preamble is then [`Self::write_preamble`]'s. A decoding error
    /// is the connection's.
    pub(super) fn request(
        &mut self,
        decoder: &mut Decoder,
        block: &[u8],
        end_stream: bool,
        limit: usize,
    ) -> Result<Result<Parsed, Refused>, DecodeError> {
        for part in [
            &mut self.method,
            &mut self.path,
            &mut self.authority,
            &mut self.cookie,
            &mut self.fields,
        ] {
            part.clear();
        }
        self.field_lines.clear();
        let mut gather = Gather {
            scratch: self,
            seen: Seen::default(),
        };
        let decoded = decoder.decode_into(block, limit, &mut gather)?;
        let seen = gather.seen;
        if let Some(refused) = over(decoded, limit) {
            return Ok(Err(refused));
        }
        let connect = self.method == b"CONNECT";
        // :path in origin form, or `*` for OPTIONS (RFC 9113 §8.3.1): an
        // absolute form would reach the handler as an HTTP/1.1
        // absolute-form target, whose authority overrides :authority.
        let origin = match &self.path[..] {
            [b'/', ..] => true,
            b"*" => self.method == b"OPTIONS",
            _ => false,
        };
        let complete = match connect {
            true => seen.authority && !seen.path && !seen.scheme,
            false => seen.method && seen.scheme && seen.path && origin,
        };
        if seen.malformed || !complete {
            return Ok(Err(Refused::Malformed));
        }
        let body = match (end_stream, seen.content_length) {
            (true, _) => RequestBody::None,
            (false, Some(_)) => RequestBody::Length,
            (false, None) => RequestBody::Chunked,
        };
        self.connect = connect;
        self.host = seen.authority;
        self.chunked = body == RequestBody::Chunked;
        self.odd = seen.odd;
        Ok(Ok(Parsed {
            body,
            content_length: seen.content_length,
            head: self.method == b"HEAD",
        }))
    }

    /// Hands `put` the parts of the preamble of the request last decoded,
    /// in order: an HTTP/1.1 request line, `host` of :authority, the
    /// cookies joined, the other fields. Inlined, so that each constant
    /// part is copied by a few moves.
    #[inline(always)]
    fn preamble(&self, mut put: impl FnMut(&[u8])) {
        put(&self.method);
        put(b" ");
        put(if self.connect {
            &self.authority
        } else {
            &self.path
        });
        put(b" HTTP/1.1\r\n");
        if self.host {
            put(b"host: ");
            put(&self.authority);
            put(b"\r\n");
        }
        if !self.cookie.is_empty() {
            put(b"cookie: ");
            put(&self.cookie);
            put(b"\r\n");
        }
        put(&self.fields);
        if self.chunked {
            put(b"transfer-encoding: chunked\r\n");
        }
        put(b"\r\n");
    }

    /// The size of the preamble of the request last decoded.
    pub(super) fn preamble_len(&self) -> usize {
        let mut len = 0;
        self.preamble(|part| len += part.len());
        len
    }

    /// Writes the preamble of the request last decoded into `out`, as
    /// much as fits; returns how much it wrote. Straight into the
    /// stream's read buffer: no copy is made first.
    pub(super) fn write_preamble(&self, out: &mut [u8]) -> usize {
        let mut at = 0;
        self.preamble(|part| match out.get_mut(at..at + part.len()) {
            Some(room) => {
                room.copy_from_slice(part);
                at += part.len();
            }
            None => at += fill(&mut out[at..], part),
        });
        at
    }

    /// The request of `preamble`, the request last decoded as
    /// [`Self::write_preamble`] wrote it (`len` bytes, all of them): built
    /// of its lines where they were put, not parsed
    /// ([`request_of_lines`]). None when the handler is to parse it.
    pub(super) fn request_of(
        &self,
        preamble: &[u8],
        len: usize,
        limits: &Limits,
    ) -> Option<PooledBox<Request>> {
        if preamble.len() != len || self.connect || self.odd {
            return None;
        }
        let host = self.host.then_some((4, self.authority.len()));
        let cookie = (!self.cookie.is_empty()).then_some((6, self.cookie.len()));
        let chunked = self.chunked.then_some((17, 7));
        let lines = (host.into_iter().chain(cookie))
            .chain(self.field_lines.iter().copied())
            .chain(chunked);
        // Past the request line; each line is `name: value\r\n`.
        let mut at = self.method.len() + self.path.len() + b"  HTTP/1.1\r\n".len();
        let misplaced = std::cell::Cell::new(false);
        let fields = lines.map(|(name, value)| {
            let line = preamble.get(at..at + name + value + 4);
            at += name + value + 4;
            match line {
                Some(line) => (&line[..name], &line[name + 2..name + 2 + value]),
                // Not where it was written (it always is): no request is
                // built, and the handler parses the preamble.
                None => {
                    misplaced.set(true);
                    (&b""[..], &b""[..])
                }
            }
        });
        let line = (&self.method[..], &self.path[..]);
        let request = request_of_lines(preamble, line, fields, limits, PooledBox::new);
        request.filter(|_| !misplaced.get())
    }

    // Inlined into the decoder's loop: no call per field.
    /// One field. `checked`: its name and value passed the checks that
    /// depend on them alone (set once they do).
    #[inline(always)]
    fn field(&mut self, seen: &mut Seen, name: &[u8], value: &[u8], checked: &mut bool) {
        if name.first() == Some(&b':') {
            self.pseudo(seen, name, value, checked);
            return;
        }
        if !*checked {
            match value_check(value) {
                Some(odd) if is_name(name) => {
                    // An odd entry is looked at again each time: a checked
                    // one is known not to be odd.
                    seen.odd |= odd;
                    *checked = !odd;
                }
                _ => {
                    seen.malformed = true;
                    return;
                }
            }
        }
        seen.regular = true;
        match name {
            b"connection" | b"keep-alive" | b"proxy-connection" | b"transfer-encoding"
            | b"upgrade" => seen.malformed = true,
            b"te" => seen.malformed |= value != b"trailers",
            b"cookie" => {
                if !self.cookie.is_empty() {
                    self.cookie.extend_from_slice(b"; ");
                }
                self.cookie.extend_from_slice(value);
            }
            _ => {
                if name == b"content-length" {
                    match (length(value), seen.content_length) {
                        (Some(n), None) => seen.content_length = Some(n),
                        (Some(n), Some(m)) if n == m => {}
                        _ => seen.malformed = true,
                    }
                }
                if name == b"host" {
                    // :authority wins (RFC 9113 §8.3.1); one host only.
                    if seen.host {
                        seen.malformed = true;
                    }
                    seen.host = true;
                    if seen.authority {
                        return;
                    }
                }
                self.fields.extend_from_slice(name);
                self.fields.extend_from_slice(b": ");
                self.fields.extend_from_slice(value);
                self.fields.extend_from_slice(b"\r\n");
                self.field_lines.push((name.len(), value.len()));
            }
        }
    }

    /// A pseudo-header field: known, once, before every regular field,
    /// its value as its kind allows (a method a token; a path or an
    /// authority without control bytes, space or DEL).
    #[inline(always)]
    fn pseudo(&mut self, seen: &mut Seen, name: &[u8], value: &[u8], checked: &mut bool) {
        let known = *checked;
        let (flag, part, valid) = match name {
            b":method" => (
                &mut seen.method,
                Some(&mut self.method),
                known || is_method(value),
            ),
            b":path" => (
                &mut seen.path,
                Some(&mut self.path),
                known || is_target(value),
            ),
            b":authority" => (
                &mut seen.authority,
                Some(&mut self.authority),
                known || is_target(value),
            ),
            b":scheme" => (
                &mut seen.scheme,
                None,
                known || value_check(value).is_some(),
            ),
            _ => {
                seen.malformed = true;
                return;
            }
        };
        if *flag || seen.regular || !valid {
            seen.malformed = true;
            return;
        }
        *checked = true;
        *flag = true;
        if let Some(part) = part {
            part.extend_from_slice(value);
        }
    }

    /// Decodes trailers: nothing of them reaches the handler (a chunked
    /// body's end carries none), but pseudo-header fields make them
    /// malformed, and they count against the limit.
    pub(super) fn trailers(
        decoder: &mut Decoder,
        block: &[u8],
        limit: usize,
    ) -> Result<Result<(), Refused>, DecodeError> {
        let mut malformed = false;
        let decoded = decoder.decode(block, limit, &mut |name, value| {
            malformed |= name.starts_with(b":") || !is_name(name) || !is_value(value);
        })?;
        if let Some(refused) = over(decoded, limit) {
            return Ok(Err(refused));
        }
        Ok(match malformed {
            true => Err(Refused::Malformed),
            false => Ok(()),
        })
    }

    /// Gives back what was gathered, while the connection idles.
    pub(super) fn release(&mut self) {
        *self = Scratch::default();
    }
}

/// Copies what fits of `part` into `room` (too small for all of it).
#[cold]
fn fill(room: &mut [u8], part: &[u8]) -> usize {
    let n = room.len().min(part.len());
    room[..n].copy_from_slice(&part[..n]);
    n
}

fn over(decoded: Decoded, limit: usize) -> Option<Refused> {
    match decoded.over {
        false => None,
        true if decoded.size / 10 > limit => Some(Refused::Bomb),
        true => Some(Refused::TooLarge),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A block of literal fields, not indexed, plain (RFC 7541 §6.2.2).
    fn block(fields: &[(&str, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, value) in fields {
            out.push(0x00);
            out.push(name.len() as u8);
            out.extend_from_slice(name.as_bytes());
            out.push(value.len() as u8);
            out.extend_from_slice(value.as_bytes());
        }
        out
    }

    fn request(fields: &[(&str, &str)], end: bool) -> Result<(String, RequestBody), ()> {
        let mut scratch = Scratch::default();
        let parsed = scratch
            .request(&mut Decoder::new(4096), &block(fields), end, 16_384)
            .map_err(|_| ())?
            .map_err(|_| ())?;
        let mut out = vec![0; scratch.preamble_len() + 3];
        let n = scratch.write_preamble(&mut out);
        assert_eq!(n, scratch.preamble_len());
        out.truncate(n);
        // Into too little room: as much as fits.
        let mut short = vec![0; n / 2];
        assert_eq!(scratch.write_preamble(&mut short), n / 2);
        assert_eq!(short, out[..n / 2]);
        Ok((String::from_utf8(out).map_err(|_| ())?, parsed.body))
    }

    const GET: [(&str, &str); 4] = [
        (":method", "GET"),
        (":scheme", "https"),
        (":path", "/a?b"),
        (":authority", "example.com"),
    ];

    /// The request a stream's block is built into with its preamble, and
    /// the one the handler's parse makes of that preamble.
    fn built_and_parsed(fields: &[(&str, &str)], end: bool) -> (Option<Request>, Request) {
        let mut scratch = Scratch::default();
        let parsed = scratch.request(&mut Decoder::new(4096), &block(fields), end, 16_384);
        assert!(matches!(parsed, Ok(Ok(_))), "{fields:?}");
        let mut preamble = vec![0; scratch.preamble_len()];
        let n = scratch.write_preamble(&mut preamble);
        let limits = Limits::default();
        let built = scratch
            .request_of(&preamble, n, &limits)
            .map(|r| (*r).clone());
        let again = crate::http::parse_request(&preamble, &limits);
        (built, again.ok().flatten().expect("parsed"))
    }

    #[test]
    fn a_request_built_with_its_preamble_is_the_parsed_one() {
        let mut fields = GET.to_vec();
        fields.extend([
            ("cookie", "a=1"),
            ("accept-encoding", "gzip"),
            ("cookie", "b=2"),
        ]);
        fields.extend([
            ("user-agent", "a\tb"),
            ("if-none-match", "\"x\""),
            ("range", "bytes=1-"),
        ]);
        let (built, parsed) = built_and_parsed(&fields, true);
        assert_eq!(built, Some(parsed));
        let mut post = GET.to_vec();
        post[0] = (":method", "POST");
        for body in [vec![("content-length", "3")], vec![]] {
            let fields = [post.clone(), body].concat();
            let (built, parsed) = built_and_parsed(&fields, false);
            assert_eq!(built, Some(parsed), "{fields:?}");
        }
    }

    #[test]
    fn a_value_http1_refuses_leaves_the_parse_to_the_handler() {
        for odd in ["a\u{1}b", "\u{7f}", "a\u{1f}"] {
            let fields = [GET.to_vec(), vec![("x-odd", odd)]].concat();
            assert_eq!(value_check(odd.as_bytes()), Some(true));
            let mut scratch = Scratch::default();
            let parsed = scratch.request(&mut Decoder::new(4096), &block(&fields), true, 16_384);
            assert!(matches!(parsed, Ok(Ok(_))));
            let mut preamble = vec![0; scratch.preamble_len()];
            let n = scratch.write_preamble(&mut preamble);
            let built = scratch.request_of(&preamble, n, &Limits::default());
            assert!(built.is_none(), "{odd:?}");
            assert!(crate::http::parse_request(&preamble, &Limits::default()).is_err());
        }
        assert_eq!(value_check(b"a\tb"), Some(false));
        assert_eq!(value_check(b"a\rb"), None);
    }

    #[test]
    fn a_request_becomes_a_preamble_with_host_and_joined_cookies() {
        let mut fields = GET.to_vec();
        fields.extend([("cookie", "a=1"), ("accept", "*/*"), ("cookie", "b=2")]);
        fields.extend([("te", "trailers"), ("host", "ignored")]);
        let (text, body) = request(&fields, true).expect("valid");
        assert_eq!(
            text,
            "GET /a?b HTTP/1.1\r\nhost: example.com\r\ncookie: a=1; b=2\r\naccept: */*\r\n\r\n"
        );
        assert_eq!(body, RequestBody::None);
        let (text, body) = request(&GET, false).expect("valid");
        assert!(
            text.ends_with("transfer-encoding: chunked\r\n\r\n"),
            "{text}"
        );
        assert_eq!(body, RequestBody::Chunked);
    }

    #[test]
    fn every_byte_is_classed_as_the_rules_say() {
        for b in 0..=255u8 {
            let class = CLASS[usize::from(b)];
            let token = b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            assert_eq!(class & 1 != 0, token, "{b}");
            assert_eq!(class & 16 != 0, !token, "{b}");
            assert_eq!(class & 2 != 0, token && !b.is_ascii_uppercase(), "{b}");
            assert_eq!(class & 4 != 0, matches!(b, 0 | b'\r' | b'\n'), "{b}");
            assert_eq!(class & 8 != 0, b <= b' ' || b == 0x7f, "{b}");
        }
    }

    #[test]
    fn the_word_checks_agree_with_the_byte_classes() {
        let by_class = |v: &[u8]| value_class(v).is_some_and(|c| c & 8 == 0);
        for len in 0..20 {
            for b in 0..=255u8 {
                for at in 0..len {
                    for fill in [b'a', b' ', b'\t', 0x7f, 0xff] {
                        let mut v = vec![b'x'; len];
                        v[at] = b;
                        v[(at + 3) % len] = fill;
                        let odd = v.iter().copied().any(refused_in_http1);
                        assert_eq!(value_check(&v), is_value(&v).then_some(odd), "{v:?}");
                        assert_eq!(is_target(&v), by_class(&v), "{v:?}");
                    }
                }
            }
        }
        assert!(value_check(b"") == Some(false) && is_target(b""));
    }

    #[test]
    fn malformed_requests_are_refused() {
        let with = |extra: (&'static str, &'static str)| {
            let mut fields = GET.to_vec();
            fields.push(extra);
            request(&fields, true)
        };
        for bad in [
            ("Accept", "x"),
            ("connection", "close"),
            ("transfer-encoding", "chunked"),
            ("te", "gzip"),
            ("x-a", "b\r\nx-injected: 1"),
            ("x-a", "b\0"),
            (":status", "200"),
            (":path", "/again"),
            ("content-length", "x"),
            ("content-length", "+5"),
            ("content-length", ""),
            ("x-a", " leading"),
            ("x-a", "trailing\t"),
            ("bad name", "v"),
        ] {
            assert!(with(bad).is_err(), "{bad:?}");
        }
        // A pseudo-header after a regular field; missing :path; empty :path.
        let late = [("accept", "*/*"), (":method", "GET")];
        assert!(request(&late, true).is_err());
        assert!(request(&GET[..2], true).is_err());
        let empty = [(":method", "GET"), (":scheme", "http"), (":path", "")];
        assert!(request(&empty, true).is_err());
        let space = [(":method", "GET"), (":scheme", "http"), (":path", "/a b")];
        assert!(request(&space, true).is_err());
        // :path in origin form only: not absolute, not `*` but for OPTIONS.
        for (method, path) in [("GET", "http://other/x"), ("GET", "x"), ("GET", "*")] {
            let fields = [(":method", method), (":scheme", "http"), (":path", path)];
            assert!(request(&fields, true).is_err(), "{method} {path}");
        }
        let star = [(":method", "OPTIONS"), (":scheme", "http"), (":path", "*")];
        let (text, _) = request(&star, true).expect("OPTIONS *");
        assert!(text.starts_with("OPTIONS * HTTP/1.1\r\n"), "{text}");
        // Inner whitespace in a value is kept.
        let mut fields = GET.to_vec();
        fields.push(("user-agent", "a b\tc"));
        assert!(request(&fields, true).is_ok());
        // CONNECT: an authority, no scheme or path.
        let connect = [(":method", "CONNECT"), (":authority", "h:443")];
        let (text, _) = request(&connect, true).expect("CONNECT");
        assert!(text.starts_with("CONNECT h:443 HTTP/1.1\r\n"), "{text}");
    }

    #[test]
    fn the_static_tables_fields_pass_the_checks_they_are_spared() {
        for (name, value) in crate::http::hpack::static_fields() {
            let valid = match name {
                b":method" => is_method(value),
                b":path" | b":authority" => is_target(value),
                b":scheme" => value_check(value).is_some(),
                // Refused by its name, checked or not.
                [b':', ..] => continue,
                _ => value_check(value) == Some(false) && is_name(name),
            };
            assert!(valid, "{name:?} {value:?}");
        }
    }

    #[test]
    fn a_repeated_table_entry_is_refused_each_time_unless_valid() {
        let mut decoder = Decoder::new(4096);
        let mut scratch = Scratch::default();
        // Literals with incremental indexing (RFC 7541 §6.2.1), then the
        // same fields by index (62: the newest entry).
        let entry = |name: &str, value: &str| {
            let mut block = vec![0x40, name.len() as u8];
            block.extend_from_slice(name.as_bytes());
            block.push(value.len() as u8);
            block.extend_from_slice(value.as_bytes());
            block
        };
        let mut first = block(&GET);
        first.extend(entry("x-a", "b\rc"));
        let mut again = block(&GET);
        again.push(0x80 | 62);
        for block in [&first, &again, &again] {
            let parsed = scratch.request(&mut decoder, block, true, 16_384);
            assert!(matches!(parsed, Ok(Err(Refused::Malformed))));
        }
        let mut late = block(&GET[..3]);
        late.extend(entry("x-a", "ok"));
        for block in [&late, &again, &again] {
            let parsed = scratch.request(&mut decoder, block, true, 16_384);
            assert!(matches!(parsed, Ok(Ok(_))));
        }
        // A pseudo-header field checked once is still refused twice, or
        // after a regular one.
        let mut twice = block(&GET[..3]);
        twice.extend(entry(":authority", "h"));
        twice.push(0x80 | 62);
        let parsed = scratch.request(&mut decoder, &twice, true, 16_384);
        assert!(matches!(parsed, Ok(Err(Refused::Malformed))));
        let mut after = block(&GET[..3]);
        after.extend(block(&[("accept", "*/*")]));
        after.push(0x80 | 62);
        let parsed = scratch.request(&mut decoder, &after, true, 16_384);
        assert!(matches!(parsed, Ok(Err(Refused::Malformed))));
    }
}
