//! HTTP/2 conformance: h2spec (github.com/summerwind/h2spec, built from
//! the source in scripts/h2spec/ by scripts/build-h2spec.sh) runs its 146
//! cases against a server over TLS (ALPN h2) and over h2c with prior
//! knowledge, and every case passes.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::needs;
use crate::harness::tls::{localhost_pki, tls_addr, with_tls};
use crate::harness::{start, temp_dir, wait_until, TestServer};

/// The cases h2spec 2.x runs by default (without `--strict`).
const CASES: usize = 146;

/// Cases that send more frames right after a request's HEADERS and
/// judge the server by its answer to them. A server may complete its
/// response before those frames arrive (RFC 9113 §8.1), and then rightly
/// ignores them (summerwind/h2spec#134): a WINDOW_UPDATE past 2^31-1 on a
/// stream whose response has ended, trailers on a stream it has reset
/// with NO_ERROR. Such a case that fails is run again on its own, up to
/// [`ATTEMPTS`] times, and must pass; any other case must pass at once.
const RACY: [&str; 3] = ["http2/6.9.1/3", "http2/8.1/1", "http2/8.1.2.1/3"];
const ATTEMPTS: usize = 8;

/// Seconds h2spec waits for a frame (its `-o`).
const CASE_TIMEOUT: &str = "5";
/// The most one run of h2spec may take.
const RUN_LIMIT: Duration = Duration::from_secs(120);

#[test]
fn h2spec_passes_every_case_over_tls_and_over_h2c() {
    let Some(h2spec) = find_h2spec() else { return };
    let pki = localhost_pki();
    let server = start("readiness", "spawn", |c| with_tls(c, &pki));
    let started = Instant::now();
    let tls = tls_addr(&server).port().to_string();
    let plain = server.addr.port().to_string();
    let tls = conformance(&h2spec, &["-p", &tls, "-t", "-k"], "TLS");
    let h2c = conformance(&h2spec, &["-p", &plain], "h2c");
    println!("h2spec: TLS {tls}, h2c {h2c}, in {:?}", started.elapsed());
}

#[test]
fn a_first_line_that_is_neither_http_nor_the_preface_is_closed_unanswered() {
    // h2spec's http2/3.5/2 over h2c: no HTTP/1.1 400 for an h2 client.
    let server = start("readiness", "spawn", |_| {});
    assert_eq!(reply(&server, b"INVALID CONNECTION PREFACE\r\n\r\n"), "");
    // Whatever looks like HTTP/1 keeps its 400.
    for http_shaped in [&b"GET /\r\n\r\n"[..], b"GET / FOO/1.1\r\n\r\n"] {
        let text = reply(&server, http_shaped);
        assert!(text.starts_with("HTTP/1.1 400 "), "{text:?}");
    }
    // Where h2c is off, the listener speaks HTTP/1.1 alone: a 400.
    let server = start("readiness", "spawn", |c| c.http2.cleartext = false);
    let text = reply(&server, b"INVALID CONNECTION PREFACE\r\n\r\n");
    assert!(text.starts_with("HTTP/1.1 400 "), "{text:?}");
}

/// Everything the server sends for `request` until it closes.
fn reply(server: &TestServer, request: &[u8]) -> String {
    let mut stream = server.connect();
    stream.write_all(request).expect("send");
    let mut all = Vec::new();
    let _ = stream.read_to_end(&mut all);
    String::from_utf8_lossy(&all).into_owned()
}

/// The h2spec binary: on `PATH`, or where scripts/build-h2spec.sh puts it;
/// `None` after `needs::missing` if neither.
pub(crate) fn find_h2spec() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))
        .map(|cache| cache.join("conveyor/h2spec/h2spec"));
    let found = std::env::split_paths(&path)
        .map(|dir| dir.join("h2spec"))
        .chain(cache)
        .find(|candidate| candidate.is_file());
    if found.is_none() {
        needs::missing(
            "h2spec",
            "scripts/build-h2spec.sh builds it into ~/.cache/conveyor/h2spec; .ci/run runs it",
        );
    }
    found
}

/// Runs the whole suite with `target` (port and TLS flags), reruns a
/// racy case that failed, and asserts all [`CASES`] passed; says how.
pub(crate) fn conformance(h2spec: &Path, target: &[&str], label: &str) -> String {
    let cases = run(h2spec, target, &[]);
    assert_eq!(cases.len(), CASES, "{label}: h2spec ran {cases:?}");
    let failed: Vec<&String> = cases.iter().filter(|c| !c.1).map(|c| &c.0).collect();
    let steady: Vec<&&String> = failed
        .iter()
        .filter(|id| !RACY.contains(&id.as_str()))
        .collect();
    assert!(
        steady.is_empty(),
        "{label}: h2spec cases failed: {steady:?}"
    );
    for id in &failed {
        let passed = (1..=ATTEMPTS).find(|_| {
            let alone = run(h2spec, target, &[id.as_str()]);
            alone.first().is_some_and(|case| case.1)
        });
        assert!(
            passed.is_some(),
            "{label}: h2spec case {id} failed {ATTEMPTS} more times alone"
        );
    }
    format!(
        "{CASES}/{CASES} passed ({} racy case(s) rerun: {failed:?})",
        failed.len()
    )
}

/// One run of h2spec (all cases, or those named in `only`), within
/// [`RUN_LIMIT`]: each case as h2spec names it ("http2/3.5/2") and
/// whether it passed, from its JUnit report.
fn run(h2spec: &Path, target: &[&str], only: &[&str]) -> Vec<(String, bool)> {
    let dir = temp_dir("h2spec");
    let report = dir.join("report.xml");
    let mut child = Command::new(h2spec)
        .args(["-h", "127.0.0.1", "-o", CASE_TIMEOUT, "-j"])
        .arg(&report)
        .args(target)
        .args(only)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("h2spec runs");
    let mut status = None;
    wait_until(RUN_LIMIT, || {
        status = child.try_wait().expect("h2spec status");
        status.is_some()
    });
    if status.is_none() {
        let _ = child.kill();
    }
    let output = child.wait_with_output().expect("h2spec output");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(status.is_some(), "h2spec took over {RUN_LIMIT:?}: {text}");
    let cases = parse_report(&std::fs::read_to_string(&report).unwrap_or_default());
    let _ = std::fs::remove_dir_all(&dir);
    if cases.iter().any(|c| !c.1) {
        // The failures, as h2spec explains them, for whoever reads the log.
        let failures = text.find("Failures:").map_or("", |at| &text[at..]);
        println!("h2spec {target:?} {only:?}:\n{failures}");
    }
    cases
}

/// The cases of h2spec's JUnit report: `package/N` for the Nth case of a
/// suite, and whether it passed (no error, failure or skip).
fn parse_report(report: &str) -> Vec<(String, bool)> {
    let mut cases = Vec::new();
    for suite in report.split("<testsuite ").skip(1) {
        let package = suite
            .split("package=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or("?");
        for (n, case) in suite.split("<testcase ").skip(1).enumerate() {
            let body = case.split("</testcase>").next().unwrap_or(case);
            let passed = !["<error", "<failure", "<skipped"]
                .iter()
                .any(|bad| body.contains(bad));
            cases.push((format!("{package}/{}", n + 1), passed));
        }
    }
    cases
}
