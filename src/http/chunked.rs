//! The chunked transfer coding (RFC 9112 §7.1), both ways: an incremental
//! decoder, and the encoder every chunked response is framed with.
//!
//! The decoder works byte-by-byte on framing and hands out data as ranges
//! of the caller's input, so a body streams through in constant memory.

use crate::http::request::HttpError;
use std::ops::Range;

/// Longest chunk-size line (size + extensions) before 400.
pub const MAX_SIZE_LINE: usize = 4096;
/// Largest trailer section (all field lines + final CRLF) before 431.
pub const MAX_TRAILERS: usize = 8192;
/// 16 hex digits fill a u64; more can only overflow or be padding abuse.
const MAX_HEX_DIGITS: u32 = 16;

/// What [`ChunkedDecoder::step`] found at the front of its input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `input[r]` is body data; consume up to `r.end`.
    Data(Range<usize>),
    /// `n` framing bytes consumed.
    Skip(usize),
    /// Nothing decidable without more bytes; keep `input` and read more.
    NeedMore,
    /// Body (last-chunk, trailers, final CRLF) ended after `n` bytes.
    Done(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DecoderState {
    /// Reading hex digits of chunk-size.
    Size {
        value: u64,
        digits: u32,
    },
    /// Somewhere in the rest of the size line: BWS and extensions.
    Ext {
        value: u64,
        at: Ext,
    },
    /// Saw CR ending the size line.
    SizeLf {
        value: u64,
    },
    Data {
        remaining: u64,
    },
    DataCr,
    DataLf,
    /// At the start of a trailer line (or the final CRLF).
    TrailerStart,
    TrailerLine,
    TrailerLf,
    FinalLf,
    Done,
}

/// Where in `*( BWS ";" BWS name [ BWS "=" BWS value ] )` the size line is
/// (RFC 9112 §7.1.1). Each position allows only what the grammar does, so a
/// line such as `4 5` or `4;` is an error rather than an ignored extension:
/// a lenient reading here is how two parsers come to disagree on a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ext {
    /// Whitespace after the digits: more of it, `;` or CR.
    AfterSize,
    /// After `;`: whitespace, then a name.
    NameStart,
    Name,
    /// Whitespace after a name: `=`, `;` or CR.
    AfterName,
    /// After `=`: whitespace, then a token or a quoted string.
    ValueStart,
    Token,
    Quoted,
    /// After a backslash inside a quoted string.
    QuotedPair,
    /// After a value (or whitespace after it): `;` or CR.
    AfterValue,
}

/// Decodes one chunked body, fed the unconsumed bytes through [`step`](Self::step).
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: DecoderState,
    /// Bytes of the current size line, or of the whole trailer section.
    line_len: usize,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

const fn bad(message: &'static str) -> HttpError {
    HttpError::new(400, message)
}

fn hex_val(b: u8) -> Option<u64> {
    match b {
        b'0'..=b'9' => Some(u64::from(b - b'0')),
        b'a'..=b'f' => Some(u64::from(b - b'a' + 10)),
        b'A'..=b'F' => Some(u64::from(b - b'A' + 10)),
        _ => None,
    }
}

/// Field-line bytes: HTAB, SP, VCHAR, obs-text.
fn is_text(b: u8) -> bool {
    b == b'\t' || b == b' ' || (0x21..=0x7e).contains(&b) || b >= 0x80
}

/// RFC 9110 §5.6.2 tchar.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// BWS: SP or HTAB.
fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

impl ChunkedDecoder {
    /// A decoder at the start of a body.
    pub fn new() -> Self {
        ChunkedDecoder {
            state: DecoderState::Size {
                value: 0,
                digits: 0,
            },
            line_len: 0,
        }
    }

    /// Gives back the last `n` bytes of data a `Step::Data` handed out,
    /// which the caller could not use yet: the next step hands them out
    /// again.
    pub fn unread(&mut self, n: u64) {
        self.state = match self.state {
            DecoderState::DataCr => DecoderState::Data { remaining: n },
            DecoderState::Data { remaining } => DecoderState::Data {
                remaining: remaining + n,
            },
            other => other,
        };
    }

    /// True once the terminating CRLF has been seen.
    pub fn is_done(&self) -> bool {
        self.state == DecoderState::Done
    }

