//! `[[auth]]`: HTTP Basic authentication (RFC 7617) in front of whatever
//! answers a path prefix. The users come from htpasswd files read when the
//! routes are built (start-up and SIGHUP), bcrypt hashes only; the check
//! runs on the bcrypt threads (`verify`), and failed logins are counted per
//! client address (`failures`): past `limits.auth_failures_per_minute` the
//! client is answered 429 until its minute is over.

mod failures;
mod htpasswd;
mod remembered;
mod verify;

use std::collections::HashMap;
use std::sync::Arc;

pub use failures::AuthFailures;

use crate::config::{Config, ListenAddress, TcpAddress};
use crate::http::uri::percent_decode;
use crate::http::{BodyFraming, Field};

use super::routes::Target;
use super::{Exchange, Outcome};
use verify::Verdict;

/// The rules one configuration makes, with their users.
pub struct Gate {
    /// Longest prefix first: the first that guards a path decides.
    guards: Vec<Guard>,
}

/// One rule: its prefix, realm and users.
pub struct Guard {
    rule: crate::config::AuthRule,
    /// `Basic realm="…", charset="UTF-8"`.
    challenge: String,
    users: HashMap<String, Arc<str>>,
    /// Checked for a user not in the file, so their answer takes as long
    /// as a known user's: no timing tells which names exist.
    dummy: Arc<str>,
    failures: Arc<AuthFailures>,
    /// Logins checked lately, so a page's assets cost one bcrypt check.
    remembered: remembered::Remembered,
}

impl Gate {
    /// Reads every rule's htpasswd file. An error names the rule, the file
    /// and the fix; the configuration is then refused (exit 2 at start, the
    /// old one kept on SIGHUP).
    pub fn new(config: &Config, failures: &Arc<AuthFailures>) -> Result<Gate, String> {
        let mut guards = Vec::new();
        for (i, rule) in config.auth.iter().enumerate() {
            let file = rule.htpasswd.display();
            let at = format!("auth (rule {}) htpasswd = \"{file}\"", i + 1);
            let text = std::fs::read_to_string(&rule.htpasswd)
                .map_err(|e| format!("{at}: cannot read it: {e}; check the path (relative paths are beneath the config file's directory)"))?;
            let users = htpasswd::parse(&text, &rule.htpasswd).map_err(|e| format!("{at}: {e}"))?;
            let dummy = bcrypt::hash_with_salt(b"conveyor: no such user", users.cost, [0x5a; 16])
                .map_err(|e| format!("{at}: {e}"))?
                .to_string();
            guards.push(Guard {
                challenge: format!("Basic realm=\"{}\", charset=\"UTF-8\"", rule.realm),
                rule: rule.clone(),
                users: users.by_name,
                dummy: Arc::from(dummy),
                failures: failures.clone(),
                remembered: remembered::Remembered::default(),
            });
        }
        guards.sort_by_key(|g| std::cmp::Reverse(g.rule.path.trim_end_matches('/').len()));
        Ok(Gate { guards })
    }

    /// Whether no `[[auth]]` rule is configured.
    pub fn is_empty(&self) -> bool {
        self.guards.is_empty()
    }

    /// The rule guarding this request, if any: by its path with escapes
    /// decoded and `.`, `..` and empty segments resolved, as the files
    /// are found (so `/%61dmin/` and `/x/../admin/` are `/admin/`). The
    /// probes are never guarded: a load balancer's health check has no
    /// password.
    pub fn guard(&self, path: &str, target: &Target) -> Option<&Guard> {
        if self.guards.is_empty() || matches!(target, Target::Live | Target::Ready) {
            return None;
        }
        let path = normalize(path);
        self.guards.iter().find(|g| g.rule.guards(&path))
    }

    /// The answer to a request the rule guarding it does not let through
    /// (401, 429) as `Err`; else `Ok`, with the user it let through (None:
    /// no rule guards it), and the caller serves it through `target`.
    /// The rule is that of the path served (a rewrite's), else that of the
    /// path `asked`; None (a redirect answers): no rule.
    pub async fn refuse<'s>(
        &'s self,
        target: &Target,
        ex: &mut Exchange<'_>,
        asked: Option<&str>,
    ) -> Result<Option<&'s str>, Outcome> {
        let guard = asked.and_then(|asked| {
            let served = self.guard(ex.req.path(), target);
            served.or_else(|| self.guard(asked, target))
        });
        let Some(guard) = guard else {
            return Ok(None);
        };
        let reads_body = target.reads_body(ex.req);
        guard.check(ex, reads_body).await.map(Some)
    }

    /// A warning when a rule is served over plain HTTP on an address other
    /// machines reach: the password would cross the network readable.
    pub fn exposure(config: &Config) -> Option<String> {
        if config.auth.is_empty() || config.tls.redirect_http {
            return None;
        }
        let open = config.listen.specs().iter().find(|l| match l {
            ListenAddress::Tcp(TcpAddress::Addr(a)) => !a.ip().is_loopback(),
            ListenAddress::Tcp(TcpAddress::Name { host, .. }) => host != "localhost",
            _ => false,
        })?;
        Some(format!(
            "[[auth]] is served over plain HTTP on {open}: Basic-auth passwords cross the \
             network readable; serve it over HTTPS (tls.listen, tls.redirect_http = true), \
             behind a TLS-terminating proxy, or on a loopback address"
        ))
    }
}

