//! An ACME client (RFC 8555) of our own: certificates from Let's Encrypt or
//! any ACME CA, answered by `http-01` or `tls-alpn-01` (RFC 8737), renewal
//! information (RFC 9773) when the CA offers it.
//!
//! It knows nothing of the server. Everything here blocks: it runs on a
//! plain OS thread, never on a scheduler thread. The server answers the
//! challenges through a [`Responder`] and installs the certificate it gets.
//!
//! ```no_run
//! use conveyor::acme::{AcmeClient, AcmeSettings, Challenge, ChallengeKind, Responder};
//!
//! struct Answers;
//! impl Responder for Answers {
//!     fn publish(&self, _challenge: &Challenge) { /* start answering it */ }
//!     fn withdraw(&self, _challenge: &Challenge) { /* stop */ }
//! }
//!
//! let settings = AcmeSettings {
//!     directory: "https://acme-staging-v02.api.letsencrypt.org/directory".into(),
//!     email: None,
//!     domains: vec!["example.com".into()],
//!     state_dir: "/var/lib/conveyor/acme".into(),
//!     ca_file: None,
//!     challenge: ChallengeKind::TlsAlpn01,
//! };
//! let certificate = match AcmeClient::stored(&settings) {
//!     Some(stored) => stored,
//!     None => AcmeClient::new(&settings)?.order(&Answers)?,
//! };
//! println!("{} until {:?}", certificate.cert_path.display(), certificate.not_after);
//! # Ok::<(), conveyor::acme::AcmeError>(())
//! ```
//!
//! Why a client of our own: the ACME client crates are async on tokio and
//! hyper (instant-acme, rustls-acme) or do their keys with OpenSSL
//! (acme-lib, acme-micro), and the server's tree holds no async runtime and
//! no C crypto besides ring. The protocol itself is
//! small (a directory, a nonce, a JWS per request, five resources), and the
//! heavy parts are already in the tree: `ring` signs (rustls's provider),
//! `rcgen` makes the CSR and the tls-alpn-01 certificate, rustls verifies
//! the CA's HTTPS. `ureq` is a blocking client on the same rustls and ring,
//! without a runtime, so the CA's calls run on a plain thread that hands the
//! certificate to the line.
//!
//! What the CA sends is untrusted input: every answer is read up to 1 MiB
//! within the request timeout (30 s), every wait ends at the order's
//! deadline (300 s), `Retry-After` is kept up to 7 days; a URL the CA gives
//! must be https when the directory is (other hosts are allowed, as lego
//! and certbot allow them; redirects are not followed); a challenge token
//! must be base64url and an authorization must name one of our domains
//! before anything is published; an order may list no more authorizations
//! than domains; the certificate is stored only if it is for our key and
//! exactly our domains; the CA's text in an error is cut and its control
//! characters escaped. No answer panics (`fake_ca` tests garbage, huge,
//! slow and hostile answers).
//!
//! The pieces: JWS with ES256 over `ring` (`jws`), HTTP through `ureq`
//! with rustls and ring (`transport`), the state directory and its atomic
//! writes (`state`), the order's steps (`order`), the few certificate
//! fields it reads (`x509`), renewal information (`ari`) and the
//! challenges shared with replicas through the state directory
//! (`shared`).

mod ari;
#[cfg(test)]
mod fake_ca;
mod jws;
mod order;
mod shared;
mod state;
mod transport;
mod x509;

use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{json, Value};

use jws::AccountKey;
use transport::Transport;

/// Let's Encrypt's production directory.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Let's Encrypt's staging directory (untrusted certificates, high limits).
pub const LETS_ENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

/// What to order, from whom, and where to keep it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcmeSettings {
    /// URL of the RFC 8555 directory: https (plain http only to a test
    /// CA on loopback).
    pub directory: String,
    /// Contact for the account (`mailto:` is added), if any.
    pub email: Option<String>,
    /// One certificate for all of them (its subject alternative names).
    pub domains: Vec<String>,
    /// Created mode 0700; the account key and certificates live here.
    pub state_dir: PathBuf,
    /// Extra roots (PEM) for the directory's own HTTPS, beside the system's.
    pub ca_file: Option<PathBuf>,
    /// How the CA checks that we hold the domains.
    pub challenge: ChallengeKind,
}

