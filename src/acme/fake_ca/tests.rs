//! The client against the fake CA: what it sends, and what it does with
//! broken, huge, slow or hostile answers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};

use super::*;

fn temp_state(name: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "conveyor-fake-ca-{name}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn quick() -> Timeouts {
    Timeouts {
        request: Duration::from_secs(2),
        order: Duration::from_secs(5),
    }
}

/// Records what is published; answers nothing.
#[derive(Default)]
struct Recorder {
    published: Mutex<Vec<Challenge>>,
}

impl Responder for Recorder {
    fn publish(&self, challenge: &Challenge) {
        self.published.lock().expect("lock").push(challenge.clone());
    }
    fn withdraw(&self, _challenge: &Challenge) {}
}

/// Every POST is a flattened JWS sent as `application/jose+json`: `jwk`
/// only for newAccount, the account URL as `kid` after; `url` the URL
/// it goes to; each nonce one the CA gave, spent once; ES256 as r || s;
/// POST-as-GET with the empty payload; the chain asked for as
/// `application/pem-certificate-chain`.
#[test]
fn requests_are_the_jws_rfc_8555_asks_for() {
    let ca = FakeCa::start(|request, base| match request.path.as_str() {
        "/order" => Some(json_answer(
            201,
            vec![("location", format!("{base}/order/1"))],
            json!({"status": "pending", "authorizations": []}),
        )),
        "/order/1" => Some(json_answer(
            200,
            vec![],
            json!({"status": "valid", "certificate": format!("{base}/cert/1")}),
        )),
        "/cert/1" => Some(Answer::Plain(200, vec![], b"not a chain".to_vec())),
        _ => None,
    });
    let state = temp_state("jws");
    let mut client = AcmeClient::with_timeouts(&ca.settings(&state), quick()).expect("client");
    assert_eq!(client.account_url(), ca.url("/acct/1"));
    let err = client.order(&Recorder::default()).expect_err("bad chain");
    assert!(err.to_string().contains("does not parse"), "{err}");
    let requests = ca.requests();
    let posts: Vec<&Request> = requests.iter().filter(|r| r.method == "POST").collect();
    let paths: Vec<&str> = posts.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/acct", "/order", "/order/1", "/cert/1"]);
    let mut spent = Vec::new();
    for post in &posts {
        assert_eq!(post.header("content-type"), Some("application/jose+json"));
        let (protected, payload, signature) = post.jws();
        assert_eq!(protected["alg"], "ES256");
        assert_eq!(protected["url"], ca.url(&post.path));
        assert_eq!(signature.len(), 64, "ES256 is r || s");
        let nonce = protected["nonce"].as_str().expect("nonce").to_string();
        assert!(
            nonce.starts_with("nonce") && !spent.contains(&nonce),
            "{nonce}"
        );
        spent.push(nonce);
        if post.path == "/acct" {
            assert_eq!(protected["jwk"]["kty"], "EC");
            assert!(protected.get("kid").is_none());
            assert_eq!(payload["termsOfServiceAgreed"], true);
        } else {
            assert_eq!(protected["kid"], ca.url("/acct/1"));
            assert!(protected.get("jwk").is_none());
        }
        if post.path == "/order/1" || post.path == "/cert/1" {
            assert_eq!(payload, Value::Null, "POST-as-GET");
        }
    }
    assert_eq!(
        posts[3].header("accept"),
        Some("application/pem-certificate-chain")
    );
    let _ = std::fs::remove_dir_all(&state);
}

/// Directories a broken CA could serve: each a clear error, in bounded
/// time, and never a panic.
#[test]
fn a_broken_directory_is_a_clear_error() {
    let huge = vec![b' '; 3 << 20];
    let cases: Vec<(Answer, &str)> = vec![
        (
            Answer::Plain(200, vec![], b"<html>hi</html>".to_vec()),
            "directory is not JSON",
        ),
        (
            Answer::Plain(200, vec![], b"[1, 2]".to_vec()),
            "has no newNonce",
        ),
        (
            json_answer(200, vec![], json!({"newNonce": 5})),
            "has no newNonce",
        ),
        (Answer::Plain(200, vec![], Vec::new()), "not JSON"),
        (Answer::Plain(200, vec![], huge), "reading the answer"),
        (
            Answer::Plain(503, vec![], b"<h1>down\r\nfor maintenance</h1>".to_vec()),
            "the CA answered 503",
        ),
        (Answer::Close, "fetching the ACME directory"),
        (Answer::Stall, "fetching the ACME directory"),
    ];
    for (answer, expected) in cases {
        let answer = Mutex::new(Some(answer));
        let ca = FakeCa::start(move |request, _| {
            (request.path == "/directory")
                .then(|| answer.lock().expect("lock").take())
                .flatten()
        });
        let state = temp_state("directory");
        let started = Instant::now();
        let err = AcmeClient::with_timeouts(&ca.settings(&state), quick()).expect_err(expected);
        assert!(err.to_string().contains(expected), "{expected}: {err}");
        assert!(!err.to_string().contains('\n'), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10), "{expected}");
        let _ = std::fs::remove_dir_all(&state);
    }
}

