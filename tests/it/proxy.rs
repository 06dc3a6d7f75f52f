//! `[proxy]` against real sockets (issue 21, security 1): the PROXY
//! protocol (v1, v2) and `X-Forwarded-For` from trusted peers name the
//! client that `status.allow` and the access log go by; untrusted peers
//! are refused or not believed. Two loopback addresses play two hosts:
//! 127.0.0.1 is the trusted proxy, 127.0.0.2 someone else.

use std::io::Write;
use std::net::{Ipv6Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::harness::*;
use conveyor::config::{AddrRange, Config, ListenAddress, ListenAddresses};

fn ranges(list: &[&str]) -> Vec<AddrRange> {
    list.iter()
        .map(|s| AddrRange::parse(s).expect("a range"))
        .collect()
}

fn v1(source: &str) -> Vec<u8> {
    format!("PROXY TCP4 {source} 127.0.0.1 40000 80\r\n").into_bytes()
}

/// A v2 PROXY (or, with no source, LOCAL) header, with a TLV to skip.
fn v2(source: Option<SocketAddr>) -> Vec<u8> {
    let mut block = Vec::new();
    let (command, family) = match source {
        None => (0x20, 0x00),
        Some(SocketAddr::V4(s)) => {
            block.extend_from_slice(&s.ip().octets());
            block.extend_from_slice(&[127, 0, 0, 1]);
            block.extend_from_slice(&s.port().to_be_bytes());
            block.extend_from_slice(&80u16.to_be_bytes());
            (0x21, 0x11)
        }
        Some(SocketAddr::V6(s)) => {
            block.extend_from_slice(&s.ip().octets());
            block.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
            block.extend_from_slice(&s.port().to_be_bytes());
            block.extend_from_slice(&80u16.to_be_bytes());
            (0x21, 0x21)
        }
    };
    // PP2_TYPE_UNIQUE_ID, as HAProxy's `proxy-v2-options unique-id` sends.
    block.extend_from_slice(&[0x05, 0x00, 0x04, b'i', b'd', b'-', b'1']);
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.push(command);
    h.push(family);
    h.extend_from_slice(&(block.len() as u16).to_be_bytes());
    h.extend_from_slice(&block);
    h
}

fn status_on(stream: &mut TcpStream, path: &str) -> u16 {
    get(stream, path).status
}

fn log_file(dir: &Path, config: &Config) -> PathBuf {
    dir.join(format!(
        "log-{:?}-{:?}",
        config.stages.acceptor, config.stages.dispatcher
    ))
}

/// Whether the server closes `stream` without answering.
fn closed_unanswered(stream: &mut TcpStream) -> bool {
    let (bytes, closed) = read_until_closed(stream, Duration::from_secs(5));
    closed && bytes.is_empty()
}

#[test]
fn proxy_headers_from_a_trusted_peer_name_the_client() {
    let dir = temp_dir("proxy-protocol");
    each_server(
        |c| {
            c.proxy.trusted = ranges(&["127.0.0.1"]);
            c.proxy.protocol = true;
            c.status_access.allow = ranges(&["192.0.2.7", "2001:db8::7"]);
            c.log.access_log = true;
            c.log.access_log_path = log_file(&dir, c).display().to_string();
        },
        |server| {
            let label = &server.label;
            // v1, the header and the request in one write.
            let mut s = connect_from("127.0.0.1", server.addr);
            let mut first = v1("192.0.2.7");
            first.extend_from_slice(b"GET /status HTTP/1.1\r\nHost: t\r\n\r\n");
            s.write_all(&first).expect("send");
            assert_eq!(read_response(&mut s).status, 200, "{label}");
            // The header names the client for the connection's life.
            assert_eq!(status_on(&mut s, "/status"), 200, "{label}");
            // v1 from another client, the header dribbled in.
            let mut s = connect_from("127.0.0.1", server.addr);
            let header = v1("198.51.100.1");
            s.write_all(&header[..10]).expect("send");
            std::thread::sleep(Duration::from_millis(50));
            s.write_all(&header[10..]).expect("send");
            assert_eq!(status_on(&mut s, "/status"), 403, "{label}");
            assert_eq!(status_on(&mut s, "/index.html"), 200, "{label}");
            // v2, TCP4 and TCP6, with a TLV skipped.
            for (source, want) in [
                ("192.0.2.7:5000", 200),
                ("198.51.100.1:5000", 403),
                ("[2001:db8::7]:5000", 200),
                ("[2001:db8::8]:5000", 403),
            ] {
                let mut s = connect_from("127.0.0.1", server.addr);
                s.write_all(&v2(Some(source.parse().expect("addr"))))
                    .expect("send");
                assert_eq!(status_on(&mut s, "/status"), want, "{label} {source}");
            }
            // LOCAL (a health check): the proxy itself, not in status.allow.
            let mut s = connect_from("127.0.0.1", server.addr);
            s.write_all(&v2(None)).expect("send");
            assert_eq!(status_on(&mut s, "/status"), 403, "{label}");
            assert_eq!(status_on(&mut s, "/readyz"), 200, "{label}");
            let log = server.access_log();
            for (client, lines) in [("192.0.2.7", 3), ("198.51.100.1", 3), ("127.0.0.1", 2)] {
                let logged = log
                    .lines()
                    .filter(|l| l.starts_with(&format!("{client} - - [")))
                    .count();
                assert_eq!(logged, lines, "{label} {client}:\n{log}");
            }
            assert!(log.contains("\n2001:db8::7 - - ["), "{label}:\n{log}");
        },
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn untrusted_peers_and_bad_headers_are_closed_unanswered() {
    each_server(
        |c| {
            c.proxy.trusted = ranges(&["127.0.0.1"]);
            c.proxy.protocol = true;
            c.timeouts.header_read = Duration::from_millis(500);
        },
        |server| {
            let label = &server.label;
            // An untrusted peer, however good its header.
            for header in [v1("127.0.0.1"), v2(Some("127.0.0.1:1".parse().expect("a")))] {
                let mut s = connect_from("127.0.0.2", server.addr);
                let _ = s.write_all(&header);
                let _ = s.write_all(b"GET /status HTTP/1.1\r\nHost: t\r\n\r\n");
                assert!(closed_unanswered(&mut s), "{label}");
            }
            // A trusted peer without a header, or with a bad one.
            for bad in [
                &b"GET /status HTTP/1.1\r\nHost: t\r\n\r\n"[..],
                b"PROXY TCP4 192.0.2.7 127.0.0.1 1 80\n",
                b"PROXY TCP4 192.0.2.7 999.0.0.1 1 80\r\n",
                b"\r\n\r\n\0\r\nQUIT\n\x21\x11\xff\xff",
            ] {
                let mut s = connect_from("127.0.0.1", server.addr);
                let _ = s.write_all(bad);
                assert!(closed_unanswered(&mut s), "{label} {bad:?}");
            }
            // A trusted peer that stops half way: closed at header_read.
            let mut s = connect_from("127.0.0.1", server.addr);
            s.write_all(b"PROXY TCP4 192.0").expect("send");
            assert!(closed_unanswered(&mut s), "{label}");
            // The server serves on.
            let mut s = connect_from("127.0.0.1", server.addr);
            s.write_all(&v1("192.0.2.9")).expect("send");
            assert_eq!(status_on(&mut s, "/index.html"), 200, "{label}");
        },
    );
}

fn xff(stream: &mut TcpStream, path: &str, lines: &str) -> u16 {
    write!(stream, "GET {path} HTTP/1.1\r\nHost: t\r\n{lines}\r\n").expect("send");
    read_response(stream).status
}

#[test]
fn forwarded_for_from_trusted_peers_names_the_rightmost_untrusted_address() {
    let dir = temp_dir("proxy-xff");
    each_server(
        |c| {
            c.proxy.trusted = ranges(&["127.0.0.1", "10.0.0.0/8"]);
            c.log.access_log = true;
            c.log.access_log_path = log_file(&dir, c).display().to_string();
        },
        |server| {
            let label = &server.label;
            let mut s = connect_from("127.0.0.1", server.addr);
            // status.allow is loopback (the default): a client through the
            // proxy is not, whatever the proxy's own address.
            let outside = "X-Forwarded-For: 203.0.113.5\r\n";
            assert_eq!(xff(&mut s, "/status", outside), 403, "{label}");
            assert_eq!(xff(&mut s, "/status", ""), 200, "{label}");
            for (lines, want) in [
                ("X-Forwarded-For: 127.0.0.9, 10.1.1.1\r\n", 200),
                // The client's own claim is left of the untrusted address.
                ("X-Forwarded-For: 127.0.0.1, 203.0.113.5, 10.1.1.1\r\n", 403),
                // HAProxy adds its own line after the client's.
                (
                    "X-Forwarded-For: 127.0.0.1\r\nX-Forwarded-For: 203.0.113.5\r\n",
                    403,
                ),
                ("x-forwarded-for: 10.2.2.2\r\nX-Forwarded-For: ::1\r\n", 200),
                ("X-Forwarded-For: unknown\r\n", 403),
            ] {
                assert_eq!(xff(&mut s, "/status", lines), want, "{label} {lines:?}");
            }
            // From an untrusted peer the field is not believed.
            let mut other = connect_from("127.0.0.2", server.addr);
            let claim = "X-Forwarded-For: 127.0.0.1\r\n";
            assert_eq!(xff(&mut other, "/status", claim), 200, "{label} loopback");
            assert_eq!(xff(&mut other, "/index.html", outside), 200, "{label}");
            let log = server.access_log();
            let from = |client: &str| {
                log.lines()
                    .filter(|l| l.starts_with(&format!("{client} - - [")))
                    .count()
            };
            assert_eq!(from("203.0.113.5"), 3, "{label}:\n{log}");
            assert_eq!(from("127.0.0.2"), 2, "{label}:\n{log}");
            assert_eq!(from("-"), 1, "{label}:\n{log}");
        },
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn forwarded_for_decides_status_allow_both_ways() {
    let server = start("readiness", "spawn", |c| {
        c.proxy.trusted = ranges(&["127.0.0.1"]);
        c.status_access.allow = ranges(&["::ffff:192.0.2.0/120"]);
    });
    let mut s = connect_from("127.0.0.1", server.addr);
    assert_eq!(xff(&mut s, "/status", ""), 403);
    for path in ["/status", "/status?format=prometheus", "/status/dashboard"] {
        let admitted = "X-Forwarded-For: 192.0.2.77\r\n";
        assert_eq!(xff(&mut s, path, admitted), 200, "{path}");
        let refused = "X-Forwarded-For: 192.0.3.1\r\n";
        assert_eq!(xff(&mut s, path, refused), 403, "{path}");
    }
}

#[test]
fn status_allow_admits_unix_peers_by_name() {
    let dir = temp_dir("proxy-unix");
    for (allow, want) in [(&["unix"][..], 200), (&["127.0.0.0/8", "::1"][..], 403)] {
        let sock = dir.join(format!("{want}.sock"));
        let server = start("readiness", "spawn", |c| {
            c.listen = ListenAddresses(vec![
                ListenAddress::parse("127.0.0.1:0").expect("addr"),
                ListenAddress::Unix(sock.clone()),
            ]);
            c.status_access.allow = ranges(allow);
        });
        let mut unix = std::os::unix::net::UnixStream::connect(&sock).expect("unix connect");
        assert_eq!(get(&mut unix, "/status").status, want, "{allow:?}");
        let mut tcp = server.connect();
        let tcp_want = if want == 200 { 403 } else { 200 };
        assert_eq!(get(&mut tcp, "/status").status, tcp_want, "{allow:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_refused_proxy_is_named_on_stderr_and_bad_settings_stop_start_up() {
    let dir = temp_dir("proxy-process");
    copy_www(&dir.join("www"));
    let config = "listen = \"127.0.0.1:0\"\nroot = \"www\"\n[proxy]\nprotocol = true\n";
    std::fs::write(dir.join("bad.toml"), config).expect("write");
    let out = std::process::Command::new(process::BIN)
        .args(["--config", "bad.toml"])
        .current_dir(&dir)
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("proxy.trusted = []"), "{text}");

    let config = format!("{config}trusted = [\"127.0.0.2\"]\n");
    std::fs::write(dir.join("c.toml"), config).expect("write");
    let (run, addr) = process::spawn_on_config(&dir);
    let mut s = connect_from("127.0.0.1", addr.parse().expect("addr"));
    let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(closed_unanswered(&mut s));
    let said = run.stderr_with("closed a connection");
    assert!(
        said.contains("from 127.0.0.1: proxy.protocol is on and 127.0.0.1 is not in proxy.trusted"),
        "{said}"
    );
    run.terminate();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_unix_listener_takes_the_proxy_protocol_when_unix_is_trusted() {
    let dir = temp_dir("proxy-unix-protocol");
    let sock = dir.join("p.sock");
    let server = start("readiness", "pool", |c| {
        c.listen = ListenAddresses(vec![
            ListenAddress::parse("127.0.0.1:0").expect("addr"),
            ListenAddress::Unix(sock.clone()),
        ]);
        c.proxy.trusted = ranges(&["unix"]);
        c.proxy.protocol = true;
        c.status_access.allow = ranges(&["192.0.2.7"]);
        c.log.access_log = true;
        c.log.access_log_path = dir.join("access.log").display().to_string();
    });
    for (client, want) in [("192.0.2.7", 200), ("192.0.2.8", 403)] {
        let mut unix = std::os::unix::net::UnixStream::connect(&sock).expect("unix connect");
        unix.write_all(&v1(client)).expect("send");
        assert_eq!(get(&mut unix, "/status").status, want, "{client}");
    }
    // A v2 header whose client came over a Unix socket is "unix".
    let mut unix = std::os::unix::net::UnixStream::connect(&sock).expect("unix connect");
    let mut header = b"\r\n\r\n\0\r\nQUIT\n\x21\x31\x00\xd8".to_vec();
    header.resize(16 + 216, 0);
    unix.write_all(&header).expect("send");
    assert_eq!(get(&mut unix, "/status").status, 403, "not in status.allow");
    let log = server.access_log();
    let starts: Vec<&str> = log.lines().filter_map(|l| l.split(' ').next()).collect();
    assert_eq!(starts, ["192.0.2.7", "192.0.2.8", "unix"], "{log}");
    // TCP from 127.0.0.1 is not trusted here.
    let mut tcp = connect_from("127.0.0.1", server.addr);
    let _ = tcp.write_all(&v1("192.0.2.7"));
    assert!(closed_unanswered(&mut tcp));
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_mapped_entry_in_status_allow_matches_the_ipv4_peer() {
    let server = start("readiness", "spawn", |c| {
        c.status_access.allow = ranges(&["::ffff:127.0.0.1"]);
    });
    let mut s = connect_from("127.0.0.1", server.addr);
    assert_eq!(status_on(&mut s, "/status"), 200);
    let mut s = connect_from("127.0.0.2", server.addr);
    assert_eq!(status_on(&mut s, "/status"), 403);
}
