//! Frames read from the client: each checked and answered (RFC 9113 §6).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::super::frame::{self, Code, Header, MAX_FRAME, MAX_WINDOW};
use super::super::stream::Phase;
use super::{self_dependent, unpad, Connection, End, CONNECTION_WINDOW, OUT_LIMIT};
use super::{EARLY_RESET, LATE_RESET, TURN_STREAMS};
use crate::http::h2_mapping::{RequestBody, PREFACE};
use crate::stages::h2_connection::Http2;
use crate::stages::Line;

/// How long a connection's reading first pauses after a turn of streams
/// all opened and reset at once (see `Connection::pace`); each such turn
/// that follows doubles it, up to [`RESET_PAUSE_MOST`].
const RESET_PAUSE: Duration = Duration::from_millis(1);
/// The longest pause, h2o's `http2-dos-delay`.
const RESET_PAUSE_MOST: Duration = Duration::from_millis(100);
/// A rapid turn this long after the last pause ended starts again at
/// [`RESET_PAUSE`].
const RESET_STREAK_FORGOT: Duration = Duration::from_secs(1);

/// A connection's rapid turns in a row, and when the last pause ends.
#[derive(Default)]
pub(super) struct Streak {
    turns: u32,
    until: Option<Instant>,
}

impl Streak {
    /// A rapid turn at `now`: when the pause it earns ends.
    fn pause(&mut self, now: Instant) -> Instant {
        if self.until.is_some_and(|t| now > t + RESET_STREAK_FORGOT) {
            self.turns = 0;
        }
        let pause = RESET_PAUSE
            .saturating_mul(1 << self.turns.min(7))
            .min(RESET_PAUSE_MOST);
        self.turns = self.turns.saturating_add(1);
        let until = now + pause;
        self.until = Some(until);
        until
    }
}

impl Connection {
    /// After a turn's reading: one that opened [`TURN_STREAMS`] streams and
    /// reset each before its response head (rapid reset) pauses the
    /// connection's reading, as h2o's `http2-dos-delay` does: 1 ms, then
    /// twice the last pause for each such turn in a row, up to 100 ms. A
    /// client that keeps at it gets 32 streams per 100 ms, and reaches
    /// the budget's GOAWAY only after 2.5 s: it holds one connection,
    /// which costs the worker next to nothing, rather than reconnecting
    /// (a TLS handshake, ~300 µs of the worker, every 1,000 streams).
    /// True while paused.
    pub(super) fn pace(&mut self, paused: bool) -> bool {
        if self.turn_full && self.turn_resets >= TURN_STREAMS {
            // The clock itself: the scheduler's may be a turn old, and a
            // pause it said was not over would wake the connection at once.
            self.paused_until = Some(self.streak.pause(Instant::now()));
            return true;
        }
        if !paused {
            self.paused_until = None;
        }
        paused
    }

    /// Handles the frames at the front of `bytes`; returns how many bytes
    /// they took (a frame not all there is left).
    pub(super) fn frames(
        &mut self,
        bytes: &[u8],
        stage: &Http2,
        line: &Arc<Line>,
    ) -> Result<usize, End> {
        let mut at = 0;
        if !self.preface {
            if bytes.len() < PREFACE.len() {
                return match PREFACE.starts_with(bytes) {
                    true => Ok(0),
                    false => Err(End::Error(Code::Protocol)),
                };
            }
            if !bytes.starts_with(PREFACE) {
                return Err(End::Error(Code::Protocol));
            }
            self.preface = true;
            at = PREFACE.len();
        }
        while let Some(h) = bytes.get(at..).and_then(Header::parse) {
            if h.len > MAX_FRAME {
                return Err(End::Error(Code::FrameSize));
            }
            let Some(payload) = bytes.get(at + 9..at + 9 + h.len) else {
                break;
            };
            // A stream more waits for the next turn; the frames up to it
            // (the last stream's RST_STREAM, say) are taken in this one.
            if h.kind == frame::HEADERS && self.turn_streams >= TURN_STREAMS {
                self.turn_full = true;
                break;
            }
            self.meter.charge_frame(h.kind, h.flags, h.len);
            self.frame(h, payload, stage, line)?;
            if self.resets_left == 0 || self.meter.exhausted() {
                stage.calmed.fetch_add(1, Ordering::Relaxed);
                return Err(End::Error(Code::EnhanceYourCalm));
            }
            at += 9 + h.len;
            if self.queued() >= OUT_LIMIT || self.peer_gone {
                break;
            }
        }
        Ok(at)
    }

