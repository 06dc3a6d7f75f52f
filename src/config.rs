//! Server configuration: defaults, loading from TOML, and validation.
//!
//! The TOML is walked by hand (no serde derive) to keep the dependency tree
//! small and to give every error the dotted key and a fix.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::{Table, Value};

/// The file read when no `--config` is given, relative to the working directory.
pub const DEFAULT_CONFIG_PATH: &str = "config/conveyor.toml";

pub const ACCEPTORS: &[&str] = &["readiness", "reuseport", "spin"];
pub const DISPATCHERS: &[&str] = &["spawn", "pool"];
pub const MAX_WORKERS: usize = 1024;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub listen: SocketAddr,
    pub root: PathBuf,
    /// Always >= 1: a 0 in the file is resolved to the number of cores.
    pub workers: usize,
    pub stages: Stages,
    pub queue: QueueConfig,
    pub limits: LimitsConfig,
    pub timeouts: Timeouts,
    pub static_files: StaticConfig,
    pub log: LogConfig,
    pub runtime: RuntimeConfig,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Stages {
    /// One of [`ACCEPTORS`].
    pub acceptor: String,
    /// One of [`DISPATCHERS`].
    pub dispatcher: String,
    /// Handler green threads per worker for the "pool" dispatcher.
    pub pool_size: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct QueueConfig {
    pub capacity: usize,
    pub overload: Overload,
}

/// How the static-file cache checks a file before serving it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revalidate {
    /// `stat` the file once per read of requests.
    Stat,
    /// inotify watches cached files; one read of its queue per scheduler
    /// turn covers every request read in that turn.
    Inotify,
}

/// What the acceptor does when the pending queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overload {
    /// Stop accepting; the kernel backlog absorbs the burst.
    Wait,
    /// Accept and answer 503.
    Reject,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LimitsConfig {
    pub max_request_line: usize,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub max_echo_body: u64,
    pub max_connections: usize,
    pub max_requests_per_connection: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Timeouts {
    pub header_read: Duration,
    /// Time allowed for a request body to start arriving, extended as it
    /// arrives by `body_min_rate`; also the longest wait for any one read
    /// of a body.
    pub body_read: Duration,
    /// Bytes per second a body must keep up: each byte received adds
    /// 1/rate s to the body deadline (mod_reqtimeout's MinRate). 0: no
    /// extension, the whole body must arrive within `body_read`.
    pub body_min_rate: u64,
    pub keepalive_idle: Duration,
    pub write: Duration,
    pub shutdown_grace: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StaticConfig {
    pub index: String,
    pub follow_symlinks_outside_root: bool,
    pub show_dotfiles: bool,
    pub cache_max_file_size: u64,
    pub cache_max_bytes: u64,
    /// Files at least this big go out with sendfile.
    pub sendfile_min_size: u64,
    /// How a cached file is checked against the disk before it is served.
    pub revalidate: Revalidate,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    pub access_log: bool,
    /// "-" means stdout.
    pub access_log_path: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeConfig {
    pub poll_mode: PollModeName,
    pub backlog: u32,
    pub tcp_keepalive_idle: Duration,
    pub tcp_keepalive_interval: Duration,
    /// TCP_NOTSENT_LOWAT in bytes; 0 leaves the kernel default.
    pub tcp_notsent_lowat: u64,
    /// TCP_DEFER_ACCEPT: accept a connection once it has sent bytes, or
    /// after this long; zero turns it off.
    pub tcp_defer_accept: Duration,
}

/// How sockets are registered with the poller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollModeName {
    Edge,
    Oneshot,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            root: PathBuf::from("www"),
            workers: resolve_workers(0),
            stages: Stages {
                acceptor: "readiness".to_string(),
                dispatcher: "spawn".to_string(),
                pool_size: 32,
            },
            queue: QueueConfig {
                capacity: 1024,
                overload: Overload::Wait,
            },
            limits: LimitsConfig {
                max_request_line: 8192,
                max_header_bytes: 8192,
                max_headers: 100,
                max_echo_body: 4 * GIB,
                max_connections: 10_000,
                max_requests_per_connection: 1000,
            },
            timeouts: Timeouts {
                header_read: Duration::from_secs(10),
                body_read: Duration::from_secs(10),
                body_min_rate: 500,
                keepalive_idle: Duration::from_secs(15),
                write: Duration::from_secs(30),
                shutdown_grace: Duration::from_secs(5),
            },
            static_files: StaticConfig {
                index: "index.html".to_string(),
                follow_symlinks_outside_root: false,
                show_dotfiles: false,
                cache_max_file_size: 64 * KIB,
                cache_max_bytes: 64 * MIB,
                sendfile_min_size: 64 * KIB,
                revalidate: Revalidate::Inotify,
            },
            log: LogConfig {
                access_log: false,
                access_log_path: "-".to_string(),
            },
            runtime: RuntimeConfig {
                poll_mode: PollModeName::Edge,
                backlog: 1024,
                tcp_keepalive_idle: Duration::from_secs(60),
                tcp_keepalive_interval: Duration::from_secs(10),
                tcp_notsent_lowat: 16 * KIB,
                tcp_defer_accept: Duration::from_secs(1),
            },
        }
    }
}

