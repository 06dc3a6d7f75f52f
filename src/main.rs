//! `conveyor`: serve a directory, or (`conveyor bench`) load-test a server.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

mod cli;

use cli::Command;
use conveyor::config::{AcceptorKind, DEFAULT_CONFIG_PATH};
use conveyor::runtime::signal;
use conveyor::server::{ListenError, Stopped};
use conveyor::Server;

fn main() -> ExitCode {
    let command = match cli::parse_args(std::env::args_os().skip(1)) {
        Ok(command) => command,
        Err(e) => return fail(&e.to_string()),
    };
    match command {
        Command::Help => {
            print!("{}", cli::usage());
            ExitCode::SUCCESS
        }
        Command::Version => {
            println!("conveyor {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Bench(args) => bench(args),
        Command::Serve(args) => serve(&args),
    }
}

fn bench(args: Vec<std::ffi::OsString>) -> ExitCode {
    let options = match conveyor::bench::parse_args(args) {
        Ok(Some(options)) => options,
        Ok(None) => {
            print!("{}", conveyor::bench::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(e) => return fail(&e.to_string()),
    };
    let report = conveyor::bench::run(&options, |requests, elapsed| {
        eprintln!(
            "  {:>5.1} s  {requests} requests  {:.0} req/s",
            elapsed.as_secs_f64(),
            requests as f64 / elapsed.as_secs_f64()
        );
    });
    let report = match report {
        Ok(report) => report,
        Err(e) => return fail(&format!("bench failed: {e}")),
    };
    if options.json {
        println!("{}", report.json(&options));
    } else {
        print!("{}", report.table(&options));
    }
    // A failed run must not look like a result: say why, exit 1.
    let failures = report.failures(&options);
    for failure in &failures {
        eprintln!("conveyor bench: FAILED: {failure}");
    }
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("conveyor: {message}");
    ExitCode::from(2)
}

fn serve(args: &cli::ServeArgs) -> ExitCode {
    let mut config = match cli::load_for_serve(args) {
        Ok(config) => config,
        Err(e) => return fail(&e.to_string()),
    };
    // `conveyor DIR` with no config file serves someone's own files: a test
    // endpoint takes no path from them (README, "What it serves").
    if args.root.is_some() && cli::config_path(args).is_none() {
        config.echo.enabled = false;
    }
    // Before any thread starts, so all of them inherit the blocked mask and
    // the signals wait for `wait_termination` below.
    if let Err(e) = signal::block_termination_signals() {
        return fail(&format!("cannot block signals: {e}"));
    }
    let config_file = cli::config_path(args);
    let spin = config.stages.acceptor == AcceptorKind::Spin;
    let server = match Server::start(config) {
        Ok(server) => server,
        Err(e) => return fail(&start_error(&e, args, config_file.as_deref())),
    };
    let line = server.line();
    let urls: Vec<String> = server
        .local_addrs()
        .iter()
        .map(|addr| format!("http://{addr}"))
        .collect();
    let config_note = match &config_file {
        Some(path) => format!("config {}", path.display()),
        None => format!("no config file ({DEFAULT_CONFIG_PATH} not found): defaults"),
    };
    println!(
        "conveyor {} serving {} on {} (workers {}, acceptor {}, dispatcher {}, handler {}; {config_note})",
        env!("CARGO_PKG_VERSION"),
        line.config.load().root.display(),
        urls.join(" and "),
        line.pending.len(),
        line.stage_names.acceptor,
        line.stage_names.dispatcher,
        line.stage_names.handler,
    );
    if spin {
        eprintln!(
            "conveyor: warning: the spin acceptor keeps one core at 100 % even with no \
             traffic, and cuts keep-alive throughput to about a third (BENCHMARKS.md); \
             use it only to compare designs, and --acceptor readiness otherwise"
        );
    }
    eprintln!("{}", line.pressure.budget.note());
    let signal = loop {
        match signal::wait_termination(Duration::from_secs(1)) {
            Ok(Some(signal)) => break Some(signal),
            Ok(None) => server.flush_log(),
            Err(e) => {
                eprintln!("conveyor: waiting for signals failed: {e}");
                break None;
            }
        }
    };
    let stopped = server.shutdown();
    // Whoever read the start-up line may have closed stdout since: the
    // stop must still exit 0, so a failed write is not a panic.
    let _ = writeln!(
        std::io::stdout(),
        "conveyor: {}",
        stop_line(signal, &stopped)
    );
    ExitCode::SUCCESS
}

/// The one line a stop logs: why, what was in flight, whether the grace
/// period had to cut anything.
fn stop_line(signal: Option<i32>, stopped: &Stopped) -> String {
    let cause = match signal {
        Some(libc::SIGINT) => "SIGINT".to_string(),
        Some(libc::SIGTERM) => "SIGTERM".to_string(),
        Some(n) => format!("signal {n}"),
        None => "an error".to_string(),
    };
    let plural = |n: u64| if n == 1 { "" } else { "s" };
    let (n, idle) = (stopped.in_flight, stopped.idle_closed);
    let outcome = match stopped.cut {
        _ if n == 0 => "nothing to wait for".to_string(),
        0 => format!(
            "all finished within the grace period, in {:.2} s",
            stopped.took.as_secs_f64()
        ),
        cut => format!(
            "the {} s grace period (timeouts.shutdown_grace) cut {cut} unfinished",
            stopped.grace.as_secs_f64()
        ),
    };
    format!(
        "stopping on {cause}: {n} connection{} in flight, {idle} idle closed at once; {outcome}",
        plural(n)
    )
}

/// A start-up failure; a listen error names where the address came from.
fn start_error(e: &std::io::Error, args: &cli::ServeArgs, config: Option<&Path>) -> String {
    let listen = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<ListenError>());
    match (listen, config) {
        (Some(listen), _) if args.listen.is_some() => listen.describe("--listen"),
        (Some(listen), Some(file)) => {
            listen.describe(&format!("`listen` in {}, or --listen", file.display()))
        }
        (Some(listen), None) => listen.describe("--listen"),
        (None, _) => format!("cannot start: {e}"),
    }
}
