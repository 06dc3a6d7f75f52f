//! The server's listeners: bound from the `listen` list (TCP addresses,
//! host names, Unix sockets, sockets inherited from systemd), handed to the
//! acceptor, and changed by a reload: new ones bound, removed ones stopped
//! (they stop accepting; connections they accepted finish).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::config::{Config, ListenSpec};
use crate::runtime::sockets::{adopt_listener, bind_unix, SocketFile};
use crate::runtime::{Latch, ListenOptions, Runtime, TcpListener};
use crate::server::ListenError;
use crate::stages::acceptor::listen_options;
use crate::stages::{Acceptor, Bound, Line, Origin};

/// One listener being accepted on.
pub(crate) struct Listening {
    /// The `listen` entry it came from.
    pub(crate) spec: ListenSpec,
    /// `http://127.0.0.1:8080`, `unix:/run/c.sock`, `systemd socket web (fd 3)`.
    pub(crate) shown: String,
    /// The TCP address bound, if it is one.
    pub(crate) addr: Option<SocketAddr>,
    stop: Arc<Latch>,
    file: Option<SocketFile>,
}

impl Drop for Listening {
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
    keep: &[ListenSpec],
) -> io::Result<Vec<Listening>> {
    let wanted = &config.listen;
    let mut opened: Vec<Listening> = Vec::new();
    let mut skipped: Option<io::Error> = None;
    // Every TCP address of the list: `[::]:P` is dual-stack unless
    // `0.0.0.0:P` has a listener of its own.
    let mut tcp: Vec<(ListenSpec, SocketAddr)> = Vec::new();
    for spec in wanted.specs() {
        if let ListenSpec::Tcp(listen) = spec {
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
            ListenSpec::Tcp(_) => {
                let mut first_port = None;
                for (_, mut addr) in tcp.iter().filter(|(s, _)| s == spec).cloned() {
                    // Port 0 on a name: every address gets the port the first got.
                    if let (0, Some(port)) = (addr.port(), first_port) {
                        addr.set_port(port);
                    }
                    let only_v6 =
                        addr.is_ipv6() && addr.ip().is_unspecified() && v4_wildcard(addr.port());
                    let options = listen_options(config, false, only_v6);
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
            ListenSpec::Unix(path) => {
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
            ListenSpec::Inherited { fd, .. } => {
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
    spec: &ListenSpec,
    addr: SocketAddr,
    options: &ListenOptions,
) -> io::Result<Listening> {
    let listener = TcpListener::bind(addr, options)?;
    let local = listener.local_addr()?;
    let bound = Bound::fresh(listener, options.only_v6);
    match start(acceptor, runtime, line, spec, bound, Some(local), None) {
        // An acceptor of the user's own that binds for itself.
        Err(e) if e.kind() == io::ErrorKind::Unsupported => {
            let local = acceptor.start(runtime.handle(), local, line)?;
            Ok(Listening {
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
    spec: &ListenSpec,
    bound: Bound,
    addr: Option<SocketAddr>,
    file: Option<SocketFile>,
) -> io::Result<Listening> {
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
    Ok(Listening {
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
