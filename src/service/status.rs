//! `/status`: what the line is doing, as JSON or (`?format=prometheus`) in the
//! Prometheus text format.

use std::fmt::Write;

use crate::http::json::json_string;
use crate::http::Method;
use crate::metrics::Totals;
use crate::runtime::{QueueSnapshot, WorkerSnapshot};

use super::probes::State;
use super::{Exchange, Outcome};

/// Everything `/status` reports, gathered at one moment.
pub struct Report {
    /// Seconds since the server started.
    pub uptime_secs: f64,
    /// Worker threads.
    pub workers: usize,
    /// (stage, implementation name) for the acceptor, dispatcher and handler.
    pub stages: [(&'static str, String); 3],
    /// Connection, request, byte and latency counters summed over all workers.
    pub totals: Totals,
    /// One per worker, in worker order.
    pub queues: Vec<QueueReport>,
    /// Each worker's scheduler counters; empty outside a runtime.
    pub scheduler: Vec<WorkerSnapshot>,
    /// Starting, ready or draining: what `/readyz` answers.
    pub readiness: State,
    /// The handshake stage, when the server serves HTTPS.
    pub tls: Option<TlsReport>,
    /// The configuration in use: generation, when loaded, from which file.
    pub config: ConfigReport,
    /// Connection pressure and admission (`"pressure"`).
    pub pressure: PressureReport,
}

/// The TLS handshake stage, as `/status` shows it (the `"tls"` object).
#[derive(Clone, Copy, Debug, Default)]
pub struct TlsReport {
    /// Connections waiting in the handshake queues.
    pub depth: u64,
    /// The handshake queues' capacity, over all workers.
    pub capacity: u64,
    /// Handshakes completed.
    pub completed: u64,
    /// Of those, how many resumed an earlier session (ticket or cache).
    pub resumed: u64,
    /// Handshakes that failed: bad records, no common parameters, timeouts,
    /// clients that left (plain HTTP included).
    pub failed: u64,
    /// Of the failed, connections that spoke plain HTTP (answered 400).
    pub plain_http: u64,
}

impl TlsReport {
    /// Resumed handshakes over completed ones; 0 before any.
    pub fn resumption_ratio(&self) -> f64 {
        match self.completed {
            0 => 0.0,
            n => self.resumed as f64 / n as f64,
        }
    }
}

/// The running configuration, as `/status` shows it under `"config"`.
#[derive(Clone, Debug, Default)]
pub struct ConfigReport {
    /// 1 at start-up, one more for each reload that took effect.
    pub generation: u64,
    /// When it was loaded, in seconds since the Unix epoch.
    pub loaded_at_unix: u64,
    /// The file it was read from; `None` for defaults and flags only.
    pub file: Option<String>,
}

/// Connection pressure and admission control, as `/status` shows them
/// under `"pressure"`.
#[derive(Clone, Debug, Default)]
pub struct PressureReport {
    /// The soft open-file limit in force.
    pub fd_limit: u64,
    /// The soft open-file limit the process started with.
    pub fd_limit_at_start: u64,
    /// Connection slots.
    pub max_connections: u64,
    /// Whether they follow the open-file limit (`limits.max_connections = 0`).
    pub max_connections_auto: bool,
    /// Idle keep-alive connections closed to admit new ones.
    pub evicted_idle: u64,
    /// New connections that found every slot taken.
    pub slots_exhausted: u64,
    /// `accept` failures: out of the process's descriptors.
    pub accept_emfile: u64,
    /// `accept` failures: out of the system's descriptors.
    pub accept_enfile: u64,
    /// `queue.overload`.
    pub overload: &'static str,
    /// `queue.codel_target`, µs.
    pub codel_target_us: u64,
    /// `queue.codel_interval`, µs.
    pub codel_interval_us: u64,
    /// Per worker, in worker order.
    pub workers: Vec<QueueWaitReport>,
}

/// One worker's queue wait and shedding.
#[derive(Clone, Copy, Debug, Default)]
pub struct QueueWaitReport {
    /// The last wait measured between queueing a connection and a handler
    /// taking it, µs.
    pub wait_us: u64,
    /// Its moving average, µs.
    pub wait_avg_us: u64,
    /// Whether the worker sheds new connections now (`codel`).
    pub shedding: bool,
    /// New connections it answered 503 for a queue wait that stayed high.
    pub shed: u64,
}

fn write_pressure(s: &mut String, p: &PressureReport) {
    let shed: u64 = p.workers.iter().map(|w| w.shed).sum();
    let _ = write!(
        s,
        "\"pressure\":{{\"fd_limit\":{},\"fd_limit_at_start\":{},\"max_connections\":{},\"max_connections_auto\":{},\"evicted_idle\":{},\"slots_exhausted\":{},\"accept_emfile\":{},\"accept_enfile\":{},\"overload\":{},\"codel_target_us\":{},\"codel_interval_us\":{},\"shed_codel\":{shed},\"queue_wait\":[",
        p.fd_limit,
        p.fd_limit_at_start,
        p.max_connections,
        p.max_connections_auto,
        p.evicted_idle,
        p.slots_exhausted,
        p.accept_emfile,
        p.accept_enfile,
        json_string(p.overload),
        p.codel_target_us,
        p.codel_interval_us,
    );
    for (worker, w) in p.workers.iter().enumerate() {
        let sep = if worker == 0 { "" } else { "," };
        let _ = write!(
            s,
            "{sep}{{\"worker\":{worker},\"wait_us\":{},\"wait_avg_us\":{},\"shedding\":{},\"shed\":{}}}",
            w.wait_us, w.wait_avg_us, w.shedding, w.shed
        );
    }
    s.push_str("]},");
}

/// A worker's pending queue, as `/status` shows it.
#[derive(Clone, Copy, Debug, Default)]
pub struct QueueReport {
    /// The queue's depth, capacity and totals.
    pub queue: QueueSnapshot,
    /// Kept-alive connections this worker put back on its queue.
    pub recycled: u64,
    /// Connections parked until their next request arrives.
    pub idle: u64,
}

/// Gathers the report: implemented by the line the stages share, which
/// services do not see otherwise.
pub trait StatusSource {
    /// The report as of now.
    fn report(&self) -> Report;
}

/// Answers GET or HEAD with the report, as JSON (`?format=json` or no
/// format) or, with `?format=prometheus`, Prometheus text; 400 naming both
/// for any other format, 405 for other methods.
pub fn serve(ex: &mut Exchange<'_>) -> Outcome {
    ex.consume_preamble();
    if !matches!(ex.req.method, Method::Get | Method::Head) {
        return ex.error(405, "use GET or HEAD", &[("Allow", "GET, HEAD")]);
    }
    let format = ex
        .req
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("format=")));
    let prometheus = match format {
        None | Some("json") => false,
        Some("prometheus") => true,
        // Named rather than answered as JSON: a scraper asking for another
        // format must not parse the wrong one.
        Some(_) => {
            return ex.error(
                400,
                "unknown format; use format=json (the default) or format=prometheus",
                &[],
            )
        }
    };
    let report = ex.ctx.status.report();
    let no_store = [("Cache-Control", "no-store")];
    if prometheus {
        let body = to_prometheus(&report);
        ex.respond(
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            body.as_bytes(),
            &no_store,
        )
    } else {
        let body = to_json(&report);
        ex.respond(200, "application/json", body.as_bytes(), &no_store)
    }
}

