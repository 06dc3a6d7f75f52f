//! Maps a request path onto a file under the document root, refusing anything
//! that could escape it.
//!
//! The file is opened once, beneath a descriptor of the root, with the
//! kernel enforcing confinement (`runtime::sys::beneath`); its type and size come
//! from `fstat` on that descriptor. No path is looked up by name after it
//! was checked, so a rename or symlink swap cannot redirect what is served.

use std::borrow::Cow;
use std::fs::{File, Metadata};
use std::io;
use std::path::PathBuf;

use crate::http::uri::{percent_decoded, BadEscape};
use crate::runtime::sys::beneath::{RootDir, Symlinks};

/// How paths are resolved; built once from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveOptions {
    /// File served when a directory is asked for (e.g. "index.html").
    pub index: String,
    /// Serve files reached through symlinks that lead outside the root.
    /// This gives up confinement: whoever can make a symlink in the root
    /// can publish any file the server may read.
    pub follow_symlinks_outside_root: bool,
    /// Serve names starting with '.' (e.g. ".well-known").
    pub show_dotfiles: bool,
    /// `static.netlify_files`: the root's `_redirects` and `_headers` are
    /// rules, never listed (nor served: the lookup refuses them).
    pub hide_site_files: bool,
}

impl Default for ResolveOptions {
    fn default() -> Self {
        ResolveOptions {
            index: "index.html".to_string(),
            follow_symlinks_outside_root: false,
            show_dotfiles: false,
            hide_site_files: false,
        }
    }
}

impl ResolveOptions {
    /// Which symlinks opening a file beneath the root may follow.
    pub(super) fn symlinks(&self) -> Symlinks {
        match self.follow_symlinks_outside_root {
            true => Symlinks::Anywhere,
            false => Symlinks::InsideRoot,
        }
    }
}

/// What the request path refers to.
#[derive(Debug)]
pub enum Resolved {
    /// A regular file to serve (for a directory: its index file).
    File {
        /// Where the URL says the file is (for inotify and the content
        /// type); never opened again.
        path: PathBuf,
        /// `fstat` of `file`.
        meta: Metadata,
        /// No symlink was followed, so the file is at `path`.
        direct: bool,
        /// The file, open for reading.
        file: File,
    },
    /// A directory asked for without trailing slash: the Location value.
    RedirectToSlash(String),
}

/// Why the request path cannot be served: each reason has its status
/// (400, 403 or 404), which is all a client sees; the reason itself is for
/// the server's debug log (`log.level = "debug"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolveError {
    /// 400: a `%` not followed by two hex digits.
    BadEscape,
    /// 400: an encoded NUL, slash or backslash, or a raw backslash.
    EncodedSeparator,
    /// 400: the decoded path is not UTF-8.
    NotUtf8,
    /// 400: the path does not start with `/`.
    NotAbsolute,
    /// 404: a name starting with `.` while `static.show_dotfiles` is off.
    Dotfile,
    /// 404: no such file or directory.
    Missing,
    /// 404: a file named as if it were a directory (`/file.txt/`, `/a.txt/b`).
    NotADirectory,
    /// 404: a directory without its index file.
    NoIndex,
    /// 404: a symlink leads outside the root (`static.follow_symlinks_outside_root` off).
    OutsideRoot,
    /// 404: too many symlinks in a row (a loop).
    SymlinkLoop,
    /// 404: a socket, fifo or device rather than a regular file.
    NotAFile,
    /// 403: the OS denied access.
    Permission,
    /// 404: any other error opening it (the OS error number).
    Os(i32),
}

impl ResolveError {
    /// The HTTP status code to answer with.
    pub fn status(self) -> u16 {
        use ResolveError::*;
        match self {
            BadEscape | EncodedSeparator | NotUtf8 | NotAbsolute => 400,
            Permission => 403,
            Dotfile | Missing | NotADirectory | NoIndex | OutsideRoot | SymlinkLoop | NotAFile
            | Os(_) => 404,
        }
    }
}

