//! Where the server listens (a host name, a port taken by someone else) and
//! how it stops (idle connections at once, downloads in their grace period).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use crate::harness::status::connections;
use crate::harness::{
    closed_within, copy_www, get, small_window_connect, start, temp_dir, test_config, wait_until,
};
use conveyor::config::TcpAddress;
use conveyor::server::ListenError;
use conveyor::Server;

const SOON: Duration = Duration::from_secs(5);

/// A listener of "another process": SO_REUSEPORT set or not.
fn other_listener(reuse_port: bool) -> socket2::Socket {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    socket.set_reuse_address(true).expect("SO_REUSEADDR");
    socket.set_reuse_port(reuse_port).expect("SO_REUSEPORT");
    let addr: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    socket.bind(&addr.into()).expect("bind");
    socket.listen(16).expect("listen");
    socket
}

fn start_on(acceptor: &str, addr: SocketAddr) -> std::io::Result<Server> {
    let root = temp_dir("listen");
    let mut config = test_config(&root, acceptor, "spawn");
    config.listen = TcpAddress::Addr(addr).into();
    Server::start(config)
}

#[test]
fn a_port_another_process_listens_on_is_refused_naming_the_address() {
    for reuse_port in [true, false] {
        let other = other_listener(reuse_port);
        let addr = other.local_addr().expect("addr").as_socket().expect("inet");
        for acceptor in ["reuseport", "readiness"] {
            let context = format!("{acceptor} against a listener with SO_REUSEPORT {reuse_port}");
            let e = match start_on(acceptor, addr) {
                Ok(server) => {
                    drop(server);
                    panic!("{context}: started on a port another process listens on");
                }
                Err(e) => e,
            };
            assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse, "{context}: {e}");
            let listen = e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<ListenError>())
                .unwrap_or_else(|| panic!("{context}: not a ListenError: {e}"));
            let message = listen.describe("--listen");
            assert!(
                message.starts_with(&format!("cannot listen on {addr} (--listen): ")),
                "{context}: {message}"
            );
            assert!(message.contains("another process"), "{context}: {message}");
        }
    }
}

#[test]
fn a_host_name_is_resolved_and_every_address_serves() {
    let server = start("readiness", "spawn", |c| {
        c.listen = "localhost:0".parse().expect("a host name");
    });
    let addrs = server.server().local_addrs().to_vec();
    assert!(!addrs.is_empty());
    let port = addrs[0].port();
    for addr in &addrs {
        assert!(addr.ip().is_loopback(), "{addr}");
        assert_eq!(addr.port(), port, "{addrs:?}: one port for all");
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(SOON)).expect("read timeout");
        assert_eq!(get(&mut stream, "/style.css").status, 200, "{addr}");
    }
}

#[test]
fn an_address_this_machine_lacks_is_named_with_the_fix() {
    // TEST-NET-1 (RFC 5737): never assigned to a real machine.
    let e = start_on("readiness", "192.0.2.1:8080".parse().expect("addr"))
        .err()
        .expect("no such address here");
    let message = e.to_string();
    assert!(
        message.starts_with("cannot listen on 192.0.2.1:8080"),
        "{message}"
    );
    assert!(
        message.contains("this machine has no address 192.0.2.1"),
        "{message}"
    );
}

#[test]
fn a_stop_closes_idle_keep_alive_at_once_while_a_download_has_its_grace() {
    let grace = Duration::from_millis(2500);
    for (acceptor, dispatcher) in [("readiness", "spawn"), ("reuseport", "pool")] {
        let label = format!("{acceptor}×{dispatcher}");
        let root = temp_dir("stop");
        copy_www(&root);
        std::fs::write(root.join("big.bin"), vec![7u8; 8 << 20]).expect("big.bin");
        let mut config = test_config(&root, acceptor, dispatcher);
        config.timeouts.shutdown_grace = grace;
        let server = Server::start(config).expect("starts");

        let mut idle = TcpStream::connect(server.local_addr()).expect("connect");
        idle.set_read_timeout(Some(SOON)).expect("timeout");
        assert_eq!(get(&mut idle, "/style.css").status, 200, "{label}");
        assert!(
            wait_until(SOON, || connections(&server, "idle_keepalive") == 1),
            "{label}: never idle"
        );
        // A download that stops reading after its first bytes.
        let mut download = small_window_connect(server.local_addr());
        download
            .write_all(b"GET /big.bin HTTP/1.1\r\nHost: test\r\n\r\n")
            .expect("request");
        let mut first = [0u8; 1024];
        assert!(download.read(&mut first).expect("head") > 0, "{label}");
        assert!(
            wait_until(SOON, || connections(&server, "writing") == 1),
            "{label}: the download is not mid-write"
        );

        let started = Instant::now();
        let stopper = std::thread::spawn(move || server.shutdown());
        // Well inside the grace period, which the download keeps busy.
        assert!(
            closed_within(&mut idle, grace / 2),
            "{label}: the idle connection waited for the grace period"
        );
        let stopped = stopper.join().expect("shutdown thread");
        assert!(started.elapsed() >= grace, "{label}: grace cut short");
        assert_eq!(stopped.in_flight, 1, "{label}: {stopped:?}");
        assert_eq!(stopped.cut, 1, "{label}: {stopped:?}");
        assert!(stopped.idle_closed >= 1, "{label}: {stopped:?}");
        drop(download);
        let _ = std::fs::remove_dir_all(&root);
    }
}

#[test]
fn a_plain_std_listener_blocks_a_reuseport_server_too() {
    let other = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = other.local_addr().expect("addr");
    let e = start_on("reuseport", addr).err().expect("refused");
    assert!(
        e.to_string()
            .starts_with(&format!("cannot listen on {addr}")),
        "{e}"
    );
}
