//! The server's listeners: bound from the `listen` list (TCP addresses,
//! host names, Unix sockets, sockets inherited from systemd), handed to the
//! acceptor, and changed by a reload: new ones bound, removed ones stopped
//! (they stop accepting; connections they accepted finish).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::config::{Config, ListenAddress};
use crate::runtime::sys::sockets::{adopt_listener, bind_unix, SocketFile};
use crate::runtime::{Handle, Latch, ListenOptions, Runtime, TcpListener};
use crate::stages::acceptor::bind_options;
use crate::stages::handshake::Handshake;
use crate::stages::{Acceptor, Bound, Line, Origin};
use crate::tls::TlsKeys;

/// One listener being accepted on.
pub(crate) struct OpenListener {
    /// The `listen` entry it came from.
    pub(crate) spec: ListenAddress,
    /// `http://127.0.0.1:8080`, `unix:/run/c.sock`, `systemd socket web (fd 3)`.
    pub(crate) shown: String,
    /// The TCP address bound, if it is one.
    pub(crate) addr: Option<SocketAddr>,
    stop: Arc<Latch>,
    file: Option<SocketFile>,
}

impl Drop for OpenListener {
    /// Stops accepting (the acceptor closes the socket) and removes the
    /// socket file this server created.
    fn drop(&mut self) {
        self.stop.set();
        if let Some(file) = &self.file {
            file.remove();
        }
    }
}

/// Binds every entry of `wanted` that is not in `keep` and starts the
/// acceptor on it. An address that cannot be bound because the machine
/// lacks its family (IPv6 turned off) is skipped with a warning while
/// another listener serves; any other failure is an error naming the
/// address, and everything bound so far is closed again.
pub(crate) fn open(
    acceptor: &dyn Acceptor,
    runtime: &Runtime,
    line: &Arc<Line>,
    config: &Config,
    keep: &[ListenAddress],
) -> io::Result<Vec<OpenListener>> {
    let wanted = &config.listen;
    let mut opened: Vec<OpenListener> = Vec::new();
    let mut skipped: Option<io::Error> = None;
    // Every TCP address of the list: `[::]:P` is dual-stack unless
    // `0.0.0.0:P` has a listener of its own.
    let mut tcp: Vec<(ListenAddress, SocketAddr)> = Vec::new();
    for spec in wanted.specs() {
        if let ListenAddress::Tcp(listen) = spec {
            let addrs = listen.resolve().map_err(|e| ListenError::wrap(listen, e))?;
            tcp.extend(addrs.into_iter().map(|a| (spec.clone(), a)));
        }
    }
    let v4_wildcard = |port: u16| {
        tcp.iter()
            .any(|(_, a)| a.is_ipv4() && a.ip().is_unspecified() && a.port() == port)
    };
    let several = wanted.specs().len() > 1 || tcp.len() > 1;
    for spec in wanted.specs().iter().filter(|s| !keep.contains(s)) {
        match spec {
            ListenAddress::Tcp(_) => {
                let mut first_port = None;
                for (_, mut addr) in tcp.iter().filter(|(s, _)| s == spec).cloned() {
                    // Port 0 on a name: every address gets the port the first got.
                    if let (0, Some(port)) = (addr.port(), first_port) {
                        addr.set_port(port);
                    }
                    let only_v6 =
                        addr.is_ipv6() && addr.ip().is_unspecified() && v4_wildcard(addr.port());
                    let options = bind_options(config, false, only_v6);
                    match start_tcp(acceptor, runtime, line, spec, addr, &options) {
                        Ok(listening) => {
                            first_port = first_port.or(listening.addr.map(|a| a.port()));
                            opened.push(listening);
                        }
                        Err(e) if several && lacks_address(&e) => {
                            let e = ListenError::wrap(addr, e);
                            eprintln!("conveyor: warning: {e}; serving on the other listeners");
                            skipped.get_or_insert(e);
                        }
                        Err(e) => return Err(ListenError::wrap(addr, e)),
                    }
                }
            }
            ListenAddress::Unix(path) => {
                let backlog = i32::try_from(config.runtime.backlog).unwrap_or(i32::MAX);
                let mode = config.unix_socket_mode;
                let (listener, file) =
                    bind_unix(path, mode, backlog).map_err(|e| ListenError::wrap(spec, e))?;
                let bound = Bound {
                    listener,
                    origin: Origin::Unix(path.clone()),
                };
                opened.push(start(
                    acceptor,
                    runtime,
                    line,
                    spec,
                    bound,
                    None,
                    Some(file),
                )?);
            }
            ListenAddress::Inherited { fd, .. } => {
                let listener = adopt_listener(*fd).map_err(|e| ListenError::wrap(spec, e))?;
                let bound = Bound {
                    listener,
                    origin: Origin::Inherited(spec.to_string()),
                };
                opened.push(start(acceptor, runtime, line, spec, bound, None, None)?);
            }
        }
    }
    match (opened.is_empty() && keep.is_empty(), skipped) {
        (true, Some(e)) => Err(e),
        _ => Ok(opened),
    }
}

