//! Responses: each stream's response moved from its pipe into frames,
//! one DATA frame per stream a round, and the streams that are done
//! closed (their pipes kept for the next ones).

use std::task::Context;
use std::time::Instant;

use super::super::frame::{self, Code};
use super::super::stream::{Outcome, Phase, Room};
use super::{Connection, LATE_RESET, OUT_LIMIT, RESET_UNITS, SPARE_PIPES};
use crate::runtime;

impl Connection {
    /// Moves each stream's response into frames and its request body
    /// into its pipe; ends the streams that are done.
    pub(super) fn poll_streams(&mut self, cx: &mut Context<'_>) -> bool {
        let now = runtime::now();
        // Rounds of one DATA frame per stream, so that streams interleave;
        // after the first round, only the streams that had more.
        let mut first = true;
        loop {
            let mut more = false;
            let mut i = 0;
            while i < self.streams.len() {
                if (!first && !self.streams[i].more) || self.streams[i].unpolled() {
                    i += 1;
                    continue;
                }
                if self.poll_stream(i, cx, now) {
                    more |= self.streams[i].more;
                    i += 1;
                }
            }
            first = false;
            if !more || self.queued() >= OUT_LIMIT {
                return more;
            }
        }
    }

    /// Polls stream `i`; false if it is done and gone.
    fn poll_stream(&mut self, i: usize, cx: &mut Context<'_>, now: Instant) -> bool {
        let s = &mut self.streams[i];
        if !s.inbound.is_empty() {
            s.push_inbound(cx);
        }
        let answered = matches!(s.phase, Phase::Done);
        // The window goes back only once all that came is in the pipe: a
        // handler that does not read holds the client to one window.
        if s.unacked > 0 && !s.remote_done && !answered && s.inbound.is_empty() {
            frame::window_update(&mut self.out, s.id, s.unacked);
            s.recv_window += i64::from(s.unacked);
            s.unacked = 0;
        }
        let waiting = matches!(s.phase, Phase::Head(_));
        let mut room = Room {
            out: &mut self.out,
            window: &mut self.window,
            max_frame: self.max_frame,
            limit: OUT_LIMIT,
            frames: 1,
            direct: self.direct.then_some(&self.stream),
            written: &mut self.written,
            staged: &mut self.staged,
            broken: &mut self.broken,
            encoder: &mut self.encoder,
        };
        let outcome = s.poll_response(cx, &mut room);
        if waiting && !matches!(s.phase, Phase::Head(_)) {
            self.tally.waiting -= 1;
        }
        let stalled = s
            .stalled_since
            .is_some_and(|since| now >= since + self.write_limit);
        // Whether the stream is done, and the code it is reset with.
        let done = match outcome {
            Outcome::Waiting if stalled => Some(Some(Code::Cancel)),
            Outcome::Waiting => None,
            Outcome::Ended => {
                if !s.answered {
                    s.answered = true;
                    self.resets_left = (self.resets_left + LATE_RESET).min(RESET_UNITS);
                }
                // The response is whole while the request goes on: the
                // rest of it is read and checked (not given to the
                // handler, its window not given back) until it ends,
                // or the write timeout resets it (RFC 9113 §8.1).
                match (s.remote_done, stalled) {
                    (true, _) => Some(None),
                    (false, true) => Some(Some(Code::NoError)),
                    (false, false) => {
                        s.stalled_since.get_or_insert(now);
                        None
                    }
                }
            }
            Outcome::Reset(code) => Some(Some(code)),
        };
        let Some(reset) = done else {
            return true;
        };
        let id = s.id;
        self.close_stream(i);
        if let Some(code) = reset {
            frame::rst_stream(&mut self.out, id, code);
            self.remember_reset(id);
        }
        false
    }

    pub(super) fn remember_reset(&mut self, id: u32) {
        self.reset_by_us[self.reset_next] = id;
        self.reset_next = (self.reset_next + 1) % self.reset_by_us.len();
    }

    pub(super) fn close_stream(&mut self, i: usize) {
        let s = self.streams.swap_remove(i);
        self.tally.closed(&s);
        // The pipe is kept for a next stream once the handler let go of it.
        if self.spares.len() < SPARE_PIPES {
            // Made ready for the next stream's head: the task's waker
            // waits on it already (`H2Stream::fresh`).
            let waker = self.turn_waker.as_ref();
            if let Some(spare) = s.pipe.into_spare_with(s.pending, waker) {
                self.spares.push(spare);
            }
        }
    }
}
