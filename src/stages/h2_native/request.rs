//! A stream's request head, decoded from HPACK straight into the HTTP/1.1
//! preamble the handler reads, checked as RFC 9113 §8.2 and §8.3 ask: a
//! malformed request is a stream error (PROTOCOL_ERROR), and no byte of a
//! field can break the preamble's lines (CR, LF and NUL are refused).

use crate::http::h2_mapping::{FieldAt, RequestBody};
use crate::http::hpack::{DecodeError, Decoded, Decoder};
use crate::stages::conn::StreamNotes;

/// What a header block held, for the stream it opens.
pub(super) struct Parsed {
    /// How the body follows (None: the HEADERS frame ended the stream).
    pub(super) body: RequestBody,
    pub(super) content_length: Option<u64>,
    pub(super) head: bool,
    /// Where the preamble's parts are, for the handler to read the
    /// request from (None: it parses the preamble).
    pub(super) notes: Option<StreamNotes>,
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

/// Where the parts of a request head are gathered while decoding.
#[derive(Default)]
pub(super) struct Scratch {
    method: Vec<u8>,
    path: Vec<u8>,
    authority: Vec<u8>,
    cookie: Vec<u8>,
    fields: Vec<u8>,
    /// Where each line of `fields` is, then (shifted) in the preamble.
    at: Vec<FieldAt>,
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
    /// A value holds a control byte HTTP/1.1's syntax refuses (not
    /// HTTP/2's): the handler's parser must see the preamble.
    odd: bool,
    content_length: Option<u64>,
}

/// Bytes of a token (RFC 9110 §5.6.2): 1, and 2 if also allowed in an
/// HTTP/2 field name (not uppercase); 4 for the bytes a field value must
/// not hold (NUL, CR, LF); 8 for the other control bytes but HTAB, which
/// HTTP/2 lets through and HTTP/1.1's field syntax does not.
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
        }
        if matches!(c, 0 | b'\r' | b'\n') {
            class[b] = 4;
        } else if (c < b' ' && c != b'\t') || c == 0x7f {
            class[b] = 8;
        }
        b += 1;
    }
    class
};

fn is_token(b: u8) -> bool {
    CLASS[usize::from(b)] & 1 != 0
}

fn is_name(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|&b| CLASS[usize::from(b)] & 2 != 0)
}

/// RFC 9113 §8.2.1: no NUL, CR or LF, and no whitespace at either end.
fn is_value(value: &[u8]) -> bool {
    value_class(value).is_some()
}

/// None for a value RFC 9113 §8.2.1 refuses (NUL, CR or LF, whitespace
/// at either end), else its bytes' classes, or-ed (8: a control byte).
fn value_class(value: &[u8]) -> Option<u8> {
    let ends = |b: Option<&u8>| !matches!(b, Some(b' ' | b'\t'));
    let class = value
        .iter()
        .fold(0, |class, &b| class | CLASS[usize::from(b)]);
    (class & 4 == 0 && ends(value.first()) && ends(value.last())).then_some(class)
}

/// A Content-Length value: digits only (`str::parse` takes a `+`).
fn length(value: &[u8]) -> Option<u64> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

