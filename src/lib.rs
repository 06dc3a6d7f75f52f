//! Conveyor: a static HTTP/1.1 server whose parts are stages on an assembly
//! line, running as green threads on its own scheduler.
//!
//! - [`runtime`]: the green-thread scheduler, reactor, timers, queues and
//!   the libc calls beneath them. It knows nothing of HTTP.
//! - [`http`]: request parsing, chunked bodies, response heads, dates.
//! - [`service`]: what is served: `/echo`, `/status`, static files and
//!   services a library user mounts, through a route table. Services see
//!   the request, the connection's stream and bytes, and a narrow context;
//!   never the stages.
//! - [`stages`]: acceptor, pending queue, dispatcher, handler.
//!
//! Layers point one way: `runtime ← http ← service ← stages ← server`.
//! - [`server`]: assembling the line from a [`config::Config`], and taking
//!   it down gracefully.
//! - [`config`]: defaults, reading TOML, validation.
//! - `metrics` (crate-private): per-worker counters and gauges that `/status` sums.
//! - `access_log` (crate-private): the combined-format access log.

pub(crate) mod access_log;
pub mod config;
pub mod http;
pub mod listening;
pub(crate) mod metrics;
pub(crate) mod reload;
pub mod runtime;
pub mod server;
pub mod service;
pub mod stages;
pub mod tls;

pub use reload::Reloaded;
pub use server::{Server, ServerBuilder};
