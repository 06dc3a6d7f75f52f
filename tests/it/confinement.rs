//! Confinement and consistency under an attacker who controls timing and
//! renames: a symlink swapped in while requests are resolved never serves a
//! file from outside the root, and a file replaced or truncated while it is
//! served never panics the handler or sends a body that is not one whole
//! version of the file.

use std::ffi::CString;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::harness::{start, temp_dir, TestServer};
use conveyor::config::Config;

/// How long each attack runs against each server.
const ATTACK: Duration = Duration::from_millis(1500);
/// Requests written at once on a connection.
const PIPELINE: usize = 16;

/// Swaps two names atomically (`renameat2(RENAME_EXCHANGE)`).
fn swap_paths(a: &Path, b: &Path) {
    let a = CString::new(a.as_os_str().as_bytes()).unwrap();
    let b = CString::new(b.as_os_str().as_bytes()).unwrap();
    // SAFETY: both are valid NUL-terminated paths for the call's duration.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    assert_eq!(rc, 0, "renameat2: {}", std::io::Error::last_os_error());
}

/// Runs `attack` in a loop on its own thread until the returned guard drops.
struct Attacker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<u64>>,
}

impl Attacker {
    fn start(mut attack: impl FnMut() + Send + 'static) -> Attacker {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut rounds = 0;
            while !flag.load(Ordering::Relaxed) {
                attack();
                rounds += 1;
            }
            rounds
        });
        Attacker {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the loop; returns how many rounds ran.
    fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .map_or(0, |t| t.join().expect("attacker"))
    }
}

impl Drop for Attacker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One response as read off the wire, or the connection closing.
enum Read1 {
    Response { status: u16, body: Vec<u8> },
    Closed,
}

/// Reads one Content-Length framed response; `Closed` if the connection
/// ends first (including mid-body).
fn read_one(stream: &mut TcpStream, carry: &mut Vec<u8>) -> Read1 {
    let mut buf = [0u8; 65536];
    let head_end = loop {
        if let Some(end) = carry.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return Read1::Closed,
            Ok(n) => carry.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&carry[..head_end]).into_owned();
    carry.drain(..head_end);
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())
                .flatten()
        })
        .expect("every response here has a Content-Length");
    while carry.len() < len {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return Read1::Closed,
            Ok(n) => carry.extend_from_slice(&buf[..n]),
        }
    }
    let body = carry.drain(..len).collect();
    Read1::Response { status, body }
}

/// Sends pipelined batches of GETs for `paths` until `until`, handing every
/// response to `check`. Returns the number of responses read.
fn hammer(
    server: &TestServer,
    paths: &[&str],
    until: Instant,
    mut check: impl FnMut(&str, u16, &[u8]),
) -> u64 {
    let mut answered = 0;
    'connections: while Instant::now() < until {
        let mut stream = server.connect();
        let mut carry = Vec::new();
        while Instant::now() < until {
            let mut batch = Vec::new();
            let mut sent = Vec::new();
            for i in 0..PIPELINE {
                let path = paths[i % paths.len()];
                write!(batch, "GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
                sent.push(path);
            }
            if stream.write_all(&batch).is_err() {
                continue 'connections;
            }
            for path in sent {
                match read_one(&mut stream, &mut carry) {
                    Read1::Response { status, body } => {
                        check(path, status, &body);
                        answered += 1;
                    }
                    // Allowed: the server may close rather than send a
                    // response it cannot complete. Start a new connection.
                    Read1::Closed => continue 'connections,
                }
            }
        }
    }
    answered
}

/// The sum of the per-worker "panicked" counters in `/status`.
fn panics(server: &TestServer) -> u64 {
    let json = server.status_json();
    json.split("\"panicked\":")
        .skip(1)
        .map(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u64>().expect("panicked count")
        })
        .sum()
}

/// Combinations the attacks run on: both acceptors that hand connections to
/// workers differently, both dispatchers, and each way a file is looked up
/// again (cached and watched, cached and stat-checked, never cached).
const SETUPS: [(&str, &str, &str); 4] = [
    ("readiness", "spawn", "cache"),
    ("reuseport", "pool", "no-cache"),
    ("readiness", "pool", "stat"),
    ("reuseport", "spawn", "no-cache"),
];

fn tweak(cache: &str) -> impl Fn(&mut Config) + '_ {
    move |config: &mut Config| match cache {
        "no-cache" => config.static_files.cache_max_file_size = 0,
        "stat" => config.static_files.revalidate = conveyor::config::Revalidate::Stat,
        _ => {}
    }
}

