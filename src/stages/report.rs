//! What the line reports to `/status`: the service sees only the report,
//! never the line.

use crate::metrics::Totals;
use crate::runtime;
use crate::service::status::{ConfigReport, QueueReport, Report, StatusSource, TlsReport};

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
            tls: self.tls.get().map(|stage| {
                let h = stage.snapshot();
                TlsReport {
                    depth: h.depth,
                    capacity: h.capacity,
                    completed: h.completed,
                    resumed: h.resumed,
                    failed: h.failed,
                    plain_http: h.plain_http,
                }
            }),
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
        }
    }
}
