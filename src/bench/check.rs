//! `--check 'p99<2ms,errors=0,rps>50000'`: thresholds a run must meet, for
//! CI (k6's thresholds). A failed one makes the exit status 3.

use std::fmt;

/// A figure a threshold can name.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Metric {
    /// A latency quantile (0.5 for `p50`, …; 1.0 for `max`), in µs; with
    /// `--rate` the corrected latency.
    Latency(f64),
    /// `rps`: complete responses per second.
    Rps,
    /// `errors`: failed requests (error classes plus non-2xx), a count, or
    /// a percentage when written `errors<1%`.
    Errors,
    /// `errors%`, or `errors` with a `%` value: failed requests in percent.
    ErrorPct,
    /// `late`: sends that went out late under `--rate`.
    Late,
    /// `requests`: complete responses.
    Requests,
}

/// A comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `=` or `==`
    Eq,
}

impl Op {
    fn holds(self, value: f64, limit: f64) -> bool {
        match self {
            Op::Lt => value < limit,
            Op::Le => value <= limit,
            Op::Gt => value > limit,
            Op::Ge => value >= limit,
            Op::Eq => (value - limit).abs() < 1e-9,
        }
    }
}

/// One threshold, as written and as parsed.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Threshold {
    /// The term as the user wrote it, e.g. `p99<2ms`.
    pub(crate) text: String,
    /// What it measures.
    pub(crate) metric: Metric,
    /// How it compares.
    pub(crate) op: Op,
    /// The limit, in the metric's unit (µs for latency).
    pub(crate) limit: f64,
}

/// The figures a threshold is checked against.
#[derive(Clone, Debug, Default)]
pub(crate) struct Figures {
    /// Latency at a quantile, in µs.
    pub(crate) latency_us: Vec<(f64, u64)>,
    /// Responses per second.
    pub(crate) rps: f64,
    /// Failed requests.
    pub(crate) errors: u64,
    /// Failed requests, percent.
    pub(crate) error_pct: f64,
    /// Late sends (`--rate`).
    pub(crate) late: u64,
    /// Complete responses.
    pub(crate) requests: u64,
}

/// The outcome of one threshold.
#[derive(Clone, Debug)]
pub(crate) struct ThresholdResult {
    /// The threshold.
    pub(crate) threshold: Threshold,
    /// The measured value, in the metric's unit.
    pub(crate) value: f64,
    /// Whether it held.
    pub(crate) ok: bool,
}

impl fmt::Display for ThresholdResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.threshold.metric {
            Metric::Latency(_) => " µs",
            Metric::ErrorPct => " %",
            _ => "",
        };
        write!(
            f,
            "{}: {} (measured {}{unit})",
            self.threshold.text,
            if self.ok { "ok" } else { "FAILED" },
            trim(self.value)
        )
    }
}

fn trim(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// The quantiles a `pNN` may name (those the report prints), and `max`.
fn quantile(name: &str) -> Option<f64> {
    Some(match name {
        "p50" => 0.5,
        "p75" => 0.75,
        "p90" => 0.9,
        "p99" => 0.99,
        "p99.9" => 0.999,
        "p99.99" => 0.9999,
        "max" => 1.0,
        _ => return None,
    })
}

/// Every quantile a threshold may name, for the figures to carry.
pub(crate) const QUANTILES: [f64; 7] = [0.5, 0.75, 0.9, 0.99, 0.999, 0.9999, 1.0];

/// A latency like `2ms`, `500us`, `500µs`, `1.5s`; a bare number is µs.
fn latency_us(text: &str) -> Option<f64> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (n, unit) = text.split_at(split);
    let n: f64 = n.parse().ok()?;
    let scale = match unit {
        "" | "us" | "µs" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        _ => return None,
    };
    Some(n * scale)
}

/// A count or rate like `50000`, `50k`, `1.5M`.
fn amount(text: &str) -> Option<f64> {
    let (n, scale) = match text.as_bytes().last()? {
        b'k' | b'K' => (&text[..text.len() - 1], 1e3),
        b'M' => (&text[..text.len() - 1], 1e6),
        _ => (text, 1.0),
    };
    n.parse::<f64>()
        .ok()
        .filter(|v| *v >= 0.0)
        .map(|v| v * scale)
}

const HELP: &str = "write terms like p99<2ms, p99.9<=10ms, max<1s, rps>50000, errors=0, \
                    errors<1%, late=0, requests>=1000, joined by commas";

