//! `conveyor`: serve a directory, or (`conveyor bench`) load-test a server.

use std::process::ExitCode;
use std::time::Duration;

mod cli;

use cli::Command;
use conveyor::runtime::signal;
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
    match report {
        Ok(report) if options.json => println!("{}", report.json()),
        Ok(report) => print!("{}", report.table(&options)),
        Err(e) => return fail(&format!("bench failed: {e}")),
    }
    ExitCode::SUCCESS
}

fn fail(message: &str) -> ExitCode {
    eprintln!("conveyor: {message}");
    ExitCode::from(2)
}

fn serve(args: &cli::ServeArgs) -> ExitCode {
    let config = match cli::load_for_serve(args) {
        Ok(config) => config,
        Err(e) => return fail(&e.to_string()),
    };
    // Before any thread starts, so all of them inherit the blocked mask and
    // the signals wait for `wait_termination` below.
    if let Err(e) = signal::block_termination_signals() {
        return fail(&format!("cannot block signals: {e}"));
    }
    let server = match Server::start(config) {
        Ok(server) => server,
        Err(e) => return fail(&format!("cannot start: {e}")),
    };
    let line = server.line();
    println!(
        "conveyor {} serving {} on http://{} (workers {}, acceptor {}, dispatcher {}, handler {})",
        env!("CARGO_PKG_VERSION"),
        line.config.load().root.display(),
        server.local_addr(),
        line.pending.len(),
        line.stage_names.acceptor,
        line.stage_names.dispatcher,
        line.stage_names.handler,
    );
    loop {
        match signal::wait_termination(Duration::from_secs(1)) {
            Ok(Some(_)) => break,
            Ok(None) => server.flush_log(),
            Err(e) => {
                eprintln!("conveyor: waiting for signals failed: {e}");
                break;
            }
        }
    }
    server.shutdown();
    ExitCode::SUCCESS
}
