//! Running as another account: started as root to bind port 80, the server
//! switches to `user`/`group` once its listeners are bound and its log open.

use std::ffi::CString;
use std::io;

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
}
