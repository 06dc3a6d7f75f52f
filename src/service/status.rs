//! `/status`: what the line is doing, as JSON or (`?format=prometheus`) in the
//! Prometheus text format. Each figure is described once, in the tables of
//! `figures.rs`; `render.rs` writes either format from them.

mod acme_figures;
mod figures;
mod render;
mod stage_figures;

pub use acme_figures::{AcmeReport, AcmeStatus};

use crate::http::Method;
use crate::metrics::Totals;
use crate::runtime::{QueueSnapshot, WorkerSnapshot};

use super::probes::State;
use super::sites::SitesReport;
use super::static_files::CacheFigures;
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
    /// The HTTP/2 connection stage (`"http2"`).
    pub http2: Http2Report,
    /// The configuration in use: generation, when loaded, from which file.
    pub config: ConfigReport,
    /// Connection pressure and admission (`"pressure"`).
    pub pressure: PressureReport,
    /// The static files' memory cache and compressions (`"file_cache"`);
    /// zero where the report was made without them.
    pub file_cache: CacheFigures,
    /// Requests per site (`"sites"`), when `[[sites]]` are set.
    pub sites: Option<SitesReport>,
    /// `[limits.per_client]`: clients limited (`"per_client"`).
    pub per_client: PerClientReport,
    /// The ACME manager (`"acme"`), when `acme.domains` are set.
    pub acme: Option<AcmeReport>,
}

