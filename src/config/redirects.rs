//! `[[redirects]]` and `[[rewrites]]`: a request path pattern
//! ([`PathPattern`]), a destination that may name its captures
//! ([`Template`]), and what to do: answer a redirect, or serve another
//! path internally. The Netlify `_redirects` file gives the same rules
//! (`netlify.rs`).

use crate::http::uri::escape_path;
use toml::Value;

use super::pattern::{Captures, PathPattern};
use super::value::{array_of_tables, show, string, Parsed};

/// Internal rewrites one request may go through; one more is a loop,
/// answered 500 (nginx's limit of 10 cycles).
pub const MAX_REWRITES: usize = 10;

/// One rule: `from` → `to`, and what to do.
#[derive(Debug, Clone, PartialEq)]
pub struct PathRule {
    /// `from`: the request paths the rule takes.
    pub from: PathPattern,
    /// `to`: where they go, with the captures of `from` put in.
    pub to: Template,
    /// What the rule does.
    pub action: Action,
    /// `query`: the request's query string goes on to `to` ("keep", the
    /// default) or is dropped.
    pub keep_query: bool,
    /// Applies even when a file exists at the path (Netlify's `!`); the
    /// config's rules always are.
    pub force: bool,
    /// The line of a `_redirects` rule, for messages; 0 for the config's.
    pub line: usize,
}

/// What a rule does with a request it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Answers this redirect status (301, 302, 303, 307, 308) to `to`.
    Redirect(u16),
    /// Serves `to` instead, with its own status (200 for a file).
    Rewrite,
    /// Serves the file at `to` with status 404 (Netlify's custom 404).
    NotFound,
}

impl PathRule {
    /// Whether it serves another path internally (no answer of its own).
    pub fn rewrites(&self) -> bool {
        !matches!(self.action, Action::Redirect(_))
    }

    /// `to` for a match of `from`, with the request's `query` kept if the
    /// rule keeps it: a path (or a URL, for redirects) and query.
    pub fn destination(&self, captures: &Captures<'_>, query: Option<&str>) -> String {
        let mut out = self.to.fill(captures);
        if let Some(query) = query.filter(|q| self.keep_query && !q.is_empty()) {
            out.push(if out.contains('?') { '&' } else { '?' });
            out.push_str(query);
        }
        out
    }
}

/// A destination: text with `:name` (a capture of `from`) and `:splat`.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    text: String,
    parts: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Lit(String),
    Capture(String),
}

impl Template {
    /// Reads `to`, each `:name` checked against what `from` captures.
    pub fn parse(to: &str, from: &PathPattern) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut rest = to;
        while let Some(at) = rest.find(':') {
            lit.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            let len = ident_len(after);
            if len == 0 {
                lit.push(':');
                rest = after;
                continue;
            }
            let name = &after[..len];
            if !from.has_capture(name) {
                let hint = match name {
                    "splat" => "add a \"*\" to from".to_string(),
                    _ => format!("add a segment \":{name}\" to from, or take :{name} out of to"),
                };
                return Err(format!(
                    "to = {to:?} uses :{name}, which from = {:?} does not capture; {hint}",
                    from.as_str()
                ));
            }
            if !lit.is_empty() {
                parts.push(Piece::Lit(std::mem::take(&mut lit)));
            }
            parts.push(Piece::Capture(name.to_string()));
            rest = &after[len..];
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            parts.push(Piece::Lit(lit));
        }
        Ok(Template {
            text: to.to_string(),
            parts,
        })
    }

    /// As written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether it names no capture.
    pub fn is_literal(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Piece::Lit(_)))
    }

    /// The text with the captures put in. A capture is decoded text (the
    /// rules match the path as the files resolve it), so it goes in
    /// escaped again: `?`, `#`, `%` or a space in it never makes the
    /// result something else than a path (see `escape_path`).
    pub fn fill(&self, captures: &Captures<'_>) -> String {
        let mut out = String::with_capacity(self.text.len() + 16);
        for part in &self.parts {
            match part {
                Piece::Lit(lit) => out.push_str(lit),
                Piece::Capture(name) => escape_path(&mut out, captures.get(name).unwrap_or("")),
            }
        }
        out
    }

    /// The text with every capture made `x`: what a load-time loop check
    /// follows.
    fn sample(&self) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Piece::Lit(lit) => out.push_str(lit),
                Piece::Capture(_) => out.push('x'),
            }
        }
        out
    }
}

