//! Redirects and rewrites over real sockets, HTTP/1.1 and HTTP/2 (h2c
//! with curl's prior knowledge): `[[redirects]]`, `[[rewrites]]`, and a
//! site's Netlify `_redirects` and `_headers` (read, re-read on change,
//! never served).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::harness::needs::CURL;
use crate::harness::*;
use conveyor::config::Config;
use conveyor::Server;

fn rules(toml: &str) -> Config {
    Config::from_toml_str(toml).expect("config")
}

/// One response over h2c (prior knowledge) from curl: status, head
/// (lower-case names), body.
pub(crate) struct H2 {
    pub(crate) status: u16,
    pub(crate) head: String,
    pub(crate) body: String,
}

/// The path is sent as written (`--path-as-is`: curl would resolve `..`).
pub(crate) fn h2(curl: &Path, url: &str) -> H2 {
    let out = Command::new(curl)
        .args([
            "-s",
            "-i",
            "--http2-prior-knowledge",
            "--path-as-is",
            "--max-time",
            "10",
            url,
        ])
        .output()
        .expect("curl runs");
    assert!(out.status.success(), "curl {url}: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a head");
    assert!(head.starts_with("HTTP/2 "), "{head}");
    H2 {
        status: head[7..10].parse().expect("a status"),
        head: head.to_ascii_lowercase(),
        body: body.to_string(),
    }
}

const CONFIG_RULES: &str = r#"
[[redirects]]
from = "/old/*"
to = "/new/:splat"
[[redirects]]
from = "/blog/:year/:slug"
to = "/posts/:year-:slug"
status = 301
query = "drop"
[[redirects]]
from = "/go/*"
to = "/:splat"
status = 302
[[rewrites]]
from = "/pages/:name"
to = "/docs/:name"
[[rewrites]]
from = "/styles/*"
to = "/:splat"
[[rewrites]]
from = "/x/*"
to = "/y/:splat"
[[rewrites]]
from = "/y/b/*"
to = "/x/b/:splat"
"#;

#[test]
fn config_redirects_and_rewrites_over_http1_and_h2() {
    let c = rules(CONFIG_RULES);
    let server = start("readiness", "spawn", |config| {
        config.static_files.redirects = c.static_files.redirects.clone();
        config.static_files.rewrites = c.static_files.rewrites.clone();
    });
    // 308 by default, the query kept, the splat put in.
    let r = get_with(&server, "/old/a/b.html?x=1&y=2", "");
    assert_eq!(r.status, 308, "{r:?}");
    assert_eq!(r.header("location"), Some("/new/a/b.html?x=1&y=2"));
    // Placeholders; status 301; query = "drop".
    let r = get_with(&server, "/blog/2024/hello?utm=1", "");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("/posts/2024-hello"));
    // A capture starting with "/" never makes a URL to another host.
    let r = get_with(&server, "/go//evil.example/x", "");
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some("/evil.example/x"));
    // Rewrites serve another path with no round trip; the rewritten path
    // goes through the rules again.
    let docs = std::fs::read(server.root.join("docs/index.html")).expect("docs");
    let r = get_with(&server, "/pages/index.html", "");
    assert_eq!(r.status, 200, "{:?}", r.headers);
    assert!(r.body == docs, "/pages/index.html is /docs/index.html");
    assert_eq!(
        get_with(&server, "/pages/", "").status,
        404,
        "a placeholder is not empty"
    );
    let css = std::fs::read(server.root.join("style.css")).expect("css");
    let r = get_with(&server, "/styles/style.css?v=3", "");
    assert!(r.status == 200 && r.body == css, "{:?}", r.headers);
    // A directory reached by a rewrite, and a missing file: the static
    // files answer for the rewritten path.
    assert_eq!(get_with(&server, "/styles/nope.css", "").status, 404);
    // A loop no load-time check sees: cut off, 500.
    let r = get_with(&server, "/x/b/1", "");
    assert_eq!(r.status, 500, "{r:?}");
    assert_eq!(get_with(&server, "/x/a", "").status, 404, "/y/a: no file");
    // The probes and /status are never taken by a rule.
    assert_eq!(get_with(&server, "/livez", "").status, 200);

    let Some(curl) = CURL.find() else { return };
    let r = h2(&curl, &server.url("/old/a?x=1"));
    assert_eq!(r.status, 308);
    assert!(r.head.contains("\r\nlocation: /new/a?x=1"), "{}", r.head);
    let r = h2(&curl, &server.url("/blog/2024/hello?utm=1"));
    assert_eq!(r.status, 301);
    assert!(
        r.head.contains("\r\nlocation: /posts/2024-hello"),
        "{}",
        r.head
    );
    let r = h2(&curl, &server.url("/styles/style.css"));
    assert!(r.status == 200 && r.body.as_bytes() == css, "{}", r.head);
    assert_eq!(h2(&curl, &server.url("/x/b/1")).status, 500);
}

