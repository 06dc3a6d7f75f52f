//! Timers: a per-worker ordered map of deadlines whose earliest entry becomes
//! the reactor's wait timeout. A dropped timer removes its entry at once, so a
//! cancelled timer costs nothing later.

use std::collections::BTreeMap;
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use super::executor::with_local;

#[derive(Default)]
pub(crate) struct Timers {
    entries: BTreeMap<(Instant, u64), Waker>,
    next_id: u64,
}

impl Timers {
    fn insert(&mut self, deadline: Instant, waker: Waker) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.entries.insert((deadline, id), waker);
        id
    }

    /// Keeps the entry's waker current; re-inserts it if it already fired.
    fn refresh(&mut self, deadline: Instant, id: u64, waker: &Waker) {
        match self.entries.get_mut(&(deadline, id)) {
            Some(current) if current.will_wake(waker) => {}
            Some(current) => *current = waker.clone(),
            None => {
                self.entries.insert((deadline, id), waker.clone());
            }
        }
    }

    fn remove(&mut self, deadline: Instant, id: u64) {
        self.entries.remove(&(deadline, id));
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.entries.keys().next().map(|(deadline, _)| *deadline)
    }

    /// Wakes every timer due by `now`, earliest first; returns how many.
    pub(crate) fn fire(&mut self, now: Instant) -> u64 {
        let mut fired = 0;
        while let Some(entry) = self.entries.first_entry() {
            if entry.key().0 > now {
                break;
            }
            entry.remove().wake();
            fired += 1;
        }
        fired
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }
}

/// Completes at its deadline. Must be polled on a worker thread.
#[derive(Debug)]
pub struct Sleep {
    deadline: Instant,
    registered: Option<u64>,
}

/// Sleeps for `duration`.
pub fn sleep(duration: Duration) -> Sleep {
    sleep_until(Instant::now() + duration)
}

/// Sleeps until `deadline`.
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        deadline,
        registered: None,
    }
}

impl Sleep {
    pub fn deadline(&self) -> Instant {
        self.deadline
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline {
            self.unregister();
            return Poll::Ready(());
        }
        let deadline = self.deadline;
        let registered = self.registered;
        let id = with_local(|local| {
            let mut timers = local.timers.borrow_mut();
            match registered {
                Some(id) => {
                    timers.refresh(deadline, id, cx.waker());
                    id
                }
                None => timers.insert(deadline, cx.waker().clone()),
            }
        });
        match id {
            Some(id) => self.registered = Some(id),
            None => panic!("conveyor::runtime::sleep polled outside a runtime worker"),
        }
        Poll::Pending
    }
}

impl Sleep {
    fn unregister(&mut self) {
        if let Some(id) = self.registered.take() {
            let deadline = self.deadline;
            with_local(|local| local.timers.borrow_mut().remove(deadline, id));
        }
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.unregister();
    }
}

/// The future given to [`timeout`] did not finish in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimedOut;

impl std::fmt::Display for TimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("timed out")
    }
}

impl std::error::Error for TimedOut {}

impl From<TimedOut> for std::io::Error {
    fn from(_: TimedOut) -> Self {
        std::io::Error::new(std::io::ErrorKind::TimedOut, TimedOut)
    }
}

/// Runs `future` for at most `duration`.
pub async fn timeout<F: Future>(duration: Duration, future: F) -> Result<F::Output, TimedOut> {
    timeout_at(Instant::now() + duration, future).await
}

/// Runs `future` until `deadline` at most.
pub async fn timeout_at<F: Future>(deadline: Instant, future: F) -> Result<F::Output, TimedOut> {
    let mut future = pin!(future);
    let mut timer = sleep_until(deadline);
    poll_fn(|cx| {
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return Poll::Ready(Ok(output));
        }
        match Pin::new(&mut timer).poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(TimedOut)),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}
