//! Maps a request path onto a file under the document root, refusing anything
//! that could escape it.

use std::fs::{self, File, Metadata};
use std::io;
use std::path::{Path, PathBuf};

/// How paths are resolved; built once from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveOptions {
    /// File served when a directory is asked for (e.g. "index.html").
    pub index: String,
    /// Serve files whose canonical path lies outside the root.
    pub follow_symlinks_outside_root: bool,
    /// Serve names starting with '.' (e.g. ".well-known").
    pub show_dotfiles: bool,
}

impl Default for ResolveOptions {
    fn default() -> Self {
        ResolveOptions {
            index: "index.html".to_string(),
            follow_symlinks_outside_root: false,
            show_dotfiles: false,
        }
    }
}

/// What the request path refers to.
#[derive(Debug)]
pub enum Resolved {
    /// A regular file to serve (for a directory: its index file). `direct`:
    /// no symlink was followed, so the canonical path is the URL's path.
    /// `file` is open for reading: opening is how read permission is
    /// checked, and the caller serves from it rather than opening again.
    File {
        path: PathBuf,
        meta: Metadata,
        direct: bool,
        file: File,
    },
    /// A directory asked for without trailing slash: the Location value.
    RedirectToSlash(String),
}

/// Why the request path cannot be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolveError {
    /// 400: malformed percent-encoding, NUL, encoded slash/backslash, bad UTF-8.
    BadRequest,
    /// 404: missing, traversal, dotfile, symlink escape, directory without index.
    NotFound,
    /// 403: the OS denied access.
    Forbidden,
}

impl ResolveError {
    /// The HTTP status code to answer with.
    pub fn status(self) -> u16 {
        match self {
            ResolveError::BadRequest => 400,
            ResolveError::NotFound => 404,
            ResolveError::Forbidden => 403,
        }
    }
}

/// Resolves `url_path` (percent-encoded, without query) against the canonical
/// `root`. `query` is only used to build the trailing-slash redirect.
pub fn resolve(
    root: &Path,
    url_path: &str,
    query: Option<&str>,
    opts: &ResolveOptions,
) -> Result<Resolved, ResolveError> {
    if !url_path.starts_with('/') {
        return Err(ResolveError::BadRequest);
    }

    // Decode every segment first so malformed input is a 400 wherever it sits.
    let segments = url_path
        .split('/')
        .map(decode_segment)
        .collect::<Result<Vec<_>, _>>()?;

    let mut relative = PathBuf::new();
    for segment in &segments {
        match segment.as_str() {
            "" | "." => continue,
            // Never walk up, not even when it would stay inside the root.
            ".." => return Err(ResolveError::NotFound),
            s if s.starts_with('.') && !opts.show_dotfiles => return Err(ResolveError::NotFound),
            s => relative.push(s),
        }
    }

    let literal = root.join(relative);
    let target = canonical_inside(root, &literal, opts)?;
    let meta = fs::metadata(&target).map_err(io_error)?;

    if meta.is_dir() {
        if !url_path.ends_with('/') {
            return Ok(Resolved::RedirectToSlash(redirect_location(
                url_path, query,
            )));
        }
        // The index may itself be a symlink, so it gets the same checks.
        let index = canonical_inside(root, &target.join(&opts.index), opts)?;
        let index_meta = fs::metadata(&index).map_err(io_error)?;
        let direct = index == literal.join(&opts.index);
        return regular_file(index, index_meta, direct);
    }
    // "/file.txt/" names a directory that does not exist.
    if url_path.ends_with('/') {
        return Err(ResolveError::NotFound);
    }
    let direct = target == literal;
    regular_file(target, meta, direct)
}

