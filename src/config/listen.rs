//! `listen`: every place the server takes connections from. A TCP address
//! (or a host name, resolved at start-up), a Unix-domain socket
//! (`unix:/run/conveyor.sock`), or a socket inherited from systemd (never
//! written in a file: read from `LISTEN_FDS`).
//!
//! One enum, so another kind of listener (TLS) is one more variant.

use std::fmt;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::str::FromStr;

use toml::Value;

use super::value::{parse_tcp_address, Parsed, TcpAddress};

/// The prefix naming a Unix-domain socket in `listen` and `--listen`.
pub const UNIX_PREFIX: &str = "unix:";

/// The longest Unix socket path the kernel takes (`sun_path` less its NUL).
const UNIX_PATH_MAX: usize = 107;

/// How to write any listener; ends the message for an invalid one.
pub const LISTEN_ADDRESS_FIX: &str = "write it as IP:PORT or HOST:PORT, like \"127.0.0.1:8080\", \
     \"[::1]:8080\", \"[::]:8080\" or \"localhost:8080\", or as unix:PATH, like \
     \"unix:/run/conveyor.sock\"";

/// One place to take connections from.
#[derive(Clone, PartialEq, Eq)]
pub enum ListenAddress {
    /// A TCP address, or a host name whose every address is listened on.
    Tcp(TcpAddress),
    /// A Unix-domain stream socket at this path (`unix:/path`).
    Unix(PathBuf),
    /// A listening socket inherited from the service manager (systemd
    /// socket activation), with its `LISTEN_FDNAMES` name.
    Inherited {
        /// The descriptor number (3 and up).
        fd: RawFd,
        /// Its name in `LISTEN_FDNAMES`, or "unknown".
        name: String,
    },
}

impl ListenAddress {
    /// Reads one listener as `listen` or `--listen` write it.
    pub fn parse(s: &str) -> Option<ListenAddress> {
        let s = s.trim();
        if let Some(path) = s.strip_prefix(UNIX_PREFIX) {
            let ok = !path.is_empty() && path.len() <= UNIX_PATH_MAX && !path.contains('\0');
            return ok.then(|| ListenAddress::Unix(PathBuf::from(path)));
        }
        parse_tcp_address(s).map(ListenAddress::Tcp)
    }
}

impl fmt::Display for ListenAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddress::Tcp(listen) => write!(f, "{listen}"),
            ListenAddress::Unix(path) => write!(f, "{UNIX_PREFIX}{}", path.display()),
            ListenAddress::Inherited { fd, name } => write!(f, "systemd socket {name} (fd {fd})"),
        }
    }
}

impl fmt::Debug for ListenAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// The `listen` key: the listeners; none only when `tls.listen` has some.
#[derive(Clone, PartialEq, Eq)]
pub struct ListenAddresses(pub Vec<ListenAddress>);

impl ListenAddresses {
    /// The listeners, in the order written.
    pub fn specs(&self) -> &[ListenAddress] {
        &self.0
    }
}

impl super::Blank for ListenAddresses {
    fn blank() -> ListenAddresses {
        ListenAddresses(Vec::new())
    }
}

impl From<SocketAddr> for ListenAddresses {
    fn from(addr: SocketAddr) -> ListenAddresses {
        ListenAddresses(vec![ListenAddress::Tcp(TcpAddress::Addr(addr))])
    }
}

impl From<TcpAddress> for ListenAddresses {
    fn from(listen: TcpAddress) -> ListenAddresses {
        ListenAddresses(vec![ListenAddress::Tcp(listen)])
    }
}

/// One listener, as `"127.0.0.1:0".parse()` in code and tests.
impl FromStr for ListenAddresses {
    type Err = String;

    fn from_str(s: &str) -> Result<ListenAddresses, String> {
        ListenAddress::parse(s)
            .map(|spec| ListenAddresses(vec![spec]))
            .ok_or_else(|| format!("{s:?} is invalid; {LISTEN_ADDRESS_FIX}"))
    }
}

impl fmt::Display for ListenAddresses {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&all.join(", "))
    }
}

