//! Micro-benchmarks of the green-thread runtime: `cargo bench --bench runtime`.
//!
//! A plain `fn main()` (no criterion). Every timed measurement is warmed up
//! once, then run 5 times; the table shows the best and the median run.
//!
//! Optional arguments (after `--`): names of the measurements to run
//! (`spawn`, `yield`, `queue`, `pingpong`, `cross`, `crossbeam`, `memory`);
//! none means all. `CONVEYOR_BENCH_SCALE=0.1` shrinks every iteration count.
//! `child-memory <kind>` is internal: the memory measurement runs in a fresh
//! process so that earlier measurements leave nothing in the allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::{pending, Future};
use std::hint::black_box;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use conveyor::runtime::{self, yield_now, Queue, Runtime};

const RUNS: usize = 5;

/// The system allocator, counting live bytes and allocations while
/// `COUNTING` is on (only in the memory child process, so the timed
/// measurements pay one relaxed load per allocation).
struct CountingAlloc;

static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);
static LIVE_ALLOCS: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded unchanged to `System`.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
            LIVE_ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller's contract for `alloc`, passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if COUNTING.load(Ordering::Relaxed) {
            LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
            LIVE_ALLOCS.fetch_sub(1, Ordering::Relaxed);
        }
        // SAFETY: `ptr` came from `System.alloc` with `layout` (see `alloc`).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            LIVE_BYTES.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        // SAFETY: the caller's contract for `realloc`, passed on unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// One row of the result table.
struct Row {
    operation: String,
    best: f64,
    median: f64,
    target: Option<f64>,
}

fn scale() -> f64 {
    std::env::var("CONVEYOR_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0)
}

fn scaled(n: u64) -> u64 {
    ((n as f64 * scale()) as u64).max(1024)
}

/// Warms up once, then times `RUNS` runs of `run`, which returns the elapsed
/// time of its timed section; returns (best, median) in ns per operation.
fn measure(ops: u64, mut run: impl FnMut() -> Duration) -> (f64, f64) {
    black_box(run());
    let mut per_op: Vec<f64> = (0..RUNS)
        .map(|_| run().as_nanos() as f64 / ops as f64)
        .collect();
    per_op.sort_by(f64::total_cmp);
    (per_op[0], per_op[RUNS / 2])
}

/// Runs `make()` as the root green thread of a fresh one-worker runtime on
/// this thread and returns what it measured.
fn on_one_worker<F: Future<Output = Duration> + 'static>(make: impl FnOnce() -> F) -> Duration {
    runtime::block_on(make())
}

// --- 1. spawn + complete -------------------------------------------------

/// Spawns `n` trivial green threads in batches of `batch` from the root green
/// thread and awaits each batch's `JoinHandle`s.
fn spawn_joined(n: u64, batch: u64) -> Duration {
    on_one_worker(move || async move {
        let mut handles = Vec::with_capacity(batch as usize);
        let start = Instant::now();
        for _ in 0..n / batch {
            for i in 0..batch {
                handles.push(runtime::spawn(async move { black_box(i) }));
            }
            for handle in handles.drain(..) {
                black_box(handle.await.expect("trivial task"));
            }
        }
        start.elapsed()
    })
}

/// Spawns `n` trivial green threads in batches, detaches them, and yields
/// until each batch's completions have been counted.
fn spawn_detached(n: u64, batch: u64) -> Duration {
    on_one_worker(move || async move {
        let done = Rc::new(Cell::new(0u64));
        let start = Instant::now();
        for b in 1..=n / batch {
            for _ in 0..batch {
                let done = done.clone();
                runtime::spawn(async move { done.set(black_box(done.get() + 1)) }).detach();
            }
            while done.get() < b * batch {
                yield_now().await;
            }
        }
        start.elapsed()
    })
}

// --- 2. yield_now switch -------------------------------------------------

/// Two green threads on one worker, each yielding `m` times: 2m switches.
fn yield_switch(m: u64) -> Duration {
    on_one_worker(move || async move {
        let yielder = move || async move {
            for i in 0..m {
                black_box(i);
                yield_now().await;
            }
        };
        let start = Instant::now();
        let a = runtime::spawn(yielder());
        let b = runtime::spawn(yielder());
        a.await.expect("yielder");
        b.await.expect("yielder");
        start.elapsed()
    })
}

// --- 3. same-worker queue hand-off ----------------------------------------