/// Parses `--check`'s comma-separated terms; the error names the bad term.
pub(crate) fn parse(spec: &str) -> Result<Vec<Threshold>, String> {
    let mut out = Vec::new();
    for term in spec.split(',').map(str::trim) {
        if term.is_empty() {
            return Err(format!("--check {spec:?} has an empty term; {HELP}"));
        }
        let at = term
            .find(['<', '>', '='])
            .ok_or_else(|| format!("--check term {term:?} has no <, <=, >, >= or =; {HELP}"))?;
        let name = term[..at].trim();
        let rest = &term[at..];
        let (op, value) = [
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("==", Op::Eq),
            ("<", Op::Lt),
            (">", Op::Gt),
            ("=", Op::Eq),
        ]
        .into_iter()
        .find_map(|(s, op)| rest.strip_prefix(s).map(|v| (op, v.trim())))
        .ok_or_else(|| format!("--check term {term:?}: bad comparison; {HELP}"))?;
        let bad_value =
            |what: &str| format!("--check term {term:?}: {value:?} is not {what}; {HELP}");
        let (metric, limit) = if let Some(q) = quantile(name) {
            (
                Metric::Latency(q),
                latency_us(value).ok_or_else(|| bad_value("a latency like 2ms or 500us"))?,
            )
        } else {
            match name {
                "rps" => (
                    Metric::Rps,
                    amount(value).ok_or_else(|| bad_value("a rate like 50000 or 50k"))?,
                ),
                "errors" | "errors%" | "error_pct" => {
                    if let Some(pct) = value.strip_suffix('%') {
                        (
                            Metric::ErrorPct,
                            pct.parse::<f64>()
                                .ok()
                                .filter(|p| (0.0..=100.0).contains(p))
                                .ok_or_else(|| bad_value("a percentage like 1%"))?,
                        )
                    } else if name == "errors" {
                        (
                            Metric::Errors,
                            amount(value).ok_or_else(|| bad_value("a count like 0, or 1%"))?,
                        )
                    } else {
                        return Err(bad_value("a percentage like 1%"));
                    }
                }
                "late" => (
                    Metric::Late,
                    amount(value).ok_or_else(|| bad_value("a count"))?,
                ),
                "requests" => (
                    Metric::Requests,
                    amount(value).ok_or_else(|| bad_value("a count"))?,
                ),
                _ => {
                    return Err(format!(
                        "--check term {term:?}: unknown figure {name:?} \
                         (p50 p75 p90 p99 p99.9 p99.99 max rps errors late requests); {HELP}"
                    ))
                }
            }
        };
        out.push(Threshold {
            text: term.to_string(),
            metric,
            op,
            limit,
        });
    }
    Ok(out)
}

/// Checks every threshold against `figures`.
pub(crate) fn evaluate(thresholds: &[Threshold], figures: &Figures) -> Vec<ThresholdResult> {
    thresholds
        .iter()
        .map(|t| {
            let value = match t.metric {
                Metric::Latency(q) => figures
                    .latency_us
                    .iter()
                    .find(|(fq, _)| *fq == q)
                    .map_or(f64::NAN, |(_, v)| *v as f64),
                Metric::Rps => figures.rps,
                Metric::Errors => figures.errors as f64,
                Metric::ErrorPct => figures.error_pct,
                Metric::Late => figures.late as f64,
                Metric::Requests => figures.requests as f64,
            };
            ThresholdResult {
                threshold: t.clone(),
                value,
                // NaN (a figure not measured) fails every comparison.
                ok: t.op.holds(value, t.limit),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_issue_example_and_units() {
        let t = parse("p99<2ms, errors=0,rps>50000,p99.9<=1.5s,errors<1%,late=0,max<800us")
            .expect("parses");
        let got: Vec<_> = t.iter().map(|t| (t.metric, t.op, t.limit)).collect();
        assert_eq!(
            got,
            vec![
                (Metric::Latency(0.99), Op::Lt, 2000.0),
                (Metric::Errors, Op::Eq, 0.0),
                (Metric::Rps, Op::Gt, 50000.0),
                (Metric::Latency(0.999), Op::Le, 1_500_000.0),
                (Metric::ErrorPct, Op::Lt, 1.0),
                (Metric::Late, Op::Eq, 0.0),
                (Metric::Latency(1.0), Op::Lt, 800.0),
            ]
        );
        assert_eq!(t[0].text, "p99<2ms");
    }

    #[test]
    fn errors_name_the_bad_term() {
        for (spec, needle) in [
            ("p99<2ms,p98<3ms", "\"p98<3ms\": unknown figure"),
            ("p99<2 parsecs", "\"p99<2 parsecs\""),
            ("rps 5", "\"rps 5\" has no"),
            ("rps>fast", "\"fast\" is not a rate"),
            ("p99<2ms,", "empty term"),
            ("errors<150%", "percentage"),
        ] {
            let err = parse(spec).expect_err(spec);
            assert!(err.contains(needle), "{spec}: {err}");
        }
    }

    #[test]
    fn evaluation_compares_each_figure() {
        let figures = Figures {
            latency_us: vec![(0.99, 1500), (1.0, 9000)],
            rps: 60000.0,
            errors: 2,
            error_pct: 0.5,
            late: 0,
            requests: 10,
        };
        let outcomes = evaluate(
            &parse("p99<2ms,max<5ms,rps>50k,errors=0,errors<1%,p50<1ms").expect("parses"),
            &figures,
        );
        let ok: Vec<bool> = outcomes.iter().map(|o| o.ok).collect();
        // p50 was not measured: a check on it fails rather than passes.
        assert_eq!(ok, vec![true, false, true, false, true, false]);
        assert_eq!(
            outcomes[1].to_string(),
            "max<5ms: FAILED (measured 9000 µs)"
        );
    }
}
