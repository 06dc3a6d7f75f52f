//! Every feature over HTTP/2 as over HTTP/1.1, on real sockets, over both
//! h2c (prior knowledge) and TLS with ALPN `h2`: static files, sidecars
//! and the compression cache, site rules, `/echo` under flow control,
//! `/status` and its event stream, the probes, reloads, the access log,
//! admission under pressure, the `http2.*` switches, curl, and Chromium
//! loading the bundled site over h2.
//!
//! The client is the `h2` crate on Conveyor's own runtime
//! (`harness::h2_client`); curl checks what a common client negotiates.

use std::io::Write;
use std::time::{Duration, Instant};

use bytes::Bytes;
use conveyor::config::Config;

use crate::harness::h2_client::{fetch, get2, read_body, session, session_with, Target};
use crate::harness::status::{status, Figures};
use crate::harness::tls::{localhost_pki, tls_addr, with_tls, Pki};
use crate::harness::{connect, needs, start, wait_until, Response, TestServer};

/// A server with a plain and a TLS listener, and the clients for both.
struct Both {
    server: TestServer,
    pki: Pki,
}

impl Both {
    fn start(tweak: impl FnOnce(&mut Config)) -> Both {
        let pki = localhost_pki();
        let server = start("readiness", "spawn", |c| {
            with_tls(c, &pki);
            tweak(c);
        });
        Both { server, pki }
    }

    fn h2c(&self) -> Target {
        Target::Cleartext(self.server.addr)
    }

    fn tls(&self) -> Target {
        Target::tls(tls_addr(&self.server), &self.pki.ders)
    }

    /// h2c, then h2 over TLS.
    fn targets(&self) -> [Target; 2] {
        [self.h2c(), self.tls()]
    }

    fn file(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.server.root.join(rel)).expect("read a served file")
    }
}

fn with(headers: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
    headers.to_vec()
}

/// Several requests on one connection: each `(path, fields)` in turn.
fn on_one_connection(
    target: &Target,
    requests: Vec<(&'static str, Vec<(&'static str, String)>)>,
) -> Vec<Response> {
    session(target, move |h2| async move {
        let mut out = Vec::new();
        for (path, fields) in &requests {
            let fields: Vec<(&str, &str)> = fields.iter().map(|(n, v)| (*n, &v[..])).collect();
            out.push(h2.get(path, &fields).await);
        }
        out
    })
}

#[test]
fn static_files_answer_over_h2_as_over_http_1_1() {
    let both = Both::start(|_| {});
    let index = both.file("index.html");
    let css = both.file("style.css");
    for target in both.targets() {
        let name = target.name();
        // The index file for "/", with its type; a MIME type per file.
        let home = get2(&target, "/");
        assert_eq!(home.status, 200, "{name}");
        assert_eq!(home.body, index, "{name}");
        assert!(
            home.header("content-type")
                .unwrap_or("")
                .starts_with("text/html"),
            "{name}"
        );
        let style = get2(&target, "/style.css");
        assert_eq!(style.body, css, "{name}");
        assert!(
            style
                .header("content-type")
                .unwrap_or("")
                .starts_with("text/css"),
            "{name}"
        );
        assert_eq!(
            style.header("content-length"),
            Some(css.len().to_string().as_str()),
            "{name}"
        );
        assert!(
            style.header("connection").is_none(),
            "{name}: no connection field in h2"
        );
        let svg = get2(&target, "/conveyor.svg");
        assert!(
            svg.header("content-type")
                .unwrap_or("")
                .starts_with("image/svg+xml"),
            "{name}"
        );
        // ETag and 304, a single range and a multi-range (answered in full,
        // as over HTTP/1.1), all on one connection.
        let etag = style.header("etag").expect("etag").to_string();
        let answers = on_one_connection(
            &target,
            vec![
                ("/style.css", with(&[("if-none-match", etag.clone())])),
                ("/style.css", with(&[("range", "bytes=0-3".into())])),
                ("/style.css", with(&[("range", "bytes=0-1,5-6".into())])),
                ("/docs", vec![]),
                ("/no-such-file", vec![]),
                ("/docs/", vec![]),
            ],
        );
        let [not_modified, part, multi, redirect, missing, docs] = &answers[..] else {
            unreachable!()
        };
        assert_eq!(not_modified.status, 304, "{name}");
        assert!(not_modified.body.is_empty(), "{name}");
        assert_eq!(not_modified.header("etag"), Some(etag.as_str()), "{name}");
        assert_eq!(part.status, 206, "{name}");
        assert_eq!(part.body, css[..4], "{name}");
        assert_eq!(
            part.header("content-range"),
            Some(format!("bytes 0-3/{}", css.len()).as_str()),
            "{name}"
        );
        assert_eq!(
            multi.status, 200,
            "{name}: a multi-range gets the whole file"
        );
        assert_eq!(multi.body, css, "{name}");
        assert_eq!(redirect.status, 301, "{name}");
        assert_eq!(redirect.header("location"), Some("/docs/"), "{name}");
        assert_eq!(missing.status, 404, "{name}");
        assert_eq!(docs.body, both.file("docs/index.html"), "{name}");
        // HEAD: the head of GET, its content-length, no body.
        let head = fetch(&target, "HEAD", "/style.css", &[]);
        assert_eq!(head.status, 200, "{name}");
        assert!(head.body.is_empty(), "{name}");
        assert_eq!(
            head.header("content-length"),
            Some(css.len().to_string().as_str()),
            "{name}"
        );
        assert_eq!(head.header("etag"), Some(etag.as_str()), "{name}");
        // A method static files refuse.
        assert_eq!(
            fetch(&target, "DELETE", "/style.css", &[]).status,
            405,
            "{name}"
        );
    }
}

/// Many streams at once on one connection, each answered with its own file.
#[test]
fn concurrent_streams_on_one_connection_each_get_their_own_answer() {
    let both = Both::start(|_| {});
    let files = [
        "/index.html",
        "/style.css",
        "/app.js",
        "/conveyor.svg",
        "/docs/index.html",
    ];
    let expected: Vec<Vec<u8>> = files.iter().map(|f| both.file(&f[1..])).collect();
    for target in both.targets() {
        let name = target.name();
        let bodies = session(&target, move |h2| async move {
            let tasks: Vec<_> = (0..40)
                .map(|i| {
                    let h2 = h2.clone();
                    conveyor::runtime::spawn(
                        async move { h2.get(files[i % files.len()], &[]).await },
                    )
                })
                .collect();
            let mut out = Vec::new();
            for task in tasks {
                out.push(task.await.expect("stream task"));
            }
            out
        });
        for (i, response) in bodies.iter().enumerate() {
            assert_eq!(response.status, 200, "{name} stream {i}");
            assert_eq!(
                response.body,
                expected[i % files.len()],
                "{name} stream {i}"
            );
        }
    }
}