/// Nonces and accounts a broken CA could answer.
#[test]
fn broken_nonces_and_accounts_are_clear_errors() {
    // Every answer carries the bad nonce, so none is ever usable.
    for bad in ["a b/c".to_string(), "n".repeat(2000), String::new()] {
        let ca = FakeCa::start(move |request, base| match standard(request, base) {
            Answer::Plain(status, mut headers, body) => {
                headers.push(("replay-nonce", bad.clone()));
                Some(Answer::Plain(status, headers, body))
            }
            other => Some(other),
        });
        let state = temp_state("nonce");
        let err = AcmeClient::with_timeouts(&ca.settings(&state), quick()).expect_err("nonce");
        assert!(err.to_string().contains("no valid Replay-Nonce"), "{err}");
        let _ = std::fs::remove_dir_all(&state);
    }
    let cases: Vec<(&'static str, Answer, &str)> = vec![
        (
            "/acct",
            json_answer(201, vec![], json!({"status": "valid"})),
            "newAccount answer has no Location",
        ),
        (
            "/acct",
            json_answer(
                400,
                vec![("retry-after", "99999999999999999999".into())],
                json!({
                    "type": "urn:ietf:params:acme:error:malformed",
                    "detail": format!("bad\nline{}", "x".repeat(100_000)),
                    "subproblems": vec![json!({"detail": "sub"}); 1000],
                }),
            ),
            "malformed: bad\\nlinexxx",
        ),
    ];
    for (path, answer, expected) in cases {
        let answer = Mutex::new(Some(answer));
        let ca = FakeCa::start(move |request, _| {
            (request.path == path)
                .then(|| answer.lock().expect("lock").take())
                .flatten()
        });
        let state = temp_state("account");
        let err = AcmeClient::with_timeouts(&ca.settings(&state), quick()).expect_err(expected);
        let text = err.to_string();
        assert!(text.contains(expected), "{expected}: {text}");
        assert!(!text.contains('\n'), "{text}");
        assert!(text.len() < 2000, "{} bytes", text.len());
        let _ = std::fs::remove_dir_all(&state);
    }
}

/// An authorization for a name we did not ask for, or a token that is not
/// base64url (a path to escape the challenge directory): refused before
/// anything is published.
#[test]
fn hostile_authorizations_publish_nothing() {
    let cases = [
        ("evil.test", "abc", "not in acme.domains"),
        ("a.test", "../../etc/passwd", "not base64url"),
        ("a.test", "", "not base64url"),
        ("a.test", "a%2F..", "not base64url"),
    ];
    for (domain, token, expected) in cases {
        let ca = FakeCa::start(move |request, base| match request.path.as_str() {
            "/order" => Some(json_answer(
                201,
                vec![("location", format!("{base}/order/1"))],
                json!({"status": "pending", "authorizations": [format!("{base}/authz/1")]}),
            )),
            "/authz/1" => Some(json_answer(
                200,
                vec![],
                json!({
                    "status": "pending",
                    "identifier": {"type": "dns", "value": domain},
                    "challenges": [{"type": "http-01", "token": token, "url": format!("{base}/chall/1")}],
                }),
            )),
            _ => None,
        });
        let state = temp_state("authz");
        let mut client = AcmeClient::with_timeouts(&ca.settings(&state), quick()).expect("client");
        let recorder = Recorder::default();
        let err = client.order(&recorder).expect_err(expected);
        assert!(err.to_string().contains(expected), "{expected}: {err}");
        assert!(recorder.published.lock().expect("lock").is_empty());
        assert!(!ca.requests().iter().any(|r| r.path == "/chall/1"));
        let _ = std::fs::remove_dir_all(&state);
    }
}

/// An order listing more authorizations than we have domains (a CA
/// making us loop) is refused before the first is read.
#[test]
fn an_order_with_too_many_authorizations_is_refused() {
    let ca = FakeCa::start(|request, base| {
        let many: Vec<String> = (0..20_000).map(|i| format!("{base}/authz/{i}")).collect();
        (request.path == "/order").then(|| {
            json_answer(
                201,
                vec![("location", format!("{base}/order/1"))],
                json!({"status": "pending", "authorizations": many}),
            )
        })
    });
    let state = temp_state("many");
    let mut client = AcmeClient::with_timeouts(&ca.settings(&state), quick()).expect("client");
    let err = client.order(&Recorder::default()).expect_err("too many");
    assert!(
        err.to_string()
            .contains("20000 authorizations for 1 domains"),
        "{err}"
    );
    assert!(!ca.requests().iter().any(|r| r.path.starts_with("/authz/")));
    let _ = std::fs::remove_dir_all(&state);
}

