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
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("start-up line");
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
