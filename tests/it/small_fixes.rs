//! The smaller fixes of issue 21 (items 9 and 16), each over real sockets:
//! the header limit, the access log of a malformed request, listings that
//! cannot spoof names, the fallback and `..`, a missing index explained,
//! `static.default_type`, and server messages kept off stdout.

use std::time::Duration;

use crate::harness::*;

fn one(tweak: impl FnOnce(&mut conveyor::config::Config)) -> TestServer {
    start("readiness", "spawn", tweak)
}

/// A request whose header section (every byte after the request line) is
/// exactly `size` bytes.
fn with_header_section(size: usize) -> String {
    // "Host: t\r\n" + "X-Pad: " + pad + "\r\n" + "\r\n"
    let fixed = "Host: t\r\n".len() + "X-Pad: \r\n".len() + "\r\n".len();
    let pad = "p".repeat(size - fixed);
    let request = format!("GET /style.css HTTP/1.1\r\nHost: t\r\nX-Pad: {pad}\r\n\r\n");
    assert_eq!(request.len() - "GET /style.css HTTP/1.1\r\n".len(), size);
    request
}

#[test]
fn max_header_bytes_is_the_header_section_to_the_byte() {
    let server = one(|c| c.limits.max_header_bytes = 8192);
    let at = ask(&server, &with_header_section(8192));
    assert_eq!(at.status, 200, "{}", at.text());
    let over = ask(&server, &with_header_section(8193));
    assert_eq!(over.status, 431, "{}", over.text());
    // The 16 KiB the old sum (request line + headers) let through.
    let big = ask(&server, &with_header_section(16 * 1024));
    assert_eq!(big.status, 431);
    // A long request line does not lend the header section its room.
    let path = "a".repeat(4000);
    let pad = "p".repeat(8192 + 100);
    let long = ask(
        &server,
        &format!("GET /{path} HTTP/1.1\r\nHost: t\r\nX-Pad: {pad}\r\n\r\n"),
    );
    assert_eq!(long.status, 431);
    let _ = Duration::ZERO;
}

#[test]
fn listings_show_bidi_controls_and_human_sizes() {
    let server = one(|c| c.static_files.listing = true);
    let dir = server.root.join("l");
    std::fs::create_dir_all(&dir).expect("mkdir");
    // Shown raw, this name reads "evilexe.jpg" in a browser.
    let spoof = "evil\u{202E}gpj.exe";
    let others = [
        "a\u{200E}b\u{200F}c",
        "d\u{202A}e\u{202B}f\u{202C}g\u{202D}h",
        "i\u{2066}j\u{2067}k\u{2068}l\u{2069}m",
    ];
    for name in std::iter::once(spoof).chain(others) {
        std::fs::write(dir.join(name), b"x").expect("write");
    }
    let big = std::fs::File::create(dir.join("big.bin")).expect("create");
    big.set_len(1536 * 1024).expect("len");
    std::fs::write(dir.join("small.txt"), vec![b's'; 700]).expect("write");

    let page = get_with(&server, "/l/", "");
    assert_eq!(page.status, 200);
    let html = page.text();
    for bidi in [
        '\u{200E}', '\u{200F}', '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}',
        '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}',
    ] {
        assert!(!html.contains(bidi), "raw U+{:04X} in {html}", bidi as u32);
    }
    assert!(html.contains(">evil\\u{202E}gpj.exe</a>"), "{html}");
    assert!(html.contains("a\\u{200E}b\\u{200F}c"), "{html}");
    // The link still fetches the file (its bytes percent-encoded).
    assert!(html.contains("href=\"./evil%E2%80%AEgpj.exe\""), "{html}");
    assert_eq!(get_with(&server, "/l/evil%E2%80%AEgpj.exe", "").status, 200);
    // Sizes in human units, the exact count in the title.
    assert!(
        html.contains("<span title=\"1572864 bytes\">1.5 MiB</span>"),
        "{html}"
    );
    assert!(
        html.contains("<span title=\"700 bytes\">700 B</span>"),
        "{html}"
    );
    // JSON keeps bytes, and the name as it is.
    let json = get_with(&server, "/l/?format=json", "").text();
    assert!(
        json.contains("\"name\":\"big.bin\",\"type\":\"file\",\"size\":1572864,"),
        "{json}"
    );
    assert!(json.contains(spoof), "{json}");
}

