//! Validators and conditional-request evaluation (RFC 9110 §13) for GET/HEAD.

use std::fs::Metadata;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The validators we send with a file and compare preconditions against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validators {
    /// Strong ETag including its quotes, e.g. `"6650a1b2-1dcd6500-2a"`.
    pub etag: String,
    /// Modification time truncated to whole seconds, as HTTP dates are.
    pub last_modified: SystemTime,
}

impl Validators {
    /// The ETag (mtime seconds, nanoseconds and length, in hex) and
    /// Last-Modified of a file; a missing mtime counts as the epoch.
    pub fn from_metadata(meta: &Metadata) -> Validators {
        // A missing or pre-epoch mtime degrades to the epoch rather than failing.
        let since_epoch = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .unwrap_or_default();
        let secs = since_epoch.as_secs();
        Validators {
            etag: format!(
                "\"{:x}-{:x}-{:x}\"",
                secs,
                since_epoch.subsec_nanos(),
                meta.len()
            ),
            last_modified: UNIX_EPOCH + Duration::from_secs(secs),
        }
    }

    /// `Last-Modified` value (IMF-fixdate), clamped to year 9999: anyone
    /// who can touch a file must not be able to make serving it panic.
    pub fn last_modified_http(&self) -> String {
        crate::http::date::fmt_http_date(self.last_modified)
    }
}

/// The conditional request headers, raw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Preconditions<'a> {
    /// If-Match: an ETag list or `*`.
    pub if_match: Option<&'a str>,
    /// If-None-Match: an ETag list or `*`.
    pub if_none_match: Option<&'a str>,
    /// If-Modified-Since: an HTTP date.
    pub if_modified_since: Option<&'a str>,
    /// If-Unmodified-Since: an HTTP date.
    pub if_unmodified_since: Option<&'a str>,
    /// If-Range: an ETag or an HTTP date.
    pub if_range: Option<&'a str>,
}

/// How to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Serve the file.
    Proceed {
        /// The Range header may be used (If-Range, if any, matched).
        honor_range: bool,
    },
    /// 304.
    NotModified,
    /// 412.
    PreconditionFailed,
}

/// RFC 9110 §13.2.2 order for GET/HEAD: If-Match -> If-Unmodified-Since (only
/// when no If-Match) -> If-None-Match -> If-Modified-Since (only when no
/// If-None-Match) -> If-Range decides honor_range.
pub fn evaluate(p: &Preconditions, v: &Validators) -> Decision {
    if let Some(if_match) = p.if_match {
        if !etag_list_matches(if_match, &v.etag, strong_eq) {
            return Decision::PreconditionFailed;
        }
    } else if let Some(date) = p.if_unmodified_since.and_then(parse_date) {
        if v.last_modified > date {
            return Decision::PreconditionFailed;
        }
    }

    if let Some(if_none_match) = p.if_none_match {
        if etag_list_matches(if_none_match, &v.etag, weak_eq) {
            return Decision::NotModified;
        }
    } else if let Some(date) = p.if_modified_since.and_then(parse_date) {
        if v.last_modified <= date {
            return Decision::NotModified;
        }
    }

    Decision::Proceed {
        honor_range: p.if_range.is_none_or(|r| if_range_matches(r, v)),
    }
}

/// If-Range holds one strong ETag or one date; both must match exactly.
/// An invalid value does not match, so the full file is sent (the safe side).
fn if_range_matches(value: &str, v: &Validators) -> bool {
    let value = value.trim();
    if value.starts_with('"') || value.starts_with("W/") {
        return parse_etag(value)
            .is_some_and(|(tag, rest)| rest.is_empty() && strong_eq(tag, &v.etag));
    }
    parse_date(value) == Some(v.last_modified)
}

/// An entity-tag as seen in a request: whether it is weak, and its quoted opaque part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tag<'a> {
    weak: bool,
    opaque: &'a str,
}

/// A weak tag never matches strongly; ours are always strong.
fn strong_eq(tag: Tag, ours: &str) -> bool {
    !tag.weak && tag.opaque == ours
}

fn weak_eq(tag: Tag, ours: &str) -> bool {
    tag.opaque == ours
}

