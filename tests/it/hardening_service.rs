//! Issue 21's service hardening, over real sockets: CORS never reflects an
//! origin it was not given, the HTTPS redirect never reflects a Host it
//! has no certificate for, header rules cannot take `Vary` or the fields
//! the server owns, and `/echo` neither reflects credentials nor pays a
//! write per chunk.

use std::process::Command;

use crate::harness::process::BIN;
use crate::harness::*;
use conveyor::config::Config;

fn one(tweak: impl FnOnce(&mut Config)) -> TestServer {
    start("readiness", "spawn", tweak)
}

fn rules(toml: &str) -> Config {
    Config::from_toml_str(toml).expect("config")
}

/// Every value of field `name`, in order.
fn all(r: &Response, name: &str) -> Vec<String> {
    r.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
        .collect()
}

/// Runs the binary on a config file holding `toml`: its exit code and
/// what it wrote.
fn start_on(toml: &str, tag: &str) -> (Option<i32>, String) {
    let dir = temp_dir(tag);
    let file = dir.join("conveyor.toml");
    std::fs::write(&file, toml).expect("write config");
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&file)
        .args(["--listen", "127.0.0.1:0"])
        .arg(&dir)
        .output()
        .expect("runs");
    let _ = std::fs::remove_dir_all(&dir);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}

#[test]
fn cors_star_with_credentials_is_refused_and_null_is_never_reflected() {
    let (code, text) = start_on(
        "[cors]\norigins = [\"*\"]\ncredentials = true\n",
        "cors-star",
    );
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("cors.origins = [\"*\"] with cors.credentials = true")
            && text.contains("set credentials = false"),
        "{text}"
    );
    // The library refuses it too: no server starts.
    let mut c = test_config(&std::env::temp_dir(), "readiness", "spawn");
    c.static_files.cors.origins = vec!["*".into()];
    c.static_files.cors.credentials = true;
    let e = conveyor::Server::start(c).err().expect("refused");
    assert!(e.to_string().contains("cors.credentials"), "{e}");

    // Listed origins with credentials: only those, and "null" only when listed.
    let c = rules("[cors]\norigins = [\"https://app.example\"]\ncredentials = true\n");
    let server = one(|config| config.static_files.cors = c.static_files.cors.clone());
    for origin in ["null", "https://evil.example", "https://app.example.evil"] {
        let r = get_with(&server, "/style.css", &format!("Origin: {origin}\r\n"));
        assert_eq!(r.status, 200);
        assert_eq!(r.header("access-control-allow-origin"), None, "{origin}");
        assert_eq!(r.header("access-control-allow-credentials"), None);
    }
    let r = get_with(&server, "/style.css", "Origin: https://app.example\r\n");
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));

    let c = rules("[cors]\norigins = [\"null\"]\n");
    let server = one(|config| config.static_files.cors = c.static_files.cors.clone());
    let r = get_with(&server, "/style.css", "Origin: null\r\n");
    assert_eq!(r.header("access-control-allow-origin"), Some("null"));

    // "*" without credentials answers "*", never the origin sent.
    let c = rules("[cors]\norigins = \"*\"\n");
    let server = one(|config| config.static_files.cors = c.static_files.cors.clone());
    let r = get_with(&server, "/style.css", "Origin: null\r\n");
    assert_eq!(all(&r, "access-control-allow-origin"), ["*"]);
    assert_eq!(r.header("access-control-allow-credentials"), None);
}

#[test]
fn header_rules_add_to_vary_and_cannot_touch_the_encoding() {
    // Refused at start, naming the rule, its path and the fix.
    for (rule, says) in [
        ("remove = [\"Vary\"]", "Leave Vary out of remove"),
        ("remove = [\"Content-Encoding\"]", "take it out of the rule"),
        (
            "set = { Content-Length = \"1\" }",
            "take it out of the rule",
        ),
        (
            "add = { ETag = \"\\\"x\\\"\" }",
            "remove = [\"ETag\"] drops it",
        ),
    ] {
        let toml = format!(
            "[[headers]]\npath = \"**\"\nset = {{ X-A = \"1\" }}\n\
             [[headers]]\npath = \"*.css\"\n{rule}\n"
        );
        let (code, text) = start_on(&toml, "rules-owned");
        assert_eq!(code, Some(2), "{rule}: {text}");
        assert!(
            text.contains("(rule 2) for path \"*.css\"") && text.contains(says),
            "{rule}: {text}"
        );
    }

    // A rule's Vary joins the server's: the compressed answer, its 304 and
    // its 206 all still say Accept-Encoding.
    let c = rules(
        "[[headers]]\npath = \"*.css\"\nset = { Vary = \"Cookie\" }\n\
         [[headers]]\npath = \"**\"\nadd = { Vary = \"cookie, Accept-Encoding, X-Mode\" }\n",
    );
    let server = one(|config| config.static_files.headers = c.static_files.headers.clone());
    let vary = |r: &Response| -> Vec<String> {
        let mut tokens: Vec<String> = all(r, "vary")
            .iter()
            .flat_map(|v| v.split(',').map(|t| t.trim().to_ascii_lowercase()))
            .collect();
        tokens.sort();
        tokens
    };
    let want = ["accept-encoding", "cookie", "x-mode"];
    let br = get_with(&server, "/style.css", "Accept-Encoding: br\r\n");
    assert_eq!(br.status, 200);
    assert_eq!(br.header("content-encoding"), Some("br"), "{br:?}");
    assert_eq!(vary(&br), want, "{br:?}");
    let tag = br.header("etag").expect("etag").to_string();
    let again = get_with(
        &server,
        "/style.css",
        &format!("Accept-Encoding: br\r\nIf-None-Match: {tag}\r\n"),
    );
    assert_eq!(again.status, 304);
    assert_eq!(vary(&again), want, "{again:?}");
    let part = get_with(
        &server,
        "/style.css",
        "Accept-Encoding: br\r\nRange: bytes=0-9\r\n",
    );
    assert_eq!(part.status, 206);
    assert_eq!(part.header("content-encoding"), Some("br"));
    assert_eq!(vary(&part), want, "{part:?}");
    let plain = get_with(&server, "/style.css", "");
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(vary(&plain), want, "{plain:?}");
}
