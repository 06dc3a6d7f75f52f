//! TLS glue: a rustls server configuration built from PEM files (several
//! certificates, chosen by SNI), kept replaceable while the server runs,
//! and the rustls connection as the runtime's [`Session`].
//!
//! One crypto provider, `ring`: it builds with the system C compiler (no
//! cmake, no Go), and its P-256 and AES-GCM code is what the benchmarks use.
//!
//! A certificate got by ACME sits in a slot of its own beside the
//! configured ones ([`TlsKeys::install_managed`]), so that a reload of
//! the configured files never puts an older one back; the ACME
//! challenges are in `challenges.rs`.

mod challenges;
mod session;

pub use challenges::{challenge_key, Challenges, SharedChallenges, ACME_TLS_ALPN};

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

use rustls::crypto::ring as provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{
    ClientHello, ProducesTickets, ResolvesServerCert, ServerSessionMemoryCache,
    StoresServerSessions,
};
use rustls::sign::CertifiedKey;
use rustls::{ServerConfig, ServerConnection};

pub use session::TlsSession;

/// Sessions the server-side cache holds (TLS 1.2 session IDs, and clients
/// that do not take tickets): about 100 bytes each.
const SESSION_CACHE: usize = 16 * 1024;
/// Plaintext a connection's session encrypts ahead of the socket: bounds
/// what a slow reader costs.
pub const BUFFER_LIMIT: usize = 64 * 1024;

/// One certificate chain and its key, as PEM files, with the names it is
/// chosen for (SNI); one without names is the default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFiles {
    /// The chain, leaf first (PEM).
    pub cert: PathBuf,
    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// Host names served with it: exact (`example.com`) or one leading
    /// wildcard label (`*.example.com`). Empty: any name no other
    /// certificate claims, and clients that send none.
    pub names: Vec<String>,
}

/// Why the certificates could not be loaded: names the file and the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsError(String);

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}

/// The server's TLS settings, replaceable while connections use them: each
/// handshake takes the current ones. Session tickets and the session cache
/// outlive a reload, so clients resume across it.
pub struct TlsKeys {
    current: RwLock<Settings>,
    ticketer: Arc<dyn ProducesTickets>,
    cache: Arc<dyn StoresServerSessions>,
    /// Served when no certificate is given (`tls.self_signed`).
    self_signed: Option<Arc<CertifiedKey>>,
    /// The challenges an ACME CA validates, and the certificate it issued.
    acme: Acme,
}

/// What every set of settings shares with the ACME manager: read at each
/// handshake, so an install needs no new settings.
#[derive(Clone, Default)]
struct Acme {
    challenges: Arc<Challenges>,
    managed: Arc<RwLock<Option<Managed>>>,
    /// The names the ACME manager orders for, lower case: served (for the
    /// HTTPS redirect) from the start, before the certificate arrives.
    ordered: Arc<RwLock<Vec<String>>>,
}

/// The certificate the ACME manager installed, and its names.
struct Managed {
    /// Lower case.
    names: Vec<String>,
    key: Arc<CertifiedKey>,
}

impl TlsKeys {
    /// Loads `certificates` (at least one): an error names the file that failed.
    pub fn load(certificates: &[CertificateFiles]) -> Result<TlsKeys, TlsError> {
        Self::load_with(certificates, false)
    }

    /// Loads `certificates`; with `self_signed`, none is needed: the
    /// certificate of [`self_signed_localhost`] is served while the list
    /// is empty, on this load and every reload.
    pub fn load_with(
        certificates: &[CertificateFiles],
        self_signed: bool,
    ) -> Result<TlsKeys, TlsError> {
        Self::load_serving(certificates, self_signed, Arc::default())
    }

    /// [`Self::load_with`], answering the tls-alpn-01 challenges
    /// published in `challenges`.
    pub fn load_serving(
        certificates: &[CertificateFiles],
        self_signed: bool,
        challenges: Arc<Challenges>,
    ) -> Result<TlsKeys, TlsError> {
        let acme = Acme {
            challenges,
            managed: Arc::default(),
            ordered: Arc::default(),
        };
        let ticketer = provider::Ticketer::new()
            .map_err(|e| TlsError(format!("cannot make a session ticket key: {e}")))?;
        let cache: Arc<dyn StoresServerSessions> = ServerSessionMemoryCache::new(SESSION_CACHE);
        let self_signed = match self_signed {
            true => Some(self_signed_localhost()?),
            false => None,
        };
        let config = server_config(certificates, self_signed.as_ref(), &ticketer, &cache, &acme)?;
        Ok(TlsKeys {
            current: RwLock::new(config),
            ticketer,
            cache,
            self_signed,
            acme,
        })
    }

