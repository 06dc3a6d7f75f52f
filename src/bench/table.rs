//! The finished run for people (Markdown tables) and for programs (JSON),
//! and the exit status.

use std::fmt::Write as _;

use super::args::BenchOptions;
use super::report::{BenchReport, QUANTILES};
use super::schema::ReportJson;
use super::{baseline, check, hdr, server_status};

impl BenchReport {
    /// A row per latency quantile, the uncorrected figure beside each with
    /// `--rate`.
    fn latency_rows(&self, out: &mut String) {
        let quantiles = QUANTILES
            .iter()
            .map(|&(q, _, label)| (q, label))
            .chain([(1.0, "max")]);
        for (q, label) in quantiles {
            match &self.uncorrected {
                Some(h) => {
                    let raw = if q >= 1.0 {
                        h.max()
                    } else {
                        h.value_at_quantile(q)
                    };
                    let _ = writeln!(
                        out,
                        "| latency {label} | {} µs (uncorrected {raw} µs) |",
                        self.latency_us(q)
                    );
                }
                None => {
                    let _ = writeln!(out, "| latency {label} | {} µs |", self.latency_us(q));
                }
            }
        }
    }
    /// The result as a Markdown table, headed by what was run.
    pub(crate) fn table(&self, options: &BenchOptions) -> String {
        let mode = if options.h2 {
            format!(
                "{}, {} stream{} per connection",
                options.protocol(),
                options.streams,
                if options.streams == 1 { "" } else { "s" }
            )
        } else if options.close {
            "close".to_string()
        } else if options.pipeline > 1 {
            format!("keep-alive, pipelined x{}", options.pipeline)
        } else {
            "keep-alive".to_string()
        };
        let errors = if self.failed() == 0 {
            "0".to_string()
        } else {
            format!(
                "{} ({:.2} %): {}",
                self.failed(),
                self.error_pct(),
                self.error_summary()
            )
        };
        let mode = match options.rate {
            Some(rate) => format!("{mode}, open loop at {rate} req/s"),
            None => mode,
        };
        let mut out = format!(
            "| metric | value |\n|---|---|\n\
             | target | {} ({mode}, {} connections) |\n\
             | duration | {:.2} s |\n| requests | {} ({} 2xx) |\n| requests/s | {:.0} |\n\
             | bytes/s | {:.1} MB/s |\n",
            options.url(),
            options.connections,
            self.elapsed.as_secs_f64(),
            self.requests,
            self.succeeded(),
            self.requests_per_sec(),
            self.bytes_per_sec() / 1e6,
        );
        if !self.warmup.is_zero() {
            let _ = writeln!(
                out,
                "| warm-up | {:.2} s, discarded |",
                self.warmup.as_secs_f64()
            );
        }
        if let Some(rate) = &self.rate {
            let _ = writeln!(
                out,
                "| rate | target {} req/s, achieved {:.0} req/s; {} sent, {} late ({:.2} %) |",
                rate.target,
                self.requests_per_sec(),
                rate.sent,
                rate.late,
                rate.late as f64 * 100.0 / rate.sent.max(1) as f64
            );
        }
        self.latency_rows(&mut out);
        let _ = writeln!(out, "| errors | {errors} |");
        if self.failed() > 0 {
            let places = self
                .error_places()
                .labelled()
                .iter()
                .map(|(label, n)| format!("{label} {n}"))
                .collect::<Vec<_>>()
                .join(", ");
            let _ = writeln!(out, "| errors by where | {places} |");
        }
        let _ = writeln!(
            out,
            "| connections opened | {} |\n| requests per connection | {:.1} |",
            self.connections.explain(),
            self.requests_per_connection()
        );
        let _ = writeln!(
            out,
            "| client CPU | busiest thread {:.0} % of a core ({} threads) |",
            self.busiest_client_thread() * 100.0,
            self.client_cpu.len()
        );
        if let Some(note) = self.fd_limit.and_then(|n| n.describe(options.connections)) {
            let _ = writeln!(out, "| fd limit | {note} |");
        }
        out
    }
}

/// Prints the finished run — JSON or tables, the `--baseline` changes,
/// the failures, `--check` outcomes and warnings — writes `--hdr-out`, and
/// returns the exit status: 0 success, 1 a failed run (or `--hdr-out` not
/// written), 3 a failed `--check` threshold.
pub(crate) fn finish(report: &BenchReport, options: &BenchOptions) -> u8 {
    let mut failures = report.failures(options);
    if let Some(file) = &options.hdr_out {
        if let Err(e) = std::fs::write(file, hdr::percentile_distribution(&report.latency)) {
            failures.push(format!("cannot write --hdr-out {}: {e}", file.display()));
        }
    }
    let outcomes = check::evaluate(&options.checks, &report.figures());
    if options.json {
        println!("{}", json(report, options));
    } else {
        print_tables(report, options);
    }
    if let Some(warning) = report.client_bound_warning() {
        eprintln!("conveyor bench: warning: {warning}");
    }
    if let Some(old) = &options.baseline {
        let durations = baseline::compare(old, &ReportJson::of(report, options)).durations;
        if durations.differ() {
            eprintln!(
                "conveyor bench: note: this run measured {:.2} s, the baseline {:.2} s; \
                 totals are compared per second",
                durations.now, durations.before
            );
        }
    }
    for outcome in &outcomes {
        eprintln!("conveyor bench: check {outcome}");
    }
    // A failed run must not look like a result: say why, exit 1.
    for failure in &failures {
        eprintln!("conveyor bench: FAILED: {failure}");
    }
    if !failures.is_empty() {
        1
    } else if outcomes.iter().any(|o| !o.ok) {
        3
    } else {
        0
    }
}

/// The `--json` report, with the `--baseline` changes when asked for.
fn json(report: &BenchReport, options: &BenchOptions) -> String {
    let mut json = ReportJson::of(report, options);
    if let Some(old) = &options.baseline {
        let changes = baseline::compare(old, &json);
        json.baseline = Some(baseline::json(&old.file, &changes));
    }
    // A derived Serialize of plain structs and maps cannot fail.
    serde_json::to_string(&json).unwrap_or_default()
}

/// The report for people: the run, the server's samples, the changes.
fn print_tables(report: &BenchReport, options: &BenchOptions) {
    print!("{}", report.table(options));
    if options.server_status {
        print!(
            "{}",
            server_status::table(&report.server, |t| {
                // The client's p99 in the second that ended at `t`.
                let index = (t.round() as usize).checked_sub(1)?;
                report.series.seconds.get(index).map(|s| s.latency_us(0.99))
            })
        );
    }
    if let Some(old) = &options.baseline {
        let changes = baseline::compare(old, &ReportJson::of(report, options));
        print!("{}", baseline::table(&old.file, &changes));
    }
}
