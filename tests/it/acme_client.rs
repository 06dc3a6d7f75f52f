//! `conveyor::acme::AcmeClient` against a real ACME server (pebble, which
//! really validates): the challenges answered by tiny servers in the test
//! on pebble's `httpPort` (http-01, a std TcpListener) and `tlsPort`
//! (tls-alpn-01, rustls with the RFC 8737 certificate). The certificate is
//! issued by each challenge and verifies against pebble's root; the
//! account and the certificate are found again after a restart; a CA that
//! is down, stalls or refuses gives a clear error in bounded time.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use conveyor::acme::{
    tls_alpn01_certificate, AcmeClient, AcmeSettings, Challenge, ChallengeKind, Responder,
    StoredCertificate, Timeouts, ACME_TLS_ALPN,
};
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::harness::pebble::{Pebble, PebbleOptions};
use crate::harness::temp_dir;

type Http01Answers = Arc<Mutex<HashMap<String, String>>>;
type TlsAnswers = Arc<Mutex<HashMap<String, Arc<CertifiedKey>>>>;

/// A listener answering on its own thread until dropped.
struct Answering {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl Drop for Answering {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(listener: TcpListener, handle: impl Fn(TcpStream) + Send + Sync + 'static) -> Answering {
    let port = listener.local_addr().expect("addr").port();
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let handle = Arc::new(handle);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            if stopped.load(Ordering::SeqCst) {
                break;
            }
            let Ok(stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let handle = handle.clone();
            std::thread::spawn(move || handle(stream));
        }
    });
    Answering { port, stop }
}

/// http-01: `/.well-known/acme-challenge/<token>` from the published map.
fn http01_server(answers: Http01Answers) -> Answering {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    serve(listener, move |mut stream| {
        let mut line = String::new();
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        if reader.read_line(&mut line).is_err() {
            return;
        }
        loop {
            let mut header = String::new();
            match reader.read_line(&mut header) {
                Ok(n) if n > 2 => continue,
                _ => break,
            }
        }
        let path = line.split_whitespace().nth(1).unwrap_or("");
        let token = path.strip_prefix("/.well-known/acme-challenge/");
        let body = token.and_then(|t| answers.lock().expect("answers").get(t).cloned());
        let response = match body {
            Some(body) => format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            ),
            None => "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_string(),
        };
        let _ = stream.write_all(response.as_bytes());
    })
}

#[derive(Debug)]
struct BySni(TlsAnswers);

impl ResolvesServerCert for BySni {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let acme = hello.alpn()?.any(|p| p == ACME_TLS_ALPN);
        let name = hello.server_name()?;
        acme.then(|| self.0.lock().expect("answers").get(name).cloned())?
    }
}

/// tls-alpn-01: the RFC 8737 certificate for the SNI name, ALPN `acme-tls/1`.
fn tls_alpn01_server(answers: TlsAnswers) -> Answering {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(BySni(answers)));
    config.alpn_protocols = vec![ACME_TLS_ALPN.to_vec()];
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    serve(listener, move |mut stream| {
        let Ok(mut conn) = rustls::ServerConnection::new(config.clone()) else {
            return;
        };
        while conn.is_handshaking() {
            if conn.complete_io(&mut stream).is_err() {
                return;
            }
        }
        conn.send_close_notify();
        let _ = conn.complete_io(&mut stream);
    })
}

/// The test's `Responder`: both challenge kinds, and a count of what is
/// still published.
#[derive(Default)]
struct TestResponder {
    http: Http01Answers,
    tls: TlsAnswers,
    published: AtomicUsize,
    withdrawn: AtomicUsize,
}

impl Responder for TestResponder {
    fn publish(&self, challenge: &Challenge) {
        self.published.fetch_add(1, Ordering::SeqCst);
        match challenge {
            Challenge::Http01 {
                token,
                key_authorization,
            } => {
                let mut http = self.http.lock().expect("http");
                http.insert(token.clone(), key_authorization.clone());
            }
            Challenge::TlsAlpn01 {
                domain,
                key_authorization,
            } => {
                let (cert, key) = tls_alpn01_certificate(domain, key_authorization).expect("cert");
                let key = rustls::crypto::ring::sign::any_supported_type(&key).expect("key");
                let certified = Arc::new(CertifiedKey::new(vec![cert], key));
                self.tls
                    .lock()
                    .expect("tls")
                    .insert(domain.clone(), certified);
            }
        }
    }

