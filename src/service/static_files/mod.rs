//! The static-file service: path resolution, ranges, conditional requests
//! and content types (pure functions); the per-worker cache, the lookup
//! through it, the sending, the listings; and `serve`, which decides the
//! answer and ties them together. Each file gets the parts it needs
//! passed in: only `serve.rs` knows `StaticFiles`.

mod cache;
mod compress;
mod conditional;
mod cors;
mod headers;
mod listing;
mod lookup;
mod mime;
mod negotiate;
mod path_hash;
mod range;
mod resolve;
mod send;
mod serve;
mod store;

pub use conditional::{evaluate, Decision, Preconditions, Validators};
pub use mime::{content_type, content_type_or};
pub use negotiate::{negotiate, Encoding};
pub use range::{content_range, parse_range, unsatisfied_range, RangeOutcome};
pub use resolve::{resolve, resolved_path, ResolveError, ResolveOptions, Resolved};
pub use serve::StaticFiles;
pub use store::CacheFigures;
