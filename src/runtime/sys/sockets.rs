//! Listening sockets that are not a fresh TCP bind: Unix-domain sockets
//! (with a stale socket file replaced safely) and sockets inherited from a
//! service manager (systemd socket activation, `sd_listen_fds(3)`).

use std::ffi::OsString;
use std::io;
use std::net::TcpListener as StdListener;
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use socket2::{Domain, SockAddr, Socket, Type};

use super::syscall;
use crate::runtime::io::Async;
use crate::runtime::net::TcpListener;

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
pub const LISTEN_FDS_START: RawFd = 3;

/// A socket file this process created: removed when its listener stops,
/// if it is still the same file (not one a later server put there).
#[derive(Debug)]
pub struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl SocketFile {
    /// The path it was created at.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Unlinks the file if the path still names the socket created.
    pub fn remove(&self) {
        if let Ok(meta) = std::fs::symlink_metadata(&self.path) {
            if meta.dev() == self.dev && meta.ino() == self.ino {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

/// Binds a Unix-domain stream socket at `path` with permission bits `mode`.
///
/// A file already at `path` is replaced only if it is a socket that nobody
/// answers on (left behind by a server that died): a live socket is
/// `AddrInUse`, any other kind of file `AlreadyExists`, and neither is
/// touched. Check and removal name the file by path: whoever could swap
/// another file in between can write the directory, and could remove or
/// replace that file anyway; the inode is compared again right before the
/// unlink so that an unrelated swap is not removed.
pub fn bind_unix(path: &Path, mode: u32, backlog: i32) -> io::Result<(TcpListener, SocketFile)> {
    remove_stale(path)?;
    let socket = Socket::new(Domain::UNIX, Type::STREAM.cloexec(), None)?;
    socket.set_nonblocking(true)?;
    bind_with_mode(&socket, &SockAddr::unix(path)?, mode)?;
    let meta = std::fs::symlink_metadata(path)?;
    let file = SocketFile {
        path: path.to_path_buf(),
        dev: meta.dev(),
        ino: meta.ino(),
    };
    if let Err(e) = socket.listen(backlog) {
        file.remove();
        return Err(e);
    }
    let listener = TcpListener {
        inner: Async::new_nonblocking(StdListener::from(socket)),
        tcp: false,
    };
    Ok((listener, file))
}

/// Held while the umask is changed, so two binds never see each other's.
static UMASK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Binds so that the socket file is born with `mode`: the umask is set to
/// its complement around bind(2). Setting the bits afterwards by path
/// would follow whatever the path names by then (a symlink an attacker
/// swapped in), and there is no window with looser bits. The umask is the
/// process's: binding happens at start and on reload, while no other
/// thread of the server creates files.
fn bind_with_mode(socket: &Socket, addr: &SockAddr, mode: u32) -> io::Result<()> {
    let _only_us = UMASK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mask = !mode & 0o777;
    // SAFETY: umask only swaps the process's file-creation mask; it cannot
    // fail and takes no pointers.
    let old = unsafe { libc::umask(mask as libc::mode_t) };
    let bound = socket.bind(addr);
    // SAFETY: as above, putting back the mask that was there.
    unsafe { libc::umask(old) };
    bound
}

fn remove_stale(path: &Path) -> io::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "{} exists and is not a socket; it was left alone: remove it or choose \
                 another path",
                path.display()
            ),
        ));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!(
                "another process answers on {}; stop it or choose another path",
                path.display()
            ),
        )),
        Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
            let again = std::fs::symlink_metadata(path)?;
            if again.dev() == meta.dev() && again.ino() == meta.ino() {
                std::fs::remove_file(path)?;
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Takes an inherited descriptor as a listener, after checking it is a
/// listening stream socket; sets FD_CLOEXEC so no child inherits it.
pub fn adopt_listener(fd: RawFd) -> io::Result<TcpListener> {
    let option = |level, name| -> io::Result<libc::c_int> {
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `value` and `len` are live and sized for an int option;
        // a descriptor that is not a socket yields ENOTSOCK.
        syscall!(libc::getsockopt(
            fd,
            level,
            name,
            (&mut value as *mut libc::c_int).cast(),
            &mut len
        ))?;
        Ok(value)
    };
    let refuse = |why: &str| {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("descriptor {fd} {why}; pass a listening stream socket (ListenStream=)"),
        ))
    };
    if option(libc::SOL_SOCKET, libc::SO_TYPE)? != libc::SOCK_STREAM {
        return refuse("is not a stream socket");
    }
    if option(libc::SOL_SOCKET, libc::SO_ACCEPTCONN)? == 0 {
        return refuse("is not listening");
    }
    let domain = option(libc::SOL_SOCKET, libc::SO_DOMAIN)?;
    // SAFETY: fcntl on a descriptor number has no memory effects.
    syscall!(libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC))?;
    // SAFETY: the descriptor was passed to this process for it to own (the
    // caller takes each inherited number once), and it was checked above
    // to be a listening socket.
    let listener = unsafe { StdListener::from_raw_fd(fd) };
    Ok(TcpListener {
        inner: Async::new(listener)?,
        tcp: domain == libc::AF_INET || domain == libc::AF_INET6,
    })
}

