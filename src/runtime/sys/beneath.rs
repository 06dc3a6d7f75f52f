//! Opening files beneath a directory descriptor, so that nothing a client
//! names and nothing an attacker renames can reach outside it.
//!
//! A path is never looked up by name after it was checked: the file is
//! opened once, relative to the root's descriptor, and everything about it
//! (type, size, times, bytes) comes from that descriptor afterwards.
//!
//! - Linux 5.6+: `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`, the
//!   kernel enforcing confinement for the whole walk. A first try adds
//!   `RESOLVE_NO_SYMLINKS`, which tells whether a symlink was followed.
//! - Absolute symlinks (refused by `RESOLVE_BENEATH` even when they point
//!   inside) and kernels without `openat2` (`ENOSYS`): a walk one component
//!   at a time with `openat(dirfd, name, O_PATH | O_NOFOLLOW)`, each symlink
//!   read from the descriptor that was opened (`readlinkat(fd, "")`) and
//!   resolved against the policy, as nginx's `disable_symlinks` does. `..`
//!   pops the walk's own stack of directory descriptors and never opens
//!   `..`, so a directory renamed away cannot lead it out.

use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use super::syscall;

/// Which symlinks an open may follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Symlinks {
    /// Only those that resolve inside the root (the default).
    InsideRoot,
    /// None at all: any symlink on the way is refused.
    Refuse,
    /// Any, wherever they point: confinement is given up.
    Anywhere,
}

/// A file opened beneath a [`RootDir`].
#[derive(Debug)]
pub struct Opened {
    /// Open for reading (a directory too: its entries can be opened with
    /// [`RootDir::open_in`]).
    pub file: File,
    /// No symlink was followed: the file is where the path says.
    pub direct: bool,
}

/// A directory that files are opened beneath.
#[derive(Debug)]
pub struct RootDir {
    fd: OwnedFd,
    /// Canonical path at start-up: absolute symlinks are compared with it.
    path: PathBuf,
    /// False: never call `openat2` (the kernel lacks it, or a test says so).
    use_openat2: bool,
}

/// Set once `openat2` answered `ENOSYS`: do not ask again.
static OPENAT2_MISSING: AtomicBool = AtomicBool::new(false);

/// Symlinks followed in one open before it fails with `ELOOP`, as Linux.
const MAX_SYMLINKS: u32 = 40;

/// Flags of every descriptor opened here. `O_NONBLOCK`: opening a fifo must
/// not wait for a writer (it is refused later, by type).
const READ_FLAGS: libc::c_int =
    libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK;

/// `struct open_how` (libc's is `non_exhaustive`, so it cannot be built).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

impl RootDir {
    /// Opens `path` (which must be a directory) as a root.
    pub fn open(path: &Path) -> io::Result<RootDir> {
        let path = path.canonicalize()?;
        let name = c_name(path.as_os_str())?;
        // SAFETY: `name` is NUL-terminated and lives across the call.
        let fd = syscall!(libc::open(
            name.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC
        ))?;
        Ok(RootDir {
            // SAFETY: `open` just returned this descriptor; nothing else owns it.
            fd: unsafe { OwnedFd::from_raw_fd(fd as RawFd) },
            path,
            use_openat2: !OPENAT2_MISSING.load(Ordering::Relaxed),
        })
    }

    /// The same root, opened by the component walk only (no `openat2`), as
    /// on kernels before 5.6: lets tests cover that path everywhere.
    pub fn without_openat2(path: &Path) -> io::Result<RootDir> {
        RootDir::open(path).map(|root| RootDir {
            use_openat2: false,
            ..root
        })
    }

    /// The canonical path the root had when it was opened.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens `relative` (no leading `/`, no `..` is needed but any is
    /// confined) beneath the root. Escapes fail with `ErrorKind::NotFound`
    /// unless `symlinks` is `Anywhere`.
    pub fn open_beneath(&self, relative: &Path, symlinks: Symlinks) -> io::Result<Opened> {
        self.open_at(None, relative, symlinks)
    }

