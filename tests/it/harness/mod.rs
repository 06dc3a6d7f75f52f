//! Test harness: starts Conveyor in-process on port 0 for every
//! acceptor × dispatcher combination, with raw-socket helpers. Every
//! helper more than one test module needs lives here, once.

pub(crate) mod browser;
pub(crate) mod h2_client;
pub(crate) mod h2raw;
pub(crate) mod needs;
pub(crate) mod pebble;
pub(crate) mod process;
pub(crate) mod status;
pub(crate) mod tls;

pub(crate) use tls::localhost_certificate;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use conveyor::config::{AcceptorKind, Config, DispatcherKind};
use conveyor::Server;

pub(crate) const ACCEPTORS: [&str; AcceptorKind::ALL.len()] = AcceptorKind::NAMES;
pub(crate) const DISPATCHERS: [&str; DispatcherKind::ALL.len()] = DispatcherKind::NAMES;

/// A running server with its own document root, stopped on drop.
pub(crate) struct TestServer {
    server: Option<Server>,
    pub addr: SocketAddr,
    pub root: PathBuf,
    pub label: String,
}

impl TestServer {
    pub(crate) fn server(&self) -> &Server {
        self.server.as_ref().expect("running")
    }

    /// Graceful shutdown, as on SIGTERM.
    pub(crate) fn shutdown(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown();
        }
    }

    pub(crate) fn connect(&self) -> TcpStream {
        let stream = connect(self.addr);
        stream.set_nodelay(true).expect("nodelay");
        stream
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The access log as written so far (flushed first); empty if none.
    pub(crate) fn access_log(&self) -> String {
        self.server().flush_log();
        let path = self
            .server()
            .line()
            .config
            .load()
            .log
            .access_log_path
            .clone();
        std::fs::read_to_string(path).unwrap_or_default()
    }

    /// Status JSON as text.
    pub(crate) fn status_json(&self) -> String {
        self.server().status_json()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // Dropping the server drops its runtime: everything stops at once.
        drop(self.server.take());
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// A client connection to `addr`, whose reads give up after 10 s.
pub(crate) fn connect(addr: impl ToSocketAddrs) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream
}

/// A client connection to `addr` with a small receive buffer, so a large
/// response stays mostly on the server's side, mid-write.
pub(crate) fn small_window_connect(addr: SocketAddr) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    socket.set_recv_buffer_size(8 * 1024).expect("SO_RCVBUF");
    socket.connect(&addr.into()).expect("connect");
    let stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream
}

/// `name` under the repository, for tests that read its own files (they
/// never write there: temporary directories are for that).
pub(crate) fn repo(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
}

/// A temporary directory holding `site/index.html` ("hi"), for the binary
/// started in it with `root = "site"`.
pub(crate) fn site_dir(tag: &str) -> PathBuf {
    let dir = temp_dir(tag);
    std::fs::create_dir_all(dir.join("site")).expect("site");
    std::fs::write(dir.join("site/index.html"), "hi").expect("index");
    dir
}

