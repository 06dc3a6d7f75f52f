//! The static files' cache (nginx's open file cache in spirit): per worker,
//! the small files' bytes and the sendfile-sized files' descriptors, with
//! their heads prebuilt; kept fresh by inotify, or by a `stat` per read of
//! requests; and the file version that ties a head to its bytes.

use std::collections::{HashMap, HashSet};
use std::fs::{File, Metadata};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use crate::runtime::sys::watch::{Change, FileWatcher, WatchId};
use crate::runtime::{self, race, read_seq_now, Either, Latch};

use super::negotiate::{negotiate, Encoding};
use super::path_hash::PathHash;
use super::store::{EntryState, Store};
use super::{content_type_or, Validators};

/// Identity of a file version: any change to it invalidates a cached copy.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Version {
    pub(super) len: u64,
    mtime_ns: i128,
    ino: u64,
    dev: u64,
}

impl Version {
    pub(super) fn of(meta: &Metadata) -> Version {
        Version {
            len: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ino: meta.ino(),
            dev: meta.dev(),
        }
    }

    /// The same version, encoded to `len` bytes.
    pub(super) fn with_len(self, len: u64) -> Version {
        Version { len, ..self }
    }
}

/// A file as it is served.
pub(super) struct FileInfo {
    pub(super) path: PathBuf,
    pub(super) version: Version,
    pub(super) validators: Validators,
    pub(super) content_type: String,
    /// `validators.last_modified` as an HTTP date, formatted once: the 206
    /// and 304 heads write it per response.
    pub(super) last_modified: String,
    /// "Content-Type … Last-Modified … Accept-Ranges" lines, prebuilt
    /// (with Content-Encoding and Vary where they apply).
    pub(super) head_fields: Vec<u8>,
    /// The fields `[[headers]]` rules wrote (also in `head_fields`), for
    /// the 206 and 304 heads, which are built per response.
    pub(super) rule_fields: Vec<u8>,
    /// Fields the rules removed or replaced (`remove`, `set`): the 206 and
    /// 304 heads leave out their own copies of these.
    pub(super) rule_overrides: Vec<String>,
    /// Content-Encoding of this representation; None: the file as it is.
    pub(super) encoding: Option<Encoding>,
    /// The resource has encoded variants: every response says
    /// `Vary: Accept-Encoding`, the identity one included.
    pub(super) vary: bool,
    /// The encoded representations (sidecars, or compressed once); empty
    /// for most files, which then cost nothing more to serve.
    pub(super) variants: Vec<Variant>,
    /// Other paths whose version is part of this one's: the sidecars, and
    /// the directory (a sidecar appearing changes it). Checked with the
    /// file where inotify does not watch.
    pub(super) also: Vec<(PathBuf, Version)>,
    /// The shared store's entry for this version, and whether it was ready
    /// (its variants among `variants`) when this was built: once that
    /// changes, this is out of date.
    pub(super) stored: Option<(Arc<EntryState>, bool)>,
}

/// An encoded representation of a file.
pub(super) struct Variant {
    pub(super) info: Arc<FileInfo>,
    pub(super) body: VariantBody,
}

/// A variant's bytes: held (a sidecar), or in the shared store of
/// compressed files, which may evict them.
pub(super) enum VariantBody {
    Held(Body),
    Stored(Weak<[u8]>),
}

impl FileInfo {
    /// Whether the file, its sidecars and its directory are still the
    /// versions this was built from (a `stat` each).
    pub(super) fn is_current(&self) -> bool {
        let same = |path: &Path, version: &Version| {
            std::fs::metadata(path).is_ok_and(|meta| Version::of(&meta) == *version)
        };
        same(&self.path, &self.version) && self.also.iter().all(|(p, v)| same(p, v))
    }

    /// Whether the shared store's entry for this version changed since
    /// this was built (compressed since, or evicted): one atomic load.
    pub(super) fn stored_changed(&self) -> bool {
        self.stored
            .as_ref()
            .is_some_and(|(slot, ready)| slot.changed_from(*ready))
    }

