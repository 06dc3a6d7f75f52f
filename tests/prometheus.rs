//! `/status?format=prometheus` from a running server, over a socket:
//! `promtool check metrics` (Debian package `prometheus`) finds no
//! problem, and the request-duration histogram counts what was asked.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use conveyor::config::Config;
use conveyor::Server;

const FOUND: usize = 15;
const MISSING: usize = 5;

#[test]
fn the_exposition_passes_promtool_and_its_histogram_counts_the_requests() {
    let root = temp_root();
    let mut config = Config {
        listen: "127.0.0.1:0".parse().expect("an address"),
        root: root.path.clone(),
        workers: 2,
        ..Config::default()
    };
    config.runtime.tcp_defer_accept = Duration::ZERO;
    let server = Server::start(config).expect("server starts");
    let mut stream = connect(server.local_addr());
    // One connection: each request is recorded before the next is read,
    // so the /status that follows sees them all (and not itself).
    for _ in 0..FOUND {
        assert_eq!(get(&mut stream, "/index.html").0, 200);
    }
    for _ in 0..MISSING {
        assert_eq!(get(&mut stream, "/no-such-file").0, 404);
    }
    let (status, text) = get(&mut stream, "/status?format=prometheus");
    assert_eq!(status, 200, "{text}");
    drop(server);

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

    match promtool_check(&text) {
        Some(problems) => assert_eq!(problems, "", "promtool check metrics on\n{text}"),
        None => eprintln!("skipped: promtool not installed"),
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
/// nothing); `None` when promtool is missing, which CI does not accept.
fn promtool_check(text: &str) -> Option<String> {
    let spawned = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("promtool: {e}: install the Debian package `prometheus`")
        }
        Err(_) => return None,
    };
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

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream
}

/// GET on a kept-alive connection: the status and the body as text. The
/// answers asked for here all carry a Content-Length.
fn get(stream: &mut TcpStream, path: &str) -> (u16, String) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("send");
    let mut data = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut chunk).expect("read the head");
        assert!(n > 0, "closed before the head ended");
        data.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).to_string();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head}"));
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or_else(|| panic!("no Content-Length in {head}"));
    while data.len() < head_end + length {
        let n = stream.read(&mut chunk).expect("read the body");
        assert!(n > 0, "closed before the body ended");
        data.extend_from_slice(&chunk[..n]);
    }
    let body = &data[head_end..head_end + length];
    assert_eq!(data.len(), head_end + length, "nothing sent unasked");
    (status, String::from_utf8_lossy(body).to_string())
}

/// A document root with one page, removed on drop.
struct TempRoot {
    path: PathBuf,
}

impl Drop for TempRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn temp_root() -> TempRoot {
    let path = std::env::temp_dir().join(format!("conveyor-prometheus-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&path);
    std::fs::create_dir_all(&path).expect("temp dir");
    std::fs::write(path.join("index.html"), "<p>hello</p>\n").expect("a page");
    TempRoot { path }
}