    /// Look at `input` (bytes not yet consumed). `Data(r)`: `input[r]` is body
    /// data and the caller consumes up to `r.end`; `Skip(n)`: `n` framing bytes
    /// consumed; `NeedMore`: nothing can be decided without more bytes;
    /// `Done(n)`: body ended after `n` bytes.
    pub fn step(&mut self, input: &[u8]) -> Result<Step, HttpError> {
        let mut pos = 0;
        loop {
            match self.state {
                DecoderState::Done => return Ok(Step::Done(pos)),
                DecoderState::Data { remaining } => {
                    if pos == input.len() {
                        break;
                    }
                    let avail = (input.len() - pos) as u64;
                    // take <= avail, which is a usize, so the cast back is lossless.
                    let take = remaining.min(avail) as usize;
                    let left = remaining - take as u64;
                    self.state = if left == 0 {
                        DecoderState::DataCr
                    } else {
                        DecoderState::Data { remaining: left }
                    };
                    return Ok(Step::Data(pos..pos + take));
                }
                _ => {}
            }
            let Some(&b) = input.get(pos) else { break };
            pos += 1;
            self.framing_byte(b)?;
        }
        Ok(if pos == 0 {
            Step::NeedMore
        } else {
            Step::Skip(pos)
        })
    }

    fn framing_byte(&mut self, b: u8) -> Result<(), HttpError> {
        match self.state {
            DecoderState::Size { .. } | DecoderState::Ext { .. } | DecoderState::SizeLf { .. } => {
                self.line_len += 1;
                if self.line_len > MAX_SIZE_LINE {
                    return Err(bad("chunk size line too long"));
                }
            }
            DecoderState::TrailerStart
            | DecoderState::TrailerLine
            | DecoderState::TrailerLf
            | DecoderState::FinalLf => {
                self.line_len += 1;
                if self.line_len > MAX_TRAILERS {
                    return Err(HttpError::new(431, "chunked trailers too large"));
                }
            }
            _ => {}
        }
        self.state = match self.state {
            DecoderState::Size { value, digits } => match hex_val(b) {
                Some(d) => {
                    if digits >= MAX_HEX_DIGITS {
                        return Err(bad("chunk size too large"));
                    }
                    DecoderState::Size {
                        value: (value << 4) | d,
                        digits: digits + 1,
                    }
                }
                None if digits == 0 => return Err(bad("missing chunk size")),
                None => size_line(value, Ext::AfterSize, b)?,
            },
            DecoderState::Ext { value, at } => size_line(value, at, b)?,
            DecoderState::SizeLf { value } => {
                if b != b'\n' {
                    return Err(bad("chunk size line not ended by CRLF"));
                }
                self.line_len = 0;
                if value == 0 {
                    DecoderState::TrailerStart
                } else {
                    DecoderState::Data { remaining: value }
                }
            }
            DecoderState::DataCr if b == b'\r' => DecoderState::DataLf,
            DecoderState::DataLf if b == b'\n' => DecoderState::Size {
                value: 0,
                digits: 0,
            },
            DecoderState::DataCr | DecoderState::DataLf => {
                return Err(bad("chunk data not followed by CRLF"))
            }
            DecoderState::TrailerStart => match b {
                b'\r' => DecoderState::FinalLf,
                // A leading SP/HTAB would be obs-fold; ':' alone means an empty name.
                b' ' | b'\t' | b':' => return Err(bad("malformed trailer")),
                _ if is_text(b) => DecoderState::TrailerLine,
                _ => return Err(bad("malformed trailer")),
            },
            DecoderState::TrailerLine => match b {
                b'\r' => DecoderState::TrailerLf,
                _ if is_text(b) => DecoderState::TrailerLine,
                _ => return Err(bad("malformed trailer")),
            },
            DecoderState::TrailerLf if b == b'\n' => DecoderState::TrailerStart,
            DecoderState::FinalLf if b == b'\n' => DecoderState::Done,
            DecoderState::TrailerLf | DecoderState::FinalLf => {
                return Err(bad("trailer not ended by CRLF"))
            }
            // Handled in step(); no framing bytes are read in these states.
            DecoderState::Data { .. } | DecoderState::Done => self.state,
        };
        Ok(())
    }
}

