//! Command-line parsing and how its flags override the config file.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use conveyor::config::{
    parse_fallback, parse_listen_address, parse_tcp_address, resolve_workers, AcceptorKind, Config,
    ConfigError, DispatcherKind, ListenAddress, ListenAddresses, LogLevel, TcpAddress, UnknownName,
    DEFAULT_CONFIG_PATH, MAX_WORKERS, TCP_ADDRESS_FIX, WORKERS_FIX,
};
use lexopt::Arg;

const USAGE: &str = "\
Conveyor: a static HTTP/1.1 server

Usage:
  conveyor [ROOT] [OPTIONS]      serve the directory ROOT (default: root from the config, \"www\")
  conveyor bench URL ...         load-test a running server; see `conveyor bench --help`
  conveyor --help | --version

Options (override the config file):
  --config FILE       read FILE (default: config/conveyor.toml when it exists and no
                      ROOT is given; `conveyor ROOT` alone reads no file)
  --listen ADDR       address to listen on, like 127.0.0.1:8080, [::]:8080 or
                      unix:/run/conveyor.sock; a name (localhost:8080) listens on every
                      address it has; repeat it to listen on several (replaces `listen`)
  --tls-cert FILE     serve HTTPS with this PEM certificate chain (with --tls-key);
                      replaces [[tls.certificates]]
  --tls-key FILE      the PEM private key of --tls-cert
  --tls-self-signed   serve HTTPS with a certificate for localhost made at start, in
                      memory (to try HTTPS locally: curl -k; tls.self_signed)
  --tls-listen ADDR   serve HTTPS on ADDR (repeatable); default with --tls-cert:
                      the --listen address with port + 1 (8080 -> 8081)
  --acme-domain NAME  get a certificate for NAME from the ACME CA (Let's Encrypt by
                      default) and renew it (repeatable; replaces acme.domains);
                      the CA must reach this server on port 443 (docs/acme.md)
  --workers N         worker threads, 0 = one per core (at most 1024)
  --acceptor NAME     how connections are accepted:
{acceptors}  --dispatcher NAME   how requests get a handler:
{dispatchers}  --access-log        log each request (to the config's log.access_log_path, stdout by default)
  --no-compress       serve only precompressed sidecars, compress nothing (compress.enabled = false)
  --fallback FILE     answer GET/HEAD for paths with no file with FILE, 200 (single-page apps;
                      static.fallback)
  --listing           list directories without an index file (static.listing = true)
  -v, --verbose       log why each refused request was refused, to stderr (log.level = \"debug\")
  -h, --help          print this help
  -V, --version       print the version

When to choose (measured in BENCHMARKS.md: 1 worker, 32 connections, requests/s):
  readiness   the default; no CPU when idle; 210k keep-alive, 35k Connection: close
  reuseport   many workers taking many new connections; at 1 worker = readiness (205-216k, 35k)
  spin        only to study the original design: 1 core at 100 % idle, keep-alive 64k (a third)
  spawn       the default; a green thread per request; 210k keep-alive
  pool        to cap handlers per worker (stages.pool_size); 208-216k, within noise of spawn

Flags take `--flag value` or `--flag=value`. Every key is in config/conveyor.toml.
Signals: SIGHUP reloads the config file (flags kept), SIGUSR1 reopens the access log,
SIGINT/SIGTERM stop after in-flight requests.
";

/// The `--help` text, with each stage name and what it does from its enum.
pub(crate) fn usage() -> String {
    let list = |names: &mut dyn Iterator<Item = (&str, &str)>| -> String {
        names
            .map(|(name, help)| format!("{:24}{name:<10} {help}\n", ""))
            .collect()
    };
    USAGE
        .replace(
            "{acceptors}",
            &list(&mut AcceptorKind::ALL.iter().map(|k| (k.name(), k.help()))),
        )
        .replace(
            "{dispatchers}",
            &list(&mut DispatcherKind::ALL.iter().map(|k| (k.name(), k.help()))),
        )
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Command {
    Serve(ServeArgs),
    /// The arguments after "bench", parsed by the bench tool.
    Bench(Vec<OsString>),
    Help,
    Version,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ServeArgs {
    pub root: Option<PathBuf>,
    pub config: Option<PathBuf>,
    /// Every `--listen`, in order; none leaves the config's `listen`.
    pub listen: Vec<ListenAddress>,
    /// As given: 0 means one per core, resolved by `apply`.
    pub workers: Option<usize>,
    pub acceptor: Option<AcceptorKind>,
    pub dispatcher: Option<DispatcherKind>,
    pub access_log: bool,
    /// `--no-compress`: `compress.enabled = false`.
    pub no_compress: bool,
    /// `--verbose`: `log.level = "debug"`.
    pub verbose: bool,
    /// `--fallback FILE`: `static.fallback`.
    pub fallback: Option<String>,
    /// `--listing`: `static.listing = true`.
    pub listing: bool,
    /// `--tls-cert FILE`: with `--tls-key`, the one certificate served.
    pub tls_cert: Option<PathBuf>,
    /// `--tls-key FILE`.
    pub tls_key: Option<PathBuf>,
    /// `--tls-listen ADDR`, each time given: `tls.listen`.
    pub tls_listen: Vec<TcpAddress>,
    /// `--tls-self-signed`: `tls.self_signed = true`, no certificate files.
    pub tls_self_signed: bool,
    /// `--acme-domain NAME`, each time given: `acme.domains`.
    pub acme_domains: Vec<String>,
}

fn err(message: String) -> ConfigError {
    usage_error("conveyor", message)
}

/// The first TCP `listen` address with port + 1 (port 0 stays 0: any free
/// port), for `flag` (`--tls-cert`, `--tls-self-signed`) without `--tls-listen`.
fn next_port(listeners: &ListenAddresses, flag: &str) -> Result<TcpAddress, ConfigError> {
    let bump = |port: u16| match port {
        0 => Some(0),
        p => p.checked_add(1),
    };
    let fail = |why: &str| {
        err(format!(
            "{flag}: {why}, so there is no default TLS port; give --tls-listen ADDR"
        ))
    };
    let listen = listeners
        .specs()
        .iter()
        .find_map(|spec| match spec {
            ListenAddress::Tcp(listen) => Some(listen),
            ListenAddress::Unix(_) | ListenAddress::Inherited { .. } => None,
        })
        .ok_or_else(|| fail("no listener is a TCP address"))?;
    let port_fail = || fail("the listen port is 65535");
    Ok(match listen {
        TcpAddress::Addr(addr) => {
            let mut addr = *addr;
            addr.set_port(bump(addr.port()).ok_or_else(port_fail)?);
            TcpAddress::Addr(addr)
        }
        TcpAddress::Name { host, port } => TcpAddress::Name {
            host: host.clone(),
            port: bump(*port).ok_or_else(port_fail)?,
        },
    })
}

/// Parses the arguments after `argv[0]`. A repeated flag: the last one wins,
/// but for `--listen` and `--tls-listen`, which add one each time. Every
/// flag takes `--flag value` or `--flag=value`.
pub(crate) fn parse_args(args: impl IntoIterator<Item = OsString>) -> Result<Command, ConfigError> {
    let mut args = args.into_iter().peekable();
    // Only in first place: `conveyor --access-log bench` serves ./bench.
    if args.peek().is_some_and(|first| first == "bench") {
        args.next();
        return Ok(Command::Bench(args.collect()));
    }
    let mut parser = lexopt::Parser::from_args(args);
    let mut out = ServeArgs::default();
    while let Some(arg) = parser.next().map_err(|e| err(explain(e)))? {
        let flag = match arg {
            Arg::Value(root) => {
                out.set_root(root)?;
                continue;
            }
            Arg::Short(c) => format!("-{c}"),
            Arg::Long(name) => format!("--{name}"),
        };
        if let Some(command) = serve_flag(&mut out, &flag, &mut parser)? {
            return Ok(command);
        }
    }
    Ok(Command::Serve(out))
}

/// Reads one flag (`flag`, as written) and its value into `out`; a flag
/// that is a command of its own (`--help`) is returned.
fn serve_flag(
    out: &mut ServeArgs,
    flag: &str,
    parser: &mut lexopt::Parser,
) -> Result<Option<Command>, ConfigError> {
    let mut value_of = |what: &str| text(parser, &format!("{flag} {what}")).map_err(err);
    match flag {
        "-h" | "--help" => return Ok(Some(Command::Help)),
        "-V" | "--version" => return Ok(Some(Command::Version)),
        "--listen" => {
            let spec = parse_listen_address(&value_of("ADDR")?)
                .map_err(|why| err(format!("--listen {why}")))?;
            if !out.listen.contains(&spec) {
                out.listen.push(spec);
            }
        }
        "--tls-listen" => {
            let s = value_of("ADDR")?;
            let listen = parse_tcp_address(&s)
                .ok_or_else(|| err(format!("--tls-listen {s} is invalid; {TCP_ADDRESS_FIX}")))?;
            out.tls_listen.push(listen);
        }
        "--acme-domain" => {
            let name = value_of("NAME")?.to_ascii_lowercase();
            conveyor::config::acme_domain(&name)
                .map_err(|why| err(format!("--acme-domain {why}")))?;
            if !out.acme_domains.contains(&name) {
                out.acme_domains.push(name);
            }
        }
        "--workers" => {
            let s = value_of("N")?;
            let n = s.parse::<usize>().ok().filter(|n| *n <= MAX_WORKERS);
            out.workers =
                Some(n.ok_or_else(|| err(format!("--workers {s} is invalid; {WORKERS_FIX}")))?);
        }
        "--acceptor" => out.acceptor = Some(named(flag, &value_of("NAME")?)?),
        "--dispatcher" => out.dispatcher = Some(named(flag, &value_of("NAME")?)?),
        "--fallback" => {
            let file = value_of("FILE")?;
            let fallback =
                parse_fallback(&file).map_err(|why| err(format!("--fallback {file:?} {why}")))?;
            out.fallback = Some(fallback);
        }
        "--access-log" => out.access_log = true,
        "--no-compress" => out.no_compress = true,
        "--listing" => out.listing = true,
        "--tls-self-signed" => out.tls_self_signed = true,
        "-v" | "--verbose" => out.verbose = true,
        // Paths are kept as the OS gave them, not decoded.
        "--config" | "--tls-cert" | "--tls-key" => {
            let path = Some(PathBuf::from(
                value(parser, &format!("{flag} FILE")).map_err(err)?,
            ));
            match flag {
                "--config" => out.config = path,
                "--tls-cert" => out.tls_cert = path,
                _ => out.tls_key = path,
            }
        }
        _ => return Err(err(format!("unknown option {flag}"))),
    }
    Ok(None)
}

/// The value of a flag that names one of a set, checked here once.
fn named<T: FromStr<Err = UnknownName>>(flag: &str, value: &str) -> Result<T, ConfigError> {
    value
        .parse()
        .map_err(|e: UnknownName| ConfigError::new(format!("{flag} {value} {}", e.reason())))
}

/// A message for a command-line mistake, in one style for `conveyor` and
/// `conveyor bench` (`command`): what is wrong, then where the usage is.
pub(crate) fn usage_error(command: &str, message: impl std::fmt::Display) -> ConfigError {
    ConfigError::new(format!("{message} (see {command} --help)"))
}

/// lexopt's errors in the binary's words.
pub(crate) fn explain(e: lexopt::Error) -> String {
    use lexopt::Error;
    match e {
        Error::UnexpectedOption(option) => format!("unknown option {option}"),
        Error::UnexpectedValue { option, .. } => format!("{option} takes no value"),
        Error::MissingValue {
            option: Some(option),
        } => format!("{option} needs a value"),
        Error::UnexpectedArgument(arg) => {
            format!("unexpected argument {}", arg.to_string_lossy())
        }
        Error::NonUnicodeValue(value) => {
            format!("{} is not valid UTF-8", value.to_string_lossy())
        }
        other => other.to_string(),
    }
}

/// The value of the option just read, as the OS gave it (a path); `what`
/// (like `--config FILE`) names it when it is missing.
pub(crate) fn value(parser: &mut lexopt::Parser, what: &str) -> Result<OsString, String> {
    parser.value().map_err(|e| match e {
        lexopt::Error::MissingValue { .. } => format!("{what} needs a value"),
        other => explain(other),
    })
}

/// The value of the option just read as text (an address, a number).
pub(crate) fn text(parser: &mut lexopt::Parser, what: &str) -> Result<String, String> {
    value(parser, what)?
        .into_string()
        .map_err(|value| format!("{what}: {} is not valid UTF-8", value.to_string_lossy()))
}

impl ServeArgs {
    fn set_root(&mut self, root: OsString) -> Result<(), ConfigError> {
        if let Some(prev) = &self.root {
            return Err(err(format!(
                "only one ROOT may be given, got \"{}\" and \"{}\"",
                prev.display(),
                Path::new(&root).display()
            )));
        }
        self.root = Some(PathBuf::from(root));
        Ok(())
    }

    /// Command-line values override the config. Stage names were checked by
    /// their type; `workers` again, as a `ServeArgs` can be built by hand.
    pub(crate) fn apply(&self, config: &mut Config) -> Result<(), ConfigError> {
        if let Some(root) = &self.root {
            config.root = root.clone();
        }
        if !self.listen.is_empty() {
            config.listen = ListenAddresses(self.listen.clone());
        }
        if let Some(n) = self.workers {
            if n > MAX_WORKERS {
                return Err(ConfigError::new(format!(
                    "--workers {n} is invalid; {WORKERS_FIX}"
                )));
            }
            config.workers = resolve_workers(n);
        }
        if let Some(a) = self.acceptor {
            config.stages.acceptor = a;
        }
        if let Some(d) = self.dispatcher {
            config.stages.dispatcher = d;
        }
        if self.access_log {
            config.log.access_log = true;
        }
        if self.verbose {
            config.log.level = LogLevel::Debug;
        }
        if let Some(fallback) = &self.fallback {
            config.static_files.fallback.clone_from(fallback);
        }
        if self.listing {
            config.static_files.listing = true;
        }
        if self.no_compress {
            config.static_files.compress.enabled = false;
        }
        self.apply_tls(config)
    }

    /// `--tls-cert`/`--tls-key` replace the config's certificates;
    /// `--tls-listen` its TLS addresses, which default (with a certificate
    /// given and none configured) to the plain address with port + 1.
    fn apply_tls(&self, config: &mut Config) -> Result<(), ConfigError> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), _) if self.tls_self_signed => {
                return Err(err(
                    "--tls-cert and --tls-self-signed both give a certificate; use one".into(),
                ))
            }
            (Some(cert), Some(key)) => {
                config.tls.self_signed = false;
                config.tls.certificates = vec![conveyor::tls::CertificateFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                    names: Vec::new(),
                }];
            }
            (Some(_), None) => {
                return Err(err(
                    "--tls-cert needs --tls-key FILE, its private key".into()
                ))
            }
            (None, Some(_)) => {
                return Err(err(
                    "--tls-key needs --tls-cert FILE, its certificate".into()
                ))
            }
            (None, None) => {}
        }
        if self.tls_self_signed {
            config.tls.certificates.clear();
            config.tls.self_signed = true;
        }
        if !self.acme_domains.is_empty() {
            config.acme.domains.clone_from(&self.acme_domains);
        }
        let certificate =
            self.tls_cert.is_some() || self.tls_self_signed || !self.acme_domains.is_empty();
        if !self.tls_listen.is_empty() {
            config.tls.listen.clone_from(&self.tls_listen);
        } else if certificate && config.tls.listen.is_empty() {
            let flag = match (self.tls_self_signed, self.tls_cert.is_some()) {
                (true, _) => "--tls-self-signed",
                (false, true) => "--tls-cert",
                (false, false) => "--acme-domain",
            };
            config.tls.listen = vec![next_port(&config.listen, flag)?];
        }
        Ok(())
    }
}