/// curl, a common client: it negotiates HTTP/2 both ways and gets the
/// same bytes.
#[test]
fn curl_speaks_h2c_with_prior_knowledge_and_h2_over_tls() {
    let Some(curl) = needs::CURL.find() else {
        return;
    };
    let both = Both::start(|_| {});
    let css = both.file("style.css");
    let out = both.server.root.with_extension("curl-out");
    for (flags, url) in [
        (
            vec!["--http2-prior-knowledge"],
            format!("http://{}/style.css", both.server.addr),
        ),
        (
            vec!["-k", "--http2"],
            format!(
                "https://localhost:{}/style.css",
                tls_addr(&both.server).port()
            ),
        ),
    ] {
        let result = std::process::Command::new(&curl)
            .args(["-sS", "--max-time", "10", "-o"])
            .arg(&out)
            .args(["-w", "%{http_version} %{http_code}"])
            .args(&flags)
            .args([
                "--resolve",
                &format!("localhost:{}:127.0.0.1", tls_addr(&both.server).port()),
            ])
            .arg(&url)
            .output()
            .expect("run curl");
        let said = String::from_utf8_lossy(&result.stdout).into_owned();
        assert_eq!(
            said,
            "2 200",
            "{url}: {}",
            String::from_utf8_lossy(&result.stderr)
        );
        assert_eq!(std::fs::read(&out).expect("curl's output"), css, "{url}");
    }
    let _ = std::fs::remove_file(&out);
}

/// GET `path` with fields, on a new connection.
fn get_fields(target: &Target, path: &str, fields: &[(&str, &str)]) -> Response {
    fetch(target, "GET", path, fields)
}

fn unbrotli(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::BrotliDecompress(&mut &bytes[..], &mut out).expect("valid brotli");
    out
}

/// Text that compresses, `len` bytes.
fn text(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 64);
    let mut n = 0u32;
    while out.len() < len {
        out.extend_from_slice(
            format!("function f{n}() {{ return {}; }}\n", n * 7919 % 1000).as_bytes(),
        );
        n += 1;
    }
    out.truncate(len);
    out
}

#[test]
fn sidecars_and_the_compression_cache_answer_over_h2() {
    let both = Both::start(|_| {});
    let root = &both.server.root;
    let plain = text(3000);
    std::fs::write(root.join("site.css"), &plain).expect("write");
    std::fs::write(root.join("site.css.gz"), b"gz-sidecar ".repeat(200)).expect("write");
    std::fs::write(root.join("site.css.br"), b"br-sidecar!".repeat(150)).expect("write");
    let big = text(100 * 1024);
    std::fs::write(root.join("big.js"), &big).expect("write");
    for target in both.targets() {
        let name = target.name();
        // Sidecars, negotiated by Accept-Encoding, each its own ETag.
        let identity = get2(&target, "/site.css");
        assert_eq!(identity.body, plain, "{name}");
        assert_eq!(identity.header("vary"), Some("Accept-Encoding"), "{name}");
        assert_eq!(identity.header("content-encoding"), None, "{name}");
        let gz = get_fields(&target, "/site.css", &[("accept-encoding", "gzip")]);
        assert_eq!(gz.header("content-encoding"), Some("gzip"), "{name}");
        assert_eq!(gz.body, b"gz-sidecar ".repeat(200), "{name}");
        let br = get_fields(
            &target,
            "/site.css",
            &[("accept-encoding", "gzip, deflate, br")],
        );
        assert_eq!(br.header("content-encoding"), Some("br"), "{name}");
        assert_eq!(br.body, b"br-sidecar!".repeat(150), "{name}");
        assert_ne!(br.header("etag"), identity.header("etag"), "{name}");
        let etag = br.header("etag").expect("etag").to_string();
        let again = get_fields(
            &target,
            "/site.css",
            &[("accept-encoding", "br"), ("if-none-match", &etag)],
        );
        assert_eq!(again.status, 304, "{name}");
        // The compression cache: compressed once, then served from memory.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = get_fields(&target, "/big.js", &[("accept-encoding", "br")]);
            assert_eq!(r.status, 200, "{name}");
            if r.header("content-encoding") == Some("br") {
                assert!(
                    unbrotli(&r.body) == big,
                    "{name}: big.js decodes to the file"
                );
                break;
            }
            assert!(r.body == big, "{name}: big.js as it is, meanwhile");
            assert!(Instant::now() < deadline, "{name}: compressed within 30 s");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let cache = status(&both.server).at("file_cache").clone();
    assert_eq!(cache.at("compressions").int(), 1, "once for both: {cache}");
}

/// The fields of a response, as HTTP/2 carries them: names in lower case,
/// no connection-level fields, no Date (it may tick between the two).
fn fields(response: &Response) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = response
        .headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
        .filter(|(n, _)| {
            !["date", "connection", "keep-alive", "transfer-encoding"].contains(&n.as_str())
        })
        .collect();
    out.sort();
    out
}

/// Asserts `h2` is the answer HTTP/1.1 gets for `GET path`: status, body,
/// and fields.
fn same_as_http1(server: &TestServer, path: &str, h2: &Response, name: &str) {
    let h1 = crate::harness::get_with(server, path, "");
    assert_eq!(h2.status, h1.status, "{name} {path}");
    assert!(h2.body == h1.body, "{name} {path}: bodies differ");
    assert_eq!(fields(h2), fields(&h1), "{name} {path}");
}

fn rules(toml: &str) -> Config {
    Config::from_toml_str(toml).expect("config")
}

