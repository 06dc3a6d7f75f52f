//! The route table: which service answers a request path.
//!
//! Exact paths are tried first, then prefixes (longest first), then the
//! static files, which answer every other path. The built-in services are
//! enum variants, called directly: routing adds no allocation and no
//! virtual call to the static-file path. Mounted services go through
//! [`Service`].

use std::sync::Arc;

use crate::http::{Method, Request};

use super::static_files::StaticFiles;
use super::{echo, status, Exchange, Outcome, Service};

/// What answers a route.
pub enum Target {
    /// `/echo`: the request, or its body, sent back.
    Echo,
    /// `/status`: the line's counters.
    Status,
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
            Target::Status | Target::Files(_) => false,
            Target::Mounted(service) => service.reads_body(req),
        }
    }

    /// Answers the request with this target's service.
    pub async fn serve(&self, ex: &mut Exchange<'_>) -> Outcome {
        match self {
            // Boxed, like the other rare paths (draining, sendfile): the
            // handler's future is allocated per request, so it is kept small.
            Target::Echo => Box::pin(echo::serve(ex)).await,
            Target::Status => status::serve(ex),
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
    /// `/echo`, `/status`, and `files` for every other path.
    pub fn builtin(files: StaticFiles) -> RouteTable {
        RouteTable {
            exact: vec![
                ("/echo".to_string(), Target::Echo),
                ("/status".to_string(), Target::Status),
            ],
            prefixes: Vec::new(),
            fallback: Target::Files(files),
        }
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
