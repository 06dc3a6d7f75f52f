//! SIGHUP re-reads the config file and applies it without closing a
//! connection; a bad config changes nothing; SIGUSR1 reopens the access log.
//! Each test runs the binary, rewrites its config file and signals it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crate::harness::process::{address, spawn_on_config, Running, LIMIT};
use crate::harness::{connect, get, read_response, read_response_with, temp_dir, wait_until};

const BIG: usize = 4 << 20;

/// A directory with two roots, `a` and `b`, told apart by their index and
/// both holding a file big enough to go out with sendfile.
fn sites(tag: &str) -> PathBuf {
    let dir = temp_dir(tag);
    for (name, text) in [("a", "A"), ("b", "B")] {
        std::fs::create_dir_all(dir.join(name)).expect("mkdir");
        std::fs::write(dir.join(name).join("index.html"), text).expect("index");
        std::fs::write(dir.join(name).join("big.bin"), vec![b'x'; BIG]).expect("big");
    }
    dir
}

fn write_config(dir: &Path, text: &str) {
    std::fs::write(dir.join("c.toml"), format!("workers = 2\n{text}")).expect("config");
}

/// Sends SIGHUP and waits for the line saying the reload took effect.
fn reload(run: &Running) -> String {
    run.signal("HUP");
    run.stderr_with("SIGHUP: reloaded")
}

fn generation(stream: &mut TcpStream) -> String {
    let status = get(stream, "/status").text();
    let at = status.find("\"config\":{").expect("a config object");
    status[at..].split('}').next().expect("object").to_string()
}

