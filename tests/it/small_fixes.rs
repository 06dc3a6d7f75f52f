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

/// `GET path` on a new connection that closes after it.
fn fetch(addr: &str, path: &str) -> Response {
    let mut stream = connect(addr);
    exchange(
        &mut stream,
        &format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
    )
}

#[test]
fn stdout_holds_only_the_access_log_and_the_start_up_line_names_the_dashboard() {
    use crate::harness::process::{address, spawn};
    let dir = site_dir("stdout-only-log");
    let mut run = spawn(&dir, &["site", "--listen", "127.0.0.1:0", "--access-log"]);
    let started = run.started_line();
    let addr = address(&started);
    assert!(
        started.ends_with(&format!("; dashboard http://{addr}/status/dashboard")),
        "{started}"
    );
    assert_eq!(fetch(&addr, "/status/dashboard").status, 200);
    assert_eq!(fetch(&addr, "/").status, 200);
    run.stdout_with("\"GET / HTTP/1.1\" 200 2 ");
    run.terminate();
    assert_eq!(run.exit_code(), Some(0));
    assert!(run.stop_line().starts_with("conveyor: stopping on SIGTERM"));
    // Everything on stdout is an access-log line.
    let mut rest = Vec::new();
    while let Ok(line) = run.stdout.recv_timeout(crate::harness::process::LIMIT) {
        rest.push(line);
    }
    for line in &rest {
        assert!(
            line.starts_with("127.0.0.1 - - ["),
            "not an access-log line: {line}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_dashboard_url_is_shown_only_where_a_local_browser_is_let_in() {
    use crate::harness::process::{address, spawn};
    let dir = site_dir("dashboard-url");
    // A wildcard listener: a browser here connects from loopback.
    let run = spawn(&dir, &["site", "--listen", "0.0.0.0:0"]);
    let started = run.started_line();
    let port = address(&started)
        .rsplit(':')
        .next()
        .expect("port")
        .to_string();
    let url = format!("http://127.0.0.1:{port}/status/dashboard");
    assert!(
        started.ends_with(&format!("; dashboard {url}")),
        "{started}"
    );
    assert_eq!(
        fetch(&format!("127.0.0.1:{port}"), "/status/dashboard").status,
        200
    );
    drop(run);
    // Loopback not allowed, or the dashboard or /status off: no URL.
    for config in [
        "[status]\nallow = [\"10.0.0.0/8\"]\n",
        "[status]\ndashboard = false\n",
        "[status]\nenabled = false\n",
    ] {
        std::fs::write(dir.join("c.toml"), format!("root = \"site\"\n{config}")).expect("write");
        let run = spawn(&dir, &["--config", "c.toml", "--listen", "127.0.0.1:0"]);
        let started = run.started_line();
        assert!(!started.contains("dashboard"), "{config}: {started}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_directory_without_an_index_says_why() {
    use crate::harness::process::{address, spawn};
    let dir = temp_dir("no-index");
    std::fs::create_dir_all(dir.join("site/sub")).expect("mkdir");
    std::fs::write(dir.join("site/a.txt"), "a").expect("write");
    let run = spawn(&dir, &["site", "--listen", "127.0.0.1:0", "--verbose"]);
    let addr = address(&run.started_line());
    let note = run.stderr_with("has no");
    assert!(
        note.starts_with("conveyor: note: site has no index.html: GET / answers 404")
            && note.contains("--listing"),
        "{note}"
    );
    assert_eq!(fetch(&addr, "/sub/").status, 404);
    let why = run.stderr_with("refused GET \"/sub/\"");
    assert!(
        why.contains(
            "(404): a directory without its index file (static.index); there is no \
             \"index.html\" in it, and static.listing (--listing) is off"
        ),
        "{why}"
    );
    drop(run);
    // With an index, or with listings, no note.
    std::fs::write(dir.join("site/index.html"), "hi").expect("write");
    let run = spawn(&dir, &["site", "--listen", "127.0.0.1:0"]);
    let addr = address(&run.started_line());
    assert_eq!(fetch(&addr, "/").status, 200);
    let err = run.stop_for_stderr();
    assert!(!err.contains("has no"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
