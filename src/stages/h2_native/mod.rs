//! The native HTTP/2 engine (`http2.engine = "native"`): the connection
//! stage's framing, HPACK (`http::hpack`) and flow control written for
//! this server, in place of the `h2` crate. One green thread per
//! connection owns the socket, reads and answers every frame, and sends
//! each stream's response; the stream's request goes onto the pending
//! queue as with the `h2` engine (an HTTP/1.1 preamble on an in-memory
//! pipe), so the same handler answers it. No green thread per stream, no
//! allocation per frame, every frame of a turn written in one write, and
//! no buffer kept while the connection idles.
//!
//! The limits of docs/http2.md hold as with the `h2` engine: the stream
//! limit (REFUSED_STREAM past it), the header list limit (a larger list is
//! answered 431 without being expanded, ten times larger is GOAWAY
//! ENHANCE_YOUR_CALM), a header block no larger than the limit
//! (CONTINUATION floods), the frame budget of `h2_guard`, the reset budget
//! (rapid reset), the write timeout for a shut window and for a socket
//! that takes nothing, GOAWAY on stop, drain and idle.

mod conn;
mod frame;
mod head_memo;
mod request;
mod stream;

pub(super) use conn::serve;
