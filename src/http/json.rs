//! JSON string literals for response bodies (`/status`, listings) and the
//! load generator's report: one escaping rule for every JSON we write.

use std::io::Write;

/// Appends `s` to `out` as a JSON string literal. Besides `"`, `\` and
/// control characters, `<`, U+2028 and U+2029 are escaped too, so the JSON
/// stays inert if pasted into a page or a script.
pub fn push_json_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            c if (c as u32) < 0x20 || c == '<' || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let mut buf = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

/// `s` as a JSON string literal.
pub fn json_string(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len() + 2);
    push_json_string(&mut out, s);
    // Only ASCII escapes and whole characters of `s` were written.
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_quotes_backslashes_controls_and_markup() {
        assert_eq!(
            json_string("a\"b\\c\nd<e\u{2028}é"),
            "\"a\\\"b\\\\c\\u000ad\\u003ce\\u2028é\""
        );
    }
}
