//! `[[auth]]`: Basic authentication against htpasswd files made by
//! Apache's own `htpasswd`, over real sockets: 401 with the challenge,
//! 200 with the right password (HTTP/1.1 and h2c), 429 past the failures
//! allowed, weak formats refused at start (exit 2), SIGHUP re-reading the
//! file, the plain-HTTP warning.

use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::harness::needs;
use crate::harness::process::{spawn, spawn_on_config, Running};
use crate::harness::{
    base64, connect, exchange, read_response_with, temp_dir, wait_until, Response,
};

const CHALLENGE: &str = "Basic realm=\"Admin area\", charset=\"UTF-8\"";

/// `htpasswd` with `args`, which must succeed.
fn htpasswd(tool: &Path, args: &[&str]) {
    let out = Command::new(tool)
        .args(args)
        .output()
        .expect("htpasswd runs");
    assert!(out.status.success(), "htpasswd {args:?}: {out:?}");
}

/// A site with a public page and an /admin/ one, a bcrypt `users` file
/// (cost 5: the tests' logins stay fast) and a config guarding /admin.
fn site(tool: &Path, tag: &str, extra: &str) -> PathBuf {
    let dir = temp_dir(tag);
    std::fs::create_dir_all(dir.join("www/admin")).expect("mkdir");
    std::fs::write(dir.join("www/index.html"), "public").expect("index");
    std::fs::write(dir.join("www/admin/secret.txt"), "secret").expect("secret");
    let users = dir.join("users");
    let users = users.to_str().expect("utf-8 path");
    htpasswd(
        tool,
        &["-B", "-C", "5", "-c", "-b", users, "alice", "wonderland"],
    );
    write_config(&dir, extra);
    dir
}

fn write_config(dir: &Path, extra: &str) {
    let config = format!(
        "listen = \"127.0.0.1:0\"\nroot = \"www\"\nworkers = 2\n{extra}\n\
         [[auth]]\npath = \"/admin\"\nhtpasswd = \"users\"\nrealm = \"Admin area\"\n"
    );
    std::fs::write(dir.join("c.toml"), config).expect("config");
}

/// `GET path` on a new connection, with `user:password` if given.
fn get(addr: &str, path: &str, login: Option<&str>) -> Response {
    let auth = login.map_or(String::new(), |l| {
        format!("Authorization: Basic {}\r\n", base64(l.as_bytes()))
    });
    exchange(
        &mut connect(addr),
        &format!("GET {path} HTTP/1.1\r\nHost: t\r\n{auth}\r\n"),
    )
}

fn assert_challenged(response: &Response) {
    assert_eq!(response.status, 401, "{response:?}");
    assert_eq!(response.header("WWW-Authenticate"), Some(CHALLENGE));
}

