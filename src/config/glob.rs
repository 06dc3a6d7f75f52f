//! Path globs for `[[headers]]` rules: `*` (any characters but `/`), `**`
//! (any characters, `/` included; `**/` also matches nothing), `?` (one
//! character but `/`), `{a,b}` (either). A pattern without `/` matches the
//! file name wherever the file is (as .gitignore does); one with `/` matches
//! the whole path beneath the root (`/*.css`: only at the top).
//!
//! Matching is a table over (pattern position, path position): linear in
//! their product, so no path a client sends can make it backtrack.

use std::fmt;

/// A compiled glob; compared and shown as the pattern it was written as.
#[derive(Clone)]
pub struct Glob {
    pattern: String,
    /// `{a,b}` expanded: the path matches if any alternative does.
    alternatives: Vec<Vec<Tok>>,
    /// No `/` in the pattern: match the last segment only.
    name_only: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Tok {
    Char(char),
    /// `?`
    One,
    /// `*`
    Star,
    /// `**`
    Deep,
    /// `**/`: nothing, or anything ending in `/`.
    DeepDir,
}

/// Alternatives a pattern may expand to; more is refused (a typo, or a trap).
const MAX_ALTERNATIVES: usize = 64;

impl Glob {
    /// Compiles `pattern`, or says what is wrong with it.
    pub fn parse(pattern: &str) -> Result<Glob, String> {
        if pattern.is_empty() {
            return Err("is empty; write a glob like \"*.html\" or \"assets/**\"".into());
        }
        let body = pattern.strip_prefix('/').unwrap_or(pattern);
        let expanded = expand(body)?;
        let alternatives = expanded.iter().map(|p| tokens(p)).collect();
        Ok(Glob {
            pattern: pattern.to_string(),
            alternatives,
            name_only: !pattern.contains('/'),
        })
    }

    /// Whether `path` (beneath the root, with or without a leading `/`) matches.
    pub fn matches(&self, path: &str) -> bool {
        let path = path.strip_prefix('/').unwrap_or(path);
        let subject = match self.name_only {
            true => path.rsplit('/').next().unwrap_or(path),
            false => path,
        };
        let chars: Vec<char> = subject.chars().collect();
        self.alternatives.iter().any(|toks| matches(toks, &chars))
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }
}

impl PartialEq for Glob {
    fn eq(&self, other: &Glob) -> bool {
        self.pattern == other.pattern
    }
}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.pattern)
    }
}

/// Expands `{a,b}` groups (nested too) into plain patterns.
fn expand(pattern: &str) -> Result<Vec<String>, String> {
    let Some(open) = pattern.find('{') else {
        if pattern.contains('}') {
            return Err("has a '}' without its '{'".into());
        }
        return Ok(vec![pattern.to_string()]);
    };
    let (prefix, rest) = pattern.split_at(open);
    if prefix.contains('}') {
        return Err("has a '}' without its '{'".into());
    }
    // The matching '}' and the top-level commas of the group.
    let mut depth = 0;
    let mut parts = Vec::new();
    let mut start = 1;
    let mut close = None;
    for (i, c) in rest.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    parts.push(&rest[start..i]);
                    close = Some(i);
                    break;
                }
            }
            ',' if depth == 1 => {
                parts.push(&rest[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    let close = close.ok_or("has a '{' without its '}'")?;
    let suffixes = expand(&rest[close + 1..])?;
    let mut out = Vec::new();
    for part in parts {
        for inner in expand(part)? {
            for suffix in &suffixes {
                out.push(format!("{prefix}{inner}{suffix}"));
                if out.len() > MAX_ALTERNATIVES {
                    return Err(format!(
                        "expands to more than {MAX_ALTERNATIVES} alternatives"
                    ));
                }
            }
        }
    }
    Ok(out)
}

fn tokens(pattern: &str) -> Vec<Tok> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' if chars.get(i + 1) == Some(&'*') => {
                i += 2;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                    out.push(Tok::DeepDir);
                } else {
                    out.push(Tok::Deep);
                }
                continue;
            }
            '*' => out.push(Tok::Star),
            '?' => out.push(Tok::One),
            c => out.push(Tok::Char(c)),
        }
        i += 1;
    }
    out
}

/// `can[t][p]`: tokens `t..` match characters `p..`.
fn matches(toks: &[Tok], path: &[char]) -> bool {
    let width = path.len() + 1;
    let mut can = vec![false; (toks.len() + 1) * width];
    can[toks.len() * width + path.len()] = true;
    for t in (0..toks.len()).rev() {
        // For `**/`: some '/' at or after p is followed by a match.
        let mut slash_then_next = false;
        for p in (0..=path.len()).rev() {
            let next = |q: usize| can[(t + 1) * width + q];
            let here = |q: usize| can[t * width + q];
            let c = path.get(p).copied();
            can[t * width + p] = match toks[t] {
                Tok::Char(want) => c == Some(want) && next(p + 1),
                Tok::One => c.is_some_and(|c| c != '/') && next(p + 1),
                Tok::Star => next(p) || (c.is_some_and(|c| c != '/') && here(p + 1)),
                Tok::Deep => next(p) || (c.is_some() && here(p + 1)),
                Tok::DeepDir => {
                    slash_then_next |= c == Some('/') && next(p + 1);
                    next(p) || slash_then_next
                }
            };
        }
    }
    can[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, path: &str) -> bool {
        Glob::parse(pattern).unwrap().matches(path)
    }

    #[test]
    fn stars_questions_and_braces() {
        assert!(m("*.html", "/index.html"));
        assert!(m("*.html", "/docs/deep/page.html"), "no '/': the name");
        assert!(!m("*.html", "/index.htm"));
        assert!(m("/*.css", "/text.css"));
        assert!(!m("/*.css", "/a/text.css"), "'*' stops at '/'");
        assert!(m("assets/**", "/assets/a/b/c.js"));
        assert!(!m("assets/**", "/other/a.js"));
        assert!(m("**/*.js", "/a.js"));
        assert!(m("**/*.js", "/x/y/a.js"));
        assert!(m("a/**/b", "/a/b"));
        assert!(m("a/**/b", "/a/x/y/b"));
        assert!(m("file?.txt", "/file1.txt"));
        assert!(!m("file?.txt", "/file10.txt"));
        assert!(m("*.{html,json}", "/x.json"));
        assert!(m("*.{html,json}", "/x.html"));
        assert!(!m("*.{html,json}", "/x.css"));
        assert!(m("{a,b{c,d}}.txt", "/bd.txt"));
        assert!(m("é?.txt", "/éx.txt"));
    }

    #[test]
    fn bad_patterns_are_refused_and_long_paths_are_cheap() {
        assert!(Glob::parse("").is_err());
        assert!(Glob::parse("*.{html").is_err());
        assert!(Glob::parse("a}").is_err());
        assert!(Glob::parse("{a,b}{c,d}{e,f}{g,h}{i,j}{k,l}{m,n}").is_err());
        let path = format!("/{}", "a*".repeat(4000));
        assert!(!m("**/*a*a*a*a*a*a*a*a*b", &path));
    }
}
