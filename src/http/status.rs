//! Reason phrases for status codes.

/// The reason phrase of every code in IANA's HTTP status code registry
/// (RFC 9110 names; WebDAV's and RFC 6585's codes too). A code with no
/// registered name gets an empty phrase, which RFC 9112 allows
/// (`HTTP/1.1 599 `), rather than a made-up one.
pub fn reason(status: u16) -> &'static str {
    // One flat match: the compiler makes it a table, on every response.
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        102 => "Processing",
        103 => "Early Hints",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        207 => "Multi-Status",
        208 => "Already Reported",
        226 => "IM Used",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        305 => "Use Proxy",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        423 => "Locked",
        424 => "Failed Dependency",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        506 => "Variant Also Negotiates",
        507 => "Insufficient Storage",
        508 => "Loop Detected",
        510 => "Not Extended",
        511 => "Network Authentication Required",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_codes_have_their_names() {
        assert_eq!(reason(200), "OK");
        assert_eq!(reason(201), "Created");
        assert_eq!(reason(302), "Found");
        assert_eq!(reason(308), "Permanent Redirect");
        assert_eq!(reason(421), "Misdirected Request");
        assert_eq!(reason(429), "Too Many Requests");
        assert_eq!(reason(431), "Request Header Fields Too Large");
        assert_eq!(reason(505), "HTTP Version Not Supported");
        assert_eq!(reason(511), "Network Authentication Required");
    }

    #[test]
    fn unregistered_codes_get_an_empty_phrase() {
        for code in [102 + 2, 299, 306, 418, 499, 509, 599] {
            assert_eq!(reason(code), "", "{code}");
        }
    }
}