impl std::fmt::Display for ResolveError {
    /// Why, in words, naming the setting that decided it where there is one.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use ResolveError::*;
        f.write_str(match self {
            BadEscape => "malformed percent-encoding",
            EncodedSeparator => "an encoded NUL, slash or backslash",
            NotUtf8 => "not UTF-8 once decoded",
            NotAbsolute => "the path does not start with \"/\"",
            Dotfile => "a name starts with \".\" (static.show_dotfiles = false)",
            Missing => "no such file or directory",
            NotADirectory => "a file named as a directory",
            NoIndex => "a directory without its index file (static.index)",
            OutsideRoot => {
                "a symlink leads outside the root (static.follow_symlinks_outside_root = false)"
            }
            SymlinkLoop => "too many symlinks (a loop)",
            NotAFile => "not a regular file (a socket, fifo or device)",
            Permission => "permission denied",
            Os(code) => return write!(f, "{}", io::Error::from_raw_os_error(*code)),
        })
    }
}

/// Writes why a request was refused to stderr, one line: for
/// `log.level = "debug"`, checked by the caller only once a path was
/// refused, so serving files costs nothing more. The path is quoted with
/// escapes, as a client wrote it.
/// `hint`, if not empty, follows the reason.
pub(super) fn log_refusal(method: &str, url_path: &str, why: ResolveError, hint: &str) {
    let sep = if hint.is_empty() { "" } else { "; " };
    eprintln!(
        "conveyor: refused {method} {url_path:?} ({}): {why}{sep}{hint}",
        why.status()
    );
}

/// Resolves `url_path` (percent-encoded, without query) beneath `root`.
/// `query` is only used to build the trailing-slash redirect.
pub fn resolve(
    root: &RootDir,
    url_path: &str,
    query: Option<&str>,
    opts: &ResolveOptions,
) -> Result<Resolved, ResolveError> {
    let (relative, dir_form) = relative_path(url_path, opts)?;
    let symlinks = opts.symlinks();
    let opened = root.open_beneath(&relative, symlinks).map_err(io_error)?;
    let meta = opened.file.metadata().map_err(io_error)?;

    if meta.is_dir() {
        if !dir_form {
            return Ok(Resolved::RedirectToSlash(redirect_location(
                url_path, query,
            )));
        }
        // Opened in the directory just checked, not by its name again; a
        // symlinked index gets the same confinement as any path.
        let index = root
            .open_in(&opened.file, &relative, &opts.index, symlinks)
            .map_err(|e| match io_error(e) {
                ResolveError::Missing => ResolveError::NoIndex,
                other => other,
            })?;
        let index_meta = index.file.metadata().map_err(io_error)?;
        let path = root.path().join(&relative).join(&opts.index);
        return regular_file(path, index_meta, opened.direct && index.direct, index.file);
    }
    // "/file.txt/" names a directory that does not exist.
    if dir_form {
        return Err(ResolveError::NotADirectory);
    }
    regular_file(root.path().join(relative), meta, opened.direct, opened.file)
}

/// The path beneath the root that `url_path` names, and whether it names
/// a directory (ends in `/`, `.` or `..`); nothing is opened.
pub(super) fn relative_path(
    url_path: &str,
    opts: &ResolveOptions,
) -> Result<(PathBuf, bool), ResolveError> {
    let (kept, dir_form) = resolved_segments(url_path)?;
    let mut relative = PathBuf::new();
    for s in kept {
        if s.starts_with('.') && !opts.show_dotfiles {
            return Err(ResolveError::Dotfile);
        }
        relative.push(s);
    }
    Ok((relative, dir_form))
}

/// The path the files resolve `url_path` to, as a path again: escapes
/// decoded, `.`, `..` and empty segments resolved, and a trailing `/`
/// where it names a directory (`/x/../old/page`, `/%6Fld/page` and
/// `//old/./page` are all `/old/page`). What `[[redirects]]`,
/// `[[rewrites]]` and `_redirects` match, so no spelling of a path
/// serves its file past a rule; Err where the files refuse the path (400).
/// Most paths hold nothing to resolve (no `%`, `\`, NUL, `//` or `/.`):
/// those are returned as they are, without a copy.
pub fn resolved_path(url_path: &str) -> Result<Cow<'_, str>, ResolveError> {
    let plain = url_path.starts_with('/')
        && !url_path.bytes().any(|b| matches!(b, b'%' | b'\\' | 0))
        && !url_path.contains("//")
        && !url_path.contains("/.");
    match plain {
        true => Ok(Cow::Borrowed(url_path)),
        false => resolve_segments_to_path(url_path).map(Cow::Owned),
    }
}

