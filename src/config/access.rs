//! `status.allow`, `status.dashboard`, `status.max_subscribers`: who may
//! see the server's internals (`/status`, its Prometheus form, its stream
//! and the dashboard), and how many live streams may run at once;
//! `[proxy]`: whose word on the client's address is believed; and
//! [`Client`], the address every per-client decision goes by.

use std::fmt;
use std::net::IpAddr;

use toml::Value;

use super::site::string_list;
use super::value::Parsed;

blank_struct! {
    /// The `[status]` keys beyond `enabled` and `path`.
    #[derive(Debug, Clone, PartialEq)]
    pub struct StatusAccess {
        /// `status.allow`: client addresses or CIDR ranges answered; every
        /// other client gets 403 (default loopback only: 127.0.0.0/8 and ::1).
        pub allow: Vec<AddrRange>,
        /// `status.dashboard`: serve the live dashboard at `<status.path>/dashboard`
        /// (default true).
        pub dashboard: bool,
        /// `status.max_subscribers`: live streams (`?stream=1`, the dashboard's
        /// feed) open at once across the server; more get 503 (default 16).
        pub max_subscribers: usize,
    }
}

blank_struct! {
    /// The `[proxy]` table: a proxy in front whose word on the client's
    /// address is believed.
    #[derive(Debug, Clone, PartialEq)]
    pub struct ProxyConfig {
        /// `proxy.trusted`: peers (addresses, CIDR ranges, `"unix"`) whose
        /// forwarding information is believed (default none: the peer is
        /// the client).
        pub trusted: Vec<AddrRange>,
        /// `proxy.protocol`: every connection starts with a PROXY protocol
        /// header (v1 or v2) from a trusted peer; others are closed
        /// (default false: `X-Forwarded-For` from trusted peers).
        pub protocol: bool,
    }
}

impl ProxyConfig {
    /// Whether `X-Forwarded-For` is read: trusted peers named, and no
    /// PROXY protocol (whose header then says who the client is).
    pub fn reads_forwarded_for(&self) -> bool {
        !self.trusted.is_empty() && !self.protocol
    }

    /// Whether `peer` may speak for the client.
    pub fn trusts(&self, peer: Client) -> bool {
        self.trusted.iter().any(|range| range.admits(peer))
    }
}

/// Who the client is, for every per-client decision (`status.allow`, the
/// access log): the peer, or what a trusted proxy said of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// An IP client.
    Ip(IpAddr),
    /// A peer on a Unix-domain socket (which has no address).
    Unix,
    /// Not known (the socket is gone).
    Unknown,
}

impl fmt::Display for Client {
    /// As the access log writes it: the IP address, "unix" or "-".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Client::Ip(ip) => fmt::Display::fmt(ip, f),
            Client::Unix => f.write_str("unix"),
            Client::Unknown => f.write_str("-"),
        }
    }
}

/// An address range (a network address and how many leading bits match),
/// or `"unix"`: every peer on a Unix-domain socket.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AddrRange {
    addr: IpAddr,
    /// Past 128 (`UNIX`): the Unix-socket entry.
    prefix: u8,
}

/// The prefix that marks the `"unix"` entry.
const UNIX: u8 = u8::MAX;