fn start_tcp(
    acceptor: &dyn Acceptor,
    runtime: &Runtime,
    line: &Arc<Line>,
    spec: &ListenAddress,
    addr: SocketAddr,
    options: &ListenOptions,
) -> io::Result<OpenListener> {
    let listener = TcpListener::bind(addr, options)?;
    let local = listener.local_addr()?;
    let bound = Bound::fresh(listener, options.only_v6);
    match start(acceptor, runtime, line, spec, bound, Some(local), None) {
        // An acceptor of the user's own that binds for itself.
        Err(e) if e.kind() == io::ErrorKind::Unsupported => {
            let local = acceptor.start(runtime.handle(), local, line)?;
            Ok(OpenListener {
                spec: spec.clone(),
                shown: format!("http://{local}"),
                addr: Some(local),
                stop: Arc::new(Latch::new()),
                file: None,
            })
        }
        other => other,
    }
}

fn start(
    acceptor: &dyn Acceptor,
    runtime: &Runtime,
    line: &Arc<Line>,
    spec: &ListenAddress,
    bound: Bound,
    addr: Option<SocketAddr>,
    file: Option<SocketFile>,
) -> io::Result<OpenListener> {
    let shown = match addr {
        Some(addr) => format!("http://{addr}"),
        None => spec.to_string(),
    };
    let stop = Arc::new(Latch::new());
    if let Err(e) = acceptor.start_listener(runtime.handle(), bound, line, &stop) {
        if let Some(file) = &file {
            file.remove();
        }
        return Err(e);
    }
    Ok(OpenListener {
        spec: spec.clone(),
        shown,
        addr,
        stop,
        file,
    })
}

fn lacks_address(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::AddrNotAvailable || e.raw_os_error() == Some(libc::EAFNOSUPPORT)
}

/// Starts the handshake stage and `acceptor` on every `tls.listen`
/// address (none: no HTTPS); returns the addresses bound. A certificate
/// that cannot be loaded fails with `InvalidInput` naming the file.
pub(crate) fn open_tls(
    acceptor: &dyn Acceptor,
    runtime: &Handle,
    line: &Arc<Line>,
    workers: usize,
) -> io::Result<Vec<SocketAddr>> {
    let config = line.config.load();
    if !config.tls.enabled() {
        return Ok(Vec::new());
    }
    // With ACME, the self-signed certificate serves until the first one
    // is issued.
    let self_signed = config.tls.self_signed || config.acme.enabled();
    let keys = TlsKeys::load_serving(
        &config.tls.certificates,
        self_signed,
        line.challenges.clone(),
    )
    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let stage = Arc::new(Handshake::new(keys, workers, config.queue.capacity));
    stage.start(runtime, line);
    let _ = line.tls.set(stage.clone());
    let mut bound: Vec<SocketAddr> = Vec::new();
    for listen in &config.tls.listen {
        let wanted = listen.resolve().map_err(|e| ListenError::wrap(listen, e))?;
        for mut addr in wanted {
            if let (0, Some(first)) = (addr.port(), bound.first()) {
                addr.set_port(first.port());
            }
            let local = acceptor
                .start_tls(runtime, addr, line, &stage)
                .map_err(|e| ListenError::wrap(addr, e))?;
            bound.push(local);
        }
    }
    if let Some(first) = bound.first() {
        stage.set_https_port(first.port());
    }
    Ok(bound)
}

