//! Content-coding negotiation (RFC 9110 §12.5.3): which of a file's
//! encoded variants answers an `Accept-Encoding` header. Pure, so unit
//! tests and fuzz targets can call it directly.

/// A content coding a file can be sent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// Brotli (`br`).
    Br,
    /// Zstandard (`zstd`), from sidecars only.
    Zstd,
    /// Gzip (`gzip`, or its alias `x-gzip`).
    Gzip,
    /// The file as it is.
    Identity,
}

impl Encoding {
    /// The encoded ones, in the order preferred at equal q.
    pub const ENCODED: [Encoding; 3] = [Encoding::Br, Encoding::Zstd, Encoding::Gzip];

    /// The `Content-Encoding` token.
    pub fn token(self) -> &'static str {
        match self {
            Encoding::Br => "br",
            Encoding::Zstd => "zstd",
            Encoding::Gzip => "gzip",
            Encoding::Identity => "identity",
        }
    }

    /// The sidecar's suffix: `x.css.br`, `x.css.zst`, `x.css.gz`.
    pub fn suffix(self) -> &'static str {
        match self {
            Encoding::Br => ".br",
            Encoding::Zstd => ".zst",
            Encoding::Gzip => ".gz",
            Encoding::Identity => "",
        }
    }

    fn matches(self, coding: &str) -> bool {
        match self {
            Encoding::Gzip => {
                coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip")
            }
            other => coding.eq_ignore_ascii_case(other.token()),
        }
    }
}

/// The encoding to send, given the header (None when absent) and which
/// encoded variants exist (`available`, any order).
///
/// Each coding's weight is its own q, else that of `*`, else 0. A coding
/// with q = 0 is never chosen; among the rest the highest q wins, and at
/// equal q br, then zstd, then gzip, then identity. Identity not named
/// (neither itself nor by `*`) is the fallback: any acceptable encoding is
/// preferred to it. When nothing is acceptable, not even identity
/// (`identity;q=0` or `*;q=0`), identity is still returned: a 406 helps no
/// client, and nginx does the same. Malformed elements are skipped.
pub fn negotiate(header: Option<&str>, available: &[Encoding]) -> Encoding {
    let Some(header) = header else {
        return Encoding::Identity;
    };
    // q in thousandths; None: not named.
    let mut star = None;
    let mut named: [Option<u16>; 4] = [None; 4];
    let order = [
        Encoding::Br,
        Encoding::Zstd,
        Encoding::Gzip,
        Encoding::Identity,
    ];
    for element in header.split(',') {
        let mut parts = element.split(';');
        let coding = parts.next().unwrap_or("").trim();
        if coding.is_empty() {
            continue;
        }
        let mut q = Some(1000);
        for param in parts {
            let Some((name, value)) = param.split_once('=') else {
                continue;
            };
            if name.trim().eq_ignore_ascii_case("q") {
                q = parse_q(value.trim());
            }
        }
        let Some(q) = q else { continue };
        if coding == "*" {
            star = Some(q);
        } else if let Some(i) = order.iter().position(|e| e.matches(coding)) {
            named[i] = Some(q);
        }
    }
    let mut best = (0u16, Encoding::Identity);
    for (i, encoding) in order.iter().enumerate().take(3) {
        if !available.contains(encoding) {
            continue;
        }
        let q = named[i].or(star).unwrap_or(0);
        if q > best.0 {
            best = (q, *encoding);
        }
    }
    // Identity wins only when named with a q above the best encoding's.
    if let Some(q) = named[3].or(star) {
        if q > best.0 {
            return Encoding::Identity;
        }
    }
    best.1
}

