//! Redirects and rewrites ([docs/redirects.md]): the rules of
//! `[[redirects]]`, `[[rewrites]]` and a site's `_redirects` file, applied
//! to a request's path before it is routed.
//!
//! - Before routing, in order: the config's redirects, its rewrites, then
//!   the `_redirects` file's first matching rule if it is forced (`!`). A
//!   rewrite gives the request another path and the rules run again on
//!   it; a redirect answers at once. More than [`MAX_REWRITES`] rewrites
//!   is a loop: 500, and a line on stderr.
//! - An unforced `_redirects` rule is Netlify's "shadowed" one: it applies
//!   only when no file answers the path, so the static files ask
//!   [`Rules::on_miss`] when their lookup finds nothing (one lookup: the
//!   check and the file served are the same).
//!
//! [docs/redirects.md]: ../../docs/redirects.md

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::config::{Action, PathRule, MAX_REWRITES};
use crate::http::Request;

use super::static_files::resolved_path;
use super::{Exchange, Outcome, Service, ServiceFuture, Target};

/// Every rule a site has: the config's and its `_redirects` file's.
#[derive(Default)]
pub struct Rules {
    /// `[[redirects]]` then `[[rewrites]]`: always applied.
    config: Vec<PathRule>,
    /// The `_redirects` file's, in its order.
    netlify: Vec<PathRule>,
}

/// What the rules make of a request before routing.
pub enum Ruled {
    /// Nothing: route the request as it came.
    Pass,
    /// Route this request instead (another path); a `status` of 404 serves
    /// its file with that status.
    Rewritten {
        /// The request with its new target.
        req: Box<Request>,
        /// 200, or 404 (Netlify's custom 404 page).
        status: u16,
    },
    /// Answered by this (a redirect, or the 500 of a loop).
    Answer(Target),
}

impl Ruled {
    /// The request to route, if the rules changed it.
    pub fn request(&self) -> Option<&Request> {
        match self {
            Ruled::Rewritten { req, .. } => Some(req),
            _ => None,
        }
    }

    /// The status a rewrite asks the file to be served with, if not 200.
    pub fn status(&self) -> Option<u16> {
        match self {
            Ruled::Rewritten { status, .. } if *status != 200 => Some(*status),
            _ => None,
        }
    }

    /// What answers instead of the route, if anything.
    pub fn answer(&self) -> Option<&Target> {
        match self {
            Ruled::Answer(target) => Some(target),
            _ => None,
        }
    }
}

/// One rule applied to a path.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Answer this status with this `Location`.
    Redirect(u16, String),
    /// Serve this target (path and query) with this status (200 or 404).
    Rewrite(String, u16),
}

impl Rules {
    /// The config's rules and a `_redirects` file's.
    pub fn new(config: &crate::config::StaticConfig, netlify: Vec<PathRule>) -> Rules {
        let mut rules = config.redirects.clone();
        rules.extend(config.rewrites.iter().cloned());
        Rules {
            config: rules,
            netlify,
        }
    }

    /// Whether there is no rule at all.
    pub fn is_empty(&self) -> bool {
        self.config.is_empty() && self.netlify.is_empty()
    }

    /// Whether the `_redirects` file gave any rule.
    pub fn has_netlify(&self) -> bool {
        !self.netlify.is_empty()
    }

    /// The rules before routing (see the module's doc).
    pub fn apply(&self, req: &Request) -> Ruled {
        if (self.config.is_empty() && self.netlify.is_empty()) || !req.target.starts_with('/') {
            return Ruled::Pass;
        }
        let mut target: Option<String> = None;
        for round in 0..=MAX_REWRITES {
            let current = target.as_deref().unwrap_or(&req.target);
            let (path, query) = split(current);
            match self.first(path, query, true) {
                None => break,
                Some(Step::Redirect(status, location)) => {
                    return Ruled::Answer(Target::Mounted(Arc::new(RuleRedirect {
                        status,
                        location,
                    })))
                }
                Some(Step::Rewrite(_, _)) if round == MAX_REWRITES => {
                    return Ruled::Answer(Target::Mounted(Arc::new(RewriteLoop)));
                }
                Some(Step::Rewrite(next, 404)) => {
                    return Ruled::Rewritten {
                        req: Box::new(req.with_target(next)),
                        status: 404,
                    }
                }
                Some(Step::Rewrite(next, _)) => target = Some(next),
            }
        }
        match target {
            Some(next) => Ruled::Rewritten {
                req: Box::new(req.with_target(next)),
                status: 200,
            },
            None => Ruled::Pass,
        }
    }

