//! What the line reports to `/status`: the service sees only the report,
//! never the line.

use crate::metrics::Totals;
use crate::runtime;
use crate::service::status::{
    ConfigReport, PressureReport, QueueReport, QueueWaitReport, Report, StatusSource,
};

use super::Line;

impl StatusSource for Line {
    fn report(&self) -> Report {
        let names = &self.stage_names;
        let queues: Vec<QueueReport> = self
            .pending
            .iter()
            .enumerate()
            .map(|(worker, q)| {
                let s = q.snapshot(self.metrics.worker(worker));
                QueueReport {
                    queue: s.queue,
                    recycled: s.recycled,
                    idle: s.idle,
                }
            })
            .collect();
        Report {
            uptime_secs: self.started.elapsed().as_secs_f64(),
            workers: self.pending.len(),
            stages: [
                ("acceptor", names.acceptor.clone()),
                ("dispatcher", names.dispatcher.clone()),
                ("handler", names.handler.clone()),
            ],
            totals: Totals {
                idle: queues.iter().map(|q| q.idle as i64).sum(),
                ..self.metrics.totals()
            },
            queues,
            scheduler: runtime::try_handle().map(|h| h.stats()).unwrap_or_default(),
            readiness: self.readiness.state(),
            tls: self.tls.get().map(|stage| stage.snapshot()),
            http2: self.http2.snapshot(),
            config: {
                let (loaded, file) = self.config.origin();
                ConfigReport {
                    generation: self.config.generation(),
                    loaded_at_unix: loaded
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs()),
                    file: file.map(|f| f.display().to_string()),
                }
            },
            pressure: self.pressure_report(),
            // Filled in by the service that holds the files.
            file_cache: Default::default(),
            per_client: self.pressure.per_client.counts(),
            sites: None,
            acme: self.acme.get(),
        }
    }
}

impl Line {
    fn pressure_report(&self) -> PressureReport {
        let p = &self.pressure;
        let counts = p.counts();
        let config = self.config.load();
        let limit = crate::runtime::sys::limits::fd_limit().map_or(p.budget.limit, |l| l.soft);
        PressureReport {
            fd_limit: limit,
            fd_limit_at_start: p.budget.limit_before,
            max_connections: p.budget.max_connections as u64,
            max_connections_auto: p.budget.automatic,
            evicted_idle: counts.evicted_idle,
            slots_exhausted: counts.slots_exhausted,
            accept_emfile: counts.accept_emfile,
            accept_enfile: counts.accept_enfile,
            overload: config.queue.overload.name(),
            codel_target_us: micros(config.queue.codel_target),
            codel_interval_us: micros(config.queue.codel_interval),
            workers: p
                .admission
                .snapshot(&config)
                .into_iter()
                .map(|w| QueueWaitReport {
                    wait_us: w.wait_us,
                    wait_avg_us: w.wait_avg_us,
                    shedding: w.shedding,
                    shed: w.shed,
                })
                .collect(),
        }
    }
}

fn micros(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
