//! Every figure `/status` reports, described once: its JSON key, its
//! Prometheus series (type and help), and how it is read from the report.
//! [`walk`] lays the tables out in the JSON's shape; both outputs come
//! from it. To add a figure, add a row.

use crate::metrics::Totals;
use crate::runtime::WorkerSnapshot;

use super::super::probes::State;
use super::super::static_files::CacheFigures;
use super::render::{counter, gauge, http_date, label_value, Figure, Series, Sink, Value};
use super::stage_figures::{HTTP2, PER_CLIENT, SITES, SITE_REQUESTS, TLS};
use super::{ConfigReport, PressureReport, QueueReport, QueueWaitReport, Report};

use Value::{Count, Fixed, Flag, Micros, Null, Signed, Text};

/// The report, in the JSON's order.
pub(super) fn walk(r: &Report, out: &mut impl Sink) {
    figures(out, r, TOP);
    out.open("stages", false);
    for (stage, implementation) in &r.stages {
        out.figure(Some(stage), None, "", &Text(implementation.clone()));
        let labels = format!(
            "stage=\"{stage}\",implementation=\"{}\"",
            label_value(implementation)
        );
        out.figure(None, Some(&STAGE_INFO), &labels, &Count(1));
    }
    out.close(false);
    object(out, "config", &r.config, CONFIG);
    object(out, "connections", &r.totals, CONNECTIONS);
    object(out, "requests", &r.totals, REQUESTS);
    object(out, "bytes", &r.totals, BYTES);
    object(out, "latency_us", &r.totals, LATENCY);
    out.histogram(&r.totals.latency);
    out.open("pressure", false);
    figures(out, &r.pressure, PRESSURE);
    per_worker(out, "queue_wait", &r.pressure.workers, |i, _| i, QUEUE_WAIT);
    out.close(false);
    per_worker(out, "queues", &r.queues, |i, _| i, QUEUES);
    per_worker(out, "scheduler", &r.scheduler, |_, w| w.worker, SCHEDULER);
    object(out, "readiness", &r.readiness, READINESS);
    if let Some(tls) = &r.tls {
        object(out, "tls", tls, TLS);
    }
    if let Some(acme) = &r.acme {
        object(out, "acme", acme, super::acme_figures::ACME);
    }
    object(out, "http2", &r.http2, HTTP2);
    object(out, "file_cache", &r.file_cache, FILE_CACHE);
    object(out, "per_client", &r.per_client, PER_CLIENT);
    if let Some(sites) = &r.sites {
        out.open("sites", false);
        figures(out, sites, SITES);
        out.open("by_site", false);
        for site in &sites.sites {
            out.open(&site.name, false);
            let labels = format!("site=\"{}\"", label_value(&site.name));
            out.figure(
                Some("requests"),
                Some(&SITE_REQUESTS),
                &labels,
                &Count(site.requests),
            );
            out.close(false);
        }
        out.close(false);
        out.close(false);
    }
}

fn figures<T>(out: &mut impl Sink, item: &T, table: &[Figure<T>]) {
    for figure in table {
        let value = (figure.read)(item);
        out.figure(figure.json, figure.series.as_ref(), "", &value);
    }
}

fn object<T>(out: &mut impl Sink, key: &str, item: &T, table: &[Figure<T>]) {
    out.open(key, false);
    figures(out, item, table);
    out.close(false);
}

/// An array with an element per worker: `"worker":N` in JSON, the label
/// `worker="N"` in Prometheus.
fn per_worker<T>(
    out: &mut impl Sink,
    key: &str,
    items: &[T],
    worker_of: fn(usize, &T) -> usize,
    table: &[Figure<T>],
) {
    out.open(key, true);
    for (i, item) in items.iter().enumerate() {
        out.element(Some(worker_of(i, item)));
        figures(out, item, table);
        out.element(None);
    }
    out.close(true);
}

const STAGE_INFO: Series = gauge("stage_info", "Stage implementations in use.");

const TOP: &[Figure<Report>] = &[
    Figure::json("version", |_| Text(env!("CARGO_PKG_VERSION").into())),
    Figure::both(
        "uptime_secs",
        gauge("uptime_seconds", "Seconds since start."),
        |r| Fixed(r.uptime_secs, 3),
    ),
    Figure::both("workers", gauge("workers", "Worker threads."), |r| {
        Count(r.workers as u64)
    }),
];

const CONFIG: &[Figure<ConfigReport>] = &[
    Figure::both(
        "generation",
        gauge(
            "config_generation",
            "Configurations loaded: 1 at start, one more per reload that took effect.",
        ),
        |c| Count(c.generation),
    ),
    Figure::json("loaded_at", |c| http_date(Some(c.loaded_at_unix))),
    Figure::both(
        "loaded_at_unix",
        gauge(
            "config_loaded_timestamp_seconds",
            "When the configuration in use was loaded, Unix time.",
        ),
        |c| Count(c.loaded_at_unix),
    ),
    Figure::json("file", |c| c.file.clone().map_or(Null, Text)),
];

