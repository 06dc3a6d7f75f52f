//! Finding the file for a URL path: from this worker's cache while the file
//! on disk is the version cached, else resolved (and opened) afresh beneath
//! the root.

use std::fs::Metadata;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::config::{Revalidate, StaticConfig, HEADERS_FILE, REDIRECTS_FILE};
use crate::runtime::sys::beneath::RootDir;
use crate::runtime::{self, current_worker, read_seq_now, wrap_index, ReadBuffer};

use super::cache::{
    file_info, read_version, variant_info, Body, Cache, Cached, CachedFile, FileInfo, Variant,
    VariantBody, Version, OPEN_FILES_KEPT,
};
use super::compress::is_text;
use super::headers::apply_rules;
use super::negotiate::Encoding;
use super::store::{CacheFigures, EntryState, Source, Store};
use super::Validators;
use super::{resolve, ResolveError, ResolveOptions, Resolved};

/// The files beneath the root as they are served: opened beneath its
/// descriptor, through one cache per worker.
pub(super) struct CachedFiles {
    /// Files are opened beneath this descriptor, never by a path.
    root: RootDir,
    options: ResolveOptions,
    /// Shared: it is big, and `Target` holds the service by value.
    config: Arc<StaticConfig>,
    /// One cache per worker: no lock contention, at the price of a copy each.
    caches: Vec<Arc<Mutex<Cache>>>,
    /// The compressed files, shared, and the byte budget of it all.
    store: Arc<Store>,
}

impl CachedFiles {
    /// `root` must be a directory; it is opened once here.
    pub(super) fn new(
        root: &Path,
        config: Arc<StaticConfig>,
        workers: usize,
    ) -> std::io::Result<CachedFiles> {
        // A compression thread per four workers, at most four: compressing
        // is once per file version, and these compete with the workers.
        let store = Arc::new(Store::new(
            config.cache_max_bytes,
            (workers / 4).clamp(1, 4),
        ));
        Ok(CachedFiles {
            root: RootDir::open(root)?,
            options: ResolveOptions {
                index: config.index.clone(),
                follow_symlinks_outside_root: config.follow_symlinks_outside_root,
                show_dotfiles: config.show_dotfiles,
                hide_site_files: config.netlify_files,
            },
            config,
            caches: (0..workers.max(1))
                .map(|_| Arc::new(Mutex::new(Cache::new(store.file_bytes.clone()))))
                .collect(),
            store,
        })
    }

    pub(super) fn store(&self) -> &Store {
        &self.store
    }

    pub(super) fn figures(&self) -> CacheFigures {
        self.store.figures()
    }

    pub(super) fn root(&self) -> &RootDir {
        &self.root
    }

    pub(super) fn options(&self) -> &ResolveOptions {
        &self.options
    }

    /// The file for `url_path`, through this worker's cache, waiting for the
    /// cache to learn of changes made before the request when it must.
    /// `input` is the connection's: its buffer goes back to the pool while
    /// the request waits.
    ///
    /// A request that `accepts_encoded` finding its file being compressed
    /// waits for that compression (up to `COMPRESS_WAIT`), not a worker.
    pub(super) async fn find(
        &self,
        input: &mut ReadBuffer,
        url_path: &str,
        query: Option<&str>,
        received: u64,
        accepts_encoded: bool,
    ) -> Result<Lookup, ResolveError> {
        match self.find_now(url_path, query, received, accepts_encoded) {
            Ok(found) => found,
            Err(wait) => {
                self.find_after(wait, input, url_path, query, received, accepts_encoded)
                    .await
            }
        }
    }

    /// What [`Self::find`] answers when it need not wait, else what it
    /// waits for ([`Self::find_after`] waits and finds). Not async: the
    /// common case, a cached file, moves its answer through no future (a
    /// pipelined hit costs some 75 instructions less for it).
    #[inline(always)]
    pub(super) fn find_now(
        &self,
        url_path: &str,
        query: Option<&str>,
        received: u64,
        accepts_encoded: bool,
    ) -> Result<Result<Lookup, ResolveError>, Wait> {
        let found = self.lookup(url_path, query, received);
        if matches!(found, Ok(Lookup::Unsynced)) {
            return Err(Wait::Sync);
        }
        match compressing(&found, accepts_encoded) {
            Some(slot) => Err(Wait::Compression(slot)),
            None => Ok(found),
        }
    }

