//! HTTP/2 requests and responses in HTTP/1.1 form, both ways: the one
//! place HTTP/2 meets the rest of the server. A stream's request becomes an
//! HTTP/1.1 preamble, which the handler parses with the same strict rules
//! as any other; the HTTP/1.1 response the handler writes becomes the
//! stream's response head and body. Framing, HPACK and flow control are the
//! `h2` crate's; what a field means is decided here.

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, Response, StatusCode};

/// The HTTP/2 connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What the first bytes of a plain connection say of the HTTP/2 preface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preface {
    /// The whole preface: the client speaks h2c with prior knowledge.
    Complete,
    /// A part of it so far: read more before deciding.
    Partial,
    /// Not the preface: HTTP/1.x (or nothing yet).
    No,
}

/// Whether `bytes` start with the HTTP/2 preface. One comparison for
/// anything that does not start with `P`.
pub fn preface(bytes: &[u8]) -> Preface {
    match bytes.first() {
        Some(b'P') if bytes.starts_with(PREFACE) => Preface::Complete,
        Some(b'P') if PREFACE.starts_with(bytes) => Preface::Partial,
        _ => Preface::No,
    }
}

/// Whether the first line of a plain connection, refused as HTTP/1.1, is
/// not shaped like a request line at all: three fields whose target is
/// none of HTTP's forms (`/path`, `*`, `scheme:...`, `host:port`) and whose
/// version does not begin with `HTTP`. Where h2c is spoken by prior
/// knowledge such bytes are as much a wrong HTTP/2 preface (a connection
/// error whose GOAWAY may be left out, RFC 9113 §3.4) as a bad HTTP/1.1
/// request, and RFC 9112 §2.2 asks for a 400 only for what looks like
/// HTTP: such a connection is closed unanswered. Anything HTTP-shaped
/// ("GET /", "GET / http/1.1", "GET nothing HTTP/1.1") keeps its 400.
pub fn neither_protocol(bytes: &[u8]) -> bool {
    let start = bytes
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(bytes.len());
    let rest = &bytes[start..];
    let line = rest.split(|&b| b == b'\n').next().unwrap_or(rest);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut fields = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return false;
    };
    let http_target = matches!(target.first(), Some(b'/' | b'*')) || target.contains(&b':');
    let http_version = version.len() >= 4 && version[..4].eq_ignore_ascii_case(b"HTTP");
    !method.is_empty() && !target.is_empty() && !version.is_empty() && !http_target && !http_version
}

/// How a request's body reaches the handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestBody {
    /// None: the HEADERS frame ended the stream.
    None,
    /// As sent, `Content-Length` bytes.
    Length,
    /// Re-framed as chunks (no `Content-Length` was sent).
    Chunked,
}

/// Whether a response field may hold a secret: `set-cookie`, the
/// `authentication-info` fields, and request credentials a header rule
/// might add.
fn holds_secret(name: &HeaderName) -> bool {
    use http::header::{AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION, SET_COOKIE};
    [SET_COOKIE, AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION].contains(name)
        || matches!(
            name.as_str(),
            "authentication-info" | "proxy-authentication-info"
        )
}

/// Fields HTTP/2 forbids (RFC 9113 §8.2.2), dropped from responses.
fn is_connection_field(name: &HeaderName) -> bool {
    use http::header::{CONNECTION, TRANSFER_ENCODING, UPGRADE};
    *name == CONNECTION
        || *name == TRANSFER_ENCODING
        || *name == UPGRADE
        || name.as_str() == "keep-alive"
        || name.as_str() == "proxy-connection"
}

