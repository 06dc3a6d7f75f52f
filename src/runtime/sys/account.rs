//! Running as another account: started as root to bind port 80, the server
//! switches to `user`/`group` once its listeners are bound and its log open.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::syscall;

/// A user or group looked up in the system's databases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Account {
    /// The user id.
    pub uid: libc::uid_t,
    /// The group id: the named group, else the user's primary group.
    pub gid: libc::gid_t,
}

/// Whether the process runs as root (effective uid 0).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The process's effective user id (who owns the files it creates).
pub fn effective_uid() -> libc::uid_t {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Looks `user` up (a name, or a number), and `group` if not empty.
pub fn lookup(user: &str, group: &str) -> io::Result<Account> {
    let (uid, primary) = lookup_user(user)?;
    let gid = match group {
        "" => primary,
        name => lookup_group(name)?,
    };
    Ok(Account { uid, gid })
}

fn not_found(what: &str, name: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("there is no {what} {name:?} on this system"),
    )
}

fn lookup_user(name: &str) -> io::Result<(libc::uid_t, libc::gid_t)> {
    let c = CString::new(name).map_err(|_| not_found("user", name))?;
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: passwd is plain data; getpwnam_r fills it (pointing into
    // `buf`, which outlives its use here) or leaves `result` null.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; `buf.len()` is its size.
    let rc = unsafe {
        libc::getpwnam_r(
            c.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        )
    };
    if rc == 0 && !result.is_null() {
        return Ok((pwd.pw_uid, pwd.pw_gid));
    }
    // A number that names no entry is used as it is, as chown(1) does;
    // its group must then be given.
    match name.parse::<libc::uid_t>() {
        Ok(uid) => Ok((uid, uid)),
        Err(_) => Err(not_found("user", name)),
    }
}

fn lookup_group(name: &str) -> io::Result<libc::gid_t> {
    let c = CString::new(name).map_err(|_| not_found("group", name))?;
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: group is plain data, filled by getgrnam_r as above.
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::group = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; `buf.len()` is its size.
    let rc = unsafe {
        libc::getgrnam_r(
            c.as_ptr(),
            &mut grp,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        )
    };
    if rc == 0 && !result.is_null() {
        return Ok(grp.gr_gid);
    }
    name.parse::<libc::gid_t>()
        .map_err(|_| not_found("group", name))
}

/// Drops to `account` for good: supplementary groups to just its group,
/// then the group, then the user (the order that leaves no way back).
/// glibc applies each to every thread of the process.
pub fn switch_to(account: Account) -> io::Result<()> {
    let groups = [account.gid];
    // SAFETY: `groups` holds one gid_t, the length passed.
    syscall!(libc::setgroups(1, groups.as_ptr()))?;
    // SAFETY: plain id arguments.
    syscall!(libc::setgid(account.gid))?;
    // SAFETY: plain id arguments.
    syscall!(libc::setuid(account.uid))?;
    // A process that can become root again has not dropped anything.
    // SAFETY: plain id argument; expected to fail.
    if account.uid != 0 && unsafe { libc::setuid(0) } == 0 {
        return Err(io::Error::other(
            "could still switch back to root after setuid",
        ));
    }
    Ok(())
}

/// Runs `check` on a thread of its own that has first taken `account`'s
/// ids, so what it opens is opened with the rights the server will have
/// once it switches: a check on the file itself, not a guess from mode
/// bits. Linux keeps credentials per thread, and the raw system calls
/// used here, unlike glibc's wrappers, change only the calling thread; the
/// thread ends with the check, the rest of the process stays as it was.
pub fn as_account<T: Send>(account: Account, check: impl FnOnce() -> T + Send) -> io::Result<T> {
    let (uid, gid) = (
        libc::c_long::from(account.uid),
        libc::c_long::from(account.gid),
    );
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                let groups = [account.gid];
                // SAFETY: `groups` holds one gid_t, the count passed; the
                // raw call changes this thread's groups only.
                syscall!(libc::syscall(libc::SYS_setgroups, 1, groups.as_ptr()))?;
                // SAFETY: plain id arguments; this thread only.
                syscall!(libc::syscall(libc::SYS_setresgid, gid, gid, gid))?;
                // SAFETY: plain id arguments; this thread only.
                syscall!(libc::syscall(libc::SYS_setresuid, uid, uid, uid))?;
                Ok(check())
            })
            .join()
            .map_err(|_| io::Error::other("the check as the run user panicked"))?
    })
}

/// Whether the calling thread may create files in `dir` (write and search
/// permission, by its real ids): where a reopened log is created.
pub fn can_create_in(dir: &Path) -> io::Result<()> {
    let c = CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL in the path"))?;
    // SAFETY: `c` is a valid NUL-terminated path for the call.
    syscall!(libc::access(c.as_ptr(), libc::W_OK | libc::X_OK))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_names_and_numbers() {
        assert_eq!(lookup("root", "").unwrap(), Account { uid: 0, gid: 0 });
        assert_eq!(
            lookup("1234", "5678").unwrap(),
            Account {
                uid: 1234,
                gid: 5678
            }
        );
        let e = lookup("no-such-user-conveyor", "").unwrap_err();
        assert!(
            e.to_string().contains("no user \"no-such-user-conveyor\""),
            "{e}"
        );
        assert!(lookup("root", "no-such-group-conveyor").is_err());
    }

    #[test]
    fn a_check_as_another_account_leaves_the_process_as_it_was() {
        if !is_root() {
            return;
        }
        let nobody = lookup("nobody", "").unwrap();
        // SAFETY: geteuid and getegid have no preconditions.
        let ids = as_account(nobody, || unsafe { (libc::geteuid(), libc::getegid()) }).unwrap();
        assert_eq!(ids, (nobody.uid, nobody.gid));
        assert!(is_root(), "the process stays root");
        // /root is root's alone on every system that has it.
        let root_home = Path::new("/root");
        if root_home.is_dir() {
            assert!(can_create_in(root_home).is_ok());
            let as_nobody = as_account(nobody, || can_create_in(root_home)).unwrap();
            assert!(as_nobody.is_err());
        }
    }
}