    /// The representation to send for an `Accept-Encoding` header; the
    /// file as it is if the chosen one was evicted meanwhile.
    #[inline(always)]
    pub(super) fn representation(
        self: Arc<Self>,
        body: Body,
        accept_encoding: Option<&str>,
        store: &Store,
    ) -> (Arc<FileInfo>, Body) {
        if self.variants.is_empty() {
            return (self, body);
        }
        let mut available = [Encoding::Identity; 3];
        for (slot, v) in available.iter_mut().zip(&self.variants) {
            *slot = v.info.encoding.unwrap_or(Encoding::Identity);
        }
        let chosen = negotiate(accept_encoding, &available[..self.variants.len()]);
        match self
            .variants
            .iter()
            .find(|v| v.info.encoding == Some(chosen))
        {
            Some(v) => match &v.body {
                VariantBody::Held(held) => (v.info.clone(), held.clone()),
                VariantBody::Stored(weak) => match weak.upgrade() {
                    Some(bytes) => {
                        if let Some((slot, _)) = &self.stored {
                            store.touch(slot);
                        }
                        (v.info.clone(), Body::Memory(bytes))
                    }
                    None => (self, body),
                },
            },
            None => (self, body),
        }
    }

    /// Memory bytes and open files held by this file's bodies (the
    /// shared store's are counted there).
    pub(super) fn cost(&self, body: &Body) -> (u64, usize) {
        let held = self.variants.iter().filter_map(|v| match &v.body {
            VariantBody::Held(b) => Some(b),
            VariantBody::Stored(_) => None,
        });
        std::iter::once(body)
            .chain(held)
            .fold((0, 0), |(bytes, files), b| match b {
                Body::Memory(m) => (bytes + m.len() as u64, files),
                Body::Disk(_) => (bytes, files + 1),
            })
    }
}

pub(super) struct CachedFile {
    pub(super) info: Arc<FileInfo>,
    pub(super) body: Body,
    /// inotify watches the file and its directories: no need to stat it.
    pub(super) watched: bool,
    /// Read number (`read_seq_now`) when the file was last checked against
    /// the disk: requests received by earlier reads need no new check.
    pub(super) checked_at: AtomicU64,
}

/// A worker's cache of small files, keyed by URL path.
///
/// A cached file is never served stale. Either inotify watches it (and the
/// directories up to the root): the kernel queues a change event before the
/// write that made the change returns, so once the worker has read the
/// inotify queue after a request was read, every change made before that
/// request was sent is known (`synced_at`). Or, where watching is impossible
/// (symlinks on the way, no inotify, `revalidate = "stat"`), a hit costs one
/// `stat` per read of requests to compare versions.
#[derive(Default)]
pub(super) struct Cache {
    /// Cached files and known misses by URL path: one map, so a request
    /// for either costs one hash of its path.
    pub(super) entries: HashMap<String, Cached, PathHash>,
    /// Bytes of this worker's entries; also counted in `file_bytes`, the
    /// total of every worker's, which the one byte budget covers.
    pub(super) bytes: u64,
    pub(super) file_bytes: Arc<AtomicU64>,
    watch: Watch,
    /// Read number (`read_seq_now`) just before the inotify queue was last
    /// read empty: requests received by earlier reads see every change.
    pub(super) synced_at: u64,
    /// Entries that hold an open file (sendfile-sized), at most
    /// `OPEN_FILES_KEPT`.
    pub(super) open_files: usize,
    /// How many `entries` are `Cached::Missing`, at most `MISSES_KEPT`.
    pub(super) misses: usize,
}

/// What the cache holds for a URL path.
pub(super) enum Cached {
    /// The file, served from here.
    File(Arc<CachedFile>),
    /// Known missing, while inotify watches every directory on its way that
    /// exists: a 404 then costs no syscall, and any entry made in one of
    /// those directories forgets every such entry.
    Missing,
}

/// Open files a worker's cache keeps for sendfile: each saves an open, a
/// stat and a close per request, and holds a descriptor.
pub(super) const OPEN_FILES_KEPT: usize = 128;

/// Missing paths a worker's cache remembers; past this it starts afresh, so
/// a scan of random paths cannot grow it without bound.
pub(super) const MISSES_KEPT: usize = 4096;

#[derive(Default)]
enum Watch {
    #[default]
    Unstarted,
    Active {
        watcher: Arc<FileWatcher>,
        files: HashMap<WatchId, Vec<String>>,
        dirs: HashSet<WatchId>,
        /// Ends the green thread reading the watcher when the cache goes
        /// (a reload replaced the static files): its inotify descriptor
        /// then closes instead of outliving every reload.
        _stop: StopOnDrop,
    },
    Unavailable,
}

