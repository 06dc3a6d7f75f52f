//! `[[sites]]`: virtual hosts. Each site has its `names` (exact, or
//! `*.example.com` for one more label), its `root`, and any of the
//! per-site settings, which replace the top-level value of the same key
//! for that site; every other key is the top level's. The per-site keys
//! are read by the top-level keys' own parsers, so a value means the same
//! in a site as at the top.

use std::path::{Path, PathBuf};

use toml::Value;

use super::keys::KEYS;
use super::value::{array_of_tables, root, show, string, Parsed};
use super::{Blank, Config};

/// What a site may set, as the site writes it, and the top-level key it
/// stands for there.
const SITE_KEYS: &[(&str, &str)] = &[
    ("headers", "headers"),
    ("redirects", "redirects"),
    ("rewrites", "rewrites"),
    ("index", "static.index"),
    ("error_pages", "static.error_pages"),
    ("fallback", "static.fallback"),
    (
        "fallback_only_without_extension",
        "static.fallback_only_without_extension",
    ),
    ("listing", "static.listing"),
    ("show_dotfiles", "static.show_dotfiles"),
    ("default_type", "static.default_type"),
    ("netlify_files", "static.netlify_files"),
    ("cache_max_bytes", "static.cache_max_bytes"),
    ("auth", "auth"),
];

const SITE_FIX: &str = "write each site as [[sites]] with names = [\"example.com\", \
                        \"*.example.com\"] and root = \"sites/example\"";

/// One `[[sites]]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteConfig {
    /// `names`: host names, lower case without a trailing dot: exact, or
    /// `*.` and a name (any one label before it). Never empty.
    pub names: Vec<String>,
    /// `root`: the directory the site serves (relative: beneath the
    /// config file's directory).
    pub root: PathBuf,
    /// The per-site settings, by top-level key name, as written (each
    /// checked by its key's parser when read).
    overrides: Vec<(&'static str, Value)>,
    /// The config file's directory: a site's relative `htpasswd` paths
    /// are beneath it, as the top level's are.
    dir: Option<PathBuf>,
}

impl SiteConfig {
    /// Takes its relative paths (`root`, `htpasswd`) beneath `dir`, the
    /// config file's directory.
    pub(crate) fn beneath(&mut self, dir: &Path) {
        if self.root.is_relative() {
            self.root = dir.join(&self.root);
        }
        self.dir = Some(dir.to_path_buf());
    }

    /// How `/status` and messages name the site: its first name.
    pub fn name(&self) -> &str {
        self.names.first().map_or("", String::as_str)
    }

    /// The whole config the site is served with: `top` with the site's
    /// root and settings, and no sites of its own.
    pub fn config(&self, top: &Config) -> Result<Config, String> {
        let mut config = top.clone();
        config.sites = Vec::new();
        config.root.clone_from(&self.root);
        for (name, value) in &self.overrides {
            apply(&mut config, name, value)
                .map_err(|why| format!("site {}: {name} = {} {why}", self.name(), show(value)))?;
        }
        if let Some(dir) = &self.dir {
            for rule in config.auth.iter_mut().filter(|r| r.htpasswd.is_relative()) {
                rule.htpasswd = dir.join(&rule.htpasswd);
            }
        }
        Ok(config)
    }

    /// The names of the per-site settings it sets, as the site writes them.
    pub fn settings(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.overrides.iter().map(|(key, _)| {
            SITE_KEYS
                .iter()
                .find(|(_, top)| top == key)
                .map_or(*key, |(site, _)| *site)
        })
    }
}

fn apply(config: &mut Config, key: &str, value: &Value) -> Parsed<()> {
    match KEYS.iter().find(|k| k.name == key) {
        Some(k) => (k.set)(config, value),
        None => Err(format!("is not a known key ({key})")),
    }
}

/// `[[sites]]`: an array of tables; names unique across every site.
pub(crate) fn sites(v: &Value) -> Parsed<Vec<SiteConfig>> {
    let mut known = vec!["names", "root"];
    known.extend(SITE_KEYS.iter().map(|(site, _)| *site));
    let sites = array_of_tables(v, "site", &known, SITE_FIX, site)?;
    for (i, a) in sites.iter().enumerate() {
        for name in &a.names {
            let again = sites[i..]
                .iter()
                .enumerate()
                .flat_map(|(j, b)| b.names.iter().map(move |n| (i + j, n)))
                .filter(|(_, n)| *n == name)
                .nth(1);
            if let Some((j, _)) = again {
                return Err(format!(
                    "names {name:?} twice (site {} and site {}); give each name to one site",
                    i + 1,
                    j + 1
                ));
            }
        }
    }
    Ok(sites)
}

