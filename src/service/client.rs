//! Who the client is: the one address every per-client decision goes by
//! (`status.allow`, the access log). It is the connection's peer, unless
//! that peer is a proxy in `proxy.trusted`: then the PROXY protocol
//! header it sent, or (without `proxy.protocol`) the rightmost address in
//! `X-Forwarded-For` that is not itself trusted, as nginx's
//! `real_ip_recursive` walks it.
//!
//! Without `[proxy]` this costs what it did before: one `getpeername`,
//! only when something asks.

use std::net::{IpAddr, SocketAddr};

use crate::config::{Client, ProxyConfig};
use crate::http::Request;
use crate::runtime::Stream;

/// The header a proxy appends the address it got the request from to.
pub const FORWARDED_FOR: &str = "X-Forwarded-For";

/// The connection's peer, asked of the kernel.
pub fn peer_of(stream: &Stream) -> Client {
    let Some(socket) = stream.get_ref() else {
        // A pipe standing in for a connection: its connection's peer.
        return stream
            .peer_addr()
            .map_or(Client::Unknown, |a| Client::Ip(a.ip()));
    };
    match socket2::SockRef::from(socket).peer_addr() {
        Ok(addr) => match addr.as_socket() {
            Some(sa) => Client::Ip(sa.ip()),
            None if addr.domain() == socket2::Domain::UNIX => Client::Unix,
            None => Client::Unknown,
        },
        Err(_) => Client::Unknown,
    }
}

/// The client of `req` (whose preamble is `preamble`, or None once
/// consumed) on a connection whose PROXY header named `proxied`.
pub fn client_of(
    proxy: &ProxyConfig,
    proxied: Option<Client>,
    stream: &Stream,
    req: Option<(&Request, &[u8])>,
) -> Client {
    match connection_client(proxy, proxied, stream) {
        Ok(client) => client,
        Err(peer) => match req {
            Some((req, preamble)) => forwarded_for(proxy, peer, req, preamble),
            // A trusted peer's request no longer readable: never the proxy
            // itself, which status.allow may well admit.
            None => Client::Unknown,
        },
    }
}

/// The client of every request on a connection whose PROXY header named
/// `proxied`, or `Err(peer)`: the peer is a trusted proxy, and each
/// request names its own client in `X-Forwarded-For` ([`forwarded_for`]).
/// One `getpeername` at most, for a caller that asks for many requests.
pub fn connection_client(
    proxy: &ProxyConfig,
    proxied: Option<Client>,
    stream: &Stream,
) -> Result<Client, Client> {
    if let Some(client) = proxied {
        return Ok(client);
    }
    if proxy.protocol {
        // A connection that never sent the header (one accepted before a
        // reload turned it on): its peer may be the proxy; believe no one.
        return Ok(Client::Unknown);
    }
    let peer = peer_of(stream);
    if !proxy.reads_forwarded_for() || !proxy.trusts(peer) {
        return Ok(peer);
    }
    Err(peer)
}

/// Walks `X-Forwarded-For` from the right (the last line first), while the
/// address reached is trusted: the first untrusted one is the client; if
/// all are trusted, the leftmost. An entry that is not an address stops
/// the walk at `Unknown`, which nothing admits.
pub fn forwarded_for(proxy: &ProxyConfig, peer: Client, req: &Request, preamble: &[u8]) -> Client {
    let mut client = peer;
    for value in req.fields_named(preamble, FORWARDED_FOR).rev() {
        for entry in value.rsplit(|&b| b == b',') {
            if !proxy.trusts(client) {
                return client;
            }
            client = match parse_entry(entry) {
                Some(ip) => Client::Ip(ip),
                None => return Client::Unknown,
            };
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an address, or an address and port
/// (`192.0.2.1:80`, `[2001:db8::1]:80`, `[2001:db8::1]`).
fn parse_entry(entry: &[u8]) -> Option<IpAddr> {
    let s = std::str::from_utf8(entry).ok()?.trim_matches([' ', '\t']);
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    s.strip_prefix('[')?.strip_suffix(']')?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AddrRange;
    use crate::http::{parse_request, Limits};

    fn proxy(trusted: &[&str]) -> ProxyConfig {
        ProxyConfig {
            trusted: trusted
                .iter()
                .map(|s| AddrRange::parse(s).unwrap())
                .collect(),
            protocol: false,
        }
    }

    fn walk(proxy: &ProxyConfig, peer: &str, fields: &str) -> Client {
        let pre = format!("GET / HTTP/1.1\r\nHost: x\r\n{fields}\r\n");
        let limits = Limits {
            max_request_line: 8192,
            max_header_bytes: 8192,
            max_headers: 100,
        };
        let req = parse_request(pre.as_bytes(), &limits).unwrap().unwrap();
        forwarded_for(
            proxy,
            Client::Ip(peer.parse().unwrap()),
            &req,
            pre.as_bytes(),
        )
    }

    fn ip(s: &str) -> Client {
        Client::Ip(s.parse().unwrap())
    }

    #[test]
    fn the_rightmost_untrusted_address_is_the_client() {
        let p = proxy(&["127.0.0.1", "10.0.0.0/8"]);
        let xff = "X-Forwarded-For: 6.6.6.6, 203.0.113.9, 10.1.1.1\r\n";
        assert_eq!(walk(&p, "127.0.0.1", xff), ip("203.0.113.9"));
        // A client's own line comes first; the proxy's is last.
        let lines = "X-Forwarded-For: 127.0.0.1\r\nX-Forwarded-For: 203.0.113.9\r\n";
        assert_eq!(walk(&p, "127.0.0.1", lines), ip("203.0.113.9"));
        // All trusted: the leftmost.
        let xff = "X-Forwarded-For: 10.9.9.9,10.1.1.1\r\n";
        assert_eq!(walk(&p, "127.0.0.1", xff), ip("10.9.9.9"));
        // No field: the peer.
        assert_eq!(walk(&p, "127.0.0.1", ""), ip("127.0.0.1"));
        // Ports and brackets.
        let xff = "X-Forwarded-For: [2001:db8::1]:443, 192.0.2.1:80\r\n";
        assert_eq!(walk(&p, "127.0.0.1", xff), ip("192.0.2.1"));
        let xff = "X-Forwarded-For: [2001:db8::1]\r\n";
        assert_eq!(walk(&p, "127.0.0.1", xff), ip("2001:db8::1"));
    }

    #[test]
    fn an_untrusted_peer_is_the_client_and_garbage_is_nobody() {
        let p = proxy(&["127.0.0.1"]);
        let xff = "X-Forwarded-For: 127.0.0.1\r\n";
        assert_eq!(walk(&p, "192.0.2.5", xff), ip("192.0.2.5"));
        for bad in ["unknown", "", "1.2.3.4 5", "10.0.0.1,"] {
            let xff = format!("X-Forwarded-For: {bad}\r\n");
            assert_eq!(walk(&p, "127.0.0.1", &xff), Client::Unknown, "{bad:?}");
        }
        // Garbage left of an untrusted address is never reached.
        let xff = "X-Forwarded-For: junk, 192.0.2.7\r\n";
        assert_eq!(walk(&p, "127.0.0.1", xff), ip("192.0.2.7"));
    }
}