    /// Opens `name` inside `dir`, a directory opened by [`RootDir::open_beneath`]
    /// whose path beneath the root is `dir_relative` (used only when a
    /// symlink has to be resolved against the root).
    pub fn open_in(
        &self,
        dir: &File,
        dir_relative: &Path,
        name: &str,
        symlinks: Symlinks,
    ) -> io::Result<Opened> {
        match self.open_at(Some(dir), Path::new(name), Symlinks::Refuse) {
            Ok(opened) => Ok(opened),
            // A symlink: resolved from the root like any other path.
            Err(e) if is_symlink_refusal(&e) && symlinks != Symlinks::Refuse => {
                self.open_beneath(&dir_relative.join(name), symlinks)
            }
            Err(e) => Err(e),
        }
    }

    fn open_at(
        &self,
        dir: Option<&File>,
        relative: &Path,
        symlinks: Symlinks,
    ) -> io::Result<Opened> {
        let base = dir.map_or(self.fd.as_raw_fd(), AsRawFd::as_raw_fd);
        // The empty path names the directory itself.
        let relative = match relative.as_os_str().is_empty() {
            true => Path::new("."),
            false => relative,
        };
        let name = c_name(relative.as_os_str())?;
        if symlinks == Symlinks::Anywhere {
            let direct = self.openat2(base, &name, libc::RESOLVE_NO_SYMLINKS);
            if let Some(Ok(file)) = direct {
                return Ok(Opened { file, direct: true });
            }
            // SAFETY: `base` is the root's open descriptor; `name` is NUL-terminated.
            let fd = syscall!(libc::openat(base, name.as_ptr(), READ_FLAGS))?;
            return Ok(Opened {
                file: owned_file(fd),
                direct: false,
            });
        }
        let confined = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;
        match self.openat2(base, &name, confined | libc::RESOLVE_NO_SYMLINKS) {
            Some(Ok(file)) => return Ok(Opened { file, direct: true }),
            Some(Err(e)) if !is_symlink_refusal(&e) => return Err(e),
            Some(Err(e)) if symlinks == Symlinks::Refuse => return Err(e),
            // A symlink on the way: relative ones the kernel can still
            // confine; absolute ones need the walk.
            Some(Err(_)) => match self.openat2(base, &name, confined) {
                Some(Ok(file)) => {
                    return Ok(Opened {
                        file,
                        direct: false,
                    })
                }
                Some(Err(e)) if !is_symlink_refusal(&e) => return Err(e),
                _ => {}
            },
            None => {}
        }
        let start = dir.map(|_| base);
        self.walk(start, relative, symlinks)
    }

