//! Conveyor's green-thread runtime: a cooperative scheduler per worker thread
//! on top of `polling`. It knows nothing of HTTP.
//!
//! - `executor` (private): the ready queue, the injection queue, the run loop.
//! - `reactor` (private) and [`io`]: parking green threads on file descriptors.
//! - [`timer`]: `sleep`, `timeout`, deadlines folded into the wait timeout.
//! - [`queue`]: async bounded/unbounded queues (a ring under a short lock).
//! - [`latch`]: a flag green threads can await (shutdown).
//! - [`idle`]: items parked until readable, with no green thread each.
//! - [`net`]: TCP listeners and streams, `sendfile`.
//! - [`pipe`]: an in-memory duplex byte pipe, a stream's stand-in.
//! - [`compat`]: a stream as tokio's I/O traits (no tokio runtime).
//! - [`swap`]: a value replaced whole while the workers read it.
//! - [`sys`]: the operating system beneath: `syscall!`, the one way the
//!   runtime calls libc, and one file per OS facility (sockets, accounts,
//!   confined opens, directories, limits, signals, file watching).

//!
//! ```
//! use conveyor::runtime::{self, Queue};
//!
//! // Two green threads on one worker, talking through a bounded queue.
//! let total = runtime::block_on(async {
//!     let queue = Queue::bounded(4);
//!     let producer = queue.clone();
//!     runtime::spawn(async move {
//!         for n in 1..=10u32 {
//!             producer.send(n).await; // parks while the queue is full
//!         }
//!     })
//!     .detach();
//!     let mut total = 0;
//!     for _ in 0..10 {
//!         total += queue.recv().await;
//!     }
//!     total
//! });
//! assert_eq!(total, 55);
//! ```

mod executor;
pub use executor::idle_spin_time;
pub mod compat;
pub mod idle;
pub mod io;
pub mod latch;
pub mod local_pool;
pub mod net;
pub mod pipe;
pub mod pooled;
pub mod queue;
mod reactor;
pub mod read_buffer;
mod slab;
pub mod stats;
pub mod stream;
pub mod swap;
pub mod sys;
mod task;
pub mod text;
pub mod timer;

use std::future::{poll_fn, Future};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::task::Poll;
use std::thread;
use std::time::Duration;

use executor::{with_local, Injected, Local, WorkerShared};

pub use compat::AsyncStream;
pub use io::Async;
pub use latch::Latch;
pub use local_pool::LocalPool;
pub use net::{ListenOptions, StreamOptions, TcpListener, TcpStream};
pub use pipe::{pipe, PipeEnd, Spare};
pub use pooled::PooledFuture;
pub use queue::{Full, Queue, QueueSnapshot};
pub use reactor::PollMode;
pub use read_buffer::{read_seq_now, ReadBuffer};
pub use stats::WorkerSnapshot;
pub use stream::{Session, Stream};
pub use task::{JoinError, JoinHandle};
pub use text::ascii_str;
pub use timer::{sleep, sleep_until, timeout, timeout_at, Sleep, TimedOut, Timeout};

/// State shared by all workers of one runtime.
pub(crate) struct RuntimeShared {
    workers: Vec<Arc<WorkerShared>>,
    shutdown: AtomicBool,
    next_worker: AtomicUsize,
    /// How long an idle worker keeps polling before it blocks (see
    /// [`Builder::spin_before_blocking`]).
    pub(crate) spin: Duration,
}

impl RuntimeShared {
    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }
}

/// Configures a [`Runtime`].
#[derive(Clone, Debug)]
pub struct Builder {
    workers: usize,
    poll_mode: PollMode,
    thread_name: String,
    spin: Duration,
}