/// The access log's lines once `n` are written.
fn log_lines(server: &TestServer, path: &std::path::Path, n: usize) -> Vec<String> {
    let mut text = String::new();
    let logged = wait_until(Duration::from_secs(5), || {
        server.server().flush_log();
        text = std::fs::read_to_string(path).unwrap_or_default();
        text.lines().count() >= n
    });
    assert!(logged, "log: {text:?}");
    text.lines().map(str::to_string).collect()
}

#[test]
fn a_malformed_request_is_logged_as_sent_with_its_bytes() {
    let dir = temp_dir("small-log");
    let path = dir.join("access.log");
    let log_path = path.to_str().expect("utf-8").to_string();
    let server = one(|c| {
        c.log.access_log = true;
        c.log.access_log_path = log_path.clone();
    });
    // A quote in the target (400), with a byte that is not UTF-8.
    let bad = raw(server.addr, b"GET /a\"b\xff HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(bad.status, 400);
    // TLS spoken to the plain port: binary, no line ending.
    let tls = raw(server.addr, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03");
    assert_eq!(tls.status, 400);
    // A request that parses, whose User-Agent is not UTF-8.
    let ok = raw(
        server.addr,
        b"GET /style.css HTTP/1.1\r\nHost: t\r\nUser-Agent: ua\xff\xfe\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(ok.status, 200);
    let lines = log_lines(&server, &path, 3);
    let line = |needle: &str| {
        lines
            .iter()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in {lines:?}"))
            .clone()
    };
    assert!(
        line(" 400 ").contains(&format!(
            "\"GET /a\\x22b\\xFF HTTP/1.1\" 400 {} \"-\" \"-\"",
            bad.body.len()
        )),
        "{lines:?}"
    );
    assert!(
        line("\\x16").contains(&format!(
            "\"\\x16\\x03\\x01\\x02\\x00\\x01\\x00\\x01\\xFC\\x03\\x03\" 400 {} ",
            tls.body.len()
        )),
        "{lines:?}"
    );
    assert!(
        line("style.css").ends_with("\"-\" \"ua\\xFF\\xFE\""),
        "{lines:?}"
    );
    assert!(lines
        .iter()
        .all(|l| l.is_ascii() && !l.contains("EF\\xBF\\xBD")));
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn default_type_names_files_without_an_extension() {
    // Today's answer stays the default.
    let plain = one(|_| {});
    std::fs::write(plain.root.join("README"), "read me\n").expect("write");
    std::fs::write(plain.root.join("data.zzzunknown"), "?").expect("write");
    let r = get_with(&plain, "/README", "");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));

    let text = "text/plain; charset=utf-8";
    let server = one(|c| c.static_files.default_type = text.into());
    std::fs::write(server.root.join("README"), "read me\n").expect("write");
    std::fs::write(server.root.join("data.zzzunknown"), "?").expect("write");
    // Big enough for sendfile too: the type does not depend on the path taken.
    std::fs::write(server.root.join("LICENSE"), vec![b'l'; 200 * 1024]).expect("write");
    for path in ["/README", "/LICENSE"] {
        let r = get_with(&server, path, "");
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-type"), Some(text), "{path}");
    }
    let head = ask(&server, "HEAD /README HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(head.header("content-type"), Some(text));
    // An extension nobody knows is not "no extension".
    let unknown = get_with(&server, "/data.zzzunknown", "");
    assert_eq!(
        unknown.header("content-type"),
        Some("application/octet-stream")
    );
    assert_eq!(
        get_with(&server, "/style.css", "").header("content-type"),
        Some("text/css; charset=utf-8")
    );

    // A value that cannot be a Content-Type is refused, naming the key.
    for bad in ["text", "text/plain\r\nX-Evil: 1", "/plain", "a b/c"] {
        let toml = format!("[static]\ndefault_type = {bad:?}\n");
        let err = conveyor::config::Config::from_toml_str(&toml)
            .expect_err(bad)
            .to_string();
        assert!(
            err.contains("static.default_type") && err.contains("media type"),
            "{err}"
        );
    }
}
