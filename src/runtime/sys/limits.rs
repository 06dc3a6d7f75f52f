//! The process's open-file limit (`RLIMIT_NOFILE`): every socket is a file
//! descriptor, so a load generator with many connections must raise it.
//! And a thread's scheduling priority, lowered for background work.

use std::io;

use super::syscall;

/// The open-file limit in force: `soft` is what `open`/`socket` hit
/// (`EMFILE`), `hard` the ceiling an unprivileged process may raise it to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdLimit {
    /// The soft limit (`u64::MAX`: unlimited).
    pub soft: u64,
    /// The hard limit (`u64::MAX`: unlimited).
    pub hard: u64,
}

/// Reads the current `RLIMIT_NOFILE`.
pub fn fd_limit() -> io::Result<FdLimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a live, writable rlimit for the call's duration.
    syscall!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit))?;
    Ok(FdLimit {
        soft: limit.rlim_cur,
        hard: limit.rlim_max,
    })
}

/// Raises the soft open-file limit to `want`, or to the hard limit if that
/// is lower; never lowers it. Returns the limit now in force.
pub fn raise_fd_limit(want: u64) -> io::Result<FdLimit> {
    let now = fd_limit()?;
    let target = want.min(now.hard);
    if target <= now.soft {
        return Ok(now);
    }
    let limit = libc::rlimit {
        rlim_cur: target,
        rlim_max: now.hard,
    };
    // SAFETY: `limit` is a live rlimit read for the call's duration; the
    // soft value is at most the hard one, which is left as it was.
    syscall!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit))?;
    fd_limit()
}

/// Lowers the calling thread's priority to nice value `nice` (Linux
/// keeps a nice value per thread), so that background work (compressing
/// files) yields the CPU to the workers when they want it.
pub fn lower_thread_priority(nice: i32) -> io::Result<()> {
    // SAFETY: gettid takes no arguments and cannot fail.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) };
    let tid = libc::id_t::try_from(tid).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
    // SAFETY: plain integers; `tid` is this thread's own id.
    syscall!(libc::setpriority(libc::PRIO_PROCESS, tid, nice))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raising_never_lowers_and_stays_under_the_hard_limit() {
        let before = fd_limit().expect("getrlimit");
        assert!(before.soft <= before.hard);
        // Asking for less than the soft limit changes nothing.
        assert_eq!(raise_fd_limit(1).expect("no-op"), before);
        // Asking for more than the hard limit stops at the hard limit.
        let after = raise_fd_limit(u64::MAX).expect("setrlimit");
        assert_eq!(after.soft, before.hard);
        assert_eq!(after.hard, before.hard);
    }

    /// Only the calling thread is lowered: the process keeps its priority.
    #[test]
    fn a_thread_lowers_its_own_priority_only() {
        // SAFETY: getpriority takes plain integers; 0 names this process.
        let process = || unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        let before = process();
        let lowered = std::thread::spawn(move || {
            lower_thread_priority(before.max(10)).expect("setpriority");
            // SAFETY: as above; 0 names the calling thread here.
            unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }
        })
        .join()
        .expect("thread");
        assert_eq!(lowered, before.max(10));
        assert_eq!(process(), before);
    }
}
