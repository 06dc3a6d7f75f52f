//! Virtual hosts (`[[sites]]`): which site answers a request, by its
//! `Host` (HTTP/1.1) or `:authority` (HTTP/2, which the HTTP/2 stage
//! hands on as `Host`). A site is what the top level is: routes (its own
//! static files), rules and watched `_redirects`/`_headers`, built from
//! the top-level config with the site's settings over it.
//!
//! Names match without the port, case-insensitively, a trailing dot
//! dropped; `*.example.com` matches one label before `example.com`. Over
//! TLS the SNI name must pick the same site as the host, else 421
//! (RFC 9110 §15.5.20): a connection set up for one site is not used for
//! another. A host no site names gets the top-level site, or 404 or 421
//! (`unknown_host`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::config::{Config, UnknownHost};
use crate::runtime::Stream;

use super::auth::{AuthFailures, Gate};
use super::netlify::{site_rules, Watch};
use super::redirect::HttpsRedirect;
use super::rewrite::Rules;
use super::static_files::{CacheFigures, StaticFiles};
use super::{Exchange, Outcome, RouteTable, Service, ServiceFuture, Target};

/// What one config serves for one site: its routes (static files
/// included), its redirect and rewrite rules, its watched site files, its
/// `[[auth]]` rules.
pub struct SiteParts {
    /// Exact paths, prefixes, and the site's static files.
    pub routes: RouteTable,
    /// `[[redirects]]`, `[[rewrites]]`, `_redirects`: before routing.
    pub rules: Arc<Rules>,
    /// `_redirects` and `_headers`, watched for a change.
    pub netlify: Option<Watch>,
    /// `[[auth]]`: who may see what is served.
    pub auth: Gate,
}

impl SiteParts {
    /// The routes, rules, files and auth rules of `config` (its root, its
    /// `[static]`, its `[[auth]]`), with `mounted` services on top; failed
    /// logins counted in `failures`.
    pub fn build(
        config: &Config,
        workers: usize,
        mounted: &[(String, Arc<dyn Service>)],
        failures: &Arc<AuthFailures>,
    ) -> std::io::Result<SiteParts> {
        let auth = Gate::new(config, failures).map_err(std::io::Error::other)?;
        let invalid = |e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
        let site = site_rules(&config.root, &config.static_files).map_err(invalid)?;
        let files_config = site.files.as_ref().unwrap_or(&config.static_files);
        let files =
            StaticFiles::new(&config.root, files_config, workers)?.with_rules(site.rules.clone());
        let mut routes = RouteTable::builtin(files, config);
        for (path, service) in mounted {
            routes.mount(path, Target::Mounted(service.clone()));
        }
        // Once, at start-up: a user whose file answers something else would
        // otherwise never learn why.
        let exposed = Gate::exposure(config);
        for warning in routes.shadowed(&config.root).into_iter().chain(exposed) {
            eprintln!("conveyor: warning: {warning}");
        }
        Ok(SiteParts {
            routes,
            rules: site.rules,
            netlify: site.watch,
            auth,
        })
    }

    /// Whether its watched `_redirects` or `_headers` changed since `since`.
    pub fn changed(&self, since: Instant) -> bool {
        self.netlify.as_ref().is_some_and(|w| w.changed(since))
    }
}

/// One `[[sites]]` entry, built.
struct Site {
    /// Its first name, as `/status` shows it.
    name: String,
    parts: SiteParts,
    requests: Arc<AtomicU64>,
}

/// Which site a name picks, before `unknown_host` has its say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pick {
    Site(usize),
    Unknown,
}

/// What answers a request, as [`Sites::choose`] decides.
enum Chosen<'a> {
    /// This site.
    Site(&'a Site),
    /// The top level's parts (the default site).
    TopLevel,
    /// Refused: this target answers (404 or 421).
    Refused(&'a Target),
}

/// Every `[[sites]]` entry of one config, with the lookup by name.
pub struct Sites {
    sites: Vec<Site>,
    /// Exact names → index into `sites`.
    exact: HashMap<Box<str>, usize>,
    /// `*.parent` → index, by `parent`.
    wildcard: HashMap<Box<str>, usize>,
    unknown: UnknownHost,
    counts: Arc<Counts>,
    not_found: Target,
    misdirected: Target,
    unknown_refused: Target,
}

/// Counters kept across reloads.
#[derive(Default)]
struct Counts {
    /// Requests the top-level site answered.
    top_level: AtomicU64,
    /// Answered 421: SNI and host named different sites.
    misdirected: AtomicU64,
    /// Answered 404 or 421 for a host no site names (`unknown_host`).
    unknown_refused: AtomicU64,
}

/// One site as `/status` shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SiteFigures {
    /// The site's first name; `"(default)"` for the top level.
    pub name: String,
    /// Requests answered by it.
    pub requests: u64,
}