    /// For a path no file answers: the first `_redirects` rule matching
    /// it, forced or not.
    pub fn on_miss(&self, path: &str, query: Option<&str>) -> Option<Step> {
        let path = resolved_path(path).ok()?;
        let path = path.as_ref();
        let (rule, captures) = self
            .netlify
            .iter()
            .find_map(|rule| Some((rule, rule.from.matches(path)?)))?;
        Some(step(rule, &captures, query))
    }

    /// Whether some `_redirects` rule takes `path` when no file does.
    pub fn takes_miss(&self, path: &str) -> bool {
        let Ok(path) = resolved_path(path) else {
            return false;
        };
        self.netlify.iter().any(|r| r.from.matches(&path).is_some())
    }

    /// The first rule matching before routing: a config rule, else the
    /// `_redirects` file's first match if forced. Rules match the path
    /// as the files resolve it (escapes decoded, dot-segments and `//`
    /// resolved), so no spelling of a path reaches its file past a rule;
    /// a path the files refuse (a bad or encoded `/` or NUL escape, not
    /// UTF-8) matches none, and is refused as it would be without rules.
    fn first(&self, path: &str, query: Option<&str>, routing: bool) -> Option<Step> {
        let path = resolved_path(path).ok()?;
        let path = path.as_ref();
        for rule in &self.config {
            if let Some(captures) = rule.from.matches(path) {
                return Some(step(rule, &captures, query));
            }
        }
        let (rule, captures) = self
            .netlify
            .iter()
            .find_map(|rule| Some((rule, rule.from.matches(path)?)))?;
        (rule.force || !routing).then(|| step(rule, &captures, query))
    }
}

fn step(rule: &PathRule, captures: &crate::config::Captures<'_>, query: Option<&str>) -> Step {
    let to = rule.destination(captures, query);
    match rule.action {
        Action::Redirect(status) => Step::Redirect(status, same_site(to)),
        Action::Rewrite => Step::Rewrite(to, 200),
        Action::NotFound => Step::Rewrite(to, 404),
    }
}

/// A `Location` built from a request's path never leaves the site: a
/// capture starting with `/` would make `/:splat` a `//host` URL.
fn same_site(location: String) -> String {
    let rest = location.trim_start_matches(['/', '\\']);
    match location.len() - rest.len() > 1 {
        true => format!("/{rest}"),
        false => location,
    }
}

/// A target as its path and its query.
pub fn split(target: &str) -> (&str, Option<&str>) {
    match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    }
}

/// A rule's redirect.
struct RuleRedirect {
    status: u16,
    location: String,
}

impl Service for RuleRedirect {
    fn serve<'a>(&'a self, ex: &'a mut Exchange<'_>) -> ServiceFuture<'a> {
        ServiceFuture::new(async move { redirect(ex, self.status, &self.location, &[]) })
    }
}

/// Answers a redirect to `location`, with `more` head lines (CORS).
pub(crate) fn redirect(ex: &mut Exchange<'_>, status: u16, location: &str, more: &[u8]) -> Outcome {
    ex.consume_preamble();
    let body = format!("Moved to {location}\n");
    let fields = [("Location", location)];
    let head = crate::http::Head {
        extra_lines: &[more],
        ..ex.head(status, None, Some("text/plain; charset=utf-8"), &fields)
    };
    ex.respond_with(&head, body.as_bytes())
}

/// The 500 of a request rewritten more than [`MAX_REWRITES`] times.
struct RewriteLoop;

impl Service for RewriteLoop {
    fn serve<'a>(&'a self, ex: &'a mut Exchange<'_>) -> ServiceFuture<'a> {
        ServiceFuture::new(async move { rewrite_loop(ex) })
    }
}

