//! The server's dependency tree holds no async runtime: the scheduler is
//! ours. tokio is there for its I/O traits only (the `h2` crate is written
//! against them), so none of its runtime, net, time or macro features may
//! be switched on by anything the server builds with.

use std::process::Command;

use crate::harness::repo;

/// Crates that bring a runtime of their own.
const RUNTIMES: &[&str] = &[
    "async-std",
    "smol",
    "async-io",
    "async-executor",
    "mio",
    "glommio",
    "may",
];
/// tokio features that are (or pull in) a runtime, a reactor or timers.
const TOKIO_RUNTIME_FEATURES: &[&str] = &[
    "rt",
    "rt-multi-thread",
    "net",
    "time",
    "macros",
    "process",
    "fs",
    "signal",
    "full",
];

#[test]
fn no_async_runtime_is_in_the_servers_tree() {
    let out = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "-e",
            "features,normal",
            "--prefix",
            "none",
        ])
        .current_dir(repo("."))
        .output()
        .expect("run cargo tree");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    let mut found = Vec::new();
    for line in tree.lines() {
        let mut words = line.split_whitespace();
        let (Some(name), Some(rest)) = (words.next(), words.next()) else {
            continue;
        };
        if RUNTIMES.contains(&name) && rest.starts_with('v') {
            found.push(line.to_string());
        }
        if name == "tokio" && rest == "feature" {
            let feature = words.next().unwrap_or("").trim_matches('"');
            if TOKIO_RUNTIME_FEATURES.contains(&feature) {
                found.push(line.to_string());
            }
        }
    }
    assert!(
        tree.contains("tokio v1"),
        "the check sees the tree:\n{tree}"
    );
    assert!(
        found.is_empty(),
        "a runtime in the server's tree:\n{}",
        found.join("\n")
    );
}
