//! `cargo bench --bench keepalive`: what swapping a stage costs.
//!
//! Starts Conveyor in-process for every acceptor × dispatcher combination and
//! runs `conveyor bench`'s client against it — keep-alive, pipelined ×16 and
//! `Connection: close`, on a 128-byte file and on `/status` — printing one
//! table of requests/s. The server gets one worker and the client one
//! thread, so on a 2-core machine each has a core.
//!
//! Environment: `BENCH_SECONDS` per scenario (default 1.5), `CONNECTIONS` (32).

use std::time::Duration;

use conveyor::bench::{self, BenchOptions};
use conveyor::config::{AcceptorKind, Config, DispatcherKind};
use conveyor::Server;

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
                let options = BenchOptions {
                    connections,
                    duration: Duration::from_secs_f64(seconds),
                    requests: None,
                    pipeline: s.pipeline,
                    close: s.close,
                    threads: 1,
                    ..BenchOptions::new(server.local_addr(), s.path)
                };
                let report = bench::run(&options, |_| {})?;
                // A cell that failed says how, rather than passing as a rate.
                let errors = if report.failed() > 0 {
                    format!(" ({} errors: {})", report.failed(), report.error_summary())
                } else {
                    String::new()
                };
                row.push_str(&format!(" {:.0}{errors} |", report.requests_per_sec()));
            }
            println!("{row}");
            server.shutdown();
        }
    }
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}
