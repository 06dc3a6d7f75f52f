//! Header blocks: a new stream's request onto the pending queue, or a
//! stream's trailers.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::super::frame::{self, Code, Header, MAX_FRAME};
use super::super::request::{Parsed, Refused, Scratch};
use super::super::stream::H2Stream;
use super::{self_dependent, unpad, Connection, End, STREAM_WINDOW};
use crate::runtime::{self, pipe, Stream};
use crate::service::read_buffer_size;
use crate::stages::h2_connection::{Http2, STREAM_BUFFER};
use crate::stages::pending::reject_stream;
use crate::stages::{Conn, Line};

impl Connection {
    pub(super) fn headers(
        &mut self,
        h: Header,
        payload: &[u8],
        stage: &Http2,
        line: &Arc<Line>,
    ) -> Result<(), End> {
        if h.stream == 0 {
            return Err(End::Error(Code::Protocol));
        }
        let mut fragment = unpad(h, payload)?;
        if h.flags & frame::PRIORITY_FLAG != 0 {
            if fragment.len() < 5 {
                return Err(End::Error(Code::FrameSize));
            }
            if self_dependent(h.stream, fragment) && h.flags & frame::END_HEADERS == 0 {
                // A stream error made the connection's (RFC 9113 §5.4), so
                // that no part of a block is decoded alone.
                return Err(End::Error(Code::Protocol));
            }
            if self_dependent(h.stream, fragment) {
                // Still decoded below, for the HPACK state.
                self.block.clear();
                self.block.extend_from_slice(&fragment[5..]);
                return self.block_done(h.stream, true, stage, line, Some(Code::Protocol), h);
            }
            fragment = &fragment[5..];
        }
        let end_stream = h.flags & frame::END_STREAM != 0;
        if h.flags & frame::END_HEADERS == 0 {
            self.block.clear();
            self.block_frames = 0;
            self.block.extend_from_slice(fragment);
            self.gathering = Some((h.stream, end_stream));
            return Ok(());
        }
        // A block in one frame (the common case) is decoded where it is.
        self.open_or_trail(h.stream, end_stream, fragment, stage, line, None)
    }

    pub(super) fn continuation(
        &mut self,
        h: Header,
        payload: &[u8],
        stage: &Http2,
        line: &Arc<Line>,
    ) -> Result<(), End> {
        let Some((id, end_stream)) = self.gathering else {
            return Err(End::Error(Code::Protocol));
        };
        // Each frame's header counts: empty CONTINUATION frames end too.
        self.block_frames += 9;
        if self.block.len() + self.block_frames + payload.len()
            > 2 * (self.header_limit + MAX_FRAME)
        {
            // A block larger than any list the server takes.
            return Err(End::Error(Code::EnhanceYourCalm));
        }
        self.block.extend_from_slice(payload);
        if h.flags & frame::END_HEADERS == 0 {
            return Ok(());
        }
        self.gathering = None;
        self.block_done(id, end_stream, stage, line, None, h)
    }

    /// A whole header block on stream `id`: a new stream's request, or
    /// trailers.
    pub(super) fn block_done(
        &mut self,
        id: u32,
        end_stream: bool,
        stage: &Http2,
        line: &Arc<Line>,
        refuse: Option<Code>,
        _h: Header,
    ) -> Result<(), End> {
        let block = std::mem::take(&mut self.block);
        let result = self.open_or_trail(id, end_stream, &block, stage, line, refuse);
        self.block = block;
        self.block.clear();
        result
    }

    pub(super) fn open_or_trail(
        &mut self,
        id: u32,
        end_stream: bool,
        block: &[u8],
        stage: &Http2,
        line: &Arc<Line>,
        refuse: Option<Code>,
    ) -> Result<(), End> {
        let limit = self.header_limit;
        // Every open stream's id is at most the last one opened: a new
        // stream's block (the common case) needs no search.
        let open = match id <= self.last_id {
            true => self.find(id),
            false => None,
        };
        if let Some(i) = open {
            // Trailers: they end the stream.
            let trailers = Scratch::trailers(&mut self.decoder, block, limit)
                .map_err(|_| End::Error(Code::Compression))?;
            let s = &mut self.streams[i];
            if s.remote_done {
                self.reset(id, Code::StreamClosed);
                return Ok(());
            }
            let short = s.content_length.is_some_and(|cl| s.received != cl);
            match trailers {
                Err(Refused::Bomb) => return Err(End::Error(Code::EnhanceYourCalm)),
                Err(_) => self.reset(id, Code::Protocol),
                Ok(()) if !end_stream || short || refuse.is_some() => {
                    self.reset(id, Code::Protocol)
                }
                Ok(()) => s.end_remote(),
            }
            return Ok(());
        }
        if id <= self.last_id {
            if !self.reset_by_us.contains(&id) {
                return Err(End::Error(Code::StreamClosed));
            }
            // Trailers in flight on a stream the server reset: decoded for
            // the table's sake, and dropped.
            let _ = Scratch::trailers(&mut self.decoder, block, limit)
                .map_err(|_| End::Error(Code::Compression))?;
            return Ok(());
        }
        if id.is_multiple_of(2) {
            return Err(End::Error(Code::Protocol));
        }
        self.last_id = id;
        self.turn_streams += 1;
        let parsed = self
            .scratch
            .request(&mut self.decoder, block, end_stream, limit)
            .map_err(|_| End::Error(Code::Compression))?;
        self.open(id, end_stream, parsed, stage, line, refuse)
    }

