//! What the listeners answer while an ACME CA validates a name: the
//! http-01 key authorizations by token (RFC 8555 §8.3), and the
//! tls-alpn-01 certificates by name (RFC 8737). The ACME manager publishes
//! and withdraws them; the plain listeners' handler and the TLS
//! certificate resolver read them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use super::{provider, TlsError};

/// The ALPN protocol of tls-alpn-01 (RFC 8737 §6.2).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// The challenges published now; empty when no order is under way.
#[derive(Default)]
pub struct Challenges {
    /// Token → key authorization.
    http: RwLock<HashMap<String, String>>,
    /// Lower-case name → its challenge certificate.
    alpn: RwLock<HashMap<String, Arc<CertifiedKey>>>,
    /// The lower-case names whose tls-alpn-01 the handshakes answer
    /// (`acme.challenge = "tls-alpn-01"`); a certificate published for
    /// another name is never served.
    alpn_names: RwLock<Vec<String>>,
    /// `alpn_names` is not empty: the TLS listeners offer `acme-tls/1`.
    alpn_on: AtomicBool,
    /// The plain listeners answer `/.well-known/acme-challenge/TOKEN`
    /// for the tokens published (`acme.challenge = "http-01"`).
    http_on: AtomicBool,
    /// Where the challenges another process published are found (the
    /// replica holding the lock of a shared `acme.state_dir`).
    shared: RwLock<Option<Arc<dyn SharedChallenges>>>,
}

/// Challenges another process published: asked when none is published
/// here. Called on a worker thread: a read of a small file at most.
pub trait SharedChallenges: Send + Sync {
    /// The key authorization for an http-01 `token`.
    fn http(&self, token: &str) -> Option<String>;
    /// The tls-alpn-01 certificate for `domain` (lower case, one of the
    /// names answered).
    fn alpn(&self, domain: &str) -> Option<Arc<CertifiedKey>>;
}

impl std::fmt::Debug for Challenges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Challenges")
            .field("http_on", &self.http_on.load(Ordering::Relaxed))
            .field("alpn_on", &self.alpn_on.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Challenges {
    /// Makes the plain listeners answer `/.well-known/acme-challenge/`
    /// from the published tokens (and 404 for any other).
    pub fn answer_http(&self, on: bool) {
        self.http_on.store(on, Ordering::Relaxed);
    }

    /// Whether the plain listeners answer the http-01 path.
    pub fn answers_http(&self) -> bool {
        self.http_on.load(Ordering::Relaxed)
    }

    /// Makes the TLS listeners offer `acme-tls/1` and answer tls-alpn-01
    /// for `names` (the domains ordered); empty: neither (the default, so
    /// a server without ACME never offers the protocol).
    pub fn answer_alpn(&self, names: &[String]) {
        let lower: Vec<String> = names.iter().map(|n| n.to_ascii_lowercase()).collect();
        let on = !lower.is_empty();
        *write(&self.alpn_names) = lower;
        self.alpn_on.store(on, Ordering::Relaxed);
    }

    /// Answers, besides what is published here, what `shared` has.
    pub fn share_from(&self, shared: Arc<dyn SharedChallenges>) {
        *write(&self.shared) = Some(shared);
    }

    fn shared(&self) -> Option<Arc<dyn SharedChallenges>> {
        read(&self.shared).clone()
    }

    /// Whether the TLS listeners offer `acme-tls/1`.
    pub fn answers_alpn(&self) -> bool {
        self.alpn_on.load(Ordering::Relaxed)
    }

    /// Serves `key_authorization` at the token's path.
    pub fn publish_http(&self, token: &str, key_authorization: &str) {
        write(&self.http).insert(token.to_string(), key_authorization.to_string());
    }

    /// Stops serving the token.
    pub fn withdraw_http(&self, token: &str) {
        write(&self.http).remove(token);
    }

    /// The key authorization for `token`, if published here or shared.
    pub fn http(&self, token: &str) -> Option<String> {
        let here = read(&self.http).get(token).cloned();
        here.or_else(|| self.shared()?.http(token))
    }

    /// Serves `cert` (made by `acme::tls_alpn01_certificate`: RFC 8737's
    /// self-signed certificate with the acmeIdentifier extension) and its
    /// `key` to a validation handshake for `domain`.
    pub fn publish_alpn(
        &self,
        domain: &str,
        cert: CertificateDer<'static>,
        key: PrivateKeyDer<'static>,
    ) -> Result<(), TlsError> {
        let certified = challenge_key(domain, cert, key)?;
        write(&self.alpn).insert(domain.to_ascii_lowercase(), certified);
        Ok(())
    }

    /// Stops serving `domain`'s challenge certificate.
    pub fn withdraw_alpn(&self, domain: &str) {
        write(&self.alpn).remove(&domain.to_ascii_lowercase());
    }

    /// The challenge certificate for a ClientHello naming `domain`: only
    /// one of the names [`Self::answer_alpn`] was given, while published
    /// here or shared.
    pub fn alpn(&self, domain: &str) -> Option<Arc<CertifiedKey>> {
        let lower = domain.to_ascii_lowercase();
        if !read(&self.alpn_names).contains(&lower) {
            return None;
        }
        let here = read(&self.alpn).get(&lower).cloned();
        here.or_else(|| self.shared()?.alpn(&lower))
    }
}

/// A tls-alpn-01 certificate (made by `acme::tls_alpn01_certificate`)
/// and its key, as a handshake serves them.
pub fn challenge_key(
    domain: &str,
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let signing = provider::sign::any_supported_type(&key).map_err(|e| {
        TlsError(format!(
            "the tls-alpn-01 certificate for {domain}: its key ({e})"
        ))
    })?;
    Ok(Arc::new(CertifiedKey::new(vec![cert], signing)))
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpn_certificates_are_published_by_name_and_withdrawn() {
        let challenges = Challenges::default();
        assert!(!challenges.answers_alpn());
        let made = rcgen::generate_simple_self_signed(vec!["example.test".into()]).expect("made");
        let key = PrivateKeyDer::Pkcs8(made.signing_key.serialize_der().into());
        challenges
            .publish_alpn("Example.TEST", made.cert.der().clone(), key.clone_key())
            .expect("published");
        challenges
            .publish_alpn("other.test", made.cert.der().clone(), key)
            .expect("published");
        // Not answering tls-alpn-01: nothing is served.
        assert!(challenges.alpn("example.test").is_none());
        challenges.answer_alpn(&["EXAMPLE.test".into()]);
        assert!(challenges.answers_alpn());
        // Published, but not a name ordered: never served.
        assert!(challenges.alpn("other.test").is_none());
        let cert = challenges.alpn("example.test").expect("published");
        assert_eq!(cert.cert[0], *made.cert.der());
        challenges.withdraw_alpn("example.test");
        assert!(challenges.alpn("example.test").is_none());
        challenges.answer_alpn(&[]);
        assert!(!challenges.answers_alpn());
    }

    #[test]
    fn http_tokens_are_published_and_withdrawn() {
        let challenges = Challenges::default();
        assert!(!challenges.answers_http());
        challenges.publish_http("tok", "tok.print");
        assert_eq!(challenges.http("tok").as_deref(), Some("tok.print"));
        assert_eq!(challenges.http("other"), None);
        challenges.withdraw_http("tok");
        assert_eq!(challenges.http("tok"), None);
    }
}
