//! `/status` JSON read as JSON (serde_json), so a test names the figure it
//! checks and a missing or mistyped one fails with its name.

use serde_json::Value;

/// A server whose `/status` report a test reads in-process.
pub(crate) trait Reports {
    fn status_json(&self) -> String;
}

impl Reports for conveyor::Server {
    fn status_json(&self) -> String {
        conveyor::Server::status_json(self)
    }
}

impl Reports for super::TestServer {
    fn status_json(&self) -> String {
        self.server().status_json()
    }
}

/// The server's `/status` report, parsed (read in-process, not over a socket).
pub(crate) fn status(server: &impl Reports) -> Value {
    parse(&server.status_json())
}

/// One of the `connections` figures of `/status`: `open`, `reading`,
/// `idle_keepalive`, `rejected`...
pub(crate) fn connections(server: &impl Reports, name: &str) -> i64 {
    status(server).at("connections").at(name).int()
}

/// `text` as JSON; panics with the text if it is not.
pub(crate) fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Typed reads of a figure that panic, naming it, when it is not there.
pub(crate) trait Figures {
    /// The value at a dotted path such as `connections.open`.
    fn at(&self, path: &str) -> &Value;
    fn int(&self) -> i64;
    fn num(&self) -> f64;
    fn str(&self) -> &str;
    fn arr(&self) -> &[Value];
}

impl Figures for Value {
    fn at(&self, path: &str) -> &Value {
        path.split('.').fold(self, |value, key| {
            value
                .get(key)
                .unwrap_or_else(|| panic!("no field {key:?} in {value}"))
        })
    }

    fn int(&self) -> i64 {
        self.as_i64()
            .unwrap_or_else(|| panic!("not an integer: {self}"))
    }

    fn num(&self) -> f64 {
        self.as_f64()
            .unwrap_or_else(|| panic!("not a number: {self}"))
    }

    fn str(&self) -> &str {
        self.as_str()
            .unwrap_or_else(|| panic!("not a string: {self}"))
    }

    fn arr(&self) -> &[Value] {
        self.as_array()
            .unwrap_or_else(|| panic!("not an array: {self}"))
    }
}
