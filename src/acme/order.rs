//! One order (RFC 8555 §7.4): create it, prove each authorization through
//! the responder, finalize with a CSR over a fresh key, download the chain,
//! store it. Every wait polls with a bounded backoff and ends at the
//! order's deadline.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::jws::{base64url, key_authorization};
use super::transport::printable;
use super::{
    ari, state, AcmeClient, AcmeError, Challenge, ChallengeKind, Responder, StoredCertificate,
};

/// The first pause between polls; doubled each time up to `MAX_POLL`.
const FIRST_POLL: Duration = Duration::from_millis(250);
const MAX_POLL: Duration = Duration::from_secs(8);
/// The longest `Retry-After` obeyed between polls.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);
/// Certificates kept per domain set: the new one and the one before.
const KEEP: usize = 2;

/// A published challenge, withdrawn when dropped (whatever the outcome).
struct Published<'a> {
    responder: &'a dyn Responder,
    challenge: Challenge,
}

impl Drop for Published<'_> {
    fn drop(&mut self) {
        self.responder.withdraw(&self.challenge);
    }
}

pub(super) fn run(
    client: &mut AcmeClient,
    responder: &dyn Responder,
) -> Result<StoredCertificate, AcmeError> {
    let deadline = Instant::now() + client.timeouts.order;
    let (order_url, order) = create(client)?;
    let authorizations = order["authorizations"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    // One per identifier at most (RFC 8555 §7.1.3): a longer list is a
    // broken or hostile CA making us loop.
    if authorizations.len() > client.settings.domains.len() {
        return Err(AcmeError::new(format!(
            "the CA's order lists {} authorizations for {} domains: refused",
            authorizations.len(),
            client.settings.domains.len()
        )));
    }
    for authz in authorizations {
        let url = authz.as_str().ok_or_else(|| {
            AcmeError::new("the CA's order lists an authorization that is not a URL")
        })?;
        authorize(client, responder, url, deadline)?;
    }
    let order = poll(client, "the order to be ready", &order_url, deadline, |o| {
        ready_or_failed(o, &["ready", "valid"])
    })?;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| AcmeError::new(format!("cannot make the certificate's key: {e}")))?;
    let order = if order["status"] == "ready" {
        finalize(client, &order, &key)?;
        poll(
            client,
            "the certificate to be issued",
            &order_url,
            deadline,
            |o| ready_or_failed(o, &["valid"]),
        )?
    } else {
        order
    };
    let cert_url = order["certificate"]
        .as_str()
        .ok_or_else(|| AcmeError::new("the CA's valid order has no certificate URL"))?
        .to_string();
    let kid = client.account_url.clone();
    let reply = client.transport.post_accepting(
        "downloading the certificate",
        &client.key,
        Some(&kid),
        &cert_url,
        None,
        "application/pem-certificate-chain",
    )?;
    check_issued(&reply.body, &key, &client.settings.domains)?;
    let settings = &client.settings;
    let stored = state::store_certificate(
        &settings.state_dir,
        &settings.directory,
        &reply.body,
        &key.serialize_der(),
    )?;
    state::prune_certificates(
        &settings.state_dir,
        &settings.directory,
        &settings.domains,
        KEEP,
    );
    Ok(stored)
}

/// The downloaded chain's leaf is for our key and exactly our domains:
/// anything else is never stored (it could not be served).
fn check_issued(chain: &[u8], key: &rcgen::KeyPair, domains: &[String]) -> Result<(), AcmeError> {
    let leaf = state::leaf_of(chain).ok_or_else(|| {
        AcmeError::new("the CA sent a certificate that does not parse as a PEM chain")
    })?;
    if leaf.public_key != key.public_key_raw() {
        return Err(AcmeError::new(
            "the CA sent a certificate for another key than the CSR's",
        ));
    }
    if state::domain_set(&leaf.dns_names) != state::domain_set(domains) {
        return Err(AcmeError::new(format!(
            "the CA sent a certificate for {:?}, not for {:?}",
            leaf.dns_names, domains
        )));
    }
    Ok(())
}

fn post_as_get(
    client: &mut AcmeClient,
    what: &str,
    url: &str,
) -> Result<super::transport::Reply, AcmeError> {
    let kid = client.account_url.clone();
    client
        .transport
        .post(what, &client.key, Some(&kid), url, None)
}

