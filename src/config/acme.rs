//! The `[acme]` table: certificates from an ACME CA (RFC 8555), got at
//! start and renewed while the server runs.

use std::path::PathBuf;
use std::time::Duration;

use toml::Value;

use super::names::AcmeChallenge;
use super::site::string_list;
use super::value::{string, Parsed};
use super::{ConfigError, Res};
use crate::acme::{LETS_ENCRYPT, LETS_ENCRYPT_STAGING};

blank_struct! {
    /// `[acme]`: certificates from an ACME CA for `domains`.
    #[derive(Debug, Clone, PartialEq)]
    pub struct AcmeConfig {
        /// `acme.domains`: the names of the one certificate ordered (its
        /// SANs); empty: ACME off (default).
        pub domains: Vec<String>,
        /// `acme.email`: the account's contact; "" = none (default).
        pub email: String,
        /// `acme.directory`: the CA's RFC 8555 directory URL (default
        /// Let's Encrypt production).
        pub directory: String,
        /// `acme.state_dir`: where the account key and certificates are
        /// kept, mode 0700 (default `acme`, under the working directory).
        pub state_dir: PathBuf,
        /// `acme.challenge`: how the CA validates the names (default
        /// `tls-alpn-01`).
        pub challenge: AcmeChallenge,
        /// `acme.ca_file`: PEM roots trusted for the directory's own HTTPS
        /// besides the system's; empty = none (default).
        pub ca_file: PathBuf,
        /// `acme.retry_base`: the first wait after a failed order, doubled
        /// after each failure up to an hour (default 1 min).
        pub retry_base: Duration,
    }
}

impl AcmeConfig {
    /// Whether certificates are ordered: some domain is named.
    pub fn enabled(&self) -> bool {
        !self.domains.is_empty()
    }
}

/// `acme.domains`: DNS names; a wildcard is refused (it needs dns-01).
pub(crate) fn domains(v: &Value) -> Parsed<Vec<String>> {
    let names = string_list(v)?;
    for name in &names {
        domain(name)?;
    }
    let mut lower: Vec<String> = names.iter().map(|n| n.to_ascii_lowercase()).collect();
    lower.dedup();
    Ok(lower)
}

/// One name of `acme.domains` (and `--acme-domain`): `Err` says why not.
pub fn domain(name: &str) -> Parsed<()> {
    if name.starts_with("*.") {
        return Err(format!(
            "holds {name:?}: a wildcard certificate can only be validated by the dns-01 \
             challenge, which Conveyor does not answer (http-01 and tls-alpn-01 cannot, \
             RFC 8555 §7.1.3); list each name, like \"www.example.com\""
        ));
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    let is_ip = name.parse::<std::net::IpAddr>().is_ok();
    if is_ip || !name.contains('.') || name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(format!(
            "holds {name:?}, which is not a public DNS name; write names like \
             \"example.com\" (no scheme, port, IP address or trailing dot)"
        ));
    }
    Ok(())
}

/// `acme.email`: "" or an address (no `mailto:`).
pub(crate) fn email(v: &Value) -> Parsed<String> {
    let email = string(v)?;
    let ok = email.is_empty()
        || email.split_once('@').is_some_and(|(user, host)| {
            !user.is_empty() && host.contains('.') && !email.contains(char::is_whitespace)
        });
    match ok {
        true => Ok(email.trim_start_matches("mailto:").to_string()),
        false => Err(format!(
            "holds {email:?}; write an address like \"admin@example.com\", or \"\" for none"
        )),
    }
}

/// `acme.directory`: an `https://` URL.
pub(crate) fn directory(v: &Value) -> Parsed<String> {
    let url = string(v)?;
    match url.strip_prefix("https://") {
        Some(rest) if !rest.is_empty() && !rest.contains(char::is_whitespace) => {
            Ok(url.to_string())
        }
        _ => Err(format!(
            "holds {url:?}; give the CA's directory URL over https, like \
             \"{LETS_ENCRYPT}\" (Let's Encrypt) or \"{LETS_ENCRYPT_STAGING}\" (its staging)"
        )),
    }
}

/// `acme.state_dir`: a directory path, never "".
pub(crate) fn state_dir(v: &Value) -> Parsed<PathBuf> {
    match string(v)? {
        "" => Err(
            "is empty; give a directory for the account key and certificates, \
                   like \"/var/lib/conveyor/acme\""
                .into(),
        ),
        s => Ok(PathBuf::from(s)),
    }
}

/// `acme.ca_file`: a PEM file path, or "".
pub(crate) fn ca_file(v: &Value) -> Parsed<PathBuf> {
    Ok(PathBuf::from(string(v)?))
}

