//! The 404 for a missing path, made once and copied per response: the
//! same response every time (first miss, then from the negative cache),
//! with the connection fields of each request, no body for HEAD, and the
//! body's length in the access log.

use std::io::Write;
use std::time::Duration;

use crate::harness::*;

const BODY: &str = "404 Not Found: cannot serve that path\n";

/// The response's fields but Date, which changes by the second.
fn fields(r: &Response) -> Vec<(String, String)> {
    let mut fields = r.headers.clone();
    fields.retain(|(name, _)| name != "Date");
    fields
}

#[test]
fn a_404_is_the_same_response_each_time_with_each_requests_connection_fields() {
    let server = start("readiness", "spawn", |_| {});
    let label = &server.label;
    let mut s = server.connect();
    // The first miss opens the path; the next ones come from the cache.
    let first = get(&mut s, "/nope");
    assert_eq!(first.status, 404, "{label}");
    assert_eq!(first.text(), BODY, "{label}");
    assert_eq!(
        first.header("Content-Type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(
        first.header("Content-Length"),
        Some(BODY.len().to_string().as_str())
    );
    assert_eq!(first.header("Connection"), None, "{label}");
    assert!(first.header("Date").is_some_and(|d| d.ends_with(" GMT")));
    for path in ["/nope", "/nope", "/sub/nope.txt", "/no/such/dir/x"] {
        let again = get(&mut s, path);
        assert_eq!(
            (again.status, fields(&again), again.text()),
            (404, fields(&first), BODY.to_string()),
            "{label} {path}"
        );
    }

    // HEAD: the same head, Content-Length included, and no body (the next
    // response on the connection would start with it otherwise).
    for _ in 0..2 {
        let head = exchange(&mut s, "HEAD /nope HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!((head.status, fields(&head)), (404, fields(&first)));
        assert!(head.body.is_empty(), "{label}");
        assert_eq!(get(&mut s, "/style.css").status, 200, "{label}");
    }

    // Pipelined with files: every response in order, in one write.
    s.write_all(b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\nGET /style.css HTTP/1.1\r\nHost: t\r\n\r\nHEAD /nope HTTP/1.1\r\nHost: t\r\n\r\nGET /nope HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("send");
    let mut carry = Vec::new();
    for (status, is_head, body) in [
        (404, false, Some(BODY)),
        (200, false, None),
        (404, true, Some("")),
        (404, false, Some(BODY)),
    ] {
        let r = read_response_with(&mut s, &mut carry, is_head);
        assert_eq!(r.status, status, "{label}");
        if let Some(body) = body {
            assert_eq!(r.text(), body, "{label}");
        }
    }
    assert!(carry.is_empty(), "{label}: {carry:?}");

    // HTTP/1.0 asking to keep the connection is told it is kept, and is.
    let mut old = server.connect();
    for _ in 0..2 {
        let r = exchange(
            &mut old,
            "GET /nope HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        );
        assert_eq!(r.status, 404, "{label}");
        assert_eq!(r.header("Connection"), Some("keep-alive"), "{label}");
        assert_eq!(r.text(), BODY, "{label}");
    }

    // A request that closes the connection is told so, and it closes.
    let r = exchange(
        &mut s,
        "GET /nope HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 404, "{label}");
    assert_eq!(r.header("Connection"), Some("close"), "{label}");
    assert_eq!(r.text(), BODY, "{label}");
    assert!(closed_within(&mut s, Duration::from_secs(5)), "{label}");
}

#[test]
fn the_access_log_counts_a_404s_body_bytes() {
    let dir = temp_dir("not-found-log");
    let path = dir.join("access.log");
    let log_path = path.to_str().expect("utf-8 temp path").to_string();
    let server = start("readiness", "spawn", |c| {
        c.log.access_log = true;
        c.log.access_log_path = log_path.clone();
    });
    let mut s = server.connect();
    assert_eq!(get(&mut s, "/nope").status, 404);
    assert_eq!(get(&mut s, "/nope").status, 404);
    let head = exchange(&mut s, "HEAD /nope HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(head.status, 404);
    // A refused path takes the text error that is not made in advance.
    let post = exchange(
        &mut s,
        "POST /nope HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(post.status, 405);
    let post_len = post.body.len();

    let mut text = String::new();
    let logged = wait_until(Duration::from_secs(5), || {
        server.server().flush_log();
        text = std::fs::read_to_string(&path).unwrap_or_default();
        text.lines().count() >= 4
    });
    assert!(logged, "log: {text:?}");
    let lines: Vec<&str> = text.lines().collect();
    let body = BODY.len();
    for (line, want) in lines.iter().zip([
        format!("\"GET /nope HTTP/1.1\" 404 {body} "),
        format!("\"GET /nope HTTP/1.1\" 404 {body} "),
        "\"HEAD /nope HTTP/1.1\" 404 0 ".to_string(),
        format!("\"POST /nope HTTP/1.1\" 405 {post_len} "),
    ]) {
        assert!(line.contains(&want), "{line} lacks {want}");
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
