//! The client against a fake CA on loopback (plain HTTP, a std listener
//! per test) that answers what a broken or hostile CA could: what the
//! client sends is checked field by field (RFC 8555 §6.2, §7.4.2), and no
//! answer, however odd, large or slow, makes it panic, hang or read more
//! than its limit.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::jws::base64url_decode;
use super::*;

/// A request the fake CA received.
#[derive(Clone, Debug)]
struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The JWS body: its protected header and payload, decoded.
    fn jws(&self) -> (Value, Value, Vec<u8>) {
        let jws: Value = serde_json::from_slice(&self.body).expect("JWS is JSON");
        let part = |name: &str| base64url_decode(jws[name].as_str().expect(name)).expect("b64");
        let protected = serde_json::from_slice(&part("protected")).expect("protected");
        let payload = part("payload");
        let payload = if payload.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&payload).expect("payload")
        };
        (protected, payload, part("signature"))
    }
}

/// What the fake CA answers.
enum Answer {
    /// Status, extra headers, body.
    Plain(u16, Vec<(&'static str, String)>, Vec<u8>),
    /// Closes the connection without a word.
    Close,
    /// Sends a head promising `Content-Length` bytes, then stalls.
    Stall,
}

fn json_answer(status: u16, headers: Vec<(&'static str, String)>, body: Value) -> Answer {
    Answer::Plain(status, headers, body.to_string().into_bytes())
}

type Handler = dyn Fn(&Request, &str) -> Option<Answer> + Send + Sync;

struct FakeCa {
    base: String,
    log: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
    port: u16,
}

impl Drop for FakeCa {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

impl FakeCa {
    /// Serves `handler`'s answers, else a plain CA's: the directory, nonces,
    /// an account at `/acct/1`.
    fn start(handler: impl Fn(&Request, &str) -> Option<Answer> + Send + Sync + 'static) -> FakeCa {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let base = format!("http://127.0.0.1:{port}");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log2, stop2, base2) = (log.clone(), stop.clone(), base.clone());
        let handler: Arc<Handler> = Arc::new(handler);
        let nonces = Arc::new(AtomicUsize::new(0));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (log, base, handler) = (log2.clone(), base2.clone(), handler.clone());
                let (stop, nonces) = (stop2.clone(), nonces.clone());
                std::thread::spawn(move || {
                    let _ = answer(stream, &log, &base, &*handler, &stop, &nonces);
                });
            }
        });
        FakeCa {
            base,
            log,
            stop,
            port,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn requests(&self) -> Vec<Request> {
        self.log.lock().expect("log").clone()
    }

    fn settings(&self, state_dir: &Path) -> AcmeSettings {
        AcmeSettings {
            directory: self.url("/directory"),
            email: None,
            domains: vec!["a.test".to_string()],
            state_dir: state_dir.to_path_buf(),
            ca_file: None,
            challenge: ChallengeKind::Http01,
        }
    }
}

/// The directory at `base`, with `renewalInfo` at `/ari` if `ari`.
fn directory(base: &str, ari: bool) -> Answer {
    let mut doc = json!({
        "newNonce": format!("{base}/nonce"),
        "newAccount": format!("{base}/acct"),
        "newOrder": format!("{base}/order"),
    });
    if ari {
        doc["renewalInfo"] = json!(format!("{base}/ari"));
    }
    json_answer(200, vec![], doc)
}

fn standard(request: &Request, base: &str) -> Answer {
    match (request.method.as_str(), request.path.as_str()) {
        ("GET", "/directory") => directory(base, false),
        ("HEAD", "/nonce") => Answer::Plain(200, vec![], Vec::new()),
        ("POST", "/acct") => json_answer(
            201,
            vec![("location", format!("{base}/acct/1"))],
            json!({"status": "valid"}),
        ),
        _ => json_answer(
            404,
            vec![],
            json!({"type": "urn:ietf:params:acme:error:malformed", "detail": "no such resource"}),
        ),
    }
}

fn answer(
    stream: TcpStream,
    log: &Mutex<Vec<Request>>,
    base: &str,
    handler: &Handler,
    stop: &AtomicBool,
    nonces: &AtomicUsize,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.trim_end().split_once(':') {
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    let length = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let request = Request {
        method,
        path,
        headers,
        body,
    };
    log.lock().expect("log").push(request.clone());
    let mut stream = stream;
    let nonce = format!("nonce{}", nonces.fetch_add(1, Ordering::SeqCst));
    match handler(&request, base).unwrap_or_else(|| standard(&request, base)) {
        Answer::Close => Ok(()),
        Answer::Stall => {
            stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{")?;
            let until = Instant::now() + Duration::from_secs(20);
            while Instant::now() < until && !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok(())
        }
        Answer::Plain(status, extra, body) => {
            let mut head = format!(
                "HTTP/1.1 {status} X\r\nconnection: close\r\ncontent-length: {}\r\n",
                body.len()
            );
            if !extra.iter().any(|(n, _)| *n == "replay-nonce") {
                head.push_str(&format!("replay-nonce: {nonce}\r\n"));
            }
            for (name, value) in extra {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
            head.push_str("\r\n");
            stream.write_all(head.as_bytes())?;
            // A peer that stops reading is fine: the client had enough.
            let _ = stream.write_all(&body);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests;
