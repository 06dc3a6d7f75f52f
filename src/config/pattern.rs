//! Request-path patterns for `[[redirects]]`, `[[rewrites]]` and the
//! Netlify `_redirects` file, in Netlify's syntax so both share one
//! matcher: `:name` is a placeholder for one whole segment (no `/`, not
//! empty), `*` a splat (any characters, `/` included, maybe none; at most
//! one per pattern, available as `:splat`), anything else literal.
//!
//! Matching is deterministic: the part before the splat is matched from
//! the start, the part after it from the end, each placeholder taking its
//! segment. One pass over the path, whatever it holds: no backtracking.

use std::fmt;

use super::redirects::ident_len;

/// A compiled pattern; compared and shown as written.
#[derive(Clone)]
pub struct PathPattern {
    pattern: String,
    /// Before the splat, or the whole pattern without one.
    head: Vec<Part>,
    /// After the splat; `None`: no splat.
    tail: Option<Vec<Part>>,
    /// Literal text matches whatever its ASCII letters' case (`_redirects`,
    /// as on Netlify); else exactly (the config's rules, as nginx's
    /// `location`).
    fold_case: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Lit(String),
    Param(String),
}

/// What a match captured: placeholders by name, and the splat.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Captures<'p> {
    named: Vec<(&'p str, &'p str)>,
    splat: Option<&'p str>,
}

impl<'p> Captures<'p> {
    /// The text captured for `name` (`splat` for the `*`).
    pub fn get(&self, name: &str) -> Option<&'p str> {
        if name == "splat" {
            return self.splat;
        }
        self.named.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }
}

impl PathPattern {
    /// Compiles `pattern`, or says what is wrong with it.
    pub fn parse(pattern: &str) -> Result<PathPattern, String> {
        if pattern.is_empty() {
            return Err("is empty; write a path like \"/old/*\" or \"/blog/:year/:slug\"".into());
        }
        if !pattern.starts_with('/') {
            return Err(format!(
                "= {pattern:?} does not start with \"/\"; write a request path like \"/old/*\" \
                 (rules match paths on this server only)"
            ));
        }
        if let Some(c) = pattern
            .chars()
            .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#'))
        {
            return Err(format!(
                "= {pattern:?} holds {c:?}; a pattern is a path alone (no query, no spaces)"
            ));
        }
        let mut parts = vec![Vec::new()];
        let mut rest = pattern;
        let mut names: Vec<&str> = Vec::new();
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('*') {
                if parts.len() > 1 {
                    return Err(format!(
                        "= {pattern:?} has more than one \"*\"; a pattern may have one splat"
                    ));
                }
                parts.push(Vec::new());
                rest = after;
                continue;
            }
            let at_segment = pattern.len() - rest.len() > 0
                && pattern.as_bytes()[pattern.len() - rest.len() - 1] == b'/';
            if let Some(after) = rest.strip_prefix(':').filter(|_| at_segment) {
                let len = ident_len(after);
                let name = &after[..len];
                let next = after[len..].chars().next();
                if len == 0 || !matches!(next, None | Some('/')) {
                    return Err(format!(
                        "= {pattern:?}: a placeholder is a whole segment named like \
                         \":slug\" (letters, digits, _), as in \"/blog/:year/:slug\""
                    ));
                }
                if name == "splat" || names.contains(&name) {
                    return Err(format!(
                        "= {pattern:?} names :{name} twice (or as :splat, which is the \"*\"); \
                         give each placeholder its own name"
                    ));
                }
                names.push(name);
                if let Some(current) = parts.last_mut() {
                    current.push(Part::Param(name.to_string()));
                }
                rest = &after[len..];
                continue;
            }
            let end = rest
                .char_indices()
                .skip(1)
                .find(|(_, c)| *c == '*' || *c == ':')
                .map_or(rest.len(), |(i, _)| i);
            let text = decode_literal(pattern, &rest[..end])?;
            let text = text.as_str();
            if let Some(current) = parts.last_mut() {
                match current.last_mut() {
                    Some(Part::Lit(lit)) => lit.push_str(text),
                    _ => current.push(Part::Lit(text.to_string())),
                }
            }
            rest = &rest[end..];
        }
        let mut parts = parts.into_iter();
        let head = parts.next().unwrap_or_default();
        Ok(PathPattern {
            pattern: pattern.to_string(),
            head,
            tail: parts.next(),
            fold_case: false,
        })
    }

    /// The same pattern, its literal text matched whatever the case of
    /// its ASCII letters (`/Blog/*` matches `/blog/x` and `/BLOG/x`), as
    /// Netlify matches `_redirects`. Captures keep the path's own case.
    pub fn ignoring_case(mut self) -> PathPattern {
        self.fold_case = true;
        self
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Whether the pattern has a placeholder or a splat named `name`.
    pub fn has_capture(&self, name: &str) -> bool {
        match name {
            "splat" => self.tail.is_some(),
            _ => self
                .head
                .iter()
                .chain(self.tail.iter().flatten())
                .any(|p| *p == Part::Param(name.to_string())),
        }
    }

    /// Whether it has a placeholder or a splat at all.
    pub fn is_literal(&self) -> bool {
        self.tail.is_none() && self.head.iter().all(|p| matches!(p, Part::Lit(_)))
    }

    /// The captures if `path` matches. A pattern without a splat that
    /// does not end in `/` also matches the path with one more `/`
    /// (`/about` matches `/about/`), as Netlify's do.
    pub fn matches<'p>(&'p self, path: &'p str) -> Option<Captures<'p>> {
        if let Some(found) = self.matches_exactly(path) {
            return Some(found);
        }
        let trimmed = path.strip_suffix('/')?;
        match self.tail.is_none() && !self.pattern.ends_with('/') && !trimmed.is_empty() {
            true => self.matches_exactly(trimmed),
            false => None,
        }
    }

    fn matches_exactly<'p>(&'p self, path: &'p str) -> Option<Captures<'p>> {
        let mut captures = Captures::default();
        let fold = self.fold_case;
        let start = forward(&self.head, path, 0, fold, &mut captures)?;
        match &self.tail {
            None => (start == path.len()).then_some(captures),
            Some(tail) => {
                let end = backward(tail, path, start, fold, &mut captures)?;
                captures.splat = Some(&path[start..end]);
                Some(captures)
            }
        }
    }
}

