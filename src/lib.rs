//! Conveyor: a static HTTP/1.1 server whose parts are stages on an assembly
//! line, running as green threads on its own scheduler.

pub mod cli;
pub mod config;
pub mod http;
pub mod runtime;
pub mod service;
