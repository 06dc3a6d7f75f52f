//! What becomes of a request body the route does not read, and of a
//! client that may still be sending when its connection closes: the
//! handler's rules, kept apart from its loop.

use std::time::Instant;

use crate::http::{BodyFraming, Request};
use crate::service::{read_buffer_size, ServiceContext};

use super::Conn;

/// Bodies sent to routes that ignore them are read and dropped up to this
/// size (so the connection can stay open); larger ones close it.
const DRAIN_LIMIT: u64 = 64 * 1024;

/// Whether a client whose connection closes after this response may still
/// be sending: the answer refused its request (a body may be on its way),
/// or bytes past the answered requests are here, or arriving when more
/// could follow (it asked to keep the connection, or sent a body). A
/// client that asked to close and sent no body costs no peek; one that is
/// neither sending nor reading (a write timeout) is closed at once.
pub(super) fn may_still_send(req: &Request, conn: &Conn, status: u16) -> bool {
    !conn.stream.is_pipe()
        && (status >= 400
            || conn.input.has_pending()
            || ((req.keep_alive || req.body != BodyFraming::None) && conn.stream.has_unread()))
}

/// A body sent to a route that ignores it can be read and dropped (so the
/// connection stays open) when it is small and Content-Length framed, and
/// the client is not waiting for `100 Continue`. Any other such body closes
/// the connection after the response: it is never misread as a request.
pub(super) fn drainable(req: &Request) -> Option<u64> {
    match req.body {
        BodyFraming::None => Some(0),
        BodyFraming::Length(len) if len <= DRAIN_LIMIT && !req.expect_continue => Some(len),
        _ => None,
    }
}

/// Reads and drops `len` body bytes. False if the body did not arrive.
pub(super) async fn drain(conn: &mut Conn, ctx: &ServiceContext<'_>, mut len: u64) -> bool {
    let deadline = Instant::now() + ctx.config.timeouts.header_read;
    let size = read_buffer_size(&ctx.config);
    loop {
        let take = conn.input.pending().len().min(len as usize);
        conn.input.consume(take);
        len -= take as u64;
        if len == 0 {
            return true;
        }
        match conn.fill(size, deadline, ctx.metrics.here()).await {
            Ok(n) if n > 0 => {}
            _ => return false,
        }
    }
}