impl Guard {
    /// Lets the request through (`Ok`, with its user, for the access
    /// log) or answers it (`Err`): 401 with the
    /// challenge without credentials or with wrong ones, 429 with
    /// `Retry-After` once the client has failed too often, 503 when the
    /// bcrypt threads are all busy. `reads_body`: the route would have read
    /// the body, so a refusal closes the connection instead.
    pub async fn check(&self, ex: &mut Exchange<'_>, reads_body: bool) -> Result<&str, Outcome> {
        let client = ex.client();
        let max = ex.ctx.config.limits.auth_failures_per_minute;
        let keep_alive = ex.keep_alive;
        if reads_body && ex.req.body != BodyFraming::None {
            // Only refusals reach the write below with this value.
            ex.keep_alive = false;
        }
        if let Some(left) = self.failures.blocked(client, max, ex.ctx.now()) {
            let left = left.to_string();
            return Err(ex.error(
                429,
                "too many failed logins from this address; retry after the time in Retry-After",
                &[("Retry-After", &left)],
            ));
        }
        let Some((user, password)) = credentials(ex) else {
            return Err(self.unauthorized(ex));
        };
        let now = ex.ctx.now();
        // The name as the file has it: borrowed for the access log, no copy.
        let entry = self.users.get_key_value(&user);
        if let Some((name, _)) = entry.filter(|_| self.remembered.knows(&user, &password, now)) {
            ex.keep_alive = keep_alive;
            return Ok(name);
        }
        let hash = entry.map_or(&self.dummy, |(_, hash)| hash).clone();
        match verify::verify(&password, hash).await {
            Verdict::Match if entry.is_some() => {
                self.remembered.remember(&user, &password, now);
                ex.keep_alive = keep_alive;
                Ok(entry.map_or("", |(name, _)| name.as_str()))
            }
            Verdict::Busy => Err(ex.error(
                503,
                "too many logins at once; retry shortly",
                &[("Retry-After", "1")],
            )),
            _ => {
                self.failures.fail(client, ex.ctx.now());
                Err(self.unauthorized(ex))
            }
        }
    }

    fn unauthorized(&self, ex: &mut Exchange<'_>) -> Outcome {
        ex.error(
            401,
            "authentication required",
            &[("WWW-Authenticate", &self.challenge)],
        )
    }
}

/// The user and password of an `Authorization: Basic` field, if there is
/// one that decodes.
fn credentials(ex: &Exchange<'_>) -> Option<(String, Vec<u8>)> {
    let value = ex.req.field(ex.preamble(), Field::Authorization)?;
    let value = std::str::from_utf8(value).ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64_decode(token.trim())?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let user = String::from_utf8(decoded[..colon].to_vec()).ok()?;
    Some((user, decoded[colon + 1..].to_vec()))
}

/// Standard base64 with padding (RFC 4648 §4), as Basic auth sends it.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let digit = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(4) || bytes.len() > 4096 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for (i, quad) in bytes.chunks(4).enumerate() {
        let last = i + 1 == bytes.len() / 4;
        let pad = quad.iter().rev().take_while(|&&b| b == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &c in &quad[..4 - pad] {
            n = n << 6 | digit(c)?;
        }
        n <<= 6 * pad as u32;
        let three = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&three[..3 - pad]);
    }
    Some(out)
}

/// The path as the files are found: escapes decoded, empty and `.`
/// segments dropped, `..` taking the one before (never above `/`). An
/// escape that does not decode leaves the path as it is (such a request is
/// refused by the files anyway).
fn normalize(path: &str) -> String {
    let decoded = match percent_decode(path.as_bytes()) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => path.to_string(),
    };
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(decoded.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_matched_as_the_files_are_found() {
        assert_eq!(normalize("/%61dmin/x"), "/admin/x");
        assert_eq!(normalize("//admin/./y/../z"), "/admin/z");
        assert_eq!(normalize("/../../admin"), "/admin");
        assert_eq!(normalize("/"), "/");
        assert_eq!(normalize("/%2e%2e/admin"), "/admin");
    }

    #[test]
    fn base64_decodes_what_clients_send() {
        assert_eq!(base64_decode("YWxpY2U6c2VjcmV0").unwrap(), b"alice:secret");
        assert_eq!(base64_decode("YTpi").unwrap(), b"a:b");
        assert_eq!(base64_decode("YTo=").unwrap(), b"a:");
        assert_eq!(base64_decode("YQ==").unwrap(), b"a");
        assert_eq!(base64_decode("").unwrap(), b"");
        for bad in ["YTo", "Y===", "YQ==YQ==", "YT!=", "YWxp Y2U="] {
            assert_eq!(base64_decode(bad), None, "{bad}");
        }
    }
}
