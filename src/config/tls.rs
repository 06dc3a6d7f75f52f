//! The `[tls]` table: where HTTPS is served and with which certificates.

use std::path::PathBuf;

use toml::Value;

use super::site::string_list;
use super::value::{
    array_of_tables, parse_tcp_address, string, Parsed, TcpAddress, TCP_ADDRESS_FIX,
};
use crate::tls::CertificateFiles;

/// `[tls]`: HTTPS listeners and their certificates.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TlsConfig {
    /// `tls.listen`: addresses served over TLS (default none: no HTTPS).
    pub listen: Vec<TcpAddress>,
    /// `[[tls.certificates]]`: chains and keys, chosen by SNI.
    pub certificates: Vec<CertificateFiles>,
    /// `tls.redirect_http`: the plain listeners answer every request with
    /// 308 to the same URL over HTTPS (default false).
    pub redirect_http: bool,
    /// `tls.redirect_host`: with `redirect_http`, where a request naming a
    /// host no certificate is for is redirected (the canonical host);
    /// empty: it is answered 421 Misdirected Request (default).
    pub redirect_host: String,
    /// `tls.self_signed`: with no certificate given, serve one for
    /// `localhost` made at start and kept in memory (default false).
    pub self_signed: bool,
}

impl TlsConfig {
    /// Whether HTTPS is served: at least one TLS address.
    pub fn enabled(&self) -> bool {
        !self.listen.is_empty()
    }
}

const CERT_FIX: &str = "write [[tls.certificates]] tables like \
     { cert = \"tls/cert.pem\", key = \"tls/key.pem\", names = [\"example.com\"] } \
     (names optional)";

/// `tls.listen`: a list of `IP:PORT` or `HOST:PORT`.
pub(crate) fn tcp_address_list(v: &Value) -> Parsed<Vec<TcpAddress>> {
    string_list(v)?
        .iter()
        .map(|s| parse_tcp_address(s).ok_or_else(|| format!("holds {s:?}; {TCP_ADDRESS_FIX}")))
        .collect()
}

/// `[[tls.certificates]]`.
pub(crate) fn certificates(v: &Value) -> Parsed<Vec<CertificateFiles>> {
    array_of_tables(v, "entry", &["cert", "key", "names"], CERT_FIX, certificate)
}

fn certificate(t: &toml::Table) -> Parsed<CertificateFiles> {
    let path = |name: &str| -> Parsed<PathBuf> {
        match t.get(name) {
            Some(p) if !string(p)?.is_empty() => Ok(PathBuf::from(string(p)?)),
            _ => Err(format!("has no {name} file; {CERT_FIX}")),
        }
    };
    let names = match t.get("names") {
        Some(v) => string_list(v)?,
        None => Vec::new(),
    };
    if let Some(bad) = names.iter().find(|n| !valid_name(n)) {
        return Err(format!(
            "names holds {bad:?}; write host names like \"example.com\" or \"*.example.com\""
        ));
    }
    Ok(CertificateFiles {
        cert: path("cert")?,
        key: path("key")?,
        names,
    })
}

/// `tls.redirect_host`: a host name (or IP address) without scheme, port
/// or path, or "".
pub(crate) fn redirect_host(v: &Value) -> Parsed<String> {
    let host = string(v)?;
    let ip = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
        .parse::<std::net::IpAddr>();
    let ok = host.is_empty() || ip.is_ok() || (!host.starts_with("*.") && valid_name(host));
    if !ok {
        return Err(
            "is not a host name; write the name HTTPS is served for, like \"example.com\" \
             (no scheme, port or path), or \"\" to answer other names 421"
                .into(),
        );
    }
    Ok(match ip {
        Ok(std::net::IpAddr::V6(v6)) => format!("[{v6}]"),
        _ => host.to_ascii_lowercase(),
    })
}

fn valid_name(name: &str) -> bool {
    let rest = name.strip_prefix("*.").unwrap_or(name);
    !rest.is_empty()
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}
