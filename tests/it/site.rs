//! What a real site needs beyond its files, over real sockets: header
//! rules, CORS, error pages, the single-page-app fallback and directory
//! listings.

use std::io::Write;
use std::path::Path;

use crate::harness::*;
use conveyor::config::Config;

fn one(tweak: impl FnOnce(&mut Config)) -> TestServer {
    start("readiness", "spawn", tweak)
}

fn rules(toml: &str) -> Config {
    Config::from_toml_str(toml).expect("config")
}

#[test]
fn header_rules_set_add_and_remove_on_files_and_errors() {
    let c = rules(
        r#"
        [[headers]]
        path = "**"
        set = { Cache-Control = "max-age=60" }
        add = { X-Both = "one" }
        [[headers]]
        path = "*.html"
        set = { Cache-Control = "no-cache" }
        add = { X-Both = "two" }
        remove = ["Last-Modified"]
        [[headers]]
        path = "/docs/**"
        set = { Content-Security-Policy = "default-src 'self'" }
        errors = true
        "#,
    );
    let server = one(|config| config.static_files.headers = c.static_files.headers.clone());
    let css = get_with(&server, "/style.css", "");
    assert_eq!(css.status, 200);
    assert_eq!(css.all("cache-control"), ["max-age=60"]);
    assert_eq!(css.all("x-both"), ["one"]);
    assert!(css.header("last-modified").is_some());
    assert!(css.header("content-security-policy").is_none());

    // Later rules replace (set), add beside (add) and take out (remove).
    let home = get_with(&server, "/", "");
    assert_eq!(home.all("cache-control"), ["no-cache"], "{home:?}");
    assert_eq!(home.all("x-both"), ["one", "two"]);
    assert!(home.header("last-modified").is_none());
    assert!(home.header("etag").is_some());

    // The fields go on 304 and 206 too, where caches read them.
    let etag = home.header("etag").expect("etag").to_string();
    let not_modified = get_with(&server, "/", &format!("If-None-Match: {etag}\r\n"));
    assert_eq!(not_modified.status, 304);
    assert_eq!(not_modified.all("cache-control"), ["no-cache"]);
    let part = get_with(&server, "/style.css", "Range: bytes=0-3\r\n");
    assert_eq!(part.status, 206);
    assert_eq!(part.all("cache-control"), ["max-age=60"]);
    // What a rule removes stays out of them as well.
    assert!(
        not_modified.header("last-modified").is_none(),
        "{not_modified:?}"
    );
    let home_part = get_with(&server, "/", "Range: bytes=0-3\r\n");
    assert_eq!(home_part.status, 206);
    assert!(home_part.header("last-modified").is_none(), "{home_part:?}");
    assert!(home_part.header("etag").is_some());
    assert_eq!(home_part.all("cache-control"), ["no-cache"]);

    let docs = get_with(&server, "/docs/", "");
    assert_eq!(
        docs.header("content-security-policy"),
        Some("default-src 'self'")
    );
    // Only rules that say errors = true reach error responses.
    let missing = get_with(&server, "/docs/nope.html", "");
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.header("content-security-policy"),
        Some("default-src 'self'")
    );
    assert!(missing.header("cache-control").is_none());
    assert!(get_with(&server, "/nope", "")
        .header("content-security-policy")
        .is_none());

    // A cached file keeps its rules: the second answer is the first's.
    let again = get_with(&server, "/", "");
    assert_eq!(again.all("x-both"), ["one", "two"]);
}

#[test]
fn the_shipped_rules_give_every_default_response_an_explicit_freshness() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/conveyor.toml");
    let shipped = Config::load(&path).expect("shipped config");
    assert!(
        Config::default().static_files.headers.is_empty(),
        "no file, no rules"
    );
    let server = one(|c| c.static_files.headers = shipped.static_files.headers.clone());
    for (path, cache_control) in [
        ("/", "no-cache"),
        ("/docs/", "no-cache"),
        ("/style.css", "max-age=3600"),
        ("/app.js", "max-age=3600"),
        ("/conveyor.svg", "max-age=3600"),
    ] {
        let r = get_with(&server, path, "");
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.all("cache-control"), [cache_control], "{path}");
        assert_eq!(r.all("x-content-type-options"), ["nosniff"], "{path}");
    }
    let missing = get_with(&server, "/nope", "");
    assert_eq!(missing.header("x-content-type-options"), Some("nosniff"));
}

