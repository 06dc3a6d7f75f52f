//! The access log names who asked and which site answered (issue 23): the
//! user `[[auth]]` let through in the combined format's third field (nginx's
//! `$remote_user`; `-` without one, and for a login refused), and with
//! `[[sites]]` the site as one more quoted field at the end; over HTTP/1.1
//! and h2c.

use crate::harness::h2_client::{session, Target};
use crate::harness::*;
use conveyor::config::Config;

/// The log's line whose request line holds `request`.
fn line_for<'l>(log: &'l str, request: &str) -> &'l str {
    log.lines()
        .find(|l| l.contains(request))
        .unwrap_or_else(|| panic!("no line for {request}:\n{log}"))
}

#[test]
fn the_log_names_the_user_let_through_and_the_site() {
    let dir = temp_dir("access-log-who");
    std::fs::create_dir_all(dir.join("a")).expect("mkdir");
    std::fs::write(dir.join("a/index.html"), "site a").expect("index");
    let hash = bcrypt::hash("wonderland", 5).expect("bcrypt");
    std::fs::write(dir.join("users"), format!("alice:{hash}\n")).expect("users");
    let text = format!(
        "[[auth]]\npath = \"/docs\"\nhtpasswd = \"{users}\"\n\
         [[sites]]\nnames = [\"a.example\"]\nroot = \"{a}\"\n",
        users = dir.join("users").display(),
        a = dir.join("a").display(),
    );
    let parsed = Config::from_toml_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let log = dir.join("access.log");
    let server = start("readiness", "spawn", |config| {
        config.auth = parsed.auth.clone();
        config.sites = parsed.sites.clone();
        config.log.access_log = true;
        config.log.access_log_path = log.display().to_string();
    });
    let login = format!("Authorization: Basic {}\r\n", base64(b"alice:wonderland"));
    let wrong = format!("Authorization: Basic {}\r\n", base64(b"alice:nope"));
    assert_eq!(get_with(&server, "/docs/?u=1", &login).status, 200);
    assert_eq!(get_with(&server, "/docs/?u=2", &wrong).status, 401);
    assert_eq!(get_with(&server, "/docs/?u=3", "").status, 401);
    let a = ask(&server, "GET /?site=a HTTP/1.1\r\nHost: a.example\r\n\r\n");
    assert_eq!(a.text(), "site a");
    // h2c: the same fields.
    let target = Target::Cleartext(server.addr);
    let auth = format!("Basic {}", base64(b"alice:wonderland"));
    let status = session(&target, |h2| async move {
        h2.get("/docs/?u=h2", &[("authorization", auth.as_str())])
            .await
            .status
    });
    assert_eq!(status, 200);
    let log = server.access_log();
    let line = line_for(&log, "GET /docs/?u=1 HTTP/1.1");
    assert!(line.starts_with("127.0.0.1 - alice ["), "{line}");
    assert!(line.ends_with(" \"(default)\""), "{line}");
    // A refused login's name is not logged: it may be a password typed
    // in the wrong box.
    for refused in ["GET /docs/?u=2 ", "GET /docs/?u=3 "] {
        let line = line_for(&log, refused);
        assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
        assert!(line.contains("\" 401 "), "{line}");
    }
    let line = line_for(&log, "GET /?site=a ");
    assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
    assert!(line.ends_with(" \"a.example\""), "{line}");
    let line = line_for(&log, "GET /docs/?u=h2 HTTP/2.0");
    assert!(line.starts_with("127.0.0.1 - alice ["), "{line}");
    assert!(line.ends_with(" \"(default)\""), "{line}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn without_sites_the_lines_keep_the_combined_format() {
    let dir = temp_dir("access-log-combined");
    let log = dir.join("access.log");
    let server = start("readiness", "spawn", |config| {
        config.log.access_log = true;
        config.log.access_log_path = log.display().to_string();
    });
    assert_eq!(get_with(&server, "/?plain=1", "").status, 200);
    let log = server.access_log();
    let line = line_for(&log, "GET /?plain=1 ");
    assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
    // Nine fields: three quoted at the end, nothing after the user agent.
    assert_eq!(line.matches('"').count(), 6, "{line}");
    let _ = std::fs::remove_dir_all(&dir);
}