/// The `"sites"` object of `/status`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SitesReport {
    /// Answered 421: SNI and host named different sites.
    pub misdirected: u64,
    /// Answered 404 or 421 for a host no site names.
    pub unknown_refused: u64,
    /// Each site (the top level first), in the config's order.
    pub sites: Vec<SiteFigures>,
}

/// How `/status` names the top-level site: no host name looks like it.
pub const TOP_LEVEL: &str = "(default)";

impl Sites {
    /// The sites of `config` (None without `[[sites]]`), each built from
    /// the top level with its settings; counters carried over from
    /// `previous` for the sites that keep their first name.
    pub fn build(
        config: &Config,
        workers: usize,
        mounted: &[(String, Arc<dyn Service>)],
        failures: &Arc<AuthFailures>,
        previous: Option<&Sites>,
    ) -> std::io::Result<Option<Sites>> {
        if config.sites.is_empty() {
            return Ok(None);
        }
        let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
        let mut sites = Vec::with_capacity(config.sites.len());
        let (mut exact, mut wildcard) = (HashMap::new(), HashMap::new());
        for (i, site) in config.sites.iter().enumerate() {
            let name = site.name().to_string();
            let site_config = site.config(config).map_err(invalid)?;
            check_root(&site_config, &name)?;
            let parts =
                SiteParts::build(&site_config, workers, mounted, failures).map_err(|e| {
                    std::io::Error::new(e.kind(), format!("sites: site {} ({name}): {e}", i + 1))
                })?;
            for n in &site.names {
                match n.strip_prefix("*.") {
                    Some(parent) => wildcard.insert(parent.into(), i),
                    None => exact.insert(n.as_str().into(), i),
                };
            }
            let requests = previous
                .and_then(|p| p.sites.iter().find(|s| s.name == name))
                .map_or_else(Arc::default, |s| s.requests.clone());
            sites.push(Site {
                name,
                parts,
                requests,
            });
        }
        let refusal = |status, message| {
            Target::Mounted(Arc::new(Refusal { status, message }) as Arc<dyn Service>)
        };
        Ok(Some(Sites {
            sites,
            exact,
            wildcard,
            unknown: config.unknown_host,
            counts: previous.map_or_else(Arc::default, |p| p.counts.clone()),
            not_found: refusal(404, "no site is served for this host name"),
            misdirected: refusal(
                421,
                "this connection was set up for another site (TLS server name); \
                 open a new connection for this host",
            ),
            unknown_refused: refusal(421, "no site is served for this host name"),
        }))
    }

    /// What serves a request to `host` (its `Host` field) over `stream`:
    /// a site's parts, or `top`'s (the top level); with the target that
    /// refuses it (404, 421), if refused; and the site's name for the
    /// access log (its first name, `(default)`, `-` when refused). Counts it.
    pub fn serving<'a>(
        &'a self,
        top: &'a SiteParts,
        host: Option<&str>,
        stream: &Stream,
    ) -> (&'a SiteParts, Option<&'a Target>, &'a str) {
        match self.choose(host, stream) {
            Chosen::Site(site) => (&site.parts, None, &site.name),
            Chosen::TopLevel => (top, None, TOP_LEVEL),
            Chosen::Refused(target) => (top, Some(target), "-"),
        }
    }

    /// Whether a watched site file of any site changed since `since`.
    pub fn changed(&self, since: Instant) -> bool {
        self.sites.iter().any(|s| s.parts.changed(since))
    }

    fn choose(&self, host: Option<&str>, stream: &Stream) -> Chosen<'_> {
        let picked = self.pick(host);
        let sni = match stream.is_secure() {
            true => stream.with_server_name(|sni| sni.map(|name| self.pick(Some(name)))),
            false => None,
        };
        if sni.is_some_and(|sni| sni != picked) {
            self.counts.misdirected.fetch_add(1, Ordering::Relaxed);
            return Chosen::Refused(&self.misdirected);
        }
        match picked {
            Pick::Site(i) => {
                let site = &self.sites[i];
                site.requests.fetch_add(1, Ordering::Relaxed);
                Chosen::Site(site)
            }
            Pick::Unknown => {
                let refused = match self.unknown {
                    UnknownHost::TopLevel => {
                        self.counts.top_level.fetch_add(1, Ordering::Relaxed);
                        return Chosen::TopLevel;
                    }
                    UnknownHost::NotFound => &self.not_found,
                    UnknownHost::Misdirected => &self.unknown_refused,
                };
                self.counts.unknown_refused.fetch_add(1, Ordering::Relaxed);
                Chosen::Refused(refused)
            }
        }
    }

    /// The site a host name picks: without its port, case-insensitive, a
    /// trailing dot dropped.
    fn pick(&self, host: Option<&str>) -> Pick {
        let Some(name) = HttpsRedirect::host_name(host) else {
            return Pick::Unknown;
        };
        let name = name.strip_suffix('.').unwrap_or(name);
        let lower;
        let name = match name.bytes().any(|b| b.is_ascii_uppercase()) {
            true => {
                lower = name.to_ascii_lowercase();
                lower.as_str()
            }
            false => name,
        };
        if let Some(i) = self.exact.get(name) {
            return Pick::Site(*i);
        }
        name.split_once('.')
            .and_then(|(_, parent)| self.wildcard.get(parent))
            .map_or(Pick::Unknown, |i| Pick::Site(*i))
    }

    /// The sites' parts, for what every site needs (a changed site file).
    pub fn parts(&self) -> impl Iterator<Item = &SiteParts> {
        self.sites.iter().map(|s| &s.parts)
    }

    /// Adds the sites' static-file caches to `figures` (the top level's),
    /// so `/status` shows what every cache holds.
    pub fn add_cache_figures(&self, figures: &mut CacheFigures) {
        for files in self.sites.iter().filter_map(|s| s.parts.routes.files()) {
            let f = files.cache_figures();
            figures.max_bytes += f.max_bytes;
            figures.file_bytes += f.file_bytes;
            figures.compressed_entries += f.compressed_entries;
            figures.compressed_bytes += f.compressed_bytes;
            figures.compressions += f.compressions;
            figures.evictions += f.evictions;
        }
    }

    /// What `/status` shows of the sites.
    pub fn figures(&self) -> SitesReport {
        let load = |n: &AtomicU64| n.load(Ordering::Relaxed);
        let top = SiteFigures {
            name: TOP_LEVEL.to_string(),
            requests: load(&self.counts.top_level),
        };
        let each = self.sites.iter().map(|s| SiteFigures {
            name: s.name.clone(),
            requests: load(&s.requests),
        });
        SitesReport {
            misdirected: load(&self.counts.misdirected),
            unknown_refused: load(&self.counts.unknown_refused),
            sites: std::iter::once(top).chain(each).collect(),
        }
    }
}

