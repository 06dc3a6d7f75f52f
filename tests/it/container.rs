//! `deploy/Dockerfile`'s final stage, run without Docker (the development
//! VM has no container engine): a root file system holding what the
//! Dockerfile's `COPY` lines put into the image, plus the shared libraries
//! the binary links, each of which must be one that
//! `gcr.io/distroless/cc-debian12` carries. It is mounted read-only (as
//! `docker run --read-only`), entered as the Dockerfile's `USER`, and started
//! with its `ENTRYPOINT`. Needs root for the mount namespace and the chroot;
//! skipped, saying so, without it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::process::{address, ids, spawn_command, BIN};
use crate::harness::{connect, get, needs, repo, temp_dir};

/// distroless's `nonroot` account (uid and gid 65532).
const NONROOT: u32 = 65532;

/// The libraries of `gcr.io/distroless/cc-debian12`: Debian 12's glibc
/// (libc6), libgcc-s1, libstdc++6 and libgomp1.
const DISTROLESS_CC: [&str; 9] = [
    "libc.so.6",
    "libm.so.6",
    "libdl.so.2",
    "libpthread.so.0",
    "librt.so.1",
    "ld-linux-x86-64.so.2",
    "libgcc_s.so.1",
    "libstdc++.so.6",
    "libgomp.so.1",
];

/// `docker stop` waits this long after SIGTERM before it kills.
const DOCKER_STOP_GRACE: Duration = Duration::from_secs(10);

/// In a private mount namespace, with `$r` the root file system: /proc and
/// /dev as Docker provides them, then the root made read-only.
const MOUNTS: &str = "mount --rbind /proc \"$r/proc\" && mount --rbind /dev \"$r/dev\" && \
    mount --bind \"$r\" \"$r\" && mount -o remount,bind,ro \"$r\"";

/// Whether this machine lets root make those mounts (a container without
/// CAP_SYS_ADMIN does not): tried on an empty root of their own.
fn can_mount_the_image_root() -> bool {
    let scratch = temp_dir("image-probe");
    for mount_point in ["proc", "dev"] {
        std::fs::create_dir_all(scratch.join(mount_point)).expect("mount point");
    }
    let works = Command::new("unshare")
        .args(["-m", "--", "sh", "-c", &format!("r=$1; {MOUNTS}"), "sh"])
        .arg(&scratch)
        .status()
        .is_ok_and(|s| s.success());
    remove_unless_mounted(&scratch);
    works
}

/// Removes `dir`, unless something is mounted beneath it in this test's
/// namespace: the mounts are made in a private namespace and go with it,
/// but a removal that followed a leaked bind of /dev or /proc would empty
/// the host's.
fn remove_unless_mounted(dir: &Path) {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let prefix = dir.to_string_lossy().into_owned();
    let leaked: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|point| point.starts_with(&prefix))
        .collect();
    assert!(
        leaked.is_empty(),
        "mounts left beneath {prefix}: {leaked:?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

fn copy_into(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.parent().expect("parent")).expect("dirs");
    if from.is_dir() {
        std::fs::create_dir_all(to).expect("dir");
        for entry in std::fs::read_dir(from).expect("read_dir") {
            let entry = entry.expect("entry");
            copy_into(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        std::fs::copy(from, to).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    }
}

/// Inside `root`, the path an absolute image path names.
fn at(root: &Path, image_path: &str) -> PathBuf {
    root.join(image_path.trim_start_matches('/'))
}

/// The lines of the Dockerfile's last stage.
fn final_stage() -> Vec<String> {
    let dockerfile = std::fs::read_to_string(repo("deploy/Dockerfile")).expect("Dockerfile");
    let stage = dockerfile.rsplit("\nFROM ").next().expect("a FROM");
    stage.lines().map(str::to_string).collect()
}

/// Lays out the final stage's files under `root`; returns the ENTRYPOINT.
fn build_rootfs(root: &Path) -> Vec<String> {
    let stage = final_stage();
    for line in &stage {
        let Some(rest) = line.strip_prefix("COPY ") else {
            continue;
        };
        match rest.split_whitespace().collect::<Vec<_>>()[..] {
            // The build stage's product is the binary these tests run.
            ["--from=build", "/out/conveyor", dest] => copy_into(Path::new(BIN), &at(root, dest)),
            [src, dest] => copy_into(&repo(src), &at(root, dest)),
            _ => panic!("a COPY this test cannot follow: {line}"),
        }
    }
    // The shared libraries the binary needs, from where ldd finds them.
    let ldd = Command::new("ldd").arg(BIN).output().expect("ldd runs");
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        let Some(path) = line.split_whitespace().find(|w| w.starts_with('/')) else {
            continue; // linux-vdso: the kernel's
        };
        let name = Path::new(path).file_name().expect("name").to_string_lossy();
        assert!(
            DISTROLESS_CC.contains(&name.as_ref()),
            "the binary links {path}, which the distroless cc image lacks"
        );
        copy_into(Path::new(path), &at(root, path));
    }
    for mount_point in ["proc", "dev"] {
        std::fs::create_dir_all(root.join(mount_point)).expect("mount point");
    }
    let user = stage
        .iter()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER line");
    assert_eq!(
        user.trim(),
        "nonroot:nonroot",
        "this test knows nonroot only"
    );
    let entrypoint = stage
        .iter()
        .find_map(|l| l.strip_prefix("ENTRYPOINT "))
        .expect("an ENTRYPOINT line");
    entrypoint
        .trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split(',')
        .map(|arg| arg.trim().trim_matches('"').to_string())
        .collect()
}

/// A connection to `addr` that starts, as HAProxy's would, with a PROXY
/// protocol header naming `client`.
fn proxied(addr: &str, client: &str) -> std::net::TcpStream {
    let mut s = connect(addr);
    std::io::Write::write_all(
        &mut s,
        format!("PROXY TCP4 {client} 127.0.0.1 40000 8080\r\n").as_bytes(),
    )
    .expect("send the PROXY header");
    s
}

/// The mount options of the process's `/` (field 6 of its mountinfo line).
fn root_mount_options(pid: u32) -> String {
    let info = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).expect("mountinfo");
    info.lines()
        .map(|l| l.split(' ').collect::<Vec<_>>())
        .find(|fields| fields.get(4) == Some(&"/"))
        .and_then(|fields| fields.get(5).map(|o| o.to_string()))
        .unwrap_or_else(|| panic!("no / in {info}"))
}

