//! `user` and `group`: started as root, the binary binds, opens its log,
//! then runs as the account named; mistakes stop start-up with exit 2.

use std::net::TcpStream;
use std::path::PathBuf;

use crate::harness::process::{ids, is_root, spawn, spawn_on_config, LIMIT};
use crate::harness::{get, needs, process, site_dir};

fn site(tag: &str, config: &str) -> PathBuf {
    let dir = site_dir(tag);
    std::fs::write(
        dir.join("c.toml"),
        format!("listen = \"127.0.0.1:0\"\nroot = \"site\"\n{config}"),
    )
    .expect("config");
    dir
}

#[test]
fn started_as_root_it_runs_as_the_user_named() {
    if !needs::root() {
        return;
    }
    let dir = site("user-nobody", "user = \"nobody\"\n");
    let (mut run, addr) = spawn_on_config(&dir);
    let pid = run.child.id();
    assert_eq!(ids(pid, "Uid"), "65534 65534 65534 65534");
    let gid = ids(pid, "Gid");
    assert!(
        !gid.split(' ').any(|g| g == "0"),
        "still in group root: {gid}"
    );
    assert_eq!(ids(pid, "Groups").split(' ').count(), 1);
    let mut s = TcpStream::connect(&addr).expect("connect");
    s.set_read_timeout(Some(LIMIT)).expect("timeout");
    assert_eq!(get(&mut s, "/").text(), "hi");
    run.terminate();
    assert_eq!(run.exit_code(), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unknown_user_or_a_group_alone_stops_start_up() {
    let dir = site("user-group-alone", "group = \"nogroup\"\n");
    let mut run = spawn(&dir, &["--config", "c.toml"]);
    assert_eq!(run.exit_code(), Some(2));
    let message = run.stderr_line();
    assert!(
        message.contains("group = \"nogroup\" is set without user"),
        "{message}"
    );
    let _ = std::fs::remove_dir_all(&dir);

    let dir = site("user-unknown", "user = \"no-such-user-conveyor\"\n");
    let mut run = spawn(&dir, &["--config", "c.toml"]);
    if is_root() {
        assert_eq!(run.exit_code(), Some(2));
        let message = run.stderr_line();
        assert!(
            message.contains("there is no user \"no-such-user-conveyor\""),
            "{message}"
        );
        assert!(message.contains("fix `user` and `group`"), "{message}");
    } else {
        // Not root: nothing to switch from; said once, and it serves.
        let warning = run.stderr_line();
        assert!(
            warning.contains("is ignored: only a server started as root"),
            "{warning}"
        );
        run.terminate();
        assert_eq!(run.exit_code(), Some(0));
    }
    let _ = std::fs::remove_dir_all(&dir);

    let dir = site("user-bad-name", "user = \"a:b\"\n");
    let mut run = spawn(&dir, &["--config", "c.toml"]);
    assert_eq!(run.exit_code(), Some(2));
    let message = run.stderr_line();
    assert!(
        message.contains("user = \"a:b\" is not a user or group name"),
        "{message}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// What the `user` key is for: bind port 80 as root, then serve as the
/// account named. Run in a network namespace of its own, so port 80 is free
/// whatever this machine runs.
#[test]
fn started_as_root_it_binds_port_80_then_serves_as_the_user_named() {
    if !needs::root() || needs::find_all([&needs::UNSHARE, &needs::CURL]).is_none() {
        return;
    }
    let dir = site("user-port-80", "user = \"nobody\"\n");
    let config = std::fs::read_to_string(dir.join("c.toml")).expect("config");
    std::fs::write(
        dir.join("c.toml"),
        config.replace("127.0.0.1:0", "127.0.0.1:80"),
    )
    .expect("config");
    let script = "ip link set lo up || exit 97; cd \"$1\"; \
                  \"$0\" --config c.toml & pid=$!; \
                  for i in $(seq 1 200); do \
                    body=$(curl -s --max-time 1 http://127.0.0.1:80/) && break; \
                    sleep 0.05; \
                  done; \
                  echo \"BODY:$body\"; grep '^Uid:' /proc/$pid/status; kill $pid; wait $pid";
    let Ok(out) = std::process::Command::new("timeout")
        .args(["60", "unshare", "-n", "sh", "-c", script])
        .arg(process::BIN)
        .arg(&dir)
        .output()
    else {
        needs::missing("a working unshare", "CI runs as root with util-linux");
        return;
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.code() == Some(97) || text.contains("unshare failed") {
        needs::missing(
            &format!("a network namespace ({text})"),
            "CI runs as root on a machine that allows them",
        );
        return;
    }
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("http://127.0.0.1:80"), "{text}");
    assert!(text.contains("BODY:hi"), "{text}");
    let uid = text
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .unwrap_or_else(|| panic!("no Uid line: {text}"));
    assert_eq!(
        uid.split_whitespace().collect::<Vec<_>>(),
        ["65534"; 4],
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
