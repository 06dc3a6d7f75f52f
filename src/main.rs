//! `conveyor`: serve a directory, or (`conveyor bench`) load-test a server.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

mod bench;
mod cli;

use cli::Command;
use std::os::fd::RawFd;

use conveyor::config::{AcceptorKind, Config, ListenAddress, ListenAddresses};
use conveyor::runtime::sys::{account, signal, sockets};
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
        Command::Bench(args) => run_bench(args),
        Command::Serve(args) => serve(&args),
    }
}

fn run_bench(args: Vec<std::ffi::OsString>) -> ExitCode {
    let options = match bench::parse_args(args) {
        Ok(Some(options)) => options,
        Ok(None) => {
            print!("{}", bench::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(e) => return fail(&e.to_string()),
    };
    let report = bench::run(&options, |line| eprintln!("{line}"));
    match report {
        Ok(report) => ExitCode::from(bench::finish(&report, &options)),
        Err(e) => fail(&format!("bench failed: {e}")),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("conveyor: {message}");
    ExitCode::from(2)
}

fn serve(args: &cli::ServeArgs) -> ExitCode {
    // Before any thread starts: the variables are removed from the
    // environment, and no thread may read it meanwhile.
    let inherited = match sockets::take_listen_fds() {
        Ok(fds) => fds,
        Err(e) => return fail(&format!("socket activation: {e}")),
    };
    let config = match load(args, &inherited) {
        Ok(config) => config,
        Err(e) => return fail(&e.to_string()),
    };
    let account = match account_for(&config) {
        Ok(account) => account,
        Err(e) => return fail(&e),
    };
    // Before any thread starts, so all of them inherit the blocked mask and
    // the signals wait for `wait_control` below.
    if let Err(e) = signal::block_control_signals() {
        return fail(&format!("cannot block signals: {e}"));
    }
    let config_file = cli::config_path(args);
    if let Some(account) = account {
        if let Err(e) = check_run_user(&config, account, config_file.as_deref()) {
            return fail(&e);
        }
    }
    let as_root = account.is_none() && account::is_root();
    let spin = config.stages.acceptor == AcceptorKind::Spin;
    let mut builder = Server::builder(config);
    if account.is_some() {
        builder = builder.hold_accepting();
    }
    let server = match builder.start() {
        Ok(server) => server,
        Err(e) => return fail(&start_error(&e, args, config_file.as_deref())),
    };
    let line = server.line();
    line.config.set_file(config_file.as_deref());
    // Listeners bound and the log open: what needed root is done.
    if let Some(account) = account {
        if let Err(e) = server.give_log_to(account) {
            return fail(&format!(
                "cannot give the access log to user {:?}: {e}; check log.access_log_path",
                line.config.load().user
            ));
        }
        if let Err(e) = account::switch_to(account) {
            return fail(&format!(
                "cannot switch to user {:?} (uid {}, gid {}): {e}; check `user` and `group`",
                line.config.load().user,
                account.uid,
                account.gid
            ));
        }
        server.start_accepting();
    }
    announce(
        &server,
        args,
        config_file.as_deref(),
        &inherited,
        spin,
        as_root,
    );
    let signal = wait_for_stop(&server, args, &inherited);
    if let Some(signal) = signal {
        drain(&server, signal);
    }
    let stopped = server.shutdown();
    // Whoever read the start-up line may have closed stderr since: the
    // stop must still exit 0, so a failed write is not a panic.
    let _ = writeln!(
        std::io::stderr(),
        "conveyor: {}",
        stop_line(signal, &stopped)
    );
    ExitCode::SUCCESS
}

/// The start-up lines, on stderr like every message of the server's own
/// (stdout is left to `access_log = "-"`): the connection budget, then
/// where it serves and with which stages, and the dashboard's URL when a
/// browser on this machine may open it (whoever waits for this line may
/// connect at once), then notes on socket activation, the spin acceptor
/// and a root without its index file.
fn announce(
    server: &Server,
    args: &cli::ServeArgs,
    config_file: Option<&Path>,
    inherited: &[(RawFd, String)],
    spin: bool,
    as_root: bool,
) {
    let line = server.line();
    let listening: Vec<String> = server
        .listeners()
        .into_iter()
        .chain(
            server
                .tls_addrs()
                .iter()
                .map(|addr| format!("https://{addr}")),
        )
        .collect();
    let config_note = match config_file {
        Some(path) => format!("config {}", path.display()),
        None => cli::no_config_note(args),
    };
    // Before the start-up line: whoever waits for that line to connect
    // sees the connection budget first, never after an accept warning.
    eprintln!("{}", line.pressure.budget.note());
    let config = line.config.load();
    let dashboard = dashboard_url(&config, server.local_addrs(), server.tls_addrs())
        .map(|url| format!("; dashboard {url}"))
        .unwrap_or_default();
    if as_root {
        eprintln!(
            "conveyor: warning: running as root with no `user`: anything that goes wrong \
             in the server goes wrong as root; set user = \"www-data\" (it binds and opens \
             the log first, then switches), or start it unprivileged with \
             CAP_NET_BIND_SERVICE (docs/listeners.md, \"Running as another user\")"
        );
    }
    if config.tls.self_signed {
        eprintln!(
            "conveyor: tls.self_signed: HTTPS with a certificate for localhost made at start \
             and kept in memory; clients must be told to accept it (curl -k, the browser's \
             warning); give --tls-cert and --tls-key for anything else"
        );
    }
    eprintln!(
        "conveyor {} serving {} on {} (workers {}, acceptor {}, dispatcher {}, handler {}; {config_note}){dashboard}",
        env!("CARGO_PKG_VERSION"),
        config.root.display(),
        listening.join(" and "),
        line.pending.len(),
        line.stage_names.acceptor,
        line.stage_names.dispatcher,
        line.stage_names.handler,
    );
    if let Some(note) = no_index_note(&config) {
        eprintln!("{note}");
    }
    if !inherited.is_empty() {
        eprintln!(
            "conveyor: socket activation: serving the {} socket(s) systemd passed; `listen` \
             and --listen are not used",
            inherited.len()
        );
    }
    if spin {
        eprintln!(
            "conveyor: warning: the spin acceptor keeps one core at 100 % even with no \
             traffic, and cuts keep-alive throughput to about a third (BENCHMARKS.md); \
             use it only to compare designs, and --acceptor readiness otherwise"
        );
    }
}

/// The dashboard's URL, when it is on and `status.allow` admits a browser
/// on this machine: a connection to a wildcard listener is made from
/// loopback, one to a given address from that address. `None` otherwise
/// (no URL that would only answer 403).
fn dashboard_url(config: &Config, plain: &[SocketAddr], tls: &[SocketAddr]) -> Option<String> {
    // With the PROXY protocol a browser's own connection is closed.
    if !config.status.enabled || !config.status_access.dashboard || config.proxy.protocol {
        return None;
    }
    let schemes = plain.iter().map(|a| ("http", a));
    let (scheme, addr) = schemes
        .chain(tls.iter().map(|a| ("https", a)))
        .find(|(_, a)| {
            let browser = conveyor::config::Client::Ip(browser_address(a).ip());
            conveyor::config::allowed(&config.status_access.allow, browser)
        })?;
    Some(format!(
        "{scheme}://{}{}/dashboard",
        browser_address(addr),
        config.status.path
    ))
}

/// The address a browser on this machine connects to for `addr`: itself,
/// or loopback for a wildcard.
fn browser_address(addr: &SocketAddr) -> SocketAddr {
    let ip: IpAddr = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => Ipv4Addr::LOCALHOST.into(),
        IpAddr::V6(ip) if ip.is_unspecified() => Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

/// A note when the root has no index file and listings are off: `/`
/// then answers 404, and a new user would not know why.
fn no_index_note(config: &Config) -> Option<String> {
    let index = config.root.join(&config.static_files.index);
    if config.static_files.listing || index.is_file() {
        return None;
    }
    Some(format!(
        "conveyor: note: {} has no {}: GET / answers 404; add one, or list directories \
         with --listing (static.listing = true)",
        config.root.display(),
        config.static_files.index
    ))
}

/// Serves until a stop signal (returned; `None` if waiting failed),
/// reloading on SIGHUP and reopening the log on SIGUSR1 meanwhile.
fn wait_for_stop(
    server: &Server,
    args: &cli::ServeArgs,
    inherited: &[(RawFd, String)],
) -> Option<i32> {
    loop {
        match signal::wait_control(Duration::from_secs(1)) {
            Ok(Some(libc::SIGHUP)) => reload(server, args, inherited),
            Ok(Some(libc::SIGUSR1)) => match server.reopen_log() {
                Ok(()) => eprintln!("conveyor: SIGUSR1: access log reopened"),
                Err(e) => eprintln!(
                    "conveyor: SIGUSR1: cannot reopen the access log ({e}); still writing to \
                     the old file; check log.access_log_path and its directory"
                ),
            },
            Ok(Some(signal)) => break Some(signal),
            Ok(None) => server.flush_log(),
            Err(e) => {
                eprintln!("conveyor: waiting for signals failed: {e}");
                break None;
            }
        }
    }
}

/// A stop signal begins a drain: `/readyz` turns 503 at once and the server
/// serves on for `shutdown.drain_delay`, so a load balancer takes it out of
/// rotation before it stops accepting. A second signal ends the delay early.
fn drain(server: &Server, signal: i32) {
    server.drain();
    let delay = server.line().config.load().shutdown.drain_delay;
    if delay.is_zero() {
        return;
    }
    let _ = writeln!(
        std::io::stderr(),
        "conveyor: draining on {}: /readyz answers 503, serving for {} s more \
         (shutdown.drain_delay) before stopping; signal again to stop now",
        signal_name(Some(signal)),
        delay.as_secs_f64()
    );
    let until = Instant::now() + delay;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
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

/// The configuration `serve` runs: the file (or defaults), the flags, the
/// sockets systemd passed; read again the same way on SIGHUP.
fn load(
    args: &cli::ServeArgs,
    inherited: &[(RawFd, String)],
) -> Result<Config, conveyor::config::ConfigError> {
    let mut config = cli::load_for_serve(args)?;
    // `conveyor DIR` with no config file serves someone's own files: a test
    // endpoint takes no path from them (README, "What it serves").
    if args.root.is_some() && cli::config_path(args).is_none() {
        config.echo.enabled = false;
    }
    if !inherited.is_empty() {
        config.listen = ListenAddresses(
            inherited
                .iter()
                .map(|(fd, name)| ListenAddress::Inherited {
                    fd: *fd,
                    name: name.clone(),
                })
                .collect(),
        );
    }
    cli::check_for_serve(&config, args)?;
    Ok(config)
}

/// What the server opens again after dropping to `user`, checked now as
/// that user, so a mistake stops start-up rather than the first SIGHUP or
/// SIGUSR1: the certificates and keys (read again on SIGHUP), the log's
/// directory (SIGUSR1 creates the new file there after a rotation). A
/// config file it cannot read only warns: SIGHUP alone needs it.
fn check_run_user(
    config: &Config,
    account: account::Account,
    config_file: Option<&Path>,
) -> Result<(), String> {
    let user = &config.user;
    // chgrp takes a number as well as a name.
    let group = match config.group.as_str() {
        "" => account.gid.to_string(),
        name => name.to_string(),
    };
    let files: Vec<(&str, &Path)> = config
        .tls
        .certificates
        .iter()
        .flat_map(|c| [("TLS certificate", &*c.cert), ("TLS key", &*c.key)])
        .collect();
    let log_path = Path::new(&config.log.access_log_path);
    let log_dir = (config.log.access_log && config.log.access_log_path != "-").then(|| {
        match log_path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        }
    });
    let (unreadable, log_dir_refused, config_refused) = account::as_account(account, || {
        let unreadable = files
            .iter()
            .find_map(|(what, file)| std::fs::File::open(file).err().map(|e| (*what, *file, e)));
        let log = log_dir.and_then(|dir| account::can_create_in(dir).err().map(|e| (dir, e)));
        let config = config_file.and_then(|file| std::fs::File::open(file).err());
        (unreadable, log, config)
    })
    .map_err(|e| format!("cannot check the files as user {user:?}: {e}"))?;
    if let Some((what, file, e)) = unreadable {
        return Err(format!(
            "{what} {}: user = {user:?} cannot read it ({e}), so SIGHUP could not load it \
             again after the switch; let {user:?} read it (like `chgrp {group} FILE && chmod \
             g+r FILE`, and search its directories), or start unprivileged \
             (docs/listeners.md)",
            file.display()
        ));
    }
    if let Some((dir, e)) = log_dir_refused {
        return Err(format!(
            "log.access_log_path {:?}: user = {user:?} cannot create files in {} ({e}), so \
             SIGUSR1 could not reopen the log after a rotation; give {user:?} that directory \
             (like `chown {user} DIR`), or log to another one",
            config.log.access_log_path,
            dir.display()
        ));
    }
    if let (Some(e), Some(file)) = (config_refused, config_file) {
        eprintln!(
            "conveyor: warning: user = {user:?} cannot read the config file {} ({e}): SIGHUP \
             will fail after the switch; let {user:?} read it to reload",
            file.display()
        );
    }
    Ok(())
}

/// The account `user` and `group` name, looked up before starting (so a
/// typo stops start-up): `None` when there is nothing to switch to.
fn account_for(config: &Config) -> Result<Option<account::Account>, String> {
    if config.user.is_empty() {
        if !config.group.is_empty() {
            return Err(format!(
                "group = {:?} is set without user; set user too (like user = \"www-data\"), \
                 or remove group",
                config.group
            ));
        }
        return Ok(None);
    }
    if !account::is_root() {
        eprintln!(
            "conveyor: warning: user = {:?} is ignored: only a server started as root can \
             switch users; this one keeps its own account",
            config.user
        );
        return Ok(None);
    }
    account::lookup(&config.user, &config.group)
        .map(Some)
        .map_err(|e| format!("user/group: {e}; create the account, or fix `user` and `group`"))
}

/// SIGHUP: the config file read again, with the same flags, applied; on any
/// error the running configuration stays.
fn reload(server: &Server, args: &cli::ServeArgs, inherited: &[(RawFd, String)]) {
    let running = server.line().config.generation();
    let result = load(args, inherited)
        .map_err(|e| e.to_string())
        .and_then(|config| server.reload(config));
    match result {
        Ok(done) => {
            eprintln!("conveyor: SIGHUP: reloaded; {done}");
            if !done.need_restart.is_empty() {
                eprintln!(
                    "conveyor: warning: changed in the file but needs a restart: {}",
                    done.need_restart.join(", ")
                );
            }
        }
        Err(e) => eprintln!(
            "conveyor: SIGHUP: reload failed: {e}; still running configuration generation \
             {running}"
        ),
    }
}

fn signal_name(signal: Option<i32>) -> String {
    match signal {
        Some(libc::SIGINT) => "SIGINT".to_string(),
        Some(libc::SIGTERM) => "SIGTERM".to_string(),
        Some(n) => format!("signal {n}"),
        None => "an error".to_string(),
    }
}

/// The one line a stop logs: why, what was in flight, whether the grace
/// period had to cut anything.
fn stop_line(signal: Option<i32>, stopped: &Stopped) -> String {
    let cause = signal_name(signal);
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
        (Some(listen), _) if !args.listen.is_empty() => listen.describe("--listen"),
        (Some(listen), Some(file)) => {
            listen.describe(&format!("`listen` in {}, or --listen", file.display()))
        }
        (Some(listen), None) => listen.describe("--listen"),
        (None, _) => format!("cannot start: {e}"),
    }
}
