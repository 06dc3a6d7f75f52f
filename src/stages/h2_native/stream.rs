//! One stream of a native HTTP/2 connection: its request body on its way
//! into the handler's pipe, and the handler's HTTP/1.1 response on its way
//! out as HEADERS and DATA frames, under the client's flow control.

use std::task::{Context, Poll};
use std::time::Instant;

use crate::http::h2_mapping::RequestBody;
use crate::http::hpack;
use crate::http::response::{self, HeadSink};
use crate::http::{ChunkedDecoder, Step};
use crate::runtime::PipeEnd;

use super::frame::{self, Code};
use super::head_memo;
use super::request::Parsed;

/// The most a handler's response head may be.
const MAX_HEAD: usize = 64 * 1024;
/// The response fields parsed on the stack; a head with more (header
/// rules may add any number) is parsed again with room for every line.
const MAX_FIELDS: usize = 100;

/// Where a stream's response is.
pub(super) enum Phase {
    /// Waiting for the handler's head (the bytes so far).
    Head(Vec<u8>),
    /// Sending the body: how it is framed, and what is left of it.
    Body(Framing),
    /// END_STREAM sent.
    Done,
}

pub(super) enum Framing {
    Length(u64),
    Chunked(ChunkedDecoder),
    UntilEnd,
}

pub(super) struct H2Stream {
    pub(super) id: u32,
    pub(super) pipe: PipeEnd,
    /// What the client lets the server send on it.
    pub(super) window: i64,
    /// What the client may still send on it before a WINDOW_UPDATE.
    pub(super) recv_window: i64,
    /// The client ended its side (END_STREAM).
    pub(super) remote_done: bool,
    pub(super) body: RequestBody,
    pub(super) content_length: Option<u64>,
    pub(super) received: u64,
    /// Request body bytes (re-framed) not yet taken by the pipe.
    pub(super) inbound: Vec<u8>,
    /// The last chunk in `inbound` while the pipe has taken none of it:
    /// where it starts and its size, so that more bytes join it.
    open_chunk: Option<(usize, usize)>,
    /// Request bytes taken by the pipe, not yet given back by WINDOW_UPDATE.
    pub(super) unacked: u32,
    pub(super) head: bool,
    pub(super) phase: Phase,
    /// Response bytes taken from the pipe, from `at` on not yet framed.
    pub(super) pending: Vec<u8>,
    pub(super) at: usize,
    /// Since when the client's window has held back a response.
    pub(super) stalled_since: Option<Instant>,
    /// The response was sent whole (END_STREAM).
    pub(super) answered: bool,
    /// It stopped at its share of a round with more to send.
    pub(super) more: bool,
    /// Opened in this turn, its handler not yet run: the connection's
    /// waker is with its pipe already, so polling it would find nothing.
    pub(super) fresh: bool,
}

/// What polling a stream's response did.
pub(super) enum Outcome {
    /// Waiting on the handler or on the client's window.
    Waiting,
    /// The response is sent (END_STREAM).
    Ended,
    /// The response broke off: reset the stream with this code.
    Reset(Code),
}

/// What the connection lends a stream while it writes.
pub(super) struct Room<'a> {
    pub(super) out: &'a mut Vec<u8>,
    /// The connection's send window.
    pub(super) window: &'a mut i64,
    pub(super) max_frame: usize,
    /// `out` may grow to this.
    pub(super) limit: usize,
    /// DATA frames the stream may send in this call.
    pub(super) frames: usize,
    /// The TLS session beneath, if any: a large DATA payload is encrypted
    /// into it from the stream's buffer, after `out[*written..]`, rather
    /// than copied into `out` first.
    pub(super) direct: Option<&'a crate::runtime::Stream>,
    /// How much of `out` is in the session already.
    pub(super) written: &'a mut usize,
    /// Bytes in the session since the last flush (counted against `limit`).
    pub(super) staged: &'a mut usize,
    /// The session refused bytes: the connection is to close.
    pub(super) broken: &'a mut bool,
    /// The connection's HPACK encoder (its dynamic table) and the last
    /// response head it encoded.
    pub(super) encoder: &'a mut head_memo::Encoder,
}