/// [`resolved_path`] for a path that may need resolving.
fn resolve_segments_to_path(url_path: &str) -> Result<String, ResolveError> {
    let (kept, dir_form) = resolved_segments(url_path)?;
    let mut out = String::with_capacity(url_path.len());
    for s in &kept {
        out.push('/');
        out.push_str(s);
    }
    if dir_form || out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// The decoded segments `url_path` names once dot-segments are resolved,
/// and whether it names a directory: the one resolution of a path, for
/// the files and the rules.
fn resolved_segments(url_path: &str) -> Result<(Vec<String>, bool), ResolveError> {
    if !url_path.starts_with('/') {
        return Err(ResolveError::NotAbsolute);
    }

    // Decode every segment first so malformed input is a 400 wherever it sits.
    let segments = url_path
        .split('/')
        .map(decode_segment)
        .collect::<Result<Vec<_>, _>>()?;

    // A final `.` or `..` names a directory: `/sub/..` is `/`, not `/sub`.
    let dir_form =
        url_path.ends_with('/') || matches!(segments.last().map(String::as_str), Some("." | ".."));
    // Dot-segments are removed as RFC 3986 §5.2.4 says, on the decoded
    // segments (so `%2e%2e` is `..`, as in nginx), before anything is
    // opened: `..` drops the segment before it and, at the root, stays
    // there (`/../x` is `/x`, as in nginx), so no path climbs above the
    // root. Empty segments are skipped first (`//` is `/`, like nginx's
    // merge_slashes), so `/a//../b` is `/b`.
    let mut kept: Vec<String> = Vec::with_capacity(segments.len());
    for segment in segments {
        match segment.as_str() {
            "" | "." => {}
            ".." => {
                kept.pop();
            }
            _ => kept.push(segment),
        }
    }
    Ok((kept, dir_form))
}

/// Whether `url_path` holds a `..` segment once decoded (`/%2e%2e/x`
/// as well as `/../x`): such a path is resolved, but never answered by
/// the fallback.
pub(super) fn has_dot_dot(url_path: &str) -> bool {
    url_path.split('/').any(|segment| {
        let mut decoded = percent_decoded(segment.as_bytes());
        matches!(
            (decoded.next(), decoded.next(), decoded.next()),
            (Some(Ok(b'.')), Some(Ok(b'.')), None)
        )
    })
}

/// Percent-decodes one path segment exactly once.
fn decode_segment(raw: &str) -> Result<String, ResolveError> {
    let mut out = Vec::with_capacity(raw.len());
    for b in percent_decoded(raw.as_bytes()) {
        let b = b.map_err(|BadEscape| ResolveError::BadEscape)?;
        // An encoded separator must never become a segment boundary.
        if matches!(b, 0 | b'/' | b'\\') {
            return Err(ResolveError::EncodedSeparator);
        }
        out.push(b);
    }
    String::from_utf8(out).map_err(|_| ResolveError::NotUtf8)
}

/// Only regular files are served; fifos and sockets could block or leak.
fn regular_file(
    path: PathBuf,
    meta: Metadata,
    direct: bool,
    file: File,
) -> Result<Resolved, ResolveError> {
    if !meta.is_file() {
        return Err(ResolveError::NotAFile);
    }
    Ok(Resolved::File {
        path,
        meta,
        direct,
        file,
    })
}

/// The path with a slash added. Runs of slashes are collapsed: a Location
/// starting with "//" would name another host.
fn redirect_location(url_path: &str, query: Option<&str>) -> String {
    let mut location = String::with_capacity(url_path.len() + 2);
    for c in url_path.chars() {
        if !(c == '/' && location.ends_with('/')) {
            location.push(c);
        }
    }
    location.push('/');
    if let Some(q) = query {
        location.push('?');
        location.push_str(q);
    }
    location
}

/// The reason for an error from `runtime::sys::beneath`: `EXDEV` (and its own
/// error without an OS code) is a refused escape, `ELOOP` a loop.
fn io_error(err: io::Error) -> ResolveError {
    match err.raw_os_error() {
        Some(libc::ENOENT) => ResolveError::Missing,
        Some(libc::ENOTDIR) => ResolveError::NotADirectory,
        Some(libc::EXDEV) => ResolveError::OutsideRoot,
        Some(libc::ELOOP) => ResolveError::SymlinkLoop,
        Some(libc::EACCES | libc::EPERM) => ResolveError::Permission,
        // Opening a socket (ENXIO) or a device without a driver (ENODEV).
        Some(libc::ENXIO | libc::ENODEV) => ResolveError::NotAFile,
        Some(code) => ResolveError::Os(code),
        None if err.kind() == io::ErrorKind::NotFound => ResolveError::OutsideRoot,
        None if err.kind() == io::ErrorKind::PermissionDenied => ResolveError::Permission,
        None => ResolveError::Os(libc::EINVAL),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn plain_paths_resolve_to_themselves_without_a_copy() {
        let paths = [
            "/", "/a", "/a/b/", "/a.b/c", "/a/..b", "/a/b.", "/é/x", "/a//b", "/a/./b", "/a/../b",
            "/a/.", "/a/..", "/.x", "/%61", "/a\\b", "/a%2Fb", "//", "/..",
        ];
        for path in paths {
            let slow = resolve_segments_to_path(path);
            let fast = resolved_path(path).map(Cow::into_owned);
            assert_eq!(fast, slow, "{path}");
            if let Ok(Cow::Borrowed(_)) = resolved_path(path) {
                assert_eq!(slow.as_deref(), Ok(path), "{path}");
            }
        }
        assert!(matches!(resolved_path("/a/b.html"), Ok(Cow::Borrowed(_))));
        assert_eq!(resolved_path("/x/../%6Fld//p/.").unwrap(), "/old/p/");
    }

    #[test]
    fn dot_dot_segments_are_found_decoded() {
        for yes in ["/../x", "/%2e%2e/x", "/a/%2E./b", "/a/.%2e", "/a/..", "/.."] {
            assert!(has_dot_dot(yes), "{yes}");
        }
        for no in [
            "/",
            "/a",
            "/a..b",
            "/...",
            "/%2e",
            "/.x/..y",
            "/%2e%2e%2e",
            "/%zz",
        ] {
            assert!(!has_dot_dot(no), "{no}");
        }
    }
    use std::io::Read;
    use std::os::unix::fs::{symlink, FileExt};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A temp directory removed on drop; `root` is its canonical "www" child,
    /// `outside` a sibling directory that symlinks may point into.
    struct Fixture {
        base: PathBuf,
        root: PathBuf,
        outside: PathBuf,
    }

    impl Fixture {
        fn new() -> Fixture {
            static COUNTER: AtomicUsize = AtomicUsize::new(0);
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let base =
                std::env::temp_dir().join(format!("conveyor-resolve-{}-{}", std::process::id(), n));
            let _ = fs::remove_dir_all(&base);
            fs::create_dir_all(base.join("www")).unwrap();
            fs::create_dir_all(base.join("outside")).unwrap();
            let base = base.canonicalize().unwrap();
            Fixture {
                root: base.join("www"),
                outside: base.join("outside"),
                base,
            }
        }

        fn file(&self, rel: &str, body: &str) -> PathBuf {
            let path = self.root.join(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, body).unwrap();
            path
        }

        fn dir(&self, rel: &str) {
            fs::create_dir_all(self.root.join(rel)).unwrap();
        }

        fn get(&self, url: &str) -> Result<Resolved, ResolveError> {
            self.get_with(url, &ResolveOptions::default())
        }

        /// Resolves with `openat2` and with the component walk, checks that
        /// both agree, and gives the first answer.
        fn get_with(&self, url: &str, opts: &ResolveOptions) -> Result<Resolved, ResolveError> {
            let kernel = RootDir::open(&self.root).unwrap();
            let walk = RootDir::without_openat2(&self.root).unwrap();
            let first = resolve(&kernel, url, None, opts);
            let second = resolve(&walk, url, None, opts);
            assert_eq!(summary(&first), summary(&second), "{url}");
            first
        }
    }

    /// What a resolution answered, comparable across the two ways to open.
    fn summary(r: &Result<Resolved, ResolveError>) -> String {
        match r {
            Ok(Resolved::File {
                path,
                meta,
                direct,
                file,
            }) => {
                // Read without moving the offset: the caller reads it too.
                let mut body = vec![0; meta.len() as usize];
                let n = file.read_at(&mut body, 0).unwrap();
                format!("{path:?} {direct} {:?}", &body[..n])
            }
            Ok(Resolved::RedirectToSlash(loc)) => format!("redirect {loc}"),
            Err(e) => format!("{e:?}"),
        }
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.base);
        }
    }

    fn file_path(r: Result<Resolved, ResolveError>) -> PathBuf {
        match r {
            Ok(Resolved::File { path, meta, .. }) => {
                assert!(meta.is_file());
                path
            }
            other => panic!("expected a file, got {other:?}"),
        }
    }

    /// The bytes of the file a resolution opened.
    fn body(r: Result<Resolved, ResolveError>) -> String {
        match r {
            Ok(Resolved::File { mut file, .. }) => {
                let mut body = String::new();
                file.read_to_string(&mut body).unwrap();
                body
            }
            other => panic!("expected a file, got {other:?}"),
        }
    }

    fn err(r: Result<Resolved, ResolveError>) -> ResolveError {
        match r {
            Err(e) => e,
            Ok(other) => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn serves_plain_and_nested_files() {
        let fx = Fixture::new();
        let a = fx.file("a.txt", "a");
        let b = fx.file("sub/b.css", "b");
        assert_eq!(file_path(fx.get("/a.txt")), a);
        assert_eq!(file_path(fx.get("/sub/b.css")), b);
        assert_eq!(err(fx.get("/missing.txt")), ResolveError::Missing);
    }

    #[test]
    fn empty_and_dot_segments_are_skipped() {
        let fx = Fixture::new();
        let b = fx.file("sub/b.txt", "b");
        assert_eq!(file_path(fx.get("//sub//./b.txt")), b);
        assert_eq!(file_path(fx.get("/%2e/sub/%2E/b.txt")), b);
    }

    #[test]
    fn dot_segments_are_removed_and_never_climb_above_the_root() {
        let fx = Fixture::new();
        let a = fx.file("a.txt", "a");
        let b = fx.file("sub/b.txt", "b");
        fx.file("sub/index.html", "sub index");
        fx.file("index.html", "root index");
        fs::write(fx.outside.join("x"), "outside").unwrap();
        for url in [
            "/sub/../a.txt",
            "/sub/deeper/../../a.txt",
            "/sub/./../a.txt",
            "/sub/%2E%2E/a.txt",
            "/sub/.%2e/a.txt",
            "/sub/%2e./a.txt",
            "/sub//../a.txt",
            "/../a.txt",
            "/../../../a.txt",
            "/sub/../../a.txt",
            "/%2e%2e/a.txt",
        ] {
            assert_eq!(file_path(fx.get(url)), a, "{url}");
        }
        assert_eq!(file_path(fx.get("/a.txt/../sub/b.txt")), b);
        // Clamped at the root: "outside" is looked up inside it.
        for url in ["/../outside/x", "/%2e%2e/outside/x", "/sub/../../outside/x"] {
            assert_eq!(err(fx.get(url)), ResolveError::Missing, "{url}");
        }
        // A trailing dot-segment names a directory (RFC 3986 §5.2.4).
        assert_eq!(body(fx.get("/sub/..")), "root index");
        assert_eq!(body(fx.get("/..")), "root index");
        assert_eq!(body(fx.get("/sub/.")), "sub index");
        assert_eq!(body(fx.get("/sub/x/..")), "sub index");
        assert_eq!(err(fx.get("/sub/b.txt/.")), ResolveError::NotADirectory);
        // Dotfiles are judged after removal: reached via ".." they stay
        // hidden; a dotfile segment that ".." removes is never opened.
        fx.file(".env", "secret");
        assert_eq!(err(fx.get("/sub/../.env")), ResolveError::Dotfile);
        assert_eq!(file_path(fx.get("/.env/../a.txt")), a);
    }

    #[test]
    fn decodes_exactly_once() {
        let fx = Fixture::new();
        let literal = fx.file("%2e%2e", "literal");
        assert_eq!(file_path(fx.get("/%252e%252e")), literal);
    }

    #[test]
    fn malformed_escapes_are_bad_requests() {
        let fx = Fixture::new();
        for url in [
            "/%zz", "/a%4", "/a%", "/%4g.txt", "/%%41", "/%+1.txt", "/%-1",
        ] {
            assert_eq!(err(fx.get(url)), ResolveError::BadEscape, "{url}");
        }
    }

    #[test]
    fn nul_separators_and_bad_utf8_are_bad_requests() {
        let fx = Fixture::new();
        fx.file("sub/b.txt", "b");
        for url in [
            "/a%00.txt",
            "/sub%2fb.txt",
            "/sub%2Fb.txt",
            "/sub%5cb.txt",
            "/sub%5Cb.txt",
            "/sub\\b.txt",
            "/%ff.txt",
            "/%C3.txt",
            "relative.txt",
        ] {
            assert_eq!(err(fx.get(url)).status(), 400, "{url}");
        }
        assert_eq!(err(fx.get("/a%00.txt")), ResolveError::EncodedSeparator);
        assert_eq!(err(fx.get("/sub\\b.txt")), ResolveError::EncodedSeparator);
        assert_eq!(err(fx.get("/%ff.txt")), ResolveError::NotUtf8);
        assert_eq!(err(fx.get("relative.txt")), ResolveError::NotAbsolute);
    }

    #[test]
    fn bad_request_wins_over_not_found() {
        let fx = Fixture::new();
        assert_eq!(err(fx.get("/../%zz")), ResolveError::BadEscape);
    }

    #[test]
    fn unusual_names_work() {
        let fx = Fixture::new();
        let cases = [
            ("my file.txt", "/my%20file.txt"),
            ("100%.txt", "/100%25.txt"),
            ("a#b.txt", "/a%23b.txt"),
            ("why?.txt", "/why%3F.txt"),
            ("a:b,c[1].txt", "/a:b,c[1].txt"),
            ("café.txt", "/caf%C3%A9.txt"),
            ("naïve.txt", "/naïve.txt"),
        ];
        for (name, url) in cases {
            let path = fx.file(name, name);
            assert_eq!(file_path(fx.get(url)), path, "{url}");
        }
    }

    #[test]
    fn dotfiles_hidden_unless_enabled() {
        let fx = Fixture::new();
        let hidden = fx.file(".env", "secret");
        let wk = fx.file(".well-known/security.txt", "x");
        assert_eq!(err(fx.get("/.env")), ResolveError::Dotfile);
        assert_eq!(err(fx.get("/%2eenv")), ResolveError::Dotfile);
        assert_eq!(
            err(fx.get("/.well-known/security.txt")),
            ResolveError::Dotfile
        );
        let opts = ResolveOptions {
            show_dotfiles: true,
            ..ResolveOptions::default()
        };
        assert_eq!(file_path(fx.get_with("/.env", &opts)), hidden);
        assert_eq!(
            file_path(fx.get_with("/.well-known/security.txt", &opts)),
            wk
        );
        assert_eq!(err(fx.get_with("/..", &opts)), ResolveError::NoIndex);
    }

    #[test]
    fn directory_without_slash_redirects_keeping_encoding_and_query() {
        let fx = Fixture::new();
        fx.file("my dir/index.html", "i");
        let opts = ResolveOptions::default();
        let root = RootDir::open(&fx.root).unwrap();
        match resolve(&root, "/my%20dir", Some("a=1&b"), &opts) {
            Ok(Resolved::RedirectToSlash(loc)) => assert_eq!(loc, "/my%20dir/?a=1&b"),
            other => panic!("{other:?}"),
        }
        match resolve(&root, "/my%20dir", None, &opts) {
            Ok(Resolved::RedirectToSlash(loc)) => assert_eq!(loc, "/my%20dir/"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn directory_with_slash_serves_index_or_404() {
        let fx = Fixture::new();
        let root_index = fx.file("index.html", "root");
        let docs_index = fx.file("docs/index.html", "docs");
        fx.file("empty/other.html", "x");
        fx.dir("weird/index.html");
        assert_eq!(file_path(fx.get("/")), root_index);
        assert_eq!(file_path(fx.get("/docs/")), docs_index);
        assert_eq!(err(fx.get("/empty/")), ResolveError::NoIndex);
        // An "index.html" that is itself a directory is not served.
        assert_eq!(err(fx.get("/weird/")), ResolveError::NotAFile);
        let opts = ResolveOptions {
            index: "other.html".to_string(),
            ..ResolveOptions::default()
        };
        assert!(file_path(fx.get_with("/empty/", &opts)).ends_with("empty/other.html"));
    }

    #[test]
    fn file_with_trailing_slash_or_below_a_file_is_not_found() {
        let fx = Fixture::new();
        fx.file("a.txt", "a");
        assert_eq!(err(fx.get("/a.txt/")), ResolveError::NotADirectory);
        assert_eq!(err(fx.get("/a.txt/x")), ResolveError::NotADirectory);
    }

    #[test]
    fn symlink_inside_root_is_served() {
        let fx = Fixture::new();
        fx.file("real/a.txt", "a");
        // Absolute and relative links, to files and directories.
        symlink(fx.root.join("real/a.txt"), fx.root.join("link.txt")).unwrap();
        symlink(fx.root.join("real"), fx.root.join("linkdir")).unwrap();
        symlink("real/a.txt", fx.root.join("rel.txt")).unwrap();
        symlink("../real", fx.root.join("real/up")).unwrap();
        for url in ["/link.txt", "/linkdir/a.txt", "/rel.txt", "/real/up/a.txt"] {
            assert_eq!(body(fx.get(url)), "a", "{url}");
        }
        // The path is the URL's: its extension gives the content type.
        assert_eq!(file_path(fx.get("/link.txt")), fx.root.join("link.txt"));
        let direct = |url: &str| matches!(fx.get(url), Ok(Resolved::File { direct: true, .. }));
        assert!(direct("/real/a.txt"), "no symlink on the way");
        assert!(
            !direct("/link.txt") && !direct("/linkdir/a.txt"),
            "symlinks followed"
        );
    }

    #[test]
    fn symlink_escaping_root_is_not_found_unless_allowed() {
        let fx = Fixture::new();
        fs::write(fx.outside.join("secret.txt"), "s").unwrap();
        symlink(fx.outside.join("secret.txt"), fx.root.join("esc.txt")).unwrap();
        symlink(&fx.outside, fx.root.join("escdir")).unwrap();
        symlink("../outside/secret.txt", fx.root.join("relesc.txt")).unwrap();
        fx.dir("sub");
        symlink("../../outside", fx.root.join("sub/up")).unwrap();
        symlink("/proc/self/root/etc/hostname", fx.root.join("magic")).unwrap();
        for url in ["/relesc.txt", "/sub/up/secret.txt", "/magic"] {
            assert_eq!(err(fx.get(url)), ResolveError::OutsideRoot, "{url}");
        }
        assert_eq!(err(fx.get("/esc.txt")), ResolveError::OutsideRoot);
        assert_eq!(err(fx.get("/escdir/secret.txt")), ResolveError::OutsideRoot);
        // No redirect may reveal that the escaping directory exists.
        assert_eq!(err(fx.get("/escdir")), ResolveError::OutsideRoot);

        let opts = ResolveOptions {
            follow_symlinks_outside_root: true,
            ..ResolveOptions::default()
        };
        assert_eq!(body(fx.get_with("/esc.txt", &opts)), "s");
        assert_eq!(body(fx.get_with("/escdir/secret.txt", &opts)), "s");
    }

    #[test]
    fn index_symlink_escaping_root_is_not_found() {
        let fx = Fixture::new();
        fs::write(fx.outside.join("index.html"), "s").unwrap();
        fx.dir("d");
        symlink(fx.outside.join("index.html"), fx.root.join("d/index.html")).unwrap();
        assert_eq!(err(fx.get("/d/")), ResolveError::OutsideRoot);
    }

    #[test]
    fn index_symlink_inside_root_is_served() {
        let fx = Fixture::new();
        fx.file("pages/home.html", "home");
        fx.dir("d");
        symlink("../pages/home.html", fx.root.join("d/index.html")).unwrap();
        assert_eq!(body(fx.get("/d/")), "home");
    }

    #[test]
    fn symlink_loops_end() {
        let fx = Fixture::new();
        symlink("b", fx.root.join("a")).unwrap();
        symlink("a", fx.root.join("b")).unwrap();
        assert_eq!(err(fx.get("/a")), ResolveError::SymlinkLoop);
    }

    #[test]
    fn redirect_never_names_another_host() {
        let fx = Fixture::new();
        fx.file("docs/index.html", "d");
        let opts = ResolveOptions::default();
        for (url, want) in [
            ("//docs", "/docs/"),
            ("///docs", "/docs/"),
            ("/./docs", "/./docs/"),
        ] {
            let root = RootDir::open(&fx.root).unwrap();
            match resolve(&root, url, None, &opts) {
                Ok(Resolved::RedirectToSlash(loc)) => assert_eq!(loc, want, "{url}"),
                other => panic!("{url}: {other:?}"),
            }
        }
    }

    #[test]
    fn dangling_symlink_is_not_found() {
        let fx = Fixture::new();
        symlink(fx.root.join("nowhere"), fx.root.join("dangling")).unwrap();
        assert_eq!(err(fx.get("/dangling")), ResolveError::Missing);
    }

    #[test]
    fn non_regular_files_are_not_found() {
        let fx = Fixture::new();
        let _listener = std::os::unix::net::UnixListener::bind(fx.root.join("sock")).unwrap();
        assert_eq!(err(fx.get("/sock")), ResolveError::NotAFile);
    }

    #[test]
    fn permission_denied_is_forbidden() {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            io_error(io::Error::from(io::ErrorKind::PermissionDenied)),
            ResolveError::Permission
        );
        assert_eq!(
            io_error(io::Error::from_raw_os_error(libc::ENOENT)),
            ResolveError::Missing
        );
        // `runtime::sys::beneath` refuses an escape it finds itself with an
        // error of its own, with no OS code.
        assert_eq!(
            io_error(io::Error::new(io::ErrorKind::NotFound, "outside")),
            ResolveError::OutsideRoot
        );
        assert_eq!(
            io_error(io::Error::from_raw_os_error(libc::EXDEV)),
            ResolveError::OutsideRoot
        );

        let fx = Fixture::new();
        let path = fx.file("locked.txt", "x");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o000)).unwrap();
        // Root (e.g. in CI containers) bypasses permissions; only assert when they bite.
        if File::open(&path).is_err() {
            assert_eq!(err(fx.get("/locked.txt")), ResolveError::Permission);
        }
    }

    #[test]
    fn status_codes() {
        assert_eq!(ResolveError::BadEscape.status(), 400);
        assert_eq!(ResolveError::Dotfile.status(), 404);
        assert_eq!(ResolveError::OutsideRoot.status(), 404);
        assert_eq!(ResolveError::Os(libc::ENAMETOOLONG).status(), 404);
        assert_eq!(ResolveError::Permission.status(), 403);
        assert_eq!(
            ResolveError::OutsideRoot.to_string(),
            "a symlink leads outside the root (static.follow_symlinks_outside_root = false)"
        );
        assert!(ResolveError::Os(libc::ENAMETOOLONG)
            .to_string()
            .contains("too long"));
    }
}