/// 0 means one worker per core; never returns 0.
pub fn resolve_workers(n: usize) -> usize {
    if n == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        n
    }
}

/// A configuration or command-line error, worded for the person running the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    file: Option<PathBuf>,
    message: String,
}

impl ConfigError {
    pub fn new(message: impl Into<String>) -> Self {
        ConfigError {
            file: None,
            message: message.into(),
        }
    }

    fn in_file(mut self, path: &Path) -> Self {
        self.file = Some(path.to_path_buf());
        self
    }

    /// The message without the file name.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(file) => write!(f, "{}: {}", file.display(), self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

type Res<T> = Result<T, ConfigError>;

impl Config {
    pub fn load(path: &Path) -> Res<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new(format!(
                "cannot read config file {}: {e}; pass --config FILE or create it",
                path.display()
            ))
        })?;
        Self::from_toml_str(&text).map_err(|e| e.in_file(path))
    }

    pub fn from_toml_str(text: &str) -> Res<Config> {
        let table = text
            .parse::<Table>()
            .map_err(|e| ConfigError::new(format!("invalid TOML: {}", e.to_string().trim_end())))?;
        let d = Config::default();
        let top = Section {
            prefix: "",
            table: &table,
        };
        top.check_unknown(&[
            "listen", "root", "workers", "stages", "queue", "limits", "timeouts", "static", "log",
            "runtime",
        ])?;

        let listen = match top.get("listen") {
            None => d.listen,
            Some(v) => parse_listen(top.string("listen", v)?)
                .ok_or_else(|| top.bad("listen", v, LISTEN_FIX))?,
        };
        let root = match top.get("root") {
            None => d.root,
            Some(v) => match top.string("root", v)? {
                "" => return Err(top.bad("root", v, "give the directory to serve, like \"www\"")),
                s => PathBuf::from(s),
            },
        };
        let workers = top.int("workers", 0, MAX_WORKERS as u64, WORKERS_FIX)? as usize;

        let s = top.sub("stages")?;
        s.check_unknown(&["acceptor", "dispatcher", "pool_size"])?;
        let stages = Stages {
            acceptor: s.choice("acceptor", &d.stages.acceptor, ACCEPTORS, "acceptor")?,
            dispatcher: s.choice(
                "dispatcher",
                &d.stages.dispatcher,
                DISPATCHERS,
                "dispatcher",
            )?,
            pool_size: s.int_or("pool_size", d.stages.pool_size, 1, 65_536)?,
        };

        let s = top.sub("queue")?;
        s.check_unknown(&["capacity", "overload"])?;
        let queue = QueueConfig {
            capacity: s.int_or("capacity", d.queue.capacity, 1, 1 << 24)?,
            overload: match s.choice("overload", "wait", &["wait", "reject"], "overload policy")? {
                o if o == "reject" => Overload::Reject,
                _ => Overload::Wait,
            },
        };

        let s = top.sub("limits")?;
        let l = &d.limits;
        s.check_unknown(&[
            "max_request_line",
            "max_header_bytes",
            "max_headers",
            "max_echo_body",
            "max_connections",
            "max_requests_per_connection",
        ])?;
        let limits = LimitsConfig {
            max_request_line: s.int_or("max_request_line", l.max_request_line, 64, 1 << 20)?,
            max_header_bytes: s.int_or("max_header_bytes", l.max_header_bytes, 64, 1 << 24)?,
            max_headers: s.int_or("max_headers", l.max_headers, 1, 10_000)?,
            max_echo_body: s.size("max_echo_body", l.max_echo_body)?,
            max_connections: s.int_or("max_connections", l.max_connections, 1, 10_000_000)?,
            max_requests_per_connection: s.int_or(
                "max_requests_per_connection",
                l.max_requests_per_connection,
                1,
                u64::MAX,
            )?,
        };

        let s = top.sub("timeouts")?;
        let t = &d.timeouts;
        s.check_unknown(&[
            "header_read",
            "body_read",
            "body_min_rate",
            "keepalive_idle",
            "write",
            "shutdown_grace",
        ])?;
        let timeouts = Timeouts {
            header_read: s.duration("header_read", t.header_read)?,
            body_read: s.duration("body_read", t.body_read)?,
            body_min_rate: s.rate("body_min_rate", t.body_min_rate)?,
            keepalive_idle: s.duration("keepalive_idle", t.keepalive_idle)?,
            write: s.duration("write", t.write)?,
            shutdown_grace: s.duration("shutdown_grace", t.shutdown_grace)?,
        };

        let s = top.sub("static")?;
        let st = &d.static_files;
        s.check_unknown(&[
            "index",
            "follow_symlinks_outside_root",
            "show_dotfiles",
            "cache_max_file_size",
            "cache_max_bytes",
            "sendfile_min_size",
            "revalidate",
        ])?;
        let static_files = StaticConfig {
            index: match s.get("index") {
                None => st.index.clone(),
                Some(v) => match s.string("index", v)? {
                    i if i.is_empty() || i.contains('/') || i == "." || i == ".." => {
                        return Err(s.bad("index", v, "use a plain file name like \"index.html\""))
                    }
                    i => i.to_string(),
                },
            },
            follow_symlinks_outside_root: s.boolean(
                "follow_symlinks_outside_root",
                st.follow_symlinks_outside_root,
            )?,
            show_dotfiles: s.boolean("show_dotfiles", st.show_dotfiles)?,
            cache_max_file_size: s.size("cache_max_file_size", st.cache_max_file_size)?,
            cache_max_bytes: s.size("cache_max_bytes", st.cache_max_bytes)?,
            sendfile_min_size: s.size("sendfile_min_size", st.sendfile_min_size)?,
            revalidate: match s.choice(
                "revalidate",
                "inotify",
                &["stat", "inotify"],
                "revalidation mode",
            )? {
                r if r == "stat" => Revalidate::Stat,
                _ => Revalidate::Inotify,
            },
        };

        let s = top.sub("log")?;
        s.check_unknown(&["access_log", "access_log_path"])?;
        let log = LogConfig {
            access_log: s.boolean("access_log", d.log.access_log)?,
            access_log_path: match s.get("access_log_path") {
                None => d.log.access_log_path,
                Some(v) => match s.string("access_log_path", v)? {
                    "" => {
                        return Err(s.bad(
                            "access_log_path",
                            v,
                            "use a file path, or \"-\" for stdout",
                        ))
                    }
                    p => p.to_string(),
                },
            },
        };

        let s = top.sub("runtime")?;
        let r = &d.runtime;
        s.check_unknown(&[
            "poll_mode",
            "backlog",
            "tcp_keepalive_idle",
            "tcp_keepalive_interval",
            "tcp_notsent_lowat",
            "tcp_defer_accept",
        ])?;
        let runtime = RuntimeConfig {
            poll_mode: match s.choice("poll_mode", "edge", &["edge", "oneshot"], "poll mode")? {
                m if m == "oneshot" => PollModeName::Oneshot,
                _ => PollModeName::Edge,
            },
            backlog: s.int_or("backlog", r.backlog, 1, 65_535)?,
            tcp_keepalive_idle: s.duration("tcp_keepalive_idle", r.tcp_keepalive_idle)?,
            tcp_keepalive_interval: s
                .duration("tcp_keepalive_interval", r.tcp_keepalive_interval)?,
            tcp_notsent_lowat: s.size("tcp_notsent_lowat", r.tcp_notsent_lowat)?,
            tcp_defer_accept: s.duration_or_zero("tcp_defer_accept", r.tcp_defer_accept)?,
        };

        Ok(Config {
            listen,
            root,
            workers: resolve_workers(workers),
            stages,
            queue,
            limits,
            timeouts,
            static_files,
            log,
            runtime,
        })
    }

    /// The root must be a directory we can list; checked at startup, not at
    /// load, so that a config file can be validated anywhere.
    pub fn check_root(&self) -> Res<()> {
        let root = self.root.display();
        let fix = "create it or pass ROOT on the command line";
        let meta = std::fs::metadata(&self.root).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                ConfigError::new(format!("root \"{root}\" does not exist; {fix}"))
            } else {
                ConfigError::new(format!("root \"{root}\" cannot be read ({e}); {fix}"))
            }
        })?;
        if !meta.is_dir() {
            return Err(ConfigError::new(format!(
                "root \"{root}\" is not a directory; {fix}"
            )));
        }
        std::fs::read_dir(&self.root).map_err(|e| {
            ConfigError::new(format!("root \"{root}\" cannot be read ({e}); {fix}"))
        })?;
        Ok(())
    }
}

