//! The `[http2]` table: where HTTP/2 is spoken (docs/http2.md).

use super::TcpAddress;

blank_struct! {
    /// The `[http2]` table: where HTTP/2 is spoken, and its limits.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Http2Config {
        /// `http2.tls`: TLS listeners offer `h2` by ALPN, before `http/1.1`
        /// (default true).
        pub tls: bool,
        /// `http2.cleartext`: plain listeners answer a connection that opens
        /// with the HTTP/2 preface (h2c, prior knowledge) (default true).
        pub cleartext: bool,
        /// `http2.max_concurrent_streams`: streams a client may have open
        /// on one connection (default 128).
        pub max_concurrent_streams: u32,
        /// `http2.disabled_on`: listeners (addresses of `listen` or
        /// `tls.listen`) that speak HTTP/1.1 only (default none).
        pub disabled_on: Vec<TcpAddress>,
        /// `http2.engine`: the server's own HTTP/2 (`native`) or the `h2`
        /// crate's (docs/http2.md).
        pub engine: super::names::Http2Engine,
    }
}

impl Http2Config {
    /// Whether HTTP/2 may be spoken on the listener a connection came in
    /// on, whose address `local` gives (asked only when `disabled_on`
    /// names any: no syscall otherwise). A host name matches by port.
    pub fn allowed_on(&self, local: impl FnOnce() -> Option<std::net::SocketAddr>) -> bool {
        if self.disabled_on.is_empty() {
            return true;
        }
        let Some(local) = local() else {
            return true;
        };
        !self.disabled_on.iter().any(|off| match off {
            TcpAddress::Addr(addr) if addr.ip().is_unspecified() => addr.port() == local.port(),
            TcpAddress::Addr(addr) => *addr == local,
            TcpAddress::Name { port, .. } => *port == local.port(),
        })
    }
}
