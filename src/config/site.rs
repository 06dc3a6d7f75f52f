//! The values that shape what a site answers beyond its files: `[[headers]]`
//! rules, `[cors]` lists, `static.error_pages`, `static.fallback`. Each
//! parser returns the value or the reason it was refused.

use std::collections::BTreeMap;

use toml::Value;

use super::glob::Glob;
use super::value::{array_of_tables, boolean, show, string, Parsed};

/// One `[[headers]]` rule: for files whose path matches `path`, header
/// fields to set (replacing any of that name), add, or remove, in that
/// order; rules apply in the order of the file.
#[derive(Debug, Clone, PartialEq)]
pub struct HeaderRule {
    /// `path`: which files, as a glob beneath the root.
    pub path: Glob,
    /// `set`: fields that replace any field of the same name.
    pub set: Vec<(String, String)>,
    /// `add`: fields added beside any of the same name.
    pub add: Vec<(String, String)>,
    /// `remove`: names of fields taken out (the file's own, like ETag, or
    /// those of earlier rules).
    pub remove: Vec<String>,
    /// `errors`: also on error responses (400, 403, 404, …) whose request
    /// path matches.
    pub errors: bool,
}

/// Fields the server writes itself on every response, or that describe
/// the bytes it sends (their framing and encoding): a rule cannot set, add
/// or remove them. `ETag` may be removed (no validator sent, as nginx's
/// `etag off`) but not set: conditionals compare with the server's own.
/// `Vary` may not be removed, and a rule's `Vary` is added to the
/// server's (`Accept-Encoding`, `Origin`), never in its place.
const SERVER_FIELDS: [&str; 7] = [
    "content-length",
    "transfer-encoding",
    "content-encoding",
    "content-range",
    "connection",
    "date",
    "server",
];

const RULE_FIX: &str = "write each rule as [[headers]] with path = \"*.html\" and any of \
                        set = { Cache-Control = \"no-cache\" }, add = { ... }, \
                        remove = [\"ETag\"], errors = true";

/// `[[headers]]`: an array of tables.
pub(crate) fn header_rules(v: &Value) -> Parsed<Vec<HeaderRule>> {
    array_of_tables(
        v,
        "rule",
        &["path", "set", "add", "remove", "errors"],
        RULE_FIX,
        header_rule,
    )
}

fn header_rule(t: &toml::Table) -> Parsed<HeaderRule> {
    let path = match t.get("path") {
        Some(p) => Glob::parse(string(p)?).map_err(|why| format!("path {why}"))?,
        None => return Err(format!("has no path; {RULE_FIX}")),
    };
    let fields = |key: &str| -> Parsed<Vec<(String, String)>> {
        let Some(v) = t.get(key) else {
            return Ok(Vec::new());
        };
        let Value::Table(fields) = v else {
            return Err(format!(
                "{key} = {} is not a table of fields; write {key} = {{ Cache-Control = \"no-cache\" }}",
                show(v)
            ));
        };
        fields
            .iter()
            .map(|(name, value)| {
                owned(key, name, &path)?;
                field_name(name)?;
                let value = string(value).map_err(|why| format!("{key}.{name} {why}"))?;
                if value.contains(['\r', '\n', '\0']) {
                    return Err(format!("{key}.{name} holds a line break or NUL"));
                }
                Ok((name.clone(), value.to_string()))
            })
            .collect()
    };
    let remove = match t.get("remove") {
        None => Vec::new(),
        Some(Value::Array(names)) => names
            .iter()
            .map(|n| {
                let name = string(n).map_err(|why| format!("remove {why}"))?;
                owned("remove", name, &path)?;
                field_name(name).map(|()| name.to_string())
            })
            .collect::<Parsed<_>>()?,
        Some(v) => {
            return Err(format!(
                "remove = {} is not a list of names; write remove = [\"ETag\"]",
                show(v)
            ))
        }
    };
    let (set, add) = (fields("set")?, fields("add")?);
    Ok(HeaderRule {
        path,
        set,
        add,
        remove,
        errors: t.get("errors").map(boolean).transpose()?.unwrap_or(false),
    })
}

/// A field a `_headers` block may `key` (set, remove), for files matching
/// `path`: the checks `[[headers]]` rules get.
pub(crate) fn check_rule_field(key: &str, name: &str, path: &Glob) -> Parsed<()> {
    owned(key, name, path)?;
    field_name(name)
}