/// Creates the order; with renewal information, names the certificate it
/// replaces (RFC 9773 §5), and tries again without if the CA refuses that.
fn create(client: &mut AcmeClient) -> Result<(String, Value), AcmeError> {
    let identifiers: Vec<Value> = client
        .settings
        .domains
        .iter()
        .map(|d| json!({ "type": "dns", "value": d }))
        .collect();
    let plain = json!({ "identifiers": identifiers });
    let replaces = client.directory.renewal_info.as_ref().and_then(|_| {
        let s = &client.settings;
        let (_, leaf) = state::find_certificate(
            &s.state_dir,
            &s.directory,
            &s.domains,
            std::time::SystemTime::now(),
        )?;
        ari::leaf_id(&leaf)
    });
    let kid = client.account_url.clone();
    let url = client.directory.new_order.clone();
    let mut send = |payload: &Value| {
        let (what, key) = ("creating the order", &client.key);
        client
            .transport
            .post(what, key, Some(&kid), &url, Some(payload))
    };
    let reply = match replaces {
        Some(id) => {
            let mut payload = plain.clone();
            payload["replaces"] = json!(id);
            match send(&payload) {
                Ok(reply) => reply,
                Err(_) => send(&plain)?,
            }
        }
        None => send(&plain)?,
    };
    let order_url = reply
        .location
        .clone()
        .ok_or_else(|| AcmeError::new("the CA's newOrder answer has no Location"))?;
    Ok((order_url, reply.json("order")?))
}

/// Proves one authorization: nothing to do if it is already valid.
fn authorize(
    client: &mut AcmeClient,
    responder: &dyn Responder,
    url: &str,
    deadline: Instant,
) -> Result<(), AcmeError> {
    let authz = post_as_get(client, "reading an authorization", url)?.json("authorization")?;
    let domain = authz["identifier"]["value"]
        .as_str()
        .unwrap_or("?")
        .to_string();
    // The name a tls-alpn-01 answer is served for: only one we asked for.
    let ours = client.settings.domains.iter();
    if !ours.clone().any(|d| d.eq_ignore_ascii_case(&domain)) {
        return Err(AcmeError::new(format!(
            "the CA's authorization {} is for {:?}, a name not in acme.domains {:?}",
            printable(url, 200),
            printable(&domain, 100),
            ours.collect::<Vec<_>>()
        )));
    }
    match authz["status"].as_str() {
        Some("valid") => return Ok(()),
        Some("pending") => {}
        other => {
            return Err(AcmeError::new(format!(
                "the authorization for {domain} is {}: order again",
                printable(other.unwrap_or("without status"), 40)
            )))
        }
    }
    let kind = client.settings.challenge;
    let offered = authz["challenges"].as_array().into_iter().flatten();
    let challenge = offered
        .clone()
        .find(|c| c["type"] == kind.name())
        .ok_or_else(|| {
            let names: Vec<String> = offered
                .filter_map(|c| c["type"].as_str())
                .take(10)
                .map(|t| printable(t, 40))
                .collect();
            AcmeError::new(format!(
                "the CA offers no {} challenge for {domain} (only {}): set acme.challenge to one of those",
                kind.name(),
                names.join(", ")
            ))
        })?;
    let token = challenge["token"].as_str().ok_or_else(|| {
        AcmeError::new(format!(
            "the {} challenge for {domain} has no token",
            kind.name()
        ))
    })?;
    // RFC 8555 §8.3: base64url only. It becomes a path segment of the
    // http-01 answer, so never a `/`, `..` or anything to escape.
    if !valid_token(token) {
        return Err(AcmeError::new(format!(
            "the {} challenge for {domain} has the token {:?}, not base64url: refused",
            kind.name(),
            printable(token, 100)
        )));
    }
    let challenge_url = challenge["url"]
        .as_str()
        .ok_or_else(|| {
            AcmeError::new(format!(
                "the {} challenge for {domain} has no URL",
                kind.name()
            ))
        })?
        .to_string();
    let key_authorization = key_authorization(token, &client.key.thumbprint());
    let published = Published {
        responder,
        challenge: match kind {
            ChallengeKind::Http01 => Challenge::Http01 {
                token: token.to_string(),
                key_authorization,
            },
            ChallengeKind::TlsAlpn01 => Challenge::TlsAlpn01 {
                domain: domain.clone(),
                key_authorization,
            },
        },
    };
    responder.publish(&published.challenge);
    let kid = client.account_url.clone();
    client.transport.post(
        "answering the challenge",
        &client.key,
        Some(&kid),
        &challenge_url,
        Some(&json!({})),
    )?;
    let what = format!("the {} challenge for {domain} to be validated", kind.name());
    poll(client, &what, url, deadline, |a| {
        match a["status"].as_str() {
            Some("valid") => Ok(true),
            Some("pending") | Some("processing") => Ok(false),
            other => Err(invalid_authorization(a, &domain, other.unwrap_or("?"))),
        }
    })?;
    drop(published);
    Ok(())
}

