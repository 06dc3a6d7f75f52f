//! `Queue<T>`: a crossbeam channel whose `send` parks when it is full
//! (backpressure) and whose `recv` parks when it is empty, between green
//! threads on one worker or on several.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{ready, Context, Poll, Waker};

use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};

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
    tx: Sender<T>,
    rx: Receiver<T>,
    capacity: Option<usize>,
    receivers: Waiters,
    senders: Waiters,
    stats: QueueStats,
}

/// Totals of one queue, readable from any thread.
#[derive(Default, Debug)]
pub struct QueueStats {
    pub pushed: Counter,
    pub popped: Counter,
}

/// A point-in-time copy of a queue's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueSnapshot {
    pub depth: u64,
    pub capacity: Option<u64>,
    pub pushed: u64,
    pub popped: u64,
}

/// `try_send` found the queue full; the value comes back.
#[derive(Debug, PartialEq, Eq)]
pub struct Full<T>(pub T);

impl<T> Queue<T> {
    /// A queue that holds at most `capacity` items (at least 1).
    pub fn bounded(capacity: usize) -> Queue<T> {
        let capacity = capacity.max(1);
        let (tx, rx) = crossbeam_channel::bounded(capacity);
        Queue::from_channel(tx, rx, Some(capacity))
    }

    pub fn unbounded() -> Queue<T> {
        let (tx, rx) = crossbeam_channel::unbounded();
        Queue::from_channel(tx, rx, None)
    }

    fn from_channel(tx: Sender<T>, rx: Receiver<T>, capacity: Option<usize>) -> Queue<T> {
        Queue {
            inner: Arc::new(Inner {
                tx,
                rx,
                capacity,
                receivers: Waiters::default(),
                senders: Waiters::default(),
                stats: QueueStats::default(),
            }),
        }
    }

    /// Sends without waiting; gives the value back when the queue is full.
    pub fn try_send(&self, value: T) -> Result<(), Full<T>> {
        match self.inner.tx.try_send(value) {
            Ok(()) => {
                self.inner.stats.pushed.add(1);
                self.inner.receivers.notify_one();
                Ok(())
            }
            Err(TrySendError::Full(value) | TrySendError::Disconnected(value)) => Err(Full(value)),
        }
    }

    /// Receives without waiting.
    pub fn try_recv(&self) -> Option<T> {
        match self.inner.rx.try_recv() {
            Ok(value) => {
                self.inner.stats.popped.add(1);
                self.inner.senders.notify_one();
                Some(value)
            }
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => None,
        }
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
                if self.inner.tx.is_full() {
                    return Poll::Pending;
                }
            }
            Poll::Ready(())
        })
        .await;
        waiter.finish(!self.inner.tx.is_full());
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
                if self.inner.rx.is_empty() {
                    return Poll::Pending;
                }
            }
        })
        .await;
        waiter.finish(!self.inner.rx.is_empty());
        value
    }

    pub fn len(&self) -> usize {
        self.inner.rx.len()
    }

    pub fn is_empty(&self) -> bool {
        self.inner.rx.is_empty()
    }

    pub fn capacity(&self) -> Option<usize> {
        self.inner.capacity
    }

    pub fn snapshot(&self) -> QueueSnapshot {
        QueueSnapshot {
            depth: self.len() as u64,
            capacity: self.inner.capacity.map(|c| c as u64),
            pushed: self.inner.stats.pushed.get(),
            popped: self.inner.stats.popped.get(),
        }
    }
}

/// A parked sender or receiver.
struct WaitNode {
    waker: Mutex<Option<Waker>>,
    notified: AtomicBool,
}

/// The green threads parked on one side of a queue, woken first-come first-served.
#[derive(Default)]
struct Waiters {
    count: AtomicUsize,
    list: Mutex<VecDeque<Arc<WaitNode>>>,
}

impl Waiters {
    fn notify_one(&self) {
        // Pairs with the fence in `Waiter::register`: either the waiter sees
        // our item, or we see its registration.
        fence(Ordering::SeqCst);
        if self.count.load(Ordering::Relaxed) == 0 {
            return;
        }
        let node = {
            let mut list = self.list.lock().unwrap_or_else(PoisonError::into_inner);
            let node = list.pop_front();
            self.count.store(list.len(), Ordering::Relaxed);
            node
        };
        if let Some(node) = node {
            node.notified.store(true, Ordering::Release);
            let waker = node
                .waker
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }
}

/// One future's place in a `Waiters` list.
struct Waiter<'a> {
    waiters: &'a Waiters,
    node: Option<Arc<WaitNode>>,
}

impl<'a> Waiter<'a> {
    fn new(waiters: &'a Waiters) -> Self {
        Waiter {
            waiters,
            node: None,
        }
    }

    /// Makes sure we are queued with the current waker; the caller then
    /// re-checks the queue before parking.
    fn register(&mut self, cx: &Context<'_>) {
        match &self.node {
            Some(node) if !node.notified.load(Ordering::Acquire) => {
                let mut waker = node.waker.lock().unwrap_or_else(PoisonError::into_inner);
                match &*waker {
                    Some(current) if current.will_wake(cx.waker()) => {}
                    _ => *waker = Some(cx.waker().clone()),
                }
            }
            _ => {
                let node = Arc::new(WaitNode {
                    waker: Mutex::new(Some(cx.waker().clone())),
                    notified: AtomicBool::new(false),
                });
                let mut list = self
                    .waiters
                    .list
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                list.push_back(node.clone());
                self.waiters.count.store(list.len(), Ordering::SeqCst);
                self.node = Some(node);
            }
        }
        fence(Ordering::SeqCst);
    }

    /// The operation completed. If a notifier picked us but what it offered
    /// (an item, a free slot) is still there, pass the turn to the next waiter.
    fn finish(&mut self, still_available: bool) {
        let Some(node) = self.node.take() else { return };
        let popped = node.notified.load(Ordering::Acquire) || !self.unlink(&node);
        if popped && still_available {
            self.waiters.notify_one();
        }
    }

    /// Takes `node` out of the list; false if a notifier had already popped it.
    fn unlink(&self, node: &Arc<WaitNode>) -> bool {
        let mut list = self
            .waiters
            .list
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let position = list.iter().position(|other| Arc::ptr_eq(other, node));
        if let Some(position) = position {
            list.remove(position);
            self.waiters.count.store(list.len(), Ordering::SeqCst);
        }
        position.is_some()
    }
}

impl Drop for Waiter<'_> {
    /// Dropped mid-wait: a notification we received but never used goes to
    /// the next waiter, so no wake-up is lost.
    fn drop(&mut self) {
        if let Some(node) = self.node.take() {
            if !self.unlink(&node) {
                self.waiters.notify_one();
            }
        }
    }
}
