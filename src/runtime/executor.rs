//! One scheduler per worker thread: a ready queue of green threads, an
//! injection queue for wakes and spawns from other threads, and a reactor turn
//! when nothing is ready.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::pooled::PooledFuture;
use super::reactor::{Events, PollMode, Reactor};
use super::slab::Slab;
use super::stats::WorkerStats;
use super::task::{joinable, Header, JoinHandle, Task, TaskFuture};
use super::timer::Timers;

/// Green threads polled in one go before the reactor is checked again, so
/// a crowd of busy green threads cannot keep I/O events waiting.
const POLLS_PER_TICK: usize = 256;
/// ... nor can a few slow ones, or one that yields between long stretches
/// of work: past this much time in a tick the reactor is checked, polls
/// left or not. The clock is read every `CLOCK_EVERY` polls.
const TICK_TIME: Duration = Duration::from_micros(200);
const CLOCK_EVERY: usize = 8;
/// Time off its core during one idle spin that shows the thread is short of
/// CPU, and how long spinning then stays off.
const DESCHEDULED: Duration = Duration::from_micros(200);
const SPIN_BACKOFF: Duration = Duration::from_secs(1);
/// Finished tasks' headers a worker keeps for its next tasks.
const SPARE_HEADERS: usize = 256;
/// I/O and queue operations a green thread may complete in one poll before
/// it is made to yield (see [`poll_budget`]).
const BUDGET_PER_POLL: u32 = 128;

pub(crate) type SendFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// What other threads hand to a worker.
pub(crate) enum Injected {
    Wake(Arc<Header>),
    Spawn(SendFuture),
}

/// The part of a worker other threads may touch.
pub(crate) struct WorkerShared {
    pub(crate) index: usize,
    pub(crate) reactor: Reactor,
    pub(crate) stats: WorkerStats,
    inject_tx: Sender<Injected>,
    inject_rx: Receiver<Injected>,
    /// Set while the worker is (about to be) blocked in the reactor: only then
    /// does a cross-thread wake pay for a write to the reactor's eventfd
    /// (`Reactor::notify`).
    sleeping: AtomicBool,
}

impl WorkerShared {
    pub(crate) fn new(index: usize, mode: PollMode) -> std::io::Result<WorkerShared> {
        let (inject_tx, inject_rx) = crossbeam_channel::unbounded();
        Ok(WorkerShared {
            index,
            reactor: Reactor::new(mode)?,
            stats: WorkerStats::default(),
            inject_tx,
            inject_rx,
            sleeping: AtomicBool::new(false),
        })
    }

    pub(crate) fn inject(&self, item: Injected) {
        // The worker owns the receiver for as long as `self` lives.
        let _ = self.inject_tx.send(item);
        // Pairs with the fence in `Local::turn`: either the worker sees the
        // item before it sleeps, or we see it sleeping and wake it.
        fence(Ordering::SeqCst);
        if self.sleeping.swap(false, Ordering::SeqCst) {
            self.reactor.notify();
        }
    }

    pub(crate) fn injected_len(&self) -> usize {
        self.inject_rx.len()
    }

    /// Wakes the worker so it notices shutdown.
    pub(crate) fn kick(&self) {
        self.reactor.notify();
    }
}

/// The worker-thread-only part: tasks, ready queue, timers.
pub(crate) struct Local {
    pub(crate) shared: Arc<WorkerShared>,
    pub(crate) runtime: Arc<super::RuntimeShared>,
    ready: RefCell<VecDeque<Arc<Header>>>,
    tasks: RefCell<Slab<Task>>,
    /// Headers of finished tasks that nothing else holds, for the next
    /// tasks (at most `SPARE_HEADERS`): a spawn per request allocates none.
    spare_headers: RefCell<Vec<Arc<Header>>>,
    pub(crate) timers: RefCell<Timers>,
    events: RefCell<Events>,
    /// No idle spinning before this (see `Local::spin`).
    spin_off_until: Cell<Option<Instant>>,
}