/// A fresh, empty temporary directory.
pub(crate) fn temp_dir(tag: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "conveyor-test-{}-{}-{}",
        std::process::id(),
        tag,
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Copies the repository's `www/` into `dest`.
pub(crate) fn copy_www(dest: &Path) {
    copy_dir(&repo("www"), dest);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// Test defaults: 2 workers, port 0, short timeouts, a root with `www/`.
pub(crate) fn test_config(root: &Path, acceptor: &str, dispatcher: &str) -> Config {
    let mut config = Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        root: root.to_path_buf(),
        workers: 2,
        ..Config::default()
    };
    config.stages.acceptor = acceptor.parse().expect("an acceptor name");
    config.stages.dispatcher = dispatcher.parse().expect("a dispatcher name");
    config.stages.pool_size = 4;
    config.timeouts.header_read = Duration::from_secs(5);
    config.timeouts.keepalive_idle = Duration::from_secs(5);
    config.timeouts.write = Duration::from_secs(5);
    config.timeouts.shutdown_grace = Duration::from_secs(5);
    // Tests that open a connection and wait without sending (for a 503, a
    // timeout) want it accepted at once; deferred accept has its own test.
    config.runtime.tcp_defer_accept = Duration::ZERO;
    config
}

/// Starts a server for one combination; `tweak` adjusts the config.
pub(crate) fn start(
    acceptor: &str,
    dispatcher: &str,
    tweak: impl FnOnce(&mut Config),
) -> TestServer {
    let root = temp_dir(&format!("{acceptor}-{dispatcher}"));
    copy_www(&root);
    let mut config = test_config(&root, acceptor, dispatcher);
    tweak(&mut config);
    let server = Server::start(config).expect("server starts");
    TestServer {
        addr: server.local_addr(),
        server: Some(server),
        root,
        label: format!("{acceptor}×{dispatcher}"),
    }
}

/// Runs `test` once for every acceptor × dispatcher combination.
pub(crate) fn matrix(mut test: impl FnMut(&str, &str)) {
    for acceptor in ACCEPTORS {
        for dispatcher in DISPATCHERS {
            test(acceptor, dispatcher);
        }
    }
}

/// Same as `matrix`, with a started server (default config plus `tweak`).
pub(crate) fn each_server(tweak: impl Fn(&mut Config), mut test: impl FnMut(&TestServer)) {
    matrix(|acceptor, dispatcher| {
        let server = start(acceptor, dispatcher, &tweak);
        test(&server);
    });
}

/// A parsed response.
#[derive(Debug, Clone)]
pub(crate) struct Response {
    pub status: u16,
    /// The reason phrase of the status line, as sent.
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Every value of field `name`, in order.
    pub(crate) fn all(&self, name: &str) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// Reads one response from `stream`. `head_request`: the request was HEAD
/// (no body follows, whatever Content-Length says). Leftover bytes of the
/// next response stay in `carry`.
pub(crate) fn read_response_with(
    stream: &mut impl Read,
    carry: &mut Vec<u8>,
    head_request: bool,
) -> Response {
    let head_end = loop {
        if let Some(end) = carry.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        let mut buf = [0u8; 65536];
        let n = stream.read(&mut buf).expect("read response head");
        assert!(
            n > 0,
            "connection closed before a response head; got {:?}",
            String::from_utf8_lossy(carry)
        );
        carry.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&carry[..head_end]).into_owned();
    carry.drain(..head_end);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let reason = status_line.splitn(3, ' ').nth(2).unwrap_or("").to_string();
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (n, v) = l.split_once(':').expect("header line");
            (n.trim().to_string(), v.trim().to_string())
        })
        .collect();
    let mut response = Response {
        status,
        reason,
        headers,
        body: Vec::new(),
    };
    if head_request || status == 304 || status == 204 || (100..200).contains(&status) {
        return response;
    }
    if response
        .header("Transfer-Encoding")
        .is_some_and(|te| te.eq_ignore_ascii_case("chunked"))
    {
        response.body = read_chunked(stream, carry);
    } else if let Some(len) = response.header("Content-Length") {
        let len: usize = len.parse().expect("content-length");
        fill(stream, carry, len);
        response.body = carry.drain(..len).collect();
    } else {
        stream.read_to_end(carry).expect("read to close");
        response.body = std::mem::take(carry);
    }
    response
}

pub(crate) fn read_response(stream: &mut impl Read) -> Response {
    let mut carry = Vec::new();
    let response = read_response_with(stream, &mut carry, false);
    assert!(
        carry.is_empty(),
        "unexpected bytes after the response: {:?}",
        String::from_utf8_lossy(&carry)
    );
    response
}

fn fill(stream: &mut impl Read, carry: &mut Vec<u8>, len: usize) {
    let mut buf = vec![0u8; 65536];
    while carry.len() < len {
        let n = stream.read(&mut buf).expect("read body");
        assert!(n > 0, "closed mid-body: {} of {len}", carry.len());
        carry.extend_from_slice(&buf[..n]);
    }
}

fn read_chunked(stream: &mut impl Read, carry: &mut Vec<u8>) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let line_end = loop {
            if let Some(p) = carry.windows(2).position(|w| w == b"\r\n") {
                break p;
            }
            let have = carry.len();
            fill(stream, carry, have + 1);
        };
        let size_text = String::from_utf8_lossy(&carry[..line_end]).into_owned();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .expect("chunk size");
        carry.drain(..line_end + 2);
        fill(stream, carry, size + 2);
        body.extend(carry.drain(..size));
        carry.drain(..2);
        if size == 0 {
            return body;
        }
    }
}

/// Sends `request` on `stream` and reads its one response (no more).
pub(crate) fn exchange(stream: &mut TcpStream, request: &str) -> Response {
    stream.write_all(request.as_bytes()).expect("send");
    let mut carry = Vec::new();
    let response = read_response_with(stream, &mut carry, request.starts_with("HEAD "));
    assert!(
        carry.is_empty(),
        "bytes after the response to {request:?}: {:?}",
        String::from_utf8_lossy(&carry)
    );
    response
}

/// Sends `request` on a new connection and reads its one response.
pub(crate) fn ask(server: &TestServer, request: &str) -> Response {
    exchange(&mut server.connect(), request)
}

/// `GET path` with extra header lines (each ending in CRLF), on a new
/// connection.
pub(crate) fn get_with(server: &TestServer, path: &str, headers: &str) -> Response {
    ask(
        server,
        &format!("GET {path} HTTP/1.1\r\nHost: test\r\n{headers}\r\n"),
    )
}

