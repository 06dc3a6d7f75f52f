//! An advisory lock on an open file (`flock`), held until the file is
//! closed: what keeps two processes sharing a state directory from doing
//! the same work at once (the ACME state directory's lock file).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

use super::syscall;

/// Takes an exclusive `flock` on `file` without waiting: `Ok(true)` if this
/// process now holds it, `Ok(false)` if another open file description holds
/// it. The lock goes with the file: it is released when `file` is closed.
pub fn try_lock_exclusive(file: &File) -> io::Result<bool> {
    // SAFETY: the descriptor is `file`'s, open for the whole call; flock
    // takes no pointers.
    match syscall!(libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB)) {
        Ok(_) => Ok(true),
        Err(err) if err.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(false),
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_open_file_cannot_take_the_lock_until_the_first_closes() {
        let path = std::env::temp_dir().join(format!("conveyor-flock-{}", std::process::id()));
        let first = File::create(&path).expect("create");
        assert!(try_lock_exclusive(&first).expect("lock"));
        let second = File::open(&path).expect("open");
        assert!(!try_lock_exclusive(&second).expect("try"));
        drop(first);
        assert!(try_lock_exclusive(&second).expect("lock after close"));
        let _ = std::fs::remove_file(&path);
    }
}
