//! HTTP to the CA: a blocking `ureq` agent (rustls with ring, the roots of
//! the system's bundle plus `acme.ca_file`), the nonce every POST spends,
//! signed POSTs retried on `badNonce`, and RFC 7807 problem documents
//! turned into errors that say what the CA said.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use ureq::tls::{Certificate, RootCerts, TlsConfig};
use ureq::Agent;

use super::jws::AccountKey;
use super::AcmeError;

/// The CA bundles of the common distributions (as Go's crypto/x509 looks
/// for them), tried in order; `SSL_CERT_FILE` first if set.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
];
/// How many times a POST is sent again after `badNonce`: each try spends
/// a fresh nonce, so only a CA refusing good nonces needs more than one.
/// The pebble tests refuse 30% of them: with 5 retries one POST failed
/// 0.3^6 = 0.07% of the time, about one test run in 50 (seen once in 28
/// runs); with 10 it is 0.3^11, 2 in a million.
const BAD_NONCE_RETRIES: usize = 10;
/// The largest response body read (a certificate chain is a few KiB).
const BODY_LIMIT: u64 = 1 << 20;
/// The longest `Retry-After` kept: Let's Encrypt's rate limits count over
/// a week.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(7 * 86_400);
/// The most of a problem's `detail` an error repeats (it goes to the log
/// and `/status`), and of its subproblems.
const DETAIL_MAX: usize = 300;
const SUBPROBLEMS_MAX: usize = 5;
const USER_AGENT: &str = concat!("conveyor/", env!("CARGO_PKG_VERSION"), " (ACME)");

/// A response from the CA.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) location: Option<String>,
    pub(crate) retry_after: Option<Duration>,
    pub(crate) body: Vec<u8>,
}

impl Reply {
    pub(crate) fn json(&self, what: &str) -> Result<Value, AcmeError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| AcmeError::new(format!("the CA's {what} is not JSON: {e}")))
    }
}

pub(crate) struct Transport {
    agent: Agent,
    request_timeout: Duration,
    new_nonce: String,
    nonce: Option<String>,
    /// The directory came over https: every URL the CA gives must too.
    https_only: bool,
}

/// The roots trusted for the CA's own HTTPS: the system bundle, if there is
/// one, plus `ca_file`.
fn roots(ca_file: Option<&Path>) -> Result<Vec<Certificate<'static>>, AcmeError> {
    let mut roots = Vec::new();
    let env = std::env::var_os("SSL_CERT_FILE").map(std::path::PathBuf::from);
    let system = env
        .into_iter()
        .chain(SYSTEM_BUNDLES.iter().map(std::path::PathBuf::from))
        .find(|p| p.is_file());
    if let Some(bundle) = system {
        if let Ok(pem) = std::fs::read(&bundle) {
            roots.extend(pem_certificates(&pem));
        }
    }
    if let Some(file) = ca_file {
        let pem = std::fs::read(file).map_err(|e| {
            AcmeError::new(format!(
                "acme.ca_file {}: {e}: name a readable PEM bundle",
                file.display()
            ))
        })?;
        let found = pem_certificates(&pem);
        if found.is_empty() {
            return Err(AcmeError::new(format!(
                "acme.ca_file {} holds no PEM certificate: name a PEM bundle",
                file.display()
            )));
        }
        roots.extend(found);
    }
    Ok(roots)
}

fn pem_certificates(pem: &[u8]) -> Vec<Certificate<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .map(|der| Certificate::from_der(&der).to_owned())
        .collect()
}

fn header(response: &ureq::http::Response<ureq::Body>, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// `Retry-After` in seconds (the HTTP-date form is read as no hint), at
/// most [`MAX_RETRY_AFTER`]: a CA's rate limit can ask for days, never
/// for a year that would stop renewals.
fn retry_after(value: Option<String>) -> Option<Duration> {
    let seconds: u64 = value?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER))
}

impl Transport {
    pub(crate) fn new(
        ca_file: Option<&Path>,
        request_timeout: Duration,
    ) -> Result<Transport, AcmeError> {
        let roots = roots(ca_file)?;
        let tls = TlsConfig::builder()
            .root_certs(RootCerts::Specific(Arc::new(roots)))
            .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .build();
        let agent = Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .timeout_global(Some(request_timeout))
            .timeout_connect(Some(request_timeout.min(Duration::from_secs(10))))
            .max_redirects(0)
            .user_agent(USER_AGENT)
            .build()
            .new_agent();
        Ok(Transport {
            agent,
            request_timeout,
            new_nonce: String::new(),
            nonce: None,
            https_only: true,
        })
    }