/// Writes `request`'s head as an HTTP/1.1 preamble into `out`, saying
/// how its body follows. `:authority` becomes `Host`; the cookie fields
/// HTTP/2 splits are joined again (RFC 9113 §8.2.3).
pub fn write_preamble(
    method: &Method,
    uri: &http::Uri,
    headers: &HeaderMap,
    end_of_stream: bool,
    out: &mut Vec<u8>,
) -> RequestBody {
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    let target = match (method, uri.path_and_query()) {
        (&Method::CONNECT, _) => uri.authority().map_or("", |a| a.as_str()),
        (_, Some(path)) => path.as_str(),
        (_, None) => "/",
    };
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if let Some(authority) = uri.authority() {
        field(out, b"host", authority.as_str().as_bytes());
    }
    let mut cookies = headers.get_all(http::header::COOKIE).iter();
    if let Some(first) = cookies.next() {
        out.extend_from_slice(b"cookie: ");
        out.extend_from_slice(first.as_bytes());
        for more in cookies {
            out.extend_from_slice(b"; ");
            out.extend_from_slice(more.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }
    for (name, value) in headers {
        let skip = name == http::header::COOKIE
            || name == http::header::TE
            || (name == http::header::HOST && uri.authority().is_some());
        if !skip {
            field(out, name.as_str().as_bytes(), value.as_bytes());
        }
    }
    let body = match (
        end_of_stream,
        headers.contains_key(http::header::CONTENT_LENGTH),
    ) {
        (true, _) => RequestBody::None,
        (false, true) => RequestBody::Length,
        (false, false) => {
            field(out, b"transfer-encoding", b"chunked");
            RequestBody::Chunked
        }
    };
    out.extend_from_slice(b"\r\n");
    body
}

fn field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// How the body of a response head read by [`parse_response_head`] is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseBody {
    /// No body (HEAD, 204, 304): the head ends the stream.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked: decode with [`super::ChunkedDecoder`].
    Chunked,
    /// Until the handler closes its end.
    UntilEnd,
}

/// What the front of a handler's output holds.
#[derive(Debug)]
pub enum Head {
    /// The final response head, `len` bytes long.
    Final {
        /// The status and fields, as HTTP/2 sends them.
        response: Response<()>,
        /// How the body after it is framed.
        body: ResponseBody,
        /// The head's length in bytes.
        len: usize,
    },
    /// An interim (1xx) head of `len` bytes, which HTTP/2 drops.
    Interim(usize),
    /// Not all of the head yet.
    Partial,
}

/// The fields a handler's response head has room for on the stack; one
/// with more (header rules may add any number) is parsed again with room
/// for every line.
const MAX_RESPONSE_FIELDS: usize = 64;

/// Reads the HTTP/1.1 response head at the front of `buf`, written by
/// this server's handler for a request of `method`. Connection-level
/// fields are dropped. An error means the handler wrote no valid head.
///
/// The field values are slices of `buf`, not copies, and a standard
/// field name (all this server writes but custom header rules) is a
/// constant: a head of seven fields costs two allocations (the map's,
/// and `buf` shared once), not fifteen.
pub fn parse_response_head(buf: &Bytes, method: &Method) -> Result<Head, httparse::Error> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_RESPONSE_FIELDS];
    match parse_head_in(buf, method, &mut fields) {
        Err(httparse::Error::TooManyHeaders) => {
            let end = buf
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map_or(buf.len(), |at| at + 4);
            let lines = buf[..end].iter().filter(|&&b| b == b'\n').count();
            let mut fields = vec![httparse::EMPTY_HEADER; lines];
            parse_head_in(buf, method, &mut fields)
        }
        parsed => parsed,
    }
}

/// [`parse_response_head`] with room for `fields.len()` fields.
fn parse_head_in<'a>(
    buf: &'a Bytes,
    method: &Method,
    fields: &mut [httparse::Header<'a>],
) -> Result<Head, httparse::Error> {
    let mut parsed = httparse::Response::new(fields);
    let len = match parsed.parse(buf)? {
        httparse::Status::Partial => return Ok(Head::Partial),
        httparse::Status::Complete(len) => len,
    };
    let code = parsed.code.unwrap_or(500);
    if (100..200).contains(&code) {
        return Ok(Head::Interim(len));
    }
    let status = StatusCode::from_u16(code).map_err(|_| httparse::Error::Status)?;
    let mut length = None;
    let mut chunked = false;
    let mut headers = HeaderMap::with_capacity(parsed.headers.len());
    for f in parsed.headers.iter() {
        // from_bytes lowercases; a standard name is a constant, no copy.
        let name =
            HeaderName::from_bytes(f.name.as_bytes()).map_err(|_| httparse::Error::HeaderName)?;
        if name == http::header::CONTENT_LENGTH {
            length = std::str::from_utf8(f.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok());
        } else if name == http::header::TRANSFER_ENCODING {
            chunked = f.value.eq_ignore_ascii_case(b"chunked");
        }
        if is_connection_field(&name) {
            continue;
        }
        let mut value = HeaderValue::from_maybe_shared(buf.slice_ref(f.value))
            .map_err(|_| httparse::Error::HeaderValue)?;
        // The h2 crate sends these as literals never indexed (RFC 7541
        // §7.1.3), as the native engine does (`hpack::encode_field_as`).
        value.set_sensitive(holds_secret(&name));
        headers.append(name, value);
    }
    let body = if method == Method::HEAD || code == 204 || code == 304 {
        ResponseBody::Empty
    } else if chunked {
        headers.remove(http::header::CONTENT_LENGTH);
        ResponseBody::Chunked
    } else {
        match length {
            Some(0) => ResponseBody::Empty,
            Some(n) => ResponseBody::Length(n),
            None => ResponseBody::UntilEnd,
        }
    };
    let mut response = Response::new(());
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Ok(Head::Final {
        response,
        body,
        len,
    })
}

