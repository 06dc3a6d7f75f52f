//! Issue 21's service hardening, over real sockets: CORS never reflects an
//! origin it was not given, the HTTPS redirect never reflects a Host it
//! has no certificate for, header rules cannot take `Vary` or the fields
//! the server owns, and `/echo` neither reflects credentials nor pays a
//! write per chunk.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::process::BIN;
use crate::harness::*;
use conveyor::config::{Config, ListenAddress, ListenAddresses};

fn one(tweak: impl FnOnce(&mut Config)) -> TestServer {
    start("readiness", "spawn", tweak)
}

fn rules(toml: &str) -> Config {
    Config::from_toml_str(toml).expect("config")
}

/// Runs the binary on a config file holding `toml`: its exit code and
/// what it wrote.
fn start_on(toml: &str, tag: &str) -> (Option<i32>, String) {
    let dir = temp_dir(tag);
    let file = dir.join("conveyor.toml");
    std::fs::write(&file, toml).expect("write config");
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&file)
        .args(["--listen", "127.0.0.1:0"])
        .arg(&dir)
        .output()
        .expect("runs");
    let _ = std::fs::remove_dir_all(&dir);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}

#[test]
fn cors_star_with_credentials_is_refused_and_null_is_never_reflected() {
    let (code, text) = start_on(
        "[cors]\norigins = [\"*\"]\ncredentials = true\n",
        "cors-star",
    );
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("cors.origins = [\"*\"] with cors.credentials = true")
            && text.contains("set credentials = false"),
        "{text}"
    );
    // The library refuses it too: no server starts.
    let mut c = test_config(&std::env::temp_dir(), "readiness", "spawn");
    c.static_files.cors.origins = vec!["*".into()];
    c.static_files.cors.credentials = true;
    let e = conveyor::Server::start(c).err().expect("refused");
    assert!(e.to_string().contains("cors.credentials"), "{e}");

    // Listed origins with credentials: only those, and "null" only when listed.
    let c = rules("[cors]\norigins = [\"https://app.example\"]\ncredentials = true\n");
    let server = one(|config| config.static_files.cors = c.static_files.cors.clone());
    for origin in ["null", "https://evil.example", "https://app.example.evil"] {
        let r = get_with(&server, "/style.css", &format!("Origin: {origin}\r\n"));
        assert_eq!(r.status, 200);
        assert_eq!(r.header("access-control-allow-origin"), None, "{origin}");
        assert_eq!(r.header("access-control-allow-credentials"), None);
    }
    let r = get_with(&server, "/style.css", "Origin: https://app.example\r\n");
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));

    let c = rules("[cors]\norigins = [\"null\"]\n");
    let server = one(|config| config.static_files.cors = c.static_files.cors.clone());
    let r = get_with(&server, "/style.css", "Origin: null\r\n");
    assert_eq!(r.header("access-control-allow-origin"), Some("null"));

    // "*" without credentials answers "*", never the origin sent.
    let c = rules("[cors]\norigins = \"*\"\n");
    let server = one(|config| config.static_files.cors = c.static_files.cors.clone());
    let r = get_with(&server, "/style.css", "Origin: null\r\n");
    assert_eq!(r.all("access-control-allow-origin"), ["*"]);
    assert_eq!(r.header("access-control-allow-credentials"), None);
}

