//! Bytes as text without a second look. Not the runtime's own business,
//! but `unsafe` lives here and at the syscall edge only, and the request
//! path converts a few short values per request.

/// `bytes` as a `str` when every byte is ASCII: checked a word at a time,
/// where `str::from_utf8` walks a short value byte by byte (callgrind:
/// about 115 instructions for a 15-byte Host, and `is_ascii`, not inlined,
/// 42).
#[inline(always)]
pub fn ascii_str(bytes: &[u8]) -> Option<&str> {
    let words = bytes.chunks_exact(8);
    let tail = words.remainder().iter().fold(0, |high, &b| high | b);
    let word = |w: &[u8]| w.first_chunk::<8>().map_or(0, |w| u64::from_le_bytes(*w));
    let high = words.fold(0, |high, w| high | word(w));
    if (high | u64::from(tail)) & 0x8080_8080_8080_8080 != 0 {
        return None;
    }
    // SAFETY: ASCII bytes are valid UTF-8.
    Some(unsafe { std::str::from_utf8_unchecked(bytes) })
}

#[cfg(test)]
mod tests {
    use super::ascii_str;

    #[test]
    fn ascii_only() {
        assert_eq!(ascii_str(b"127.0.0.1:8080"), Some("127.0.0.1:8080"));
        assert_eq!(ascii_str(b""), Some(""));
        assert_eq!(ascii_str("h\u{e9}".as_bytes()), None);
        assert_eq!(ascii_str(&[b'a', 0xff]), None);
    }
}