/// Sets its latch when dropped.
struct StopOnDrop(Arc<Latch>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.set();
    }
}

impl Cache {
    /// A worker's cache whose bytes count towards `file_bytes`.
    pub(super) fn new(file_bytes: Arc<AtomicU64>) -> Cache {
        Cache {
            file_bytes,
            ..Cache::default()
        }
    }

    pub(super) fn remove(&mut self, url_path: &str) {
        match self.entries.remove(url_path) {
            Some(Cached::File(old)) => {
                let (bytes, files) = old.info.cost(&old.body);
                self.bytes -= bytes;
                self.file_bytes.fetch_sub(bytes, Ordering::Relaxed);
                self.open_files -= files;
            }
            Some(Cached::Missing) => self.misses -= 1,
            None => {}
        }
    }

    /// Remembers `url_path` as missing; past `MISSES_KEPT` the misses are
    /// forgotten first, so a scan of random paths cannot grow the map.
    pub(super) fn insert_miss(&mut self, url_path: &str) {
        self.remove(url_path);
        if self.misses >= MISSES_KEPT {
            self.entries
                .retain(|_, cached| matches!(cached, Cached::File(_)));
            self.misses = 0;
        }
        self.entries.insert(url_path.to_string(), Cached::Missing);
        self.misses += 1;
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.misses = 0;
        self.file_bytes.fetch_sub(self.bytes, Ordering::Relaxed);
        self.bytes = 0;
        self.open_files = 0;
        if let Watch::Active { files, .. } = &mut self.watch {
            files.clear();
        }
    }

    fn apply(&mut self, change: Change) {
        let Watch::Active { files, dirs, .. } = &mut self.watch else {
            return;
        };
        match change {
            Change::Overflow => self.clear(),
            Change::Changed(id) | Change::Ended(id) => {
                if dirs.contains(&id) {
                    // An entry was added, removed or renamed somewhere on
                    // the way to cached files: start afresh.
                    if matches!(change, Change::Ended(_)) {
                        dirs.remove(&id);
                    }
                    self.clear();
                } else if let Some(urls) = files.remove(&id) {
                    for url in urls {
                        self.remove(&url);
                    }
                }
            }
        }
    }

    /// Whether watched entries may not answer a request received by read
    /// number `received` yet: inotify watches, and its queue was not read
    /// after that request was.
    pub(super) fn unsynced_for(&self, received: u64) -> bool {
        matches!(self.watch, Watch::Active { .. }) && self.synced_at <= received
    }

    /// Makes watched entries servable to a request received by read number
    /// `received`: applies every change the kernel has queued so far, unless
    /// that was done after the request was read.
    pub(super) fn sync_for(&mut self, received: u64) {
        if self.synced_at <= received {
            self.sync();
        }
    }

    /// Applies every change the kernel has queued so far; afterwards requests
    /// read before now may be served from watched entries.
    fn sync(&mut self) {
        let Watch::Active { watcher, .. } = &self.watch else {
            return;
        };
        let before = read_seq_now();
        match watcher.changes_now() {
            Ok(changes) => {
                changes.into_iter().for_each(|c| self.apply(c));
                self.synced_at = before;
            }
            Err(_) => self.go_blind(),
        }
    }

    /// Without inotify: forget everything and `stat` from now on.
    fn go_blind(&mut self) {
        self.clear();
        self.watch = Watch::Unavailable;
    }

    /// Watches the directory `dir` for entries made, removed or renamed in
    /// it (a change forgets the whole cache); false if it cannot.
    pub(super) fn watch_dir(&mut self, cache: &Arc<Mutex<Cache>>, dir: &Path) -> bool {
        if matches!(self.watch, Watch::Unstarted) {
            self.watch = start_watching(cache.clone());
        }
        let Watch::Active { watcher, dirs, .. } = &mut self.watch else {
            return false;
        };
        match watcher.watch(dir, true) {
            Ok(id) => {
                dirs.insert(id);
                true
            }
            Err(_) => false,
        }
    }

