//! Applying a new configuration to a running server (SIGHUP), and
//! reopening the access log (SIGUSR1).
//!
//! A reload is all or nothing: everything that can fail (opening the new
//! root, the new access log, binding added listeners) is done first; only
//! then is the new configuration made current, the handler's routes
//! swapped and removed listeners stopped. No connection is closed by it: a
//! request being answered finishes under the configuration it started
//! with, and a kept-alive connection takes the new one on its next request.

use std::fmt;
use std::io;

use crate::access_log::AccessLog;
use crate::config::{Config, ListenAddress};
use crate::server::{lock, ListenError, Server};

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    /// The generation now current.
    pub generation: u64,
    /// Keys that changed but take effect only on a restart; their running
    /// values were kept.
    pub need_restart: Vec<&'static str>,
    /// Keys that changed and apply only to listeners bound from now on.
    pub new_listeners_only: Vec<&'static str>,
    /// Listeners bound by this reload.
    pub added: Vec<String>,
    /// Listeners that stopped accepting (their connections finish).
    pub removed: Vec<String>,
}

impl fmt::Display for Reloaded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "configuration generation {} in use", self.generation)?;
        if !self.added.is_empty() {
            write!(f, "; now listening on {}", self.added.join(", "))?;
        }
        if !self.removed.is_empty() {
            write!(f, "; stopped accepting on {}", self.removed.join(", "))?;
        }
        if !self.need_restart.is_empty() {
            write!(
                f,
                "; {} changed but needs a restart (running values kept)",
                self.need_restart.join(", ")
            )?;
        }
        if !self.new_listeners_only.is_empty() {
            write!(
                f,
                "; {} changed: applies to listeners bound from now on",
                self.new_listeners_only.join(", ")
            )?;
        }
        Ok(())
    }
}

/// A key read once at start-up: a reload keeps the running value.
struct Fixed {
    key: &'static str,
    keep: fn(&mut Config, &Config) -> bool,
}

/// `fixed!(name, field.path)`: copies the running value back into the new
/// config; true if they differed.
macro_rules! fixed {
    ($name:literal, $($field:ident).+) => {
        Fixed {
            key: $name,
            keep: |new, old| {
                let changed = new.$($field).+ != old.$($field).+;
                new.$($field).+ = old.$($field).+.clone();
                changed
            },
        }
    };
}

/// The keys a reload cannot apply: the threads, the stages and the
/// structures sized at start-up, and the account (dropped for good).
const FIXED: &[Fixed] = &[
    fixed!("workers", workers),
    fixed!("stages.acceptor", stages.acceptor),
    fixed!("stages.dispatcher", stages.dispatcher),
    fixed!("stages.pool_size", stages.pool_size),
    fixed!("queue.capacity", queue.capacity),
    fixed!("limits.max_connections", limits.max_connections),
    // Read when the per-client table is allocated, once.
    fixed!("limits.per_client.table_size", limits.per_client.table_size),
    fixed!("timeouts.keepalive_idle", timeouts.keepalive_idle),
    fixed!("runtime.poll_mode", runtime.poll_mode),
    fixed!("user", user),
    fixed!("tls.listen", tls.listen),
    fixed!("tls.self_signed", tls.self_signed),
    fixed!("group", group),
    // The ACME manager reads its settings once; its certificate sits
    // apart from tls.certificates, so a reload keeps it.
    fixed!("acme.domains", acme.domains),
    fixed!("acme.email", acme.email),
    fixed!("acme.directory", acme.directory),
    fixed!("acme.state_dir", acme.state_dir),
    fixed!("acme.challenge", acme.challenge),
    fixed!("acme.ca_file", acme.ca_file),
    fixed!("acme.retry_base", acme.retry_base),
];

/// Whether two configs (new, old) disagree on a key.
type Differs = fn(&Config, &Config) -> bool;

/// `differs!(name, field.path)`: a key and whether two configs disagree on it.
macro_rules! differs {
    ($name:literal, $($field:ident).+) => {
        (
            $name,
            (|new, old| new.$($field).+ != old.$($field).+) as Differs,
        )
    };
}

/// Socket options set when a listener is bound or starts accepting.
const LISTENER_OPTIONS: &[(&str, Differs)] = &[
    differs!("runtime.backlog", runtime.backlog),
    differs!("runtime.tcp_keepalive_idle", runtime.tcp_keepalive_idle),
    differs!(
        "runtime.tcp_keepalive_interval",
        runtime.tcp_keepalive_interval
    ),
    differs!("runtime.tcp_notsent_lowat", runtime.tcp_notsent_lowat),
    differs!("runtime.tcp_defer_accept", runtime.tcp_defer_accept),
    differs!("unix_socket_mode", unix_socket_mode),
];

