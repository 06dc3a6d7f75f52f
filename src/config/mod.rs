//! Server configuration: the types, and loading them from TOML.
//!
//! Every key is described once, in the table of `keys.rs`: its default,
//! its parser and its doc. The TOML is walked by hand (no serde derive) to
//! keep the dependency tree small and to give every error the dotted key
//! and a fix.
//!
//! - `keys.rs`: the table, the defaults it feeds, the reference.
//! - `read.rs`: a file against the table; unknown keys, "did you mean".
//! - `value.rs`: one parser per kind of value; `units.rs`: durations, sizes.
//! - `names.rs`: the closed sets of names (stages, modes, policies).
//! - `validate.rs`: checks that need the machine, made at start-up.

mod keys;
mod names;
mod read;
mod units;
mod validate;
mod value;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use keys::{reference, Key, Literal, KEYS};
pub use names::{AcceptorKind, DispatcherKind, Overload, Revalidate, UnknownName};
pub use units::{parse_duration, parse_size};
pub use value::{parse_listen, LISTEN_FIX, WORKERS_FIX};

use crate::runtime::PollMode;

/// The file read when no `--config` is given, relative to the working directory.
pub const DEFAULT_CONFIG_PATH: &str = "config/conveyor.toml";

pub const MAX_WORKERS: usize = 1024;

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
    pub acceptor: AcceptorKind,
    pub dispatcher: DispatcherKind,
    /// Handler green threads per worker for the "pool" dispatcher.
    pub pool_size: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct QueueConfig {
    pub capacity: usize,
    pub overload: Overload,
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
    pub poll_mode: PollMode,
    pub backlog: u32,
    pub tcp_keepalive_idle: Duration,
    pub tcp_keepalive_interval: Duration,
    /// TCP_NOTSENT_LOWAT in bytes; 0 leaves the kernel default.
    pub tcp_notsent_lowat: u64,
    /// TCP_DEFER_ACCEPT: accept a connection once it has sent bytes, or
    /// after this long; zero turns it off.
    pub tcp_defer_accept: Duration,
}

impl Config {
    /// A placeholder for every field, each overwritten by its key's default
    /// (`Config::default()` in `keys.rs`); these values are never used.
    fn blank() -> Config {
        Config {
            listen: SocketAddr::from(([0, 0, 0, 0], 0)),
            root: PathBuf::new(),
            workers: 1,
            stages: Stages {
                acceptor: AcceptorKind::ALL[0],
                dispatcher: DispatcherKind::ALL[0],
                pool_size: 0,
            },
            queue: QueueConfig {
                capacity: 0,
                overload: Overload::ALL[0],
            },
            limits: LimitsConfig {
                max_request_line: 0,
                max_header_bytes: 0,
                max_headers: 0,
                max_echo_body: 0,
                max_connections: 0,
                max_requests_per_connection: 0,
            },
            timeouts: Timeouts {
                header_read: Duration::ZERO,
                body_read: Duration::ZERO,
                body_min_rate: 0,
                keepalive_idle: Duration::ZERO,
                write: Duration::ZERO,
                shutdown_grace: Duration::ZERO,
            },
            static_files: StaticConfig {
                index: String::new(),
                follow_symlinks_outside_root: false,
                show_dotfiles: false,
                cache_max_file_size: 0,
                cache_max_bytes: 0,
                sendfile_min_size: 0,
                revalidate: Revalidate::ALL[0],
            },
            log: LogConfig {
                access_log: false,
                access_log_path: String::new(),
            },
            runtime: RuntimeConfig {
                poll_mode: PollMode::ALL[0],
                backlog: 0,
                tcp_keepalive_idle: Duration::ZERO,
                tcp_keepalive_interval: Duration::ZERO,
                tcp_notsent_lowat: 0,
                tcp_defer_accept: Duration::ZERO,
            },
        }
    }

    pub fn load(path: &Path) -> Res<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new(format!(
                "cannot read config file {}: {e}; pass --config FILE or create it",
                path.display()
            ))
        })?;
        Self::from_toml_str(&text).map_err(|e| e.in_file(path))
    }

    /// The defaults, with what `text` sets; every error names the key and the fix.
    pub fn from_toml_str(text: &str) -> Res<Config> {
        read::from_toml_str(text)
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
