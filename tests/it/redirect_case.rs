//! Whether a rule's `from` cares about case (docs/redirects.md): the
//! config's `[[redirects]]` and `[[rewrites]]` match the path exactly, as
//! nginx's `location` does; a site's `_redirects` matches whatever the case
//! of its letters, as Netlify does, with captures in the path's own case.

use crate::harness::*;
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
