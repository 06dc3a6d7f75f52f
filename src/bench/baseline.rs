//! `--baseline old.json`: every figure of this run beside the same figure
//! of an earlier `--json` run, with the change in percent.

use std::fmt::Write as _;

use super::json::{self, Value};
use crate::http::json::json_string;

/// An earlier run's figures, read from its `--json` output.
#[derive(Clone, Debug, PartialEq)]
pub struct Baseline {
    /// The file it was read from, for the heading.
    pub file: String,
    /// Its report, parsed.
    pub report: Value,
}

/// One figure in both runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// Dotted path, e.g. `latency_us.p99`.
    pub figure: String,
    /// The earlier value.
    pub before: f64,
    /// This run's value.
    pub now: f64,
}

impl Change {
    /// The change in percent of `before` (`None` when `before` is 0).
    pub fn pct(&self) -> Option<f64> {
        (self.before != 0.0).then(|| (self.now - self.before) * 100.0 / self.before)
    }
}

/// Reads `file`, which must hold a `conveyor bench --json` report.
pub fn load(file: &str) -> Result<Baseline, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("--baseline {file}: cannot read it: {e}"))?;
    let report = json::parse(text.trim()).map_err(|e| {
        format!("--baseline {file}: not JSON ({e}); give it the output of conveyor bench --json")
    })?;
    if report.get("requests_per_sec").is_none() {
        return Err(format!(
            "--baseline {file}: not a conveyor bench --json report (no requests_per_sec)"
        ));
    }
    Ok(Baseline {
        file: file.to_string(),
        report,
    })
}

/// Figures that describe the run rather than measure it.
fn is_setting(figure: &str) -> bool {
    figure.starts_with("options.") || figure.starts_with("fd_limit.")
}

/// Every number in both reports (outside arrays and the options), in
/// the order of `now`'s keys.
pub fn compare(baseline: &Baseline, now: &Value) -> Vec<Change> {
    let before = baseline.report.numbers();
    now.numbers()
        .into_iter()
        .filter(|(figure, _)| !is_setting(figure))
        .filter_map(|(figure, now)| {
            let before = *before.get(&figure)?;
            Some(Change {
                figure,
                before,
                now,
            })
        })
        .collect()
}

fn pct_text(change: &Change) -> String {
    match change.pct() {
        Some(p) => format!("{p:+.1} %"),
        None if change.now == 0.0 => "=".into(),
        None => "new".into(),
    }
}

/// The changes as a Markdown table.
pub fn table(baseline: &Baseline, changes: &[Change]) -> String {
    let mut out = format!(
        "\nchange against {}:\n\n| figure | baseline | now | change |\n|---|---:|---:|---:|\n",
        baseline.file
    );
    for c in changes {
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

/// The changes as a JSON object: `{"file":…,"changes":{figure:{…}}}`.
pub fn json(baseline: &Baseline, changes: &[Change]) -> String {
    let mut out = format!("{{\"file\":{},\"changes\":{{", json_string(&baseline.file));
    for (i, c) in changes.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        let _ = write!(
            out,
            "{sep}{}:{{\"before\":{},\"now\":{},\"change_pct\":{}}}",
            json_string(&c.figure),
            c.before,
            c.now,
            c.pct()
                .map_or_else(|| "null".to_string(), |p| format!("{p:.3}"))
        );
    }
    out.push_str("}}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_figures_both_runs_have() {
        let baseline = Baseline {
            file: "old.json".into(),
            report: json::parse(
                r#"{"options":{"connections":8},"requests_per_sec":100,"errors":0,
                    "latency_us":{"p99":200,"p50":100},"series":[{"t":1}]}"#,
            )
            .expect("parses"),
        };
        let now = json::parse(
            r#"{"options":{"connections":16},"requests_per_sec":150,"errors":0,
                "latency_us":{"p99":100,"p99_9":300},"series":[{"t":1}]}"#,
        )
        .expect("parses");
        let changes = compare(&baseline, &now);
        let got: Vec<_> = changes
            .iter()
            .map(|c| (c.figure.as_str(), pct_text(c)))
            .collect();
        assert_eq!(
            got,
            vec![
                ("errors", "=".to_string()),
                ("latency_us.p99", "-50.0 %".to_string()),
                ("requests_per_sec", "+50.0 %".to_string()),
            ]
        );
        assert!(table(&baseline, &changes).contains("| requests_per_sec | 100 | 150 | +50.0 % |"));
        assert!(json(&baseline, &changes)
            .contains("\"latency_us.p99\":{\"before\":200,\"now\":100,\"change_pct\":-50.000}"));
    }
}
