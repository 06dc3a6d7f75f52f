//! Reading responses off a connection: the head parsed with httparse, the
//! body framed by Content-Length, chunked encoding or the connection's end,
//! and counted as it passes rather than kept.

use std::io;

use conveyor::http::{ChunkedDecoder, Step};
use conveyor::runtime::Stream;

/// One complete response.
pub(crate) struct Response {
    pub(crate) status: u16,
    /// Head and body.
    pub(crate) bytes: u64,
    /// It ends the connection (`Connection: close`, or a body read to EOF).
    pub(crate) closes: bool,
}

/// Reads responses off a stream, keeping bytes of the next one.
#[derive(Default)]
pub(crate) struct ResponseReader {
    /// Received bytes live in `buf[start..end]`; the buffer is zeroed once
    /// and reused (re-zeroing 64 KiB per read cost a quarter of the client).
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_string())
}

impl ResponseReader {
    /// Reads more bytes; `Ok(false)` at end of stream.
    async fn fill_or_eof(&mut self, stream: &Stream) -> io::Result<bool> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            let grown = (self.buf.len() * 2).max(64 * 1024);
            self.buf.resize(grown, 0);
        }
        let n = stream.read(&mut self.buf[self.end..]).await?;
        self.end += n;
        Ok(n > 0)
    }

    async fn fill(&mut self, stream: &Stream) -> io::Result<()> {
        if self.fill_or_eof(stream).await? {
            Ok(())
        } else {
            Err(io::ErrorKind::UnexpectedEof.into())
        }
    }

    /// One response of any status, its body framed by Content-Length,
    /// chunked, or (with neither) the end of the connection.
    pub(crate) async fn next(&mut self, stream: &Stream) -> io::Result<Response> {
        let (head_len, status, framing, closes) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            match response.parse(&self.buf[self.start..self.end]) {
                Ok(httparse::Status::Complete(n)) => {
                    let status = response.code.unwrap_or(0);
                    let closes = response.headers.iter().any(|h| {
                        h.name.eq_ignore_ascii_case("connection")
                            && h.value.eq_ignore_ascii_case(b"close")
                    });
                    let framing = if status < 200 {
                        // An interim response (100 Continue) before the real one.
                        return Err(invalid("unexpected 1xx response"));
                    } else if status == 204 || status == 304 {
                        Framing::Length(0)
                    } else {
                        framing_of(response.headers)?
                    };
                    break (n, status, framing, closes);
                }
                Ok(httparse::Status::Partial) => self.fill(stream).await?,
                Err(_) => return Err(invalid("malformed response")),
            }
        };
        self.start += head_len;
        let body = match framing {
            Framing::Length(len) => {
                let len = usize::try_from(len).map_err(|_| invalid("huge body"))?;
                // Large bodies are counted as they pass, not kept.
                let mut left = len;
                loop {
                    let have = (self.end - self.start).min(left);
                    self.start += have;
                    left -= have;
                    if left == 0 {
                        break;
                    }
                    self.fill(stream).await?;
                }
                len
            }
            Framing::Chunked => {
                let mut decoder = ChunkedDecoder::new();
                let mut len = 0;
                loop {
                    match decoder
                        .step(&self.buf[self.start..self.end])
                        .map_err(|_| invalid("bad chunk"))?
                    {
                        Step::Data(r) => {
                            len += r.len();
                            self.start += r.end;
                        }
                        Step::Skip(n) => self.start += n,
                        Step::NeedMore => self.fill(stream).await?,
                        Step::Done(n) => {
                            self.start += n;
                            break len;
                        }
                    }
                }
            }
            Framing::UntilClose => {
                let mut len = self.end - self.start;
                self.start = self.end;
                while self.fill_or_eof(stream).await? {
                    len += self.end - self.start;
                    self.start = self.end;
                }
                len
            }
        };
        Ok(Response {
            status,
            bytes: (head_len + body) as u64,
            closes: closes || matches!(framing, Framing::UntilClose),
        })
    }
}

enum Framing {
    Length(u64),
    Chunked,
    /// Neither header: the body ends with the connection (RFC 9112 §6.3).
    UntilClose,
}

fn framing_of(headers: &[httparse::Header<'_>]) -> io::Result<Framing> {
    for h in headers {
        if h.name.eq_ignore_ascii_case("content-length") {
            let text = std::str::from_utf8(h.value).map_err(|_| invalid("bad length"))?;
            return text
                .trim()
                .parse()
                .map(Framing::Length)
                .map_err(|_| invalid("bad length"));
        }
        if h.name.eq_ignore_ascii_case("transfer-encoding")
            && h.value.eq_ignore_ascii_case(b"chunked")
        {
            return Ok(Framing::Chunked);
        }
    }
    Ok(Framing::UntilClose)
}
