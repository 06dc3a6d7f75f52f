//! The `h2` crate's engine (`http2.engine = "h2"`), kept beside the
//! native one (the default, which the other HTTP/2 modules test): h2spec
//! over TLS and h2c, and the basics of serving over both transports.

use conveyor::config::{Config, Http2Engine};

use crate::h2spec::{conformance, find_h2spec};
use crate::harness::h2_client::{session, Target};
use crate::harness::start;
use crate::harness::tls::{localhost_pki, tls_addr, with_tls};

fn h2_engine(c: &mut Config) {
    c.http2.engine = Http2Engine::H2;
}

#[test]
fn the_h2_engine_passes_h2spec_over_tls_and_h2c() {
    let Some(h2spec) = find_h2spec() else { return };
    let pki = localhost_pki();
    let server = start("readiness", "spawn", |c| {
        with_tls(c, &pki);
        h2_engine(c);
    });
    let tls = tls_addr(&server).port().to_string();
    let plain = server.addr.port().to_string();
    let tls = conformance(&h2spec, &["-p", &tls, "-t", "-k"], "TLS, h2 engine");
    let h2c = conformance(&h2spec, &["-p", &plain], "h2c, h2 engine");
    println!("h2spec, h2 engine: TLS {tls}, h2c {h2c}");
}

#[test]
fn the_h2_engine_serves_files_and_echoes_bodies_on_both_transports() {
    let pki = localhost_pki();
    let server = start("readiness", "spawn", |c| {
        with_tls(c, &pki);
        h2_engine(c);
    });
    let index = std::fs::read(server.root.join("index.html")).expect("index");
    let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    for target in [
        Target::Cleartext(server.addr),
        Target::tls(tls_addr(&server), &pki.ders),
    ] {
        let (page, missing, echoed) = session(&target, {
            let body = body.clone();
            move |h2| async move {
                let page = h2.get("/index.html", &[]).await;
                let missing = h2.get("/no-such-file", &[]).await;
                let echoed = h2
                    .request("POST", "/echo", &[], Some(&body))
                    .await
                    .expect("echo");
                (page, missing, echoed)
            }
        });
        assert_eq!(
            (page.status, &page.body),
            (200, &index),
            "{}",
            target.name()
        );
        assert_eq!(missing.status, 404);
        assert_eq!((echoed.status, echoed.body.len()), (200, body.len()));
        assert_eq!(
            echoed.body,
            body,
            "{}: the echo comes back whole",
            target.name()
        );
    }
    let figures = server.status_json();
    assert!(figures.contains("\"streams\":6"), "{figures}");
}
