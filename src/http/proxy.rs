//! The PROXY protocol header (HAProxy's spec, versions 1 and 2): what a
//! proxy in front sends before the first request to say who the client is
//! (HAProxy's `send-proxy`/`send-proxy-v2`, nginx's `proxy_protocol`).
//!
//! Framing only: whether a peer may send one is the caller's decision.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The version 1 (text) header starts with this.
const V1_PREFIX: &[u8] = b"PROXY ";
/// A version 1 header is at most 107 bytes, CRLF included.
pub const V1_MAX: usize = 107;
/// The version 2 (binary) header starts with these 12 bytes.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// The fixed part of a version 2 header: signature, version and command,
/// family and transport, length of what follows.
const V2_FIXED: usize = 16;
/// The longest version 2 header taken: a Unix address block is 216 bytes;
/// TLVs (HAProxy's `unique-id`, TLS facts) fit in the rest.
pub const V2_MAX: usize = 4096;

/// What a PROXY header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyHeader {
    /// The proxy relays a client at `source`, which reached `destination`.
    Proxied {
        /// The client's address.
        source: SocketAddr,
        /// The address the client connected to, at the proxy.
        destination: SocketAddr,
    },
    /// The client reached the proxy over a Unix-domain socket.
    Unix,
    /// The proxy speaks for itself (v2 `LOCAL`, such as a health check), or
    /// names no family it can say (v1 `UNKNOWN`, v2 `UNSPEC`, datagrams):
    /// the connection's own peer is the client.
    Local,
}

/// Why a header is refused: the connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyError(pub &'static str);

