//! The run: raising the fd limit, starting the client's runtime and its
//! workers, printing the live line each second, and gathering the workers'
//! counts into the report.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use conveyor::runtime::sys::limits;
use conveyor::runtime::{JoinHandle, Runtime};

use super::args::BenchOptions;
use super::connection::run_worker;
use super::counts::FdLimitNote;
use super::report::{BenchReport, RateFigures};
use super::series::{self, LiveSeconds};
use super::server_status::{self, Sample, Target};
use super::tally::Tally;
use super::tls::Client;

/// The per-request timeout, when the run's end is not sooner.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Shared between the client's green threads and the progress printer.
pub(crate) struct Shared {
    /// Complete responses so far, for the progress line.
    pub(crate) responses: AtomicU64,
    /// Requests still allowed to start under `-n` (`u64::MAX` with `-d`).
    pub(crate) budget: AtomicU64,
    /// The end of the run with `-d`; every wait is cut there.
    pub(crate) deadline: Option<Instant>,
    pub(crate) stop: AtomicBool,
    /// When the run started (the warm-up, if any, first).
    pub(crate) started: Instant,
    /// When the measured run starts: results before it are discarded.
    pub(crate) measure_from: Instant,
    /// The seconds published so far, for the live line.
    pub(crate) live: LiveSeconds,
    /// For an `https://` target: the TLS settings every connection uses.
    pub(crate) tls: Option<Client>,
}

impl Shared {
    /// The run's clock: it starts now, is measured after the warm-up, and
    /// (with `-d`) ends `duration` later.
    fn new(options: &BenchOptions) -> io::Result<Shared> {
        let tls = match &options.tls {
            Some(trust) => {
                Some(Client::new(trust, &options.host, options.h2).map_err(io::Error::other)?)
            }
            None => None,
        };
        let started = Instant::now();
        let measure_from = started + options.warmup;
        Ok(Shared {
            responses: AtomicU64::new(0),
            budget: AtomicU64::new(options.requests.unwrap_or(u64::MAX)),
            deadline: options
                .requests
                .is_none()
                .then(|| measure_from + options.duration),
            stop: AtomicBool::new(false),
            started,
            measure_from,
            live: LiveSeconds::default(),
            tls,
        })
    }

