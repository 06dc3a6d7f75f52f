//! `Queue<T>`: a bounded (or unbounded) first-in first-out queue whose
//! `send` parks when it is full (backpressure) and whose `recv` parks when
//! it is empty, between green threads on one worker or on several.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::atomic::{fence, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{ready, Context, Poll, Waker};

use super::executor::poll_budget;
use super::stats::Counter;

/// A shared, cloneable queue. Every clone sends to and receives from the same
/// channel.
pub struct Queue<T> {
    inner: Arc<Inner<T>>,
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<T> {
    /// A short lock around a ring buffer, not a lock-free channel: the
    /// items move under it in a few instructions, and there is no
    /// channel's own waker list to tell besides `receivers` and `senders`
    /// (callgrind: crossbeam's array channel cost some 60 instructions
    /// more per item sent and received).
    items: Mutex<VecDeque<T>>,
    capacity: Option<usize>,
    receivers: Waiters,
    senders: Waiters,
    stats: QueueStats,
}

/// Totals of one queue, readable from any thread.
#[derive(Default, Debug)]
pub(crate) struct QueueStats {
    /// Items sent.
    pub(crate) pushed: Counter,
    /// Items received.
    pub(crate) popped: Counter,
}

/// A point-in-time copy of a queue's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueSnapshot {
    /// Items waiting in the queue.
    pub depth: u64,
    /// The most items it holds; `None` when unbounded.
    pub capacity: Option<u64>,
    /// Items sent since the queue was made.
    pub pushed: u64,
    /// Items received since the queue was made.
    pub popped: u64,
}

/// `try_send` found the queue full; the value comes back.
#[derive(Debug, PartialEq, Eq)]
pub struct Full<T>(pub T);

impl<T> Queue<T> {
    /// A queue that holds at most `capacity` items (at least 1).
    pub fn bounded(capacity: usize) -> Queue<T> {
        Queue::with_capacity(Some(capacity.max(1)))
    }

    /// A queue with no limit: `send` never parks.
    pub fn unbounded() -> Queue<T> {
        Queue::with_capacity(None)
    }

    fn with_capacity(capacity: Option<usize>) -> Queue<T> {
        // Room for a few items at first, grown to the bound only if a
        // backlog needs it: a deep queue that stays shallow touches little.
        let room = capacity.unwrap_or(0).min(INITIAL_ROOM);
        Queue {
            inner: Arc::new(Inner {
                items: Mutex::new(VecDeque::with_capacity(room)),
                capacity,
                receivers: Waiters::default(),
                senders: Waiters::default(),
                stats: QueueStats::default(),
            }),
        }
    }

    /// Sends without waiting; gives the value back when the queue is full.
    pub fn try_send(&self, value: T) -> Result<(), Full<T>> {
        {
            let mut items = self.inner.lock();
            if self.inner.full_at(items.len()) {
                return Err(Full(value));
            }
            items.push_back(value);
        }
        self.inner.stats.pushed.add(1);
        self.inner.receivers.notify_one();
        Ok(())
    }

    /// Receives without waiting.
    pub fn try_recv(&self) -> Option<T> {
        let value = self.inner.lock().pop_front()?;
        self.inner.stats.popped.add(1);
        self.inner.senders.notify_one();
        Some(value)
    }

    /// Sends, parking while the queue is full.
    pub async fn send(&self, value: T) {
        let mut value = Some(value);
        let mut waiter = Waiter::new(&self.inner.senders);
        poll_fn(|cx| {
            ready!(poll_budget(cx));
            while let Some(item) = value.take() {
                match self.try_send(item) {
                    Ok(()) => return Poll::Ready(()),
                    Err(Full(item)) => value = Some(item),
                }
                waiter.register(cx);
                if self.inner.is_full() {
                    return Poll::Pending;
                }
            }
            Poll::Ready(())
        })
        .await;
        waiter.finish(|| !self.inner.is_full());
    }

    /// Receives, parking while the queue is empty.
    pub async fn recv(&self) -> T {
        let mut waiter = Waiter::new(&self.inner.receivers);
        let value = poll_fn(|cx| {
            ready!(poll_budget(cx));
            loop {
                if let Some(value) = self.try_recv() {
                    return Poll::Ready(value);
                }
                waiter.register(cx);
                if self.is_empty() {
                    return Poll::Pending;
                }
            }
        })
        .await;
        waiter.finish(|| !self.is_empty());
        value
    }

    /// Items waiting now.
    pub fn len(&self) -> usize {
        self.inner.lock().len()
    }

    /// Whether no item is waiting.
    pub fn is_empty(&self) -> bool {
        self.inner.lock().is_empty()
    }

    /// The most items the queue holds; `None` when unbounded.
    pub fn capacity(&self) -> Option<usize> {
        self.inner.capacity
    }

    /// Its depth, capacity and totals now.
    pub fn snapshot(&self) -> QueueSnapshot {
        QueueSnapshot {
            depth: self.len() as u64,
            capacity: self.inner.capacity.map(|c| c as u64),
            pushed: self.inner.stats.pushed.get(),
            popped: self.inner.stats.popped.get(),
        }
    }
}

/// Items a bounded queue has room for before it first grows.
const INITIAL_ROOM: usize = 64;

