//! `static.netlify_files`: a site's `_redirects` and `_headers`, read from
//! its root (opened beneath it, like any file served) when the handler's
//! routes are built, and built again when either changes: at most one
//! `stat` of each a second ([`Watch::changed`]), and on SIGHUP with the
//! rest of the configuration.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::config::{
    headers_file, redirects_file, visible_loop, HeaderRule, PathRule, StaticConfig, HEADERS_FILE,
    REDIRECTS_FILE,
};
use crate::runtime::sys::beneath::{RootDir, Symlinks};

/// How often the two files are looked at for a change.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Bigger files are refused: a rule file is a few KiB.
const MAX_BYTES: u64 = 1 << 20;

/// What the two files hold, and the versions read.
pub struct Loaded {
    /// `_redirects`' rules, in order.
    pub redirects: Vec<PathRule>,
    /// `_headers`' blocks, as `[[headers]]` rules.
    pub headers: Vec<HeaderRule>,
    /// Watches for a change to the versions read.
    pub watch: Watch,
}

/// A file's identity: any change to it is a new version; `None`: absent.
type Stamp = Option<(u64, i64, i64, u64)>;

fn stamp(meta: &std::fs::Metadata) -> Stamp {
    Some((meta.len(), meta.mtime(), meta.mtime_nsec(), meta.ino()))
}

/// Reads both files from `root`; an absent file holds no rule. The error
/// names the file, the line and the fix.
pub fn load(root: &Path, config: &StaticConfig) -> Result<Loaded, String> {
    let dir = RootDir::open(root).map_err(|e| format!("{}: {e}", root.display()))?;
    let symlinks = match config.follow_symlinks_outside_root {
        true => Symlinks::Anywhere,
        false => Symlinks::InsideRoot,
    };
    let read = |name: &str| -> Result<(String, Stamp), String> {
        let shown = root.join(name);
        let opened = match dir.open_beneath(Path::new(name), symlinks) {
            Ok(opened) => opened,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((String::new(), None)),
            Err(e) => return Err(format!("{}: {e}", shown.display())),
        };
        // The version and the bytes of the one descriptor opened.
        let meta = opened
            .file
            .metadata()
            .map_err(|e| format!("{}: {e}", shown.display()))?;
        if !meta.is_file() || meta.len() > MAX_BYTES {
            return Err(format!(
                "{} is not a file of at most 1 MiB; make it one, or set static.netlify_files = false",
                shown.display()
            ));
        }
        let mut text = String::new();
        (&opened.file)
            .take(MAX_BYTES)
            .read_to_string(&mut text)
            .map_err(|e| format!("{}: {e} (it must be UTF-8 text)", shown.display()))?;
        Ok((text, stamp(&meta)))
    };
    let (redirects_text, redirects_stamp) = read(REDIRECTS_FILE)?;
    let (headers_text, headers_stamp) = read(HEADERS_FILE)?;
    let at = |why: String| format!("{}/{why}", root.display());
    Ok(Loaded {
        redirects: redirects_file(&redirects_text).map_err(at)?,
        headers: headers_file(&headers_text, &config.index).map_err(at)?,
        watch: Watch {
            root: root.to_path_buf(),
            seen: Mutex::new([redirects_stamp, headers_stamp]),
            born: Instant::now(),
            next_check: AtomicU64::new(0),
        },
    })
}

/// Whether the files changed since they were read.
pub struct Watch {
    root: std::path::PathBuf,
    /// The versions last seen: those read, or a later one found changed
    /// (so a file that cannot be read is reported once per change).
    seen: Mutex<[Stamp; 2]>,
    born: Instant,
    /// Nanoseconds since `born` before which no check is made.
    next_check: AtomicU64,
}

impl Watch {
    /// True once per change of either file, found by a `stat` of each
    /// made at most every [`CHECK_EVERY`] (one thread at a time checks;
    /// the others go on at once).
    pub fn changed(&self, now: Instant) -> bool {
        let at = now.saturating_duration_since(self.born).as_nanos() as u64;
        let due = self.next_check.load(Ordering::Relaxed);
        if at < due {
            return false;
        }
        let next = at + CHECK_EVERY.as_nanos() as u64;
        if self
            .next_check
            .compare_exchange(due, next, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        let now_seen = [REDIRECTS_FILE, HEADERS_FILE].map(|name| {
            std::fs::metadata(self.root.join(name))
                .ok()
                .and_then(|m| stamp(&m))
        });
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if *seen == now_seen {
            return false;
        }
        *seen = now_seen;
        true
    }
}

/// What a site's rules make of its static configuration.
pub struct SiteRules {
    /// The config's rules and the `_redirects` file's.
    pub rules: std::sync::Arc<super::rewrite::Rules>,
    /// The static files' configuration with `_headers`' rules added; None:
    /// the config's own.
    pub files: Option<StaticConfig>,
    /// Watches the two files, when read.
    pub watch: Option<Watch>,
}

/// The rules of `config` for the site at `root`: the files read when
/// `static.netlify_files` is on.
pub fn site_rules(root: &Path, config: &StaticConfig) -> Result<SiteRules, String> {
    if !config.netlify_files {
        return Ok(SiteRules {
            rules: std::sync::Arc::new(super::rewrite::Rules::new(config, Vec::new())),
            files: None,
            watch: None,
        });
    }
    let loaded = load(root, config)?;
    // Each set was checked alone; a chain through both shows only here.
    let both: Vec<PathRule> = (config.redirects.iter().chain(&config.rewrites))
        .chain(&loaded.redirects)
        .cloned()
        .collect();
    let redirects = config.redirects.len();
    let label = |i: usize| match both[i].line {
        0 if i < redirects => format!("redirects (rule {})", i + 1),
        0 => format!("rewrites (rule {})", i - redirects + 1),
        line => format!("{}/{REDIRECTS_FILE} line {line}:", root.display()),
    };
    if let Some(why) = visible_loop(&both, label) {
        return Err(format!(
            "{why}; change a to (or from) so the chain ends, or drop the \"!\""
        ));
    }
    let mut files = config.clone();
    files.headers.extend(loaded.headers);
    Ok(SiteRules {
        rules: std::sync::Arc::new(super::rewrite::Rules::new(config, loaded.redirects)),
        files: Some(files),
        watch: Some(loaded.watch),
    })
}
