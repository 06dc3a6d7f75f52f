//! The operating system beneath the runtime, as mio keeps it: one file per
//! facility, and `syscall!`, the one way any of them calls libc.
//!
//! - [`sockets`]: Unix-domain listeners, sockets inherited from systemd.
//! - [`account`]: switching to another user after binding.
//! - [`watch`]: inotify file watching on the reactor.
//! - [`beneath`]: opening files confined beneath a directory descriptor.
//! - [`dir`]: reading a directory opened beneath the root.
//! - [`limits`]: the open-file limit, read and raised; a thread's priority.
//! - [`signal`]: the control signals, read from a signalfd.
//! - [`lock`]: an advisory lock (`flock`) on an open file.

pub mod account;
pub mod beneath;
pub mod dir;
pub mod limits;
pub mod lock;
pub mod signal;
pub mod sockets;
pub mod watch;

/// Runs a libc call that returns -1 and sets `errno` on failure, as mio's
/// macro of the same name: `Ok(result)`, or the `errno` as an `io::Error`.
///
/// The call runs in an `unsafe` block here, so the proof is the caller's:
/// every use carries a `// SAFETY:` comment saying why its arguments are
/// valid (live buffers of the lengths given, descriptors it owns).
macro_rules! syscall {
    ($call:expr) => {{
        // SAFETY: stated at each use (see the macro's documentation).
        // `unused_unsafe`: a use inside an `unsafe fn` argument closure.
        #[allow(unused_unsafe)]
        let rc = unsafe { $call };
        if rc == -1 {
            Err(::std::io::Error::last_os_error())
        } else {
            Ok(rc)
        }
    }};
}

pub(crate) use syscall;

#[cfg(test)]
mod tests {
    #[test]
    fn minus_one_becomes_the_errno() {
        // SAFETY: closing a descriptor number that is never open (-1) has
        // no effect beyond EBADF.
        let err = syscall!(libc::close(-1)).expect_err("EBADF");
        assert_eq!(err.raw_os_error(), Some(libc::EBADF));
        // SAFETY: getpid takes no arguments and cannot fail.
        let pid = syscall!(libc::getpid()).expect("pid");
        assert_eq!(pid as u32, std::process::id());
    }
}
