//! Dispatchers: take connections off the worker's pending queue and run the
//! handler on them.
//!
//! - `spawn`: a new green thread per request (the original design).
//! - `pool`: a fixed number of long-lived handler green threads per worker,
//!   each pulling from the queue and running the request in place; a
//!   request that waits on its client moves to a green thread of its own,
//!   so no spawn per request, and no slow client holds a handler.
//!
//! Both drop unrun a request whose HTTP/2 stream was reset while it
//! waited in the queue (its pipe's other end is gone), and both run the
//! per-client rate step (`per_client_step`) on what they pop
//! before the handler, when `limits.per_client.rate` is set.

use std::future::{poll_fn, Future};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use crate::config::DispatcherKind;
use crate::runtime::{self, Handle, PooledFuture};

use super::per_client_step::{self, RateOn};
use super::{Conn, Dispatcher, Handler, Line};

/// The `spawn` dispatcher: one loop per worker pops connections and spawns a
/// green thread for each request.
pub struct SpawnPerRequest;

/// The `pool` dispatcher: `size` long-lived handler green threads per worker
/// run requests in place, moving one to its own green thread when it waits
/// on its client.
pub struct Pool {
    /// Handler green threads per worker.
    pub size: usize,
}

impl Dispatcher for SpawnPerRequest {
    fn name(&self) -> &str {
        DispatcherKind::Spawn.name()
    }

    fn start(&self, runtime: &Handle, line: &Arc<Line>, handler: Arc<dyn Handler>) {
        for worker in 0..runtime.workers() {
            let line = line.clone();
            let handler = handler.clone();
            runtime
                .spawn_on(worker, async move {
                    let pending = &line.pending[worker];
                    let mut rate = RateOn::new();
                    loop {
                        let mut conn = pending.pop().await;
                        if conn.stream.is_abandoned() {
                            continue;
                        }
                        let line = line.clone();
                        let handler = handler.clone();
                        // Made in the task's block, not moved there (callgrind:
                        // a copy of the future cost 59 instructions a request).
                        if rate.get(&line) {
                            runtime::spawn_detached_with(move || {
                                admit_then_handle(conn, line, handler)
                            });
                            continue;
                        }
                        conn.admitted = u32::MAX;
                        handler.spawn_handle(conn, line);
                    }
                })
                .detach();
        }
    }
}

impl Dispatcher for Pool {
    fn name(&self) -> &str {
        DispatcherKind::Pool.name()
    }

    fn start(&self, runtime: &Handle, line: &Arc<Line>, handler: Arc<dyn Handler>) {
        let size = self.size.max(1);
        for worker in 0..runtime.workers() {
            let line = line.clone();
            let handler = handler.clone();
            // Handler futures stay on their worker (not `Send`), so the pool
            // is spawned from a green thread already there.
            runtime
                .spawn_local_on(worker, move || async move {
                    for _ in 0..size {
                        runtime::spawn_detached(pool_handler(
                            line.clone(),
                            handler.clone(),
                            worker,
                        ));
                    }
                })
                .detach();
        }
    }
}

/// One pool handler green thread. It runs each request in place while the
/// request makes progress, and hands it to a green thread of its own as soon
/// as it waits on the client (the rest of a preamble, a body, a reader that
/// does not read): a pool handler never sits on a slow connection, so a few
/// dozen slow clients cannot starve the rest. The common request, answered
/// in one poll, costs no spawn. A panic drops its connection and the loop
/// goes on.
async fn pool_handler(line: Arc<Line>, handler: Arc<dyn Handler>, worker: usize) {
    let mut nudge = None;
    let mut rate = RateOn::new();
    loop {
        let mut conn = line.pending[worker].pop().await;
        if conn.stream.is_abandoned() {
            // An HTTP/2 stream reset before its handler started: no one
            // reads its answer, so none is made (rapid reset).
            continue;
        }
        let (line, handler) = (line.clone(), handler.clone());
        // Owns what it borrows, so it can move to a green thread of its own.
        let mut request = match rate.get(&line) {
            true => PooledFuture::new_with(move || admit_then_handle(conn, line, handler)),
            false => {
                conn.admitted = u32::MAX;
                PooledFuture::new_with(move || async move { handler.handle(conn, &line).await })
            }
        };
        match run_in_place(&mut request, &mut nudge).await {
            PollEnd::Done => {}
            // Its wakers are this handler's; the new green thread's first
            // poll re-registers them (a wake in between finds it queued).
            PollEnd::Waiting => runtime::spawn_detached(request),
            PollEnd::Panicked => {
                runtime::count_panic();
                // Dropping closes the connection and releases its gauges and
                // slot; the drop itself may panic again.
                let _ = catch_unwind(AssertUnwindSafe(move || drop(request)));
            }
        }
    }
}

/// The per-client rate step, then the handler for what it admitted.
async fn admit_then_handle(conn: Conn, line: Arc<Line>, handler: Arc<dyn Handler>) {
    if let Some(conn) = per_client_step::admit(conn, &line).await {
        handler.handle(conn, &line).await;
    }
}

/// How a request polled by a pool handler stopped.
enum PollEnd {
    Done,
    /// Pending on something outside this worker's own work: the client.
    Waiting,
    Panicked,
}

/// A waker that notes it was woken and passes the wake to the pool
/// handler's own. A request that wakes itself while polled (a `yield_now`,
/// such as the static files' batched inotify read, or a spent poll budget)
/// is busy, not waiting: it stays with the handler, without a spawn.
struct Nudge {
    woken: AtomicBool,
    handler: Waker,
}

impl Wake for Nudge {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Relaxed);
        self.handler.wake_by_ref();
    }
}

/// Polls `request` until it finishes, panics or waits on the client. Every
/// wake passes through to this green thread, so a request kept here because
/// it woke itself is always polled again.
async fn run_in_place(
    request: &mut PooledFuture<'static, ()>,
    nudge: &mut Option<(Arc<Nudge>, Waker)>,
) -> PollEnd {
    poll_fn(|cx| {
        let (flag, waker) = match nudge {
            Some((flag, waker)) if flag.handler.will_wake(cx.waker()) => (flag, waker),
            _ => {
                let flag = Arc::new(Nudge {
                    woken: AtomicBool::new(false),
                    handler: cx.waker().clone(),
                });
                let waker = Waker::from(flag.clone());
                let (flag, waker) = nudge.insert((flag, waker));
                (flag, waker)
            }
        };
        flag.woken.store(false, Ordering::Relaxed);
        let mut inner = Context::from_waker(waker);
        let polled = catch_unwind(AssertUnwindSafe(|| {
            Pin::new(&mut *request).poll(&mut inner)
        }));
        match polled {
            Ok(Poll::Ready(())) => Poll::Ready(PollEnd::Done),
            Ok(Poll::Pending) if flag.woken.load(Ordering::Relaxed) => Poll::Pending,
            Ok(Poll::Pending) => Poll::Ready(PollEnd::Waiting),
            Err(_) => Poll::Ready(PollEnd::Panicked),
        }
    })
    .await
}
