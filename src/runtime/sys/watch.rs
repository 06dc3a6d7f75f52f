//! `FileWatcher`: inotify on the reactor, so a green thread learns that a
//! file or directory changed without polling it with `stat`.

use std::ffi::CString;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::syscall;
use crate::runtime::io::Async;

/// What a watch reports: changes to a file's content or identity.
const FILE_MASK: u32 = libc::IN_MODIFY
    | libc::IN_ATTRIB
    | libc::IN_CLOSE_WRITE
    | libc::IN_MOVE_SELF
    | libc::IN_DELETE_SELF;
/// For a directory: entries created, removed or renamed, or the directory itself moved.
const DIR_MASK: u32 = libc::IN_CREATE
    | libc::IN_DELETE
    | libc::IN_MOVED_FROM
    | libc::IN_MOVED_TO
    | libc::IN_MOVE_SELF
    | libc::IN_DELETE_SELF
    | libc::IN_ATTRIB;

/// Identifies one watch (an inotify watch descriptor).
pub type WatchId = i32;

/// One change notification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Something changed under this watch.
    Changed(WatchId),
    /// The watch is gone (its file was deleted or the watch removed).
    Ended(WatchId),
    /// The kernel dropped events: assume everything changed.
    Overflow,
}

/// An inotify instance registered with the reactor, watching any number of
/// files and directories.
pub struct FileWatcher {
    fd: Async<OwnedFd>,
}

impl FileWatcher {
    /// A watcher with no watches yet; fails if inotify cannot be set up
    /// (e.g. the per-user instance limit is reached).
    pub fn new() -> io::Result<FileWatcher> {
        // SAFETY: inotify_init1 takes no pointers; a negative result is an error.
        let fd = syscall!(libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC))?;
        // SAFETY: a fresh descriptor that nothing else owns.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(FileWatcher {
            fd: Async::new_nonblocking(owned),
        })
    }

    /// Watches a file (content, metadata, link count, moves) or, with
    /// `directory`, a directory's entries. Watching the same path twice
    /// returns the same id.
    pub fn watch(&self, path: &Path, directory: bool) -> io::Result<WatchId> {
        let c_path = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path has a NUL byte"))?;
        let mask = if directory {
            DIR_MASK | libc::IN_ONLYDIR
        } else {
            FILE_MASK
        };
        // SAFETY: `c_path` is a valid NUL-terminated string for the call.
        syscall!(libc::inotify_add_watch(
            self.fd.as_raw_fd(),
            c_path.as_ptr(),
            mask
        ))
    }

    /// The changes reported so far, without waiting (empty if none). Always
    /// asks the kernel (one `read` at least): a caller relies on it to see
    /// every change made before the call.
    pub fn changes_now(&self) -> io::Result<Vec<Change>> {
        let mut changes = Vec::new();
        // Not zeroed: this runs once per scheduler turn with requests for
        // cached files, nearly always to read nothing, and clearing 4 KiB
        // each time cost more than the rest of the check.
        let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
        loop {
            // SAFETY: reads at most `buf.len()` bytes into `buf`.
            let read = syscall!(libc::read(
                self.fd.get_ref().as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len()
            ));
            match read {
                Ok(n) => {
                    let n = (n as usize).min(buf.len());
                    // SAFETY: the kernel wrote the first `n` bytes of `buf`
                    // (a read returns how many it wrote, at most the length
                    // given), and `MaybeUninit<u8>` has the layout of `u8`.
                    let events =
                        unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), n) };
                    changes.extend(parse_events(events));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(changes),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Waits for the next batch of changes.
    pub async fn changes(&self) -> io::Result<Vec<Change>> {
        let mut buf = [0u8; 4096];
        let n = self
            .fd
            .read_with(|fd| {
                // SAFETY: reads at most `buf.len()` bytes into `buf`.
                syscall!(libc::read(
                    fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len()
                ))
                .map(|n| n as usize)
            })
            .await?;
        Ok(parse_events(&buf[..n]))
    }
}

/// Decodes `struct inotify_event` records: wd, mask, cookie, len, `name[len]`.
fn parse_events(mut bytes: &[u8]) -> Vec<Change> {
    const HEADER: usize = 16;
    let mut changes = Vec::new();
    while bytes.len() >= HEADER {
        let field = |at: usize| {
            u32::from_ne_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        let wd = field(0) as i32;
        let mask = field(4);
        let name_len = field(12) as usize;
        changes.push(if mask & libc::IN_Q_OVERFLOW != 0 {
            Change::Overflow
        } else if mask & libc::IN_IGNORED != 0 {
            Change::Ended(wd)
        } else {
            Change::Changed(wd)
        });
        bytes = bytes.get(HEADER + name_len..).unwrap_or(&[]);
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{block_on, timeout};
    use std::time::Duration;

    #[test]
    fn a_write_to_a_watched_file_is_reported() {
        let dir = std::env::temp_dir().join(format!("conveyor-watch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("f.txt");
        std::fs::write(&file, b"one").expect("write");
        let (file_path, dir_path) = (file.clone(), dir.clone());
        let reported = block_on(async move {
            let (file, dir) = (file_path, dir_path);
            let watcher = FileWatcher::new().expect("inotify");
            let id = watcher.watch(&file, false).expect("watch");
            let dir_id = watcher.watch(&dir, true).expect("watch dir");
            assert_eq!(watcher.changes_now().expect("read"), []);
            std::fs::write(&file, b"two").expect("rewrite");
            // Queued by the write itself: seen at once, without waiting.
            assert!(watcher
                .changes_now()
                .expect("read")
                .contains(&Change::Changed(id)));
            std::fs::write(&file, b"three").expect("rewrite again");
            let first = timeout(Duration::from_secs(5), watcher.changes()).await;
            std::fs::write(dir.join("new.txt"), b"x").expect("create");
            let second = timeout(Duration::from_secs(5), watcher.changes()).await;
            (id, dir_id, first, second)
        });
        let _ = std::fs::remove_dir_all(&dir);
        let (id, dir_id, first, second) = reported;
        let first = first.expect("in time").expect("read");
        assert!(first.contains(&Change::Changed(id)), "{first:?}");
        let second = second.expect("in time").expect("read");
        assert!(second.contains(&Change::Changed(dir_id)), "{second:?}");
    }

    /// More events than one read's buffer holds: `changes_now` reads until
    /// the queue is empty and decodes every one.
    #[test]
    fn a_burst_larger_than_the_buffer_is_read_whole() {
        let dir = std::env::temp_dir().join(format!("conveyor-burst-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let watcher = FileWatcher::new().expect("inotify");
        let dir_id = watcher.watch(&dir, true).expect("watch dir");
        // Each event: 16 bytes and the name padded; 300 of them pass 4 KiB.
        for i in 0..300 {
            std::fs::File::create(dir.join(format!("a-long-enough-name-{i:04}.txt")))
                .expect("create");
        }
        let changes = watcher.changes_now().expect("read");
        let _ = std::fs::remove_dir_all(&dir);
        let created = changes.iter().filter(|c| **c == Change::Changed(dir_id));
        assert!(created.count() >= 300, "{} changes", changes.len());
    }
}