impl AddrRange {
    /// Parses `"10.0.0.0/8"`, `"::1"`, `"fd00::/8"` (no prefix: one
    /// address) or `"unix"`. Host bits set under the prefix are refused, so
    /// a typo such as "10.0.0.1/8" does not silently mean something wider.
    /// An IPv4-mapped entry (`"::ffff:10.0.0.0/104"`) is the IPv4 range it
    /// maps (`10.0.0.0/8`): it matches IPv4 clients, as they are compared.
    pub fn parse(s: &str) -> Result<AddrRange, String> {
        if s == "unix" {
            return Ok(AddrRange {
                addr: IpAddr::from([0u8; 4]),
                prefix: UNIX,
            });
        }
        let (ip, prefix) = match s.split_once('/') {
            Some((ip, bits)) => (ip, Some(bits)),
            None => (s, None),
        };
        let addr: IpAddr = ip
            .parse()
            .map_err(|_| format!("holds {s:?}, not an address, a CIDR range or \"unix\""))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(bits) => match bits.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => {
                    return Err(format!(
                        "holds {s:?}, whose prefix length is not 0 to {max}"
                    ))
                }
            },
        };
        let range = match addr {
            IpAddr::V6(v6) if prefix >= 96 => match v6.to_ipv4_mapped() {
                Some(v4) => AddrRange {
                    addr: IpAddr::V4(v4),
                    prefix: prefix - 96,
                },
                None => AddrRange { addr, prefix },
            },
            _ => AddrRange { addr, prefix },
        };
        let network = range.network();
        if network != bits_of(range.addr) {
            let network = match range.addr {
                IpAddr::V4(_) => IpAddr::from(std::net::Ipv4Addr::from(network as u32)),
                IpAddr::V6(_) => IpAddr::from(std::net::Ipv6Addr::from(network)),
            };
            return Err(format!(
                "holds {s:?}, which has host bits set under /{prefix} (the range is \"{network}/{}\")",
                range.prefix
            ));
        }
        Ok(range)
    }

    /// Whether the entry admits `client`: an IP client in the range, or
    /// a Unix-socket peer for `"unix"`. An unknown client is never admitted.
    pub fn admits(&self, client: Client) -> bool {
        match client {
            Client::Ip(ip) => self.contains(ip),
            Client::Unix => self.prefix == UNIX,
            Client::Unknown => false,
        }
    }

    /// Whether `ip` is in the range. An IPv4 client reaching an IPv6
    /// socket (`::ffff:a.b.c.d`) is matched as the IPv4 address it is.
    pub fn contains(&self, ip: IpAddr) -> bool {
        if self.prefix == UNIX {
            return false;
        }
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        if ip.is_ipv4() != self.addr.is_ipv4() {
            return false;
        }
        mask(bits_of(ip), self.width(), self.prefix) == self.network()
    }

    fn width(&self) -> u8 {
        if self.addr.is_ipv4() {
            32
        } else {
            128
        }
    }

    fn network(&self) -> u128 {
        mask(bits_of(self.addr), self.width(), self.prefix)
    }
}