    fn withdraw(&self, challenge: &Challenge) {
        self.withdrawn.fetch_add(1, Ordering::SeqCst);
        match challenge {
            Challenge::Http01 { token, .. } => {
                self.http.lock().expect("http").remove(token);
            }
            Challenge::TlsAlpn01 { domain, .. } => {
                self.tls.lock().expect("tls").remove(domain);
            }
        }
    }
}

/// The responder, its two servers, and pebble validating against them.
struct Ca {
    responder: Arc<TestResponder>,
    pebble: Pebble,
    _http: Answering,
    _tls: Answering,
}

fn start_ca(configure: impl FnOnce(&mut PebbleOptions)) -> Option<Ca> {
    let responder = Arc::new(TestResponder::default());
    let http = http01_server(responder.http.clone());
    let tls = tls_alpn01_server(responder.tls.clone());
    let mut options = PebbleOptions::new(http.port, tls.port);
    configure(&mut options);
    let pebble = Pebble::start(&options)?;
    Some(Ca {
        responder,
        pebble,
        _http: http,
        _tls: tls,
    })
}

fn settings(ca: &Ca, state: &Path, domains: &[&str], challenge: ChallengeKind) -> AcmeSettings {
    AcmeSettings {
        directory: ca.pebble.directory.clone(),
        email: Some("ops@acme.test".to_string()),
        domains: domains.iter().map(|d| d.to_string()).collect(),
        state_dir: state.to_path_buf(),
        ca_file: Some(ca.pebble.ca_file.clone()),
        challenge,
    }
}

/// The stored chain verifies, for each domain, against pebble's root.
fn assert_verifies(ca: &Ca, stored: &StoredCertificate, domains: &[&str]) {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&stored.cert_path)
        .expect("chain")
        .map(|c| c.expect("PEM"))
        .collect();
    assert_eq!(chain.len(), 2, "leaf and pebble's intermediate");
    let intermediate = ca.pebble.intermediate_pem();
    let intermediate = CertificateDer::from_pem_slice(intermediate.as_bytes()).expect("PEM");
    assert_eq!(chain[1], intermediate, "the chain is pebble's");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(ca.pebble.root_store()),
        provider,
    )
    .build()
    .expect("verifier");
    for domain in domains {
        let name = ServerName::try_from(domain.to_string()).expect("name");
        verifier
            .verify_server_cert(&chain[0], &chain[1..], &name, &[], UnixTime::now())
            .unwrap_or_else(|e| panic!("{domain}: {e}"));
    }
    let other = ServerName::try_from("other.acme.test").expect("name");
    assert!(verifier
        .verify_server_cert(&chain[0], &chain[1..], &other, &[], UnixTime::now())
        .is_err());
    assert!(stored.not_before < stored.not_after);
    let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode(&stored.key_path), 0o600, "the key is private");
}

fn order(ca: &Ca, settings: &AcmeSettings) -> StoredCertificate {
    let mut client =
        AcmeClient::new(settings).unwrap_or_else(|e| panic!("{e}\n{}", ca.pebble.log()));
    client
        .order(ca.responder.as_ref())
        .unwrap_or_else(|e| panic!("{e}\n{}", ca.pebble.log()))
}

