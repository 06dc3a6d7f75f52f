//! `ReadBuffer`: bytes received on a stream but not yet consumed, in a buffer
//! borrowed from the worker's pool, and the worker's numbering of reads.
//!
//! Generic bytes: what the bytes mean (a request preamble, a body) is the
//! caller's business.

use std::cell::Cell;
use std::io;
use std::time::Instant;

use super::local_pool::LocalPool;
use super::{timeout_at, Stream};

thread_local! {
    /// Buffers kept per worker for reuse.
    static BUFFERS: LocalPool<Box<[u8]>> = const { LocalPool::new(256) };
    /// Numbers this worker's socket reads in order (see `ReadBuffer::received_seq`).
    static READ_SEQ: Cell<u64> = const { Cell::new(0) };
}

/// The number the next read on this worker will get: anything done now
/// happened after every read numbered below it.
pub fn read_seq_now() -> u64 {
    READ_SEQ.with(Cell::get)
}

fn next_read_seq() -> u64 {
    READ_SEQ.with(|seq| {
        let this = seq.get();
        seq.set(this + 1);
        this
    })
}

fn take_buffer(size: usize) -> Box<[u8]> {
    BUFFERS
        .with(LocalPool::take)
        .filter(|buf| buf.len() == size)
        .unwrap_or_else(|| vec![0; size].into_boxed_slice())
}

fn give_buffer(buf: Box<[u8]>) {
    // A full pool hands the buffer back; it is freed here.
    let _ = BUFFERS.try_with(|pool| pool.give(buf));
}

/// Bytes received but not yet consumed. An idle connection holds none: its
/// buffer goes back to the worker's pool.
#[derive(Default)]
pub struct ReadBuffer {
    buf: Option<Box<[u8]>>,
    start: u32,
    end: u32,
    /// The worker's read number (`read_seq_now`) of the last read into this
    /// buffer: the bytes buffered arrived no later than that read.
    received_seq: u64,
}

impl ReadBuffer {
    /// Offsets are u32 (buffers are at most a few MiB): this struct is part
    /// of every idle connection.
    fn bounds(&self) -> (usize, usize) {
        (self.start as usize, self.end as usize)
    }

    fn set_bounds(&mut self, start: usize, end: usize) {
        // Both are within a buffer whose size came from a u32-sized config.
        self.start = u32::try_from(start).unwrap_or(u32::MAX);
        self.end = u32::try_from(end).unwrap_or(u32::MAX);
    }

    /// The unconsumed bytes.
    pub fn pending(&self) -> &[u8] {
        let (start, end) = self.bounds();
        match &self.buf {
            Some(buf) => &buf[start..end],
            None => &[],
        }
    }

    /// Whether any received bytes are still unconsumed.
    pub fn has_pending(&self) -> bool {
        self.start < self.end
    }

    /// Marks the first `n` pending bytes as used (all of them if `n` is
    /// larger).
    pub fn consume(&mut self, n: usize) {
        let (start, end) = self.bounds();
        let start = (start + n).min(end);
        if start == end {
            self.set_bounds(0, 0);
        } else {
            self.set_bounds(start, end);
        }
    }

    /// The worker's read number of the last read into this buffer.
    pub fn received_seq(&self) -> u64 {
        self.received_seq
    }

    /// Free room to read into, after moving pending bytes to the front; a
    /// buffer of `size` bytes is taken from the pool if there is none. Empty
    /// when the buffer is full of pending bytes.
    pub fn spare(&mut self, size: usize) -> &mut [u8] {
        let (mut start, mut end) = self.bounds();
        let buf = self.buf.get_or_insert_with(|| take_buffer(size));
        if start > 0 && end == buf.len() {
            buf.copy_within(start..end, 0);
            end -= start;
            start = 0;
        }
        self.set_bounds(start, end);
        match &mut self.buf {
            Some(buf) => &mut buf[end..],
            None => &mut [],
        }
    }

    /// Marks `n` bytes of the last `spare` as received, numbering the read.
    pub fn filled(&mut self, n: usize) {
        let len = self.buf.as_ref().map_or(0, |b| b.len());
        let (start, end) = self.bounds();
        self.set_bounds(start, (end + n).min(len));
        self.received_seq = next_read_seq();
    }

    /// Returns the buffer to the pool if nothing is pending.
    pub fn release_if_empty(&mut self) {
        if !self.has_pending() {
            if let Some(buf) = self.buf.take() {
                give_buffer(buf);
            }
            self.start = 0;
            self.end = 0;
        }
    }

    /// Reads more bytes from `stream` into this buffer (of `size` bytes), by
    /// `deadline`. Ok(0) means the peer closed; a full buffer is an error.
    pub async fn read_from(
        &mut self,
        stream: &Stream,
        size: usize,
        deadline: Instant,
    ) -> io::Result<usize> {
        let spare = self.spare(size);
        if spare.is_empty() {
            return Err(full());
        }
        let n = timeout_at(deadline, stream.read(spare)).await??;
        self.filled(n);
        Ok(n)
    }

    /// Reads what has arrived without waiting: None if nothing has (and
    /// then this holds no buffer, unless bytes were pending). Ok(Some(0)):
    /// peer closed.
    pub fn try_read_from(&mut self, stream: &Stream, size: usize) -> io::Result<Option<usize>> {
        let read = match self.spare(size) {
            [] => Err(full()),
            spare => stream.try_read(spare),
        };
        match read {
            Ok(n) => {
                self.filled(n);
                Ok(Some(n))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.release_if_empty();
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

fn full() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "read buffer full")
}

impl Drop for ReadBuffer {
    fn drop(&mut self) {
        if let Some(buf) = self.buf.take() {
            give_buffer(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumes_compacts_and_numbers_reads() {
        let mut input = ReadBuffer::default();
        let spare = input.spare(8);
        assert_eq!(spare.len(), 8);
        spare[..5].copy_from_slice(b"hello");
        let before = read_seq_now();
        input.filled(5);
        assert_eq!(input.received_seq(), before);
        assert!(read_seq_now() > before);
        assert_eq!(input.pending(), b"hello");
        input.consume(2);
        assert_eq!(input.pending(), b"llo");
        // Room at the end: nothing moves.
        assert_eq!(input.spare(8).len(), 3);
        input.spare(8).copy_from_slice(b"abc");
        input.filled(3);
        // Full to the end: pending bytes move to the front.
        assert_eq!(input.spare(8).len(), 2);
        assert_eq!(input.pending(), b"lloabc");
        input.consume(100);
        assert!(!input.has_pending());
        input.release_if_empty();
        assert!(input.pending().is_empty());
    }
}
