//! The static-file service: path resolution, ranges, conditional requests
//! and content types (pure functions), and the handler that opens, caches
//! and sends the files.

mod conditional;
mod handler;
mod mime;
mod range;
mod resolve;

pub use conditional::{evaluate, Decision, Preconditions, Validators};
pub use handler::StaticFiles;
pub use mime::content_type;
pub use range::{content_range, parse_range, unsatisfied_range, RangeOutcome};
pub use resolve::{resolve, ResolveError, ResolveOptions, Resolved};
