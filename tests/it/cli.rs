//! The `conveyor` binary: start-up errors, the start-up line, a request,
//! and SIGTERM ending it gracefully with exit code 0.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use conveyor::config::AcceptorKind;

const BIN: &str = env!("CARGO_BIN_EXE_conveyor");

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn bad_input_stops_start_up_with_exit_code_2_and_names_the_fix() {
    let (code, text) = run(&["--acceptor", "fast"]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("--acceptor fast"), "{text}");
    for name in AcceptorKind::NAMES {
        assert!(text.contains(&format!("\"{name}\"")), "{name}: {text}");
    }

    let (code, text) = run(&["/nonexistent/conveyor-root", "--listen", "127.0.0.1:0"]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("root"), "{text}");

    let config = std::env::temp_dir().join(format!("conveyor-cli-{}.toml", std::process::id()));
    std::fs::write(&config, "[timeouts]\nheader_read = \"soon\"\n").expect("write config");
    let (code, text) = run(&[
        "--config",
        config.to_str().expect("utf-8"),
        "--listen",
        "127.0.0.1:0",
    ]);
    let _ = std::fs::remove_file(&config);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("timeouts.header_read"), "{text}");
}

#[test]
fn help_and_version() {
    let (code, text) = run(&["--version"]);
    assert_eq!(
        (code, text.trim()),
        (0, concat!("conveyor ", env!("CARGO_PKG_VERSION")))
    );
    let (code, text) = run(&["--help"]);
    assert_eq!(code, 0);
    assert!(
        text.contains("--dispatcher") && text.contains("bench"),
        "{text}"
    );
}

#[test]
fn serves_then_stops_on_sigterm_with_exit_code_0() {
    let mut child = Command::new(BIN)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--acceptor",
            "reuseport",
            "--dispatcher",
            "pool",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    // Kept open to the end: the server writes its stop line there.
    let mut messages = BufReader::new(child.stderr.take().expect("stderr"));
    let line = start_up(&mut messages);
    assert!(
        line.contains("acceptor reuseport") && line.contains("dispatcher pool"),
        "{line}"
    );
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("address in the start-up line")
        .to_string();
    let mut stream = TcpStream::connect(&addr).expect("connect");
    stream
        .write_all(b"GET /status HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    // An idle connection must not hold the shutdown up.
    let _idle = TcpStream::connect(&addr).expect("connect");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let code = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status.code();
        }
        assert!(
            Instant::now() < deadline,
            "still running 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(code, Some(0));
}

/// The start-up line among the server's messages on stderr (the
/// connection-budget note comes before it).
fn start_up(messages: &mut impl BufRead) -> String {
    let mut line = String::new();
    while !line.contains(" serving ") {
        line.clear();
        let n = messages.read_line(&mut line).expect("start-up line");
        assert!(n > 0, "stderr ended before the start-up line");
    }
    line
}

/// Starts `conveyor ARGS`, returns its start-up line, and stops it.
fn start_up_line(args: &[&str]) -> String {
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let line = start_up(&mut BufReader::new(child.stderr.take().expect("stderr")));
    let _ = child.kill();
    let _ = child.wait();
    line
}

#[test]
fn every_flag_takes_its_value_after_a_space_or_an_equals_sign() {
    let line = start_up_line(&[
        "--listen=127.0.0.1:0",
        "--workers",
        "1",
        "--acceptor=reuseport",
        "--dispatcher",
        "pool",
    ]);
    assert!(
        line.contains("(workers 1, acceptor reuseport, dispatcher pool,"),
        "{line}"
    );
    let line = start_up_line(&[
        "--listen",
        "127.0.0.1:0",
        "--workers=2",
        "--acceptor",
        "readiness",
        "--dispatcher=spawn",
    ]);
    assert!(
        line.contains("(workers 2, acceptor readiness, dispatcher spawn,"),
        "{line}"
    );
}

#[test]
fn a_bad_flag_exits_2_with_one_style_for_both_commands() {
    for (args, message) in [
        (
            &["--port", "1"][..],
            "conveyor: unknown option --port (see conveyor --help)",
        ),
        (
            &["--workers"][..],
            "conveyor: --workers N needs a value (see conveyor --help)",
        ),
        (
            &["--access-log=yes"][..],
            "conveyor: --access-log takes no value (see conveyor --help)",
        ),
        (
            &["--workers=many"][..],
            "conveyor: --workers many is invalid; ",
        ),
        (
            &["bench", "http://127.0.0.1:1/", "--bogus"][..],
            "conveyor: unknown option --bogus (see conveyor bench --help)",
        ),
        (
            &["bench", "http://127.0.0.1:1/", "--rate"][..],
            "conveyor: --rate R needs a value (see conveyor bench --help)",
        ),
        (
            &["bench", "http://127.0.0.1:1/", "--json=yes"][..],
            "conveyor: --json takes no value (see conveyor bench --help)",
        ),
        (
            &["bench", "http://127.0.0.1:1/", "--connections=none"][..],
            "conveyor: --connections none is not a positive whole number \
             (see conveyor bench --help)",
        ),
    ] {
        let (code, text) = run(args);
        assert_eq!(code, 2, "{args:?}: {text}");
        assert!(text.starts_with(message), "{args:?}: {text}");
    }
    // Two roots are one too many.
    let (code, text) = run(&["a", "b"]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("only one ROOT"), "{text}");
}

#[test]
fn help_is_asked_for_the_same_way_in_both_commands() {
    for args in [&["-h"][..], &["www", "--help"][..]] {
        let (code, text) = run(args);
        assert_eq!(code, 0, "{text}");
        assert!(
            text.starts_with("Conveyor: a static HTTP/1.1 server"),
            "{text}"
        );
    }
    for args in [&["bench", "--help"][..], &["bench", "http://x/", "-h"][..]] {
        let (code, text) = run(args);
        assert_eq!(code, 0, "{text}");
        assert!(text.starts_with("usage: conveyor bench URL"), "{text}");
    }
    // "bench" after a flag is a ROOT, not the subcommand.
    let (code, text) = run(&["--listen", "127.0.0.1:0", "--access-log", "bench"]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("bench"), "{text}");
}

#[test]
fn paths_are_passed_as_the_os_gave_them() {
    use std::os::unix::ffi::OsStrExt;
    // Not UTF-8: a lossy decoding would look for another file.
    let dir = std::env::temp_dir().join(format!("conveyor-cli-paths-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let config = dir.join(std::ffi::OsStr::from_bytes(b"conveyor-\xff.toml"));
    std::fs::write(&config, "[timeouts]\nheader_read = \"soon\"\n").expect("write config");
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .expect("runs");
    let _ = std::fs::remove_dir_all(&dir);
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{text}");
    // The file was found and read: its bad value is what stopped start-up.
    assert!(text.contains("timeouts.header_read"), "{text}");
    let (code, text) = run(&["--config", "/definitely/missing.toml"]);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.starts_with("conveyor: cannot read config file /definitely/missing.toml"),
        "{text}"
    );
}
