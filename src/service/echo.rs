//! `/echo`: GET/HEAD answer with the request's own preamble as text; POST/PUT
//! stream the body back as it arrives, in constant memory. Reading waits for
//! each chunk to be written, so a slow reader slows the sender (flow control
//! both ways through the TCP windows).

use std::io;

use crate::http::response::CONTINUE_100;
use crate::http::{write_head, BodyFraming, ChunkedDecoder, Method, Step};

use super::{write_all_timed, Exchange, Outcome, Writing};

const ALLOW: &[(&str, &str)] = &[("Allow", "GET, HEAD, POST, PUT")];

pub async fn serve(ex: &mut Exchange<'_>) -> Outcome {
    let preamble_len = ex.req.preamble_len;
    match ex.req.method {
        Method::Get | Method::Head => {
            let raw = ex.conn.input.pending()[..preamble_len].to_vec();
            ex.conn.input.consume(preamble_len);
            ex.respond(200, "text/plain; charset=utf-8", &raw, &[])
        }
        Method::Post | Method::Put => {
            ex.conn.input.consume(preamble_len);
            match stream_body(ex).await {
                Ok(outcome) => outcome,
                // Head already sent: all we can do is close.
                Err(_) => Outcome {
                    status: 200,
                    body_bytes: 0,
                    keep_alive: false,
                },
            }
        }
        // A body sent with these is not read here: the handler drains it
        // or closes the connection, as for every route that ignores one.
        _ => {
            ex.conn.input.consume(preamble_len);
            ex.error(405, "use GET, HEAD, POST or PUT", ALLOW)
        }
    }
}

async fn stream_body(ex: &mut Exchange<'_>) -> io::Result<Outcome> {
    let max = ex.line.config.limits.max_echo_body;
    let too_large = match ex.req.body {
        BodyFraming::Length(n) => n > max,
        _ => false,
    };
    if too_large {
        ex.keep_alive = false;
        return Ok(ex.error(413, "body larger than limits.max_echo_body", &[]));
    }
    if ex.req.expect_continue && ex.req.body != BodyFraming::None {
        ex.out.extend_from_slice(CONTINUE_100);
    }
    let _writing = Writing::new(ex.line.metrics.here());
    match ex.req.body {
        BodyFraming::None => Ok(ex.respond(200, "application/octet-stream", &[], &[])),
        BodyFraming::Length(len) => {
            let head = ex.head(200, Some(len), Some("application/octet-stream"), &[]);
            write_head(ex.out, &head);
            ex.flush().await?;
            copy_exact(ex, len).await?;
            Ok(Outcome {
                status: 200,
                body_bytes: len,
                keep_alive: ex.keep_alive,
            })
        }
        BodyFraming::Chunked => copy_chunked(ex, max).await,
    }
}

/// Reads more body bytes into the connection's buffer; EOF is an error here.
async fn fill(ex: &mut Exchange<'_>) -> io::Result<()> {
    let limit = ex.line.config.timeouts.header_read;
    let size = read_buffer_size(ex);
    let deadline = std::time::Instant::now() + limit;
    match ex.conn.fill(size, deadline, ex.line.metrics.here()).await? {
        0 => Err(io::ErrorKind::UnexpectedEof.into()),
        _ => Ok(()),
    }
}

pub fn read_buffer_size(ex: &Exchange<'_>) -> usize {
    crate::stages::handler::read_buffer_size(&ex.line.config)
}

async fn copy_exact(ex: &mut Exchange<'_>, len: u64) -> io::Result<()> {
    let limit = ex.line.config.timeouts.write;
    let mut left = len;
    while left > 0 {
        if !ex.conn.input.has_pending() {
            fill(ex).await?;
        }
        let pending = ex.conn.input.pending();
        let take = pending
            .len()
            .min(usize::try_from(left).unwrap_or(usize::MAX));
        write_all_timed(&ex.conn.stream, &pending[..take], limit).await?;
        ex.conn.input.consume(take);
        ex.line.metrics.here().bytes_out.add_local(take as u64);
        left -= take as u64;
    }
    Ok(())
}

/// Streams a chunked body back, chunked. The 200 head waits until the first
/// chunk (or the end) has been decoded, so a body malformed from the start
/// still gets its 400 (RFC 9112 §2.2); once the head is out, an error can
/// only close the connection.
async fn copy_chunked(ex: &mut Exchange<'_>, max: u64) -> io::Result<Outcome> {
    let limit = ex.line.config.timeouts.write;
    let mut decoder = ChunkedDecoder::new();
    let mut total = 0u64;
    let mut head_sent = false;
    loop {
        let step = match decoder.step(ex.conn.input.pending()) {
            Ok(step) => step,
            Err(e) if !head_sent => {
                ex.keep_alive = false;
                return Ok(ex.error(e.status, e.message, &[]));
            }
            Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e.message)),
        };
        if !head_sent && matches!(step, Step::Data(_) | Step::Done(_)) {
            let extra = [("Transfer-Encoding", "chunked")];
            let head = ex.head(200, None, Some("application/octet-stream"), &extra);
            write_head(ex.out, &head);
            ex.flush().await?;
            head_sent = true;
        }
        match step {
            Step::Data(range) => {
                let len = range.len();
                total += len as u64;
                if total > max {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "body too large"));
                }
                let size_line = format!("{len:x}\r\n");
                write_all_timed(&ex.conn.stream, size_line.as_bytes(), limit).await?;
                write_all_timed(
                    &ex.conn.stream,
                    &ex.conn.input.pending()[range.clone()],
                    limit,
                )
                .await?;
                write_all_timed(&ex.conn.stream, b"\r\n", limit).await?;
                ex.conn.input.consume(range.end);
                let framing = size_line.len() + 2;
                ex.line
                    .metrics
                    .here()
                    .bytes_out
                    .add_local((len + framing) as u64);
            }
            Step::Skip(n) => ex.conn.input.consume(n),
            Step::NeedMore => {
                // A pending 100 Continue must go out before we wait for the body.
                ex.flush().await?;
                fill(ex).await?;
            }
            Step::Done(n) => {
                ex.conn.input.consume(n);
                write_all_timed(&ex.conn.stream, b"0\r\n\r\n", limit).await?;
                return Ok(Outcome {
                    status: 200,
                    body_bytes: total,
                    keep_alive: ex.keep_alive,
                });
            }
        }
    }
}
