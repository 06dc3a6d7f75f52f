//! What the handler serves: `/echo`, `/status` and static files.
//!
//! A service gets an [`Exchange`]: the parsed request, the connection (whose
//! input still starts with the request's preamble) and the output buffer.
//! Small responses are appended to the buffer, so pipelined responses leave
//! in one write; a service that streams (sendfile, echo bodies) flushes the
//! buffer first and then writes to the socket itself.

pub mod echo;
pub mod static_files;
pub mod status;

use std::io;
use std::time::Duration;

use crate::http::{write_error, write_head, Head, Request};
use crate::metrics::WorkerMetrics;
use crate::runtime::{timeout, TcpStream};
use crate::stages::{Conn, Line};

/// One request and everything needed to answer it.
pub struct Exchange<'a> {
    pub req: &'a Request,
    pub conn: &'a mut Conn,
    pub out: &'a mut Vec<u8>,
    pub line: &'a Line,
    /// Whether the connection may stay open after this response.
    pub keep_alive: bool,
}

/// How a response ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub status: u16,
    pub body_bytes: u64,
    /// False when the connection must close after this response.
    pub keep_alive: bool,
}

impl Exchange<'_> {
    pub fn head<'h>(
        &self,
        status: u16,
        length: Option<u64>,
        content_type: Option<&'h str>,
        extra: &'h [(&'h str, &'h str)],
    ) -> Head<'h> {
        Head {
            status,
            content_length: length,
            content_type,
            keep_alive: self.keep_alive,
            http10_keep_alive: self.req.minor_version == 0,
            extra,
        }
    }

    /// Appends a complete small response (head, and body unless HEAD).
    pub fn respond(
        &mut self,
        status: u16,
        content_type: &str,
        body: &[u8],
        extra: &[(&str, &str)],
    ) -> Outcome {
        let head = self.head(status, Some(body.len() as u64), Some(content_type), extra);
        write_head(self.out, &head);
        let is_head = self.req.method == crate::http::Method::Head;
        if !is_head {
            self.out.extend_from_slice(body);
        }
        Outcome {
            status,
            body_bytes: if is_head { 0 } else { body.len() as u64 },
            keep_alive: self.keep_alive,
        }
    }

    /// Appends an error response with a short text body.
    pub fn error(&mut self, status: u16, message: &str, extra: &[(&str, &str)]) -> Outcome {
        let before = self.out.len();
        write_error(self.out, status, message, self.keep_alive, extra);
        if self.req.method == crate::http::Method::Head {
            // Same head, no body: cut what follows the blank line.
            if let Some(end) = self.out[before..].windows(4).position(|w| w == b"\r\n\r\n") {
                self.out.truncate(before + end + 4);
            }
        }
        Outcome {
            status,
            body_bytes: (self.out.len() - before) as u64,
            keep_alive: self.keep_alive,
        }
    }

    /// Sends what is buffered.
    pub async fn flush(&mut self) -> io::Result<()> {
        flush(&self.conn.stream, self.out, self.line).await
    }

    /// Sends what is buffered when more follows at once (a body streamed
    /// with sendfile): the kernel joins it to what comes next.
    pub async fn flush_more(&mut self) -> io::Result<()> {
        send_buffered(&self.conn.stream, self.out, self.line, Send::More).await
    }
}

/// Writes all of `out` (then clears it), giving each write `timeouts.write`
/// to make progress: a client that stops reading is dropped.
pub async fn flush(stream: &TcpStream, out: &mut Vec<u8>, line: &Line) -> io::Result<()> {
    send_buffered(stream, out, line, Send::Now).await
}

/// Whether a write ends what there is to send, or more follows at once.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Send {
    Now,
    More,
}

async fn send_buffered(
    stream: &TcpStream,
    out: &mut Vec<u8>,
    line: &Line,
    send: Send,
) -> io::Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    let result = write_timed(stream, out, line.config.timeouts.write, send).await;
    line.metrics.here().bytes_out.add_local(out.len() as u64);
    out.clear();
    result
}

pub async fn write_all_timed(stream: &TcpStream, bytes: &[u8], limit: Duration) -> io::Result<()> {
    write_timed(stream, bytes, limit, Send::Now).await
}

async fn write_timed(
    stream: &TcpStream,
    mut bytes: &[u8],
    limit: Duration,
    send: Send,
) -> io::Result<()> {
    while !bytes.is_empty() {
        let n = match send {
            Send::Now => timeout(limit, stream.write(bytes)).await??,
            Send::More => timeout(limit, stream.write_more(bytes)).await??,
        };
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        bytes = &bytes[n..];
    }
    Ok(())
}

/// Counts a connection as "writing" while a response streams.
pub struct Writing<'a>(&'a WorkerMetrics);

impl<'a> Writing<'a> {
    pub fn new(metrics: &'a WorkerMetrics) -> Self {
        WorkerMetrics::inc(&metrics.writing);
        Writing(metrics)
    }
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        WorkerMetrics::dec(&self.0.writing);
    }
}

/// Counts a connection as "reading" while a handler serves it. A guard, so
/// a handler that panics (its future dropped mid-request) still gives it back.
pub struct Reading<'a>(&'a WorkerMetrics);

impl<'a> Reading<'a> {
    pub fn new(metrics: &'a WorkerMetrics) -> Self {
        WorkerMetrics::inc(&metrics.reading);
        Reading(metrics)
    }
}

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        WorkerMetrics::dec(&self.0.reading);
    }
}
