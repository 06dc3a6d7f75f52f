//! Challenges shared through `state_dir/challenges/`, so that every
//! replica sharing the state directory answers the CA, wherever a load
//! balancer sends its validation (as Caddy's shared storage does): the
//! lock holder writes each challenge it publishes there, and a replica
//! that has none published in memory reads it there.
//!
//! A file per challenge, holding the key authorization (no secret: the
//! CA and anyone it tells see it): `http-01-<token>` and
//! `tls-alpn-01-<domain>`, written atomically (mode 0600), removed when
//! withdrawn, and all of them when a process takes the lock (what a
//! crashed holder left). Names are checked before they become file names:
//! a token in base64url, a domain in letters, digits, `-` and `.`.

use std::path::{Path, PathBuf};

use super::state;
use super::{AcmeError, Challenge};

/// The most a shared key authorization file is read: a CA's are under 100
/// bytes.
const MAX: u64 = 1024;

fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("challenges")
}

/// A token as RFC 8555 §8.1 makes it: base64url without padding, 1 to 256
/// characters. No `/` or `.`: never a path to anything else.
pub fn is_token(token: &str) -> bool {
    (1..=256).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn is_domain(domain: &str) -> bool {
    (1..=253).contains(&domain.len())
        && !domain.starts_with('.')
        && domain
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// The file name of `challenge` and its key authorization; `None` if its
/// token or domain could not be a file name.
fn entry(challenge: &Challenge) -> Option<(String, &str)> {
    match challenge {
        Challenge::Http01 {
            token,
            key_authorization,
        } => is_token(token).then(|| (format!("http-01-{token}"), key_authorization.as_str())),
        Challenge::TlsAlpn01 {
            domain,
            key_authorization,
        } => is_domain(domain).then(|| {
            let name = format!("tls-alpn-01-{}", domain.to_ascii_lowercase());
            (name, key_authorization.as_str())
        }),
    }
}

/// Writes `challenge` where the other replicas look.
pub fn share(state_dir: &Path, challenge: &Challenge) -> Result<(), AcmeError> {
    let (name, key_authorization) = entry(challenge)
        .ok_or_else(|| AcmeError::new("a challenge whose token or name is not a file name"))?;
    let dir = dir(state_dir);
    state::ensure_inner_dir(&dir)?;
    state::write_atomic(&dir, &name, key_authorization.as_bytes(), 0o600)
}

/// Removes `challenge` from where the other replicas look.
pub fn unshare(state_dir: &Path, challenge: &Challenge) {
    if let Some((name, _)) = entry(challenge) {
        let _ = std::fs::remove_file(dir(state_dir).join(name));
    }
}

/// Removes every shared challenge (called by the new lock holder).
pub(crate) fn clear(state_dir: &Path) {
    let _ = std::fs::remove_dir_all(dir(state_dir));
}

/// The key authorization the lock holder shared for `token` (http-01).
pub fn shared_http(state_dir: &Path, token: &str) -> Option<String> {
    is_token(token).then_some(())?;
    read(&dir(state_dir).join(format!("http-01-{token}")))
}

/// The key authorization the lock holder shared for `domain`
/// (tls-alpn-01).
pub fn shared_alpn(state_dir: &Path, domain: &str) -> Option<String> {
    is_domain(domain).then_some(())?;
    let name = format!("tls-alpn-01-{}", domain.to_ascii_lowercase());
    read(&dir(state_dir).join(name))
}

fn read(path: &Path) -> Option<String> {
    let bytes = state::read_private(path, MAX, false).ok()?;
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_challenges_are_written_read_and_removed() {
        let state_dir =
            std::env::temp_dir().join(format!("conveyor-shared-{}", std::process::id()));
        let http = Challenge::Http01 {
            token: "tok-EN_1".into(),
            key_authorization: "tok-EN_1.print".into(),
        };
        let alpn = Challenge::TlsAlpn01 {
            domain: "WWW.example.test".into(),
            key_authorization: "alpn.print".into(),
        };
        share(&state_dir, &http).expect("shared");
        share(&state_dir, &alpn).expect("shared");
        assert_eq!(
            shared_http(&state_dir, "tok-EN_1").as_deref(),
            Some("tok-EN_1.print")
        );
        assert_eq!(
            shared_alpn(&state_dir, "www.example.TEST").as_deref(),
            Some("alpn.print")
        );
        for bad in ["", "../lock", "a/b", "tok-EN_1.x"] {
            assert_eq!(shared_http(&state_dir, bad), None, "{bad}");
        }
        assert_eq!(shared_alpn(&state_dir, "../lock"), None);
        let evil = Challenge::Http01 {
            token: "../../x".into(),
            key_authorization: "x".into(),
        };
        assert!(share(&state_dir, &evil).is_err());
        unshare(&state_dir, &http);
        assert_eq!(shared_http(&state_dir, "tok-EN_1"), None);
        clear(&state_dir);
        assert_eq!(shared_alpn(&state_dir, "www.example.test"), None);
        let _ = std::fs::remove_dir_all(&state_dir);
    }
}
