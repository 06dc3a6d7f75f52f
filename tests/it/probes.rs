//! `/livez` and `/readyz`, and the drain between SIGTERM and the stop:
//! readiness turns 503 at once while everything else is still served.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::process::{spawn_on_config, LIMIT};
use crate::harness::*;
use conveyor::config::{AcceptorKind, Config};
use conveyor::runtime::Handle;
use conveyor::stages::{acceptor_for, Acceptor, Line};

#[test]
fn livez_is_200_and_readyz_turns_503_on_drain_while_the_rest_is_served() {
    each_server(
        |_| {},
        |server| {
            let label = &server.label;
            let mut held = server.connect();
            let live = get(&mut held, "/livez");
            assert_eq!(
                (live.status, live.text().as_str()),
                (200, "ok\n"),
                "{label}"
            );
            assert_eq!(live.header("Cache-Control"), Some("no-store"), "{label}");
            let ready = get(&mut held, "/readyz");
            assert_eq!((ready.status, ready.text().as_str()), (200, "ready\n"));
            assert_eq!(ready.header("Connection"), None, "{label}: kept alive");
            let head = raw(server.addr, b"HEAD /readyz HTTP/1.1\r\nHost: x\r\n\r\n");
            assert_eq!((head.status, head.body.len()), (200, 0), "{label}");
            let post = raw(
                server.addr,
                b"POST /livez HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
            );
            assert_eq!(post.status, 405, "{label}");
            assert_eq!(post.header("Allow"), Some("GET, HEAD"), "{label}");

            let status = server.status_json();
            assert!(
                status.contains(",\"readiness\":{\"state\":\"ready\"}"),
                "{status}"
            );
            let prometheus = get(&mut held, "/status?format=prometheus").text();
            assert!(prometheus.contains("\nconveyor_ready 1\n"), "{prometheus}");

            server.server().drain();

            // A connection opened before the drain, and new ones: the probe
            // says 503, files and /livez are still served, each response
            // closes its connection.
            let ready = get(&mut held, "/readyz");
            assert_eq!(ready.status, 503, "{label}");
            assert_eq!(ready.text(), "draining\n", "{label}");
            assert_eq!(ready.header("Retry-After"), Some("1"), "{label}");
            assert_eq!(ready.header("Connection"), Some("close"), "{label}");
            assert!(closed_within(&mut held, Duration::from_secs(5)), "{label}");
            let mut fresh = server.connect();
            let page = get(&mut fresh, "/index.html");
            assert_file(server, &page, "index.html", label);
            assert_eq!(page.header("Connection"), Some("close"), "{label}");
            let mut fresh = server.connect();
            assert_eq!(get(&mut fresh, "/livez").status, 200, "{label}");
            let mut fresh = server.connect();
            assert_eq!(get(&mut fresh, "/readyz").status, 503, "{label}");
            let status = server.status_json();
            assert!(
                status.contains("\"readiness\":{\"state\":\"draining\"}"),
                "{status}"
            );
            let mut fresh = server.connect();
            let prometheus = get(&mut fresh, "/status?format=prometheus").text();
            assert!(prometheus.contains("\nconveyor_ready 0\n"), "{prometheus}");
        },
    );
}

#[test]
fn probes_move_turn_off_and_refuse_to_share_a_path() {
    let server = start("readiness", "spawn", |c| {
        c.live.path = "/_conveyor/live".to_string();
        c.ready.enabled = false;
    });
    std::fs::write(server.root.join("readyz"), "my own file").expect("write");
    std::fs::write(server.root.join("livez"), "another").expect("write");
    let mut stream = server.connect();
    assert_eq!(get(&mut stream, "/_conveyor/live").text(), "ok\n");
    assert_eq!(get(&mut stream, "/readyz").text(), "my own file");
    assert_eq!(get(&mut stream, "/livez").text(), "another");

    let e = Config::from_toml_str("[ready]\npath = \"/status\"").expect_err("a clash");
    assert!(
        e.to_string()
            .contains("status.path and ready.path are both \"/status\"; give each endpoint"),
        "{e}"
    );
    let e = Config::from_toml_str("[shutdown]\ndrain_delay = \"soon\"").expect_err("bad");
    assert!(e.to_string().starts_with("shutdown.drain_delay = "), "{e}");
}

