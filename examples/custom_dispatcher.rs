//! Swapping a stage from the library API: a dispatcher of our own.
//!
//! `cargo run --example custom_dispatcher` starts Conveyor on a free port with
//! this dispatcher, serving the repository's `www/` (from any working
//! directory), fetches `/status` once and prints which stages served it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use conveyor::config::Config;
use conveyor::runtime::Handle;
use conveyor::stages::{Dispatcher, Handler, Line};
use conveyor::Server;

/// One handler green thread per worker, serving connections strictly one
/// after another: the smallest dispatcher there is.
struct OneAtATime;

impl Dispatcher for OneAtATime {
    fn name(&self) -> &str {
        "one-at-a-time"
    }

    fn start(&self, runtime: &Handle, line: &Arc<Line>, handler: Arc<dyn Handler>) {
        for worker in 0..runtime.workers() {
            let (line, handler) = (line.clone(), handler.clone());
            // Handler futures stay on their worker, so build the loop there.
            runtime
                .spawn_local_on(worker, move || async move {
                    loop {
                        let conn = line.pending[worker].pop().await;
                        handler.handle(conn, &line).await;
                    }
                })
                .detach();
        }
    }
}

fn main() -> ExitCode {
    // The repository's `www/`, found from wherever the example is run.
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("www");
    match run(root.clone()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // An OS error alone ("No such file or directory") does not say
            // which file: name the root it was serving.
            eprintln!("custom_dispatcher: serving {}: {e}", root.display());
            ExitCode::FAILURE
        }
    }
}

fn run(root: PathBuf) -> std::io::Result<()> {
    let config = Config {
        listen: "127.0.0.1:0".parse().expect("literal address"),
        root,
        ..Config::default()
    };
    let server = Server::builder(config)
        .dispatcher(Arc::new(OneAtATime))
        .start()?;
    let mut stream = TcpStream::connect(server.local_addr())?;
    stream.write_all(b"GET /status HTTP/1.1\r\nHost: example\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let stages = response
        .split("\"stages\":")
        .nth(1)
        .unwrap_or("")
        .split('}')
        .next()
        .unwrap_or("");
    println!("served by {stages}}}");
    server.shutdown();
    Ok(())
}