/// The next state for byte `b` of a size line after its digits (`at` is
/// where the line was; `Ext::AfterSize` also stands for "just after the
/// digits", where the same bytes are allowed). Extensions are checked, then
/// ignored.
fn size_line(value: u64, at: Ext, b: u8) -> Result<DecoderState, HttpError> {
    let next = match (at, b) {
        (Ext::Quoted, b'"') => Ext::AfterValue,
        (Ext::Quoted, b'\\') => Ext::QuotedPair,
        // qdtext: HTAB, SP, VCHAR except '"' and '\\', obs-text.
        (Ext::Quoted, _) if is_text(b) => Ext::Quoted,
        (Ext::Quoted, _) => return Err(bad("invalid quoted string in chunk extension")),
        (Ext::QuotedPair, _) if is_text(b) => Ext::Quoted,
        (Ext::QuotedPair, _) => return Err(bad("invalid quoted string in chunk extension")),
        // CR ends the line wherever a name or value may end.
        (Ext::AfterSize | Ext::Name | Ext::AfterName | Ext::Token | Ext::AfterValue, b'\r') => {
            return Ok(DecoderState::SizeLf { value })
        }
        (Ext::AfterSize | Ext::Name | Ext::AfterName | Ext::Token | Ext::AfterValue, b';') => {
            Ext::NameStart
        }
        (Ext::Name | Ext::AfterName, b'=') => Ext::ValueStart,
        (Ext::Name, _) if is_tchar(b) => Ext::Name,
        (Ext::Token, _) if is_tchar(b) => Ext::Token,
        (Ext::NameStart, _) if is_tchar(b) => Ext::Name,
        (Ext::ValueStart, b'"') => Ext::Quoted,
        (Ext::ValueStart, _) if is_tchar(b) => Ext::Token,
        // Whitespace may follow the digits, a name or a value, and lead a
        // name or a value; in each case the position stays the same kind.
        (
            Ext::AfterSize | Ext::NameStart | Ext::AfterName | Ext::ValueStart | Ext::AfterValue,
            _,
        ) if is_ws(b) => at,
        (Ext::Name, _) if is_ws(b) => Ext::AfterName,
        (Ext::Token, _) if is_ws(b) => Ext::AfterValue,
        (Ext::AfterSize, _) => return Err(bad("invalid chunk size")),
        _ => return Err(bad("invalid chunk extension")),
    };
    Ok(DecoderState::Ext { value, at: next })
}

/// The field a chunked response's head carries.
pub const CHUNKED_FIELD: (&str, &str) = ("Transfer-Encoding", "chunked");

/// The chunk that ends a body, without trailers: size 0, then the empty
/// line that ends the (empty) trailer section.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// What follows a chunk's data.
pub const CHUNK_DATA_END: &[u8] = b"\r\n";

/// The size line of a chunk (its length in hex, then CRLF), on the stack:
/// for a writer that sends the data from where it lies, without copying
/// it next to its framing. Never for a length of 0: a chunk of size 0 is
/// the last chunk, which ends the body.
#[derive(Debug, Clone, Copy)]
pub struct ChunkSize {
    /// Up to 16 hex digits and CRLF, right-aligned.
    bytes: [u8; 18],
    start: u8,
}

impl ChunkSize {
    /// The size line for `len` bytes of data; None for 0.
    pub fn new(len: usize) -> Option<ChunkSize> {
        if len == 0 {
            return None;
        }
        let mut bytes = [0u8; 18];
        bytes[16..].copy_from_slice(b"\r\n");
        let mut start = 16;
        let mut n = len as u64;
        while n > 0 {
            start -= 1;
            bytes[start] = b"0123456789abcdef"[(n & 0xf) as usize];
            n >>= 4;
        }
        Some(ChunkSize {
            bytes,
            start: start as u8,
        })
    }

    /// "1a\r\n": the line that goes before the data.
    pub fn line(&self) -> &[u8] {
        &self.bytes[usize::from(self.start)..]
    }

    /// Framing bytes of the whole chunk: this line and the CRLF after the data.
    pub fn framing_len(&self) -> usize {
        self.line().len() + CHUNK_DATA_END.len()
    }
}