/// The per-client limits, as `/status` shows them (the `"per_client"`
/// object).
#[derive(Clone, Copy, Debug, Default)]
pub struct PerClientReport {
    /// Requests answered 429: their client was over `rate` and `burst`.
    pub refused_requests: u64,
    /// Connections answered 503 at accept: their address held
    /// `connections` already.
    pub refused_connections: u64,
    /// Clients in the table now.
    pub clients: u64,
    /// Clients the table holds at most (0 until a limit is first on).
    pub capacity: u64,
    /// Clients forgotten to make room for new ones.
    pub evictions: u64,
    /// Clients let through uncounted: their part of the table was all
    /// clients with open connections.
    pub untracked: u64,
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
    /// Handshakes that agreed on `acme-tls/1`: a CA's tls-alpn-01
    /// validations, closed after the handshake.
    pub acme_validations: u64,
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

/// The HTTP/2 connection stage, as `/status` shows it (the `"http2"` object).
#[derive(Clone, Copy, Debug, Default)]
pub struct Http2Report {
    /// HTTP/2 connections open.
    pub connections: u64,
    /// Streams open: from their request to the end of their response.
    pub streams_open: u64,
    /// Of those, streams queued for the handler or in it, whose response
    /// head has not come back yet.
    pub streams_waiting: u64,
    /// Streams accepted since start.
    pub streams: u64,
    /// Connections sent GOAWAY (ENHANCE_YOUR_CALM) for resetting too many
    /// streams.
    pub calmed: u64,
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
    let report = ex.ctx.report();
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
    let mut json = render::Json::new();
    figures::walk(r, &mut json);
    json.finish()
}

/// The report in the Prometheus text exposition format, metrics prefixed `conveyor_`.
pub fn to_prometheus(r: &Report) -> String {
    let mut prometheus = render::Prometheus::new();
    figures::walk(r, &mut prometheus);
    prometheus.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::sites::{SiteFigures, TOP_LEVEL};

    /// A report in which every figure has its own value, so a figure read
    /// from the wrong field shows.
    fn sample(tls: bool) -> Report {
        let mut n = 0u64;
        let mut next = || {
            n += 1;
            n
        };
        let totals = sample_totals(&mut next);
        let queues = (0..2)
            .map(|_| QueueReport {
                queue: QueueSnapshot {
                    depth: next(),
                    capacity: Some(next()),
                    pushed: next(),
                    popped: next(),
                },
                recycled: next(),
                idle: next(),
            })
            .collect();
        let scheduler = (0..2)
            .map(|worker| WorkerSnapshot {
                worker,
                spawned: next(),
                completed: next(),
                panicked: next(),
                alive: next(),
                polls: next(),
                parks: next(),
                wakes_local: next(),
                wakes_remote: next(),
                io_events: next(),
                timer_fires: next(),
                injected_pending: next(),
            })
            .collect();
        let tls = tls.then(|| TlsReport {
            depth: next(),
            capacity: next(),
            completed: 3,
            resumed: 1,
            failed: next(),
            plain_http: next(),
            // Added later: fixed, so the numbers after it stay.
            acme_validations: 2,
        });
        let pressure = sample_pressure(&mut next);

        let mut report = Report {
            uptime_secs: 12.3456,
            workers: 2,
            stages: [
                ("acceptor", "blocking".into()),
                ("dispatcher", "round-robin".into()),
                ("handler", "spawn \"q\"".into()),
            ],
            totals,
            queues,
            scheduler,
            readiness: State::Draining,
            tls,
            http2: Http2Report::default(),
            config: ConfigReport {
                generation: next(),
                loaded_at_unix: 1_700_000_000,
                file: tls.is_some().then(|| "/etc/conveyor.toml".into()),
            },
            pressure,
            sites: None,
            acme: None,
            per_client: PerClientReport::default(),
            file_cache: CacheFigures {
                max_bytes: next(),
                file_bytes: next(),
                compressed_entries: next(),
                compressed_bytes: next(),
                compressions: next(),
                evictions: next(),
            },
        };
        // Added after the others (`"http2"`), numbered after them.
        report.http2 = Http2Report {
            connections: next(),
            streams_open: next(),
            streams_waiting: next(),
            streams: next(),
            calmed: next(),
        };
        // And `"per_client"` after that.
        report.per_client = PerClientReport {
            refused_requests: next(),
            refused_connections: next(),
            clients: next(),
            capacity: next(),
            evictions: next(),
            untracked: next(),
        };
        // `"sites"` only with `[[sites]]`: in the TLS sample.
        report.sites = tls.is_some().then(|| sample_sites(&mut next));
        // `"acme"` with `acme.domains`: in the TLS sample.
        report.acme = tls.is_some().then(|| sample_acme(&mut next));
        report
    }

    fn sample_acme(mut next: impl FnMut() -> u64) -> AcmeReport {
        AcmeReport {
            domains: vec!["example.com".into(), "www.example.com".into()],
            state: "error",
            orders: true,
            account: Some("https://ca.example/acct/1".into()),
            not_after_unix: Some(1_700_000_000),
            next_renewal_unix: Some(1_690_000_000),
            last_error: Some("the CA said \"no\"".into()),
            attempts: next(),
            failures: next(),
            issued: next(),
        }
    }

    fn sample_totals(mut next: impl FnMut() -> u64) -> Totals {
        Totals {
            accepted: next(),
            rejected: next(),
            open: next() as i64,
            reading: next() as i64,
            writing: next() as i64,
            idle: next() as i64,
            recycled: next(),
            requests: next(),
            status_classes: [next(), next(), next(), next(), next()],
            bytes_in: next(),
            bytes_out: next(),
            echo_cut_short: next(),
            latency_us: [next(), next(), next()],
            latency: crate::metrics::LatencyHistogram {
                below: std::array::from_fn(|i| 100 + 10 * i as u64),
                count: 500,
                sum_ns: 1_234_567_890,
            },
        }
    }

    fn sample_sites(mut next: impl FnMut() -> u64) -> SitesReport {
        SitesReport {
            misdirected: next(),
            unknown_refused: next(),
            sites: [TOP_LEVEL, "a.example"]
                .into_iter()
                .map(|name| SiteFigures {
                    name: name.to_string(),
                    requests: next(),
                })
                .collect(),
        }
    }

    fn sample_pressure(mut next: impl FnMut() -> u64) -> PressureReport {
        PressureReport {
            fd_limit: next(),
            fd_limit_at_start: next(),
            max_connections: next(),
            max_connections_auto: true,
            evicted_idle: next(),
            slots_exhausted: next(),
            accept_emfile: next(),
            accept_enfile: next(),
            overload: "codel",
            codel_target_us: next(),
            codel_interval_us: next(),
            workers: (0..2)
                .map(|w| QueueWaitReport {
                    wait_us: next(),
                    wait_avg_us: next(),
                    shedding: w == 1,
                    shed: next(),
                })
                .collect(),
        }
    }

    /// What `to_json` wrote for `sample` before the figures became one
    /// table (`file_cache` and `http2` came later): the dashboard and
    /// `conveyor bench --server-status` read it.
    const JSON_WITHOUT_TLS: &str = r#"{"version":"VERSION","uptime_secs":12.346,"workers":2,"stages":{"acceptor":"blocking","dispatcher":"round-robin","handler":"spawn \"q\""},"config":{"generation":69,"loaded_at":"Tue, 14 Nov 2023 22:13:20 GMT","loaded_at_unix":1700000000,"file":null},"connections":{"accepted":1,"open":3,"reading":4,"writing":5,"idle_keepalive":6,"rejected":2,"recycled":7},"requests":{"total":8,"1xx":9,"2xx":10,"3xx":11,"4xx":12,"5xx":13,"echo_cut_short":16},"bytes":{"in":14,"out":15},"latency_us":{"p50":17,"p90":18,"p99":19},"pressure":{"fd_limit":54,"fd_limit_at_start":55,"max_connections":56,"max_connections_auto":true,"evicted_idle":57,"slots_exhausted":58,"accept_emfile":59,"accept_enfile":60,"overload":"codel","codel_target_us":61,"codel_interval_us":62,"shed_codel":133,"queue_wait":[{"worker":0,"wait_us":63,"wait_avg_us":64,"shedding":false,"shed":65},{"worker":1,"wait_us":66,"wait_avg_us":67,"shedding":true,"shed":68}]},"queues":[{"worker":0,"depth":20,"capacity":21,"pushed":22,"popped":23,"recycled":24,"idle":25},{"worker":1,"depth":26,"capacity":27,"pushed":28,"popped":29,"recycled":30,"idle":31}],"scheduler":[{"worker":0,"spawned":32,"alive":35,"completed":33,"panicked":34,"polls":36,"parks":37,"wakes_local":38,"wakes_remote":39,"io_events":40,"timer_fires":41,"injected_pending":42},{"worker":1,"spawned":43,"alive":46,"completed":44,"panicked":45,"polls":47,"parks":48,"wakes_local":49,"wakes_remote":50,"io_events":51,"timer_fires":52,"injected_pending":53}],"readiness":{"state":"draining"},"http2":{"connections":76,"streams_open":77,"streams_waiting":78,"streams":79,"calmed":80},"file_cache":{"max_bytes":70,"file_bytes":71,"compressed_entries":72,"compressed_bytes":73,"compressions":74,"evictions":75},"per_client":{"refused_requests":81,"refused_connections":82,"clients":83,"capacity":84,"evictions":85,"untracked":86}}"#;
    const JSON_WITH_TLS: &str = r#"{"version":"VERSION","uptime_secs":12.346,"workers":2,"stages":{"acceptor":"blocking","dispatcher":"round-robin","handler":"spawn \"q\""},"config":{"generation":73,"loaded_at":"Tue, 14 Nov 2023 22:13:20 GMT","loaded_at_unix":1700000000,"file":"/etc/conveyor.toml"},"connections":{"accepted":1,"open":3,"reading":4,"writing":5,"idle_keepalive":6,"rejected":2,"recycled":7},"requests":{"total":8,"1xx":9,"2xx":10,"3xx":11,"4xx":12,"5xx":13,"echo_cut_short":16},"bytes":{"in":14,"out":15},"latency_us":{"p50":17,"p90":18,"p99":19},"pressure":{"fd_limit":58,"fd_limit_at_start":59,"max_connections":60,"max_connections_auto":true,"evicted_idle":61,"slots_exhausted":62,"accept_emfile":63,"accept_enfile":64,"overload":"codel","codel_target_us":65,"codel_interval_us":66,"shed_codel":141,"queue_wait":[{"worker":0,"wait_us":67,"wait_avg_us":68,"shedding":false,"shed":69},{"worker":1,"wait_us":70,"wait_avg_us":71,"shedding":true,"shed":72}]},"queues":[{"worker":0,"depth":20,"capacity":21,"pushed":22,"popped":23,"recycled":24,"idle":25},{"worker":1,"depth":26,"capacity":27,"pushed":28,"popped":29,"recycled":30,"idle":31}],"scheduler":[{"worker":0,"spawned":32,"alive":35,"completed":33,"panicked":34,"polls":36,"parks":37,"wakes_local":38,"wakes_remote":39,"io_events":40,"timer_fires":41,"injected_pending":42},{"worker":1,"spawned":43,"alive":46,"completed":44,"panicked":45,"polls":47,"parks":48,"wakes_local":49,"wakes_remote":50,"io_events":51,"timer_fires":52,"injected_pending":53}],"readiness":{"state":"draining"},"tls":{"handshake_queue_depth":54,"handshake_queue_capacity":55,"handshakes_completed":3,"handshakes_failed":56,"handshakes_resumed":1,"resumption_ratio":0.3333,"plain_http_refused":57,"acme_validations":2},"acme":{"domains":"example.com www.example.com","state":"error","orders":true,"account":"https://ca.example/acct/1","not_after":"Tue, 14 Nov 2023 22:13:20 GMT","not_after_unix":1700000000,"next_renewal":"Sat, 22 Jul 2023 04:26:40 GMT","next_renewal_unix":1690000000,"last_error":"the CA said \"no\"","attempts":95,"failures":96,"issued":97},"http2":{"connections":80,"streams_open":81,"streams_waiting":82,"streams":83,"calmed":84},"file_cache":{"max_bytes":74,"file_bytes":75,"compressed_entries":76,"compressed_bytes":77,"compressions":78,"evictions":79},"per_client":{"refused_requests":85,"refused_connections":86,"clients":87,"capacity":88,"evictions":89,"untracked":90},"sites":{"misdirected":91,"unknown_refused":92,"by_site":{"(default)":{"requests":93},"a.example":{"requests":94}}}}"#;

    #[test]
    fn the_json_is_what_it_was() {
        let version = env!("CARGO_PKG_VERSION");
        for (tls, expected) in [(false, JSON_WITHOUT_TLS), (true, JSON_WITH_TLS)] {
            assert_eq!(
                to_json(&sample(tls)),
                expected.replace("VERSION", version),
                "tls {tls}"
            );
        }
    }

    /// Records each Prometheus family's type and help as the walk names it.
    #[derive(Default)]
    struct Families(Vec<(&'static str, render::Kind, &'static str)>);

    impl render::Sink for Families {
        fn open(&mut self, _: &str, _: bool) {}
        fn close(&mut self, _: bool) {}
        fn element(&mut self, _: Option<usize>) {}
        fn figure(
            &mut self,
            _: Option<&str>,
            series: Option<&render::Series>,
            _: &str,
            _: &render::Value,
        ) {
            if let Some(s) = series {
                self.0.push((s.name, s.kind, s.help));
            }
        }
        fn histogram(&mut self, _: &crate::metrics::LatencyHistogram) {}
    }

    #[test]
    fn a_family_has_one_type_and_one_help() {
        let mut families = Families::default();
        figures::walk(&sample(true), &mut families);
        for (name, kind, help) in &families.0 {
            assert!(!help.is_empty(), "{name}: no help");
            let counter = *kind == render::Kind::Counter;
            assert_eq!(counter, name.ends_with("_total"), "{name}: {kind:?}");
            for (other, other_kind, other_help) in &families.0 {
                if other == name {
                    assert_eq!((kind, help), (other_kind, other_help), "{name}");
                }
            }
        }
    }

    #[test]
    fn every_sample_follows_its_type_and_the_histogram_is_cumulative() {
        let text = to_prometheus(&sample(true));
        let mut typed: Option<(&str, &str)> = None;
        let mut buckets = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                typed = rest.split_once(' ');
                continue;
            }
            if line.starts_with("# HELP ") {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("a sample");
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("{line}"));
            let name = series.split('{').next().expect("a name");
            let (family, kind) = typed.unwrap_or_else(|| panic!("untyped {line}"));
            let suffix = name
                .strip_prefix(family)
                .unwrap_or_else(|| panic!("{line}"));
            match kind {
                "histogram" => assert!(["_bucket", "_sum", "_count"].contains(&suffix), "{line}"),
                _ => assert_eq!(suffix, "", "{line}"),
            }
            if let Some(le) = series.strip_prefix("conveyor_request_duration_seconds_bucket{le=\"")
            {
                buckets.push((le.trim_end_matches("\"}").to_string(), value));
            }
        }
        assert_eq!(buckets.len(), crate::metrics::EXPORTED_BOUNDS_US.len() + 1);
        assert_eq!(buckets[0], ("0.000016".to_string(), 100.0));
        assert_eq!(buckets[20].0, "16.777216");
        assert_eq!(buckets[21], ("+Inf".to_string(), 500.0));
        assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "{buckets:?}");
        assert!(text.contains("\nconveyor_request_duration_seconds_count 500\n"));
        assert!(text.contains("\nconveyor_request_duration_seconds_sum 1.234567890\n"));
        assert!(text.contains("\nconveyor_queue_wait_seconds{worker=\"1\"} 0.000070\n"));
    }
}
