//! Automatic HTTPS (`[acme]`, docs/acme.md): the challenges answered by
//! the running listeners; the manager's behaviour when the CA cannot be
//! reached; and against pebble, a real ACME server: issued by each
//! challenge, renewed under load, serving on when the CA goes, reused
//! after a restart.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use conveyor::config::AcmeChallenge;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

use crate::harness::pebble::{free_port, Pebble, PebbleOptions};
use crate::harness::status::{status, Figures};
use crate::harness::tls::{client, handshake, Pki, BOTH};
use crate::harness::{ask, start, wait_until, Response, TestServer};

/// Accepts any certificate and keeps the leaf: what a CA's validation
/// client does with the tls-alpn-01 certificate (it checks the extension,
/// not a chain).
#[derive(Debug, Default)]
struct Keep(Mutex<Option<CertificateDer<'static>>>);

impl ServerCertVerifier for Keep {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.0.lock().unwrap() = Some(end_entity.clone().into_owned());
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A validation client: TLS 1.2 or 1.3, ALPN `acme-tls/1` alone.
fn validator(alpn: &[&[u8]]) -> (Arc<ClientConfig>, Arc<Keep>) {
    let keep = Arc::new(Keep::default());
    let mut config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(BOTH)
            .expect("versions")
            .dangerous()
            .with_custom_certificate_verifier(keep.clone())
            .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    (Arc::new(config), keep)
}

/// The DER of RFC 8737's extension: OID 1.3.6.1.5.5.7.1.31, critical,
/// the SHA-256 of `key_authorization` in an OCTET STRING.
fn acme_identifier(key_authorization: &str) -> Vec<u8> {
    let digest = ring::digest::digest(&ring::digest::SHA256, key_authorization.as_bytes());
    let mut der = vec![
        0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x1f, 0x01, 0x01, 0xff, 0x04, 0x22,
        0x04, 0x20,
    ];
    der.extend_from_slice(digest.as_ref());
    der
}

/// `GET path` for `localhost` (a name the certificate serves, so the
/// HTTPS redirect answers 308).
fn get_localhost(server: &TestServer, path: &str) -> Response {
    ask(
        server,
        &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n"),
    )
}

fn tls_server(pki: &Pki) -> TestServer {
    let files = pki.files.clone();
    start("readiness", "spawn", move |c| {
        c.tls.listen = vec!["127.0.0.1:0".parse().expect("addr")];
        c.tls.certificates = files;
    })
}

fn tls_addr(server: &TestServer) -> SocketAddr {
    server.server().tls_addrs()[0]
}

#[test]
fn tls_alpn_01_serves_the_challenge_certificate_and_then_closes() {
    let mut pki = Pki::new();
    pki.make(&["localhost"], &[]);
    let server = tls_server(&pki);
    let challenges = &server.server().line().challenges;
    let (cert, key) =
        conveyor::acme::tls_alpn01_certificate("www.acme.test", "tok.thumb").expect("made");
    challenges
        .publish_alpn("www.acme.test", cert.clone(), key.clone_key())
        .expect("published");
    challenges
        .publish_alpn("stray.acme.test", cert, key)
        .expect("published");
    let (config, keep) = validator(&[b"acme-tls/1"]);
    let connect = || std::net::TcpStream::connect(tls_addr(&server)).expect("connect");
    // ACME off (no tls-alpn-01 manager): acme-tls/1 is not offered and
    // the published certificate never served.
    assert!(handshake(connect(), &config, "www.acme.test").is_err());
    let (both, _) = validator(&[b"acme-tls/1", b"http/1.1"]);
    let tls = handshake(connect(), &both, "localhost").expect("normal handshake");
    assert_eq!(tls.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert!(keep.0.lock().unwrap().take().is_none());

    challenges.answer_alpn(&["www.acme.test".into()]);
    // acme-tls/1 among other protocols: no certificate at all.
    assert!(handshake(connect(), &both, "www.acme.test").is_err());
    // Published for a name that is not ordered: never served.
    assert!(handshake(connect(), &config, "stray.acme.test").is_err());
    let sock = connect();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut tls = handshake(sock, &config, "WWW.acme.test").expect("validation handshake");
    assert_eq!(tls.conn.alpn_protocol(), Some(&b"acme-tls/1"[..]));
    let leaf = keep.0.lock().unwrap().take().expect("a certificate");
    let wanted = acme_identifier("tok.thumb");
    assert!(
        leaf.as_ref().windows(wanted.len()).any(|w| w == wanted),
        "the acmeIdentifier extension with SHA-256 of the key authorization"
    );
    // Then closed, never served HTTP: a request gets no response.
    use std::io::{Read, Write};
    let _ = tls.write_all(b"GET / HTTP/1.1\r\nHost: www.acme.test\r\n\r\n");
    let mut buf = Vec::new();
    let _ = tls.read_to_end(&mut buf);
    assert!(buf.is_empty(), "{}", String::from_utf8_lossy(&buf));
    let figures = status(&server);
    assert_eq!(figures.at("tls").at("acme_validations").int(), 1);

    // A name with no challenge published: no certificate, no handshake.
    let sock = std::net::TcpStream::connect(tls_addr(&server)).expect("connect");
    assert!(handshake(sock, &config, "other.acme.test").is_err());
    // Withdrawn: the same.
    challenges.withdraw_alpn("www.acme.test");
    let sock = std::net::TcpStream::connect(tls_addr(&server)).expect("connect");
    assert!(handshake(sock, &config, "www.acme.test").is_err());

    // A browser offering h2 and http/1.1 gets the configured certificate.
    let normal = client(&pki.ders, BOTH);
    let sock = std::net::TcpStream::connect(tls_addr(&server)).expect("connect");
    let tls = handshake(sock, &normal, "localhost").expect("normal handshake");
    assert_eq!(tls.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
}

#[test]
fn http_01_answers_published_tokens_before_the_https_redirect() {
    let mut pki = Pki::new();
    pki.make(&["localhost"], &[]);
    let files = pki.files.clone();
    let server = start("readiness", "pool", move |c| {
        c.tls.listen = vec!["127.0.0.1:0".parse().expect("addr")];
        c.tls.certificates = files;
        c.tls.redirect_http = true;
    });
    let challenges = &server.server().line().challenges;
    challenges.publish_http("tok-EN_1", "tok-EN_1.thumbprint");
    let path = "/.well-known/acme-challenge/tok-EN_1";
    // Off (no http-01 manager): the redirect answers as before.
    assert_eq!(get_localhost(&server, path).status, 308);

    challenges.answer_http(true);
    let r = get_localhost(&server, path);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(r.text(), "tok-EN_1.thumbprint");
    let head = ask(
        &server,
        &format!("HEAD {path} HTTP/1.1\r\nHost: localhost\r\n\r\n"),
    );
    assert_eq!((head.status, head.text().as_str()), (200, ""));
    let post = ask(
        &server,
        &format!("POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n"),
    );
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    // A token not published, or not a token: the usual routing (here the
    // redirect to HTTPS), as everything else.
    for other in ["unknown", "tok-EN_1.x", "", "tok-EN_1/x"] {
        let r = get_localhost(&server, &format!("/.well-known/acme-challenge/{other}"));
        assert_eq!(r.status, 308, "{other}");
    }
    assert_eq!(get_localhost(&server, "/index.html").status, 308);
    challenges.withdraw_http("tok-EN_1");
    assert_eq!(get_localhost(&server, path).status, 308);
}

/// A directory URL with nothing listening: the server serves HTTPS on the
/// self-signed certificate, `/status` says why, and the retries come with
/// growing gaps, not in a loop.
#[test]
fn a_ca_that_is_down_is_retried_with_backoff_while_serving() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = free.local_addr().expect("addr").port();
    drop(free);
    let state = crate::harness::temp_dir("acme-down");
    let state_dir = state.clone();
    let server = start("readiness", "spawn", move |c| {
        c.tls.listen = vec!["127.0.0.1:0".parse().expect("addr")];
        c.acme.domains = vec!["www.acme.test".into()];
        c.acme.directory = format!("https://127.0.0.1:{port}/dir");
        c.acme.state_dir = state_dir;
        c.acme.retry_base = Duration::from_millis(500);
        c.tls.redirect_http = true;
    });
    // The plain listener sends the names being ordered to HTTPS at once,
    // before any certificate for them exists; other names get 421.
    let r = ask(&server, "GET /a HTTP/1.1\r\nHost: www.acme.test\r\n\r\n");
    assert_eq!(r.status, 308);
    let https = format!("https://www.acme.test:{}/a", tls_addr(&server).port());
    assert_eq!(r.header("location"), Some(https.as_str()));
    let r = ask(&server, "GET /a HTTP/1.1\r\nHost: other.acme.test\r\n\r\n");
    assert_eq!(r.status, 421);
    // Watch the attempts: the moment each one is seen.
    let mut seen: Vec<(u64, Instant)> = Vec::new();
    let done = wait_until(Duration::from_secs(20), || {
        let acme = status(&server).at("acme").clone();
        let attempts = acme.at("attempts").int() as u64;
        if seen.last().is_none_or(|(n, _)| *n != attempts) {
            seen.push((attempts, Instant::now()));
        }
        // The fourth has failed too (no order under way).
        attempts >= 4 && acme.at("failures").int() >= 4
    });
    assert!(done, "attempts seen: {seen:?}");
    let acme = status(&server).at("acme").clone();
    assert_eq!(acme.at("state").str(), "error", "{acme}");
    assert_eq!(acme.at("domains").str(), "www.acme.test");
    assert_eq!(acme.at("orders"), &serde_json::Value::Bool(true), "{acme}");
    assert!(!acme.at("last_error").str().is_empty(), "{acme}");
    // Gaps between attempts 2→3 and 3→4 (at 500 ms, doubled, 75–100 %:
    // 375–500, 750–1000, 1500–2000 ms) grow; none is a hot loop.
    let at = |n: u64| seen.iter().find(|(a, _)| *a == n).map(|(_, t)| *t);
    let (a2, a3, a4) = match (at(2), at(3), at(4)) {
        (Some(a2), Some(a3), Some(a4)) => (a2, a3, a4),
        _ => panic!("each attempt seen: {seen:?}"),
    };
    let (g1, g2) = (a3 - a2, a4 - a3);
    assert!(g1 >= Duration::from_millis(650), "{g1:?}");
    assert!(g2 > g1, "{g1:?} then {g2:?}");
    // HTTPS goes on serving meanwhile, on the self-signed certificate.
    let (config, keep) = validator(&[b"http/1.1"]);
    let sock = std::net::TcpStream::connect(tls_addr(&server)).expect("connect");
    let mut tls = handshake(sock, &config, "www.acme.test").expect("handshake");
    let r = crate::harness::get(&mut tls, "/index.html");
    assert_eq!(r.status, 200);
    let leaf = keep.0.lock().unwrap().take().expect("a certificate");
    let localhost = conveyor::tls::self_signed_localhost().expect("self-signed");
    assert_eq!(leaf, localhost.cert[0]);
    drop(server);
    let _ = std::fs::remove_dir_all(&state);
}

/// The certificate the manager installs (`TlsKeys::install_managed`)
/// serves its names at once, on a connection opened before it keeps
/// going, and stays across a SIGHUP reload of `tls.certificates`.
#[test]
fn the_installed_certificate_serves_its_names_and_survives_a_reload() {
    let mut pki = Pki::new();
    pki.make(&["localhost"], &[]);
    let server = tls_server(&pki);
    let stage = server.server().tls().expect("tls").clone();
    let normal = client(&pki.ders, BOTH);
    let sock = std::net::TcpStream::connect(tls_addr(&server)).expect("connect");
    let mut before = handshake(sock, &normal, "localhost").expect("handshake");
    assert_eq!(crate::harness::get(&mut before, "/index.html").status, 200);

    let mut issued = Pki::new();
    let mut files = issued.make(&["www.acme.test"], &[]);
    files.names = vec!["www.acme.test".into()];
    stage.keys().install_managed(&files).expect("installed");
    let trusting = client(&issued.ders, BOTH);
    let sock = std::net::TcpStream::connect(tls_addr(&server)).expect("connect");
    let mut tls = handshake(sock, &trusting, "www.acme.test").expect("verified");
    assert_eq!(crate::harness::get(&mut tls, "/index.html").status, 200);
    // The connection from before goes on.
    assert_eq!(crate::harness::get(&mut before, "/index.html").status, 200);
    // Other names keep the configured certificate.
    let sock = std::net::TcpStream::connect(tls_addr(&server)).expect("connect");
    handshake(sock, &normal, "localhost").expect("configured one");

    let config = (*server.server().line().config.load()).clone();
    server.server().reload(config).expect("reloaded");
    let sock = std::net::TcpStream::connect(tls_addr(&server)).expect("connect");
    handshake(sock, &trusting, "www.acme.test").expect("still the issued one");
}

// Against a real CA: pebble (tests/it/harness/pebble.rs), which really
// validates, on the ports the server under test listens on.

/// A client trusting pebble's root, as a browser trusts Let's Encrypt's.
fn trusting(pebble: &Pebble) -> Arc<ClientConfig> {
    let mut config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(BOTH)
            .expect("versions")
            .with_root_certificates(pebble.root_store())
            .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// A server ordering `name` from `pebble` by `challenge`, TLS on
/// `tls_port` and plain HTTP on `http_port` (0: any).
fn acme_server(
    pebble: &Pebble,
    name: &str,
    challenge: AcmeChallenge,
    (http_port, tls_port): (u16, u16),
    state_dir: &Path,
) -> TestServer {
    let (name, state_dir) = (name.to_string(), state_dir.to_path_buf());
    // A copy: pebble's own goes with it when a test stops it.
    std::fs::create_dir_all(&state_dir).expect("state_dir");
    let ca_file = state_dir.join("pebble-https.pem");
    std::fs::copy(&pebble.ca_file, &ca_file).expect("ca_file");
    let directory = pebble.directory.clone();
    start("readiness", "spawn", move |c| {
        c.listen = format!("127.0.0.1:{http_port}").parse().expect("addr");
        c.tls.listen = vec![format!("127.0.0.1:{tls_port}").parse().expect("addr")];
        c.acme.domains = vec![name];
        c.acme.directory = directory;
        c.acme.ca_file = ca_file;
        c.acme.state_dir = state_dir;
        c.acme.challenge = challenge;
        c.acme.retry_base = Duration::from_millis(300);
    })
}

/// Waits until `/status` says `issued` certificates were installed.
fn wait_issued(server: &TestServer, pebble: &Pebble, issued: i64, limit: Duration) {
    let done = wait_until(limit, || status(server).at("acme.issued").int() >= issued);
    assert!(
        done,
        "{}\n--- pebble:\n{}",
        status(server).at("acme"),
        pebble.log()
    );
}

/// A verified connection for `name`; its leaf certificate.
fn verified(
    server: &TestServer,
    config: &Arc<ClientConfig>,
    name: &str,
) -> CertificateDer<'static> {
    let sock = std::net::TcpStream::connect(tls_addr(server)).expect("connect");
    let mut tls = handshake(sock, config, name).expect("verified against pebble's root");
    assert_eq!(crate::harness::get(&mut tls, "/index.html").status, 200);
    tls.conn.peer_certificates().expect("certificates")[0].clone()
}

#[test]
fn pebble_issues_by_tls_alpn_01_answered_by_the_tls_listener() {
    let tls_port = free_port();
    let Some(pebble) = Pebble::start(&PebbleOptions::new(free_port(), tls_port)) else {
        return;
    };
    let state = crate::harness::temp_dir("acme-alpn");
    let server = acme_server(
        &pebble,
        "alpn.acme.test",
        AcmeChallenge::TlsAlpn01,
        (0, tls_port),
        &state,
    );
    wait_issued(&server, &pebble, 1, Duration::from_secs(60));
    let acme = status(&server).at("acme").clone();
    assert_eq!(acme.at("state").str(), "valid", "{acme}");
    assert!(acme.at("not_after").is_string() && acme.at("next_renewal").is_string());
    assert!(status(&server).at("tls.acme_validations").int() >= 1);
    verified(&server, &trusting(&pebble), "alpn.acme.test");
    drop(server);
    let _ = std::fs::remove_dir_all(&state);
}

#[test]
fn pebble_issues_by_http_01_answered_by_the_plain_listener_under_a_redirect() {
    let http_port = free_port();
    let Some(pebble) = Pebble::start(&PebbleOptions::new(http_port, free_port())) else {
        return;
    };
    let state = crate::harness::temp_dir("acme-http");
    let (directory, ca_file, state_dir) = (
        pebble.directory.clone(),
        pebble.ca_file.clone(),
        state.clone(),
    );
    let server = start("reuseport", "pool", move |c| {
        c.listen = format!("127.0.0.1:{http_port}").parse().expect("addr");
        c.tls.listen = vec!["127.0.0.1:0".parse().expect("addr")];
        c.tls.redirect_http = true;
        c.acme.domains = vec!["http.acme.test".into(), "www.http.acme.test".into()];
        c.acme.directory = directory;
        c.acme.ca_file = ca_file;
        c.acme.state_dir = state_dir;
        c.acme.challenge = AcmeChallenge::Http01;
    });
    wait_issued(&server, &pebble, 1, Duration::from_secs(60));
    let config = trusting(&pebble);
    let leaf = verified(&server, &config, "http.acme.test");
    assert_eq!(verified(&server, &config, "www.http.acme.test"), leaf);
    // The plain listener still redirects everything else to HTTPS.
    let r = ask(
        &server,
        "GET /index.html HTTP/1.1\r\nHost: http.acme.test\r\n\r\n",
    );
    assert_eq!(r.status, 308);
    drop(server);
    let _ = std::fs::remove_dir_all(&state);
}

/// Keep-alive requests over TLS, a new connection every 20, until
/// stopped: the "bench" a renewal must not disturb. Counts responses,
/// failures and the distinct leaf certificates seen.
fn keep_requesting(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    name: &'static str,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(u64, Vec<String>, Vec<CertificateDer<'static>>)> {
    std::thread::spawn(move || {
        let (mut ok, mut failures, mut leaves) = (0u64, Vec::new(), Vec::new());
        let deadline = Instant::now() + Duration::from_secs(90);
        while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
            let sock = std::net::TcpStream::connect(addr).expect("connect");
            sock.set_read_timeout(Some(Duration::from_secs(10)))
                .expect("timeout");
            sock.set_nodelay(true).expect("nodelay");
            let mut tls = match handshake(sock, &config, name) {
                Ok(tls) => tls,
                Err(e) => {
                    failures.push(format!("handshake: {e}"));
                    continue;
                }
            };
            let leaf = tls.conn.peer_certificates().expect("certs")[0].clone();

            if !leaves.contains(&leaf) {
                leaves.push(leaf);
            }
            for _ in 0..20 {
                let r = crate::harness::get(&mut tls, "/index.html");
                match r.status {
                    200 => ok += 1,
                    s => failures.push(format!("status {s}")),
                }
            }
        }
        (ok, failures, leaves)
    })
}

/// A certificate that lives 12 s is renewed at two thirds of it with
/// requests flowing, none failing; then, with the CA gone, the renewal
/// fails, is retried with backoff, and the certificate in use serves on.
#[test]
fn a_short_lived_certificate_is_renewed_under_load_and_serves_on_when_the_ca_goes() {
    let tls_port = free_port();
    let mut options = PebbleOptions::new(free_port(), tls_port);
    options.validity = Some(Duration::from_secs(12));
    let Some(pebble) = Pebble::start(&options) else {
        return;
    };
    let state = crate::harness::temp_dir("acme-renew");
    let server = acme_server(
        &pebble,
        "renew.acme.test",
        AcmeChallenge::TlsAlpn01,
        (0, tls_port),
        &state,
    );
    wait_issued(&server, &pebble, 1, Duration::from_secs(60));
    let config = trusting(&pebble);
    let stop = Arc::new(AtomicBool::new(false));
    // Full handshakes only: a resumed session shows the certificate of
    // the session it resumes.
    let mut fresh = (*config).clone();
    fresh.resumption = rustls::client::Resumption::disabled();
    let addr = tls_addr(&server);
    let bench = keep_requesting(addr, Arc::new(fresh), "renew.acme.test", stop.clone());
    wait_issued(&server, &pebble, 2, Duration::from_secs(40));
    // A moment on the new certificate, then stop.
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::SeqCst);
    let (ok, failures, leaves) = bench.join().expect("bench");
    assert!(failures.is_empty(), "{failures:?}");
    assert!(ok > 100, "{ok} responses");
    eprintln!("renewal under load: {ok} responses, none failed");
    assert_eq!(
        leaves.len(),
        2,
        "both certificates served, one after the other"
    );

    // The CA goes away: the next renewal (due at 2/3 of 12 s) fails.
    let renewed = verified(&server, &config, "renew.acme.test");
    drop(pebble);
    let done = wait_until(Duration::from_secs(30), || {
        status(&server).at("acme.failures").int() >= 2
    });
    let acme = status(&server).at("acme").clone();
    assert!(done, "{acme}");
    let error = acme.at("last_error").str();
    assert!(error.contains("Connection refused"), "{acme}");
    assert_eq!(acme.at("issued").int(), 2);
    // Still the renewed certificate (valid a few seconds more).
    let sock = std::net::TcpStream::connect(tls_addr(&server)).expect("connect");
    let tls = handshake(sock, &validator(&[b"http/1.1"]).0, "renew.acme.test").expect("tls");
    assert_eq!(tls.conn.peer_certificates().expect("certs")[0], renewed);
    drop(server);
    let _ = std::fs::remove_dir_all(&state);
}

/// A restart finds the certificate in state_dir and orders nothing; a
/// restart for another name orders with the same account.
#[test]
fn a_restart_reuses_the_certificate_and_the_account() {
    let tls_port = free_port();
    let Some(mut pebble) = Pebble::start(&PebbleOptions::new(free_port(), tls_port)) else {
        return;
    };
    let state = crate::harness::temp_dir("acme-restart");
    let alpn = AcmeChallenge::TlsAlpn01;
    let name = "restart.acme.test";
    let server = acme_server(&pebble, name, alpn, (0, tls_port), &state);
    wait_issued(&server, &pebble, 1, Duration::from_secs(60));
    let config = trusting(&pebble);
    let first = verified(&server, &config, name);
    let account = status(&server).at("acme.account").str().to_string();
    drop(server);

    let server = acme_server(&pebble, name, alpn, (0, tls_port), &state);
    assert!(wait_until(Duration::from_secs(10), || {
        status(&server).at("acme.state").str() == "valid"
    }));
    assert_eq!(
        verified(&server, &config, name),
        first,
        "the same certificate"
    );
    let acme = status(&server).at("acme").clone();
    assert_eq!(acme.at("attempts").int(), 0, "no order: {acme}");
    assert_eq!(acme.at("issued").int(), 0, "{acme}");
    // The account, found again to ask for renewal information.
    assert!(wait_until(Duration::from_secs(10), || {
        status(&server).at("acme.account").as_str() == Some(&account)
    }));
    drop(server);

    let server = acme_server(&pebble, "other.acme.test", alpn, (0, tls_port), &state);
    wait_issued(&server, &pebble, 1, Duration::from_secs(60));
    assert_eq!(status(&server).at("acme.account").str(), account);
    drop(server);

    // The CA down at a restart: the stored certificate serves, renewal
    // stays at two thirds of its lifetime (the renewal information could
    // not be asked for: logged), nothing is ordered, nothing failed.
    pebble.stop();
    let server = acme_server(&pebble, name, alpn, (0, tls_port), &state);
    assert!(wait_until(Duration::from_secs(10), || {
        status(&server).at("acme.next_renewal").is_string()
    }));
    assert_eq!(verified(&server, &config, name), first);
    let acme = status(&server).at("acme").clone();
    assert_eq!(acme.at("state").str(), "valid", "{acme}");
    assert_eq!(acme.at("attempts").int(), 0, "{acme}");
    assert!(acme.at("last_error").is_null(), "{acme}");
    drop(server);
    let _ = std::fs::remove_dir_all(&state);
}

/// Two replicas share state_dir: the one holding its lock orders, the
/// other installs what it wrote without ordering, and takes the lock over
/// once the first is gone.
#[test]
fn replicas_sharing_state_dir_order_once() {
    let tls_port = free_port();
    let Some(pebble) = Pebble::start(&PebbleOptions::new(free_port(), tls_port)) else {
        return;
    };
    let state = crate::harness::temp_dir("acme-replicas");
    let (alpn, name) = (AcmeChallenge::TlsAlpn01, "fleet.acme.test");
    let first = acme_server(&pebble, name, alpn, (0, tls_port), &state);
    // The second listens where pebble does not look: it cannot validate.
    let second = acme_server(&pebble, name, alpn, (0, 0), &state);
    wait_issued(&first, &pebble, 1, Duration::from_secs(60));
    let config = trusting(&pebble);
    let leaf = verified(&first, &config, name);
    assert!(wait_until(Duration::from_secs(10), || {
        status(&second).at("acme.state").str() == "valid"
    }));
    let acme = status(&second).at("acme").clone();
    assert_eq!(acme.at("orders"), &serde_json::Value::Bool(false), "{acme}");
    assert_eq!(acme.at("attempts").int(), 0, "{acme}");
    assert_eq!(verified(&second, &config, name), leaf);
    drop(first);
    assert!(wait_until(Duration::from_secs(10), || {
        status(&second).at("acme.orders") == &serde_json::Value::Bool(true)
    }));
    // It holds a valid certificate: nothing to order yet; it asks the CA
    // for the renewal window (so finds the account again).
    assert_eq!(status(&second).at("acme.attempts").int(), 0);
    assert!(wait_until(Duration::from_secs(10), || {
        status(&second).at("acme.account").is_string()
    }));
    drop(second);
    let _ = std::fs::remove_dir_all(&state);
}

/// The CA's validation lands on a replica that does not order (a load
/// balancer's choice): it answers from what the lock holder shared in
/// state_dir, for both challenges; pebble validates only that replica.
#[test]
fn a_replica_answers_the_challenge_the_lock_holder_published() {
    for (challenge, name) in [
        (AcmeChallenge::TlsAlpn01, "alpn-fleet.acme.test"),
        (AcmeChallenge::Http01, "http-fleet.acme.test"),
    ] {
        let (http_port, tls_port) = (free_port(), free_port());
        let Some(pebble) = Pebble::start(&PebbleOptions::new(http_port, tls_port)) else {
            return;
        };
        let state = crate::harness::temp_dir("acme-shared");
        // The holder listens where pebble does not look.
        let holder = acme_server(&pebble, name, challenge, (0, 0), &state);
        assert!(wait_until(Duration::from_secs(10), || {
            status(&holder).at("acme.orders") == &serde_json::Value::Bool(true)
        }));
        let replica = acme_server(&pebble, name, challenge, (http_port, tls_port), &state);
        wait_issued(&holder, &pebble, 1, Duration::from_secs(60));
        let config = trusting(&pebble);
        let leaf = verified(&holder, &config, name);
        assert!(wait_until(Duration::from_secs(10), || {
            status(&replica).at("acme.state").str() == "valid"
        }));
        assert_eq!(verified(&replica, &config, name), leaf, "{challenge}");
        assert_eq!(status(&replica).at("acme.attempts").int(), 0);
        // Withdrawn once validated: nothing shared is left.
        let shared = std::fs::read_dir(state.join("challenges")).map_or(0, |d| d.count());
        assert_eq!(shared, 0, "{challenge}");
        drop((holder, replica));
        let _ = std::fs::remove_dir_all(&state);
    }
}

/// With `hold_accepting` (the binary's path when it switches to `user`),
/// the manager starts with accepting: `state_dir` is made by the account
/// that then serves, never by root before the switch.
#[test]
fn the_manager_waits_for_accepting() {
    let state = crate::harness::temp_dir("acme-held");
    let root = crate::harness::temp_dir("acme-held-root");
    crate::harness::copy_www(&root);
    let mut config = crate::harness::test_config(&root, "readiness", "spawn");
    config.tls.listen = vec!["127.0.0.1:0".parse().expect("addr")];
    config.acme.domains = vec!["held.acme.test".into()];
    config.acme.directory = format!("https://127.0.0.1:{}/dir", free_port());
    config.acme.state_dir = state.join("acme");
    let server = conveyor::Server::builder(config)
        .hold_accepting()
        .start()
        .expect("starts");
    let json = crate::harness::status::status(&server);
    assert!(json.get("acme").is_none(), "{json}");
    assert!(!state.join("acme").exists());
    server.start_accepting();
    assert!(wait_until(Duration::from_secs(10), || {
        crate::harness::status::status(&server)
            .get("acme")
            .is_some_and(|a| a.at("attempts").int() >= 1)
    }));
    assert!(state.join("acme").is_dir());
    drop(server);
    let _ = std::fs::remove_dir_all(&state);
    let _ = std::fs::remove_dir_all(&root);
}

/// The binary, started as root with `user = "nobody"` and
/// `--acme-domain`: it binds, switches, then orders; the log says each
/// step, state_dir belongs to nobody, and the certificate verifies.
#[test]
fn the_binary_orders_as_its_user_and_logs_each_step() {
    use std::os::unix::fs::MetadataExt;
    if !crate::harness::needs::root() {
        return;
    }
    let tls_port = free_port();
    let Some(pebble) = Pebble::start(&PebbleOptions::new(free_port(), tls_port)) else {
        return;
    };
    let dir = crate::harness::site_dir("acme-binary");
    let state = dir.join("state");
    std::fs::create_dir_all(&state).expect("state");
    std::os::unix::fs::chown(&state, Some(65534), Some(65534)).expect("chown");
    std::fs::copy(&pebble.ca_file, dir.join("ca.pem")).expect("ca");
    std::fs::write(
        dir.join("c.toml"),
        format!(
            "listen = \"127.0.0.1:0\"\nroot = \"site\"\nuser = \"nobody\"\n\
             [tls]\nlisten = [\"127.0.0.1:{tls_port}\"]\n\
             [acme]\ndirectory = \"{}\"\nca_file = \"ca.pem\"\nstate_dir = \"state/acme\"\n",
            pebble.directory
        ),
    )
    .expect("config");
    let run = crate::harness::process::spawn(
        &dir,
        &["--config", "c.toml", "--acme-domain", "binary.acme.test"],
    );
    for step in [
        "acme: managing a certificate for binary.acme.test",
        "acme: holding the lock",
        "acme: ordering a certificate",
        "acme: answering tls-alpn-01 for binary.acme.test",
        "acme: certificate issued installed",
        "acme: next renewal at",
    ] {
        run.stderr_with(step);
    }
    let owner = std::fs::metadata(dir.join("state/acme")).expect("state_dir");
    assert_eq!((owner.uid(), owner.mode() & 0o777), (65534, 0o700));
    let addr: SocketAddr = format!("127.0.0.1:{tls_port}").parse().expect("addr");
    let sock = std::net::TcpStream::connect(addr).expect("connect");
    let mut tls = handshake(sock, &trusting(&pebble), "binary.acme.test").expect("verified");
    assert_eq!(crate::harness::get(&mut tls, "/").text(), "hi");
    run.terminate();
    drop(run);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A reload that changes `[acme]` keeps the running values and says the
/// keys need a restart.
#[test]
fn a_reload_keeps_the_acme_settings_and_names_them() {
    let state = crate::harness::temp_dir("acme-reload");
    let directory = format!("https://127.0.0.1:{}/dir", free_port());
    let state_dir = state.clone();
    let server = start("readiness", "spawn", move |c| {
        c.tls.listen = vec!["127.0.0.1:0".parse().expect("addr")];
        c.acme.domains = vec!["reload.acme.test".into()];
        c.acme.directory = directory;
        c.acme.state_dir = state_dir;
    });
    let mut config = (*server.server().line().config.load()).clone();
    config.acme.domains = vec!["other.acme.test".into()];
    config.acme.retry_base = Duration::from_secs(5);
    let reloaded = server.server().reload(config).expect("reloaded");
    assert_eq!(reloaded.need_restart, ["acme.domains", "acme.retry_base"]);
    let running = server.server().line().config.load();
    assert_eq!(running.acme.domains, ["reload.acme.test"]);
    drop(server);
    let _ = std::fs::remove_dir_all(&state);
}

/// The binary with a CA that is down: it serves, and its log says why the
/// order failed and when it is retried.
#[test]
fn the_binary_logs_why_an_order_failed_and_when_it_retries() {
    let dir = crate::harness::site_dir("acme-binary-down");
    std::fs::write(
        dir.join("c.toml"),
        format!(
            "listen = \"127.0.0.1:0\"\nroot = \"site\"\n[tls]\nlisten = [\"127.0.0.1:0\"]\n\
             [acme]\ndomains = [\"down.acme.test\"]\n\
             directory = \"https://127.0.0.1:{}/dir\"\nstate_dir = \"state\"\nretry_base = \"200ms\"\n",
            free_port()
        ),
    )
    .expect("config");
    let (run, addr) = crate::harness::process::spawn_on_config(&dir);
    let failed = run.stderr_with("acme: failed (");
    assert!(
        failed.contains("Connection refused")
            && failed.contains("the self-signed certificate keeps serving; retrying in"),
        "{failed}"
    );
    run.stderr_with("acme: ordering a certificate for down.acme.test (attempt 2)");
    let mut s = std::net::TcpStream::connect(&addr).expect("connect");
    assert_eq!(crate::harness::get(&mut s, "/").text(), "hi");
    run.terminate();
    drop(run);
    let _ = std::fs::remove_dir_all(&dir);
}