#[test]
fn http_01_issues_a_certificate_and_a_restart_reuses_account_and_certificate() {
    // A third of good nonces refused: the client retries badNonce itself.
    let Some(ca) = start_ca(|o| o.nonce_reject = 30) else {
        return;
    };
    let state = temp_dir("acme-http01");
    let domains = ["a.acme.test", "www.acme.test"];
    let settings = settings(&ca, &state, &domains, ChallengeKind::Http01);
    assert_eq!(AcmeClient::stored(&settings), None, "nothing stored yet");
    let mut client =
        AcmeClient::new(&settings).unwrap_or_else(|e| panic!("{e}\n{}", ca.pebble.log()));
    assert!(
        !client.offers_renewal_info(),
        "pebble 2.4 has no renewalInfo"
    );
    let stored = client
        .order(ca.responder.as_ref())
        .unwrap_or_else(|e| panic!("{e}\n{}", ca.pebble.log()));
    assert_verifies(&ca, &stored, &domains);
    assert_eq!(client.renewal_window(&stored), None);
    let r = &ca.responder;
    assert!(r.published.load(Ordering::SeqCst) <= domains.len());
    assert_eq!(
        r.published.load(Ordering::SeqCst),
        r.withdrawn.load(Ordering::SeqCst)
    );
    assert!(
        r.http.lock().expect("http").is_empty(),
        "every challenge withdrawn"
    );
    assert_eq!(
        std::fs::metadata(&state)
            .expect("state")
            .permissions()
            .mode()
            & 0o777,
        0o700
    );

    // A restart: the same account (its key file untouched), and the
    // certificate found on disk for exactly these domains.
    let keys: Vec<_> = walk(&state.join("accounts"))
        .into_iter()
        .filter(|p| p.ends_with("key.pem"))
        .collect();
    assert_eq!(keys.len(), 1, "one account key: {keys:?}");
    let key_before = std::fs::read(&keys[0]).expect("key");
    let url = client.account_url().to_string();
    drop(client);
    let again = AcmeClient::new(&settings).expect("again");
    assert_eq!(again.account_url(), url, "the account is reused");
    assert_eq!(std::fs::read(&keys[0]).expect("key"), key_before);
    assert_eq!(AcmeClient::stored(&settings), Some(stored.clone()));
    let mut fewer = settings.clone();
    fewer.domains.pop();
    assert_eq!(AcmeClient::stored(&fewer), None, "not for other domains");
    let _ = std::fs::remove_dir_all(&state);
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn tls_alpn_01_issues_a_certificate_that_verifies_against_pebbles_root() {
    let Some(ca) = start_ca(|o| o.validity = Some(Duration::from_secs(3600))) else {
        return;
    };
    let state = temp_dir("acme-tlsalpn01");
    let domains = ["b.acme.test"];
    let settings = settings(&ca, &state, &domains, ChallengeKind::TlsAlpn01);
    let stored = order(&ca, &settings);
    assert_verifies(&ca, &stored, &domains);
    let lifetime = stored
        .not_after
        .duration_since(stored.not_before)
        .expect("lifetime");
    assert!(
        lifetime <= Duration::from_secs(3600 + 60),
        "certificateValidityPeriod is honoured: {lifetime:?}"
    );
    assert!(
        ca.responder.tls.lock().expect("tls").is_empty(),
        "withdrawn"
    );
    // A second order stores a second certificate; the newer is found.
    let newer = order(&ca, &settings);
    assert_ne!(newer.cert_path, stored.cert_path);
    assert_eq!(AcmeClient::stored(&settings), Some(newer));
    let _ = std::fs::remove_dir_all(&state);
}

/// A challenge nobody answers: the CA refuses the authorization, and the
/// error says which domain and what the CA saw, soon.
#[test]
fn a_failed_validation_is_a_clear_error() {
    let Some(ca) = start_ca(|o| o.env.push(("PEBBLE_AUTHZREUSE".into(), "0".into()))) else {
        return;
    };
    struct Silent;
    impl Responder for Silent {
        fn publish(&self, _: &Challenge) {}
        fn withdraw(&self, _: &Challenge) {}
    }
    let state = temp_dir("acme-refused");
    let settings = settings(&ca, &state, &["c.acme.test"], ChallengeKind::Http01);
    let mut client = AcmeClient::new(&settings).expect("client");
    let started = Instant::now();
    let err = client.order(&Silent).expect_err("nothing answers");
    let text = err.to_string();
    assert!(
        text.contains("c.acme.test") && text.contains("invalid"),
        "{text}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(AcmeClient::stored(&settings), None);
    let _ = std::fs::remove_dir_all(&state);
}

/// No CA at the URL (refused), and a CA that accepts and never answers:
/// each a clear error within the request timeout, no hang.
#[test]
fn a_ca_that_is_down_or_stalls_fails_within_a_bounded_time() {
    let state = temp_dir("acme-down");
    let closed = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let mut settings = AcmeSettings {
        directory: format!("https://127.0.0.1:{port}/dir"),
        email: None,
        domains: vec!["d.acme.test".to_string()],
        state_dir: state.clone(),
        ca_file: None,
        challenge: ChallengeKind::TlsAlpn01,
    };
    let timeouts = Timeouts {
        request: Duration::from_secs(2),
        order: Duration::from_secs(10),
    };
    let started = Instant::now();
    let err = AcmeClient::with_timeouts(&settings, timeouts).expect_err("down");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(err.to_string().contains(&settings.directory), "{err}");

    let stalled = TcpListener::bind("127.0.0.1:0").expect("bind");
    settings.directory = format!("https://{}/dir", stalled.local_addr().expect("addr"));
    let started = Instant::now();
    let err = AcmeClient::with_timeouts(&settings, timeouts).expect_err("stalls");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    assert!(
        err.to_string().contains("fetching the ACME directory")
            && err.to_string().contains("no answer within 2s"),
        "{err}"
    );
    drop(stalled);

    settings.ca_file = Some(state.join("missing.pem"));
    let err = AcmeClient::with_timeouts(&settings, timeouts).expect_err("no file");
    assert!(err.to_string().starts_with("acme.ca_file"), "{err}");
    let _ = std::fs::remove_dir_all(&state);
}

/// What the fake CA below saw.
#[derive(Default)]
struct Seen {
    paths: Vec<String>,
    orders: Vec<serde_json::Value>,
}

/// A request read off `stream`: method, path, body.
fn read_request(stream: &TcpStream) -> Option<(String, String, Vec<u8>)> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut words = line.split_whitespace();
    let (method, path) = (words.next()?.to_string(), words.next()?.to_string());
    let mut length = 0;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        if header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; length];
    std::io::Read::read_exact(&mut reader, &mut body).ok()?;
    Some((method, path, body))
}

