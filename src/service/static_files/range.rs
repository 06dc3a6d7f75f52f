//! Single byte-range support (RFC 9110 §14). Anything we do not handle is
//! ignored, which the RFC allows: the client then gets the whole file.

/// What to send for a `Range` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeOutcome {
    /// 200 with the whole file: no Range, multi-range, other unit, or invalid.
    Full,
    /// 206 with bytes `start..=end_inclusive`.
    Partial {
        /// Offset of the first byte sent.
        start: u64,
        /// Offset of the last byte sent; always below the file's length.
        end_inclusive: u64,
    },
    /// 416.
    Unsatisfiable,
}

/// Parses `Range` for a representation of `len` bytes. The common case
/// (no `Range`) inlined into the caller, the parsing not.
#[inline(always)]
pub fn parse_range(header: Option<&str>, len: u64) -> RangeOutcome {
    match header {
        None => RangeOutcome::Full,
        Some(header) => parse_range_field(header, len),
    }
}

#[inline(never)]
fn parse_range_field(header: &str, len: u64) -> RangeOutcome {
    let Some((unit, spec)) = header.split_once('=') else {
        return RangeOutcome::Full;
    };
    // Range units are case-insensitive; multi-range is answered in full.
    if !unit.eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return RangeOutcome::Full;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return RangeOutcome::Full;
    };
    let (Some(first), Some(last)) = (parse_pos(first), parse_pos(last)) else {
        return RangeOutcome::Full;
    };

    match (first, last) {
        (None, None) => RangeOutcome::Full,
        // Suffix range: the last `n` bytes.
        (None, Some(n)) => {
            if n == 0 || len == 0 {
                RangeOutcome::Unsatisfiable
            } else {
                RangeOutcome::Partial {
                    start: len.saturating_sub(n),
                    end_inclusive: len - 1,
                }
            }
        }
        (Some(start), last) => {
            if last.is_some_and(|last| last < start) {
                return RangeOutcome::Full;
            }
            if start >= len {
                return RangeOutcome::Unsatisfiable;
            }
            let end = last.map_or(len - 1, |last| last.min(len - 1));
            RangeOutcome::Partial {
                start,
                end_inclusive: end,
            }
        }
    }
}

/// Parses one position: `Some(None)` when empty, `None` when invalid.
/// Digits too large for u64 saturate, since they are still valid syntax.
fn parse_pos(s: &str) -> Option<Option<u64>> {
    if s.is_empty() {
        return Some(None);
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(Some(s.parse().unwrap_or(u64::MAX)))
}

/// `Content-Range` value for a 206.
pub fn content_range(start: u64, end_inclusive: u64, len: u64) -> String {
    format!("bytes {start}-{end_inclusive}/{len}")
}

/// `Content-Range` value for a 416.
pub fn unsatisfied_range(len: u64) -> String {
    format!("bytes */{len}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partial(start: u64, end_inclusive: u64) -> RangeOutcome {
        RangeOutcome::Partial {
            start,
            end_inclusive,
        }
    }

    #[test]
    fn absent_is_full() {
        assert_eq!(parse_range(None, 10), RangeOutcome::Full);
    }

    #[test]
    fn closed_range() {
        assert_eq!(parse_range(Some("bytes=0-0"), 10), partial(0, 0));
        assert_eq!(parse_range(Some("bytes=2-5"), 10), partial(2, 5));
        assert_eq!(parse_range(Some("bytes=0-9"), 10), partial(0, 9));
        assert_eq!(parse_range(Some("BYTES=1-2"), 10), partial(1, 2));
    }

    #[test]
    fn end_is_clamped() {
        assert_eq!(parse_range(Some("bytes=5-100"), 10), partial(5, 9));
        assert_eq!(
            parse_range(Some("bytes=5-99999999999999999999999"), 10),
            partial(5, 9)
        );
    }

    #[test]
    fn open_range() {
        assert_eq!(parse_range(Some("bytes=3-"), 10), partial(3, 9));
        assert_eq!(parse_range(Some("bytes=9-"), 10), partial(9, 9));
    }

    #[test]
    fn suffix_range() {
        assert_eq!(parse_range(Some("bytes=-3"), 10), partial(7, 9));
        assert_eq!(parse_range(Some("bytes=-10"), 10), partial(0, 9));
        assert_eq!(parse_range(Some("bytes=-50"), 10), partial(0, 9));
        assert_eq!(
            parse_range(Some("bytes=-0"), 10),
            RangeOutcome::Unsatisfiable
        );
    }

    #[test]
    fn start_past_end_is_unsatisfiable() {
        assert_eq!(
            parse_range(Some("bytes=10-"), 10),
            RangeOutcome::Unsatisfiable
        );
        assert_eq!(
            parse_range(Some("bytes=10-20"), 10),
            RangeOutcome::Unsatisfiable
        );
        assert_eq!(
            parse_range(Some("bytes=99999999999999999999999-"), 10),
            RangeOutcome::Unsatisfiable
        );
    }

    #[test]
    fn empty_file_is_unsatisfiable() {
        for h in ["bytes=0-", "bytes=0-0", "bytes=-1", "bytes=-0"] {
            assert_eq!(parse_range(Some(h), 0), RangeOutcome::Unsatisfiable, "{h}");
        }
    }

    #[test]
    fn invalid_or_unsupported_is_ignored() {
        for h in [
            "bytes=0-1,3-4",
            "bytes=0-1, 3-4",
            "items=0-1",
            "bytes",
            "bytes=",
            "bytes=-",
            "bytes=5-2",
            "bytes=a-b",
            "bytes=+1-2",
            "bytes=1--2",
            "bytes = 0-1",
            "bytes= 0-1",
            "bytes=0 -1",
            "bytes=0x1-2",
            "",
        ] {
            assert_eq!(parse_range(Some(h), 10), RangeOutcome::Full, "{h}");
        }
    }

    #[test]
    fn header_values() {
        assert_eq!(content_range(0, 9, 10), "bytes 0-9/10");
        assert_eq!(unsatisfied_range(10), "bytes */10");
    }
}
