//! Replays every fuzz corpus input and every input that ever crashed a fuzz
//! target (`fuzz/corpus/TARGET/`, `fuzz/regressions/TARGET/`) through the
//! same checks the targets run (`fuzz/checks.rs`), so `cargo test` on
//! stable holds them without nightly or libFuzzer.

#[path = "../../fuzz/checks.rs"]
mod checks;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// Every fuzz target, by the name of its corpus directory.
const TARGETS: [&str; 10] = [
    "request",
    "chunked",
    "resolve",
    "conditional",
    "config",
    "negotiate",
    "proxy",
    "per_client_step",
    "hpack",
    "h2_connection",
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files of `fuzz/KIND/TARGET/`, sorted; none if it does not exist.
fn files(kind: &str, target: &str) -> Vec<PathBuf> {
    let Ok(dir) = std::fs::read_dir(fuzz_dir().join(kind).join(target)) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = dir
        .map(|e| e.expect("read corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs `check` on every corpus and regression input of `target`; fails
/// naming each input whose check panicked.
fn replay(target: &str, check: impl Fn(&[u8])) {
    let corpus = files("corpus", target);
    assert!(!corpus.is_empty(), "fuzz/corpus/{target} is empty");
    let mut failed = Vec::new();
    for file in corpus.iter().chain(&files("regressions", target)) {
        let data = std::fs::read(file).expect("read corpus input");
        if catch_unwind(AssertUnwindSafe(|| check(&data))).is_err() {
            failed.push(file.display().to_string());
        }
    }
    assert!(failed.is_empty(), "{target}: failing inputs {failed:#?}");
}

#[test]
fn every_corpus_directory_is_replayed() {
    for kind in ["corpus", "regressions"] {
        let Ok(dir) = std::fs::read_dir(fuzz_dir().join(kind)) else {
            continue;
        };
        for entry in dir {
            let name = entry.expect("read fuzz dir").file_name();
            let name = name.to_string_lossy();
            assert!(
                TARGETS.contains(&name.as_ref()),
                "fuzz/{kind}/{name} has no replay here"
            );
        }
    }
}

#[test]
fn request() {
    replay("request", checks::request);
}

#[test]
fn chunked() {
    replay("chunked", checks::chunked);
}

#[test]
fn resolve() {
    let fixture = checks::ResolveFixture::new();
    replay("resolve", |data| fixture.check(data));
}

#[test]
fn conditional() {
    replay("conditional", checks::conditional);
}

#[test]
fn config() {
    replay("config", checks::config);
}

#[test]
fn negotiate() {
    replay("negotiate", checks::negotiate);
}

#[test]
fn proxy() {
    replay("proxy", checks::proxy);
}

#[test]
fn per_client_step() {
    replay("per_client_step", checks::per_client_step);
}

#[test]
fn hpack() {
    replay("hpack", checks::hpack);
}

#[test]
fn h2_connection() {
    let server = crate::harness::start(
        crate::harness::ACCEPTORS[0],
        crate::harness::DISPATCHERS[0],
        checks::h2_fuzz_config,
    );
    replay("h2_connection", |data| {
        checks::h2_connection(server.addr, data)
    });
}
