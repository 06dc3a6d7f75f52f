//! The reactor: one `polling::Poller` per worker and the registry of the file
//! descriptors it watches.
//!
//! Each registered descriptor is a [`Source`] with, per direction, a count of
//! readiness events and the waker of the green thread parked on it. An I/O
//! operation remembers the count before it tries the syscall; if the syscall
//! says `WouldBlock`, the green thread parks unless the count moved meanwhile.
//! That closes the race between "the socket was empty" and "data arrived"
//! without a lock on the fast path.

use std::io;
use std::os::fd::{BorrowedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Waker};
use std::time::Duration;

use polling::{Event, Events, Poller};

use super::executor::WorkerShared;
use super::task::Slab;

/// How sockets are registered with epoll.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PollMode {
    /// Register once, edge-triggered, for both directions: no `epoll_ctl`
    /// per request.
    #[default]
    Edge,
    /// Re-arm with `epoll_ctl(MOD)` each time a green thread parks.
    Oneshot,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    Read = 0,
    Write = 1,
}

pub(crate) struct Reactor {
    poller: Poller,
    sources: Mutex<Slab<Arc<Source>>>,
    mode: PollMode,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded data stays consistent even if a holder panicked.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Reactor {
    pub(crate) fn new(mode: PollMode) -> io::Result<Reactor> {
        Ok(Reactor {
            poller: Poller::new()?,
            sources: Mutex::new(Slab::new()),
            mode,
        })
    }

    pub(crate) fn notify(&self) {
        // Fails only if the eventfd is gone, i.e. the poller is being dropped.
        let _ = self.poller.notify();
    }

    /// Blocks until events arrive or `timeout` passes; wakes the parked green
    /// threads. Returns how many events were dispatched.
    pub(crate) fn wait(&self, events: &mut Events, timeout: Option<Duration>) -> usize {
        events.clear();
        if self.poller.wait(events, timeout).is_err() {
            // EINTR and friends: the caller simply turns again.
            return 0;
        }
        let sources = lock(&self.sources);
        let mut fired = 0;
        for event in events.iter() {
            let Some(source) = sources.get(event.key) else {
                continue;
            };
            if event.readable {
                source.fire(Direction::Read);
            }
            if event.writable {
                source.fire(Direction::Write);
            }
            fired += 1;
        }
        fired
    }

    /// Starts watching `fd` for the lifetime of the returned source.
    pub(crate) fn register(worker: &Arc<WorkerShared>, fd: RawFd) -> io::Result<Arc<Source>> {
        let reactor = &worker.reactor;
        let mut sources = lock(&reactor.sources);
        let key = sources.vacant_key();
        let source = Arc::new(Source {
            fd,
            key,
            worker: worker.clone(),
            ticks: [AtomicU64::new(0), AtomicU64::new(0)],
            drained: [AtomicU64::new(0), AtomicU64::new(0)],
            wakers: Mutex::new([None, None]),
        });
        let (interest, mode) = match reactor.mode {
            PollMode::Edge => (Event::all(key), polling::PollMode::Edge),
            PollMode::Oneshot => (Event::none(key), polling::PollMode::Oneshot),
        };
        // SAFETY: the caller (`Async`) owns `fd` and calls `deregister` before
        // closing it, as `Poller::add` requires.
        unsafe { reactor.poller.add_with_mode(fd, interest, mode)? };
        sources.insert(source.clone());
        Ok(source)
    }
}

/// One watched file descriptor.
pub(crate) struct Source {
    fd: RawFd,
    key: usize,
    worker: Arc<WorkerShared>,
    /// Readiness events seen so far, per direction.
    ticks: [AtomicU64; 2],
    /// Per direction, the tick at which the descriptor was last seen
    /// exhausted (a read found it empty, a write found it full).
    drained: [AtomicU64; 2],
    wakers: Mutex<[Option<Waker>; 2]>,
}

impl Source {
    pub(crate) fn tick(&self, direction: Direction) -> u64 {
        self.ticks[direction as usize].load(Ordering::Acquire)
    }

    fn fire(&self, direction: Direction) {
        self.ticks[direction as usize].fetch_add(1, Ordering::AcqRel);
        let waker = lock(&self.wakers)[direction as usize].take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Records that the descriptor was exhausted in `direction` as of `tick`.
    pub(crate) fn mark_drained(&self, direction: Direction, tick: u64) {
        self.drained[direction as usize].store(tick, Ordering::Release);
    }

    /// The tick at which the descriptor was last exhausted in `direction`;
    /// it is ready again once the tick moves past it.
    pub(crate) fn drained_tick(&self, direction: Direction) -> u64 {
        self.drained[direction as usize].load(Ordering::Acquire)
    }

    /// Parks the current green thread until the next event in `direction`.
    /// Returns false (do not park, try again) if an event arrived after
    /// `seen_tick` was read.
    pub(crate) fn park(&self, cx: &Context<'_>, direction: Direction, seen_tick: u64) -> bool {
        {
            let mut wakers = lock(&self.wakers);
            match &mut wakers[direction as usize] {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                slot => *slot = Some(cx.waker().clone()),
            }
            if self.worker.reactor.mode == PollMode::Oneshot {
                let interest = Event::new(self.key, wakers[0].is_some(), wakers[1].is_some());
                // SAFETY: `fd` stays open while the source is registered.
                let fd = unsafe { BorrowedFd::borrow_raw(self.fd) };
                let _ = self.worker.reactor.poller.modify_with_mode(
                    fd,
                    interest,
                    polling::PollMode::Oneshot,
                );
            }
        }
        self.tick(direction) == seen_tick
    }

    /// Stops watching; must run before the descriptor is closed.
    pub(crate) fn deregister(&self) {
        let reactor = &self.worker.reactor;
        let removed = lock(&reactor.sources).remove(self.key);
        // SAFETY: the descriptor is still open: `Async` closes it only after this.
        let fd = unsafe { BorrowedFd::borrow_raw(self.fd) };
        let _ = reactor.poller.delete(fd);
        // Drop the registry's reference (and any parked waker) outside the lock.
        drop(removed);
        lock(&self.wakers).iter_mut().for_each(|w| *w = None);
    }
}