impl super::Config {
    /// `[acme]` against the listeners, once the flags are applied: a TLS
    /// listener to serve the certificate on, and the listener its
    /// challenge needs (on any port: a firewall may forward 80 or 443).
    pub fn check_acme(&self) -> Res<()> {
        let acme = &self.acme;
        if !acme.enabled() {
            // state_dir aside: a file's relative one is resolved beneath
            // its directory, the default too (the shipped file sets it).
            let defaults = AcmeConfig {
                state_dir: acme.state_dir.clone(),
                ..super::Config::default().acme
            };
            if *acme != defaults {
                return Err(ConfigError::new(
                    "[acme] is set but acme.domains is empty: nothing would be ordered; list \
                     the names, like domains = [\"example.com\"] (or --acme-domain), or \
                     remove [acme]",
                ));
            }
            return Ok(());
        }
        // A replica without the lock looks at state_dir every retry_base:
        // a millisecond would be a busy loop on a shared volume.
        if acme.retry_base < std::time::Duration::from_millis(100) {
            return Err(ConfigError::new(format!(
                "acme.retry_base = {:?} is under 100ms: failed orders would be retried, and \
                 replicas would look in state_dir, that often; give at least \"100ms\" \
                 (the default is \"1m\")",
                acme.retry_base
            )));
        }
        if !self.tls.enabled() {
            return Err(ConfigError::new(format!(
                "acme.domains = {:?}, but there is no TLS listener to serve the certificate \
                 on; set tls.listen = [\"0.0.0.0:443\"] (or --tls-listen)",
                acme.domains
            )));
        }
        // A socket systemd passed may be plain TCP: given the benefit.
        let plain_tcp = self.listen.specs().iter().any(|l| {
            matches!(
                l,
                super::ListenAddress::Tcp(_) | super::ListenAddress::Inherited { .. }
            )
        });
        if acme.challenge == AcmeChallenge::Http01 && !plain_tcp {
            return Err(ConfigError::new(
                "acme.challenge = \"http-01\", but there is no plain TCP listener for the CA \
                 to fetch the challenge from (it connects to port 80); add \
                 listen = [\"0.0.0.0:80\"], or use challenge = \"tls-alpn-01\"",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn with(toml: &str) -> Result<Config, String> {
        Config::from_toml_str(toml).map_err(|e| e.to_string())
    }

    #[test]
    fn domains_must_be_dns_names_and_never_wildcards() {
        let c = with("[acme]\ndomains = [\"Example.com\", \"www.example.com\"]").unwrap();
        assert_eq!(c.acme.domains, ["example.com", "www.example.com"]);
        let e = with("[acme]\ndomains = [\"*.example.com\"]").unwrap_err();
        assert!(e.contains("acme.domains") && e.contains("dns-01"), "{e}");
        for bad in ["localhost", "127.0.0.1", "https://example.com", "a..b", ""] {
            let e = with(&format!("[acme]\ndomains = [{bad:?}]")).unwrap_err();
            assert!(
                e.contains("acme.domains") && e.contains("not a public DNS name"),
                "{e}"
            );
        }
    }

    #[test]
    fn the_directory_is_https_and_defaults_to_lets_encrypt() {
        assert_eq!(Config::default().acme.directory, LETS_ENCRYPT);
        let e = with("[acme]\ndirectory = \"http://ca.test/dir\"").unwrap_err();
        assert!(e.contains("acme.directory") && e.contains("staging"), "{e}");
        let e = with("[acme]\nemail = \"nobody\"").unwrap_err();
        assert!(e.contains("acme.email"), "{e}");
    }

    #[test]
    fn acme_needs_its_listeners() {
        let mut c = Config::default();
        c.check_acme().unwrap();
        c.acme.email = "a@example.com".into();
        let e = c.check_acme().unwrap_err().to_string();
        assert!(e.contains("acme.domains is empty"), "{e}");
        c.acme.domains = vec!["example.com".into()];
        let e = c.check_acme().unwrap_err().to_string();
        assert!(
            e.contains("no TLS listener") && e.contains("tls.listen"),
            "{e}"
        );
        c.tls.listen = vec!["127.0.0.1:8443".parse().unwrap()];
        c.check_acme().unwrap();
        c.acme.retry_base = std::time::Duration::from_millis(1);
        let e = c.check_acme().unwrap_err().to_string();
        assert!(e.contains("acme.retry_base") && e.contains("100ms"), "{e}");
        c.acme.retry_base = std::time::Duration::from_millis(100);
        c.check_acme().unwrap();
        c.acme.challenge = AcmeChallenge::Http01;
        c.check_acme().unwrap();
        c.listen = crate::config::ListenAddresses(Vec::new());
        let e = c.check_acme().unwrap_err().to_string();
        assert!(e.contains("http-01") && e.contains("0.0.0.0:80"), "{e}");
    }
}