    /// The settings a new handshake uses: with `h2` offered by ALPN
    /// before `http/1.1`, or `http/1.1` alone.
    /// `acme-tls/1` is offered last only while the ACME manager answers
    /// tls-alpn-01 ([`Challenges::answer_alpn`]).
    pub fn current(&self, offer_h2: bool) -> Arc<ServerConfig> {
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
        let acme = self.acme.challenges.answers_alpn();
        current.configs[usize::from(offer_h2) * 2 + usize::from(acme)].clone()
    }

    /// Whether the certificates in use serve `host` (a Host field's name,
    /// without its port): it is one of their `names` (or matches a
    /// wildcard among them), or the default certificate (the first with
    /// no `names`) holds it among its subject alternative names.
    pub fn serves(&self, host: &str) -> bool {
        let names = self
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .names
            .clone();
        let lower = host.trim_end_matches('.').to_ascii_lowercase();
        let read = |names: &RwLock<Vec<String>>| {
            names
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .contains(&lower)
        };
        let managed = self
            .acme
            .managed
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|m| m.names.contains(&lower));
        names.serves(host) || managed || read(&self.acme.ordered)
    }

    /// Loads `certificates` again (on SIGHUP): new handshakes use them;
    /// connections already open keep theirs. On an error the old ones stay.
    pub fn reload(&self, certificates: &[CertificateFiles]) -> Result<(), TlsError> {
        let prepared = self.prepare(certificates)?;
        self.install(prepared);
        Ok(())
    }

    /// Reads and checks `certificates` without using them yet: the first
    /// half of [`Self::reload`], for a reload that may still fail elsewhere.
    pub fn prepare(&self, certificates: &[CertificateFiles]) -> Result<PreparedKeys, TlsError> {
        server_config(
            certificates,
            self.self_signed.as_ref(),
            &self.ticketer,
            &self.cache,
            &self.acme,
        )
        .map(PreparedKeys)
    }

    /// Reads `files` (an ACME certificate, `names` its domains) and serves
    /// it from the next handshake on for those names, and as the default
    /// when no configured certificate is one; connections already open
    /// keep theirs. Kept across [`Self::reload`]. On an error the one in
    /// use stays.
    pub fn install_managed(&self, files: &CertificateFiles) -> Result<(), TlsError> {
        let key = Arc::new(certified_key(files)?);
        let names = files.names.iter().map(|n| n.to_ascii_lowercase()).collect();
        *self
            .acme
            .managed
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(Managed { names, key });
        Ok(())
    }

    /// Says which names the ACME manager orders a certificate for: the
    /// HTTPS redirect sends clients there from the start.
    pub fn order_for(&self, names: &[String]) {
        *self
            .acme
            .ordered
            .write()
            .unwrap_or_else(PoisonError::into_inner) =
            names.iter().map(|n| n.to_ascii_lowercase()).collect();
    }

    /// The challenges the handshakes answer (tls-alpn-01).
    pub fn challenges(&self) -> &Arc<Challenges> {
        &self.acme.challenges
    }

    /// Makes what [`Self::prepare`] read current for new handshakes.
    pub fn install(&self, prepared: PreparedKeys) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = prepared.0;
    }

    /// A new server-side connection for one client, offering `h2` by
    /// ALPN or not.
    pub fn accept(&self, offer_h2: bool) -> Result<ServerConnection, TlsError> {
        let mut tls = ServerConnection::new(self.current(offer_h2))
            .map_err(|e| TlsError(format!("cannot start a TLS session: {e}")))?;
        tls.set_buffer_limit(Some(BUFFER_LIMIT));
        Ok(tls)
    }
}

/// Certificates read and checked by [`TlsKeys::prepare`], not yet in use.
pub struct PreparedKeys(Settings);

/// One set of certificates as the handshakes use them: four rustls
/// settings that differ only in the protocols ALPN offers (see [`alpn`]),
/// and the names the certificates serve.
struct Settings {
    /// By `offer_h2 * 2 + acme`.
    configs: [Arc<ServerConfig>; 4],
    names: Arc<ServedNames>,
}

