//! Server configuration: the types, and loading them from TOML.
//!
//! Every key is described once, in the table of `keys.rs`: its default,
//! its parser and its doc. The TOML is walked by hand (no serde derive) to
//! keep the dependency tree small and to give every error the dotted key
//! and a fix.
//!
//! - `keys.rs`: the table, the defaults it feeds, the reference.
//! - `page.rs`: `docs/configuration.md`, written from the table.
//! - `read.rs`: a file against the table; unknown keys, "did you mean".
//! - `value.rs`: one parser per kind of value; `units.rs`: durations, sizes.
//! - `names.rs`: the closed sets of names (stages, modes, policies).
//! - `validate.rs`: checks that need the machine, and checks across keys,
//!   made at start-up once the flags are applied.

/// A config field's placeholder until the key table fills it in
/// (`Config::default()` in `keys.rs`); never seen outside this module.
trait Blank {
    fn blank() -> Self;
}

/// Field types whose `Default` serves as the placeholder. (Not every
/// `Default`: `Config`'s is the key table's, which starts from a blank.)
macro_rules! blank_is_default {
    ($($ty:ty),+) => {
        $(impl Blank for $ty {
            fn blank() -> $ty {
                <$ty>::default()
            }
        })+
    };
}

blank_is_default!(u32, u64, usize, bool, String, PathBuf, Duration, PollMode, TlsConfig);

impl<T> Blank for Vec<T> {
    fn blank() -> Vec<T> {
        Vec::new()
    }
}

impl<K, V> Blank for BTreeMap<K, V> {
    fn blank() -> BTreeMap<K, V> {
        BTreeMap::new()
    }
}

