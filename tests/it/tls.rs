//! HTTPS: certificates made at test time (rcgen), a real TLS client
//! (rustls), real sockets. The line's features over TLS for every
//! acceptor × dispatcher, TLS 1.2 and 1.3, resumption, SNI, ALPN, plain
//! HTTP on the TLS port, stalled and truncated handshakes and records,
//! certificate reload, the HTTPS redirect, and bounded memory under a long
//! echo.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::harness::status::{parse, status, Figures};
use crate::harness::tls::*;
use crate::harness::{
    closed_within, each_server, get, process, raw, read_response, read_response_with, rss_bytes,
    start, temp_dir, wait_until, TestServer,
};
use conveyor::config::Config;
use conveyor::tls::CertificateFiles;

use rustls::{HandshakeKind, ProtocolVersion};

/// A number from the `"tls"` object of `/status`.
fn tls_figure(server: &TestServer, key: &str) -> i64 {
    status(server).at("tls").at(key).int()
}

#[test]
fn keep_alive_pipelining_echo_and_files_over_tls_for_every_stage_combination() {
    let pki = localhost_pki();
    let config = client(&pki.ders, BOTH);
    each_server(
        |c| with_tls(c, &pki),
        |server| {
            let label = &server.label;
            let mut tls = connect(tls_addr(server), &config, "localhost");
            assert_eq!(tls.conn.alpn_protocol(), Some(&b"http/1.1"[..]), "{label}");
            // Keep-alive: two requests, one connection.
            for _ in 0..2 {
                let response = get(&mut tls, "/index.html");
                assert_eq!(response.status, 200, "{label}");
                let file = std::fs::read(server.root.join("index.html")).expect("file");
                assert_eq!(response.body, file, "{label}");
            }
            // Pipelining: three requests in one write, three answers in order.
            tls.write_all(
                b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\nGET /echo HTTP/1.1\r\nHost: b\r\n\r\nGET /echo HTTP/1.1\r\nHost: c\r\n\r\n",
            )
            .expect("send");
            let mut carry = Vec::new();
            for host in ["a", "b", "c"] {
                let response = read_response_with(&mut tls, &mut carry, false);
                assert_eq!(response.status, 200, "{label}");
                assert!(
                    response.text().contains(&format!("Host: {host}")),
                    "{label}"
                );
            }
            // A body streamed back, chunked in and out.
            tls.write_all(
                b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
            )
            .expect("send");
            let response = read_response(&mut tls);
            assert_eq!(
                (response.status, response.text().as_str()),
                (200, "hello world"),
                "{label}"
            );
            // A file large enough for sendfile on plain sockets, read in
            // pieces through the session here; a range of it too.
            let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
            std::fs::write(server.root.join("big.bin"), &big).expect("write");
            let response = get(&mut tls, "/big.bin");
            assert_eq!(response.status, 200, "{label}");
            assert!(response.body == big, "{label}: big.bin differs over TLS");
            write!(
                tls,
                "GET /big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=1000000-1999999\r\n\r\n"
            )
            .expect("send");
            let response = read_response(&mut tls);
            assert_eq!(response.status, 206, "{label}");
            assert!(
                response.body == big[1_000_000..2_000_000],
                "{label}: range differs"
            );
            // The plain listener still serves plain HTTP.
            let plain = raw(
                server.addr,
                b"GET /index.html HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
            );
            assert_eq!(plain.status, 200, "{label}");
            assert!(tls_figure(server, "handshakes_completed") >= 1, "{label}");
        },
    );
}