/// The listener options that differ between `new` and `old`.
fn listener_options_changed(new: &Config, old: &Config) -> Vec<&'static str> {
    LISTENER_OPTIONS
        .iter()
        .filter(|(_, differs)| differs(new, old))
        .map(|(key, _)| *key)
        .collect()
}

impl Server {
    /// Makes `config` the running configuration without closing a
    /// connection: limits, timeouts, root, static files, header rules,
    /// compression, listings, endpoints, logging and queue policy apply to
    /// each connection's next request; listeners added to `listen` are
    /// bound, removed ones stop accepting (their connections finish). Keys
    /// that need a restart keep their running values and are named in the
    /// result. On error (`listen` that cannot be bound, a root or log that
    /// cannot be opened) nothing changes and the message names the key.
    ///
    /// `config` should be checked as at start-up first (`Config::load`,
    /// `check_root`).
    pub fn reload(&self, mut config: Config) -> Result<Reloaded, String> {
        let line = self.line();
        let old = line.config.load();
        let need_restart: Vec<&'static str> = FIXED
            .iter()
            .filter_map(|f| (f.keep)(&mut config, &old).then_some(f.key))
            .collect();
        let new_listeners_only = listener_options_changed(&config, &old);

        // 1. The access log: the one in use if its settings are the same.
        let current_log = lock(&self.access_log).clone();
        let log = match (&current_log, config.log.access_log) {
            (_, false) => None,
            (Some(log), true) if log.path() == config.log.access_log_path => Some(log.clone()),
            (_, true) => Some(AccessLog::open(&config.log.access_log_path).map_err(|e| {
                format!(
                    "log.access_log_path: cannot open {:?} ({e}); fix the path or its \
                     directory's permissions",
                    config.log.access_log_path
                )
            })?),
        };
        // 2. The routes, static files and limits.
        let prepared = match &self.http {
            Some(http) => Some(http.prepare(&config, log.clone()).map_err(|e| {
                format!(
                    "root or [static]: {e}; fix the setting (root {:?})",
                    config.root.display().to_string()
                )
            })?),
            None => None,
        };
        // 3. The certificates, read again even when their paths are the
        // same (a renewal rewrites the files in place).
        let certificates =
            match self.tls() {
                Some(stage) => Some(stage.prepare(&config.tls.certificates).map_err(|e| {
                    format!("tls.certificates: {e}; the running certificates stay")
                })?),
                None => None,
            };
        // 4. Listeners added; those in both lists keep running untouched.
        let mut listening = lock(&self.listening);
        let running: Vec<ListenAddress> = listening.iter().map(|l| l.spec.clone()).collect();
        let added = crate::listening::open(
            self.acceptor.as_ref(),
            &self.runtime,
            line,
            &config,
            &running,
        )
        .map_err(
            |e| match e.get_ref().and_then(|i| i.downcast_ref::<ListenError>()) {
                Some(listen) => format!("listen: {}", listen.describe("`listen`")),
                None => format!("listen: {e}"),
            },
        )?;

        // Nothing can fail from here on.
        let generation = line.config.replace(config);
        if let (Some(http), Some(prepared)) = (&self.http, prepared) {
            http.commit(prepared);
        }
        if let (Some(stage), Some(certificates)) = (self.tls(), certificates) {
            stage.install(certificates);
        }
        if let Some(old_log) = std::mem::replace(&mut *lock(&self.access_log), log) {
            old_log.flush();
        }
        let wanted = line.config.load().listen.clone();
        let mut removed = Vec::new();
        listening.retain(|l| {
            let keep = wanted.specs().contains(&l.spec);
            if !keep {
                removed.push(l.shown.clone());
            }
            keep
        });
        let added_names = added.iter().map(|l| l.shown.clone()).collect();
        listening.extend(added);
        Ok(Reloaded {
            generation,
            need_restart,
            new_listeners_only,
            added: added_names,
            removed,
        })
    }

    /// Opens the access log file again at its path (after logrotate moved
    /// it), writing out what was buffered to the old one first.
    pub fn reopen_log(&self) -> io::Result<()> {
        match &*lock(&self.access_log) {
            Some(log) => log.reopen(),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listener_options_that_changed_are_named_in_table_order() {
        let old = Config::default();
        let mut new = old.clone();
        assert!(listener_options_changed(&new, &old).is_empty());
        new.unix_socket_mode = 0o600;
        new.runtime.backlog += 1;
        new.runtime.tcp_defer_accept += std::time::Duration::from_secs(1);
        assert_eq!(
            listener_options_changed(&new, &old),
            [
                "runtime.backlog",
                "runtime.tcp_defer_accept",
                "unix_socket_mode"
            ]
        );
    }
}