fn site(t: &toml::Table) -> Parsed<SiteConfig> {
    let names = match t.get("names") {
        Some(Value::Array(names)) if !names.is_empty() => names
            .iter()
            .map(|n| {
                string(n)
                    .and_then(site_name)
                    .map_err(|why| format!("names {why}"))
            })
            .collect::<Parsed<Vec<_>>>()?,
        Some(Value::String(one)) => vec![site_name(one).map_err(|why| format!("names {why}"))?],
        Some(v) => {
            return Err(format!(
                "names = {} is not a list of host names; write names = [\"example.com\"]",
                show(v)
            ))
        }
        None => return Err(format!("has no names; {SITE_FIX}")),
    };
    let root = match t.get("root") {
        Some(v) => root(v).map_err(|why| format!("root = {} {why}", show(v)))?,
        None => {
            return Err(format!(
                "has no root; give the directory it serves, like root = \"sites/{}\"",
                names[0].trim_start_matches("*.")
            ))
        }
    };
    let mut overrides = Vec::new();
    for (site_key, top_key) in SITE_KEYS {
        if let Some(v) = t.get(*site_key) {
            // Checked now, against a blank config: the error names the site.
            apply(&mut Config::blank(), top_key, v)
                .map_err(|why| format!("{site_key} = {} {why}", show(v)))?;
            overrides.push((*top_key, v.clone()));
        }
    }
    Ok(SiteConfig {
        names,
        root,
        overrides,
        dir: None,
    })
}

/// A site name as written: a host name (letters, digits, `-`, `.`), or
/// `*.` and one; lower-cased, a trailing dot dropped.
fn site_name(written: &str) -> Parsed<String> {
    let fix = "write a host name like \"example.com\", or \"*.example.com\" for its subdomains";
    let name = written.strip_suffix('.').unwrap_or(written);
    let (wild, rest) = match name.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, name),
    };
    if rest.contains('*') {
        return Err(format!(
            "{written:?} has a '*' that is not a leading \"*.\"; {fix}"
        ));
    }
    let label_ok = |l: &str| {
        !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if rest.is_empty() || rest.len() > 253 || !rest.split('.').all(label_ok) {
        return Err(format!("{written:?} is not a host name; {fix}"));
    }
    if wild && !rest.contains('.') {
        return Err(format!(
            "{written:?} would match every name under a top-level domain; {fix}"
        ));
    }
    Ok(name.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn err(text: &str) -> String {
        match Config::from_toml_str(text) {
            Ok(c) => panic!("expected an error for {text:?}, got {:?}", c.sites),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn sites_read_with_their_settings() {
        let c = Config::from_toml_str(
            "[[sites]]\nnames = [\"A.example.\", \"*.b.example\"]\nroot = \"a\"\n\
             listing = true\nfallback = \"/index.html\"\n\
             [[sites]]\nnames = \"c.example\"\nroot = \"/srv/c\"\n[static]\nlisting = false",
        )
        .unwrap();
        assert_eq!(c.sites.len(), 2);
        assert_eq!(c.sites[0].names, ["a.example", "*.b.example"]);
        assert_eq!(c.sites[0].name(), "a.example");
        let a = c.sites[0].config(&c).unwrap();
        assert!(a.static_files.listing && a.sites.is_empty());
        assert_eq!(a.static_files.fallback, "/index.html");
        assert_eq!(a.root, std::path::PathBuf::from("a"));
        let s: Vec<_> = c.sites[0].settings().collect();
        assert_eq!(s, ["fallback", "listing"]);
        let b = c.sites[1].config(&c).unwrap();
        assert!(!b.static_files.listing);
    }

    #[test]
    fn bad_sites_name_the_key_and_the_fix() {
        let e = err("[[sites]]\nnames = [\"a.example\"]\nroot = \"a\"\n[[sites]]\nnames = [\"x.example\", \"A.example\"]\nroot = \"b\"");
        assert!(e.starts_with("sites = "), "{e}");
        assert!(
            e.contains("names \"a.example\" twice (site 1 and site 2)"),
            "{e}"
        );
        let e = err("[[sites]]\nnames = [\"a.*.example\"]\nroot = \"a\"");
        assert!(
            e.contains("(site 1) names \"a.*.example\" has a '*'"),
            "{e}"
        );
        let e = err("[[sites]]\nnames = [\"*.com\"]\nroot = \"a\"");
        assert!(e.contains("every name under a top-level domain"), "{e}");
        let e = err("[[sites]]\nnames = [\"a b\"]\nroot = \"a\"");
        assert!(e.contains("is not a host name"), "{e}");
        let e = err("[[sites]]\nnames = [\"a.example\"]");
        assert!(e.contains("(site 1) has no root"), "{e}");
        assert!(e.contains("root = \"sites/a.example\""), "{e}");
        let e = err("[[sites]]\nroot = \"a\"");
        assert!(e.contains("has no names"), "{e}");
        let e = err("[[sites]]\nnames = []\nroot = \"a\"");
        assert!(e.contains("not a list of host names"), "{e}");
        let e = err("[[sites]]\nnames = [\"a.example\"]\nroot = \"a\"\nlisting = \"yes\"");
        assert!(
            e.contains("(site 1) listing = \"yes\" is not a boolean"),
            "{e}"
        );
        let e = err("[[sites]]\nnames = [\"a.example\"]\nroot = \"a\"\nworkers = 3");
        assert!(e.contains("unknown key \"workers\""), "{e}");
    }
}
