//! Request-target rules (RFC 9112 §3.2, RFC 3986): the four target forms,
//! the authority's bytes, and percent-encoding. Pure functions on bytes.

use std::io::Write;

use compact_str::CompactString;

use crate::http::method::Method;
use crate::http::request::{bad, HttpError};

/// A request-target reduced to origin-form ([`split_target`]).
pub(super) struct Split<'a> {
    /// The origin-form target (absolute-form reduced), or "*".
    pub(super) target: CompactString,
    /// Bytes of `target` before its first '?'.
    pub(super) path_len: usize,
    /// The authority of an absolute-form target.
    pub(super) authority: Option<&'a str>,
}

/// The target of `raw`, where its path ends and its authority, if any:
/// one pass over its bytes finds both the bytes refused and the '?'.
#[inline(always)]
pub(super) fn split_target<'a>(method: &Method, raw: &'a str) -> Result<Split<'a>, HttpError> {
    let mut query_at = None;
    for (at, &b) in raw.as_bytes().iter().enumerate() {
        match TARGET_BYTE[usize::from(b)] {
            TargetByte::Plain => {}
            TargetByte::Query => {
                query_at.get_or_insert(at);
            }
            TargetByte::Refused => return Err(refused_target(raw)),
        }
    }
    let path_len = query_at.unwrap_or(raw.len());
    if raw.starts_with('/') {
        return Ok(Split {
            target: raw.into(),
            path_len,
            authority: None,
        });
    }
    if raw == "*" {
        return match method {
            Method::Options => Ok(Split {
                target: raw.into(),
                path_len,
                authority: None,
            }),
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
        path.into()
    } else {
        let mut rooted = CompactString::const_new("/");
        rooted.push_str(path);
        rooted
    };
    let path_len = path_len_of(&target);
    let authority = Some(authority);
    Ok(Split {
        target,
        path_len,
        authority,
    })
}

/// Bytes of `target` before its first '?'.
pub(super) fn path_len_of(target: &str) -> usize {
    target
        .bytes()
        .position(|b| b == b'?')
        .unwrap_or(target.len())
}

/// Why a target holding a byte [`TARGET_BYTE`] refuses is refused.
fn refused_target(raw: &str) -> HttpError {
    // Fragments are never part of a request-target (RFC 9112 §3.2).
    if raw.contains('#') {
        return bad("fragment in request target");
    }
    // httparse lets through every visible byte; these three are never
    // sent raw by a URL-conforming client (WHATWG percent-encodes them
    // in path and query alike), so one in a target is a malformed
    // request line.
    bad("invalid character in request target")
}

#[derive(Clone, Copy)]
enum TargetByte {
    Plain,
    /// '?': the path ends at the first.
    Query,
    /// '#', '"', '<' or '>'.
    Refused,
}

/// What each byte of a target is to [`split_target`]: a table, so one
/// look a byte finds both the refused bytes and the '?'.
const TARGET_BYTE: [TargetByte; 256] = {
    let mut table = [TargetByte::Plain; 256];
    table[b'?' as usize] = TargetByte::Query;
    let refused = b"#\"<>";
    let mut i = 0;
    while i < refused.len() {
        table[refused[i] as usize] = TargetByte::Refused;
        i += 1;
    }
    table
};

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// uri-host [":" port] characters; rejects '/', '\\', '@', spaces and controls.
pub(super) fn valid_host(h: &str) -> bool {
    valid_host_bytes(h.as_bytes())
}

/// [`valid_host`] on bytes: only ASCII passes, so a Host is judged
/// before any UTF-8 work.
pub(super) fn valid_host_bytes(h: &[u8]) -> bool {
    // Without a branch a byte: a Host is nearly always valid, so a bad
    // byte early is not worth stopping for.
    h.iter()
        .fold(true, |ok, &b| ok & HOST_BYTES[usize::from(b)])
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

/// A `%` not followed by two hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadEscape;

/// The bytes `raw` stands for, each `%XX` decoded once (RFC 3986 §2.1),
/// one at a time, so a caller can refuse a byte where it appears. After
/// a malformed escape (anything but two hex digits: `%zz`, `%4`, `%+1`)
/// it yields `Err` once and stops.
pub fn percent_decoded(raw: &[u8]) -> PercentDecoded<'_> {
    PercentDecoded { rest: raw }
}

/// The iterator [`percent_decoded`] returns.
#[derive(Debug, Clone)]
pub struct PercentDecoded<'a> {
    rest: &'a [u8],
}