    pub(super) fn frame(
        &mut self,
        h: Header,
        payload: &[u8],
        stage: &Http2,
        line: &Arc<Line>,
    ) -> Result<(), End> {
        if !self.settings_seen && h.kind != frame::SETTINGS {
            return Err(End::Error(Code::Protocol));
        }
        if let Some((id, _)) = self.gathering {
            if h.kind != frame::CONTINUATION || h.stream != id {
                return Err(End::Error(Code::Protocol));
            }
        }
        match h.kind {
            frame::DATA => self.data(h, payload),
            frame::HEADERS => self.headers(h, payload, stage, line),
            frame::CONTINUATION => self.continuation(h, payload, stage, line),
            frame::PRIORITY => match (h.stream, h.len) {
                (0, _) => Err(End::Error(Code::Protocol)),
                (_, 5) if self_dependent(h.stream, payload) => {
                    self.reset(h.stream, Code::Protocol);
                    Ok(())
                }
                (_, 5) => Ok(()),
                _ => {
                    self.reset(h.stream, Code::FrameSize);
                    Ok(())
                }
            },
            frame::RST_STREAM => self.rst_stream(h, payload),
            frame::SETTINGS => self.settings(h, payload),
            frame::PING => match (h.stream, h.len) {
                (0, 8) if h.flags & frame::ACK != 0 => Ok(()),
                (0, 8) => {
                    frame::head(&mut self.out, 8, frame::PING, frame::ACK, 0);
                    self.out.extend_from_slice(payload);
                    Ok(())
                }
                (0, _) => Err(End::Error(Code::FrameSize)),
                _ => Err(End::Error(Code::Protocol)),
            },
            // The client is leaving: the streams open go on, and so does
            // reading (their WINDOW_UPDATEs are still to come); none is
            // opened after, and once they are done the connection closes.
            frame::GOAWAY => match h.stream {
                0 => {
                    self.goaway.get_or_insert(self.last_id);
                    Ok(())
                }
                _ => Err(End::Error(Code::Protocol)),
            },
            frame::WINDOW_UPDATE => self.window_update(h, payload),
            frame::PUSH_PROMISE => Err(End::Error(Code::Protocol)),
            _ => Ok(()),
        }
    }

    /// A stream error: RST_STREAM, and the stream (if open) is gone.
    /// A stream error the client caused (not a refusal for want of room)
    /// costs as much of its reset budget as a reset it sends after the
    /// response head.
    pub(super) fn reset(&mut self, id: u32, code: Code) {
        if !matches!(code, Code::RefusedStream | Code::NoError) {
            self.resets_left = self.resets_left.saturating_sub(LATE_RESET);
        }
        frame::rst_stream(&mut self.out, id, code);
        if let Some(i) = self.find(id) {
            self.close_stream(i);
        }
        self.remember_reset(id);
    }

    pub(super) fn settings(&mut self, h: Header, payload: &[u8]) -> Result<(), End> {
        if h.stream != 0 {
            return Err(End::Error(Code::Protocol));
        }
        if h.flags & frame::ACK != 0 {
            return match h.len {
                0 => Ok(()),
                _ => Err(End::Error(Code::FrameSize)),
            };
        }
        if !h.len.is_multiple_of(6) {
            return Err(End::Error(Code::FrameSize));
        }
        for pair in payload.chunks_exact(6) {
            let id = u16::from_be_bytes([pair[0], pair[1]]);
            let value = u32::from_be_bytes([pair[2], pair[3], pair[4], pair[5]]);
            match id {
                2 if value > 1 => return Err(End::Error(Code::Protocol)),
                4 => {
                    let value = i64::from(value);
                    if value > MAX_WINDOW {
                        return Err(End::Error(Code::FlowControl));
                    }
                    let delta = value - self.peer_initial;
                    self.peer_initial = value;
                    for s in &mut self.streams {
                        s.window += delta;
                        if s.window > MAX_WINDOW {
                            return Err(End::Error(Code::FlowControl));
                        }
                    }
                }
                5 if !(MAX_FRAME as u32..=0xff_ffff).contains(&value) => {
                    return Err(End::Error(Code::Protocol));
                }
                5 => self.max_frame = value as usize,
                // Applies from the next header block on, after the ACK
                // that follows.
                1 => self.encoder.set_limit(value as usize),
                _ => {}
            }
        }
        self.settings_seen = true;
        frame::head(&mut self.out, 0, frame::SETTINGS, frame::ACK, 0);
        Ok(())
    }

