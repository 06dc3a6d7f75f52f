//! The `_redirects` and `_headers` files of Netlify and Cloudflare Pages,
//! read into the same rules as `[[redirects]]`, `[[rewrites]]` and
//! `[[headers]]`. What the formats hold that this server does not do
//! (proxying to other hosts, conditions on country or role, matching on
//! the query or the host) is refused with the line and the reason, never
//! silently ignored.

use super::glob::Glob;
use super::pattern::PathPattern;
use super::redirects::{check_to, visible_loop, Action, PathRule, Template};
use super::site::{check_rule_field, HeaderRule};

/// The file names, at the root of the site.
pub const REDIRECTS_FILE: &str = "_redirects";
/// See [`REDIRECTS_FILE`].
pub const HEADERS_FILE: &str = "_headers";

/// Reads a `_redirects` file: `from to [status][!]` a line, `#` comments.
/// The error names the line and the fix.
pub fn redirects_file(text: &str) -> Result<Vec<PathRule>, String> {
    let mut rules: Vec<PathRule> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split_once('#').map_or(line, |(before, _)| before);
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() {
            continue;
        }
        let mut rule = redirect_line(&fields)
            .map_err(|why| format!("{REDIRECTS_FILE} line {}: {why}", n + 1))?;
        rule.line = n + 1;
        rules.push(rule);
    }
    if let Some(why) = visible_loop(&rules, |i| format!("line {}:", rules[i].line)) {
        return Err(format!(
            "{REDIRECTS_FILE}: {why}; drop the \"!\" so a file at the path is served, or change to"
        ));
    }
    Ok(rules)
}

/// One rule's fields.
fn redirect_line(fields: &[&str]) -> Result<PathRule, String> {
    let [from, to, rest @ ..] = fields else {
        return Err("needs a path and a destination, like \"/old/* /new/:splat 301\"".into());
    };
    if from.starts_with("http://") || from.starts_with("https://") || !from.starts_with('/') {
        return Err(format!(
            "{from:?}: only paths are matched (rules on host names are not supported); \
             start it with \"/\""
        ));
    }
    if to.contains('=') && !to.starts_with('/') && !to.starts_with("http") {
        return Err(format!(
            "{to:?}: matching on query parameters is not supported; take it out"
        ));
    }
    let (status, force) = match rest {
        [] => (301, false),
        [status, conditions @ ..] => {
            if let Some(first) = conditions.first() {
                return Err(format!(
                    "{first:?}: conditions (country, language, role, cookies) are not \
                     supported; take them out"
                ));
            }
            let (code, force) = match status.strip_suffix('!') {
                Some(code) => (code, true),
                None => (*status, false),
            };
            let code: u16 = code
                .parse()
                .map_err(|_| format!("{status:?} is not a status; write 301, 302 or 200"))?;
            (code, force)
        }
    };
    let action = match status {
        200 => Action::Rewrite,
        404 => Action::NotFound,
        301 | 302 | 303 | 307 | 308 => Action::Redirect(status),
        _ => {
            return Err(format!(
                "status {status} is not supported; use 200 (rewrite), 301, 302, 303, 307, \
                 308 (redirect) or 404 (serve to with 404)"
            ))
        }
    };
    // Matched whatever the case, as Netlify matches (docs/redirects.md).
    let from = PathPattern::parse(from)
        .map_err(|why| format!("the path {why}"))?
        .ignoring_case();
    check_to(to, action)?;
    let to = Template::parse(to, &from)?;
    Ok(PathRule {
        from,
        to,
        action,
        keep_query: true,
        force,
        line: 0,
    })
}

/// Reads a `_headers` file: a path line, then indented `Name: value`
/// lines (`! Name` removes one, as on Cloudflare Pages). A path matches
/// the file served, as `[[headers]]` rules do: `/blog/*` its files,
/// `/about` and `/about/` the directory's `index` file too.
pub fn headers_file(text: &str, index: &str) -> Result<Vec<HeaderRule>, String> {
    let mut rules: Vec<HeaderRule> = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let at = |why: String| format!("{HEADERS_FILE} line {}: {why}", n + 1);
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if !raw.starts_with([' ', '\t']) {
            rules.push(HeaderRule {
                path: path_glob(line, index).map_err(at)?,
                set: Vec::new(),
                add: Vec::new(),
                remove: Vec::new(),
                errors: false,
            });
            continue;
        }
        let Some(rule) = rules.last_mut() else {
            return Err(at(
                "a header line before any path; start with a path like \"/*\"".into(),
            ));
        };
        if let Some(name) = line.strip_prefix('!') {
            let name = name.trim();
            check_rule_field("remove", name, &rule.path).map_err(at)?;
            rule.remove.push(name.to_string());
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(at(format!("{line:?} is not \"Name: value\"")));
        };
        let (name, value) = (name.trim(), value.trim());
        check_rule_field("set", name, &rule.path).map_err(at)?;
        // Repeated in one block: one field, the values joined.
        match rule
            .set
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some((_, joined)) => {
                joined.push_str(", ");
                joined.push_str(value);
            }
            None => rule.set.push((name.to_string(), value.to_string())),
        }
    }
    Ok(rules)
}