impl Scratch {
    /// Decodes a request's header block into the preamble `out`, within
    /// the header list `limit`. A decoding error is the connection's.
    pub(super) fn request(
        &mut self,
        decoder: &mut Decoder,
        block: &[u8],
        end_stream: bool,
        limit: usize,
        out: &mut Vec<u8>,
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
        self.at.clear();
        let mut seen = Seen::default();
        let decoded = decoder.decode(block, limit, &mut |name, value| {
            self.field(&mut seen, name, value)
        })?;
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
        out.clear();
        out.extend_from_slice(&self.method);
        out.push(b' ');
        let target = if connect { &self.authority } else { &self.path };
        out.extend_from_slice(target);
        out.extend_from_slice(b" HTTP/1.1\r\n");
        // The lines of `fields` first (their order counts), then the rest.
        let base = out.len() + line_len(b"host", seen.authority.then_some(&self.authority));
        let base = base + line_len(b"cookie", Some(&self.cookie).filter(|c| !c.is_empty()));
        let mut lines = self.at.len();
        for at in &mut self.at {
            *at = at.map(|offset| offset + base);
        }
        if seen.authority {
            lines += 1;
            push_line(out, &mut self.at, b"host", &self.authority);
        }
        if !self.cookie.is_empty() {
            // Not read by the request: counted, not listed.
            lines += 1;
            out.extend_from_slice(b"cookie: ");
            out.extend_from_slice(&self.cookie);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(&self.fields);
        let body = match (end_stream, seen.content_length) {
            (true, _) => RequestBody::None,
            (false, Some(_)) => RequestBody::Length,
            (false, None) => {
                lines += 1;
                push_line(out, &mut self.at, b"transfer-encoding", b"chunked");
                RequestBody::Chunked
            }
        };
        out.extend_from_slice(b"\r\n");
        let (method_len, target_len) = (self.method.len(), target.len());
        let notes = (!seen.odd).then(|| {
            let mut notes = StreamNotes::default();
            let parts = (method_len, target_len);
            notes.lines().note(out.len(), parts, lines, &self.at);
            notes
        });
        Ok(Ok(Parsed {
            body,
            content_length: seen.content_length,
            head: self.method == b"HEAD",
            notes,
        }))
    }

    fn field(&mut self, seen: &mut Seen, name: &[u8], value: &[u8]) {
        let Some(class) = value_class(value) else {
            seen.malformed = true;
            return;
        };
        seen.odd |= class & 8 != 0;
        if let Some(pseudo) = name.strip_prefix(b":") {
            let (flag, part) = match pseudo {
                b"method" => (&mut seen.method, Some(&mut self.method)),
                b"path" => (&mut seen.path, Some(&mut self.path)),
                b"authority" => (&mut seen.authority, Some(&mut self.authority)),
                b"scheme" => (&mut seen.scheme, None),
                _ => {
                    seen.malformed = true;
                    return;
                }
            };
            if *flag || seen.regular {
                seen.malformed = true;
                return;
            }
            *flag = true;
            if let Some(part) = part {
                part.extend_from_slice(value);
            }
            let bad_byte = |b: &u8| *b <= b' ' || *b == 0x7f;
            let bad = match pseudo {
                b"method" => value.is_empty() || !value.iter().all(|&b| is_token(b)),
                b"path" | b"authority" => value.iter().any(bad_byte),
                _ => false,
            };
            seen.malformed |= bad;
            return;
        }
        seen.regular = true;
        if !is_name(name) {
            seen.malformed = true;
            return;
        }
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
                push_line(&mut self.fields, &mut self.at, name, value);
            }
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

/// Writes the line `name: value` into `out`, noting where it is in `at`.
#[inline]
fn push_line(out: &mut Vec<u8>, at: &mut Vec<FieldAt>, name: &[u8], value: &[u8]) {
    let start = out.len();
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    let value_at = out.len();
    out.extend_from_slice(value);
    at.push([start, value_at, out.len()]);
    out.extend_from_slice(b"\r\n");
}

/// The bytes of the line `name: value`, if there is one.
fn line_len(name: &[u8], value: Option<&Vec<u8>>) -> usize {
    value.map_or(0, |value| name.len() + value.len() + 4)
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
        let mut out = Vec::new();
        let parsed = Scratch::default()
            .request(
                &mut Decoder::new(4096),
                &block(fields),
                end,
                16_384,
                &mut out,
            )
            .map_err(|_| ())?
            .map_err(|_| ())?;
        Ok((String::from_utf8(out).map_err(|_| ())?, parsed.body))
    }

    const GET: [(&str, &str); 4] = [
        (":method", "GET"),
        (":scheme", "https"),
        (":path", "/a?b"),
        (":authority", "example.com"),
    ];

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
}

/// The request the stage builds is the one the handler's parser reads
/// from the same preamble, for generated field lists.
#[cfg(test)]
mod same_request {
    use super::*;
    use crate::http::{parse_request, Limits, Request};