/// The report as one JSON object (what `GET /status` returns).
pub fn to_json(r: &Report) -> String {
    let t = &r.totals;
    let mut s = String::with_capacity(2048);
    let _ = write!(
        s,
        "{{\"version\":{},\"uptime_secs\":{:.3},\"workers\":{},",
        json_string(env!("CARGO_PKG_VERSION")),
        r.uptime_secs,
        r.workers
    );
    s.push_str("\"stages\":{");
    for (i, (stage, name)) in r.stages.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        let _ = write!(s, "{sep}\"{stage}\":{}", json_string(name));
    }
    let c = &r.config;
    let loaded = std::time::UNIX_EPOCH + std::time::Duration::from_secs(c.loaded_at_unix);
    let _ = write!(
        s,
        "}},\"config\":{{\"generation\":{},\"loaded_at\":{},\"loaded_at_unix\":{},\"file\":{}",
        c.generation,
        json_string(&crate::http::date::fmt_http_date(loaded)),
        c.loaded_at_unix,
        c.file
            .as_deref()
            .map_or_else(|| "null".to_string(), json_string)
    );
    let _ = write!(
        s,
        "}},\"connections\":{{\"accepted\":{},\"open\":{},\"reading\":{},\"writing\":{},\"idle_keepalive\":{},\"rejected\":{},\"recycled\":{}}},",
        t.accepted, t.open, t.reading, t.writing, t.idle, t.rejected, t.recycled
    );
    let [c1, c2, c3, c4, c5] = t.status_classes;
    let _ = write!(
        s,
        "\"requests\":{{\"total\":{},\"1xx\":{c1},\"2xx\":{c2},\"3xx\":{c3},\"4xx\":{c4},\"5xx\":{c5},\"echo_cut_short\":{}}},\"bytes\":{{\"in\":{},\"out\":{}}},",
        t.requests, t.echo_cut_short, t.bytes_in, t.bytes_out
    );
    let [p50, p90, p99] = t.latency_us;
    let _ = write!(
        s,
        "\"latency_us\":{{\"p50\":{p50},\"p90\":{p90},\"p99\":{p99}}},"
    );
    write_pressure(&mut s, &r.pressure);
    s.push_str("\"queues\":[");
    for (worker, q) in r.queues.iter().enumerate() {
        let sep = if worker == 0 { "" } else { "," };
        let _ = write!(
            s,
            "{sep}{{\"worker\":{worker},\"depth\":{},\"capacity\":{},\"pushed\":{},\"popped\":{},\"recycled\":{},\"idle\":{}}}",
            q.queue.depth,
            q.queue.capacity.unwrap_or(0),
            q.queue.pushed,
            q.queue.popped,
            q.recycled,
            q.idle
        );
    }
    s.push_str("],\"scheduler\":[");
    for (i, w) in r.scheduler.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        let _ = write!(
            s,
            "{sep}{{\"worker\":{},\"spawned\":{},\"alive\":{},\"completed\":{},\"panicked\":{},\"polls\":{},\"parks\":{},\"wakes_local\":{},\"wakes_remote\":{},\"io_events\":{},\"timer_fires\":{},\"injected_pending\":{}}}",
            w.worker, w.spawned, w.alive, w.completed, w.panicked, w.polls, w.parks,
            w.wakes_local, w.wakes_remote, w.io_events, w.timer_fires, w.injected_pending
        );
    }
    let _ = write!(
        s,
        "],\"readiness\":{{\"state\":\"{}\"}}",
        r.readiness.name()
    );
    if let Some(t) = &r.tls {
        let _ = write!(
            s,
            ",\"tls\":{{\"handshake_queue_depth\":{},\"handshake_queue_capacity\":{},\"handshakes_completed\":{},\"handshakes_failed\":{},\"handshakes_resumed\":{},\"resumption_ratio\":{:.4},\"plain_http_refused\":{}}}",
            t.depth, t.capacity, t.completed, t.failed, t.resumed, t.resumption_ratio(), t.plain_http
        );
    }
    s.push('}');
    s
}