#[test]
fn loops_and_bad_rules_are_refused_at_load_naming_the_key() {
    let e = Config::from_toml_str("[[rewrites]]\nfrom = \"/*\"\nto = \"/index.html\"\n")
        .expect_err("a loop");
    let e = e.to_string();
    assert!(e.starts_with("rewrites"), "{e}");
    assert!(
        e.contains("is a loop") && e.contains("so the chain ends"),
        "{e}"
    );
    let e = Config::from_toml_str("[[redirects]]\nfrom = \"/a\"\nto = \"/b\"\nstatus = 200\n")
        .expect_err("a bad status")
        .to_string();
    assert!(
        e.starts_with("redirects") && e.contains("[[rewrites]]"),
        "{e}"
    );
    let e = Config::from_toml_str("[[redirects]]\nfrom = \"/a/:id\"\nto = \"/b/:slug\"\n")
        .expect_err("an unknown capture")
        .to_string();
    assert!(e.contains(":slug, which from"), "{e}");

    // A _redirects file with a visible loop stops start-up, naming the line.
    let root = temp_dir("redirects-loop");
    copy_www(&root);
    std::fs::write(
        root.join("_redirects"),
        "# site rules\n/* /index.html 200!\n",
    )
    .unwrap();
    let mut config = test_config(&root, "readiness", "spawn");
    config.static_files.netlify_files = true;
    let e = Server::start(config).err().expect("refused").to_string();
    assert!(
        e.contains("_redirects: line 2:") && e.contains("is a loop"),
        "{e}"
    );
    assert!(e.contains("drop the \"!\""), "{e}");
    // A chain through a config rule and a forced _redirects rule.
    std::fs::write(root.join("_redirects"), "/q/* /p/:splat 200!\n").unwrap();
    let mut config = test_config(&root, "readiness", "spawn");
    config.static_files.netlify_files = true;
    config.static_files.rewrites = rules("[[rewrites]]\nfrom = \"/p/*\"\nto = \"/q/:splat\"\n")
        .static_files
        .rewrites;
    let e = Server::start(config).err().expect("refused").to_string();
    assert!(
        e.contains("rewrites (rule 1)") && e.contains("is a loop"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&root);
}

const NETLIFY_REDIRECTS: &str = "\
# Netlify format
/home              /                      301
/news/:year/:slug  /blog/:year/:slug.html 302
/app/*             /app.html              200
/style.css         /app.js                200
/docs/*            /elsewhere/:splat      301!
/shop/*            /gone.html             404
";

const NETLIFY_HEADERS: &str = "\
/*
  X-Frame-Options: DENY
/docs/*
  Cache-Control: no-store
  ! X-Frame-Options
";

fn netlify_site() -> TestServer {
    start("readiness", "spawn", |config| {
        config.static_files.netlify_files = true;
        let root = &config.root;
        std::fs::write(root.join("_redirects"), NETLIFY_REDIRECTS).unwrap();
        std::fs::write(root.join("_headers"), NETLIFY_HEADERS).unwrap();
        std::fs::write(root.join("app.html"), "the app").unwrap();
        std::fs::write(root.join("gone.html"), "gone for good").unwrap();
        std::fs::create_dir_all(root.join("blog/2024")).unwrap();
        std::fs::write(root.join("blog/2024/hi.html"), "a post").unwrap();
    })
}

#[test]
fn netlify_files_redirect_rewrite_shadow_and_set_headers() {
    let server = netlify_site();
    let r = get_with(&server, "/home?x=1", "");
    assert_eq!((r.status, r.header("location")), (301, Some("/?x=1")));
    let r = get_with(&server, "/news/2024/hi", "");
    assert_eq!(
        (r.status, r.header("location")),
        (302, Some("/blog/2024/hi.html"))
    );
    // 200: a rewrite, for paths no file answers.
    let r = get_with(&server, "/app/settings/x", "");
    assert_eq!((r.status, r.text().as_str()), (200, "the app"), "{r:?}");
    // A directory without its index names no file either.
    std::fs::create_dir_all(server.root.join("app/empty")).unwrap();
    let r = get_with(&server, "/app/empty/", "");
    assert_eq!((r.status, r.text().as_str()), (200, "the app"), "{r:?}");
    // Unforced: the file at the path shadows the rule (Netlify's rule).
    let css = std::fs::read(server.root.join("style.css")).unwrap();
    assert!(
        get_with(&server, "/style.css", "").body == css,
        "the file, not app.js"
    );
    // Forced ("!"): taken even where a file exists.
    let r = get_with(&server, "/docs/", "");
    assert_eq!((r.status, r.header("location")), (301, Some("/elsewhere/")));
    // 404: the page at `to`, with status 404.
    let r = get_with(&server, "/shop/item", "");
    assert_eq!((r.status, r.text().as_str()), (404, "gone for good"));
    // _headers: the blocks matching the file served.
    let r = get_with(&server, "/index.html", "");
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert!(r.header("cache-control").is_none());
    let r = get_with(&server, "/blog/2024/hi.html", "");
    assert_eq!((r.status, r.header("x-frame-options")), (200, Some("DENY")));
    // The two files are never served, whatever the spelling.
    for path in [
        "/_redirects",
        "/_headers",
        "/%5fredirects",
        "/./_headers",
        "//_redirects",
    ] {
        assert_eq!(get_with(&server, path, "").status, 404, "{path}");
    }

    let Some(curl) = CURL.find() else { return };
    let r = h2(&curl, &server.url("/news/2024/hi?a=b"));
    assert_eq!(r.status, 302);
    assert!(
        r.head.contains("\r\nlocation: /blog/2024/hi.html?a=b"),
        "{}",
        r.head
    );
    let r = h2(&curl, &server.url("/app/deep/link"));
    assert_eq!((r.status, r.body.as_str()), (200, "the app"));
    let r = h2(&curl, &server.url("/shop/x"));
    assert_eq!((r.status, r.body.as_str()), (404, "gone for good"));
    let r = h2(&curl, &server.url("/"));
    assert!(r.head.contains("\r\nx-frame-options: deny"), "{}", r.head);
    assert_eq!(h2(&curl, &server.url("/_redirects")).status, 404);
    assert_eq!(h2(&curl, &server.url("/_headers")).status, 404);
}

#[test]
fn netlify_files_are_read_again_when_they_change() {
    let server = netlify_site();
    assert_eq!(get_with(&server, "/home", "").status, 301);
    std::fs::write(
        server.root.join("_redirects"),
        "/home /index.html 200!\n/new /app.html 302\n",
    )
    .unwrap();
    std::fs::write(server.root.join("_headers"), "/*\n  X-Version: 2\n").unwrap();
    let changed = wait_until(Duration::from_secs(10), || {
        get_with(&server, "/home", "").status == 200
    });
    assert!(changed, "the new _redirects was not picked up");
    let r = get_with(&server, "/new", "");
    assert_eq!((r.status, r.header("location")), (302, Some("/app.html")));
    let r = get_with(&server, "/index.html", "");
    assert_eq!(r.header("x-version"), Some("2"), "{r:?}");
    assert!(r.header("x-frame-options").is_none());
    if let Some(curl) = CURL.find() {
        let r = h2(&curl, &server.url("/new"));
        assert_eq!(r.status, 302, "{}", r.head);
        assert!(r.head.contains("\r\nlocation: /app.html"), "{}", r.head);
        let r = h2(&curl, &server.url("/index.html"));
        assert!(r.head.contains("\r\nx-version: 2"), "{}", r.head);
    }

    // A file that does not read keeps the rules in use: asked past one
    // check interval (1 s), the old rules still answer.
    std::fs::write(server.root.join("_redirects"), "/home /index.html 999\n").unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(get_with(&server, "/home", "").status, 200);
    // Removed: no rule left.
    std::fs::remove_file(server.root.join("_redirects")).unwrap();
    let gone = wait_until(Duration::from_secs(10), || {
        get_with(&server, "/new", "").status == 404
    });
    assert!(gone, "the removed _redirects still answers");
}

#[test]
fn netlify_files_are_not_listed() {
    let server = start("readiness", "spawn", |config| {
        config.static_files.netlify_files = true;
        config.static_files.listing = true;
        config.static_files.index = "none.html".into();
        std::fs::write(config.root.join("_redirects"), "/a /b 301\n").unwrap();
        std::fs::write(config.root.join("_headers"), "/*\n  X-A: 1\n").unwrap();
        std::fs::create_dir_all(config.root.join("sub")).unwrap();
        std::fs::write(config.root.join("sub/_headers"), "not the root's").unwrap();
    });
    let r = get_with(&server, "/", "");
    assert_eq!(r.status, 200);
    let listing = r.text();
    assert!(listing.contains("style.css"), "{listing}");
    assert!(
        !listing.contains("_redirects") && !listing.contains("_headers"),
        "{listing}"
    );
    // Only the root's are the site's rules; another directory's is a file.
    assert!(get_with(&server, "/sub/", "").text().contains("_headers"));
    assert_eq!(
        get_with(&server, "/sub/_headers", "").text(),
        "not the root's"
    );
}
