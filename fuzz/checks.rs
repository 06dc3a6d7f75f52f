//! The properties the fuzz targets check, shared with `tests/it/fuzz_corpus.rs`
//! (included there and in every target with `#[path]`), so the committed
//! corpora and every input that once crashed are replayed by `cargo test`
//! on stable, through the same code.
//!
//! Every function panics when a property fails; libFuzzer reports the
//! panic as a crash and the test fails.
#![allow(dead_code)]

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::{symlink, FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use conveyor::http::date::{fmt_http_date, parse_http_date};
use conveyor::http::{parse_request, BodyFraming, ChunkedDecoder, HttpError, Limits, Step};
use conveyor::runtime::sys::beneath::RootDir;
use conveyor::service::static_files::{
    content_range, evaluate, parse_range, resolve, unsatisfied_range, Decision, Preconditions,
    RangeOutcome, ResolveError, ResolveOptions, Resolved, Validators,
};

/// A small deterministic generator: split points and choices come from the
/// input itself, so a crash reproduces from its file alone.
struct Rng(u64);

impl Rng {
    fn from_input(data: &[u8]) -> Rng {
        // FNV-1a.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in data {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        Rng(h | 1)
    }

    fn next(&mut self) -> u64 {
        // xorshift64
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

// ---------------------------------------------------------------------------
// 1. Request preamble and body framing.

const STATUSES: [u16; 6] = [400, 414, 417, 431, 501, 505];

/// `parse_request` on `data` under the default limits and under small ones:
/// never panics; errors carry a known status; a complete request is the
/// same when parsed from exactly its preamble, and every shorter prefix of
/// it is "need more" (a request that arrives in pieces is never refused);
/// the framing it reports is consistent; a chunked body after it decodes
/// the same whole and split.
pub(crate) fn request(data: &[u8]) {
    let small = Limits {
        max_request_line: 64,
        max_header_bytes: 192,
        max_headers: 6,
    };
    for limits in [Limits::default(), small] {
        request_with(data, &limits);
    }
}

fn request_with(data: &[u8], limits: &Limits) {
    let result = parse_request(data, limits);
    assert_eq!(result, parse_request(data, limits), "deterministic");
    let req = match result {
        Err(e) => {
            assert!(STATUSES.contains(&e.status), "unexpected status {e:?}");
            assert!(!e.message.is_empty());
            return;
        }
        Ok(None) => {
            // Incomplete: bounded by the limits (else it must be an error).
            assert!(
                data.len() <= limits.max_request_line + limits.max_header_bytes,
                "{} bytes pending under {limits:?}",
                data.len()
            );
            return;
        }
        Ok(Some(req)) => req,
    };
    let n = req.preamble_len;
    assert!(
        n > 0 && n <= data.len(),
        "preamble_len {n} of {}",
        data.len()
    );
    assert!(n <= limits.max_request_line + limits.max_header_bytes);
    assert_eq!(
        parse_request(&data[..n], limits),
        Ok(Some(req.clone())),
        "same request from exactly its preamble"
    );
    // Arriving in pieces: every prefix must wait for more, never fail.
    let prefixes: Vec<usize> = if n <= 24 {
        (0..n).collect()
    } else {
        let mut rng = Rng::from_input(data);
        let mut some: Vec<usize> = (0..6).map(|_| rng.below(n)).chain([n - 1]).collect();
        // Reads that end between a CR and its LF.
        some.extend((1..n).filter(|&p| data[p - 1] == b'\r'));
        some
    };
    for p in prefixes {
        // fuzz/regressions/request/cr-at-line-limit: a read ending at the
        // CR of a line exactly at the limit once got a 414.
        let got = parse_request(&data[..p], limits);
        assert_eq!(got, Ok(None), "prefix {p} of a complete {n}-byte preamble");
    }

    assert!(
        req.minor_version <= 1,
        "minor version {}",
        req.minor_version
    );
    if req.minor_version == 1 {
        assert!(req.host.is_some(), "HTTP/1.1 without a host");
    }
    if req.target == "*" {
        assert_eq!(req.method.as_str(), "OPTIONS");
    } else {
        assert!(req.target.starts_with('/'), "target {:?}", req.target);
    }
    let rebuilt = match req.query() {
        Some(q) => format!("{}?{q}", req.path()),
        None => req.path().to_string(),
    };
    assert_eq!(rebuilt, req.target);
    assert!(!req.path().contains('?'));
    if req.expect_continue {
        assert_eq!(req.minor_version, 1);
    }
    if req.minor_version == 0 && req.keep_alive {
        // HTTP/1.0 keeps the connection only when asked to.
        assert!(String::from_utf8_lossy(&data[..n])
            .to_ascii_lowercase()
            .contains("keep-alive"));
    }
    let rest = &data[n..];
    match req.body {
        BodyFraming::None => {}
        BodyFraming::Length(_) => {}
        BodyFraming::Chunked => {
            assert_eq!(req.minor_version, 1, "chunked in HTTP/1.0");
            chunked(rest);
        }
    }
}

// ---------------------------------------------------------------------------
// 2. Chunked decoding, differentially.

/// What feeding a whole body to a decoder produced.
#[derive(Debug, PartialEq, Eq)]
struct Decoded {
    body: Vec<u8>,
    /// Ok(Some(n)): done after `n` bytes; Ok(None): wants more at the end.
    end: Result<Option<usize>, HttpError>,
}

/// Plays the caller: feeds `data` in pieces ending at `cuts` (sorted),
/// keeping unconsumed bytes, and checks every `Step` on the way.
fn decode_in_pieces(data: &[u8], cuts: &[usize]) -> Decoded {
    let mut dec = ChunkedDecoder::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut body = Vec::new();
    let mut consumed = 0usize;
    let mut from = 0usize;
    for &cut in cuts.iter().chain([&data.len()]) {
        let cut = cut.clamp(from, data.len());
        pending.extend_from_slice(&data[from..cut]);
        from = cut;
        loop {
            let step = match dec.step(&pending) {
                Ok(step) => step,
                Err(e) => {
                    assert!(e.status == 400 || e.status == 431, "status {e:?}");
                    return Decoded { body, end: Err(e) };
                }
            };
            match step {
                Step::Data(r) => {
                    assert!(r.start < r.end && r.end <= pending.len(), "{r:?}");
                    body.extend_from_slice(&pending[r.clone()]);
                    pending.drain(..r.end);
                    consumed += r.end;
                }
                Step::Skip(n) => {
                    assert!(n > 0 && n <= pending.len(), "Skip({n})");
                    pending.drain(..n);
                    consumed += n;
                }
                Step::NeedMore => {
                    assert!(!dec.is_done());
                    break;
                }
                Step::Done(n) => {
                    assert!(n <= pending.len(), "Done({n})");
                    assert!(dec.is_done());
                    assert_eq!(dec.step(&pending[n..]), Ok(Step::Done(0)));
                    return Decoded {
                        body,
                        end: Ok(Some(consumed + n)),
                    };
                }
            }
        }
    }
    Decoded {
        body,
        end: Ok(None),
    }
}

/// The chunked decoder gives the same bytes and the same error (or end)
/// whether `data` arrives whole, one byte at a time, split at any single
/// boundary (every one for short inputs) or at random points chosen from
/// the input; decoded data is never more than the input.
pub(crate) fn chunked(data: &[u8]) {
    let whole = decode_in_pieces(data, &[]);
    assert!(whole.body.len() <= data.len());
    if let Ok(Some(n)) = whole.end {
        assert!(n <= data.len());
        // Everything after the end is left alone: the same body ends there.
        assert_eq!(decode_in_pieces(&data[..n], &[]), whole);
    }
    let bytewise: Vec<usize> = (1..data.len()).collect();
    assert_eq!(decode_in_pieces(data, &bytewise), whole, "byte at a time");
    if data.len() <= 24 {
        for i in 0..=data.len() {
            assert_eq!(decode_in_pieces(data, &[i]), whole, "split at {i}");
        }
    }
    let mut rng = Rng::from_input(data);
    for _ in 0..4 {
        let mut cuts: Vec<usize> = (0..1 + rng.below(6))
            .map(|_| rng.below(data.len() + 1))
            .collect();
        cuts.sort_unstable();
        assert_eq!(decode_in_pieces(data, &cuts), whole, "cuts {cuts:?}");
    }
}

// ---------------------------------------------------------------------------
// 3. Path resolution against a fixed tree.

/// A temporary tree, `base/www` (the root) beside `base/outside` (holding
/// `secret.txt`), removed on drop.
pub(crate) struct ResolveFixture {
    base: PathBuf,
    root: PathBuf,
    kernel: RootDir,
    walk: RootDir,
    /// (dev, ino) of the secret: never to be opened.
    secret: (u64, u64),
    /// (dev, ino) of every regular file inside the root.
    inside: HashSet<(u64, u64)>,
}

const SECRET: &[u8] = b"SECRET outside the root";

impl ResolveFixture {
    pub(crate) fn new() -> ResolveFixture {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let base = std::env::temp_dir().join(format!(
            "conveyor-fuzz-resolve-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&base);
        fs::create_dir_all(base.join("www/sub/deeper")).expect("fixture dirs");
        fs::create_dir_all(base.join("www/noindex")).expect("fixture dirs");
        fs::create_dir_all(base.join("outside")).expect("fixture dirs");
        let base = base.canonicalize().expect("canonical base");
        let root = base.join("www");
        let outside = base.join("outside");
        fs::write(outside.join("secret.txt"), SECRET).expect("secret");
        fs::write(outside.join("index.html"), SECRET).expect("secret index");
        for (rel, body) in [
            ("index.html", "root index"),
            ("a.txt", "a"),
            ("A.txt", "capital A"),
            // Decoded once: "/%2541.txt" is this file, "/%41.txt" is A.txt.
            ("%41.txt", "literal percent 41"),
            ("%2e%2e", "literal percent dots"),
            ("my file.txt", "space"),
            ("caf\u{e9}.txt", "cafe"),
            (".hidden", "dotfile"),
            ("sub/index.html", "sub index"),
            ("sub/b.txt", "b"),
            ("sub/deeper/c.txt", "c"),
            ("noindex/x.txt", "x"),
        ] {
            fs::write(root.join(rel), body).expect("fixture file");
        }
        for (link, target) in [
            ("link.txt", PathBuf::from("sub/b.txt")),
            ("linkdir", PathBuf::from("sub")),
            ("sub/up", PathBuf::from("../a.txt")),
            ("esc", PathBuf::from("../outside")),
            ("esc.txt", PathBuf::from("../outside/secret.txt")),
            ("abs.txt", outside.join("secret.txt")),
            ("sub/deeper/out", PathBuf::from("../../../outside")),
            ("dangling", PathBuf::from("nowhere")),
            ("loop", PathBuf::from("loop")),
        ] {
            symlink(&target, root.join(link)).expect("fixture symlink");
        }
        symlink("../../outside/index.html", root.join("noindex/index.html")).ok();
        let id = |p: &Path| {
            let m = fs::metadata(p).expect("fixture metadata");
            (m.dev(), m.ino())
        };
        let secret = id(&outside.join("secret.txt"));
        let mut inside = HashSet::new();
        let mut dirs = vec![root.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in fs::read_dir(&dir).expect("read fixture") {
                let entry = entry.expect("fixture entry");
                let meta = fs::symlink_metadata(entry.path()).expect("fixture entry");
                if meta.is_dir() {
                    dirs.push(entry.path());
                } else if meta.is_file() {
                    inside.insert((meta.dev(), meta.ino()));
                }
            }
        }
        assert!(!inside.contains(&secret));
        ResolveFixture {
            kernel: RootDir::open(&root).expect("root"),
            walk: RootDir::without_openat2(&root).expect("root"),
            base,
            root,
            secret,
            inside,
        }
    }

    /// `data` (as a URL path, lossily UTF-8) resolved with and without
    /// `openat2`, with dotfiles hidden and shown: both ways agree; nothing
    /// outside the root is ever opened; the answer is the reference model's.
    pub(crate) fn check(&self, data: &[u8]) {
        let url = String::from_utf8_lossy(data);
        for show_dotfiles in [false, true] {
            let opts = ResolveOptions {
                show_dotfiles,
                ..ResolveOptions::default()
            };
            let kernel = resolve(&self.kernel, &url, None, &opts);
            let walk = resolve(&self.walk, &url, None, &opts);
            let a = self.outcome(&url, kernel);
            let b = self.outcome(&url, walk);
            // The two ways may give different reasons for the same status
            // (a path past PATH_MAX is ENAMETOOLONG to openat2, while the
            // walk stops at its first missing component): compare statuses.
            let status = |o: &Outcome| match o {
                Outcome::Error(e) => Outcome::Status(e.status()),
                other => other.clone(),
            };
            assert_eq!(
                status(&a),
                status(&b),
                "openat2 and the walk disagree on {url:?}: {a:?} / {b:?}"
            );
            let want = self.model(&url, show_dotfiles);
            for got in [&a, &b] {
                assert!(
                    want.accepts(got),
                    "{url:?} (dotfiles {show_dotfiles}): got {got:?}, model says {want:?}"
                );
            }
        }
    }

    /// What a resolution answered, checked for confinement on the way.
    fn outcome(&self, url: &str, r: Result<Resolved, ResolveError>) -> Outcome {
        match r {
            Ok(Resolved::File {
                path, meta, file, ..
            }) => {
                let id = (meta.dev(), meta.ino());
                assert_ne!(id, self.secret, "{url:?} opened the secret");
                assert!(
                    self.inside.contains(&id),
                    "{url:?} opened a file not in the root"
                );
                let mut head = [0u8; 64];
                let n = file.read_at(&mut head, 0).unwrap_or(0);
                assert_ne!(&head[..n], SECRET, "{url:?} read the secret");
                assert!(path.starts_with(&self.root), "{url:?} -> {path:?}");
                Outcome::File(id)
            }
            Ok(Resolved::RedirectToSlash(loc)) => {
                assert!(loc.starts_with('/') && !loc.starts_with("//"), "{loc:?}");
                assert!(loc.ends_with('/'));
                Outcome::Redirect(loc)
            }
            Err(e) => Outcome::Error(e),
        }
    }

    /// The reference: decode each segment once; skip empty and `.`
    /// segments, let `..` drop the one before it (never above the root,
    /// RFC 3986 §5.2.4); a trailing `/`, `.` or `..` names a directory;
    /// refuse dotfiles left after that; then ask the OS (`canonicalize`)
    /// where the path leads.
    fn model(&self, url: &str, show_dotfiles: bool) -> Expect {
        if !url.starts_with('/') {
            return Expect::Exactly(ResolveError::NotAbsolute);
        }
        let mut segments = Vec::new();
        for raw in url.split('/') {
            match decode_once(raw) {
                Ok(s) => segments.push(s),
                Err(e) => return Expect::Exactly(e),
            }
        }
        let dir_form =
            url.ends_with('/') || matches!(segments.last().map(String::as_str), Some("." | ".."));
        let mut kept: Vec<&str> = Vec::new();
        for s in &segments {
            match s.as_str() {
                "" | "." => {}
                ".." => {
                    kept.pop();
                }
                s => kept.push(s),
            }
        }
        if !show_dotfiles && kept.iter().any(|s| s.starts_with('.')) {
            return Expect::Exactly(ResolveError::Dotfile);
        }
        let mut path = self.root.clone();
        for s in &kept {
            path.push(s);
        }
        let Ok(real) = path.canonicalize() else {
            return Expect::NotFound;
        };
        if !real.starts_with(&self.root) {
            return Expect::Exactly(ResolveError::OutsideRoot);
        }
        let Ok(meta) = fs::metadata(&real) else {
            return Expect::NotFound;
        };
        if meta.is_dir() {
            if !dir_form {
                return Expect::Redirect;
            }
            let Ok(index) = real.join("index.html").canonicalize() else {
                return Expect::NotFound;
            };
            if !index.starts_with(&self.root) {
                return Expect::Exactly(ResolveError::OutsideRoot);
            }
            return match fs::metadata(&index) {
                Ok(m) if m.is_file() => Expect::File((m.dev(), m.ino())),
                _ => Expect::NotFound,
            };
        }
        if dir_form {
            return Expect::Exactly(ResolveError::NotADirectory);
        }
        Expect::File((meta.dev(), meta.ino()))
    }
}

impl Drop for ResolveFixture {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.base);
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    File((u64, u64)),
    Redirect(String),
    Error(ResolveError),
    /// An error reduced to its status, for comparing the two ways.
    Status(u16),
}

#[derive(Debug)]
enum Expect {
    File((u64, u64)),
    Redirect,
    /// Some 404 (which one depends on how the OS reported it).
    NotFound,
    Exactly(ResolveError),
}

impl Expect {
    fn accepts(&self, got: &Outcome) -> bool {
        match (self, got) {
            (Expect::File(want), Outcome::File(id)) => want == id,
            (Expect::Redirect, Outcome::Redirect(_)) => true,
            (Expect::NotFound, Outcome::Error(e)) => e.status() == 404,
            (Expect::Exactly(want), Outcome::Error(e)) => want == e,
            _ => false,
        }
    }
}

/// Percent-decoding of one segment, written apart from the server's.
fn decode_once(raw: &str) -> Result<String, ResolveError> {
    let mut out = Vec::new();
    let mut bytes = raw.bytes();
    while let Some(b) = bytes.next() {
        let b = if b == b'%' {
            let hex = |c: Option<u8>| c.and_then(|c| (c as char).to_digit(16));
            match (hex(bytes.next()), hex(bytes.next())) {
                (Some(h), Some(l)) => (h * 16 + l) as u8,
                _ => return Err(ResolveError::BadEscape),
            }
        } else {
            b
        };
        if b == 0 || b == b'/' || b == b'\\' {
            return Err(ResolveError::EncodedSeparator);
        }
        out.push(b);
    }
    String::from_utf8(out).map_err(|_| ResolveError::NotUtf8)
}

// ---------------------------------------------------------------------------
// 4. Range, conditional requests and dates.

/// `data` is `len` (8 bytes, little-endian) then lines: Range, If-Range,
/// If-None-Match, If-Match, If-Modified-Since, If-Unmodified-Since, and a
/// date. Checks `parse_range` bounds, HTTP-date round trips, and the
/// precondition rules that must hold whatever the header says.
pub(crate) fn conditional(data: &[u8]) {
    let (len, text) = match data.split_first_chunk::<8>() {
        Some((n, rest)) => (u64::from_le_bytes(*n), rest),
        None => (0, data),
    };
    let text = String::from_utf8_lossy(text);
    let mut lines = text.split('\n');
    let mut field = || lines.next().filter(|l| !l.is_empty());
    let (range, if_range, inm, im, ims, ius, date) = (
        field(),
        field(),
        field(),
        field(),
        field(),
        field(),
        field(),
    );

    for len in [len, len % 4096, 0, 1, u64::MAX] {
        for header in [range, date, if_range] {
            range_bounds(header, len);
        }
    }

    for s in [date, ims, ius, if_range, range].into_iter().flatten() {
        if let Some(t) = parse_http_date(s) {
            let d = t
                .duration_since(UNIX_EPOCH)
                .expect("HTTP dates are after 1970");
            assert_eq!(d.subsec_nanos(), 0, "{s:?}");
            let again = fmt_http_date(t);
            assert_eq!(parse_http_date(&again), Some(t), "{s:?} -> {again:?}");
        }
    }

    let last_modified = date
        .and_then(parse_http_date)
        .unwrap_or(UNIX_EPOCH + Duration::from_secs(784_111_777));
    let v = Validators {
        etag: format!("\"{:x}-0-{:x}\"", len >> 20, len & 0xfffff),
        last_modified,
    };
    let p = Preconditions {
        if_match: im,
        if_none_match: inm,
        if_modified_since: ims,
        if_unmodified_since: ius,
        if_range,
    };
    let d = evaluate(&p, &v);
    assert_eq!(d, evaluate(&p, &v));
    let strong = v.etag.as_str();
    let weak = format!("W/{strong}");
    let lm = fmt_http_date(last_modified);

    // If-None-Match: * or our tag (weak or strong) never lets a GET through.
    for our in ["*", strong, &weak] {
        let q = Preconditions {
            if_none_match: Some(our),
            ..p
        };
        assert!(
            !matches!(evaluate(&q, &v), Decision::Proceed { .. }),
            "If-None-Match {our:?} with {p:?}"
        );
    }
    // If-Match: * or our strong tag never fails on its own.
    for our in ["*", strong] {
        let q = Preconditions {
            if_match: Some(our),
            if_none_match: None,
            if_modified_since: None,
            ..p
        };
        assert!(matches!(evaluate(&q, &v), Decision::Proceed { .. }));
    }
    // A weak tag never matches If-Match.
    let q = Preconditions {
        if_match: Some(&weak),
        ..p
    };
    assert_eq!(evaluate(&q, &v), Decision::PreconditionFailed);
    // If-Range: our strong tag or our exact date honours Range; a weak tag never.
    let only_range = |r: &str| {
        evaluate(
            &Preconditions {
                if_range: Some(r),
                ..Preconditions::default()
            },
            &v,
        )
    };
    assert_eq!(only_range(strong), Decision::Proceed { honor_range: true });
    assert_eq!(only_range(&lm), Decision::Proceed { honor_range: true });
    assert_eq!(only_range(&weak), Decision::Proceed { honor_range: false });
    if let Some(r) = if_range {
        let got = only_range(r);
        assert!(matches!(got, Decision::Proceed { .. }));
        if r.trim_start().starts_with("W/") {
            assert_eq!(got, Decision::Proceed { honor_range: false }, "{r:?}");
        }
    }
}

fn range_bounds(header: Option<&str>, len: u64) {
    match parse_range(header, len) {
        RangeOutcome::Full => {}
        RangeOutcome::Partial {
            start,
            end_inclusive,
        } => {
            assert!(
                start <= end_inclusive && end_inclusive < len,
                "{header:?} len {len}: {start}-{end_inclusive}"
            );
            let _ = content_range(start, end_inclusive, len);
        }
        RangeOutcome::Unsatisfiable => {
            let _ = unsatisfied_range(len);
        }
    }
    if header.is_none() {
        assert_eq!(parse_range(header, len), RangeOutcome::Full);
    }
}

// ---------------------------------------------------------------------------
// 5. Configuration.

/// `Config::from_toml_str` never panics, and answers the same twice; an
/// error has a message.
pub(crate) fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let first = conveyor::config::Config::from_toml_str(text);
    let second = conveyor::config::Config::from_toml_str(text);
    match (&first, &second) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(a), Err(b)) => {
            assert_eq!(a.message(), b.message());
            assert!(!a.message().is_empty());
        }
        _ => panic!("{text:?}: {first:?} then {second:?}"),
    }
}

// ---------------------------------------------------------------------------
// 6. Accept-Encoding negotiation and `[[headers]]` path globs.

/// `data` is one byte choosing the available encodings, then the
/// Accept-Encoding value, then (after a NUL) a glob and a path separated by
/// a newline. `negotiate` picks identity or an available encoding, one
/// the client accepts (q > 0), the same whatever order `available` is in;
/// a glob never panics, matches the same with or without a leading `/`,
/// and one without `/` only looks at the file name.
pub(crate) fn negotiate(data: &[u8]) {
    use conveyor::config::Glob;
    use conveyor::service::static_files::{negotiate, Encoding};

    let Some((&mask, rest)) = data.split_first() else {
        return;
    };
    let (header, glob_part) = match rest.iter().position(|&b| b == 0) {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let header = String::from_utf8_lossy(header);
    let available: Vec<Encoding> = Encoding::ENCODED
        .into_iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, e)| e)
        .collect();
    let reversed: Vec<Encoding> = available.iter().rev().copied().collect();

    assert_eq!(negotiate(None, &available), Encoding::Identity);
    let got = negotiate(Some(&header), &available);
    assert_eq!(
        got,
        negotiate(Some(&header), &reversed),
        "order of available"
    );
    assert_eq!(negotiate(Some(&header), &[]), Encoding::Identity);
    if got != Encoding::Identity {
        assert!(available.contains(&got), "{got:?} not in {available:?}");
        // Refused by a last element (the last one naming a coding
        // counts), it is never chosen.
        let refused = format!("{header},{};q=0", got.token());
        assert_ne!(negotiate(Some(&refused), &available), got, "{refused:?}");
        // Taking the chosen one away never yields it again.
        let fewer: Vec<Encoding> = available.iter().copied().filter(|&e| e != got).collect();
        assert_ne!(negotiate(Some(&header), &fewer), got);
    }

    let Some(glob_part) = glob_part else {
        return;
    };
    let glob_part = String::from_utf8_lossy(glob_part);
    let (pattern, path) = glob_part.split_once('\n').unwrap_or((&glob_part, ""));
    if let Ok(glob) = Glob::parse(pattern) {
        assert_eq!(glob.as_str(), pattern);
        let bare = path.strip_prefix('/').unwrap_or(path);
        let m = glob.matches(path);
        assert_eq!(m, glob.matches(&format!("/{bare}")), "{pattern:?} {path:?}");
        if !pattern.contains('/') {
            let name = bare.rsplit('/').next().unwrap_or(bare);
            assert_eq!(m, glob.matches(name), "{pattern:?} {path:?}");
        }
    }
}