/// A field name a rule may touch: a token, not one the server writes itself.
fn field_name(name: &str) -> Parsed<()> {
    let token = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !token {
        return Err(format!("{name:?} is not a header field name"));
    }
    if SERVER_FIELDS.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(format!(
            "{name} is written by the server itself (it frames or encodes the \
             bytes sent); a rule cannot set, add or remove it: take it out of the rule"
        ));
    }
    Ok(())
}

/// Refuses a rule (for files matching `path`) that would `key` (set, add,
/// remove) a field the server owns beyond those [`field_name`] refuses.
fn owned(key: &str, name: &str, path: &Glob) -> Parsed<()> {
    let lower = name.to_ascii_lowercase();
    let why = match (key, lower.as_str()) {
        (_, field) if SERVER_FIELDS.contains(&field) => {
            "the server writes it itself (it frames or encodes the bytes sent); \
             take it out of the rule"
        }
        ("remove", "vary") => {
            "the server's Vary (Accept-Encoding, Origin) tells caches which \
             requests may share a response; removing it lets a cache serve \
             brotli to a client that cannot read it. Leave Vary out of remove \
             (a rule's Vary is added to the server's)"
        }
        ("set" | "add", "etag") => {
            "the server answers conditional requests by its own ETag; \
             remove = [\"ETag\"] drops it, setting one is not possible"
        }
        _ => return Ok(()),
    };
    Err(format!(
        "for path {:?}: {key} names {name}: {why}",
        path.as_str()
    ))
}

/// A list of strings (`["GET", "HEAD"]`); a single string is a list of one.
pub(crate) fn string_list(v: &Value) -> Parsed<Vec<String>> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|i| string(i).map(str::to_string))
            .collect(),
        _ => Err("is not a list of strings; write it like [\"a\", \"b\"]".into()),
    }
}

/// `cors.origins`: `"*"`, or origins like `"https://example.com"`; the
/// opaque origin `"null"` (sandboxed frames, `file:` pages, some
/// redirects) only when listed as such.
pub(crate) fn origins(v: &Value) -> Parsed<Vec<String>> {
    let list = string_list(v)?;
    for o in &list {
        let ok = o == "*"
            || o == "null"
            || ((o.starts_with("http://") || o.starts_with("https://"))
                && !o.ends_with('/')
                && o.bytes().all(|b| b.is_ascii_graphic()));
        if !ok {
            return Err(format!(
                "holds {o:?}, not an origin; write \"*\" or origins like \"https://example.com\" \
                 (scheme, host, optional port, no path)"
            ));
        }
    }
    if list.len() > 1 && list.iter().any(|o| o == "*") {
        return Err("mixes \"*\" with origins; write \"*\" alone or only origins".into());
    }
    Ok(list)
}

// Why a `[cors]` table as a whole is refused, if it is: `"*"` with
// credentials would hand every site the user's cookies (browsers refuse
// `*` with credentials, so the only way to honour it is reflecting any
// Origin, which is what must not happen).
impl super::CorsConfig {
    /// Why this `[cors]` table is refused at start, if it is.
    pub fn refusal(&self) -> Option<String> {
        let star = self.origins.iter().any(|o| o == "*");
        (star && self.credentials).then(|| {
            "cors.origins = [\"*\"] with cors.credentials = true would let every site read \
             responses with the user's cookies; list the origins allowed, like \
             origins = [\"https://app.example\"], or set credentials = false"
                .to_string()
        })
    }
}

/// `cors.methods`, `cors.headers`: tokens.
pub(crate) fn tokens(v: &Value) -> Parsed<Vec<String>> {
    let list = string_list(v)?;
    if let Some(bad) = list
        .iter()
        .find(|t| field_name(t).is_err() && t.as_str() != "*")
    {
        return Err(format!("holds {bad:?}, not a method or field name"));
    }
    Ok(list)
}

/// `static.error_pages`: a table of status → page, like `404 = "404.html"`.
pub(crate) fn error_pages(v: &Value) -> Parsed<BTreeMap<u16, String>> {
    let fix = "write it like { 404 = \"404.html\", 500 = \"50x.html\" }";
    let Value::Table(t) = v else {
        return Err(format!("is not a table; {fix}"));
    };
    t.iter()
        .map(|(status, page)| {
            let code = status
                .parse::<u16>()
                .ok()
                .filter(|c| *c == 403 || *c == 404 || (500..600).contains(c))
                .ok_or_else(|| format!("has status {status:?}; use 403, 404 or 5xx; {fix}"))?;
            Ok((code, site_path(page)?))
        })
        .collect()
}

/// `static.fallback`: a file beneath the root, or "" for none.
pub(crate) fn fallback(v: &Value) -> Parsed<String> {
    match string(v)? {
        "" => Ok(String::new()),
        _ => site_path(v),
    }
}

