//! HTTP protocol rules: request parsing, request-target and
//! percent-encoding rules, chunked framing, response heads, and the PROXY
//! protocol header a proxy in front may send before them; HTTP/2
//! requests and responses in HTTP/1.1 form (`h2_mapping`).
//! Nothing here touches sockets or files.

pub mod chunked;
pub mod date;
mod field_name;
mod fields;
pub mod h2_mapping;
pub mod hpack;
pub mod json;
pub mod method;
pub mod plain;
pub mod proxy;
pub mod request;
mod request_lines;
mod request_version;
pub mod response;
pub mod status;
pub mod uri;
pub(crate) mod words;

pub use chunked::{ChunkedDecoder, Step};
pub use fields::Field;
pub use method::Method;
pub use plain::{scan_plain, Plain};
pub use proxy::{parse_proxy_header, ProxyError, ProxyHeader};
pub use request::{parse_request, BodyFraming, HttpError, Limits, Request};
pub(crate) use request_lines::request_of_lines;
pub use response::{write_error, write_error_as, write_head, Head, PreparedError};
pub use status::reason;