    fn literal(out: &mut Vec<u8>, bytes: &[u8]) {
        // A plain string, its length an HPACK integer (7-bit prefix).
        let mut len = bytes.len();
        if len < 127 {
            out.push(len as u8);
        } else {
            out.push(127);
            len -= 127;
            while len >= 128 {
                out.push((len % 128) as u8 | 0x80);
                len /= 128;
            }
            out.push(len as u8);
        }
        out.extend_from_slice(bytes);
    }

    fn block(fields: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, value) in fields {
            out.push(0x00);
            literal(&mut out, name);
            literal(&mut out, value);
        }
        out
    }

    /// Decodes `fields` as a stream's request, and reads the request
    /// from the stage's notes (None: it must be parsed).
    fn decode(
        fields: &[(&[u8], &[u8])],
        end: bool,
        limits: &Limits,
    ) -> Option<(Vec<u8>, Option<Request>)> {
        let mut out = Vec::new();
        let parsed = Scratch::default()
            .request(
                &mut Decoder::new(4096),
                &block(fields),
                end,
                65_536,
                &mut out,
            )
            .ok()?
            .ok()?;
        let read = parsed
            .notes
            .and_then(|mut n| n.lines().request(&out, limits));
        Some((out, read))
    }

    /// Decodes `fields` as a stream's request; for every limit, the
    /// handler reads what parsing the preamble reads. Returns whether
    /// the request was read from the notes with roomy limits (None: the
    /// stage refused the block).
    fn check(fields: &[(&[u8], &[u8])], end: bool) -> Option<bool> {
        let roomy = Limits {
            max_request_line: 1 << 20,
            max_header_bytes: 1 << 20,
            max_headers: 1000,
        };
        let tight = Limits {
            max_request_line: 40,
            max_header_bytes: 200,
            max_headers: 3,
        };
        let mut built = false;
        for limits in [roomy, Limits::default(), tight] {
            let (out, read) = decode(fields, end, &limits)?;
            let parsed = parse_request(&out, &limits);
            if let Some(read) = read {
                // Read from the notes: exactly what the parser reads.
                assert_eq!(
                    Ok(Some(read)),
                    parsed,
                    "{:?}",
                    String::from_utf8_lossy(&out)
                );
                built |= limits == roomy;
            }
        }
        Some(built)
    }

    const GET: [(&[u8], &[u8]); 4] = [
        (b":method", b"GET"),
        (b":scheme", b"https"),
        (b":path", b"/a?b"),
        (b":authority", b"example.com"),
    ];