impl<T> Inner<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<T>> {
        // A panic never leaves the ring half-changed: its own methods do
        // not panic midway, so a poisoned lock's items are sound.
        self.items.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn is_full(&self) -> bool {
        self.full_at(self.lock().len())
    }

    /// Whether `len` items fill the queue.
    fn full_at(&self, len: usize) -> bool {
        self.capacity.is_some_and(|c| len >= c)
    }
}

/// The green threads parked on one side of a queue, woken first-come
/// first-served. Entries carry increasing ids, so the list stays sorted and a
/// waiter finds itself by binary search; an id no longer in the list means
/// a notifier popped it.
#[derive(Default)]
struct Waiters {
    count: AtomicUsize,
    list: Mutex<WaitList>,
}

#[derive(Default)]
struct WaitList {
    entries: VecDeque<(u64, Waker)>,
    next_id: u64,
}

impl WaitList {
    fn position(&self, id: u64) -> Option<usize> {
        self.entries
            .binary_search_by_key(&id, |(entry, _)| *entry)
            .ok()
    }
}

impl Waiters {
    fn lock(&self) -> std::sync::MutexGuard<'_, WaitList> {
        self.list.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn notify_one(&self) {
        // Pairs with the `fetch_add` in `Waiter::register`: either the waiter
        // sees our item, or we see its registration.
        fence(Ordering::SeqCst);
        if self.count.load(Ordering::Relaxed) == 0 {
            return;
        }
        let popped = self.lock().entries.pop_front();
        if let Some((_, waker)) = popped {
            self.count.fetch_sub(1, Ordering::Relaxed);
            waker.wake();
        }
    }
}

/// One future's place in a `Waiters` list.
struct Waiter<'a> {
    waiters: &'a Waiters,
    id: Option<u64>,
}

impl<'a> Waiter<'a> {
    fn new(waiters: &'a Waiters) -> Self {
        Waiter { waiters, id: None }
    }

    /// Makes sure we are queued with the current waker; the caller then
    /// re-checks the queue before parking.
    fn register(&mut self, cx: &Context<'_>) {
        let mut list = self.waiters.lock();
        if let Some(index) = self.id.and_then(|id| list.position(id)) {
            let waker = &mut list.entries[index].1;
            if !waker.will_wake(cx.waker()) {
                *waker = cx.waker().clone();
            }
            return;
        }
        let id = list.next_id;
        list.next_id += 1;
        list.entries.push_back((id, cx.waker().clone()));
        self.id = Some(id);
        // A full barrier: our entry is visible before we re-check the queue.
        self.waiters.count.fetch_add(1, Ordering::SeqCst);
    }

    /// Leaves the list; true if we were still in it (not picked by a notifier).
    fn unlink(&mut self) -> bool {
        let Some(id) = self.id.take() else {
            return true;
        };
        let mut list = self.waiters.lock();
        match list.position(id) {
            Some(index) => {
                list.entries.remove(index);
                self.waiters.count.fetch_sub(1, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// The operation completed. If a notifier picked us but what it offered
    /// (an item, a free slot) is still there, pass the turn to the next waiter.
    /// `still_available` is asked only then: a channel's `is_empty` costs a
    /// call (30 instructions a request, callgrind) on every `recv` that
    /// never waited.
    fn finish(&mut self, still_available: impl FnOnce() -> bool) {
        if self.id.is_some() && !self.unlink() && still_available() {
            self.waiters.notify_one();
        }
    }
}

impl Drop for Waiter<'_> {
    /// Dropped mid-wait: a notification we received but never used goes to
    /// the next waiter, so no wake-up is lost.
    fn drop(&mut self) {
        if self.id.is_some() && !self.unlink() {
            self.waiters.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{block_on, spawn};

    #[test]
    fn a_bounded_queue_refuses_when_full_and_counts_both_ends() {
        let queue = Queue::bounded(2);
        assert_eq!(queue.capacity(), Some(2));
        assert!(queue.try_send(1).is_ok());
        assert!(queue.try_send(2).is_ok());
        assert!(
            matches!(queue.try_send(3), Err(Full(3))),
            "the value comes back"
        );
        assert_eq!(queue.try_recv(), Some(1), "first in, first out");
        let s = queue.snapshot();
        assert_eq!(
            (s.depth, s.capacity, s.pushed, s.popped),
            (1, Some(2), 2, 1)
        );
        assert_eq!(Queue::<u8>::bounded(0).capacity(), Some(1), "at least one");
        assert_eq!(Queue::<u8>::unbounded().capacity(), None);
    }

    #[test]
    fn a_sender_parks_while_full_and_a_receiver_while_empty() {
        let got = block_on(async {
            let queue = Queue::bounded(1);
            let producer = queue.clone();
            let sent = spawn(async move {
                for n in 0..5u32 {
                    producer.send(n).await; // parks on the full queue
                }
            });
            let mut got = Vec::new();
            for _ in 0..5 {
                got.push(queue.recv().await); // parks on the empty queue
            }
            sent.await.expect("producer done");
            assert!(queue.is_empty());
            got
        });
        assert_eq!(got, [0, 1, 2, 3, 4]);
    }
}