/// The protocols ALPN offers, in the server's order of preference: `h2`
/// if offered, `http/1.1`, and `acme-tls/1` last while tls-alpn-01 is
/// answered (only a CA's validation offers it, and alone).
fn alpn(h2: bool, acme: bool) -> Vec<Vec<u8>> {
    let h2 = h2.then(|| b"h2".to_vec());
    let acme = acme.then(|| ACME_TLS_ALPN.to_vec());
    h2.into_iter()
        .chain([b"http/1.1".to_vec()])
        .chain(acme)
        .collect()
}

/// The names a set of certificates is chosen for, and the default
/// certificate's leaf, for [`TlsKeys::serves`].
struct ServedNames {
    /// Lower case; `*.example.com` for a wildcard.
    names: Vec<String>,
    /// The leaf of the first certificate without `names`.
    default_leaf: Option<CertificateDer<'static>>,
}

impl ServedNames {
    fn serves(&self, host: &str) -> bool {
        // A name as a certificate could hold it: letters, digits, '-',
        // '.', or an IP address (IPv6 in brackets).
        let host = host.trim_end_matches('.');
        let literal = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let dns = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        let ip = literal.parse::<std::net::IpAddr>().ok();
        if !dns && ip.is_none() {
            return false;
        }
        let lower = host.to_ascii_lowercase();
        let wildcard = lower
            .split_once('.')
            .map(|(_, parent)| format!("*.{parent}"));
        let named = self
            .names
            .iter()
            .any(|n| *n == lower || Some(n) == wildcard.as_ref());
        named || self.default_covers(&lower, ip)
    }

    /// Whether the default certificate's subject alternative names hold
    /// `host` (parsed per call: only the redirect asks, off the TLS path).
    fn default_covers(&self, host: &str, ip: Option<std::net::IpAddr>) -> bool {
        let Some(leaf) = &self.default_leaf else {
            return false;
        };
        let Ok(cert) = webpki::EndEntityCert::try_from(leaf) else {
            return false;
        };
        let name = match ip {
            Some(ip) => ServerName::IpAddress(ip.into()),
            None => match ServerName::try_from(host) {
                Ok(name) => name,
                Err(_) => return false,
            },
        };
        cert.verify_is_valid_for_subject_name(&name).is_ok()
    }
}

/// A certificate for `localhost`, `127.0.0.1` and `::1`, signed by its
/// own key (ECDSA P-256), made at the first call and kept in memory for
/// the life of the process: HTTPS for a first local try with no files
/// (`tls.self_signed`, `--tls-self-signed`). No client trusts it unless
/// told to (`curl -k`, the browser's warning page).
pub fn self_signed_localhost() -> Result<Arc<CertifiedKey>, TlsError> {
    static MADE: OnceLock<Result<Arc<CertifiedKey>, TlsError>> = OnceLock::new();
    MADE.get_or_init(|| {
        let names = ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
        let made = rcgen::generate_simple_self_signed(names)
            .map_err(|e| TlsError(format!("cannot make a self-signed certificate: {e}")))?;
        let key = PrivateKeyDer::Pkcs8(made.signing_key.serialize_der().into());
        let signing = provider::sign::any_supported_type(&key)
            .map_err(|e| TlsError(format!("the self-signed certificate's key: {e}")))?;
        Ok(Arc::new(CertifiedKey::new(
            vec![made.cert.der().clone()],
            signing,
        )))
    })
    .clone()
}