/// The static-file features behave over TLS as over plain TCP, on every
/// stage combination: compression and its negotiation, validators and
/// conditional requests, HEAD, a directory without its slash, and a 404.
#[test]
fn static_file_features_work_unchanged_over_tls_for_every_stage_combination() {
    let pki = localhost_pki();
    let config = client(&pki.ders, BOTH);
    each_server(
        |c| with_tls(c, &pki),
        |server| {
            let label = &server.label;
            let css = std::fs::read(server.root.join("style.css")).expect("file");
            let mut tls = connect(tls_addr(server), &config, "localhost");
            // Compressed once into the cache, negotiated per request. A
            // request that finds the compression still running after
            // 500 ms (a loaded machine) gets the file as it is meanwhile.
            let mut gzipped = None;
            let compressed = wait_until(Duration::from_secs(20), || {
                write!(
                    tls,
                    "GET /style.css HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip\r\n\r\n"
                )
                .expect("send");
                let response = read_response(&mut tls);
                assert_eq!(response.status, 200, "{label}");
                let done = response.header("content-encoding") == Some("gzip");
                gzipped = Some(response);
                done
            });
            assert!(compressed, "{label}: never gzip");
            let gzipped = gzipped.expect("a response");
            assert_eq!(gzipped.header("vary"), Some("Accept-Encoding"), "{label}");
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(&gzipped.body[..])
                .read_to_end(&mut plain)
                .expect("gunzip");
            assert!(plain == css, "{label}: gzip body differs over TLS");
            // The identity one: its own ETag, and a 304 for it.
            let identity = get(&mut tls, "/style.css");
            assert!(identity.body == css, "{label}");
            let etag = identity.header("etag").expect("etag").to_string();
            assert_ne!(Some(etag.as_str()), gzipped.header("etag"), "{label}");
            write!(
                tls,
                "GET /style.css HTTP/1.1\r\nHost: t\r\nIf-None-Match: {etag}\r\n\r\n"
            )
            .expect("send");
            let not_modified = read_response(&mut tls);
            assert_eq!(not_modified.status, 304, "{label}");
            assert!(not_modified.body.is_empty(), "{label}");
            // HEAD: the head only, with the length of the body it stands for.
            write!(tls, "HEAD /style.css HTTP/1.1\r\nHost: t\r\n\r\n").expect("send");
            let mut carry = Vec::new();
            let head = read_response_with(&mut tls, &mut carry, true);
            let length = css.len().to_string();
            assert_eq!(
                head.header("content-length"),
                Some(length.as_str()),
                "{label}"
            );
            assert!(head.body.is_empty(), "{label}");
            // A directory named without its slash is redirected; a miss is 404.
            let redirect = read_after(&mut tls, &mut carry, "/docs");
            assert_eq!(redirect.status, 301, "{label}");
            assert_eq!(redirect.header("location"), Some("/docs/"), "{label}");
            let missing = read_after(&mut tls, &mut carry, "/no-such-file");
            assert_eq!(missing.status, 404, "{label}");
        },
    );
}

/// `GET path` on `tls`, the answer read after what `carry` holds.
fn read_after(tls: &mut TlsStream, carry: &mut Vec<u8>, path: &str) -> crate::harness::Response {
    write!(tls, "GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").expect("send");
    read_response_with(tls, carry, false)
}

