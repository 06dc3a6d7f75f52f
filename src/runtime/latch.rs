//! `Latch`: a one-way flag that green threads can await (used for shutdown).

use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::task::{Poll, Waker};

/// A flag that starts unset and, once set, stays set; shareable between
/// threads, awaited by green threads on any worker.
#[derive(Default)]
pub struct Latch {
    set: AtomicBool,
    waiters: Mutex<Vec<Waker>>,
}

impl Latch {
    /// An unset latch.
    pub fn new() -> Latch {
        Latch::default()
    }

    /// Whether `set` has been called, without waiting.
    pub fn is_set(&self) -> bool {
        self.set.load(Ordering::Acquire)
    }

    /// Sets the flag and wakes every waiter.
    pub fn set(&self) {
        self.set.store(true, Ordering::Release);
        let waiters = std::mem::take(&mut *self.lock());
        for waker in waiters {
            waker.wake();
        }
    }

    /// Completes once the latch is set. Meant for a few long-lived waiters
    /// (acceptors): each registration stays until `set`.
    pub async fn wait(&self) {
        poll_fn(|cx| {
            if self.is_set() {
                return Poll::Ready(());
            }
            {
                let mut waiters = self.lock();
                if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
                    waiters.push(cx.waker().clone());
                }
            }
            // Re-check: `set` may have run before we registered.
            if self.is_set() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Waker>> {
        self.waiters.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
