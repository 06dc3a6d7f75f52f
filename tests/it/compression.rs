//! Compression over real sockets: precompressed sidecars negotiated by
//! Accept-Encoding (Vary, ETag per encoding, ranges and conditionals on the
//! representation sent, freshness), files compressed once into the cache,
//! and the one-syscall 404 that still sees a file created after it.

use std::io::Read;
use std::net::TcpStream;
use std::path::Path;

use crate::harness::*;
use conveyor::config::{Config, Revalidate};

/// Sends one request on a kept-alive `stream` with extra header lines
/// (each ending in CRLF) and reads its response.
fn request(stream: &mut TcpStream, method: &str, path: &str, headers: &str) -> Response {
    exchange(
        stream,
        &format!("{method} {path} HTTP/1.1\r\nHost: test\r\n{headers}\r\n"),
    )
}

fn get_ae(stream: &mut TcpStream, path: &str, accept: &str) -> Response {
    request(
        stream,
        "GET",
        path,
        &format!("Accept-Encoding: {accept}\r\n"),
    )
}

/// Text that compresses well, `len` bytes.
fn css(len: usize) -> Vec<u8> {
    let rule = b".rule-a { color: #123456; margin: 0 auto; padding: 1em 2em; }\n";
    rule.iter().copied().cycle().take(len).collect()
}

fn one_server(tweak: impl Fn(&mut Config)) -> TestServer {
    start("readiness", "spawn", tweak)
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("valid gzip");
    out
}

fn unbrotli(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::BrotliDecompress(&mut &bytes[..], &mut out).expect("valid brotli");
    out
}

/// A CSS file and its three precompressed sidecars, each told apart by
/// its bytes.
struct Sidecars {
    plain: Vec<u8>,
    gz: Vec<u8>,
    br: Vec<u8>,
    zst: Vec<u8>,
}

impl Sidecars {
    /// Writes `site.css` and its sidecars into `root`.
    fn write(root: &Path) -> Sidecars {
        let files = Sidecars {
            plain: css(3000),
            gz: b"gz-sidecar ".repeat(200),
            br: b"br-sidecar!".repeat(150),
            zst: b"zst".repeat(300),
        };
        std::fs::write(root.join("site.css"), &files.plain).unwrap();
        std::fs::write(root.join("site.css.gz"), &files.gz).unwrap();
        std::fs::write(root.join("site.css.br"), &files.br).unwrap();
        std::fs::write(root.join("site.css.zst"), &files.zst).unwrap();
        files
    }
}

#[test]
fn sidecars_are_negotiated_with_vary_and_an_etag_each() {
    // Small sidecars come from memory, big ones (sendfile_min_size 1 KiB
    // here) go out with sendfile: both ways.
    for sendfile_min in [64 * 1024, 1024] {
        let server = one_server(|c| c.static_files.sendfile_min_size = sendfile_min);
        let files = Sidecars::write(&server.root);
        let label = format!("sendfile_min_size {sendfile_min}");
        let mut s = server.connect();
        negotiates_each_encoding(&mut s, &files, &label);
        let tags = one_etag_per_representation(&mut s, &label);
        conditionals_apply_to_the_representation_sent(&mut s, &files, &tags[1], &label);
        ranges_and_head_apply_to_the_representation_sent(&mut s, &files, &label);

        // A file without variants says nothing of encodings.
        std::fs::write(server.root.join("photo.png"), b"\x89PNG not really").unwrap();
        let r = get_ae(&mut s, "/photo.png", "gzip, br");
        assert_eq!(r.header("Vary"), None, "{label}");
        assert_eq!(r.header("Content-Encoding"), None, "{label}");
    }
}

