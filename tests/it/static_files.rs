//! Static files over real sockets, in every stage combination: bytes,
//! types, indexes, redirects, validators, conditionals, ranges, path
//! safety, cache freshness and the sendfile path.

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::harness::*;

/// Percent-encodes every byte outside the unreserved set (keeps '/').
fn encode_path(path: &str) -> String {
    let mut out = String::new();
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Every regular file under `dir`, as paths relative to `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut todo = vec![PathBuf::new()];
    while let Some(rel) = todo.pop() {
        for entry in std::fs::read_dir(dir.join(&rel)).expect("read_dir") {
            let entry = entry.expect("entry");
            let rel = rel.join(entry.file_name());
            if entry.file_type().expect("type").is_dir() {
                todo.push(rel);
            } else {
                files.push(rel);
            }
        }
    }
    files.sort();
    files
}

/// What Content-Type a file in www/ must be served with.
fn expected_type(path: &Path) -> &'static [&'static str] {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    match ext.to_ascii_lowercase().as_str() {
        "html" | "htm" => &["text/html; charset=utf-8"],
        "css" => &["text/css; charset=utf-8"],
        "txt" => &["text/plain; charset=utf-8"],
        "js" | "mjs" => &[
            "text/javascript; charset=utf-8",
            "application/javascript; charset=utf-8",
        ],
        "json" => &["application/json; charset=utf-8"],
        "svg" => &["image/svg+xml; charset=utf-8"],
        "png" => &["image/png"],
        "jpg" | "jpeg" => &["image/jpeg"],
        "gif" => &["image/gif"],
        "ico" => &["image/x-icon", "image/vnd.microsoft.icon"],
        "webp" => &["image/webp"],
        "woff2" => &["font/woff2"],
        "wasm" => &["application/wasm"],
        other => panic!("www/ has a file with extension {other:?}: add its type to this table"),
    }
}

/// Deterministic bytes (xorshift64*), so a misplaced byte cannot hide.
fn pseudo_random(len: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        out.extend_from_slice(&seed.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A 1000-byte file of distinct-looking bytes for range tests.
fn small_binary(server: &TestServer) -> Vec<u8> {
    let bytes = pseudo_random(1000, 0x9E37_79B9_7F4A_7C15);
    std::fs::write(server.root.join("small.bin"), &bytes).expect("write small.bin");
    bytes
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn every_www_file_is_served_byte_exact_with_its_type() {
    let www = Path::new(env!("CARGO_MANIFEST_DIR")).join("www");
    let files = walk(&www);
    assert!(files.len() >= 4, "www/ walk found too little: {files:?}");
    each_server(
        |_| {},
        |server| {
            let mut stream = server.connect();
            for rel in &files {
                let url = format!("/{}", encode_path(rel.to_str().expect("utf-8 name")));
                let response = get(&mut stream, &url);
                let label = format!("{} {url}", server.label);
                let disk = assert_file(server, &response, rel.to_str().expect("utf-8"), &label);
                assert_eq!(
                    response.header("Content-Length"),
                    Some(disk.len().to_string().as_str()),
                    "{label}"
                );
                let ct = response.header("Content-Type").unwrap_or("<none>");
                assert!(
                    expected_type(rel).contains(&ct),
                    "{label}: Content-Type {ct:?}, want one of {:?}",
                    expected_type(rel)
                );
            }
        },
    );
}

#[test]
fn directories_serve_index_and_redirect_without_slash() {
    each_server(
        |_| {},
        |server| {
            let label = &server.label;
            let mut stream = server.connect();
            let root = get(&mut stream, "/");
            assert_file(server, &root, "index.html", label);
            assert_eq!(
                root.header("Content-Type"),
                Some("text/html; charset=utf-8"),
                "{label}"
            );

            let docs = get(&mut stream, "/docs/");
            assert_file(server, &docs, "docs/index.html", label);

            let moved = get(&mut stream, "/docs");
            assert_eq!(moved.status, 301, "{label}");
            assert_eq!(moved.header("Location"), Some("/docs/"), "{label}");

            let moved = get(&mut stream, "/docs?page=2&x=y");
            assert_eq!(moved.status, 301, "{label}");
            assert_eq!(
                moved.header("Location"),
                Some("/docs/?page=2&x=y"),
                "{label}"
            );

            // "//docs/" would send a browser to the host "docs".
            for path in ["//docs", "///docs"] {
                let moved = get(&mut stream, path);
                assert_eq!(moved.status, 301, "{label} {path}");
                assert_eq!(moved.header("Location"), Some("/docs/"), "{label} {path}");
            }

            // A directory without an index is not listed.
            std::fs::create_dir(server.root.join("empty")).unwrap();
            assert_eq!(get(&mut stream, "/empty/").status, 404, "{label}");
            assert_eq!(get(&mut stream, "/missing.html").status, 404, "{label}");
            // The connection survived all of that.
            assert_eq!(get(&mut stream, "/").status, 200, "{label}");
        },
    );
}

#[test]
fn names_with_spaces_and_utf8_are_percent_decoded() {
    each_server(
        |_| {},
        |server| {
            let label = &server.label;
            std::fs::write(server.root.join("a b.txt"), "spaced out\n").unwrap();
            std::fs::write(server.root.join("café.txt"), "crème brûlée\n").unwrap();
            std::fs::create_dir(server.root.join("my dir")).unwrap();
            std::fs::write(server.root.join("my dir/index.html"), "<p>in my dir</p>").unwrap();
            let mut stream = server.connect();

            let spaced = get(&mut stream, "/a%20b.txt");
            assert_eq!(spaced.status, 200, "{label}");
            assert_eq!(spaced.body, b"spaced out\n", "{label}");
            assert_eq!(
                spaced.header("Content-Type"),
                Some("text/plain; charset=utf-8"),
                "{label}"
            );

            for url in ["/caf%C3%A9.txt", "/caf%c3%a9.txt"] {
                let cafe = get(&mut stream, url);
                assert_eq!(cafe.status, 200, "{label} {url}");
                assert_eq!(cafe.body, "crème brûlée\n".as_bytes(), "{label} {url}");
            }

            let moved = get(&mut stream, "/my%20dir");
            assert_eq!(moved.status, 301, "{label}");
            assert_eq!(moved.header("Location"), Some("/my%20dir/"), "{label}");
            let inside = get(&mut stream, "/my%20dir/");
            assert_eq!(inside.body, b"<p>in my dir</p>", "{label}");
            // Invalid UTF-8 after decoding is refused, not mangled.
            assert_eq!(get(&mut stream, "/caf%E9.txt").status, 400, "{label}");
        },
    );
}

#[test]
fn head_has_the_headers_of_get_and_no_body() {
    each_server(
        |_| {},
        |server| {
            let label = &server.label;
            let big = pseudo_random(200_000, 7);
            std::fs::write(server.root.join("big.bin"), &big).unwrap();
            for path in ["/index.html", "/style.css", "/big.bin", "/docs/"] {
                let mut stream = server.connect();
                // HEAD and GET pipelined in one write: a stray HEAD body would
                // be read as the GET's status line.
                stream
                .write_all(
                    format!(
                        "HEAD {path} HTTP/1.1\r\nHost: t\r\n\r\nGET {path} HTTP/1.1\r\nHost: t\r\n\r\n"
                    )
                    .as_bytes(),
                )
                .unwrap();
                let mut carry = Vec::new();
                let head = read_response_with(&mut stream, &mut carry, true);
                let full = read_response_with(&mut stream, &mut carry, false);
                assert!(carry.is_empty(), "{label} {path}: trailing bytes");
                assert_eq!(head.status, 200, "{label} {path}");
                assert_eq!(full.status, 200, "{label} {path}");
                assert!(head.body.is_empty(), "{label} {path}");
                let without_date = |r: &Response| {
                    let mut h: Vec<_> = r
                        .headers
                        .iter()
                        .filter(|(n, _)| !n.eq_ignore_ascii_case("date"))
                        .cloned()
                        .collect();
                    h.sort();
                    h
                };
                assert_eq!(without_date(&head), without_date(&full), "{label} {path}");
                assert_eq!(
                    head.header("Content-Length"),
                    Some(full.body.len().to_string().as_str()),
                    "{label} {path}"
                );
            }
        },
    );
}

#[test]
fn validators_and_conditional_gets() {
    each_server(
        |_| {},
        |server| {
            let label = &server.label;
            let mut stream = server.connect();
            let first = get(&mut stream, "/style.css");
            assert_eq!(first.status, 200, "{label}");
            let etag = first.header("ETag").expect("ETag").to_string();
            let last_modified = first
                .header("Last-Modified")
                .expect("Last-Modified")
                .to_string();
            assert!(
                etag.starts_with('"') && etag.ends_with('"') && etag.len() > 2,
                "{label}: {etag}"
            );
            assert!(last_modified.ends_with(" GMT"), "{label}: {last_modified}");
            assert_eq!(first.header("Accept-Ranges"), Some("bytes"), "{label}");

            let send = |stream: &mut TcpStream, headers: String| {
                exchange(
                    stream,
                    &format!("GET /style.css HTTP/1.1\r\nHost: t\r\n{headers}\r\n"),
                )
            };
            for inm in [
                etag.clone(),
                "*".to_string(),
                format!("\"nope\", {etag}"),
                format!("W/{etag}"),
            ] {
                let r = send(&mut stream, format!("If-None-Match: {inm}\r\n"));
                assert_eq!(r.status, 304, "{label} If-None-Match: {inm}");
                assert!(r.body.is_empty(), "{label}");
                assert_eq!(r.header("ETag"), Some(etag.as_str()), "{label}");
                assert!(
                    r.header("Content-Length").is_none_or(|l| l == "0"),
                    "{label}"
                );
            }
            let r = send(
                &mut stream,
                format!("If-Modified-Since: {last_modified}\r\n"),
            );
            assert_eq!(r.status, 304, "{label} If-Modified-Since");
            let r = send(
                &mut stream,
                "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n".into(),
            );
            assert_eq!(r.status, 200, "{label} old If-Modified-Since");
            assert_eq!(r.body, first.body, "{label}");

            let r = send(&mut stream, "If-None-Match: \"stale\"\r\n".into());
            assert_eq!(r.status, 200, "{label} stale If-None-Match");
            assert_eq!(r.body, first.body, "{label}");
            // If-None-Match is evaluated, If-Modified-Since ignored (RFC 9110 §13.1.3).
            let r = send(
                &mut stream,
                format!("If-None-Match: \"stale\"\r\nIf-Modified-Since: {last_modified}\r\n"),
            );
            assert_eq!(r.status, 200, "{label} INM beats IMS");
            assert_eq!(r.body, first.body, "{label}");
            let r = send(
                &mut stream,
                format!(
                    "If-None-Match: {etag}\r\nIf-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
                ),
            );
            assert_eq!(r.status, 304, "{label} matching INM beats old IMS");

            let r = send(&mut stream, "If-Match: \"other\"\r\n".into());
            assert_eq!(r.status, 412, "{label} If-Match mismatch");
            let r = send(&mut stream, format!("If-Match: {etag}\r\n"));
            assert_eq!(r.status, 200, "{label} If-Match match");
            assert_eq!(r.body, first.body, "{label}");
            let r = send(
                &mut stream,
                "If-Unmodified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n".into(),
            );
            assert_eq!(r.status, 412, "{label} If-Unmodified-Since in the past");
            // The connection is still usable after 304s and 412s.
            assert_eq!(get(&mut stream, "/style.css").body, first.body, "{label}");
        },
    );
}

#[test]
fn single_ranges_and_unsatisfiable() {
    each_server(
        |_| {},
        |server| {
            let label = &server.label;
            let bytes = small_binary(server);
            let mut stream = server.connect();
            let range = |stream: &mut TcpStream, spec: &str| {
                exchange(
                    stream,
                    &format!("GET /small.bin HTTP/1.1\r\nHost: t\r\nRange: {spec}\r\n\r\n"),
                )
            };
            for (spec, start, end) in [
                ("bytes=10-19", 10, 19),
                ("bytes=0-0", 0, 0),
                ("bytes=990-", 990, 999),
                ("bytes=-5", 995, 999),
                ("bytes=500-5000", 500, 999),
                ("bytes=-2000", 0, 999),
            ] {
                let r = range(&mut stream, spec);
                assert_eq!(r.status, 206, "{label} {spec}");
                assert_eq!(
                    r.header("Content-Range"),
                    Some(format!("bytes {start}-{end}/1000").as_str()),
                    "{label} {spec}"
                );
                assert_eq!(r.body, &bytes[start..=end], "{label} {spec}");
                assert_eq!(
                    r.header("Content-Length"),
                    Some((end + 1 - start).to_string().as_str()),
                    "{label} {spec}"
                );
            }
            for spec in ["bytes=1000-", "bytes=5000-6000", "bytes=-0"] {
                let r = range(&mut stream, spec);
                assert_eq!(r.status, 416, "{label} {spec}");
                assert_eq!(
                    r.header("Content-Range"),
                    Some("bytes */1000"),
                    "{label} {spec}"
                );
                assert!(!contains(&r.body, &bytes[..16]), "{label} {spec}");
            }
            // Multi-range is answered with the whole file.
            let r = range(&mut stream, "bytes=0-1,5-6");
            assert_eq!(r.status, 200, "{label} multi-range");
            assert_eq!(r.body, bytes, "{label} multi-range");
            assert!(r.header("Content-Range").is_none(), "{label}");
        },
    );
}

#[test]
fn if_range_decides_partial_or_full() {
    each_server(
        |_| {},
        |server| {
            let label = &server.label;
            let bytes = small_binary(server);
            let mut stream = server.connect();
            let full = get(&mut stream, "/small.bin");
            let etag = full.header("ETag").expect("ETag").to_string();
            let last_modified = full.header("Last-Modified").expect("LM").to_string();
            let with = |stream: &mut TcpStream, if_range: &str| {
                exchange(
                stream,
                &format!(
                    "GET /small.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=100-199\r\nIf-Range: {if_range}\r\n\r\n"
                ),
            )
            };
            let r = with(&mut stream, &etag);
            assert_eq!(r.status, 206, "{label} If-Range etag");
            assert_eq!(r.body, &bytes[100..200], "{label}");
            assert_eq!(
                r.header("Content-Range"),
                Some("bytes 100-199/1000"),
                "{label}"
            );
            let r = with(&mut stream, &last_modified);
            assert_eq!(r.status, 206, "{label} If-Range date");
            assert_eq!(r.body, &bytes[100..200], "{label}");
            for other in [
                "\"other\"",
                "Sun, 06 Nov 1994 08:49:37 GMT",
                &format!("W/{etag}"),
            ] {
                let r = with(&mut stream, other);
                assert_eq!(r.status, 200, "{label} If-Range {other}");
                assert_eq!(r.body, bytes, "{label} If-Range {other}");
            }
        },
    );
}

#[test]
fn traversal_never_leaks_outside_root() {
    let outside = temp_dir("outside");
    let secret = b"TOP-SECRET-7f3a9c: never serve me".to_vec();
    std::fs::write(outside.join("secret.txt"), &secret).unwrap();
    let outside_name = outside.file_name().unwrap().to_str().unwrap().to_string();
    each_server(
        |_| {},
        |server| {
            let label = &server.label;
            // root and outside are siblings in the temp directory.
            assert_eq!(server.root.parent(), outside.parent(), "{label}");
            std::os::unix::fs::symlink(outside.join("secret.txt"), server.root.join("link.txt"))
                .unwrap();
            std::os::unix::fs::symlink(&outside, server.root.join("linkdir")).unwrap();
            let o = &outside_name;
            let attempts = [
                format!("/../{o}/secret.txt"),
                format!("/docs/../../{o}/secret.txt"),
                format!("/%2e%2e/{o}/secret.txt"),
                format!("/%2E%2E/{o}/secret.txt"),
                format!("/.%2e/{o}/secret.txt"),
                format!("/..%2f{o}%2fsecret.txt"),
                format!("/docs/..%2f..%2f{o}%2fsecret.txt"),
                format!("/%2f..%2f{o}/secret.txt"),
                format!("/..\\{o}\\secret.txt"),
                format!("/..%5c{o}%5csecret.txt"),
                format!("/..%5C{o}%5Csecret.txt"),
                format!("/../{o}/secret.txt%00.html"),
                format!("/%00/../{o}/secret.txt"),
                format!("/%252e%252e/{o}/secret.txt"),
                "/link.txt".to_string(),
                "/linkdir/secret.txt".to_string(),
                "/linkdir/".to_string(),
                "/linkdir".to_string(),
            ];
            for attempt in &attempts {
                // Raw bytes, so no client normalises the path first.
                let request =
                    format!("GET {attempt} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
                let mut stream = server.connect();
                stream.write_all(request.as_bytes()).unwrap();
                let mut all = Vec::new();
                let _ = std::io::Read::read_to_end(&mut stream, &mut all);
                assert!(!contains(&all, &secret), "{label} {attempt}: secret leaked");
                assert!(
                    !contains(&all, b"TOP-SECRET"),
                    "{label} {attempt}: secret leaked"
                );
                let response = raw(server.addr, request.as_bytes());
                assert!(
                    matches!(response.status, 400 | 404),
                    "{label} {attempt}: status {}",
                    response.status
                );
            }
            // Encoded separators and NUL are malformed, not merely missing.
            for attempt in ["/docs%2findex.html", "/docs%5cindex.html", "/index.html%00"] {
                let r = raw(
                    server.addr,
                    format!("GET {attempt} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes(),
                );
                assert_eq!(r.status, 400, "{label} {attempt}");
            }
        },
    );
    std::fs::remove_dir_all(&outside).unwrap();
}

#[test]
fn dotfiles_are_not_found() {
    each_server(
        |_| {},
        |server| {
            let label = &server.label;
            std::fs::write(server.root.join(".secret"), "dot secret").unwrap();
            std::fs::create_dir(server.root.join(".git")).unwrap();
            std::fs::write(server.root.join(".git/config"), "[core] dot secret").unwrap();
            std::fs::create_dir(server.root.join("docs/.hidden")).unwrap();
            std::fs::write(server.root.join("docs/.hidden/index.html"), "dot secret").unwrap();
            let mut stream = server.connect();
            for path in [
                "/.secret",
                "/.git/config",
                "/.git/",
                "/.git",
                "/%2esecret",
                "/docs/.hidden/",
                "/docs/.hidden/index.html",
                "/docs/%2Ehidden/index.html",
            ] {
                let r = get(&mut stream, path);
                assert_eq!(r.status, 404, "{label} {path}");
                assert!(!contains(&r.body, b"dot secret"), "{label} {path}");
            }
        },
    );
}

#[test]
fn other_methods_on_static_files_are_405() {
    each_server(
        |_| {},
        |server| {
            let label = &server.label;
            let mut stream = server.connect();
            for request in [
                "POST /index.html HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello",
                "POST /index.html HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
                "PUT /style.css HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi",
                "DELETE / HTTP/1.1\r\nHost: t\r\n\r\n",
            ] {
                let r = exchange(&mut stream, request);
                assert_eq!(r.status, 405, "{label} {request:?}");
                assert_eq!(r.header("Allow"), Some("GET, HEAD"), "{label} {request:?}");
            }
            // The small bodies were drained: the connection still works.
            let r = get(&mut stream, "/index.html");
            assert_eq!(r.status, 200, "{label}");
        },
    );
}

#[test]
fn changed_files_are_never_served_stale() {
    each_server(
        |_| {},
        |server| {
            let label = &server.label;
            let path = server.root.join("data.txt");
            std::fs::write(&path, "version one\n").unwrap();
            let mut kept = server.connect();
            // Warm every worker's cache: a kept connection and fresh ones.
            served_as(server, &mut kept, "/data.txt", b"version one\n");
            let etag_one = get(&mut kept, "/data.txt")
                .header("ETag")
                .unwrap()
                .to_string();

            // Different content and size.
            std::fs::write(&path, "version two, a little longer\n").unwrap();
            served_as(
                server,
                &mut kept,
                "/data.txt",
                b"version two, a little longer\n",
            );
            let r = get(&mut kept, "/data.txt");
            let etag_two = r.header("ETag").unwrap().to_string();
            assert_ne!(etag_one, etag_two, "{label}");
            let mtime_two = std::fs::metadata(&path).unwrap().modified().unwrap();

            // Same size, different content, and a different mtime (forced, so
            // a coarse file-system clock cannot make it equal).
            std::fs::write(&path, "VERSION 3, A LITTLE LONGER!!\n").unwrap();
            let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            file.set_modified(mtime_two - Duration::from_secs(3600))
                .unwrap();
            drop(file);
            assert_eq!(std::fs::metadata(&path).unwrap().len(), 29);
            served_as(
                server,
                &mut kept,
                "/data.txt",
                b"VERSION 3, A LITTLE LONGER!!\n",
            );
            // The old validator no longer matches.
            let r = exchange(
                &mut kept,
                &format!("GET /data.txt HTTP/1.1\r\nHost: t\r\nIf-None-Match: {etag_two}\r\n\r\n"),
            );
            assert_eq!(r.status, 200, "{label}");

            // A removed file is gone, not served from the cache.
            std::fs::remove_file(&path).unwrap();
            assert_eq!(get(&mut kept, "/data.txt").status, 404, "{label}");
        },
    );
}

/// `path` reads as `body`, three times over, on the kept-alive connection
/// and on fresh ones (which may land on any worker's cache).
fn served_as(server: &TestServer, kept: &mut TcpStream, path: &str, body: &[u8]) {
    let label = &server.label;
    for _ in 0..3 {
        assert_eq!(get(kept, path).body, body, "{label}");
        assert_eq!(get(&mut server.connect(), path).body, body, "{label}");
    }
}

#[test]
fn large_file_goes_out_byte_exact_with_ranges() {
    let bytes = pseudo_random(3 * 1024 * 1024 + 17, 0xC0FF_EE00_D15E_A5E5);
    let tweak = |config: &mut conveyor::config::Config| {
        // Pin the thresholds this test is about: big responses use sendfile.
        config.static_files.sendfile_min_size = 64 * 1024;
        config.static_files.cache_max_file_size = 64 * 1024;
    };
    each_server(tweak, |server| {
        let label = &server.label;
        std::fs::write(server.root.join("large.bin"), &bytes).unwrap();
        let mut stream = server.connect();
        for _ in 0..2 {
            let r = get(&mut stream, "/large.bin");
            assert_eq!(r.status, 200, "{label}");
            assert_eq!(
                r.header("Content-Type"),
                Some("application/octet-stream"),
                "{label}"
            );
            assert_eq!(r.body.len(), bytes.len(), "{label}");
            assert!(r.body == bytes, "{label}: large body differs");
        }
        let len = bytes.len();
        // A big middle range (sendfile from an offset) and a small one (copied).
        for (start, end) in [(1_000_003, 2_500_000), (2_000_000, 2_000_099)] {
            let r = get_with(
                server,
                "/large.bin",
                &format!("Range: bytes={start}-{end}\r\n"),
            );
            assert_eq!(r.status, 206, "{label}");
            assert_eq!(
                r.header("Content-Range"),
                Some(format!("bytes {start}-{end}/{len}").as_str()),
                "{label}"
            );
            assert!(
                r.body == bytes[start..=end],
                "{label}: range {start}-{end} differs"
            );
        }
        let r = get_with(server, "/large.bin", "Range: bytes=-70000\r\n");
        assert_eq!(r.status, 206, "{label}");
        assert!(r.body == bytes[len - 70000..], "{label}: suffix differs");
        // Still usable after the streamed responses.
        assert_eq!(get(&mut stream, "/style.css").status, 200, "{label}");
    });
}

#[test]
fn date_and_server_on_static_responses() {
    each_server(
        |_| {},
        |server| {
            let label = &server.label;
            let mut stream = server.connect();
            for path in ["/", "/docs", "/nope", "/.secret", "/%00"] {
                let r = get(&mut stream, path);
                let date = r
                    .header("Date")
                    .unwrap_or_else(|| panic!("{label} {path}: no Date"));
                assert!(
                    date.len() == 29 && date.ends_with(" GMT"),
                    "{label} {path}: {date}"
                );
                assert_eq!(
                    r.header("Server"),
                    Some(concat!("conveyor/", env!("CARGO_PKG_VERSION"))),
                    "{label} {path}"
                );
                if r.status == 400 {
                    break; // closes the connection
                }
            }
        },
    );
}

/// Whatever the revalidation mode, a request sent after a change completes
/// gets the new bytes: checked at once after each change, no waiting.
#[test]
fn a_changed_file_is_never_served_stale() {
    use conveyor::config::Revalidate;
    for mode in [Revalidate::Inotify, Revalidate::Stat] {
        each_server(
            |c| c.static_files.revalidate = mode,
            |server| {
                let label = format!("{} {mode:?}", server.label);
                let path = server.root.join("watched.txt");
                std::fs::write(&path, "first\n").expect("write");
                let mut kept = server.connect();
                for _ in 0..3 {
                    assert_eq!(get(&mut kept, "/watched.txt").body, b"first\n", "{label}");
                }
                for round in 0..20 {
                    let body = format!("round {round}{}\n", "!".repeat(round % 3));
                    if round % 2 == 0 {
                        std::fs::write(&path, &body).expect("rewrite");
                    } else {
                        // Replaced by rename, as deploy tools do.
                        let staged = server.root.join("staged.tmp");
                        std::fs::write(&staged, &body).expect("stage");
                        std::fs::rename(&staged, &path).expect("rename");
                    }
                    // And a file big enough for sendfile (kept open, not in memory).
                    let big = body.repeat(70 * 1024 / body.len() + 1);
                    std::fs::write(server.root.join("watched.bin"), &big).expect("big");
                    let mut fresh = server.connect();
                    assert!(
                        get(&mut kept, "/watched.bin").body == big.as_bytes(),
                        "{label}: round {round}, big file"
                    );
                    assert_eq!(
                        get(&mut kept, "/watched.txt").body,
                        body.as_bytes(),
                        "{label}: round {round}, kept-alive connection"
                    );
                    assert_eq!(
                        get(&mut fresh, "/watched.txt").body,
                        body.as_bytes(),
                        "{label}: round {round}, new connection"
                    );
                }
            },
        );
    }
}