#[test]
fn symlink_swap_race_never_serves_outside_the_root() {
    let outside = temp_dir("outside");
    fs::write(outside.join("passwd"), "root:x:0:0:OUTSIDE-SECRET\n").unwrap();
    for (acceptor, dispatcher, cache) in SETUPS {
        let server = start(acceptor, dispatcher, tweak(cache));
        let race = server.root.join("race");
        fs::create_dir_all(race.join("d")).unwrap();
        fs::write(race.join("d/passwd"), "inside\n").unwrap();
        symlink(&outside, race.join("d_link")).unwrap();

        let (d, d_link) = (race.join("d"), race.join("d_link"));
        let swapper = Attacker::start(move || swap_paths(&d, &d_link));
        let mut inside = 0u64;
        let until = Instant::now() + ATTACK;
        let answered = hammer(&server, &["/race/d/passwd"], until, |_, status, body| {
            let text = String::from_utf8_lossy(body);
            assert!(
                !text.contains("OUTSIDE-SECRET"),
                "{}: served a file from outside the root",
                server.label
            );
            match status {
                200 => {
                    assert_eq!(text, "inside\n", "{}", server.label);
                    inside += 1;
                }
                404 => {}
                other => panic!("{}: unexpected status {other}", server.label),
            }
        });
        let swaps = swapper.stop();
        assert!(
            swaps > 100,
            "{}: the race ran ({swaps} swaps)",
            server.label
        );
        assert!(
            inside > 0 && answered > inside,
            "{}: both states were seen ({inside} of {answered} served)",
            server.label
        );
        assert_eq!(panics(&server), 0, "{}", server.label);
    }
    let _ = fs::remove_dir_all(&outside);
}

/// Bytes of one version of a file: all `fill`, `len` long.
fn version(fill: u8, len: usize) -> Vec<u8> {
    vec![fill; len]
}

#[test]
fn files_replaced_or_truncated_while_served_stay_whole() {
    for (acceptor, dispatcher, cache) in SETUPS {
        let server = start(acceptor, dispatcher, tweak(cache));
        let root = server.root.clone();
        let (big, small) = (version(b'A', 5000), version(b'b', 100));
        fs::write(root.join("swap.txt"), &big).unwrap();
        // Written in place, a file passes through every state the writes
        // make: a write spanning pages shows a reader its first page alone.
        // Versions of at most a page make each write one state.
        let (page, tiny) = (version(b'P', 3000), version(b't', 100));
        fs::write(root.join("inplace.txt"), &page).unwrap();

        // A deploy: write the new version beside, rename it over.
        let swapped = AtomicU64::new(0);
        let (deploy_root, b1, s1) = (root.clone(), big.clone(), small.clone());
        let deployer = Attacker::start(move || {
            let n = swapped.fetch_add(1, Ordering::Relaxed);
            let next = if n.is_multiple_of(2) { &s1 } else { &b1 };
            let tmp = deploy_root.join(".swap.tmp");
            fs::write(&tmp, next).unwrap();
            fs::rename(&tmp, deploy_root.join("swap.txt")).unwrap();
        });
        // An editor: truncate in place, then write the other version.
        let (edit_root, b2, s2) = (root.clone(), page.clone(), tiny.clone());
        let mut edits = 0u64;
        let editor = Attacker::start(move || {
            edits += 1;
            let next = if edits.is_multiple_of(2) { &b2 } else { &s2 };
            let mut file = fs::OpenOptions::new()
                .write(true)
                .open(edit_root.join("inplace.txt"))
                .unwrap();
            file.set_len(0).unwrap();
            file.write_all(next).unwrap();
        });

        let until = Instant::now() + ATTACK;
        let mut seen = [0u64; 2];
        let answered = hammer(
            &server,
            &["/swap.txt", "/inplace.txt"],
            until,
            |path, status, body| {
                assert_eq!(status, 200, "{} {path}", server.label);
                let whole = match path {
                    "/swap.txt" => body == &big[..] || body == &small[..],
                    // Truncated in place, the file is briefly empty: also a
                    // version it had.
                    _ => body == &page[..] || body == &tiny[..] || body.is_empty(),
                };
                assert!(
                    whole,
                    "{} {path}: a body of {} bytes matching no version: {:?}",
                    server.label,
                    body.len(),
                    String::from_utf8_lossy(&body[..body.len().min(120)])
                );
                seen[usize::from(body.len() == 100)] += 1;
            },
        );
        assert!(
            deployer.stop() > 10 && editor.stop() > 10,
            "{}",
            server.label
        );
        assert!(answered > 100, "{}: {answered} responses", server.label);
        assert!(
            seen[0] > 0 && seen[1] > 0,
            "{}: both versions were served ({seen:?})",
            server.label
        );
        assert_eq!(panics(&server), 0, "{}", server.label);
    }
}
