//! Waiting for SIGINT/SIGTERM (and, for a daemon, SIGHUP and SIGUSR1) on a
//! plain thread, without a signal handler: the signals are blocked (so
//! every thread spawned later inherits the block) and collected with
//! `sigtimedwait`.

use std::io;
use std::mem::MaybeUninit;
use std::time::Duration;

use super::syscall;

fn termination_set() -> io::Result<libc::sigset_t> {
    signal_set(&[libc::SIGINT, libc::SIGTERM])
}

/// The signals a daemon acts on: stop (SIGINT, SIGTERM), reload the
/// configuration (SIGHUP), reopen the log (SIGUSR1).
const CONTROL: [libc::c_int; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGUSR1];

fn signal_set(signals: &[libc::c_int]) -> io::Result<libc::sigset_t> {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the set it is given.
    syscall!(libc::sigemptyset(set.as_mut_ptr()))?;
    for &signal in signals {
        // SAFETY: sigaddset only writes to the set initialised above.
        syscall!(libc::sigaddset(set.as_mut_ptr(), signal))?;
    }
    // SAFETY: initialised by sigemptyset above.
    Ok(unsafe { set.assume_init() })
}

/// Blocks SIGINT, SIGTERM, SIGHUP and SIGUSR1 in the calling thread, for
/// [`wait_control`]. Call it before starting any other thread.
pub fn block_control_signals() -> io::Result<()> {
    block(&signal_set(&CONTROL)?)
}

/// Waits up to `limit` for SIGINT, SIGTERM, SIGHUP or SIGUSR1; returns the
/// signal number.
pub fn wait_control(limit: Duration) -> io::Result<Option<i32>> {
    wait(&signal_set(&CONTROL)?, limit)
}

fn block(set: &libc::sigset_t) -> io::Result<()> {
    // SAFETY: `set` is a valid signal set; a null old-set pointer is allowed.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// Waits up to `limit` for SIGINT or SIGTERM (blocked by
/// [`block_control_signals`]); returns the signal number. SIGHUP and SIGUSR1
/// stay pending meanwhile.
pub fn wait_termination(limit: Duration) -> io::Result<Option<i32>> {
    wait(&termination_set()?, limit)
}

fn wait(set: &libc::sigset_t, limit: Duration) -> io::Result<Option<i32>> {
    let timeout = libc::timespec {
        tv_sec: limit.as_secs() as libc::time_t,
        tv_nsec: limit.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `set` and `timeout` are valid for the call; a null siginfo
    // pointer is allowed.
    match syscall!(libc::sigtimedwait(set, std::ptr::null_mut(), &timeout)) {
        Ok(signal) => Ok(Some(signal)),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EINTR)) => Ok(None),
        Err(e) => Err(e),
    }
}