// ---------------------------------------------------------------------------
// 7. The PROXY protocol header.
// ---------------------------------------------------------------------------

/// `parse_proxy_header` on `data`: never panics; a header is at most 107
/// (v1) or 4096 (v2) bytes; every prefix of a header's bytes is "need
/// more" and exactly its bytes give the same header, so one that arrives
/// in pieces is never refused; once refused, more bytes never make it
/// acceptable; "need more" never holds more than the bound.
pub(crate) fn proxy(data: &[u8]) {
    use conveyor::http::parse_proxy_header;
    use conveyor::http::proxy::{V1_MAX, V2_MAX};

    let whole = parse_proxy_header(data);
    match whole {
        Ok(Some((header, len))) => {
            assert!(len <= data.len() && len <= V2_MAX, "{len}");
            if data.starts_with(b"PROXY ") {
                assert!(len <= V1_MAX, "{len}");
            }
            assert_eq!(parse_proxy_header(&data[..len]), Ok(Some((header, len))));
            let mut rng = Rng::from_input(data);
            for _ in 0..16 {
                let cut = rng.below(len);
                assert_eq!(parse_proxy_header(&data[..cut]), Ok(None), "prefix {cut}");
            }
        }
        Ok(None) => assert!(data.len() < V2_MAX, "{} bytes still need more", data.len()),
        Err(_) => {
            let mut longer = data.to_vec();
            longer.extend_from_slice(b"\r\n\r\nPROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n");
            assert!(parse_proxy_header(&longer).is_err(), "refused, then taken");
        }
    }
}