/// A `_headers` path as the glob of the files it covers: `*` any
/// characters (`/` too), `:name` one segment; a directory's path covers
/// its index file.
fn path_glob(path: &str, index: &str) -> Result<Glob, String> {
    if !path.starts_with('/') {
        return Err(format!(
            "{path:?}: only paths are matched (rules on host names are not supported); \
             start it with \"/\""
        ));
    }
    let pattern = PathPattern::parse(path).map_err(|why| format!("the path {why}"))?;
    let mut glob = String::new();
    for segment in pattern.as_str().split('/').skip(1) {
        glob.push('/');
        if segment.starts_with(':') {
            glob.push('*');
            continue;
        }
        for c in segment.chars() {
            match c {
                '*' => glob.push_str("**"),
                '?' | '{' | '}' | ',' | '[' | ']' => {
                    return Err(format!(
                        "{path:?} holds {c:?}, which a path here cannot match"
                    ))
                }
                c => glob.push(c),
            }
        }
    }
    if !glob.ends_with("**") {
        match glob.ends_with('/') {
            true => glob = format!("{glob}{{,{index}}}"),
            false => glob = format!("{glob}{{,/{index}}}"),
        }
    }
    Glob::parse(&glob).map_err(|why| format!("{path:?} {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_file_reads_netlify_lines() {
        let rules = redirects_file(
            "# comment\n\n/old/*   /new/:splat   301\n/news/:year/:slug /blog/:year/:slug\n\
             /app/*  /app/index.html  200\n/shop/* /closed.html 404!  # gone\n",
        )
        .unwrap();
        assert_eq!(rules.len(), 4);
        assert_eq!(rules[0].action, Action::Redirect(301));
        assert_eq!(rules[1].action, Action::Redirect(301), "the default");
        assert!(!rules[1].force);
        assert_eq!(rules[2].action, Action::Rewrite);
        assert_eq!((rules[3].action, rules[3].force), (Action::NotFound, true));
        for (bad, says) in [
            ("/a\n", "line 1: needs a path"),
            ("\n/a /b 418\n", "line 2: status 418"),
            ("/a /b 301 Country=us\n", "conditions"),
            ("/store id=:id /blog/:id 301\n", "query parameters"),
            ("https://a.example/* /b 301\n", "host names"),
            ("/a/* https://b.example/:splat 200\n", "proxying"),
            ("/a /b/:slug\n", ":slug, which from"),
            ("/* /index.html 200!\n", "is a loop"),
        ] {
            let e = redirects_file(bad).unwrap_err();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
        // Unforced: a file at the path shadows it, so not a visible loop.
        assert!(redirects_file("/* /index.html 200\n").is_ok());
    }

    #[test]
    fn headers_file_reads_blocks() {
        let rules = headers_file(
            "/*\n  X-Frame-Options: DENY\n  Link: </a.css>; rel=preload\n  Link: </b.js>; rel=preload\n\
             # c\n/blog/:slug\n\tCache-Control: no-cache\n  ! X-Frame-Options\n",
            "index.html",
        )
        .unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(
            rules[0].set,
            [
                ("X-Frame-Options".into(), "DENY".into()),
                (
                    "Link".into(),
                    "</a.css>; rel=preload, </b.js>; rel=preload".into()
                )
            ]
        );
        assert!(rules[0].path.matches("/a/b/c.css") && rules[0].path.matches("index.html"));
        assert!(
            rules[1].path.matches("blog/post") && rules[1].path.matches("blog/post/index.html")
        );
        assert!(!rules[1].path.matches("blog/a/b"));
        assert_eq!(rules[1].remove, ["X-Frame-Options"]);
        let root = headers_file("/\n  X-Home: 1\n", "index.html").unwrap();
        assert!(root[0].path.matches("index.html") && !root[0].path.matches("a.html"));
        for (bad, says) in [
            ("  X-A: 1\n", "before any path"),
            ("/a\n  nonsense\n", "line 2"),
            ("/a\n  Content-Length: 1\n", "server"),
            ("https://x.example/*\n  X-A: 1\n", "host names"),
        ] {
            let e = headers_file(bad, "index.html").unwrap_err();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
    }
}
