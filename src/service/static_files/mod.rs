//! The static-file service: path resolution, ranges, conditional requests
//! and content types (pure functions); the per-worker cache, the lookup
//! through it, the sending; and the thin handler that ties them together.

mod cache;
mod compress;
mod conditional;
mod cors;
mod handler;
mod headers;
mod listing;
mod lookup;
mod mime;
mod negotiate;
mod range;
mod resolve;
mod send;

pub use conditional::{evaluate, Decision, Preconditions, Validators};
pub use handler::StaticFiles;
pub use mime::content_type;
pub use negotiate::{negotiate, Encoding};
pub use range::{content_range, parse_range, unsatisfied_range, RangeOutcome};
pub use resolve::{resolve, ResolveError, ResolveOptions, Resolved};