// ---------------------------------------------------------------------------
// 8. The per-client rate step against the handler's parser.
// ---------------------------------------------------------------------------

/// The requests the handler reads from `input` in one turn, as the step
/// must count them: `parse_request` at each start, until one it does not
/// accept as complete, the first with a body, or the first that closes.
fn handler_reading(
    input: &[u8],
    client: Result<conveyor::config::Client, conveyor::config::Client>,
    config: &conveyor::config::Config,
    limits: &Limits,
) -> Vec<conveyor::stages::CountedPreamble> {
    use conveyor::http::Method;
    use conveyor::service::client::forwarded_for;
    use conveyor::service::redirect::never_redirected;

    let mut model = Vec::new();
    let mut at = 0;
    while at < input.len() {
        let Ok(Some(req)) = parse_request(&input[at..], limits) else {
            break;
        };
        let counted = conveyor::stages::CountedPreamble {
            start: at,
            len: req.preamble_len,
            exempt: never_redirected(req.path(), config),
            client: match client {
                Ok(client) => client,
                Err(peer) => forwarded_for(&config.proxy, peer, &req, &input[at..]),
            },
            has_body: req.body != BodyFraming::None,
            keep_alive: req.keep_alive,
            http10: req.minor_version == 0,
            head: req.method == Method::Head,
        };
        let last = counted.has_body || !counted.keep_alive;
        at += counted.len;
        model.push(counted);
        if last {
            break;
        }
    }
    model
}