#[test]
fn header_rules_add_to_vary_and_cannot_touch_the_encoding() {
    // Refused at start, naming the rule, its path and the fix.
    for (rule, says) in [
        ("remove = [\"Vary\"]", "Leave Vary out of remove"),
        ("remove = [\"Content-Encoding\"]", "take it out of the rule"),
        (
            "set = { Content-Length = \"1\" }",
            "take it out of the rule",
        ),
        (
            "add = { ETag = \"\\\"x\\\"\" }",
            "remove = [\"ETag\"] drops it",
        ),
    ] {
        let toml = format!(
            "[[headers]]\npath = \"**\"\nset = {{ X-A = \"1\" }}\n\
             [[headers]]\npath = \"*.css\"\n{rule}\n"
        );
        let (code, text) = start_on(&toml, "rules-owned");
        assert_eq!(code, Some(2), "{rule}: {text}");
        assert!(
            text.contains("(rule 2) for path \"*.css\"") && text.contains(says),
            "{rule}: {text}"
        );
    }

    // A rule's Vary joins the server's: the compressed answer, its 304 and
    // its 206 all still say Accept-Encoding.
    let c = rules(
        "[[headers]]\npath = \"*.css\"\nset = { Vary = \"Cookie\" }\n\
         [[headers]]\npath = \"**\"\nadd = { Vary = \"cookie, Accept-Encoding, X-Mode\" }\n",
    );
    let server = one(|config| config.static_files.headers = c.static_files.headers.clone());
    let vary = |r: &Response| -> Vec<String> {
        let mut tokens: Vec<String> = r
            .all("vary")
            .iter()
            .flat_map(|v| v.split(',').map(|t| t.trim().to_ascii_lowercase()))
            .collect();
        tokens.sort();
        tokens
    };
    let want = ["accept-encoding", "cookie", "x-mode"];
    // A request waits 500 ms for its file's first compression, then is
    // sent the file as it is: on a loaded machine, ask again until the
    // compressed answer is there.
    let deadline = Instant::now() + Duration::from_secs(20);
    let br = loop {
        let r = get_with(&server, "/style.css", "Accept-Encoding: br\r\n");
        if r.header("content-encoding").is_some() || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(br.status, 200);
    assert_eq!(br.header("content-encoding"), Some("br"), "{br:?}");
    assert_eq!(vary(&br), want, "{br:?}");
    let tag = br.header("etag").expect("etag").to_string();
    let again = get_with(
        &server,
        "/style.css",
        &format!("Accept-Encoding: br\r\nIf-None-Match: {tag}\r\n"),
    );
    assert_eq!(again.status, 304);
    assert_eq!(vary(&again), want, "{again:?}");
    let part = get_with(
        &server,
        "/style.css",
        "Accept-Encoding: br\r\nRange: bytes=0-9\r\n",
    );
    assert_eq!(part.status, 206);
    assert_eq!(part.header("content-encoding"), Some("br"));
    assert_eq!(vary(&part), want, "{part:?}");
    let plain = get_with(&server, "/style.css", "");
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(vary(&plain), want, "{plain:?}");
}

/// A server with TLS (a certificate for `localhost`, served for `names`)
/// and `redirect_http`, on TCP and a Unix socket in `dir`.
fn redirecting(dir: &std::path::Path, names: &[&str], canonical: &str) -> TestServer {
    let mut cert = localhost_certificate(dir);
    cert.names = names.iter().map(|n| n.to_string()).collect();
    let sock = dir.join(format!("plain-{}.sock", names.len()));
    one(|c| {
        c.listen = ListenAddresses(vec![
            ListenAddress::parse("127.0.0.1:0").expect("addr"),
            ListenAddress::Unix(sock),
        ]);
        c.tls.listen = vec!["127.0.0.1:0".parse().expect("addr")];
        c.tls.certificates = vec![cert];
        c.tls.redirect_http = true;
        c.tls.redirect_host = canonical.to_string();
    })
}

fn with_host(server: &TestServer, path: &str, host: &str) -> Response {
    ask(
        server,
        &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n"),
    )
}

#[test]
fn redirect_http_sends_only_names_it_has_certificates_for() {
    let dir = temp_dir("redirect-names");
    // The certificate has no `names`: its own subject names count.
    let server = redirecting(&dir, &[], "");
    let port = server.server().tls_addrs()[0].port();
    let r = with_host(&server, "/a?b=c", "localhost:8080");
    assert_eq!(r.status, 308, "{r:?}");
    assert_eq!(
        r.header("location"),
        Some(format!("https://localhost:{port}/a?b=c").as_str())
    );
    for host in ["evil.example", "evil.example:8080", "127.0.0.1", "[::1]:80"] {
        let r = with_host(&server, "/a", host);
        assert_eq!(r.status, 421, "{host}: {r:?}");
        assert_eq!(r.reason, "Misdirected Request");
        assert_eq!(r.header("location"), None, "{host}");
    }
    // The probes and /status (with the dashboard under it) answer as they
    // are, whatever the Host: a health check behind a proxy comes in plain.
    for path in ["/livez", "/readyz", "/status", "/status/dashboard"] {
        let r = with_host(&server, path, "evil.example");
        assert_eq!(r.status, 200, "{path}: {r:?}");
        assert_eq!(r.header("location"), None, "{path}");
    }
    // A Unix-socket peer (a proxy on this machine) is served, not redirected.
    let sock = server.server().listeners()[1]
        .strip_prefix("unix:")
        .expect("unix listener")
        .to_string();
    let mut unix = UnixStream::connect(&sock).expect("unix connect");
    unix.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(unix, "GET /style.css HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("send");
    assert_eq!(read_response(&mut unix).status, 200);

    // Named certificates: their names (wildcards too), and the canonical
    // host for anything else; the certificate's own names no longer count.
    let server = redirecting(
        &dir,
        &["www.example.test", "*.apps.example.test"],
        "example.test",
    );
    let port = server.server().tls_addrs()[0].port();
    for (host, to) in [
        ("WWW.example.test:80", "WWW.example.test"),
        ("a.apps.example.test", "a.apps.example.test"),
        ("a.b.apps.example.test", "example.test"),
        ("evil.example", "example.test"),
        ("localhost", "example.test"),
    ] {
        let r = with_host(&server, "/x", host);
        assert_eq!(r.status, 308, "{host}: {r:?}");
        assert_eq!(
            r.header("location"),
            Some(format!("https://{to}:{port}/x").as_str()),
            "{host}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn redirect_host_is_checked_at_start() {
    let (code, text) = start_on(
        "[tls]\nredirect_host = \"https://example.com/\"\n",
        "redirect-host",
    );
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("tls.redirect_host") && text.contains("no scheme, port or path"),
        "{text}"
    );
}

#[test]
fn get_echo_leaves_out_cookies_and_credentials() {
    let server = one(|_| {});
    let r = ask(
        &server,
        "GET /echo HTTP/1.1\r\nHost: t\r\nCookie: session=secret1\r\n\
         X-Kept: yes\r\nauthorization: Basic c2VjcmV0Mg==\r\n\
         Proxy-Authorization: Bearer secret3\r\nCOOKIE: b=secret4\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    let text = r.text();
    assert!(
        text.starts_with("GET /echo HTTP/1.1\r\nHost: t\r\n"),
        "{text}"
    );
    assert!(text.contains("X-Kept: yes\r\n"), "{text}");
    assert!(!text.contains("secret"), "{text}");
    assert!(!text.to_ascii_lowercase().contains("cookie"), "{text}");
    assert!(
        !text.to_ascii_lowercase().contains("authorization"),
        "{text}"
    );
    assert_eq!(
        r.body.len().to_string(),
        r.header("content-length").unwrap_or("")
    );
}

/// Reads a chunked body off `stream` (head first): the data and the
/// number of chunks it came in.
fn read_chunked(stream: &mut impl Read) -> (Vec<u8>, usize) {
    let mut raw = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        let n = stream.read(&mut buf).expect("read");
        assert!(n > 0, "closed before the last chunk");
        raw.extend_from_slice(&buf[..n]);
        if raw.ends_with(b"\r\n0\r\n\r\n") {
            break;
        }
    }
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("head") + 4;
    assert!(
        raw.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&raw[..head_end])
    );
    let (mut at, mut data, mut chunks) = (head_end, Vec::new(), 0);
    loop {
        let eol = at
            + raw[at..]
                .windows(2)
                .position(|w| w == b"\r\n")
                .expect("size line");
        let size = usize::from_str_radix(std::str::from_utf8(&raw[at..eol]).expect("hex"), 16)
            .expect("chunk size");
        if size == 0 {
            return (data, chunks);
        }
        data.extend_from_slice(&raw[eol + 2..eol + 2 + size]);
        assert_eq!(&raw[eol + 2 + size..eol + 4 + size], b"\r\n");
        at = eol + 4 + size;
        chunks += 1;
    }
}

#[test]
fn one_byte_chunks_are_echoed_in_one_chunk_per_read() {
    const N: usize = 100_000;
    let server = one(|_| {});
    let body: Vec<u8> = (0..N).map(|i| b"abcdefghij"[i % 10]).collect();
    let mut wire = b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for b in &body {
        wire.extend_from_slice(b"1\r\n");
        wire.push(*b);
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"0\r\n\r\n");
    let mut stream = server.connect();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut writer = stream.try_clone().expect("clone");
    let sender = std::thread::spawn(move || writer.write_all(&wire));
    let (data, chunks) = read_chunked(&mut stream);
    sender.join().expect("sender").expect("sent");
    assert!(
        data == body,
        "the echo differs ({} bytes of {N})",
        data.len()
    );
    // 600 kB arrive in reads of at most a buffer (16 KiB): a few dozen
    // chunks back, never one per byte.
    assert!(
        chunks <= N / 1000,
        "{chunks} chunks for {N} one-byte chunks"
    );
    // The connection is still good for the next request.
    let r = get(&mut stream, "/style.css");
    assert_eq!(r.status, 200);
}
