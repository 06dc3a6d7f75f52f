//! The `conveyor` binary as a child process: its output line by line on
//! channels (every wait has a deadline), signals sent by its PID, killed by
//! its PID if a test fails midway.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_conveyor");
/// The longest any one wait on the child lasts.
pub(crate) const LIMIT: Duration = Duration::from_secs(10);

/// A running binary.
pub(crate) struct Running {
    pub child: Child,
    pub stdout: Receiver<String>,
    pub stderr: Receiver<String>,
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

/// Runs the binary with `args` in `dir`.
pub(crate) fn spawn(dir: &Path, args: &[&str]) -> Running {
    let mut command = Command::new(BIN);
    command.args(args).current_dir(dir);
    spawn_command(command)
}

/// Runs `command` (the binary, set up by the caller) with its output piped.
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
    }
}

impl Running {
    fn line(rx: &Receiver<String>, what: &str) -> String {
        rx.recv_timeout(LIMIT)
            .unwrap_or_else(|_| panic!("no {what} within {LIMIT:?}"))
    }

    pub(crate) fn stdout_line(&self) -> String {
        Self::line(&self.stdout, "line on stdout")
    }

    pub(crate) fn stderr_line(&self) -> String {
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

    /// Whether the process is still running.
    pub(crate) fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends `signal` ("TERM", "INT", "HUP") to the child, by its PID.
    pub(crate) fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} failed");
    }

    pub(crate) fn terminate(&self) {
        self.signal("TERM");
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

/// The first address of a start-up line.
pub(crate) fn address(line: &str) -> String {
    line.split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string()
}
