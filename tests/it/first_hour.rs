//! What a new user trips over in the first hour, run as they would run it:
//! HTTPS alone and with a certificate made at start, `conveyor DIR` next to
//! a `config/conveyor.toml` it must not read, a relative `root` in a config
//! file, mistakes that used to pass without a word, and the files a server
//! that drops root must still reach for SIGHUP and SIGUSR1.

use std::net::TcpStream;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::process::{address, is_root, spawn, Running, LIMIT};
use crate::harness::{get, localhost_certificate, needs, site_dir, wait_until};

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(path, text).expect("write");
}

/// The first `https://` address of a start-up line.
fn https_address(line: &str) -> String {
    line.split("https://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .map(|addr| addr.trim_end_matches([',', ';', ')']).to_string())
        .unwrap_or_else(|| panic!("no https:// address in {line:?}"))
}

/// GET `/` over HTTPS from `localhost` at the port of `addr`, trusting
/// whatever certificate is offered (`curl -k`): its body, or None.
fn https_body(curl: &Path, addr: &str) -> String {
    let port = addr.rsplit(':').next().expect("port");
    let out = Command::new(curl)
        .args(["-sk", "--max-time", "5", "--resolve"])
        .arg(format!("localhost:{port}:127.0.0.1"))
        .arg(format!("https://localhost:{port}/"))
        .output()
        .expect("curl runs");
    assert!(out.status.success(), "curl: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Starts the binary in `dir` with `args`; stops the test if it exits.
fn started(dir: &Path, args: &[&str]) -> (Running, String) {
    let run = spawn(dir, args);
    let line = run.started_line();
    (run, line)
}

/// Runs the binary in `dir` with `args`, expecting it to refuse to start:
/// exit code 2 and the one line it said why.
fn refused(dir: &Path, args: &[&str]) -> String {
    let mut run = spawn(dir, args);
    assert_eq!(run.exit_code(), Some(2), "{args:?} started");
    run.stderr_with("conveyor: ")
}

#[test]
fn https_with_a_certificate_made_at_start_is_one_command_and_may_stand_alone() {
    let Some([curl]) = needs::find_all([&needs::CURL]) else {
        return;
    };
    let dir = site_dir("self-signed");
    // The first try: plain and HTTPS, with no certificate files at all.
    let (mut run, line) = started(
        &dir,
        &["site", "--listen", "127.0.0.1:0", "--tls-self-signed"],
    );
    let plain = address(&line);
    assert_eq!(
        get(&mut TcpStream::connect(&plain).expect("connect"), "/").text(),
        "hi"
    );
    assert_eq!(https_body(&curl, &https_address(&line)), "hi");
    run.stderr_with("tls.self_signed: HTTPS with a certificate for localhost");
    run.terminate();
    assert_eq!(run.exit_code(), Some(0));
    assert!(
        std::fs::read_dir(&dir).expect("dir").count() == 1,
        "nothing but site/ was written: the certificate stays in memory"
    );

    // HTTPS alone: `listen = []` with a TLS listener.
    write(
        &dir,
        "c.toml",
        "root = \"site\"\nlisten = []\n[tls]\nlisten = [\"127.0.0.1:0\"]\nself_signed = true\n",
    );
    let (mut run, line) = started(&dir, &["--config", "c.toml"]);
    assert!(!line.contains("http://"), "{line}");
    assert_eq!(https_body(&curl, &https_address(&line)), "hi");
    run.terminate();
    assert_eq!(run.exit_code(), Some(0));

    // No listener of any kind is still refused.
    write(&dir, "c.toml", "root = \"site\"\nlisten = []\n");
    let message = refused(&dir, &["--config", "c.toml"]);
    assert!(
        message.contains("listen = [] and no tls.listen: the server would take no connections"),
        "{message}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn conveyor_dir_reads_no_config_file_it_was_not_given() {
    let dir = site_dir("no-default-config");
    // The demo's file, as `cargo run` finds it: echo on, status moved.
    write(
        &dir,
        "config/conveyor.toml",
        "root = \"../site\"\nlisten = \"127.0.0.1:0\"\n[status]\npath = \"/_demo/status\"\n",
    );
    let (mut run, line) = started(&dir, &["site", "--listen", "127.0.0.1:0"]);
    assert!(
        line.contains("no config file (config/conveyor.toml is not read when ROOT is given"),
        "{line}"
    );
    let addr = address(&line);
    let mut s = TcpStream::connect(&addr).expect("connect");
    assert_eq!(get(&mut s, "/echo").status, 404, "the demo's /echo");
    assert_eq!(get(&mut s, "/status").status, 200, "the default /status");
    run.terminate();
    assert_eq!(run.exit_code(), Some(0));

    // No ROOT: the demo file is read, and its relative root is taken from
    // its own directory, not from the working directory.
    let (mut run, line) = started(&dir, &[]);
    assert!(line.contains("config config/conveyor.toml"), "{line}");
    let mut s = TcpStream::connect(address(&line)).expect("connect");
    assert_eq!(get(&mut s, "/").text(), "hi");
    assert_eq!(get(&mut s, "/_demo/status").status, 200);
    run.terminate();
    assert_eq!(run.exit_code(), Some(0));

    // A root that is not there names the file that set it.
    write(&dir, "config/conveyor.toml", "root = \"site\"\n");
    let message = refused(&dir, &[]);
    assert!(
        message.contains(
            "root \"config/site\" does not exist (set by root in config/conveyor.toml, \
             relative to its directory)"
        ),
        "{message}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn mistakes_that_passed_without_a_word_stop_start_up_naming_the_key() {
    let dir = site_dir("silent-mistakes");
    for (config, says) in [
        (
            "[static]\nerror_pages = { 404 = \"404.html\" }\n",
            "static.error_pages: 404 = \"/404.html\", but site/404.html does not exist",
        ),
        (
            "[timeouts]\nkeepalive_idle = 75000\n",
            "timeouts.keepalive_idle = 75000 is read as 75000 seconds (20.8 hours)",
        ),
        (
            "[tls]\nredirect_http = true\n",
            "tls.redirect_http = true, but there is no TLS listener to redirect to",
        ),
    ] {
        write(
            &dir,
            "c.toml",
            &format!("root = \"site\"\nlisten = \"127.0.0.1:0\"\n{config}"),
        );
        let message = refused(&dir, &["--config", "c.toml"]);
        assert!(message.contains(says), "{config}: {message}");
    }
    // The unit it asks for, and the page once it exists, start it.
    write(
        &dir,
        "c.toml",
        "root = \"site\"\nlisten = \"127.0.0.1:0\"\n[timeouts]\nkeepalive_idle = \"75s\"\n\
         [static]\nerror_pages = { 404 = \"404.html\" }\n",
    );
    write(&dir, "site/404.html", "gone");
    let (mut run, line) = started(&dir, &["--config", "c.toml"]);
    let mut s = TcpStream::connect(address(&line)).expect("connect");
    let missing = get(&mut s, "/nope");
    assert_eq!((missing.status, missing.text()), (404, "gone".to_string()));
    run.terminate();
    assert_eq!(run.exit_code(), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn running_as_root_with_no_user_is_said_once() {
    let dir = site_dir("root-warning");
    let (mut run, _) = started(&dir, &["site", "--listen", "127.0.0.1:0"]);
    run.terminate();
    assert_eq!(run.exit_code(), Some(0));
    let stderr = run.stop_for_stderr();
    let warnings = stderr.matches("running as root with no `user`").count();
    assert_eq!(warnings, usize::from(is_root()), "{stderr}");
    if is_root() {
        assert!(stderr.contains("CAP_NET_BIND_SERVICE"), "{stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A directory only root may write into, readable by all.
fn root_only_dir(path: &Path) -> PathBuf {
    std::fs::create_dir_all(path).expect("mkdir");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path.to_path_buf()
}

/// Gives `path` to the account `nobody`.
fn give_to_nobody(path: &Path) {
    let status = Command::new("chown")
        .args(["nobody"])
        .arg(path)
        .status()
        .expect("chown runs");
    assert!(status.success());
}

#[test]
fn a_server_that_drops_root_checks_what_sighup_and_sigusr1_reopen() {
    if !needs::root() {
        return;
    }
    let dir = site_dir("drop-checks");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let tls = root_only_dir(&dir.join("tls"));
    let files = localhost_certificate(&tls);
    std::fs::set_permissions(&files.key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let logs = root_only_dir(&dir.join("logs"));
    let config = format!(
        "root = \"site\"\nlisten = \"127.0.0.1:0\"\nuser = \"nobody\"\n\
         [log]\naccess_log = true\naccess_log_path = \"logs/access.log\"\n\
         [tls]\nlisten = [\"127.0.0.1:0\"]\n\
         [[tls.certificates]]\ncert = \"{}\"\nkey = \"{}\"\n",
        files.cert.display(),
        files.key.display()
    );
    write(&dir, "c.toml", &config);

    // The key root alone may read: refused, naming it and the fix.
    let message = refused(&dir, &["--config", "c.toml"]);
    assert!(
        message.contains(&format!(
            "TLS key {}: user = \"nobody\"",
            files.key.display()
        )) && message.contains("so SIGHUP could not load it")
            && message.contains("chmod"),
        "{message}"
    );
    // The key readable, the log's directory root's alone: refused.
    std::fs::set_permissions(&files.key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let message = refused(&dir, &["--config", "c.toml"]);
    assert!(
        message.contains("log.access_log_path \"logs/access.log\": user = \"nobody\" cannot create files in logs")
            && message.contains("SIGUSR1 could not reopen the log"),
        "{message}"
    );

    // Both fixed: it starts as nobody, and after a rotation SIGUSR1 makes
    // a new log that the next request lands in; SIGHUP reads the key again.
    give_to_nobody(&logs);
    let (run, line) = started(&dir, &["--config", "c.toml"]);
    let addr = address(&line);
    let mut s = TcpStream::connect(&addr).expect("connect");
    assert_eq!(get(&mut s, "/").text(), "hi");
    // The log root opened at start is nobody's: a SIGUSR1 with no
    // rotation before it opens that same file again.
    let owner = std::fs::metadata(logs.join("access.log"))
        .expect("log")
        .uid();
    assert_eq!(owner, 65534, "the log file belongs to the run user");
    run.signal("USR1");
    run.stderr_with("SIGUSR1: access log reopened");
    std::fs::rename(logs.join("access.log"), logs.join("access.log.1")).expect("rotate");
    run.signal("USR1");
    run.stderr_with("SIGUSR1: access log reopened");
    assert_eq!(get(&mut s, "/index.html").text(), "hi");
    let fresh = logs.join("access.log");
    assert!(
        wait_until(LIMIT, || std::fs::read_to_string(&fresh)
            .is_ok_and(|log| log.contains("GET /index.html"))),
        "the request is not in the new log"
    );
    run.signal("HUP");
    run.stderr_with("SIGHUP: reloaded");
    run.terminate();
    let _ = std::fs::remove_dir_all(&dir);
}
