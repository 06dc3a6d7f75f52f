//! http-01 (RFC 8555 §8.3): with `acme.challenge = "http-01"`, a plain
//! listener answers `GET /.well-known/acme-challenge/TOKEN` with the key
//! authorization the ACME manager published for TOKEN (text/plain), while
//! it is published. The handler asks before redirects, sites, rules and
//! `[[auth]]`, so an HTTPS redirect on the plain listener does not hide
//! the challenge (as Caddy does it). Any other path, a token that is not
//! published now, or one outside the base64url alphabet a CA's tokens
//! use, goes on to the usual routing (a file, the redirect) untouched.

use std::sync::Arc;

use crate::acme::is_token;
use crate::http::Method;

use super::routes::Target;
use super::{Exchange, Outcome, Service, ServiceFuture};

/// The path prefix of http-01 (RFC 8555 §8.3).
pub const HTTP_CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// The answer to one challenge request: the key authorization.
pub struct HttpChallenge(String);

/// The challenge answer for `path` when `on` (a plain connection, the
/// manager doing http-01), `path` is under the challenge prefix with a
/// well-formed token, and `lookup` (a token's key authorization) has it.
pub fn http_challenge(
    on: bool,
    path: &str,
    lookup: impl FnOnce(&str) -> Option<String>,
) -> Option<Target> {
    if !on {
        return None;
    }
    let token = path.strip_prefix(HTTP_CHALLENGE_PREFIX)?;
    if !is_token(token) {
        return None;
    }
    let key_authorization = lookup(token)?;
    Some(Target::Mounted(Arc::new(HttpChallenge(key_authorization))))
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
    ex.respond(
        200,
        "text/plain",
        this.0.as_bytes(),
        &[("Cache-Control", "no-store")],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_published_well_formed_tokens_are_answered() {
        let lookup = |t: &str| (t == "tok-EN_1").then(|| "tok-EN_1.print".to_string());
        let path = "/.well-known/acme-challenge/tok-EN_1";
        assert!(http_challenge(true, path, lookup).is_some());
        assert!(http_challenge(false, path, lookup).is_none());
        for other in [
            "/.well-known/acme-challenge/unknown",
            "/.well-known/acme-challenge/",
            "/.well-known/acme-challenge/tok-EN_1/x",
            "/.well-known/acme-challenge/tok-EN_1.x",
            "/.well-known/acme-challenge/%74ok-EN_1",
            "/.well-known/acme-challenge/../index.html",
            "/tok-EN_1",
        ] {
            assert!(http_challenge(true, other, lookup).is_none(), "{other}");
        }
        let long = format!("/.well-known/acme-challenge/{}", "a".repeat(257));
        assert!(http_challenge(true, &long, |_| Some("x".into())).is_none());
    }
}
