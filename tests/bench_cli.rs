//! `conveyor bench` run as a user runs it, against real sockets: a failed
//! run says why and exits 1, non-2xx answers keep their connections, the
//! connections that could not be opened are reported, and the run keeps its
//! duration whatever the server does.

mod common;

use std::io::Read;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{ACCEPTORS, DISPATCHERS};

const BIN: &str = env!("CARGO_BIN_EXE_conveyor");

/// What a finished `conveyor bench` left: exit code, stdout, stderr, and
/// how long it ran.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl Run {
    fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs `conveyor bench ARGS`, first setting the open-file limit with the
/// shell's `ulimit` (e.g. `-n 64`, `-Sn 64`) when `ulimit` is given. Killed
/// (and the test failed) if it outlives 20 s: the old client ran 10 s over.
fn bench(ulimit: Option<&str>, args: &[&str]) -> Run {
    let mut command = match ulimit {
        Some(limit) => {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg(format!("ulimit {limit} && exec \"$0\" \"$@\""))
                .arg(BIN);
            c
        }
        None => Command::new(BIN),
    };
    let started = Instant::now();
    let mut child = command
        .arg("bench")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    // Drain both pipes on their own threads so a full pipe cannot stall it.
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let limit = Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("conveyor bench {args:?} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Run {
        code: status.code().unwrap_or(-1),
        took: started.elapsed(),
        stdout: out.join().expect("stdout thread"),
        stderr: err.join().expect("stderr thread"),
    }
}

/// The number after `"key":` in `json` (the first such key).
fn number(json: &str, key: &str) -> u64 {
    let needle = format!("\"{key}\":");
    let at = json
        .find(&needle)
        .unwrap_or_else(|| panic!("no {key} in {json}"))
        + needle.len();
    json[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("{key} is not a number in {json}"))
}

/// The JSON object that follows `"key":` in `json` (no nested objects).
fn object<'a>(json: &'a str, key: &str) -> &'a str {
    let needle = format!("\"{key}\":{{");
    let at = json
        .find(&needle)
        .unwrap_or_else(|| panic!("no {key} object in {json}"))
        + needle.len()
        - 1;
    let end = json[at..].find('}').expect("object ends") + at + 1;
    &json[at..end]
}

/// The JSON after its `options` object: the results.
fn results(json: &str) -> &str {
    let options = object(json, "options");
    let at = json.find(options).expect("options in json") + options.len();
    &json[at..]
}

/// A port on 127.0.0.1 with nothing listening (bound, then released).
fn dead_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

#[test]
fn nothing_listening_fails_with_connection_refused() {
    let url = format!("http://127.0.0.1:{}/", dead_port());
    let run = bench(None, &[&url, "-c", "2", "-d", "1s", "--threads", "1"]);
    let text = run.text();
    assert_eq!(run.code, 1, "{text}");
    assert!(text.contains("connection refused"), "{text}");
    assert!(text.contains("no request succeeded"), "{text}");
    assert!(
        text.contains("2 of 2 connections could not be opened"),
        "{text}"
    );

    let run = bench(None, &[&url, "-c", "2", "-d", "1s", "--json"]);
    assert_eq!(run.code, 1, "{}", run.text());
    let json = run.stdout.trim();
    assert!(json.contains("\"ok\":false"), "{json}");
    assert!(
        number(object(json, "errors_by_class"), "refused") > 0,
        "{json}"
    );
    assert_eq!(number(object(json, "not_opened"), "refused"), 2, "{json}");
}

#[test]
fn a_404_keeps_its_connection_and_is_counted_by_status() {
    let server = common::start(ACCEPTORS[0], DISPATCHERS[0], |c| {
        // Every reopen would then be the client's doing.
        c.limits.max_requests_per_connection = u64::MAX;
    });
    let url = server.url("/no-such-file");
    let run = bench(
        None,
        &[&url, "-c", "4", "-d", "1s", "--threads", "1", "--json"],
    );
    assert_eq!(run.code, 1, "all 404: the run failed\n{}", run.text());
    let json = run.stdout.trim();
    // The URL, the options and the connection counts.
    assert!(json.contains(&format!("\"url\":\"{url}\"")), "{json}");
    let options = object(json, "options");
    assert_eq!(number(options, "connections"), 4, "{json}");
    assert_eq!(number(options, "duration_secs"), 1, "{json}");
    assert_eq!(number(options, "threads"), 1, "{json}");
    assert!(options.contains("\"max_errors_pct\":1"), "{json}");
    let connections = object(json, "connections");
    assert_eq!(number(connections, "requested"), 4, "{json}");
    assert_eq!(
        number(connections, "opened"),
        4,
        "kept, not reopened: {json}"
    );
    assert_eq!(number(connections, "reopened_after_error"), 0, "{json}");
    // Many requests over those four connections, every one a counted 404.
    let requests = number(results(json), "requests");
    assert!(requests > 100, "{json}");
    assert_eq!(number(object(json, "statuses"), "404"), requests, "{json}");
    assert_eq!(number(results(json), "non_2xx"), requests, "{json}");
    assert_eq!(number(results(json), "succeeded"), 0, "{json}");
    assert!(run.stderr.contains("status 404"), "{}", run.stderr);

    // The same in the table, for people.
    let run = bench(None, &[&url, "-c", "2", "-d", "1s", "--threads", "1"]);
    let text = run.text();
    assert_eq!(run.code, 1, "{text}");
    assert!(
        text.contains("| connections opened | 2 (2 of 2 connected)"),
        "{text}"
    );
    assert!(text.contains("status 404"), "{text}");
}

