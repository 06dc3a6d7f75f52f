//! `examples/mounted_service.rs`, run as a user runs it: the example
//! binary on a config file, a mounted `/hello` beside the static files,
//! SIGHUP applying a rewritten config to a connection kept open across
//! it, and SIGTERM draining (`/readyz` 503) before a clean exit.
//!
//! Cargo names only the package's binaries to tests (`CARGO_BIN_EXE_*`),
//! so the example is found beside them, in `target/debug/examples/`:
//! `cargo test` builds the examples before it runs the tests. A filtered
//! run (`cargo test --test it`) may not have built it, or built it before
//! its source changed: the test then skips (fails under CI=true).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::needs::missing;
use crate::harness::process::{address, spawn_command};
use crate::harness::{get, temp_dir};

/// The example's binary, if it is built and newer than its source.
fn example_binary(name: &str) -> Option<PathBuf> {
    let bin = Path::new(env!("CARGO_BIN_EXE_conveyor"))
        .parent()?
        .join("examples")
        .join(name);
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(format!("{name}.rs"));
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    match (modified(&bin), modified(&source)) {
        (Some(built), Some(written)) if built >= written => Some(bin),
        _ => {
            missing(
                &format!("an up-to-date {}", bin.display()),
                "cargo test builds the examples first; after a filtered build run \
                 cargo build --examples",
            );
            None
        }
    }
}

fn write_config(dir: &Path, root: &Path) {
    let config = format!(
        "listen = \"127.0.0.1:0\"\nroot = \"{}\"\n[shutdown]\ndrain_delay = \"2s\"\n",
        root.display()
    );
    std::fs::write(dir.join("c.toml"), config).expect("config written");
}

#[test]
fn the_mounted_service_example_serves_reloads_on_sighup_and_drains_on_sigterm() {
    let Some(bin) = example_binary("mounted_service") else {
        return;
    };
    let dir = temp_dir("example-mounted");
    let (one, two) = (dir.join("one"), dir.join("two"));
    for (root, text) in [(&one, "first root\n"), (&two, "second root\n")] {
        std::fs::create_dir_all(root).expect("root");
        std::fs::write(root.join("page.txt"), text).expect("page");
    }
    write_config(&dir, &one);
    let mut command = Command::new(bin);
    command.arg(dir.join("c.toml"));
    let mut run = spawn_command(command);
    let started = run.stdout_with("mounted_service: serving http://");
    assert!(
        started.contains(&format!("(pid {})", run.child.id())),
        "{started}"
    );
    let addr = address(&started);

    // The mounted service and the static files, on one kept-alive connection.
    let mut stream = TcpStream::connect(&addr).expect("connect");
    let hello = get(&mut stream, "/hello");
    assert_eq!(hello.status, 200, "{}", hello.text());
    assert!(
        hello
            .text()
            .starts_with("hello from a mounted service: config generation 1, root "),
        "{}",
        hello.text()
    );
    assert_eq!(get(&mut stream, "/page.txt").text(), "first root\n");

    // SIGHUP: the rewritten file applies to that same connection's next
    // request; nothing was closed.
    write_config(&dir, &two);
    run.signal("HUP");
    run.stdout_with("SIGHUP: configuration generation 2 in use");
    let hello = get(&mut stream, "/hello").text();
    assert!(
        hello.contains("config generation 2")
            && hello.contains(&format!("root {}", two.display()))
            && hello.ends_with("request 2\n"),
        "{hello}"
    );
    assert_eq!(get(&mut stream, "/page.txt").text(), "second root\n");

    // A bad file is refused and the running config kept.
    std::fs::write(dir.join("c.toml"), "listen = 8\n").expect("bad config");
    run.signal("HUP");
    run.stderr_with("SIGHUP: kept the running config");
    assert_eq!(get(&mut stream, "/page.txt").text(), "second root\n");

    // SIGTERM drains: /readyz turns 503 while it still serves, then it
    // stops by itself and exits 0.
    run.terminate();
    run.stdout_with("mounted_service: draining on SIGTERM for 2.0 s");
    let mut probe = TcpStream::connect(&addr).expect("still accepting while draining");
    assert_eq!(get(&mut probe, "/readyz").status, 503);
    run.stdout_with("mounted_service: stopped on SIGTERM");
    assert_eq!(run.exit_code(), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}