/// A DATA payload at least this large goes straight into the TLS session.
const DIRECT_MIN: usize = 2048;

impl Room<'_> {
    /// Bytes queued for the socket: in `out` and in the session.
    pub(super) fn queued(&self) -> usize {
        self.out.len() + *self.staged
    }

    /// Queues a DATA frame's head and `payload`.
    fn data(&mut self, payload: &[u8], flags: u8, id: u32) {
        frame::head(self.out, payload.len(), frame::DATA, flags, id);
        if let Some(stream) = self.direct.filter(|_| payload.len() >= DIRECT_MIN) {
            let before = self.out.len() - *self.written;
            match stream.write_plain_all(&[&self.out[*self.written..], payload]) {
                Some(Ok(())) => {
                    *self.written = self.out.len();
                    *self.staged += before + payload.len();
                    return;
                }
                Some(Err(_)) => {
                    *self.broken = true;
                    return;
                }
                None => {}
            }
        }
        self.out.extend_from_slice(payload);
    }
}

impl H2Stream {
    pub(super) fn new(id: u32, pipe: PipeEnd, window: i64, recv: i64) -> H2Stream {
        H2Stream {
            id,
            pipe,
            window,
            recv_window: recv,
            remote_done: false,
            body: RequestBody::None,
            content_length: None,
            received: 0,
            inbound: Vec::new(),
            open_chunk: None,
            unacked: 0,
            head: false,
            phase: Phase::Head(Vec::new()),
            pending: Vec::new(),
            at: 0,
            stalled_since: None,
            answered: false,
            more: false,
            fresh: false,
        }
    }

    /// A stream its request's block opened, built where the connection
    /// keeps it (no stream is built, then set, then moved).
    pub(super) fn opened(
        id: u32,
        pipe: PipeEnd,
        (window, recv): (i64, i64),
        parsed: Parsed,
        end_stream: bool,
        fresh: bool,
    ) -> H2Stream {
        H2Stream {
            remote_done: end_stream,
            body: parsed.body,
            content_length: parsed.content_length,
            head: parsed.head,
            fresh,
            ..H2Stream::new(id, pipe, window, recv)
        }
    }

    /// Whether the streams' round passes it by: it was opened in this
    /// turn (see `fresh`) and has nothing to move in nor to give back.
    /// Only once: from the next round on it is polled.
    pub(super) fn unpolled(&mut self) -> bool {
        if !self.fresh {
            return false;
        }
        self.fresh = false;
        self.inbound.is_empty() && self.unacked == 0 && matches!(self.phase, Phase::Head(_))
    }

    /// Moves what it can of the request body into the pipe.
    pub(super) fn push_inbound(&mut self, cx: &mut Context<'_>) {
        while !self.inbound.is_empty() {
            match self.pipe.poll_write(cx, &self.inbound) {
                Poll::Ready(Ok(n)) if n > 0 => {
                    self.inbound.drain(..n);
                    self.open_chunk = self
                        .open_chunk
                        .and_then(|(at, size)| Some((at.checked_sub(n)?, size)));
                }
                // The handler is gone or full: what is left waits (or is
                // dropped with the stream).
                _ => return,
            }
        }
        if self.inbound.capacity() > 0 {
            self.inbound = Vec::new();
        }
    }

    /// Appends request body bytes to `inbound` as a chunk. While the pipe
    /// has taken none of the last chunk, they join it: a chunk per DATA
    /// frame would let a client of 1-byte frames make one window of body
    /// take six times its size here (its size line, data, CRLF). The size
    /// line is four hex digits, room for a whole window (65,535).
    pub(super) fn push_chunk(&mut self, data: &[u8]) {
        if let Some((at, size)) = self.open_chunk {
            let joined = size + data.len();
            if joined <= 0xffff && self.inbound.ends_with(b"\r\n") {
                self.inbound.truncate(self.inbound.len() - 2);
                self.inbound.extend_from_slice(data);
                self.inbound.extend_from_slice(b"\r\n");
                self.inbound[at..at + 4].copy_from_slice(&hex4(joined));
                self.open_chunk = Some((at, joined));
                return;
            }
        }
        if data.is_empty() || data.len() > 0xffff {
            self.open_chunk = None;
            crate::http::chunked::push_chunk(&mut self.inbound, data);
            return;
        }
        self.open_chunk = Some((self.inbound.len(), data.len()));
        self.inbound.extend_from_slice(&hex4(data.len()));
        self.inbound.extend_from_slice(b"\r\n");
        self.inbound.extend_from_slice(data);
        self.inbound.extend_from_slice(b"\r\n");
    }