/// Declares a config struct and its `Blank`: every field blank. So a new
/// key needs its field and its row in `keys.rs`, nothing else.
macro_rules! blank_struct {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $($(#[$field_meta:meta])* pub $field:ident: $ty:ty,)+
        }
    ) => {
        $(#[$meta])*
        pub struct $name {
            $($(#[$field_meta])* pub $field: $ty,)+
        }

        impl $crate::config::Blank for $name {
            fn blank() -> $name {
                $name {
                    $($field: $crate::config::Blank::blank(),)+
                }
            }
        }
    };
}

mod access;
mod acme;
mod auth;
mod glob;
mod http2;
mod keys;
mod listen;
mod names;
mod netlify;
mod page;
mod pattern;
mod per_client;
mod read;
mod redirects;
mod shared;
mod site;
mod sites;
mod tls;
mod units;
mod validate;
mod value;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use access::{allowed, AddrRange, Client, ProxyConfig, StatusAccess};
pub use acme::{domain as acme_domain, AcmeConfig};
pub use auth::AuthRule;
pub use glob::Glob;
pub use http2::Http2Config;
pub use keys::{reference, Key, Literal, KEYS};
pub use listen::{
    parse_listen_address, ListenAddress, ListenAddresses, LISTEN_ADDRESS_FIX, UNIX_PREFIX,
};
pub use names::{
    AcceptorKind, AcmeChallenge, DispatcherKind, Http2Engine, LogLevel, Overload, Revalidate,
    UnknownHost, UnknownName,
};
pub use netlify::{headers_file, redirects_file, HEADERS_FILE, REDIRECTS_FILE};
pub use page::{configuration_page, CONFIGURATION_PAGE};
pub use pattern::{Captures, PathPattern};
pub use per_client::PerClientConfig;
pub(crate) use redirects::visible_loop;
pub use redirects::{Action, PathRule, Template, MAX_REWRITES};
pub use shared::SharedConfig;
pub use site::{parse_fallback, HeaderRule};
pub use sites::SiteConfig;
pub use tls::TlsConfig;
pub use units::{parse_duration, parse_size};
pub use value::{parse_tcp_address, TcpAddress, TCP_ADDRESS_FIX, WORKERS_FIX};

use crate::runtime::PollMode;

/// The file read when no `--config` is given, relative to the working directory.
pub const DEFAULT_CONFIG_PATH: &str = "config/conveyor.toml";

/// The most worker threads `workers` (or `--workers`) may ask for.
pub const MAX_WORKERS: usize = 1024;

blank_struct! {
    /// The whole server configuration; `Config::default()` holds every key's default.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Config {
        /// `listen`: every listener: TCP addresses (a host name listens on
        /// every address it has), Unix sockets (`unix:/path`), or the sockets
        /// systemd passed (default 127.0.0.1:8080).
        pub listen: ListenAddresses,
        /// `unix_socket_mode`: permission bits of the Unix sockets the server
        /// creates (default 0o660: owner and group may connect).
        pub unix_socket_mode: u32,
        /// `root`: the directory served (default `www`).
        pub root: PathBuf,
        /// `workers`: worker threads, one scheduler each (default 0, one per core).
        ///
        /// Always >= 1: a 0 in the file is resolved to the number of cores.
        pub workers: usize,
        /// `user`: the account to run as once the listeners are bound and the
        /// log opened, when started as root; "" keeps the starting one (default).
        pub user: String,
        /// `group`: the group to run as with `user`; "" means the user's own
        /// primary group (default).
        pub group: String,
        /// `[stages]`: which acceptor and dispatcher make up the line.
        pub stages: Stages,
        /// `[queue]`: the pending-connection queue between acceptor and dispatcher.
        pub queue: QueueConfig,
        /// `[limits]`: request sizes and connection counts.
        pub limits: LimitsConfig,
        /// `[timeouts]`: how long reads, writes, idle connections and shutdown may take.
        pub timeouts: Timeouts,
        /// `[static]`: how static files are served and cached.
        pub static_files: StaticConfig,
        /// `[status]`: the status endpoint (default on, at `/status`).
        pub status: Endpoint,
        /// `[status]` `allow`, `dashboard`, `max_subscribers`: who may see it,
        /// the live dashboard, and the cap on live streams.
        pub status_access: StatusAccess,
        /// `[proxy]`: a proxy in front whose word on the client's address is
        /// believed (PROXY protocol or `X-Forwarded-For`).
        pub proxy: ProxyConfig,
        /// `[echo]`: the echo endpoint (default on, at `/echo`; `conveyor DIR`
        /// with no config file turns it off).
        pub echo: Endpoint,
        /// `[live]`: the liveness probe (default on, at `/livez`): 200 while
        /// the process runs.
        pub live: Endpoint,
        /// `[ready]`: the readiness probe (default on, at `/readyz`): 200 while
        /// the server accepts, 503 once it drains.
        pub ready: Endpoint,
        /// `[shutdown]`: how a stop is drained.
        pub shutdown: ShutdownConfig,
        /// `[log]`: the access log and how much goes to stderr.
        pub log: LogConfig,
        /// `[runtime]`: polling and socket options.
        pub runtime: RuntimeConfig,
        /// `[tls]`: HTTPS listeners and certificates (default none).
        pub tls: TlsConfig,
        /// `[http2]`: where HTTP/2 is spoken, and its limits.
        pub http2: Http2Config,
        /// `[acme]`: certificates from an ACME CA (default off).
        pub acme: AcmeConfig,
        /// `[[auth]]`: Basic authentication rules, a path prefix and an
        /// htpasswd file each (default none).
        pub auth: Vec<AuthRule>,
        /// `[[sites]]`: virtual hosts, each with its names, root and
        /// settings (default none: one site, the top level).
        pub sites: Vec<SiteConfig>,
        /// `unknown_host`: what a request for a host no site names gets
        /// when `[[sites]]` are set (default `default`: the top-level site).
        pub unknown_host: UnknownHost,
    }
}

blank_struct! {
    /// The `[stages]` table: which built-in stages the line is assembled from.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Stages {
        /// `stages.acceptor`: how connections are accepted (default `readiness`).
        pub acceptor: AcceptorKind,
        /// `stages.dispatcher`: how requests get a handler (default `spawn`).
        pub dispatcher: DispatcherKind,
        /// `stages.pool_size`: handler green threads per worker for the "pool"
        /// dispatcher (default 32).
        pub pool_size: usize,
    }
}

blank_struct! {
    /// The `[queue]` table: the pending-connection queue of each worker.
    #[derive(Debug, Clone, PartialEq)]
    pub struct QueueConfig {
        /// `queue.capacity`: pending connections each worker's queue holds (default 1024).
        pub capacity: usize,
        /// `queue.overload`: what the acceptor does when the queue is full (default `wait`).
        pub overload: Overload,
        /// `queue.codel_target`: the queue wait `codel` holds new work to (default 5ms).
        pub codel_target: Duration,
        /// `queue.codel_interval`: how long the wait must stay above the target before `codel` sheds (default 100ms).
        pub codel_interval: Duration,
    }
}

blank_struct! {
    /// The `[limits]` table: request sizes and connection counts.
    #[derive(Debug, Clone, PartialEq)]
    pub struct LimitsConfig {
        /// `limits.max_request_line`: longest request line in bytes; longer gets 414 (default 8192).
        pub max_request_line: usize,
        /// `limits.max_header_bytes`: largest header section (every byte after the request line); more gets 431 (default 8192).
        pub max_header_bytes: usize,
        /// `limits.max_headers`: header fields per request; more gets 431 (default 100).
        pub max_headers: usize,
        /// `limits.max_echo_body`: largest body `/echo` accepts, in bytes; more gets 413
        /// (default 4 GiB).
        pub max_echo_body: u64,
        /// `limits.max_connections`: open connections at once, across all workers;
        /// 0 (the default) = from the open-file limit (`stages::pressure`).
        pub max_connections: usize,
        /// `limits.max_requests_per_connection`: requests served on one keep-alive
        /// connection before it is closed (default 1000).
        pub max_requests_per_connection: u64,
        /// `limits.auth_failures_per_minute`: failed Basic-auth attempts one
        /// client address may make in a minute before it is answered 429
        /// (default 10).
        pub auth_failures_per_minute: u32,
        /// `[limits.per_client]`: a request rate and connections per client.
        pub per_client: PerClientConfig,
    }
}

impl LimitsConfig {
    /// The request preamble's limits, as the parse takes them.
    pub fn preamble(&self) -> crate::http::Limits {
        crate::http::Limits {
            max_request_line: self.max_request_line,
            max_header_bytes: self.max_header_bytes,
            max_headers: self.max_headers,
        }
    }
}

blank_struct! {
    /// The `[timeouts]` table.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Timeouts {
        /// `timeouts.header_read`: time allowed to receive a request's line and
        /// headers (default 10 s).
        pub header_read: Duration,
        /// `timeouts.body_read`: time allowed for a request body to start
        /// arriving, extended as it arrives by `body_min_rate`; also the longest
        /// wait for any one read of a body (default 10 s).
        pub body_read: Duration,
        /// `timeouts.body_min_rate`: bytes per second a body must keep up: each
        /// byte received adds 1/rate s to the body deadline (mod_reqtimeout's
        /// MinRate). 0: no extension, the whole body must arrive within
        /// `body_read` (default 500).
        pub body_min_rate: u64,
        /// `timeouts.keepalive_idle`: how long an idle keep-alive connection is kept
        /// open (default 15 s).
        pub keepalive_idle: Duration,
        /// `timeouts.write`: time allowed for a write to make progress before the
        /// connection is dropped (default 30 s).
        pub write: Duration,
        /// `timeouts.shutdown_grace`: on shutdown, how long in-flight requests may
        /// finish (default 5 s).
        pub shutdown_grace: Duration,
        /// `timeouts.lingering`: how long a lingering close reads and drops
        /// what the client still sends (default 5 s).
        pub lingering: Duration,
    }
}

