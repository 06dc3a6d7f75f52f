//! Headless Chromium driven over the DevTools protocol (a websocket of
//! text frames), for tests that load pages in a real browser.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{needs, read_response, temp_dir, wait_until};

/// Headless Chromium with the DevTools protocol on a port it picks,
/// ended (by its own pid) on drop.
pub(crate) struct Browser {
    child: Child,
    profile: PathBuf,
    pub(crate) port: u16,
}

impl Browser {
    pub(crate) fn start(binary: &Path, url: &str, extra: &[&str]) -> Option<Browser> {
        let profile = temp_dir("chromium");
        let child = Command::new(binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--window-size=1600,1200",
                "--remote-debugging-port=0",
            ])
            .args(extra)
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let mut browser = Browser {
            child,
            profile,
            port: 0,
        };
        let port_file = browser.profile.join("DevToolsActivePort");
        let found = wait_until(Duration::from_secs(60), || {
            std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|t| t.lines().next().and_then(|l| l.parse().ok()))
                .map(|p| browser.port = p)
                .is_some()
        });
        found.then_some(browser)
    }

    /// The page's DevTools websocket path, once the page is listed.
    pub(crate) fn page_socket(&self) -> Option<String> {
        let mut found = None;
        wait_until(Duration::from_secs(30), || {
            let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
                return false;
            };
            let _ = s.write_all(b"GET /json/list HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
            let r = read_response(&mut s);
            let text = r.text();
            found = text
                .split('}')
                .find(|target| target.contains("\"type\": \"page\""))
                .and_then(|target| target.split("ws://").nth(1))
                .and_then(|url| url.split('"').next())
                .and_then(|url| url.find('/').map(|at| url[at..].to_string()));
            found.is_some()
        });
        found
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// The least of the DevTools protocol: text frames over one websocket.
pub(crate) struct DevTools {
    s: TcpStream,
    next_id: u64,
}

impl DevTools {
    pub(crate) fn connect(port: u16, path: &str) -> DevTools {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("devtools");
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        )
        .expect("upgrade");
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut byte).expect("upgrade answer");
            head.push(byte[0]);
        }
        assert!(
            head.starts_with(b"HTTP/1.1 101"),
            "{}",
            String::from_utf8_lossy(&head)
        );
        DevTools { s, next_id: 1 }
    }

    /// Sends a command and returns its answer (events in between dropped).
    pub(crate) fn call(&mut self, method: &str, params: &str) -> String {
        let id = self.next_id;
        self.next_id += 1;
        let msg = format!("{{\"id\":{id},\"method\":\"{method}\",\"params\":{params}}}");
        // A client frame: FIN + text, masked (with a zero key: XOR is a no-op).
        let mut frame = vec![0x81u8];
        match msg.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
        }
        frame.extend_from_slice(&[0, 0, 0, 0]);
        frame.extend_from_slice(msg.as_bytes());
        self.s.write_all(&frame).expect("send frame");
        let want = format!("{{\"id\":{id},");
        loop {
            let text = self.message();
            if text.starts_with(&want) {
                return text;
            }
        }
    }

    /// One whole message (continuation frames joined).
    pub(crate) fn message(&mut self) -> String {
        let mut payload = Vec::new();
        loop {
            let mut h = [0u8; 2];
            self.s.read_exact(&mut h).expect("frame head");
            let len = match h[1] & 0x7f {
                126 => {
                    let mut b = [0u8; 2];
                    self.s.read_exact(&mut b).expect("len16");
                    u64::from(u16::from_be_bytes(b))
                }
                127 => {
                    let mut b = [0u8; 8];
                    self.s.read_exact(&mut b).expect("len64");
                    u64::from_be_bytes(b)
                }
                n => u64::from(n),
            };
            let at = payload.len();
            payload.resize(at + len as usize, 0);
            self.s.read_exact(&mut payload[at..]).expect("payload");
            if h[0] & 0x80 != 0 {
                return String::from_utf8_lossy(&payload).into_owned();
            }
        }
    }

    /// Evaluates `expr` (which must give a string with no quotes or
    /// backslashes) in the page.
    pub(crate) fn eval(&mut self, expr: &str) -> String {
        let answer = self.call(
            "Runtime.evaluate",
            &format!("{{\"expression\":\"{expr}\",\"returnByValue\":true}}"),
        );
        answer
            .split("\"value\":\"")
            .nth(1)
            .and_then(|v| v.split('"').next())
            .unwrap_or_default()
            .to_string()
    }
}

/// The Chromium to test with (`CONVEYOR_CHROMIUM`, or `chromium` on the
/// path), or None to skip (see `needs`).
pub(crate) fn chromium() -> Option<PathBuf> {
    std::env::var_os("CONVEYOR_CHROMIUM")
        .map(PathBuf::from)
        .or_else(|| needs::CHROMIUM.find())
}

/// Chromium showing `url`, and a DevTools connection to its page.
pub(crate) fn open(binary: &Path, url: &str) -> (Browser, DevTools) {
    open_with(binary, url, &[])
}

/// `open` with extra command-line flags for Chromium.
pub(crate) fn open_with(binary: &Path, url: &str, extra: &[&str]) -> (Browser, DevTools) {
    let browser = Browser::start(binary, url, extra).expect("Chromium starts a DevTools port");
    let socket = browser
        .page_socket()
        .expect("the dashboard is listed as a page");
    let tools = DevTools::connect(browser.port, &socket);
    (browser, tools)
}
