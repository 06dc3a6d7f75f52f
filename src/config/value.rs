//! What a value in the file may be: one parser per kind of key. A parser
//! returns the value, or the reason it was refused, worded to follow
//! `key = value`: `is not a duration; write it like "10s", ...`.

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use toml::Value;

use super::names::UnknownName;
use super::units::{parse_duration, parse_size};
use super::{resolve_workers, MAX_WORKERS};

/// Why a value was refused: the end of the message after `key = value`.
pub(crate) type Reason = String;

pub(crate) type Parsed<T> = Result<T, Reason>;

/// How to write a listen address; ends the message for an invalid `listen` or `--listen`.
pub const TCP_ADDRESS_FIX: &str =
    "write it as IP:PORT or HOST:PORT, like \"127.0.0.1:8080\", \"[::1]:8080\" or \"localhost:8080\"";
/// The allowed worker counts; ends the message for an invalid `workers` or `--workers`.
pub const WORKERS_FIX: &str = "use an integer from 0 (one per core) to 1024";
const DURATION_FIX: &str = "write it like \"10s\", \"500ms\" or \"2m\"";
const SIZE_FIX: &str = "write bytes as an integer or like \"512B\", \"64KiB\", \"4GiB\" or \"1MB\"";
const RATE_FIX: &str = "write bytes per second as an integer like 500, or a size like \"64KiB\"; \
                        0 means no minimum rate";

fn not(what: &str, fix: &str) -> Reason {
    format!("is not {what}; {fix}")
}

fn invalid(fix: &str) -> Reason {
    format!("is invalid; {fix}")
}

/// Where to listen (`listen`, `--listen`): an `IP:PORT` (IPv6 in
/// brackets), or a `HOST:PORT` such as `localhost:8080`, which the server
/// resolves when it starts and listens on every address the name has.
#[derive(Clone, PartialEq, Eq)]
pub enum TcpAddress {
    /// One address, as written.
    Addr(SocketAddr),
    /// A host name and a port, resolved at start-up.
    Name {
        /// The host name, like `localhost`.
        host: String,
        /// The port.
        port: u16,
    },
}

impl TcpAddress {
    /// The addresses to bind, without repeats: the one written, or every
    /// address the name resolves to (errors name the host and the fix).
    pub fn resolve(&self) -> io::Result<Vec<SocketAddr>> {
        let (host, port) = match self {
            TcpAddress::Addr(addr) => return Ok(vec![*addr]),
            TcpAddress::Name { host, port } => (host, *port),
        };
        let cannot = |why: String| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "cannot resolve {host}: {why}; check the name, or give an IP address \
                     like 127.0.0.1:{port}"
                ),
            )
        };
        let mut addrs: Vec<SocketAddr> = Vec::new();
        for addr in (host.as_str(), port)
            .to_socket_addrs()
            .map_err(|e| cannot(e.to_string()))?
        {
            if !addrs.contains(&addr) {
                addrs.push(addr);
            }
        }
        if addrs.is_empty() {
            return Err(cannot("it has no address".to_string()));
        }
        Ok(addrs)
    }
}

impl From<SocketAddr> for TcpAddress {
    fn from(addr: SocketAddr) -> TcpAddress {
        TcpAddress::Addr(addr)
    }
}

impl fmt::Display for TcpAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TcpAddress::Addr(addr) => write!(f, "{addr}"),
            TcpAddress::Name { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

// One line, as the address is written: the config's pretty `Debug` counts
// one line per key.
impl fmt::Debug for TcpAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

impl FromStr for TcpAddress {
    type Err = String;

    fn from_str(s: &str) -> Result<TcpAddress, String> {
        parse_tcp_address(s).ok_or_else(|| format!("{s:?} {}", invalid(TCP_ADDRESS_FIX)))
    }
}

/// An `IP:PORT` (IPv6 in brackets) or a `HOST:PORT`, surrounding spaces
/// ignored. A host is a DNS name (letters, digits, `-` and `.`); it is
/// resolved only when the server starts.
pub fn parse_tcp_address(s: &str) -> Option<TcpAddress> {
    let s = s.trim();
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Some(TcpAddress::Addr(addr));
    }
    let (host, port) = s.rsplit_once(':')?;
    let port = port.parse::<u16>().ok()?;
    let is_name = !host.is_empty()
        && host.len() <= 253
        && host.starts_with(|c: char| c.is_ascii_alphabetic())
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    is_name.then(|| TcpAddress::Name {
        host: host.to_string(),
        port,
    })
}