blank_struct! {
    /// The `[static]` table: serving and caching static files.
    #[derive(Debug, Clone, PartialEq)]
    pub struct StaticConfig {
        /// `static.index`: file served for a directory request, a plain file name
        /// (default `index.html`).
        pub index: String,
        /// `static.follow_symlinks_outside_root`: serve symlinks whose target lies
        /// outside root, giving up openat2 confinement (default false).
        pub follow_symlinks_outside_root: bool,
        /// `static.show_dotfiles`: serve files and directories whose name starts
        /// with "." (default false).
        pub show_dotfiles: bool,
        /// `static.cache_max_file_size`: files up to this many bytes are kept in the
        /// in-memory cache; 0 = no caching (default 64 KiB).
        pub cache_max_file_size: u64,
        /// `static.cache_max_bytes`: total bytes of the in-memory file cache,
        /// all workers together (default 64 MiB).
        pub cache_max_bytes: u64,
        /// `static.sendfile_min_size`: files at least this many bytes go out with
        /// sendfile(2); 0 = always (default 64 KiB).
        pub sendfile_min_size: u64,
        /// `static.revalidate`: how a cached file is checked against the disk before
        /// it is served (default `inotify`).
        pub revalidate: Revalidate,
        /// `[compress]`: encoded variants of static files (read by the static
        /// files alone, so it travels with them).
        pub compress: CompressConfig,
        /// `[[headers]]`: rules adding, replacing or removing header fields of
        /// the files whose path matches (default none).
        pub headers: Vec<HeaderRule>,
        /// `[cors]`: cross-origin requests (default off).
        pub cors: CorsConfig,
        /// `static.error_pages`: status (403, 404, 5xx) → a file beneath the
        /// root, as a request path, served with that status (default none).
        pub error_pages: BTreeMap<u16, String>,
        /// `static.fallback`: a file beneath the root (as a request path) served
        /// with 200 to GET and HEAD for paths with no file; "" = none (default).
        pub fallback: String,
        /// `static.fallback_only_without_extension`: the fallback answers only
        /// paths whose last segment has no "." (default false).
        pub fallback_only_without_extension: bool,
        /// `static.listing`: list a directory without an index file (default false).
        pub listing: bool,
        /// `[[redirects]]`: request paths answered with a redirect, first
        /// match first (default none).
        pub redirects: Vec<PathRule>,
        /// `[[rewrites]]`: request paths served from another path, with no
        /// round trip (default none).
        pub rewrites: Vec<PathRule>,
        /// `static.netlify_files`: read `_redirects` and `_headers` from the
        /// root, as Netlify and Cloudflare Pages do (default false).
        pub netlify_files: bool,
        /// `static.default_type`: the `Content-Type` of files whose name has
        /// no extension (default `application/octet-stream`).
        pub default_type: String,
    }
}

