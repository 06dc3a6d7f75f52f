//! Running the `conveyor` binary in a test: its output arrives line by
//! line on channels, so every wait has a deadline; it is killed (by its
//! PID) if a test fails midway.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// The binary under test.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_conveyor");
/// The longest any one wait on the binary may take.
pub(crate) const LIMIT: Duration = Duration::from_secs(10);

/// A running binary; its output arrives line by line on channels, so every
/// wait has a deadline. Killed (by its PID) if a test fails midway.
///
/// The server writes its own messages (the start-up and stop lines
/// included) to stderr; stdout holds only the access log (`-`).
pub(crate) struct Running {
    pub(crate) child: Child,
    pub(crate) stdout: Receiver<String>,
    pub(crate) stderr: Receiver<String>,
    /// Stderr lines received while looking for another, in order: the
    /// next `stderr_line` or `stderr_with` sees them first.
    held: RefCell<VecDeque<String>>,
}

fn lines(stream: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

pub(crate) fn spawn(dir: &Path, args: &[&str]) -> Running {
    let mut command = Command::new(BIN);
    command.args(args).current_dir(dir);
    spawn_command(command)
}

/// Starts the binary in `dir` on `dir/c.toml`; returns it and the first
/// address its start-up line names.
pub(crate) fn spawn_on_config(dir: &Path) -> (Running, String) {
    let run = spawn(dir, &["--config", "c.toml"]);
    let addr = address(&run.started_line());
    (run, addr)
}

pub(crate) fn spawn_command(mut command: Command) -> Running {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let stdout = lines(child.stdout.take().expect("stdout"));
    let stderr = lines(child.stderr.take().expect("stderr"));
    Running {
        child,
        stdout,
        stderr,
        held: RefCell::default(),
    }
}

impl Running {
    fn line(rx: &Receiver<String>, what: &str) -> String {
        rx.recv_timeout(LIMIT)
            .unwrap_or_else(|_| panic!("no {what} within {LIMIT:?}"))
    }

    /// The start-up line (`conveyor … serving … on …`), on stderr; the
    /// lines before it stay for `stderr_line`.
    pub(crate) fn started_line(&self) -> String {
        self.stderr_with(" serving ")
    }

    /// The stop line (`conveyor: stopping on …`), on stderr.
    pub(crate) fn stop_line(&self) -> String {
        self.stderr_with("conveyor: stopping on ")
    }

    pub(crate) fn stderr_line(&self) -> String {
        if let Some(line) = self.held.borrow_mut().pop_front() {
            return line;
        }
        Self::line(&self.stderr, "line on stderr")
    }

    /// The exit code, waiting at most `LIMIT`.
    pub(crate) fn exit_code(&mut self) -> Option<i32> {
        let deadline = Instant::now() + LIMIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code();
            }
            assert!(Instant::now() < deadline, "still running after {LIMIT:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Kills it and returns everything it wrote to stderr: a line written
    /// before a response went out is in the pipe by then.
    pub(crate) fn stop_for_stderr(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let deadline = Instant::now() + LIMIT;
        let mut out: String = self.held.take().into_iter().map(|l| l + "\n").collect();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => out += &(line + "\n"),
                Err(RecvTimeoutError::Disconnected) => return out,
                Err(RecvTimeoutError::Timeout) => panic!("stderr still open: {out}"),
            }
        }
    }

    /// Whether the process is still running.
    pub(crate) fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGTERM, by its PID.
    pub(crate) fn terminate(&self) {
        self.signal("TERM");
    }

    /// Sends the signal named like `HUP` to the binary, by its PID.
    pub(crate) fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// The next stdout line holding `text`, skipping others, within `LIMIT`.
    pub(crate) fn stdout_with(&self, text: &str) -> String {
        let deadline = Instant::now() + LIMIT;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.stdout.recv_timeout(left) {
                Ok(line) if line.contains(text) => return line,
                Ok(line) => seen.push(line),
                Err(_) => break,
            }
        }
        panic!("no stdout line with {text:?} within {LIMIT:?}; saw {seen:?}")
    }

    /// The next stderr line holding `text`, within `LIMIT`; the lines
    /// before it are held, in order, for the next `stderr_line`.
    pub(crate) fn stderr_with(&self, text: &str) -> String {
        let mut held = self.held.borrow_mut();
        if let Some(at) = held.iter().position(|l| l.contains(text)) {
            return held.remove(at).unwrap_or_default();
        }
        let deadline = Instant::now() + LIMIT;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.stderr.recv_timeout(left) {
                Ok(line) if line.contains(text) => return line,
                Ok(line) => held.push_back(line),
                Err(_) => break,
            }
        }
        panic!("no stderr line with {text:?} within {LIMIT:?}; saw {held:?}")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Set in the test process `alone` starts.
const ALONE: &str = "CONVEYOR_TEST_ALONE";

/// For a test that measures this process (its resident memory): all tests
/// share one process, so the test runs again in a process of its own, with
/// no other test beside it. Returns true in that process, where the test
/// does its work, and false in the first, once the other passed. Call it
/// as `alone(module_path!(), "the_test_fn")`.
pub(crate) fn alone(module: &str, test: &str) -> bool {
    if std::env::var_os(ALONE).is_some() {
        return true;
    }
    // libtest names a test by its path without the crate's name.
    let module = module.split_once("::").map_or("", |(_, rest)| rest);
    let name = if module.is_empty() {
        test.to_string()
    } else {
        format!("{module}::{test}")
    };
    let out = Command::new(std::env::current_exe().expect("the test binary"))
        .args([&name, "--exact", "--nocapture", "--test-threads=1"])
        .env(ALONE, "1")
        .output()
        .expect("the test binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{name}, alone in process:\n{stdout}{stderr}");
    assert!(
        out.status.success(),
        "{name} failed alone: {stdout}{stderr}"
    );
    assert!(
        stdout.contains("1 passed"),
        "{name} did not run alone: {stdout}"
    );
    false
}

/// The first address of a start-up (or reload) line.
pub(crate) fn address(line: &str) -> String {
    line.split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .map(|addr| addr.trim_end_matches([',', ';']))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string()
}

/// Whether the tests run as root (switching users and mounting need it).
pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The ids on a /proc status line of process `pid` (`Uid`: real,
/// effective, saved and file-system; `Gid` likewise; `Groups`).
pub(crate) fn ids(pid: u32, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in {status}"))
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}
