//! bcrypt off the scheduler: a check takes ~50 ms of CPU at cost 10 on
//! purpose, and on a worker thread it would stall every connection that
//! worker serves. Checks go to a few dedicated threads over a bounded
//! crossbeam channel; the green thread waits on a [`Latch`] the thread
//! sets, so its worker serves others meanwhile. The threads run at a lower
//! priority (nice 10), like the static files' compression: when the
//! workers want the CPU, logins wait, not pages.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use crossbeam_channel::{Sender, TrySendError};

use crate::runtime::Latch;

/// Checks waiting for a thread; past this a login is answered 503 (with
/// `Retry-After`) rather than queued for seconds.
const QUEUED_MAX: usize = 256;

/// One check: the password offered, the hash it must match.
struct Job {
    password: Vec<u8>,
    hash: Arc<str>,
    done: Arc<Done>,
}

/// What a thread hands back.
#[derive(Default)]
struct Done {
    matched: AtomicBool,
    latch: Latch,
}

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    Match,
    NoMatch,
    /// Every thread is busy and the queue is full.
    Busy,
}

/// The threads' queue, started on the first check (a server without
/// `[[auth]]` starts none); None if no thread could be started.
fn queue() -> Option<&'static Sender<Job>> {
    static QUEUE: OnceLock<Option<Sender<Job>>> = OnceLock::new();
    QUEUE
        .get_or_init(|| {
            let (tx, rx) = crossbeam_channel::bounded::<Job>(QUEUED_MAX);
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
            let mut started = 0;
            for _ in 0..threads {
                let rx = rx.clone();
                let spawned = std::thread::Builder::new()
                    .name("conveyor-bcrypt".into())
                    .spawn(move || {
                        let _ = crate::runtime::sys::limits::lower_thread_priority(10);
                        rx.iter().for_each(run);
                    });
                started += usize::from(spawned.is_ok());
            }
            (started > 0).then_some(tx)
        })
        .as_ref()
}

fn run(mut job: Job) {
    // bcrypt's own comparison is constant-time; a malformed hash (refused
    // when the file is read) counts as no match.
    let matched = bcrypt::verify(&job.password, &job.hash).unwrap_or(false);
    job.password.fill(0);
    job.done.matched.store(matched, Ordering::Release);
    job.done.latch.set();
}

/// Whether `password` matches `hash`, checked on a bcrypt thread while
/// this green thread waits.
pub(super) async fn verify(password: &[u8], hash: Arc<str>) -> Verdict {
    let Some(queue) = queue() else {
        return Verdict::Busy;
    };
    let done = Arc::new(Done::default());
    let job = Job {
        password: password.to_vec(),
        hash,
        done: done.clone(),
    };
    match queue.try_send(job) {
        Ok(()) => {}
        Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => return Verdict::Busy,
    }
    done.latch.wait().await;
    match done.matched.load(Ordering::Acquire) {
        true => Verdict::Match,
        false => Verdict::NoMatch,
    }
}