/// Orders a broken CA could answer: odd JSON, odd statuses, a stall.
#[test]
fn broken_orders_are_clear_errors() {
    let cases: Vec<(Answer, &str)> = vec![
        (Answer::Plain(200, vec![], b"{".to_vec()), "not JSON"),
        (
            json_answer(200, vec![], json!(["status", "valid"])),
            "the order is : no detail",
        ),
        (
            json_answer(
                200,
                vec![],
                json!({"status": "invalid\u{1b}[31m", "error": {"detail": 7}}),
            ),
            "the order is invalid\\u{1b}[31m: no detail",
        ),
        (
            json_answer(200, vec![], json!({"status": "valid", "certificate": 1})),
            "valid order has no certificate URL",
        ),
        (
            json_answer(
                200,
                vec![],
                json!({"status": "valid", "certificate": "ftp://127.0.0.1/cert"}),
            ),
            "not an https URL",
        ),
        (Answer::Stall, "waiting for"),
    ];
    for (answer, expected) in cases {
        let answer = Mutex::new(Some(answer));
        let ca = FakeCa::start(move |request, base| match request.path.as_str() {
            "/order" => Some(json_answer(
                201,
                vec![("location", format!("{base}/order/1"))],
                json!({"status": "pending", "authorizations": "none"}),
            )),
            "/order/1" => answer.lock().expect("lock").take(),
            _ => None,
        });
        let state = temp_state("order");
        let mut client = AcmeClient::with_timeouts(&ca.settings(&state), quick()).expect("client");
        let started = Instant::now();
        let err = client.order(&Recorder::default()).expect_err(expected);
        assert!(err.to_string().contains(expected), "{expected}: {err}");
        assert!(started.elapsed() < Duration::from_secs(10), "{expected}");
        let _ = std::fs::remove_dir_all(&state);
    }
}

/// `renewal_info` tells "the CA offers none" (`Ok(None)`) from "asking
/// failed" (`Err`); `renewal_window` folds both into `None`.
#[test]
fn renewal_info_failures_are_errors() {
    let with_ari = |answer: Answer| {
        let answer = Mutex::new(Some(answer));
        FakeCa::start(move |request, base| {
            if request.path == "/directory" {
                return Some(directory(base, true));
            }
            if request.path.starts_with("/ari/") {
                return answer.lock().expect("lock").take();
            }
            None
        })
    };
    let state = temp_state("ari");
    let cert = certificate_with_aki(&state);
    let plain = FakeCa::start(|_, _| None);
    let mut client = AcmeClient::with_timeouts(&plain.settings(&state), quick()).expect("client");
    assert_eq!(client.renewal_info(&cert).expect("no ARI"), None);
    let window = json!({"suggestedWindow": {
        "start": "2030-01-01T00:00:00Z", "end": "2030-01-02T00:00:00Z"}});
    let cases: Vec<(Answer, Option<&str>)> = vec![
        (json_answer(200, vec![], window), None),
        (
            json_answer(500, vec![], json!({"detail": "ari down"})),
            Some("500"),
        ),
        (
            json_answer(200, vec![], json!({"suggestedWindow": {}})),
            Some("no suggestedWindow"),
        ),
        (Answer::Close, Some("asking for renewal information")),
    ];
    for (answer, expected) in cases {
        let ca = with_ari(answer);
        let mut client = AcmeClient::with_timeouts(&ca.settings(&state), quick()).expect("client");
        match (client.renewal_info(&cert), expected) {
            (Ok(Some((start, end))), None) => {
                assert!(start < end && start > SystemTime::now());
            }
            (Err(err), Some(expected)) => {
                assert!(err.to_string().contains(expected), "{expected}: {err}");
            }
            (other, _) => panic!("{expected:?}: {other:?}"),
        }
    }
    let mut unreadable = cert.clone();
    unreadable.cert_path = state.join("missing.pem");
    let ca = with_ari(Answer::Close);
    let mut client = AcmeClient::with_timeouts(&ca.settings(&state), quick()).expect("client");
    let err = client.renewal_info(&unreadable).expect_err("missing");
    assert!(err.to_string().contains("cannot read"), "{err}");
    assert_eq!(client.renewal_window(&unreadable), None);
    let _ = std::fs::remove_dir_all(&state);
}

/// A leaf for a.test signed by a throwaway issuer, with an authority key
/// identifier (what an ARI id is made of), stored in `state`.
fn certificate_with_aki(state: &Path) -> StoredCertificate {
    let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let mut params = rcgen::CertificateParams::new(vec!["a.test".to_string()]).expect("params");
    params.use_authority_key_identifier_extension = true;
    let cert = params.signed_by(&key, &issuer).expect("cert");
    let chain = jws::pem("CERTIFICATE", cert.der());
    state::ensure_dir(state).expect("dir");
    state::store_certificate(
        state,
        "https://ca.test/directory",
        chain.as_bytes(),
        &key.serialize_der(),
    )
    .expect("store")
}