#[test]
fn tls_1_2_and_1_3_both_negotiate_with_alpn_http_1_1() {
    let pki = localhost_pki();
    let server = start("readiness", "spawn", |c| with_tls(c, &pki));
    for (version, expected) in [
        (&rustls::version::TLS13, ProtocolVersion::TLSv1_3),
        (&rustls::version::TLS12, ProtocolVersion::TLSv1_2),
    ] {
        let config = client(&pki.ders, &[version]);
        let mut tls = connect(tls_addr(&server), &config, "localhost");
        assert_eq!(tls.conn.protocol_version(), Some(expected));
        assert_eq!(tls.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
        assert_eq!(get(&mut tls, "/index.html").status, 200);
    }
}

#[test]
fn a_client_offering_only_h2_gets_h2_and_one_offering_http_1_1_keeps_it() {
    let pki = localhost_pki();
    let server = start("readiness", "spawn", |c| with_tls(c, &pki));
    let mut config = (*client(&pki.ders, BOTH)).clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tls = connect(tls_addr(&server), &Arc::new(config), "localhost");
    assert_eq!(tls.conn.alpn_protocol(), Some(&b"h2"[..]));
    let mut config = (*client(&pki.ders, BOTH)).clone();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let tls = connect(tls_addr(&server), &Arc::new(config), "localhost");
    assert_eq!(
        tls.conn.alpn_protocol(),
        Some(&b"h2"[..]),
        "h2 is preferred"
    );
    let server = start("readiness", "spawn", |c| {
        with_tls(c, &pki);
        c.http2.tls = false;
    });
    let mut config = (*client(&pki.ders, BOTH)).clone();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let mut tls = connect(tls_addr(&server), &Arc::new(config), "localhost");
    assert_eq!(
        tls.conn.alpn_protocol(),
        Some(&b"http/1.1"[..]),
        "http2.tls off"
    );
    assert_eq!(get(&mut tls, "/index.html").status, 200);
}

#[test]
fn a_second_connection_resumes_the_session_with_tls_1_3_tickets_and_1_2_ids() {
    let pki = localhost_pki();
    let server = start("readiness", "spawn", |c| with_tls(c, &pki));
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let config = client(&pki.ders, &[version]);
        let mut first = connect(tls_addr(&server), &config, "localhost");
        assert_eq!(first.conn.handshake_kind(), Some(HandshakeKind::Full));
        // A request makes the client read the ticket sent after the handshake.
        assert_eq!(get(&mut first, "/index.html").status, 200);
        let mut second = connect(tls_addr(&server), &config, "localhost");
        assert_eq!(
            second.conn.handshake_kind(),
            Some(HandshakeKind::Resumed),
            "{version:?}"
        );
        assert_eq!(get(&mut second, "/index.html").status, 200);
    }
    assert!(wait_until(Duration::from_secs(10), || tls_figure(
        &server,
        "handshakes_resumed"
    ) >= 2));
    assert!(
        server.status_json().contains("\"resumption_ratio\":0.5"),
        "{}",
        server.status_json()
    );
}

#[test]
fn sni_picks_the_certificate_for_the_name_and_the_default_otherwise() {
    let mut pki = Pki::new();
    pki.make(&["a.test"], &["a.test"]);
    pki.make(&["b.test", "x.wild.test"], &["b.test", "*.wild.test"]);
    pki.make(&["fallback.test"], &[]);
    let server = start("readiness", "spawn", |c| with_tls(c, &pki));
    let config = client(&pki.ders, BOTH);
    for (name, expected) in [
        ("a.test", 0),
        ("b.test", 1),
        ("x.wild.test", 1),
        ("fallback.test", 2),
    ] {
        let mut tls = connect(tls_addr(&server), &config, name);
        let served = &tls.conn.peer_certificates().expect("certificates")[0];
        assert_eq!(served, &pki.ders[expected], "{name}");
        assert_eq!(get(&mut tls, "/index.html").status, 200);
    }
}