impl Builder {
    /// Worker threads, one scheduler each (default: the number of cores).
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers.max(1);
        self
    }

    /// How descriptors are registered with epoll (default: [`PollMode::Edge`]).
    pub fn poll_mode(mut self, mode: PollMode) -> Self {
        self.poll_mode = mode;
        self
    }

    /// How long an idle worker keeps checking for I/O without blocking
    /// before it sleeps in `epoll_wait` (default: zero, sleep at once).
    /// A load generator uses this: waking a sleeping thread costs tens of
    /// microseconds on a VM, which a closed loop then spends idle.
    pub fn spin_before_blocking(mut self, spin: Duration) -> Self {
        self.spin = spin;
        self
    }

    /// Prefix of the worker threads' names, which end in `-<index>`
    /// (default: `conveyor`).
    pub fn thread_name(mut self, name: impl Into<String>) -> Self {
        self.thread_name = name.into();
        self
    }

    /// Starts the worker threads.
    pub fn build(self) -> std::io::Result<Runtime> {
        let shared = self.shared(self.workers)?;
        let mut threads = Vec::with_capacity(self.workers);
        for worker in &shared.workers {
            let local_shared = worker.clone();
            let runtime = shared.clone();
            let thread = thread::Builder::new()
                .name(format!("{}-{}", self.thread_name, worker.index))
                .spawn(move || Local::new(local_shared, runtime).run(|| false))?;
            threads.push(thread);
        }
        Ok(Runtime {
            handle: Handle { shared },
            threads: Mutex::new(threads),
        })
    }

    fn shared(&self, workers: usize) -> std::io::Result<Arc<RuntimeShared>> {
        let workers = (0..workers)
            .map(|index| WorkerShared::new(index, self.poll_mode).map(Arc::new))
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Arc::new(RuntimeShared {
            workers,
            shutdown: AtomicBool::new(false),
            next_worker: AtomicUsize::new(0),
            spin: self.spin,
        }))
    }

    /// Runs `future` to completion on the calling thread, as the only worker
    /// of a fresh runtime.
    pub fn block_on<F: Future + 'static>(self, future: F) -> F::Output {
        let shared = match self.shared(1) {
            Ok(shared) => shared,
            Err(e) => panic!("cannot create a poller: {e}"),
        };
        let local = Local::new(shared.workers[0].clone(), shared.clone());
        let output = Arc::new(Mutex::new(None));
        let slot = output.clone();
        local.spawn(async move {
            let value = future.await;
            *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(value);
        });
        let done = || output.lock().map(|o| o.is_some()).unwrap_or(true);
        local.run(done);
        let value = output.lock().unwrap_or_else(PoisonError::into_inner).take();
        value.expect("block_on: the root green thread panicked")
    }
}

/// A set of worker threads running green threads.
pub struct Runtime {
    handle: Handle,
    threads: Mutex<Vec<thread::JoinHandle<()>>>,
}

impl Runtime {
    /// A [`Builder`] with the defaults: one worker per core, edge-triggered
    /// polling.
    pub fn builder() -> Builder {
        Builder {
            workers: thread::available_parallelism().map_or(1, |n| n.get()),
            poll_mode: PollMode::default(),
            thread_name: "conveyor".into(),
            spin: Duration::ZERO,
        }
    }

    /// A handle for spawning and stats, cloneable to other threads.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Runs `future` on worker 0 and blocks the calling thread until it is done.
    pub fn block_on<F>(&self, future: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (tx, rx) = mpsc::channel();
        self.handle
            .spawn_on(0, async move {
                let _ = tx.send(future.await);
            })
            .detach();
        match rx.recv() {
            Ok(value) => value,
            Err(_) => panic!("block_on: the green thread panicked or the runtime shut down"),
        }
    }

    /// Signals every worker to stop, drops their green threads and joins them.
    pub fn shutdown(&self) {
        self.handle.signal_shutdown();
        let threads =
            std::mem::take(&mut *self.threads.lock().unwrap_or_else(PoisonError::into_inner));
        for thread in threads {
            let _ = thread.join();
        }
    }
}

impl std::ops::Deref for Runtime {
    type Target = Handle;