/// Accept-Encoding picks the sidecar, q-values first, and every answer
/// varies on it.
fn negotiates_each_encoding(s: &mut TcpStream, files: &Sidecars, label: &str) {
    let identity = request(s, "GET", "/site.css", "");
    assert_eq!(identity.body, files.plain, "{label}");
    assert_eq!(identity.header("Content-Encoding"), None, "{label}");
    assert_eq!(identity.header("Vary"), Some("Accept-Encoding"), "{label}");

    let cases: [(&str, Option<&str>, &[u8]); 9] = [
        ("gzip", Some("gzip"), &files.gz),
        ("x-gzip", Some("gzip"), &files.gz),
        ("gzip, deflate, br, zstd", Some("br"), &files.br),
        ("gzip, zstd", Some("zstd"), &files.zst),
        ("br;q=0, gzip", Some("gzip"), &files.gz),
        ("br;q=0.5, gzip;q=0.9", Some("gzip"), &files.gz),
        ("*", Some("br"), &files.br),
        ("gzip;q=0, br;q=0, zstd;q=0", None, &files.plain),
        ("identity;q=0, gzip;q=0.2", Some("gzip"), &files.gz),
    ];
    for (accept, encoding, body) in cases {
        let r = get_ae(s, "/site.css", accept);
        assert_eq!(r.status, 200, "{label} {accept}");
        assert_eq!(r.header("Content-Encoding"), encoding, "{label} {accept}");
        assert_eq!(
            r.header("Vary"),
            Some("Accept-Encoding"),
            "{label} {accept}"
        );
        assert_eq!(r.body, body, "{label} {accept}");
        assert_eq!(
            r.header("Content-Length"),
            Some(body.len().to_string().as_str()),
            "{label} {accept}"
        );
        assert_eq!(r.header("Content-Type"), identity.header("Content-Type"));
    }
}

/// Identity, gzip, br and zstd each have their own ETag; returns them in
/// that order.
fn one_etag_per_representation(s: &mut TcpStream, label: &str) -> [String; 4] {
    let mut etag = |accept: &str| {
        let r = get_ae(s, "/site.css", accept);
        r.header("ETag").expect("an ETag").to_string()
    };
    let tags = [etag("identity"), etag("gzip"), etag("br"), etag("zstd")];
    for (i, a) in tags.iter().enumerate() {
        for b in &tags[i + 1..] {
            assert_ne!(a, b, "{label}: {tags:?}");
        }
    }
    tags
}

fn conditionals_apply_to_the_representation_sent(
    s: &mut TcpStream,
    files: &Sidecars,
    gz_tag: &str,
    label: &str,
) {
    let r = request(
        s,
        "GET",
        "/site.css",
        &format!("Accept-Encoding: gzip\r\nIf-None-Match: {gz_tag}\r\n"),
    );
    assert_eq!(r.status, 304, "{label}");
    assert_eq!(r.header("ETag"), Some(gz_tag), "{label}");
    assert_eq!(r.header("Vary"), Some("Accept-Encoding"), "{label}");
    let r = request(
        s,
        "GET",
        "/site.css",
        &format!("Accept-Encoding: br\r\nIf-None-Match: {gz_tag}\r\n"),
    );
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, &files.br[..]),
        "{label}"
    );
}

fn ranges_and_head_apply_to_the_representation_sent(
    s: &mut TcpStream,
    files: &Sidecars,
    label: &str,
) {
    // Bytes of the gzip sidecar, not of the file.
    let r = request(
        s,
        "GET",
        "/site.css",
        "Accept-Encoding: gzip\r\nRange: bytes=3-12\r\n",
    );
    assert_eq!(r.status, 206, "{label}");
    assert_eq!(r.body, &files.gz[3..13], "{label}");
    let range = format!("bytes 3-12/{}", files.gz.len());
    assert_eq!(r.header("Content-Range"), Some(range.as_str()), "{label}");
    assert_eq!(r.header("Content-Encoding"), Some("gzip"), "{label}");
    assert_eq!(r.header("Vary"), Some("Accept-Encoding"), "{label}");
    let r = request(
        s,
        "GET",
        "/site.css",
        "Accept-Encoding: gzip\r\nRange: bytes=2500-\r\n",
    );
    // 2500 is inside the file but past the end of the gzip sidecar.
    assert_eq!(r.status, 416, "{label}");
    let range = format!("bytes */{}", files.gz.len());
    assert_eq!(r.header("Content-Range"), Some(range.as_str()), "{label}");
    assert_eq!(r.header("Vary"), Some("Accept-Encoding"), "{label}");
    let r = request(s, "GET", "/site.css", "Range: bytes=0-4\r\n");
    assert_eq!(
        (r.status, r.body.as_slice()),
        (206, &files.plain[..5]),
        "{label}"
    );
    assert_eq!(r.header("Vary"), Some("Accept-Encoding"), "{label}");
    assert_eq!(r.header("Content-Encoding"), None, "{label}");

    // HEAD: the variant's length, no body.
    let r = request(s, "HEAD", "/site.css", "Accept-Encoding: gzip\r\n");
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    let len = files.gz.len().to_string();
    assert_eq!(r.header("Content-Length"), Some(len.as_str()), "{label}");
}