/// A literal piece of `pattern` with its escapes decoded: paths are
/// matched decoded, so `/caf%C3%A9` and `/café` are one rule. An escape
/// the files would refuse in a path (malformed, `/`, `\\`, NUL, not
/// UTF-8) could never match, and is refused.
fn decode_literal(pattern: &str, text: &str) -> Result<String, String> {
    if !text.contains('%') {
        return Ok(text.to_string());
    }
    let segments = text.split('/').map(|segment| {
        crate::http::uri::percent_decode(segment.as_bytes())
            .ok()
            .filter(|bytes| !bytes.iter().any(|b| matches!(b, 0 | b'/' | b'\\')))
            .and_then(|bytes| String::from_utf8(bytes).ok())
    });
    segments
        .collect::<Option<Vec<_>>>()
        .map(|segments| segments.join("/"))
        .ok_or_else(|| {
            format!(
                "= {pattern:?} holds an escape no path can match (malformed, an encoded \"/\", \
                 \"\\\\\" or NUL, or not UTF-8); write the character itself, as in \"/café\""
            )
        })
}

/// Whether `text` is `lit`, exactly or (`fold`) but for the case of
/// ASCII letters. Other bytes must be equal, so a match ends where `lit`'s
/// characters do.
fn same(text: &[u8], lit: &str, fold: bool) -> bool {
    match fold {
        true => text.eq_ignore_ascii_case(lit.as_bytes()),
        false => text == lit.as_bytes(),
    }
}

/// Matches `parts` from `at`; the position after them.
fn forward<'p>(
    parts: &'p [Part],
    path: &'p str,
    mut at: usize,
    fold: bool,
    caps: &mut Captures<'p>,
) -> Option<usize> {
    for part in parts {
        match part {
            Part::Lit(lit) => {
                let text = path.as_bytes().get(at..at + lit.len())?;
                if !same(text, lit, fold) {
                    return None;
                }
                at += lit.len();
            }
            Part::Param(name) => {
                let len = path[at..].find('/').unwrap_or(path.len() - at);
                if len == 0 {
                    return None;
                }
                caps.named.push((name.as_str(), &path[at..at + len]));
                at += len;
            }
        }
    }
    Some(at)
}

/// Matches `parts` so they end at the end of `path`, no earlier than
/// `floor`; the position where they begin.
fn backward<'p>(
    parts: &'p [Part],
    path: &'p str,
    floor: usize,
    fold: bool,
    caps: &mut Captures<'p>,
) -> Option<usize> {
    let mut end = path.len();
    for part in parts.iter().rev() {
        match part {
            Part::Lit(lit) => {
                if end < floor + lit.len()
                    || !same(&path.as_bytes()[end - lit.len()..end], lit, fold)
                {
                    return None;
                }
                end -= lit.len();
            }
            Part::Param(name) => {
                let begin = path[floor..end].rfind('/').map_or(floor, |i| floor + i + 1);
                if begin == end {
                    return None;
                }
                caps.named.push((name.as_str(), &path[begin..end]));
                end = begin;
            }
        }
    }
    Some(end)
}

impl PartialEq for PathPattern {
    fn eq(&self, other: &PathPattern) -> bool {
        self.pattern == other.pattern
    }
}

impl fmt::Debug for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.pattern)
    }
}
