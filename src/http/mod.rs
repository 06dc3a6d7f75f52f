//! HTTP/1.1 protocol rules: request parsing, chunked decoding, response heads.
//! Nothing here touches sockets or files.

pub mod chunked;
pub mod date;
pub mod json;
pub mod request;
pub mod response;
pub mod status;

pub use chunked::{ChunkedDecoder, Step};
pub use request::{parse_request, BodyFraming, HttpError, Limits, Method, Request};
pub use response::{write_error, write_error_as, write_head, Head, PreparedError};
pub use status::reason;