/// A metric family per row of `table` (name, type, help, field), with one
/// sample per item labelled by its worker.
type Family<'a, T> = (&'a str, &'a str, &'a str, fn(&T) -> u64);

fn per_worker<T>(
    items: &[T],
    worker_of: fn(usize, &T) -> usize,
    table: &[Family<'_, T>],
    metric: &mut impl FnMut(&str, &str, &str, &[(String, String)]),
) {
    for (name, kind, help, field) in table {
        let samples: Vec<_> = items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let worker = worker_of(i, item);
                (format!("{{worker=\"{worker}\"}}"), field(item).to_string())
            })
            .collect();
        metric(name, kind, help, &samples);
    }
}

/// The report in the Prometheus text exposition format, metrics prefixed `conveyor_`.
pub fn to_prometheus(r: &Report) -> String {
    let t = &r.totals;
    let mut s = String::with_capacity(4096);
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, String)]| {
        let _ = writeln!(
            s,
            "# HELP conveyor_{name} {help}\n# TYPE conveyor_{name} {kind}"
        );
        for (labels, value) in samples {
            let _ = writeln!(s, "conveyor_{name}{labels} {value}");
        }
    };
    let one = |v: String| vec![(String::new(), v)];
    metric(
        "uptime_seconds",
        "gauge",
        "Seconds since start.",
        &one(format!("{:.3}", r.uptime_secs)),
    );
    metric(
        "workers",
        "gauge",
        "Worker threads.",
        &one(r.workers.to_string()),
    );
    metric(
        "ready",
        "gauge",
        "1 while /readyz answers 200 (accepting, not draining), else 0.",
        &one(u8::from(r.readiness == State::Ready).to_string()),
    );
    metric(
        "config_generation",
        "gauge",
        "Configurations loaded: 1 at start, one more per reload that took effect.",
        &one(r.config.generation.to_string()),
    );
    metric(
        "config_loaded_timestamp_seconds",
        "gauge",
        "When the configuration in use was loaded, Unix time.",
        &one(r.config.loaded_at_unix.to_string()),
    );
    let stages: Vec<_> = r
        .stages
        .iter()
        .map(|(stage, name)| {
            (
                format!("{{stage=\"{stage}\",implementation=\"{name}\"}}"),
                "1".to_string(),
            )
        })
        .collect();
    metric(
        "stage_info",
        "gauge",
        "Stage implementations in use.",
        &stages,
    );
    metric(
        "connections_accepted_total",
        "counter",
        "Connections accepted.",
        &one(t.accepted.to_string()),
    );
    metric(
        "connections_rejected_total",
        "counter",
        "Connections answered 503 and closed.",
        &one(t.rejected.to_string()),
    );
    metric(
        "connections_recycled_total",
        "counter",
        "Keep-alive connections put back on the line.",
        &one(t.recycled.to_string()),
    );
    let states = [
        ("open", t.open),
        ("reading", t.reading),
        ("writing", t.writing),
        ("idle_keepalive", t.idle),
    ]
    .map(|(state, v)| (format!("{{state=\"{state}\"}}"), v.to_string()));
    metric("connections", "gauge", "Connections by state.", &states);
    let classes: Vec<_> = t
        .status_classes
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("{{class=\"{}xx\"}}", i + 1), v.to_string()))
        .collect();
    metric(
        "requests_total",
        "counter",
        "Responses by status class.",
        &classes,
    );
    metric(
        "echo_cut_short_total",
        "counter",
        "Echo responses cut short (no last chunk, connection closed): body refused after the 200.",
        &one(t.echo_cut_short.to_string()),
    );
    metric(
        "bytes_total",
        "counter",
        "Bytes received and sent.",
        &[
            ("{direction=\"in\"}".into(), t.bytes_in.to_string()),
            ("{direction=\"out\"}".into(), t.bytes_out.to_string()),
        ],
    );
    let quantiles = [
        ("0.5", t.latency_us[0]),
        ("0.9", t.latency_us[1]),
        ("0.99", t.latency_us[2]),
    ]
    .map(|(q, v)| {
        (
            format!("{{quantile=\"{q}\"}}"),
            format!("{:.6}", v as f64 / 1e6),
        )
    });
    metric(
        "request_latency_seconds",
        "gauge",
        "Request latency percentiles.",
        &quantiles,
    );
    type QueueField = fn(&QueueReport) -> u64;
    let queue_metrics: [(&str, &str, &str, QueueField); 5] = [
        (
            "queue_depth",
            "gauge",
            "Connections waiting on each pending queue.",
            |q| q.queue.depth,
        ),
        (
            "queue_pushed_total",
            "counter",
            "Connections pushed onto each pending queue.",
            |q| q.queue.pushed,
        ),
        (
            "queue_popped_total",
            "counter",
            "Connections taken off each pending queue.",
            |q| q.queue.popped,
        ),
        (
            "queue_recycled_total",
            "counter",
            "Keep-alive connections recycled per queue.",
            |q| q.recycled,
        ),
        (
            "queue_idle",
            "gauge",
            "Connections parked per worker until their next request (idle keep-alive ones, and new ones that have sent nothing).",
            |q| q.idle,
        ),
    ];
    per_worker(&r.queues, |w, _| w, &queue_metrics, &mut metric);
    type WorkerField = fn(&WorkerSnapshot) -> u64;
    let worker_metrics: [(&str, &str, &str, WorkerField); 9] = [
        (
            "green_threads_spawned_total",
            "counter",
            "Green threads spawned.",
            |w| w.spawned,
        ),
        (
            "green_threads_alive",
            "gauge",
            "Green threads alive.",
            |w| w.alive,
        ),
        (
            "green_threads_panicked_total",
            "counter",
            "Green threads that panicked.",
            |w| w.panicked,
        ),
        (
            "scheduler_polls_total",
            "counter",
            "Green thread polls.",
            |w| w.polls,
        ),
        (
            "scheduler_parks_total",
            "counter",
            "Polls that parked.",
            |w| w.parks,
        ),
        (
            "scheduler_wakes_local_total",
            "counter",
            "Wake-ups from the same worker.",
            |w| w.wakes_local,
        ),
        (
            "scheduler_wakes_remote_total",
            "counter",
            "Wake-ups from other threads.",
            |w| w.wakes_remote,
        ),
        (
            "scheduler_io_events_total",
            "counter",
            "Readiness events dispatched.",
            |w| w.io_events,
        ),
        (
            "scheduler_timer_fires_total",
            "counter",
            "Timers fired.",
            |w| w.timer_fires,
        ),
    ];
    per_worker(&r.scheduler, |_, w| w.worker, &worker_metrics, &mut metric);
    if let Some(t) = &r.tls {
        let tls = [
            (
                "tls_handshake_queue_depth",
                "gauge",
                "Connections waiting for a TLS handshake.",
                t.depth,
            ),
            (
                "tls_handshakes_completed_total",
                "counter",
                "TLS handshakes completed.",
                t.completed,
            ),
            (
                "tls_handshakes_resumed_total",
                "counter",
                "TLS handshakes that resumed a session.",
                t.resumed,
            ),
            (
                "tls_handshakes_failed_total",
                "counter",
                "TLS handshakes that failed.",
                t.failed,
            ),
            (
                "tls_plain_http_refused_total",
                "counter",
                "Plain HTTP sent to a TLS port (400).",
                t.plain_http,
            ),
        ];
        for (name, kind, help, value) in tls {
            metric(name, kind, help, &one(value.to_string()));
        }
    }
    pressure_metrics(&r.pressure, &mut metric);
    s
}

