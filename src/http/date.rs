//! IMF-fixdate formatting (cached per second) and HTTP-date parsing.

use std::cell::Cell;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Length of an IMF-fixdate, e.g. "Sun, 06 Nov 1994 08:49:37 GMT".
pub const HTTP_DATE_LEN: usize = 29;

/// Last second httpdate can format (9999-12-31T23:59:59Z); it panics beyond.
const MAX_SECS: u64 = 253_402_300_799;

thread_local! {
    // (whole second, formatted date); u64::MAX marks "not yet formatted".
    static CACHE: Cell<(u64, [u8; HTTP_DATE_LEN])> = const { Cell::new((u64::MAX, [0; HTTP_DATE_LEN])) };
    /// The scheduler turn the cache was last checked in: within a turn (a
    /// fraction of a millisecond) the clock is not read again.
    static CHECKED_IN: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Current time as IMF-fixdate, formatted at most once per second per thread.
pub fn http_date_now() -> [u8; HTTP_DATE_LEN] {
    let turn = crate::runtime::now();
    if CHECKED_IN.with(Cell::get) == Some(turn) {
        return CACHE.with(|cache| cache.get().1);
    }
    CHECKED_IN.with(|checked| checked.set(Some(turn)));
    let now = SystemTime::now();
    let secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    CACHE.with(|cache| {
        let (cached_secs, bytes) = cache.get();
        if cached_secs == secs {
            return bytes;
        }
        let mut fresh = [0u8; HTTP_DATE_LEN];
        let s = fmt_http_date(now);
        // Always 29 bytes after clamping; the length guard just avoids a panic path.
        if s.len() == HTTP_DATE_LEN {
            fresh.copy_from_slice(s.as_bytes());
        }
        cache.set((secs, fresh));
        fresh
    })
}

/// Format any time as IMF-fixdate, clamped to 1970..=9999 (httpdate panics outside).
pub fn fmt_http_date(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        .min(MAX_SECS);
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs))
}

/// Parse any of the three HTTP-date forms (RFC 9110 §5.6.7); None if invalid.
pub fn parse_http_date(s: &str) -> Option<SystemTime> {
    httpdate::parse_http_date(s.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_and_parse_round_trip() {
        let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(fmt_http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(t));
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), Some(t));
        assert_eq!(parse_http_date("Sun Nov  6 08:49:37 1994"), Some(t));
        assert_eq!(parse_http_date("yesterday"), None);
        assert_eq!(parse_http_date(""), None);
    }

    #[test]
    fn out_of_range_times_do_not_panic() {
        let before = UNIX_EPOCH - Duration::from_secs(10);
        assert_eq!(fmt_http_date(before), "Thu, 01 Jan 1970 00:00:00 GMT");
        let after = UNIX_EPOCH + Duration::from_secs(MAX_SECS + 1000);
        assert_eq!(fmt_http_date(after), "Fri, 31 Dec 9999 23:59:59 GMT");
    }

    #[test]
    fn now_is_cached_and_valid() {
        let a = http_date_now();
        let b = http_date_now();
        let s = std::str::from_utf8(&a).expect("ascii");
        assert!(s.ends_with(" GMT"));
        assert!(parse_http_date(s).is_some());
        // Same second (almost always) gives identical bytes; at worst the next second.
        let (ta, tb) = (
            parse_http_date(s),
            parse_http_date(std::str::from_utf8(&b).expect("ascii")),
        );
        assert!(tb >= ta);
    }
}
