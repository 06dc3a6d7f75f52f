//! Every config key, described once: its dotted name, its default, how its
//! value is read and a one-line doc. The table feeds `Config::default()`,
//! the unknown-key check and its "did you mean", [`reference()`] and
//! `docs/configuration.md` (`page.rs`); tests hold `config/conveyor.toml`
//! and that page to it. Adding a key: a field in `mod.rs`,
//! a row here, its line in the shipped file.

use std::fmt;

use toml::Value;

use super::names::{
    AcceptorKind, AcmeChallenge, DispatcherKind, Http2Engine, LogLevel, Overload, Revalidate,
    UnknownHost,
};
use super::value::{self, Parsed};
use super::{Blank, Config};
use crate::runtime::PollMode;

/// One row of the table (nginx's `ngx_command_t`, with the default in it).
pub struct Key {
    /// Dotted, as messages write it: `"timeouts.header_read"`.
    pub name: &'static str,
    /// As the shipped file writes it.
    pub default: Literal,
    /// The names the value may take, for keys that are a choice; else empty.
    pub choices: &'static [&'static str],
    /// One line on what the key controls; the comment above it in [`reference()`].
    pub doc: &'static str,
    /// The parser that reads the value, as the row names it (`duration`,
    /// `int(1, 65_536)`): the type column of `docs/configuration.md`.
    pub(crate) parser: &'static str,
    /// Reads a value into its field, or says why it is refused.
    pub(crate) set: fn(&mut Config, &Value) -> Parsed<()>,
}

/// A default as written in TOML; read with the key's own parser, so a
/// default can never mean something a file could not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Literal {
    /// A TOML string: durations, sizes, names, paths.
    Str(&'static str),
    /// A TOML integer.
    Int(i64),
    /// A TOML boolean.
    Bool(bool),
    /// Any other TOML value, as written: lists, tables, arrays of tables.
    Raw(&'static str),
}

use Literal::{Bool, Int, Raw, Str};

impl Literal {
    /// The TOML value it writes, as a file would give it to the key's parser.
    pub fn to_value(self) -> Value {
        match self {
            Str(s) => Value::String(s.to_string()),
            Int(i) => Value::Integer(i),
            Bool(b) => Value::Boolean(b),
            // A bug in the table if it does not parse: `every_default_parses`.
            Raw(text) => format!("v = {text}")
                .parse::<toml::Table>()
                .ok()
                .and_then(|mut t| t.remove("v"))
                .unwrap_or(Value::Boolean(false)),
        }
    }
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Debug quoting is TOML's for the plain strings defaults are.
            Str(s) => write!(f, "{s:?}"),
            Int(i) => write!(f, "{i}"),
            Bool(b) => write!(f, "{b}"),
            Raw(text) => f.write_str(text),
        }
    }
}

impl Key {
    /// The table it sits in, dotted when nested (`limits.per_client`); ""
    /// for the top level.
    pub fn section(&self) -> &'static str {
        self.name.rsplit_once('.').map_or("", |(s, _)| s)
    }

    /// The name inside its table.
    pub fn leaf(&self) -> &'static str {
        self.name.rsplit_once('.').map_or(self.name, |(_, k)| k)
    }
}

/// A row: `key!(name, field.path = parser, default, doc)`, or for a choice
/// `key!(name, field.path: Enum = Variant, doc)`.
macro_rules! key {
    ($name:literal, $($field:ident).+ = $parse:expr, $default:expr, $doc:literal) => {
        Key {
            name: $name,
            default: $default,
            choices: &[],
            doc: $doc,
            parser: stringify!($parse),
            set: |config, value| {
                config.$($field).+ = ($parse)(value)?;
                Ok(())
            },
        }
    };
    ($name:literal, $($field:ident).+ : $ty:ident = $default:ident, $doc:literal) => {
        Key {
            name: $name,
            default: Str($ty::$default.name()),
            choices: &$ty::NAMES,
            doc: $doc,
            parser: "choice",
            set: |config, value| {
                config.$($field).+ = value::choice::<$ty>(value)?;
                Ok(())
            },
        }
    };
}