/// The config file `conveyor [ROOT] ...` reads: `--config`, else, with no
/// ROOT (the `cargo run` demo), the default path when it exists, else none
/// (the defaults). `conveyor DIR` never picks up a file it was not named:
/// the demo's `/echo` and headers are not for someone's own files.
pub(crate) fn config_path(args: &ServeArgs) -> Option<PathBuf> {
    match &args.config {
        Some(path) => Some(path.clone()),
        None if args.root.is_none() && Path::new(DEFAULT_CONFIG_PATH).exists() => {
            Some(DEFAULT_CONFIG_PATH.into())
        }
        None => None,
    }
}

/// Why no config file was read, for the start-up line.
pub(crate) fn no_config_note(args: &ServeArgs) -> String {
    match args.root {
        None => format!("no config file ({DEFAULT_CONFIG_PATH} not found): defaults"),
        Some(_) if Path::new(DEFAULT_CONFIG_PATH).exists() => format!(
            "no config file ({DEFAULT_CONFIG_PATH} is not read when ROOT is given; \
             --config {DEFAULT_CONFIG_PATH} reads it): defaults"
        ),
        Some(_) => "no config file (--config FILE reads one): defaults".to_string(),
    }
}

/// The config for `conveyor [ROOT] ...`: the file (or defaults), then the
/// flags. [`check_for_serve`] checks it against the machine.
pub(crate) fn load_for_serve(args: &ServeArgs) -> Result<Config, ConfigError> {
    let mut config = match config_path(args) {
        Some(path) => Config::load(&path)?,
        None => Config::default(),
    };
    args.apply(&mut config)?;
    Ok(config)
}