/// Why the server could not listen on an address, worded for the person
/// running it: the address, what is wrong, and what to do. Carried inside
/// the `io::Error` that `ServerBuilder::start` returns (find it with
/// `get_ref()` and `downcast_ref`); its kind is the underlying error's.
#[derive(Debug)]
pub struct ListenError {
    /// The address (or `host:port`) that could not be listened on.
    pub addr: String,
    /// What the system said.
    pub source: io::Error,
}

impl ListenError {
    pub(crate) fn wrap(addr: impl fmt::Display, source: io::Error) -> io::Error {
        let kind = source.kind();
        let addr = addr.to_string();
        io::Error::new(kind, ListenError { addr, source })
    }

    /// The message, with `option` (like `--listen` or `listen in
    /// config/conveyor.toml`) named as where the address came from and
    /// where to change it.
    pub fn describe(&self, option: &str) -> String {
        let addr = &self.addr;
        if addr.starts_with(crate::config::UNIX_PREFIX) || addr.starts_with("systemd") {
            let why = match self.source.kind() {
                io::ErrorKind::PermissionDenied => format!(
                    "{}; the directory must be writable by the server, or choose another path \
                     with {option}",
                    self.source
                ),
                io::ErrorKind::NotFound => format!(
                    "{}; create the directory, or choose another path with {option}",
                    self.source
                ),
                _ => self.source.to_string(),
            };
            return format!("cannot listen on {addr} ({option}): {why}");
        }
        let port = addr.rsplit_once(':').map_or("", |(_, p)| p);
        let host = addr.rsplit_once(':').map_or(addr.as_str(), |(h, _)| h);
        let why = match self.source.kind() {
            _ if self.source.raw_os_error() == Some(libc::EAFNOSUPPORT)
                || ipv6_turned_off(host) =>
            {
                format!(
                    "IPv6 is turned off on this machine; with {option}, listen on an IPv4 address \
                 like 0.0.0.0:{port} instead"
                )
            }
            io::ErrorKind::AddrInUse => format!(
                "port {port} is already in use by another process; stop that process, \
                 or choose another port with {option}"
            ),
            io::ErrorKind::AddrNotAvailable => format!(
                "this machine has no address {host}; with {option}, use one of its own, \
                 like 127.0.0.1:{port} (this machine only) or 0.0.0.0:{port} (every IPv4 address)"
            ),
            io::ErrorKind::PermissionDenied => format!(
                "ports below 1024 need root or CAP_NET_BIND_SERVICE; choose a port from 1024 up \
                 with {option}, like 8080"
            ),
            _ => format!("{}; check the address given by {option}", self.source),
        };
        format!("cannot listen on {addr} ({option}): {why}")
    }
}

/// Whether `host` is an IPv6 address on a machine whose IPv6 is turned off
/// (`net.ipv6.conf.all.disable_ipv6 = 1`: the socket family still exists,
/// but no IPv6 address does, so a bind answers "address not available").
fn ipv6_turned_off(host: &str) -> bool {
    host.starts_with('[')
        && std::fs::read_to_string("/proc/sys/net/ipv6/conf/all/disable_ipv6")
            .is_ok_and(|v| v.trim() == "1")
}

impl fmt::Display for ListenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe("the `listen` setting"))
    }
}

impl std::error::Error for ListenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn describe(addr: &str, source: io::Error) -> String {
        let e = ListenError::wrap(addr, source);
        let inner = e.get_ref().and_then(|i| i.downcast_ref::<ListenError>());
        inner.expect("a ListenError").describe("--listen")
    }

    #[test]
    fn listen_errors_name_the_listener_and_the_fix() {
        let v6_off = describe(
            "[::]:8080",
            io::Error::from_raw_os_error(libc::EAFNOSUPPORT),
        );
        assert_eq!(
            v6_off,
            "cannot listen on [::]:8080 (--listen): IPv6 is turned off on this machine; \
             with --listen, listen on an IPv4 address like 0.0.0.0:8080 instead"
        );
        let unix = describe(
            "unix:/nope/c.sock",
            io::Error::from(io::ErrorKind::NotFound),
        );
        assert!(
            unix.starts_with("cannot listen on unix:/nope/c.sock (--listen): "),
            "{unix}"
        );
        assert!(unix.ends_with("create the directory, or choose another path with --listen"));
    }
}
