//! Byte tests eight bytes at a time, for the short values of request
//! fields: a test per word rather than a branch per byte.

/// The lowest bit of each byte of a word.
pub(crate) const LOW: u64 = 0x0101_0101_0101_0101;

/// Nonzero if a byte of `word` is below `n` (at most 128): a borrow
/// reaches the top bit of the first such byte, and of no byte before it.
pub(crate) fn below(word: u64, n: u64) -> u64 {
    word.wrapping_sub(n * LOW) & !word & (0x80 * LOW)
}

/// Whether `test` finds something in some word of `value`: eight bytes at
/// a time, the last word overlapping the one before it; a short value is
/// read as one word, its bytes repeated or padded with `a`s (which no
/// test finds).
pub(crate) fn any_word(value: &[u8], test: impl Fn(u64) -> u64) -> bool {
    const PAD: u64 = u64::from_le_bytes([b'a'; 8]);
    let word = |b: &[u8]| b.first_chunk::<8>().map_or(PAD, |w| u64::from_le_bytes(*w));
    let n = value.len();
    if n < 8 {
        let half = |b: &[u8]| b.first_chunk::<4>().map_or(0, |w| u32::from_le_bytes(*w));
        let short = match n {
            4.. => u64::from(half(value)) | u64::from(half(&value[n - 4..])) << 32,
            1.. => {
                let (a, b, c) = (value[0], value[n / 2], value[n - 1]);
                u64::from_le_bytes([a, b, c, b'a', b'a', b'a', b'a', b'a'])
            }
            0 => return false,
        };
        return test(short) != 0;
    }
    let mut found = test(word(&value[n - 8..]));
    if n <= 16 {
        // Most paths and authorities: two words, overlapping.
        return (found | test(word(value))) != 0;
    }
    for chunk in value.chunks_exact(8) {
        found |= test(word(chunk));
    }
    found != 0
}

/// A target's or an authority's bytes as both RFC 9113 and httparse take
/// them: no control byte, space or DEL (which also rules out NUL, CR, LF
/// and whitespace at the ends).
pub(crate) fn is_target(value: &[u8]) -> bool {
    !any_word(value, |w| below(w, 0x21) | below(w ^ (0x7f * LOW), 1))
}

/// A byte an HTTP/2 field value may hold but an HTTP/1.1 field line may
/// not (httparse's): a control byte other than tab, or DEL.
pub(crate) fn refused_in_http1(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}