/// The checks across keys and against the machine, once the flags and
/// the inherited sockets are in: some listener, the root (its messages
/// say who set it), the error pages.
pub(crate) fn check_for_serve(config: &Config, args: &ServeArgs) -> Result<(), ConfigError> {
    config.check_listeners()?;
    config.check_acme()?;
    let origin = match (&args.root, config_path(args)) {
        (Some(_), _) => "the ROOT argument".to_string(),
        (None, Some(file)) if config.root != Config::default().root => {
            format!("root in {}, relative to its directory", file.display())
        }
        (None, _) => "the default, relative to the working directory".to_string(),
    };
    config.check_root_from(&origin)?;
    config.check_error_pages()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, ConfigError> {
        parse_args(args.iter().map(OsString::from))
    }

    fn serve(args: &[&str]) -> ServeArgs {
        match parse(args) {
            Ok(Command::Serve(s)) => s,
            other => panic!("{args:?} gave {other:?}"),
        }
    }

    fn fails(args: &[&str]) -> String {
        parse(args).unwrap_err().to_string()
    }

    #[test]
    fn acme_domains_repeat_and_bring_a_tls_listener() {
        let mut config = Config::default();
        let s = serve(&[
            "--listen",
            "0.0.0.0:80",
            "--acme-domain",
            "Example.com",
            "--acme-domain=www.example.com",
            "--acme-domain",
            "example.com",
        ]);
        s.apply(&mut config).unwrap();
        assert_eq!(config.acme.domains, ["example.com", "www.example.com"]);
        assert_eq!(config.tls.listen, vec!["0.0.0.0:81".parse().unwrap()]);
        config.check_acme().unwrap();
        let e = fails(&["--acme-domain", "*.example.com"]);
        assert!(e.contains("--acme-domain") && e.contains("dns-01"), "{e}");
        assert!(fails(&["--acme-domain", "localhost"]).contains("public DNS name"));
    }

    #[test]
    fn tls_flags_default_to_the_listen_port_plus_one_and_repeat() {
        let mut config = Config::default();
        let s = serve(&[
            "--listen",
            "127.0.0.1:8080",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
        ]);
        s.apply(&mut config).unwrap();
        assert_eq!(config.tls.listen, vec!["127.0.0.1:8081".parse().unwrap()]);
        assert_eq!(config.tls.certificates[0].cert, PathBuf::from("c.pem"));
        assert_eq!(config.tls.certificates[0].key, PathBuf::from("k.pem"));
        let s = serve(&[
            "--tls-cert=c.pem",
            "--tls-key=k.pem",
            "--tls-listen",
            "127.0.0.1:443",
            "--tls-listen=[::1]:443",
        ]);
        let mut config = Config::default();
        s.apply(&mut config).unwrap();
        assert_eq!(config.tls.listen.len(), 2);
        let mut config = Config::default();
        let e = serve(&["--tls-cert", "c.pem"])
            .apply(&mut config)
            .unwrap_err();
        assert!(e.message().contains("--tls-key"), "{e}");
        assert!(fails(&["--tls-listen", "nope"]).contains("127.0.0.1:8080"));
        let mut config = Config::default();
        let edge = serve(&[
            "--listen",
            "127.0.0.1:65535",
            "--tls-cert",
            "c",
            "--tls-key",
            "k",
        ]);
        assert!(edge
            .apply(&mut config)
            .unwrap_err()
            .message()
            .contains("65535"));
    }

    /// Run from the crate root, where `config/conveyor.toml` exists.
    #[test]
    fn the_default_config_file_is_read_only_without_a_root() {
        assert!(Path::new(DEFAULT_CONFIG_PATH).exists());
        assert_eq!(config_path(&serve(&[])), Some(DEFAULT_CONFIG_PATH.into()));
        assert_eq!(config_path(&serve(&["site"])), None);
        assert!(no_config_note(&serve(&["site"])).contains("is not read when ROOT is given"));
        let named = serve(&["site", "--config", "c.toml"]);
        assert_eq!(config_path(&named), Some("c.toml".into()));
    }

    #[test]
    fn tls_self_signed_takes_the_next_port_and_excludes_tls_cert() {
        let mut config = Config::default();
        serve(&["--listen", "127.0.0.1:8080", "--tls-self-signed"])
            .apply(&mut config)
            .unwrap();
        assert!(config.tls.self_signed && config.tls.certificates.is_empty());
        assert_eq!(config.tls.listen, vec!["127.0.0.1:8081".parse().unwrap()]);
        let mut alone = Config {
            listen: ListenAddresses(Vec::new()),
            ..Config::default()
        };
        let e = serve(&["--tls-self-signed"]).apply(&mut alone).unwrap_err();
        assert!(
            e.message().starts_with("--tls-self-signed: no listener"),
            "{e}"
        );
        let both = serve(&["--tls-self-signed", "--tls-cert", "c", "--tls-key", "k"]);
        let e = both.apply(&mut Config::default()).unwrap_err();
        assert!(e.message().contains("use one"), "{e}");
    }

    #[test]
    fn flags_both_forms() {
        let s = serve(&[
            "site",
            "--config",
            "c.toml",
            "--listen=0.0.0.0:80",
            "--workers",
            "4",
            "--acceptor=reuseport",
            "--dispatcher",
            "pool",
            "--access-log",
            "--verbose",
        ]);
        assert_eq!(
            s,
            ServeArgs {
                root: Some("site".into()),
                config: Some("c.toml".into()),
                listen: vec![ListenAddress::parse("0.0.0.0:80").unwrap()],
                workers: Some(4),
                acceptor: Some(AcceptorKind::ReusePort),
                dispatcher: Some(DispatcherKind::Pool),
                access_log: true,
                no_compress: false,
                verbose: true,
                fallback: None,
                listing: false,
                ..ServeArgs::default()
            }
        );
        let spa = serve(&["--fallback", "index.html", "--listing"]);
        assert_eq!(spa.fallback.as_deref(), Some("/index.html"));
        assert!(spa.listing);
        let mut config = Config::default();
        spa.apply(&mut config).unwrap();
        assert_eq!(config.static_files.fallback, "/index.html");
        assert!(config.static_files.listing);
        let e = parse_args(["--fallback", "../x"].map(OsString::from)).unwrap_err();
        assert!(e.message().contains("--fallback \"../x\""), "{e}");
        assert!(serve(&["--no-compress"]).no_compress);
        assert!(serve(&["-v"]).verbose);
        assert_eq!(serve(&[]), ServeArgs::default());
        assert_eq!(serve(&["--", "--odd-dir"]).root, Some("--odd-dir".into()));
        assert_eq!(serve(&["--config=a=b"]).config, Some("a=b".into()));
    }

    #[test]
    fn listen_repeats_and_replaces_the_config_list() {
        let s = serve(&[
            "--listen",
            "127.0.0.1:1",
            "--listen=unix:/run/c.sock",
            "--listen",
            "127.0.0.1:1",
        ]);
        assert_eq!(
            s.listen,
            vec![
                ListenAddress::parse("127.0.0.1:1").unwrap(),
                ListenAddress::Unix("/run/c.sock".into())
            ]
        );
        let mut config = Config::default();
        s.apply(&mut config).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:1, unix:/run/c.sock");
        assert!(fails(&["--listen", "unix:"]).contains("--listen unix: is invalid"));
    }

    #[test]
    fn apply_overrides() {
        let mut c = Config::default();
        let s = serve(&[
            "/srv",
            "--workers",
            "0",
            "--acceptor",
            "spin",
            "--access-log",
            "--verbose",
        ]);
        s.apply(&mut c).unwrap();
        assert_eq!(c.root, PathBuf::from("/srv"));
        assert!(c.workers >= 1);
        assert_eq!(c.stages.acceptor, AcceptorKind::Spin);
        assert!(c.log.access_log);
        assert_eq!(c.log.level, LogLevel::Debug);
        let bad = ServeArgs {
            workers: Some(MAX_WORKERS + 1),
            ..ServeArgs::default()
        };
        let e = bad.apply(&mut c).unwrap_err().to_string();
        assert!(e.starts_with("--workers 1025 is invalid"), "{e}");
    }

    #[test]
    fn usage_lists_everything() {
        for word in [
            "--config",
            "--listen",
            "--workers",
            "--acceptor",
            "--dispatcher",
            "--access-log",
            "--verbose",
            "--help",
            "--version",
            "bench URL",
        ] {
            assert!(usage().contains(word), "{word}");
        }
        let usage = usage();
        assert!(
            usage.contains(
                "  --acceptor NAME     how connections are accepted:\n                        \
                 readiness  one listener, accepted when the poller says it is ready\n"
            ),
            "{usage}"
        );
        let names = AcceptorKind::NAMES.iter().chain(&DispatcherKind::NAMES);
        for name in names {
            assert!(usage.contains(&format!("  {name}  ")), "{name}");
        }
        assert!(!usage.contains('{'), "{usage}");
    }
}
