//! HTTP/2 frames (RFC 9113 §4, §6): their kinds, flags, error codes, and
//! writing them into a connection's output.

pub(super) const DATA: u8 = 0x0;
pub(super) const HEADERS: u8 = 0x1;
pub(super) const PRIORITY: u8 = 0x2;
pub(super) const RST_STREAM: u8 = 0x3;
pub(super) const SETTINGS: u8 = 0x4;
pub(super) const PUSH_PROMISE: u8 = 0x5;
pub(super) const PING: u8 = 0x6;
pub(super) const GOAWAY: u8 = 0x7;
pub(super) const WINDOW_UPDATE: u8 = 0x8;
pub(super) const CONTINUATION: u8 = 0x9;

pub(super) const END_STREAM: u8 = 0x1;
pub(super) const ACK: u8 = 0x1;
pub(super) const END_HEADERS: u8 = 0x4;
pub(super) const PADDED: u8 = 0x8;
pub(super) const PRIORITY_FLAG: u8 = 0x20;

/// Error codes (RFC 9113 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Code {
    NoError = 0x0,
    Protocol = 0x1,
    Internal = 0x2,
    FlowControl = 0x3,
    StreamClosed = 0x5,
    FrameSize = 0x6,
    RefusedStream = 0x7,
    Cancel = 0x8,
    Compression = 0x9,
    EnhanceYourCalm = 0xb,
}

/// The largest frame payload either side sends or takes before a
/// SETTINGS_MAX_FRAME_SIZE says otherwise; the server never raises it.
pub(super) const MAX_FRAME: usize = 16_384;
/// The largest window RFC 9113 §6.9.1 allows.
pub(super) const MAX_WINDOW: i64 = (1 << 31) - 1;

/// A frame's 9-byte header.
#[derive(Debug, Clone, Copy)]
pub(super) struct Header {
    pub(super) len: usize,
    pub(super) kind: u8,
    pub(super) flags: u8,
    pub(super) stream: u32,
}

impl Header {
    pub(super) fn parse(b: &[u8]) -> Option<Header> {
        let b: &[u8; 9] = b.get(..9)?.try_into().ok()?;
        Some(Header {
            len: usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]),
            kind: b[3],
            flags: b[4],
            stream: u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & 0x7fff_ffff,
        })
    }
}

/// Appends a frame header.
pub(super) fn head(out: &mut Vec<u8>, len: usize, kind: u8, flags: u8, stream: u32) {
    out.extend_from_slice(&head_bytes(len, kind, flags, stream));
}

/// A frame's 9-byte header.
fn head_bytes(len: usize, kind: u8, flags: u8, stream: u32) -> [u8; 9] {
    // A frame's length is at most 2^24-1 (MAX_FRAME or a head's piece).
    let [_, a, b, c] = u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes();
    let [d, e, f, g] = stream.to_be_bytes();
    [a, b, c, kind, flags, d, e, f, g]
}

pub(super) fn rst_stream(out: &mut Vec<u8>, stream: u32, code: Code) {
    head(out, 4, RST_STREAM, 0, stream);
    out.extend_from_slice(&(code as u32).to_be_bytes());
}

pub(super) fn goaway(out: &mut Vec<u8>, last: u32, code: Code) {
    head(out, 8, GOAWAY, 0, 0);
    out.extend_from_slice(&last.to_be_bytes());
    out.extend_from_slice(&(code as u32).to_be_bytes());
}

pub(super) fn window_update(out: &mut Vec<u8>, stream: u32, increment: u32) {
    head(out, 4, WINDOW_UPDATE, 0, stream);
    out.extend_from_slice(&increment.to_be_bytes());
}

/// The server's SETTINGS: the stream limit and the header list size.
pub(super) fn settings(out: &mut Vec<u8>, max_streams: u32, header_list: u32) {
    head(out, 12, SETTINGS, 0, 0);
    out.extend_from_slice(&3u16.to_be_bytes());
    out.extend_from_slice(&max_streams.to_be_bytes());
    out.extend_from_slice(&6u16.to_be_bytes());
    out.extend_from_slice(&header_list.to_be_bytes());
}

/// Appends a header block as HEADERS (and CONTINUATION frames if it is
/// larger than `max_frame`), the block being what `out` holds past
/// `start + 9`, where room for the HEADERS frame's header was left.
/// Inline: once per response, and the common case is a few stores.
#[inline]
pub(super) fn finish_headers(out: &mut Vec<u8>, start: usize, stream: u32, end: bool, max: usize) {
    let block_len = out.len() - start - 9;
    let flags = if end { END_STREAM } else { 0 };
    match out.get_mut(start..start + 9) {
        Some(place) if block_len <= max => {
            place.copy_from_slice(&head_bytes(block_len, HEADERS, flags | END_HEADERS, stream));
        }
        _ => split_headers(out, start, stream, flags, max),
    }
}

/// Rare: a head over `max` (16 KiB), cut into frames.
#[cold]
fn split_headers(out: &mut Vec<u8>, start: usize, stream: u32, flags: u8, max: usize) {
    let block = out.split_off(start + 9);
    out.truncate(start);
    let mut pieces = block.chunks(max).peekable();
    let mut kind = HEADERS;
    let mut flags = flags;
    while let Some(piece) = pieces.next() {
        let last = pieces.peek().is_none();
        head(
            out,
            piece.len(),
            kind,
            flags | if last { END_HEADERS } else { 0 },
            stream,
        );
        out.extend_from_slice(piece);
        (kind, flags) = (CONTINUATION, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The frames in `out`: (kind, flags, payload length).
    fn frames(mut out: &[u8]) -> Vec<(u8, u8, usize)> {
        let mut got = Vec::new();
        while let Some(h) = Header::parse(out) {
            got.push((h.kind, h.flags, h.len));
            out = &out[9 + h.len..];
        }
        got
    }

    #[test]
    fn a_block_past_the_frame_size_goes_on_in_continuation_frames() {
        for (len, end, expected) in [
            (10, true, vec![(HEADERS, END_STREAM | END_HEADERS, 10)]),
            (16, false, vec![(HEADERS, END_HEADERS, 16)]),
            (
                40,
                true,
                vec![
                    (HEADERS, END_STREAM, 16),
                    (CONTINUATION, 0, 16),
                    (CONTINUATION, END_HEADERS, 8),
                ],
            ),
        ] {
            let mut out = vec![7; 5];
            out.extend_from_slice(&[0; 9]);
            out.extend((0..len).map(|i| i as u8));
            finish_headers(&mut out, 5, 3, end, 16);
            assert_eq!(&out[..5], &[7; 5], "what came before is kept");
            assert_eq!(frames(&out[5..]), expected, "{len} bytes");
            let block: Vec<u8> = out[5..]
                .chunks(9 + 16)
                .flat_map(|f| f[9..].to_vec())
                .collect();
            assert_eq!(block, (0..len).map(|i| i as u8).collect::<Vec<_>>());
        }
    }
}