#[cfg(test)]
thread_local! {
    /// Idle spins this thread has begun (see `Local::spin`), for the tests.
    static SPINS: Cell<u64> = const { Cell::new(0) };
}

thread_local! {
    static LOCAL: RefCell<Option<Rc<Local>>> = const { RefCell::new(None) };
    /// This thread's worker index while it runs one (`usize::MAX`: none):
    /// a plain `Cell` without a destructor, so reading it is one load
    /// (`current_worker` is asked several times per request).
    static WORKER: Cell<usize> = const { Cell::new(usize::MAX) };
    static BUDGET: Cell<u32> = const { Cell::new(BUDGET_PER_POLL) };
    /// When this worker's current turn began (after its last wait).
    static TURN_STARTED: Cell<Option<Instant>> = const { Cell::new(None) };
    /// CPU time this thread has spent spinning idle (see `Local::spin`).
    static SPUN: Cell<Duration> = const { Cell::new(Duration::ZERO) };
}

/// CPU time the current thread has spent idle-spinning for I/O
/// ([`crate::runtime::Builder::spin_before_blocking`]), so that a CPU figure
/// can leave it out: it is waiting, only without sleeping.
pub fn idle_spin_time() -> Duration {
    SPUN.with(Cell::get)
}

/// The time the current scheduler turn began: a clock read per turn instead
/// of one per use. At most a turn old (256 polls); for deadlines and
/// timestamps that tolerate that. Outside a worker, the time now.
pub(crate) fn turn_started() -> Instant {
    TURN_STARTED.with(Cell::get).unwrap_or_else(Instant::now)
}

/// Runs `f` with this thread's worker, if the thread is one.
#[inline(always)]
pub(crate) fn with_local<R>(f: impl FnOnce(&Local) -> R) -> Option<R> {
    LOCAL
        .try_with(|cell| cell.borrow().as_ref().map(|local| f(local)))
        .ok()
        .flatten()
}

/// The index of the worker this thread runs, if it runs one.
#[inline(always)]
pub(crate) fn worker_index() -> Option<usize> {
    let index = WORKER.with(Cell::get);
    (index != usize::MAX).then_some(index)
}

/// Sends a woken task to its worker: straight onto the ready queue when we
/// are that worker, else through its injection queue.
pub(crate) fn deliver_wake(header: Arc<Header>) {
    let remote = LOCAL
        .try_with(|cell| {
            let local = cell.borrow();
            match local.as_ref() {
                Some(local) if Arc::ptr_eq(&local.shared, &header.worker) => {
                    local.shared.stats.wakes_local.bump();
                    local.ready.borrow_mut().push_back(header.clone());
                    false
                }
                _ => true,
            }
        })
        .unwrap_or(true);
    if remote {
        let worker = header.worker.clone();
        worker.stats.wakes_remote.add(1);
        worker.inject(Injected::Wake(header));
    }
}

/// Cooperative budget: every I/O or queue operation calls this first. When the
/// running green thread has used up its budget, it is rescheduled at the back
/// of the ready queue instead of running on.
pub(crate) fn poll_budget(cx: &mut Context<'_>) -> Poll<()> {
    let left = BUDGET.with(Cell::get);
    if left == 0 {
        cx.waker().wake_by_ref();
        Poll::Pending
    } else {
        BUDGET.with(|b| b.set(left - 1));
        Poll::Ready(())
    }
}

impl Local {
    pub(crate) fn new(shared: Arc<WorkerShared>, runtime: Arc<super::RuntimeShared>) -> Rc<Local> {
        Rc::new(Local {
            shared,
            runtime,
            ready: RefCell::new(VecDeque::new()),
            tasks: RefCell::new(Slab::new()),
            spare_headers: RefCell::new(Vec::new()),
            timers: RefCell::new(Timers::default()),
            events: RefCell::new(Events::new()),
            spin_off_until: Cell::new(None),
        })
    }