#[test]
fn the_image_runs_read_only_as_nonroot_serves_the_site_and_drains_within_docker_stop() {
    if !needs::root() || needs::UNSHARE.find().is_none() {
        return;
    }
    if !can_mount_the_image_root() {
        needs::missing(
            "a mount namespace with bind mounts (CAP_SYS_ADMIN)",
            "CI runs as root on a machine that allows them",
        );
        return;
    }
    let dir = temp_dir("image");
    let root = dir.join("rootfs");
    let entrypoint = build_rootfs(&root);
    // The mounts, then chroot and drop to nonroot, and exec the entry point
    // (plus a loopback listener, as `docker run IMAGE ARGS…` appends ARGS).
    let script = format!(
        "r=$1; u=$2; shift 2; {MOUNTS} && \
         exec unshare --root=\"$r\" --wd=/ -S \"$u\" -G \"$u\" -- \"$@\""
    );
    let mut command = Command::new("unshare");
    command
        .args(["-m", "--", "sh", "-c", &script, "sh"])
        .arg(&root)
        .arg(NONROOT.to_string())
        .args(&entrypoint)
        .args(["--listen", "127.0.0.1:0"]);
    let mut run = spawn_command(command);
    let started = run.started_line();
    assert!(started.contains("serving /srv/www"), "{started}");
    assert!(
        started.contains("config /etc/conveyor/conveyor.toml"),
        "{started}"
    );
    let addr = address(&started);
    let pid = run.child.id();
    let nonroot = format!("{NONROOT} {NONROOT} {NONROOT} {NONROOT}");
    assert_eq!(ids(pid, "Uid"), nonroot);
    assert_eq!(ids(pid, "Gid"), nonroot);
    assert!(
        root_mount_options(pid).split(',').any(|o| o == "ro"),
        "the root is not read-only: {}",
        root_mount_options(pid)
    );

    // deploy/conveyor.toml takes the PROXY protocol from loopback only.
    let mut s = proxied(&addr, "203.0.113.9");
    let index = get(&mut s, "/");
    assert_eq!(index.status, 200);
    assert_eq!(
        index.body,
        std::fs::read(repo("www/index.html")).expect("www/index.html")
    );
    assert_eq!(get(&mut s, "/readyz").status, 200);
    assert_eq!(get(&mut s, "/status").status, 403, "an outside client");

    // `docker stop`: SIGTERM, then a kill after the grace. The drain turns
    // /readyz to 503 for the balancer and the process ends within the grace.
    run.terminate();
    let stopped_at = Instant::now();
    // The signal is handled on the server's own time: until it is, a
    // fresh connection still reads 200; after it, 503 until the end.
    loop {
        let mut fresh = proxied(&addr, "127.0.0.1");
        match get(&mut fresh, "/readyz").status {
            503 => break,
            200 if stopped_at.elapsed() < DOCKER_STOP_GRACE => continue,
            other => panic!("/readyz answered {other} after SIGTERM"),
        }
    }
    assert_eq!(run.exit_code(), Some(0));
    assert!(
        stopped_at.elapsed() < DOCKER_STOP_GRACE,
        "took {:?} to stop",
        stopped_at.elapsed()
    );
    remove_unless_mounted(&dir);
}