/// Header rules, CORS, an error page, the SPA fallback and a listing, all
/// on one server, over both.
#[test]
fn header_rules_cors_error_pages_the_fallback_and_listings_answer_over_h2() {
    let site = rules(
        r#"
        [static]
        fallback = "/index.html"
        fallback_only_without_extension = true
        listing = true
        error_pages = { 404 = "/errors/404.html" }
        [[headers]]
        path = "**"
        set = { Cache-Control = "max-age=60" }
        add = { X-Both = "one" }
        [[headers]]
        path = "*.html"
        add = { X-Both = "two" }
        remove = ["Last-Modified"]
        [[headers]]
        path = "/docs/**"
        set = { Content-Security-Policy = "default-src 'self'" }
        errors = true
        [cors]
        origins = ["https://app.example"]
        headers = ["Range"]
        max_age = "1h"
        "#,
    );
    let both = Both::start(|c| c.static_files = site.static_files.clone());
    let root = &both.server.root;
    std::fs::create_dir_all(root.join("errors")).expect("mkdir");
    std::fs::write(root.join("errors/404.html"), "<h1>not here</h1>\n").expect("write");
    std::fs::create_dir_all(root.join("files/sub")).expect("mkdir");
    std::fs::write(root.join("files/a <b>.txt"), "x").expect("write");
    let index = both.file("index.html");
    for target in both.targets() {
        let name = target.name();
        let css = get2(&target, "/style.css");
        assert_eq!(css.all("cache-control"), ["max-age=60"], "{name}");
        assert_eq!(css.all("x-both"), ["one"], "{name}");
        assert!(css.header("last-modified").is_some(), "{name}");
        let home = get2(&target, "/index.html");
        assert_eq!(home.all("x-both"), ["one", "two"], "{name}: {home:?}");
        assert!(home.header("last-modified").is_none(), "{name}");
        // CORS: a preflight, and a simple request marked for its origin.
        let preflight = fetch(
            &target,
            "OPTIONS",
            "/style.css",
            &[
                ("origin", "https://app.example"),
                ("access-control-request-method", "GET"),
                ("access-control-request-headers", "range"),
            ],
        );
        assert_eq!(preflight.status, 204, "{name}: {preflight:?}");
        assert_eq!(
            preflight.header("access-control-allow-origin"),
            Some("https://app.example"),
            "{name}"
        );
        assert_eq!(
            preflight.header("access-control-allow-methods"),
            Some("GET, HEAD"),
            "{name}"
        );
        assert_eq!(
            preflight.header("access-control-max-age"),
            Some("3600"),
            "{name}"
        );
        let simple = get_fields(&target, "/style.css", &[("origin", "https://app.example")]);
        assert_eq!(
            simple.header("access-control-allow-origin"),
            Some("https://app.example"),
            "{name}"
        );
        assert!(
            simple.all("vary").iter().any(|v| v.contains("Origin")),
            "{name}"
        );
        let other = get_fields(&target, "/style.css", &[("origin", "https://evil.example")]);
        assert!(
            other.header("access-control-allow-origin").is_none(),
            "{name}"
        );
        // The error page keeps its status; its fields are those HTTP/1.1 gets.
        let missing = get2(&target, "/docs/nope.html");
        assert_eq!(missing.status, 404, "{name}");
        assert_eq!(missing.text(), "<h1>not here</h1>\n", "{name}");
        same_as_http1(&both.server, "/docs/nope.html", &missing, name);
        same_as_http1(&both.server, "/index.html", &home, name);
        let head = fetch(&target, "HEAD", "/docs/nope.html", &[]);
        assert_eq!((head.status, head.body.len()), (404, 0), "{name}");
        assert_eq!(head.header("content-length"), Some("18"), "{name}");
        // The fallback: a missing path with no extension gets the index;
        // a traversal does not.
        let app = get2(&target, "/app/settings");
        assert_eq!(app.status, 200, "{name}");
        assert_eq!(app.body, index, "{name}");
        assert_eq!(get2(&target, "/%2e%2e/etc/passwd").status, 404, "{name}");
        // A listing: escaped names, JSON on request.
        let listing = get2(&target, "/files/");
        assert_eq!(listing.status, 200, "{name}");
        let html = listing.text();
        assert!(
            html.contains("a &lt;b&gt;.txt") && html.contains("href=\"./sub/\""),
            "{name}: {html}"
        );
        let json = get_fields(&target, "/files/", &[("accept", "application/json")]);
        assert_eq!(
            json.header("content-type"),
            Some("application/json"),
            "{name}"
        );
        assert!(
            json.text().starts_with("{\"path\":\"/files/\""),
            "{name}: {}",
            json.text()
        );
    }
}

/// Bytes that tell their offset: a lost, repeated or reordered piece shows.
fn pattern(len: usize) -> Bytes {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[2] ^ (i / 65_536) as u8)
        .collect::<Vec<u8>>()
        .into()
}

/// Sends `body` on `stream` as the server's window allows.
async fn send_body(mut stream: h2::SendStream<Bytes>, body: Bytes) -> Result<(), h2::Error> {
    let mut sent = 0;
    while sent < body.len() {
        let want = (body.len() - sent).min(64 * 1024);
        stream.reserve_capacity(want);
        let mut granted = stream.capacity();
        while granted == 0 {
            granted = match std::future::poll_fn(|cx| stream.poll_capacity(cx)).await {
                Some(granted) => granted?,
                None => return Err(h2::Error::from(h2::Reason::CANCEL)),
            };
        }
        let n = granted.min(want);
        stream.send_data(body.slice(sent..sent + n), sent + n == body.len())?;
        sent += n;
    }
    Ok(())
}

/// POSTs `body` to `/echo` (with or without a length) while reading the
/// echo, on a client whose windows are `window` bytes; the echo.
fn echo(target: &Target, body: Bytes, with_length: bool, window: u32) -> Response {
    let mut builder = h2::client::Builder::new();
    builder
        .initial_window_size(window)
        .initial_connection_window_size(window);
    let name = target.name();
    session_with(target, builder, move |h2| async move {
        let length = body.len().to_string();
        let fields: &[(&str, &str)] = match with_length {
            true => &[("content-length", &length)],
            false => &[],
        };
        let head = h2.head("POST", "/echo", fields);
        let mut send = h2.sender().ready().await.expect("ready");
        let (answer, stream) = send.send_request(head, false).expect("send");
        let sender = conveyor::runtime::spawn(send_body(stream, body));
        let (parts, mut recv) = answer.await.expect("response").into_parts();
        let echoed = read_body(&mut recv).await.expect("echo");
        sender.await.expect("sender").expect("body sent");
        Response {
            status: parts.status.as_u16(),
            reason: String::new(),
            headers: Vec::new(),
            body: echoed,
        }
    })
    .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// A body far larger than every window (the server's 1 MiB, the pipe's
/// 32 KiB, the client's 64 KiB) goes to `/echo` and back intact, with a
/// length and without one (re-framed as chunks for the handler).
#[test]
fn echo_streams_several_mib_both_ways_under_flow_control() {
    const SIZE: usize = 6 << 20;
    let both = Both::start(|_| {});
    let body = pattern(SIZE);
    for target in both.targets() {
        for with_length in [true, false] {
            let name = format!("{} length {with_length}", target.name());
            let started = Instant::now();
            let r = echo(&target, body.clone(), with_length, 64 * 1024);
            assert_eq!(r.status, 200, "{name}");
            assert_eq!(r.body.len(), SIZE, "{name}");
            assert!(r.body == body, "{name}: the echo differs");
            eprintln!("{name}: {SIZE} bytes each way in {:?}", started.elapsed());
        }
    }
}

/// A client that reads one stream slowly (its window reopened 16 KiB at
/// a time) gets it whole, and meanwhile another stream on the same
/// connection is answered at once.
#[test]
fn a_slowly_read_response_arrives_whole_and_holds_up_no_other_stream() {
    const SIZE: usize = 512 * 1024;
    let both = Both::start(|_| {});
    let file = pattern(SIZE);
    std::fs::write(both.server.root.join("slow.bin"), &file).expect("write");
    let index = both.file("index.html");
    for target in both.targets() {
        let name = target.name();
        let mut builder = h2::client::Builder::new();
        builder
            .initial_window_size(16 * 1024)
            .initial_connection_window_size(4 << 20);
        let index = index.clone();
        let (got, other_took, slow_took) = session_with(&target, builder, move |h2| async move {
            let started = Instant::now();
            let head = h2.head("GET", "/slow.bin", &[]);
            let mut send = h2.sender().ready().await.expect("ready");
            let (answer, _) = send.send_request(head, true).expect("send");
            let mut body = answer.await.expect("response").into_body();
            let mut got = Vec::new();
            let mut other_took = None;
            while let Some(data) = body.data().await {
                let data = data.expect("data");
                got.extend_from_slice(&data);
                if other_took.is_none() {
                    let asked = Instant::now();
                    let other = h2.get("/index.html", &[]).await;
                    assert_eq!(other.body, index);
                    other_took = Some(asked.elapsed());
                }
                conveyor::runtime::sleep(Duration::from_millis(5)).await;
                let _ = body.flow_control().release_capacity(data.len());
            }
            (got, other_took, started.elapsed())
        })
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got.len(), SIZE, "{name}");
        assert!(got == file, "{name}: the slow body differs");
        let other_took = other_took.expect("another stream was asked");
        assert!(
            other_took < Duration::from_secs(2),
            "{name}: {other_took:?}"
        );
        // 32 windows of 16 KiB, each reopened after a 5 ms pause.
        assert!(
            slow_took >= Duration::from_millis(150),
            "{name}: {slow_took:?}"
        );
    }
}