    pub(crate) fn spawn<F: Future + 'static>(&self, future: F) -> JoinHandle<F::Output> {
        let (task, handle) = joinable(future);
        self.spawn_pooled(PooledFuture::new(task));
        handle
    }

    /// Spawns without a join handle (and so without its shared slot).
    pub(crate) fn spawn_detached<F: Future<Output = ()> + 'static>(&self, future: F) {
        self.spawn_pooled(PooledFuture::new(future));
    }

    /// Like `spawn_detached`, with the future made in its block (see
    /// `PooledFuture::new_with`).
    #[inline(always)]
    pub(crate) fn spawn_detached_with<F, M>(&self, make: M)
    where
        F: Future<Output = ()> + 'static,
        M: FnOnce() -> F,
    {
        self.spawn_pooled(PooledFuture::new_with(make));
    }

    fn spawn_pooled(&self, future: TaskFuture) {
        let header = {
            let mut tasks = self.tasks.borrow_mut();
            let slot = tasks.vacant_key();
            let spare = self.spare_headers.borrow_mut().pop();
            let header = spare
                .and_then(|header| Header::reuse(header, slot))
                .unwrap_or_else(|| Header::new(slot, self.shared.clone()));
            tasks.insert(Task {
                future: Some(future),
                waker: Some(Waker::from(header.clone())),
                header: header.clone(),
            });
            self.shared.stats.alive.set(tasks.len() as i64);
            header
        };
        self.shared.stats.spawned.bump();
        self.ready.borrow_mut().push_back(header);
    }

    /// Runs this worker on the current thread until `done()` or shutdown.
    pub(crate) fn run(self: &Rc<Self>, done: impl Fn() -> bool) {
        let previous = LOCAL.with(|cell| cell.replace(Some(self.clone())));
        let previous_index = WORKER.with(|w| w.replace(self.shared.index));
        TURN_STARTED.with(|turn| turn.set(Some(Instant::now())));
        loop {
            self.drain_injected();
            self.run_ready();
            if done() || self.runtime.is_shutting_down() {
                break;
            }
            self.turn();
        }
        self.drop_all_tasks();
        LOCAL.with(|cell| cell.replace(previous));
        WORKER.with(|w| w.set(previous_index));
        TURN_STARTED.with(|turn| turn.set(None));
    }

    fn drain_injected(&self) {
        while let Ok(item) = self.shared.inject_rx.try_recv() {
            match item {
                Injected::Wake(header) => self.ready.borrow_mut().push_back(header),
                Injected::Spawn(future) => self.spawn_pooled(PooledFuture::new(future)),
            }
        }
    }

    fn run_ready(&self) {
        let started = turn_started();
        for polled in 1..=POLLS_PER_TICK {
            if polled % CLOCK_EVERY == 0 && started.elapsed() > TICK_TIME {
                return;
            }
            let next = self.ready.borrow_mut().pop_front();
            match next {
                Some(header) => self.poll_task(header),
                None => return,
            }
        }
    }

    fn poll_task(&self, header: Arc<Header>) {
        if header.is_done() {
            return;
        }
        let taken = {
            let mut tasks = self.tasks.borrow_mut();
            match tasks.get_mut(header.slot) {
                Some(task) if Arc::ptr_eq(&task.header, &header) => {
                    task.future.take().zip(task.waker.take())
                }
                _ => None,
            }
        };
        let Some((mut future, waker)) = taken else {
            return;
        };
        header.set_running();
        BUDGET.with(|b| b.set(BUDGET_PER_POLL));
        let stats = &self.shared.stats;
        stats.polls.bump();
        let mut cx = Context::from_waker(&waker);
        let outcome = catch_unwind(AssertUnwindSafe(|| Pin::new(&mut future).poll(&mut cx)));
        match outcome {
            Ok(Poll::Pending) => {
                if let Some(task) = self.tasks.borrow_mut().get_mut(header.slot) {
                    task.future = Some(future);
                    task.waker = Some(waker);
                }
                stats.parks.bump();
                if header.park() {
                    self.ready.borrow_mut().push_back(header);
                }
            }
            Ok(Poll::Ready(())) => {
                stats.completed.bump();
                drop(waker);
                self.finish(&header, future);
                self.keep_header(header);
            }
            Err(_panic) => {
                stats.panicked.bump();
                self.finish(&header, future);
            }
        }
    }

    /// Keeps a finished task's header for a next task, if nothing (a
    /// waker left somewhere) holds it any more.
    fn keep_header(&self, header: Arc<Header>) {
        let mut spare = self.spare_headers.borrow_mut();
        if spare.len() < SPARE_HEADERS && Arc::strong_count(&header) == 1 {
            spare.push(header);
        }
    }

    /// Removes a finished or panicked task; its future is dropped outside any
    /// borrow, since dropping may wake or spawn.
    fn finish(&self, header: &Header, future: TaskFuture) {
        header.set_done();
        let removed = {
            let mut tasks = self.tasks.borrow_mut();
            let removed = tasks.remove(header.slot);
            self.shared.stats.alive.set(tasks.len() as i64);
            removed
        };
        drop(removed);
        // A future that panicked may panic again while dropping.
        let _ = catch_unwind(AssertUnwindSafe(move || drop(future)));
    }

    /// With a spin configured and nothing ready, checks for I/O without
    /// blocking until something arrives, the spin time is up or a timer is
    /// due. Returns the events dispatched, or `None` if nothing came.
    ///
    /// Spinning pays only while the core is this thread's to waste: a spin
    /// during which the thread was kept off its core (a CPU quota ran out,
    /// or another thread had it) turns spinning off for `SPIN_BACKOFF`, so
    /// a thread short of CPU sleeps instead of spending it on waiting.
    fn spin(&self) -> Option<usize> {
        let spin = self.runtime.spin;
        if spin.is_zero() || !self.ready.borrow().is_empty() {
            return None;
        }
        let started = Instant::now();
        if self
            .spin_off_until
            .get()
            .is_some_and(|until| started < until)
        {
            return None;
        }
        #[cfg(test)]
        SPINS.with(|n| n.set(n.get() + 1));
        // CPU time, not wall time: while this thread yields, a server on
        // the same core runs, and that is not the client's work to leave out.
        let cpu_started = super::stats::thread_cpu_time();
        let mut until = started + spin;
        if let Some(deadline) = self.timers.borrow().next_deadline() {
            until = until.min(deadline);
        }
        let mut events = self.events.borrow_mut();
        loop {
            let fired = self.shared.reactor.wait(&mut events, Some(Duration::ZERO));
            let now = Instant::now();
            let outcome = if fired > 0 {
                Some(Some(fired))
            } else if self.shared.injected_len() > 0
                || self.runtime.is_shutting_down()
                || now >= until
            {
                Some(None)
            } else {
                None
            };
            if let Some(outcome) = outcome {
                let cpu = super::stats::thread_cpu_time().saturating_sub(cpu_started);
                SPUN.with(|spun| spun.set(spun.get() + cpu));
                if (now - started).saturating_sub(cpu) > DESCHEDULED {
                    self.spin_off_until.set(Some(now + SPIN_BACKOFF));
                }
                return outcome;
            }
            // Lets a server sharing this core run meanwhile.
            std::thread::yield_now();
        }
    }

    /// Waits for I/O (or just checks, when work is ready), then fires timers.
    fn turn(&self) {
        if let Some(fired) = self.spin() {
            self.shared.stats.io_events.add_local(fired as u64);
            let now = Instant::now();
            TURN_STARTED.with(|turn| turn.set(Some(now)));
            let timers_fired = self.timers.borrow_mut().fire(now);
            self.shared.stats.timer_fires.add_local(timers_fired);
            return;
        }
        let timeout = if !self.ready.borrow().is_empty() {
            Some(Duration::ZERO)
        } else {
            self.shared.sleeping.store(true, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            if self.shared.injected_len() > 0 || self.runtime.is_shutting_down() {
                Some(Duration::ZERO)
            } else {
                self.timers
                    .borrow()
                    .next_deadline()
                    .map(|deadline| deadline.saturating_duration_since(Instant::now()))
            }
        };
        let mut events = self.events.borrow_mut();
        let fired = self.shared.reactor.wait(&mut events, timeout);
        self.shared.sleeping.store(false, Ordering::Relaxed);
        self.shared.stats.io_events.add_local(fired as u64);
        drop(events);
        let now = Instant::now();
        TURN_STARTED.with(|turn| turn.set(Some(now)));
        let timers_fired = self.timers.borrow_mut().fire(now);
        self.shared.stats.timer_fires.add_local(timers_fired);
    }

    fn drop_all_tasks(&self) {
        let tasks: Vec<Task> = self.tasks.borrow_mut().drain().collect();
        for task in tasks {
            task.header.set_done();
            let _ = catch_unwind(AssertUnwindSafe(move || drop(task)));
        }
        self.shared.stats.alive.set(0);
        self.ready.borrow_mut().clear();
        while self.shared.inject_rx.try_recv().is_ok() {}
        self.timers.borrow_mut().clear();
    }
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;
    use std::time::{Duration, Instant};

    use crate::runtime::{block_on, spawn, Queue, Runtime};

    fn until(limit: Duration, condition: impl Fn() -> bool) -> bool {
        let deadline = Instant::now() + limit;
        while !condition() {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        true
    }

    #[test]
    fn the_poll_budget_makes_a_green_thread_that_never_blocks_yield() {
        let first_seen = block_on(async {
            let queue = Queue::unbounded();
            for n in 0..1000 {
                let _ = queue.try_send(n);
            }
            let ran = Rc::new(std::cell::Cell::new(false));
            let flag = ran.clone();
            spawn(async move { flag.set(true) }).detach();
            let mut first_seen = None;
            for i in 0..1000 {
                queue.recv().await; // always ready: never parks
                if ran.get() && first_seen.is_none() {
                    first_seen = Some(i);
                }
            }
            first_seen
        });
        let at = first_seen.expect("the other green thread ran");
        assert!(
            at <= super::BUDGET_PER_POLL as usize,
            "ran only after {at} receives"
        );
    }

    #[test]
    fn a_panicking_green_thread_is_counted_and_the_worker_runs_on() {
        let rt = Runtime::builder().workers(1).build().expect("runtime");
        let panicked = rt.block_on(async {
            crate::runtime::spawn(async { panic!("deliberate unit-test panic") }).await
        });
        assert!(panicked.is_err());
        assert_eq!(rt.block_on(async { 6 * 7 }), 42);
        assert_eq!(rt.stats()[0].panicked, 1);
    }

    #[test]
    fn a_spinning_worker_still_gets_wakes_and_timers() {
        let rt = Runtime::builder()
            .workers(1)
            .spin_before_blocking(Duration::from_millis(2))
            .build()
            .expect("runtime");
        let queue = Queue::bounded(1);
        let receiver = queue.clone();
        let task = rt.spawn_on(0, async move {
            crate::runtime::sleep(Duration::from_millis(5)).await;
            let got = receiver.recv().await;
            (got, super::idle_spin_time())
        });
        assert!(until(Duration::from_secs(5), || rt.stats()[0].parks >= 2));
        assert!(queue.try_send(5u32).is_ok());
        assert!(
            until(Duration::from_secs(2), || task.is_finished()),
            "the wake never reached the worker"
        );
        let (got, spun) = rt.block_on(task).expect("task");
        assert_eq!(got, 5);
        assert!(spun > Duration::ZERO, "the worker never spun");
    }

    #[test]
    fn io_waits_a_bounded_time_behind_a_green_thread_that_yields_between_long_work() {
        use std::cell::Cell;
        use std::io::Write;
        use std::os::unix::net::UnixStream;

        const WORK: Duration = Duration::from_micros(20);
        let (mut writer, reader) = UnixStream::pair().expect("socket pair");
        let reader = crate::runtime::io::Async::new(reader).expect("async");
        let (written_at, read_at) = block_on(async move {
            let rounds = Rc::new(Cell::new(0u32));
            let read_at = Rc::new(Cell::new(None));
            let (seen, mark) = (rounds.clone(), read_at.clone());
            // Parked on its socket before anything is written.
            let reading = spawn(async move {
                let mut byte = [0u8; 1];
                assert_eq!(reader.read(&mut byte).await.expect("read"), 1);
                mark.set(Some(seen.get()));
            });
            let (count, done) = (rounds.clone(), read_at.clone());
            let busy = spawn(async move {
                let mut written_at = None;
                // Bounded: without the time limit the reader got in after
                // 256 rounds (POLLS_PER_TICK).
                while done.get().is_none() && count.get() < 1_000 {
                    if count.get() == 10 {
                        writer.write_all(b"x").expect("write");
                        written_at = Some(count.get());
                    }
                    let until = Instant::now() + WORK;
                    while Instant::now() < until {
                        std::hint::spin_loop();
                    }
                    count.set(count.get() + 1);
                    crate::runtime::yield_now().await;
                }
                written_at
            });
            reading.await.expect("reader");
            let written_at = busy.await.expect("busy");
            (written_at, read_at.get())
        });
        let (written_at, read_at) = (written_at.expect("wrote"), read_at.expect("read"));
        // TICK_TIME is 10 rounds of WORK; the clock is read every 8 polls.
        let limit = (super::TICK_TIME.as_micros() / WORK.as_micros()) as u32
            + 2 * super::CLOCK_EVERY as u32;
        assert!(
            read_at - written_at <= limit,
            "the reader waited {} rounds of {WORK:?} after its byte arrived (limit {limit})",
            read_at - written_at
        );
    }

    /// Pins the calling thread to one CPU.
    fn pin_to(cpu: usize) {
        // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET writes one bit
        // of it, and sched_setaffinity reads it for the calling thread (0).
        let pinned = unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
        };
        assert_eq!(pinned, 0, "cannot pin to CPU {cpu}");
    }

    #[test]
    fn a_spin_kept_off_its_core_turns_spinning_off() {
        use std::cell::Cell;
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;

        // SAFETY: sched_getcpu has no preconditions.
        let cpu = usize::try_from(unsafe { libc::sched_getcpu() }).expect("a CPU");
        let stop = Arc::new(AtomicBool::new(false));
        let hog = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                pin_to(cpu);
                while !stop.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
        };
        let rt = Runtime::builder()
            .workers(1)
            .spin_before_blocking(Duration::from_millis(2))
            .build()
            .expect("runtime");
        // 200 idle moments of 1 ms each on a core shared with the hog: each
        // would begin a spin, and the hog runs during the spin's yields.
        let spins = rt.block_on(async move {
            pin_to(cpu);
            let before = super::SPINS.with(Cell::get);
            for _ in 0..200 {
                crate::runtime::sleep(Duration::from_millis(1)).await;
            }
            super::SPINS.with(Cell::get) - before
        });
        stop.store(true, Ordering::Relaxed);
        hog.join().expect("hog");
        assert!(
            spins < 20,
            "began {spins} spins of 200 idle moments on a core it did not have to itself"
        );
    }

    #[test]
    fn a_wake_from_another_thread_reaches_a_sleeping_worker() {
        let rt = Runtime::builder().workers(1).build().expect("runtime");
        let queue = Queue::bounded(1);
        let receiver = queue.clone();
        let task = rt.spawn_on(0, async move { receiver.recv().await });
        // Parked on the empty queue, the worker asleep in the reactor.
        assert!(until(Duration::from_secs(5), || rt.stats()[0].parks >= 1));
        assert!(queue.try_send(5u32).is_ok());
        assert!(
            until(Duration::from_secs(2), || task.is_finished()),
            "the wake never reached the worker"
        );
        assert!(rt.stats()[0].wakes_remote >= 1);
    }
}
