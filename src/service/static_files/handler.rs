//! The socket side of the static-file service (nginx's static module in
//! spirit): resolve the path, check preconditions and ranges, then answer
//! from the in-memory cache (small files, header prebuilt) or from disk
//! (large files with sendfile, never through user space).

use std::collections::{HashMap, HashSet};
use std::fs::{File, Metadata};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::config::{Revalidate, StaticConfig};
use crate::http::response::{push_u64, write_status_line_and_date};
use crate::http::{write_head, Method};
use crate::runtime::beneath::RootDir;
use crate::runtime::watch::{Change, FileWatcher, WatchId};
use crate::runtime::{self, current_worker, timeout};
use crate::service::{Exchange, Outcome, Writing};
use crate::stages::conn::read_seq_now;

use super::{
    content_range, content_type, evaluate, parse_range, resolve, unsatisfied_range, Decision,
    Preconditions, RangeOutcome, ResolveOptions, Resolved, Validators,
};

pub struct StaticFiles {
    /// Files are opened beneath this descriptor, never by a path.
    root: RootDir,
    options: ResolveOptions,
    config: StaticConfig,
    /// One cache per worker: no lock contention, at the price of a copy each.
    caches: Vec<Arc<Mutex<Cache>>>,
}

/// Identity of a file version: any change to it invalidates a cached copy.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Version {
    len: u64,
    mtime_ns: i128,
    ino: u64,
    dev: u64,
}

impl Version {
    fn of(meta: &Metadata) -> Version {
        Version {
            len: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ino: meta.ino(),
            dev: meta.dev(),
        }
    }
}

/// A file as it is served.
struct FileInfo {
    path: PathBuf,
    version: Version,
    validators: Validators,
    content_type: String,
    /// "Content-Type … Last-Modified … Accept-Ranges" lines, prebuilt.
    head_fields: Vec<u8>,
}

struct CachedFile {
    info: Arc<FileInfo>,
    body: Body,
    /// inotify watches the file and its directories: no need to stat it.
    watched: bool,
    /// Read number (`read_seq_now`) when the file was last checked against
    /// the disk: requests received by earlier reads need no new check.
    checked_at: AtomicU64,
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
struct Cache {
    entries: HashMap<String, Arc<CachedFile>>,
    bytes: u64,
    watch: Watch,
    /// Read number (`read_seq_now`) just before the inotify queue was last
    /// read empty: requests received by earlier reads see every change.
    synced_at: u64,
    /// Entries that hold an open file (sendfile-sized), at most
    /// `OPEN_FILES_KEPT`.
    open_files: usize,
}

/// Open files a worker's cache keeps for sendfile: each saves an open, a
/// stat and a close per request, and holds a descriptor.
const OPEN_FILES_KEPT: usize = 128;

#[derive(Default)]
enum Watch {
    #[default]
    Unstarted,
    Active {
        watcher: Arc<FileWatcher>,
        files: HashMap<WatchId, Vec<String>>,
        dirs: HashSet<WatchId>,
    },
    Unavailable,
}

impl Cache {
    fn remove(&mut self, url_path: &str) {
        if let Some(old) = self.entries.remove(url_path) {
            match &old.body {
                Body::Memory(bytes) => self.bytes -= bytes.len() as u64,
                Body::Disk(_) => self.open_files -= 1,
            }
        }
    }