/// Sends raw bytes on a new connection and returns the first response.
pub(crate) fn raw(addr: SocketAddr, request: &[u8]) -> Response {
    let mut stream = connect(addr);
    stream.write_all(request).expect("send");
    let mut carry = Vec::new();
    read_response_with(&mut stream, &mut carry, request.starts_with(b"HEAD "))
}

/// `GET path` with Host, on an existing connection (TCP or Unix).
pub(crate) fn get(stream: &mut (impl Read + Write), path: &str) -> Response {
    write!(stream, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").expect("send");
    read_response(stream)
}

/// True once the peer has closed the connection (EOF or reset) within `limit`.
pub(crate) fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        stream.set_read_timeout(Some(left)).expect("timeout");
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            // A socket read with a timeout is never restarted after a
            // signal handler ran (signal(7)): EINTR says nothing of the peer.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}

/// Resident set size of this process (server included: it runs in-process).
pub(crate) fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("resident pages");
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * u64::try_from(page).expect("page size")
}

/// Polls `condition` until it holds or `limit` passes.
pub(crate) fn wait_until(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    condition()
}

/// Everything the peer sends until it closes the connection, for at most
/// `limit`: the bytes, and whether it closed (EOF or reset) in time.
/// Reads into `carry` until it holds `needle` (true) or `limit` passes
/// (false); the read timeout is restored to 10 s afterwards.
pub(crate) fn read_until_seen(
    stream: &mut TcpStream,
    carry: &mut Vec<u8>,
    needle: &[u8],
    limit: Duration,
) -> bool {
    let seen = wait_until(limit, || {
        let mut buf = [0u8; 4096];
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        if let Ok(n) = stream.read(&mut buf) {
            carry.extend_from_slice(&buf[..n]);
        }
        carry.windows(needle.len()).any(|w| w == needle)
    });
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    seen
}

pub(crate) fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    read_until_closed_by(stream, limit, |s, left| s.set_read_timeout(Some(left)))
}

/// [`read_until_closed`] for any stream: `set_timeout` bounds its next
/// read. A TLS peer's close without a close notice counts as closed.
pub(crate) fn read_until_closed_by<S: Read>(
    stream: &mut S,
    limit: Duration,
    set_timeout: impl Fn(&mut S, Duration) -> std::io::Result<()>,
) -> (Vec<u8>, bool) {
    use std::io::ErrorKind;
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (got, false);
        }
        set_timeout(stream, left).expect("timeout");
        match stream.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset
                ) =>
            {
                return (got, true)
            }
            Err(_) => return (got, false),
        }
    }
}

/// How many times `needle` occurs in `haystack`.
pub(crate) fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .filter(|w| *w == needle)
        .count()
}

/// Like `start`, with stages swapped through the library API by `build`.
pub(crate) fn start_with(
    acceptor: &str,
    dispatcher: &str,
    tweak: impl FnOnce(&mut Config),
    build: impl FnOnce(conveyor::ServerBuilder) -> conveyor::ServerBuilder,
) -> TestServer {
    let root = temp_dir(&format!("{acceptor}-{dispatcher}-custom"));
    copy_www(&root);
    let mut config = test_config(&root, acceptor, dispatcher);
    tweak(&mut config);
    let server = build(Server::builder(config))
        .start()
        .expect("server starts");
    TestServer {
        addr: server.local_addr(),
        server: Some(server),
        root,
        label: format!("{acceptor}×{dispatcher}"),
    }
}

/// Asserts that `response` is a 200 carrying the file `rel` (beneath the
/// server's document root) byte for byte; returns the file's bytes.
pub(crate) fn assert_file(
    server: &TestServer,
    response: &Response,
    rel: &str,
    context: &str,
) -> Vec<u8> {
    let disk = std::fs::read(server.root.join(rel)).expect("read the served file");
    assert_eq!(response.status, 200, "{context}: GET {rel}");
    assert!(
        response.body == disk,
        "{context}: the body of {rel} differs from the file ({} bytes, file {})",
        response.body.len(),
        disk.len()
    );
    disk
}

/// A connection to `to` from the loopback address `from`.
pub(crate) fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    let local: SocketAddr = format!("{from}:0").parse().expect("addr");
    socket.bind(&local.into()).expect("bind the source address");
    socket.connect(&to.into()).expect("connect");
    let stream: TcpStream = socket.into();
    stream.set_nodelay(true).expect("nodelay");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream
}

/// Standard base64 with padding, as a client writes Basic credentials.
pub(crate) fn base64(bytes: &[u8]) -> String {
    const DIGITS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |n, &b| n << 8 | u32::from(b)) << (8 * (3 - chunk.len()));
        for i in 0..4 {
            match i <= chunk.len() {
                true => out.push(DIGITS[(n >> (18 - 6 * i) & 63) as usize] as char),
                false => out.push('='),
            }
        }
    }
    out
}
