//! `tls.redirect_http`: the handler's answer to a request that came over
//! plain HTTP when it should use HTTPS (a 308 to the same URL on the TLS
//! port, or 421 when no certificate and no `tls.redirect_host` names it).

use std::sync::Arc;

use crate::http::Request;
use crate::service::redirect::{never_redirected, HttpsRedirect};
use crate::service::{ServiceContext, Target};

use super::{Conn, Line};

/// With `tls.redirect_http`, a request on a plain TCP connection is
/// answered with a 308 to HTTPS instead of routed: to its own host if a
/// certificate is for it, else to `tls.redirect_host`, else 421. Never the
/// probes or `/status` (a health check behind a TLS-terminating proxy
/// comes in plain), nor a Unix-socket peer (that proxy's own socket).
#[inline(always)]
pub(super) fn https_redirect(
    line: &Line,
    conn: &Conn,
    req: &Request,
    ctx: &ServiceContext<'_>,
) -> Option<Target> {
    let config = &ctx.config;
    if !config.tls.redirect_http || conn.stream.is_secure() || never_redirected(req.path(), config)
    {
        return None;
    }
    let tls = line.tls.get()?;
    let port = tls.https_port()?;
    // Unix-domain peers have no IP address.
    conn.peer()?;
    let served = HttpsRedirect::host_name(req.host.as_deref()).filter(|h| tls.serves(h));
    let canonical = &config.tls.redirect_host;
    let host = match served {
        Some(host) => Some(host.to_string()),
        None if !canonical.is_empty() => Some(canonical.clone()),
        None => None,
    };
    Some(Target::Mounted(Arc::new(HttpsRedirect { port, host })))
}