/// Percent-decodes one path segment exactly once.
fn decode_segment(raw: &str) -> Result<String, ResolveError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = if bytes[i] == b'%' {
            let hi = bytes.get(i + 1).and_then(|&c| hex_value(c));
            let lo = bytes.get(i + 2).and_then(|&c| hex_value(c));
            match (hi, lo) {
                (Some(hi), Some(lo)) => {
                    i += 3;
                    hi << 4 | lo
                }
                _ => return Err(ResolveError::BadRequest),
            }
        } else {
            i += 1;
            bytes[i - 1]
        };
        // An encoded separator must never become a segment boundary.
        if matches!(b, 0 | b'/' | b'\\') {
            return Err(ResolveError::BadRequest);
        }
        out.push(b);
    }
    String::from_utf8(out).map_err(|_| ResolveError::BadRequest)
}

fn hex_value(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Canonicalizes `path` (resolving symlinks) and enforces root containment.
fn canonical_inside(
    root: &Path,
    path: &Path,
    opts: &ResolveOptions,
) -> Result<PathBuf, ResolveError> {
    let canonical = path.canonicalize().map_err(io_error)?;
    if !opts.follow_symlinks_outside_root && !canonical.starts_with(root) {
        return Err(ResolveError::NotFound);
    }
    Ok(canonical)
}

/// Only regular files are served; fifos and sockets could block or leak.
fn regular_file(path: PathBuf, meta: Metadata, direct: bool) -> Result<Resolved, ResolveError> {
    if !meta.is_file() {
        return Err(ResolveError::NotFound);
    }
    // Metadata does not reveal read permission for this process; opening does.
    let file = File::open(&path).map_err(io_error)?;
    Ok(Resolved::File {
        path,
        meta,
        direct,
        file,
    })
}

fn redirect_location(url_path: &str, query: Option<&str>) -> String {
    match query {
        Some(q) => format!("{url_path}/?{q}"),
        None => format!("{url_path}/"),
    }
}

fn io_error(err: io::Error) -> ResolveError {
    match err.kind() {
        io::ErrorKind::PermissionDenied => ResolveError::Forbidden,
        _ => ResolveError::NotFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;
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
            resolve(&self.root, url, None, &ResolveOptions::default())
        }

        fn get_with(&self, url: &str, opts: &ResolveOptions) -> Result<Resolved, ResolveError> {
            resolve(&self.root, url, None, opts)
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
        assert_eq!(err(fx.get("/missing.txt")), ResolveError::NotFound);
    }

    #[test]
    fn empty_and_dot_segments_are_skipped() {
        let fx = Fixture::new();
        let b = fx.file("sub/b.txt", "b");
        assert_eq!(file_path(fx.get("//sub//./b.txt")), b);
        assert_eq!(file_path(fx.get("/%2e/sub/%2E/b.txt")), b);
    }

    #[test]
    fn dot_dot_is_rejected_even_inside_root() {
        let fx = Fixture::new();
        fx.file("a.txt", "a");
        fx.file("sub/b.txt", "b");
        assert_eq!(err(fx.get("/sub/../a.txt")), ResolveError::NotFound);
        assert_eq!(err(fx.get("/../outside/x")), ResolveError::NotFound);
        assert_eq!(err(fx.get("/%2e%2e/outside/x")), ResolveError::NotFound);
        assert_eq!(err(fx.get("/sub/%2E%2E/a.txt")), ResolveError::NotFound);
        assert_eq!(err(fx.get("/sub/.%2e/a.txt")), ResolveError::NotFound);
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
        for url in ["/%zz", "/a%4", "/a%", "/%4g.txt", "/%%41"] {
            assert_eq!(err(fx.get(url)), ResolveError::BadRequest, "{url}");
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
            assert_eq!(err(fx.get(url)), ResolveError::BadRequest, "{url}");
        }
    }

    #[test]
    fn bad_request_wins_over_not_found() {
        let fx = Fixture::new();
        assert_eq!(err(fx.get("/../%zz")), ResolveError::BadRequest);
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
        assert_eq!(err(fx.get("/.env")), ResolveError::NotFound);
        assert_eq!(err(fx.get("/%2eenv")), ResolveError::NotFound);
        assert_eq!(
            err(fx.get("/.well-known/security.txt")),
            ResolveError::NotFound
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
        assert_eq!(err(fx.get_with("/..", &opts)), ResolveError::NotFound);
    }

    #[test]
    fn directory_without_slash_redirects_keeping_encoding_and_query() {
        let fx = Fixture::new();
        fx.file("my dir/index.html", "i");
        let opts = ResolveOptions::default();
        match resolve(&fx.root, "/my%20dir", Some("a=1&b"), &opts) {
            Ok(Resolved::RedirectToSlash(loc)) => assert_eq!(loc, "/my%20dir/?a=1&b"),
            other => panic!("{other:?}"),
        }
        match resolve(&fx.root, "/my%20dir", None, &opts) {
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
        assert_eq!(err(fx.get("/empty/")), ResolveError::NotFound);
        // An "index.html" that is itself a directory is not served.
        assert_eq!(err(fx.get("/weird/")), ResolveError::NotFound);
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
        assert_eq!(err(fx.get("/a.txt/")), ResolveError::NotFound);
        assert_eq!(err(fx.get("/a.txt/x")), ResolveError::NotFound);
    }

    #[test]
    fn symlink_inside_root_is_served() {
        let fx = Fixture::new();
        let real = fx.file("real/a.txt", "a");
        symlink(fx.root.join("real/a.txt"), fx.root.join("link.txt")).unwrap();
        symlink(fx.root.join("real"), fx.root.join("linkdir")).unwrap();
        assert_eq!(file_path(fx.get("/link.txt")), real);
        assert_eq!(file_path(fx.get("/linkdir/a.txt")), real);
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
        assert_eq!(err(fx.get("/esc.txt")), ResolveError::NotFound);
        assert_eq!(err(fx.get("/escdir/secret.txt")), ResolveError::NotFound);
        // No redirect may reveal that the escaping directory exists.
        assert_eq!(err(fx.get("/escdir")), ResolveError::NotFound);

        let opts = ResolveOptions {
            follow_symlinks_outside_root: true,
            ..ResolveOptions::default()
        };
        let secret = fx.outside.join("secret.txt");
        assert_eq!(file_path(fx.get_with("/esc.txt", &opts)), secret);
        assert_eq!(file_path(fx.get_with("/escdir/secret.txt", &opts)), secret);
    }

    #[test]
    fn index_symlink_escaping_root_is_not_found() {
        let fx = Fixture::new();
        fs::write(fx.outside.join("index.html"), "s").unwrap();
        fx.dir("d");
        symlink(fx.outside.join("index.html"), fx.root.join("d/index.html")).unwrap();
        assert_eq!(err(fx.get("/d/")), ResolveError::NotFound);
    }

    #[test]
    fn dangling_symlink_is_not_found() {
        let fx = Fixture::new();
        symlink(fx.root.join("nowhere"), fx.root.join("dangling")).unwrap();
        assert_eq!(err(fx.get("/dangling")), ResolveError::NotFound);
    }

    #[test]
    fn non_regular_files_are_not_found() {
        let fx = Fixture::new();
        let _listener = std::os::unix::net::UnixListener::bind(fx.root.join("sock")).unwrap();
        assert_eq!(err(fx.get("/sock")), ResolveError::NotFound);
    }

    #[test]
    fn permission_denied_is_forbidden() {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            io_error(io::Error::from(io::ErrorKind::PermissionDenied)),
            ResolveError::Forbidden
        );
        assert_eq!(
            io_error(io::Error::from(io::ErrorKind::NotFound)),
            ResolveError::NotFound
        );

        let fx = Fixture::new();
        let path = fx.file("locked.txt", "x");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o000)).unwrap();
        // Root (e.g. in CI containers) bypasses permissions; only assert when they bite.
        if File::open(&path).is_err() {
            assert_eq!(err(fx.get("/locked.txt")), ResolveError::Forbidden);
        }
    }

    #[test]
    fn status_codes() {
        assert_eq!(ResolveError::BadRequest.status(), 400);
        assert_eq!(ResolveError::NotFound.status(), 404);
        assert_eq!(ResolveError::Forbidden.status(), 403);
    }
}