    fn with<'a>(extra: &[(&'a [u8], &'a [u8])]) -> Vec<(&'a [u8], &'a [u8])> {
        let mut fields = GET.to_vec();
        fields.extend_from_slice(extra);
        fields
    }

    #[test]
    fn named_cases_are_read_alike() {
        let built = |fields: &[(&[u8], &[u8])]| check(fields, true);
        let inm: &[(&[u8], &[u8])] = &[
            (b"if-none-match", b"\"a\""),
            (b"cookie", b"a=1"),
            (b"if-none-match", b"W/\"b\", \"c\""),
            (b"cookie", b"b=2"),
            (b"user-agent", b"one"),
            (b"user-agent", b"two"),
            (b"accept", b"text/html"),
            (b"accept", b"*/*"),
            (b"authorization", b"Basic eDp5"),
            (b"accept-encoding", b"gzip, br"),
            (b"accept-encoding", b"zstd"),
        ];
        assert_eq!(built(&with(inm)), Some(true));
        assert_eq!(
            check(&with(&[(b"content-length", b"5")]), false),
            Some(true)
        );
        assert_eq!(check(&with(&[]), false), Some(true), "chunked");
        // No :authority: a host field, or neither (400 from the parser).
        let no_authority = &GET[..3];
        let mut host = no_authority.to_vec();
        host.push((b"host", b"h.example"));
        assert_eq!(built(&host), Some(true));
        assert_eq!(built(no_authority), Some(false));
        let star: &[(&[u8], &[u8])] = &[(b":method", b"OPTIONS"), (b":scheme", b"http")];
        let mut star = star.to_vec();
        star.push((b":path", b"*"));
        assert_eq!(built(&star), Some(false), "no Host");
        star.push((b":authority", b"h"));
        assert_eq!(built(&star), Some(true));
        // CONNECT: 501 from the parser.
        assert_eq!(
            built(&[(b":method", b"CONNECT"), (b":authority", b"h:443")]),
            Some(false)
        );
        // Uppercase names: refused by the stage, never a request.
        assert_eq!(built(&with(&[(b"Accept", b"x")])), None);
        // A control byte HTTP/1.1 refuses; repeated singletons; a bad
        // expectation; a Host with userinfo: the parser says why.
        for bad in [
            (&b"x-a"[..], &b"a\x01b"[..]),
            (b"x-a", b"a\x7f"),
            (b"if-range", b"x"),
            (b"expect", b"nothing"),
            (b"if-none-match", b"\xff"),
        ] {
            let mut fields = with(&[bad]);
            if bad.0 == b"if-range" {
                fields.push(bad);
            }
            assert_eq!(built(&fields), Some(false), "{bad:?}");
        }
        let mut userinfo = GET.to_vec();
        userinfo[3] = (b":authority", b"a@b");
        assert_eq!(built(&userinfo), Some(false));
        // Huge values: built, and 414/431 where the limits say.
        let huge = vec![b'a'; 9000];
        assert_eq!(built(&with(&[(b"x-huge", &huge)])), Some(true));
        let mut path = b"/".to_vec();
        path.extend_from_slice(&huge);
        let mut long = GET.to_vec();
        long[2] = (b":path", &path);
        assert_eq!(built(&long), Some(true));
    }

    /// A small generator (xorshift): no crate for it.
    struct Rng(u64);

    impl Rng {
        fn pick<'a, T>(&mut self, from: &'a [T]) -> &'a T {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            &from[(self.0 % from.len() as u64) as usize]
        }
    }

    #[test]
    fn generated_field_lists_are_read_alike() {
        let methods: &[&[u8]] = &[b"GET", b"GET", b"HEAD", b"POST", b"OPTIONS", b"get", b"M-X"];
        let paths: &[&[u8]] = &[
            b"/",
            b"/a?b=c",
            b"*",
            b"/x#f",
            b"/\"q",
            b"/\xc3\xa9",
            b"/\xff",
        ];
        let authorities: &[&[u8]] = &[b"example.com", b"h:8443", b"[::1]:80", b"a@b", b"\xc3\xa9"];
        let names: &[&[u8]] = &[
            b"host",
            b"cookie",
            b"content-length",
            b"if-none-match",
            b"if-match",
            b"if-modified-since",
            b"if-unmodified-since",
            b"range",
            b"if-range",
            b"accept-encoding",
            b"user-agent",
            b"referer",
            b"accept",
            b"origin",
            b"authorization",
            b"access-control-request-method",
            b"expect",
            b"te",
            b"x-forwarded-for",
            b"x-custom",
        ];
        let values: &[&[u8]] = &[
            b"",
            b"0",
            b"5",
            b"12",
            b"x",
            b"\"a\"",
            b"W/\"b\", *",
            b"bytes=0-1",
            b"gzip, br",
            b"100-continue",
            b"trailers",
            b"a\tb",
            b"a b",
            b"\xff\xfe",
            b"\xc3\xa9",
            b"a\x01",
            b"h.example",
            b"Mon, 01 Jan 2024 00:00:00 GMT",
        ];
        let (mut rng, mut built, mut runs) = (Rng(0x9e37_79b9_7f4a_7c15), 0, 0);
        for _ in 0..20_000 {
            let mut fields: Vec<(&[u8], &[u8])> = vec![(b":method", *rng.pick(methods))];
            fields.push((b":scheme", b"https"));
            fields.push((b":path", *rng.pick(paths)));
            if *rng.pick(&[true, true, true, false]) {
                fields.push((b":authority", *rng.pick(authorities)));
            }
            for _ in 0..*rng.pick(&[0, 1, 2, 3, 5, 8]) {
                fields.push((*rng.pick(names), *rng.pick(values)));
            }
            let end = *rng.pick(&[true, true, false]);
            if let Some(was_built) = check(&fields, end) {
                runs += 1;
                built += usize::from(was_built);
            }
        }
        // Most are requests, and many of them are built.
        assert!(runs > 10_000 && built > 1_000, "{built} of {runs}");
    }
}