/// Parses a PROXY header at the start of `buf`: `Ok(None)` until enough
/// bytes are there, then the header and its length in bytes (what follows
/// is the first request). Anything that cannot become a valid header is an
/// error as soon as it shows, so a peer that sends HTTP instead is not
/// waited for.
pub fn parse_proxy_header(buf: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyError> {
    let v1 = prefix_of(buf, V1_PREFIX);
    let v2 = prefix_of(buf, V2_SIGNATURE);
    match (v1, v2) {
        (false, false) => Err(ProxyError("not a PROXY protocol header")),
        (true, _) if buf.len() < V1_PREFIX.len() => Ok(None),
        (true, _) => parse_v1(buf),
        (false, true) => parse_v2(buf),
    }
}

/// Whether `buf` and `sig` agree on their common length.
fn prefix_of(buf: &[u8], sig: &[u8]) -> bool {
    let n = buf.len().min(sig.len());
    buf[..n] == sig[..n]
}

fn parse_v1(buf: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyError> {
    let window = &buf[..buf.len().min(V1_MAX)];
    // The line ends at its first LF, which must follow a CR.
    let Some(lf) = window.iter().position(|&b| b == b'\n') else {
        return match buf.len() >= V1_MAX {
            true => Err(ProxyError("PROXY v1 line not ended within 107 bytes")),
            false => Ok(None),
        };
    };
    let Some(end) = lf.checked_sub(1).filter(|&cr| window[cr] == b'\r') else {
        return Err(ProxyError("PROXY v1 line ended by a bare LF"));
    };
    let line = std::str::from_utf8(window.get(V1_PREFIX.len()..end).unwrap_or_default())
        .map_err(|_| ProxyError("PROXY v1 line is not ASCII"))?;
    let len = lf + 1;
    let mut words = line.split(' ');
    let family = words.next().unwrap_or("");
    if family == "UNKNOWN" {
        // The rest, if any, is to be ignored (the spec).
        return Ok(Some((ProxyHeader::Local, len)));
    }
    let v6 = match family {
        "TCP4" => false,
        "TCP6" => true,
        _ => return Err(ProxyError("PROXY v1 family is not TCP4, TCP6 or UNKNOWN")),
    };
    let mut next = || words.next().ok_or(ProxyError("PROXY v1 line is short"));
    let (src, dst, sport, dport) = (next()?, next()?, next()?, next()?);
    if words.next().is_some() {
        return Err(ProxyError("PROXY v1 line is long"));
    }
    let source = SocketAddr::new(v1_addr(src, v6)?, v1_port(sport)?);
    let destination = SocketAddr::new(v1_addr(dst, v6)?, v1_port(dport)?);
    Ok(Some((
        ProxyHeader::Proxied {
            source,
            destination,
        },
        len,
    )))
}

fn v1_addr(s: &str, v6: bool) -> Result<IpAddr, ProxyError> {
    let bad = ProxyError("PROXY v1 address is not of its family");
    match v6 {
        false => s.parse::<Ipv4Addr>().map(IpAddr::V4).map_err(|_| bad),
        true => s.parse::<Ipv6Addr>().map(IpAddr::V6).map_err(|_| bad),
    }
}

/// A port: 1 to 5 digits, no leading zero but "0" itself, at most 65535.
fn v1_port(s: &str) -> Result<u16, ProxyError> {
    let digits = !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit());
    match digits && (s == "0" || !s.starts_with('0')) {
        true => s
            .parse()
            .map_err(|_| ProxyError("PROXY v1 port above 65535")),
        false => Err(ProxyError("PROXY v1 port is not a number")),
    }
}

fn parse_v2(buf: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyError> {
    if buf.len() > 12 && buf[12] >> 4 != 2 {
        return Err(ProxyError("PROXY v2 header of another version"));
    }
    if buf.len() < V2_FIXED {
        return Ok(None);
    }
    let command = buf[12] & 0x0f;
    let family = buf[13];
    let body = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    let len = V2_FIXED + body;
    if len > V2_MAX {
        return Err(ProxyError("PROXY v2 header longer than 4096 bytes"));
    }
    if command > 1 {
        return Err(ProxyError("PROXY v2 command is neither LOCAL nor PROXY"));
    }
    let Some(block) = buf.get(V2_FIXED..len) else {
        return Ok(None);
    };
    if command == 0 {
        // LOCAL: the address block and TLVs are to be ignored.
        return Ok(Some((ProxyHeader::Local, len)));
    }
    // High nibble: address family; low: transport (1 stream, 2 datagram).
    let header = match (family >> 4, family & 0x0f) {
        (_, t) if t > 2 => return Err(ProxyError("PROXY v2 transport is unknown")),
        (f, _) if f > 3 => return Err(ProxyError("PROXY v2 address family is unknown")),
        (1, 1) if block.len() >= 12 => {
            let ip = |at: usize| {
                IpAddr::from(<[u8; 4]>::try_from(&block[at..at + 4]).unwrap_or_default())
            };
            proxied(ip(0), ip(4), &block[8..12])
        }
        (2, 1) if block.len() >= 36 => {
            let ip = |at: usize| {
                IpAddr::from(<[u8; 16]>::try_from(&block[at..at + 16]).unwrap_or_default())
            };
            proxied(ip(0), ip(16), &block[32..36])
        }
        (1 | 2, 1) => return Err(ProxyError("PROXY v2 address block is short")),
        (3, 1) => ProxyHeader::Unix,
        // UNSPEC, or a datagram transport: the spec says use the real
        // connection's endpoints.
        _ => ProxyHeader::Local,
    };
    // TLVs after the addresses are skipped: nothing here acts on them.
    Ok(Some((header, len)))
}

fn proxied(source: IpAddr, destination: IpAddr, ports: &[u8]) -> ProxyHeader {
    ProxyHeader::Proxied {
        source: SocketAddr::new(source, u16::from_be_bytes([ports[0], ports[1]])),
        destination: SocketAddr::new(destination, u16::from_be_bytes([ports[2], ports[3]])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn whole(buf: &[u8]) -> (ProxyHeader, usize) {
        // Every proper prefix asks for more; the whole gives the header.
        for n in 0..buf.len() {
            assert_eq!(
                parse_proxy_header(&buf[..n]),
                Ok(None),
                "prefix {n} of {buf:?}"
            );
        }
        parse_proxy_header(buf).unwrap().unwrap()
    }

    #[test]
    fn v1_tcp4_tcp6_and_unknown() {
        let line = b"PROXY TCP4 192.0.2.7 10.0.0.1 56324 443\r\nGET / HTTP/1.1\r\n";
        let (h, len) = parse_proxy_header(line).unwrap().unwrap();
        assert_eq!(len, 41);
        assert_eq!(&line[len..len + 3], b"GET");
        assert_eq!(
            h,
            ProxyHeader::Proxied {
                source: sa("192.0.2.7:56324"),
                destination: sa("10.0.0.1:443")
            }
        );
        let (h, _) = whole(b"PROXY TCP6 2001:db8::7 ::1 65535 0\r\n");
        assert_eq!(
            h,
            ProxyHeader::Proxied {
                source: sa("[2001:db8::7]:65535"),
                destination: sa("[::1]:0")
            }
        );
        assert_eq!(whole(b"PROXY UNKNOWN\r\n"), (ProxyHeader::Local, 15));
        let (h, _) = whole(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n");
        assert_eq!(h, ProxyHeader::Local);
        // The longest there is: 107 bytes.
        let max = b"PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
        assert_eq!(max.len(), V1_MAX);
        assert_eq!(whole(max), (ProxyHeader::Local, 107));
    }

    #[test]
    fn v1_garbage_is_refused() {
        for bad in [
            &b"PROXY TCP4 192.0.2.7 10.0.0.1 56324\r\n"[..],
            b"PROXY TCP4 192.0.2.7 10.0.0.1 56324 443 9\r\n",
            b"PROXY TCP4 ::1 10.0.0.1 1 2\r\n",
            b"PROXY TCP6 10.0.0.1 ::1 1 2\r\n",
            b"PROXY TCP4 192.0.2.7 10.0.0.1 65536 443\r\n",
            b"PROXY TCP4 192.0.2.7 10.0.0.1 0443 443\r\n",
            b"PROXY TCP4 192.0.2.7 10.0.0.1 +1 443\r\n",
            b"PROXY TCP4  192.0.2.7 10.0.0.1 1 443\r\n",
            b"PROXY UDP4 192.0.2.7 10.0.0.1 1 443\r\n",
            b"PROXY TCP4 192.0.2.7 10.0.0.1 1 443\n",
            b"PROXY UNKNOWN \n\r\n",
            b"PROXY \xff\r\n",
            b"GET / HTTP/1.1\r\n",
            b"proxy TCP4",
            b"\r\n\r\n\0\r\nQUIX",
        ] {
            assert!(
                parse_proxy_header(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        // No CRLF in 107 bytes: refused, not waited for.
        let mut long = b"PROXY UNKNOWN ".to_vec();
        long.resize(V1_MAX, b'a');
        assert!(parse_proxy_header(&long).is_err());
        long.truncate(V1_MAX - 1);
        assert_eq!(parse_proxy_header(&long), Ok(None));
        // HTTP is refused on its first byte.
        assert!(parse_proxy_header(b"G").is_err());
    }

    fn v2(command: u8, family: u8, block: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.push(0x20 | command);
        h.push(family);
        h.extend_from_slice(&(block.len() as u16).to_be_bytes());
        h.extend_from_slice(block);
        h
    }

    #[test]
    fn v2_tcp4_tcp6_with_tlvs_skipped() {
        let mut block = vec![192, 0, 2, 7, 10, 0, 0, 1, 0xdc, 0x04, 0x01, 0xbb];
        // A TLV (PP2_TYPE_UNIQUE_ID) after the addresses.
        block.extend_from_slice(&[0x05, 0x00, 0x03, b'a', b'b', b'c']);
        let mut h = v2(1, 0x11, &block);
        let len = h.len();
        assert_eq!(
            whole(&h),
            (
                ProxyHeader::Proxied {
                    source: sa("192.0.2.7:56324"),
                    destination: sa("10.0.0.1:443")
                },
                len
            )
        );
        h.extend_from_slice(b"GET / HTTP/1.1\r\n");
        assert_eq!(parse_proxy_header(&h).unwrap().unwrap().1, len);
        let mut block = vec![0u8; 36];
        block[0..16].copy_from_slice(&"2001:db8::7".parse::<Ipv6Addr>().unwrap().octets());
        block[16..32].copy_from_slice(&Ipv6Addr::LOCALHOST.octets());
        block[32..36].copy_from_slice(&[0x1f, 0x90, 0x00, 0x50]);
        let (h, _) = whole(&v2(1, 0x21, &block));
        assert_eq!(
            h,
            ProxyHeader::Proxied {
                source: sa("[2001:db8::7]:8080"),
                destination: sa("[::1]:80")
            }
        );
    }

    #[test]
    fn v2_local_unspec_unix_and_datagrams() {
        // LOCAL, as HAProxy's health checks send it: addresses ignored.
        assert_eq!(whole(&v2(0, 0x00, &[])).0, ProxyHeader::Local);
        assert_eq!(whole(&v2(0, 0x11, &[1; 12])).0, ProxyHeader::Local);
        assert_eq!(whole(&v2(1, 0x00, &[])).0, ProxyHeader::Local);
        assert_eq!(whole(&v2(1, 0x12, &[1; 12])).0, ProxyHeader::Local);
        assert_eq!(whole(&v2(1, 0x31, &[0; 216])).0, ProxyHeader::Unix);
    }

    #[test]
    fn v2_garbage_is_refused() {
        let mut other_version = v2(1, 0x11, &[0; 12]);
        other_version[12] = 0x11;
        assert!(parse_proxy_header(&other_version[..13]).is_err());
        for bad in [
            other_version,
            v2(2, 0x11, &[0; 12]),
            v2(1, 0x41, &[0; 12]),
            v2(1, 0x13, &[0; 12]),
            v2(1, 0x11, &[0; 11]),
            v2(1, 0x21, &[0; 12]),
        ] {
            assert!(parse_proxy_header(&bad).is_err(), "{bad:?}");
        }
        let mut huge = v2(1, 0x11, &[]);
        huge[14..16].copy_from_slice(&u16::MAX.to_be_bytes());
        assert!(parse_proxy_header(&huge).is_err(), "over V2_MAX");
    }
}
