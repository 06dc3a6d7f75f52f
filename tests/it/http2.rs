//! Every feature over HTTP/2 as over HTTP/1.1, on real sockets, over both
//! h2c (prior knowledge) and TLS with ALPN `h2`: static files, sidecars
//! and the compression cache, site rules, `/echo` under flow control,
//! `/status` and its event stream, the probes, reloads, the access log,
//! admission under pressure, the `http2.*` switches, curl, and Chromium
//! loading the bundled site over h2.
//!
//! The client is the `h2` crate on Conveyor's own runtime
//! (`harness::h2_client`); curl checks what a common client negotiates.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use bytes::Bytes;
use conveyor::config::Config;

use crate::harness::h2_client::{fetch, get2, read_body, session, session_with, Target};
use crate::harness::status::{status, Figures};
use crate::harness::tls::{localhost_pki, tls_addr, with_tls, Pki};
use crate::harness::{closed_within, connect, needs, start, wait_until, Response, TestServer};

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
