//! Command-line parsing and how its flags override the config file.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use conveyor::config::{
    parse_fallback, parse_listen, parse_listen_spec, resolve_workers, AcceptorKind, Config,
    ConfigError, DispatcherKind, Listen, ListenSpec, Listeners, LogLevel, UnknownName,
    DEFAULT_CONFIG_PATH, LISTEN_FIX, MAX_WORKERS, WORKERS_FIX,
};

const USAGE: &str = "\
Conveyor: a static HTTP/1.1 server

Usage:
  conveyor [ROOT] [OPTIONS]      serve the directory ROOT (default: root from the config, \"www\")
  conveyor bench URL ...         load-test a running server; see `conveyor bench --help`
  conveyor --help | --version

Options (override the config file):
  --config FILE       read FILE (default: config/conveyor.toml when it exists)
  --listen ADDR       address to listen on, like 127.0.0.1:8080, [::]:8080 or
                      unix:/run/conveyor.sock; a name (localhost:8080) listens on every
                      address it has; repeat it to listen on several (replaces `listen`)
  --tls-cert FILE     serve HTTPS with this PEM certificate chain (with --tls-key);
                      replaces [[tls.certificates]]
  --tls-key FILE      the PEM private key of --tls-cert
  --tls-listen ADDR   serve HTTPS on ADDR (repeatable); default with --tls-cert:
                      the --listen address with port + 1 (8080 -> 8081)
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
    pub listen: Vec<ListenSpec>,
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
    pub tls_listen: Vec<Listen>,
}

fn err(msg: String) -> ConfigError {
    ConfigError::new(format!("{msg} (see conveyor --help)"))
}

/// The first TCP `listen` address with port + 1 (port 0 stays 0: any free
/// port), for `--tls-cert` without `--tls-listen`.
fn next_port(listeners: &Listeners) -> Result<Listen, ConfigError> {
    let bump = |port: u16| match port {
        0 => Some(0),
        p => p.checked_add(1),
    };
    let fail = |why: &str| {
        err(format!(
            "--tls-cert: {why}, so there is no default TLS port; give --tls-listen ADDR"
        ))
    };
    let listen = listeners
        .specs()
        .iter()
        .find_map(|spec| match spec {
            ListenSpec::Tcp(listen) => Some(listen),
            ListenSpec::Unix(_) | ListenSpec::Inherited { .. } => None,
        })
        .ok_or_else(|| fail("no listener is a TCP address"))?;
    let port_fail = || fail("the listen port is 65535");
    Ok(match listen {
        Listen::Addr(addr) => {
            let mut addr = *addr;
            addr.set_port(bump(addr.port()).ok_or_else(port_fail)?);
            Listen::Addr(addr)
        }
        Listen::Name { host, port } => Listen::Name {
            host: host.clone(),
            port: bump(*port).ok_or_else(port_fail)?,
        },
    })
}