pub(crate) const LISTEN_FIX: &str =
    "write it as IP:PORT, like \"127.0.0.1:8080\" or \"[::1]:8080\"";
pub(crate) const WORKERS_FIX: &str = "use an integer from 0 (one per core) to 1024";

pub(crate) fn parse_listen(s: &str) -> Option<SocketAddr> {
    s.trim().parse().ok()
}

/// `Ok(())` or the tail of an error message: `is not a known acceptor; use one of ...`.
pub(crate) fn check_choice(value: &str, allowed: &[&str], what: &str) -> Result<(), String> {
    if allowed.contains(&value) {
        return Ok(());
    }
    let list: Vec<String> = allowed.iter().map(|a| format!("\"{a}\"")).collect();
    Err(format!(
        "is not a known {what}; use one of {}",
        list.join(", ")
    ))
}

/// One table of the file, with the dotted prefix used in messages.
struct Section<'a> {
    prefix: &'static str,
    table: &'a Table,
}

impl<'a> Section<'a> {
    fn path(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.prefix)
        }
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.table.get(key)
    }

    fn bad(&self, key: &str, v: &Value, fix: &str) -> ConfigError {
        ConfigError::new(format!(
            "{} = {} is invalid; {fix}",
            self.path(key),
            show(v)
        ))
    }

    fn wrong(&self, key: &str, v: &Value, what: &str, fix: &str) -> ConfigError {
        ConfigError::new(format!(
            "{} = {} is not {what}; {fix}",
            self.path(key),
            show(v)
        ))
    }

    fn check_unknown(&self, known: &[&str]) -> Res<()> {
        for key in self.table.keys() {
            if known.contains(&key.as_str()) {
                continue;
            }
            let near = known
                .iter()
                .map(|k| (edit_distance(key, k), *k))
                .filter(|(d, _)| *d <= 2)
                .min();
            let what = if self.prefix.is_empty() && self.table[key].is_table() {
                "table"
            } else {
                "key"
            };
            let mut msg = format!("unknown {what} {}", self.path(key));
            match near {
                Some((_, k)) => msg += &format!(" (did you mean {}?)", self.path(k)),
                None => {
                    msg += &format!("; known keys here are {}", known.join(", "));
                }
            }
            return Err(ConfigError::new(msg));
        }
        Ok(())
    }

    /// A sub-table; missing means all defaults.
    fn sub(&self, name: &'static str) -> Res<Section<'a>> {
        static EMPTY: std::sync::OnceLock<Table> = std::sync::OnceLock::new();
        match self.table.get(name) {
            None => Ok(Section {
                prefix: name,
                table: EMPTY.get_or_init(Table::new),
            }),
            Some(Value::Table(t)) => Ok(Section {
                prefix: name,
                table: t,
            }),
            Some(v) => Err(self.wrong(
                name,
                v,
                "a table",
                &format!("write its keys under a [{name}] header"),
            )),
        }
    }

    fn string(&self, key: &str, v: &'a Value) -> Res<&'a str> {
        match v {
            Value::String(s) => Ok(s),
            _ => Err(self.wrong(key, v, "a string", "put the value in double quotes")),
        }
    }

    fn boolean(&self, key: &str, default: bool) -> Res<bool> {
        match self.get(key) {
            None => Ok(default),
            Some(Value::Boolean(b)) => Ok(*b),
            Some(v) => Err(self.wrong(key, v, "a boolean", "use true or false")),
        }
    }

    fn choice(&self, key: &str, default: &str, allowed: &[&str], what: &str) -> Res<String> {
        let Some(v) = self.get(key) else {
            return Ok(default.to_string());
        };
        let s = self.string(key, v)?;
        check_choice(s, allowed, what)
            .map_err(|tail| ConfigError::new(format!("{} = {} {tail}", self.path(key), show(v))))?;
        Ok(s.to_string())
    }

    /// An integer in `min..=max`, 0 when missing (callers give their own default).
    fn int(&self, key: &str, min: u64, max: u64, fix: &str) -> Res<u64> {
        match self.get(key) {
            None => Ok(0),
            Some(v @ Value::Integer(i)) => match u64::try_from(*i) {
                Ok(n) if (min..=max).contains(&n) => Ok(n),
                _ => Err(self.wrong(key, v, "in range", fix)),
            },
            Some(v) => Err(self.wrong(key, v, "an integer", fix)),
        }
    }

    fn int_or<T>(&self, key: &str, default: T, min: u64, max: u64) -> Res<T>
    where
        T: TryFrom<u64> + Copy,
    {
        if self.get(key).is_none() {
            return Ok(default);
        }
        let fix = if max == u64::MAX {
            format!("use an integer of at least {min}")
        } else {
            format!("use an integer from {min} to {max}")
        };
        let n = self.int(key, min, max, &fix)?;
        // The ranges given fit T; fall back to the default rather than panic.
        Ok(T::try_from(n).unwrap_or(default))
    }

    fn duration(&self, key: &str, default: Duration) -> Res<Duration> {
        let (d, v) = self.any_duration(key, default)?;
        match v {
            Some(v) if d.is_zero() => Err(self.wrong(key, v, "more than zero", DURATION_FIX)),
            _ => Ok(d),
        }
    }

    /// A duration where zero means "off".
    fn duration_or_zero(&self, key: &str, default: Duration) -> Res<Duration> {
        Ok(self.any_duration(key, default)?.0)
    }

    /// The duration under `key` (or `default`) and the value it came from.
    fn any_duration(&self, key: &str, default: Duration) -> Res<(Duration, Option<&Value>)> {
        match self.get(key) {
            None => Ok((default, None)),
            Some(v @ Value::Integer(i)) => {
                let secs =
                    u64::try_from(*i).map_err(|_| self.wrong(key, v, "positive", DURATION_FIX))?;
                Ok((Duration::from_secs(secs), Some(v)))
            }
            Some(v @ Value::String(s)) => match parse_duration(s) {
                Some(d) => Ok((d, Some(v))),
                None => Err(self.wrong(key, v, "a duration", DURATION_FIX)),
            },
            Some(v) => Err(self.wrong(key, v, "a duration", DURATION_FIX)),
        }
    }

    /// Bytes per second: an integer, or a size such as "64KiB" (per second).
    fn rate(&self, key: &str, default: u64) -> Res<u64> {
        let fix = "write bytes per second as an integer like 500, or a size like \"64KiB\"; \
                   0 means no minimum rate";
        let n = match self.get(key) {
            None => return Ok(default),
            Some(v @ Value::Integer(i)) => {
                u64::try_from(*i).map_err(|_| self.wrong(key, v, "a rate", fix))?
            }
            Some(v @ Value::String(s)) => {
                parse_size(s).ok_or_else(|| self.wrong(key, v, "a rate", fix))?
            }
            Some(v) => return Err(self.wrong(key, v, "a rate", fix)),
        };
        Ok(n)
    }

    fn size(&self, key: &str, default: u64) -> Res<u64> {
        let fix = "write bytes as an integer or like \"512B\", \"64KiB\", \"4GiB\" or \"1MB\"";
        match self.get(key) {
            None => Ok(default),
            Some(v @ Value::Integer(i)) => {
                u64::try_from(*i).map_err(|_| self.wrong(key, v, "a size", fix))
            }
            Some(v @ Value::String(s)) => {
                parse_size(s).ok_or_else(|| self.wrong(key, v, "a size", fix))
            }
            Some(v) => Err(self.wrong(key, v, "a size", fix)),
        }
    }
}

const DURATION_FIX: &str = "write it like \"10s\", \"500ms\" or \"2m\"";

/// Shows a value as it was written, for error messages.
fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Integer(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Boolean(b) => b.to_string(),
        Value::Datetime(d) => d.to_string(),
        Value::Array(_) => "[...]".to_string(),
        Value::Table(_) => "{...}".to_string(),
    }
}

