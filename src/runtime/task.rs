//! A green thread: a future owned by one worker, woken through an `Arc<Header>`.
//!
//! The future itself never leaves its worker's slab, so it need not be `Send`.
//! Only the header travels: it is the `Waker`, and a wake on another thread
//! reaches the owner through its injection queue.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use super::executor::{deliver_wake, WorkerShared};

const IDLE: u8 = 0;
const SCHEDULED: u8 = 1;
const RUNNING: u8 = 2;
/// Woken while running: go back on the ready queue after this poll.
const NOTIFIED: u8 = 3;
const DONE: u8 = 4;

/// Scheduler state of one green thread, shared with its wakers.
pub(crate) struct Header {
    /// Slot in the owning worker's slab.
    pub(crate) slot: usize,
    pub(crate) worker: Arc<WorkerShared>,
    state: AtomicU8,
}

impl Header {
    pub(crate) fn new(slot: usize, worker: Arc<WorkerShared>) -> Arc<Header> {
        Arc::new(Header {
            slot,
            worker,
            state: AtomicU8::new(SCHEDULED),
        })
    }

    /// Makes a finished task's header, held by nothing else, the header
    /// of a new task in `slot` (no allocation).
    pub(crate) fn reuse(mut header: Arc<Header>, slot: usize) -> Option<Arc<Header>> {
        let h = Arc::get_mut(&mut header)?;
        h.slot = slot;
        *h.state.get_mut() = SCHEDULED;
        Some(header)
    }

    /// Called by the executor before polling.
    pub(crate) fn set_running(&self) {
        self.state.store(RUNNING, Ordering::Relaxed);
    }

    /// After a `Pending` poll: true when a wake arrived during the poll and the
    /// task must be queued again.
    pub(crate) fn park(&self) -> bool {
        match self
            .state
            .compare_exchange(RUNNING, IDLE, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => false,
            Err(_) => {
                self.state.store(SCHEDULED, Ordering::Release);
                true
            }
        }
    }

    pub(crate) fn set_done(&self) {
        self.state.store(DONE, Ordering::Release);
    }

    pub(crate) fn is_done(&self) -> bool {
        self.state.load(Ordering::Acquire) == DONE
    }

    /// Moves the task towards the ready queue; true if the caller must enqueue it.
    fn transition_on_wake(&self) -> bool {
        let mut state = self.state.load(Ordering::Acquire);
        loop {
            let next = match state {
                IDLE => SCHEDULED,
                RUNNING => NOTIFIED,
                _ => return false,
            };
            match self
                .state
                .compare_exchange_weak(state, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return next == SCHEDULED,
                Err(actual) => state = actual,
            }
        }
    }
}

impl Wake for Header {
    fn wake(self: Arc<Self>) {
        if self.transition_on_wake() {
            deliver_wake(self);
        }
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.transition_on_wake() {
            deliver_wake(self.clone());
        }
    }
}

/// A task's future, in a block reused from the worker's pool.
pub(crate) type TaskFuture = super::pooled::PooledFuture<'static, ()>;

/// A slot of the worker's slab: the future (absent while it is being polled)
/// and its waker, built once.
pub(crate) struct Task {
    pub(crate) future: Option<TaskFuture>,
    pub(crate) header: Arc<Header>,
    pub(crate) waker: Option<Waker>,
}

/// Why a `JoinHandle` has no value: the green thread panicked or was dropped
/// (for instance at shutdown) before it finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinError;

impl std::fmt::Display for JoinError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("green thread panicked or was cancelled")
    }
}

impl std::error::Error for JoinError {}

struct JoinSlot<T> {
    result: Option<Result<T, JoinError>>,
    waiter: Option<Waker>,
}

/// Awaits a spawned green thread's output. Dropping it detaches the thread.
pub struct JoinHandle<T> {
    slot: Arc<Mutex<JoinSlot<T>>>,
}

impl<T> JoinHandle<T> {
    /// Whether the green thread has finished (or died).
    pub fn is_finished(&self) -> bool {
        self.slot
            .lock()
            .map(|slot| slot.result.is_some())
            .unwrap_or(true)
    }

    /// Lets the green thread run on without anyone waiting for it.
    pub fn detach(self) {}
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Ok(mut slot) = self.slot.lock() else {
            return Poll::Ready(Err(JoinError));
        };
        match slot.result.take() {
            Some(result) => Poll::Ready(result),
            None => {
                slot.waiter = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// Fills the join slot when the task finishes, or with an error when the task
/// is dropped unfinished (panic, shutdown).
struct Completer<T> {
    slot: Option<Arc<Mutex<JoinSlot<T>>>>,
}

impl<T> Completer<T> {
    fn complete(&mut self, result: Result<T, JoinError>) {
        let Some(slot) = self.slot.take() else { return };
        let waiter = match slot.lock() {
            Ok(mut slot) => {
                slot.result = Some(result);
                slot.waiter.take()
            }
            Err(_) => None,
        };
        if let Some(waiter) = waiter {
            waiter.wake();
        }
    }
}

impl<T> Drop for Completer<T> {
    fn drop(&mut self) {
        self.complete(Err(JoinError));
    }
}

/// A user future whose output lands in a `JoinHandle`. Hand-written rather
/// than an `async` block, which would store the future twice (measured: a
/// 72-byte future took 160 bytes).
pub(crate) struct Joinable<F: Future> {
    future: F,
    completer: Completer<F::Output>,
}

impl<F: Future> Future for Joinable<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // SAFETY: `future` is structurally pinned: it is never moved out of
        // `Joinable`, no `Drop` impl touches it, and `Joinable` is `Unpin`
        // only if `F` is. `completer` is not pinned and only used by `&mut`.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: see above.
        let future = unsafe { Pin::new_unchecked(&mut this.future) };
        match future.poll(cx) {
            Poll::Ready(output) => {
                this.completer.complete(Ok(output));
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Wraps a user future so its output lands in a `JoinHandle`.
pub(crate) fn joinable<F>(future: F) -> (Joinable<F>, JoinHandle<F::Output>)
where
    F: Future + 'static,
{
    let slot = Arc::new(Mutex::new(JoinSlot {
        result: None,
        waiter: None,
    }));
    let task = Joinable {
        future,
        completer: Completer {
            slot: Some(slot.clone()),
        },
    };
    (task, JoinHandle { slot })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::reactor::PollMode;

    fn header() -> Arc<Header> {
        let worker = Arc::new(WorkerShared::new(0, PollMode::Edge).expect("worker"));
        Header::new(0, worker)
    }

    #[test]
    fn a_wake_during_a_poll_requeues_the_task_once() {
        let header = header();
        header.set_running();
        assert!(!header.park(), "no wake: the task parks");
        header.set_running();
        Waker::from(header.clone()).wake_by_ref();
        Waker::from(header.clone()).wake_by_ref(); // a second wake adds nothing
        assert!(
            header.park(),
            "woken while running: back on the ready queue"
        );
        assert_eq!(header.worker.injected_len(), 0, "no delivery while running");
    }

    #[test]
    fn a_wake_of_a_parked_task_is_delivered_once_and_none_after_done() {
        let header = header();
        header.set_running();
        assert!(!header.park());
        // Off the worker's thread: delivered through its injection queue.
        Waker::from(header.clone()).wake_by_ref();
        Waker::from(header.clone()).wake_by_ref();
        assert_eq!(header.worker.injected_len(), 1, "scheduled once");
        header.set_done();
        assert!(header.is_done());
        Waker::from(header.clone()).wake_by_ref();
        assert_eq!(
            header.worker.injected_len(),
            1,
            "a finished task is not woken"
        );
    }
}