/// Parses the arguments after argv[0]. A repeated flag: the last one wins,
/// but for `--listen`, which adds a listener each time.
pub(crate) fn parse_args(args: impl IntoIterator<Item = OsString>) -> Result<Command, ConfigError> {
    let mut args = args.into_iter();
    let mut out = ServeArgs::default();
    let mut first = true;
    let mut only_positional = false;
    while let Some(arg) = args.next() {
        if std::mem::take(&mut first) && arg == "bench" {
            return Ok(Command::Bench(args.collect()));
        }
        let bytes = arg.as_bytes();
        if only_positional || bytes == b"-" || !bytes.starts_with(b"-") {
            if let Some(prev) = &out.root {
                return Err(err(format!(
                    "only one ROOT may be given, got \"{}\" and \"{}\"",
                    prev.display(),
                    Path::new(&arg).display()
                )));
            }
            out.root = Some(PathBuf::from(arg));
            continue;
        }
        // Split "--flag=value"; the value may be any bytes (a path).
        let (flag, inline) = match bytes.iter().position(|&b| b == b'=') {
            Some(i) if bytes.starts_with(b"--") => (
                String::from_utf8_lossy(&bytes[..i]).into_owned(),
                Some(OsStr::from_bytes(&bytes[i + 1..]).to_os_string()),
            ),
            _ => (arg.to_string_lossy().into_owned(), None),
        };
        let mut value = |name: &str| -> Result<OsString, ConfigError> {
            match inline.clone().or_else(|| args.next()) {
                Some(v) => Ok(v),
                None => Err(err(format!("{name} needs a value"))),
            }
        };
        match flag.as_str() {
            "--" => only_positional = true,
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            "--config" => out.config = Some(PathBuf::from(value("--config FILE")?)),
            "--listen" => {
                let v = value("--listen ADDR")?;
                let s = v.to_string_lossy();
                let spec = parse_listen_spec(&s).map_err(|why| err(format!("--listen {why}")))?;
                if !out.listen.contains(&spec) {
                    out.listen.push(spec);
                }
            }
            "--tls-cert" => out.tls_cert = Some(PathBuf::from(value("--tls-cert FILE")?)),
            "--tls-key" => out.tls_key = Some(PathBuf::from(value("--tls-key FILE")?)),
            "--tls-listen" => {
                let v = value("--tls-listen ADDR")?;
                let s = v.to_string_lossy();
                out.tls_listen
                    .push(parse_listen(&s).ok_or_else(|| {
                        err(format!("--tls-listen {s} is invalid; {LISTEN_FIX}"))
                    })?);
            }
            "--workers" => {
                let v = value("--workers N")?;
                let s = v.to_string_lossy();
                out.workers = Some(
                    s.parse::<usize>()
                        .ok()
                        .filter(|n| *n <= MAX_WORKERS)
                        .ok_or_else(|| err(format!("--workers {s} is invalid; {WORKERS_FIX}")))?,
                );
            }
            "--acceptor" => out.acceptor = Some(named("--acceptor", value("--acceptor NAME")?)?),
            "--dispatcher" => {
                out.dispatcher = Some(named("--dispatcher", value("--dispatcher NAME")?)?)
            }
            "--access-log" if inline.is_some() => {
                return Err(err("--access-log takes no value".to_string()))
            }
            "--access-log" => out.access_log = true,
            "--no-compress" if inline.is_some() => {
                return Err(err("--no-compress takes no value".to_string()))
            }
            "--no-compress" => out.no_compress = true,
            "--fallback" => {
                let v = value("--fallback FILE")?;
                let file = v.to_string_lossy().into_owned();
                out.fallback = Some(
                    parse_fallback(&file)
                        .map_err(|why| err(format!("--fallback {file:?} {why}")))?,
                );
            }
            "--listing" if inline.is_some() => {
                return Err(err("--listing takes no value".to_string()))
            }
            "--listing" => out.listing = true,
            "-v" | "--verbose" if inline.is_some() => {
                return Err(err("--verbose takes no value".to_string()))
            }
            "-v" | "--verbose" => out.verbose = true,
            _ => return Err(err(format!("unknown option {flag}"))),
        }
    }
    Ok(Command::Serve(out))
}

/// The value of a flag that names one of a set, checked here once.
fn named<T: FromStr<Err = UnknownName>>(flag: &str, value: OsString) -> Result<T, ConfigError> {
    let value = value.to_string_lossy();
    value
        .parse()
        .map_err(|e: UnknownName| ConfigError::new(format!("{flag} {value} {}", e.reason())))
}

