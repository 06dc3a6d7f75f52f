//! The access log, written to a temporary file by a running server: fields
//! a client controls cannot forge other fields or lines (issue 8, 6b).

use std::io::Write;
use std::time::Duration;

use crate::harness::*;

#[test]
fn client_fields_are_escaped_in_the_written_log() {
    let dir = temp_dir("access-log");
    let path = dir.join("access.log");
    let log_path = path.to_str().expect("utf-8 temp path").to_string();
    let server = start("readiness", "spawn", |c| {
        c.log.access_log = true;
        c.log.access_log_path = log_path.clone();
    });
    let mut stream = server.connect();
    // The target closes the request field and adds a status, bytes and a
    // referer of its own; the User-Agent tries a new line and a backslash
    // that would swallow the closing quote.
    stream
        .write_all(
            // ('"' in a target is a 400 at the parser: non-ASCII is escaped.)
            b"GET /x\xc3\xa9-200-1-forged HTTP/1.1\r\nHost: t\r\n\
              Referer: \"r\\\r\nUser-Agent: ua\" 1 \"\\ \xc3\xa9\r\n\r\n",
        )
        .expect("send");
    let response = read_response(&mut stream);
    assert_eq!(response.status, 404, "{}", server.label);
    // A file served (its preamble consumed on the way) keeps its
    // User-Agent in the log: copied out before the service ran.
    stream
        .write_all(b"GET /style.css HTTP/1.1\r\nHost: t\r\nUser-Agent: after/1\r\n\r\n")
        .expect("send");
    assert_eq!(read_response(&mut stream).status, 200);

    let mut text = String::new();
    let logged = wait_until(Duration::from_secs(3), || {
        server.server().flush_log();
        text = std::fs::read_to_string(&path).unwrap_or_default();
        text.lines().count() >= 2
    });
    assert!(logged, "log: {text:?}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    let forged = lines[0];
    assert!(
        forged.contains("] \"GET /x\\xC3\\xA9-200-1-forged HTTP/1.1\" 404 "),
        "{forged}"
    );
    assert!(
        forged.ends_with(" \"\\x22r\\x5C\" \"ua\\x22 1 \\x22\\x5C \\xC3\\xA9\""),
        "{forged}"
    );
    // Three quoted fields: six quotes the log itself wrote, no others.
    assert_eq!(forged.matches('"').count(), 6, "{forged}");
    assert!(forged.is_ascii(), "{forged}");
    assert!(
        lines[1].contains("\"GET /style.css HTTP/1.1\" 200 "),
        "{}",
        lines[1]
    );
    assert!(lines[1].ends_with(" \"-\" \"after/1\""), "{}", lines[1]);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