impl Iterator for PercentDecoded<'_> {
    type Item = Result<u8, BadEscape>;

    fn next(&mut self) -> Option<Self::Item> {
        let (&first, after) = self.rest.split_first()?;
        if first != b'%' {
            self.rest = after;
            return Some(Ok(first));
        }
        match after {
            [hi, lo, rest @ ..] => match (hex_digit(*hi), hex_digit(*lo)) {
                (Some(hi), Some(lo)) => {
                    self.rest = rest;
                    Some(Ok(hi << 4 | lo))
                }
                _ => self.fail(),
            },
            _ => self.fail(),
        }
    }
}

impl PercentDecoded<'_> {
    fn fail(&mut self) -> Option<Result<u8, BadEscape>> {
        self.rest = &[];
        Some(Err(BadEscape))
    }
}

/// All of `raw` percent-decoded once; Err at a malformed escape.
pub fn percent_decode(raw: &[u8]) -> Result<Vec<u8>, BadEscape> {
    percent_decoded(raw).collect()
}

/// Only the 22 hex digits: `u8::from_str_radix` would also take a sign,
/// so `%+1` would decode.
fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Appends `bytes` with every byte outside the unreserved set (RFC 3986
/// §2.3) as `%XX`: any name becomes a path segment that names exactly it,
/// and nothing in it can end an HTML attribute.
pub fn percent_encode(out: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// Appends `text`, a decoded path or part of one, escaped so that it is
/// again a path that decodes to exactly it: `/`, the unreserved bytes and
/// `!$'()*,;:@` stay, every other byte (`%`, `?`, `#`, `\`, `&`, `+`,
/// `=`, spaces, controls, non-ASCII) becomes `%XX`. A rule's capture put
/// into a `Location` or a rewritten target this way can neither end the
/// path nor start a query.
pub fn escape_path(out: &mut String, text: &str) {
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/!$'()*,;:@".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = std::fmt::Write::write_fmt(out, format_args!("%{b:02X}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_bytes_are_letters_digits_and_the_listed_punctuation() {
        for b in 0..=255u8 {
            let listed = b.is_ascii_alphanumeric() || b"-._~:[]!$&'()*+,;=%".contains(&b);
            assert_eq!(HOST_BYTES[usize::from(b)], listed, "byte {b}");
        }
    }

    #[test]
    fn percent_decoding_takes_exactly_two_hex_digits() {
        assert_eq!(
            percent_decode(b"%41b%2f%C3%a9"),
            Ok(b"Ab/\xc3\xa9".to_vec())
        );
        assert_eq!(percent_decode(b""), Ok(Vec::new()));
        assert_eq!(percent_decode(b"plain"), Ok(b"plain".to_vec()));
        assert_eq!(
            percent_decode(b"%2541"),
            Ok(b"%41".to_vec()),
            "decoded once"
        );
        let refused = [
            "%+1", "%-1", "% 1", "%1 ", "%zz", "%4", "%", "a%", "%%41", "%4g",
        ];
        for bad in refused {
            assert_eq!(percent_decode(bad.as_bytes()), Err(BadEscape), "{bad}");
        }
    }

    #[test]
    fn percent_decoding_stops_at_the_first_bad_escape() {
        let items: Vec<_> = percent_decoded(b"a%00%+1b").collect();
        assert_eq!(items, [Ok(b'a'), Ok(0), Err(BadEscape)]);
    }

    #[test]
    fn escaped_paths_decode_to_what_was_escaped() {
        let mut out = String::new();
        escape_path(&mut out, "/café/a b?c#d%e&f=g+h\\i/x:y@z(1)");
        assert_eq!(out, "/caf%C3%A9/a%20b%3Fc%23d%25e%26f%3Dg%2Bh%5Ci/x:y@z(1)");
        let decoded = percent_decode(out.as_bytes()).unwrap();
        assert_eq!(decoded, "/café/a b?c#d%e&f=g+h\\i/x:y@z(1)".as_bytes());
    }

    #[test]
    fn percent_encoding_keeps_only_unreserved_bytes() {
        let mut out = Vec::new();
        percent_encode(&mut out, b"a b/\"<\xff:-._~Z9");
        assert_eq!(out, b"a%20b%2F%22%3C%FF%3A-._~Z9");
        assert_eq!(percent_decode(&out), Ok(b"a b/\"<\xff:-._~Z9".to_vec()));
    }
}