/// Appends `data` as one chunk. Empty data appends nothing: as a chunk,
/// it would end the body.
pub fn push_chunk(out: &mut Vec<u8>, data: &[u8]) {
    let Some(size) = ChunkSize::new(data.len()) else {
        return;
    };
    out.extend_from_slice(size.line());
    out.extend_from_slice(data);
    out.extend_from_slice(CHUNK_DATA_END);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Play the caller: feed `parts` one by one, keeping unconsumed bytes.
    /// Returns (body, bytes consumed in total) or the error.
    fn decode_parts(parts: &[&[u8]]) -> Result<(Vec<u8>, usize), HttpError> {
        let mut dec = ChunkedDecoder::new();
        let mut pending: Vec<u8> = Vec::new();
        let mut body = Vec::new();
        let mut consumed = 0;
        for part in parts {
            pending.extend_from_slice(part);
            loop {
                match dec.step(&pending)? {
                    Step::Data(r) => {
                        body.extend_from_slice(&pending[r.clone()]);
                        pending.drain(..r.end);
                        consumed += r.end;
                    }
                    Step::Skip(n) => {
                        assert!(n > 0);
                        pending.drain(..n);
                        consumed += n;
                    }
                    Step::NeedMore => break,
                    Step::Done(n) => return Ok((body, consumed + n)),
                }
            }
        }
        Err(HttpError::new(0, "incomplete"))
    }

    fn decode(input: &[u8]) -> Result<(Vec<u8>, usize), HttpError> {
        decode_parts(&[input])
    }

    fn err(input: &[u8]) -> u16 {
        match decode(input) {
            Err(e) => e.status,
            Ok(v) => panic!("expected error, got {v:?}"),
        }
    }

    const SAMPLE: &[u8] =
        b"4;a=b\r\nWiki\r\n5 ; x=\"y z\"\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-T: 1\r\n\r\nNEXT";

    #[test]
    fn whole_input() {
        let (body, n) = decode(SAMPLE).expect("decodes");
        assert_eq!(body, b"Wikipedia in\r\n\r\nchunks.");
        assert_eq!(&SAMPLE[n..], b"NEXT");
    }

    #[test]
    fn split_at_every_position() {
        for i in 0..=SAMPLE.len() {
            let (a, b) = SAMPLE.split_at(i);
            let (body, n) = decode_parts(&[a, b]).expect("decodes");
            assert_eq!(body, b"Wikipedia in\r\n\r\nchunks.", "split {i}");
            assert_eq!(n, SAMPLE.len() - 4, "split {i}");
        }
    }

    #[test]
    fn byte_at_a_time() {
        let parts: Vec<&[u8]> = SAMPLE.chunks(1).collect();
        let (body, _) = decode_parts(&parts).expect("decodes");
        assert_eq!(body, b"Wikipedia in\r\n\r\nchunks.");
    }

    #[test]
    fn step_results() {
        let mut dec = ChunkedDecoder::new();
        assert_eq!(dec.step(b""), Ok(Step::NeedMore));
        assert_eq!(dec.step(b"3\r\nab"), Ok(Step::Data(3..5)));
        assert_eq!(dec.step(b"c\r\n0\r\n\r\n"), Ok(Step::Data(0..1)));
        assert_eq!(dec.step(b"\r\n0\r\n\r\n"), Ok(Step::Done(7)));
        assert!(dec.is_done());
        assert_eq!(dec.step(b"more"), Ok(Step::Done(0)));
        let mut dec = ChunkedDecoder::new();
        assert_eq!(dec.step(b"1"), Ok(Step::Skip(1)));
        assert_eq!(dec.step(b""), Ok(Step::NeedMore));
    }

    #[test]
    fn empty_body_and_uppercase_hex() {
        assert_eq!(decode(b"0\r\n\r\n").expect("ok"), (vec![], 5));
        let (body, _) = decode(b"A\r\n0123456789\r\n0\r\n\r\n").expect("ok");
        assert_eq!(body, b"0123456789");
        let (body, _) = decode(b"0000000000000001\r\nx\r\n0\r\n\r\n").expect("ok");
        assert_eq!(body, b"x");
    }

    #[test]
    fn trailers() {
        let (body, n) = decode(b"1\r\nx\r\n0\r\nA: 1\r\nB: two words\r\n\r\n").expect("ok");
        assert_eq!(body, b"x");
        assert_eq!(n, 31);
        assert_eq!(err(b"0\r\n folded\r\n\r\n"), 400);
        assert_eq!(err(b"0\r\nA: 1\n\r\n"), 400);
        assert_eq!(err(b"0\r\nA: \x01\r\n\r\n"), 400);
        assert_eq!(err(b"0\r\n\rX"), 400);
        let mut big = b"0\r\n".to_vec();
        for _ in 0..1000 {
            big.extend_from_slice(b"X-Trailer: 123456\r\n");
        }
        big.extend_from_slice(b"\r\n");
        assert_eq!(err(&big), 431);
    }

    #[test]
    fn bad_sizes() {
        assert_eq!(err(b"\r\n"), 400);
        assert_eq!(err(b"g\r\n"), 400);
        assert_eq!(err(b"-1\r\n"), 400);
        assert_eq!(err(b";ext\r\n"), 400);
        assert_eq!(err(b"1x\r\n"), 400);
        assert_eq!(err(b"10000000000000000\r\n"), 400);
        assert_eq!(err(b"FFFFFFFFFFFFFFFFF\r\n"), 400);
        assert_eq!(err(b"1\nx\r\n"), 400);
        assert_eq!(err(b"1\r\rx"), 400);
        assert_eq!(err(b"1;a\x01\r\n"), 400);
        // Largest size is accepted as framing (data follows).
        let mut dec = ChunkedDecoder::new();
        assert_eq!(dec.step(b"FFFFFFFFFFFFFFFF\r\nab"), Ok(Step::Data(18..20)));
    }

    /// `line` as the size line of a one-byte chunk: Ok(()) if the body
    /// decodes, else the error status.
    fn size_line_result(line: &[u8]) -> Result<(), u16> {
        let mut input = line.to_vec();
        input.extend_from_slice(b"\r\nx\r\n0\r\n\r\n");
        match decode(&input) {
            Ok((body, n)) if body == b"x" && n == input.len() => Ok(()),
            Ok(other) => panic!("{line:?} decoded as {other:?}"),
            Err(e) => Err(e.status),
        }
    }

    #[test]
    fn chunk_extensions_that_follow_the_grammar_are_accepted() {
        for line in [
            &b"1"[..],
            b"1 ",
            b"1\t \t",
            b"1;a",
            b"1;a=b",
            b"1;a=b;c",
            b"1;a;b;c=d",
            b"1 ;a",
            b"1\t;\ta",
            b"1 ; a = b ; c",
            b"1;a =b",
            b"1;a= b",
            b"1;a=b ",
            b"1;a ",
            b"1;name=\"quoted value\"",
            b"1;a=\"\"",
            b"1;a=\"with ; and = inside\";b",
            b"1;a=\"esc \\\" quote \\\\ slash\"",
            b"1;a=\"x\" ;b=\"y\"",
            b"1;a=\"obs \xe9\"",
            b"1;!#$%&'*+-.^_`|~09AZaz=!#$%&'*+-.^_`|~",
        ] {
            assert_eq!(
                size_line_result(line),
                Ok(()),
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn lenient_size_lines_are_400() {
        for line in [
            // Something other than an extension after whitespace.
            &b"4 5"[..],
            b"1 5",
            b"1\tzz",
            b"1 a",
            // Extensions without a name or with an empty value.
            b"1;",
            b"1; ",
            b"1;;a",
            b"1;a;",
            b"1;=b",
            b"1;a=",
            b"1;a= ",
            b"1;a=;b",
            // Names and values must be tokens or quoted strings.
            b"1;a b",
            b"1;a=b c",
            b"1;a=b=c",
            b"1;a==b",
            b"1;a/b",
            b"1;a=b/c",
            b"1;a@",
            b"1;\"a\"",
            b"1;a=\"x\"y",
            b"1;a=\"x\" y",
            b"1;a=\"unterminated",
            b"1;a=\"bad \x01 byte\"",
            b"1;a=\"bad pair \\\x01\"",
            b"1;a\x01",
            b"1;\xe9",
            // Bare CR or LF inside the line.
            b"1;a\rb",
            b"1;a\nb",
            b"1 \n",
        ] {
            assert_eq!(
                size_line_result(line),
                Err(400),
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn size_line_forms_decode_the_same_split_anywhere() {
        let input = b"3 ; a = \"q;\\\"\" ; b\r\nabc\r\n0\r\n\r\n";
        for i in 0..=input.len() {
            let (a, b) = input.split_at(i);
            assert_eq!(decode_parts(&[a, b]).expect("ok").0, b"abc", "split {i}");
        }
        let bad = b"3 4\r\nabc\r\n0\r\n\r\n";
        for i in 0..=bad.len() {
            let (a, b) = bad.split_at(i);
            assert_eq!(decode_parts(&[a, b]).map_err(|e| e.status), Err(400));
        }
    }

    #[test]
    fn missing_crlf_after_data() {
        assert_eq!(err(b"1\r\nxy\r\n0\r\n\r\n"), 400);
        assert_eq!(err(b"1\r\nx\n0\r\n\r\n"), 400);
    }

    #[test]
    fn bare_lf_is_never_a_line_end() {
        // Every CRLF of a good body, one at a time, turned into a bare LF.
        let good = b"3;a=b\r\nabc\r\n0\r\nT: 1\r\n\r\n";
        assert!(decode(good).is_ok());
        for (i, _) in good.windows(2).enumerate().filter(|(_, w)| w == b"\r\n") {
            let mut bad = good.to_vec();
            bad.remove(i);
            assert_eq!(err(&bad), 400, "CR at {i} removed");
        }
    }

    #[test]
    fn size_line_cap() {
        let mut line = b"1;".to_vec();
        line.extend(std::iter::repeat_n(b'a', MAX_SIZE_LINE));
        assert_eq!(err(&line), 400);
        let mut ok_line = b"1;".to_vec();
        ok_line.extend(std::iter::repeat_n(b'a', MAX_SIZE_LINE - 4));
        // Whitespace counts too: it cannot stretch a line past the cap.
        let mut spaced = b"1".to_vec();
        spaced.extend(std::iter::repeat_n(b' ', MAX_SIZE_LINE));
        assert_eq!(err(&spaced), 400);
        let mut quoted = b"1;a=\"".to_vec();
        quoted.extend(std::iter::repeat_n(b'q', MAX_SIZE_LINE));
        assert_eq!(err(&quoted), 400);
        ok_line.extend_from_slice(b"\r\nx\r\n0\r\n\r\n");
        assert_eq!(decode(&ok_line).expect("ok").0, b"x");
    }

    #[test]
    fn chunk_sizes_are_lower_case_hex() {
        for (len, line) in [
            (1, "1\r\n"),
            (10, "a\r\n"),
            (15, "f\r\n"),
            (16, "10\r\n"),
            (255, "ff\r\n"),
            (32 * 1024, "8000\r\n"),
            (0x1234_abcd, "1234abcd\r\n"),
        ] {
            let size = ChunkSize::new(len).expect("non-zero");
            assert_eq!(size.line(), line.as_bytes(), "{len}");
            assert_eq!(size.framing_len(), line.len() + 2);
        }
        let max = ChunkSize::new(usize::MAX).expect("non-zero");
        assert_eq!(max.line(), b"ffffffffffffffff\r\n");
    }

    #[test]
    fn empty_data_is_never_a_chunk() {
        assert!(ChunkSize::new(0).is_none());
        let mut out = b"head".to_vec();
        push_chunk(&mut out, b"");
        assert_eq!(out, b"head");
    }

    #[test]
    fn encoded_bodies_decode_to_what_went_in() {
        let mut out = Vec::new();
        push_chunk(&mut out, b"hello");
        push_chunk(&mut out, b"");
        push_chunk(&mut out, &[b'x'; 300]);
        out.extend_from_slice(LAST_CHUNK);
        assert!(out.starts_with(b"5\r\nhello\r\n12c\r\nxxx"));
        assert!(out.ends_with(b"xxx\r\n0\r\n\r\n"));
        let (body, used) = decode(&out).expect("valid");
        assert_eq!(used, out.len());
        assert_eq!(&body[..5], b"hello");
        assert_eq!(body.len(), 305);
        // The last chunk alone is an empty body.
        assert_eq!(decode(LAST_CHUNK).expect("valid"), (Vec::new(), 5));
    }
}
