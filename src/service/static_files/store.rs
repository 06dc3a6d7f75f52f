//! The files compressed once, shared by every worker: keyed by the opened
//! file's identity (device, inode, size, mtime from `fstat` on the served
//! descriptor), so every URL that reaches a file (`/./a.js`, `//a.js`,
//! `/%61.js`) shares one entry and one compression. Compression runs on
//! its own threads, never on a worker: a request that finds its file not
//! compressed yet is sent the file as it is, and one later finds the
//! result. One byte budget, `static.cache_max_bytes`, covers these entries
//! and the workers' in-memory files together; the least recently used
//! compressed entries make room.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, Metadata};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::runtime::sys::limits::lower_thread_priority;
use crate::runtime::Latch;

use super::cache::{read_version, Version};
use super::compress::compress;
use super::negotiate::Encoding;

/// What an entry costs beyond its bytes (the map, the LRU index, the
/// slot): charged so a flood of files that do not compress stays bounded.
const ENTRY_OVERHEAD: u64 = 256;

/// Compressions waiting for a thread; past this a file is sent as it is
/// and tried again by a later request.
const QUEUED_MAX: usize = 64;

/// A compressed entry's state, readable by the workers' cached heads
/// without pinning its bytes.
pub(super) struct EntryState {
    state: AtomicU8,
    /// When last served (ns since the store began): the LRU order.
    used: AtomicU64,
    /// Set once the compression has ended, whatever came of it.
    done: Latch,
}

const PENDING: u8 = 0;
const READY: u8 = 1;
const GONE: u8 = 2;

impl EntryState {
    /// Whether the encodings are in (and not evicted since).
    pub(super) fn ready(&self) -> bool {
        self.state.load(Ordering::Acquire) == READY
    }

    /// Whether its compression is still under way.
    pub(super) fn pending(&self) -> bool {
        self.state.load(Ordering::Acquire) == PENDING
    }

    /// Completes when the compression has ended (however it ended).
    pub(super) async fn compressed(&self) {
        self.done.wait().await;
    }

    /// Whether it changed since it was seen `ready` or pending: done
    /// since, or evicted (or dropped: the file changed meanwhile).
    pub(super) fn changed_from(&self, ready: bool) -> bool {
        match self.state.load(Ordering::Acquire) {
            READY => !ready,
            PENDING => ready,
            _ => true,
        }
    }
}

/// The encoded bytes of one file version; None where the encoding did not
/// save 10 %.
pub(super) struct Encodings {
    pub(super) slot: Arc<EntryState>,
    /// Whether `br` and `gz` are the result (read with them, under the
    /// lock): false while the compression runs.
    pub(super) ready: bool,
    pub(super) br: Option<Weak<[u8]>>,
    pub(super) gz: Option<Weak<[u8]>>,
}

/// Where a compression takes the file's bytes from.
pub(super) enum Source {
    /// Already in memory (a small file).
    Bytes(Arc<[u8]>),
    /// The descriptor being served, and the `fstat` its head came from:
    /// read on the compression thread, and only if still that version.
    File(Arc<File>, Metadata),
}

struct Entry {
    slot: Arc<EntryState>,
    br: Option<Arc<[u8]>>,
    gz: Option<Arc<[u8]>>,
    /// Bytes charged: the encodings and `ENTRY_OVERHEAD`.
    bytes: u64,
    /// Its key in `State::lru`.
    lru: (u64, u64),
}

#[derive(Default)]
struct State {
    entries: HashMap<Version, Entry>,
    /// (last used, id) → key, oldest first. An entry's `used` may be newer
    /// than its key here: it is filed again when it reaches the front.
    lru: BTreeMap<(u64, u64), Version>,
    next_id: u64,
    /// Bytes the compressed entries are charged.
    bytes: u64,
}

impl State {
    /// Whether `slot` is still the pending entry for `key`: not evicted,
    /// nor evicted and started again (that entry's own compression fills
    /// it).
    fn is_current(&self, key: &Version, slot: &Arc<EntryState>) -> bool {
        self.entries
            .get(key)
            .is_some_and(|e| Arc::ptr_eq(&e.slot, slot) && slot.pending())
    }
}

/// Totals for `/status`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheFigures {
    /// `static.cache_max_bytes`: the budget of everything below.
    pub max_bytes: u64,
    /// Bytes of files the workers keep in memory.
    pub file_bytes: u64,
    /// Compressed versions kept (pending ones included).
    pub compressed_entries: u64,
    /// Bytes they are charged.
    pub compressed_bytes: u64,
    /// Compressions run since start.
    pub compressions: u64,
    /// Compressed entries evicted to make room.
    pub evictions: u64,
}

struct Job {
    key: Version,
    source: Source,
    store: Weak<Store>,
    slot: Arc<EntryState>,
}

/// The shared store of compressed files and the byte budget.
pub(super) struct Store {
    state: Mutex<State>,
    cap: u64,
    /// Bytes of files the workers' caches hold in memory.
    pub(super) file_bytes: Arc<AtomicU64>,
    began: Instant,
    compressions: AtomicU64,
    evictions: AtomicU64,
    /// Started with the first compression.
    jobs: Mutex<Option<Sender<Job>>>,
    threads: usize,
}

