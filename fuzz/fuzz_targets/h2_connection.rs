#![no_main]
//! See `checks::h2_connection` (shared with tests/it/fuzz_corpus.rs): one
//! server in this process, its native HTTP/2 engine fed each input over a
//! loopback socket. Coverage is the whole process's, so the engine's
//! branches guide the fuzzer as a parser's would.

#[path = "../checks.rs"]
mod checks;

use std::net::SocketAddr;
use std::sync::OnceLock;

fn server() -> SocketAddr {
    static SERVER: OnceLock<SocketAddr> = OnceLock::new();
    *SERVER.get_or_init(|| {
        let root = std::env::temp_dir().join(format!("conveyor-fuzz-h2-{}", std::process::id()));
        std::fs::create_dir_all(&root).expect("root");
        std::fs::write(root.join("index.html"), "<p>hello</p>\n").expect("index");
        std::fs::write(root.join("big.bin"), vec![b'x'; 200_000]).expect("big");
        let mut config = conveyor::config::Config {
            listen: "127.0.0.1:0".parse().expect("addr"),
            root,
            workers: 1,
            ..conveyor::config::Config::default()
        };
        checks::h2_fuzz_config(&mut config);
        let server = conveyor::Server::start(config).expect("server starts");
        let addr = server.local_addr();
        // Kept running until the fuzzer exits.
        std::mem::forget(server);
        addr
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::h2_connection(server(), data));