/// An array of tables (`[[name]]`): each entry's keys are checked against
/// `known`, then `entry` reads it. An error names the entry (`(rule 2)`
/// with `what` = "rule") and the bad shapes end with `fix`.
pub(crate) fn array_of_tables<T>(
    v: &Value,
    what: &str,
    known: &[&str],
    fix: &str,
    entry: impl Fn(&toml::Table) -> Parsed<T>,
) -> Parsed<Vec<T>> {
    let Value::Array(items) = v else {
        return Err(format!("is not an array of tables; {fix}"));
    };
    let one = |item: &Value| {
        let Value::Table(t) = item else {
            return Err(format!("is not a table; {fix}"));
        };
        if let Some(k) = t.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(format!(
                "has unknown key {k:?}; known keys are {}",
                known.join(", ")
            ));
        }
        entry(t)
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| one(item).map_err(|why| format!("({what} {}) {why}", i + 1)))
        .collect()
}

pub(crate) fn string(v: &Value) -> Parsed<&str> {
    match v {
        Value::String(s) => Ok(s),
        _ => Err(not("a string", "put the value in double quotes")),
    }
}

pub(crate) fn boolean(v: &Value) -> Parsed<bool> {
    match v {
        Value::Boolean(b) => Ok(*b),
        _ => Err(not("a boolean", "use true or false")),
    }
}

/// An integer in `min..=max`, refused with `fix`.
fn int_in(v: &Value, min: u64, max: u64, fix: &str) -> Parsed<u64> {
    match v {
        Value::Integer(i) => match u64::try_from(*i) {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(not("in range", fix)),
        },
        _ => Err(not("an integer", fix)),
    }
}

/// An integer in `min..=max` (`u64::MAX`: no upper bound).
pub(crate) fn int<T: TryFrom<u64>>(min: u64, max: u64) -> impl Fn(&Value) -> Parsed<T> {
    move |v| {
        let fix = if max == u64::MAX {
            format!("use an integer of at least {min}")
        } else {
            format!("use an integer from {min} to {max}")
        };
        let n = int_in(v, min, max, &fix)?;
        T::try_from(n).map_err(|_| not("in range", &fix))
    }
}

/// 0 means one per core, resolved here so that `Config::workers` is never 0.
pub(crate) fn workers(v: &Value) -> Parsed<usize> {
    let n = int_in(v, 0, MAX_WORKERS as u64, WORKERS_FIX)?;
    Ok(resolve_workers(n as usize))
}

pub(crate) fn root(v: &Value) -> Parsed<PathBuf> {
    match string(v)? {
        "" => Err(invalid("give the directory to serve, like \"www\"")),
        s => Ok(PathBuf::from(s)),
    }
}

/// A name inside a directory, never a path: it is joined to request paths.
pub(crate) fn file_name(v: &Value) -> Parsed<String> {
    match string(v)? {
        i if i.is_empty() || i.contains('/') || i == "." || i == ".." => {
            Err(invalid("use a plain file name like \"index.html\""))
        }
        i => Ok(i.to_string()),
    }
}

/// A media type for `Content-Type` (`static.default_type`): `type/subtype`
/// in tokens, parameters after a `;` in visible ASCII, so it can go into a
/// header as it is.
pub(crate) fn media_type(v: &Value) -> Parsed<String> {
    let fix = "use a media type like \"application/octet-stream\" or \"text/plain; charset=utf-8\"";
    let s = string(v)?;
    let essence = s.split(';').next().unwrap_or("").trim();
    let token = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    let shaped = matches!(essence.split_once('/'), Some((t, sub)) if token(t) && token(sub));
    if !shaped || !s.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
        return Err(invalid(fix));
    }
    Ok(s.to_string())
}

/// The exact path a built-in endpoint answers at: matched against request
/// paths as sent, so only characters a client sends as they are.
pub(crate) fn route_path(v: &Value) -> Parsed<String> {
    let path = string(v)?;
    let fix = "use a path like \"/status\" or \"/_conveyor/status\"";
    if !path.starts_with('/') {
        return Err(format!("does not start with \"/\"; {fix}"));
    }
    if path == "/" {
        return Err(format!("would take the site's home page; {fix}"));
    }
    if let Some(c) = path
        .chars()
        .find(|c| !c.is_ascii_graphic() || matches!(c, '*' | '?' | '#' | '%' | '\\'))
    {
        return Err(format!(
            "holds {c:?}, which an exact path cannot (no prefixes, queries or escapes); {fix}"
        ));
    }
    if path.split('/').any(|s| s == "." || s == "..") {
        return Err(format!("holds a \".\" or \"..\" segment; {fix}"));
    }
    Ok(path.to_string())
}

