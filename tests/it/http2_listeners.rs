//! `http2.disabled_on`: HTTP/2 turned off on one listener, by its address,
//! while the others keep it. Plain: the h2c preface is not taken as HTTP/2;
//! TLS: ALPN offers only `http/1.1`.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use conveyor::config::TcpAddress;

use crate::harness::tls::{client, connect, localhost_pki, tls_addr, with_tls, BOTH};
use crate::harness::*;

/// What a plain connection gets back for the h2c preface and an empty
/// SETTINGS frame: the first bytes the server sends.
fn answer_to_preface(addr: std::net::SocketAddr) -> Vec<u8> {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .expect("send");
    let mut buf = [0u8; 64];
    let n = stream.read(&mut buf).unwrap_or(0);
    buf[..n].to_vec()
}

#[test]
fn a_listener_named_in_disabled_on_speaks_http_1_1_only() {
    let pki = localhost_pki();
    let server = start("readiness", "spawn", |c| with_tls(c, &pki));
    // Both listeners speak HTTP/2 at first: a SETTINGS frame (type 4) and
    // ALPN h2.
    let first = answer_to_preface(server.addr);
    assert_eq!(first.get(3), Some(&4), "a SETTINGS frame: {first:?}");
    let mut h2 = (*client(&pki.ders, BOTH)).clone();
    h2.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let h2 = Arc::new(h2);
    let tls = connect(tls_addr(&server), &h2, "localhost");
    assert_eq!(tls.conn.alpn_protocol(), Some(&b"h2"[..]));

    // Off on both, by address: the preface is not HTTP/1.1 either (an
    // answer, not a SETTINGS frame), and ALPN agrees on http/1.1.
    let mut config = server.server().line().config.load().as_ref().clone();
    config.http2.disabled_on = vec![
        TcpAddress::Addr(server.addr),
        TcpAddress::Addr(tls_addr(&server)),
    ];
    server.server().replace_config(config);
    let refused = answer_to_preface(server.addr);
    assert!(
        refused.starts_with(b"HTTP/1.1 "),
        "{:?}",
        String::from_utf8_lossy(&refused)
    );
    let mut tls = connect(tls_addr(&server), &h2, "localhost");
    assert_eq!(tls.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(get(&mut tls, "/index.html").status, 200);

    // Off on the TLS listener only, by port: h2c still works.
    let mut config = server.server().line().config.load().as_ref().clone();
    config.http2.disabled_on = vec![TcpAddress::Addr(
        format!("0.0.0.0:{}", tls_addr(&server).port())
            .parse()
            .expect("addr"),
    )];
    server.server().replace_config(config);
    assert_eq!(answer_to_preface(server.addr).get(3), Some(&4));
    let tls = connect(tls_addr(&server), &h2, "localhost");
    assert_eq!(tls.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
}
