//! The running server's configuration: one value behind an `Arc`, rebuilt
//! and swapped whole while workers keep running.
//!
//! A request takes the configuration current when its connection was taken
//! off the queue and keeps it to the end, so no request sees half of one
//! configuration and half of another. Reading costs a relaxed load of the
//! generation and, on each worker, an `Arc` clone of a cached copy: the
//! lock is taken only the first time a worker sees a new generation.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use super::Config;

/// A configuration that can be replaced while the server runs.
#[derive(Debug)]
pub struct SharedConfig {
    /// Tells one `SharedConfig` from another in the per-thread cache.
    id: usize,
    /// Bumped by every `replace`; starts at 1.
    generation: AtomicU64,
    current: Mutex<Arc<Config>>,
    /// When the current one was made current, and the file it was read
    /// from (for `/status`).
    origin: Mutex<(SystemTime, Option<PathBuf>)>,
}

thread_local! {
    /// This thread's copy: (which `SharedConfig`, its generation, the value).
    static CACHED: RefCell<Option<(usize, u64, Arc<Config>)>> = const { RefCell::new(None) };
}

impl SharedConfig {
    /// Holds `config` as generation 1.
    pub fn new(config: Config) -> SharedConfig {
        static NEXT_ID: AtomicUsize = AtomicUsize::new(1);
        SharedConfig {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            generation: AtomicU64::new(1),
            current: Mutex::new(Arc::new(config)),
            origin: Mutex::new((SystemTime::now(), None)),
        }
    }

    /// Records the file the configuration is read from (`None`: defaults
    /// and flags only), for `/status`.
    pub fn set_file(&self, file: Option<&Path>) {
        self.origin.lock().unwrap_or_else(PoisonError::into_inner).1 = file.map(Path::to_path_buf);
    }

    /// When the current configuration was made current, and its file.
    pub fn origin(&self) -> (SystemTime, Option<PathBuf>) {
        self.origin
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The current configuration.
    pub fn load(&self) -> Arc<Config> {
        let generation = self.generation.load(Ordering::Acquire);
        CACHED.with(|cached| {
            let mut cached = cached.borrow_mut();
            if let Some((id, seen, config)) = &*cached {
                if *id == self.id && *seen == generation {
                    return config.clone();
                }
            }
            // Read after the generation: at worst a newer value is cached
            // under an older number, and read again next time.
            let config = self.lock().clone();
            *cached = Some((self.id, generation, config.clone()));
            config
        })
    }

    /// Makes `config` current for every request that starts from now on;
    /// returns its generation.
    pub fn replace(&self, config: Config) -> u64 {
        let mut current = self.lock();
        *current = Arc::new(config);
        self.origin.lock().unwrap_or_else(PoisonError::into_inner).0 = SystemTime::now();
        self.generation.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// How many configurations there have been (1 until the first replace).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Arc<Config>> {
        self.current.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replacement_is_seen_by_the_next_load_on_every_thread() {
        let shared = Arc::new(SharedConfig::new(Config::default()));
        assert_eq!(shared.generation(), 1);
        assert_eq!(shared.load().limits.max_requests_per_connection, 1000);
        let mut next = Config::default();
        next.limits.max_requests_per_connection = 7;
        assert_eq!(shared.replace(next), 2);
        assert_eq!(shared.load().limits.max_requests_per_connection, 7);
        let other = shared.clone();
        let seen = std::thread::spawn(move || other.load().limits.max_requests_per_connection);
        assert_eq!(seen.join().unwrap(), 7);
    }

    #[test]
    fn two_shared_configs_on_one_thread_do_not_mix() {
        let mut small = Config::default();
        small.limits.max_headers = 3;
        let (a, b) = (
            SharedConfig::new(Config::default()),
            SharedConfig::new(small),
        );
        assert_eq!(a.load().limits.max_headers, 100);
        assert_eq!(b.load().limits.max_headers, 3);
        assert_eq!(a.load().limits.max_headers, 100);
    }
}
