//! The pure (socket-free) logic of the static-file service: path resolution,
//! ranges, conditional requests and content types.

// handler.rs (the socket side) is added by the server.
mod conditional;
mod mime;
mod range;
mod resolve;

pub use conditional::{evaluate, Decision, Preconditions, Validators};
pub use mime::content_type;
pub use range::{content_range, parse_range, unsatisfied_range, RangeOutcome};
pub use resolve::{resolve, ResolveError, ResolveOptions, Resolved};