/// The challenge type the client answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChallengeKind {
    /// RFC 8737: a certificate served by the TLS listener for ALPN `acme-tls/1`.
    TlsAlpn01,
    /// RFC 8555 §8.3: a file at `/.well-known/acme-challenge/<token>` over plain HTTP.
    Http01,
}

impl ChallengeKind {
    /// The challenge's name in ACME (`tls-alpn-01`, `http-01`).
    pub fn name(self) -> &'static str {
        match self {
            ChallengeKind::TlsAlpn01 => "tls-alpn-01",
            ChallengeKind::Http01 => "http-01",
        }
    }
}

/// What the server must answer while an authorization is pending. The
/// client calls [`Responder::publish`] before telling the CA the challenge
/// is ready and [`Responder::withdraw`] once the CA has decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    /// Serve `key_authorization` (as `text/plain` or
    /// `application/octet-stream`) at `/.well-known/acme-challenge/<token>`.
    Http01 {
        /// The last path segment the CA asks for.
        token: String,
        /// The body to answer.
        key_authorization: String,
    },
    /// For a TLS handshake offering ALPN `acme-tls/1` with SNI `domain`,
    /// negotiate `acme-tls/1` and serve [`tls_alpn01_certificate`].
    TlsAlpn01 {
        /// The name the CA connects for (SNI).
        domain: String,
        /// What the certificate's acmeIdentifier extension digests.
        key_authorization: String,
    },
}

pub use shared::{is_token, share, shared_alpn, shared_http, unshare};

/// The ALPN protocol a `tls-alpn-01` validation negotiates.
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// The RFC 8737 certificate for a `tls-alpn-01` challenge: self-signed for
/// `domain`, with the critical acmeIdentifier extension holding
/// SHA-256(`key_authorization`), and its new P-256 key.
pub fn tls_alpn01_certificate(
    domain: &str,
    key_authorization: &str,
) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), AcmeError> {
    let fail =
        |e: rcgen::Error| AcmeError::new(format!("tls-alpn-01 certificate for {domain}: {e}"));
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(fail)?;
    let mut params = rcgen::CertificateParams::new(vec![domain.to_string()]).map_err(fail)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(&jws::sha256(
        key_authorization.as_bytes(),
    ))];
    let cert = params.self_signed(&key).map_err(fail)?;
    let key = PrivateKeyDer::Pkcs8(key.serialize_der().into());
    Ok((cert.der().clone(), key))
}

/// The server's side of the challenges.
pub trait Responder: Send + Sync {
    /// Start answering `challenge`.
    fn publish(&self, challenge: &Challenge);
    /// Stop answering `challenge`.
    fn withdraw(&self, challenge: &Challenge);
}

/// A certificate as kept in the state directory: its chain (PEM, leaf
/// first) and its key (PKCS#8 PEM, mode 0600).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredCertificate {
    /// The chain, leaf first.
    pub cert_path: PathBuf,
    /// The private key.
    pub key_path: PathBuf,
    /// The leaf's notBefore.
    pub not_before: SystemTime,
    /// The leaf's notAfter.
    pub not_after: SystemTime,
}

/// How long the client waits on the CA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// One HTTP exchange, connecting included.
    pub request: Duration,
    /// A whole order, from creating it to the stored certificate.
    pub order: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            request: Duration::from_secs(30),
            order: Duration::from_secs(300),
        }
    }
}

const ACCOUNT_DOES_NOT_EXIST: &str = "urn:ietf:params:acme:error:accountDoesNotExist";

/// The URLs of the CA's directory the client uses.
struct Directory {
    new_nonce: String,
    new_account: String,
    new_order: String,
    renewal_info: Option<String>,
}

/// A client with its account: created, or found again by its stored key.
pub struct AcmeClient {
    settings: AcmeSettings,
    timeouts: Timeouts,
    transport: Transport,
    directory: Directory,
    key: AccountKey,
    account_url: String,
}

impl fmt::Debug for AcmeClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcmeClient")
            .field("directory", &self.settings.directory)
            .field("account", &self.account_url)
            .finish_non_exhaustive()
    }
}

