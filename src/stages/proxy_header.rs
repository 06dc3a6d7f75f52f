//! `proxy.protocol`: a connection's first bytes are a PROXY protocol
//! header from a peer in `proxy.trusted`, read by the handler on the
//! connection's first turn. Any other peer is closed unheard; a trusted
//! peer whose header is bad, too long or late (`timeouts.header_read`
//! after the accept) is closed too. Reading parks like any read: a slow
//! proxy never holds a worker. Read, the connection counts against the
//! connections of the client it names (`limits.per_client.connections`).

use std::time::Instant;

use crate::config::Client;
use crate::http::{parse_proxy_header, ProxyHeader};
use crate::service::client::peer_of;
use crate::service::ServiceContext;

use super::per_client::{self, OverLimit};
use super::pressure::Warning;
use super::{Conn, Line};

/// Said when a connection is refused, at most every `WARN_EVERY`: a load
/// balancer missing from `proxy.trusted` would otherwise fail silently.
static REFUSED: Warning = Warning::new();

/// What became of the header.
pub(crate) enum HeaderRead {
    /// Read: the connection's client is known; its bytes are consumed.
    Done,
    /// Nothing has arrived yet: wait in the reactor.
    Park,
    /// Untrusted peer, bad header, peer gone or too late: close.
    Close,
    /// The client it names holds `limits.per_client.connections` already:
    /// answered 503; close once the client has stopped sending.
    Refused,
}

/// Whether this turn must first read the connection's PROXY header.
pub(crate) fn wanted(conn: &Conn, ctx: &ServiceContext<'_>) -> bool {
    ctx.config.proxy.protocol && conn.proxied().is_none() && conn.requests == 0
}

/// Reads and takes the PROXY header at the front of the connection's
/// input, by `deadline`.
pub(crate) async fn read(
    conn: &mut Conn,
    line: &Line,
    ctx: &ServiceContext<'_>,
    deadline: Instant,
) -> HeaderRead {
    let peer = peer_of(&conn.stream);
    if !ctx.config.proxy.trusts(peer) {
        REFUSED.say(|| {
            format!(
                "closed a connection from {peer}: proxy.protocol is on and {peer} is not in \
                 proxy.trusted; list the load balancer's addresses there"
            )
        });
        return HeaderRead::Close;
    }
    let size = ctx.read_buffer_size();
    loop {
        match parse_proxy_header(conn.input.pending()) {
            Ok(Some((header, len))) => {
                conn.input.consume(len);
                let client = match header {
                    ProxyHeader::Proxied { source, .. } => Client::Ip(source.ip()),
                    ProxyHeader::Unix => Client::Unix,
                    ProxyHeader::Local => peer,
                };
                conn.set_proxied(client);
                // Counted for the client it names, not the proxy (the
                // acceptor left it uncounted); one over the limit is
                // answered 503 as at accept.
                if !conn.is_held() {
                    match per_client::admit_proxied(line, &ctx.config, client, &conn.stream) {
                        Ok(hold) => conn.hold(hold),
                        Err(OverLimit) => return HeaderRead::Refused,
                    }
                }
                return HeaderRead::Done;
            }
            Err(why) => {
                REFUSED.say(|| format!("closed a connection from {peer}: {}", why.0));
                return HeaderRead::Close;
            }
            Ok(None) if !conn.input.has_pending() => {
                match conn.try_fill(size, line.metrics.here()) {
                    Ok(Some(n)) if n > 0 => {}
                    Ok(None) => return HeaderRead::Park,
                    _ => return HeaderRead::Close,
                }
            }
            Ok(None) => match conn.fill(size, deadline, line.metrics.here()).await {
                Ok(n) if n > 0 => {}
                _ => return HeaderRead::Close,
            },
        }
    }
}