fn bits_of(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// Keeps the leading `prefix` of `width` bits.
fn mask(bits: u128, width: u8, prefix: u8) -> u128 {
    let host = u32::from(width - prefix);
    match host {
        128 => 0,
        _ => (bits >> host) << host,
    }
}

impl fmt::Display for AddrRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix == UNIX {
            return f.write_str("unix");
        }
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl fmt::Debug for AddrRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Whether any entry in `allow` admits `client`.
pub fn allowed(allow: &[AddrRange], client: Client) -> bool {
    allow.iter().any(|range| range.admits(client))
}

/// `status.allow`, `proxy.trusted`: a list of addresses, CIDR ranges and
/// `"unix"`; `[]` admits no one.
pub(crate) fn addr_ranges(v: &Value) -> Parsed<Vec<AddrRange>> {
    string_list(v)?
        .iter()
        .map(|s| {
            AddrRange::parse(s).map_err(|why| {
                format!("{why}; write addresses or CIDR ranges like [\"127.0.0.0/8\", \"::1\", \"10.1.0.0/16\", \"unix\"]")
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_match_their_addresses_only() {
        let lo = AddrRange::parse("127.0.0.0/8").unwrap();
        assert!(lo.contains(ip("127.0.0.1")) && lo.contains(ip("127.255.0.9")));
        assert!(!lo.contains(ip("128.0.0.1")) && !lo.contains(ip("::1")));
        assert!(lo.contains(ip("::ffff:127.0.0.1")), "v4-mapped");
        let one = AddrRange::parse("::1").unwrap();
        assert!(one.contains(ip("::1")) && !one.contains(ip("::2")));
        let all = AddrRange::parse("0.0.0.0/0").unwrap();
        assert!(all.contains(ip("8.8.8.8")) && !all.contains(ip("::2")));
        let all6 = AddrRange::parse("::/0").unwrap();
        assert!(all6.contains(ip("fe80::1")));
        let net = AddrRange::parse("fd00::/8").unwrap();
        assert!(net.contains(ip("fd12::1")) && !net.contains(ip("fe00::1")));
        assert_eq!(net.to_string(), "fd00::/8");
    }

    #[test]
    fn mapped_entries_are_the_ipv4_ranges_they_map() {
        let one = AddrRange::parse("::ffff:10.1.2.3").unwrap();
        assert_eq!(one.to_string(), "10.1.2.3/32");
        assert!(one.contains(ip("10.1.2.3")) && one.contains(ip("::ffff:10.1.2.3")));
        assert!(!one.contains(ip("10.1.2.4")));
        let net = AddrRange::parse("::ffff:10.0.0.0/104").unwrap();
        assert_eq!(net, AddrRange::parse("10.0.0.0/8").unwrap());
        assert!(net.contains(ip("10.200.0.1")) && !net.contains(ip("11.0.0.1")));
        let e = AddrRange::parse("::ffff:10.0.0.1/104").unwrap_err();
        assert!(e.contains("(the range is \"10.0.0.0/8\")"), "{e}");
    }

    #[test]
    fn proxy_settings_that_cannot_work_are_refused() {
        let read = |text: &str| crate::config::Config::from_toml_str(text);
        let e = read("[proxy]\nprotocol = true\n").unwrap_err().to_string();
        assert!(
            e.contains("proxy.trusted = []") && e.contains("list the proxy's"),
            "{e}"
        );
        let e = read("[proxy]\nprotocol = true\ntrusted = [\"10.0.0.5\"]\n[tls]\nlisten = [\"127.0.0.1:8443\"]\n");
        if let Err(e) = e {
            let e = e.to_string();
            assert!(
                e.contains("tls.listen") && e.contains("terminate TLS"),
                "{e}"
            );
        } else {
            panic!("protocol with tls.listen accepted");
        }
        let ok = read("[proxy]\nprotocol = true\ntrusted = [\"10.0.0.5\", \"unix\"]\n").unwrap();
        assert!(ok.proxy.protocol && !ok.proxy.reads_forwarded_for());
        assert!(ok.proxy.trusts(Client::Unix) && !ok.proxy.trusts(Client::Ip(ip("10.0.0.6"))));
        let xff = read("[proxy]\ntrusted = [\"10.0.0.5\"]\n").unwrap();
        assert!(xff.proxy.reads_forwarded_for());
        assert!(!crate::config::Config::default().proxy.reads_forwarded_for());
        let e = read("[proxy]\ntrusted = [\"proxy.local\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("proxy.trusted") && e.contains("\"unix\""), "{e}");
    }

    #[test]
    fn unix_admits_unix_peers_only() {
        let unix = AddrRange::parse("unix").unwrap();
        assert_eq!(unix.to_string(), "unix");
        assert!(unix.admits(Client::Unix));
        assert!(!unix.admits(Client::Ip(ip("0.0.0.0"))) && !unix.admits(Client::Unknown));
        let lo = AddrRange::parse("127.0.0.0/8").unwrap();
        assert!(!lo.admits(Client::Unix) && lo.admits(Client::Ip(ip("127.0.0.1"))));
        assert_eq!(Client::Unix.to_string(), "unix");
        assert_eq!(Client::Unknown.to_string(), "-");
    }

    #[test]
    fn bad_ranges_say_why() {
        for (bad, says) in [
            ("localhost", "not an address"),
            ("10.0.0.0/33", "0 to 32"),
            ("::/129", "0 to 128"),
            (
                "10.0.0.1/8",
                "host bits set under /8 (the range is \"10.0.0.0/8\")",
            ),
            ("fd00::1/8", "(the range is \"fd00::/8\")"),
            ("10.0.0.0/x", "prefix length"),
        ] {
            let e = AddrRange::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        let e = addr_ranges(&Value::Integer(1)).unwrap_err();
        assert!(e.contains("list of strings"), "{e}");
        let e = addr_ranges(&Value::Array(vec![Value::String("x".into())])).unwrap_err();
        assert!(e.contains("127.0.0.0/8"), "{e}");
    }
}
