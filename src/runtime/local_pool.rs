//! `LocalPool<T>`: values a thread keeps for reuse instead of going back to
//! the allocator (read buffers, response buffers, future blocks).
//!
//! Meant for a `thread_local!` static: a worker reuses its own, without a
//! lock. At most `cap` values are kept; `give` hands back any beyond that,
//! so the caller decides how to drop it.

use std::cell::RefCell;

/// A per-thread stack of up to `cap` spare values; not `Sync`, no lock.
pub struct LocalPool<T> {
    items: RefCell<Vec<T>>,
    cap: usize,
}

impl<T> LocalPool<T> {
    /// An empty pool keeping at most `cap` values. `const`, so it can sit in
    /// a `thread_local!` without lazy initialisation.
    pub const fn new(cap: usize) -> LocalPool<T> {
        LocalPool {
            items: RefCell::new(Vec::new()),
            cap,
        }
    }

    /// The value given back last, if any.
    pub fn take(&self) -> Option<T> {
        self.items.borrow_mut().pop()
    }

    /// Keeps `item` for reuse; gives it back when the pool is full. The
    /// value is dropped by the caller, outside the pool's borrow.
    pub fn give(&self, item: T) -> Result<(), T> {
        let mut items = self.items.borrow_mut();
        if items.len() < self.cap {
            items.push(item);
            Ok(())
        } else {
            Err(item)
        }
    }

    /// How many values are kept now.
    pub fn len(&self) -> usize {
        self.items.borrow().len()
    }

    /// Whether no value is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_up_to_its_cap_and_reuses_the_last_given() {
        let pool = LocalPool::new(2);
        assert_eq!(pool.take(), None::<u32>);
        assert_eq!(pool.give(1), Ok(()));
        assert_eq!(pool.give(2), Ok(()));
        assert_eq!(pool.give(3), Err(3), "over the cap: handed back");
        assert_eq!(pool.len(), 2);
        assert_eq!(pool.take(), Some(2));
        assert_eq!(pool.take(), Some(1));
        assert!(pool.is_empty());
    }

    #[test]
    fn a_thread_local_pool_is_per_thread() {
        thread_local! {
            static POOL: LocalPool<u8> = const { LocalPool::new(4) };
        }
        let _ = POOL.with(|p| p.give(7));
        let other = std::thread::spawn(|| POOL.with(LocalPool::take))
            .join()
            .expect("joins");
        assert_eq!(other, None);
        assert_eq!(POOL.with(LocalPool::take), Some(7));
    }
}