/// A `static.fallback` value as given on the command line (`--fallback`):
/// the request path it means ("/index.html"), or why it is refused.
pub fn parse_fallback(file: &str) -> Result<String, String> {
    fallback(&Value::String(file.to_string()))
}

/// A file beneath the root as a request path ("/404.html"): only characters
/// a client sends as they are, no "." or ".." segments.
fn site_path(v: &Value) -> Parsed<String> {
    let path = string(v)?;
    let fix = "use a file beneath the root, like \"index.html\" or \"errors/404.html\"";
    let bare = path.strip_prefix('/').unwrap_or(path);
    let bad_char = bare
        .chars()
        .find(|c| !c.is_ascii_graphic() || matches!(c, '?' | '#' | '%' | '\\'));
    if let Some(c) = bad_char {
        return Err(format!("holds {c:?}; {fix}"));
    }
    if bare.is_empty() || bare.ends_with('/') {
        return Err(format!("is not a file; {fix}"));
    }
    if bare.split('/').any(|s| s.is_empty() || s.starts_with('.')) {
        return Err(format!("holds an empty, \".\" or dot-file segment; {fix}"));
    }
    Ok(format!("/{bare}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn val(text: &str) -> Value {
        let t: toml::Table = format!("v = {text}").parse().unwrap();
        t["v"].clone()
    }

    #[test]
    fn rules_parse_and_refuse_with_reasons() {
        let rules = header_rules(&val(
            r#"[{ path = "*.html", set = { Cache-Control = "no-cache" }, remove = ["ETag"], errors = true }]"#,
        ))
        .unwrap();
        assert_eq!(rules[0].set, [("Cache-Control".into(), "no-cache".into())]);
        assert_eq!(rules[0].remove, ["ETag"]);
        assert!(rules[0].errors && rules[0].path.matches("/a/b.html"));
        // Vary may be set or added: it is merged with the server's.
        header_rules(&val(r#"[{ path = "*", set = { Vary = "Cookie" } }]"#)).unwrap();
        for (bad, says) in [
            (r#"[{ set = {} }]"#, "has no path"),
            (r#"[{ path = "*", sett = {} }]"#, "unknown key \"sett\""),
            (
                r#"[{ path = "*", set = { Date = "x" } }]"#,
                "server writes it itself",
            ),
            (
                r#"[{ path = "*.js", remove = ["Content-Encoding"] }]"#,
                "for path \"*.js\": remove names Content-Encoding",
            ),
            (
                r#"[{ path = "*", add = { content-range = "x" } }]"#,
                "take it out of the rule",
            ),
            (r#"[{ path = "*", remove = ["vary"] }]"#, "Leave Vary out"),
            (r#"[{ path = "*", set = { ETag = "\"1\"" } }]"#, "own ETag"),
            (
                r#"[{ path = "*", set = { "a b" = "x" } }]"#,
                "not a header field name",
            ),
            (r#"[{ path = "*", set = { X = "a\nb" } }]"#, "line break"),
            (r#"[{ path = "*.{a" }]"#, "'{' without"),
            (r#"[{ path = "*", remove = "ETag" }]"#, "not a list"),
            (r#"[{ path = "*", set = 1 }]"#, "not a table"),
        ] {
            let e = header_rules(&val(bad)).unwrap_err();
            assert!(e.contains(says) && e.starts_with("(rule 1)"), "{bad}: {e}");
        }
    }

    #[test]
    fn origins_pages_and_fallback() {
        assert_eq!(origins(&val("\"*\"")).unwrap(), ["*"]);
        assert!(origins(&val("[\"https://a.example/\"]")).is_err());
        assert!(origins(&val("[\"*\", \"https://a.example\"]")).is_err());
        assert_eq!(origins(&val("[\"null\"]")).unwrap(), ["null"]);
        assert!(origins(&val("[\"nul\"]")).is_err());
        let pages = error_pages(&val("{ 404 = \"404.html\", 503 = \"e/503.html\" }")).unwrap();
        assert_eq!(pages[&404], "/404.html");
        assert_eq!(pages[&503], "/e/503.html");
        assert!(error_pages(&val("{ 200 = \"a.html\" }")).is_err());
        assert!(error_pages(&val("{ 404 = \"../x\" }")).is_err());
        assert!(fallback(&val("\"/.env\"")).is_err());
        assert!(fallback(&val("\"a%2e\"")).is_err());
        assert_eq!(fallback(&val("\"\"")).unwrap(), "");
        assert_eq!(fallback(&val("\"index.html\"")).unwrap(), "/index.html");
    }
}