    /// `openat2`, or None when it is not to be used. Retries `EAGAIN` (a
    /// rename raced with the walk) a few times, then gives None: the
    /// component walk is as safe, just slower.
    fn openat2(&self, base: RawFd, name: &CString, resolve: u64) -> Option<io::Result<File>> {
        if !self.use_openat2 {
            return None;
        }
        let how = OpenHow {
            flags: READ_FLAGS as u64,
            mode: 0,
            resolve,
        };
        for _ in 0..4 {
            // SAFETY: `base` is open, `name` NUL-terminated, and `how` a live
            // `open_how` of the size passed.
            let rc = syscall!(libc::syscall(
                libc::SYS_openat2,
                base,
                name.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>()
            ));
            match rc {
                Ok(fd) => return Some(Ok(owned_file(fd as RawFd))),
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => continue,
                Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
                    OPENAT2_MISSING.store(true, Ordering::Relaxed);
                    return None;
                }
                Err(e) => return Some(Err(e)),
            }
        }
        None
    }

    /// The component walk: `start` is a directory beneath the root whose
    /// path is not needed (None: the root itself).
    fn walk(
        &self,
        start: Option<RawFd>,
        relative: &Path,
        symlinks: Symlinks,
    ) -> io::Result<Opened> {
        // Directories entered, innermost last; empty: at the root (or at
        // `start`, which `..` may not leave either).
        let mut stack: Vec<OwnedFd> = Vec::new();
        let base = start.unwrap_or(self.fd.as_raw_fd());
        let mut todo: Vec<OsString> = components(relative)?;
        todo.reverse();
        let mut followed = 0u32;
        while let Some(name) = todo.pop() {
            if name == ".." {
                if stack.pop().is_none() {
                    return Err(escaped());
                }
                continue;
            }
            let here = stack.last().map_or(base, AsRawFd::as_raw_fd);
            let c = c_name(&name)?;
            let last = todo.is_empty();
            if last {
                // SAFETY: `here` is open (the root or on `stack`); `c` is NUL-terminated.
                let fd = syscall!(libc::openat(
                    here,
                    c.as_ptr(),
                    READ_FLAGS | libc::O_NOFOLLOW
                ));
                match fd {
                    Ok(fd) => {
                        return Ok(Opened {
                            file: owned_file(fd),
                            direct: followed == 0,
                        })
                    }
                    // A symlink: read it below.
                    Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {}
                    Err(e) => return Err(e),
                }
            }
            // SAFETY: as above.
            let fd = owned(syscall!(libc::openat(
                here,
                c.as_ptr(),
                libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC
            ))?);
            // Counts retries after a race as well as links, so it ends.
            followed += 1;
            if followed > MAX_SYMLINKS {
                return Err(io::Error::from_raw_os_error(libc::ELOOP));
            }
            match file_type(&fd)? {
                libc::S_IFLNK => {
                    if symlinks == Symlinks::Refuse {
                        return Err(io::Error::from_raw_os_error(libc::ELOOP));
                    }
                    // Read from the descriptor just opened: the link that
                    // was seen, not whatever has the name now.
                    let target = PathBuf::from(read_link(&fd)?);
                    let rest = if target.is_absolute() {
                        if start.is_some() {
                            // Only walks from the root resolve absolute links.
                            return Err(io::Error::from_raw_os_error(libc::EXDEV));
                        }
                        let inside = target.strip_prefix(&self.path).map_err(|_| escaped())?;
                        stack.clear();
                        inside.to_path_buf()
                    } else {
                        target
                    };
                    let mut more = components(&rest)?;
                    more.reverse();
                    todo.extend(more);
                }
                libc::S_IFDIR if !last => {
                    followed -= 1;
                    stack.push(fd);
                }
                _ if !last => return Err(io::Error::from_raw_os_error(libc::ENOTDIR)),
                // It was a symlink a moment ago and is not now: look again.
                _ => todo.push(name),
            }
        }
        // The path named a directory we stand in (e.g. "a/.." or "").
        let here = stack.last().map_or(base, AsRawFd::as_raw_fd);
        // SAFETY: `here` is open (the root or on `stack`); "." is a C literal.
        let fd = syscall!(libc::openat(
            here,
            c".".as_ptr(),
            READ_FLAGS | libc::O_DIRECTORY
        ))?;
        Ok(Opened {
            file: owned_file(fd),
            direct: followed == 0,
        })
    }
}

/// The error kinds `RESOLVE_*` give when a symlink (or an escape) stops
/// the kernel's walk.
fn is_symlink_refusal(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::EXDEV))
}

fn escaped() -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, "path leads outside the root")
}

/// The normal components of a path (`.` and a leading `/` dropped).
fn components(path: &Path) -> io::Result<Vec<OsString>> {
    Ok(path
        .components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect())
}

fn c_name(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::ErrorKind::InvalidInput.into())
}

fn owned(fd: libc::c_int) -> OwnedFd {
    // SAFETY: `fd` was just returned by a successful open; nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(fd as RawFd) }
}

fn owned_file(fd: libc::c_int) -> File {
    File::from(owned(fd))
}

fn file_type(fd: &OwnedFd) -> io::Result<libc::mode_t> {
    // SAFETY: an all-zero `stat` is a valid value to be overwritten.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is open and `st` is a live, exclusively borrowed `stat`.
    syscall!(libc::fstat(fd.as_raw_fd(), &mut st))?;
    Ok(st.st_mode & libc::S_IFMT)
}

fn read_link(fd: &OwnedFd) -> io::Result<OsString> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: `fd` is open and `buf` is live for the length passed.
    let n = syscall!(libc::readlinkat(
        fd.as_raw_fd(),
        c"".as_ptr(),
        buf.as_mut_ptr().cast(),
        buf.len()
    ))?;
    buf.truncate(n as usize);
    Ok(OsString::from_vec(buf))
}
