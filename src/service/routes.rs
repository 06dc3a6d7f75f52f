//! The route table: which service answers a request path.
//!
//! Exact paths are tried first, then prefixes (longest first), then the
//! static files, which answer every other path. The built-in services are
//! enum variants, called directly: routing adds no allocation and no
//! virtual call to the static-file path. Mounted services go through
//! [`Service`].

use std::path::Path;
use std::sync::Arc;

use crate::config::Config;
use crate::http::{Method, Request};

use super::static_files::StaticFiles;
use super::{dashboard, echo, probes, Exchange, Outcome, Service};

/// What answers a route.
pub enum Target {
    /// `/echo`: the request, or its body, sent back.
    Echo,
    /// `/status`: the line's counters.
    Status,
    /// `/livez`: 200 while the process runs.
    Live,
    /// `/readyz`: 200 while accepting, 503 while starting or draining.
    Ready,
    /// Static files under the root.
    Files(StaticFiles),
    /// A service a library user mounted.
    Mounted(Arc<dyn Service>),
}

impl Target {
    /// Whether the service reads this request's body itself; otherwise the
    /// handler drains it or closes the connection.
    pub fn reads_body(&self, req: &Request) -> bool {
        match self {
            Target::Echo => matches!(req.method, Method::Post | Method::Put),
            Target::Status | Target::Live | Target::Ready | Target::Files(_) => false,
            Target::Mounted(service) => service.reads_body(req),
        }
    }

    /// The static files this target serves, if it is them.
    pub(crate) fn files(&self) -> Option<&StaticFiles> {
        match self {
            Target::Files(files) => Some(files),
            _ => None,
        }
    }

    /// Answers the request with this target's service.
    pub async fn serve(&self, ex: &mut Exchange<'_>) -> Outcome {
        match self {
            // Boxed, like the other rare paths (draining, sendfile): the
            // handler's future is allocated per request, so it is kept small.
            Target::Echo => Box::pin(echo::serve(ex)).await,
            // Boxed: the live stream's future is big, and rare.
            Target::Status => Box::pin(dashboard::serve(ex)).await,
            Target::Live => probes::live(ex),
            Target::Ready => probes::ready(ex),
            Target::Files(files) => files.serve(ex).await,
            Target::Mounted(service) => service.serve(ex).await,
        }
    }
}

/// A route's path: `"/x"` matches that path alone, `"/x/*"` every path that
/// starts with `"/x/"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RoutePath {
    /// This path alone.
    Exact(String),
    /// Every path that starts with this string (`"/x/"` for `"/x/*"`).
    Prefix(String),
}

impl RoutePath {
    /// A path ending in `*` is a prefix (the `*` dropped); any other is exact.
    pub fn parse(path: &str) -> RoutePath {
        match path.strip_suffix('*') {
            Some(prefix) => RoutePath::Prefix(prefix.to_string()),
            None => RoutePath::Exact(path.to_string()),
        }
    }
}

/// Which [`Target`] answers each request path: exact routes, then prefixes,
/// then the fallback (static files).
pub struct RouteTable {
    exact: Vec<(String, Target)>,
    /// Longest first: the first match is the most specific.
    prefixes: Vec<(String, Target)>,
    /// Paths no route matches.
    fallback: Target,
}

impl RouteTable {
    /// The static files paths no route matches go to, if they do.
    pub(crate) fn files(&self) -> Option<&StaticFiles> {
        self.fallback.files()
    }

    /// The endpoints `config` turns on (`/status` and `/echo` by default,
    /// at `status.path` and `echo.path`), and `files` for every other path.
    pub fn builtin(files: StaticFiles, config: &Config) -> RouteTable {
        let mut routes = RouteTable {
            exact: Vec::new(),
            prefixes: Vec::new(),
            fallback: Target::Files(files),
        };
        // Exact paths: validated by the config, never taken as prefixes.
        if config.echo.enabled {
            routes.exact.push((config.echo.path.clone(), Target::Echo));
        }
        if config.status.enabled {
            routes
                .exact
                .push((config.status.path.clone(), Target::Status));
            if config.status_access.dashboard {
                let page = format!("{}/dashboard", config.status.path);
                routes.exact.push((page, Target::Status));
            }
        }
        if config.live.enabled {
            routes.exact.push((config.live.path.clone(), Target::Live));
        }
        if config.ready.enabled {
            routes
                .exact
                .push((config.ready.path.clone(), Target::Ready));
        }
        routes
    }