pub(crate) fn log_path(v: &Value) -> Parsed<String> {
    match string(v)? {
        "" => Err(invalid("use a file path, or \"-\" for stdout")),
        p => Ok(p.to_string()),
    }
}

/// One of a closed set of names (see `names.rs`).
pub(crate) fn choice<T: FromStr<Err = UnknownName>>(v: &Value) -> Parsed<T> {
    string(v)?.parse().map_err(|e: UnknownName| e.reason())
}

/// Bytes: an integer, or a size such as "64KiB".
pub(crate) fn size(v: &Value) -> Parsed<u64> {
    bytes(v, "a size", SIZE_FIX)
}

/// Bytes per second, written as a size.
pub(crate) fn rate(v: &Value) -> Parsed<u64> {
    bytes(v, "a rate", RATE_FIX)
}

fn bytes(v: &Value, what: &str, fix: &str) -> Parsed<u64> {
    match v {
        Value::Integer(i) => u64::try_from(*i).map_err(|_| not(what, fix)),
        Value::String(s) => parse_size(s).ok_or_else(|| not(what, fix)),
        _ => Err(not(what, fix)),
    }
}

/// A duration of more than zero.
pub(crate) fn duration(v: &Value) -> Parsed<Duration> {
    match duration_or_zero(v)? {
        d if d.is_zero() => Err(not("more than zero", DURATION_FIX)),
        d => Ok(d),
    }
}

/// The longest duration a bare integer (seconds) may give: above it, the
/// number was most likely meant in milliseconds (`keepalive_idle = 75000`
/// would be 20.8 hours). An hour: "2h" or "86400s" are still one word away.
const BARE_SECONDS_MAX: u64 = 60 * 60;

/// A duration where zero means "off"; a bare integer is seconds, up to an hour.
pub(crate) fn duration_or_zero(v: &Value) -> Parsed<Duration> {
    match v {
        Value::Integer(i) => match u64::try_from(*i) {
            Ok(n) if n > BARE_SECONDS_MAX => Err(bare_seconds(n)),
            Ok(n) => Ok(Duration::from_secs(n)),
            Err(_) => Err(not("positive", DURATION_FIX)),
        },
        Value::String(s) => parse_duration(s).ok_or_else(|| not("a duration", DURATION_FIX)),
        _ => Err(not("a duration", DURATION_FIX)),
    }
}

/// Why a bare integer above a day is refused, with the units it may have meant.
fn bare_seconds(n: u64) -> Reason {
    #[allow(clippy::cast_precision_loss)] // shown to one decimal
    let hours = n as f64 / 3600.0;
    let meant = match n % 1000 {
        0 => format!("\"{}s\"", n / 1000),
        _ => format!("\"{n}ms\""),
    };
    format!(
        "is read as {n} seconds ({hours:.1} hours): a bare number above an hour is refused; \
         write it with a unit, like {meant} (for {n} milliseconds) or \"{}h\"",
        n.div_ceil(3600)
    )
}

/// A duration in whole seconds, zero meaning "off", for options the kernel
/// counts in seconds (TCP_DEFER_ACCEPT): "1500ms" is refused, not rounded,
/// so the file never says something the socket does not do.
pub(crate) fn whole_seconds_or_zero(v: &Value) -> Parsed<Duration> {
    let d = duration_or_zero(v)?;
    match d.subsec_nanos() {
        0 => Ok(d),
        _ => Err(not(
            "whole seconds",
            &format!(
                "the kernel counts this in seconds: write \"{}s\" or \"{}s\", or 0 for off",
                d.as_secs(),
                d.as_secs() + 1
            ),
        )),
    }
}

/// Shows a value as it was written, for error messages.
pub(crate) fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Integer(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Boolean(b) => b.to_string(),
        Value::Datetime(d) => d.to_string(),
        Value::Array(_) => "[...]".to_string(),
        Value::Table(_) => "{...}".to_string(),
    }
}
