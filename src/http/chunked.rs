//! Incremental chunked transfer-coding decoder (RFC 9112 §7.1).
//!
//! Works byte-by-byte on framing and hands out data as ranges of the
//! caller's input, so a body streams through in constant memory.

use crate::http::request::HttpError;
use std::ops::Range;

/// Longest chunk-size line (size + extensions) before 400.
pub const MAX_SIZE_LINE: usize = 4096;
/// Largest trailer section (all field lines + final CRLF) before 431.
pub const MAX_TRAILERS: usize = 8192;
/// 16 hex digits fill a u64; more can only overflow or be padding abuse.
const MAX_HEX_DIGITS: u32 = 16;

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
enum State {
    /// Reading hex digits of chunk-size.
    Size {
        value: u64,
        digits: u32,
    },
    /// After the size: BWS, `;ext`, until CR.
    Ext {
        value: u64,
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

#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
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

/// Field-line / extension bytes: HTAB, SP, VCHAR, obs-text.
fn is_text(b: u8) -> bool {
    b == b'\t' || b == b' ' || (0x21..=0x7e).contains(&b) || b >= 0x80
}

impl ChunkedDecoder {
    pub fn new() -> Self {
        ChunkedDecoder {
            state: State::Size {
                value: 0,
                digits: 0,
            },
            line_len: 0,
        }
    }

    /// True once the terminating CRLF has been seen.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Look at `input` (bytes not yet consumed). Data(r): input[r] is body data and
    /// the caller consumes up to r.end; Skip(n): n framing bytes consumed; NeedMore:
    /// nothing can be decided without more bytes; Done(n): body ended after n bytes.
    pub fn step(&mut self, input: &[u8]) -> Result<Step, HttpError> {
        let mut pos = 0;
        loop {
            match self.state {
                State::Done => return Ok(Step::Done(pos)),
                State::Data { remaining } => {
                    if pos == input.len() {
                        break;
                    }
                    let avail = (input.len() - pos) as u64;
                    // take <= avail, which is a usize, so the cast back is lossless.
                    let take = remaining.min(avail) as usize;
                    let left = remaining - take as u64;
                    self.state = if left == 0 {
                        State::DataCr
                    } else {
                        State::Data { remaining: left }
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
            State::Size { .. } | State::Ext { .. } | State::SizeLf { .. } => {
                self.line_len += 1;
                if self.line_len > MAX_SIZE_LINE {
                    return Err(bad("chunk size line too long"));
                }
            }
            State::TrailerStart | State::TrailerLine | State::TrailerLf | State::FinalLf => {
                self.line_len += 1;
                if self.line_len > MAX_TRAILERS {
                    return Err(HttpError::new(431, "chunked trailers too large"));
                }
            }
            _ => {}
        }
        self.state = match self.state {
            State::Size { value, digits } => match hex_val(b) {
                Some(d) => {
                    if digits >= MAX_HEX_DIGITS {
                        return Err(bad("chunk size too large"));
                    }
                    State::Size {
                        value: (value << 4) | d,
                        digits: digits + 1,
                    }
                }
                None if digits == 0 => return Err(bad("missing chunk size")),
                None => self.after_size(value, b)?,
            },
            State::Ext { value } => self.after_size(value, b)?,
            State::SizeLf { value } => {
                if b != b'\n' {
                    return Err(bad("chunk size line not ended by CRLF"));
                }
                self.line_len = 0;
                if value == 0 {
                    State::TrailerStart
                } else {
                    State::Data { remaining: value }
                }
            }
            State::DataCr if b == b'\r' => State::DataLf,
            State::DataLf if b == b'\n' => State::Size {
                value: 0,
                digits: 0,
            },
            State::DataCr | State::DataLf => return Err(bad("chunk data not followed by CRLF")),
            State::TrailerStart => match b {
                b'\r' => State::FinalLf,
                // A leading SP/HTAB would be obs-fold; ':' alone means an empty name.
                b' ' | b'\t' | b':' => return Err(bad("malformed trailer")),
                _ if is_text(b) => State::TrailerLine,
                _ => return Err(bad("malformed trailer")),
            },
            State::TrailerLine => match b {
                b'\r' => State::TrailerLf,
                _ if is_text(b) => State::TrailerLine,
                _ => return Err(bad("malformed trailer")),
            },
            State::TrailerLf if b == b'\n' => State::TrailerStart,
            State::FinalLf if b == b'\n' => State::Done,
            State::TrailerLf | State::FinalLf => return Err(bad("trailer not ended by CRLF")),
            // Handled in step(); no framing bytes are read in these states.
            State::Data { .. } | State::Done => self.state,
        };
        Ok(())
    }

    /// Byte after the size digits: BWS, an extension, or CR.
    fn after_size(&self, value: u64, b: u8) -> Result<State, HttpError> {
        let in_ext = matches!(self.state, State::Ext { .. });
        match b {
            b'\r' => Ok(State::SizeLf { value }),
            b';' | b' ' | b'\t' => Ok(State::Ext { value }),
            // Extensions are ignored, but must be text; outside one only BWS/';' may follow.
            _ if in_ext && is_text(b) => Ok(State::Ext { value }),
            _ => Err(bad("invalid chunk size")),
        }
    }
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

    #[test]
    fn missing_crlf_after_data() {
        assert_eq!(err(b"1\r\nxy\r\n0\r\n\r\n"), 400);
        assert_eq!(err(b"1\r\nx\n0\r\n\r\n"), 400);
    }

    #[test]
    fn size_line_cap() {
        let mut line = b"1;".to_vec();
        line.extend(std::iter::repeat_n(b'a', MAX_SIZE_LINE));
        assert_eq!(err(&line), 400);
        let mut ok_line = b"1;".to_vec();
        ok_line.extend(std::iter::repeat_n(b'a', MAX_SIZE_LINE - 4));
        ok_line.extend_from_slice(b"\r\nx\r\n0\r\n\r\n");
        assert_eq!(decode(&ok_line).expect("ok").0, b"x");
    }
}