#[test]
fn plain_http_on_the_tls_port_gets_a_plain_400_and_the_close() {
    let pki = localhost_pki();
    let server = start("readiness", "spawn", |c| with_tls(c, &pki));
    let mut stream = TcpStream::connect(tls_addr(&server)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("send");
    let response = read_response(&mut stream);
    assert_eq!(response.status, 400);
    assert!(response.text().contains("https://"), "{}", response.text());
    assert!(closed_within(&mut stream, Duration::from_secs(10)));
    assert_eq!(tls_figure(&server, "plain_http_refused"), 1);
}

/// For a failure message: where the server holds its connections (the
/// handshake queues and their counts, the connection gauges) and what each
/// worker's scheduler has done (a wake waiting in `injected_pending`, no
/// `timer_fires`), so one failure in CI says which stage kept a connection.
fn where_the_line_stands(server: &TestServer) -> String {
    let report = status(server);
    // The scheduler's figures come from a worker: asked over HTTP.
    let scheduler = (|| -> std::io::Result<String> {
        let mut http = TcpStream::connect(server.addr)?;
        http.set_read_timeout(Some(Duration::from_secs(5)))?;
        http.write_all(b"GET /status HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")?;
        let mut text = String::new();
        http.read_to_string(&mut text)?;
        let body = text.split_once("\r\n\r\n").map_or("", |(_, body)| body);
        Ok(parse(body).at("scheduler").to_string())
    })()
    .unwrap_or_else(|e| format!("not read: {e}"));
    format!(
        "server: tls {}; connections {}; scheduler {scheduler}",
        report.at("tls"),
        report.at("connections"),
    )
}

#[test]
fn a_client_that_stalls_mid_handshake_is_dropped_at_the_header_timeout() {
    let pki = localhost_pki();
    let server = start("readiness", "spawn", |c| {
        with_tls(c, &pki);
        c.timeouts.header_read = Duration::from_secs(3);
    });
    let mut stream = TcpStream::connect(tls_addr(&server)).expect("connect");
    // A handshake record header promising 512 bytes, then nothing.
    stream
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .expect("send");
    let started = Instant::now();
    // Meanwhile the stalled handshake holds up no one: a full handshake
    // and a request, on the same worker count, complete.
    let config = client(&pki.ders, BOTH);
    let mut tls = connect(tls_addr(&server), &config, "localhost");
    assert_eq!(get(&mut tls, "/index.html").status, 200);
    let served_while_stalled = started.elapsed();
    assert!(
        closed_within(&mut stream, Duration::from_secs(20)),
        "a stalled handshake must be dropped; still open {:?} after it stalled \
         (the other client was served after {served_while_stalled:?}); {}",
        started.elapsed(),
        where_the_line_stands(&server)
    );
    let dropped_after = started.elapsed();
    assert!(
        served_while_stalled < Duration::from_millis(2500),
        "the other client waited for the stalled one: {served_while_stalled:?}"
    );
    assert!(
        dropped_after >= Duration::from_millis(2500),
        "dropped before the timeout: {dropped_after:?}"
    );
    assert!(wait_until(Duration::from_secs(10), || tls_figure(
        &server,
        "handshakes_failed"
    ) >= 1));
    // The stage is still there for the next client.
    let mut tls = connect(tls_addr(&server), &config, "localhost");
    assert_eq!(get(&mut tls, "/index.html").status, 200);
}

#[test]
fn a_truncated_or_forged_record_closes_that_connection_only() {
    let pki = localhost_pki();
    let server = start("readiness", "spawn", |c| with_tls(c, &pki));
    let config = client(&pki.ders, BOTH);
    // Truncated: half a record, then the client's end of the stream.
    let tls = connect(tls_addr(&server), &config, "localhost");
    let (_, mut sock) = tls.into_parts();
    sock.write_all(&[0x17, 0x03, 0x03, 0x01, 0x00, 0xaa, 0xbb])
        .expect("send");
    sock.shutdown(std::net::Shutdown::Write).expect("shutdown");
    assert!(
        closed_within(&mut sock, Duration::from_secs(10)),
        "a truncated record must close the connection"
    );
    // Forged: a whole application-data record that does not decrypt (TLS
    // 1.2, whose alerts keep their record type when encrypted).
    let tls12 = client(&pki.ders, &[&rustls::version::TLS12]);
    let tls = connect(tls_addr(&server), &tls12, "localhost");
    let (_, mut sock) = tls.into_parts();
    let mut record = vec![0x17, 0x03, 0x03, 0x00, 0x40];
    record.extend([0x5a; 0x40]);
    sock.write_all(&record).expect("send");
    let mut seen = Vec::new();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let _ = sock.read_to_end(&mut seen);
    // The server answers with an alert record (type 21), then closes.
    assert_eq!(
        seen.first(),
        Some(&0x15),
        "expected a TLS alert, got {seen:?}"
    );
    // Everyone else is served as before.
    let mut tls = connect(tls_addr(&server), &config, "localhost");
    assert_eq!(get(&mut tls, "/index.html").status, 200);
}

#[test]
fn new_certificates_load_without_dropping_connections_and_a_bad_one_keeps_the_old() {
    let mut pki = Pki::new();
    pki.make(&["localhost"], &[]);
    let server = start("readiness", "spawn", |c| with_tls(c, &pki));
    let stage = server.server().tls().expect("a handshake stage");
    let before = client(&pki.ders[..1], BOTH);
    let mut open = connect(tls_addr(&server), &before, "localhost");
    assert_eq!(get(&mut open, "/index.html").status, 200);

    // A bad file: refused with its name, the old certificate still served.
    let missing = CertificateFiles {
        cert: pki.dir.join("missing.pem"),
        key: pki.files[0].key.clone(),
        names: Vec::new(),
    };
    let error = stage
        .reload(&[missing])
        .expect_err("a missing file must be refused");
    assert!(error.to_string().contains("missing.pem"), "{error}");
    let mut still = connect(tls_addr(&server), &before, "localhost");
    assert_eq!(get(&mut still, "/index.html").status, 200);

    // A key that is not the certificate's: refused, naming both.
    let other = pki.make(&["localhost"], &[]);
    let mismatched = CertificateFiles {
        cert: pki.files[0].cert.clone(),
        key: other.key.clone(),
        names: Vec::new(),
    };
    let error = stage
        .reload(&[mismatched])
        .expect_err("a mismatched key must be refused");
    assert!(error.to_string().contains("does not match"), "{error}");

    // A good new certificate: new handshakes get it; the open connection lives on.
    stage.reload(&[other]).expect("reload");
    let after = client(&pki.ders[1..2], BOTH);
    let mut fresh = connect(tls_addr(&server), &after, "localhost");
    assert_eq!(
        &fresh.conn.peer_certificates().expect("certs")[0],
        &pki.ders[1]
    );
    assert_eq!(get(&mut fresh, "/index.html").status, 200);
    assert_eq!(
        get(&mut open, "/index.html").status,
        200,
        "the open connection survives the reload"
    );
}

#[test]
fn redirect_http_sends_plain_clients_to_the_https_url_with_a_308() {
    let pki = localhost_pki();
    let server = start("readiness", "spawn", |c| {
        with_tls(c, &pki);
        c.tls.redirect_http = true;
    });
    let port = tls_addr(&server).port();
    let response = raw(
        server.addr,
        b"GET /a/b?c=d HTTP/1.1\r\nHost: localhost:8080\r\n\r\n",
    );
    assert_eq!(response.status, 308);
    assert_eq!(response.reason, "Permanent Redirect");
    assert_eq!(
        response.header("Location"),
        Some(format!("https://localhost:{port}/a/b?c=d").as_str())
    );
    // Over TLS the same request is served.
    let config = client(&pki.ders, BOTH);
    let mut tls = connect(tls_addr(&server), &config, "localhost");
    assert_eq!(get(&mut tls, "/index.html").status, 200);
}

#[test]
fn hsts_comes_from_a_header_rule() {
    let pki = localhost_pki();
    let server = start("readiness", "spawn", |c| {
        with_tls(c, &pki);
        let parsed = Config::from_toml_str(
            "[[headers]]\npath = \"**\"\nset = { Strict-Transport-Security = \"max-age=31536000\" }\nerrors = true\n",
        )
        .expect("rules");
        c.static_files.headers = parsed.static_files.headers;
    });
    let config = client(&pki.ders, BOTH);
    let mut tls = connect(tls_addr(&server), &config, "localhost");
    let response = get(&mut tls, "/index.html");
    assert_eq!(
        response.header("Strict-Transport-Security"),
        Some("max-age=31536000")
    );
}

#[test]
fn a_long_echo_over_tls_runs_in_constant_memory() {
    // 1 GiB each way, as the issue asks: 32 times the bound below, so a
    // copy of the body anywhere would show. (The crypto crates are built
    // optimised in test builds too: see [profile.dev.package] in Cargo.toml.)
    const TOTAL: usize = 1 << 30;
    const PIECE: usize = 256 << 10;
    if !process::alone(
        module_path!(),
        "a_long_echo_over_tls_runs_in_constant_memory",
    ) {
        return;
    }
    let pki = localhost_pki();
    let server = start("readiness", "spawn", |c| {
        with_tls(c, &pki);
        c.limits.max_echo_body = u64::MAX;
    });
    let config = client(&pki.ders, BOTH);
    // Warm up: the runtime, buffers and thread stacks are in place before
    // the baseline is taken.
    let mut warm = connect(tls_addr(&server), &config, "localhost");
    write!(
        warm,
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {PIECE}\r\n\r\n"
    )
    .expect("head");
    warm.write_all(&vec![7u8; PIECE]).expect("body");
    assert_eq!(read_response(&mut warm).body.len(), PIECE);
    let mut tls = connect(tls_addr(&server), &config, "localhost");
    write!(
        tls,
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {TOTAL}\r\n\r\n"
    )
    .expect("head");
    let piece: Vec<u8> = (0..PIECE).map(|i| (i % 253) as u8).collect();
    let mut carry = Vec::new();
    // Read the response head once the first piece is echoed.
    tls.write_all(&piece).expect("send");
    let head_end = loop {
        let mut buf = [0u8; 16384];
        let n = tls.read(&mut buf).expect("read");
        assert!(n > 0, "closed early");
        carry.extend_from_slice(&buf[..n]);
        if let Some(end) = carry.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
    };
    assert!(
        carry.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&carry[..head_end])
    );
    carry.drain(..head_end);
    let baseline = rss_bytes() / 1024;
    let mut peak = baseline;
    let mut echoed = carry.len();
    let mut sent = PIECE;
    let mut buf = vec![0u8; 65536];
    while echoed < TOTAL {
        if sent < TOTAL && sent - echoed < 4 * PIECE {
            tls.write_all(&piece).expect("send");
            sent += PIECE;
            continue;
        }
        let n = tls.read(&mut buf).expect("read echo");
        assert!(n > 0, "closed after {echoed} bytes");
        // The body is `piece` over and over: compare slice by slice.
        let mut checked = 0;
        while checked < n {
            let at = (echoed + checked) % PIECE;
            let len = (PIECE - at).min(n - checked);
            assert!(
                buf[checked..checked + len] == piece[at..at + len],
                "echoed bytes differ near offset {}",
                echoed + checked
            );
            checked += len;
        }
        echoed += n;
        if echoed % (16 << 20) < n {
            peak = peak.max(rss_bytes() / 1024);
        }
    }
    peak = peak.max(rss_bytes() / 1024);
    let grown = peak.saturating_sub(baseline);
    eprintln!(
        "{} MiB echoed over TLS: RSS {baseline} -> peak {peak} KiB",
        TOTAL >> 20
    );
    assert!(
        grown < 32 * 1024,
        "resident memory grew {grown} KiB while echoing {TOTAL} bytes"
    );
}

