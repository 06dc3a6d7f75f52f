//! STUB of helper A's `crate::acme` (the RFC 8555 client), with the
//! signatures of the interface note, so the manager builds before the
//! client is merged. It orders nothing: every order fails. Replaced by
//! `crate::acme` on merge.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

pub struct AcmeSettings {
    pub directory: String,
    pub email: Option<String>,
    pub domains: Vec<String>,
    pub state_dir: PathBuf,
    pub ca_file: Option<PathBuf>,
    pub challenge: ChallengeKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChallengeKind {
    TlsAlpn01,
    Http01,
}

pub enum Challenge {
    Http01 {
        token: String,
        key_authorization: String,
    },
    TlsAlpn01 {
        domain: String,
        key_authorization: String,
    },
}

pub trait Responder: Send + Sync {
    fn publish(&self, challenge: &Challenge);
    fn withdraw(&self, challenge: &Challenge);
}

pub struct StoredCertificate {
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

pub struct AcmeClient;

#[derive(Debug)]
pub struct AcmeError(String);

impl fmt::Display for AcmeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub struct StateLock;

impl AcmeClient {
    pub fn new(settings: &AcmeSettings) -> Result<AcmeClient, AcmeError> {
        Err(AcmeError(format!(
            "no ACME client in this build (stub): cannot reach {}",
            settings.directory
        )))
    }

    pub fn stored(_settings: &AcmeSettings) -> Option<StoredCertificate> {
        None
    }

    pub fn order(&mut self, _responder: &dyn Responder) -> Result<StoredCertificate, AcmeError> {
        Err(AcmeError("no ACME client in this build (stub)".into()))
    }

    pub fn renewal_window(
        &mut self,
        _cert: &StoredCertificate,
    ) -> Option<(SystemTime, SystemTime)> {
        None
    }
}

pub fn lock_state_dir(dir: &Path) -> Result<Option<StateLock>, AcmeError> {
    std::fs::create_dir_all(dir).map_err(|e| AcmeError(format!("{}: {e}", dir.display())))?;
    Ok(Some(StateLock))
}
