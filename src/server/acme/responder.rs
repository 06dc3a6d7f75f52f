//! How the running listeners answer the CA: the manager's [`Responder`],
//! which publishes each challenge in memory and shares it in `state_dir`,
//! and what a replica reads there ([`StateDirChallenges`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use rustls::sign::CertifiedKey;

use crate::acme::{self, tls_alpn01_certificate, Challenge, Responder};
use crate::tls::{challenge_key, Challenges, SharedChallenges};

use super::log;

/// Answers the CA's challenges from the running listeners, and shares
/// them in `state_dir` for the other replicas.
pub(super) struct ListenerResponder {
    pub(super) challenges: Arc<Challenges>,
    pub(super) state_dir: PathBuf,
}

impl Responder for ListenerResponder {
    fn publish(&self, challenge: &Challenge) {
        if let Err(e) = acme::share(&self.state_dir, challenge) {
            log(&format!(
                "cannot share the challenge in state_dir ({e}): only this process answers it"
            ));
        }
        match challenge {
            Challenge::Http01 {
                token,
                key_authorization,
            } => {
                log(&format!("answering http-01 for token {token}"));
                self.challenges.publish_http(token, key_authorization);
            }
            Challenge::TlsAlpn01 {
                domain,
                key_authorization,
            } => {
                let made = tls_alpn01_certificate(domain, key_authorization)
                    .map_err(|e| e.to_string())
                    .and_then(|(cert, key)| {
                        self.challenges
                            .publish_alpn(domain, cert, key)
                            .map_err(|e| e.to_string())
                    });
                match made {
                    Ok(()) => log(&format!("answering tls-alpn-01 for {domain}")),
                    Err(e) => log(&format!("cannot answer tls-alpn-01 for {domain}: {e}")),
                }
            }
        }
    }

    fn withdraw(&self, challenge: &Challenge) {
        acme::unshare(&self.state_dir, challenge);
        match challenge {
            Challenge::Http01 { token, .. } => self.challenges.withdraw_http(token),
            Challenge::TlsAlpn01 { domain, .. } => self.challenges.withdraw_alpn(domain),
        }
    }
}

/// The challenges the lock holder shared in `state_dir`, as a replica
/// answers them.
pub(super) struct StateDirChallenges {
    pub(super) state_dir: PathBuf,
    /// Domain → the key authorization and the certificate made for it:
    /// made once per challenge, not per handshake.
    pub(super) made: Mutex<HashMap<String, (String, Arc<CertifiedKey>)>>,
}

impl SharedChallenges for StateDirChallenges {
    fn http(&self, token: &str) -> Option<String> {
        acme::shared_http(&self.state_dir, token)
    }

    fn alpn(&self, domain: &str) -> Option<Arc<CertifiedKey>> {
        let key_authorization = acme::shared_alpn(&self.state_dir, domain)?;
        let mut made = self.made.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((shared, cert)) = made.get(domain) {
            if *shared == key_authorization {
                return Some(cert.clone());
            }
        }
        let (cert, key) = tls_alpn01_certificate(domain, &key_authorization).ok()?;
        let cert = challenge_key(domain, cert, key).ok()?;
        made.insert(domain.to_string(), (key_authorization, cert.clone()));
        Some(cert)
    }
}
