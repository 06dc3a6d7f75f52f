//! `deploy/`: the files agree with each other and with the server (the
//! probe HAProxy checks is the one the replica config answers, the drain
//! outlasts HAProxy's detection, HAProxy sends the PROXY protocol the
//! replicas require), the tools accept them where installed, and
//! `deploy/try-cluster.sh` keeps `/status` from outsiders and restarts
//! three replicas behind HAProxy under load without a failed request.

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::harness::process::BIN;
use crate::harness::{needs, repo, temp_dir};
use conveyor::config::Config;

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The value of `name` in an HAProxy line like `... inter 500ms ...`.
fn haproxy_ms(line: &str, name: &str) -> u64 {
    let value = line
        .split_whitespace()
        .skip_while(|w| *w != name)
        .nth(1)
        .unwrap_or_else(|| panic!("no {name} in deploy/haproxy.cfg"));
    match value.strip_suffix("ms") {
        Some(ms) => ms.parse().expect("ms"),
        None => value.trim_end_matches('s').parse::<u64>().expect("s") * 1000,
    }
}

#[test]
fn haproxy_checks_the_probe_the_replicas_answer_and_the_drain_outlasts_it() {
    let config = Config::load(&repo("deploy/conveyor.toml")).expect("deploy/conveyor.toml");
    assert!(config.ready.enabled && config.live.enabled);
    assert!(!config.echo.enabled, "no test endpoint on a public replica");
    let cfg = read("deploy/haproxy.cfg");
    assert!(
        cfg.contains(&format!("uri {} ", config.ready.path)),
        "HAProxy must check {}",
        config.ready.path
    );
    assert!(cfg.contains("http-check expect status 200"));
    assert!(cfg.contains("option redispatch") && cfg.contains("retry-on"));
    // HAProxy takes a replica out after `fall` failed checks: the first
    // within `inter`, the next `fastinter` apart. The drain must be longer,
    // with room for a loaded machine.
    let checks = cfg
        .lines()
        .find(|l| l.trim_start().starts_with("default-server "))
        .expect("a default-server line");
    let fall: u64 = checks
        .split_whitespace()
        .skip_while(|w| *w != "fall")
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("fall N");
    let detect = haproxy_ms(checks, "inter") + (fall - 1) * haproxy_ms(checks, "fastinter");
    let drain = config.shutdown.drain_delay;
    assert!(
        drain >= Duration::from_millis(2 * detect),
        "shutdown.drain_delay {drain:?} is not twice HAProxy's {detect} ms to notice"
    );
    // Drain and grace fit in docker stop's 10 s and the unit's TimeoutStopSec.
    let stop = drain + config.timeouts.shutdown_grace;
    assert!(stop < Duration::from_secs(10), "{stop:?}");
    let unit = read("deploy/conveyor.service");
    assert!(unit.contains("TimeoutStopSec=15s"));
}

#[test]
fn haproxy_names_the_client_and_keeps_status_off_the_public_front_end() {
    let config = Config::load(&repo("deploy/conveyor.toml")).expect("deploy/conveyor.toml");
    assert!(
        config.proxy.protocol,
        "the replicas take the PROXY protocol"
    );
    let haproxy = conveyor::config::Client::Ip("127.0.0.1".parse().expect("ip"));
    assert!(config.proxy.trusts(haproxy), "from HAProxy on the host");
    let outside = conveyor::config::Client::Ip("203.0.113.9".parse().expect("ip"));
    assert!(!config.proxy.trusts(outside));
    assert!(!conveyor::config::allowed(
        &config.status_access.allow,
        outside
    ));
    let cfg = read("deploy/haproxy.cfg");
    let servers = cfg
        .lines()
        .find(|l| l.trim_start().starts_with("default-server "))
        .expect("a default-server line");
    assert!(servers.contains(" send-proxy-v2"), "{servers}");
    let front = cfg
        .split("\nfrontend www")
        .nth(1)
        .and_then(|rest| rest.split("\nbackend ").next())
        .expect("frontend www");
    assert!(
        front.contains(&format!(
            "http-request deny deny_status 403 if {{ path {0} }} || {{ path_beg {0}/ }}",
            config.status.path
        )),
        "{front}"
    );
}