/// The binary refuses a certificate it cannot use: exit 2, naming the file.
#[test]
fn bad_certificate_files_stop_start_up_with_exit_2_naming_the_file() {
    let pki = localhost_pki();
    let garbage = pki.dir.join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").expect("write");
    let run = |cert: &Path, key: &Path| {
        let out = std::process::Command::new(process::BIN)
            .args([
                "--config",
                "/dev/null",
                "--listen",
                "127.0.0.1:0",
                "--tls-cert",
            ])
            .arg(cert)
            .arg("--tls-key")
            .arg(key)
            .output()
            .expect("run conveyor");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stderr) = run(&pki.dir.join("nope.pem"), &pki.files[0].key);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("nope.pem") && stderr.contains("cannot read"),
        "{stderr}"
    );
    let (code, stderr) = run(&garbage, &pki.files[0].key);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("garbage.pem") && stderr.contains("no PEM certificate"),
        "{stderr}"
    );
    let (code, stderr) = run(&pki.files[0].cert, &garbage);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("garbage.pem"), "{stderr}");
}

#[test]
fn an_idle_tls_connection_wakes_for_its_next_request_and_closes_at_the_idle_timeout() {
    let pki = localhost_pki();
    let server = start("readiness", "spawn", |c| {
        with_tls(c, &pki);
        c.timeouts.keepalive_idle = Duration::from_secs(1);
    });
    let config = client(&pki.ders, BOTH);
    let mut tls = connect(tls_addr(&server), &config, "localhost");
    assert_eq!(get(&mut tls, "/index.html").status, 200);
    // Parked idle in the reactor (no read buffer), then woken by the next one.
    assert!(wait_until(Duration::from_secs(10), || server
        .status_json()
        .contains("\"idle_keepalive\":1")));
    assert_eq!(get(&mut tls, "/index.html").status, 200);
    // Silent past keepalive_idle: closed, with a close notice (a clean end).
    let started = Instant::now();
    let mut rest = Vec::new();
    let end = tls.read_to_end(&mut rest);
    assert!(end.is_ok(), "expected a clean close, got {end:?}");
    assert!(rest.is_empty());
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "closed too early"
    );
}