/// `/status` counts this connection and its streams in its `http2`
/// object; the probes answer; the dashboard's event stream delivers
/// events one by one over h2, and its stream ends when the client resets it.
#[test]
fn status_probes_and_the_event_stream_answer_over_h2() {
    let both = Both::start(|_| {});
    // Both at once: each waits about a second for its events.
    let readers: Vec<_> = both
        .targets()
        .into_iter()
        .map(|target| std::thread::spawn(move || (target.name(), subscribe_over_h2(&target))))
        .collect();
    for reader in readers {
        let (name, (report, events, kind)) = reader.join().expect("a reader");
        let report = crate::harness::status::parse(&report);
        let http2 = report.at("http2");
        assert!(http2.at("connections").int() >= 1, "{name}: {http2}");
        assert!(
            http2.at("streams_open").int() >= 1,
            "{name}: the /status stream: {http2}"
        );
        assert!(http2.at("streams").int() >= 1, "{name}: {http2}");
        assert_eq!(kind.as_deref(), Some("text/event-stream"), "{name}");
        let first = events
            .lines()
            .find_map(|l| l.strip_prefix("data: "))
            .expect("an event");
        let event = crate::harness::status::parse(first);
        assert!(
            event.at("http2").at("connections").int() >= 1,
            "{name}: {event}"
        );
    }
    // The connections gone, the gauges go back to zero.
    let settled = wait_until(Duration::from_secs(5), || {
        let s = status(&both.server);
        let h = s.at("http2");
        h.at("connections").int() == 0 && h.at("streams_open").int() == 0
    });
    assert!(settled, "{}", status(&both.server).at("http2"));
}

/// On one connection: `/status`, the probes, then two events of the
/// stream, read one by one; the report, the events and their type.
fn subscribe_over_h2(target: &Target) -> (String, String, Option<String>) {
    session(target, move |h2| async move {
        let report = h2.get("/status", &[]).await;
        assert_eq!(report.status, 200);
        assert_eq!(h2.get("/livez", &[]).await.status, 200);
        assert_eq!(h2.get("/readyz", &[]).await.status, 200);
        let head = h2.head("GET", "/status?stream=1", &[]);
        let mut send = h2.sender().ready().await.expect("ready");
        let (answer, _) = send.send_request(head, true).expect("send");
        let response = answer.await.expect("response");
        let kind = response
            .headers()
            .get("content-type")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let mut body = response.into_body();
        let mut seen = String::new();
        let read = conveyor::runtime::timeout(Duration::from_secs(10), async {
            while seen.matches("\ndata: ").count() + usize::from(seen.starts_with("data: ")) < 2 {
                let data = body.data().await.expect("more events").expect("data");
                let _ = body.flow_control().release_capacity(data.len());
                seen.push_str(&String::from_utf8_lossy(&data));
            }
        })
        .await;
        assert!(read.is_ok(), "two events within 10 s: {seen:?}");
        // Dropping the body resets the stream.
        drop(body);
        (report.text(), seen, kind)
    })
}

/// The config file for the reload test: roots `a` or `b` under `dir`,
/// a plain and a TLS listener, `extra` appended.
fn reload_config(cert: &std::path::Path, key: &std::path::Path, root: &str, extra: &str) -> String {
    format!(
        "workers = 1\nroot = {root:?}\nlisten = \"127.0.0.1:0\"\n\
         [tls]\nlisten = [\"127.0.0.1:0\"]\n\
         [[tls.certificates]]\ncert = {cert:?}\nkey = {key:?}\n{extra}",
        cert = cert.display().to_string(),
        key = key.display().to_string(),
    )
}

