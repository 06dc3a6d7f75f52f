//! What guards an HTTP/2 connection beneath the `h2` crate: a budget for
//! the frames that make the server work without moving a request along,
//! and a watch on the socket's writes.
//!
//! The `h2` crate answers a PING or a SETTINGS with one frame and reads no
//! further until that frame is written, so a client that floods and never
//! reads fills its own socket and stalls; the watch closes a connection
//! whose writes have made no progress for `timeouts.write`, as a slow
//! HTTP/1.1 reader is closed. A client that floods and does read, or sends
//! frames that need no answer (PRIORITY, WINDOW_UPDATE, RST_STREAM, empty
//! DATA), is stopped by the budget: [`BURST`] such frames at once, earned
//! back at [`REFILL_PER_SECOND`] and with every KiB the server sends (a
//! client that downloads sends a WINDOW_UPDATE every few frames).

use std::cell::Cell;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::runtime::AsyncStream;

/// Frames that need no request a client may send at once.
pub(super) const BURST: u64 = 10_000;
/// How fast the budget comes back, in frames a second.
pub(super) const REFILL_PER_SECOND: u64 = 1_000;
/// The client preface, which comes before the first frame.
const PREFACE_LEN: usize = 24;

/// The budget and the watch, shared by the connection's stream and its loop.
pub(super) struct Meter {
    /// Bytes of the frame header being read, and how many are in.
    header: Cell<[u8; 9]>,
    have: Cell<usize>,
    /// Bytes of the current frame's payload (or the preface) still to come.
    skip: Cell<usize>,
    tokens: Cell<u64>,
    refilled: Cell<Instant>,
    /// KiB written so far (each earns a frame back).
    written_kib: Cell<u64>,
    written: Cell<u64>,
    /// Frames charged, for the figures.
    charged: Cell<u64>,
    exhausted: Cell<bool>,
    blocked_since: Cell<Option<Instant>>,
}

impl Meter {
    pub(super) fn new() -> Rc<Meter> {
        Rc::new(Meter {
            header: Cell::new([0; 9]),
            have: Cell::new(0),
            skip: Cell::new(PREFACE_LEN),
            tokens: Cell::new(BURST),
            refilled: Cell::new(Instant::now()),
            written_kib: Cell::new(0),
            written: Cell::new(0),
            charged: Cell::new(0),
            exhausted: Cell::new(false),
            blocked_since: Cell::new(None),
        })
    }

    /// The client spent its budget: it is to be sent GOAWAY
    /// (ENHANCE_YOUR_CALM), and nothing more it sends is read.
    pub(super) fn exhausted(&self) -> bool {
        self.exhausted.get()
    }

    /// Since when the socket has taken none of what the server has to
    /// write; None while writes go through.
    pub(super) fn blocked_since(&self) -> Option<Instant> {
        self.blocked_since.get()
    }

    /// Follows the frames in `bytes`, read from the client.
    fn scan(&self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let skip = self.skip.get();
            if skip > 0 {
                let n = skip.min(bytes.len());
                self.skip.set(skip - n);
                bytes = &bytes[n..];
                continue;
            }
            let (mut header, have) = (self.header.get(), self.have.get());
            let n = (9 - have).min(bytes.len());
            header[have..have + n].copy_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if have + n < 9 {
                self.header.set(header);
                self.have.set(have + n);
                continue;
            }
            self.have.set(0);
            let len = usize::from(header[0]) << 16 | usize::from(header[1]) << 8;
            self.skip.set(len | usize::from(header[2]));
            if costs(header[3], header[4], self.skip.get()) {
                self.charge();
            }
        }
    }

    fn charge(&self) {
        self.charged.set(self.charged.get() + 1);
        let mut tokens = self.tokens.get();
        if tokens < BURST {
            // The turn's clock: a frame budget needs no finer time.
            let now = crate::runtime::now();
            let ms = now.duration_since(self.refilled.get()).as_millis();
            let earned = u64::try_from(ms).unwrap_or(u64::MAX) * REFILL_PER_SECOND / 1000;
            if earned > 0 {
                tokens = tokens.saturating_add(earned).min(BURST);
                self.refilled.set(now);
            }
        }
        match tokens.checked_sub(1) {
            Some(left) => self.tokens.set(left),
            None => self.exhausted.set(true),
        }
    }

    /// Charges a frame read by the native engine, if it is one that costs.
    pub(super) fn charge_frame(&self, kind: u8, flags: u8, len: usize) {
        if costs(kind, flags, len) {
            self.charge();
        }
    }

    pub(super) fn wrote(&self, n: usize) {
        let written = self.written.get() + n as u64;
        self.written.set(written);
        let kib = written >> 10;
        let earned = kib - self.written_kib.get();
        if earned > 0 {
            self.written_kib.set(kib);
            self.tokens
                .set(self.tokens.get().saturating_add(earned).min(BURST));
        }
    }

    fn write_result<T>(&self, result: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match &result {
            Poll::Pending => {
                if self.blocked_since.get().is_none() {
                    self.blocked_since.set(Some(Instant::now()));
                }
            }
            Poll::Ready(_) => self.blocked_since.set(None),
        }
        result
    }
}