#[test]
fn basic_auth_guards_a_prefix_over_http1_and_h2c() {
    let Some([tool, curl]) = needs::find_all([&needs::HTPASSWD, &needs::CURL]) else {
        return;
    };
    let dir = site(&tool, "auth-basic", "");
    let (run, addr) = spawn_on_config(&dir);
    assert_eq!(get(&addr, "/", None).text(), "public");
    assert_challenged(&get(&addr, "/admin/secret.txt", None));
    assert_challenged(&get(&addr, "/admin", None));
    assert_challenged(&get(&addr, "/admin/secret.txt", Some("alice:wrong")));
    assert_challenged(&get(&addr, "/admin/secret.txt", Some("mallory:wonderland")));
    // Escapes and dot segments reach the same file: guarded the same.
    assert_challenged(&get(&addr, "/%61dmin/secret.txt", None));
    assert_challenged(&get(&addr, "/x/../admin/secret.txt", None));
    let ok = get(&addr, "/admin/secret.txt", Some("alice:wonderland"));
    assert_eq!((ok.status, ok.text().as_str()), (200, "secret"));
    // A prefix is a path prefix, not a string one.
    assert_eq!(get(&addr, "/administrator", None).status, 404);
    // The probes answer without a password.
    assert_eq!(get(&addr, "/livez", None).status, 200);

    // h2c (prior knowledge): the same handler, the same answers.
    let h2 = |login: Option<&str>| {
        let url = format!("http://{addr}/admin/secret.txt");
        let mut args = vec!["-s", "--http2-prior-knowledge", "-D", "-", &url];
        if let Some(login) = login {
            args.extend(["-u", login]);
        }
        let out = Command::new(&curl).args(&args).output().expect("curl runs");
        assert!(out.status.success(), "curl: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let refused = h2(None);
    assert!(refused.starts_with("HTTP/2 401"), "{refused}");
    let challenge = format!("www-authenticate: {CHALLENGE}");
    assert!(
        refused
            .to_ascii_lowercase()
            .contains(&challenge.to_ascii_lowercase()),
        "{refused}"
    );
    assert!(h2(Some("alice:nope")).starts_with("HTTP/2 401"));
    let served = h2(Some("alice:wonderland"));
    assert!(
        served.starts_with("HTTP/2 200") && served.ends_with("secret"),
        "{served}"
    );
    drop(run);
}

#[test]
fn failures_past_the_limit_are_answered_429_with_retry_after() {
    let Some([tool]) = needs::find_all([&needs::HTPASSWD]) else {
        return;
    };
    let dir = site(&tool, "auth-429", "[limits]\nauth_failures_per_minute = 3");
    let (run, addr) = spawn_on_config(&dir);
    for _ in 0..3 {
        assert_challenged(&get(&addr, "/admin/", Some("alice:guess")));
    }
    for login in ["alice:guess", "alice:wonderland"] {
        let refused = get(&addr, "/admin/secret.txt", Some(login));
        assert_eq!(refused.status, 429, "{refused:?}");
        let after: u64 = refused
            .header("Retry-After")
            .and_then(|s| s.parse().ok())
            .expect("Retry-After in seconds");
        assert!((1..=60).contains(&after), "{after}");
    }
    // Paths no rule guards are served as before.
    assert_eq!(get(&addr, "/", None).status, 200);
    drop(run);
}

#[test]
fn weak_hash_formats_stop_start_up_with_exit_2_and_the_fix() {
    let Some([tool]) = needs::find_all([&needs::HTPASSWD]) else {
        return;
    };
    for (flag, says) in [
        ("-m", "MD5 hash ($apr1$)"),
        ("-s", "SHA1 hash ({SHA})"),
        ("-d", "crypt (DES)"),
        ("-p", "plain-text"),
    ] {
        let dir = site(&tool, "auth-weak", "");
        let users = dir.join("users");
        let users = users.to_str().expect("utf-8 path");
        htpasswd(&tool, &[flag, "-b", users, "bob", "builder"]);
        let mut run: Running = spawn(&dir, &["--config", "c.toml"]);
        assert_eq!(run.exit_code(), Some(2), "{flag}");
        let said = run.stop_for_stderr();
        assert!(said.contains("auth (rule 1) htpasswd"), "{said}");
        assert!(
            said.contains(says) && said.contains("user \"bob\""),
            "{said}"
        );
        // The file as the config names it, beneath the config's directory.
        assert!(said.contains("`htpasswd -B -C 10 users bob`"), "{said}");
    }
}

#[test]
fn sighup_reads_the_htpasswd_file_again() {
    let Some([tool]) = needs::find_all([&needs::HTPASSWD]) else {
        return;
    };
    let dir = site(&tool, "auth-reload", "");
    let (run, addr) = spawn_on_config(&dir);
    assert_eq!(
        get(&addr, "/admin/secret.txt", Some("alice:wonderland")).status,
        200
    );
    let users = dir.join("users");
    let users = users.to_str().expect("utf-8 path");
    htpasswd(
        &tool,
        &["-B", "-C", "5", "-c", "-b", users, "bob", "builder"],
    );
    run.signal("HUP");
    run.stderr_with("SIGHUP: reloaded");
    assert_challenged(&get(&addr, "/admin/", Some("alice:wonderland")));
    let ok = get(&addr, "/admin/secret.txt", Some("bob:builder"));
    assert_eq!((ok.status, ok.text().as_str()), (200, "secret"));
    // A weak file is refused and the users in use stay.
    htpasswd(&tool, &["-m", "-b", users, "bob", "weak"]);
    run.signal("HUP");
    let failed = run.stderr_with("reload failed");
    assert!(failed.contains("MD5 hash ($apr1$)"), "{failed}");
    assert_eq!(
        get(&addr, "/admin/secret.txt", Some("bob:builder")).status,
        200
    );
}

#[test]
fn plain_http_on_a_public_address_warns_at_start() {
    let Some([tool]) = needs::find_all([&needs::HTPASSWD]) else {
        return;
    };
    let dir = site(&tool, "auth-warn", "");
    let config = std::fs::read_to_string(dir.join("c.toml")).expect("config");
    let config = config.replace("127.0.0.1:0", "0.0.0.0:0");
    std::fs::write(dir.join("c.toml"), config).expect("config");
    let run = spawn(&dir, &["--config", "c.toml"]);
    let warning = run.stderr_with("warning: [[auth]]");
    assert!(
        warning.contains("over plain HTTP on 0.0.0.0:0"),
        "{warning}"
    );
    assert!(warning.contains("HTTPS"), "{warning}");
    run.started_line();
}

/// Whether a `conveyor-bcrypt` thread of process `pid` is running (or
/// runnable): a check is under way.
fn bcrypt_running(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().any(|task| {
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        stat.contains("(conveyor-bcrypt) R")
    })
}

#[test]
fn a_login_being_checked_never_holds_up_its_worker() {
    let Some([tool]) = needs::find_all([&needs::HTPASSWD]) else {
        return;
    };
    let dir = site(&tool, "auth-offthread", "");
    let config = std::fs::read_to_string(dir.join("c.toml")).expect("config");
    std::fs::write(
        dir.join("c.toml"),
        config.replace("workers = 2", "workers = 1"),
    )
    .expect("config");
    // Cost 14: about a second of bcrypt, on the one worker if it ran there.
    let users = dir.join("users");
    let users = users.to_str().expect("utf-8 path");
    htpasswd(
        &tool,
        &["-B", "-C", "14", "-c", "-b", users, "slow", "login"],
    );
    let (run, addr) = spawn_on_config(&dir);
    let mut login = connect(&addr);
    let request = format!(
        "GET /admin/secret.txt HTTP/1.1\r\nHost: t\r\nAuthorization: Basic {}\r\n\r\n",
        base64(b"slow:login")
    );
    let sent = std::time::Instant::now();
    login.write_all(request.as_bytes()).expect("send");
    let pid = run.child.id();
    assert!(
        wait_until(Duration::from_secs(10), || bcrypt_running(pid)),
        "no bcrypt thread at work"
    );
    // The one worker answers others while the check runs.
    for _ in 0..20 {
        assert_eq!(get(&addr, "/", None).text(), "public");
    }
    let mut byte = [0u8; 1];
    login.set_nonblocking(true).expect("nonblocking");
    let pending = matches!(login.read(&mut byte), Err(e) if e.kind() == ErrorKind::WouldBlock);
    assert!(pending, "the login was answered before the others");
    login.set_nonblocking(false).expect("blocking");
    login
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let answer = read_response_with(&mut login, &mut Vec::new(), false);
    assert_eq!((answer.status, answer.text().as_str()), (200, "secret"));
    let checked = sent.elapsed();
    // The same login again is remembered: no second bcrypt check.
    let again = std::time::Instant::now();
    assert_eq!(
        get(&addr, "/admin/secret.txt", Some("slow:login")).status,
        200
    );
    assert!(
        again.elapsed() < checked / 2,
        "{:?} vs {checked:?}",
        again.elapsed()
    );
}

#[test]
fn a_refused_body_is_never_read_as_the_next_request() {
    let Some([tool]) = needs::find_all([&needs::HTPASSWD]) else {
        return;
    };
    let dir = site(&tool, "auth-body", "");
    let config = std::fs::read_to_string(dir.join("c.toml")).expect("config");
    std::fs::write(dir.join("c.toml"), config.replace("\"/admin\"", "\"/\"")).expect("config");
    let (run, addr) = spawn_on_config(&dir);
    // /echo would read this body; refused, the connection closes after
    // the 401, so "GET /x" inside it is never answered.
    let mut stream = connect(&addr);
    let body = "GET /x HTTP/1.1\r\nHost: t\r\n\r\n";
    let request = format!(
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    assert_challenged(&exchange(&mut stream, &request));
    assert!(crate::harness::closed_within(
        &mut stream,
        Duration::from_secs(5)
    ));
    // A small body to the files is drained: the connection stays.
    let mut stream = connect(&addr);
    let request = "POST /index.html HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc";
    assert_challenged(&exchange(&mut stream, request));
    let again = exchange(&mut stream, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_challenged(&again);
    // With the password, /echo reads its body.
    let login = format!("Authorization: Basic {}\r\n", base64(b"alice:wonderland"));
    let request =
        format!("POST /echo HTTP/1.1\r\nHost: t\r\n{login}Content-Length: 5\r\n\r\nhello");
    let echoed = exchange(&mut connect(&addr), &request);
    assert_eq!(echoed.status, 200, "{echoed:?}");
    assert!(echoed.text().contains("hello"), "{echoed:?}");
    drop(run);
}

#[test]
fn a_rewrite_never_serves_a_guarded_file_unguarded() {
    let Some([tool]) = needs::find_all([&needs::HTPASSWD]) else {
        return;
    };
    let rules = "[[rewrites]]\nfrom = \"/open/*\"\nto = \"/admin/:splat\"\n\
                 [[redirects]]\nfrom = \"/admin/old\"\nto = \"/admin/secret.txt\"\n";
    let dir = site(&tool, "auth-rules", rules);
    let (run, addr) = spawn_on_config(&dir);
    assert_challenged(&get(&addr, "/open/secret.txt", None));
    let ok = get(&addr, "/open/secret.txt", Some("alice:wonderland"));
    assert_eq!((ok.status, ok.text().as_str()), (200, "secret"));
    // A redirect answers first, as nginx's `return` does: no password.
    let moved = get(&addr, "/admin/old", None);
    assert_eq!(moved.status, 308, "{moved:?}");
    assert_eq!(moved.header("Location"), Some("/admin/secret.txt"));
    drop(run);
}
