//! Reading a file against the key table: tables and keys it does not know
//! (with a "did you mean"), then each known key through its parser.

use std::path::Path;

use toml::{Table, Value};

use super::keys::{Key, KEYS};
use super::value::show;
use super::{Config, ConfigError, Res};

/// Reads `text`; a relative `root` it sets is taken beneath `dir` (the
/// file's directory), so the file means the same from any working directory.
pub(crate) fn from_toml_str(text: &str, dir: Option<&Path>) -> Res<Config> {
    let file = text
        .parse::<Table>()
        .map_err(|e| ConfigError::new(format!("invalid TOML: {}", e.to_string().trim_end())))?;
    check_known(&file)?;
    let mut config = Config::default();
    for key in KEYS {
        if let Some(v) = value_at(&file, key) {
            (key.set)(&mut config, v).map_err(|reason| {
                ConfigError::new(format!("{} = {} {reason}", key.name, show(v)))
            })?;
        }
    }
    if let Some(dir) = dir {
        if file.contains_key("root") && config.root.is_relative() {
            config.root = dir.join(&config.root);
        }
        let acme = file.get("acme").and_then(toml::Value::as_table);
        if acme.is_some_and(|t| t.contains_key("state_dir")) && config.acme.state_dir.is_relative()
        {
            config.acme.state_dir = dir.join(&config.acme.state_dir);
        }
        let ca_file = &config.acme.ca_file;
        if acme.is_some_and(|t| t.contains_key("ca_file"))
            && ca_file.is_relative()
            && !ca_file.as_os_str().is_empty()
        {
            config.acme.ca_file = dir.join(ca_file);
        }
        for rule in &mut config.auth {
            if rule.htpasswd.is_relative() {
                rule.htpasswd = dir.join(&rule.htpasswd);
            }
        }
        for site in &mut config.sites {
            site.beneath(dir);
        }
    }
    if let Some(clash) = config.endpoint_clash().or_else(|| config.proxy_clash()) {
        return Err(ConfigError::new(clash));
    }
    let refused =
        (config.static_files.cors.refusal()).or_else(|| config.limits.per_client.refusal());
    if let Some(refused) = refused {
        return Err(ConfigError::new(refused));
    }
    Ok(config)
}

/// The value the file gives `key`, if any; `check_known` has made sure that
/// each section present is a table.
pub(crate) fn value_at<'a>(file: &'a Table, key: &Key) -> Option<&'a Value> {
    let mut table = file;
    if !key.section().is_empty() {
        for name in key.section().split('.') {
            table = table.get(name)?.as_table()?;
        }
    }
    table.get(key.leaf())
}

/// The names allowed directly in `section` ("" for the top level): its
/// keys and the tables nested in it, in table order.
fn known_in(section: &str) -> Vec<&'static str> {
    let mut known: Vec<&'static str> = Vec::new();
    for key in KEYS {
        let below = match section {
            "" => Some(key.name),
            s => key
                .name
                .strip_prefix(s)
                .and_then(|rest| rest.strip_prefix('.')),
        };
        // The next name down: a key's leaf, or a nested table's name.
        let Some(name) = below.and_then(|rest| rest.split('.').next()) else {
            continue;
        };
        if !known.contains(&name) {
            known.push(name);
        }
    }
    known
}

fn check_known(file: &Table) -> Res<()> {
    check_table("", file)
}

/// Checks the names in `table` (at dotted `section`), then the tables
/// nested in it.
fn check_table(section: &str, table: &Table) -> Res<()> {
    check_unknown(section, table, &known_in(section))?;
    for (name, v) in table {
        let name = &match section {
            "" => name.clone(),
            s => format!("{s}.{name}"),
        };
        let inner = known_in(name);
        // Top-level keys are in `top` too, but have no keys of their own.
        if inner.is_empty() {
            continue;
        }
        match v {
            Value::Table(t) => check_table(name, t)?,
            _ => {
                return Err(ConfigError::new(format!(
                    "{name} = {} is not a table; write its keys under a [{name}] header",
                    show(v)
                )))
            }
        }
    }
    Ok(())
}