    /// The client ended the stream: a chunked body gets its last chunk
    /// (no trailers reach the handler).
    pub(super) fn end_remote(&mut self) {
        self.remote_done = true;
        if self.body == RequestBody::Chunked {
            self.open_chunk = None;
            self.inbound.extend_from_slice(b"0\r\n\r\n");
        }
    }

    /// Sends what it can of the response.
    pub(super) fn poll_response(&mut self, cx: &mut Context<'_>, room: &mut Room<'_>) -> Outcome {
        self.more = false;
        loop {
            match &mut self.phase {
                Phase::Done => return Outcome::Ended,
                Phase::Head(buf) => {
                    let Poll::Ready(more) = self.pipe.poll_take_into(cx, buf) else {
                        return Outcome::Waiting;
                    };
                    if !more {
                        return Outcome::Reset(Code::Internal);
                    }
                    let buf = std::mem::take(buf);
                    match self.start_response(buf, room) {
                        Ok(true) => {}
                        Ok(false) => return Outcome::Waiting,
                        Err(code) => return Outcome::Reset(code),
                    }
                }
                Phase::Body(_) => return self.poll_body(cx, room),
            }
        }
    }

    /// Reads the head in `buf`: Ok(false) if it is not all there yet
    /// (kept), else sends HEADERS and keeps what follows as body. A head
    /// as the handler's writer makes it is read back by that writer's
    /// reader; anything else is parsed in full. The same head as the
    /// last one, with the table unchanged, is the same block again.
    fn start_response(&mut self, buf: Vec<u8>, room: &mut Room<'_>) -> Result<bool, Code> {
        let start = room.out.len();
        room.out.extend_from_slice(&[0; 9]);
        if let Some(head) = room.encoder.replay(&buf, room.out) {
            self.send_head(room, start, head.status, head.said);
            self.pending = buf;
            self.at = head.len;
            return Ok(true);
        }
        let before = room.encoder.generation();
        let mut fields = Fields::new(room.out, room.encoder);
        match response::read_head(&buf, &mut fields) {
            Some(head) => {
                let framing = fields.framing;
                let block = &room.out[start + 9..];
                room.encoder
                    .keep(&buf[..head.len], block, head.status, framing, before);
                self.send_head(room, start, head.status, framing);
                // The body follows the head in the same buffer: no move.
                self.pending = buf;
                self.at = head.len;
                Ok(true)
            }
            None => {
                room.out.truncate(start);
                // The reader gave up part way: fields it had encoded may
                // have entered the table (or a size update was taken)
                // with their bytes now dropped. The client's table never
                // saw them: empty both, in step, at the next block.
                if room.encoder.generation() != before {
                    room.encoder.release();
                }
                self.parse_head(buf, room)
            }
        }
    }

    /// [`Self::start_response`] for a head not in the writer's form: a
    /// full parse (httparse), interim responses skipped.
    fn parse_head(&mut self, mut buf: Vec<u8>, room: &mut Room<'_>) -> Result<bool, Code> {
        loop {
            let mut fields = [httparse::EMPTY_HEADER; MAX_FIELDS];
            let mut more_fields;
            let mut parsed = httparse::Response::new(&mut fields);
            let mut status = parsed.parse(&buf);
            if let Err(httparse::Error::TooManyHeaders) = status {
                // Header rules may add any number: room for every line.
                let lines = buf.iter().filter(|&&b| b == b'\n').count();
                more_fields = vec![httparse::EMPTY_HEADER; lines];
                parsed = httparse::Response::new(&mut more_fields);
                status = parsed.parse(&buf);
            }
            let len = match status {
                Ok(httparse::Status::Complete(len)) => len,
                Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {
                    self.phase = Phase::Head(buf);
                    return Ok(false);
                }
                _ => return Err(Code::Internal),
            };
            let code = parsed.code.unwrap_or(500);
            if (100..200).contains(&code) {
                buf.drain(..len);
                continue;
            }
            let start = room.out.len();
            room.out.extend_from_slice(&[0; 9]);
            let mut fields = Fields::new(room.out, room.encoder);
            fields.status(code);
            for f in parsed.headers.iter() {
                let name = f.name.as_bytes();
                fields.field(name, hpack::name_index(name), f.value);
            }
            let framing = fields.framing;
            self.send_head(room, start, code, framing);
            self.pending = buf;
            self.at = len;
            return Ok(true);
        }
    }

