//! `--baseline old.json`: every figure of this run beside the same figure
//! of an earlier `--json` run, with the change in percent.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

use serde::Deserialize;

use super::schema::{round, BaselineJson, ChangeJson, ReportJson};

/// An earlier run's figures, read from its `--json` output.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Baseline {
    /// The file it was read from, for the heading.
    pub(crate) file: PathBuf,
    /// Its report.
    pub(crate) report: ReportJson,
}

/// One figure in both runs.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct FigureChange {
    /// Dotted path, e.g. `latency_us.p99`.
    pub(crate) figure: String,
    /// The earlier value.
    pub(crate) before: f64,
    /// This run's value.
    pub(crate) now: f64,
}

impl FigureChange {
    /// The change in percent of `before` (`None` when `before` is 0).
    pub(crate) fn pct(&self) -> Option<f64> {
        (self.before != 0.0).then(|| (self.now - self.before) * 100.0 / self.before)
    }
}

/// Reads `file`, which must hold a `conveyor bench --json` report.
pub(crate) fn load(file: &Path) -> Result<Baseline, String> {
    let name = file.display();
    let text =
        std::fs::read(file).map_err(|e| format!("--baseline {name}: cannot read it: {e}"))?;
    let value: Value = serde_json::from_slice(&text).map_err(|e| {
        format!("--baseline {name}: not JSON ({e}); give it the output of conveyor bench --json")
    })?;
    let mut report = ReportJson::deserialize(value)
        .map_err(|e| format!("--baseline {name}: not a conveyor bench --json report ({e})"))?;
    // Its own comparison is not a figure of that run.
    report.baseline = None;
    Ok(Baseline {
        file: file.to_path_buf(),
        report,
    })
}

/// Every number reachable through objects (not arrays), by dotted path.
fn numbers(value: &Value) -> BTreeMap<String, f64> {
    fn walk(v: &Value, prefix: &str, out: &mut BTreeMap<String, f64>) {
        match v {
            Value::Number(n) => {
                if let Some(n) = n.as_f64() {
                    out.insert(prefix.to_string(), n);
                }
            }
            Value::Object(members) => {
                for (k, v) in members {
                    let path = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(v, &path, out);
                }
            }
            _ => {}
        }
    }
    let mut out = BTreeMap::new();
    walk(value, "", &mut out);
    out
}

/// Figures that describe the run rather than measure it (the duration is
/// in the comparison's heading instead).
fn is_setting(figure: &str) -> bool {
    figure.starts_with("options.") || figure.starts_with("fd_limit.") || figure == "duration_secs"
}

/// Figures that are totals over the run, so grow with its length: they are
/// compared per second of each run (as `FIGURE/s`), never as totals.
fn is_total(figure: &str) -> bool {
    const TOTALS: [&str; 12] = [
        "requests",
        "succeeded",
        "non_2xx",
        "errors",
        "connections_opened",
        "connections.opened",
        "connections.reconnects",
        "connections.reopened_server_closed",
        "connections.reopened_close",
        "connections.reopened_after_error",
        "rate.sent",
        "rate.late",
    ];
    ["statuses.", "errors_by_class.", "error_places."]
        .iter()
        .any(|prefix| figure.starts_with(prefix))
        || TOTALS.contains(&figure)
}

/// Two runs' lengths, in measured seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Durations {
    /// The baseline's `duration_secs`.
    pub(crate) before: f64,
    /// This run's.
    pub(crate) now: f64,
}

impl Durations {
    /// Whether the runs lasted noticeably different times (more than 2 %
    /// apart: two `-d 2s` runs differ by milliseconds).
    pub(crate) fn differ(&self) -> bool {
        (self.before - self.now).abs() > 0.02 * self.before.max(self.now)
    }

    /// The heading's note on the durations.
    fn note(&self) -> String {
        if self.differ() {
            format!(
                "the runs lasted different times ({:.2} s in the baseline, {:.2} s now): \
                 totals are compared per second (FIGURE/s), never as totals",
                self.before, self.now
            )
        } else {
            format!(
                "both runs lasted {:.2} s; totals are compared per second (FIGURE/s)",
                self.now
            )
        }
    }
}

/// What `--baseline` found: the two durations and every figure's change.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Comparison {
    /// How long each run measured.
    pub(crate) durations: Durations,
    /// Every figure both runs have, totals as rates.
    pub(crate) changes: Vec<FigureChange>,
}