/// Whether a frame of `kind` with `flags` and `len` bytes of payload is one
/// that makes the server work without moving a request along: every kind
/// but HEADERS, CONTINUATION (their limits are the h2 crate's) and DATA
/// that carries bytes or ends a stream.
fn costs(kind: u8, flags: u8, len: usize) -> bool {
    const DATA: u8 = 0x0;
    const HEADERS: u8 = 0x1;
    const CONTINUATION: u8 = 0x9;
    const END_STREAM: u8 = 0x1;
    match kind {
        DATA => len == 0 && flags & END_STREAM == 0,
        HEADERS | CONTINUATION => false,
        _ => true,
    }
}

/// A connection's stream with its [`Meter`].
pub(super) struct Guarded {
    inner: AsyncStream,
    meter: Rc<Meter>,
}

impl Guarded {
    pub(super) fn new(inner: AsyncStream, meter: Rc<Meter>) -> Guarded {
        Guarded { inner, meter }
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.meter.exhausted() {
            // The connection loop sends GOAWAY and closes; what the client
            // sends meanwhile stays unread.
            return Poll::Pending;
        }
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result {
            this.meter.scan(&buf.filled()[before..]);
        }
        result
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = result {
            this.meter.wrote(n);
        }
        this.meter.write_result(result)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_flush(cx);
        this.meter.write_result(result)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.meter.write_result(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, len: usize) -> Vec<u8> {
        let mut f = vec![0, (len >> 8) as u8, len as u8, kind, flags, 0, 0, 0, 1];
        f.resize(9 + len, 0);
        f
    }

    #[test]
    fn the_preface_and_request_frames_cost_nothing() {
        let meter = Meter::new();
        let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        bytes.extend(frame(0x1, 0x5, 40));
        bytes.extend(frame(0x0, 0x0, 100));
        bytes.extend(frame(0x0, 0x1, 0));
        bytes.extend(frame(0x6, 0x0, 8));
        // Byte by byte: frame headers split across reads.
        for b in &bytes {
            meter.scan(std::slice::from_ref(b));
        }
        assert_eq!(meter.charged.get(), 1, "only the PING");
        assert!(!meter.exhausted());
    }

    #[test]
    fn a_flood_spends_the_budget_and_writes_earn_it_back() {
        let meter = Meter::new();
        meter.skip.set(0);
        let ping = frame(0x6, 0, 8);
        for _ in 0..BURST - 10 {
            meter.scan(&ping);
        }
        assert!(!meter.exhausted());
        meter.wrote(100 * 1024);
        for _ in 0..100 {
            meter.scan(&ping);
        }
        assert!(!meter.exhausted(), "100 KiB written earned 100 frames");
        let flood: Vec<u8> = (0..1000).flat_map(|_| ping.clone()).collect();
        meter.scan(&flood);
        assert!(meter.exhausted());
    }
}