    /// One message for each file or directory under `root` that a route
    /// keeps from being served at its own path, saying how to get it back.
    pub fn shadowed(&self, root: &Path) -> Vec<String> {
        let exact = self.exact.iter().map(|(p, t)| (p, t, false));
        let prefixes = self.prefixes.iter().map(|(p, t)| (p, t, true));
        let mut found = Vec::new();
        for (path, target, prefix) in exact.chain(prefixes) {
            let on_disk = root.join(path.trim_start_matches('/'));
            let Ok(meta) = std::fs::symlink_metadata(&on_disk) else {
                continue;
            };
            let (what, fix) = match target {
                Target::Status => (
                    "the status endpoint",
                    "set status.path or status.enabled = false",
                ),
                Target::Echo => ("the echo endpoint", "set echo.path or echo.enabled = false"),
                Target::Live => (
                    "the liveness probe",
                    "set live.path or live.enabled = false",
                ),
                Target::Ready => (
                    "the readiness probe",
                    "set ready.path or ready.enabled = false",
                ),
                Target::Mounted(_) => ("a mounted service", "mount it elsewhere"),
                Target::Files(_) => continue,
            };
            let kind = if meta.is_dir() { "directory" } else { "file" };
            let reach = match (prefix, meta.is_dir()) {
                (true, _) => format!("nothing under {path} is served from it"),
                // Only the redirect to "/x/" is lost: "/x/..." are files.
                (false, true) => {
                    format!("{path} does not redirect to it, though {path}/... is served")
                }
                (false, false) => format!("it is not served at {path}"),
            };
            found.push(format!(
                "{} ({kind}) is shadowed: {path} is {what}, so {reach}; to serve it, {fix}",
                on_disk.display()
            ));
        }
        found
    }

    /// Routes `path` (see [`RoutePath`]) to `target`, replacing whatever
    /// answered that exact path or prefix before.
    pub fn mount(&mut self, path: &str, target: Target) {
        let (routes, key) = match RoutePath::parse(path) {
            RoutePath::Exact(key) => (&mut self.exact, key),
            RoutePath::Prefix(key) => (&mut self.prefixes, key),
        };
        routes.retain(|(p, _)| *p != key);
        routes.push((key, target));
        self.prefixes
            .sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
    }

    /// The target for a request path (without its query).
    pub fn find(&self, path: &str) -> &Target {
        if let Some((_, target)) = self.exact.iter().find(|(p, _)| p == path) {
            return target;
        }
        match self
            .prefixes
            .iter()
            .find(|(p, _)| path.starts_with(p.as_str()))
        {
            Some((_, target)) => target,
            None => &self.fallback,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Named;

    impl Service for Named {
        fn serve<'a>(&'a self, ex: &'a mut Exchange<'_>) -> super::super::ServiceFuture<'a> {
            super::super::ServiceFuture::new(async move { ex.error(418, "named", &[]) })
        }
    }

    fn table() -> RouteTable {
        RouteTable {
            exact: vec![("/echo".to_string(), Target::Echo)],
            prefixes: Vec::new(),
            fallback: Target::Status,
        }
    }

    fn kind(target: &Target) -> &'static str {
        match target {
            Target::Echo => "echo",
            Target::Status => "status",
            Target::Live => "live",
            Target::Ready => "ready",
            Target::Files(_) => "files",
            Target::Mounted(_) => "mounted",
        }
    }

    #[test]
    fn exact_then_longest_prefix_then_fallback() {
        let mut routes = table();
        routes.mount("/api/*", Target::Mounted(Arc::new(Named)));
        routes.mount("/api/v2/*", Target::Echo);
        routes.mount("/api/health", Target::Status);
        assert_eq!(kind(routes.find("/echo")), "echo");
        assert_eq!(kind(routes.find("/echo/")), "status", "exact means exact");
        assert_eq!(kind(routes.find("/api/x")), "mounted");
        assert_eq!(kind(routes.find("/api/v2/x")), "echo", "longest prefix");
        assert_eq!(kind(routes.find("/api/health")), "status", "exact first");
        assert_eq!(kind(routes.find("/other")), "status");
    }

    #[test]
    fn shadowed_names_the_file_the_directory_and_the_fix() {
        let root = std::env::temp_dir().join(format!("conveyor-routes-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("echo")).unwrap();
        std::fs::create_dir_all(root.join("api")).unwrap();
        std::fs::write(root.join("status"), "mine").unwrap();
        let mut routes = table();
        routes.exact.push(("/status".to_string(), Target::Status));
        routes.exact.push(("/free".to_string(), Target::Status));
        routes.mount("/api/*", Target::Mounted(Arc::new(Named)));
        let found = routes.shadowed(&root);
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found[0].contains("echo (directory)"), "{}", found[0]);
        assert!(found[0].contains("echo.enabled = false"), "{}", found[0]);
        assert!(found[1].contains("status (file)"), "{}", found[1]);
        assert!(found[1].contains("set status.path"), "{}", found[1]);
        assert!(found[2].contains("nothing under /api/"), "{}", found[2]);
    }

    #[test]
    fn mounting_a_path_again_replaces_it() {
        let mut routes = table();
        routes.mount("/echo", Target::Mounted(Arc::new(Named)));
        assert_eq!(kind(routes.find("/echo")), "mounted");
        assert_eq!(routes.exact.len(), 1);
        assert_eq!(
            RoutePath::parse("/a/*"),
            RoutePath::Prefix("/a/".to_string())
        );
        assert_eq!(RoutePath::parse("/a"), RoutePath::Exact("/a".to_string()));
    }
}
