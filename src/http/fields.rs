//! The fields a service may read ([`Field`]), and field lines read again
//! from a parsed request's preamble, for the rare field whose every line
//! counts: `X-Forwarded-For`, which each proxy on the way may add as a
//! line of its own.

use super::Request;

/// Fields the server does not act on but a service may read, through
/// [`Request::field`]. The parse notes where each one is, so reading one
/// costs no second look at the preamble, and a field is read by the same
/// strict rules as every other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `Accept`.
    Accept,
    /// `Origin`.
    Origin,
    /// `Access-Control-Request-Method`.
    AccessControlRequestMethod,
    /// `Authorization`.
    Authorization,
    /// `User-Agent` (the access log's; obs-text tolerated).
    UserAgent,
    /// `Referer` (the access log's; obs-text tolerated).
    Referer,
}

impl Field {
    pub(super) const ALL: [Field; 6] = [
        Field::Accept,
        Field::Origin,
        Field::AccessControlRequestMethod,
        Field::Authorization,
        Field::UserAgent,
        Field::Referer,
    ];

    /// The field's name, as the RFCs spell it.
    pub fn name(self) -> &'static str {
        match self {
            Field::Accept => "Accept",
            Field::Origin => "Origin",
            Field::AccessControlRequestMethod => "Access-Control-Request-Method",
            Field::Authorization => "Authorization",
            Field::UserAgent => "User-Agent",
            Field::Referer => "Referer",
        }
    }
}

impl Request {
    /// The value (OWS trimmed) of every field line named `name` (any
    /// case), in order, read from `preamble` as for [`Self::field`]. For
    /// the rare field whose every line counts (`X-Forwarded-For`); the
    /// parse has checked the lines, so this only splits them.
    pub fn fields_named<'p>(
        &self,
        preamble: &'p [u8],
        name: &'p str,
    ) -> impl DoubleEndedIterator<Item = &'p [u8]> + 'p {
        let head = preamble.get(..self.preamble_len).unwrap_or(&[]);
        // The field lines start after the request line (and any empty
        // lines before it).
        let line_at = head.iter().position(|&b| b != b'\r' && b != b'\n');
        let fields_at = line_at
            .and_then(|at| {
                head[at..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map(|n| at + n + 1)
            })
            .unwrap_or(head.len());
        head[fields_at..]
            .split(|&b| b == b'\n')
            .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
            .filter_map(move |line| {
                let colon = line.iter().position(|&b| b == b':')?;
                let (field, value) = (&line[..colon], &line[colon + 1..]);
                field
                    .eq_ignore_ascii_case(name.as_bytes())
                    .then(|| value.trim_ascii())
            })
    }
}

#[cfg(test)]
mod tests {
    use crate::http::{parse_request, Limits};

    fn ok(s: &str) -> crate::http::Request {
        let limits = Limits {
            max_request_line: 8192,
            max_header_bytes: 8192,
            max_headers: 100,
        };
        parse_request(s.as_bytes(), &limits).unwrap().unwrap()
    }

    #[test]
    fn every_line_of_a_field_is_found_in_order() {
        let pre = "\r\nGET /x-forwarded-for:1 HTTP/1.1\r\nHost: x\r\n\
                   X-Forwarded-For: 1.1.1.1, 2.2.2.2\r\nAccept: a\r\n\
                   x-forwarded-for:3.3.3.3 \r\n\r\nX-Forwarded-For: body";
        let r = ok(pre);
        let all: Vec<_> = r.fields_named(pre.as_bytes(), "X-Forwarded-For").collect();
        assert_eq!(all, [&b"1.1.1.1, 2.2.2.2"[..], b"3.3.3.3"]);
        let last = r
            .fields_named(pre.as_bytes(), "X-Forwarded-For")
            .next_back();
        assert_eq!(last, Some(&b"3.3.3.3"[..]));
        assert_eq!(r.fields_named(pre.as_bytes(), "Origin").count(), 0);
    }
}