/// A qvalue ("0", "0.5", "1", "1.000") in thousandths; None if malformed.
fn parse_q(value: &str) -> Option<u16> {
    let (whole, frac) = value.split_once('.').unwrap_or((value, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths = 0u16;
    for i in 0..3 {
        let digit = frac.as_bytes().get(i).map_or(0, |b| u16::from(b - b'0'));
        thousandths = thousandths * 10 + digit;
    }
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::Encoding::{Br, Gzip, Identity, Zstd};
    use super::*;

    const ALL: &[Encoding] = &[Br, Zstd, Gzip];

    fn pick(header: &str, available: &[Encoding]) -> Encoding {
        negotiate(Some(header), available)
    }

    #[test]
    fn absent_or_empty_header_is_identity() {
        assert_eq!(negotiate(None, ALL), Identity);
        assert_eq!(pick("", ALL), Identity);
        assert_eq!(pick(" , ,", ALL), Identity);
    }

    #[test]
    fn equal_q_prefers_br_then_zstd_then_gzip() {
        assert_eq!(pick("gzip, deflate, br, zstd", ALL), Br);
        assert_eq!(pick("gzip, zstd", ALL), Zstd);
        assert_eq!(pick("gzip, br", &[Gzip, Zstd]), Gzip);
        assert_eq!(pick("GZIP", ALL), Gzip);
        assert_eq!(pick("x-gzip", ALL), Gzip);
    }

    #[test]
    fn higher_q_wins() {
        assert_eq!(pick("br;q=0.5, gzip;q=0.8", ALL), Gzip);
        assert_eq!(pick("br;q=0.5, gzip", ALL), Gzip);
        assert_eq!(pick("br;Q=1.0, gzip;q=0.999", ALL), Br);
        assert_eq!(pick("br ; q=0.001", &[Br]), Br);
    }

    #[test]
    fn q_zero_excludes() {
        assert_eq!(pick("br;q=0, gzip", ALL), Gzip);
        assert_eq!(pick("gzip;q=0", &[Gzip]), Identity);
        assert_eq!(pick("br;q=0.000, zstd;q=0", ALL), Identity);
        assert_eq!(pick("*;q=0", ALL), Identity);
    }

    #[test]
    fn star_covers_codings_not_named() {
        assert_eq!(pick("*", ALL), Br);
        assert_eq!(pick("*", &[Gzip]), Gzip);
        assert_eq!(pick("br;q=0, *", ALL), Zstd);
        assert_eq!(pick("gzip, *;q=0", ALL), Gzip);
        assert_eq!(pick("*;q=0.5, gzip", ALL), Gzip);
    }

    #[test]
    fn identity_only_when_preferred_or_nothing_else() {
        // Not named: the fallback, below any acceptable coding.
        assert_eq!(pick("gzip;q=0.1", ALL), Gzip);
        // Named with a higher q: it wins.
        assert_eq!(pick("gzip;q=0.5, identity", ALL), Identity);
        assert_eq!(pick("identity;q=0.5, gzip", ALL), Gzip);
        // Excluded, with nothing else: still identity (no 406).
        assert_eq!(pick("identity;q=0", &[]), Identity);
        assert_eq!(pick("identity;q=0, gzip", ALL), Gzip);
        assert_eq!(pick("deflate", ALL), Identity);
        assert_eq!(pick("br", &[]), Identity);
    }

    #[test]
    fn malformed_elements_are_skipped() {
        assert_eq!(pick("br;q=2, gzip", ALL), Gzip);
        assert_eq!(pick("br;q=0.5x, gzip;q=abc", ALL), Identity);
        assert_eq!(pick("br;q=, gzip;q=1.0000", ALL), Identity);
        assert_eq!(pick("br;q=-1", ALL), Identity);
        assert_eq!(pick(";q=1, ;;, gzip;foo", ALL), Gzip);
        assert_eq!(pick("br;q=1.5", ALL), Identity);
    }

    #[test]
    fn qvalues() {
        assert_eq!(parse_q("0"), Some(0));
        assert_eq!(parse_q("0."), Some(0));
        assert_eq!(parse_q("0.25"), Some(250));
        assert_eq!(parse_q("1"), Some(1000));
        assert_eq!(parse_q("1.000"), Some(1000));
        assert_eq!(parse_q("1.001"), None);
        assert_eq!(parse_q("0.1234"), None);
        assert_eq!(parse_q(""), None);
    }
}