    pub(crate) fn set_new_nonce_url(&mut self, url: &str) {
        self.new_nonce = url.to_string();
    }

    /// Whether every URL must be https: set from the directory URL (an
    /// http directory is for a test CA on loopback).
    pub(crate) fn set_https_only(&mut self, https_only: bool) {
        self.https_only = https_only;
    }

    /// Refuses a URL that would downgrade the CA's https to plain http (a
    /// signed request or a certificate in clear). Other hosts are allowed,
    /// as lego and certbot allow them: RFC 8555 lets a CA spread its
    /// resources, and every request goes through the same roots.
    fn check_url(&self, what: &str, url: &str) -> Result<(), AcmeError> {
        let https = url
            .get(..8)
            .is_some_and(|s| s.eq_ignore_ascii_case("https://"));
        let http = url
            .get(..7)
            .is_some_and(|s| s.eq_ignore_ascii_case("http://"));
        if https || (http && !self.https_only) {
            return Ok(());
        }
        Err(AcmeError::new(format!(
            "{what}: the CA gave the URL {}, not an https URL: refused (is acme.directory the CA's https URL?)",
            printable(url, 200)
        )))
    }

    fn reply(
        &mut self,
        what: &str,
        url: &str,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Reply, AcmeError> {
        let timeout = self.request_timeout;
        let mut response = result.map_err(|e| {
            let why = match e {
                ureq::Error::Timeout(_) => format!("no answer within {timeout:?}"),
                other => other.to_string(),
            };
            AcmeError::new(format!(
                "{what} {url}: {why}: is the ACME directory URL right and the CA reachable?"
            ))
        })?;
        // RFC 8555 §6.5.1: a nonce that is not base64url is ignored.
        if let Some(nonce) = header(&response, "replay-nonce").filter(|n| valid_nonce(n)) {
            self.nonce = Some(nonce);
        }
        let body = response
            .body_mut()
            .with_config()
            .limit(BODY_LIMIT)
            .read_to_vec()
            .map_err(|e| AcmeError::new(format!("{what} {url}: reading the answer: {e}")))?;
        Ok(Reply {
            status: response.status().as_u16(),
            location: header(&response, "location"),
            retry_after: retry_after(header(&response, "retry-after")),
            body,
        })
    }

    /// A plain GET (the directory, renewal information).
    pub(crate) fn get(&mut self, what: &str, url: &str) -> Result<Reply, AcmeError> {
        self.check_url(what, url)?;
        let result = self.agent.get(url).call();
        self.reply(what, url, result)
    }

    fn fresh_nonce(&mut self) -> Result<String, AcmeError> {
        if let Some(nonce) = self.nonce.take() {
            return Ok(nonce);
        }
        let url = self.new_nonce.clone();
        self.check_url("asking for a nonce", &url)?;
        let result = self.agent.head(&url).call();
        self.reply("asking for a nonce at", &url, result)?;
        self.nonce.take().ok_or_else(|| {
            AcmeError::new(format!(
                "the CA's newNonce {url} sent no valid Replay-Nonce (base64url)"
            ))
        })
    }

    /// A signed POST (`payload` `None`: POST-as-GET); a 4xx/5xx answer is an
    /// error naming the CA's problem. `badNonce` is retried here.
    pub(crate) fn post(
        &mut self,
        what: &str,
        key: &AccountKey,
        kid: Option<&str>,
        url: &str,
        payload: Option<&Value>,
    ) -> Result<Reply, AcmeError> {
        self.post_accepting(what, key, kid, url, payload, "application/json")
    }

    /// [`Transport::post`] asking for `accept` (the certificate download
    /// asks for `application/pem-certificate-chain`, RFC 8555 §7.4.2).
    pub(crate) fn post_accepting(
        &mut self,
        what: &str,
        key: &AccountKey,
        kid: Option<&str>,
        url: &str,
        payload: Option<&Value>,
        accept: &str,
    ) -> Result<Reply, AcmeError> {
        self.check_url(what, url)?;
        let mut attempt = 0;
        loop {
            let nonce = self.fresh_nonce()?;
            let body = key.sign(url, &nonce, kid, payload)?;
            let result = self
                .agent
                .post(url)
                .header("content-type", "application/jose+json")
                .header("accept", accept)
                .send(&body[..]);
            let reply = self.reply(what, url, result)?;
            if reply.status < 400 {
                return Ok(reply);
            }
            let error = problem(what, &reply);
            if error.problem_type() == Some("urn:ietf:params:acme:error:badNonce")
                && attempt < BAD_NONCE_RETRIES
            {
                attempt += 1;
                continue;
            }
            return Err(error);
        }
    }
}

/// Whether `nonce` is a Replay-Nonce RFC 8555 §6.5.1 allows: base64url,
/// not empty (and not absurdly long: it is sent back in every request).
fn valid_nonce(nonce: &str) -> bool {
    (1..=512).contains(&nonce.len())
        && nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// CA-given text made fit for a log line: at most `max` characters,
/// control characters (newlines too) escaped, `…` if cut.
pub(crate) fn printable(text: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The error for a 4xx/5xx reply: the CA's problem document (type, detail,
/// subproblems) if it sent one.
pub(crate) fn problem(what: &str, reply: &Reply) -> AcmeError {
    let doc: Option<Value> = serde_json::from_slice(&reply.body).ok();
    let kind = doc
        .as_ref()
        .and_then(|d| d["type"].as_str())
        .map(str::to_string);
    let mut message = format!("{what}: the CA answered {}", reply.status);
    if let Some(doc) = &doc {
        if let Some(kind) = &kind {
            message.push_str(&format!(" {}", printable(kind, 100)));
        }
        if let Some(detail) = doc["detail"].as_str() {
            message.push_str(&format!(": {}", printable(detail, DETAIL_MAX)));
        }
        let subproblems = doc["subproblems"].as_array().into_iter().flatten();
        for sub in subproblems.clone().take(SUBPROBLEMS_MAX) {
            let id = sub["identifier"]["value"].as_str().unwrap_or("?");
            let detail = sub["detail"].as_str().unwrap_or("");
            message.push_str(&format!(
                "; {}: {}",
                printable(id, 100),
                printable(detail, DETAIL_MAX)
            ));
        }
        let more = subproblems.count().saturating_sub(SUBPROBLEMS_MAX);
        if more > 0 {
            message.push_str(&format!("; and {more} more"));
        }
    }
    let mut error = AcmeError::new(message);
    error.problem_type = kind.map(|k| printable(&k, 100));
    error.retry_after = reply.retry_after;
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_https_directory_never_leads_to_plain_http() {
        let mut transport = Transport::new(None, Duration::from_secs(1)).expect("transport");
        transport.set_https_only(true);
        assert!(transport.check_url("x", "https://ca.test/order/1").is_ok());
        assert!(transport.check_url("x", "HTTPS://other.test/cert").is_ok());
        let err = transport
            .check_url("downloading", "http://ca.test/cert/1")
            .expect_err("downgrade");
        assert!(err.to_string().contains("not an https URL"), "{err}");
        assert!(transport.check_url("x", "file:///etc/passwd").is_err());
        transport.set_https_only(false);
        assert!(transport.check_url("x", "http://127.0.0.1:1/cert").is_ok());
        assert!(transport.check_url("x", "gopher://ca.test/").is_err());
    }

    #[test]
    fn nonces_and_ca_text_are_checked() {
        assert!(valid_nonce("oFvnlFP1wIhRlYS2jTaXbA"));
        assert!(!valid_nonce(""));
        assert!(!valid_nonce("a+b"));
        assert!(!valid_nonce(&"a".repeat(513)));
        assert_eq!(printable("a\nb\u{7}", 10), "a\\nb\\u{7}");
        assert_eq!(printable("abcdef", 3), "abc…");
        let hint = |v: &str| retry_after(Some(v.to_string()));
        assert_eq!(hint(" 120 "), Some(Duration::from_secs(120)));
        assert_eq!(hint("999999999999"), Some(MAX_RETRY_AFTER));
        assert_eq!(hint("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(hint("-5"), None);
    }
}