fn check_unknown(section: &str, table: &Table, known: &[&str]) -> Res<()> {
    let path = |key: &str| match section {
        "" => key.to_string(),
        s => format!("{s}.{key}"),
    };
    let Some((key, v)) = table.iter().find(|(k, _)| !known.contains(&k.as_str())) else {
        return Ok(());
    };
    let what = if section.is_empty() && v.is_table() {
        "table"
    } else {
        "key"
    };
    let near = known
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min();
    // A known key in the wrong table (`access_log` at the top level) is
    // pointed to where it belongs.
    let elsewhere = KEYS
        .iter()
        .find(|k| k.leaf() == key && k.section() != section);
    let hint = match (elsewhere, near) {
        (Some(k), _) if k.section().is_empty() => format!(
            " (did you mean {}? it belongs at the top of the file, before any [table])",
            k.name
        ),
        (Some(k), _) => format!(
            " (did you mean {}? write it under a [{}] header)",
            k.name,
            k.section()
        ),
        (None, Some((_, k))) => format!(" (did you mean {}?)", path(k)),
        (None, None) => format!("; known keys here are {}", known.join(", ")),
    };
    Err(ConfigError::new(format!(
        "unknown {what} {}{hint}",
        path(key)
    )))
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
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;
    use crate::config::units::{KIB, MIB};
    use crate::config::{AcceptorKind, DispatcherKind, Overload};
    use crate::runtime::PollMode;

    fn err(text: &str) -> String {
        match Config::from_toml_str(text) {
            Ok(c) => panic!("expected an error for {text:?}, got {c:?}"),
            Err(e) => e.to_string(),
        }
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
    fn endpoints_move_turn_off_and_refuse_bad_paths() {
        let c = Config::from_toml_str(
            "[status]\npath = \"/_conveyor/status\"\n[echo]\nenabled = false\n[log]\nlevel = \"debug\"",
        )
        .unwrap();
        assert_eq!(c.status.path, "/_conveyor/status");
        assert!(c.status.enabled && !c.echo.enabled);
        assert_eq!(c.log.level, crate::config::LogLevel::Debug);
        for (path, says) in [
            ("status", "does not start with \"/\""),
            ("/", "home page"),
            ("/s/*", "'*'"),
            ("/s?x", "'?'"),
            ("/my%20s", "'%'"),
            ("/a b", "' '"),
            ("/a/../b", "\"..\""),
        ] {
            let e = err(&format!("[status]\npath = {path:?}"));
            assert!(e.starts_with(&format!("status.path = {path:?}")), "{e}");
            assert!(e.contains(says) && e.contains("/_conveyor/status"), "{e}");
        }
        let e = err("[echo]\npath = \"/status\"");
        assert!(
            e.contains("status.path and echo.path are both \"/status\""),
            "{e}"
        );
        // One of them off: no clash.
        Config::from_toml_str("[echo]\npath = \"/status\"\nenabled = false").unwrap();
        assert!(err("[log]\nlevel = \"trace\"").contains("\"info\", \"debug\""));
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
        assert_eq!(c.stages.acceptor, AcceptorKind::Spin);
        assert_eq!(c.stages.dispatcher, DispatcherKind::Pool);
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
        assert_eq!(c.runtime.poll_mode, PollMode::Oneshot);
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
        // A nested table: its keys are checked, its burst against its rate.
        assert_eq!(
            err("[limits.per_client]\nrat = 3"),
            "unknown key limits.per_client.rat (did you mean limits.per_client.rate?)"
        );
        assert!(err("[limits]\nper_client = 3").contains("under a [limits.per_client] header"));
        let zero = err("[limits.per_client]\nrate = 10\nburst = 0");
        assert!(
            zero.starts_with("limits.per_client.burst = 0 with"),
            "{zero}"
        );
        assert!(zero.contains("set burst to at least 1"), "{zero}");
        let c = Config::from_toml_str("[limits.per_client]\nrate = 5\nconnections = 2").unwrap();
        assert_eq!(
            (
                c.limits.per_client.rate,
                c.limits.per_client.burst,
                c.limits.per_client.connections
            ),
            (5, 20, 2)
        );
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
    fn a_key_in_the_wrong_table_is_pointed_to_its_own() {
        assert_eq!(
            err("access_log = true"),
            "unknown key access_log (did you mean log.access_log? write it under a [log] header)"
        );
        assert!(
            err("[log]\nlisten = \"127.0.0.1:80\"")
                .contains("did you mean listen? it belongs at the top"),
            "{}",
            err("[log]\nlisten = \"127.0.0.1:80\"")
        );
    }

    #[test]
    fn tcp_defer_accept_takes_whole_seconds_only() {
        assert_eq!(
            err("[runtime]\ntcp_defer_accept = \"1500ms\""),
            "runtime.tcp_defer_accept = \"1500ms\" is not whole seconds; the kernel counts \
             this in seconds: write \"1s\" or \"2s\", or 0 for off"
        );
        let c = Config::from_toml_str("[runtime]\ntcp_defer_accept = \"2000ms\"").unwrap();
        assert_eq!(c.runtime.tcp_defer_accept, Duration::from_secs(2));
    }

    #[test]
    fn listen_takes_a_host_name() {
        use crate::config::{ListenAddress, TcpAddress};
        let c = Config::from_toml_str("listen = \"localhost:8080\"").unwrap();
        let name = TcpAddress::Name {
            host: "localhost".into(),
            port: 8080,
        };
        assert_eq!(c.listen, name.clone().into());
        let ListenAddress::Tcp(listen) = &c.listen.specs()[0] else {
            panic!("{:?}", c.listen)
        };
        assert!(listen
            .resolve()
            .unwrap()
            .iter()
            .all(|a| a.ip().is_loopback() && a.port() == 8080));
        assert!(err("listen = \"localhost\"").contains("localhost:8080"));
        assert!(err("listen = \"-bad:80\"").starts_with("listen = \"-bad:80\" is invalid"));
        assert!(err("listen = \"::1:80\"").contains("[::1]:8080"));
    }

    #[test]
    fn a_bare_number_above_an_hour_is_refused_with_a_unit_to_write() {
        assert_eq!(
            err("[timeouts]\nkeepalive_idle = 75000"),
            "timeouts.keepalive_idle = 75000 is read as 75000 seconds (20.8 hours): a bare \
             number above an hour is refused; write it with a unit, like \"75s\" (for 75000 \
             milliseconds) or \"21h\""
        );
        assert!(err("[cors]\nmax_age = 86400")
            .contains("\"86400ms\" (for 86400 milliseconds) or \"24h\""));
        assert!(err("[timeouts]\nwrite = 3601").contains("\"3601ms\""));
        let c = Config::from_toml_str("[timeouts]\nkeepalive_idle = 3600").unwrap();
        assert_eq!(c.timeouts.keepalive_idle, Duration::from_secs(3600));
        let c = Config::from_toml_str("[timeouts]\nkeepalive_idle = \"75000s\"").unwrap();
        assert_eq!(c.timeouts.keepalive_idle, Duration::from_secs(75_000));
    }

    #[test]
    fn did_you_mean_is_near() {
        assert_eq!(edit_distance("max_header", "max_headers"), 1);
        assert!(err("[runtime]\npoll = 1").contains("known keys here are poll_mode, backlog"));
    }
}
