//! `status.allow`, `status.dashboard`, `status.max_subscribers`: who may
//! see the server's internals (`/status`, its Prometheus form, its stream
//! and the dashboard), and how many live streams may run at once.

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

/// An address range: a network address and how many leading bits match.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AddrRange {
    addr: IpAddr,
    prefix: u8,
}

impl AddrRange {
    /// Parses `"10.0.0.0/8"`, `"::1"`, `"fd00::/8"` (no prefix: one
    /// address). Host bits set under the prefix are refused, so a typo
    /// such as "10.0.0.1/8" does not silently mean something wider.
    pub fn parse(s: &str) -> Result<AddrRange, String> {
        let (ip, prefix) = match s.split_once('/') {
            Some((ip, bits)) => (ip, Some(bits)),
            None => (s, None),
        };
        let addr: IpAddr = ip
            .parse()
            .map_err(|_| format!("holds {s:?}, not an address or a CIDR range"))?;
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
        let range = AddrRange { addr, prefix };
        let network = range.network();
        if network != bits_of(addr) {
            let network = match addr {
                IpAddr::V4(_) => IpAddr::from(std::net::Ipv4Addr::from(network as u32)),
                IpAddr::V6(_) => IpAddr::from(std::net::Ipv6Addr::from(network)),
            };
            return Err(format!(
                "holds {s:?}, which has host bits set under /{prefix} (the range is \"{network}/{prefix}\")"
            ));
        }
        Ok(range)
    }

    /// Whether `ip` is in the range. An IPv4 client reaching an IPv6
    /// socket (`::ffff:a.b.c.d`) is matched as the IPv4 address it is.
    pub fn contains(&self, ip: IpAddr) -> bool {
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
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl fmt::Debug for AddrRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Whether any range in `allow` holds `ip`.
pub fn allowed(allow: &[AddrRange], ip: IpAddr) -> bool {
    allow.iter().any(|range| range.contains(ip))
}

/// `status.allow`: a list of addresses and CIDR ranges; `[]` shuts
/// everyone out (the endpoint then answers 403 to every client).
pub(crate) fn addr_ranges(v: &Value) -> Parsed<Vec<AddrRange>> {
    string_list(v)?
        .iter()
        .map(|s| {
            AddrRange::parse(s).map_err(|why| {
                format!("{why}; write addresses or CIDR ranges like [\"127.0.0.0/8\", \"::1\", \"10.1.0.0/16\"]")
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