use super::access::addr_ranges;
use super::acme;
use super::auth::auth_rules;
use super::listen::{account, listeners, socket_mode};
use super::redirects::{redirect_rules, rewrite_rules};
use super::site::{error_pages, fallback, header_rules, origins, tokens};
use super::sites::sites;
use super::tls;
use value::{
    boolean, duration, duration_or_zero, file_name, int, log_path, media_type, rate, root,
    route_path, size, whole_seconds_or_zero, workers,
};

/// Every key, in the order of `config/conveyor.toml`.
#[rustfmt::skip] // two lines a row keep it readable as a table
pub static KEYS: &[Key] = &[
    key!("listen", listen = listeners, Str("127.0.0.1:8080"),
        "Where to listen: IP:PORT, HOST:PORT or unix:PATH, or a list of them; SIGHUP rebinds."),
    key!("unix_socket_mode", unix_socket_mode = socket_mode, Str("0660"),
        "Permission bits (octal) of the unix: sockets created; \"0666\" lets everyone connect."),
    key!("root", root = root, Str("www"),
        "Directory to serve, relative to this file's directory; the ROOT argument overrides it."),
    key!("workers", workers = workers, Int(0),
        "Worker threads, one scheduler each; 0 = one per core, at most 1024."),
    key!("user", user = account, Str(""),
        "Started as root: the user to run as once listeners are bound; \"\" = keep root."),
    key!("group", group = account, Str(""),
        "The group to run as with user; \"\" = the user's primary group."),
    key!("headers", static_files.headers = header_rules, Raw("[]"),
        "Rules [[headers]]: path glob -> header fields to set, add or remove."),
    key!("redirects", static_files.redirects = redirect_rules, Raw("[]"),
        "Rules [[redirects]]: from (a path pattern, :name, *) -> to, status (308), query; first match wins."),
    key!("rewrites", static_files.rewrites = rewrite_rules, Raw("[]"),
        "Rules [[rewrites]]: from -> to, a path served in place of the request's, with no round trip."),
    key!("auth", auth = auth_rules, Raw("[]"),
        "Basic auth [[auth]]: path prefix, htpasswd file (bcrypt only) and realm."),
    key!("sites", sites = sites, Raw("[]"),
        "Virtual hosts [[sites]]: names (exact or *.example.com), root, and per-site settings; see docs/sites.md."),
    key!("unknown_host", unknown_host: UnknownHost = TopLevel,
        "With [[sites]]: what a request for a host no site names gets; \"default\" = the top-level site."),
    key!("stages.acceptor", stages.acceptor: AcceptorKind = Readiness,
        "How connections are accepted."),
    key!("stages.dispatcher", stages.dispatcher: DispatcherKind = Spawn,
        "How requests get a handler."),
    key!("stages.pool_size", stages.pool_size = int(1, 65_536), Int(32),
        "Handler green threads per worker for the pool dispatcher."),
    key!("queue.capacity", queue.capacity = int(1, 1 << 24), Int(1024),
        "Pending-connection queue length per worker."),
    key!("queue.overload", queue.overload: Overload = Wait,
        "Overload policy: wait when the queue is full, answer 503 then, or codel (shed on queue wait)."),
    key!("queue.codel_target", queue.codel_target = duration, Str("5ms"),
        "With overload = \"codel\": the queue wait above which new connections are shed."),
    key!("queue.codel_interval", queue.codel_interval = duration, Str("100ms"),
        "With overload = \"codel\": how long the wait must stay above the target before shedding."),
    key!("limits.max_request_line", limits.max_request_line = int(64, 1 << 20), Int(8192),
        "Longest request line in bytes (longer gets 414)."),
    key!("limits.max_header_bytes", limits.max_header_bytes = int(64, 1 << 24), Int(8192),
        "Largest header section in bytes: every byte after the request line, the blank line ending it included (more gets 431)."),
    key!("limits.max_headers", limits.max_headers = int(1, 10_000), Int(100),
        "Header fields per request (more gets 431)."),
    key!("limits.max_echo_body", limits.max_echo_body = size, Str("4GiB"),
        "Largest body /echo accepts (more gets 413)."),
    key!("limits.max_connections", limits.max_connections = int(0, 10_000_000), Int(0),
        "Open connections at once, across all workers; 0 = from the open-file limit (raised to its hard limit)."),
    key!("limits.max_requests_per_connection",
        limits.max_requests_per_connection = int(1, u64::MAX), Int(1000),
        "Requests served on one keep-alive connection before it is closed."),
    key!("limits.auth_failures_per_minute",
        limits.auth_failures_per_minute = int(1, 1_000_000), Int(10),
        "Failed [[auth]] logins one client address may make in a minute; then 429 with Retry-After."),
    key!("limits.per_client.rate", limits.per_client.rate = int(0, 1_000_000), Int(0),
        "Requests per second one client address may make (a token bucket; IPv6 by /64); more gets 429 with Retry-After; 0 = no limit."),
    key!("limits.per_client.burst", limits.per_client.burst = int(0, 1_000_000), Int(20),
        "With rate: requests a client may make at once before the rate applies (the bucket's size); at least 1."),
    key!("limits.per_client.connections", limits.per_client.connections = int(0, 1_000_000), Int(0),
        "Open connections one client address (the peer, or the client a trusted PROXY header names; IPv6 by /64) may hold; more are answered 503 and closed; 0 = no limit."),
    key!("limits.per_client.table_size", limits.per_client.table_size = int(8, 1 << 24), Int(16_384),
        "Clients the per-client table remembers at once (32 bytes each, allocated when a limit is first on; a change needs a restart)."),
    key!("timeouts.header_read", timeouts.header_read = duration, Str("10s"),
        "Time allowed to receive a request's line and headers."),
    key!("timeouts.body_read", timeouts.body_read = duration, Str("10s"),
        "Time allowed for a request body to start, and for any one wait for its bytes."),
    key!("timeouts.body_min_rate", timeouts.body_min_rate = rate, Int(500),
        "Bytes per second a body must keep up (each extends the deadline); 0 = none."),
    key!("timeouts.keepalive_idle", timeouts.keepalive_idle = duration, Str("75s"),
        "How long an idle keep-alive connection is kept open."),
    key!("timeouts.write", timeouts.write = duration, Str("30s"),
        "Time allowed for a write to make progress before the connection is dropped."),
    key!("timeouts.shutdown_grace", timeouts.shutdown_grace = duration, Str("5s"),
        "On shutdown, how long in-flight requests may finish."),
    key!("timeouts.lingering", timeouts.lingering = duration_or_zero, Str("5s"),
        "After an error, or a close with the client still sending: how long to read and drop what it sends (nginx's lingering_timeout), so the answer is not reset away; 0 = close at once."),
    key!("static.index", static_files.index = file_name, Str("index.html"),
        "File served for a directory request; a plain file name."),
    key!("static.follow_symlinks_outside_root",
        static_files.follow_symlinks_outside_root = boolean, Bool(false),
        "Serve symlinks whose target lies outside root (gives up openat2 confinement)."),
    key!("static.show_dotfiles", static_files.show_dotfiles = boolean, Bool(false),
        "Serve files and directories whose name starts with \".\"."),
    key!("static.cache_max_file_size", static_files.cache_max_file_size = size, Str("64KiB"),
        "Files up to this size are kept in the in-memory cache; 0 = no caching."),
    key!("static.cache_max_bytes", static_files.cache_max_bytes = size, Str("64MiB"),
        "Total size of the in-memory file cache, all workers together: compressed files, and small files (at most half)."),
    key!("static.sendfile_min_size", static_files.sendfile_min_size = size, Str("64KiB"),
        "Files at least this big are sent with sendfile(2); 0 = always."),
    key!("static.revalidate", static_files.revalidate: Revalidate = Inotify,
        "How a cached file is checked against the disk before it is served."),
    key!("static.error_pages", static_files.error_pages = error_pages, Raw("{}"),
        "Pages served for errors, by status (403, 404, 5xx): { 404 = \"404.html\" }."),
    key!("static.fallback", static_files.fallback = fallback, Str(""),
        "File answering GET and HEAD with 200 for paths with no file (SPA); \"\" = none."),
    key!("static.fallback_only_without_extension",
        static_files.fallback_only_without_extension = boolean, Bool(false),
        "The fallback answers only paths whose last segment has no \".\"."),
    key!("static.default_type", static_files.default_type = media_type,
        Str("application/octet-stream"),
        "Content-Type of files whose name has no extension (like README); unknown extensions stay application/octet-stream."),
    key!("static.netlify_files", static_files.netlify_files = boolean, Bool(false),
        "Read _redirects and _headers (Netlify, Cloudflare Pages) from the root; never served, re-read on change."),
    key!("static.listing", static_files.listing = boolean, Bool(false),
        "List directories without an index file (HTML, or JSON on request)."),
    key!("cors.origins", static_files.cors.origins = origins, Raw("[]"),
        "Origins allowed to read responses: [\"*\"] or a list; [] = CORS off."),
    key!("cors.methods", static_files.cors.methods = tokens, Raw("[\"GET\", \"HEAD\"]"),
        "Methods a preflight allows."),
    key!("cors.headers", static_files.cors.headers = tokens, Raw("[]"),
        "Request header fields a preflight allows."),
    key!("cors.max_age", static_files.cors.max_age = duration_or_zero, Str("10m"),
        "How long a browser may cache a preflight answer."),
    key!("cors.credentials", static_files.cors.credentials = boolean, Bool(false),
        "Allow credentials (cookies); needs origins listed: with \"*\" start-up refuses."),
    key!("compress.enabled", static_files.compress.enabled = boolean, Bool(true),
        "Compress text files without a .br/.gz sidecar once per version (brotli, gzip)."),
    key!("compress.min_size", static_files.compress.min_size = size, Str("256B"),
        "Files smaller than this are not compressed."),
    key!("compress.max_size", static_files.compress.max_size = size, Str("1MiB"),
        "Files bigger than this are not compressed (sidecars are served at any size)."),
    key!("status.enabled", status.enabled = boolean, Bool(true),
        "Answer the server's counters (JSON, or ?format=prometheus) at status.path."),
    key!("status.path", status.path = route_path, Str("/status"),
        "The path /status answers at, like \"/_conveyor/status\"; a file there is not served."),
    key!("status.allow", status_access.allow = addr_ranges, Raw("[\"127.0.0.0/8\", \"::1\"]"),
        "Clients (addresses, CIDR ranges, \"unix\") answered by /status, its stream and dashboard; others get 403."),
    key!("status.dashboard", status_access.dashboard = boolean, Bool(true),
        "Serve the live dashboard at status.path + \"/dashboard\"."),
    key!("status.max_subscribers", status_access.max_subscribers = int(1, 1024), Int(16),
        "Live streams (?stream=1, one per open dashboard) at once; more get 503."),
    key!("proxy.trusted", proxy.trusted = addr_ranges, Raw("[]"),
        "Peers (addresses, CIDR ranges, \"unix\") whose word on the client's address is believed."),
    key!("proxy.protocol", proxy.protocol = boolean, Bool(false),
        "Connections start with a PROXY protocol header (v1, v2) from proxy.trusted; others are closed."),
    key!("echo.enabled", echo.enabled = boolean, Bool(true),
        "Answer the echo endpoint at echo.path; off for `conveyor DIR` with no config file."),
    key!("echo.path", echo.path = route_path, Str("/echo"),
        "The path /echo answers at, like \"/_conveyor/echo\"; a file there is not served."),
    key!("live.enabled", live.enabled = boolean, Bool(true),
        "Answer the liveness probe at live.path: 200 while the process runs."),
    key!("live.path", live.path = route_path, Str("/livez"),
        "The path the liveness probe answers at; a file there is not served."),
    key!("ready.enabled", ready.enabled = boolean, Bool(true),
        "Answer the readiness probe at ready.path: 200 while accepting, 503 once draining."),
    key!("ready.path", ready.path = route_path, Str("/readyz"),
        "The path the readiness probe answers at; a file there is not served."),
    key!("shutdown.drain_delay", shutdown.drain_delay = duration_or_zero, Str("0s"),
        "After SIGTERM, serve on this long with the readiness probe at 503; 0 = stop at once."),
    key!("log.level", log.level: LogLevel = Info,
        "What goes to stderr; \"debug\" adds why each refused request was refused."),
    key!("log.access_log", log.access_log = boolean, Bool(false),
        "Log one line per request, in the combined log format."),
    key!("log.access_log_path", log.access_log_path = log_path, Str("-"),
        "Where the access log goes: a file path, or \"-\" for stdout."),
    key!("runtime.poll_mode", runtime.poll_mode: PollMode = Edge,
        "How sockets are registered with epoll."),
    key!("runtime.backlog", runtime.backlog = int(1, 65_535), Int(1024),
        "Listen backlog handed to listen(2)."),
    key!("runtime.tcp_keepalive_idle", runtime.tcp_keepalive_idle = duration, Str("60s"),
        "Idle time before TCP keepalive probes start."),
    key!("runtime.tcp_keepalive_interval", runtime.tcp_keepalive_interval = duration,
        Str("10s"), "Interval between TCP keepalive probes."),
    key!("runtime.tcp_notsent_lowat", runtime.tcp_notsent_lowat = size, Str("16KiB"),
        "Most unsent bytes a connection keeps queued in the kernel; 0 = kernel default."),
    key!("runtime.tcp_defer_accept",
        runtime.tcp_defer_accept = whole_seconds_or_zero, Str("1s"),
        "Hand a connection over once its request bytes arrive, or after this many whole seconds; 0 = off."),
    key!("tls.listen", tls.listen = tls::tcp_address_list, Raw("[]"),
        "Addresses served over HTTPS, like [\"0.0.0.0:443\"]; [] = no HTTPS."),
    key!("tls.redirect_http", tls.redirect_http = boolean, Bool(false),
        "Plain-HTTP listeners answer 308 to the same URL over HTTPS (names with a certificate only)."),
    key!("tls.redirect_host", tls.redirect_host = tls::redirect_host, Str(""),
        "With redirect_http: the host a request for a name without a certificate is sent to; \"\" = 421."),
    key!("tls.certificates", tls.certificates = tls::certificates, Raw("[]"),
        "Certificates [[tls.certificates]]: cert and key PEM files, optional SNI names."),
    key!("tls.self_signed", tls.self_signed = boolean, Bool(false),
        "With no certificate: serve a self-signed one for localhost, made at start and kept in memory (local tries only)."),
    key!("http2.tls", http2.tls = boolean, Bool(true),
        "TLS listeners offer h2 by ALPN, preferred to http/1.1; false: HTTP/1.1 only over TLS."),
    key!("http2.cleartext", http2.cleartext = boolean, Bool(true),
        "Plain listeners answer a connection that opens with the HTTP/2 preface (h2c, prior knowledge)."),
    key!("http2.disabled_on", http2.disabled_on = tls::tcp_address_list, Raw("[]"),
        "Listeners (as written in listen or tls.listen) that speak HTTP/1.1 only: no h2 by ALPN, no h2c."),
    key!("http2.max_concurrent_streams", http2.max_concurrent_streams = int(1, 65_535), Int(128),
        "Streams one HTTP/2 client may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS)."),
    key!("http2.engine", http2.engine: Http2Engine = Native,
        "What speaks HTTP/2: native (the server's own framing and HPACK) or h2 (the h2 crate)."),
    key!("acme.domains", acme.domains = acme::domains, Raw("[]"),
        "Names to get one certificate for from the ACME CA, like [\"example.com\"]; [] = ACME off. No wildcards (they need dns-01)."),
    key!("acme.email", acme.email = acme::email, Str(""),
        "The ACME account's contact address (expiry notices); \"\" = none."),
    key!("acme.directory", acme.directory = acme::directory, Str("https://acme-v02.api.letsencrypt.org/directory"),
        "The CA's RFC 8555 directory URL; Let's Encrypt staging: https://acme-staging-v02.api.letsencrypt.org/directory."),
    key!("acme.state_dir", acme.state_dir = acme::state_dir, Str("acme"),
        "Where the account key and certificates are kept (created mode 0700); replicas may share it."),
    key!("acme.challenge", acme.challenge: AcmeChallenge = TlsAlpn01,
        "How the CA checks the names: tls-alpn-01 on a TLS listener (port 443), http-01 on a plain one (port 80)."),
    key!("acme.ca_file", acme.ca_file = acme::ca_file, Str(""),
        "PEM roots trusted for the directory's own HTTPS besides the system's (a private or test CA); \"\" = none."),
    key!("acme.retry_base", acme.retry_base = duration, Str("1m"),
        "First wait after a failed order, doubled per failure (with jitter) up to 1 h; also how often a replica without the lock looks for a new certificate. At least 100ms."),
];