    fn deref(&self) -> &Handle {
        &self.handle
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A cloneable reference to a runtime, usable from any thread.
#[derive(Clone)]
pub struct Handle {
    shared: Arc<RuntimeShared>,
}

impl Handle {
    /// How many worker threads the runtime has.
    pub fn workers(&self) -> usize {
        self.shared.workers.len()
    }

    /// Spawns on the given worker (modulo the worker count).
    pub fn spawn_on<F>(&self, worker: usize, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (task, handle) = task::joinable(future);
        let worker = &self.shared.workers[worker % self.shared.workers.len()];
        worker.inject(Injected::Spawn(Box::pin(task)));
        handle
    }

    /// Spawns a future that need not be `Send`: `make` runs on the chosen
    /// worker and builds it there.
    pub fn spawn_local_on<M, F>(&self, worker: usize, make: M) -> JoinHandle<F::Output>
    where
        M: FnOnce() -> F + Send + 'static,
        F: Future + 'static,
        F::Output: Send + 'static,
    {
        self.spawn_on(worker, async move {
            match spawn(make()).await {
                Ok(output) => output,
                // The inner green thread panicked: take this one down too, so
                // the caller's JoinHandle reports it.
                Err(e) => panic!("{e}"),
            }
        })
    }

    /// Spawns on the next worker, round-robin.
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let worker = self.shared.next_worker.fetch_add(1, Ordering::Relaxed);
        self.spawn_on(worker, future)
    }

    /// Asks every worker to stop; their green threads are dropped.
    pub fn signal_shutdown(&self) {
        self.shared.shutdown.store(true, Ordering::Release);
        for worker in &self.shared.workers {
            worker.kick();
        }
    }

    /// Whether shutdown has been signalled.
    pub fn is_shutting_down(&self) -> bool {
        self.shared.is_shutting_down()
    }

    /// Every worker's scheduler counters.
    pub fn stats(&self) -> Vec<WorkerSnapshot> {
        self.shared
            .workers
            .iter()
            .map(|w| w.stats.snapshot(w.index, w.injected_len()))
            .collect()
    }
}

/// The runtime the calling green thread runs on.
///
/// # Panics
/// Outside a worker thread.
pub fn handle() -> Handle {
    try_handle().expect("conveyor::runtime::handle() called outside a runtime worker")
}

/// The runtime the calling thread works for, if any.
pub fn try_handle() -> Option<Handle> {
    with_local(|local| Handle {
        shared: local.runtime.clone(),
    })
}

/// Index of the worker the calling green thread runs on.
#[inline(always)]
pub fn current_worker() -> Option<usize> {
    executor::worker_index()
}

/// `index % len`, with no division when `index` is below `len` already
/// (a worker's own slot, the usual case): a `div` costs tens of cycles,
/// and per-worker slots are looked up several times per request.
#[inline(always)]
pub fn wrap_index(index: usize, len: usize) -> usize {
    match index < len {
        true => index,
        false => index % len,
    }
}

/// Spawns a green thread on the current worker. The future need not be `Send`:
/// it never leaves this worker.
///
/// # Panics
/// Outside a worker thread.
pub fn spawn<F: Future + 'static>(future: F) -> JoinHandle<F::Output> {
    let mut future = Some(future);
    let handle = with_local(|local| local.spawn(future.take().expect("taken once")));
    handle.expect("conveyor::runtime::spawn called outside a runtime worker")
}

/// When the worker's current scheduler turn began: a clock read per turn
/// rather than per call, at most one turn (256 polls) old. For deadlines
/// and timestamps that tolerate that; outside a worker, `Instant::now()`.
pub fn now() -> std::time::Instant {
    executor::turn_started()
}

/// Spawns a green thread on the current worker that nobody will join: no
/// join handle, so one allocation less than [`spawn`].
///
/// # Panics
/// Outside a worker thread.
pub fn spawn_detached<F: Future<Output = ()> + 'static>(future: F) {
    let mut future = Some(future);
    let spawned = with_local(|local| local.spawn_detached(future.take().expect("taken once")));
    spawned.expect("conveyor::runtime::spawn_detached called outside a runtime worker")
}

/// Like [`spawn_detached`], but `make` makes the future once its block is
/// taken, so it is made there rather than copied in whole (see
/// [`PooledFuture::new_with`]): for a future made per request.
///
/// # Panics
/// Outside a worker thread.
#[inline(always)]
pub fn spawn_detached_with<F, M>(make: M)
where
    F: Future<Output = ()> + 'static,
    M: FnOnce() -> F,
{
    let mut make = Some(make);
    let spawned = with_local(|local| local.spawn_detached_with(make.take().expect("taken once")));
    spawned.expect("conveyor::runtime::spawn_detached_with called outside a runtime worker")
}

/// Counts a panic caught by code that polls futures itself (a dispatcher
/// that runs requests in place), as the scheduler counts a green thread's.
pub fn count_panic() {
    with_local(|local| local.shared.stats.panicked.bump());
}

/// Runs `future` to completion on the calling thread with a one-worker runtime.
pub fn block_on<F: Future + 'static>(future: F) -> F::Output {
    Runtime::builder().block_on(future)
}

/// Lets the other ready green threads run, then continues.
pub async fn yield_now() {
    let mut yielded = false;
    poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

/// Which of two raced futures finished first.
#[derive(Debug, PartialEq, Eq)]
pub enum Either<A, B> {
    /// The first future finished, with this output.
    Left(A),
    /// The second future finished, with this output.
    Right(B),
}

/// Polls both futures and returns the first to finish (`a` wins ties); the
/// other is dropped.
pub async fn race<A: Future, B: Future>(a: A, b: B) -> Either<A::Output, B::Output> {
    let mut a = std::pin::pin!(a);
    let mut b = std::pin::pin!(b);
    poll_fn(|cx| {
        if let Poll::Ready(out) = a.as_mut().poll(cx) {
            return Poll::Ready(Either::Left(out));
        }
        b.as_mut().poll(cx).map(Either::Right)
    })
    .await
}
