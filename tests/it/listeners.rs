//! `listen` as a list: TCP and Unix sockets together on every acceptor and
//! dispatcher, IPv6 dual-stack, stale socket files, repeated `--listen`.

use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use crate::harness::process::{address, spawn};
use crate::harness::{each_server, get, needs, process, temp_dir};
use conveyor::config::{ListenAddress, ListenAddresses};
use conveyor::Server;

fn unix_client(path: &std::path::Path) -> UnixStream {
    let stream = UnixStream::connect(path).expect("unix connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream
}

/// Whether this machine takes IPv6 sockets at all.
fn ipv6_available() -> bool {
    std::net::TcpListener::bind("[::1]:0").is_ok()
}

#[test]
fn tcp_and_unix_listeners_serve_together_on_every_stage() {
    let dir = temp_dir("listeners-unix");
    each_server(
        |config| {
            let sock = dir.join(format!(
                "s-{:?}-{:?}.sock",
                config.stages.acceptor, config.stages.dispatcher
            ));
            config.listen = ListenAddresses(vec![
                ListenAddress::parse("127.0.0.1:0").expect("addr"),
                ListenAddress::Unix(sock),
            ]);
            config.log.access_log = true;
            config.log.access_log_path = dir
                .join(format!(
                    "log-{:?}-{:?}",
                    config.stages.acceptor, config.stages.dispatcher
                ))
                .display()
                .to_string();
        },
        |server| {
            let listeners = server.server().listeners();
            assert_eq!(listeners.len(), 2, "{listeners:?}");
            let sock = listeners[1]
                .strip_prefix("unix:")
                .unwrap_or_else(|| panic!("{listeners:?}"))
                .to_string();
            let mode = std::fs::metadata(&sock).expect("socket file").permissions();
            assert_eq!(mode.mode() & 0o777, 0o660, "{}", server.label);
            let mut tcp = server.connect();
            let mut unix = unix_client(sock.as_ref());
            for _ in 0..3 {
                assert_eq!(get(&mut tcp, "/").status, 200, "{}", server.label);
                let r = get(&mut unix, "/");
                assert_eq!(r.status, 200, "{}", server.label);
                assert!(r.text().contains("<html"), "{}", server.label);
            }
            let log = server.access_log();
            assert_eq!(
                log.lines().filter(|l| l.starts_with("unix - - [")).count(),
                3
            );
            assert_eq!(
                log.lines()
                    .filter(|l| l.starts_with("127.0.0.1 - - ["))
                    .count(),
                3
            );
        },
    );
    // Every server has stopped: each removed its socket file.
    let left: Vec<_> = std::fs::read_dir(&dir)
        .expect("dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".sock"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_ipv6_wildcard_takes_ipv4_too_unless_ipv4_has_its_own_listener() {
    if !ipv6_available() {
        needs::missing("IPv6 on loopback", "CI's machine has it");
        return;
    }
    let dir = temp_dir("listeners-v6");
    let mut config = crate::harness::test_config(&dir, "readiness", "spawn");
    config.listen = "[::]:0".parse().expect("addr");
    let server = Server::start(config.clone()).expect("starts");
    let port = server.local_addr().port();
    for addr in [format!("127.0.0.1:{port}"), format!("[::1]:{port}")] {
        let mut s = TcpStream::connect(&addr).expect("dual-stack connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        assert_eq!(get(&mut s, "/missing").status, 404, "{addr}");
    }
    drop(server);

    // Both wildcards on one port: [::] is then IPv6 only, and both bind.
    let probe = std::net::TcpListener::bind("0.0.0.0:0").expect("probe");
    let port = probe.local_addr().expect("addr").port();
    drop(probe);
    config.listen = ListenAddresses(vec![
        ListenAddress::parse(&format!("0.0.0.0:{port}")).expect("v4"),
        ListenAddress::parse(&format!("[::]:{port}")).expect("v6"),
    ]);
    let server = Server::start(config).expect("both wildcards bind");
    let bound: Vec<SocketAddr> = server.local_addrs().to_vec();
    assert_eq!(bound.len(), 2, "{bound:?}");
    for addr in [format!("127.0.0.1:{port}"), format!("[::1]:{port}")] {
        let mut s = TcpStream::connect(&addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        assert_eq!(get(&mut s, "/missing").status, 404, "{addr}");
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_stale_socket_file_is_replaced_and_anything_else_refused_by_name() {
    let dir = temp_dir("listeners-stale");
    std::fs::create_dir_all(dir.join("site")).expect("site");
    std::fs::write(dir.join("site/index.html"), "hi").expect("index");
    let sock = dir.join("s.sock");
    let sock_arg = format!("unix:{}", sock.display());

    // Left behind by a server that died: nobody answers, so it is replaced.
    drop(std::os::unix::net::UnixListener::bind(&sock).expect("bind"));
    let mut run = spawn(
        &dir,
        &["site", "--listen", &sock_arg, "--listen", "127.0.0.1:0"],
    );
    let line = run.started_line();
    assert!(
        line.contains(&format!("on {sock_arg} and http://127.0.0.1:")),
        "{line}"
    );
    assert_eq!(get(&mut unix_client(&sock), "/").text(), "hi");
    let tcp = address(&line);
    assert_eq!(
        get(&mut TcpStream::connect(&tcp).expect("tcp"), "/").text(),
        "hi"
    );

    // While it runs, a second server is refused the path: its socket lives.
    let mut second = spawn(&dir, &["site", "--listen", &sock_arg]);
    assert_eq!(second.exit_code(), Some(2));
    let message = second.stderr_line();
    assert!(
        message.starts_with(&format!(
            "conveyor: cannot listen on {sock_arg} (--listen): "
        )),
        "{message}"
    );
    assert!(message.contains("another process answers"), "{message}");
    assert_eq!(get(&mut unix_client(&sock), "/").text(), "hi");
    run.terminate();
    assert_eq!(run.exit_code(), Some(0));
    assert!(!sock.exists(), "the socket file outlived its server");

    // A regular file at the path is never removed.
    std::fs::write(&sock, "precious").expect("file");
    let mut third = spawn(&dir, &["site", "--listen", &sock_arg]);
    assert_eq!(third.exit_code(), Some(2));
    let message = third.stderr_line();
    assert!(
        message.contains("is not a socket; it was left alone"),
        "{message}"
    );
    assert_eq!(std::fs::read_to_string(&sock).expect("kept"), "precious");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unix_socket_mode_sets_the_permission_bits() {
    let dir = temp_dir("listeners-mode");
    let sock = dir.join("m.sock");
    let mut config = crate::harness::test_config(&dir, "reuseport", "spawn");
    config.listen = ListenAddresses(vec![ListenAddress::Unix(sock.clone())]);
    config.unix_socket_mode = 0o600;
    let server = Server::start(config).expect("starts");
    let mode = std::fs::metadata(&sock)
        .expect("socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // reuseport cannot split a Unix socket per worker: one acceptor shares it.
    assert_eq!(get(&mut unix_client(&sock), "/missing").status, 404);
    assert_eq!(server.local_addrs(), &[] as &[SocketAddr]);
    drop(server);
    assert!(!sock.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `script` with `sh` in a network namespace of its own whose IPv6 is
/// turned off (`net.ipv6.conf.all.disable_ipv6 = 1`), with `$0` the binary
/// and `$1` a site; `None` when this machine cannot make one (not root, no
/// `unshare`; see `needs`). Returns the exit code and everything printed.
fn without_ipv6(script: &str) -> Option<(Option<i32>, String)> {
    if !needs::root() || needs::find_all([&needs::UNSHARE, &needs::CURL]).is_none() {
        return None;
    }
    let site = temp_dir("listeners-no-v6");
    std::fs::write(site.join("index.html"), "hello").expect("index");
    let setup = "sysctl -qw net.ipv6.conf.all.disable_ipv6=1 || exit 97; \
                 ip link set lo up || exit 97; ";
    let out = std::process::Command::new("timeout")
        .args(["60", "unshare", "-n", "sh", "-c"])
        .arg(format!("{setup}{script}"))
        .arg(process::BIN)
        .arg(&site)
        .output()
        .expect("timeout runs");
    let _ = std::fs::remove_dir_all(&site);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    match out.status.code() {
        Some(97 | 127) => {}
        Some(1) if text.contains("unshare failed") => {}
        code => return Some((code, text)),
    }
    needs::missing(
        &format!("a network namespace with IPv6 turned off ({text})"),
        "CI runs as root on a machine that allows them",
    );
    None
}

#[test]
fn with_ipv6_turned_off_an_ipv6_listener_is_skipped_with_a_warning_or_refused_alone() {
    // With an IPv4 listener beside it: a warning, and the IPv4 one serves.
    let Some((code, text)) = without_ipv6(
        "\"$0\" \"$1\" --config /dev/null --listen '[::1]:18401' --listen 127.0.0.1:18402 & \
         pid=$!; \
         for i in $(seq 1 200); do \
           body=$(curl -s --max-time 1 http://127.0.0.1:18402/index.html) && break; \
           sleep 0.05; \
         done; \
         echo \"BODY:$body\"; kill $pid; wait $pid",
    ) else {
        return;
    };
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("BODY:hello"), "{text}");
    assert!(
        text.contains("warning: cannot listen on [::1]:18401")
            && text.contains("IPv6 is turned off")
            && text.contains("serving on the other listeners"),
        "{text}"
    );
    // Alone: nothing to serve on, so it stops at once with exit 2, saying why.
    let (code, text) = without_ipv6("exec \"$0\" \"$1\" --config /dev/null --listen '[::1]:18401'")
        .expect("the namespace worked a moment ago");
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("cannot listen on [::1]:18401") && text.contains("IPv6 is turned off"),
        "{text}"
    );
}
