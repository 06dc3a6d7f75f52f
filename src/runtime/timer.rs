//! Timers: a per-worker ordered map of deadlines whose earliest entry becomes
//! the reactor's wait timeout. A dropped timer removes its entry at once, so a
//! cancelled timer costs nothing later.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
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
    /// When this sleep completes.
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

/// Runs `future` for at most `duration`, counted from the first time it
/// has to wait: a future that finishes at once costs no clock read and no
/// timer.
pub fn timeout<F: Future>(duration: Duration, future: F) -> Timeout<F> {
    Timeout {
        future,
        limit: Limit::After(duration),
        timer: None,
    }
}

/// Runs `future` until `deadline` at most.
pub fn timeout_at<F: Future>(deadline: Instant, future: F) -> Timeout<F> {
    Timeout {
        future,
        limit: Limit::At(deadline),
        timer: None,
    }
}

/// The future of [`timeout`] and [`timeout_at`]. Written by hand rather
/// than as an `async fn`: it holds the inner future once (nested async fns
/// each keep a copy of their arguments), and its timer starts lazily.
pub struct Timeout<F> {
    future: F,
    limit: Limit,
    timer: Option<Sleep>,
}

enum Limit {
    After(Duration),
    At(Instant),
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, TimedOut>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `future` is structurally pinned: it is never moved out of
        // `self` (not here, not in Drop). `limit` and `timer` are not
        // pinned (`Sleep` is Unpin), so handing out `&mut` to them is fine.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: see above; `this.future` stays where it is until dropped.
        let future = unsafe { Pin::new_unchecked(&mut this.future) };
        if let Poll::Ready(output) = future.poll(cx) {
            return Poll::Ready(Ok(output));
        }
        let limit = &this.limit;
        let timer = this.timer.get_or_insert_with(|| {
            sleep_until(match *limit {
                Limit::After(duration) => Instant::now() + duration,
                Limit::At(deadline) => deadline,
            })
        });
        match Pin::new(timer).poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(TimedOut)),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    /// A waker that counts its wakes (the reactor's tests use it too).
    pub(crate) struct Count(pub(crate) AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn timers_fire_in_deadline_order_and_a_removed_one_never() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let mut timers = Timers::default();
        let late = timers.insert(at(30), waker.clone());
        timers.insert(at(10), waker.clone());
        let cancelled = timers.insert(at(20), waker.clone());
        timers.remove(at(20), cancelled);
        assert_eq!(timers.next_deadline(), Some(at(10)));
        assert_eq!(timers.fire(at(5)), 0, "nothing due yet");
        assert_eq!(
            timers.fire(at(25)),
            1,
            "the 10 ms one; the 20 ms one is gone"
        );
        assert_eq!(timers.next_deadline(), Some(at(30)));
        // Refreshing a fired timer puts it back; a pending one stays single.
        timers.refresh(at(30), late, &waker);
        assert_eq!(timers.fire(at(30)), 1);
        timers.refresh(at(30), late, &waker);
        assert_eq!(timers.next_deadline(), Some(at(30)));
        timers.clear();
        assert_eq!(timers.next_deadline(), None);
        assert_eq!(count.0.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn timeout_gives_the_output_in_time_and_timed_out_after() {
        let (fast, slow) = crate::runtime::block_on(async {
            let fast = timeout(Duration::from_secs(5), async { 7 }).await;
            let slow = timeout(Duration::from_millis(5), sleep(Duration::from_secs(5))).await;
            (fast, slow)
        });
        assert_eq!(fast, Ok(7));
        assert_eq!(slow, Err(TimedOut));
    }
}