const BY_STATE: Series = gauge("connections", "Connections by state.");

const CONNECTIONS: &[Figure<Totals>] = &[
    Figure::both(
        "accepted",
        counter("connections_accepted_total", "Connections accepted."),
        |t| Count(t.accepted),
    ),
    Figure::both("open", BY_STATE.with("state=\"open\""), |t| Signed(t.open)),
    Figure::both("reading", BY_STATE.with("state=\"reading\""), |t| {
        Signed(t.reading)
    }),
    Figure::both("writing", BY_STATE.with("state=\"writing\""), |t| {
        Signed(t.writing)
    }),
    Figure::both(
        "idle_keepalive",
        BY_STATE.with("state=\"idle_keepalive\""),
        |t| Signed(t.idle),
    ),
    Figure::both(
        "rejected",
        counter(
            "connections_rejected_total",
            "Connections answered 503 and closed.",
        ),
        |t| Count(t.rejected),
    ),
    Figure::both(
        "recycled",
        counter(
            "connections_recycled_total",
            "Keep-alive connections put back on the line.",
        ),
        |t| Count(t.recycled),
    ),
];

const BY_CLASS: Series = counter("requests_total", "Responses by status class.");

const REQUESTS: &[Figure<Totals>] = &[
    Figure::json("total", |t| Count(t.requests)),
    Figure::both("1xx", BY_CLASS.with("class=\"1xx\""), |t| {
        Count(t.status_classes[0])
    }),
    Figure::both("2xx", BY_CLASS.with("class=\"2xx\""), |t| {
        Count(t.status_classes[1])
    }),
    Figure::both("3xx", BY_CLASS.with("class=\"3xx\""), |t| {
        Count(t.status_classes[2])
    }),
    Figure::both("4xx", BY_CLASS.with("class=\"4xx\""), |t| {
        Count(t.status_classes[3])
    }),
    Figure::both("5xx", BY_CLASS.with("class=\"5xx\""), |t| {
        Count(t.status_classes[4])
    }),
    Figure::both(
        "echo_cut_short",
        counter(
            "echo_cut_short_total",
            "Echo responses cut short (no last chunk, connection closed): body refused after the 200.",
        ),
        |t| Count(t.echo_cut_short),
    ),
];

const BY_DIRECTION: Series = counter("bytes_total", "Bytes received and sent.");

const BYTES: &[Figure<Totals>] = &[
    Figure::both("in", BY_DIRECTION.with("direction=\"in\""), |t| {
        Count(t.bytes_in)
    }),
    Figure::both("out", BY_DIRECTION.with("direction=\"out\""), |t| {
        Count(t.bytes_out)
    }),
];

/// Prometheus gets the histogram instead (`Sink::histogram`): quantiles
/// cannot be added up across replicas.
const LATENCY: &[Figure<Totals>] = &[
    Figure::json("p50", |t| Count(t.latency_us[0])),
    Figure::json("p90", |t| Count(t.latency_us[1])),
    Figure::json("p99", |t| Count(t.latency_us[2])),
];

const OUT_OF_DESCRIPTORS: Series = counter(
    "accept_out_of_descriptors_total",
    "accept failures for want of descriptors (EMFILE: the process's; ENFILE: the system's).",
);

const FILE_CACHE: &[Figure<CacheFigures>] = &[
    Figure::both(
        "max_bytes",
        gauge(
            "file_cache_max_bytes",
            "static.cache_max_bytes: the budget of the files kept in memory and those compressed.",
        ),
        |c| Count(c.max_bytes),
    ),
    Figure::both(
        "file_bytes",
        gauge(
            "file_cache_file_bytes",
            "Bytes of files the workers keep in memory.",
        ),
        |c| Count(c.file_bytes),
    ),
    Figure::both(
        "compressed_entries",
        gauge(
            "file_cache_compressed_entries",
            "File versions compressed (or being compressed) and kept.",
        ),
        |c| Count(c.compressed_entries),
    ),
    Figure::both(
        "compressed_bytes",
        gauge(
            "file_cache_compressed_bytes",
            "Bytes the compressed file versions are charged.",
        ),
        |c| Count(c.compressed_bytes),
    ),
    Figure::both(
        "compressions",
        counter(
            "file_cache_compressions_total",
            "File versions compressed (brotli and gzip each once).",
        ),
        |c| Count(c.compressions),
    ),
    Figure::both(
        "evictions",
        counter(
            "file_cache_evictions_total",
            "Compressed file versions evicted, least recently used first.",
        ),
        |c| Count(c.evictions),
    ),
];

