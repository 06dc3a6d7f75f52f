//! What the listeners answer while an ACME CA validates a name: the
//! http-01 key authorizations by token (RFC 8555 §8.3), and the
//! tls-alpn-01 certificates by name (RFC 8737). The ACME manager publishes
//! and withdraws them; the plain listeners' handler and the TLS
//! certificate resolver read them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use rustls::pki_types::PrivateKeyDer;
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
    /// The plain listeners own `/.well-known/acme-challenge/`
    /// (`acme.challenge = "http-01"`): an unknown token there is a 404,
    /// not a file.
    http_on: AtomicBool,
}

impl std::fmt::Debug for Challenges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Challenges")
            .field("http_on", &self.http_on.load(Ordering::Relaxed))
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

    /// Serves `key_authorization` at the token's path.
    pub fn publish_http(&self, token: &str, key_authorization: &str) {
        write(&self.http).insert(token.to_string(), key_authorization.to_string());
    }

    /// Stops serving the token.
    pub fn withdraw_http(&self, token: &str) {
        write(&self.http).remove(token);
    }

    /// The key authorization for `token`, if published.
    pub fn http(&self, token: &str) -> Option<String> {
        read(&self.http).get(token).cloned()
    }

    /// Makes and serves the tls-alpn-01 certificate for `domain`: signed
    /// by its own fresh key, `domain` its one name, and the critical
    /// acmeIdentifier extension holding SHA-256 of `key_authorization`.
    pub fn publish_alpn(&self, domain: &str, key_authorization: &str) -> Result<(), TlsError> {
        let certificate = alpn_certificate(domain, key_authorization)?;
        write(&self.alpn).insert(domain.to_ascii_lowercase(), certificate);
        Ok(())
    }

    /// Stops serving `domain`'s challenge certificate.
    pub fn withdraw_alpn(&self, domain: &str) {
        write(&self.alpn).remove(&domain.to_ascii_lowercase());
    }

    /// The challenge certificate for a ClientHello naming `domain`.
    pub fn alpn(&self, domain: &str) -> Option<Arc<CertifiedKey>> {
        read(&self.alpn).get(&domain.to_ascii_lowercase()).cloned()
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

/// RFC 8737 §3: the self-signed certificate a validation handshake gets.
fn alpn_certificate(domain: &str, key_authorization: &str) -> Result<Arc<CertifiedKey>, TlsError> {
    let failed = |e: &dyn std::fmt::Display| {
        TlsError(format!(
            "cannot make the tls-alpn-01 certificate for {domain}: {e}"
        ))
    };
    let digest = ring::digest::digest(&ring::digest::SHA256, key_authorization.as_bytes());
    let mut params =
        rcgen::CertificateParams::new(vec![domain.to_string()]).map_err(|e| failed(&e))?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest.as_ref())];
    let key = rcgen::KeyPair::generate().map_err(|e| failed(&e))?;
    let cert = params.self_signed(&key).map_err(|e| failed(&e))?;
    let der = PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let signing = provider::sign::any_supported_type(&der).map_err(|e| failed(&e))?;
    Ok(Arc::new(CertifiedKey::new(
        vec![cert.der().clone()],
        signing,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The extension as RFC 8737 writes it: OID 1.3.6.1.5.5.7.1.31,
    /// critical, an OCTET STRING of the 32-byte digest.
    #[test]
    fn the_alpn_certificate_holds_the_digest_critically() {
        let challenges = Challenges::default();
        challenges
            .publish_alpn("Example.TEST", "token.thumbprint")
            .expect("made");
        let cert = challenges.alpn("example.test").expect("published");
        let der = cert.cert[0].as_ref();
        let digest = ring::digest::digest(&ring::digest::SHA256, b"token.thumbprint");
        // OID 1.3.6.1.5.5.7.1.31, BOOLEAN TRUE, OCTET STRING { OCTET STRING (32) }.
        let mut wanted = vec![
            0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x1f, 0x01, 0x01, 0xff, 0x04,
            0x22, 0x04, 0x20,
        ];
        wanted.extend_from_slice(digest.as_ref());
        assert!(der.windows(wanted.len()).any(|w| w == wanted), "extension");
        challenges.withdraw_alpn("example.test");
        assert!(challenges.alpn("example.test").is_none());
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