/// SIGHUP over h2: an open h2 connection's next stream gets the new root
/// and header rule (as a kept-alive HTTP/1.1 connection does); renewed
/// certificates are what new h2 connections get, while the open one
/// lives on.
#[test]
fn sighup_applies_to_open_h2_connections_and_new_certificates_to_new_ones() {
    let mut pki = Pki::new();
    let files = pki.make(&["localhost"], &[]);
    let dir = crate::harness::temp_dir("h2-reload");
    for (name, text) in [("a", "A"), ("b", "B")] {
        std::fs::create_dir_all(dir.join(name)).expect("mkdir");
        std::fs::write(dir.join(name).join("index.html"), text).expect("index");
    }
    let write = |root: &str, extra: &str| {
        std::fs::write(
            dir.join("c.toml"),
            reload_config(&files.cert, &files.key, root, extra),
        )
        .expect("config")
    };
    write("a", "");
    let run = crate::harness::process::spawn(&dir, &["--config", "c.toml"]);
    let line = run.started_line();
    let plain: std::net::SocketAddr = crate::harness::process::address(&line)
        .parse()
        .expect("addr");
    let https: std::net::SocketAddr = line
        .split("https://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .map(|addr| addr.trim_end_matches([',', ';']))
        .unwrap_or_else(|| panic!("no https address in {line:?}"))
        .parse()
        .expect("address");
    let renewed = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("rcgen");
    let renewed_der = renewed.cert.der().clone();
    let old_roots = pki.ders.clone();
    let (cert, key) = (files.cert.clone(), files.key.clone());
    let reload_dir = dir.clone();
    let mut run = Some(run);
    for target in [Target::Cleartext(plain), Target::tls(https, &old_roots)] {
        let name = target.name();
        let (cert, key, reload_dir) = (cert.clone(), key.clone(), reload_dir.clone());
        let renewed_pem = (renewed.cert.pem(), renewed.signing_key.serialize_pem());
        let (renewed_der, old_roots) = (renewed_der.clone(), old_roots.clone());
        let running = run.take().expect("the server");
        let tls = matches!(target, Target::Tls(..));
        let (before, after, running) = session(&target, move |h2| async move {
            let before = h2.get("/", &[]).await;
            std::fs::write(
                reload_dir.join("c.toml"),
                reload_config(
                    &cert,
                    &key,
                    "b",
                    "[[headers]]\npath = \"*.html\"\nset = { X-Site = \"b\" }\n",
                ),
            )
            .expect("config");
            if tls {
                std::fs::write(&cert, &renewed_pem.0).expect("cert");
                std::fs::write(&key, &renewed_pem.1).expect("key");
            }
            running.signal("HUP");
            running.stderr_with("SIGHUP: reloaded");
            // New connections, from another thread (this one drives the
            // open connection, idle meanwhile).
            if tls {
                std::thread::spawn(move || {
                    let fresh = Target::tls(https, &[renewed_der]);
                    assert_eq!(get2(&fresh, "/").text(), "B", "a new h2 connection");
                    let stale = Target::tls(https, &old_roots);
                    assert!(
                        session_with(&stale, h2::client::Builder::new(), |_| async {}).is_err(),
                        "the old certificate is no longer served"
                    );
                })
                .join()
                .expect("the new connections");
            }
            let after = h2.get("/index.html", &[]).await;
            (before, after, running)
        });
        assert_eq!(
            (before.status, before.text().as_str()),
            (200, "A"),
            "{name}"
        );
        assert_eq!(before.header("x-site"), None, "{name}");
        assert_eq!(
            (after.status, after.text().as_str()),
            (200, "B"),
            "{name}: the open connection"
        );
        assert_eq!(after.header("x-site"), Some("b"), "{name}");
        // Back to root a for the next round.
        write("a", "");
        running.signal("HUP");
        running.stderr_with("SIGHUP: reloaded");
        run = Some(running);
    }
    drop(run);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The access log writes an h2 request's line with `HTTP/2.0`.
#[test]
fn the_access_log_says_http_2_0() {
    let dir = crate::harness::temp_dir("h2-access-log");
    let path = dir.join("access.log");
    let log_path = path.to_str().expect("utf-8 temp path").to_string();
    let both = Both::start(|c| {
        c.log.access_log = true;
        c.log.access_log_path = log_path.clone();
    });
    for target in both.targets() {
        assert_eq!(get2(&target, "/style.css?from=h2").status, 200);
    }
    assert_eq!(
        crate::harness::get_with(&both.server, "/style.css?from=h1", "").status,
        200
    );
    let mut text = String::new();
    let logged = wait_until(Duration::from_secs(3), || {
        text = both.server.access_log();
        text.lines().count() >= 3
    });
    assert!(logged, "{text:?}");
    let h2_lines: Vec<&str> = text.lines().filter(|l| l.contains("from=h2")).collect();
    assert_eq!(h2_lines.len(), 2, "{text}");
    for line in h2_lines {
        assert!(
            line.contains("\"GET /style.css?from=h2 HTTP/2.0\" 200 "),
            "{line}"
        );
    }
    let h1 = text
        .lines()
        .find(|l| l.contains("from=h1"))
        .expect("the HTTP/1.1 line");
    assert!(
        h1.contains("\"GET /style.css?from=h1 HTTP/1.1\" 200 "),
        "{h1}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Under `queue.overload = "reject"` with a queue of one, a burst of
/// streams on one connection: each stream is answered, 200 or 503 with
/// `Retry-After` (a stream that finds the line full is refused as an
/// HTTP/1.1 request is), the connection stays up, and the refusals are
/// counted as rejected.
#[test]
fn a_burst_of_streams_meets_a_full_queue_with_503_per_stream_and_the_connection_lives() {
    let both = Both::start(|c| {
        c.workers = 1;
        c.queue.capacity = 1;
        c.queue.overload = conveyor::config::Overload::Reject;
    });
    let mut refused = 0;
    for target in both.targets() {
        let name = target.name();
        let (statuses, later) = session(&target, move |h2| async move {
            let tasks: Vec<_> = (0..64)
                .map(|_| {
                    let h2 = h2.clone();
                    conveyor::runtime::spawn(async move { h2.get("/style.css", &[]).await })
                })
                .collect();
            let mut statuses = Vec::new();
            for task in tasks {
                let r = task.await.expect("stream task");
                if r.status == 503 {
                    assert_eq!(r.header("retry-after"), Some("1"));
                }
                statuses.push(r.status);
            }
            let later = h2.get("/style.css", &[]).await;
            (statuses, later)
        });
        let ok = statuses.iter().filter(|s| **s == 200).count();
        let busy = statuses.iter().filter(|s| **s == 503).count();
        assert_eq!(ok + busy, statuses.len(), "{name}: {statuses:?}");
        assert!(ok >= 1, "{name}: {statuses:?}");
        assert_eq!(later.status, 200, "{name}: the connection serves on");
        eprintln!("{name}: {ok} served, {busy} refused");
        refused += busy;
    }
    let rejected = status(&both.server).at("connections").at("rejected").int();
    assert_eq!(rejected, refused as i64, "each refused stream counted once");
}

/// `limits.max_connections = 1` with `reject`: an open h2 connection holds
/// the one slot (an idle one too: only idle HTTP/1.1 connections are
/// evicted), so a second client that opens with the h2c preface is
/// answered `HTTP/1.1 503` and closed, and an h2 client fails at once
/// rather than hanging. The first connection is served on; once it
/// closes, a new one is admitted.
#[test]
fn max_connections_refuses_a_second_h2_connection_cleanly() {
    let both = Both::start(|c| {
        c.limits.max_connections = 1;
        c.queue.overload = conveyor::config::Overload::Reject;
    });
    let target = both.h2c();
    let addr = both.server.addr;
    let late = session(&target, move |h2| async move {
        assert_eq!(h2.get("/style.css", &[]).await.status, 200);
        // The second client, from another thread: this one drives the first.
        let (raw, h2_client) = std::thread::spawn(move || {
            let mut raw = connect(addr);
            raw.write_all(conveyor::http::h2_mapping::PREFACE)
                .expect("preface");
            let (bytes, closed) =
                crate::harness::read_until_closed(&mut raw, Duration::from_secs(5));
            let started = Instant::now();
            let client = session_with(
                &Target::Cleartext(addr),
                h2::client::Builder::new(),
                |h2| async move {
                    h2.request("GET", "/style.css", &[], None)
                        .await
                        .map(|r| r.status)
                },
            );
            (
                (String::from_utf8_lossy(&bytes).into_owned(), closed),
                (client, started.elapsed()),
            )
        })
        .join()
        .expect("the second client");
        let later = h2.get("/style.css", &[]).await;
        (raw, h2_client, later)
    });
    let ((text, closed), (client, took), later) = late;
    assert!(text.starts_with("HTTP/1.1 503"), "{text:?}");
    assert!(text.contains("Retry-After: 1"), "{text:?}");
    assert!(closed, "the refused connection is closed");
    assert!(!matches!(client, Ok(Ok(200))), "{client:?}");
    assert!(
        took < Duration::from_secs(5),
        "the refused h2 client waited {took:?}"
    );
    eprintln!("a refused h2 client sees: {client:?}");
    assert_eq!(later.status, 200, "the first connection is served on");
    // The slot freed, the next h2 connection is admitted.
    let admitted = wait_until(Duration::from_secs(5), || {
        status(&both.server).at("connections").at("open").int() == 0
    });
    assert!(admitted, "{}", status(&both.server).at("connections"));
    assert_eq!(get2(&target, "/style.css").status, 200);
    assert_eq!(get2(&both.tls(), "/style.css").status, 200);
}

/// `http2.cleartext = false`: the preface is read as an HTTP/1.1 request
/// and refused as one (an answer and the close); `http2.tls = false`: ALPN
/// agrees on http/1.1 only, and curl falls back to it.
#[test]
fn the_http2_switches_turn_each_transport_off_cleanly() {
    let both = Both::start(|c| {
        c.http2.cleartext = false;
        c.http2.tls = false;
    });
    let mut raw = connect(both.server.addr);
    raw.write_all(conveyor::http::h2_mapping::PREFACE)
        .expect("preface");
    let (bytes, closed) = crate::harness::read_until_closed(&mut raw, Duration::from_secs(5));
    let text = String::from_utf8_lossy(&bytes).into_owned();
    assert!(
        text.starts_with("HTTP/1.1 505") || text.starts_with("HTTP/1.1 400"),
        "{text:?}"
    );
    assert!(closed, "closed after the refusal");
    let started = Instant::now();
    let client = session_with(&both.h2c(), h2::client::Builder::new(), |h2| async move {
        h2.request("GET", "/", &[], None).await.map(|r| r.status)
    });
    assert!(!matches!(client, Ok(Ok(_))), "{client:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // TLS: a client offering only h2 is refused in the handshake (the
    // no_application_protocol alert of RFC 7301); one that offers
    // http/1.1 too gets it.
    let tls_h2 = session_with(&both.tls(), h2::client::Builder::new(), |_| async {});
    let error = tls_h2.expect_err("no h2 over TLS");
    assert!(error.contains("NoApplicationProtocol"), "{error}");
    assert_eq!(get_status_http1_over_tls(&both), 200);
    if let Some(curl) = needs::CURL.find() {
        let port = tls_addr(&both.server).port();
        let out = std::process::Command::new(curl)
            .args([
                "-sS",
                "-k",
                "--http2",
                "--max-time",
                "10",
                "-o",
                "/dev/null",
            ])
            .args(["-w", "%{http_version} %{http_code}"])
            .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
            .arg(format!("https://localhost:{port}/style.css"))
            .output()
            .expect("curl");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "1.1 200");
    }
    // Plain HTTP/1.1 is served as ever.
    assert_eq!(crate::harness::get_with(&both.server, "/", "").status, 200);
}

/// `GET /` over TLS offering h2 and http/1.1: the status (HTTP/1.1).
fn get_status_http1_over_tls(both: &Both) -> u16 {
    let mut config =
        (*crate::harness::tls::client(&both.pki.ders, crate::harness::tls::BOTH)).clone();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let mut tls = crate::harness::tls::connect(
        tls_addr(&both.server),
        &std::sync::Arc::new(config),
        "localhost",
    );
    assert_eq!(tls.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    crate::harness::get(&mut tls, "/").status
}

/// What the test reads of the page: its state, the navigation's protocol,
/// and each resource's name and protocol.
const PROTOCOLS: &str = "var n=performance.getEntriesByType('navigation')[0];\
    var r=performance.getEntriesByType('resource');\
    'ready='+document.readyState+';nav='+(n?n.nextHopProtocol:'none')+';res='+\
    r.map(function(e){return e.name.replace(location.origin,'')+'='+e.nextHopProtocol;}).join(',')";

/// Chromium loads the bundled site from the TLS listener over h2: the
/// page and every resource it fetches (style, script, image, the script's
/// /status fetch) say `nextHopProtocol == "h2"`.
#[test]
fn chromium_loads_the_bundled_site_over_h2() {
    let Some(binary) = crate::harness::browser::chromium() else {
        return;
    };
    let both = Both::start(|_| {});
    let url = format!("https://127.0.0.1:{}/", tls_addr(&both.server).port());
    let (_browser, mut tools) =
        crate::harness::browser::open_with(&binary, &url, &["--ignore-certificate-errors"]);
    let mut state = String::new();
    let loaded = wait_until(Duration::from_secs(30), || {
        state = tools.eval(PROTOCOLS);
        state.contains("ready=complete")
            && ["/style.css=", "/app.js=", "/conveyor.svg=", "/status="]
                .iter()
                .all(|name| state.contains(name))
    });
    assert!(loaded, "the page and its resources: {state}");
    assert!(state.contains(";nav=h2;"), "{state}");
    let resources = state.split(";res=").nth(1).expect("resources");
    for entry in resources.split(',') {
        assert!(entry.ends_with("=h2"), "{entry} in {state}");
    }
    println!("{state}");
    let streams = status(&both.server).at("http2").at("streams").int();
    assert!(streams >= 5, "{streams} streams");
}

/// Corners where HTTP/1.1 framing meets HTTP/2's: an unsatisfiable range,
/// a body sent to a route that ignores it (the connection's window must
/// come back for the next streams), `/echo` reflecting the request as the
/// handler saw it, the dashboard page, and the Prometheus series.
#[test]
fn ignored_bodies_unsatisfiable_ranges_and_reflections_over_h2() {
    let both = Both::start(|_| {});
    let css_len = both.file("style.css").len();
    let big = pattern(3 << 20);
    for target in both.targets() {
        let name = target.name();
        let big = big.clone();
        let (refused, after, echoed, reflected, range) = session(&target, move |h2| async move {
            // 3 MiB to a static file: 405, and the body is not waited for.
            let refused = h2
                .request("POST", "/style.css", &[], Some(&big))
                .await
                .expect("405");
            // The connection's window is whole again: another 3 MiB echoes.
            let after = h2.get("/index.html", &[]).await;
            let head = h2.head("POST", "/echo", &[]);
            let mut send = h2.sender().ready().await.expect("ready");
            let (answer, stream) = send.send_request(head, false).expect("send");
            let sender = conveyor::runtime::spawn(send_body(stream, big.clone()));
            let mut body = answer.await.expect("echo").into_body();
            let echoed = read_body(&mut body).await.expect("echo body");
            sender.await.expect("sender").expect("sent");
            let reflected = h2.get("/echo", &[("x-probe", "yes")]).await;
            let range = h2.get("/style.css", &[("range", "bytes=999999-")]).await;
            (refused, after, echoed == big, reflected, range)
        });
        assert_eq!(refused.status, 405, "{name}");
        assert_eq!(after.status, 200, "{name}");
        assert!(echoed, "{name}: the echo after an ignored body");
        assert_eq!(reflected.status, 200, "{name}");
        let text = reflected.text();
        assert!(text.starts_with("GET /echo HTTP/1.1\r\n"), "{name}: {text}");
        assert!(
            text.to_ascii_lowercase().contains("x-probe: yes"),
            "{name}: {text}"
        );
        assert_eq!(range.status, 416, "{name}");
        assert_eq!(
            range.header("content-range"),
            Some(format!("bytes */{css_len}").as_str()),
            "{name}"
        );
        let page = get2(&target, "/status/dashboard");
        assert_eq!(page.status, 200, "{name}");
        assert!(page.header("content-security-policy").is_some(), "{name}");
        let metrics = get2(&target, "/status?format=prometheus").text();
        assert!(metrics.contains("conveyor_http2_streams"), "{name}");
    }
}

/// A graceful stop with a response mid-flight on an h2 connection: the
/// stream in flight arrives whole, a new stream on the connection is
/// refused (GOAWAY), and the stop completes well within its grace.
#[test]
fn a_graceful_stop_lets_the_stream_in_flight_finish() {
    const SIZE: usize = 256 * 1024;
    let file = pattern(SIZE);
    for tls in [false, true] {
        let both = Both::start(|_| {});
        std::fs::write(both.server.root.join("slow.bin"), &file).expect("write");
        let target = if tls { both.tls() } else { both.h2c() };
        let name = target.name();
        let mut builder = h2::client::Builder::new();
        builder.initial_window_size(16 * 1024);
        let mut server = Some(both.server);
        let (got, late, stopped_in) = session_with(&target, builder, move |h2| async move {
            let head = h2.head("GET", "/slow.bin", &[]);
            let mut send = h2.sender().ready().await.expect("ready");
            let (answer, _) = send.send_request(head, true).expect("send");
            let mut body = answer.await.expect("response").into_body();
            let mut got = Vec::new();
            let mut stopping = None;
            while let Some(data) = body.data().await {
                let data = data.expect("data");
                got.extend_from_slice(&data);
                if let Some(server) = server.take() {
                    stopping = Some(std::thread::spawn(move || {
                        let started = Instant::now();
                        server.shutdown();
                        started.elapsed()
                    }));
                    // The GOAWAY comes before the rest of the body.
                    conveyor::runtime::sleep(Duration::from_millis(100)).await;
                }
                // Slowly: the handler is done well before the client is.
                conveyor::runtime::sleep(Duration::from_millis(20)).await;
                let _ = body.flow_control().release_capacity(data.len());
            }
            let late = h2.request("GET", "/index.html", &[], None).await;
            let took = stopping.map(|t| t.join().expect("shutdown"));
            (got, late.map(|r| r.status), took)
        })
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        drop(both.pki);
        assert!(got == file, "{name}: {} of {SIZE} bytes", got.len());
        assert!(late.is_err(), "{name}: a stream after GOAWAY: {late:?}");
        let stopped_in = stopped_in.expect("the stop began");
        assert!(
            stopped_in < Duration::from_secs(4),
            "{name}: {stopped_in:?}"
        );
    }
}

/// The drain over h2: `/readyz` turns 503 while everything else is
/// served, and as a response during the drain carries `Connection: close`
/// to an HTTP/1.1 client, an h2 connection that is served during the
/// drain is sent GOAWAY (its streams in flight finish), so pooled h2
/// connections move to other replicas too.
#[test]
fn the_drain_sends_goaway_to_an_h2_connection_it_serves() {
    for tls in [false, true] {
        let both = Both::start(|_| {});
        let target = if tls { both.tls() } else { both.h2c() };
        let name = target.name();
        let line = both.server.server().line().clone();
        let (ready, during, next) = session(&target, move |h2| async move {
            let ready = h2.get("/readyz", &[]).await.status;
            line.readiness.drain();
            let during = h2.get("/readyz", &[]).await;
            // The GOAWAY follows that response: a new stream is refused.
            let next = conveyor::runtime::timeout(Duration::from_secs(5), async {
                loop {
                    match h2.request("GET", "/style.css", &[], None).await {
                        Ok(_) => conveyor::runtime::sleep(Duration::from_millis(10)).await,
                        Err(e) => return (e.is_go_away(), e.reason()),
                    }
                }
            })
            .await;
            (ready, during, next)
        });
        assert_eq!(ready, 200, "{name}");
        assert_eq!(during.status, 503, "{name}");
        assert_eq!(during.text().trim(), "draining", "{name}");
        let next = next.unwrap_or_else(|_| panic!("{name}: no GOAWAY within 5 s of the drain"));
        assert_eq!(next, (true, Some(h2::Reason::NO_ERROR)), "{name}");
        // A new connection is still served during the drain.
        assert_eq!(get2(&target, "/style.css").status, 200, "{name}");
    }
}

/// `limits.max_requests_per_connection` counts HTTP/1.1 requests, not h2
/// streams: an h2 connection is not ended after so many (h2load, the h2
/// benchmark, does not reconnect after a GOAWAY and would fail the rest).
#[test]
fn max_requests_per_connection_does_not_end_an_h2_connection() {
    let both = Both::start(|c| c.limits.max_requests_per_connection = 3);
    for target in both.targets() {
        let name = target.name();
        let statuses = session(&target, |h2| async move {
            let mut statuses = Vec::new();
            for _ in 0..6 {
                statuses.push(h2.get("/style.css", &[]).await.status);
            }
            statuses
        });
        assert_eq!(statuses, [200; 6], "{name}");
    }
    // Over HTTP/1.1 the third response closes.
    let mut h1 = both.server.connect();
    for _ in 0..2 {
        assert_eq!(
            crate::harness::get(&mut h1, "/style.css").header("connection"),
            None
        );
    }
    let third = crate::harness::get(&mut h1, "/style.css");
    assert_eq!(third.header("connection"), Some("close"));
}

/// A stop while an h2 client follows `/status?stream=1`: the stream ends
/// (as over HTTP/1.1, within moments of the stop) and the stop, which
/// waits for h2 connections, does not wait out its grace for it.
#[test]
fn a_stop_ends_an_open_event_stream_over_h2_promptly() {
    let both = Both::start(|c| c.timeouts.shutdown_grace = Duration::from_secs(5));
    let target = both.tls();
    let mut server = Some(both.server);
    let (ended, stopped_in) = session(&target, move |h2| async move {
        let head = h2.head("GET", "/status?stream=1", &[]);
        let mut send = h2.sender().ready().await.expect("ready");
        let (answer, _) = send.send_request(head, true).expect("send");
        let mut body = answer.await.expect("response").into_body();
        let first = body.data().await.expect("an event").expect("data");
        let _ = body.flow_control().release_capacity(first.len());
        let server = server.take().expect("the server");
        let stop = std::thread::spawn(move || {
            let started = Instant::now();
            server.shutdown();
            started.elapsed()
        });
        let ended = conveyor::runtime::timeout(Duration::from_secs(10), async {
            while let Some(Ok(data)) = body.data().await {
                let _ = body.flow_control().release_capacity(data.len());
            }
        })
        .await
        .is_ok();
        (ended, stop.join().expect("the stop"))
    });
    assert!(ended, "the event stream ended");
    assert!(
        stopped_in < Duration::from_secs(2),
        "the stop took {stopped_in:?}"
    );
}

/// Behind a proxy that sends the PROXY protocol, an h2c connection's
/// streams are judged and logged as the client the header names.
#[test]
fn a_proxy_header_names_the_client_of_every_h2c_stream() {
    let dir = crate::harness::temp_dir("h2-proxy");
    let log = dir.join("access.log");
    let range = |s: &str| conveyor::config::AddrRange::parse(s).expect("range");
    // Plain only: the PROXY header would come before a TLS handshake.
    let server = start("readiness", "spawn", |c| {
        c.proxy.trusted = vec![range("127.0.0.1")];
        c.proxy.protocol = true;
        c.status_access.allow = vec![range("192.0.2.7")];
        c.log.access_log = true;
        c.log.access_log_path = log.display().to_string();
    });
    let addr = server.addr;
    let header = |source: &str| format!("PROXY TCP4 {source} 127.0.0.1 40000 80\r\n").into_bytes();
    let allowed = Target::After(addr, header("192.0.2.7"));
    let other = Target::After(addr, header("198.51.100.1"));
    assert_eq!(get2(&allowed, "/status?h2=allowed").status, 200);
    assert_eq!(get2(&other, "/status?h2=other").status, 403);
    assert_eq!(get2(&other, "/index.html").status, 200);
    let mut text = String::new();
    let logged = wait_until(Duration::from_secs(3), || {
        text = server.access_log();
        text.lines().count() >= 3
    });
    assert!(logged, "{text}");
    for (query, client) in [("h2=allowed", "192.0.2.7 "), ("h2=other", "198.51.100.1 ")] {
        let line = text.lines().find(|l| l.contains(query)).expect("a line");
        assert!(line.starts_with(client), "{line}");
        assert!(line.contains(" HTTP/2.0\""), "{line}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Header rules may give a response more fields than the 64 the stage
/// parses on the stack: over h2 it arrives with every one, as over HTTP/1.1.
#[test]
fn a_response_with_many_fields_from_header_rules_arrives_whole_over_h2() {
    let mut rules = String::from("[[headers]]\npath = \"**\"\nset = { ");
    rules += &(0..70)
        .map(|i| format!("X-F{i} = \"v{i}\""))
        .collect::<Vec<_>>()
        .join(", ");
    rules += " }\n";
    let parsed = Config::from_toml_str(&rules).expect("rules");
    let both = Both::start(|c| c.static_files.headers = parsed.static_files.headers.clone());
    for target in both.targets() {
        let name = target.name();
        let r = get2(&target, "/style.css");
        assert_eq!(r.status, 200, "{name}");
        assert_eq!(r.header("x-f69"), Some("v69"), "{name}");
        same_as_http1(&both.server, "/style.css", &r, name);
    }
}

/// A client that never opens a stream's window meets `timeouts.write`, as
/// a reader that never reads does over HTTP/1.1: the stream is reset
/// (CANCEL) and forgotten, rather than held open with its buffered
/// response for the connection's life; the connection serves on.
#[test]
fn a_client_that_never_opens_its_window_meets_the_write_timeout() {
    let both = Both::start(|c| c.timeouts.write = Duration::from_secs(1));
    std::fs::write(both.server.root.join("big.bin"), pattern(1 << 20)).expect("write");
    let stalled: Vec<_> = both
        .targets()
        .into_iter()
        .map(|target| {
            std::thread::spawn(move || {
                let mut builder = h2::client::Builder::new();
                builder.initial_window_size(0);
                let name = target.name();
                let out = session_with(&target, builder, |h2| async move {
                    let started = Instant::now();
                    let head = h2.head("GET", "/big.bin", &[]);
                    let mut send = h2.sender().ready().await.expect("ready");
                    let (answer, _) = send.send_request(head, true).expect("send");
                    let mut body = answer.await.expect("response").into_body();
                    let end =
                        conveyor::runtime::timeout(Duration::from_secs(10), body.data()).await;
                    let reset = match end {
                        Ok(Some(Err(e))) => e.reason(),
                        other => panic!(
                            "no reset: {:?}",
                            other.map(|d| d.map(|d| d.map(|b| b.len())))
                        ),
                    };
                    let took = started.elapsed();
                    // A response with no body needs no window: still served.
                    let head = h2.request("HEAD", "/style.css", &[], None).await;
                    (reset, took, head.map(|r| r.status))
                });
                (name, out)
            })
        })
        .collect();
    for thread in stalled {
        let (name, out) = thread.join().expect("a stalled client");
        let (reset, took, head) = out.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(reset, Some(h2::Reason::CANCEL), "{name}");
        assert!(
            took >= Duration::from_millis(900),
            "{name}: reset after {took:?}"
        );
        assert!(
            took < Duration::from_secs(5),
            "{name}: reset after {took:?}"
        );
        assert_eq!(head.ok(), Some(200), "{name}: the connection serves on");
    }
    let s = status(&both.server);
    assert_eq!(
        s.at("http2").at("streams_open").int(),
        0,
        "{}",
        s.at("http2")
    );
}

/// `Expect: 100-continue` (the handler's interim 100 is dropped: HTTP/2
/// has no need of it), an empty body with and without a length, and PUT,
/// through `/echo`.
#[test]
fn expect_continue_and_empty_bodies_echo_over_h2() {
    let both = Both::start(|_| {});
    for target in both.targets() {
        let name = target.name();
        let answers = session(&target, |h2| async move {
            let mut out = Vec::new();
            for (method, fields, body) in [
                (
                    "POST",
                    &[("expect", "100-continue"), ("content-length", "5")][..],
                    Some(&b"hello"[..]),
                ),
                ("POST", &[("content-length", "0")][..], None),
                ("POST", &[][..], Some(&b""[..])),
                ("PUT", &[][..], Some(&b"xyz"[..])),
            ] {
                let r = h2
                    .request(method, "/echo", fields, body)
                    .await
                    .expect("an answer");
                out.push((r.status, r.text()));
            }
            out
        });
        let want = [(200, "hello"), (200, ""), (200, ""), (200, "xyz")];
        let got: Vec<(u16, &str)> = answers.iter().map(|(s, t)| (*s, t.as_str())).collect();
        assert_eq!(got, want, "{name}");
    }
}