blank_struct! {
    /// The `[cors]` table: which other origins may read responses.
    #[derive(Debug, Clone, PartialEq)]
    pub struct CorsConfig {
        /// `cors.origins`: `["*"]`, or the origins allowed; empty = CORS off (default).
        pub origins: Vec<String>,
        /// `cors.methods`: methods a preflight allows (default GET, HEAD).
        pub methods: Vec<String>,
        /// `cors.headers`: request fields a preflight allows (default none).
        pub headers: Vec<String>,
        /// `cors.max_age`: how long a browser may cache a preflight answer (default 10 min).
        pub max_age: Duration,
        /// `cors.credentials`: allow cookies and authorization (default false).
        pub credentials: bool,
    }
}

blank_struct! {
    /// The `[compress]` table: precompressed sidecars are always served; this
    /// governs compressing files once into the cache.
    #[derive(Debug, Clone, PartialEq)]
    pub struct CompressConfig {
        /// `compress.enabled`: compress text files without a sidecar once per
        /// version, with brotli and gzip (default true; `--no-compress` off).
        pub enabled: bool,
        /// `compress.min_size`: smaller files are sent as they are (default 256 B).
        pub min_size: u64,
        /// `compress.max_size`: bigger files are sent as they are (default 1 MiB).
        pub max_size: u64,
    }
}

blank_struct! {
    /// The `[status]` or `[echo]` table: whether a built-in endpoint answers,
    /// and at which path (the path is then no longer a static file).
    #[derive(Debug, Clone, PartialEq)]
    pub struct Endpoint {
        /// `status.enabled`, `echo.enabled`: answer at `path`; false leaves the
        /// path to the static files.
        pub enabled: bool,
        /// `status.path`, `echo.path`: the exact request path answered, starting
        /// with "/" (like "/_conveyor/status").
        pub path: String,
    }
}