#[test]
fn a_kept_alive_connection_gets_the_new_config_on_its_next_request() {
    let dir = sites("reload-keepalive");
    write_config(&dir, "listen = \"127.0.0.1:0\"\nroot = \"a\"\n");
    let (run, addr) = spawn_on_config(&dir);
    let mut kept = connect(&addr);
    let first = get(&mut kept, "/");
    assert_eq!((first.status, first.text().as_str()), (200, "A"));
    assert_eq!(first.header("X-Site"), None);
    let before = generation(&mut kept);
    assert!(before.contains("\"generation\":1,"), "{before}");
    assert!(before.contains("\"file\":\"c.toml\""), "{before}");

    write_config(
        &dir,
        "listen = \"127.0.0.1:0\"\nroot = \"b\"\n\
         [[headers]]\npath = \"*.html\"\nset = { X-Site = \"b\" }\n",
    );
    let line = reload(&run);
    assert!(line.contains("configuration generation 2 in use"), "{line}");

    let next = get(&mut kept, "/");
    assert_eq!((next.status, next.text().as_str()), (200, "B"));
    assert_eq!(next.header("X-Site"), Some("b"));
    let after = generation(&mut kept);
    assert!(after.contains("\"generation\":2,"), "{after}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Clients keep requests going on kept-alive connections while the
/// config is reloaded five times: every response arrives whole and right.
/// A download read slowly and an /echo body sent in two halves span a
/// reload each.
#[test]
fn requests_in_flight_during_reloads_all_complete() {
    let dir = sites("reload-in-flight");
    let config = |root: &str| format!("listen = \"127.0.0.1:0\"\nroot = \"{root}\"\n");
    write_config(&dir, &config("a"));
    let (run, addr) = spawn_on_config(&dir);

    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..4)
        .map(|i| {
            let (addr, stop, served) = (addr.clone(), stop.clone(), served.clone());
            std::thread::spawn(move || {
                let mut stream = connect(&addr);
                while !stop.load(Ordering::Relaxed) {
                    let path = if i % 2 == 0 { "/" } else { "/big.bin" };
                    let response = get(&mut stream, path);
                    assert_eq!(response.status, 200, "{path}");
                    match path {
                        "/" => assert!(
                            ["A", "B"].contains(&response.text().as_str()),
                            "{:?}",
                            response.text()
                        ),
                        _ => assert_eq!(response.body.len(), BIG),
                    }
                    served.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    // A download under way across a reload.
    let mut slow = connect(&addr);
    slow.write_all(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("send");
    let mut start_of_body = vec![0u8; 64 * 1024];
    slow.read_exact(&mut start_of_body).expect("first bytes");
    // An /echo body whose second half arrives after a reload.
    let mut echo = connect(&addr);
    echo.write_all(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nhello")
        .expect("send");

    for round in 0..5 {
        let before = served.load(Ordering::Relaxed);
        write_config(&dir, &config(if round % 2 == 0 { "b" } else { "a" }));
        reload(&run);
        // The clients keep going between reloads.
        assert!(
            wait_until(LIMIT, || served.load(Ordering::Relaxed) > before + 4),
            "no requests served after reload {round}"
        );
    }
    echo.write_all(b"world").expect("rest of the body");
    let echoed = read_response(&mut echo);
    assert_eq!((echoed.status, echoed.text().as_str()), (200, "helloworld"));
    let mut carry = start_of_body;
    let download = read_response_with(&mut slow, &mut carry, false);
    assert_eq!(download.status, 200);
    assert_eq!(download.body.len(), BIG, "the download was cut short");

    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().expect("a client saw an error");
    }
    assert!(served.load(Ordering::Relaxed) > 20);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_config_changes_nothing_and_the_server_keeps_running() {
    let dir = sites("reload-bad");
    write_config(&dir, "listen = \"127.0.0.1:0\"\nroot = \"a\"\n");
    let (run, addr) = spawn_on_config(&dir);
    let mut kept = connect(&addr);
    assert_eq!(get(&mut kept, "/").text(), "A");

    // A value out of range: named with its fix.
    write_config(
        &dir,
        "listen = \"127.0.0.1:0\"\nroot = \"b\"\n[limits]\nmax_headers = 0\n",
    );
    run.signal("HUP");
    let failed = run.stderr_with("reload failed");
    assert!(failed.contains("limits.max_headers = 0"), "{failed}");
    assert!(failed.contains("use an integer from 1"), "{failed}");
    assert!(
        failed.ends_with("still running configuration generation 1"),
        "{failed}"
    );

    // A root that is not there.
    write_config(&dir, "listen = \"127.0.0.1:0\"\nroot = \"missing\"\n");
    run.signal("HUP");
    let failed = run.stderr_with("reload failed");
    assert!(
        failed.contains("root \"missing\" does not exist"),
        "{failed}"
    );

    // An added listener whose port is taken: the new root is not applied
    // either (all or nothing).
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    write_config(
        &dir,
        &format!("listen = [\"127.0.0.1:0\", \"127.0.0.1:{port}\"]\nroot = \"b\"\n"),
    );
    run.signal("HUP");
    let failed = run.stderr_with("reload failed");
    assert!(
        failed.contains(&format!("listen: cannot listen on 127.0.0.1:{port}")),
        "{failed}"
    );
    assert!(failed.contains("already in use"), "{failed}");

    let next = get(&mut kept, "/");
    assert_eq!((next.status, next.text().as_str()), (200, "A"));
    assert!(generation(&mut kept).contains("\"generation\":1,"));
    assert_eq!(get(&mut connect(&addr), "/").text(), "A");

    // And a good one still applies afterwards.
    write_config(&dir, "listen = \"127.0.0.1:0\"\nroot = \"b\"\n");
    assert!(reload(&run).contains("generation 2"));
    assert_eq!(get(&mut kept, "/").text(), "B");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn listeners_added_and_removed_by_a_reload() {
    let dir = sites("reload-listeners");
    write_config(&dir, "listen = \"127.0.0.1:0\"\nroot = \"a\"\n");
    let (run, first) = spawn_on_config(&dir);
    let mut kept = connect(&first);
    assert_eq!(get(&mut kept, "/").text(), "A");

    let sock = dir.join("s.sock");
    write_config(
        &dir,
        &format!(
            "listen = [\"127.0.0.2:0\", \"unix:{}\"]\nroot = \"a\"\n",
            sock.display()
        ),
    );
    let line = reload(&run);
    assert!(
        line.contains(&format!("stopped accepting on http://{first}")),
        "{line}"
    );
    let second = address(&line);
    assert!(second.starts_with("127.0.0.2:"), "{line}");
    assert!(line.contains(&format!("unix:{}", sock.display())), "{line}");

    assert_eq!(get(&mut connect(&second), "/").text(), "A");
    let mut unix = std::os::unix::net::UnixStream::connect(&sock).expect("unix connect");
    assert_eq!(get(&mut unix, "/").text(), "A");
    // The removed listener takes no new connection...
    assert!(
        wait_until(LIMIT, || TcpStream::connect(&first).is_err()),
        "{first} still accepts"
    );
    // ...but a connection it accepted before is served to its end.
    assert_eq!(get(&mut kept, "/").text(), "A");

    write_config(&dir, "listen = \"127.0.0.2:0\"\nroot = \"a\"\n");
    let line = reload(&run);
    assert!(line.contains("stopped accepting on unix:"), "{line}");
    assert!(
        !sock.exists(),
        "the socket file of a removed listener stays"
    );
    assert_eq!(get(&mut unix, "/").text(), "A");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sigusr1_reopens_the_access_log_at_its_path() {
    let dir = sites("reload-usr1");
    write_config(
        &dir,
        "listen = \"127.0.0.1:0\"\nroot = \"a\"\n\
         [log]\naccess_log = true\naccess_log_path = \"access.log\"\n",
    );
    let (run, addr) = spawn_on_config(&dir);
    let log = dir.join("access.log");
    let holds =
        |path: &Path, text: &str| std::fs::read_to_string(path).is_ok_and(|t| t.contains(text));
    assert_eq!(get(&mut connect(&addr), "/before").status, 404);
    // The log is written out at least once a second.
    assert!(wait_until(LIMIT, || holds(&log, "GET /before")));

    let rotated = dir.join("access.log.1");
    std::fs::rename(&log, &rotated).expect("rotate");
    run.signal("USR1");
    run.stderr_with("access log reopened");
    assert_eq!(get(&mut connect(&addr), "/after").status, 404);
    assert!(wait_until(LIMIT, || holds(&log, "GET /after")));
    assert!(!holds(&rotated, "GET /after"));
    assert!(holds(&rotated, "GET /before"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn keys_that_need_a_restart_are_named_and_keep_their_running_value() {
    let dir = sites("reload-restart");
    write_config(&dir, "listen = \"127.0.0.1:0\"\nroot = \"a\"\n");
    let (run, addr) = spawn_on_config(&dir);
    std::fs::write(
        dir.join("c.toml"),
        "workers = 3\nlisten = \"127.0.0.1:0\"\nroot = \"a\"\n[stages]\ndispatcher = \"pool\"\n\
         [limits.per_client]\nrate = 1000\ntable_size = 64\n",
    )
    .expect("config");
    let line = reload(&run);
    assert!(
        line.contains(
            "workers, stages.dispatcher, limits.per_client.table_size changed but needs a restart"
        ),
        "{line}"
    );
    // A request the rate counts: the table is allocated now, with the
    // size it had at start-up (16384), not the reload's.
    assert_eq!(get(&mut connect(&addr), "/").status, 200);
    let status = get(&mut connect(&addr), "/status").text();
    assert!(status.contains("\"workers\":2,"), "{status}");
    assert!(status.contains("\"dispatcher\":\"spawn\""), "{status}");
    assert!(
        status.contains("\"capacity\":16384,\"evictions\""),
        "{status}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The inotify descriptors a process holds.
fn inotify_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|fds| {
            fds.filter_map(Result::ok)
                .filter_map(|fd| std::fs::read_link(fd.path()).ok())
                .filter(|target| target.to_string_lossy() == "anon_inode:inotify")
                .count()
        })
        .unwrap_or(0)
}

/// Each reload builds new static files with a file watcher per worker;
/// the old ones must close, or every reload leaks descriptors.
#[test]
fn reloads_leave_no_file_watcher_behind() {
    let dir = sites("reload-watchers");
    write_config(&dir, "listen = \"127.0.0.1:0\"\nroot = \"a\"\n");
    let (run, addr) = spawn_on_config(&dir);
    let pid = run.child.id();
    let addr: std::net::SocketAddr = addr.parse().expect("addr");
    // New connections are dealt round-robin: both workers serve files.
    let serve_on_every_worker = || {
        for _ in 0..6 {
            let r = crate::harness::raw(
                addr,
                b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
            );
            assert_eq!(r.status, 200);
        }
    };
    serve_on_every_worker();
    let watching = inotify_fds(pid);
    assert!(watching >= 1, "no file watcher to count");
    for round in 0..10 {
        let root = if round % 2 == 0 { "b" } else { "a" };
        write_config(
            &dir,
            &format!("listen = \"127.0.0.1:0\"\nroot = \"{root}\"\n"),
        );
        reload(&run);
        serve_on_every_worker();
    }
    assert!(
        wait_until(LIMIT, || inotify_fds(pid) <= watching),
        "{} inotify descriptors after 10 reloads, {watching} before",
        inotify_fds(pid)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
