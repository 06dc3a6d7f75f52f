//! Waiting for SIGINT/SIGTERM on a plain thread, without a signal handler:
//! the signals are blocked (so every thread spawned later inherits the
//! block) and collected with `sigtimedwait`.

use std::io;
use std::mem::MaybeUninit;
use std::time::Duration;

use super::sys::syscall;

fn termination_set() -> io::Result<libc::sigset_t> {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the set it is given.
    syscall!(libc::sigemptyset(set.as_mut_ptr()))?;
    // SAFETY: sigaddset only writes to the set initialised above, which
    // `assume_init` may then read.
    unsafe {
        libc::sigaddset(set.as_mut_ptr(), libc::SIGINT);
        libc::sigaddset(set.as_mut_ptr(), libc::SIGTERM);
        Ok(set.assume_init())
    }
}

/// Blocks SIGINT and SIGTERM in the calling thread. Call it before starting
/// any other thread.
pub fn block_termination_signals() -> io::Result<()> {
    let set = termination_set()?;
    // SAFETY: `set` is a valid signal set; a null old-set pointer is allowed.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// Waits up to `limit` for SIGINT or SIGTERM; returns the signal number.
pub fn wait_termination(limit: Duration) -> io::Result<Option<i32>> {
    let set = termination_set()?;
    let timeout = libc::timespec {
        tv_sec: limit.as_secs() as libc::time_t,
        tv_nsec: limit.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `set` and `timeout` are valid for the call; a null siginfo
    // pointer is allowed.
    match syscall!(libc::sigtimedwait(&set, std::ptr::null_mut(), &timeout)) {
        Ok(signal) => Ok(Some(signal)),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EINTR)) => Ok(None),
        Err(e) => Err(e),
    }
}