/// Keys the shipped file sets to an example rather than to the default:
/// `[[headers]]` carries a sensible rule set there, none without a file;
/// `root` is `"../www"`, the default `www` seen from `config/`.
#[cfg(test)]
pub(crate) const SHIPPED_EXAMPLES: &[&str] = &["headers", "root"];

impl Default for Config {
    /// The table's defaults, each read by its key's own parser.
    fn default() -> Config {
        let mut config = Config::blank();
        for key in KEYS {
            // A default that does not parse is a bug in the table above;
            // `every_default_parses` catches it before it ships.
            if let Err(reason) = (key.set)(&mut config, &key.default.to_value()) {
                panic!("default of {} = {} {reason}", key.name, key.default);
            }
        }
        config
    }
}

/// The documented key list, as a config file with every default.
pub fn reference() -> String {
    let mut out = String::new();
    let mut section = "";
    for key in KEYS {
        if key.section() != section {
            section = key.section();
            out += &format!("\n[{section}]\n");
        }
        out += &format!("# {}", key.doc);
        if !key.choices.is_empty() {
            let names: Vec<String> = key.choices.iter().map(|n| format!("\"{n}\"")).collect();
            out += &format!(" One of {}.", names.join(", "));
        }
        out += &format!("\n{} = {}\n", key.leaf(), key.default);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::path::Path;

    use toml::Table;

    use super::*;
    use crate::config::read::value_at;
    use crate::config::value::show;

    #[test]
    fn every_default_parses() {
        for key in KEYS {
            let mut config = Config::blank();
            let parsed = (key.set)(&mut config, &key.default.to_value());
            assert_eq!(parsed, Ok(()), "{}", key.name);
        }
    }

    #[test]
    fn names_are_unique_and_one_level_deep() {
        let mut seen = HashSet::new();
        for key in KEYS {
            assert!(seen.insert(key.name), "{} twice", key.name);
            assert!(!key.leaf().contains('.'), "{}", key.name);
        }
    }

    /// Every field of `Config` has a row: a field without one would keep
    /// its `blank` value. Counts the leaves of the pretty `Debug` output.
    #[test]
    fn every_field_has_a_row() {
        let debug = format!("{:#?}", Config::default());
        let leaves = debug
            .lines()
            .filter(|l| l.contains(": ") && !l.ends_with('{'))
            .count();
        assert_eq!(leaves, KEYS.len(), "{debug}");
    }

    #[test]
    fn reference_reads_back_as_the_defaults() {
        let text = reference();
        assert_eq!(
            Config::from_toml_str(&text),
            Ok(Config::default()),
            "{text}"
        );
        assert!(text.contains("# How connections are accepted. One of \"readiness\""));
    }

    /// The shipped file lists every key with its real default, so it cannot
    /// drift from the table.
    #[test]
    fn shipped_file_lists_every_key_with_its_default() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/conveyor.toml");
        let text = std::fs::read_to_string(&path).expect("read config/conveyor.toml");
        let file: Table = text.parse().expect("config/conveyor.toml is TOML");
        let defaults = Config::default();
        let mut drift = Vec::new();
        for key in KEYS {
            let Some(v) = value_at(&file, key) else {
                drift.push(format!(
                    "{} is missing; add `{} = {}`",
                    key.name,
                    key.leaf(),
                    key.default
                ));
                continue;
            };
            let mut config = Config::default();
            match (key.set)(&mut config, v) {
                Err(reason) => drift.push(format!("{} = {} {reason}", key.name, show(v))),
                Ok(()) if SHIPPED_EXAMPLES.contains(&key.name) => {}
                Ok(()) if config != defaults => drift.push(format!(
                    "{} = {} in the file, but its default is {}",
                    key.name,
                    show(v),
                    key.default
                )),
                Ok(()) => {}
            }
        }
        assert!(
            drift.is_empty(),
            "{} differs from the key table (src/config/keys.rs):\n{}",
            path.display(),
            drift.join("\n")
        );
        // And nothing in it that the table does not know.
        let mut shipped = Config::from_toml_str(&text).expect("the shipped file reads");
        assert!(!shipped.static_files.headers.is_empty());
        shipped.static_files.headers.clear();
        shipped.root.clone_from(&defaults.root);
        assert_eq!(shipped, defaults);
    }
}