    pub(super) fn open(
        &mut self,
        id: u32,
        end_stream: bool,
        parsed: Result<Parsed, Refused>,
        stage: &Http2,
        line: &Arc<Line>,
        refuse: Option<Code>,
    ) -> Result<(), End> {
        if let Some(code) = refuse {
            self.reset(id, code);
            return Ok(());
        }
        if self.goaway.is_some_and(|last| id > last) {
            return Ok(());
        }
        if self.streams.len() >= self.max_streams {
            self.reset(id, Code::RefusedStream);
            return Ok(());
        }
        let parsed = match parsed {
            Ok(parsed) => parsed,
            Err(Refused::Malformed) => {
                self.reset(id, Code::Protocol);
                return Ok(());
            }
            Err(Refused::Bomb) => {
                stage.calmed.fetch_add(1, Ordering::Relaxed);
                return Err(End::Error(Code::EnhanceYourCalm));
            }
            Err(Refused::TooLarge) => {
                let start = self.out.len();
                self.out.extend_from_slice(&[0; 9]);
                self.encoder.status(&mut self.out, 431);
                frame::finish_headers(&mut self.out, start, id, true, self.max_frame);
                if !end_stream {
                    frame::rst_stream(&mut self.out, id, Code::NoError);
                }
                self.remember_reset(id);
                return Ok(());
            }
        };
        if end_stream && parsed.content_length.is_some_and(|cl| cl > 0) {
            self.reset(id, Code::Protocol);
            return Ok(());
        }
        let (size, limits) = *self.turn_config.get_or_insert_with(|| {
            let config = line.config.load();
            (read_buffer_size(&config), config.limits.preamble())
        });
        // The handler's first write wakes the connection: until then,
        // nothing is polled of the stream (`H2Stream::fresh`). A spare
        // has the task's waker waiting on it already (the turn's, set
        // before any stream of it closed).
        let (handler_end, ours, fresh) = match self.spares.pop() {
            Some(spare) => {
                let (handler_end, ours) = spare.pipe();
                (handler_end, ours, self.turn_waker.is_some())
            }
            None => {
                let (handler_end, ours) = pipe(STREAM_BUFFER);
                let waker = self.turn_waker.as_ref();
                let fresh = waker.is_some_and(|waker| !ours.arm_readable(waker));
                (handler_end, ours, fresh)
            }
        };
        let o = &self.origin;
        let stream = Stream::pipe(handler_end, o.peer, o.secure).naming(o.server_name.clone());
        // The preamble, written of the scratch straight into its buffer.
        let scratch = &self.scratch;
        let len = scratch.preamble_len();
        let mut conn = Conn::for_stream_with(stream, o.proxied, len, size, |buf| {
            scratch.write_preamble(buf)
        });
        // Its request too, of the lines as they were written.
        let request = scratch.request_of(conn.input.pending(), len, &limits);
        conn.set_request(request, limits);
        let windows = (self.peer_initial, STREAM_WINDOW);
        let s = H2Stream::opened(id, ours, windows, parsed, end_stream, fresh);
        self.streams.push(s);
        self.tally.streams += 1;
        self.tally.open += 1;
        self.tally.waiting += 1;
        admit(line, conn);
        if self.goaway.is_none() && line.readiness.is_draining() {
            self.go_away(Code::NoError);
        }
        Ok(())
    }
}

/// Puts a stream's request onto the pending queue; when it is full, by the
/// overload policy: a green thread waits for room, or the stream is
/// answered 503.
fn admit(line: &Arc<Line>, conn: Conn) {
    let pending = line.local_pending();
    let Err(conn) = pending.try_push(conn) else {
        return;
    };
    match line.config.load().queue.overload {
        crate::config::Overload::Reject => reject_stream(line, &conn.stream),
        _ => {
            let line = line.clone();
            runtime::spawn_detached(async move {
                line.local_pending().push(conn).await;
            });
        }
    }
}