    /// [`Self::find`] after `find_now` said what to wait for.
    pub(super) async fn find_after(
        &self,
        wait: Wait,
        input: &mut ReadBuffer,
        url_path: &str,
        query: Option<&str>,
        received: u64,
        accepts_encoded: bool,
    ) -> Result<Lookup, ResolveError> {
        let slot = match wait {
            Wait::Compression(slot) => slot,
            Wait::Sync => {
                let found = self.synced_lookup(input, url_path, query, received).await;
                match compressing(&found, accepts_encoded) {
                    Some(slot) => slot,
                    None => return found,
                }
            }
        };
        input.release_if_empty();
        // Boxed: rare, and the handler's future stays small.
        let _ = Box::pin(runtime::timeout(COMPRESS_WAIT, slot.compressed())).await;
        match self.lookup(url_path, query, received) {
            Ok(Lookup::Unsynced) => self.synced_lookup(input, url_path, query, received).await,
            found => found,
        }
    }

    /// `lookup` once inotify's queue has been read since the request was.
    async fn synced_lookup(
        &self,
        input: &mut ReadBuffer,
        url_path: &str,
        query: Option<&str>,
        received: u64,
    ) -> Result<Lookup, ResolveError> {
        // Let the other requests of this scheduler turn be read first:
        // one read of the inotify queue then covers them all. At most
        // SYNC_BATCH wait so (bounding the wait and the handlers alive at
        // once), and their read buffers go back to the pool meanwhile.
        let waiting = read_seq_now().saturating_sub(self.cache().synced_at);
        if waiting < SYNC_BATCH {
            input.release_if_empty();
            runtime::yield_now().await;
        }
        self.cache().sync_for(received);
        self.lookup(url_path, query, received)
    }

