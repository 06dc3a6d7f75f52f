//! Conveyor: a static HTTP/1.1 server whose parts are stages on an assembly
//! line, running as green threads on its own scheduler.
//!
//! - [`runtime`]: the green-thread scheduler, reactor, timers and queues.
//! - [`http`]: request parsing and response heads.
//! - [`stages`]: acceptor, pending queue, dispatcher, handler.
//! - [`service`]: `/echo`, `/status` and static files.
//! - [`server`]: assembling the line from a [`config::Config`].

pub mod access_log;
pub mod bench;
pub mod cli;
pub mod config;
pub mod http;
pub mod metrics;
pub mod runtime;
pub mod server;
pub mod service;
pub mod stages;

pub use server::{Server, ServerBuilder};