#[test]
fn a_changed_or_new_sidecar_is_served_at_once() {
    for mode in [Revalidate::Inotify, Revalidate::Stat] {
        let server = one_server(|c| {
            c.static_files.revalidate = mode;
            c.static_files.compress.enabled = false;
        });
        let root = &server.root;
        std::fs::write(root.join("page.html"), css(2000)).unwrap();
        std::fs::write(root.join("page.html.gz"), b"first").unwrap();
        let mut s = server.connect();
        for _ in 0..3 {
            assert_eq!(get_ae(&mut s, "/page.html", "gzip").body, b"first");
        }
        for round in 0..10 {
            let body = format!("round {round}{}", "!".repeat(round % 3));
            if round % 2 == 0 {
                std::fs::write(root.join("page.html.gz"), &body).unwrap();
            } else {
                let staged = root.join("staged.tmp");
                std::fs::write(&staged, &body).unwrap();
                std::fs::rename(&staged, root.join("page.html.gz")).unwrap();
            }
            let r = get_ae(&mut s, "/page.html", "gzip");
            assert_eq!(r.text(), body, "{mode:?} round {round}");
        }

        // A sidecar appearing beside a cached file is used at once, and
        // one removed is no longer served.
        std::fs::write(root.join("late.js"), css(2000)).unwrap();
        let r = get_ae(&mut s, "/late.js", "gzip");
        assert_eq!(
            (r.header("Content-Encoding"), r.header("Vary")),
            (None, None)
        );
        std::fs::write(root.join("late.js.gz"), b"now compressed").unwrap();
        let r = get_ae(&mut s, "/late.js", "gzip");
        assert_eq!(r.body, b"now compressed", "{mode:?}");
        assert_eq!(r.header("Content-Encoding"), Some("gzip"), "{mode:?}");
        std::fs::remove_file(root.join("late.js.gz")).unwrap();
        let r = get_ae(&mut s, "/late.js", "gzip");
        assert_eq!(r.body, css(2000), "{mode:?}");
        assert_eq!(r.header("Content-Encoding"), None, "{mode:?}");
    }
}

#[test]
fn text_files_are_compressed_once_and_decode_to_the_file() {
    let server = one_server(|_| {});
    let root = &server.root;
    let plain = css(8 * 1024);
    std::fs::write(root.join("text.css"), &plain).unwrap();
    let mut s = server.connect();
    let identity = request(&mut s, "GET", "/text.css", "");
    assert_eq!(identity.body, plain);
    assert_eq!(identity.header("Vary"), Some("Accept-Encoding"));

    let gz = get_ae(&mut s, "/text.css", "gzip");
    assert_eq!(gz.header("Content-Encoding"), Some("gzip"));
    assert!(gz.body.len() * 10 <= plain.len() * 9, "shrinks");
    assert_eq!(gunzip(&gz.body), plain);

    let br = get_ae(&mut s, "/text.css", "gzip, br");
    assert_eq!(br.header("Content-Encoding"), Some("br"));
    assert_eq!(unbrotli(&br.body), plain);

    let tags = [&identity, &gz, &br].map(|r| r.header("ETag").unwrap().to_string());
    assert!(tags[0] != tags[1] && tags[1] != tags[2] && tags[0] != tags[2]);
    // Once per version: the same bytes again, and a new version is
    // compressed afresh.
    assert_eq!(get_ae(&mut s, "/text.css", "gzip").body, gz.body);
    let changed = css(5000);
    std::fs::write(root.join("text.css"), &changed).unwrap();
    assert_eq!(gunzip(&get_ae(&mut s, "/text.css", "gzip").body), changed);

    // A file sent with sendfile has its compressed copies in memory.
    let big = css(100 * 1024);
    std::fs::write(root.join("big.js"), &big).unwrap();
    let r = get_ae(&mut s, "/big.js", "gzip");
    assert_eq!(r.header("Content-Encoding"), Some("gzip"));
    assert_eq!(gunzip(&r.body), big);
    let r = get_ae(&mut s, "/big.js", "br;q=0.9, gzip;q=0.8");
    assert_eq!(unbrotli(&r.body), big);
    let r = request(&mut s, "GET", "/big.js", "");
    assert_eq!(
        (r.header("Vary"), r.body == big),
        (Some("Accept-Encoding"), true)
    );

    // zstd is served from sidecars only.
    let r = get_ae(&mut s, "/text.css", "zstd");
    assert_eq!(
        (r.header("Content-Encoding"), r.body.as_slice()),
        (None, &changed[..])
    );

    // A range of the compressed representation.
    let r = request(
        &mut s,
        "GET",
        "/text.css",
        "Accept-Encoding: gzip\r\nRange: bytes=0-9\r\n",
    );
    let whole = get_ae(&mut s, "/text.css", "gzip").body;
    assert_eq!((r.status, r.body.as_slice()), (206, &whole[..10]));
}

