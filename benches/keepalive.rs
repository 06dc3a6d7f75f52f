//! `cargo bench --bench keepalive`: what swapping a stage costs.
//!
//! Starts Conveyor in-process for every acceptor × dispatcher combination and
//! runs the `conveyor bench` binary against it — keep-alive, pipelined ×16
//! and `Connection: close`, on a 128-byte file and on `/status` — printing
//! one table of requests/s from its `--json` report. The server gets one
//! worker and the client one thread, so on a 2-core machine each has a core.
//!
//! Environment: `BENCH_SECONDS` per scenario (default 1.5), `CONNECTIONS` (32).

use std::process::{Command, Stdio};

use conveyor::config::{AcceptorKind, Config, DispatcherKind};
use conveyor::Server;
use serde_json::Value;

/// The `conveyor` binary cargo built for this bench, same profile.
const BIN: &str = env!("CARGO_BIN_EXE_conveyor");

struct Scenario {
    name: &'static str,
    path: &'static str,
    pipeline: usize,
    close: bool,
}

const SCENARIOS: [Scenario; 6] = [
    Scenario {
        name: "small keep-alive",
        path: "/small.txt",
        pipeline: 1,
        close: false,
    },
    Scenario {
        name: "small pipelined x16",
        path: "/small.txt",
        pipeline: 16,
        close: false,
    },
    Scenario {
        name: "small close",
        path: "/small.txt",
        pipeline: 1,
        close: true,
    },
    Scenario {
        name: "/status keep-alive",
        path: "/status",
        pipeline: 1,
        close: false,
    },
    Scenario {
        name: "/status pipelined x16",
        path: "/status",
        pipeline: 16,
        close: false,
    },
    Scenario {
        name: "/status close",
        path: "/status",
        pipeline: 1,
        close: true,
    },
];

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One scenario's requests/s, as `conveyor bench --json` measured it; a
/// cell that failed says how, rather than passing as a rate.
fn cell(url: &str, s: &Scenario, connections: usize, seconds: f64) -> std::io::Result<String> {
    let mut command = Command::new(BIN);
    command
        .args(["bench", url, "--threads=1", "--json"])
        .arg(format!("--connections={connections}"))
        .arg(format!("--duration={}ms", (seconds * 1000.0) as u64))
        .arg(format!("--pipeline={}", s.pipeline));
    if s.close {
        command.arg("--close");
    }
    let out = command.stderr(Stdio::null()).output()?;
    let report: Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        std::io::Error::other(format!(
            "conveyor bench gave no JSON report ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        ))
    })?;
    let rps = report["requests_per_sec"].as_f64().unwrap_or(0.0);
    let errors = report["errors"].as_u64().unwrap_or(0);
    Ok(if errors > 0 {
        let failures = report["failures"].to_string();
        format!("{rps:.0} ({errors} errors: {failures})")
    } else {
        format!("{rps:.0}")
    })
}

fn main() -> std::io::Result<()> {
    let seconds: f64 = env_or("BENCH_SECONDS", 1.5);
    let connections: usize = env_or("CONNECTIONS", 32);
    let root =
        std::env::temp_dir().join(format!("conveyor-keepalive-bench-{}", std::process::id()));
    std::fs::create_dir_all(&root)?;
    std::fs::write(root.join("small.txt"), [b'x'; 128])?;

    println!(
        "requests/s, {connections} connections, {seconds} s per scenario, server 1 worker, client 1 thread\n"
    );
    let mut header = String::from("| acceptor × dispatcher |");
    let mut rule = String::from("|---|");
    for s in &SCENARIOS {
        header.push_str(&format!(" {} |", s.name));
        rule.push_str("---:|");
    }
    println!("{header}\n{rule}");
    for acceptor in AcceptorKind::ALL {
        for dispatcher in DispatcherKind::ALL {
            let mut config = Config {
                listen: "127.0.0.1:0".parse().expect("literal address"),
                root: root.clone(),
                workers: 1,
                ..Config::default()
            };
            config.stages.acceptor = acceptor;
            config.stages.dispatcher = dispatcher;
            // The client reconnects after each close: keep the limit out of the way.
            config.limits.max_requests_per_connection = u64::MAX;
            let server = Server::start(config)?;
            let mut row = format!("| {acceptor} × {dispatcher} |");
            for s in &SCENARIOS {
                let url = format!("http://{}{}", server.local_addr(), s.path);
                row.push_str(&format!(" {} |", cell(&url, s, connections, seconds)?));
            }
            println!("{row}");
            server.shutdown();
        }
    }
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}