    pub(super) fn window_update(&mut self, h: Header, payload: &[u8]) -> Result<(), End> {
        if h.len != 4 {
            return Err(End::Error(Code::FrameSize));
        }
        let increment = i64::from(
            u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]) & 0x7fff_ffff,
        );
        if h.stream == 0 {
            if increment == 0 {
                return Err(End::Error(Code::Protocol));
            }
            self.window += increment;
            if self.window > MAX_WINDOW {
                return Err(End::Error(Code::FlowControl));
            }
            return Ok(());
        }
        if h.stream > self.last_id {
            return Err(End::Error(Code::Protocol));
        }
        let Some(i) = self.find(h.stream) else {
            return Ok(());
        };
        if increment == 0 {
            self.reset(h.stream, Code::Protocol);
            return Ok(());
        }
        let s = &mut self.streams[i];
        s.window += increment;
        if s.window > MAX_WINDOW {
            self.reset(h.stream, Code::FlowControl);
        }
        Ok(())
    }

    pub(super) fn rst_stream(&mut self, h: Header, _payload: &[u8]) -> Result<(), End> {
        if h.stream == 0 || h.stream > self.last_id {
            return Err(End::Error(Code::Protocol));
        }
        if h.len != 4 {
            return Err(End::Error(Code::FrameSize));
        }
        if let Some(i) = self.find(h.stream) {
            let cost = match self.streams[i].phase {
                Phase::Head(_) => EARLY_RESET,
                _ => LATE_RESET,
            };
            self.resets_left = self.resets_left.saturating_sub(cost);
            self.turn_resets += usize::from(cost == EARLY_RESET);
            self.close_stream(i);
        }
        Ok(())
    }

    pub(super) fn data(&mut self, h: Header, payload: &[u8]) -> Result<(), End> {
        if h.stream == 0 {
            return Err(End::Error(Code::Protocol));
        }
        let data = unpad(h, payload)?;
        let len = h.len as i64;
        self.recv_window -= len;
        if self.recv_window < 0 {
            return Err(End::Error(Code::FlowControl));
        }
        self.recv_unacked += len;
        if self.recv_unacked >= CONNECTION_WINDOW / 4 {
            frame::window_update(&mut self.out, 0, self.recv_unacked as u32);
            self.recv_window += self.recv_unacked;
            self.recv_unacked = 0;
        }
        let Some(i) = self.find(h.stream) else {
            if h.stream > self.last_id {
                return Err(End::Error(Code::Protocol));
            }
            if self.reset_by_us.contains(&h.stream) {
                return Ok(());
            }
            // A closed stream the server no longer remembers resetting (it
            // keeps the last 16: a client may open more than the stream
            // limit before it has the server's SETTINGS, each refused
            // with its body on the way). A stream error, not the
            // connection's: RST_STREAM, remembered, one of the budget.
            self.reset(h.stream, Code::StreamClosed);
            return Ok(());
        };
        let s = &mut self.streams[i];
        if s.remote_done {
            self.reset(h.stream, Code::StreamClosed);
            return Ok(());
        }
        s.recv_window -= len;
        s.received += data.len() as u64;
        let end = h.flags & frame::END_STREAM != 0;
        let bad_length = s
            .content_length
            .is_some_and(|cl| s.received > cl || (end && s.received != cl));
        if s.recv_window < 0 {
            self.reset(h.stream, Code::FlowControl);
            return Ok(());
        }
        if bad_length || s.body == RequestBody::None {
            self.reset(h.stream, Code::Protocol);
            return Ok(());
        }
        match s.body {
            _ if matches!(s.phase, Phase::Done) => {}
            RequestBody::Chunked if !data.is_empty() => s.push_chunk(data),
            _ => s.inbound.extend_from_slice(data),
        }
        s.unacked += h.len as u32;
        if end {
            s.end_remote();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pause_doubles_for_each_rapid_turn_in_a_row_up_to_100_ms() {
        let mut streak = Streak::default();
        let mut now = Instant::now();
        let mut pauses = Vec::new();
        for _ in 0..10 {
            let until = streak.pause(now);
            pauses.push((until - now).as_millis());
            // The next rapid turn comes as soon as the pause is over.
            now = until;
        }
        assert_eq!(pauses, [1, 2, 4, 8, 16, 32, 64, 100, 100, 100]);
        // Within a second of the last pause's end, the streak goes on ...
        now += Duration::from_millis(900);
        let until = streak.pause(now);
        assert_eq!(until - now, Duration::from_millis(100));
        // ... past it, it starts again at 1 ms.
        now = until + RESET_STREAK_FORGOT + Duration::from_millis(1);
        let until = streak.pause(now);
        assert_eq!(until - now, RESET_PAUSE);
        assert_eq!(streak.pause(until) - until, Duration::from_millis(2));
    }
}