    /// Watches `path` and its directories up to `root`; false if it cannot.
    pub(super) fn watch(
        &mut self,
        cache: &Arc<Mutex<Cache>>,
        root: &Path,
        url_path: &str,
        path: &Path,
    ) -> bool {
        if matches!(self.watch, Watch::Unstarted) {
            self.watch = start_watching(cache.clone());
        }
        let Watch::Active {
            watcher,
            files,
            dirs,
            ..
        } = &mut self.watch
        else {
            return false;
        };
        let Ok(file_id) = watcher.watch(path, false) else {
            return false;
        };
        for dir in path.ancestors().skip(1) {
            match watcher.watch(dir, true) {
                Ok(id) => dirs.insert(id),
                Err(_) => return false,
            };
            if dir == root {
                break;
            }
        }
        files.entry(file_id).or_default().push(url_path.to_string());
        true
    }
}

/// Starts this worker's inotify watcher and the green thread that applies
/// its reports to `cache`.
fn start_watching(cache: Arc<Mutex<Cache>>) -> Watch {
    if runtime::try_handle().is_none() {
        return Watch::Unavailable;
    }
    let Ok(watcher) = FileWatcher::new().map(Arc::new) else {
        return Watch::Unavailable;
    };
    let reports = watcher.clone();
    let stop = Arc::new(Latch::new());
    let stopped = stop.clone();
    // Weak: the cache owns this thread's stop latch, so a strong reference
    // here would keep both alive for ever.
    let cache = Arc::downgrade(&cache);
    runtime::spawn(async move {
        loop {
            let changes = match race(reports.changes(), stopped.wait()).await {
                Either::Left(changes) => changes,
                Either::Right(()) => return,
            };
            let Some(cache) = cache.upgrade() else {
                return;
            };
            let mut cache = cache.lock().unwrap_or_else(PoisonError::into_inner);
            match changes {
                // Evicts early; correctness rests on `Cache::sync`.
                Ok(changes) => changes.into_iter().for_each(|c| cache.apply(c)),
                Err(_) => return cache.go_blind(),
            }
        }
    })
    .detach();
    Watch::Active {
        watcher,
        files: HashMap::new(),
        dirs: HashSet::new(),
        _stop: StopOnDrop(stop),
    }
}

#[derive(Clone)]
pub(super) enum Body {
    Memory(Arc<[u8]>),
    /// Sent with sendfile, which takes its own offset: one open file serves
    /// any number of responses at once.
    Disk(Arc<File>),
}

/// A file's identity representation; `variants` its encoded ones,
/// `stored` its entry in the store of compressed files (and whether that
/// was ready: one still pending means variants to come, so `Vary` now);
/// `default_type` the type of a name without an extension.
pub(super) fn file_info(
    path: PathBuf,
    meta: &Metadata,
    variants: Vec<Variant>,
    also: Vec<(PathBuf, Version)>,
    stored: Option<(Arc<EntryState>, bool)>,
    default_type: &str,
) -> FileInfo {
    let validators = Validators::from_metadata(meta);
    let content_type = content_type_or(&path, default_type).into_owned();
    let vary = !variants.is_empty() || stored.as_ref().is_some_and(|(_, ready)| !ready);
    let last_modified = validators.last_modified_http();
    let head_fields = head_fields(&content_type, &validators, &last_modified, None, vary);
    FileInfo {
        path,
        version: Version::of(meta),
        validators,
        content_type,
        last_modified,
        head_fields,
        rule_fields: Vec::new(),
        rule_overrides: Vec::new(),
        encoding: None,
        vary,
        variants,
        also,
        stored,
    }
}

/// An encoded representation of the file at `path`: `validators` and
/// `version` are its own (a sidecar's), or the file's with the encoded
/// length (compressed once). Its ETag names the encoding, so no cache or
/// precondition can mistake one representation for another.
pub(super) fn variant_info(
    path: &Path,
    encoding: Encoding,
    mut validators: Validators,
    version: Version,
    default_type: &str,
) -> FileInfo {
    let content_type = content_type_or(path, default_type).into_owned();
    if validators.etag.ends_with('"') {
        validators.etag.pop();
        validators.etag.push('-');
        validators.etag.push_str(encoding.token());
        validators.etag.push('"');
    }
    let last_modified = validators.last_modified_http();
    let head_fields = head_fields(
        &content_type,
        &validators,
        &last_modified,
        Some(encoding),
        true,
    );
    FileInfo {
        path: path.to_path_buf(),
        version,
        validators,
        content_type,
        last_modified,
        head_fields,
        rule_fields: Vec::new(),
        rule_overrides: Vec::new(),
        encoding: Some(encoding),
        vary: true,
        variants: Vec::new(),
        also: Vec::new(),
        stored: None,
    }
}