fn check_settings(settings: &AcmeSettings) -> Result<(), AcmeError> {
    if settings.domains.is_empty() {
        return Err(AcmeError::new(
            "acme.domains is empty: name at least one domain",
        ));
    }
    for domain in &settings.domains {
        let ok = !domain.is_empty()
            && domain.len() <= 253
            && domain.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !ok {
            return Err(AcmeError::new(format!(
                "acme.domains: {domain:?} is not a DNS name (letters, digits, '-' and dots; no wildcards: http-01 and tls-alpn-01 cannot prove them)"
            )));
        }
    }
    let plain = settings.directory.strip_prefix("http://");
    if !(settings.directory.starts_with("https://") || plain.is_some_and(loopback)) {
        return Err(AcmeError::new(format!(
            "acme.directory {:?} is not an https URL (plain http only to a test CA on loopback): give the CA's directory URL, e.g. {LETS_ENCRYPT}",
            settings.directory
        )));
    }
    Ok(())
}

/// Whether the authority of `rest` (a URL after `http://`) is loopback:
/// plain http reaches only a test CA on this machine, since a directory
/// in clear lets anyone on the path send us elsewhere or hand us a
/// certificate nobody trusts.
fn loopback(rest: &str) -> bool {
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl AcmeClient {
    /// Fetches the directory and finds or creates the account (its key
    /// reused from `state_dir` if there is one); orders nothing yet.
    pub fn new(settings: &AcmeSettings) -> Result<AcmeClient, AcmeError> {
        AcmeClient::with_timeouts(settings, Timeouts::default())
    }

    /// [`AcmeClient::new`] with other timeouts.
    pub fn with_timeouts(
        settings: &AcmeSettings,
        timeouts: Timeouts,
    ) -> Result<AcmeClient, AcmeError> {
        check_settings(settings)?;
        state::ensure_dir(&settings.state_dir)?;
        state::ensure_inner_dir(&settings.state_dir.join("certificates"))?;
        let mut transport = Transport::new(settings.ca_file.as_deref(), timeouts.request)?;
        transport.set_https_only(settings.directory.starts_with("https://"));
        let reply = transport.get("fetching the ACME directory", &settings.directory)?;
        if reply.status != 200 {
            return Err(transport::problem(
                &format!("fetching the ACME directory {}", settings.directory),
                &reply,
            ));
        }
        let directory = parse_directory(&reply.json("directory")?)?;
        transport.set_new_nonce_url(&directory.new_nonce);
        let account_dir = state::account_dir(&settings.state_dir, &settings.directory);
        let key = match state::load_account_key(&account_dir)? {
            Some(der) => AccountKey::from_pkcs8(&der)?,
            None => {
                let key = AccountKey::generate()?;
                match state::store_account_key(&account_dir, key.pkcs8())? {
                    None => key,
                    Some(theirs) => AccountKey::from_pkcs8(&theirs)?,
                }
            }
        };
        let account_url = register(&mut transport, &key, &directory, settings)?;
        Ok(AcmeClient {
            settings: settings.clone(),
            timeouts,
            transport,
            directory,
            key,
            account_url,
        })
    }

    /// The account's URL at the CA.
    pub fn account_url(&self) -> &str {
        &self.account_url
    }

    /// Whether the CA offers renewal information (RFC 9773).
    pub fn offers_renewal_info(&self) -> bool {
        self.directory.renewal_info.is_some()
    }

    /// The valid certificate already in `state_dir` for exactly these
    /// domains, from this directory, with its key; the one that lasts
    /// longest if there are several. Touches no network.
    pub fn stored(settings: &AcmeSettings) -> Option<StoredCertificate> {
        let now = SystemTime::now();
        state::find_certificate(
            &settings.state_dir,
            &settings.directory,
            &settings.domains,
            now,
        )
        .map(|(stored, _)| stored)
    }

    /// Orders a certificate for the domains, answers its challenges
    /// through `responder`, finalizes with a fresh P-256 key, downloads the
    /// chain and stores it. Retries `badNonce` itself; bounded by the
    /// order timeout (no hang if the CA stalls).
    pub fn order(&mut self, responder: &dyn Responder) -> Result<StoredCertificate, AcmeError> {
        match order::run(self, responder) {
            // The CA forgot the account (a test CA restarted, an account
            // deactivated elsewhere): register the key again, once.
            Err(err) if err.problem_type() == Some(ACCOUNT_DOES_NOT_EXIST) => {
                self.account_url = register(
                    &mut self.transport,
                    &self.key,
                    &self.directory,
                    &self.settings,
                )?;
                order::run(self, responder)
            }
            result => result,
        }
    }

    /// The renewal window the CA suggests for `cert` (RFC 9773), if it
    /// offers renewal information and answers; `None` otherwise (see
    /// [`AcmeClient::renewal_info`] to tell a failure from no offer).
    pub fn renewal_window(&mut self, cert: &StoredCertificate) -> Option<(SystemTime, SystemTime)> {
        self.renewal_info(cert).ok().flatten()
    }

    /// The renewal window the CA suggests for `cert` (RFC 9773):
    /// `Ok(None)` if the CA offers no renewal information or the
    /// certificate has no authority key identifier (no id to ask by),
    /// `Err` if asking failed (unreadable certificate, no answer, an error
    /// status, an answer without a well-formed window), so that the caller
    /// can log it and fall back on two thirds of the lifetime.
    pub fn renewal_info(
        &mut self,
        cert: &StoredCertificate,
    ) -> Result<Option<(SystemTime, SystemTime)>, AcmeError> {
        let Some(base) = self.directory.renewal_info.clone() else {
            return Ok(None);
        };
        let pem = state::read_private(&cert.cert_path, state::FILE_MAX, false).map_err(|e| {
            AcmeError::new(format!(
                "renewal information: cannot read {}: {e}",
                cert.cert_path.display()
            ))
        })?;
        let leaf = state::leaf_of(&pem).ok_or_else(|| {
            AcmeError::new(format!(
                "renewal information: {} holds no certificate",
                cert.cert_path.display()
            ))
        })?;
        let Some(id) = ari::leaf_id(&leaf) else {
            return Ok(None);
        };
        let url = format!("{}/{id}", base.trim_end_matches('/'));
        let what = "asking for renewal information";
        let reply = self.transport.get(what, &url)?;
        if reply.status != 200 {
            return Err(transport::problem(&format!("{what} {url}"), &reply));
        }
        let window = ari::suggested_window(&reply.json("renewal information")?);
        window.map(Some).ok_or_else(|| {
            AcmeError::new(format!(
                "{what} {url}: the answer has no suggestedWindow with start before end"
            ))
        })
    }
}

/// Creates the account for `key`, or finds it (RFC 8555 §7.3: a key the CA
/// knows gets its existing account back), and records its URL.
fn register(
    transport: &mut Transport,
    key: &AccountKey,
    directory: &Directory,
    settings: &AcmeSettings,
) -> Result<String, AcmeError> {
    let mut payload = json!({ "termsOfServiceAgreed": true });
    if let Some(email) = &settings.email {
        payload["contact"] = json!([format!("mailto:{email}")]);
    }
    let reply = transport.post(
        "creating the ACME account",
        key,
        None,
        &directory.new_account,
        Some(&payload),
    )?;
    let account_url = reply
        .location
        .ok_or_else(|| AcmeError::new("the CA's newAccount answer has no Location"))?;
    let account_dir = state::account_dir(&settings.state_dir, &settings.directory);
    state::store_account_url(&account_dir, &settings.directory, &account_url)?;
    Ok(account_url)
}

fn parse_directory(doc: &Value) -> Result<Directory, AcmeError> {
    let url = |name: &str| -> Result<String, AcmeError> {
        doc[name].as_str().map(str::to_string).ok_or_else(|| {
            AcmeError::new(format!(
                "the ACME directory has no {name}: is the URL an RFC 8555 directory?"
            ))
        })
    };
    Ok(Directory {
        new_nonce: url("newNonce")?,
        new_account: url("newAccount")?,
        new_order: url("newOrder")?,
        renewal_info: doc["renewalInfo"].as_str().map(str::to_string),
    })
}

/// Held while this process may order for a state directory; dropping it
/// (or exiting) releases the lock.
#[derive(Debug)]
pub struct StateLock {
    _file: File,
}

/// Takes `dir`'s lock file (`dir/lock`, `flock`) without waiting:
/// `Ok(None)` if another process (or another lock in this one) holds it,
/// so only one replica sharing the directory orders.
pub fn lock_state_dir(dir: &Path) -> Result<Option<StateLock>, AcmeError> {
    let file = state::open_lock_file(dir)?;
    match crate::runtime::sys::lock::try_lock_exclusive(&file) {
        Ok(true) => {
            // Leftovers of writes a crash interrupted: only the holder
            // removes them, so never a write another process is making.
            state::remove_all_leftovers(dir);
            shared::clear(dir);
            Ok(Some(StateLock { _file: file }))
        }
        Ok(false) => Ok(None),
        Err(err) => Err(AcmeError::new(format!(
            "cannot lock {}: {err}",
            dir.join("lock").display()
        ))),
    }
}

/// What failed, in words that say what to do where they can; and the CA's
/// problem type and `Retry-After`, if it sent them.
#[derive(Clone, Debug)]
pub struct AcmeError {
    message: String,
    problem_type: Option<String>,
    retry_after: Option<Duration>,
}

impl AcmeError {
    pub(crate) fn new(message: impl Into<String>) -> AcmeError {
        AcmeError {
            message: message.into(),
            problem_type: None,
            retry_after: None,
        }
    }

    /// The CA's problem type (`urn:ietf:params:acme:error:…`), if any.
    pub fn problem_type(&self) -> Option<&str> {
        self.problem_type.as_deref()
    }

    /// How long the CA asked us to wait (`Retry-After`), if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

impl fmt::Display for AcmeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for AcmeError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_moves_to_the_thread_that_runs_it() {
        fn send<T: Send + 'static>() {}
        send::<AcmeClient>();
        send::<AcmeError>();
        send::<StateLock>();
    }

    #[test]
    fn one_lock_per_state_directory() {
        let dir = std::env::temp_dir().join(format!("conveyor-acme-lock-{}", std::process::id()));
        let first = lock_state_dir(&dir).expect("lock").expect("free");
        assert!(lock_state_dir(&dir).expect("try").is_none(), "held");
        drop(first);
        assert!(lock_state_dir(&dir).expect("lock").is_some(), "released");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn settings_errors_name_the_key() {
        let mut settings = AcmeSettings {
            directory: LETS_ENCRYPT_STAGING.to_string(),
            email: None,
            domains: vec!["*.example.com".to_string()],
            state_dir: std::env::temp_dir(),
            ca_file: None,
            challenge: ChallengeKind::Http01,
        };
        let err = check_settings(&settings).expect_err("wildcard");
        assert!(err.to_string().starts_with("acme.domains"), "{err}");
        settings.domains.clear();
        assert!(check_settings(&settings).is_err());
        settings.domains = vec!["example.com".to_string()];
        settings.directory = "example.com/directory".to_string();
        let err = check_settings(&settings).expect_err("url");
        assert!(err.to_string().starts_with("acme.directory"), "{err}");
        // Plain http only to loopback (a test CA).
        for url in [
            "http://ca.test/dir",
            "http://127.0.0.1.ca.test/dir",
            "http://user@10.0.0.1/dir",
        ] {
            settings.directory = url.to_string();
            let err = check_settings(&settings).expect_err(url);
            assert!(err.to_string().contains("not an https URL"), "{err}");
        }
        for url in [
            "http://127.0.0.1:14000/dir",
            "http://[::1]:80/dir",
            "http://localhost/dir",
            "https://ca.test/dir",
        ] {
            settings.directory = url.to_string();
            assert!(check_settings(&settings).is_ok(), "{url}");
        }
    }

    #[test]
    fn the_tls_alpn_certificate_carries_the_digest() {
        let (cert, _key) = tls_alpn01_certificate("a.test", "token.thumb").expect("cert");
        let leaf = x509::parse_leaf(&cert).expect("parses");
        assert_eq!(leaf.dns_names, ["a.test"]);
        let digest = jws::sha256(b"token.thumb");
        // id-pe-acmeIdentifier (1.3.6.1.5.5.7.1.31), critical, an OCTET
        // STRING of the digest inside the extension's OCTET STRING.
        let oid = [0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x1f];
        let mut extension = oid.to_vec();
        extension.extend([0x01, 0x01, 0xff, 0x04, 0x22, 0x04, 0x20]);
        extension.extend(&digest);
        assert!(cert
            .windows(extension.len())
            .any(|w| w == extension.as_slice()));
    }
}
