//! `conveyor bench --h2` and `https://` against a real server: what the
//! client's `--json` counted is what the server's `/status` says it served
//! (HTTP/2 streams, requests, statuses), over h2c and over TLS with the
//! certificate verified (`--cacert`) or not (`-k`); a certificate the
//! client does not trust fails the run and says how to trust it, as does
//! h2c to a server that does not speak it; bad flag combinations exit 2
//! with the reason.

use serde_json::Value;

use crate::bench_cli::{bench, parsed, Run};
use crate::harness::status::{status, Figures};
use crate::harness::tls::{localhost_pki, tls_addr, with_tls, Pki};
use crate::harness::{start, TestServer, ACCEPTORS, DISPATCHERS};

/// A server with h2c on its plain port and h2 over TLS (a certificate
/// for `localhost` made by `pki`).
fn server(pki: &Pki) -> TestServer {
    start(ACCEPTORS[0], DISPATCHERS[0], |c| {
        with_tls(c, pki);
        c.http2.tls = true;
        c.http2.cleartext = true;
    })
}

/// The server's count of HTTP/2 streams and of requests so far.
fn served(server: &TestServer) -> (i64, i64) {
    let s = status(server);
    (s.at("http2.streams").int(), s.at("requests.total").int())
}

fn json_of(run: &Run) -> Value {
    assert_eq!(run.code, 0, "{}", run.text());
    parsed(run)
}

