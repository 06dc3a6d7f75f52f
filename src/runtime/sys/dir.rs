//! Reading a directory that was opened beneath the root (`runtime::sys::beneath`):
//! its entries come from that descriptor (`fdopendir` on a duplicate), and
//! each is `fstatat`-ed relative to it, never looked up by a path, so what
//! is listed is what was opened.

use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::ptr::NonNull;

use super::syscall;

/// An open directory stream, read in batches.
pub struct DirReader {
    dir: NonNull<libc::DIR>,
}

// SAFETY: the stream is owned by this value alone and used through `&mut
// self`: one thread at a time, which is all `readdir` asks.
unsafe impl Send for DirReader {}

/// What a directory entry is, from `fstatat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (not followed).
    Symlink,
    /// A socket, fifo or device.
    Other,
}

/// An entry's type, size and modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryMeta {
    /// What it is.
    pub kind: Kind,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, seconds since the Unix epoch.
    pub mtime: i64,
}

impl DirReader {
    /// A stream over the entries of `dir`, a directory open for reading;
    /// `dir` itself stays open and untouched.
    pub fn new(dir: &File) -> io::Result<DirReader> {
        // SAFETY: `dir` is an open descriptor for the duration of the call.
        let fd = syscall!(libc::fcntl(dir.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0))?;
        // SAFETY: `fd` is a descriptor we own; on success the stream owns it.
        let stream = unsafe { libc::fdopendir(fd) };
        let Some(stream) = NonNull::new(stream) else {
            let err = io::Error::last_os_error();
            // SAFETY: `fdopendir` failed, so `fd` is still ours to close.
            unsafe { libc::close(fd) };
            return Err(err);
        };
        let reader = DirReader { dir: stream };
        // The duplicate shares the offset: start from the first entry.
        // SAFETY: `reader.dir` is a live stream.
        unsafe { libc::rewinddir(reader.dir.as_ptr()) };
        Ok(reader)
    }

    /// Up to `max` more names ("." and ".." left out); empty at the end.
    pub fn next_names(&mut self, max: usize) -> io::Result<Vec<OsString>> {
        let mut names = Vec::with_capacity(max.min(1024));
        while names.len() < max {
            // SAFETY: errno is thread-local; cleared so that the end of the
            // stream (NULL, errno untouched) can be told from an error.
            unsafe { *libc::__errno_location() = 0 };
            // SAFETY: `self.dir` is a live stream, used by this thread alone.
            let entry = unsafe { libc::readdir64(self.dir.as_ptr()) };
            if entry.is_null() {
                let err = io::Error::last_os_error();
                return match err.raw_os_error() {
                    Some(0) | None => Ok(names),
                    Some(_) => Err(err),
                };
            }
            // SAFETY: a non-NULL entry is valid until the next readdir on
            // this stream, and `d_name` is NUL-terminated within it.
            let name = unsafe { std::ffi::CStr::from_ptr((*entry).d_name.as_ptr()) };
            let bytes = name.to_bytes();
            if bytes != b"." && bytes != b".." {
                names.push(OsString::from_vec(bytes.to_vec()));
            }
        }
        Ok(names)
    }
}

impl Drop for DirReader {
    fn drop(&mut self) {
        // SAFETY: the stream is live and closed once, here (with its descriptor).
        unsafe { libc::closedir(self.dir.as_ptr()) };
    }
}

/// `fstatat(dir, name)`: the entry itself when `follow` is false (a
/// symlink is reported as one), else what it points to.
pub fn stat_at(dir: &File, name: &OsStr, follow: bool) -> io::Result<EntryMeta> {
    let c_name =
        CString::new(name.as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let flags = if follow { 0 } else { libc::AT_SYMLINK_NOFOLLOW };
    // SAFETY: an all-zero `stat` is a valid value for the kernel to overwrite.
    let mut st: libc::stat64 = unsafe { std::mem::zeroed() };
    // SAFETY: `dir` is open, `c_name` NUL-terminated, `st` a live `stat64`.
    syscall!(libc::fstatat64(
        dir.as_raw_fd(),
        c_name.as_ptr(),
        &mut st,
        flags
    ))?;
    let kind = match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => Kind::File,
        libc::S_IFDIR => Kind::Dir,
        libc::S_IFLNK => Kind::Symlink,
        _ => Kind::Other,
    };
    Ok(EntryMeta {
        kind,
        size: u64::try_from(st.st_size).unwrap_or(0),
        mtime: st.st_mtime,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn lists_every_entry_in_batches_and_stats_relative_to_the_directory() {
        let base = std::env::temp_dir().join(format!("conveyor-dir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("sub")).unwrap();
        for i in 0..10 {
            std::fs::write(base.join(format!("f{i}")), vec![b'x'; i]).unwrap();
        }
        std::os::unix::fs::symlink("f3", base.join("link")).unwrap();
        let dir = File::open(&base).unwrap();
        let mut reader = DirReader::new(&dir).unwrap();
        let mut names = BTreeSet::new();
        loop {
            let batch = reader.next_names(3).unwrap();
            assert!(batch.len() <= 3);
            if batch.is_empty() {
                break;
            }
            names.extend(batch);
        }
        assert_eq!(names.len(), 12, "{names:?}");
        let f5 = stat_at(&dir, OsStr::new("f5"), false).unwrap();
        assert_eq!((f5.kind, f5.size), (Kind::File, 5));
        assert_eq!(
            stat_at(&dir, OsStr::new("sub"), false).unwrap().kind,
            Kind::Dir
        );
        let link = stat_at(&dir, OsStr::new("link"), false).unwrap();
        assert_eq!(link.kind, Kind::Symlink);
        assert_eq!(stat_at(&dir, OsStr::new("link"), true).unwrap().size, 3);
        assert!(stat_at(&dir, OsStr::new("nope"), false).is_err());
        // A second reader of the same descriptor starts from the top.
        assert_eq!(
            DirReader::new(&dir).unwrap().next_names(100).unwrap().len(),
            12
        );
        std::fs::remove_dir_all(&base).unwrap();
    }
}
