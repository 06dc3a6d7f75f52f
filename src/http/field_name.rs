//! Which field a request's field line names, of those the parse reads:
//! found by the name's length and first letter, then one compare, as most
//! lines (User-Agent, Accept, Cookie…) name a field the parse does not act
//! on, and a compare with each known name in turn cost them all.

use super::fields::Field;

/// A field the request parse reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FieldName {
    Host,
    Connection,
    ContentLength,
    TransferEncoding,
    Expect,
    IfMatch,
    IfNoneMatch,
    IfModifiedSince,
    IfUnmodifiedSince,
    Range,
    IfRange,
    AcceptEncoding,
    /// One a service may read, whose place is noted ([`Field`]).
    Noted(Field),
}

impl FieldName {
    /// The field `name` (any case) names, or None for one the parse does
    /// not read.
    #[inline(always)]
    pub(super) fn of(name: &(impl AsRef<[u8]> + ?Sized)) -> Option<FieldName> {
        use FieldName::*;
        let bytes = name.as_ref();
        // ASCII letters lowercased; any other byte matches no arm's letter,
        // and the compare below decides anyway.
        let letter = |i: usize| bytes.get(i).map_or(0, |b| b | 0x20);
        match (bytes.len(), letter(0)) {
            (4, b'h') => is(bytes, b"host").then_some(Host),
            (5, b'r') => is(bytes, b"range").then_some(Range),
            (6, b'e') => is(bytes, b"expect").then_some(Expect),
            (6, b'a') => is(bytes, b"accept").then_some(Noted(Field::Accept)),
            (6, b'o') => is(bytes, b"origin").then_some(Noted(Field::Origin)),
            (7, b'r') => is(bytes, b"referer").then_some(Noted(Field::Referer)),
            (8, b'i') if letter(3) == b'm' => is(bytes, b"if-match").then_some(IfMatch),
            (8, b'i') => is(bytes, b"if-range").then_some(IfRange),
            (10, b'c') => is(bytes, b"connection").then_some(Connection),
            (10, b'u') => is(bytes, b"user-agent").then_some(Noted(Field::UserAgent)),
            (13, b'i') => is(bytes, b"if-none-match").then_some(IfNoneMatch),
            (13, b'a') => is(bytes, b"authorization").then_some(Noted(Field::Authorization)),
            (14, b'c') => is(bytes, b"content-length").then_some(ContentLength),
            (15, b'a') => is(bytes, b"accept-encoding").then_some(AcceptEncoding),
            (17, b't') => is(bytes, b"transfer-encoding").then_some(TransferEncoding),
            (17, b'i') => is(bytes, b"if-modified-since").then_some(IfModifiedSince),
            (19, b'i') => is(bytes, b"if-unmodified-since").then_some(IfUnmodifiedSince),
            (29, b'a') => is(bytes, b"access-control-request-method")
                .then_some(Noted(Field::AccessControlRequestMethod)),
            _ => None,
        }
    }
}

/// `name` is `lower` (a lowercase name) in any case: as
/// `eq_ignore_ascii_case`, but against a name known when compiled, so
/// each byte is one OR and one XOR (a letter matches either case, any
/// other byte only itself), with no branch: the compiler folds the bytes
/// into a few word compares.
#[inline(always)]
fn is<const N: usize>(name: &[u8], lower: &[u8; N]) -> bool {
    let Ok(name) = <&[u8; N]>::try_from(name) else {
        return false;
    };
    let mut differ = 0;
    for i in 0..N {
        let letter = u8::from(lower[i].is_ascii_lowercase()) << 5;
        differ |= (name[i] | letter) ^ lower[i];
    }
    differ == 0
}

#[cfg(test)]
mod tests {
    use super::FieldName::{self, *};
    use crate::http::fields::Field;

    const READ: [(&str, FieldName); 12] = [
        ("Host", Host),
        ("Connection", Connection),
        ("Content-Length", ContentLength),
        ("Transfer-Encoding", TransferEncoding),
        ("Expect", Expect),
        ("If-Match", IfMatch),
        ("If-None-Match", IfNoneMatch),
        ("If-Modified-Since", IfModifiedSince),
        ("If-Unmodified-Since", IfUnmodifiedSince),
        ("Range", Range),
        ("If-Range", IfRange),
        ("Accept-Encoding", AcceptEncoding),
    ];

    fn spellings(name: &str) -> [String; 3] {
        [
            name.to_string(),
            name.to_ascii_lowercase(),
            name.to_ascii_uppercase(),
        ]
    }

    #[test]
    fn every_name_read_is_found_in_any_case() {
        for (name, known) in READ {
            for spelt in spellings(name) {
                assert_eq!(FieldName::of(&spelt), Some(known), "{spelt}");
            }
        }
        for field in Field::ALL {
            for spelt in spellings(field.name()) {
                assert_eq!(FieldName::of(&spelt), Some(Noted(field)), "{spelt}");
            }
        }
    }

    #[test]
    fn a_name_with_any_other_byte_is_not_found() {
        let names = READ.map(|(name, _)| name.to_string());
        let noted = Field::ALL.map(|f| f.name().to_string());
        for name in names.iter().chain(&noted) {
            let known = FieldName::of(name);
            for i in 0..name.len() {
                for b in 0..0x80u8 {
                    let mut other = name.clone().into_bytes();
                    other[i] = b;
                    let other = String::from_utf8(other).expect("ASCII");
                    let same = b.eq_ignore_ascii_case(&name.as_bytes()[i]);
                    let expected = if same { known } else { None };
                    assert_eq!(FieldName::of(&other), expected, "{other:?}");
                }
                let mut other = name.clone();
                other.replace_range(i..=i, "\u{e9}");
                assert_eq!(FieldName::of(&other), None, "{other}");
            }
            assert_eq!(FieldName::of(&format!("{name}s")), None);
            assert_eq!(FieldName::of(&name[1..]), None);
        }
        for other in ["", "x", "te", "cookie", "x-forwarded-for", "if-matcH "] {
            assert_eq!(FieldName::of(other), None, "{other}");
        }
    }
}