/// The bytes of a status-only error response, for a stream whose handler
/// wrote nothing usable.
pub fn empty_response(status: StatusCode) -> Response<()> {
    let mut response = Response::new(());
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn preamble(
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        end: bool,
    ) -> (String, RequestBody) {
        let uri: http::Uri = uri.parse().expect("uri");
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        let mut out = Vec::new();
        let body = write_preamble(&method, &uri, &map, end, &mut out);
        (String::from_utf8(out).expect("utf8"), body)
    }

    #[test]
    fn only_a_first_line_shaped_like_no_request_line_is_neither_protocol() {
        // h2spec's case http2/3.5/2 sends this instead of the preface.
        assert!(neither_protocol(b"INVALID CONNECTION PREFACE\r\n\r\n"));
        assert!(neither_protocol(b"\r\nSSH-2.0 OpenSSH x\r\n"));
        assert!(neither_protocol(b"HELLO THERE FRIEND"));
        for http_shaped in [
            &b"GET /\r\n\r\n"[..],
            b"GET / http/1.1\r\n",
            b"GET / HTTP/1.10\r\n",
            b"GET / FOO/1.1\r\n",
            b"GET nothing HTTP/1.1\r\n",
            b"GET http://a/ 1.1\r\n",
            b"OPTIONS * X\r\n",
            b"GET / HTTP/1.1 extra\r\n",
            b"GET  / HTTP/1.1\r\n",
            b" a b\r\n",
            b"\x16\x03\x01\x02\x00\x01",
            b"",
        ] {
            assert!(!neither_protocol(http_shaped), "{http_shaped:?}");
        }
    }

    #[test]
    fn a_request_becomes_a_preamble_with_host_and_joined_cookies() {
        let (text, body) = preamble(
            Method::GET,
            "https://example.com/a?b=c",
            &[
                ("cookie", "a=1"),
                ("accept", "*/*"),
                ("cookie", "b=2"),
                ("te", "trailers"),
            ],
            true,
        );
        assert_eq!(
            text,
            "GET /a?b=c HTTP/1.1\r\nhost: example.com\r\ncookie: a=1; b=2\r\naccept: */*\r\n\r\n"
        );
        assert_eq!(body, RequestBody::None);
    }

    #[test]
    fn a_body_without_a_length_is_chunked() {
        let (text, body) = preamble(Method::POST, "http://h/echo", &[], false);
        assert!(
            text.ends_with("transfer-encoding: chunked\r\n\r\n"),
            "{text}"
        );
        assert_eq!(body, RequestBody::Chunked);
        let (_, body) = preamble(
            Method::POST,
            "http://h/echo",
            &[("content-length", "3")],
            false,
        );
        assert_eq!(body, RequestBody::Length);
    }

    #[test]
    fn a_head_with_more_fields_than_the_stack_holds_keeps_them_all() {
        let mut head = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n".to_vec();
        for i in 0..200 {
            head.extend_from_slice(format!("X-F{i}: v{i}\r\n").as_bytes());
        }
        head.extend_from_slice(b"\r\nhi");
        let head = Bytes::from(head);
        let Ok(Head::Final { response, len, .. }) = parse_response_head(&head, &Method::GET) else {
            panic!("a final head");
        };
        assert_eq!(response.headers().len(), 201);
        assert_eq!(response.headers()["x-f199"], "v199");
        assert_eq!(&head[len..], b"hi");
        // Partial, with more lines than the stack holds: read more.
        assert!(matches!(
            parse_response_head(&head.slice(..head.len() / 2), &Method::GET),
            Ok(Head::Partial)
        ));
    }

    #[test]
    fn fields_that_may_hold_secrets_are_marked_never_indexed() {
        let head = Bytes::from_static(
            b"HTTP/1.1 200 OK\r\nSet-Cookie: a=b\r\nAuthentication-Info: x\r\n\
              ETag: \"1\"\r\nContent-Length: 0\r\n\r\n",
        );
        let Ok(Head::Final { response, .. }) = parse_response_head(&head, &Method::GET) else {
            panic!("a final head");
        };
        let sensitive = |name: &str| response.headers()[name].is_sensitive();
        assert!(sensitive("set-cookie") && sensitive("authentication-info"));
        assert!(!sensitive("etag") && !sensitive("content-length"));
    }

    #[test]
    fn a_response_head_loses_its_connection_fields_and_says_its_framing() {
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\nETag: \"x\"\r\n\r\nhello";
        let Ok(Head::Final {
            response,
            body,
            len,
        }) = parse_response_head(&Bytes::from_static(head), &Method::GET)
        else {
            panic!("a final head");
        };
        assert_eq!(response.status(), 200);
        assert_eq!(body, ResponseBody::Length(5));
        assert_eq!(&head[len..], b"hello");
        assert!(response.headers().get("connection").is_none());
        assert_eq!(response.headers()["etag"], "\"x\"");
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(matches!(
            parse_response_head(&Bytes::from_static(chunked), &Method::GET),
            Ok(Head::Final {
                body: ResponseBody::Chunked,
                ..
            })
        ));
        assert!(matches!(
            parse_response_head(
                &Bytes::from_static(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"),
                &Method::HEAD
            ),
            Ok(Head::Final {
                body: ResponseBody::Empty,
                ..
            })
        ));
        assert!(matches!(
            parse_response_head(
                &Bytes::from_static(b"HTTP/1.1 100 Continue\r\n\r\n"),
                &Method::POST
            ),
            Ok(Head::Interim(25))
        ));
        assert!(matches!(
            parse_response_head(&Bytes::from_static(b"HTTP/1.1 200"), &Method::GET),
            Ok(Head::Partial)
        ));
    }
}