/// Logs the loop (at most a line a second) and answers 500.
pub(crate) fn rewrite_loop(ex: &mut Exchange<'_>) -> Outcome {
    static LAST: AtomicU64 = AtomicU64::new(0);
    static HELD: AtomicU64 = AtomicU64::new(0);
    let second = ex.ctx.started.elapsed().as_secs() + 1;
    let last = LAST.load(Ordering::Relaxed);
    if last != second
        && LAST
            .compare_exchange(last, second, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        let held = HELD.swap(0, Ordering::Relaxed);
        let also = match held {
            0 => String::new(),
            n => format!(" ({n} more since the last line)"),
        };
        eprintln!(
            "conveyor: {} was rewritten {MAX_REWRITES} times and would be again: a loop in \
             [[rewrites]] or _redirects; answered 500{also}",
            ex.req.path()
        );
    } else {
        HELD.fetch_add(1, Ordering::Relaxed);
    }
    ex.error(500, "internal rewrite loop", &[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{redirects_file, Config};

    fn rules(toml: &str, netlify: &str) -> Rules {
        let config = Config::from_toml_str(toml).unwrap();
        Rules::new(&config.static_files, redirects_file(netlify).unwrap())
    }

    fn req(target: &str) -> Request {
        let text = format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n");
        crate::http::parse_request(text.as_bytes(), &Default::default())
            .unwrap()
            .unwrap()
    }

    fn outcome(rules: &Rules, target: &str) -> String {
        match rules.apply(&req(target)) {
            Ruled::Pass => "pass".into(),
            Ruled::Rewritten { req, status } => format!("{status} {}", req.target),
            Ruled::Answer(_) => "answer".into(),
        }
    }

    #[test]
    fn rewrites_chain_and_loops_are_cut_off() {
        let r = rules(
            r#"
            [[rewrites]]
            from = "/a/*"
            to = "/b/:splat"
            [[rewrites]]
            from = "/b/*"
            to = "/c/:splat"
            "#,
            "/x/* /y/:splat 200!\n/y/* /z/:splat 200\n/n/* /404.html 404!\n",
        );
        assert_eq!(outcome(&r, "/a/1?q=2"), "200 /c/1?q=2");
        assert_eq!(
            outcome(&r, "/x/1"),
            "200 /y/1",
            "an unforced rule waits for a miss"
        );
        assert_eq!(outcome(&r, "/n/1"), "404 /404.html");
        assert_eq!(outcome(&r, "/other"), "pass");
        assert_eq!(
            r.on_miss("/y/1", Some("q")),
            Some(Step::Rewrite("/z/1?q".into(), 200))
        );
        // A loop the load-time check cannot see: captures change each round.
        let looped = rules(
            r#"
            [[rewrites]]
            from = "/x/*"
            to = "/y/:splat"
            [[rewrites]]
            from = "/y/b/*"
            to = "/x/b/:splat"
            "#,
            "",
        );
        assert_eq!(outcome(&looped, "/x/a"), "200 /y/a");
        assert_eq!(outcome(&looped, "/x/b/1"), "answer");
    }

    #[test]
    fn rules_match_the_path_as_the_files_resolve_it() {
        let r = rules(
            r#"
            [[rewrites]]
            from = "/old/*"
            to = "/new/:splat"
            [[rewrites]]
            from = "/café"
            to = "/cafe.html"
            "#,
            "/n/:slug /m/:slug 200!\n",
        );
        for spelling in ["/old/page", "/%6Fld/page", "/x/../old/page", "//old/./page"] {
            assert_eq!(outcome(&r, spelling), "200 /new/page", "{spelling}");
        }
        assert_eq!(outcome(&r, "/caf%C3%A9?q"), "200 /cafe.html?q");
        assert_eq!(outcome(&r, "/café"), "200 /cafe.html");
        // Captures are decoded text, escaped again in the target.
        assert_eq!(
            outcome(&r, "/old/a%20b%3Fc%25d/%C3%A9"),
            "200 /new/a%20b%3Fc%25d/%C3%A9"
        );
        assert_eq!(outcome(&r, "/%6E/x%23y"), "200 /m/x%23y");
        // The files refuse these (400): no rule takes them.
        for refused in ["/old%2Fpage", "/old/%00", "/old/%zz", "/old/%FF"] {
            assert_eq!(outcome(&r, refused), "pass", "{refused}");
        }
        assert_eq!(outcome(&r, "/../old/x"), "200 /new/x", "as the files: /x");
    }

    #[test]
    fn redirect_locations_stay_on_the_site() {
        assert_eq!(same_site("//evil.example/x".into()), "/evil.example/x");
        assert_eq!(same_site("/\\evil.example".into()), "/evil.example");
        assert_eq!(same_site("/fine".into()), "/fine");
        assert_eq!(same_site("https://a.example/".into()), "https://a.example/");
    }
}