impl ServeArgs {
    /// Command-line values override the config. Stage names were checked by
    /// their type; `workers` again, as a `ServeArgs` can be built by hand.
    pub(crate) fn apply(&self, config: &mut Config) -> Result<(), ConfigError> {
        if let Some(root) = &self.root {
            config.root = root.clone();
        }
        if !self.listen.is_empty() {
            config.listen = Listeners(self.listen.clone());
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
            (Some(cert), Some(key)) => {
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
        if !self.tls_listen.is_empty() {
            config.tls.listen.clone_from(&self.tls_listen);
        } else if self.tls_cert.is_some() && config.tls.listen.is_empty() {
            config.tls.listen = vec![next_port(&config.listen)?];
        }
        Ok(())
    }
}

/// The config file `conveyor [ROOT] ...` reads: `--config`, else the
/// default path when it exists, else none (the defaults).
pub(crate) fn config_path(args: &ServeArgs) -> Option<PathBuf> {
    match &args.config {
        Some(path) => Some(path.clone()),
        None if Path::new(DEFAULT_CONFIG_PATH).exists() => Some(DEFAULT_CONFIG_PATH.into()),
        None => None,
    }
}

/// The config for `conveyor [ROOT] ...`: file (or defaults), then flags, then the root check.
pub(crate) fn load_for_serve(args: &ServeArgs) -> Result<Config, ConfigError> {
    let mut config = match config_path(args) {
        Some(path) => Config::load(&path)?,
        None => Config::default(),
    };
    args.apply(&mut config)?;
    config.check_root()?;
    Ok(config)
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
                listen: vec![ListenSpec::parse("0.0.0.0:80").unwrap()],
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
                ListenSpec::parse("127.0.0.1:1").unwrap(),
                ListenSpec::Unix("/run/c.sock".into())
            ]
        );
        let mut config = Config::default();
        s.apply(&mut config).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:1, unix:/run/c.sock");
        assert!(fails(&["--listen", "unix:"]).contains("--listen unix: is invalid"));
    }

    #[test]
    fn commands() {
        assert_eq!(parse(&["--help"]).unwrap(), Command::Help);
        assert_eq!(parse(&["www", "-h"]).unwrap(), Command::Help);
        assert_eq!(parse(&["-V"]).unwrap(), Command::Version);
        assert_eq!(
            parse(&["bench", "http://x/", "--help"]).unwrap(),
            Command::Bench(vec!["http://x/".into(), "--help".into()])
        );
        // "bench" later on is a ROOT, not the subcommand.
        assert_eq!(serve(&["--access-log", "bench"]).root, Some("bench".into()));
    }

    #[test]
    fn bad_args() {
        assert!(fails(&["--port", "1"]).contains("unknown option --port"));
        assert!(fails(&["--listen"]).contains("--listen ADDR needs a value"));
        assert!(fails(&["--listen", "nope"]).contains("127.0.0.1:8080"));
        assert!(fails(&["--workers", "many"]).contains("from 0 (one per core) to 1024"));
        assert!(fails(&["--workers=5000"]).contains("--workers 5000"));
        assert_eq!(
            fails(&["--acceptor", "fast"]),
            "--acceptor fast is not a known acceptor; \
             use one of \"readiness\", \"reuseport\", \"spin\""
        );
        assert_eq!(
            fails(&["--dispatcher=x"]),
            "--dispatcher x is not a known dispatcher; use one of \"spawn\", \"pool\""
        );
        assert!(fails(&["a", "b"]).contains("only one ROOT"));
        assert!(fails(&["--access-log=yes"]).contains("takes no value"));
        assert!(fails(&["--verbose=yes"]).contains("takes no value"));
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
    fn load_for_serve_checks_root_and_file() {
        let args = ServeArgs {
            root: Some(std::env::temp_dir()),
            config: Some("/definitely/missing.toml".into()),
            ..ServeArgs::default()
        };
        let e = load_for_serve(&args).unwrap_err().to_string();
        assert!(
            e.starts_with("cannot read config file /definitely/missing.toml"),
            "{e}"
        );
        let args = ServeArgs {
            root: Some("/definitely/missing-root".into()),
            config: None,
            ..ServeArgs::default()
        };
        let e = load_for_serve(&args).unwrap_err().to_string();
        assert!(e.contains("pass ROOT on the command line"), "{e}");
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