fn server_config(
    certificates: &[CertificateFiles],
    self_signed: Option<&Arc<CertifiedKey>>,
    ticketer: &Arc<dyn ProducesTickets>,
    cache: &Arc<dyn StoresServerSessions>,
    acme: &Acme,
) -> Result<Settings, TlsError> {
    let mut resolver = SniResolver {
        acme: acme.clone(),
        ..SniResolver::default()
    };
    let mut served = ServedNames {
        names: Vec::new(),
        default_leaf: None,
    };
    match (certificates.is_empty(), self_signed) {
        (true, Some(key)) => {
            // Its subject names (localhost, 127.0.0.1, ::1) are what a
            // redirect may send a client to.
            served.default_leaf = key.cert.first().cloned();
            resolver.first = Some(key.clone());
        }
        (true, None) => {
            return Err(TlsError(
                "no certificate: give --tls-cert FILE --tls-key FILE, or a \
                 [[tls.certificates]] table (or --tls-self-signed to try HTTPS locally)"
                    .into(),
            ))
        }
        (false, _) => {}
    }
    for files in certificates {
        let key = Arc::new(certified_key(files)?);
        served
            .names
            .extend(files.names.iter().map(|n| n.to_ascii_lowercase()));
        if files.names.is_empty() {
            if resolver.default.is_none() {
                served.default_leaf = key.cert.first().cloned();
                resolver.default = Some(key.clone());
            }
        } else {
            for name in &files.names {
                resolver
                    .by_name
                    .push((name.to_ascii_lowercase(), key.clone()));
            }
        }
        if resolver.first.is_none() {
            resolver.first = Some(key);
        }
    }
    let versions = [&rustls::version::TLS13, &rustls::version::TLS12];
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider::default_provider()))
        .with_protocol_versions(&versions)
        .map_err(|e| TlsError(format!("TLS versions: {e}")))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.session_storage = cache.clone();
    config.ticketer = ticketer.clone();
    // One ticket per full handshake: a browser reconnecting needs one, and
    // each costs an encryption on the handshake's bill.
    config.send_tls13_tickets = 1;
    let configs = [(false, false), (false, true), (true, false), (true, true)].map(|(h2, acme)| {
        let mut config = config.clone();
        config.alpn_protocols = alpn(h2, acme);
        Arc::new(config)
    });
    Ok(Settings {
        configs,
        names: Arc::new(served),
    })
}

/// Reads one certificate chain and key, checking they belong together.
fn certified_key(files: &CertificateFiles) -> Result<CertifiedKey, TlsError> {
    let chain = read_pem(&files.cert, "certificate", |bytes| {
        CertificateDer::pem_slice_iter(bytes).collect::<Result<Vec<_>, _>>()
    })?;
    if chain.is_empty() {
        return Err(TlsError(format!(
            "TLS certificate {}: no PEM certificate in it (\"-----BEGIN CERTIFICATE-----\")",
            files.cert.display()
        )));
    }
    let key = read_pem(&files.key, "key", PrivateKeyDer::from_pem_slice)?;
    let signing = provider::sign::any_supported_type(&key).map_err(|e| {
        TlsError(format!(
            "TLS key {}: not a usable private key ({e})",
            files.key.display()
        ))
    })?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| {
        TlsError(format!(
            "TLS key {} does not match certificate {} ({e}); give the key the certificate was made for",
            files.key.display(),
            files.cert.display()
        ))
    })?;
    Ok(certified)
}

fn read_pem<T, E: fmt::Display>(
    path: &Path,
    what: &str,
    parse: impl FnOnce(&[u8]) -> Result<T, E>,
) -> Result<T, TlsError> {
    let bytes = std::fs::read(path).map_err(|e| {
        TlsError(format!(
            "TLS {what} {}: cannot read it ({e})",
            path.display()
        ))
    })?;
    parse(&bytes).map_err(|e| {
        TlsError(format!(
            "TLS {what} {}: not valid PEM ({e})",
            path.display()
        ))
    })
}

/// Chooses the certificate by the name the client asked for (SNI): the
/// ACME certificate for its names, an exact name, then a wildcard, then
/// the default (the first without names, else the ACME certificate, else
/// the first of all). While tls-alpn-01 is answered, a ClientHello
/// offering `acme-tls/1` gets the name's challenge certificate if it
/// offers that protocol alone and names an ordered domain with a
/// challenge published, and no certificate otherwise (RFC 8737 §3: no
/// other certificate is ever negotiated with `acme-tls/1`).
#[derive(Default)]
struct SniResolver {
    by_name: Vec<(String, Arc<CertifiedKey>)>,
    default: Option<Arc<CertifiedKey>>,
    first: Option<Arc<CertifiedKey>>,
    acme: Acme,
}

impl SniResolver {
    fn find(&self, name: &str) -> Option<&Arc<CertifiedKey>> {
        let name = name.to_ascii_lowercase();
        let exact = self.by_name.iter().find(|(n, _)| *n == name);
        let wildcard = || {
            let (_, parent) = name.split_once('.')?;
            self.by_name
                .iter()
                .find(|(n, _)| n.strip_prefix("*.") == Some(parent))
        };
        exact.or_else(wildcard).map(|(_, key)| key)
    }
}