fn cors(origins: &str, credentials: bool) -> Config {
    rules(&format!(
        "[cors]\norigins = {origins}\nheaders = [\"Range\"]\nmax_age = \"1h\"\ncredentials = {credentials}\n"
    ))
}

#[test]
fn cors_answers_preflights_and_marks_what_depends_on_the_origin() {
    let c = cors("[\"https://app.example\"]", true);
    let server = one(|config| config.static_files.cors = c.static_files.cors.clone());
    let preflight = ask(
        &server,
        "OPTIONS /style.css HTTP/1.1\r\nHost: t\r\nOrigin: https://app.example\r\n\
         Access-Control-Request-Method: GET\r\nAccess-Control-Request-Headers: range\r\n\r\n",
    );
    assert_eq!(preflight.status, 204, "{preflight:?}");
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(
        preflight.header("access-control-allow-methods"),
        Some("GET, HEAD")
    );
    assert_eq!(
        preflight.header("access-control-allow-headers"),
        Some("Range")
    );
    assert_eq!(preflight.header("access-control-max-age"), Some("3600"));
    assert_eq!(
        preflight.header("access-control-allow-credentials"),
        Some("true")
    );
    assert!(preflight.all("vary").iter().any(|v| v == "Origin"));

    let simple = get_with(&server, "/style.css", "Origin: https://app.example\r\n");
    assert_eq!(simple.status, 200);
    assert_eq!(
        simple.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    let exposed = simple
        .header("access-control-expose-headers")
        .expect("expose");
    assert!(exposed.contains("Content-Range") && exposed.contains("Accept-Ranges"));
    assert!(simple.all("vary").iter().any(|v| v == "Origin"));
    let part = get_with(
        &server,
        "/style.css",
        "Origin: https://app.example\r\nRange: bytes=0-1\r\n",
    );
    assert_eq!(part.status, 206);
    assert!(part.header("access-control-allow-origin").is_some());

    // Another origin: no permission, but the answer still varies by origin.
    // The slash redirect carries them too: a browser checks it first.
    let moved = get_with(&server, "/docs", "Origin: https://app.example\r\n");
    assert_eq!(moved.status, 301);
    assert_eq!(
        moved.header("access-control-allow-origin"),
        Some("https://app.example"),
        "{moved:?}"
    );
    let other = get_with(&server, "/style.css", "Origin: https://evil.example\r\n");
    assert!(other.header("access-control-allow-origin").is_none());
    assert!(other.all("vary").iter().any(|v| v == "Origin"));
    // OPTIONS that is no preflight is still not a method files answer.
    let plain_options = ask(&server, "OPTIONS /style.css HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(plain_options.status, 405);

    // "*" is the same answer for every origin: no Vary: Origin.
    let c = cors("\"*\"", false);
    let any = one(|config| config.static_files.cors = c.static_files.cors.clone());
    let r = get_with(&any, "/style.css", "Origin: https://x.example\r\n");
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert!(!r.all("vary").iter().any(|v| v == "Origin"));

    // Not configured: nothing added, OPTIONS is 405.
    let off = one(|_| {});
    let r = get_with(&off, "/style.css", "Origin: https://app.example\r\n");
    assert!(r.header("access-control-allow-origin").is_none());
    assert!(!r.all("vary").iter().any(|v| v.contains("Origin")));
    let r = ask(
        &off,
        "OPTIONS / HTTP/1.1\r\nHost: t\r\nOrigin: https://a.example\r\n\
         Access-Control-Request-Method: GET\r\n\r\n",
    );
    assert_eq!(r.status, 405);
}

#[test]
fn error_pages_keep_the_status_and_head_has_no_body() {
    let server = one(|c| {
        c.static_files
            .error_pages
            .insert(404, "/errors/404.html".into());
        c.static_files
            .error_pages
            .insert(503, "/errors/missing.html".into());
    });
    std::fs::create_dir_all(server.root.join("errors")).expect("mkdir");
    std::fs::write(server.root.join("errors/404.html"), "<h1>not here</h1>\n").expect("write");
    for path in ["/nope", "/.env", "/a/../b"] {
        let r = get_with(&server, path, "");
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.text(), "<h1>not here</h1>\n", "{path}");
        assert!(r
            .header("content-type")
            .expect("type")
            .starts_with("text/html"));
    }
    let mut stream = server.connect();
    let head = exchange(&mut stream, "HEAD /nope HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(head.status, 404);
    assert_eq!(head.header("content-length"), Some("18"));
    assert!(head.body.is_empty());
    // The connection is still good for the next request.
    assert_eq!(get(&mut stream, "/style.css").status, 200);
    // A changed page is served changed (through the cache like any file).
    std::fs::write(server.root.join("errors/404.html"), "gone\n").expect("write");
    assert!(wait_until(std::time::Duration::from_secs(5), || get_with(
        &server, "/nope", ""
    )
    .text()
        == "gone\n"));
    // Status without a page (400) and a page that is missing stay plain.
    let bad = get_with(&server, "/%zz", "");
    assert_eq!(bad.status, 400);
    assert!(bad.text().starts_with("400 "));
}

#[test]
fn the_fallback_answers_missing_paths_only() {
    let server = one(|c| c.static_files.fallback = "/index.html".into());
    std::fs::write(server.root.join(".env"), "SECRET=1\n").expect("write");
    let index = std::fs::read(server.root.join("index.html")).expect("index");
    for path in ["/app/settings", "/missing.js", "/deep/a/b/c"] {
        let r = get_with(&server, path, "");
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.body, index, "{path}");
    }
    let head = ask(&server, "HEAD /app/x HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    // A ".." segment, raw or encoded, never gets the fallback (nor a file
    // beside the root): a 404.
    let outside = server.root.with_extension("outside");
    std::fs::create_dir_all(&outside).expect("mkdir");
    std::fs::write(outside.join("secret.txt"), "SECRET=2\n").expect("write");
    let name = outside
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    for path in [
        format!("/../{name}/secret.txt"),
        format!("/%2e%2e/{name}/secret.txt"),
    ] {
        let r = get_with(&server, &path, "");
        assert!(!r.text().contains("SECRET"), "{path}");
        assert_eq!(r.status, 404, "{path}");
        assert_ne!(r.body, index, "{path}");
    }
    // Resolving ".." still works for a file that exists.
    assert_eq!(get_with(&server, "/app/%2e%2e/style.css", "").status, 200);
    assert_eq!(get_with(&server, "/app/%2e%2e/nothing", "").status, 404);
    // Symlinks out of the root are refused, not fallen back from.
    std::os::unix::fs::symlink(outside.join("secret.txt"), server.root.join("link.txt"))
        .expect("symlink");
    std::os::unix::fs::symlink(outside.join("none.txt"), server.root.join("dangling.txt"))
        .expect("symlink");
    // Paths the rules refuse keep their error; other methods their 405.
    for (request, status) in [
        ("GET /link.txt HTTP/1.1", 404),
        ("GET /dangling.txt HTTP/1.1", 404),
        ("GET /.env HTTP/1.1", 404),
        ("GET /.git/config HTTP/1.1", 404),
        ("GET /a%2fb HTTP/1.1", 400),
        ("POST /app/settings HTTP/1.1", 405),
        ("DELETE /app HTTP/1.1", 405),
    ] {
        let r = ask(
            &server,
            &format!("{request}\r\nHost: t\r\nContent-Length: 0\r\n\r\n"),
        );
        assert_eq!(r.status, status, "{request}");
        assert!(!r.text().contains("SECRET") && r.body != index, "{request}");
    }
    std::fs::remove_dir_all(&outside).expect("cleanup");
    // Real files are themselves.
    assert_eq!(get_with(&server, "/style.css", "").status, 200);
    assert!(get_with(&server, "/style.css", "")
        .header("content-type")
        .expect("type")
        .starts_with("text/css"));

    let strict = one(|c| {
        c.static_files.fallback = "/index.html".into();
        c.static_files.fallback_only_without_extension = true;
    });
    assert_eq!(get_with(&strict, "/app/settings", "").status, 200);
    assert_eq!(get_with(&strict, "/missing.js", "").status, 404);
}

/// The body of a chunked message, decoded; None if malformed or cut short.
fn dechunk(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n")?;
        let size = usize::from_str_radix(std::str::from_utf8(&body[..line_end]).ok()?, 16).ok()?;
        body = &body[line_end + 2..];
        if size == 0 {
            return (body == b"\r\n").then_some(out);
        }
        out.extend_from_slice(body.get(..size)?);
        body = body.get(size..)?.strip_prefix(b"\r\n")?;
    }
}

fn listing_server(tweak: impl FnOnce(&mut Config)) -> TestServer {
    one(|c| {
        c.static_files.listing = true;
        tweak(c);
    })
}

#[test]
fn listings_escape_any_name_and_respect_dotfiles_and_symlinks() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let server = listing_server(|_| {});
    let dir = server.root.join("files");
    std::fs::create_dir_all(dir.join("sub<dir>")).expect("mkdir");
    let names: [&[u8]; 6] = [
        b"<img src=x onerror=alert(1)>.txt",
        b"say \"hi\" & 'bye'.txt",
        b"two\nlines.txt",
        b"bad\xff\xfebytes.txt",
        b"javascript:alert(1)",
        b"plain.txt",
    ];
    for name in names {
        std::fs::write(dir.join(OsStr::from_bytes(name)), b"x").expect("write");
    }
    std::fs::write(dir.join(".hidden"), b"secret").expect("write");
    let outside = server.root.with_extension("out");
    std::fs::create_dir_all(&outside).expect("mkdir");
    std::fs::write(outside.join("o.txt"), b"o").expect("write");
    std::os::unix::fs::symlink(outside.join("o.txt"), dir.join("escape.txt")).expect("link");
    std::os::unix::fs::symlink("plain.txt", dir.join("inside.txt")).expect("link");

    let page = get_with(&server, "/files/", "");
    assert_eq!(page.status, 200, "{page:?}");
    assert!(page
        .header("content-type")
        .expect("type")
        .starts_with("text/html"));
    let html = page.text();
    assert!(!html.contains("<img"), "{html}");
    assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;.txt"));
    assert!(html.contains("href=\"./%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E.txt\""));
    assert!(html.contains("say &quot;hi&quot; &amp; &#39;bye&#39;.txt"));
    assert!(html.contains("two\\x0alines.txt") && html.contains("href=\"./two%0Alines.txt\""));
    assert!(html.contains("href=\"./bad%FF%FEbytes.txt\""));
    assert!(html.contains("bad\u{fffd}\u{fffd}bytes.txt"));
    assert!(html.contains("href=\"./javascript%3Aalert%281%29\""));
    assert!(html.contains("href=\"./sub%3Cdir%3E/\""));
    assert!(html.contains("href=\"../\""), "a parent link");
    assert!(
        !html.contains("hidden") && !html.contains("escape.txt"),
        "{html}"
    );
    assert!(
        html.contains("inside.txt"),
        "a symlink inside the root is listed"
    );
    assert!(!html.contains("<script"), "no JavaScript");
    // Every name has exactly one row, whatever it holds.
    assert_eq!(
        html.matches("<tr><td><a href=\"./").count(),
        names.len() + 2
    );
    // Each link fetches its file (names a request path can hold).
    assert_eq!(
        get_with(&server, "/files/say%20%22hi%22%20%26%20%27bye%27.txt", "").status,
        200
    );
    // Dot directories are not listed either; the root has no parent link.
    std::fs::create_dir_all(server.root.join(".git")).expect("mkdir");
    assert_eq!(get_with(&server, "/.git/", "").status, 404);
    std::fs::create_dir_all(server.root.join("empty")).expect("mkdir");
    let root_listing = listing_server(|_| {});
    std::fs::remove_file(root_listing.root.join("index.html")).expect("rm");
    let root_page = get_with(&root_listing, "/", "").text();
    assert!(!root_page.contains("href=\"../\"") && root_page.contains("style.css"));
    // Off by default: a directory without an index is a 404.
    let off = one(|_| {});
    std::fs::create_dir_all(off.root.join("d")).expect("mkdir");
    assert_eq!(get_with(&off, "/d/", "").status, 404);
    std::fs::remove_dir_all(&outside).expect("cleanup");
}