    /// Whether the run's time is up (never, with `-n`).
    pub(crate) fn ended(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// When a wait starting now gives up: the request timeout, or the end
    /// of the run if that comes first.
    pub(crate) fn limit(&self) -> Instant {
        let timeout = Instant::now() + REQUEST_TIMEOUT;
        self.deadline.map_or(timeout, |d| d.min(timeout))
    }

    /// Claims `n` requests of the budget; fewer (maybe 0) near the end.
    pub(crate) fn claim(&self, n: u64) -> u64 {
        if self.ended() {
            return 0;
        }
        let mut left = self.budget.load(Ordering::Relaxed);
        loop {
            let take = left.min(n);
            if take == 0 {
                return 0;
            }
            match self.budget.compare_exchange_weak(
                left,
                left - take,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return take,
                Err(actual) => left = actual,
            }
        }
    }

    /// Gives claimed requests that were never sent back to the budget.
    pub(crate) fn unclaim(&self, n: u64) {
        if n > 0 && self.budget.load(Ordering::Relaxed) != u64::MAX {
            self.budget.fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// Descriptors a run needs beyond its connections: each worker's poller and
/// wake-up descriptors, stdio, and slack for the runtime.
fn fds_wanted(options: &BenchOptions) -> u64 {
    options.connections as u64 + 64 + 8 * options.threads as u64
}

/// Runs the load; `progress` is given the live line about once a second.
pub(crate) fn run(
    options: &BenchOptions,
    mut progress: impl FnMut(&str),
) -> io::Result<BenchReport> {
    // Every connection is a descriptor: raise the soft limit before the
    // runtime opens its own, so -c is not cut short by EMFILE.
    let wanted = fds_wanted(options);
    let fd_limit = limits::fd_limit().ok().map(|before| FdLimitNote {
        soft_before: before.soft,
        now: limits::raise_fd_limit(wanted).unwrap_or(before),
        wanted,
    });
    let runtime = Runtime::builder()
        .workers(options.threads)
        .thread_name("bench")
        .spin_before_blocking(match options.h2 {
            // Measured against h2load on a loaded 2-vCPU VM (docs/bench.md):
            // spinning cost --h2 a fifth of its rate there, and with M
            // streams per connection a worker has few short lulls to save.
            true => Duration::ZERO,
            false => IDLE_SPIN,
        })
        .build()?;
    let shared = Arc::new(Shared::new(options)?);
    let sampler = Sampler::start(options, &shared)?;
    let handles = spawn_workers(&runtime, options, &shared);
    let next_line = watch(options, &shared, &sampler, &handles, &mut progress);
    let ended = Instant::now();
    let elapsed = ended.saturating_duration_since(shared.measure_from);
    let server = sampler.stop();
    let mut total = Tally::new(options.rate.is_some());
    for handle in handles {
        if let Ok(tally) = runtime.block_on(handle) {
            total.merge(&tally);
        }
    }
    total.connections.requested = options.connections as u64;
    // The seconds that ended with the run, from the final counts.
    let full_seconds = (elapsed.as_secs() as usize).min(total.series.seconds.len());
    for index in next_line..full_seconds {
        let mut line = series::line(index, &total.series.seconds[index], options.rate.is_some());
        line.push_str(&server_second(&server, index));
        progress(&line);
    }
    let run_secs = (ended - shared.started).as_secs_f64().max(1e-9);
    Ok(BenchReport {
        uncorrected: total.uncorrected,
        rate: options.rate.map(|target| RateFigures {
            target,
            sent: total.sent,
            late: total.late,
        }),
        series: total.series,
        server,
        client_cpu: total
            .cpu
            .iter()
            .map(|cpu| cpu.as_secs_f64() / run_secs)
            .collect(),
        connect_errors: total.connect_errors,
        warmup: options.warmup,
        elapsed,
        requests: total.statuses.values().sum(),
        statuses: total.statuses,
        bytes: total.bytes,
        errors: total.errors,
        other_error: total.other_error,
        unanswered_at_end: total.unanswered,
        connections: total.connections,
        fd_limit,
        latency: total.latency,
    })
}

/// Spreads the `-c` connections over the runtime's workers, numbered in
/// one sequence (each number places a connection on the `--rate` timetable).
fn spawn_workers(
    runtime: &Runtime,
    options: &BenchOptions,
    shared: &Arc<Shared>,
) -> Vec<JoinHandle<Tally>> {
    let workers = runtime.workers();
    let mut first_index = 0;
    (0..workers)
        .map(|worker| {
            let options = options.clone();
            let shared = shared.clone();
            let share =
                options.connections / workers + usize::from(worker < options.connections % workers);
            let first = first_index;
            first_index += share;
            runtime.spawn_local_on(worker, move || run_worker(options, shared, first, share))
        })
        .collect()
}

/// Watches the workers until they finish: ends the run when its time is
/// up and prints the live lines. Returns the first second not printed.
fn watch(
    options: &BenchOptions,
    shared: &Shared,
    sampler: &Sampler,
    handles: &[JoinHandle<Tally>],
    progress: &mut impl FnMut(&str),
) -> usize {
    // Each second's line is printed a little after it ends, once the
    // workers have published it.
    const LINE_LAG: Duration = Duration::from_millis(200);
    let mut warmup_second = 1u64;
    let mut warmup_responses = 0;
    let mut next_line = 0usize;
    while !handles.iter().all(|h| h.is_finished()) {
        let now = Instant::now();
        if shared.deadline.is_some_and(|d| now >= d) {
            shared.stop.store(true, Ordering::Relaxed);
        }
        let warmup_tick = shared.started + Duration::from_secs(warmup_second);
        if warmup_tick <= shared.measure_from && now >= warmup_tick {
            let responses = shared.responses.load(Ordering::Relaxed);
            progress(&format!(
                "  warm-up {warmup_second:>2} s  {:>7} req/s (discarded)",
                responses - warmup_responses
            ));
            warmup_responses = responses;
            warmup_second += 1;
        }
        if now >= shared.measure_from + Duration::from_secs(next_line as u64 + 1) + LINE_LAG {
            if let Some(second) = shared.live.get(next_line) {
                let mut line = series::line(next_line, &second, options.rate.is_some());
                line.push_str(&sampler.live(next_line));
                progress(&line);
            }
            next_line += 1;
        }
        // The client's own threads do the work; this one only watches.
        std::thread::sleep(Duration::from_millis(5));
    }
    next_line
}

/// The `--server-status` thread and what it sampled (idle without the flag).
struct Sampler {
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    fn start(options: &BenchOptions, shared: &Shared) -> io::Result<Sampler> {
        let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = if options.server_status {
            Some(server_status::spawn(
                Target {
                    addr: options.addr,
                    host: options.host.clone(),
                    // HTTP/1.1 by ALPN, whatever the load speaks.
                    tls: match &options.tls {
                        Some(trust) => Some(
                            Client::new(trust, &options.host, false).map_err(io::Error::other)?,
                        ),
                        None => None,
                    },
                },
                shared.measure_from,
                stop.clone(),
                samples.clone(),
            )?)
        } else {
            None
        };
        Ok(Sampler {
            samples,
            stop,
            thread,
        })
    }

    /// The server's figures for the live line of second `index`: the
    /// sample taken as that second ended (none yet: nothing).
    fn live(&self, index: usize) -> String {
        match self.samples.lock() {
            Ok(samples) => server_second(&samples, index),
            Err(_) => String::new(),
        }
    }

    /// Stops the thread; the samples it took.
    fn stop(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread {
            let _ = thread.join();
        }
        self.samples.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// The server's figures for the live line of second `index`: the sample
/// taken as that second ended (none: nothing).
fn server_second(samples: &[Sample], index: usize) -> String {
    let second = index as f64 + 1.0;
    let Some(at) = samples.iter().rposition(|s| (s.t - second).abs() < 0.5) else {
        return String::new();
    };
    let prev = at.checked_sub(1).and_then(|i| samples.get(i));
    server_status::live(prev, &samples[at])
}

/// Idle for a moment, a client worker keeps polling instead of sleeping in
/// epoll_wait: a closed loop otherwise loses each wake-up's latency (tens of
/// µs on a VM) with the server idle too, and measures less than wrk (−4 to
/// −6 % with no spin). Spinning longer is not free either: a client that
/// never sleeps spares the server the wake-ups its sends would cost, and
/// measures more than wrk (+3 to +4 % at 50 µs). 15 µs sits between; the
/// figures are in BENCHMARKS.md.
const IDLE_SPIN: Duration = Duration::from_micros(15);