    /// Finishes the HEADERS frame at `start` in `room.out` (its fields
    /// encoded) and sets how the body is framed.
    fn send_head(&mut self, room: &mut Room<'_>, start: usize, code: u16, said: Said) {
        let framing = if self.head || code == 204 || code == 304 {
            None
        } else if said.chunked {
            Some(Framing::Chunked(ChunkedDecoder::new()))
        } else {
            match said.length {
                Some(0) => None,
                Some(n) => Some(Framing::Length(n)),
                None => Some(Framing::UntilEnd),
            }
        };
        let end = framing.is_none();
        frame::finish_headers(room.out, start, self.id, end, room.max_frame);
        self.phase = match framing {
            None => Phase::Done,
            Some(framing) => Phase::Body(framing),
        };
    }

    fn poll_body(&mut self, cx: &mut Context<'_>, room: &mut Room<'_>) -> Outcome {
        loop {
            if self.at >= self.pending.len() {
                let Phase::Body(framing) = &self.phase else {
                    return Outcome::Ended;
                };
                if let Framing::Length(0) = framing {
                    return self.end(room);
                }
                // Nothing held back by the client's window: no stall.
                self.stalled_since = None;
                self.pending.clear();
                self.at = 0;
                match self.pipe.poll_take_into(cx, &mut self.pending) {
                    Poll::Pending => return Outcome::Waiting,
                    Poll::Ready(true) => {}
                    Poll::Ready(false) => {
                        return match framing {
                            Framing::UntilEnd => self.end(room),
                            _ => Outcome::Reset(Code::Internal),
                        };
                    }
                }
            }
            // The next piece of body in `pending`, framing skipped.
            let Phase::Body(framing) = &mut self.phase else {
                return Outcome::Ended;
            };
            let rest = &self.pending[self.at..];
            let (from, len) = match framing {
                Framing::Length(left) => {
                    let n = usize::try_from(*left).map_or(rest.len(), |l| l.min(rest.len()));
                    (self.at, n)
                }
                Framing::UntilEnd => (self.at, rest.len()),
                Framing::Chunked(decoder) => match decoder.step(rest) {
                    Ok(Step::Data(range)) => (self.at + range.start, range.len()),
                    Ok(Step::Skip(n)) => {
                        self.at += n;
                        continue;
                    }
                    Ok(Step::Done(_)) => return self.end(room),
                    Ok(Step::NeedMore) => {
                        self.at = self.pending.len();
                        continue;
                    }
                    Err(_) => return Outcome::Reset(Code::Internal),
                },
            };
            if len == 0 {
                // A chunked body's data of zero bytes cannot be; a
                // length body that already ended is handled above.
                self.at = self.pending.len();
                continue;
            }
            let allowed = self.window.min(*room.window);
            if allowed <= 0 {
                if self.stalled_since.is_none() {
                    self.stalled_since = Some(crate::runtime::now());
                }
                // Keep the framing's place: the piece starts at `from`.
                self.at = from;
                self.rewind_chunk(from, len);
                return Outcome::Waiting;
            }
            if room.queued() >= room.limit || room.frames == 0 {
                self.more = true;
                self.at = from;
                self.rewind_chunk(from, len);
                return Outcome::Waiting;
            }
            room.frames -= 1;
            self.stalled_since = None;
            let n = len
                .min(room.max_frame)
                .min(usize::try_from(allowed).unwrap_or(usize::MAX));
            let mut end_now = false;
            if let Framing::Length(left) = framing {
                *left -= n as u64;
                end_now = *left == 0;
            }
            let flags = if end_now { frame::END_STREAM } else { 0 };
            room.data(&self.pending[from..from + n], flags, self.id);
            self.window -= n as i64;
            *room.window -= n as i64;
            self.at = from + n;
            if n < len {
                self.rewind_chunk(from + n, len - n);
            }
            if end_now {
                self.phase = Phase::Done;
                return Outcome::Ended;
            }
        }
    }