#[test]
fn the_units_and_the_dockerfile_hold_the_promised_settings() {
    let unit = read("deploy/conveyor.service");
    for line in [
        "Requires=conveyor.socket",
        "ExecStart=/usr/local/bin/conveyor --config /etc/conveyor/conveyor.toml",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "LimitNOFILE=",
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=\n",
    ] {
        assert!(
            unit.contains(line),
            "deploy/conveyor.service lacks {line:?}"
        );
    }
    let socket = read("deploy/conveyor.socket");
    assert!(socket.contains("ListenStream=") && socket.contains("Accept=no"));
    let docker = read("deploy/Dockerfile");
    assert_eq!(
        docker.matches("\nFROM ").count(),
        2,
        "multi-stage: build, run"
    );
    assert!(docker.contains("COPY --from=build"));
    assert!(docker.contains("USER nonroot"));
    assert!(docker.contains("COPY deploy/conveyor.toml /etc/conveyor/conveyor.toml"));
    let ignored = read(".dockerignore");
    assert!(
        ignored.lines().any(|l| l == "target"),
        "the build context skips target/"
    );
}

#[test]
fn haproxy_accepts_its_config() {
    let Some(haproxy) = needs::HAPROXY.find() else {
        return;
    };
    let out = Command::new(haproxy)
        .args(["-c", "-f"])
        .arg(repo("deploy/haproxy.cfg"))
        .output()
        .expect("haproxy runs");
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn systemd_accepts_the_units() {
    let Some(systemd_analyze) = needs::SYSTEMD_ANALYZE.find() else {
        return;
    };
    {
        // Verified against this build's binary: the installed path does not
        // exist here.
        let dir = temp_dir("units");
        let service = read("deploy/conveyor.service").replace("/usr/local/bin/conveyor", BIN);
        std::fs::write(dir.join("conveyor.service"), service).expect("write");
        std::fs::copy(repo("deploy/conveyor.socket"), dir.join("conveyor.socket")).expect("copy");
        let out = Command::new(systemd_analyze)
            .args(["verify", "--man=no"])
            .arg(dir.join("conveyor.socket"))
            .arg(dir.join("conveyor.service"))
            .output()
            .expect("systemd-analyze runs");
        let _ = std::fs::remove_dir_all(&dir);
        assert!(out.status.success(), "{out:?}");
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The first of ten consecutive free ports on 127.0.0.1, from 18420 up.
fn free_ports() -> u16 {
    (18420..18500)
        .step_by(10)
        .find(|base| (*base..base + 10).all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok()))
        .expect("ten free ports between 18420 and 18499")
}

#[test]
fn a_rolling_restart_behind_haproxy_loses_no_request() {
    // deploy/try-cluster.sh runs these by name.
    if needs::find_all([&needs::HAPROXY, &needs::WRK, &needs::CURL]).is_none() {
        return;
    }
    let script = repo("deploy/try-cluster.sh");
    // A light load (2 connections) for long enough to cover the three
    // restarts; the script bounds everything it runs and stops it by PID.
    let out = Command::new(&script)
        .env("CONVEYOR", BIN)
        .env("BUILD", "0")
        .env("PORT", free_ports().to_string())
        .env("DURATION", "18")
        .env("CONNS", "2")
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")))
        .output()
        .expect("the script runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report = format!("stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(out.status.success(), "{report}");
    // Checked before the load: through HAProxy's public port from another
    // address, and at a replica for an outside client HAProxy names.
    assert!(
        stdout.contains("/status from outside: refused (403 through HAProxy"),
        "{report}"
    );
    assert_eq!(stdout.matches(" restarted: pid ").count(), 3, "{report}");
    let summary = stdout
        .lines()
        .find(|l| l.starts_with("requests served: "))
        .unwrap_or_else(|| panic!("no summary: {report}"));
    let served: u64 = summary
        .trim_start_matches("requests served: ")
        .split(';')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{summary}"));
    assert!(served > 0, "{report}");
    assert!(summary.contains("; failed: 0 "), "{report}");
}
