//! Virtual hosts (`[[sites]]`) over real sockets: a site chosen by `Host`
//! over HTTP/1.1 and by `:authority` over h2c and h2, its own settings,
//! the top level for an unknown host (or 404/421 with `unknown_host`),
//! 421 when the TLS server name (SNI) and the host name different sites,
//! and the requests per site in `/status`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::needs::CURL;
use crate::harness::status::status;
use crate::harness::tls::{client, connect, tls_addr, with_tls, Pki, BOTH};
use crate::harness::*;
use conveyor::config::Config;

/// Two site roots under a fresh directory: `a/` and `b/`, each with an
/// `index.html` saying which site it is.
fn site_roots() -> PathBuf {
    let dir = temp_dir("sites");
    for site in ["a", "b"] {
        std::fs::create_dir_all(dir.join(site)).expect("mkdir");
        std::fs::write(dir.join(site).join("index.html"), format!("site {site}\n")).expect("index");
    }
    dir
}

/// `[[sites]]` for `a.example` (exact; an SPA fallback and a header) and
/// `*.b.example` (a redirect), with roots under `dir`, and `extra` on top.
fn sites_config(dir: &Path, extra: &str) -> Config {
    let text = format!(
        r#"{extra}
[[sites]]
names = ["a.example", "www.a.example"]
root = "{a}"
fallback = "/index.html"
[[sites.headers]]
path = "*"
set = {{ X-Site = "a" }}

[[sites]]
names = ["*.b.example"]
root = "{b}"
[[sites.redirects]]
from = "/old"
to = "/new"
"#,
        a = dir.join("a").display(),
        b = dir.join("b").display(),
    );
    Config::from_toml_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn with_sites(config: &mut Config, sites: &Config) {
    config.sites = sites.sites.clone();
    config.unknown_host = sites.unknown_host;
}

/// `GET path` with this `Host`, on a new connection.
fn at(server: &TestServer, host: &str, path: &str) -> Response {
    ask(
        server,
        &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n"),
    )
}

/// One response from curl: status and body. `args` go before the URL.
fn curl(curl: &Path, args: &[&str], url: &str) -> (u16, String) {
    let out = Command::new(curl)
        .args(["-s", "--max-time", "10", "-w", "\n%{http_code}"])
        .args(args)
        .arg(url)
        .output()
        .expect("curl runs");
    assert!(out.status.success(), "curl {args:?} {url}: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').expect("a status");
    (code.parse().expect("a status"), body.to_string())
}

fn site_requests(server: &TestServer, site: &str) -> i64 {
    let s = status(server);
    s["sites"]["by_site"][site]["requests"]
        .as_i64()
        .unwrap_or_else(|| panic!("no requests for {site}: {s}"))
}

#[test]
fn the_host_picks_the_site_over_http1_and_h2c() {
    let dir = site_roots();
    let sites = sites_config(&dir, "");
    let server = start("readiness", "spawn", |c| with_sites(c, &sites));
    let top = std::fs::read(server.root.join("index.html")).expect("www index");

    // Exact names: any case, a port, a trailing dot.
    for host in ["a.example", "A.Example:8080", "a.example.", "www.a.example"] {
        let r = at(&server, host, "/");
        assert_eq!((r.status, r.text()), (200, "site a\n".into()), "{host}");
        assert_eq!(r.header("x-site"), Some("a"), "{host}: the site's headers");
    }
    // The site's own settings: its fallback answers a missing path; the
    // top level has none.
    let r = at(&server, "a.example", "/no/such/page");
    assert_eq!((r.status, r.text()), (200, "site a\n".into()));
    assert_eq!(at(&server, "other.example", "/no/such/page").status, 404);
    // A wildcard: one label before its name, not the name itself.
    let r = at(&server, "x.b.example", "/");
    assert_eq!((r.status, r.text()), (200, "site b\n".into()));
    assert_eq!(
        r.header("x-site"),
        None,
        "site b keeps the top level's headers"
    );
    let r = at(&server, "x.b.example", "/old");
    assert_eq!((r.status, r.header("location")), (308, Some("/new")));
    assert_eq!(at(&server, "a.example", "/old").status, 200, "a's fallback");
    // Not a site: the top level, and its files.
    for host in [
        "b.example",
        "y.x.b.example",
        "other.example",
        "127.0.0.1:80",
    ] {
        let r = at(&server, host, "/");
        assert_eq!(r.status, 200, "{host}");
        assert!(r.body == top, "{host}: the top-level root");
    }
    // HTTP/1.0 without Host: the top level too.
    let r = ask(&server, "GET / HTTP/1.0\r\n\r\n");
    assert!(r.status == 200 && r.body == top);
    // The endpoints answer on every site (the probes counted under none).
    assert_eq!(at(&server, "a.example", "/livez").status, 200);

    assert_eq!(site_requests(&server, "a.example"), 6);
    assert_eq!(site_requests(&server, "*.b.example"), 2);
    assert!(site_requests(&server, "(default)") >= 6);

    // h2c: the :authority picks the site (curl sends the Host given as
    // :authority).
    let Some(curl_path) = CURL.find() else { return };
    for (host, want) in [("a.example", "site a\n"), ("x.b.example", "site b\n")] {
        let args = ["--http2-prior-knowledge", "-H", &format!("Host: {host}")];
        let (code, body) = curl(&curl_path, &args, &server.url("/"));
        assert_eq!((code, body.as_str()), (200, want), "h2c {host}");
    }
    let args = ["--http2-prior-knowledge", "-H", "Host: a.example"];
    let (code, body) = curl(&curl_path, &args, &server.url("/missing"));
    assert_eq!(
        (code, body.as_str()),
        (200, "site a\n"),
        "h2c: a's fallback"
    );
    let (code, _) = curl(
        &curl_path,
        &["--http2-prior-knowledge"],
        &server.url("/missing"),
    );
    assert_eq!(code, 404, "h2c: the top level");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unknown_host_gets_what_unknown_host_says() {
    let dir = site_roots();
    for (setting, want) in [("404", 404), ("421", 421)] {
        let sites = sites_config(&dir, &format!("unknown_host = \"{setting}\""));
        let server = start("readiness", "spawn", |c| with_sites(c, &sites));
        assert_eq!(at(&server, "a.example", "/").status, 200);
        assert_eq!(at(&server, "other.example", "/").status, want, "{setting}");
        assert_eq!(ask(&server, "GET / HTTP/1.0\r\n\r\n").status, want);
        // The probes and /status answer whatever the host.
        assert_eq!(at(&server, "10.0.0.1", "/readyz").status, 200);
        assert_eq!(at(&server, "other.example", "/status").status, 200);
        let s = status(&server);
        assert_eq!(s["sites"]["unknown_refused"].as_i64(), Some(2), "{s}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_host_naming_another_site_than_the_server_name_gets_421() {
    let dir = site_roots();
    let sites = sites_config(&dir, "");
    let mut pki = Pki::new();
    pki.make(&["a.example", "x.b.example", "other.example"], &[]);
    let server = start("readiness", "spawn", |c| {
        with_sites(c, &sites);
        with_tls(c, &pki);
    });
    let addr = tls_addr(&server);
    let config = client(&pki.ders, BOTH);
    // HTTP/1.1: SNI a.example.
    let mut tls = connect(addr, &config, "a.example");
    let mut ask_tls = |host: &str| {
        write!(tls, "GET / HTTP/1.1\r\nHost: {host}\r\n\r\n").expect("send");
        read_response(&mut tls)
    };
    let r = ask_tls("a.example");
    assert_eq!((r.status, r.text()), (200, "site a\n".into()));
    assert_eq!(ask_tls("www.a.example:443").status, 200, "same site");
    assert_eq!(ask_tls("x.b.example").status, 421, "another site");
    assert_eq!(ask_tls("other.example").status, 421, "not a site");
    // SNI for no site: the top level's requests only.
    let mut tls = connect(addr, &config, "other.example");
    write!(tls, "GET / HTTP/1.1\r\nHost: a.example\r\n\r\n").expect("send");
    assert_eq!(read_response(&mut tls).status, 421);
    write!(tls, "GET / HTTP/1.1\r\nHost: elsewhere.example\r\n\r\n").expect("send");
    assert_eq!(read_response(&mut tls).status, 200);
    let s = status(&server);
    assert_eq!(s["sites"]["misdirected"].as_i64(), Some(3), "{s}");

    // h2 over TLS: the SNI is the URL's name, the :authority the Host given.
    let Some(curl_path) = CURL.find() else { return };
    let port = addr.port();
    let resolve = format!("a.example:{port}:127.0.0.1");
    let url = format!("https://a.example:{port}/");
    let args = ["-k", "--http2", "--resolve", &resolve];
    let (code, body) = curl(&curl_path, &args, &url);
    assert_eq!((code, body.as_str()), (200, "site a\n"), "h2, same names");
    let args = [
        "-k",
        "--http2",
        "--resolve",
        &resolve,
        "-H",
        "Host: x.b.example",
    ];
    let (code, _) = curl(&curl_path, &args, &url);
    assert_eq!(code, 421, "h2: :authority names another site than SNI");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_reload_rebuilds_the_sites_and_keeps_their_counts() {
    let dir = site_roots();
    let one = Config::from_toml_str(&format!(
        "[[sites]]\nnames = [\"a.example\"]\nroot = \"{}\"\n",
        dir.join("a").display()
    ))
    .expect("config");
    let server = start("readiness", "spawn", |c| with_sites(c, &one));
    let running = server.server();
    assert_eq!(at(&server, "a.example", "/").text(), "site a\n");
    assert_eq!(at(&server, "b.example", "/").status, 200, "the top level");

    // b added, a kept (its count goes on), unknown hosts refused.
    let two = sites_config(&dir, "unknown_host = \"404\"");
    let mut config = running.line().config.load().as_ref().clone();
    with_sites(&mut config, &two);
    running.reload(config.clone()).expect("reload");
    assert_eq!(at(&server, "x.b.example", "/").text(), "site b\n");
    assert_eq!(at(&server, "a.example", "/").text(), "site a\n");
    assert_eq!(at(&server, "b.example", "/").status, 404);
    assert_eq!(site_requests(&server, "a.example"), 2);
    assert_eq!(site_requests(&server, "*.b.example"), 1);

    // A root that is not there: refused, naming the site; the sites in
    // use stay.
    let mut broken = config.clone();
    broken.sites[1].root = dir.join("nope");
    let e = running.reload(broken).expect_err("a missing root");
    assert!(
        e.contains("site *.b.example") && e.contains("does not exist"),
        "{e}"
    );
    assert_eq!(at(&server, "x.b.example", "/").text(), "site b\n");

    // No sites: the top level for every host, no "sites" in /status.
    let mut none = config;
    none.sites.clear();
    running.reload(none).expect("reload");
    assert_eq!(at(&server, "a.example", "/").status, 200);
    assert_ne!(at(&server, "a.example", "/").text(), "site a\n");
    assert!(status(&server).get("sites").is_none());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The dashboard's card for the `"sites"` object: its text, or "none".
const SITES_CARD: &str = "(function () { var c = document.getElementById('x-sites');\
    return 'samples=' + document.body.dataset.samples + ';card=' + (c ? c.textContent : 'none'); })()";

#[test]
fn the_dashboard_shows_the_requests_per_site() {
    let Some(binary) = crate::harness::browser::chromium() else {
        return;
    };
    let dir = site_roots();
    let sites = sites_config(&dir, "");
    let server = start("readiness", "spawn", |c| with_sites(c, &sites));
    for _ in 0..3 {
        assert_eq!(at(&server, "a.example", "/").status, 200);
    }
    let (_browser, mut tools) =
        crate::harness::browser::open(&binary, &server.url("/status/dashboard"));
    let mut state = String::new();
    let drawn = wait_until(std::time::Duration::from_secs(60), || {
        state = tools.eval(SITES_CARD);
        state
            .split(';')
            .find_map(|kv| kv.strip_prefix("samples="))
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| n >= 3)
    });
    assert!(drawn, "{state}");
    // One line per figure, each site's count with its rate.
    assert!(
        state.contains("by site.a.example.requests3  (0/s)"),
        "{state}"
    );
    assert!(state.contains("misdirected0"), "{state}");
    assert!(state.contains("by site.(default).requests"), "{state}");
    println!("{state}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_site_may_have_its_own_basic_auth() {
    let Some(tool) = crate::harness::needs::HTPASSWD.find() else {
        return;
    };
    let dir = site_roots();
    let users = dir.join("users");
    let out = Command::new(&tool)
        .args(["-B", "-C", "5", "-c", "-b"])
        .arg(&users)
        .args(["alice", "wonderland"])
        .output()
        .expect("htpasswd runs");
    assert!(out.status.success(), "{out:?}");
    // Relative paths, as a file writes them: beneath the file's directory.
    std::fs::write(
        dir.join("c.toml"),
        "[[sites]]\nnames = [\"a.example\"]\nroot = \"a\"\n\
         [[sites.auth]]\npath = \"/\"\nhtpasswd = \"users\"\nrealm = \"Site A\"\n\
         [[sites]]\nnames = [\"b.example\"]\nroot = \"b\"\n",
    )
    .expect("config");
    let sites = Config::load(&dir.join("c.toml")).expect("config");
    let server = start("readiness", "spawn", |c| with_sites(c, &sites));
    let r = at(&server, "a.example", "/");
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Basic realm=\"Site A\", charset=\"UTF-8\"")
    );
    // alice:wonderland
    let r = ask(
        &server,
        "GET / HTTP/1.1\r\nHost: a.example\r\nAuthorization: Basic YWxpY2U6d29uZGVybGFuZA==\r\n\r\n",
    );
    assert_eq!((r.status, r.text()), (200, "site a\n".into()));
    // The other site and the top level are open.
    assert_eq!(at(&server, "b.example", "/").text(), "site b\n");
    assert_eq!(at(&server, "other.example", "/").status, 200);
    let _ = std::fs::remove_dir_all(&dir);
}
