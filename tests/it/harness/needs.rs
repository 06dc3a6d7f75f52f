//! What some tests need that a machine may lack: a tool they drive for
//! real (a browser, HAProxy, systemd's helpers) or a privilege (root, a
//! namespace). On a developer's machine such a test skips, printing why;
//! under CI (`CI=true`), where `.ci/run` installs every tool and runs as
//! root, a missing need fails the test, so a green run means it ran.

use std::path::PathBuf;

/// A program a test runs, and the Debian package `.ci/run` installs it from.
pub(crate) struct Tool {
    pub(crate) name: &'static str,
    pub(crate) package: &'static str,
}

pub(crate) const CHROMIUM: Tool = Tool {
    name: "chromium",
    package: "chromium",
};
pub(crate) const HAPROXY: Tool = Tool {
    name: "haproxy",
    package: "haproxy",
};
pub(crate) const WRK: Tool = Tool {
    name: "wrk",
    package: "wrk",
};
pub(crate) const CURL: Tool = Tool {
    name: "curl",
    package: "curl",
};
pub(crate) const HTPASSWD: Tool = Tool {
    name: "htpasswd",
    package: "apache2-utils",
};
pub(crate) const SOCKET_ACTIVATE: Tool = Tool {
    name: "systemd-socket-activate",
    package: "systemd",
};
pub(crate) const SYSTEMD_ANALYZE: Tool = Tool {
    name: "systemd-analyze",
    package: "systemd",
};
pub(crate) const PROMTOOL: Tool = Tool {
    name: "promtool",
    package: "prometheus",
};
pub(crate) const UNSHARE: Tool = Tool {
    name: "unshare",
    package: "util-linux",
};

/// Whether the tests run under CI, which sets `CI=true`.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true")
}

/// Reports a need this machine lacks: under CI a panic naming it and how
/// CI provides it; elsewhere a "skipped" line, after which the test returns.
pub(crate) fn missing(what: &str, how_ci_has_it: &str) {
    assert!(
        !in_ci(),
        "{what} is missing, and under CI=true a test may not skip: {how_ci_has_it}"
    );
    println!("skipped: {what} is missing ({how_ci_has_it})");
}

impl Tool {
    /// The tool's path, found on `PATH` (and in the sbin directories a
    /// non-root `PATH` may leave out); `None` after `missing` if absent.
    pub(crate) fn find(&self) -> Option<PathBuf> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let found = std::env::split_paths(&path)
            .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
            .map(|dir| dir.join(self.name))
            .find(|candidate| candidate.is_file());
        if found.is_none() {
            missing(
                self.name,
                &format!(".ci/run installs it with apt-get install {}", self.package),
            );
        }
        found
    }
}

/// Every tool in `tools` found, in order; `None` after `missing` for the
/// first one absent.
pub(crate) fn find_all<const N: usize>(tools: [&Tool; N]) -> Option<[PathBuf; N]> {
    let mut found = Vec::with_capacity(N);
    for tool in tools {
        found.push(tool.find()?);
    }
    found.try_into().ok()
}

/// Whether the tests run as root; `missing` if not.
pub(crate) fn root() -> bool {
    let is_root = super::process::is_root();
    if !is_root {
        missing("root", "CI runs the tests as root");
    }
    is_root
}