/// `scan_plain` (the step's own line scan) on `buf`: when it reads a
/// request, the handler's parser reads the same one (length, version, no
/// body, keep-alive, path, HEAD).
fn plain_agrees(buf: &[u8], limits: &Limits) {
    use conveyor::http::{scan_plain, Method};

    let Some(plain) = scan_plain(buf, limits) else {
        return;
    };
    let req = match parse_request(buf, limits) {
        Ok(Some(req)) => req,
        other => panic!("the scan read {plain:?}, the parser {other:?}"),
    };
    assert_eq!(plain.len, req.preamble_len, "where it ends");
    assert_eq!((req.minor_version, req.body), (1, BodyFraming::None));
    assert_eq!(plain.keep_alive, req.keep_alive, "keep-alive");
    assert_eq!(plain.path, req.path(), "path");
    assert_eq!(plain.head, req.method == Method::Head, "HEAD");
}

/// The first byte picks the limits (default or small) and the peer (an
/// untrusted one, or a trusted proxy whose requests name their clients in
/// `X-Forwarded-For`); the rest is what a connection has buffered. The
/// step counts exactly the requests the handler will answer this turn,
/// with the same boundaries, client, exemption and framing, never one the
/// handler's parser refuses or has not got whole; the bytes arriving in
/// two reads give, up to the cut, the same count; its scan never reads a
/// request otherwise than the parser, wherever one may start.
pub(crate) fn per_client_step(data: &[u8]) {
    use conveyor::config::{AddrRange, Client, Config};
    use conveyor::stages::counted_preambles;

    let Some((&mode, input)) = data.split_first() else {
        return;
    };
    let mut config = Config::default();
    if mode & 1 == 1 {
        config.limits.max_request_line = 64;
        config.limits.max_header_bytes = 192;
        config.limits.max_headers = 6;
    }
    config.proxy.trusted = vec![AddrRange::parse("10.0.0.0/8").expect("a range")];
    let client = match mode & 2 {
        0 => Ok(Client::Unix),
        _ => Err(Client::Ip([10, 0, 0, 1].into())),
    };
    let limits = Limits {
        max_request_line: config.limits.max_request_line,
        max_header_bytes: config.limits.max_header_bytes,
        max_headers: config.limits.max_headers,
    };
    let counted = counted_preambles(input, client, &config);
    let model = handler_reading(input, client, &config, &limits);
    assert_eq!(counted, model, "the step and the handler disagree");
    for at in model.iter().map(|r| r.start).chain([0]) {
        plain_agrees(&input[at..], &limits);
    }
    let mut rng = Rng::from_input(data);
    for _ in 0..4 {
        let at = rng.below(input.len());
        plain_agrees(&input[at..], &limits);
        let cut = rng.below(input.len() + 1);
        let early = counted_preambles(&input[..cut], client, &config);
        let whole: Vec<_> = counted
            .iter()
            .filter(|r| r.start + r.len <= cut)
            .cloned()
            .collect();
        assert_eq!(early, whole, "read up to {cut}");
    }
}