    fn local_cache(&self) -> &Arc<Mutex<Cache>> {
        &self.caches[wrap_index(current_worker().unwrap_or(0), self.caches.len())]
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.local_cache()
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The file for a URL path: from this worker's cache if the file on disk
    /// is still the same version, else resolved afresh. `received` is the
    /// read number that brought the request in. The error says why the path
    /// cannot be served (400, 403 or 404). `Unsynced` whenever inotify
    /// watches and its queue was not read since the request was: a path
    /// not cached waits for that read too (once per scheduler turn).
    fn lookup(
        &self,
        url_path: &str,
        query: Option<&str>,
        received: u64,
    ) -> Result<Lookup, ResolveError> {
        let cached = {
            let cache = self.cache();
            if cache.unsynced_for(received) {
                // Before the path is hashed: a hit or a known miss would be
                // unsynced too, and `find` looks it up again after the sync.
                return Ok(Lookup::Unsynced);
            }
            // A hit is answered under the lock, which then clones the
            // entry's parts but not the entry (callgrind).
            let hit =
                |entry: &CachedFile| Ok(Lookup::Found(entry.info.clone(), entry.body.clone()));
            match cache.entries.get(url_path) {
                // Compressed since, or evicted: built again below.
                Some(Cached::File(entry)) if entry.info.stored_changed() => None,
                Some(Cached::File(entry)) if entry.watched => {
                    return match cache.synced_at > received {
                        true => hit(entry),
                        false => Ok(Lookup::Unsynced),
                    };
                }
                // Checked after this request arrived: pipelined neighbours
                // share one check.
                Some(Cached::File(entry))
                    if entry.checked_at.load(Ordering::Relaxed) > received =>
                {
                    return hit(entry);
                }
                // To be checked with a `stat`, outside the lock.
                Some(Cached::File(entry)) => Some(entry.clone()),
                Some(Cached::Missing) => {
                    return match cache.synced_at > received {
                        true => Err(ResolveError::Missing),
                        false => Ok(Lookup::Unsynced),
                    };
                }
                None => None,
            }
        };
        if let Some(entry) = cached {
            let now = read_seq_now();
            if entry.info.is_current() {
                entry.checked_at.store(now, Ordering::Relaxed);
                return Ok(Lookup::Found(entry.info.clone(), entry.body.clone()));
            }
            self.cache().remove(url_path);
        }
        let (path, meta, direct, file) = match resolve(&self.root, url_path, query, &self.options) {
            Ok(Resolved::File { path, .. }) if self.hidden(&path) => {
                return Err(ResolveError::Missing)
            }
            Ok(Resolved::File {
                path,
                meta,
                direct,
                file,
            }) => (path, meta, direct, file),
            Ok(Resolved::RedirectToSlash(location)) => return Ok(Lookup::Redirect(location)),
            Err(ResolveError::Missing) => {
                self.remember_miss(url_path);
                return Err(ResolveError::Missing);
            }
            Err(e) => return Err(e),
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
        // Kept by its one canonical URL only: an alias (`/./a`, `//a`,
        // `/%61`) is resolved each time, so aliases cannot fill the cache.
        let cached = canonical(url_path)
            && match body {
                Body::Memory(_) => meta.len() <= self.config.cache_max_file_size,
                Body::Disk(_) => self.config.cache_max_file_size > 0,
            };
        let (variants, also, sidecars_direct) = self.variants(&path);
        let direct = direct && sidecars_direct;
        let (variants, stored) = self.compressed(&path, &meta, &body, variants);
        let default_type = &self.config.default_type;
        let mut info = file_info(path, &meta, variants, also, stored, default_type);
        apply_rules(&self.config.headers, self.root.path(), &mut info);
        let info = Arc::new(info);
        if cached {
            self.insert(url_path, &info, &body, direct);
        }
        Ok(Lookup::Found(info, body))
    }

    /// The site's `_redirects` and `_headers`, with `static.netlify_files`:
    /// never served, whatever the path that names them.
    fn hidden(&self, path: &Path) -> bool {
        self.config.netlify_files
            && path.parent() == Some(self.root.path())
            && path
                .file_name()
                .is_some_and(|name| name == REDIRECTS_FILE || name == HEADERS_FILE)
    }

    fn insert(&self, url_path: &str, info: &Arc<FileInfo>, body: &Body, direct: bool) {
        let shared = self.local_cache();
        let mut cache = shared.lock().unwrap_or_else(PoisonError::into_inner);
        let (bytes, files) = info.cost(body);
        if files > 0 && cache.open_files + files > OPEN_FILES_KEPT {
            return; // serve from disk rather than thrash
        }
        // Watch before checking the version again, so no change can slip
        // between the check and the watch.
        // Sidecars are watched like the file (a new one is a directory event).
        let watched = direct
            && self.config.revalidate == Revalidate::Inotify
            && cache.watch(shared, self.root.path(), url_path, &info.path)
            && info.also.iter().all(|(path, _)| {
                path.is_dir() || cache.watch(shared, self.root.path(), url_path, path)
            });
        let checked_at = read_seq_now();
        if !info.is_current() {
            return;
        }
        cache.remove(url_path);
        // Within the one budget, compressed files making room if need be.
        if bytes > 0 && !self.store.reserve_file_bytes(bytes) {
            return; // serve from disk rather than thrash
        }
        cache.bytes += bytes;
        cache.open_files += files;
        let entry = Arc::new(CachedFile {
            info: info.clone(),
            body: body.clone(),
            watched,
            checked_at: AtomicU64::new(checked_at),
        });
        cache
            .entries
            .insert(url_path.to_string(), Cached::File(entry));
    }

    /// Remembers that `url_path` is missing, so the next request for it
    /// costs no `openat2`, if inotify can say when that stops being true:
    /// it watches each directory on the way that exists (the first missing
    /// one can only appear in the last that exists), and the path is checked
    /// once more after the watches are in place, so nothing made meanwhile
    /// goes unseen. Only plain paths are remembered (no escapes, no dot
    /// names), whose names on disk are the URL's segments; through a symlink
    /// or with `revalidate = "stat"`, a miss is looked up every time.
    fn remember_miss(&self, url_path: &str) {
        if self.config.revalidate != Revalidate::Inotify || url_path.contains('%') {
            return;
        }
        let segments: Vec<&str> = url_path.split('/').filter(|s| !s.is_empty()).collect();
        if segments.is_empty() || segments.iter().any(|s| s.starts_with('.')) {
            return;
        }
        let shared = self.local_cache();
        let mut cache = shared.lock().unwrap_or_else(PoisonError::into_inner);
        let mut dir = self.root.path().to_path_buf();
        if !cache.watch_dir(shared, &dir) {
            return;
        }
        for segment in &segments[..segments.len() - 1] {
            dir.push(segment);
            match std::fs::symlink_metadata(&dir) {
                Ok(meta) if meta.is_dir() => {
                    if !cache.watch_dir(shared, &dir) {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                // A symlink (its target is not watched) or a file.
                _ => return,
            }
        }
        let mut path = self.root.path().to_path_buf();
        path.extend(&segments);
        // Anything there now (even a dangling symlink): not remembered.
        if std::fs::symlink_metadata(&path).is_ok() {
            return;
        }
        cache.insert_miss(url_path);
    }

    /// The sidecars of the file at `path` (opened beneath the root, like
    /// any file); the paths whose versions are part of the file's (the
    /// sidecars and the directory), and whether every sidecar was reached
    /// without a symlink.
    fn variants(&self, path: &Path) -> (Vec<Variant>, Vec<(PathBuf, Version)>, bool) {
        let mut variants = Vec::new();
        let mut also = Vec::new();
        let mut direct = true;
        let Ok(relative) = path.strip_prefix(self.root.path()) else {
            return (variants, also, direct);
        };
        // The directory's version first: a sidecar created after it was
        // taken changes it, so cannot go unnoticed.
        if let Some(dir) = path.parent() {
            match std::fs::metadata(dir) {
                Ok(dir_meta) => also.push((dir.to_path_buf(), Version::of(&dir_meta))),
                // Without it a new sidecar could go unseen: no variants.
                Err(_) => return (variants, also, direct),
            }
        }
        let symlinks = self.options.symlinks();
        for encoding in Encoding::ENCODED {
            let mut name = relative.as_os_str().to_owned();
            name.push(encoding.suffix());
            let Ok(opened) = self.root.open_beneath(Path::new(&name), symlinks) else {
                continue;
            };
            let Ok(side_meta) = opened.file.metadata() else {
                continue;
            };
            if !side_meta.is_file() {
                continue;
            }
            let (side_meta, side_body) = match side_meta.len() < self.config.sendfile_min_size {
                true => match read_version(&opened.file, side_meta) {
                    (m, Some(bytes)) => (m, Body::Memory(bytes.into())),
                    (m, None) => (m, Body::Disk(Arc::new(opened.file))),
                },
                false => (side_meta, Body::Disk(Arc::new(opened.file))),
            };
            direct &= opened.direct;
            let version = Version::of(&side_meta);
            also.push((path.with_file_name(name_of(&name)), version));
            let info = variant_info(
                path,
                encoding,
                Validators::from_metadata(&side_meta),
                version,
                &self.config.default_type,
            );
            variants.push(Variant {
                info: Arc::new(info),
                body: VariantBody::Held(side_body),
            });
        }
        (variants, also, direct)
    }

    /// `variants` and, for the encodings without a sidecar, brotli and
    /// gzip from the shared store: compressed once per file version, on a
    /// compression thread, from `body` (the descriptor served, never the
    /// path again). The store's entry comes back too, with whether it was
    /// ready; until it is, the file is sent as it is.
    fn compressed(
        &self,
        path: &Path,
        meta: &Metadata,
        body: &Body,
        mut variants: Vec<Variant>,
    ) -> (Vec<Variant>, Option<(Arc<EntryState>, bool)>) {
        let config = &self.config.compress;
        let missing = [Encoding::Br, Encoding::Gzip]
            .map(|e| !variants.iter().any(|v| v.info.encoding == Some(e)));
        let worth = config.enabled
            && (config.min_size..=config.max_size).contains(&meta.len())
            && is_text(path)
            && missing.contains(&true);
        if !worth {
            return (variants, None);
        }
        let source = match body {
            Body::Memory(bytes) => Source::Bytes(bytes.clone()),
            Body::Disk(file) => Source::File(file.clone(), meta.clone()),
        };
        let Some(stored) = self.store.get_or_start(Version::of(meta), source) else {
            return (variants, None);
        };
        let ready = stored.ready;
        let encoded = [(Encoding::Br, &stored.br), (Encoding::Gzip, &stored.gz)];
        for ((encoding, bytes), missing) in encoded.into_iter().zip(missing) {
            let Some(bytes) = bytes.as_ref().filter(|_| missing) else {
                continue;
            };
            let Some(len) = bytes.upgrade().map(|b| b.len() as u64) else {
                continue;
            };
            let version = Version::of(meta).with_len(len);
            let validators = Validators::from_metadata(meta);
            let default_type = &self.config.default_type;
            let info = variant_info(path, encoding, validators, version, default_type);
            variants.push(Variant {
                info: Arc::new(info),
                body: VariantBody::Stored(bytes.clone()),
            });
        }
        (variants, Some((stored.slot, ready)))
    }
}

/// What [`CachedFiles::find_now`] could not answer without waiting for.
pub(super) enum Wait {
    /// The cache must read inotify's queue first.
    Sync,
    /// The file is being compressed, and the request takes it encoded.
    Compression(Arc<EntryState>),
}

/// The compression `found` is waiting on, when a request that
/// `accepts_encoded` should wait for it.
fn compressing(
    found: &Result<Lookup, ResolveError>,
    accepts_encoded: bool,
) -> Option<Arc<EntryState>> {
    match found {
        Ok(Lookup::Found(info, _)) if accepts_encoded => info
            .stored
            .as_ref()
            .filter(|(slot, _)| slot.pending())
            .map(|(slot, _)| slot.clone()),
        _ => None,
    }
}

/// The last component of a relative path.
fn name_of(relative: &std::ffi::OsStr) -> &std::ffi::OsStr {
    Path::new(relative).file_name().unwrap_or(relative)
}

/// Whether `url_path` is the one canonical spelling of its path: no empty,
/// `.` or `..` segment, and `%` only for a byte that cannot appear
/// unescaped, in upper-case hex. Only these are kept in a worker's cache.
fn canonical(url_path: &str) -> bool {
    let mut segments = url_path.split('/').skip(1).peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        if (segment.is_empty() && !last) || segment == "." || segment == ".." {
            return false;
        }
    }
    let bytes = url_path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = |b: u8| matches!(b, b'0'..=b'9' | b'A'..=b'F');
            let (Some(&hi), Some(&lo)) = (bytes.get(i + 1), bytes.get(i + 2)) else {
                return false;
            };
            if !hex(hi) || !hex(lo) {
                return false;
            }
            let decoded = u8::from_str_radix(&url_path[i + 1..i + 3], 16).unwrap_or(b'a');
            // Unreserved, sub-delims, ':' '@' and '/' go unescaped.
            if decoded.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&decoded) {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

/// How long a request waits for its file's compression before the file is
/// sent as it is (a compression of 1 MiB takes about 100 ms).
const COMPRESS_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// Requests read since the last read of the inotify queue beyond which the
/// next one reads it at once rather than waiting for the rest of the turn.
const SYNC_BATCH: u64 = 32;

/// What a lookup found for a path that can be served.
pub(super) enum Lookup {
    Found(Arc<FileInfo>, Body),
    Redirect(String),
    /// Cached and watched, but changes made before the request arrived may
    /// not have been read yet: `Cache::sync` first.
    Unsynced,
}

#[cfg(test)]
mod tests {
    use super::canonical;

    #[test]
    fn one_canonical_spelling_per_path() {
        for path in [
            "/",
            "/a.js",
            "/dir/",
            "/dir/a.css",
            "/.well-known/x",
            "/a%20b.txt",
            "/%C3%A9.txt",
        ] {
            assert!(canonical(path), "{path}");
        }
        for path in [
            "//a.js",
            "/./a.js",
            "/x/../a.js",
            "/dir//a.js",
            "/dir/.",
            "/dir/..",
            "/%61.js",
            "/a%2fb",
            "/a%2Fb",
            "/a%2e.js",
            "/a%2",
            "/a%zz",
            "/a%7E",
            "/a%21",
        ] {
            assert!(!canonical(path), "{path}");
        }
    }
}
