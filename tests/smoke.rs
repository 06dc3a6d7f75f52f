//! The line serves the site in every stage combination.

mod common;

use common::*;

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
