//! `/status` and `/echo` never take a user's files for good: each can be
//! moved or turned off (then the file at its old path is served), a file
//! they shadow is named on stderr at start-up, `conveyor DIR` with no config
//! file leaves `/echo` to the files, and `--verbose` says why a path was
//! refused. `/status` refuses a format it does not know.

use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use crate::harness::process::{address, spawn_command, Running, BIN};
use crate::harness::{raw, start, temp_dir, Response};

fn get(addr: SocketAddr, path: &str) -> Response {
    raw(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

/// A user's own `status` file and `echo/` directory, in `root`.
fn user_files(root: &Path) {
    fs::write(root.join("status"), "my status file\n").expect("write status");
    fs::create_dir_all(root.join("echo")).expect("mkdir echo");
    fs::write(root.join("echo/index.html"), "my echo page\n").expect("write echo");
}

#[test]
fn moved_or_disabled_endpoints_give_the_paths_back_to_the_files() {
    let server = start("readiness", "spawn", |c| {
        c.status.path = "/_conveyor/status".to_string();
        c.echo.enabled = false;
    });
    user_files(&server.root);
    let r = get(server.addr, "/status");
    assert_eq!((r.status, r.text().as_str()), (200, "my status file\n"));
    let r = get(server.addr, "/echo");
    assert_eq!((r.status, r.header("location")), (301, Some("/echo/")));
    assert_eq!(get(server.addr, "/echo/").text(), "my echo page\n");
    let r = get(server.addr, "/_conveyor/status");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("\"uptime_secs\""), "{}", r.text());
    drop(server);

    let server = start("readiness", "spawn", |c| {
        c.status.enabled = false;
        c.echo.path = "/_conveyor/echo".to_string();
    });
    user_files(&server.root);
    assert_eq!(get(server.addr, "/status").text(), "my status file\n");
    assert_eq!(get(server.addr, "/_conveyor/status").status, 404);
    let r = raw(
        server.addr,
        b"POST /_conveyor/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    );
    assert_eq!((r.status, r.text().as_str()), (200, "hello"));
    assert_eq!(get(server.addr, "/echo/").text(), "my echo page\n");
}

#[test]
fn by_default_the_endpoints_answer_at_status_and_echo() {
    let server = start("readiness", "spawn", |_| {});
    user_files(&server.root);
    let r = get(server.addr, "/status");
    assert!(r.text().contains("\"uptime_secs\""), "{}", r.text());
    let r = raw(
        server.addr,
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
    );
    assert_eq!(r.text(), "hi");
}

#[test]
fn status_refuses_a_format_it_does_not_know() {
    let server = start("readiness", "spawn", |_| {});
    let r = get(server.addr, "/status?format=xml");
    assert_eq!(r.status, 400);
    let text = r.text();
    assert!(
        text.contains("format=json") && text.contains("format=prometheus"),
        "{text}"
    );
    let r = get(server.addr, "/status?format=json");
    assert_eq!(r.header("content-type"), Some("application/json"));
    let r = get(server.addr, "/status?x=1&format=prometheus");
    assert!(r.text().contains("conveyor_uptime_seconds"), "{}", r.text());
}

/// The binary, serving on a free port, and that port.
struct Started {
    run: Running,
    addr: SocketAddr,
}

/// Starts `conveyor ARGS --listen 127.0.0.1:0` in `cwd` and waits (10 s at
/// most) for the start-up line.
fn run(cwd: &Path, args: &[&str]) -> Started {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .args(["--listen", "127.0.0.1:0", "--workers", "1"])
        .current_dir(cwd);
    let run = spawn_command(command);
    let addr = address(&run.started_line()).parse().expect("an address");
    Started { run, addr }
}

impl Started {
    /// Stops it and returns everything it wrote to stderr.
    fn stderr(self) -> String {
        self.run.stop_for_stderr()
    }
}

#[test]
fn start_up_names_each_shadowed_file_and_a_bare_directory_leaves_echo_to_it() {
    let dir = temp_dir("shadow");
    let site = dir.join("site");
    fs::create_dir_all(&site).expect("mkdir");
    user_files(&site);

    // With a config file, both endpoints are on: both shadows are named.
    fs::write(dir.join("c.toml"), "[log]\nlevel = \"info\"\n").expect("config");
    let running = run(&dir, &["site", "--config", "c.toml"]);
    let r = get(running.addr, "/echo");
    assert_eq!(r.status, 200, "the echo endpoint answers");
    let err = running.stderr();
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("shadowed")).collect();
    assert_eq!(warnings.len(), 2, "{err}");
    assert!(
        warnings[0].contains("site/echo (directory)") && warnings[0].contains("echo.enabled"),
        "{err}"
    );
    assert!(
        warnings[1].contains("site/status (file)") && warnings[1].contains("status.path"),
        "{err}"
    );

    // `conveyor DIR` with no config file: /echo is the directory's.
    let running = run(&dir, &["site"]);
    let r = get(running.addr, "/echo");
    assert_eq!((r.status, r.header("location")), (301, Some("/echo/")));
    assert_eq!(get(running.addr, "/echo/").text(), "my echo page\n");
    let err = running.stderr();
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("shadowed")).collect();
    assert_eq!(warnings.len(), 1, "{err}");
    assert!(warnings[0].contains("site/status (file)"), "{err}");
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn verbose_says_why_a_path_was_refused() {
    let dir = temp_dir("verbose");
    let site = dir.join("site");
    fs::create_dir_all(&site).expect("mkdir");
    fs::write(site.join(".env"), "secret").expect("dotfile");
    fs::write(dir.join("outside.txt"), "outside").expect("outside");
    std::os::unix::fs::symlink("../outside.txt", site.join("escape.txt")).expect("symlink");

    let running = run(&dir, &["site", "--verbose"]);
    assert_eq!(get(running.addr, "/.env").status, 404);
    assert_eq!(get(running.addr, "/escape.txt").status, 404);
    assert_eq!(get(running.addr, "/missing.txt").status, 404);
    let err = running.stderr();
    let want = [
        "refused GET \"/.env\" (404): a name starts with \".\" (static.show_dotfiles = false)",
        "refused GET \"/escape.txt\" (404): a symlink leads outside the root \
         (static.follow_symlinks_outside_root = false)",
        "refused GET \"/missing.txt\" (404): no such file or directory",
    ];
    for line in want {
        assert!(err.contains(line), "{line} not in:\n{err}");
    }

    // Off by default: the same refusals, nothing on stderr.
    let running = run(&dir, &["site"]);
    assert_eq!(get(running.addr, "/.env").status, 404);
    let err = running.stderr();
    assert!(!err.contains("refused"), "{err}");
    let _ = fs::remove_dir_all(&dir);
}