#[test]
fn what_does_not_shrink_or_is_out_of_bounds_is_sent_as_is() {
    let server = one_server(|_| {});
    let root = &server.root;
    let mut x = 0x9e37_79b9_u32;
    let noise: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    std::fs::write(root.join("noise.txt"), &noise).unwrap();
    std::fs::write(root.join("tiny.css"), css(200)).unwrap();
    std::fs::write(root.join("big.json"), css(1024 * 1024 + 1)).unwrap();
    std::fs::write(root.join("image.bin"), css(4000)).unwrap();
    let mut s = server.connect();
    for (path, body) in [
        ("/noise.txt", noise),
        ("/tiny.css", css(200)),
        ("/big.json", css(1024 * 1024 + 1)),
        ("/image.bin", css(4000)),
    ] {
        let r = get_ae(&mut s, path, "gzip, br");
        assert_eq!(r.header("Content-Encoding"), None, "{path}");
        assert_eq!(r.header("Vary"), None, "{path}");
        assert!(r.body == body, "{path}");
    }
}

#[test]
fn compress_enabled_false_sends_sidecars_only() {
    let server = one_server(|c| c.static_files.compress.enabled = false);
    std::fs::write(server.root.join("text.css"), css(8 * 1024)).unwrap();
    std::fs::write(server.root.join("side.css"), css(8 * 1024)).unwrap();
    std::fs::write(server.root.join("side.css.gz"), b"sidecar").unwrap();
    let mut s = server.connect();
    let r = get_ae(&mut s, "/text.css", "gzip, br");
    assert_eq!(
        (r.header("Content-Encoding"), r.header("Vary")),
        (None, None)
    );
    assert_eq!(r.body, css(8 * 1024));
    let r = get_ae(&mut s, "/side.css", "gzip, br");
    assert_eq!(r.header("Content-Encoding"), Some("gzip"));
    assert_eq!(r.body, b"sidecar");
}

#[test]
fn a_file_created_after_a_404_is_served_at_once() {
    for mode in [Revalidate::Inotify, Revalidate::Stat] {
        let server = one_server(|c| c.static_files.revalidate = mode);
        let mut s = server.connect();
        std::fs::create_dir(server.root.join("sub")).unwrap();
        for round in 0..5 {
            let name = format!("/sub/late{round}.txt");
            for _ in 0..3 {
                assert_eq!(request(&mut s, "GET", &name, "").status, 404, "{mode:?}");
            }
            let body = format!("here {round}");
            std::fs::write(server.root.join(&name[1..]), &body).unwrap();
            let r = request(&mut s, "GET", &name, "");
            assert_eq!((r.status, r.text()), (200, body), "{mode:?} round {round}");
        }
        // Missing directories on the way, made after the 404s; escaped
        // names; a file renamed into place.
        for (url, rel) in [
            ("/new/deeper/x.txt", "new/deeper/x.txt"),
            ("/sp%20ace.txt", "sp ace.txt"),
            ("/sub//late0.txt2", "sub/late0.txt2"),
        ] {
            for _ in 0..3 {
                assert_eq!(
                    request(&mut s, "GET", url, "").status,
                    404,
                    "{mode:?} {url}"
                );
            }
            let path = server.root.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            let staged = server.root.join("staged.tmp");
            std::fs::write(&staged, rel).unwrap();
            std::fs::rename(&staged, &path).unwrap();
            let r = request(&mut s, "GET", url, "");
            assert_eq!(
                (r.status, r.text()),
                (200, rel.to_string()),
                "{mode:?} {url}"
            );
        }
    }
}