/// Matches `*` or a comma-separated entity-tag list. A malformed list matches
/// nothing from the first bad element on.
fn etag_list_matches(list: &str, ours: &str, eq: fn(Tag, &str) -> bool) -> bool {
    if list.trim() == "*" {
        return true;
    }
    let mut rest = list;
    loop {
        // Bytes, not chars: all three are ASCII (callgrind: a char
        // pattern's searcher cost more than the rest of the match).
        let skip = rest
            .bytes()
            .take_while(|b| matches!(b, b' ' | b'\t' | b','))
            .count();
        rest = rest.split_at(skip).1;
        if rest.is_empty() {
            return false;
        }
        match parse_etag(rest) {
            Some((tag, _)) if eq(tag, ours) => return true,
            Some((_, after)) => rest = after,
            None => return false,
        }
    }
}

/// Parses one `[W/]"etagc*"` at the start of `s`, returning it and the remainder.
fn parse_etag(s: &str) -> Option<(Tag<'_>, &str)> {
    let (weak, body) = match s.strip_prefix("W/") {
        Some(body) => (true, body),
        None => (false, s),
    };
    let inner = body.strip_prefix('"')?;
    // A '"' byte is only ever that character in UTF-8.
    let close = inner.bytes().position(|b| b == b'"')?;
    // Quotes included, so the opaque part compares directly with our ETag.
    let (opaque, rest) = body.split_at(close + 2);
    Some((Tag { weak, opaque }, rest))
}