/// Whether `token` is a challenge token RFC 8555 §8.3 allows: base64url
/// characters, no padding, not empty; at most 256 of them.
fn valid_token(token: &str) -> bool {
    (1..=256).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The error for an authorization that failed: the challenge's error as
/// the CA recorded it (what it fetched, what it saw).
fn invalid_authorization(authz: &Value, domain: &str, status: &str) -> AcmeError {
    let mut message = format!(
        "the authorization for {domain} is {}",
        printable(status, 40)
    );
    for challenge in authz["challenges"].as_array().into_iter().flatten() {
        if let Some(error) = challenge.get("error") {
            message.push_str(&format!(
                ": {} {}",
                printable(error["type"].as_str().unwrap_or(""), 100),
                printable(error["detail"].as_str().unwrap_or(""), 300)
            ));
        }
    }
    AcmeError::new(message)
}

/// Whether the order reached one of `wanted`; an error if it failed.
fn ready_or_failed(order: &Value, wanted: &[&str]) -> Result<bool, AcmeError> {
    let status = order["status"].as_str().unwrap_or("");
    if wanted.contains(&status) {
        return Ok(true);
    }
    match status {
        "pending" | "ready" | "processing" => Ok(false),
        _ => {
            let detail = order["error"]["detail"].as_str().unwrap_or("no detail");
            Err(AcmeError::new(format!(
                "the order is {}: {}",
                printable(status, 40),
                printable(detail, 300)
            )))
        }
    }
}

fn finalize(client: &mut AcmeClient, order: &Value, key: &rcgen::KeyPair) -> Result<(), AcmeError> {
    let url = order["finalize"]
        .as_str()
        .ok_or_else(|| AcmeError::new("the CA's order has no finalize URL"))?
        .to_string();
    let csr_error = |e: rcgen::Error| AcmeError::new(format!("cannot make the CSR: {e}"));
    let mut params =
        rcgen::CertificateParams::new(client.settings.domains.clone()).map_err(csr_error)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    let csr = params.serialize_request(key).map_err(csr_error)?;
    let kid = client.account_url.clone();
    let payload = json!({ "csr": base64url(csr.der()) });
    client.transport.post(
        "finalizing the order",
        &client.key,
        Some(&kid),
        &url,
        Some(&payload),
    )?;
    Ok(())
}

/// POST-as-GETs `url` until `done` says so, pausing with a doubling backoff
/// (or the CA's `Retry-After`), until `deadline`.
fn poll(
    client: &mut AcmeClient,
    what: &str,
    url: &str,
    deadline: Instant,
    done: impl Fn(&Value) -> Result<bool, AcmeError>,
) -> Result<Value, AcmeError> {
    let mut pause = FIRST_POLL;
    loop {
        let reply = post_as_get(client, &format!("waiting for {what}"), url)?;
        let value = reply.json(&format!("answer while waiting for {what}"))?;
        if done(&value)? {
            return Ok(value);
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(AcmeError::new(format!(
                "gave up waiting for {what} after {:?} (status {}): the CA is slow or stuck; the order is retried later",
                client.timeouts.order,
                printable(value["status"].as_str().unwrap_or("?"), 40)
            )));
        }
        let wait = reply
            .retry_after
            .map_or(pause, |r| r.min(MAX_RETRY_AFTER))
            .min(deadline - now);
        std::thread::sleep(wait);
        pause = (pause * 2).min(MAX_POLL);
    }
}