/// SIGHUP reads the certificate files again, as after a renewal that
/// rewrote them in place: new handshakes get the new certificate, an open
/// connection lives on, and a broken file keeps the running certificate.
#[test]
fn sighup_reads_renewed_certificates_and_a_broken_one_keeps_the_running_one() {
    let mut pki = Pki::new();
    let files = pki.make(&["localhost"], &[]);
    let dir = temp_dir("tls-sighup");
    std::fs::write(dir.join("index.html"), "hello").expect("index");
    std::fs::write(
        dir.join("c.toml"),
        format!(
            "workers = 1\nroot = {root:?}\nlisten = \"127.0.0.1:0\"\n\
             [tls]\nlisten = [\"127.0.0.1:0\"]\n\
             [[tls.certificates]]\ncert = {cert:?}\nkey = {key:?}\n",
            root = dir.display().to_string(),
            cert = files.cert.display().to_string(),
            key = files.key.display().to_string(),
        ),
    )
    .expect("config");
    let run = crate::harness::process::spawn(&dir, &["--config", "c.toml"]);
    let line = run.started_line();
    let https: SocketAddr = line
        .split("https://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .map(|addr| addr.trim_end_matches([',', ';']))
        .unwrap_or_else(|| panic!("no https address in {line:?}"))
        .parse()
        .expect("address");
    let first = client(&pki.ders[..1], BOTH);
    let mut open = connect(https, &first, "localhost");
    assert_eq!(get(&mut open, "/index.html").status, 200);

    // Renewed in place: same paths, new certificate and key.
    let renewed = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("rcgen");
    std::fs::write(&files.cert, renewed.cert.pem()).expect("write cert");
    std::fs::write(&files.key, renewed.signing_key.serialize_pem()).expect("write key");
    run.signal("HUP");
    run.stderr_with("SIGHUP: reloaded");
    let second = client(&[renewed.cert.der().clone()], BOTH);
    let mut fresh = connect(https, &second, "localhost");
    assert_eq!(
        &fresh.conn.peer_certificates().expect("certs")[0],
        renewed.cert.der()
    );
    assert_eq!(get(&mut fresh, "/index.html").status, 200);
    assert_eq!(
        get(&mut open, "/index.html").status,
        200,
        "a connection opened before the reload is still served"
    );

    // Broken: the reload fails naming the key, the renewed one stays.
    std::fs::write(&files.cert, "not a certificate\n").expect("write");
    run.signal("HUP");
    let failed = run.stderr_with("reload failed");
    assert!(failed.contains("tls.certificates"), "{failed}");
    let mut after = connect(https, &second, "localhost");
    assert_eq!(
        &after.conn.peer_certificates().expect("certs")[0],
        renewed.cert.der()
    );
    assert_eq!(get(&mut after, "/index.html").status, 200);
    let _ = std::fs::remove_dir_all(&dir);
}