/// Unparsable dates are ignored: the header is treated as absent.
fn parse_date(s: &str) -> Option<SystemTime> {
    httpdate::parse_http_date(s.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn far_future_mtime_is_clamped_not_a_panic() {
        let v = Validators {
            etag: String::new(),
            last_modified: UNIX_EPOCH + Duration::from_secs(400_000 * 365 * 86_400),
        };
        assert_eq!(v.last_modified_http(), "Fri, 31 Dec 9999 23:59:59 GMT");
    }

    const TAG: &str = "\"5f-0-2a\"";

    fn validators() -> Validators {
        Validators {
            etag: TAG.to_string(),
            // Sun, 06 Nov 1994 08:49:37 GMT
            last_modified: UNIX_EPOCH + Duration::from_secs(784_111_777),
        }
    }

    const LM: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
    const BEFORE: &str = "Sun, 06 Nov 1994 08:49:36 GMT";
    const AFTER: &str = "Sun, 06 Nov 1994 08:49:38 GMT";

    const PROCEED: Decision = Decision::Proceed { honor_range: true };
    const NO_RANGE: Decision = Decision::Proceed { honor_range: false };

    fn eval(p: Preconditions) -> Decision {
        evaluate(&p, &validators())
    }

    #[test]
    fn from_metadata_builds_strong_etag_and_whole_seconds() {
        let path = std::env::temp_dir().join(format!("conveyor-cond-{}", std::process::id()));
        std::fs::write(&path, b"hello").unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        let v = Validators::from_metadata(&meta);
        let _ = std::fs::remove_file(&path);

        let since = meta.modified().unwrap().duration_since(UNIX_EPOCH).unwrap();
        assert_eq!(
            v.etag,
            format!("\"{:x}-{:x}-5\"", since.as_secs(), since.subsec_nanos())
        );
        assert_eq!(
            v.last_modified,
            UNIX_EPOCH + Duration::from_secs(since.as_secs())
        );
        assert!(!v.etag.starts_with("W/"));
    }

    #[test]
    fn last_modified_is_imf_fixdate() {
        assert_eq!(validators().last_modified_http(), LM);
    }

    #[test]
    fn no_preconditions_proceed() {
        assert_eq!(eval(Preconditions::default()), PROCEED);
    }

    #[test]
    fn if_match() {
        let with = |h| {
            eval(Preconditions {
                if_match: Some(h),
                ..Default::default()
            })
        };
        assert_eq!(with(TAG), PROCEED);
        assert_eq!(with("*"), PROCEED);
        assert_eq!(with("\"x\", \"5f-0-2a\""), PROCEED);
        assert_eq!(with("\"x\",\"5f-0-2a\""), PROCEED);
        assert_eq!(with("\"x\""), Decision::PreconditionFailed);
        // Strong comparison: a weak tag never matches.
        assert_eq!(with("W/\"5f-0-2a\""), Decision::PreconditionFailed);
        assert_eq!(with("5f-0-2a"), Decision::PreconditionFailed);
        assert_eq!(with(""), Decision::PreconditionFailed);
    }

    #[test]
    fn if_unmodified_since() {
        let with = |h| {
            eval(Preconditions {
                if_unmodified_since: Some(h),
                ..Default::default()
            })
        };
        assert_eq!(with(LM), PROCEED);
        assert_eq!(with(AFTER), PROCEED);
        assert_eq!(with(BEFORE), Decision::PreconditionFailed);
        // Other HTTP-date formats are accepted too.
        assert_eq!(
            with("Sunday, 06-Nov-94 08:49:36 GMT"),
            Decision::PreconditionFailed
        );
        assert_eq!(
            with("Sun Nov  6 08:49:36 1994"),
            Decision::PreconditionFailed
        );
        assert_eq!(with("yesterday"), PROCEED);
    }

    #[test]
    fn if_match_takes_precedence_over_if_unmodified_since() {
        let p = Preconditions {
            if_match: Some(TAG),
            if_unmodified_since: Some(BEFORE),
            ..Default::default()
        };
        assert_eq!(eval(p), PROCEED);
    }

    #[test]
    fn if_none_match() {
        let with = |h| {
            eval(Preconditions {
                if_none_match: Some(h),
                ..Default::default()
            })
        };
        assert_eq!(with(TAG), Decision::NotModified);
        assert_eq!(with("*"), Decision::NotModified);
        // Weak comparison: W/ is ignored.
        assert_eq!(with("W/\"5f-0-2a\""), Decision::NotModified);
        assert_eq!(with("\"a\", W/\"5f-0-2a\""), Decision::NotModified);
        assert_eq!(with("\"a\", \"b\""), PROCEED);
        assert_eq!(with("\"5f-0-2a"), PROCEED);
    }

    #[test]
    fn if_modified_since() {
        let with = |h| {
            eval(Preconditions {
                if_modified_since: Some(h),
                ..Default::default()
            })
        };
        assert_eq!(with(LM), Decision::NotModified);
        assert_eq!(with(AFTER), Decision::NotModified);
        assert_eq!(with(BEFORE), PROCEED);
        assert_eq!(with("not a date"), PROCEED);
    }

    #[test]
    fn if_none_match_takes_precedence_over_if_modified_since() {
        let p = Preconditions {
            if_none_match: Some("\"other\""),
            if_modified_since: Some(AFTER),
            ..Default::default()
        };
        assert_eq!(eval(p), PROCEED);
    }

    #[test]
    fn failed_if_match_beats_matching_if_none_match() {
        let p = Preconditions {
            if_match: Some("\"other\""),
            if_none_match: Some(TAG),
            ..Default::default()
        };
        assert_eq!(eval(p), Decision::PreconditionFailed);
        let p = Preconditions {
            if_unmodified_since: Some(BEFORE),
            if_modified_since: Some(AFTER),
            ..Default::default()
        };
        assert_eq!(eval(p), Decision::PreconditionFailed);
    }

    #[test]
    fn not_modified_wins_over_if_range() {
        let p = Preconditions {
            if_none_match: Some(TAG),
            if_range: Some("\"other\""),
            ..Default::default()
        };
        assert_eq!(eval(p), Decision::NotModified);
    }

    #[test]
    fn if_range_with_etag() {
        let with = |h| {
            eval(Preconditions {
                if_range: Some(h),
                ..Default::default()
            })
        };
        assert_eq!(with(TAG), PROCEED);
        assert_eq!(with("\"other\""), NO_RANGE);
        assert_eq!(with("W/\"5f-0-2a\""), NO_RANGE);
        assert_eq!(with("\"5f-0-2a\", \"x\""), NO_RANGE);
        assert_eq!(with("*"), NO_RANGE);
    }

    #[test]
    fn if_range_with_date() {
        let with = |h| {
            eval(Preconditions {
                if_range: Some(h),
                ..Default::default()
            })
        };
        assert_eq!(with(LM), PROCEED);
        assert_eq!(with(AFTER), NO_RANGE);
        assert_eq!(with(BEFORE), NO_RANGE);
        assert_eq!(with("garbage"), NO_RANGE);
    }

    #[test]
    fn if_range_combined_with_passing_preconditions() {
        let p = Preconditions {
            if_match: Some(TAG),
            if_modified_since: Some(BEFORE),
            if_range: Some(TAG),
            ..Default::default()
        };
        assert_eq!(eval(p), PROCEED);
    }
}
