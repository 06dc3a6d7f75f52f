//! `tls.redirect_http`: a plain-HTTP listener answers every request with a
//! 308 to the same URL over HTTPS (308 keeps the method and body, unlike
//! 301). Browsers then remember HTTPS if the site sends HSTS.

use super::{Exchange, Outcome, Service, ServiceFuture};

/// Redirects to `https://HOST[:port]/same/path?query`.
pub struct HttpsRedirect {
    /// The port HTTPS is served on; 443 is left out of the URL.
    pub port: u16,
}

impl HttpsRedirect {
    /// The HTTPS URL for this request; None without a Host to send it to.
    pub fn location(&self, host: Option<&str>, target: &str) -> Option<String> {
        let host = host.filter(|h| !h.is_empty())?;
        // Drop the plain port: `[::1]:8080` -> `[::1]`, `a.example:80` -> `a.example`.
        let name = match host.strip_prefix('[') {
            Some(v6) => &host[..v6.find(']')? + 2],
            None => host.rsplit_once(':').map_or(host, |(name, _)| name),
        };
        let path = if target.starts_with('/') { target } else { "/" };
        Some(match self.port {
            443 => format!("https://{name}{path}"),
            port => format!("https://{name}:{port}{path}"),
        })
    }
}

impl Service for HttpsRedirect {
    fn serve<'a>(&'a self, ex: &'a mut Exchange<'_>) -> ServiceFuture<'a> {
        ServiceFuture::new(async move { redirect(self, ex) })
    }
}

fn redirect(this: &HttpsRedirect, ex: &mut Exchange<'_>) -> Outcome {
    ex.consume_preamble();
    match this.location(ex.req.host.as_deref(), &ex.req.target) {
        Some(location) => {
            let body = format!("Moved to {location}\n");
            ex.respond(
                308,
                "text/plain; charset=utf-8",
                body.as_bytes(),
                &[("Location", &location)],
            )
        }
        None => ex.error(400, "a Host header is needed to redirect to HTTPS", &[]),
    }
}

#[cfg(test)]
mod tests {
    use super::HttpsRedirect;

    #[test]
    fn location_keeps_host_path_and_query_and_swaps_the_port() {
        let r = HttpsRedirect { port: 8443 };
        assert_eq!(
            r.location(Some("example.com:8080"), "/a/b?c=d").as_deref(),
            Some("https://example.com:8443/a/b?c=d")
        );
        assert_eq!(
            r.location(Some("[::1]:8080"), "/").as_deref(),
            Some("https://[::1]:8443/")
        );
        let standard = HttpsRedirect { port: 443 };
        assert_eq!(
            standard.location(Some("example.com"), "/x").as_deref(),
            Some("https://example.com/x")
        );
        assert_eq!(r.location(None, "/"), None);
        assert_eq!(
            r.location(Some("h"), "*").as_deref(),
            Some("https://h:8443/")
        );
    }
}