#[test]
fn a_successful_run_exits_0_and_explains_reopened_connections() {
    let server = common::start(ACCEPTORS[0], DISPATCHERS[0], |c| {
        c.limits.max_requests_per_connection = 5;
    });
    let url = server.url("/");
    let run = bench(None, &[&url, "-c", "2", "-n", "100", "--threads", "1"]);
    let text = run.text();
    assert_eq!(run.code, 0, "{text}");
    assert!(text.contains("| errors | 0 |"), "{text}");
    // 100 requests at most 5 per connection: at least 20 connections, the
    // reopens said to be the server's doing.
    assert!(
        text.contains("(2 of 2 connected; ")
            && text.contains(" reopened after the server closed them"),
        "{text}"
    );
    let opened: u64 = text
        .split("| connections opened | ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("connections opened in the table");
    assert!(opened >= 20, "{text}");
    assert!(text.contains("max_requests_per_connection"), "{text}");
}

#[test]
fn error_threshold_is_a_flag() {
    let server = common::start(ACCEPTORS[0], DISPATCHERS[0], |_| {});
    let url = server.url("/no-such-file");
    // Every answer a 404: over any threshold but 100 %, and still no 2xx.
    let run = bench(None, &[&url, "-c", "1", "-n", "20", "--max-errors", "100"]);
    assert_eq!(run.code, 1, "{}", run.text());
    assert!(
        run.stderr.contains("no request succeeded"),
        "{}",
        run.stderr
    );
    let run = bench(None, &[&url, "-c", "1", "-n", "20", "--max-errors", "lots"]);
    assert_eq!(run.code, 2, "{}", run.text());
    assert!(run.stderr.contains("--max-errors lots"), "{}", run.stderr);
}

#[test]
fn a_server_that_never_answers_cannot_stretch_the_run() {
    // Accepted by the kernel (backlog), never read, never answered: the old
    // client waited its 10 s timeout on every connection.
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/", silent.local_addr().expect("addr"));
    let run = bench(None, &[&url, "-c", "8", "-d", "1s", "--threads", "1"]);
    let text = run.text();
    assert!(
        run.took < Duration::from_secs(4),
        "took {:?}\n{text}",
        run.took
    );
    assert_eq!(run.code, 1, "{text}");
    assert!(
        text.contains("no request succeeded") && text.contains("still unanswered"),
        "{text}"
    );
    drop(silent);
}

#[test]
fn connections_past_the_fd_limit_are_reported_and_the_run_keeps_its_time() {
    let server = common::start(ACCEPTORS[0], DISPATCHERS[0], |c| {
        c.limits.max_requests_per_connection = u64::MAX;
    });
    let url = server.url("/");
    // A hard limit of 64 descriptors cannot hold 100 connections.
    let run = bench(
        Some("-n 64"),
        &[&url, "-c", "100", "-d", "1s", "--threads", "1"],
    );
    let text = run.text();
    assert!(
        run.took < Duration::from_secs(4),
        "took {:?}\n{text}",
        run.took
    );
    assert_eq!(run.code, 1, "{text}");
    assert!(text.contains("connections could not be opened"), "{text}");
    assert!(text.contains("too many open files (fd limit)"), "{text}");
    assert!(text.contains("raise the hard limit"), "{text}");

    // Only the soft limit low: the client raises it and opens them all.
    let run = bench(
        Some("-Sn 64"),
        &[&url, "-c", "100", "-d", "1s", "--threads", "1", "--json"],
    );
    let json = run.stdout.trim();
    let hard = number(object(json, "fd_limit"), "hard");
    if hard < 200 {
        eprintln!("hard fd limit {hard}: cannot check the raise here");
        return;
    }
    assert_eq!(run.code, 0, "{}", run.text());
    assert_eq!(
        number(object(json, "connections"), "connected"),
        100,
        "{json}"
    );
    assert_eq!(
        number(object(json, "fd_limit"), "soft_before"),
        64,
        "{json}"
    );
    assert!(number(object(json, "fd_limit"), "soft") >= 100, "{json}");
}
