//! `[[auth]]`: HTTP Basic authentication for the paths under a prefix,
//! with the users of an htpasswd file. The file itself is read (and its
//! hashes checked) where the routes are built, at start and on SIGHUP.

use std::path::PathBuf;

use toml::Value;

use super::value::{array_of_tables, string, Parsed};

/// One `[[auth]]` rule.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthRule {
    /// `path`: the request paths it guards: this path and every path
    /// beneath it ("/admin" guards "/admin" and "/admin/…", not
    /// "/administrator"); "/" guards the whole site.
    pub path: String,
    /// `htpasswd`: the users, one `name:bcrypt-hash` a line
    /// (`htpasswd -B`); relative to the config file's directory.
    pub htpasswd: PathBuf,
    /// `realm`: what the browser's login prompt names (default
    /// "Restricted").
    pub realm: String,
}

impl AuthRule {
    /// Whether the rule guards `path` (a normalized request path).
    pub fn guards(&self, path: &str) -> bool {
        let prefix = self.path.trim_end_matches('/');
        match path.strip_prefix(prefix) {
            Some(rest) => rest.is_empty() || rest.starts_with('/'),
            None => false,
        }
    }
}

const AUTH_FIX: &str = "write each rule as [[auth]] with path = \"/admin\", \
     htpasswd = \"users.htpasswd\" (made with `htpasswd -B -C 10 -c FILE USER`) \
     and optionally realm = \"Admin\"";

/// `[[auth]]`: an array of tables.
pub(crate) fn auth_rules(v: &Value) -> Parsed<Vec<AuthRule>> {
    array_of_tables(v, "rule", &["path", "htpasswd", "realm"], AUTH_FIX, rule)
}

fn rule(t: &toml::Table) -> Parsed<AuthRule> {
    let path = match t.get("path") {
        Some(p) => string(p)?,
        None => return Err(format!("has no path; {AUTH_FIX}")),
    };
    let fix = "write a path prefix like \"/admin\" or \"/\" for the whole site";
    if !path.starts_with('/') {
        return Err(format!("path {path:?} does not start with \"/\"; {fix}"));
    }
    if let Some(c) = path
        .chars()
        .find(|c| !c.is_ascii_graphic() || matches!(c, '*' | '?' | '#' | '%' | '\\'))
    {
        return Err(format!(
            "path {path:?} holds {c:?}: it is a plain prefix (no globs, queries or escapes); {fix}"
        ));
    }
    if path.split('/').any(|s| s == "." || s == "..") {
        return Err(format!(
            "path {path:?} holds a \".\" or \"..\" segment; {fix}"
        ));
    }
    let htpasswd = match t.get("htpasswd") {
        Some(p) if !string(p)?.is_empty() => PathBuf::from(string(p)?),
        _ => return Err(format!("has no htpasswd file; {AUTH_FIX}")),
    };
    let realm = match t.get("realm") {
        Some(r) => string(r)?,
        None => "Restricted",
    };
    if realm.is_empty()
        || realm
            .chars()
            .any(|c| c == '"' || c == '\\' || c.is_control())
    {
        return Err(format!(
            "realm {realm:?} must be non-empty text without '\"', '\\' or control characters, \
             like \"Admin area\""
        ));
    }
    Ok(AuthRule {
        path: path.to_string(),
        htpasswd,
        realm: realm.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Parsed<Vec<AuthRule>> {
        let table: toml::Table = text.parse().unwrap();
        auth_rules(&table["auth"])
    }

    #[test]
    fn reads_rules_and_refuses_bad_ones() {
        let rules = parse(
            "[[auth]]\npath = \"/admin\"\nhtpasswd = \"u\"\n[[auth]]\npath = \"/\"\n\
             htpasswd = \"/etc/u\"\nrealm = \"Site\"",
        )
        .unwrap();
        assert_eq!(rules[0].realm, "Restricted");
        assert_eq!(rules[1].htpasswd, PathBuf::from("/etc/u"));
        for (bad, says) in [
            ("path = \"admin\"\nhtpasswd = \"u\"", "does not start"),
            ("path = \"/a*\"\nhtpasswd = \"u\"", "plain prefix"),
            ("path = \"/a/../b\"\nhtpasswd = \"u\"", "\"..\""),
            ("path = \"/a\"", "no htpasswd"),
            ("htpasswd = \"u\"", "no path"),
            (
                "path = \"/a\"\nhtpasswd = \"u\"\nrealm = \"a\\\"b\"",
                "realm",
            ),
            (
                "path = \"/a\"\nhtpasswd = \"u\"\nuser = \"x\"",
                "unknown key",
            ),
        ] {
            let e = parse(&format!("[[auth]]\n{bad}")).unwrap_err();
            assert!(e.contains(says) && e.starts_with("(rule 1)"), "{e}");
        }
    }

    #[test]
    fn a_prefix_guards_itself_and_beneath_only() {
        let rule = |path: &str| AuthRule {
            path: path.into(),
            htpasswd: PathBuf::new(),
            realm: String::new(),
        };
        let admin = rule("/admin");
        assert!(admin.guards("/admin") && admin.guards("/admin/x"));
        assert!(!admin.guards("/administrator") && !admin.guards("/"));
        assert!(rule("/admin/").guards("/admin/x") && rule("/admin/").guards("/admin"));
        assert!(rule("/").guards("/") && rule("/").guards("/x/y"));
    }
}