#[test]
fn listings_sort_by_query_and_answer_json() {
    let server = listing_server(|_| {});
    let dir = server.root.join("s");
    std::fs::create_dir_all(dir.join("zdir")).expect("mkdir");
    let now = std::time::SystemTime::now();
    for (name, size, age) in [("b.txt", 30, 10), ("a.txt", 20, 30), ("c.txt", 10, 20)] {
        let file = std::fs::File::create(dir.join(name)).expect("create");
        file.set_len(size).expect("len");
        file.set_modified(now - std::time::Duration::from_secs(age * 3600))
            .expect("mtime");
    }
    let order = |query: &str| -> Vec<String> {
        let html = get_with(&server, &format!("/s/{query}"), "").text();
        html.split("<a href=\"./")
            .skip(1)
            .map(|rest| rest.split('"').next().unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(order(""), ["zdir/", "a.txt", "b.txt", "c.txt"]);
    assert_eq!(
        order("?sort=name&order=desc"),
        ["zdir/", "c.txt", "b.txt", "a.txt"]
    );
    assert_eq!(order("?sort=size"), ["zdir/", "c.txt", "a.txt", "b.txt"]);
    assert_eq!(order("?sort=time"), ["zdir/", "a.txt", "c.txt", "b.txt"]);
    assert_eq!(
        order("?sort=time&order=desc"),
        ["zdir/", "b.txt", "c.txt", "a.txt"]
    );

    for (query, accept) in [("?format=json", ""), ("", "Accept: application/json\r\n")] {
        let r = get_with(&server, &format!("/s/{query}"), accept);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert!(r.all("vary").iter().any(|v| v == "Accept"));
        let text = r.text();
        assert!(
            text.starts_with("{\"path\":\"/s/\",\"sorted\":true,\"entries\":["),
            "{text}"
        );
        assert!(
            text.contains("{\"name\":\"zdir\",\"type\":\"dir\""),
            "{text}"
        );
        assert!(
            text.contains("{\"name\":\"a.txt\",\"type\":\"file\",\"size\":20,"),
            "{text}"
        );
        assert_eq!(text.matches("\"name\"").count(), 4);
    }
    // HEAD: the head alone, and the connection goes on.
    let mut stream = server.connect();
    let head = exchange(&mut stream, "HEAD /s/ HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(get(&mut stream, "/s/?format=json").status, 200);
    assert_eq!(get(&mut stream, "/style.css").status, 200);
}

#[test]
fn a_huge_directory_streams_while_the_worker_serves_others() {
    let server = listing_server(|c| c.workers = 1);
    let dir = server.root.join("huge");
    std::fs::create_dir_all(&dir).expect("mkdir");
    const N: usize = 100_000;
    for i in 0..N {
        std::fs::File::create(dir.join(format!("entry-{i:06}"))).expect("create");
    }
    // Warm the small file into the cache, so its answer costs nothing.
    assert_eq!(
        ask(&server, "GET /style.css HTTP/1.1\r\nHost: t\r\n\r\n").status,
        200
    );

    let mut big = server.connect();
    big.write_all(b"GET /huge/?format=json HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .expect("send");
    // The head arrives once the first batches were read: then ask the same
    // worker for a small file while the rest of the listing streams.
    let mut first = [0u8; 1];
    std::io::Read::read_exact(&mut big, &mut first).expect("listing starts");
    let reader = std::thread::spawn(move || {
        let mut rest = Vec::new();
        std::io::Read::read_to_end(&mut big, &mut rest).ok();
        (std::time::Instant::now(), rest)
    });
    let small = ask(
        &server,
        "GET /style.css HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    let small_at = std::time::Instant::now();
    assert_eq!(small.status, 200);
    let (big_done, rest) = reader.join().expect("reader");
    assert!(
        small_at < big_done,
        "the small file waited for the whole listing"
    );
    let mut whole = first.to_vec();
    whole.extend_from_slice(&rest);
    let head_end = whole
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("head")
        + 4;
    let head = String::from_utf8_lossy(&whole[..head_end]);
    assert!(
        head.contains("Transfer-Encoding: chunked"),
        "streamed in chunks: {head}"
    );
    let body = dechunk(&whole[head_end..]).expect("a complete chunked body");
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains("\"sorted\":false"),
        "too big to sort: directory order"
    );
    assert_eq!(text.matches("\"name\":\"entry-").count(), N);
    assert!(text.ends_with("]}\n"));
}