const PRESSURE: &[Figure<PressureReport>] = &[
    Figure::both(
        "fd_limit",
        gauge("fd_limit", "The soft open-file limit."),
        |p| Count(p.fd_limit),
    ),
    Figure::json("fd_limit_at_start", |p| Count(p.fd_limit_at_start)),
    Figure::both(
        "max_connections",
        gauge("max_connections", "Connection slots."),
        |p| Count(p.max_connections),
    ),
    Figure::json("max_connections_auto", |p| Flag(p.max_connections_auto)),
    Figure::both(
        "evicted_idle",
        counter(
            "evicted_idle_total",
            "Idle keep-alive connections closed to admit new ones.",
        ),
        |p| Count(p.evicted_idle),
    ),
    Figure::both(
        "slots_exhausted",
        counter(
            "slots_exhausted_total",
            "New connections that found every slot taken.",
        ),
        |p| Count(p.slots_exhausted),
    ),
    Figure::both(
        "accept_emfile",
        OUT_OF_DESCRIPTORS.with("errno=\"EMFILE\""),
        |p| Count(p.accept_emfile),
    ),
    Figure::both(
        "accept_enfile",
        OUT_OF_DESCRIPTORS.with("errno=\"ENFILE\""),
        |p| Count(p.accept_enfile),
    ),
    Figure::json("overload", |p| Text(p.overload.into())),
    Figure::json("codel_target_us", |p| Count(p.codel_target_us)),
    Figure::json("codel_interval_us", |p| Count(p.codel_interval_us)),
    Figure::json("shed_codel", |p| {
        Count(p.workers.iter().map(|w| w.shed).sum())
    }),
];

const QUEUE_WAIT: &[Figure<QueueWaitReport>] = &[
    Figure::both(
        "wait_us",
        gauge(
            "queue_wait_seconds",
            "The last wait measured between queueing a connection and a handler taking it.",
        ),
        |w| Micros(w.wait_us),
    ),
    Figure::json("wait_avg_us", |w| Count(w.wait_avg_us)),
    Figure::both(
        "shedding",
        gauge(
            "queue_shedding",
            "1 while the worker sheds new connections (queue.overload = codel).",
        ),
        |w| Flag(w.shedding),
    ),
    Figure::both(
        "shed",
        counter(
            "shed_codel_total",
            "New connections answered 503 because the queue wait stayed above target.",
        ),
        |w| Count(w.shed),
    ),
];

const QUEUES: &[Figure<QueueReport>] = &[
    Figure::both(
        "depth",
        gauge(
            "queue_depth",
            "Connections waiting on each pending queue.",
        ),
        |q| Count(q.queue.depth),
    ),
    Figure::json("capacity", |q| Count(q.queue.capacity.unwrap_or(0))),
    Figure::both(
        "pushed",
        counter(
            "queue_pushed_total",
            "Connections pushed onto each pending queue.",
        ),
        |q| Count(q.queue.pushed),
    ),
    Figure::both(
        "popped",
        counter(
            "queue_popped_total",
            "Connections taken off each pending queue.",
        ),
        |q| Count(q.queue.popped),
    ),
    Figure::both(
        "recycled",
        counter(
            "queue_recycled_total",
            "Keep-alive connections recycled per queue.",
        ),
        |q| Count(q.recycled),
    ),
    Figure::both(
        "idle",
        gauge(
            "queue_idle",
            "Connections parked per worker until their next request (idle keep-alive ones, and new ones that have sent nothing).",
        ),
        |q| Count(q.idle),
    ),
];

const SCHEDULER: &[Figure<WorkerSnapshot>] = &[
    Figure::both(
        "spawned",
        counter("green_threads_spawned_total", "Green threads spawned."),
        |w| Count(w.spawned),
    ),
    Figure::both(
        "alive",
        gauge("green_threads_alive", "Green threads alive."),
        |w| Count(w.alive),
    ),
    Figure::json("completed", |w| Count(w.completed)),
    Figure::both(
        "panicked",
        counter(
            "green_threads_panicked_total",
            "Green threads that panicked.",
        ),
        |w| Count(w.panicked),
    ),
    Figure::both(
        "polls",
        counter("scheduler_polls_total", "Green thread polls."),
        |w| Count(w.polls),
    ),
    Figure::both(
        "parks",
        counter("scheduler_parks_total", "Polls that parked."),
        |w| Count(w.parks),
    ),
    Figure::both(
        "wakes_local",
        counter(
            "scheduler_wakes_local_total",
            "Wake-ups from the same worker.",
        ),
        |w| Count(w.wakes_local),
    ),
    Figure::both(
        "wakes_remote",
        counter(
            "scheduler_wakes_remote_total",
            "Wake-ups from other threads.",
        ),
        |w| Count(w.wakes_remote),
    ),
    Figure::both(
        "io_events",
        counter("scheduler_io_events_total", "Readiness events dispatched."),
        |w| Count(w.io_events),
    ),
    Figure::both(
        "timer_fires",
        counter("scheduler_timer_fires_total", "Timers fired."),
        |w| Count(w.timer_fires),
    ),
    Figure::json("injected_pending", |w| Count(w.injected_pending)),
];

const READINESS: &[Figure<State>] = &[
    Figure::json("state", |s| Text(s.name().into())),
    Figure::metric(
        gauge(
            "ready",
            "1 while /readyz answers 200 (accepting, not draining), else 0.",
        ),
        |s| Flag(*s == State::Ready),
    ),
];