impl fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.by_name.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("SniResolver")
            .field("names", &names)
            .finish()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let challenges = &self.acme.challenges;
        if challenges.answers_alpn() {
            let offered: Vec<&[u8]> = hello.alpn().into_iter().flatten().collect();
            if offered.contains(&ACME_TLS_ALPN) {
                return match offered[..] {
                    [_] => challenges.alpn(hello.server_name()?),
                    _ => None,
                };
            }
        }
        let managed = self
            .acme
            .managed
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let managed_for = |name: &str| {
            let name = name.to_ascii_lowercase();
            managed
                .as_ref()
                .filter(|m| m.names.contains(&name))
                .map(|m| &m.key)
        };
        hello
            .server_name()
            .and_then(|name| managed_for(name).or_else(|| self.find(name)))
            .or(self.default.as_ref())
            .or(managed.as_ref().map(|m| &m.key))
            .or(self.first.as_ref())
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use rustls::client::danger::ServerCertVerifier;
    use rustls::client::WebPkiServerVerifier;
    use rustls::pki_types::{ServerName, UnixTime};
    use rustls::RootCertStore;

    use super::*;

    fn served(names: &[&str], subject: &[&str]) -> ServedNames {
        let subject: Vec<String> = subject.iter().map(|s| s.to_string()).collect();
        let leaf = (!subject.is_empty()).then(|| {
            let made = rcgen::generate_simple_self_signed(subject).expect("rcgen");
            made.cert.der().clone()
        });
        ServedNames {
            names: names.iter().map(|n| n.to_string()).collect(),
            default_leaf: leaf,
        }
    }

    /// `acme-tls/1` is offered only while tls-alpn-01 is answered, and
    /// the setting outlives a reload.
    #[test]
    fn acme_tls_is_offered_only_while_tls_alpn_01_is_answered() {
        let keys = TlsKeys::load_with(&[], true).expect("keys");
        let offered = |h2| keys.current(h2).alpn_protocols.clone();
        let (h2, http1) = (b"h2".to_vec(), b"http/1.1".to_vec());
        assert_eq!(offered(true), [h2.clone(), http1.clone()]);
        assert_eq!(offered(false), std::slice::from_ref(&http1));
        keys.challenges().answer_alpn(&["www.example.test".into()]);
        let acme = ACME_TLS_ALPN.to_vec();
        assert_eq!(offered(true), [h2.clone(), http1.clone(), acme.clone()]);
        assert_eq!(offered(false), [http1.clone(), acme]);
        keys.reload(&[]).expect("reloaded");
        assert_eq!(offered(false).len(), 2);
        keys.challenges().answer_alpn(&[]);
        assert_eq!(offered(true), [h2, http1]);
    }

    #[test]
    fn served_names_are_the_configured_ones_and_the_default_subject() {
        let named = served(&["www.example.test", "*.apps.example.test"], &[]);
        for yes in [
            "www.example.test",
            "WWW.Example.Test",
            "a.apps.example.test",
        ] {
            assert!(named.serves(yes), "{yes}");
        }
        for no in [
            "example.test",
            "a.b.apps.example.test",
            "apps.example.test",
            "*.apps.example.test",
            "a\r\n.apps.example.test",
            "",
        ] {
            assert!(!named.serves(no), "{no:?}");
        }
        let default = served(&[], &["localhost", "127.0.0.1"]);
        assert!(default.serves("localhost") && default.serves("localhost."));
        assert!(default.serves("127.0.0.1"));
        assert!(!default.serves("[::1]") && !default.serves("evil.example"));
    }

    /// Checked the way a client checks it, trusting it as its own root:
    /// valid for the three local names, and for nothing else.
    #[test]
    fn the_self_signed_certificate_is_made_once_for_the_local_names() {
        let made = self_signed_localhost().expect("made");
        assert!(Arc::ptr_eq(&made, &self_signed_localhost().expect("again")));
        made.keys_match().expect("its own key");
        let leaf = &made.cert[0];
        let mut roots = RootCertStore::empty();
        roots.add(leaf.clone()).expect("a root");
        let verifier = WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(provider::default_provider()),
        )
        .build()
        .expect("verifier");
        let check = |name: &'static str| {
            let name = ServerName::try_from(name).expect("a name");
            verifier.verify_server_cert(leaf, &[], &name, &[], UnixTime::now())
        };
        for name in ["localhost", "127.0.0.1", "::1"] {
            check(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        assert!(check("example.com").is_err());
    }
}