/// Splits "64KiB" / "10 s" into (64, "KiB").
fn split_number(s: &str) -> Option<(u64, &str)> {
    let s = s.trim();
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let n = s[..end].parse().ok()?;
    Some((n, s[end..].trim()))
}

/// "10s", "250ms", "2m", "1h"; a bare number is seconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let (n, unit) = split_number(s)?;
    let ms: u64 = match unit {
        "ms" => 1,
        "" | "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return None,
    };
    Some(Duration::from_millis(n.checked_mul(ms)?))
}

/// "512B", "64KiB", "1MB"; KiB/MiB/GiB are 1024-based, KB/MB/GB 1000-based,
/// units case-insensitive; a bare number is bytes.
pub fn parse_size(s: &str) -> Option<u64> {
    let (n, unit) = split_number(s)?;
    let mult = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" => KIB,
        "mib" => MIB,
        "gib" => GIB,
        "tib" => 1024 * GIB,
        "kb" => 1000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// Levenshtein distance, for did-you-mean on short key names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        match Config::from_toml_str(text) {
            Ok(c) => panic!("expected an error for {text:?}, got {c:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn shipped_file_is_the_defaults() {
        let c = Config::from_toml_str(include_str!("../config/conveyor.toml")).unwrap();
        assert_eq!(c, Config::default());
    }

    #[test]
    fn body_timeout_defaults_and_off_switch() {
        let d = Config::default().timeouts;
        assert_eq!(d.body_read, Duration::from_secs(10));
        assert_eq!(d.body_min_rate, 500);
        let c = Config::from_toml_str("[timeouts]\nbody_min_rate = 0").unwrap();
        assert_eq!(c.timeouts.body_min_rate, 0);
    }

    #[test]
    fn empty_file_is_the_defaults() {
        assert_eq!(Config::from_toml_str("").unwrap(), Config::default());
        assert!(Config::default().workers >= 1);
    }

    #[test]
    fn reads_every_kind_of_value() {
        let c = Config::from_toml_str(
            r#"
            listen = "[::1]:9000"
            root = "/srv"
            workers = 3
            [stages]
            acceptor = "spin"
            dispatcher = "pool"
            pool_size = 4
            [queue]
            overload = "reject"
            capacity = 7
            [limits]
            max_echo_body = "1MB"
            max_requests_per_connection = 5
            [timeouts]
            header_read = "250ms"
            body_read = "3s"
            body_min_rate = "1KiB"
            keepalive_idle = 3
            write = "2m"
            shutdown_grace = "1h"
            [static]
            cache_max_bytes = "2MiB"
            sendfile_min_size = 0
            show_dotfiles = true
            [log]
            access_log = true
            access_log_path = "/tmp/a.log"
            [runtime]
            poll_mode = "oneshot"
            backlog = 16
            tcp_notsent_lowat = "4KiB"
            tcp_defer_accept = 0
            "#,
        )
        .unwrap();
        assert_eq!(c.listen, "[::1]:9000".parse().unwrap());
        assert_eq!(c.root, PathBuf::from("/srv"));
        assert_eq!(c.workers, 3);
        assert_eq!(c.stages.acceptor, "spin");
        assert_eq!(c.stages.dispatcher, "pool");
        assert_eq!(c.stages.pool_size, 4);
        assert_eq!(c.queue.overload, Overload::Reject);
        assert_eq!(c.queue.capacity, 7);
        assert_eq!(c.limits.max_echo_body, 1_000_000);
        assert_eq!(c.limits.max_requests_per_connection, 5);
        assert_eq!(c.timeouts.header_read, Duration::from_millis(250));
        assert_eq!(c.timeouts.body_read, Duration::from_secs(3));
        assert_eq!(c.timeouts.body_min_rate, 1024);
        assert_eq!(c.timeouts.keepalive_idle, Duration::from_secs(3));
        assert_eq!(c.timeouts.write, Duration::from_secs(120));
        assert_eq!(c.timeouts.shutdown_grace, Duration::from_secs(3600));
        assert_eq!(c.static_files.cache_max_bytes, 2 * MIB);
        assert_eq!(c.static_files.sendfile_min_size, 0);
        assert!(c.static_files.show_dotfiles);
        assert!(c.log.access_log);
        assert_eq!(c.log.access_log_path, "/tmp/a.log");
        assert_eq!(c.runtime.poll_mode, PollModeName::Oneshot);
        assert_eq!(c.runtime.backlog, 16);
        assert_eq!(c.runtime.tcp_notsent_lowat, 4 * KIB);
        assert_eq!(c.runtime.tcp_defer_accept, Duration::ZERO);
    }

    #[test]
    fn errors_name_key_and_fix() {
        assert_eq!(
            err("[stages]\nacceptor = \"fast\""),
            "stages.acceptor = \"fast\" is not a known acceptor; \
             use one of \"readiness\", \"reuseport\", \"spin\""
        );
        assert_eq!(
            err("[timeouts]\nheader_read = \"10 parsecs\""),
            "timeouts.header_read = \"10 parsecs\" is not a duration; \
             write it like \"10s\", \"500ms\" or \"2m\""
        );
        assert_eq!(
            err("[limits]\nmax_header = 3"),
            "unknown key limits.max_header (did you mean limits.max_headers?)"
        );
        assert!(err("[stagse]\n").contains("unknown table stagse (did you mean stages?)"));
        assert!(err("bogus_thing = 1").contains("known keys here are listen"));
        assert!(err("workers = 2000").starts_with("workers = 2000 is not in range"));
        assert!(err("workers = \"4\"").contains("is not an integer"));
        assert!(err("listen = \"localhost\"").contains("127.0.0.1:8080"));
        assert!(err("stages = 3").contains("under a [stages] header"));
        assert!(err("[queue]\ncapacity = 0").contains("queue.capacity"));
        assert!(err("[queue]\noverload = \"drop\"").contains("\"wait\", \"reject\""));
        assert!(err("[stages]\npool_size = 0").contains("stages.pool_size"));
        assert!(err("[limits]\nmax_request_line = 10").contains("from 64"));
        assert!(err("[limits]\nmax_echo_body = -1").contains("limits.max_echo_body"));
        assert!(err("[static]\ncache_max_bytes = \"64k\"").contains("\"64KiB\""));
        assert!(err("[static]\nindex = \"a/b\"").contains("static.index"));
        assert!(err("[static]\nshow_dotfiles = 1").contains("use true or false"));
        assert!(err("[timeouts]\nwrite = 0").contains("more than zero"));
        assert_eq!(
            err("[timeouts]\nbody_read = 0"),
            "timeouts.body_read = 0 is not more than zero; write it like \"10s\", \"500ms\" or \"2m\""
        );
        assert_eq!(
            err("[timeouts]\nbody_min_rate = -1"),
            "timeouts.body_min_rate = -1 is not a rate; write bytes per second as an integer \
             like 500, or a size like \"64KiB\"; 0 means no minimum rate"
        );
        assert!(err("[timeouts]\nbody_min_rate = \"fast\"").contains("timeouts.body_min_rate"));
        assert!(err("[timeouts]\nbody_min_rate = 1.5").contains("is not a rate"));
        assert!(
            err("[timeouts]\nbody_minrate = 1").contains("did you mean timeouts.body_min_rate?")
        );
        assert!(err("[runtime]\ntcp_defer_accept = \"soon\"").contains("runtime.tcp_defer_accept"));
        assert!(err("[timeouts]\nwrite = \"0ms\"").contains("more than zero"));
        assert!(err("[runtime]\npoll_mode = \"level\"").contains("runtime.poll_mode"));
        assert!(err("[runtime]\nbacklog = 0").contains("runtime.backlog"));
        assert!(err("[runtime]\ntcp_notsent_lowat = \"16k\"").contains("runtime.tcp_notsent_lowat"));
        assert!(err("[log]\naccess_log_path = \"\"").contains("log.access_log_path"));
        assert!(err("listen = ").starts_with("invalid TOML"));
    }

    #[test]
    fn load_names_the_file() {
        let dir = std::env::temp_dir().join(format!("conveyor-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(&file, "[stages]\nacceptor = \"fast\"\n").unwrap();
        let e = Config::load(&file).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{}: stages.acceptor", file.display())),
            "{e}"
        );
        let missing = dir.join("missing.toml");
        let e = Config::load(&missing).unwrap_err().to_string();
        assert!(e.starts_with("cannot read config file"), "{e}");
        assert!(e.ends_with("pass --config FILE or create it"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn check_root_explains() {
        let mut c = Config {
            root: std::env::temp_dir(),
            ..Config::default()
        };
        c.check_root().unwrap();
        c.root = PathBuf::from("/definitely/not/here");
        let e = c.check_root().unwrap_err().to_string();
        assert!(e.contains("root") && e.contains("pass ROOT"), "{e}");
        c.root = PathBuf::from("/etc/hostname");
        if c.root.is_file() {
            assert!(c
                .check_root()
                .unwrap_err()
                .to_string()
                .contains("not a directory"));
        }
    }

    #[test]
    fn units() {
        assert_eq!(parse_size("512B"), Some(512));
        assert_eq!(parse_size("64KiB"), Some(65_536));
        assert_eq!(parse_size("4GiB"), Some(4 * GIB));
        assert_eq!(parse_size("1mb"), Some(1_000_000));
        assert_eq!(parse_size("99999999999TiB"), None);
        assert_eq!(parse_size("KiB"), None);
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_duration("1.5s"), None);
        assert_eq!(parse_duration("-1s"), None);
        assert_eq!(edit_distance("max_header", "max_headers"), 1);
    }
}