// ---------------------------------------------------------------------------
// 9. HPACK (RFC 7541), the native HTTP/2 engine's header decoder.
// ---------------------------------------------------------------------------

/// `hpack::Decoder` on header blocks cut from `data` (its first two bytes
/// choose the table size allowed and the header list limit), one table
/// across the blocks as on a connection: never panics; the dynamic
/// table never holds more than allowed; the fields handed over never
/// pass the limit, and past it the block is only counted; a list within
/// the limit is handed over whole. Then the encoder's fields, from the
/// same bytes, decode back to themselves (names lowercased).
pub(crate) fn hpack(data: &[u8]) {
    use conveyor::http::hpack::{encode_field, encode_status, Decoder};

    const TABLES: [usize; 4] = [0, 64, 256, 4096];
    const LIMITS: [usize; 4] = [0, 100, 1000, 16_384];
    let (allowed, limit, rest) = match data {
        [a, l, rest @ ..] => (TABLES[usize::from(a & 3)], LIMITS[usize::from(l & 3)], rest),
        _ => return,
    };
    let mut rng = Rng::from_input(data);
    let mut decoder = Decoder::new(allowed);
    let mut rest = rest;
    while !rest.is_empty() {
        let cut = 1 + rng.below(rest.len());
        let (block, more) = rest.split_at(cut);
        rest = more;
        let mut handed = 0usize;
        let result = decoder.decode(block, limit, &mut |name, value| {
            handed += name.len() + value.len() + 32;
        });
        assert!(
            decoder.table_size() <= allowed,
            "table {} over {allowed}",
            decoder.table_size()
        );
        assert!(handed <= limit, "handed {handed} over the limit {limit}");
        let Ok(decoded) = result else {
            // A compression error ends the connection: no more blocks.
            break;
        };
        match decoded.over {
            false => assert_eq!(decoded.size, handed, "a list within the limit, whole"),
            true => assert!(decoded.size > limit, "over at {} of {limit}", decoded.size),
        }
    }

    // The encoder: fields cut from the input decode back as written.
    let mut block = Vec::new();
    let mut want: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let status = 100 + (rng.next() % 900) as u16;
    encode_status(&mut block, status);
    want.push((b":status".to_vec(), status.to_string().into_bytes()));
    let mut bytes = &data[2.min(data.len())..];
    while bytes.len() >= 2 && want.len() < 32 {
        let n = 1 + rng.below(bytes.len().min(40));
        let (name, more) = bytes.split_at(n);
        let v = rng.below(more.len() + 1);
        let (value, more) = more.split_at(v);
        bytes = more;
        encode_field(&mut block, name, value);
        want.push((name.to_ascii_lowercase(), value.to_vec()));
    }
    let mut got = Vec::new();
    let decoded = Decoder::new(4096)
        .decode(&block, usize::MAX, &mut |n, v| {
            got.push((n.to_vec(), v.to_vec()))
        })
        .expect("the encoder's block decodes");
    assert!(!decoded.over);
    assert_eq!(got, want, "encoded fields decode to themselves");
    hpack_encoder(data, &mut rng);
}