/// Every number in both reports (outside arrays and the options), in
/// the order of `now`'s keys; totals per second of each run.
pub(crate) fn compare(baseline: &Baseline, now: &ReportJson) -> Comparison {
    // A derived Serialize of plain structs and maps cannot fail.
    let value = |report| serde_json::to_value(report).unwrap_or(Value::Null);
    let durations = Durations {
        before: baseline.report.duration_secs,
        now: now.duration_secs,
    };
    Comparison {
        durations,
        changes: changes(&value(&baseline.report), &value(now), durations),
    }
}

fn changes(before: &Value, now: &Value, durations: Durations) -> Vec<FigureChange> {
    let before = numbers(before);
    numbers(now)
        .into_iter()
        .filter(|(figure, _)| !is_setting(figure))
        .filter_map(|(figure, now)| {
            let before = *before.get(&figure)?;
            if !is_total(&figure) {
                return Some(FigureChange {
                    figure,
                    before,
                    now,
                });
            }
            // A run that measured no time has no rate to compare.
            (durations.before > 0.0 && durations.now > 0.0).then(|| FigureChange {
                figure: format!("{figure}/s"),
                before: round(before / durations.before, 1),
                now: round(now / durations.now, 1),
            })
        })
        .collect()
}

fn pct_text(change: &FigureChange) -> String {
    match change.pct() {
        Some(p) => format!("{p:+.1} %"),
        None if change.now == 0.0 => "=".into(),
        None => "new".into(),
    }
}

/// The changes as a Markdown table.
pub(crate) fn table(file: &Path, comparison: &Comparison) -> String {
    let mut out = format!(
        "\nchange against {} ({}):\n\n| figure | baseline | now | change |\n|---|---:|---:|---:|\n",
        file.display(),
        comparison.durations.note()
    );
    for c in &comparison.changes {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            c.figure,
            c.before,
            c.now,
            pct_text(c)
        );
    }
    out
}

/// The changes as they go into the `--json` report.
pub(crate) fn json(file: &Path, comparison: &Comparison) -> BaselineJson {
    let change = |c: &FigureChange| ChangeJson {
        before: c.before,
        now: c.now,
        change_pct: c.pct().map(|p| round(p, 3)),
    };
    let d = comparison.durations;
    BaselineJson {
        file: file.display().to_string(),
        duration_secs: Some(ChangeJson {
            before: d.before,
            now: d.now,
            change_pct: (d.before != 0.0).then(|| round((d.now - d.before) * 100.0 / d.before, 3)),
        }),
        durations_differ: Some(d.differ()),
        changes: comparison
            .changes
            .iter()
            .map(|c| (c.figure.clone(), change(c)))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_figures_both_runs_have_and_totals_per_second() {
        let before = serde_json::json!({"options":{"connections":8},"requests_per_sec":100,
            "duration_secs":2.0,"requests":200,"statuses":{"404":20},
            "errors":0,"latency_us":{"p99":200,"p50":100},"series":[{"t":1}]});
        let now = serde_json::json!({"options":{"connections":16},"requests_per_sec":150,
            "duration_secs":4.0,"requests":600,"statuses":{"404":20},
            "errors":0,"latency_us":{"p99":100,"p99_9":300},"series":[{"t":1}]});
        let durations = Durations {
            before: 2.0,
            now: 4.0,
        };
        let comparison = Comparison {
            durations,
            changes: changes(&before, &now, durations),
        };
        let got: Vec<_> = comparison
            .changes
            .iter()
            .map(|c| (c.figure.as_str(), pct_text(c)))
            .collect();
        // Twice the requests in twice the time is 1.5 times the rate; the
        // same 20 404s in twice the time, half as many per second.
        assert_eq!(
            got,
            vec![
                ("errors/s", "=".to_string()),
                ("latency_us.p99", "-50.0 %".to_string()),
                ("requests/s", "+50.0 %".to_string()),
                ("requests_per_sec", "+50.0 %".to_string()),
                ("statuses.404/s", "-50.0 %".to_string()),
            ]
        );
        let file = Path::new("old.json");
        let text = table(file, &comparison);
        assert!(
            text.contains("| requests/s | 100 | 150 | +50.0 % |"),
            "{text}"
        );
        assert!(
            text.contains("different times (2.00 s in the baseline, 4.00 s now)"),
            "{text}"
        );
        let json = serde_json::to_string(&json(file, &comparison)).expect("serializes");
        assert!(
            json.contains(
                "\"latency_us.p99\":{\"before\":200.0,\"now\":100.0,\"change_pct\":-50.0}"
            ) && json.contains("\"durations_differ\":true"),
            "{json}"
        );
        // Runs of the same length within 2 % are not said to differ.
        assert!(!Durations {
            before: 2.0,
            now: 2.03
        }
        .differ());
    }
}