// One line: the config's pretty `Debug` counts one line per key.
impl fmt::Debug for ListenAddresses {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// `listen = "127.0.0.1:8080"` or `listen = ["[::]:8080", "unix:/run/c.sock"]`.
pub(crate) fn listeners(v: &Value) -> Parsed<ListenAddresses> {
    let one = |v: &Value| -> Parsed<ListenAddress> {
        match v {
            Value::String(s) => ListenAddress::parse(s)
                .ok_or_else(|| format!("holds {s:?}, which is invalid; {LISTEN_ADDRESS_FIX}")),
            _ => Err(format!(
                "holds a value that is not a string; {LISTEN_ADDRESS_FIX}"
            )),
        }
    };
    let specs = match v {
        Value::String(s) => {
            vec![ListenAddress::parse(s)
                .ok_or_else(|| format!("is invalid; {LISTEN_ADDRESS_FIX}"))?]
        }
        Value::Array(items) => items.iter().map(one).collect::<Parsed<Vec<_>>>()?,
        _ => {
            return Err(format!(
                "is not a string or a list of strings; {LISTEN_ADDRESS_FIX}"
            ))
        }
    };
    // `[]` serves HTTPS alone (`tls.listen`); with neither, start-up refuses
    // it (`Config::check_listeners`), as flags may still add a listener.
    for (i, spec) in specs.iter().enumerate() {
        if specs[..i].contains(spec) {
            return Err(format!("names {spec} twice; list each listener once"));
        }
    }
    Ok(ListenAddresses(specs))
}

/// `unix_socket_mode`: the permission bits of the Unix sockets the server
/// creates, written in octal as a string ("0660").
pub(crate) fn socket_mode(v: &Value) -> Parsed<u32> {
    let fix = "write the permission bits in octal as a string, like \"0660\" (owner and \
               group may connect) or \"0666\" (everyone)";
    match v {
        Value::String(s) => u32::from_str_radix(s.trim_start_matches("0o"), 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .ok_or_else(|| format!("is not an octal mode; {fix}")),
        _ => Err(format!("is not a string; {fix}")),
    }
}

/// `user`, `group`: a name (or number) of the system's, or "" for none.
pub(crate) fn account(v: &Value) -> Parsed<String> {
    match v {
        Value::String(s) if s.contains(['\0', ':', '/']) => Err(
            "is not a user or group name; write a name like \"www-data\", or \"\" to keep the \
             account the server starts as"
                .to_string(),
        ),
        Value::String(s) => Ok(s.clone()),
        _ => Err("is not a string; put the name in double quotes".to_string()),
    }
}

/// Used by `--listen`: the same words as the config's.
pub fn parse_listen_address(s: &str) -> Result<ListenAddress, String> {
    ListenAddress::parse(s).ok_or_else(|| format!("{s} is invalid; {LISTEN_ADDRESS_FIX}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Parsed<ListenAddresses> {
        let table: toml::Table = format!("v = {text}").parse().expect("toml");
        listeners(&table["v"])
    }

    #[test]
    fn a_string_or_a_list() {
        assert_eq!(
            parsed("\"127.0.0.1:80\"").unwrap(),
            "127.0.0.1:80".parse().unwrap()
        );
        let list = parsed("[\"[::]:8080\", \"unix:/run/c.sock\", \"localhost:1\"]").unwrap();
        assert_eq!(list.0.len(), 3);
        assert_eq!(list.0[1], ListenAddress::Unix("/run/c.sock".into()));
        assert_eq!(list.to_string(), "[::]:8080, unix:/run/c.sock, localhost:1");
        assert!(parsed("[]").unwrap().specs().is_empty());
        assert!(parsed("[\"a:1\", \"a:1\"]").unwrap_err().contains("twice"));
        assert!(parsed("[\"unix:\"]").unwrap_err().contains("unix:PATH"));
        assert!(parsed("[1]").unwrap_err().contains("not a string"));
        let long = format!("\"unix:/{}\"", "x".repeat(200));
        assert!(parsed(&long).is_err());
    }

    #[test]
    fn modes_and_accounts() {
        let v = |s: &str| Value::String(s.to_string());
        assert_eq!(socket_mode(&v("0660")), Ok(0o660));
        assert_eq!(socket_mode(&v("666")), Ok(0o666));
        assert!(socket_mode(&v("0999")).unwrap_err().contains("octal"));
        assert!(socket_mode(&v("7777")).is_err());
        assert_eq!(account(&v("nobody")), Ok("nobody".to_string()));
        assert!(account(&v("a:b")).is_err());
    }
}