/// One-way stream: a producer green thread sends `n` items through a
/// `Queue::bounded(1024)` to a consumer green thread on the same worker.
fn queue_stream_local(n: u64) -> Duration {
    on_one_worker(move || async move {
        let queue = Queue::<u64>::bounded(1024);
        let rx = queue.clone();
        let start = Instant::now();
        let consumer = runtime::spawn(async move {
            let mut sum = 0u64;
            for _ in 0..n {
                sum = sum.wrapping_add(rx.recv().await);
            }
            sum
        });
        let producer = runtime::spawn(async move {
            for i in 0..n {
                queue.send(black_box(i)).await;
            }
        });
        producer.await.expect("producer");
        black_box(consumer.await.expect("consumer"));
        start.elapsed()
    })
}

/// Ping-pong: `n` round trips between two green threads on one worker
/// through two `Queue::bounded(1024)`; each round trip is two hand-offs.
fn queue_pingpong_local(n: u64) -> Duration {
    on_one_worker(move || async move {
        let ping = Queue::<u64>::bounded(1024);
        let pong = Queue::<u64>::bounded(1024);
        let (ping_rx, pong_tx) = (ping.clone(), pong.clone());
        let start = Instant::now();
        let echo = runtime::spawn(async move {
            for _ in 0..n {
                let v = ping_rx.recv().await;
                pong_tx.send(v + 1).await;
            }
        });
        let driver = runtime::spawn(async move {
            let mut v = 0;
            for _ in 0..n {
                ping.send(v).await;
                v = pong.recv().await;
            }
            v
        });
        black_box(driver.await.expect("driver"));
        echo.await.expect("echo");
        start.elapsed()
    })
}

// --- 4. cross-worker hand-off ----------------------------------------------

/// One-way stream of `n` items from a producer on worker 0 to a consumer on
/// worker 1 of a two-worker runtime, through a `Queue::bounded(1024)`.
fn queue_stream_cross(rt: &Runtime, n: u64) -> Duration {
    let queue = Queue::<u64>::bounded(1024);
    let rx = queue.clone();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    // The consumer signals once it is running on worker 1, so that the timed
    // section does not include the runtime waking it up the first time.
    let consumer = rt.spawn_on(1, async move {
        let _ = ready_tx.send(());
        let mut sum = 0u64;
        for _ in 0..n {
            sum = sum.wrapping_add(rx.recv().await);
        }
        (sum, Instant::now())
    });
    ready_rx.recv().expect("consumer started");
    let start = Instant::now();
    let producer = rt.spawn_on(0, async move {
        for i in 0..n {
            queue.send(black_box(i)).await;
        }
    });
    let (sum, end) = rt.block_on(async move {
        producer.await.expect("producer");
        consumer.await.expect("consumer")
    });
    black_box(sum);
    end - start
}

// --- 5. OS-thread anchor ---------------------------------------------------

/// One-way stream of `n` items between two OS threads through a plain
/// `crossbeam_channel::bounded(1024)`.
fn crossbeam_stream(n: u64) -> Duration {
    let (tx, rx) = crossbeam_channel::bounded::<u64>(1024);
    let consumer = std::thread::spawn(move || {
        let mut sum = 0u64;
        for _ in 0..n {
            sum = sum.wrapping_add(rx.recv().expect("sender alive"));
        }
        (sum, Instant::now())
    });
    let start = Instant::now();
    for i in 0..n {
        tx.send(black_box(i)).expect("receiver alive");
    }
    let (sum, end) = consumer.join().expect("consumer thread");
    black_box(sum);
    end - start
}

// --- 6. memory of a parked green thread -------------------------------------

const PARKED: usize = 100_000;

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let resident: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("statm resident field");
    // SAFETY: sysconf has no memory effects.
    resident * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize
}