fn head_fields(
    content_type: &str,
    validators: &Validators,
    last_modified: &str,
    encoding: Option<Encoding>,
    vary: bool,
) -> Vec<u8> {
    let mut head_fields = Vec::with_capacity(200);
    let fields = [
        ("Content-Type", content_type),
        ("ETag", validators.etag.as_str()),
        ("Last-Modified", last_modified),
        ("Accept-Ranges", "bytes"),
        ("Content-Encoding", encoding.map_or("", Encoding::token)),
        ("Vary", if vary { "Accept-Encoding" } else { "" }),
    ];
    for (name, value) in fields.into_iter().filter(|(_, v)| !v.is_empty()) {
        head_fields.extend_from_slice(name.as_bytes());
        head_fields.extend_from_slice(b": ");
        head_fields.extend_from_slice(value.as_bytes());
        head_fields.extend_from_slice(b"\r\n");
    }
    head_fields
}

/// Reads one whole version of the file: `meta.len()` bytes, with the
/// file's `fstat` the same before and after, so the head built from that
/// `fstat` matches the bytes. A file changing meanwhile is read again (a
/// few times); if it will not hold still, its latest `fstat` comes back
/// without bytes and the file is sent from disk, where a short read closes
/// the connection.
pub(super) fn read_version(file: &File, mut meta: Metadata) -> (Metadata, Option<Vec<u8>>) {
    for _ in 0..3 {
        let len = meta.len() as usize;
        let mut bytes = vec![0; len];
        let mut read = 0;
        while read < len {
            match file.read_at(&mut bytes[read..], read as u64) {
                Ok(0) => break,
                Ok(n) => read += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let Ok(after) = file.metadata() else {
            return (meta, None);
        };
        if read == len && Version::of(&after) == Version::of(&meta) {
            return (meta, Some(bytes));
        }
        meta = after;
    }
    (meta, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cached_file(path: &Path) -> Arc<CachedFile> {
        std::fs::write(path, b"x").expect("write");
        let meta = std::fs::metadata(path).expect("stat");
        Arc::new(CachedFile {
            info: Arc::new(file_info(
                path.to_path_buf(),
                &meta,
                Vec::new(),
                Vec::new(),
                None,
                "application/octet-stream",
            )),
            body: Body::Memory(Arc::from(&b"x"[..])),
            watched: false,
            checked_at: AtomicU64::new(0),
        })
    }

    /// Misses share the files' map but not their fate: past `MISSES_KEPT`
    /// the misses are forgotten, the files kept, and the count stays true.
    #[test]
    fn misses_are_bounded_and_leave_files_alone() {
        let dir = std::env::temp_dir().join(format!("conveyor-cache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let mut cache = Cache::default();
        cache.entries.insert(
            "/a.txt".into(),
            Cached::File(cached_file(&dir.join("a.txt"))),
        );
        for i in 0..MISSES_KEPT {
            cache.insert_miss(&format!("/missing/{i}"));
        }
        assert_eq!(cache.misses, MISSES_KEPT);
        assert_eq!(cache.entries.len(), MISSES_KEPT + 1);
        // The same path again replaces its entry, counted once.
        cache.insert_miss("/missing/0");
        assert_eq!(cache.misses, MISSES_KEPT);
        cache.insert_miss("/one/more");
        assert_eq!(cache.misses, 1);
        assert_eq!(cache.entries.len(), 2);
        assert!(matches!(cache.entries.get("/a.txt"), Some(Cached::File(_))));
        assert!(matches!(
            cache.entries.get("/one/more"),
            Some(Cached::Missing)
        ));
        cache.remove("/one/more");
        assert_eq!((cache.misses, cache.entries.len()), (0, 1));
        // A miss for a path whose file was cached takes its place and gives
        // back its bytes.
        cache.bytes = 1;
        cache.insert_miss("/a.txt");
        assert_eq!((cache.misses, cache.bytes), (1, 0));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