/// The `"pressure"` figures as Prometheus metrics.
fn pressure_metrics(
    p: &PressureReport,
    metric: &mut impl FnMut(&str, &str, &str, &[(String, String)]),
) {
    let one = |v: u64| vec![(String::new(), v.to_string())];
    let singles = [
        ("fd_limit", "gauge", "The soft open-file limit.", p.fd_limit),
        (
            "max_connections",
            "gauge",
            "Connection slots.",
            p.max_connections,
        ),
        (
            "evicted_idle_total",
            "counter",
            "Idle keep-alive connections closed to admit new ones.",
            p.evicted_idle,
        ),
        (
            "slots_exhausted_total",
            "counter",
            "New connections that found every slot taken.",
            p.slots_exhausted,
        ),
    ];
    for (name, kind, help, value) in singles {
        metric(name, kind, help, &one(value));
    }
    metric(
        "accept_out_of_descriptors_total",
        "counter",
        "accept failures for want of descriptors (EMFILE: the process's; ENFILE: the system's).",
        &[
            ("{errno=\"EMFILE\"}".into(), p.accept_emfile.to_string()),
            ("{errno=\"ENFILE\"}".into(), p.accept_enfile.to_string()),
        ],
    );
    type WaitField = fn(&QueueWaitReport) -> u64;
    let wait_metrics: [(&str, &str, &str, WaitField); 3] = [
        (
            "queue_wait_microseconds",
            "gauge",
            "The last wait measured between queueing a connection and a handler taking it.",
            |w| w.wait_us,
        ),
        (
            "queue_shedding",
            "gauge",
            "1 while the worker sheds new connections (queue.overload = codel).",
            |w| u64::from(w.shedding),
        ),
        (
            "shed_codel_total",
            "counter",
            "New connections answered 503 because the queue wait stayed above target.",
            |w| w.shed,
        ),
    ];
    per_worker(&p.workers, |w, _| w, &wait_metrics, metric);
}
