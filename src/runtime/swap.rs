//! `Swap<T>`: a value replaced whole while workers keep reading it. A read
//! costs an atomic load and, on the worker's own padded slot, an
//! uncontended lock and an `Arc` clone; the shared value is locked only the
//! first time a worker sees a new generation.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::{current_worker, wrap_index};

/// A value that can be replaced while green threads on every worker read it.
pub struct Swap<T> {
    generation: AtomicU64,
    current: Mutex<Arc<T>>,
    /// One per worker: (the generation cached, its value).
    cached: Box<[WorkerCopy<T>]>,
}

/// A worker's cached copy, on a cache line of its own.
#[repr(align(128))]
struct WorkerCopy<T>(Mutex<(u64, Arc<T>)>);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<T> Swap<T> {
    /// Holds `value` as generation 1, with a cached copy per worker.
    pub fn new(value: T, workers: usize) -> Swap<T> {
        let value = Arc::new(value);
        Swap {
            generation: AtomicU64::new(1),
            cached: (0..workers.max(1))
                .map(|_| WorkerCopy(Mutex::new((1, value.clone()))))
                .collect(),
            current: Mutex::new(value),
        }
    }

    /// The current value. Inlined: the handler asks on every turn of a
    /// connection (a call of its own measured +30 instructions).
    #[inline(always)]
    pub fn load(&self) -> Arc<T> {
        let generation = self.generation.load(Ordering::Acquire);
        let slot = wrap_index(current_worker().unwrap_or(0), self.cached.len());
        let mut cached = lock(&self.cached[slot].0);
        if cached.0 != generation {
            // Read after the generation: at worst a newer value is cached
            // under an older number, and read again next time.
            *cached = (generation, lock(&self.current).clone());
        }
        cached.1.clone()
    }

    /// Makes `value` current for every `load` from now on.
    pub fn replace(&self, value: T) {
        *lock(&self.current) = Arc::new(value);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replacement_is_seen_by_the_next_load_on_every_thread() {
        let swap = Arc::new(Swap::new(1, 2));
        assert_eq!(*swap.load(), 1);
        swap.replace(2);
        assert_eq!(*swap.load(), 2);
        let other = swap.clone();
        assert_eq!(std::thread::spawn(move || *other.load()).join().unwrap(), 2);
    }
}