    fn clear(&mut self) {
        self.entries.clear();
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

    /// Makes watched entries servable to a request received by read number
    /// `received`: applies every change the kernel has queued so far, unless
    /// that was done after the request was read.
    fn sync_for(&mut self, received: u64) {
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

    /// Watches `path` and its directories up to `root`; false if it cannot.
    fn watch(
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
    runtime::spawn(async move {
        loop {
            let changes = reports.changes().await;
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
    }
}

#[derive(Clone)]
enum Body {
    Memory(Arc<[u8]>),
    /// Sent with sendfile, which takes its own offset: one open file serves
    /// any number of responses at once.
    Disk(Arc<File>),
}

impl StaticFiles {
    /// `root` must be a directory; it is opened once here.
    pub fn new(root: &Path, config: &StaticConfig, workers: usize) -> std::io::Result<StaticFiles> {
        Ok(StaticFiles {
            root: RootDir::open(root)?,
            options: ResolveOptions {
                index: config.index.clone(),
                follow_symlinks_outside_root: config.follow_symlinks_outside_root,
                show_dotfiles: config.show_dotfiles,
            },
            config: config.clone(),
            caches: (0..workers.max(1)).map(|_| Arc::default()).collect(),
        })
    }

    fn local_cache(&self) -> &Arc<Mutex<Cache>> {
        &self.caches[current_worker().unwrap_or(0) % self.caches.len()]
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.local_cache()
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub async fn serve(&self, ex: &mut Exchange<'_>) -> Outcome {
        ex.conn.input.consume(ex.req.preamble_len);
        if !matches!(ex.req.method, Method::Get | Method::Head) {
            return ex.error(
                405,
                "static files answer GET and HEAD",
                &[("Allow", "GET, HEAD")],
            );
        }
        let received = ex.conn.received_seq;
        let mut found = self.lookup(ex.req.path(), ex.req.query(), received);
        if let Ok(Lookup::Unsynced) = found {
            // Let the other requests of this scheduler turn be read first:
            // one read of the inotify queue then covers them all. At most
            // SYNC_BATCH wait so (bounding the wait and the handlers alive at
            // once), and their read buffers go back to the pool meanwhile.
            let waiting = read_seq_now().saturating_sub(self.cache().synced_at);
            if waiting < SYNC_BATCH {
                ex.conn.input.release_if_empty();
                runtime::yield_now().await;
            }
            self.cache().sync_for(received);
            found = self.lookup(ex.req.path(), ex.req.query(), received);
        }
        let (info, body) = match found {
            Ok(Lookup::Found(info, body)) => (info, body),
            // After a sync, watched entries were read before the request
            // was, or are gone: cannot happen.
            Ok(Lookup::Unsynced) => return ex.error(503, "cache busy, retry", &[]),
            Ok(Lookup::Redirect(location)) => {
                return ex.respond(
                    301,
                    "text/plain; charset=utf-8",
                    b"moved: add a trailing slash\n",
                    &[("Location", &location)],
                )
            }
            Err(status) => return ex.error(status, "cannot serve that path", &[]),
        };
        let req = ex.req;
        let preconditions = Preconditions {
            if_match: req.if_match.as_deref(),
            if_none_match: req.if_none_match.as_deref(),
            if_modified_since: req.if_modified_since.as_deref(),
            if_unmodified_since: req.if_unmodified_since.as_deref(),
            if_range: req.if_range.as_deref(),
        };
        let honor_range = match evaluate(&preconditions, &info.validators) {
            Decision::NotModified => return not_modified(ex, &info),
            Decision::PreconditionFailed => return ex.error(412, "precondition failed", &[]),
            Decision::Proceed { honor_range } => honor_range,
        };
        let len = info.version.len;
        let range = if honor_range {
            parse_range(req.range.as_deref(), len)
        } else {
            RangeOutcome::Full
        };
        match range {
            RangeOutcome::Full => self.send(ex, &info, &body, 200, 0, len).await,
            RangeOutcome::Partial {
                start,
                end_inclusive,
            } => {
                self.send(ex, &info, &body, 206, start, end_inclusive + 1)
                    .await
            }
            RangeOutcome::Unsatisfiable => {
                let range = unsatisfied_range(len);
                ex.error(416, "range not satisfiable", &[("Content-Range", &range)])
            }
        }
    }

    /// The file for a URL path: from this worker's cache if the file on disk
    /// is still the same version, else resolved afresh. `received` is the
    /// read number that brought the request in.
    fn lookup(&self, url_path: &str, query: Option<&str>, received: u64) -> Result<Lookup, u16> {
        let (cached, synced_at) = {
            let cache = self.cache();
            (cache.entries.get(url_path).cloned(), cache.synced_at)
        };
        if let Some(entry) = cached {
            let hit = || Ok(Lookup::Found(entry.info.clone(), entry.body.clone()));
            if entry.watched {
                return match synced_at > received {
                    true => hit(),
                    false => Ok(Lookup::Unsynced),
                };
            }
            // Checked after this request arrived: pipelined neighbours
            // share one check.
            if entry.checked_at.load(Ordering::Relaxed) > received {
                return hit();
            }
            let now = read_seq_now();
            match std::fs::metadata(&entry.info.path) {
                Ok(meta) if Version::of(&meta) == entry.info.version => {
                    entry.checked_at.store(now, Ordering::Relaxed);
                    return hit();
                }
                _ => self.cache().remove(url_path),
            }
        }
        let (path, meta, direct, file) = match resolve(&self.root, url_path, query, &self.options) {
            Ok(Resolved::File {
                path,
                meta,
                direct,
                file,
            }) => (path, meta, direct, file),
            Ok(Resolved::RedirectToSlash(location)) => return Ok(Lookup::Redirect(location)),
            Err(e) => return Err(e.status()),
        };
        // A file big enough for sendfile is not copied through memory: from
        // the page cache it costs the server less (64 KiB: 75k req/s against
        // 63k from the memory cache, wrk -c64, 1 worker). A smaller one is
        // read now, in one piece with the `fstat` its head comes from.
        let (meta, body) = match meta.len() < self.config.sendfile_min_size.max(1) {
            true => match read_version(&file, meta) {
                (meta, Some(bytes)) => (meta, Body::Memory(bytes.into())),
                (meta, None) => (meta, Body::Disk(Arc::new(file))),
            },
            false => (meta, Body::Disk(Arc::new(file))),
        };
        let info = Arc::new(file_info(path, &meta));
        let cached = match body {
            Body::Memory(_) => meta.len() <= self.config.cache_max_file_size,
            Body::Disk(_) => self.config.cache_max_file_size > 0,
        };
        if cached {
            self.insert(url_path, &info, &body, direct);
        }
        Ok(Lookup::Found(info, body))
    }

    fn insert(&self, url_path: &str, info: &Arc<FileInfo>, body: &Body, direct: bool) {
        let shared = self.local_cache();
        let mut cache = shared.lock().unwrap_or_else(PoisonError::into_inner);
        let full = match body {
            Body::Memory(bytes) => cache.bytes + bytes.len() as u64 > self.config.cache_max_bytes,
            Body::Disk(_) => cache.open_files >= OPEN_FILES_KEPT,
        };
        if full {
            return; // serve from disk rather than thrash
        }
        // Watch before checking the version again, so no change can slip
        // between the check and the watch.
        let watched = direct
            && self.config.revalidate == Revalidate::Inotify
            && cache.watch(shared, self.root.path(), url_path, &info.path);
        let checked_at = read_seq_now();
        match std::fs::metadata(&info.path) {
            Ok(meta) if Version::of(&meta) == info.version => {}
            _ => return,
        }
        cache.remove(url_path);
        match body {
            Body::Memory(bytes) => cache.bytes += bytes.len() as u64,
            Body::Disk(_) => cache.open_files += 1,
        }
        let entry = Arc::new(CachedFile {
            info: info.clone(),
            body: body.clone(),
            watched,
            checked_at: AtomicU64::new(checked_at),
        });
        cache.entries.insert(url_path.to_string(), entry);
    }

    /// Sends bytes `start..end` of the file with `status` (200 or 206).
    async fn send(
        &self,
        ex: &mut Exchange<'_>,
        info: &FileInfo,
        body: &Body,
        status: u16,
        start: u64,
        end: u64,
    ) -> Outcome {
        let len = info.version.len;
        let count = end - start;
        let is_head = ex.req.method == Method::Head;
        if status == 200 {
            // The fast path: status line and Date, then the prebuilt fields.
            write_status_line_and_date(ex.out, 200);
            ex.out.extend_from_slice(&info.head_fields);
            ex.out.extend_from_slice(b"Content-Length: ");
            push_u64(ex.out, count);
            ex.out.extend_from_slice(b"\r\n");
            if !ex.keep_alive {
                ex.out.extend_from_slice(b"Connection: close\r\n");
            } else if ex.req.minor_version == 0 {
                ex.out.extend_from_slice(b"Connection: keep-alive\r\n");
            }
            ex.out.extend_from_slice(b"\r\n");
        } else {
            let range = content_range(start, end - 1, len);
            let last_modified = info.validators.last_modified_http();
            let extra = [
                ("Content-Range", range.as_str()),
                ("ETag", info.validators.etag.as_str()),
                ("Last-Modified", last_modified.as_str()),
                ("Accept-Ranges", "bytes"),
            ];
            let head = ex.head(status, Some(count), Some(&info.content_type), &extra);
            write_head(ex.out, &head);
        }
        let mut outcome = Outcome {
            status,
            body_bytes: if is_head { 0 } else { count },
            keep_alive: ex.keep_alive,
        };
        if is_head || count == 0 {
            return outcome;
        }
        match body {
            // `bytes` is exactly the version the head describes; the check
            // only keeps a bug from becoming a panic.
            Body::Memory(bytes) => match bytes.get(start as usize..end as usize) {
                Some(range) => ex.out.extend_from_slice(range),
                None => outcome.keep_alive = false,
            },
            Body::Disk(file) => {
                // Boxed: rare next to cache hits, and big.
                if Box::pin(self.send_from_disk(ex, info, file, start, count))
                    .await
                    .is_err()
                {
                    outcome.keep_alive = false;
                }
            }
        }
        outcome
    }

    async fn send_from_disk(
        &self,
        ex: &mut Exchange<'_>,
        info: &FileInfo,
        file: &File,
        start: u64,
        count: u64,
    ) -> std::io::Result<()> {
        if count < self.config.sendfile_min_size {
            // Small enough to copy: it leaves with the head in one write.
            let mut chunk = vec![0; count as usize];
            file.read_exact_at(&mut chunk, start)?;
            // Read after the head was built: send it only if the file is
            // still the version the head describes.
            if Version::of(&file.metadata()?) != info.version {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            ex.out.extend_from_slice(&chunk);
            return Ok(());
        }
        ex.flush_more().await?;
        let _writing = Writing::new(ex.line.metrics.here());
        let limit = ex.line.config.timeouts.write;
        let mut offset = start;
        let end = start + count;
        while offset < end {
            let want = usize::try_from(end - offset)
                .unwrap_or(usize::MAX)
                .min(1 << 30);
            let sent = timeout(limit, ex.conn.stream.sendfile(file, &mut offset, want)).await??;
            if sent == 0 {
                // The file shrank under us: the promised length cannot be met.
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            ex.line.metrics.here().bytes_out.add_local(sent as u64);
        }
        Ok(())
    }
}

/// Requests read since the last read of the inotify queue beyond which the
/// next one reads it at once rather than waiting for the rest of the turn.
const SYNC_BATCH: u64 = 32;

enum Lookup {
    Found(Arc<FileInfo>, Body),
    Redirect(String),
    /// Cached and watched, but changes made before the request arrived may
    /// not have been read yet: `Cache::sync` first.
    Unsynced,
}

fn not_modified(ex: &mut Exchange<'_>, info: &FileInfo) -> Outcome {
    let last_modified = info.validators.last_modified_http();
    let extra = [
        ("ETag", info.validators.etag.as_str()),
        ("Last-Modified", last_modified.as_str()),
    ];
    let head = ex.head(304, None, None, &extra);
    write_head(ex.out, &head);
    Outcome {
        status: 304,
        body_bytes: 0,
        keep_alive: ex.keep_alive,
    }
}

fn file_info(path: PathBuf, meta: &Metadata) -> FileInfo {
    let validators = Validators::from_metadata(meta);
    let content_type = content_type(&path).into_owned();
    let mut head_fields = Vec::with_capacity(160);
    for (name, value) in [
        ("Content-Type", content_type.as_str()),
        ("ETag", validators.etag.as_str()),
        ("Last-Modified", validators.last_modified_http().as_str()),
        ("Accept-Ranges", "bytes"),
    ] {
        head_fields.extend_from_slice(name.as_bytes());
        head_fields.extend_from_slice(b": ");
        head_fields.extend_from_slice(value.as_bytes());
        head_fields.extend_from_slice(b"\r\n");
    }
    FileInfo {
        path,
        version: Version::of(meta),
        validators,
        content_type,
        head_fields,
    }
}

/// Reads one whole version of the file: `meta.len()` bytes, with the
/// file's `fstat` the same before and after, so the head built from that
/// `fstat` matches the bytes. A file changing meanwhile is read again (a
/// few times); if it will not hold still, its latest `fstat` comes back
/// without bytes and the file is sent from disk, where a short read closes
/// the connection.
fn read_version(file: &File, mut meta: Metadata) -> (Metadata, Option<Vec<u8>>) {
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