fn base64url_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let (mut out, mut acc, mut bits) = (Vec::new(), 0u32, 0);
    for c in text.bytes() {
        let v = ALPHABET.iter().position(|&a| a == c).expect("base64url") as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// A CA that offers renewal information (pebble 2.4 does not), over plain
/// HTTP, enough of it for an account, renewalInfo and a refused order.
fn fake_ari_ca(seen: Arc<Mutex<Seen>>) -> (Answering, String) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let root = base.clone();
    let answering = serve(listener, move |mut stream| {
        let Some((method, path, body)) = read_request(&stream) else {
            return;
        };
        seen.lock()
            .expect("seen")
            .paths
            .push(format!("{method} {path}"));
        let json = |status: &str, extra: &str, body: String| {
            format!(
                "HTTP/1.1 {status}\r\nreplay-nonce: n{}\r\n{extra}content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                path.len(),
                body.len()
            )
        };
        let response = match (method.as_str(), path.as_str()) {
            ("GET", "/dir") => json(
                "200 OK",
                "",
                serde_json::json!({
                    "newNonce": format!("{root}/nonce"),
                    "newAccount": format!("{root}/account"),
                    "newOrder": format!("{root}/order"),
                    "renewalInfo": format!("{root}/renewal-info"),
                })
                .to_string(),
            ),
            ("HEAD", "/nonce") => json("200 OK", "", String::new()),
            ("POST", "/account") => json("201 Created", &format!("location: {root}/acct/1\r\n"), "{}".into()),
            ("GET", p) if p.starts_with("/renewal-info/") => json(
                "200 OK",
                "retry-after: 21600\r\n",
                r#"{"suggestedWindow":{"start":"2025-01-02T04:00:00Z","end":"2025-01-03T04:00:00Z"}}"#.into(),
            ),
            ("POST", "/order") => {
                let jws: serde_json::Value = serde_json::from_slice(&body).expect("jws");
                let payload = base64url_decode(jws["payload"].as_str().expect("payload"));
                let payload = serde_json::from_slice(&payload).expect("payload json");
                seen.lock().expect("seen").orders.push(payload);
                json(
                    "403 Forbidden",
                    "",
                    r#"{"type":"urn:ietf:params:acme:error:unauthorized","detail":"not today"}"#.into(),
                )
            }
            _ => json("404 Not Found", "", "{}".into()),
        };
        let _ = stream.write_all(response.as_bytes());
    });
    (answering, base)
}