/// The sockets a service manager passed (`LISTEN_PID`, `LISTEN_FDS`,
/// `LISTEN_FDNAMES`), as (descriptor, name); empty when none were. The
/// variables are removed, as `sd_listen_fds(1)` does, so no child process
/// takes them for its own. Call it before any thread starts.
pub fn take_listen_fds() -> Result<Vec<(RawFd, String)>, String> {
    let pid = std::env::var_os("LISTEN_PID");
    let fds = std::env::var_os("LISTEN_FDS");
    let names = std::env::var_os("LISTEN_FDNAMES");
    for var in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(var);
    }
    listen_fds(pid, fds, names, std::process::id())
}

fn listen_fds(
    pid: Option<OsString>,
    fds: Option<OsString>,
    names: Option<OsString>,
    own_pid: u32,
) -> Result<Vec<(RawFd, String)>, String> {
    let (Some(pid), Some(fds)) = (pid, fds) else {
        return Ok(Vec::new());
    };
    // Meant for another process (a parent that did not clear them): not ours.
    if pid.to_str().and_then(|p| p.parse::<u32>().ok()) != Some(own_pid) {
        return Ok(Vec::new());
    }
    let count = fds
        .to_str()
        .and_then(|n| n.parse::<RawFd>().ok())
        .filter(|n| (0..=4096).contains(n))
        .ok_or_else(|| {
            format!(
                "LISTEN_FDS={} is not a count of descriptors; check the socket unit",
                fds.to_string_lossy()
            )
        })?;
    let names: Vec<String> = names
        .map(|n| n.to_string_lossy().split(':').map(str::to_string).collect())
        .unwrap_or_default();
    Ok((0..count)
        .map(|i| {
            let name = names
                .get(i as usize)
                .filter(|n| !n.is_empty())
                .cloned()
                .unwrap_or_else(|| "unknown".to_string());
            (LISTEN_FDS_START + i, name)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn os(s: &str) -> Option<OsString> {
        Some(OsString::from(s))
    }

    #[test]
    fn listen_fds_follow_sd_listen_fds() {
        assert_eq!(listen_fds(None, None, None, 7), Ok(vec![]));
        assert_eq!(listen_fds(os("8"), os("2"), None, 7), Ok(vec![]));
        assert_eq!(
            listen_fds(os("7"), os("2"), os("web:"), 7),
            Ok(vec![(3, "web".to_string()), (4, "unknown".to_string())])
        );
        let e = listen_fds(os("7"), os("x"), None, 7).unwrap_err();
        assert!(e.contains("LISTEN_FDS=x"), "{e}");
    }

    #[test]
    fn the_socket_file_is_born_with_its_mode_and_the_umask_is_kept() {
        let dir = std::env::temp_dir().join(format!("conveyor-mode-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let before = {
            let _only_us = UMASK.lock().unwrap();
            // SAFETY: sets the mask, to be put back below; no pointers.
            unsafe { libc::umask(0o022) }
        };
        // 0o666 is wider than the umask allows a new file: the bits come
        // from bind itself, not from a chmod of the path afterwards.
        for mode in [0o666, 0o600, 0o660] {
            let path = dir.join(format!("{mode:o}.sock"));
            let (listener, file) = bind_unix(&path, mode, 8).unwrap();
            let got = std::fs::symlink_metadata(&path)
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(got & 0o777, mode, "{mode:o}");
            drop(listener);
            file.remove();
        }
        let during = {
            let _only_us = UMASK.lock().unwrap();
            // SAFETY: puts back the mask found above; no pointers.
            unsafe { libc::umask(before) }
        };
        assert_eq!(during, 0o022, "bind_unix put the umask back");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_stale_socket_is_replaced_and_anything_else_is_left_alone() {
        let dir = std::env::temp_dir().join(format!("conveyor-sock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        // A stale socket: bound, then its listener gone.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let (live, file) = bind_unix(&path, 0o600, 8).unwrap();
        assert!(!live.is_tcp());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // A live one is refused, and kept.
        let e = bind_unix(&path, 0o600, 8).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{e}");
        drop(live);
        file.remove();
        assert!(!path.exists());
        // A regular file is never removed.
        std::fs::write(&path, "data").unwrap();
        let e = bind_unix(&path, 0o600, 8).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists, "{e}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "data");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn adopt_checks_the_descriptor() {
        use std::os::fd::IntoRawFd;
        let file = std::fs::File::open("/dev/null").unwrap().into_raw_fd();
        assert!(adopt_listener(file).is_err());
        // SAFETY: `file` was not adopted; closed here once.
        unsafe { libc::close(file) };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let adopted = adopt_listener(listener.into_raw_fd()).unwrap();
        assert!(adopted.is_tcp());
    }
}