/// The per-connection `hpack::Encoder` over blocks of fields cut from
/// `data` (names often ones it indexes), with the client's table size
/// changed and the table dropped between blocks: one decoder reads every
/// block back as written, so the two tables stay in step.
fn hpack_encoder(data: &[u8], rng: &mut Rng) {
    use conveyor::http::hpack::{Decoder, Encoder};

    const NAMES: [&[u8]; 8] = [
        b"Date",
        b"ETag",
        b"content-type",
        b"Content-Length",
        b"server",
        b"set-cookie",
        b"Last-Modified",
        b"x-other",
    ];
    const SIZES: [usize; 6] = [0, 40, 100, 1000, 4096, 1 << 20];
    let mut encoder = Encoder::new();
    // The client's decoder: 4096 by default, at most what it last set.
    let mut allowed = 4096;
    let mut decoder = Decoder::new(1 << 20);
    let mut bytes = &data[2.min(data.len())..];
    while !bytes.is_empty() {
        match rng.below(8) {
            0 => encoder.release(),
            1 => {
                allowed = SIZES[rng.below(SIZES.len())];
                encoder.set_limit(allowed);
            }
            _ => {}
        }
        let mut block = Vec::new();
        let mut want: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let status = 100 + (rng.next() % 900) as u16;
        encoder.status(&mut block, status);
        want.push((b":status".to_vec(), status.to_string().into_bytes()));
        for _ in 0..1 + rng.below(8) {
            let name = NAMES[rng.below(NAMES.len())];
            // Short values repeat: the table is found and missed.
            let v = rng.below(bytes.len().min(6) + 1);
            let (value, more) = bytes.split_at(v);
            bytes = more;
            encoder.field(&mut block, name, value);
            want.push((name.to_ascii_lowercase(), value.to_vec()));
        }
        let mut got = Vec::new();
        let decoded = decoder
            .decode(&block, usize::MAX, &mut |n, v| {
                got.push((n.to_vec(), v.to_vec()))
            })
            .expect("the encoder's block decodes on the same table");
        assert!(!decoded.over);
        assert_eq!(got, want, "encoded fields decode to themselves");
        assert!(decoder.table_size() <= 4096);
        assert!(encoder.table_size() <= decoder.table_size());
        assert!(encoder.table_size() <= allowed.min(conveyor::http::hpack::TABLE_CAP));
    }
}

