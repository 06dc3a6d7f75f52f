//! The compress-once cache over real sockets: keyed by the file opened,
//! not the URL, so aliases share one compression; one byte budget for all
//! workers together; the least recently used evicted, so later files are
//! still compressed once it is full. The figures come from `GET /status`.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::status::{parse, Figures};
use crate::harness::*;
use conveyor::config::Config;

/// Text that compresses about threefold, `len` bytes, different per `seed`.
fn text(len: usize, seed: u32) -> Vec<u8> {
    const WORDS: [&str; 16] = [
        "const ",
        "value",
        " = ",
        "function",
        "(x)",
        " { ",
        "return ",
        "};\n",
        "let ",
        "items",
        ".map",
        "(y => y + 1)",
        " if ",
        "else",
        "null",
        "[i]",
    ];
    let mut x = 0x9e37_79b9_u32 ^ seed.wrapping_mul(0x85eb_ca6b);
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        out.extend_from_slice(WORDS[(x % 16) as usize].as_bytes());
        if x.is_multiple_of(7) {
            out.extend_from_slice(format!("{}", x % 1000).as_bytes());
        }
    }
    out.truncate(len);
    out
}

fn server(workers: usize, tweak: impl Fn(&mut Config)) -> TestServer {
    start("readiness", "spawn", |c| {
        c.workers = workers;
        tweak(c);
    })
}

/// GET `path` with `Accept-Encoding: br` on a new connection (the
/// readiness acceptor deals connections to the workers in turn).
fn get_br(server: &TestServer, path: &str) -> Response {
    get_with(server, path, "Accept-Encoding: br\r\n")
}

fn unbrotli(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::BrotliDecompress(&mut &bytes[..], &mut out).expect("valid brotli");
    out
}

/// The `file_cache` object of `GET /status`.
fn cache(server: &TestServer) -> Value {
    let r = get_with(server, "/status", "");
    assert_eq!(r.status, 200, "{}", r.text());
    parse(&r.text()).at("file_cache").clone()
}

fn figure(cache: &Value, name: &str) -> u64 {
    u64::try_from(cache.at(name).int()).expect("a count")
}

/// Asserts `path` comes back brotli-compressed and decodes to `plain`.
/// A request waits for its file's compression up to 500 ms, then gets the
/// file as it is: on a loaded machine (a debug build compresses slowly)
/// that is allowed, so it asks again, within a deadline.
fn assert_compressed(server: &TestServer, path: &str, plain: &[u8]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = get_br(server, path);
        assert_eq!(r.status, 200, "{path}");
        if r.header("Content-Encoding") == Some("br") {
            assert!(unbrotli(&r.body) == plain, "{path} decodes to the file");
            return;
        }
        assert!(r.body == plain, "{path} as it is, meanwhile");
        assert!(Instant::now() < deadline, "{path} compressed within 30 s");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn write(root: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(root.join(name), bytes).expect("write");
}

#[test]
fn aliases_of_a_file_share_one_compression() {
    let server = server(2, |_| {});
    let big = text(100 * 1024, 1);
    write(&server.root, "big.js", &big);
    let small = text(8 * 1024, 2);
    write(&server.root, "small.css", &small);
    // Twice each, so every alias reaches both workers.
    for _ in 0..2 {
        for path in ["/big.js", "/./big.js", "//big.js", "/%62ig.js"] {
            assert_compressed(&server, path, &big);
        }
        for path in ["/small.css", "/./small.css", "/%73mall.css"] {
            assert_compressed(&server, path, &small);
        }
    }
    let c = cache(&server);
    assert_eq!(figure(&c, "compressions"), 2, "{c}");
    assert_eq!(figure(&c, "compressed_entries"), 2, "{c}");
    // The small file is kept in memory by its one canonical URL, once per
    // worker at most: aliases add nothing.
    let file_bytes = figure(&c, "file_bytes");
    assert!(file_bytes <= 2 * small.len() as u64, "{c}");
}

#[test]
fn the_byte_budget_holds_for_all_workers_together_and_keeps_compressing() {
    const BUDGET: u64 = 256 * 1024;
    let server = server(2, |c| c.static_files.cache_max_bytes = BUDGET);
    // Twelve 100 KiB files (sent with sendfile, compressed into memory)
    // and eight 32 KiB ones (kept in memory, by each worker).
    let files: Vec<(String, Vec<u8>)> = (0..12)
        .map(|i| (format!("/big{i}.js"), text(100 * 1024, 10 + i)))
        .chain((0..8).map(|i| (format!("/small{i}.css"), text(32 * 1024, 30 + i))))
        .collect();
    for (path, bytes) in &files {
        write(&server.root, &path[1..], bytes);
    }
    for round in 0..2 {
        for (path, bytes) in &files {
            assert_compressed(&server, path, bytes);
            let c = cache(&server);
            let total = figure(&c, "file_bytes") + figure(&c, "compressed_bytes");
            assert!(total <= BUDGET, "round {round}, {path}: {c}");
        }
    }
    let c = cache(&server);
    assert_eq!(figure(&c, "max_bytes"), BUDGET);
    assert!(figure(&c, "evictions") > 0, "the budget was reached: {c}");
    assert!(figure(&c, "file_bytes") > 0, "{c}");
    // Full, and a file never seen before is still compressed.
    let late = text(100 * 1024, 99);
    write(&server.root, "late.js", &late);
    assert_compressed(&server, "/late.js", &late);
}

#[test]
fn the_least_recently_used_is_evicted() {
    // What one compressed entry costs, measured on a server with room.
    let probe = server(1, |_| {});
    write(&probe.root, "a.js", &text(100 * 1024, 1));
    assert_compressed(&probe, "/a.js", &text(100 * 1024, 1));
    let entry = figure(&cache(&probe), "compressed_bytes");
    drop(probe);

    // Room for two such entries, not three (the files are sent with
    // sendfile: no other bytes in memory).
    let server = server(1, |c| c.static_files.cache_max_bytes = entry * 5 / 2);
    let [a, b, c] = [1, 2, 3].map(|seed| text(100 * 1024, seed));
    for (name, bytes) in [("a.js", &a), ("b.js", &b), ("c.js", &c)] {
        write(&server.root, name, bytes);
    }
    assert_compressed(&server, "/a.js", &a);
    assert_compressed(&server, "/b.js", &b);
    // `a` used again: `b` is now the least recently used.
    assert_compressed(&server, "/a.js", &a);
    assert_compressed(&server, "/c.js", &c);
    let figures = cache(&server);
    assert_eq!(figure(&figures, "compressions"), 3, "{figures}");
    assert_eq!(figure(&figures, "evictions"), 1, "{figures}");
    // `a` and `c` stayed: no compression to serve them.
    assert_compressed(&server, "/a.js", &a);
    assert_compressed(&server, "/c.js", &c);
    assert_eq!(figure(&cache(&server), "compressions"), 3);
    // `b` went, and is compressed again.
    assert_compressed(&server, "/b.js", &b);
    assert_eq!(figure(&cache(&server), "compressions"), 4);
}
