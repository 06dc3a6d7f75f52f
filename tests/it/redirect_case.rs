//! Whether a rule's `from` cares about case and spelling
//! (docs/redirects.md): the config's `[[redirects]]` and `[[rewrites]]`
//! match the path exactly, as nginx's `location` does; a site's
//! `_redirects` matches whatever the case of its letters, as Netlify does,
//! with captures in the path's own case. Both match the path as the
//! static files resolve it (escapes decoded, `.`, `..` and `//`
//! resolved), so no spelling of a path reaches its file past a rule.

use crate::harness::needs::CURL;
use crate::harness::*;
use crate::redirects::h2;
use conveyor::config::Config;

#[test]
fn config_rules_match_case_exactly_and_netlify_rules_whatever_the_case() {
    let c = Config::from_toml_str(
        "[[redirects]]\nfrom = \"/Old/*\"\nto = \"/new/:splat\"\nstatus = 301\n",
    )
    .expect("config");
    let server = start("readiness", "spawn", |config| {
        config.static_files.redirects = c.static_files.redirects.clone();
        config.static_files.netlify_files = true;
        let root = &config.root;
        std::fs::write(root.join("_redirects"), "/Blog/:slug /posts/:slug 302\n").unwrap();
    });
    let r = get_with(&server, "/Old/A.html", "");
    assert_eq!((r.status, r.header("location")), (301, Some("/new/A.html")));
    // Another case is another path: not this rule's.
    assert_eq!(get_with(&server, "/old/A.html", "").status, 404);
    assert_eq!(get_with(&server, "/OLD/A.html", "").status, 404);
    // `_redirects`: any case; the placeholder keeps what the client sent.
    for path in ["/Blog/Hello", "/blog/Hello", "/BLOG/Hello/"] {
        let r = get_with(&server, path, "");
        assert_eq!(
            (r.status, r.header("location")),
            (302, Some("/posts/Hello")),
            "{path}"
        );
    }
    assert_eq!(get_with(&server, "/blogs/Hello", "").status, 404);
}

const SPELLED_RULES: &str = r#"
[[redirects]]
from = "/old/*"
to = "/new/:splat"
status = 301
[[redirects]]
from = "/café"
to = "/cafe"
status = 302
[[redirects]]
from = "/go/*"
to = "/:splat"
status = 302
[[rewrites]]
from = "/pages/:name"
to = "/docs/:name"
"#;