/// Starts the built-in acceptor, then asks `/readyz` through the listener
/// it just opened, before `start` has returned: the server is not ready
/// until every listener is up.
struct AskWhileStarting {
    seen: Arc<Mutex<Option<(u16, String)>>>,
}

impl Acceptor for AskWhileStarting {
    fn name(&self) -> &str {
        "ask-while-starting"
    }

    fn start(
        &self,
        runtime: &Handle,
        addr: SocketAddr,
        line: &Arc<Line>,
    ) -> std::io::Result<SocketAddr> {
        let bound = acceptor_for(AcceptorKind::Readiness).start(runtime, addr, line)?;
        let answer = raw(bound, b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n");
        *self.seen.lock().expect("lock") = Some((answer.status, answer.text()));
        Ok(bound)
    }
}

#[test]
fn readyz_is_503_until_the_listeners_are_up() {
    let seen = Arc::new(Mutex::new(None));
    let server = start_with(
        "readiness",
        "spawn",
        |_| {},
        |b| b.acceptor(Arc::new(AskWhileStarting { seen: seen.clone() })),
    );
    let before = seen.lock().expect("lock").clone();
    assert_eq!(before, Some((503, "starting\n".to_string())));
    let mut stream = server.connect();
    assert_eq!(get(&mut stream, "/readyz").status, 200, "once started");
}

/// A site and a config file with `drain_delay`, in a directory of their own.
fn drain_setup(tag: &str, drain_delay: &str) -> std::path::PathBuf {
    let dir = temp_dir(tag);
    std::fs::create_dir_all(dir.join("site")).expect("mkdir");
    std::fs::write(dir.join("site/index.html"), "hi").expect("index");
    std::fs::write(
        dir.join("c.toml"),
        format!(
            "root = \"site\"\nlisten = \"127.0.0.1:0\"\nworkers = 1\n\
             [runtime]\ntcp_defer_accept = 0\n[shutdown]\ndrain_delay = \"{drain_delay}\"\n"
        ),
    )
    .expect("config");
    dir
}

fn get_close(addr: &str, path: &str) -> Response {
    let mut stream = connect(addr);
    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").expect("send");
    read_response(&mut stream)
}

#[test]
fn sigterm_drains_for_the_delay_then_stops_and_exits_0() {
    let dir = drain_setup("drain", "4s");
    let (mut run, addr) = spawn_on_config(&dir);
    let mut held = connect(addr.as_str());
    assert_eq!(get(&mut held, "/readyz").status, 200);

    let signalled = Instant::now();
    run.terminate();
    let line = run.stderr_with("conveyor: draining on ");
    assert!(
        line.starts_with("conveyor: draining on SIGTERM: /readyz answers 503, serving for 4 s"),
        "{line}"
    );
    // Within the delay: not ready, still serving, new connections included.
    let ready = get(&mut held, "/readyz");
    assert_eq!((ready.status, ready.text().as_str()), (503, "draining\n"));
    let page = get_close(&addr, "/");
    assert_eq!((page.status, page.text().as_str()), (200, "hi"));
    assert_eq!(page.header("Connection"), Some("close"));
    assert_eq!(get_close(&addr, "/livez").status, 200);
    assert!(
        signalled.elapsed() < Duration::from_secs(4),
        "the checks above took the whole delay: the machine is too slow for this test"
    );

    let stop = run.stop_line();
    assert!(
        stop.starts_with("conveyor: stopping on SIGTERM: "),
        "{stop}"
    );
    assert_eq!(run.exit_code(), Some(0));
    assert!(
        signalled.elapsed() >= Duration::from_secs(4),
        "stopped {:?} after SIGTERM, before the drain delay",
        signalled.elapsed()
    );
    assert!(
        TcpStream::connect(&addr).is_err(),
        "still accepting after the exit"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_second_signal_ends_the_drain_at_once() {
    let dir = drain_setup("drain-twice", "1h");
    let (mut run, addr) = spawn_on_config(&dir);
    run.terminate();
    let line = run.stderr_with("conveyor: draining on ");
    assert!(line.starts_with("conveyor: draining on SIGTERM"), "{line}");
    assert_eq!(get_close(&addr, "/readyz").status, 503);
    assert!(run.running(), "stopped before the delay");
    run.signal("INT");
    // exit_code waits at most LIMIT, far less than the hour asked for.
    assert_eq!(run.exit_code(), Some(0), "within {LIMIT:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
