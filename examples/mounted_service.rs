//! A long-running server built on the library: Conveyor's static files and
//! built-in endpoints, plus a service of our own mounted at `/hello`, with
//! the signals a daemon answers.
//!
//! ```sh
//! cargo run --example mounted_service                      # www/ on 127.0.0.1:8080
//! cargo run --example mounted_service -- config/conveyor.toml
//! curl http://127.0.0.1:8080/hello
//! kill -HUP PID    # reads the config file again and applies it; /hello shows the generation
//! kill -USR1 PID   # reopens the access log (after logrotate moved it)
//! kill -TERM PID   # drains (/readyz answers 503 for shutdown.drain_delay), then stops
//! ```
//!
//! The start-up line names the address and the process id. Everything here
//! is the library's public API: `Server::builder(..).route(..)`,
//! `Server::reload`, `Server::drain`, `Server::shutdown` and the runtime's
//! signal helpers; `src/main.rs` does the same for the `conveyor` binary.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use conveyor::config::Config;
use conveyor::runtime::sys::signal;
use conveyor::service::{Exchange, Service, ServiceFuture};
use conveyor::Server;

/// `/hello`: a greeting that shows which configuration answered it.
struct Hello {
    /// The configuration generation in use, set at start and by each reload.
    generation: Arc<AtomicU64>,
    /// Requests it has answered.
    served: AtomicU64,
}

impl Service for Hello {
    fn serve<'a>(&'a self, ex: &'a mut Exchange<'_>) -> ServiceFuture<'a> {
        ServiceFuture::new(async move {
            let n = self.served.fetch_add(1, Ordering::Relaxed) + 1;
            // `ex.ctx.config` is the snapshot this request is served under:
            // a reload applies to the next request, never halfway through one.
            let body = format!(
                "hello from a mounted service: config generation {}, root {}, request {n}\n",
                self.generation.load(Ordering::Relaxed),
                ex.ctx.config.root.display(),
            );
            ex.respond(200, "text/plain; charset=utf-8", body.as_bytes(), &[])
        })
    }
}

fn main() -> ExitCode {
    let file = std::env::args_os().nth(1).map(PathBuf::from);
    match run(file.as_deref()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mounted_service: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The configuration: the file when one is given, else the defaults
/// serving the repository's `www/`.
fn load(file: Option<&Path>) -> Result<Config, String> {
    match file {
        Some(file) => Config::load(file).map_err(|e| e.to_string()),
        None => Ok(Config {
            root: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("www"),
            ..Config::default()
        }),
    }
}

fn run(file: Option<&Path>) -> Result<(), String> {
    // Before any thread starts, so every thread inherits the mask and the
    // signals wait for `wait_control` below instead of killing the process.
    signal::block_control_signals().map_err(|e| format!("cannot block signals: {e}"))?;
    let config = load(file)?;
    let generation = Arc::new(AtomicU64::new(1));
    let hello = Arc::new(Hello {
        generation: generation.clone(),
        served: AtomicU64::new(0),
    });
    let server = Server::builder(config)
        .route("/hello", hello)
        .start()
        .map_err(|e| format!("cannot start: {e}"))?;
    // /status names the file a reload reads.
    server.line().config.set_file(file);
    generation.store(server.line().config.generation(), Ordering::Relaxed);
    let addr = server.local_addr();
    let pid = std::process::id();
    println!(
        "mounted_service: serving http://{addr} (pid {pid}); try curl http://{addr}/hello; \
         kill -HUP {pid} reloads, kill -TERM {pid} stops"
    );
    // Whoever waits for that line (a test, a supervisor) may read it now.
    let _ = std::io::stdout().flush();
    let stop = serve_until_stopped(&server, file, &generation);
    drain(&server, stop);
    let stopped = server.shutdown();
    println!(
        "mounted_service: stopped on {stop}: {} in flight, {} idle closed, {} cut, in {:.0?}",
        stopped.in_flight, stopped.idle_closed, stopped.cut, stopped.took
    );
    Ok(())
}

/// Answers SIGHUP (reload) and SIGUSR1 (reopen the log) until SIGINT or
/// SIGTERM; returns the stop signal's name.
fn serve_until_stopped(
    server: &Server,
    file: Option<&Path>,
    generation: &AtomicU64,
) -> &'static str {
    loop {
        match signal::wait_control(Duration::from_secs(1)) {
            Ok(Some(libc::SIGHUP)) => {
                let Some(file) = file else {
                    println!("mounted_service: SIGHUP: no config file to read again");
                    continue;
                };
                // All or nothing: a bad file leaves the running config as it was.
                match load(Some(file)).and_then(|config| server.reload(config)) {
                    Ok(reloaded) => {
                        generation.store(reloaded.generation, Ordering::Relaxed);
                        println!("mounted_service: SIGHUP: {reloaded}");
                    }
                    Err(e) => eprintln!("mounted_service: SIGHUP: kept the running config: {e}"),
                }
            }
            Ok(Some(libc::SIGUSR1)) => match server.reopen_log() {
                Ok(()) => println!("mounted_service: SIGUSR1: access log reopened"),
                Err(e) => eprintln!("mounted_service: SIGUSR1: cannot reopen the log: {e}"),
            },
            Ok(Some(libc::SIGINT)) => return "SIGINT",
            Ok(Some(_)) => return "SIGTERM",
            // Once a second: write out what the access log buffered.
            Ok(None) => server.flush_log(),
            Err(e) => {
                eprintln!("mounted_service: waiting for signals failed: {e}");
                return "an error";
            }
        }
    }
}

/// `/readyz` answers 503 and responses close their connections for
/// `shutdown.drain_delay`, so a load balancer stops sending first; a
/// second SIGINT or SIGTERM ends the wait early.
fn drain(server: &Server, stop: &str) {
    server.drain();
    let delay = server.line().config.load().shutdown.drain_delay;
    if delay.is_zero() {
        return;
    }
    println!(
        "mounted_service: draining on {stop} for {:.1} s",
        delay.as_secs_f64()
    );
    let until = Instant::now() + delay;
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        match signal::wait_termination(left.min(Duration::from_secs(1))) {
            Ok(Some(_)) => return,
            Ok(None) => server.flush_log(),
            Err(_) => {
                std::thread::sleep(left);
                return;
            }
        }
    }
}
