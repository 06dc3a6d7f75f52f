//! What the access log and the response figures are told of each
//! answer, and of a request that could not be parsed.

use std::time::Instant;

use super::Built;
use crate::access_log::{raw_request_line, RequestLine, Who};
use crate::config::Client;
use crate::stages::{Conn, Line};

impl Built {
    pub(super) fn record(
        &self,
        line: &Line,
        conn: &Conn,
        logged: Logged<'_>,
        status: u16,
        bytes: u64,
        started: Instant,
    ) {
        line.metrics
            .here()
            .record_response(status, started.elapsed());
        if let Some(log) = &self.access_log {
            // A request's client as it was decided; else the connection's.
            let client = logged.client.unwrap_or_else(|| conn.client());
            // With `[[sites]]`, every line ends with the site.
            let site = self.sites.is_some().then_some(logged.site);
            let who = Who {
                client: &client.to_string(),
                user: logged.user,
                site,
            };
            log.record(&who, logged.request, status, bytes);
        }
    }
}

/// What the access log writes of a request besides its answer.
pub(super) struct Logged<'a> {
    pub(super) request: RequestLine<'a>,
    /// The client as the request decided it (`X-Forwarded-For`); `None`:
    /// the connection's.
    pub(super) client: Option<Client>,
    /// The user `[[auth]]` let through, if any.
    pub(super) user: Option<&'a str>,
    /// The site that answered (`[[sites]]`), `-` if none did.
    pub(super) site: &'a str,
}

/// What the log says of a request that could not be parsed: its request
/// line as received, from the connection's client.
pub(super) fn raw(conn: &Conn) -> Logged<'_> {
    Logged {
        request: RequestLine::Raw(raw_request_line(conn.input.pending())),
        client: None,
        user: None,
        site: "-",
    }
}
