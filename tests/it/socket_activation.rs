//! systemd socket activation, run for real with `systemd-socket-activate`
//! (Debian package `systemd`): the binary serves the TCP and Unix sockets
//! it is passed, by name, and the reuseport acceptor shares them.

use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::process::{spawn_command, BIN, LIMIT};
use crate::harness::{get, needs, site_dir};

/// Connects once the activator listens, within `LIMIT`.
fn connect_when_listening(addr: &str) -> TcpStream {
    let deadline = Instant::now() + LIMIT;
    loop {
        match TcpStream::connect(addr) {
            Ok(stream) => {
                stream.set_read_timeout(Some(LIMIT)).expect("timeout");
                return stream;
            }
            Err(e) if Instant::now() > deadline => panic!("{addr} never listened: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

#[test]
fn serves_the_sockets_systemd_passes_by_name() {
    let Some(activate) = needs::SOCKET_ACTIVATE.find() else {
        return;
    };
    let dir = site_dir("activation");
    let sock = dir.join("act.sock");
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("probe");
    let addr = probe.local_addr().expect("addr").to_string();
    drop(probe);

    let mut command = Command::new(activate);
    command
        .args(["-l", &addr, "-l"])
        .arg(&sock)
        .args(["--fdname=web:local", BIN, "site", "--acceptor", "reuseport"])
        // Ignored under activation: the passed sockets replace it.
        .args(["--listen", "127.0.0.1:1"])
        .current_dir(&dir);
    let mut run = spawn_command(command);

    // The activator starts the server on the first connection.
    let mut tcp = connect_when_listening(&addr);
    let first = get(&mut tcp, "/");
    assert_eq!((first.status, first.text().as_str()), (200, "hi"));
    let line = run.stderr_with("serving site on ");
    assert!(
        line.contains("on systemd socket web (fd 3) and systemd socket local (fd 4) "),
        "{line}"
    );
    run.stderr_with("socket activation: serving the 2 socket(s) systemd passed");
    let shared = run.stderr_with("reuseport: systemd socket web (fd 3) cannot be split");
    assert!(shared.contains("one acceptor shares it"), "{shared}");

    let mut unix = UnixStream::connect(&sock).expect("unix");
    unix.set_read_timeout(Some(LIMIT)).expect("timeout");
    assert_eq!(get(&mut unix, "/").text(), "hi");
    assert_eq!(get(&mut tcp, "/").text(), "hi");
    assert!(
        TcpStream::connect("127.0.0.1:1").is_err(),
        "--listen was used beside the passed sockets"
    );

    run.terminate();
    assert_eq!(run.exit_code(), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}
