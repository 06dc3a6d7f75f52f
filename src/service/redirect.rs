//! `tls.redirect_http`: a plain-HTTP listener answers a request with a 308
//! to the same URL over HTTPS (308 keeps the method and body, unlike 301).
//! Browsers then remember HTTPS if the site sends HSTS.
//!
//! Only to a name HTTPS is served for: the `Host` is never sent back
//! unchecked (`Host: evil.example` would otherwise make this server send
//! its visitors wherever a forged link says). A name no certificate is for
//! goes to `tls.redirect_host` when set, or is answered 421. The probes and
//! `/status` are never redirected (the handler decides that).

use super::{Exchange, Outcome, Service, ServiceFuture};

/// Redirects to `https://HOST[:port]/same/path?query`.
pub struct HttpsRedirect {
    /// The port HTTPS is served on; 443 is left out of the URL.
    pub port: u16,
    /// The host to send the client to, already checked against the
    /// certificates (or the configured canonical host); None: answer 421.
    pub host: Option<String>,
}

impl HttpsRedirect {
    /// The name of a Host field without its port: `[::1]:8080` ->
    /// `[::1]`, `a.example:80` -> `a.example`; None when empty.
    pub fn host_name(host: Option<&str>) -> Option<&str> {
        let host = host.filter(|h| !h.is_empty())?;
        Some(match host.strip_prefix('[') {
            Some(v6) => &host[..v6.find(']')? + 2],
            None => host.rsplit_once(':').map_or(host, |(name, _)| name),
        })
    }

    /// The HTTPS URL for `target` on `host`.
    pub fn location(&self, host: &str, target: &str) -> String {
        let path = if target.starts_with('/') { target } else { "/" };
        match self.port {
            443 => format!("https://{host}{path}"),
            port => format!("https://{host}:{port}{path}"),
        }
    }
}

impl Service for HttpsRedirect {
    fn serve<'a>(&'a self, ex: &'a mut Exchange<'_>) -> ServiceFuture<'a> {
        ServiceFuture::new(async move { redirect(self, ex) })
    }
}

fn redirect(this: &HttpsRedirect, ex: &mut Exchange<'_>) -> Outcome {
    ex.consume_preamble();
    match &this.host {
        Some(host) => {
            let location = this.location(host, &ex.req.target);
            let body = format!("Moved to {location}\n");
            ex.respond(
                308,
                "text/plain; charset=utf-8",
                body.as_bytes(),
                &[("Location", &location)],
            )
        }
        None => ex.error(
            421,
            "this server has no certificate for that host name; ask for one it serves",
            &[],
        ),
    }
}

/// The paths no rule redirects, rewrites or limits: the probes, `/status`
/// and what is under it (the dashboard).
pub fn never_redirected(path: &str, config: &crate::config::Config) -> bool {
    let probe = [&config.live, &config.ready]
        .iter()
        .any(|e| e.enabled && e.path == path);
    let status = &config.status;
    probe
        || (status.enabled
            && path
                .strip_prefix(status.path.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/')))
}

#[cfg(test)]
mod tests {
    use super::HttpsRedirect;

    /// A redirect to the request's own host, on `port`.
    fn to_port(port: u16) -> HttpsRedirect {
        HttpsRedirect { port, host: None }
    }

    #[test]
    fn location_keeps_path_and_query_and_swaps_the_port() {
        let r = to_port(8443);
        assert_eq!(
            r.location("example.com", "/a/b?c=d"),
            "https://example.com:8443/a/b?c=d"
        );
        assert_eq!(r.location("[::1]", "/"), "https://[::1]:8443/");
        assert_eq!(r.location("h", "*"), "https://h:8443/");
        let standard = to_port(443);
        assert_eq!(
            standard.location("example.com", "/x"),
            "https://example.com/x"
        );
    }

    #[test]
    fn host_name_drops_the_port() {
        let name = HttpsRedirect::host_name;
        assert_eq!(name(Some("example.com:8080")), Some("example.com"));
        assert_eq!(name(Some("example.com")), Some("example.com"));
        assert_eq!(name(Some("[::1]:8080")), Some("[::1]"));
        assert_eq!(name(Some("[::1")), None);
        assert_eq!(name(Some("")), None);
        assert_eq!(name(None), None);
    }
}
