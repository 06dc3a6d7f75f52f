//! The line serves the site in every stage combination.

use crate::harness::*;

#[test]
fn every_combination_serves_index_status_and_echo() {
    each_server(
        |_| {},
        |server| {
            let mut stream = server.connect();
            let index = get(&mut stream, "/");
            assert_eq!(index.status, 200, "{}", server.label);
            let on_disk = std::fs::read(server.root.join("index.html")).expect("index");
            assert_eq!(index.body, on_disk, "{}", server.label);
            let status = get(&mut stream, "/status");
            assert_eq!(status.status, 200, "{}", server.label);
            assert!(status.text().contains("\"accepted\":"), "{}", server.label);
            let echo = get(&mut stream, "/echo");
            assert!(
                echo.text().starts_with("GET /echo HTTP/1.1\r\n"),
                "{}",
                server.label
            );
        },
    );
}

#[test]
fn access_log_writes_combined_format_lines() {
    let log = temp_dir("access-log").join("access.log");
    let log_path = log.to_string_lossy().into_owned();
    let server = start("readiness", "spawn", |c| {
        c.log.access_log = true;
        c.log.access_log_path = log_path.clone();
    });
    let mut stream = server.connect();
    use std::io::Write;
    stream
        .write_all(b"GET /style.css HTTP/1.1\r\nHost: t\r\nUser-Agent: smoke/1\r\nReferer: http://t/\r\n\r\n")
        .expect("send");
    let response = read_response(&mut stream);
    assert_eq!(response.status, 200);
    let body_len = response.body.len();
    server.shutdown(); // flushes the log
    let text = std::fs::read_to_string(&log).expect("log written");
    let line = text.lines().next().expect("one line");
    assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
    assert!(
        line.ends_with(&format!(
            "\"GET /style.css HTTP/1.1\" 200 {body_len} \"http://t/\" \"smoke/1\""
        )),
        "{line}"
    );
}