#[test]
fn config_rules_match_every_spelling_of_a_path_over_http1_and_h2() {
    let c = Config::from_toml_str(SPELLED_RULES).expect("config");
    let server = start("readiness", "spawn", |config| {
        config.static_files.redirects = c.static_files.redirects.clone();
        config.static_files.rewrites = c.static_files.rewrites.clone();
        std::fs::create_dir_all(config.root.join("old")).unwrap();
        std::fs::write(config.root.join("old/a"), "the old page").unwrap();
    });
    // An escaped spelling, dot-segments, merged slashes: the rule, never
    // the file the static files would find at /old/a.
    for path in [
        "/old/a?x=1",
        "/%6Fld/a?x=1",
        "/x/../old/a?x=1",
        "//old/./a?x=1",
    ] {
        let r = get_with(&server, path, "");
        assert_eq!(
            (r.status, r.header("location")),
            (301, Some("/new/a?x=1")),
            "{path}"
        );
    }
    // A rule written with a non-ASCII character takes its escaped form.
    let r = get_with(&server, "/caf%C3%A9", "");
    assert_eq!((r.status, r.header("location")), (302, Some("/cafe")));
    // Captures are the decoded path, escaped again in `Location`: it
    // stays one valid URI, its `?` the query's only.
    let r = get_with(&server, "/old/a%20b%3Fc%25d/%C3%A9%23?q=1", "");
    assert_eq!(
        (r.status, r.header("location")),
        (301, Some("/new/a%20b%3Fc%25d/%C3%A9%23?q=1"))
    );
    // A resolved path never holds "//", and a Location never starts so.
    for path in ["/go//evil.example/x", "/go/.//evil.example/x"] {
        let r = get_with(&server, path, "");
        assert_eq!(
            (r.status, r.header("location")),
            (302, Some("/evil.example/x")),
            "{path}"
        );
    }
    // What the files refuse, no rule takes: an encoded "/" or NUL, a
    // malformed escape (400, as without rules).
    for path in ["/old%2Fa", "/old/%2F%2Fevil", "/old/%00", "/old/%zz"] {
        assert_eq!(get_with(&server, path, "").status, 400, "{path}");
    }
    // A rewrite: the escaped spelling is served the rewritten file.
    let docs = std::fs::read(server.root.join("docs/index.html")).expect("docs");
    let r = get_with(&server, "/p%61ges/index.html", "");
    assert!(r.status == 200 && r.body == docs, "{:?}", r.headers);

    let Some(curl) = CURL.find() else { return };
    for path in ["/%6Fld/a?x=1", "/x/../old/a?x=1"] {
        let r = h2(&curl, &server.url(path));
        assert_eq!(r.status, 301, "{path}");
        assert!(r.head.contains("\r\nlocation: /new/a?x=1"), "{}", r.head);
    }
    let r = h2(&curl, &server.url("/caf%C3%A9"));
    assert!(r.head.lines().any(|l| l == "location: /cafe"), "{}", r.head);
    let r = h2(&curl, &server.url("/old/a%20b%3Fc/%C3%A9"));
    let location = "location: /new/a%20b%3fc/%c3%a9"; // head lower-cased
    assert!(r.head.lines().any(|l| l == location), "{}", r.head);
    assert_eq!(h2(&curl, &server.url("/old%2Fa")).status, 400);
    let r = h2(&curl, &server.url("/p%61ges/index.html"));
    assert!(r.status == 200 && r.body.as_bytes() == docs, "{}", r.head);
}

#[test]
fn netlify_rules_match_every_spelling_of_a_path_over_http1_and_h2() {
    let server = start("readiness", "spawn", |config| {
        config.static_files.netlify_files = true;
        let root = &config.root;
        let rules = "/caf%C3%A9 /menu.html 200\n/Blog/:slug /posts/:slug 302\n\
                     /mañana/* /later/:splat 301!\n";
        std::fs::write(root.join("_redirects"), rules).unwrap();
        std::fs::write(root.join("menu.html"), "the menu").unwrap();
    });
    // An escaped rule is the rule for the decoded path (a rewrite on miss).
    let r = get_with(&server, "/caf%C3%A9", "");
    assert!(r.status == 200 && r.body == b"the menu", "{r:?}");
    // Escapes, dot-segments, any case (Netlify's); captures escaped again.
    for (path, location) in [
        ("/%62log/hi", "/posts/hi"),
        ("/x/../BLOG/hi", "/posts/hi"),
        ("/blog/a%20b%3F", "/posts/a%20b%3F"),
        ("/ma%C3%B1ana/x/../y%25", "/later/y%25"),
        ("/./ma%C3%B1ana/%C3%A9", "/later/%C3%A9"),
    ] {
        let r = get_with(&server, path, "");
        assert_eq!(r.header("location"), Some(location), "{path}: {r:?}");
    }
    assert_eq!(get_with(&server, "/blog/a%2Fb", "").status, 400);

    let Some(curl) = CURL.find() else { return };
    let r = h2(&curl, &server.url("/caf%C3%A9"));
    assert!(r.status == 200 && r.body == "the menu", "{}", r.head);
    let r = h2(&curl, &server.url("/x/../BLOG/a%20b"));
    assert_eq!(r.status, 302);
    assert!(
        r.head.lines().any(|l| l == "location: /posts/a%20b"),
        "{}",
        r.head
    );
    let r = h2(&curl, &server.url("/ma%C3%B1ana/%C3%A9"));
    assert_eq!(r.status, 301);
    let location = "location: /later/%c3%a9"; // head lower-cased
    assert!(r.head.lines().any(|l| l == location), "{}", r.head);
}
