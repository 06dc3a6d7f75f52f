//! http-01 (RFC 8555 §8.3): with `acme.challenge = "http-01"`, a plain
//! listener answers `GET /.well-known/acme-challenge/TOKEN` with the key
//! authorization the ACME manager published for TOKEN (text/plain), and
//! 404 for any other token. The handler asks before redirects, sites,
//! rules and `[[auth]]`, so an HTTPS redirect on the plain listener does
//! not hide the challenge (as Caddy does it).

use std::sync::Arc;

use crate::http::Method;

use super::routes::Target;
use super::{Exchange, Outcome, Service, ServiceFuture};

/// The path prefix of http-01 (RFC 8555 §8.3).
pub const HTTP_CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// The answer to one challenge request: the key authorization, or none.
pub struct HttpChallenge(Option<String>);

/// The challenge answer for `path` when `on` (a plain connection, the
/// manager doing http-01) and `path` is under the challenge prefix;
/// `lookup` gives a token's key authorization.
pub fn http_challenge(
    on: bool,
    path: &str,
    lookup: impl FnOnce(&str) -> Option<String>,
) -> Option<Target> {
    if !on {
        return None;
    }
    let token = path.strip_prefix(HTTP_CHALLENGE_PREFIX)?;
    Some(Target::Mounted(Arc::new(HttpChallenge(lookup(token)))))
}

impl Service for HttpChallenge {
    fn serve<'a>(&'a self, ex: &'a mut Exchange<'_>) -> ServiceFuture<'a> {
        ServiceFuture::new(async move { answer(self, ex) })
    }
}

fn answer(this: &HttpChallenge, ex: &mut Exchange<'_>) -> Outcome {
    ex.consume_preamble();
    if !matches!(ex.req.method, Method::Get | Method::Head) {
        return ex.error(405, "use GET", &[("Allow", "GET, HEAD")]);
    }
    match &this.0 {
        Some(key_authorization) => ex.respond(
            200,
            "text/plain",
            key_authorization.as_bytes(),
            &[("Cache-Control", "no-store")],
        ),
        None => ex.error(404, "no ACME challenge is published for this token", &[]),
    }
}