/// Runs `args`, and checks that the server served, as HTTP/2 streams and
/// as requests, exactly the responses the client counted, all `status`.
fn counts_agree(server: &TestServer, args: &[&str], status: &str) -> Value {
    let (streams_before, requests_before) = served(server);
    let json = json_of(&bench(None, args));
    let (streams_after, requests_after) = served(server);
    let requests = json["requests"].as_i64().expect("requests");
    assert_eq!(requests, 300, "{json}");
    assert_eq!(json["statuses"][status].as_i64(), Some(300), "{json}");
    assert_eq!(json["errors_by_class"]["total"].as_i64(), Some(0), "{json}");
    assert_eq!(json["unanswered_at_end"].as_i64(), Some(0), "{json}");
    assert_eq!(json["connections"]["opened"].as_i64(), Some(3), "{json}");
    assert_eq!(streams_after - streams_before, requests, "{json}");
    assert_eq!(requests_after - requests_before, requests, "{json}");
    json
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

#[test]
fn h2_over_cleartext_and_tls_counts_what_the_server_served() {
    let pki = localhost_pki();
    let cacert = pki.files[0].cert.to_string_lossy().into_owned();
    let server = server(&pki);
    let h2c = format!("http://{}/index.html", server.addr);
    let h2 = format!("https://localhost:{}/index.html", tls_addr(&server).port());
    let common = [
        "-c",
        "3",
        "-m",
        "4",
        "-n",
        "300",
        "--threads",
        "1",
        "--json",
    ];
    let with = |url: &str, extra: &[&str]| -> Vec<String> {
        let mut args = vec![url.to_string(), "--h2".to_string()];
        args.extend(common.iter().chain(extra).map(|s| s.to_string()));
        args
    };

    let json = counts_agree(&server, &strs(&with(&h2c, &[])), "200");
    let options = &json["options"];
    assert_eq!(options["protocol"], "h2c", "{json}");
    assert_eq!(
        (options["tls"].as_bool(), options["streams"].as_i64()),
        (Some(false), Some(4))
    );

    let json = counts_agree(&server, &strs(&with(&h2, &["--cacert", &cacert])), "200");
    let options = &json["options"];
    assert_eq!(options["protocol"], "h2", "{json}");
    assert_eq!(options["tls_verified"].as_bool(), Some(true), "{json}");
    assert_eq!(json["url"].as_str(), Some(h2.as_str()), "{json}");

    // -k: unverified; a 404 answered over HTTP/2 is counted by its status.
    let missing = h2.replace("/index.html", "/no-such-page");
    let json = counts_agree(
        &server,
        &strs(&with(&missing, &["-k", "--max-errors", "100"])),
        "404",
    );
    assert_eq!(
        json["options"]["tls_verified"].as_bool(),
        Some(false),
        "{json}"
    );
    assert_eq!(json["non_2xx"].as_i64(), Some(300), "{json}");
}

#[test]
fn https_over_http1_and_h2_with_the_servers_figures_beside() {
    let pki = localhost_pki();
    let server = server(&pki);
    let url = format!("https://localhost:{}/style.css", tls_addr(&server).port());
    let cacert = pki.files[0].cert.to_string_lossy().into_owned();
    let before = served(&server).1;
    let args = [
        &url,
        "--cacert",
        &cacert,
        "-c",
        "2",
        "-n",
        "200",
        "--threads",
        "1",
        "--json",
    ];
    let json = json_of(&bench(None, &args));
    assert_eq!(json["options"]["protocol"], "http/1.1", "{json}");
    assert_eq!(json["statuses"]["200"].as_i64(), Some(200), "{json}");
    assert_eq!(served(&server).1 - before, 200, "{json}");
    let args = [
        url.as_str(),
        "-k",
        "--h2",
        "-m",
        "2",
        "-c",
        "2",
        "-d",
        "2s",
        "--threads",
        "1",
        "--server-status",
        "--check",
        "errors=0",
        "--json",
    ];
    let json = json_of(&bench(None, &args));
    let samples = json["server_status"].as_array().expect("samples");
    assert!(!samples.is_empty(), "{json}");
    for sample in samples {
        assert!(sample["error"].is_null(), "{sample}");
        // Streamed over HTTP/1.1 inside TLS: the second's own p99.
        assert!(sample["p99_us"].is_number(), "{sample}");
    }
    assert!(json["checks"][0]["ok"].as_bool() == Some(true), "{json}");
}

#[test]
fn an_untrusted_certificate_fails_the_run_and_says_how_to_trust_it() {
    let pki = localhost_pki();
    let server = server(&pki);
    let url = format!("https://localhost:{}/", tls_addr(&server).port());
    // Verified against the system's CAs, which do not hold the test's.
    let run = bench(
        None,
        &[&url, "--h2", "-c", "1", "-n", "3", "--threads", "1"],
    );
    assert_eq!(run.code, 1, "{}", run.text());
    let text = run.text();
    assert!(text.contains("invalid peer certificate"), "{text}");
    assert!(
        text.contains("--cacert FILE") && text.contains("-k"),
        "{text}"
    );
}

#[test]
fn h2c_to_a_server_that_does_not_speak_it_says_so() {
    let pki = localhost_pki();
    let server = server(&pki);
    // The TLS port answers a plain-text client with an HTTP/1.1 400.
    let url = format!("http://127.0.0.1:{}/", tls_addr(&server).port());
    let run = bench(
        None,
        &[&url, "--h2", "-c", "1", "-n", "3", "--threads", "1"],
    );
    assert_eq!(run.code, 1, "{}", run.text());
    assert!(
        run.text().contains("h2c by prior knowledge"),
        "{}",
        run.text()
    );
}

#[test]
fn bad_flag_combinations_exit_2_with_the_reason() {
    for (args, needle) in [
        (
            &["http://127.0.0.1:1/", "--streams", "4"][..],
            "--streams needs --h2",
        ),
        (
            &["http://127.0.0.1:1/", "--h2", "--pipeline", "4"][..],
            "--h2 and --pipeline do not mix",
        ),
        (
            &["http://127.0.0.1:1/", "--insecure"][..],
            "applies to https:// URLs only",
        ),
        (
            &["https://127.0.0.1:1/", "-k", "--cacert", "ca.pem"][..],
            "-k/--insecure and --cacert do not mix",
        ),
        (
            &["https://127.0.0.1:1/", "--cacert", "/no/such/ca.pem"][..],
            "cannot read it",
        ),
        (
            &["http://127.0.0.1:1/", "--h2", "-H", "Connection: close"][..],
            "connection-specific",
        ),
    ] {
        let run = bench(None, args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.text());
        assert!(run.stderr.contains(needle), "{args:?}: {}", run.stderr);
    }
}