impl Config {
    /// The built-in endpoints by table name, for the checks every endpoint
    /// shares.
    pub fn endpoints(&self) -> [(&'static str, &Endpoint); 4] {
        [
            ("status", &self.status),
            ("echo", &self.echo),
            ("live", &self.live),
            ("ready", &self.ready),
        ]
    }

    /// Two enabled endpoints on one path, named with the fix.
    pub fn endpoint_clash(&self) -> Option<String> {
        let on: Vec<_> = self
            .endpoints()
            .into_iter()
            .filter(|(_, e)| e.enabled)
            .collect();
        for (i, (a, first)) in on.iter().enumerate() {
            if let Some((b, _)) = on[i + 1..].iter().find(|(_, e)| e.path == first.path) {
                return Some(format!(
                    "{a}.path and {b}.path are both {:?}; give each endpoint its own path",
                    first.path
                ));
            }
        }
        None
    }

    /// Proxy settings that cannot work together, worded as the fix.
    pub fn proxy_clash(&self) -> Option<String> {
        if !self.proxy.protocol {
            return None;
        }
        if self.proxy.trusted.is_empty() {
            return Some(
                "proxy.protocol = true with proxy.trusted = [] would close every connection; \
                 list the proxy's addresses in proxy.trusted, like [\"10.0.0.5\"]"
                    .to_string(),
            );
        }
        if !self.tls.listen.is_empty() {
            return Some(
                "proxy.protocol = true does not cover tls.listen (the PROXY header would come \
                 before the TLS handshake); terminate TLS at the proxy, or drop tls.listen"
                    .to_string(),
            );
        }
        None
    }
}

blank_struct! {
    /// The `[shutdown]` table: what happens between a stop signal and the stop.
    #[derive(Debug, Clone, PartialEq)]
    pub struct ShutdownConfig {
        /// `shutdown.drain_delay`: after SIGTERM or SIGINT, how long the server
        /// keeps accepting and serving while the readiness probe answers 503, so
        /// a load balancer takes it out of rotation before it stops accepting;
        /// a second signal ends it early (default 0: stop at once).
        pub drain_delay: Duration,
    }
}

blank_struct! {
    /// The `[log]` table: the access log and how much goes to stderr.
    #[derive(Debug, Clone, PartialEq)]
    pub struct LogConfig {
        /// `log.level`: "debug" adds one stderr line per refused request, saying
        /// why; `--verbose` sets it (default `info`).
        pub level: LogLevel,
        /// `log.access_log`: log one line per request, in the combined log format
        /// (default false).
        pub access_log: bool,
        /// `log.access_log_path`: a file path, or "-" for stdout (default "-").
        pub access_log_path: String,
    }
}

blank_struct! {
    /// The `[runtime]` table: polling and socket options.
    #[derive(Debug, Clone, PartialEq)]
    pub struct RuntimeConfig {
        /// `runtime.poll_mode`: how sockets are registered with epoll (default `edge`).
        pub poll_mode: PollMode,
        /// `runtime.backlog`: the listen backlog handed to listen(2) (default 1024).
        pub backlog: u32,
        /// `runtime.tcp_keepalive_idle`: idle time before TCP keepalive probes start
        /// (default 60 s).
        pub tcp_keepalive_idle: Duration,
        /// `runtime.tcp_keepalive_interval`: interval between TCP keepalive probes
        /// (default 10 s).
        pub tcp_keepalive_interval: Duration,
        /// `runtime.tcp_notsent_lowat`: TCP_NOTSENT_LOWAT in bytes, the most unsent
        /// bytes queued in the kernel; 0 leaves the kernel default (default 16 KiB).
        pub tcp_notsent_lowat: u64,
        /// `runtime.tcp_defer_accept`, TCP_DEFER_ACCEPT: accept a connection once
        /// it has sent bytes, or after this long; zero turns it off (default 1 s).
        pub tcp_defer_accept: Duration,
    }
}

impl Config {
    /// Reads the TOML file at `path` over the defaults; errors name the file.
    /// A relative `root` in it is taken beneath the file's directory.
    pub fn load(path: &Path) -> Res<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new(format!(
                "cannot read config file {}: {e}; pass --config FILE or create it",
                path.display()
            ))
        })?;
        read::from_toml_str(&text, path.parent()).map_err(|e| e.in_file(path))
    }

    /// The defaults, with what `text` sets; every error names the key and the fix.
    /// A relative `root` stays relative to the working directory.
    pub fn from_toml_str(text: &str) -> Res<Config> {
        read::from_toml_str(text, None)
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
    /// An error with this message and no file name.
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