/// In a fresh process: parks `PARKED` green threads and reports RSS growth per
/// green thread, and the size of the future each one was spawned with.
/// `kind` is `queue` (each awaits `recv` on one shared empty queue) or
/// `pending` (each awaits `std::future::pending`, which registers nothing).
fn child_memory(kind: &str) {
    let kind = kind.to_owned();
    let (rss, future_size, live_bytes, live_allocs) = runtime::block_on(async move {
        let queue = Queue::<u64>::bounded(1024);
        let mut future_size = 0;
        let mut handles = Vec::with_capacity(PARKED);
        COUNTING.store(true, Ordering::SeqCst);
        let before = rss_bytes();
        for _ in 0..PARKED {
            let handle = if kind == "queue" {
                let rx = queue.clone();
                let fut = async move {
                    black_box(rx.recv().await);
                };
                future_size = std::mem::size_of_val(&fut);
                runtime::spawn(fut)
            } else {
                let fut = pending::<()>();
                future_size = std::mem::size_of_val(&fut);
                runtime::spawn(fut)
            };
            handles.push(handle);
        }
        // All of them run (and park) before the root green thread runs again.
        yield_now().await;
        let handles_bytes = handles.capacity() * std::mem::size_of_val(&handles[0]);
        let after = rss_bytes();
        COUNTING.store(false, Ordering::SeqCst);
        let live_bytes = LIVE_BYTES.load(Ordering::SeqCst) as f64 / PARKED as f64;
        let live_allocs = LIVE_ALLOCS.load(Ordering::SeqCst) as f64 / PARKED as f64;
        let stats = runtime::handle().stats();
        assert_eq!(stats[0].alive as usize, PARKED + 1, "all parked and alive");
        let per_thread = (after - before).saturating_sub(handles_bytes) as f64 / PARKED as f64;
        drop(handles);
        (per_thread, future_size, live_bytes, live_allocs)
    });
    println!("{rss} {future_size} {live_bytes} {live_allocs}");
}

/// What one memory child measured, per parked green thread.
struct Memory {
    /// RSS growth, bytes.
    rss: f64,
    /// `size_of_val` of the future handed to `spawn`.
    future: usize,
    /// Heap bytes requested and still live.
    live_bytes: f64,
    /// Heap blocks still live.
    live_allocs: f64,
}

fn memory_of(kind: &str) -> Memory {
    let exe = std::env::current_exe().expect("current_exe");
    let output = std::process::Command::new(exe)
        .args(["child-memory", kind])
        .output()
        .expect("run memory child");
    assert!(output.status.success(), "memory child failed: {output:?}");
    let text = String::from_utf8_lossy(&output.stdout);
    let fields: Vec<f64> = text
        .split_whitespace()
        .map(|s| s.parse().expect("number"))
        .collect();
    assert_eq!(fields.len(), 4, "memory child output: {text}");
    Memory {
        rss: fields[0],
        future: fields[1] as usize,
        live_bytes: fields[2],
        live_allocs: fields[3],
    }
}

// --- main --------------------------------------------------------------------

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.first().map(String::as_str) == Some("child-memory") {
        child_memory(args.get(1).map_or("queue", String::as_str));
        return;
    }
    let wanted = |name: &str| args.is_empty() || args.iter().any(|a| a == name);
    let started = Instant::now();
    let rows = time_operations(&wanted);
    print_table(&rows);
    if wanted("memory") {
        print_memory();
    }
    eprintln!("total bench time: {:.1} s", started.elapsed().as_secs_f64());
}

/// Times each operation `wanted` names (all of them when none is named).
fn time_operations(wanted: &dyn Fn(&str) -> bool) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut row = |operation: &str, (best, median): (f64, f64), target: Option<f64>| {
        eprintln!("{operation}: best {best:.1} ns, median {median:.1} ns");
        rows.push(Row {
            operation: operation.into(),
            best,
            median,
            target,
        });
    };

    if wanted("spawn") {
        let n = scaled(1_000_000);
        let batch = 1024;
        let n = n / batch * batch;
        row(
            "spawn + complete, JoinHandle awaited (batches of 1024, 1 worker)",
            measure(n, || spawn_joined(n, batch)),
            Some(200.0),
        );
        row(
            "spawn + complete, detached (batches of 1024, 1 worker)",
            measure(n, || spawn_detached(n, batch)),
            Some(200.0),
        );
    }
    if wanted("yield") {
        let m = scaled(2_000_000);
        row(
            "yield_now switch (2 green threads, 1 worker; per switch)",
            measure(2 * m, || yield_switch(m)),
            Some(50.0),
        );
    }
    if wanted("queue") {
        let n = scaled(4_000_000);
        row(
            "queue hand-off, same worker, one-way stream, bounded(1024) (per item)",
            measure(n, || queue_stream_local(n)),
            Some(100.0),
        );
    }
    if wanted("pingpong") {
        let n = scaled(1_000_000);
        row(
            "queue hand-off, same worker, ping-pong, bounded(1024) (per one-way hop)",
            measure(2 * n, || queue_pingpong_local(n)),
            Some(100.0),
        );
    }
    if wanted("cross") {
        let n = scaled(1_000_000);
        let rt = Runtime::builder()
            .workers(2)
            .build()
            .expect("two-worker runtime");
        row(
            "queue hand-off, worker 0 -> worker 1, one-way stream, bounded(1024) (per item)",
            measure(n, || queue_stream_cross(&rt, n)),
            None,
        );
        let stats = rt.stats();
        eprintln!(
            "  (cross-worker stats: w0 polls {} parks {} remote wakes {}; w1 polls {} parks {} remote wakes {})",
            stats[0].polls,
            stats[0].parks,
            stats[0].wakes_remote,
            stats[1].polls,
            stats[1].parks,
            stats[1].wakes_remote
        );
    }
    if wanted("crossbeam") {
        let n = scaled(4_000_000);
        row(
            "anchor: 2 OS threads, crossbeam_channel::bounded(1024), one-way stream (per item)",
            measure(n, || crossbeam_stream(n)),
            None,
        );
    }
    rows
}