impl Store {
    pub(super) fn new(cap: u64, threads: usize) -> Store {
        Store {
            state: Mutex::default(),
            cap,
            file_bytes: Arc::default(),
            began: Instant::now(),
            compressions: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            jobs: Mutex::new(None),
            threads: threads.max(1),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now(&self) -> u64 {
        let at = crate::runtime::now();
        u64::try_from(at.saturating_duration_since(self.began).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Marks `slot` used now; written at most once a millisecond, so a hot
    /// file does not bounce its line between workers.
    pub(super) fn touch(&self, slot: &EntryState) {
        let now = self.now();
        if now.saturating_sub(slot.used.load(Ordering::Relaxed)) > 1_000_000 {
            slot.used.store(now, Ordering::Relaxed);
        }
    }

    /// The encodings of the file version `key`, or, the first time it is
    /// asked for, a compression queued for it (`source` supplies the bytes)
    /// and its pending slot. None when there is no room to queue it.
    pub(super) fn get_or_start(
        self: &Arc<Self>,
        key: Version,
        source: Source,
    ) -> Option<Encodings> {
        if self.cap < ENTRY_OVERHEAD {
            return None;
        }
        let mut state = self.state();
        if let Some(entry) = state.entries.get(&key) {
            self.touch(&entry.slot);
            return Some(Encodings {
                slot: entry.slot.clone(),
                ready: entry.slot.ready(),
                br: entry.br.as_ref().map(Arc::downgrade),
                gz: entry.gz.as_ref().map(Arc::downgrade),
            });
        }
        let slot = Arc::new(EntryState {
            state: AtomicU8::new(PENDING),
            used: AtomicU64::new(self.now()),
            done: Latch::new(),
        });
        let job = Job {
            key,
            source,
            store: Arc::downgrade(self),
            slot: slot.clone(),
        };
        if !self.queue(job) {
            return None;
        }
        let lru = (slot.used.load(Ordering::Relaxed), state.next_id);
        state.next_id += 1;
        state.lru.insert(lru, key);
        state.bytes += ENTRY_OVERHEAD;
        let entry = Entry {
            slot: slot.clone(),
            br: None,
            gz: None,
            bytes: ENTRY_OVERHEAD,
            lru,
        };
        state.entries.insert(key, entry);
        self.make_room_locked(&mut state, 0, Some(&key));
        Some(Encodings {
            slot,
            ready: false,
            br: None,
            gz: None,
        })
    }

    /// Hands `job` to a compression thread (starting them the first time);
    /// false when they are all busy and the queue is full.
    fn queue(&self, job: Job) -> bool {
        let mut jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        let sender = jobs.get_or_insert_with(|| {
            let (tx, rx) = crossbeam_channel::bounded(QUEUED_MAX);
            for _ in 0..self.threads {
                let rx: Receiver<Job> = rx.clone();
                let spawned = std::thread::Builder::new()
                    .name("conveyor-compress".into())
                    .spawn(move || {
                        // Behind the workers for the CPU: a worker never
                        // waits for a compression to finish its slice.
                        let _ = lower_thread_priority(10);
                        rx.iter().for_each(run);
                    });
                if spawned.is_err() {
                    break;
                }
            }
            tx
        });
        match sender.try_send(job) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
        }
    }

    /// Stores the result of a compression, evicting the least recently
    /// used entries to make room; dropped if its entry went meanwhile or
    /// it cannot fit.
    fn finish(
        &self,
        key: Version,
        slot: &Arc<EntryState>,
        br: Option<Vec<u8>>,
        gz: Option<Vec<u8>>,
    ) {
        self.compressions.fetch_add(1, Ordering::Relaxed);
        let size = |b: &Option<Vec<u8>>| b.as_ref().map_or(0, |b| b.len() as u64);
        let mut extra = size(&br) + size(&gz);
        let mut state = self.state();
        if !state.is_current(&key, slot) {
            return;
        }
        let (br, gz) = match self.make_room_locked(&mut state, extra, Some(&key)) {
            true => (br, gz),
            // Too big to keep: remembered as not compressed, so it is not
            // compressed again for every request.
            false => {
                extra = 0;
                (None, None)
            }
        };
        let Some(entry) = state.entries.get_mut(&key) else {
            return;
        };
        entry.br = br.map(Arc::from);
        entry.gz = gz.map(Arc::from);
        entry.bytes += extra;
        entry.slot.state.store(READY, Ordering::Release);
        state.bytes += extra;
    }

    /// Evicts least recently used entries (never `keep`) until `extra`
    /// more bytes fit in the budget; false if they cannot.
    fn make_room_locked(&self, state: &mut State, extra: u64, keep: Option<&Version>) -> bool {
        let over = |state: &State| {
            state.bytes + self.file_bytes.load(Ordering::Relaxed) + extra > self.cap
        };
        let mut kept = None;
        while over(state) {
            let Some((lru, key)) = state.lru.pop_first() else {
                break;
            };
            let Some(entry) = state.entries.get_mut(&key) else {
                continue;
            };
            if Some(&key) == keep {
                kept = Some((lru, key));
                continue;
            }
            // Used since it was filed: filed again where it belongs.
            let used = entry.slot.used.load(Ordering::Relaxed);
            if used > lru.0 {
                entry.lru = (used, lru.1);
                state.lru.insert(entry.lru, key);
                continue;
            }
            if let Some(entry) = state.entries.remove(&key) {
                entry.slot.state.store(GONE, Ordering::Release);
                state.bytes -= entry.bytes;
                self.evictions.fetch_add(1, Ordering::Relaxed);
            }
        }
        if let Some((lru, key)) = kept {
            state.lru.insert(lru, key);
        }
        !over(state)
    }

    /// Makes room for `bytes` more of a worker's in-memory files, evicting
    /// compressed entries if need be; false if they cannot fit. These
    /// files take at most half the budget (they are not evicted, only
    /// forgotten when they change), so compressing always has room.
    pub(super) fn reserve_file_bytes(&self, bytes: u64) -> bool {
        // Checked and added under the lock: workers reserve one at a time.
        let mut state = self.state();
        if self.file_bytes.load(Ordering::Relaxed) + bytes > self.cap / 2 {
            return false;
        }
        if !self.make_room_locked(&mut state, bytes, None) {
            return false;
        }
        self.file_bytes.fetch_add(bytes, Ordering::Relaxed);
        true
    }

    /// Forgets a compression that will not finish (the file changed).
    fn abandon(&self, key: Version, slot: &Arc<EntryState>) {
        let mut state = self.state();
        if !state.is_current(&key, slot) {
            return;
        }
        if let Some(entry) = state.entries.remove(&key) {
            state.lru.remove(&entry.lru);
            entry.slot.state.store(GONE, Ordering::Release);
            state.bytes -= entry.bytes;
        }
    }

    pub(super) fn figures(&self) -> CacheFigures {
        let state = self.state();
        CacheFigures {
            max_bytes: self.cap,
            file_bytes: self.file_bytes.load(Ordering::Relaxed),
            compressed_entries: state.entries.len() as u64,
            compressed_bytes: state.bytes,
            compressions: self.compressions.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
        }
    }
}

/// One compression, on a compression thread; whatever comes of it, the
/// requests waiting for it are woken.
fn run(job: Job) {
    let slot = job.slot.clone();
    compress_job(job);
    slot.done.set();
}

fn compress_job(job: Job) {
    let bytes: Arc<[u8]> = match job.source {
        Source::Bytes(bytes) => bytes,
        // Only the version the key names, read from the served descriptor.
        Source::File(file, meta) => match read_version(&file, meta) {
            (m, Some(bytes)) if Version::of(&m) == job.key => bytes.into(),
            _ => {
                if let Some(store) = job.store.upgrade() {
                    store.abandon(job.key, &job.slot);
                }
                return;
            }
        },
    };
    // The store may be gone (a reload replaced it): then no work at all.
    if job.store.strong_count() == 0 {
        return;
    }
    let br = compress(Encoding::Br, &bytes);
    let gz = compress(Encoding::Gzip, &bytes);
    if let Some(store) = job.store.upgrade() {
        store.finish(job.key, &job.slot, br, gz);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn version_of(dir: &std::path::Path, name: &str) -> Version {
        let path = dir.join(name);
        std::fs::write(&path, name).expect("write");
        Version::of(&std::fs::metadata(&path).expect("stat"))
    }

    fn wait_ready(slot: &EntryState) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while slot.pending() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(slot.ready(), "compressed within 20 s");
    }

    /// A version asked for again while it is being compressed shares the
    /// one compression; its bytes are counted once.
    #[test]
    fn one_compression_per_version_counted_once() {
        let dir = std::env::temp_dir().join(format!("conveyor-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let store = Arc::new(Store::new(1 << 20, 1));
        let text: Arc<[u8]> = b"body { margin: 0 auto; }\n".repeat(400).into();
        let key = version_of(&dir, "a.css");
        let first = store
            .get_or_start(key, Source::Bytes(text.clone()))
            .expect("queued");
        let again = store
            .get_or_start(key, Source::Bytes(text.clone()))
            .expect("found");
        assert!(Arc::ptr_eq(&first.slot, &again.slot));
        wait_ready(&first.slot);
        let ready = store.get_or_start(key, Source::Bytes(text)).expect("found");
        let br = ready.br.and_then(|w| w.upgrade()).expect("brotli kept");
        let gz = ready.gz.and_then(|w| w.upgrade()).expect("gzip kept");
        let figures = store.figures();
        assert_eq!(figures.compressions, 1);
        assert_eq!(figures.compressed_entries, 1);
        let charged = (br.len() + gz.len()) as u64 + ENTRY_OVERHEAD;
        assert_eq!(figures.compressed_bytes, charged);
        // In-memory files get at most half the budget.
        assert!(!store.reserve_file_bytes((1 << 19) + 1));
        assert!(store.reserve_file_bytes(1 << 18));
        assert_eq!(store.figures().file_bytes, 1 << 18);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