/// Placeholder names: a letter or `_`, then letters, digits, `_`.
pub(crate) fn ident_len(s: &str) -> usize {
    let mut len = 0;
    for (i, c) in s.char_indices() {
        let ok = c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit());
        if !ok {
            break;
        }
        len = i + c.len_utf8();
    }
    len
}

/// Checks a destination: a path on this server (rewrites, and 404
/// pages), or for redirects also an `http(s)://` URL.
pub(crate) fn check_to(to: &str, action: Action) -> Result<(), String> {
    let url = to.starts_with("https://") || to.starts_with("http://");
    if to.is_empty() {
        return Err("has an empty to; write a path like \"/new/:splat\"".into());
    }
    if let Some(c) = to
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || *c == '#')
    {
        return Err(format!(
            "to = {to:?} holds {c:?}; write a path or URL without it"
        ));
    }
    match action {
        Action::Redirect(_) if url || to.starts_with('/') => Ok(()),
        Action::Redirect(_) => Err(format!(
            "to = {to:?} is neither a path (\"/new\") nor a URL (\"https://example.com/new\")"
        )),
        _ if url => Err(format!(
            "to = {to:?} is a URL: a rewrite serves a path of this site (proxying to another \
             server is not supported); write a path like \"/index.html\", or make it a redirect"
        )),
        _ if to.starts_with('/') && !to.starts_with("//") => Ok(()),
        _ => Err(format!(
            "to = {to:?} is not a path of this site; write one like \"/index.html\""
        )),
    }
}

const REDIRECT_FIX: &str = "write each rule as [[redirects]] with from = \"/old/*\", \
                            to = \"/new/:splat\" and optionally status = 301 (301, 302, 303, \
                            307 or 308; default 308) and query = \"drop\"";
const REWRITE_FIX: &str = "write each rule as [[rewrites]] with from = \"/blog/:slug\" and \
                           to = \"/posts/:slug.html\"";

/// `[[redirects]]`: an array of tables.
pub(crate) fn redirect_rules(v: &Value) -> Parsed<Vec<PathRule>> {
    let known = ["from", "to", "status", "query"];
    array_of_tables(v, "rule", &known, REDIRECT_FIX, |t| {
        let status = match t.get("status") {
            None => 308,
            Some(Value::Integer(s @ (301 | 302 | 303 | 307 | 308))) => *s as u16,
            Some(other) => {
                return Err(format!(
                    "has status = {}; a redirect is 301, 302, 303, 307 or 308 (308, the \
                     default, keeps the method; for serving another path use [[rewrites]])",
                    show(other)
                ))
            }
        };
        path_rule(t, Action::Redirect(status), REDIRECT_FIX)
    })
}

/// `[[rewrites]]`: an array of tables. Refused when a chain of them
/// visibly comes back to where it started.
pub(crate) fn rewrite_rules(v: &Value) -> Parsed<Vec<PathRule>> {
    let known = ["from", "to", "query"];
    let rules = array_of_tables(v, "rule", &known, REWRITE_FIX, |t| {
        path_rule(t, Action::Rewrite, REWRITE_FIX)
    })?;
    match visible_loop(&rules, |i| format!("(rule {})", i + 1)) {
        Some(why) => Err(format!("{why}; change to (or from) so the chain ends")),
        None => Ok(rules),
    }
}

fn path_rule(t: &toml::Table, action: Action, fix: &str) -> Parsed<PathRule> {
    let (Some(from), Some(to)) = (t.get("from"), t.get("to")) else {
        return Err(format!("needs from and to; {fix}"));
    };
    let from = PathPattern::parse(string(from).map_err(|why| format!("from {why}"))?)
        .map_err(|why| format!("from {why}"))?;
    let to = string(to).map_err(|why| format!("to {why}"))?;
    check_to(to, action)?;
    let to = Template::parse(to, &from)?;
    let keep_query = match t.get("query").map(string).transpose()? {
        None | Some("keep") => true,
        Some("drop") => false,
        Some(other) => {
            return Err(format!(
                "has query = {other:?}; write query = \"keep\" (the default) or \"drop\""
            ))
        }
    };
    Ok(PathRule {
        from,
        to,
        action,
        keep_query,
        force: true,
        line: 0,
    })
}

