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

/// Figures that describe the run rather than measure it.
fn is_setting(figure: &str) -> bool {
    figure.starts_with("options.") || figure.starts_with("fd_limit.")
}

/// Every number in both reports (outside arrays and the options), in
/// the order of `now`'s keys.
pub(crate) fn compare(baseline: &Baseline, now: &ReportJson) -> Vec<FigureChange> {
    // A derived Serialize of plain structs and maps cannot fail.
    let value = |report| serde_json::to_value(report).unwrap_or(Value::Null);
    changes(&value(&baseline.report), &value(now))
}

fn changes(before: &Value, now: &Value) -> Vec<FigureChange> {
    let before = numbers(before);
    numbers(now)
        .into_iter()
        .filter(|(figure, _)| !is_setting(figure))
        .filter_map(|(figure, now)| {
            let before = *before.get(&figure)?;
            Some(FigureChange {
                figure,
                before,
                now,
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
pub(crate) fn table(file: &Path, changes: &[FigureChange]) -> String {
    let mut out = format!(
        "\nchange against {}:\n\n| figure | baseline | now | change |\n|---|---:|---:|---:|\n",
        file.display()
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

/// The changes as they go into the `--json` report.
pub(crate) fn json(file: &Path, changes: &[FigureChange]) -> BaselineJson {
    let change = |c: &FigureChange| ChangeJson {
        before: c.before,
        now: c.now,
        change_pct: c.pct().map(|p| round(p, 3)),
    };
    BaselineJson {
        file: file.display().to_string(),
        changes: changes
            .iter()
            .map(|c| (c.figure.clone(), change(c)))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_figures_both_runs_have() {
        let before = serde_json::json!({"options":{"connections":8},"requests_per_sec":100,
            "errors":0,"latency_us":{"p99":200,"p50":100},"series":[{"t":1}]});
        let now = serde_json::json!({"options":{"connections":16},"requests_per_sec":150,
            "errors":0,"latency_us":{"p99":100,"p99_9":300},"series":[{"t":1}]});
        let changes = changes(&before, &now);
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
        let file = Path::new("old.json");
        assert!(table(file, &changes).contains("| requests_per_sec | 100 | 150 | +50.0 % |"));
        let json = serde_json::to_string(&json(file, &changes)).expect("serializes");
        assert!(
            json.contains(
                "\"latency_us.p99\":{\"before\":200.0,\"now\":100.0,\"change_pct\":-50.0}"
            ),
            "{json}"
        );
    }
}