/// RFC 9773 against a CA that offers it: the renewal window is asked for
/// at `renewalInfo/<cert id>` (RFC 9773's example id: the leaf carries the
/// example's key identifier and serial), and a new order names the
/// certificate it replaces, then goes without if the CA refuses.
#[test]
fn renewal_information_when_the_ca_offers_it() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (_ca, base) = fake_ari_ca(seen.clone());
    let state = temp_dir("acme-ari");
    let directory = format!("{base}/dir");
    let settings = AcmeSettings {
        directory: directory.clone(),
        email: None,
        domains: vec!["e.acme.test".to_string()],
        state_dir: state.clone(),
        ca_file: None,
        challenge: ChallengeKind::Http01,
    };
    // The certificate as the client stores it (see src/acme/state.rs).
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.key_identifier_method = rcgen::KeyIdMethod::PreSpecified(vec![
        0x69, 0x88, 0x5b, 0x6b, 0x87, 0x46, 0x40, 0x41, 0xe1, 0xb3, 0x7b, 0x84, 0x7b, 0xa0, 0xae,
        0x2c, 0xde, 0x01, 0xc8, 0xd4,
    ]);
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params =
        rcgen::CertificateParams::new(vec!["e.acme.test".to_string()]).expect("params");
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&[
        0x00, 0x87, 0x65, 0x43, 0x21,
    ]));
    params.use_authority_key_identifier_extension = true;
    let now = std::time::SystemTime::now();
    params.not_before = (now - Duration::from_secs(60)).into();
    params.not_after = (now + Duration::from_secs(86_400)).into();
    let cert = params.signed_by(&key, &issuer).expect("cert");
    let entry = state.join("certificates/1-8765432100");
    std::fs::create_dir_all(&entry).expect("entry");
    std::fs::write(entry.join("cert.pem"), cert.pem()).expect("cert");
    std::fs::write(entry.join("key.pem"), key.serialize_pem()).expect("key");
    let meta = serde_json::json!({ "directory": directory, "domains": ["e.acme.test"] });
    std::fs::write(entry.join("meta.json"), meta.to_string()).expect("meta");
    let stored = AcmeClient::stored(&settings).expect("stored");

    let mut client = AcmeClient::new(&settings).expect("client");
    assert!(client.offers_renewal_info());
    let window = client.renewal_window(&stored).expect("window");
    let at = |s: u64| std::time::UNIX_EPOCH + Duration::from_secs(s);
    assert_eq!(window, (at(1_735_790_400), at(1_735_876_800)));
    let paths = seen.lock().expect("seen").paths.clone();
    assert!(
        paths.contains(&"GET /renewal-info/aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE".to_string()),
        "{paths:?}"
    );

    let err = client
        .order(&TestResponder::default())
        .expect_err("refused");
    assert!(err.to_string().contains("not today"), "{err}");
    let orders = seen.lock().expect("seen").orders.clone();
    assert_eq!(orders.len(), 2, "{orders:?}");
    assert_eq!(orders[0]["replaces"], "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE");
    assert!(orders[1].get("replaces").is_none());
    assert_eq!(orders[1]["identifiers"][0]["value"], "e.acme.test");
    let _ = std::fs::remove_dir_all(&state);
}

/// Pebble frozen mid-life (SIGSTOP): the client gives up within its
/// request timeout with a clear error; thawed, the same client orders.
/// Stopped for good: refused at once.
#[test]
fn a_stalled_ca_times_out_and_the_client_orders_once_it_is_back() {
    let Some(mut ca) = start_ca(|_| {}) else {
        return;
    };
    let state = temp_dir("acme-stalled");
    let settings = settings(&ca, &state, &["f.acme.test"], ChallengeKind::Http01);
    let timeouts = Timeouts {
        request: Duration::from_secs(2),
        order: Duration::from_secs(30),
    };
    let mut client = AcmeClient::with_timeouts(&settings, timeouts).expect("client");
    ca.pebble.pause();
    let started = Instant::now();
    let err = client.order(ca.responder.as_ref()).expect_err("stalled");
    let waited = started.elapsed();
    ca.pebble.resume();
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    assert!(err.to_string().contains("no answer within 2s"), "{err}");
    let stored = client
        .order(ca.responder.as_ref())
        .unwrap_or_else(|e| panic!("{e}\n{}", ca.pebble.log()));
    assert_verifies(&ca, &stored, &["f.acme.test"]);
    ca.pebble.stop();
    let started = Instant::now();
    let err = client.order(ca.responder.as_ref()).expect_err("down");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(err.to_string().contains("creating the order"), "{err}");
    assert_eq!(
        AcmeClient::stored(&settings),
        Some(stored),
        "the old one stays"
    );
    let _ = std::fs::remove_dir_all(&state);
}