    /// A chunk's data that was handed out by the decoder but not sent:
    /// the decoder is told to hand it out again.
    fn rewind_chunk(&mut self, _from: usize, len: usize) {
        if let Phase::Body(Framing::Chunked(decoder)) = &mut self.phase {
            decoder.unread(len as u64);
        }
    }

    /// Ends the stream with an empty DATA frame.
    fn end(&mut self, room: &mut Room<'_>) -> Outcome {
        frame::head(room.out, 0, frame::DATA, frame::END_STREAM, self.id);
        self.phase = Phase::Done;
        Outcome::Ended
    }
}

/// What a response's fields say of its body's framing.
#[derive(Clone, Copy, Default, PartialEq, Debug)]
pub(super) struct Said {
    length: Option<u64>,
    chunked: bool,
}

/// A response head's status and fields HPACK-encoded as they come, the
/// framing they give noted.
struct Fields<'a> {
    out: &'a mut Vec<u8>,
    encoder: &'a mut hpack::Encoder,
    framing: Said,
}

impl<'a> Fields<'a> {
    fn new(out: &'a mut Vec<u8>, encoder: &'a mut hpack::Encoder) -> Fields<'a> {
        Fields {
            out,
            encoder,
            framing: Said::default(),
        }
    }
}

impl response::HeadSink for Fields<'_> {
    fn status(&mut self, code: u16) {
        self.encoder.status(self.out, code);
    }

    /// Encodes a field unless HTTP/2 has no place for it (framing and
    /// connection fields), noting the framing it gives.
    #[inline(always)]
    fn field(&mut self, name: &[u8], index: Option<u8>, value: &[u8]) {
        let said = &mut self.framing;
        match index {
            Some(hpack::CONTENT_LENGTH) => {
                said.length = digits(value);
                if said.chunked {
                    return;
                }
            }
            Some(hpack::TRANSFER_ENCODING) => {
                said.chunked = value.eq_ignore_ascii_case(b"chunked");
                return;
            }
            // The handler closes every stream's pipe: its head says so,
            // in the writer's spelling. One compare, not a table's.
            None if name == b"Connection" || is_connection_field(name) => return,
            _ => {}
        }
        self.encoder.field_as(self.out, index, name, value);
    }
}

/// `n` (at most 0xffff) as four lower-case hex digits.
fn hex4(n: usize) -> [u8; 4] {
    let digit = |shift: usize| b"0123456789abcdef"[(n >> shift) & 0xf];
    [digit(12), digit(8), digit(4), digit(0)]
}

/// A Content-Length value written by the handler: digits only.
fn digits(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 19 {
        return None;
    }
    value.iter().try_fold(0u64, |n, &b| match b {
        b'0'..=b'9' => Some(n * 10 + u64::from(b - b'0')),
        _ => None,
    })
}

