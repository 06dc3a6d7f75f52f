//! `/status?format=prometheus` from a running server, over a socket:
//! `promtool check metrics` (Debian package `prometheus`) finds no
//! problem, and the request-duration histogram counts what was asked.
//! (The figures are described once, in `src/service/status/figures.rs`.)

use std::io::Write;
use std::process::{Command, Stdio};

use crate::harness::needs::PROMTOOL;
use crate::harness::{get, localhost_certificate, start, temp_dir};

const FOUND: usize = 15;
const MISSING: usize = 5;

#[test]
fn the_exposition_passes_promtool_and_its_histogram_counts_the_requests() {
    // With a TLS listener, so the TLS figures are in the output too.
    let dir = temp_dir("prometheus-tls");
    let certificate = localhost_certificate(&dir);
    let server = start("readiness", "spawn", |config| {
        config.tls.listen = vec!["127.0.0.1:0".parse().expect("addr")];
        config.tls.certificates = vec![certificate];
    });
    let mut stream = server.connect();
    // One connection: each request is recorded before the next is read,
    // so the /status that follows sees them all (and not itself).
    for _ in 0..FOUND {
        assert_eq!(get(&mut stream, "/index.html").status, 200);
    }
    for _ in 0..MISSING {
        assert_eq!(get(&mut stream, "/no-such-file").status, 404);
    }
    let response = get(&mut stream, "/status?format=prometheus");
    let text = response.text();
    assert_eq!(response.status, 200, "{text}");
    drop(server);
    std::fs::remove_dir_all(&dir).expect("clean up");
    assert!(text.contains("conveyor_tls_"), "TLS figures: {text}");

    let requests = (FOUND + MISSING) as f64;
    let buckets = histogram_buckets(&text);
    assert!(buckets.len() > 2, "no histogram buckets in\n{text}");
    assert!(
        buckets
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
        "bounds ascend and counts are cumulative: {buckets:?}"
    );
    assert_eq!(
        buckets.last(),
        Some(&(f64::INFINITY, requests)),
        "{buckets:?}"
    );
    assert_eq!(
        sample(&text, "conveyor_request_duration_seconds_count"),
        Some(requests)
    );
    let sum = sample(&text, "conveyor_request_duration_seconds_sum").expect("a _sum");
    assert!(sum > 0.0 && sum < requests * 10.0, "sum {sum}");
    let class = |c: &str| sample(&text, &format!("conveyor_requests_total{{class=\"{c}\"}}"));
    assert_eq!(class("2xx"), Some(FOUND as f64));
    assert_eq!(class("4xx"), Some(MISSING as f64));

    if let Some(problems) = promtool_check(&text) {
        assert_eq!(problems, "", "promtool check metrics on\n{text}");
    }
}

/// The `(le, count)` pairs of `conveyor_request_duration_seconds_bucket`,
/// in the order written.
fn histogram_buckets(text: &str) -> Vec<(f64, f64)> {
    text.lines()
        .filter_map(|l| l.strip_prefix("conveyor_request_duration_seconds_bucket{le=\""))
        .map(|rest| {
            let (le, count) = rest.split_once("\"} ").expect("le=\"…\"} count");
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().expect("a bound")
            };
            (le, count.parse().expect("a count"))
        })
        .collect()
}

/// The value of the sample written exactly as `series`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().expect("a number"))
}

/// What `promtool check metrics` prints for `text` ("" when it finds
/// nothing); `None` when promtool is missing (a skip, or under CI a panic).
fn promtool_check(text: &str) -> Option<String> {
    let promtool = PROMTOOL.find()?;
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool starts");
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool ran");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() || !said.trim().is_empty(),
        "promtool failed without a word: {}",
        out.status
    );
    Some(said.trim().to_string())
}
