//! Conveyor: a static HTTP/1.1 server whose parts are stages on an assembly
//! line, running as green threads on its own scheduler.
//!
//! The modules, from the ground up. A module may name only modules of a
//! lower rank (`tests/it/layers.rs` reads every file under `src/` and fails on
//! any other `crate::` path; modules of one rank may not name each other):
//!
//! | rank | module | what it is |
//! |---|---|---|
//! | 0 | [`runtime`] | the green-thread scheduler, reactor, timers, queues, async sockets; [`runtime::sys`] holds the OS calls. No HTTP. |
//! | 1 | [`http`] | request parsing, chunked bodies, response heads, dates: every HTTP framing rule |
//! | 2 | [`tls`], `metrics` | rustls keys and sessions; per-worker counters that `/status` sums |
//! | 2 | [`acme`] | an RFC 8555 client: account, orders, challenges, the state directory (blocking; a plain thread) |
//! | 3 | [`config`], `access_log` | defaults, TOML, validation; the combined-format log |
//! | 4 | [`service`] | what is served: `/echo`, `/status`, static files, mounted services |
//! | 5 | [`stages`] | acceptor, pending queue, dispatcher, handler, TLS handshake |
//! | 6 | `listening` | the listeners, opened from the config and changed by a reload |
//! | 7 | [`server`] | assembling the line from a [`config::Config`], and stopping it |
//! | 8 | `reload` | applying a new config file to a running server |
//!
//! The `conveyor` binary (`src/main.rs`, its CLI and `conveyor bench`) sits
//! on top and uses only this library's public API.

pub(crate) mod access_log;
pub mod acme;
pub mod config;
pub mod http;
pub(crate) mod listening;
pub(crate) mod metrics;
pub(crate) mod reload;
pub mod runtime;
pub mod server;
pub mod service;
pub mod stages;
pub mod tls;

pub use reload::Reloaded;
pub use server::{Server, ServerBuilder};