/// The static-file cache figures of `top` and every site, added up.
pub fn cache_figures(top: &SiteParts, sites: Option<&Sites>) -> Option<CacheFigures> {
    let mut figures = top.routes.files().map(StaticFiles::cache_figures)?;
    if let Some(sites) = sites {
        sites.add_cache_figures(&mut figures);
    }
    Some(figures)
}

/// A site's root must be a directory that can be listed, and its error
/// pages files beneath it: said at start and at a reload, naming the site.
fn check_root(config: &Config, name: &str) -> std::io::Result<()> {
    let checked = config
        .check_root()
        .and_then(|()| config.check_error_pages());
    checked.map_err(|e| {
        let message = e
            .message()
            .replace(
                "create it or pass ROOT on the command line",
                "create it or fix the site's root",
            )
            .replace("static.error_pages:", "error_pages:");
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("sites: site {name}: {message}"),
        )
    })
}

/// The answer to a request no site takes.
struct Refusal {
    status: u16,
    message: &'static str,
}

impl Service for Refusal {
    fn serve<'a>(&'a self, ex: &'a mut Exchange<'_>) -> ServiceFuture<'a> {
        ServiceFuture::new(async move { refuse(self, ex) })
    }
}

fn refuse(this: &Refusal, ex: &mut Exchange<'_>) -> Outcome {
    ex.consume_preamble();
    ex.error(this.status, this.message, &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sites with these names and no parts: enough for the lookup.
    fn names(exact: &[&str], wildcard: &[&str]) -> Sites {
        let map = |names: &[&str]| {
            (names.iter().enumerate())
                .map(|(i, n)| (Box::from(*n), i))
                .collect()
        };
        Sites {
            sites: Vec::new(),
            exact: map(exact),
            wildcard: map(wildcard),
            unknown: UnknownHost::TopLevel,
            counts: Arc::default(),
            not_found: Target::Live,
            misdirected: Target::Live,
            unknown_refused: Target::Live,
        }
    }

    #[test]
    fn names_match_without_port_case_or_trailing_dot() {
        let sites = names(&["a.example", "127.0.0.1"], &["x.example", "b.example"]);
        let pick = |host: Option<&str>| sites.pick(host);
        for host in [
            "a.example",
            "A.EXAMPLE:443",
            "a.example.",
            "a.Example.:8080",
        ] {
            assert_eq!(pick(Some(host)), Pick::Site(0), "{host}");
        }
        assert_eq!(pick(Some("127.0.0.1:8080")), Pick::Site(1));
        // A wildcard: one label before its name.
        assert_eq!(pick(Some("w.x.example")), Pick::Site(0));
        assert_eq!(pick(Some("W.B.Example:80")), Pick::Site(1));
        for host in [
            "x.example",
            "v.w.x.example",
            "[::1]:80",
            "",
            "example",
            "a.example..",
        ] {
            assert_eq!(pick(Some(host)), Pick::Unknown, "{host}");
        }
        assert_eq!(pick(None), Pick::Unknown);
    }
}