/// Fields HTTP/2 forbids (RFC 9113 §8.2.2), dropped from responses.
fn is_connection_field(name: &[u8]) -> bool {
    [
        &b"connection"[..],
        b"keep-alive",
        b"proxy-connection",
        b"upgrade",
    ]
    .iter()
    .any(|f| name.eq_ignore_ascii_case(f))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::pipe;
    use std::task::Waker;

    /// What the handler reads: the chunked body decoded, and whether it ended.
    fn body(bytes: &[u8]) -> (Vec<u8>, bool) {
        let (mut decoder, mut out, mut at) = (ChunkedDecoder::new(), Vec::new(), 0);
        loop {
            match decoder.step(&bytes[at..]).expect("valid chunked framing") {
                Step::Data(range) => {
                    out.extend_from_slice(&bytes[at + range.start..at + range.end]);
                    at += range.end;
                }
                Step::Skip(n) => at += n,
                Step::Done(_) => return (out, true),
                Step::NeedMore => return (out, false),
            }
        }
    }

    #[test]
    fn a_body_of_one_byte_frames_is_held_as_one_chunk_per_window() {
        let (handler, ours) = pipe(10);
        let mut s = H2Stream::new(1, ours, 65_535, 65_535);
        s.body = RequestBody::Chunked;
        let mut cx = Context::from_waker(Waker::noop());
        let mut want = Vec::new();
        for i in 0..65_535u32 {
            let b = [b'a' + (i % 26) as u8];
            s.push_chunk(&b);
            want.push(b[0]);
        }
        // A window of 1-byte frames: its bytes, one size line and CRLF.
        assert_eq!(s.inbound.len(), 65_535 + 8);
        // The pipe takes pieces: bytes that come meanwhile start a new
        // chunk, and once that is untouched, join it.
        let mut piped = Vec::new();
        let mut buf = [0u8; 64];
        for round in 0..2000u32 {
            s.push_inbound(&mut cx);
            if let Poll::Ready(Ok(n)) = handler.poll_read(&mut cx, &mut buf) {
                piped.extend_from_slice(&buf[..n]);
            }
            let b = [b'A' + (round % 26) as u8];
            s.push_chunk(&b);
            want.push(b[0]);
        }
        s.end_remote();
        while !s.inbound.is_empty() {
            s.push_inbound(&mut cx);
            if let Poll::Ready(Ok(n)) = handler.poll_read(&mut cx, &mut buf) {
                piped.extend_from_slice(&buf[..n]);
            }
        }
        while let Poll::Ready(Ok(n)) = handler.poll_read(&mut cx, &mut buf) {
            if n == 0 {
                break;
            }
            piped.extend_from_slice(&buf[..n]);
        }
        assert_eq!(body(&piped), (want, true));
    }

    /// A head as the handler's writer makes it.
    fn written(date: &str, etag: &str, length: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 200 OK\r\nServer: {}\r\nDate: {date}\r\n\
             Content-Type: text/plain; charset=utf-8\r\nETag: {etag}\r\n\
             Last-Modified: Sun, 06 Dec 2026 19:00:00 GMT\r\nAccept-Ranges: bytes\r\n\
             Content-Length: {length}\r\nConnection: keep-alive\r\n\r\nbody",
            response::SERVER
        )
        .into_bytes()
    }

    /// How a stream's body is framed after its head.
    fn framing(s: &H2Stream) -> String {
        match &s.phase {
            Phase::Done => "none".into(),
            Phase::Body(Framing::Length(n)) => format!("{n} bytes"),
            Phase::Body(Framing::Chunked(_)) => "chunked".into(),
            Phase::Body(Framing::UntilEnd) => "until the end".into(),
            Phase::Head(_) => "no head".into(),
        }
    }

    /// Answers a stream (a HEAD request if `head`) whose handler wrote
    /// `bytes`: its header block, its framing, and whether the memo
    /// gave the block.
    fn answer(enc: &mut head_memo::Encoder, head: bool, bytes: &[u8]) -> (Vec<u8>, String, bool) {
        let (_handler, ours) = pipe(10);
        let mut s = H2Stream::new(1, ours, 65_535, 65_535);
        s.head = head;
        let (mut out, mut window, mut written, mut staged, mut broken) =
            (vec![], 65_535, 0, 0, false);
        let hits = enc.hits;
        let mut room = Room {
            out: &mut out,
            window: &mut window,
            max_frame: 16_384,
            limit: 1 << 20,
            frames: 1,
            direct: None,
            written: &mut written,
            staged: &mut staged,
            broken: &mut broken,
            encoder: enc,
        };
        assert!(matches!(
            s.start_response(bytes.to_vec(), &mut room),
            Ok(true)
        ));
        assert_eq!(&s.pending[s.at..], b"body");
        let hit = room.encoder.hits > hits;
        (out[9..].to_vec(), framing(&s), hit)
    }

    /// The block the normal path gives (the head read, its fields encoded).
    fn plain(enc: &mut hpack::Encoder, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut fields = Fields::new(&mut out, enc);
        assert!(response::read_head(bytes, &mut fields).is_some());
        out
    }

    #[test]
    fn a_repeated_head_is_the_same_block_and_only_while_the_table_is_the_same() {
        let date = "Sun, 06 Dec 2026 19:00:00 GMT";
        let later = "Sun, 06 Dec 2026 19:00:01 GMT";
        let a = written(date, "\"a\"", "128");
        let b = written(date, "\"b\"", "128");
        let longer = written(date, "\"a\"", "129");
        let a_later = written(later, "\"a\"", "128");
        let (mut memo, mut twin) = (head_memo::Encoder::new(), hpack::Encoder::new());
        let mut decoder = hpack::Decoder::new(4096);
        // What happens to both encoders, and whether the memo is used.
        enum Step<'a> {
            Head(&'a [u8], bool),
            Limit(usize),
            Release,
        }
        use Step::{Head, Limit, Release};
        let steps = [
            Head(&a, false), // inserted: not kept
            Head(&a, false), // indexes: kept
            Head(&a, true),
            Head(&a, true),
            Head(&b, false), // another head: inserted
            Head(&b, false), // kept
            Head(&a, false), // not the head kept: a miss
            Head(&b, true),  // two in turn: one replayed
            Head(&a, false),
            Head(&b, true),
            Head(&a, false),
            Head(&a, false), // the second miss in a row: kept
            Head(&a, true),
            Head(&longer, false), // one byte differs: inserted
            Head(&a, false),      // the table changed since
            Head(&a, true),
            Head(&a_later, false), // a new date: inserted
            Head(&a, false),
            Head(&a, true),
            Release,
            Head(&a, false), // the size updates owed, inserted again
            Head(&a, false), // kept
            Head(&a, true),
            Limit(0),
            Head(&a, false), // the update owed: literals
            Head(&a, false), // literals, nothing changes: kept
            Head(&a, true),
            Limit(4096),
            Head(&a, false), // the update owed, inserted
            Head(&a, false),
            Head(&a, true),
        ];
        for (i, step) in steps.iter().enumerate() {
            match step {
                Limit(n) => {
                    memo.set_limit(*n);
                    twin.set_limit(*n);
                }
                Release => {
                    memo.release();
                    twin.release();
                }
                Head(bytes, want) => {
                    let (block, framing, hit) = answer(&mut memo, false, bytes);
                    assert_eq!(block, plain(&mut twin, bytes), "step {i}");
                    assert_eq!(hit, *want, "step {i}");
                    assert!(framing.ends_with(" bytes"), "step {i}: {framing}");
                    let mut n = 0;
                    decoder
                        .decode(&block, 1 << 20, &mut |_, _| n += 1)
                        .expect("the block decodes");
                    assert_eq!(n, 8, "step {i}: :status and 7 fields");
                }
            }
        }
    }

    #[test]
    fn a_replayed_head_is_framed_by_its_request_and_its_fields() {
        let mut memo = head_memo::Encoder::new();
        let a = written("Sun, 06 Dec 2026 19:00:00 GMT", "\"a\"", "128");
        for _ in 0..2 {
            answer(&mut memo, false, &a);
        }
        // A HEAD request's head is the same block, with no body after.
        let (block, framing, hit) = answer(&mut memo, true, &a);
        assert!(hit);
        assert_eq!(framing, "none");
        let (again, framing, hit) = answer(&mut memo, false, &a);
        assert!(hit);
        assert_eq!((again, framing), (block, "128 bytes".to_string()));
        // A chunked head keeps its framing too (its fields are all in
        // the table: kept at its second miss).
        let chunked = String::from_utf8_lossy(&a)
            .replace("Content-Length: 128", "Transfer-Encoding: chunked")
            .into_bytes();
        for want in [false, false, true] {
            let (_, framing, hit) = answer(&mut memo, false, &chunked);
            assert_eq!((hit, framing), (want, "chunked".to_string()));
        }
    }
}