/// A chain of rewrites that comes back to a rule it went through, as far
/// as it can be seen before any request: each rule's `to` (captures made
/// `x`) is followed through the first rule it matches. Only forced rules
/// count (an unforced one is skipped where a file exists); a redirect
/// ends the chain. `label` names the rule at an index in the message.
pub(crate) fn visible_loop(rules: &[PathRule], label: impl Fn(usize) -> String) -> Option<String> {
    let live: Vec<(usize, &PathRule)> = rules.iter().enumerate().filter(|(_, r)| r.force).collect();
    for &(start, rule) in live.iter().filter(|(_, r)| r.action == Action::Rewrite) {
        let mut seen = vec![start];
        let mut path = rule.to.sample();
        for _ in 0..=MAX_REWRITES {
            let path_only = path.split('?').next().unwrap_or("").to_string();
            let Some(&(next, hit)) = live
                .iter()
                .find(|(_, r)| r.from.matches(&path_only).is_some())
            else {
                break;
            };
            if hit.action != Action::Rewrite {
                break;
            }
            if seen.contains(&next) {
                return Some(format!(
                    "{} from = {:?} to = {:?} is a loop: {:?} is rewritten again by \
                     {} from = {:?}, and the chain comes back",
                    label(start),
                    rule.from.as_str(),
                    rule.to.as_str(),
                    path_only,
                    label(next),
                    hit.from.as_str()
                ));
            }
            seen.push(next);
            path = hit.to.sample();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn val(text: &str) -> Value {
        let t: toml::Table = format!("v = {text}").parse().unwrap();
        t["v"].clone()
    }

    #[test]
    fn case_counts_unless_the_pattern_ignores_it() {
        let exact = PathPattern::parse("/Blog/:slug/*.PDF").unwrap();
        assert!(exact.matches("/Blog/x/a.PDF").is_some());
        assert!(exact.matches("/blog/x/a.pdf").is_none());
        let folded = exact.clone().ignoring_case();
        let c = folded.matches("/BLOG/Hello/Dir/A.pdf").unwrap();
        // Captures keep the path's own case.
        assert_eq!(
            (c.get("slug"), c.get("splat")),
            (Some("Hello"), Some("Dir/A"))
        );
        assert!(folded.matches("/blogs/x/a.pdf").is_none());
        // Only ASCII letters fold; other characters match exactly, and a
        // multi-byte path never splits a character.
        let accent = PathPattern::parse("/Café/*").unwrap().ignoring_case();
        assert!(accent.matches("/CAFé/x").is_some());
        assert!(accent.matches("/CAFÉ/x").is_none());
        let tail = PathPattern::parse("/*é").unwrap().ignoring_case();
        assert!(tail.matches("/ééé").is_some());
        assert!(tail.matches("/x\u{e9}\u{301}").is_none());
    }

    #[test]
    fn pattern_escapes_are_decoded_as_paths_are() {
        let escaped = PathPattern::parse("/caf%C3%A9/%2A/*").unwrap();
        assert_eq!(escaped.as_str(), "/caf%C3%A9/%2A/*", "shown as written");
        let c = escaped.matches("/café/*/x").unwrap();
        assert_eq!(c.get("splat"), Some("x"));
        assert!(
            escaped.matches("/caf%C3%A9/*/x").is_none(),
            "paths come decoded"
        );
        for bad in ["/a%2Fb", "/a%00", "/a%zz", "/a%FF", "/a%5C"] {
            let e = PathPattern::parse(bad).unwrap_err();
            assert!(e.contains("write the character itself"), "{bad}: {e}");
        }
    }

    #[test]
    fn patterns_capture_placeholders_and_the_splat() {
        let p = PathPattern::parse("/blog/:year/:slug").unwrap();
        let c = p.matches("/blog/2024/hello").unwrap();
        assert_eq!(
            (c.get("year"), c.get("slug")),
            (Some("2024"), Some("hello"))
        );
        assert!(p.matches("/blog/2024/hello/").is_some(), "a trailing slash");
        assert!(p.matches("/blog/2024").is_none());
        assert!(
            p.matches("/blog//x").is_none(),
            "a placeholder is not empty"
        );
        assert!(p.matches("/blog/2024/hello/more").is_none());
        let s = PathPattern::parse("/old/*").unwrap();
        assert_eq!(
            s.matches("/old/a/b.html").unwrap().get("splat"),
            Some("a/b.html")
        );
        assert_eq!(s.matches("/old/").unwrap().get("splat"), Some(""));
        assert!(s.matches("/older").is_none());
        let mid = PathPattern::parse("/:lang/docs/*/index.html").unwrap();
        let c = mid.matches("/en/docs/a/b/index.html").unwrap();
        assert_eq!((c.get("lang"), c.get("splat")), (Some("en"), Some("a/b")));
        let ext = PathPattern::parse("/files/*.pdf").unwrap();
        assert_eq!(
            ext.matches("/files/x/y.pdf").unwrap().get("splat"),
            Some("x/y")
        );
        assert!(ext.matches("/files/.pdf").is_some());
        assert!(ext.matches("/files/x.pdfx").is_none());
        let tail = PathPattern::parse("/*/:page").unwrap();
        let c = tail.matches("/a/b/c").unwrap();
        assert_eq!((c.get("splat"), c.get("page")), (Some("a/b"), Some("c")));
        assert!(PathPattern::parse("/a:b")
            .unwrap()
            .matches("/a:b")
            .is_some());
        assert!(PathPattern::parse("/é/*")
            .unwrap()
            .matches("/é/x")
            .is_some());
        // Linear: a long path of near-misses costs one pass.
        let path = format!("/{}", "a/".repeat(50_000));
        assert!(PathPattern::parse("/*/:x/b")
            .unwrap()
            .matches(&path)
            .is_none());
        for bad in [
            "", "old", "/a/*/b/*", "/:a/:a", "/:", "/:a-b", "/a?b", "/a b", "/:splat",
        ] {
            assert!(PathPattern::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rules_read_with_defaults_and_refuse_with_the_fix() {
        let r = redirect_rules(&val(
            r#"[{ from = "/old/*", to = "/new/:splat" }, { from = "/a", to = "https://x.example/b?c=1", status = 301, query = "drop" }]"#,
        ))
        .unwrap();
        assert_eq!(r[0].action, Action::Redirect(308));
        let caps = r[0].from.matches("/old/x/y").unwrap();
        assert_eq!(r[0].destination(&caps, Some("q=1")), "/new/x/y?q=1");
        let caps = r[1].from.matches("/a").unwrap();
        assert_eq!(
            r[1].destination(&caps, Some("q=1")),
            "https://x.example/b?c=1"
        );
        for (bad, says) in [
            (
                r#"[{ from = "/a", to = "/b", status = 200 }]"#,
                "use [[rewrites]]",
            ),
            (
                r#"[{ from = "/a", to = "/b", status = 404 }]"#,
                "301, 302, 303, 307 or 308",
            ),
            (
                r#"[{ from = "/a/:x", to = "/b/:y" }]"#,
                ":y, which from = \"/a/:x\"",
            ),
            (
                r#"[{ from = "/a", to = "/b/:splat" }]"#,
                "add a \"*\" to from",
            ),
            (r#"[{ from = "", to = "/b" }]"#, "from is empty"),
            (r#"[{ to = "/b" }]"#, "needs from and to"),
            (r#"[{ from = "/a", to = "b" }]"#, "neither a path"),
            (
                r#"[{ from = "/a", to = "/b", query = "no" }]"#,
                "query = \"keep\"",
            ),
            (r#"[{ from = "/a", to = "/b", state = 1 }]"#, "unknown key"),
        ] {
            let e = redirect_rules(&val(bad)).unwrap_err();
            assert!(e.contains(says) && e.starts_with("(rule 1)"), "{bad}: {e}");
        }
        let e = rewrite_rules(&val(r#"[{ from = "/a", to = "https://x.example/" }]"#)).unwrap_err();
        assert!(e.contains("proxying"), "{e}");
    }

    #[test]
    fn visible_loops_are_refused_at_load() {
        for (rules, looped) in [
            (r#"[{ from = "/*", to = "/index.html" }]"#, true),
            (r#"[{ from = "/a/*", to = "/a/x/:splat" }]"#, true),
            (
                r#"[{ from = "/a", to = "/b" }, { from = "/b", to = "/a" }]"#,
                true,
            ),
            (
                r#"[{ from = "/a", to = "/b" }, { from = "/b", to = "/c" }]"#,
                false,
            ),
            (r#"[{ from = "/app/*", to = "/index.html" }]"#, false),
        ] {
            let got = rewrite_rules(&val(rules));
            assert_eq!(got.is_err(), looped, "{rules}: {got:?}");
            if let Err(e) = got {
                assert!(
                    e.contains("is a loop") && e.contains("so the chain ends"),
                    "{e}"
                );
            }
        }
    }
}