/// The timings as a Markdown table, each against its target.
fn print_table(rows: &[Row]) {
    println!();
    println!("| operation | ns/op (best of {RUNS}) | ns/op (median) | target |");
    println!("|---|---:|---:|---:|");
    for r in rows {
        let target = match r.target {
            Some(t) if r.best <= t => format!("≤ {t:.0} ok"),
            Some(t) => format!("≤ {t:.0} **MISSED**"),
            None => "—".into(),
        };
        println!(
            "| {} | {:.1} | {:.1} | {} |",
            r.operation, r.best, r.median, target
        );
    }
}

/// Memory per parked green thread, measured in fresh child processes.
fn print_memory() {
    let queue = memory_of("queue");
    let pending = memory_of("pending");
    println!();
    println!(
        "| {PARKED} parked green threads (fresh process) | RSS growth | heap bytes live | heap blocks live | size_of_val(spawned future) |"
    );
    println!("|---|---:|---:|---:|---:|");
    for (name, m) in [
        ("parked on `Queue::recv` (one shared queue)", &queue),
        ("parked on `std::future::pending()` (no waiter)", &pending),
    ] {
        println!(
            "| {name} | {:.1} B | {:.1} B | {:.2} | {} B |",
            m.rss, m.live_bytes, m.live_allocs, m.future
        );
    }
    // The scheduler's own per-green-thread state is private, so it is
    // taken from its layout (x86_64) and checked against the live heap:
    //   Arc<Header> {slot, Arc<WorkerShared>, AtomicU8}: 16 + 24 = 40 B
    //   slab slot Option<Task> {Option<Box<dyn Future>>, Arc, Option<Waker>}: 40 B
    //     (the slab Vec, like the ready VecDeque of Arc<Header>, 8 B, is
    //     at a power-of-two capacity: amortised below)
    //   JoinHandle slot Arc<Mutex<JoinSlot<()>>>, allocated even when
    //     detached: 16 + 8 + 24 = 48 B
    //   Queue::recv only: its (id, waker) entry in the waiters' VecDeque, 24 B.
    // What is left of the live heap is the boxed (join-wrapped) future.
    let n = PARKED as f64;
    let cap = (PARKED + 1).next_power_of_two() as f64;
    let (header, join_slot, slab, ready) = (40.0, 48.0, cap * 40.0 / n, cap * 8.0 / n);
    let waiters = cap * 24.0 / n;
    let scheduler = header + slab + ready;
    let pending_box = pending.live_bytes - scheduler - join_slot;
    let queue_box = queue.live_bytes - scheduler - join_slot - waiters;
    println!();
    println!(
        "Scheduler state per parked green thread: Arc<Header> {header:.0} B + slab slot {slab:.1} B \
         (40 B at capacity {cap}) + ready-queue slot {ready:.1} B = {scheduler:.1} B; with the \
         JoinHandle slot ({join_slot:.0} B) {:.1} B (target <= 256 B + the future).",
        scheduler + join_slot
    );
    println!(
        "Boxed future = live heap minus the above: `pending` {pending_box:.1} B for a {} B future; \
         `Queue::recv` {queue_box:.1} B for a {} B future (after also taking off the queue's \
         {waiters:.1} B waiter slot).",
        pending.future, queue.future
    );
}