// ---------------------------------------------------------------------------
// 10. The native HTTP/2 engine's connection, fed frames over a socket.
// ---------------------------------------------------------------------------

/// The settings a connection fuzzed by [`h2_connection`] wants of its
/// server: short timeouts, so that a connection the check leaves is
/// closed soon whatever state it was left in.
pub(crate) fn h2_fuzz_config(config: &mut conveyor::config::Config) {
    config.timeouts.header_read = Duration::from_secs(1);
    // A body cut short: the handler gives up soon even if the client's
    // EOF were missed (it once was, by the runtime, one run in a few
    // hundred; tests/it/missed_close.rs holds the fix).
    config.timeouts.body_read = Duration::from_secs(1);
    config.timeouts.keepalive_idle = Duration::from_secs(1);
    config.timeouts.write = Duration::from_secs(1);
}

/// Sends `data` as the frames of an h2c connection to the server at
/// `addr` (after the preface and an empty SETTINGS), half-closes, and
/// reads what comes back: the server never panics (a panic aborts the
/// fuzzer), every frame it sends is well formed (a 9-byte header, a
/// length within 16 KiB, the stream id's reserved bit clear), and it
/// closes the connection within a bound: no input leaves it hanging.
pub(crate) fn h2_connection(addr: std::net::SocketAddr, data: &[u8]) {
    use std::io::{ErrorKind, Read, Write};
    use std::net::{Shutdown, TcpStream};
    use std::time::Instant;

    let mut stream = TcpStream::connect(addr).expect("connect");
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    hello.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    hello.extend_from_slice(data);
    // The server may close before it has read all (a connection error):
    // a failed write is an answer, not a failure.
    let _ = stream.write_all(&hello);
    let _ = stream.shutdown(Shutdown::Write);
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut got = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let closed = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break false;
        }
        let _ = stream.set_read_timeout(Some(left));
        match stream.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                break false
            }
            // Reset: the server closed with our bytes unread.
            Err(_) => break true,
        }
    };
    assert!(
        closed,
        "the connection was left open ({} bytes read)",
        got.len()
    );
    let mut at = &got[..];
    while at.len() >= 9 {
        let len = usize::from(at[0]) << 16 | usize::from(at[1]) << 8 | usize::from(at[2]);
        assert!(len <= 16_384, "a frame of {len} bytes");
        assert_eq!(at[5] & 0x80, 0, "the reserved bit set");
        if at.len() < 9 + len {
            // Cut short by a reset: what came is all there is.
            break;
        }
        at = &at[9 + len..];
    }
}
