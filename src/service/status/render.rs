//! The two ways `/status` is written: one walk over the figure tables
//! (`figures.rs`) feeds either sink, JSON or the Prometheus text format.

use std::fmt::Write;

use crate::http::json::json_string;
use crate::metrics::{LatencyHistogram, EXPORTED_BOUNDS_US};

/// A figure's value as read from the report.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Value {
    Count(u64),
    /// A gauge summed from per-worker changes; see `metrics::WorkerMetrics`.
    Signed(i64),
    /// A duration in µs: JSON keeps µs (its keys end in `_us`), Prometheus
    /// takes seconds, its base unit.
    Micros(u64),
    /// Written with this many decimals.
    Fixed(f64, usize),
    /// JSON `true`/`false`, Prometheus 1/0.
    Flag(bool),
    /// JSON only.
    Text(String),
    /// JSON only.
    Null,
}

impl Value {
    fn json(&self) -> String {
        match self {
            Value::Count(n) | Value::Micros(n) => n.to_string(),
            Value::Signed(n) => n.to_string(),
            Value::Fixed(v, decimals) => format!("{v:.decimals$}"),
            Value::Flag(b) => b.to_string(),
            Value::Text(s) => json_string(s),
            Value::Null => "null".to_string(),
        }
    }

    /// The sample's value; `None` for text, which Prometheus has no sample for.
    fn prometheus(&self) -> Option<String> {
        Some(match self {
            Value::Count(n) => n.to_string(),
            Value::Signed(n) => n.to_string(),
            Value::Micros(us) => seconds(*us as f64 / 1e6),
            Value::Fixed(v, decimals) => format!("{v:.decimals$}"),
            Value::Flag(b) => u8::from(*b).to_string(),
            Value::Text(_) | Value::Null => return None,
        })
    }
}

/// Seconds to the microsecond, which is what the histogram keeps.
/// A Unix time as an HTTP date (`null` when there is none).
pub(super) fn http_date(unix: Option<u64>) -> Value {
    unix.map_or(Value::Null, |s| {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(s);
        Value::Text(crate::http::date::fmt_http_date(at))
    })
}

fn seconds(secs: f64) -> String {
    format!("{secs:.6}")
}

/// A Prometheus metric type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Counter,
    Gauge,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// A figure's Prometheus sample: its family (named without the
/// `conveyor_` prefix), the labels that set it apart within the family,
/// the family's type and help.
#[derive(Clone, Copy, Debug)]
pub(super) struct Series {
    pub name: &'static str,
    pub labels: &'static str,
    pub kind: Kind,
    pub help: &'static str,
}

/// A counter family.
pub(super) const fn counter(name: &'static str, help: &'static str) -> Series {
    Series {
        name,
        labels: "",
        kind: Kind::Counter,
        help,
    }
}

/// A gauge family.
pub(super) const fn gauge(name: &'static str, help: &'static str) -> Series {
    Series {
        name,
        labels: "",
        kind: Kind::Gauge,
        help,
    }
}

impl Series {
    /// One sample of the family, told apart by `labels` (`state="open"`).
    pub(super) const fn with(self, labels: &'static str) -> Series {
        Series { labels, ..self }
    }
}

/// One figure of `/status`: its key in the JSON object it sits in, its
/// Prometheus sample, and how it is read from the report. A figure may be
/// in one output only.
pub(super) struct Figure<T> {
    pub json: Option<&'static str>,
    pub series: Option<Series>,
    pub read: fn(&T) -> Value,
}

impl<T> Figure<T> {
    /// In both outputs.
    pub(super) const fn both(json: &'static str, series: Series, read: fn(&T) -> Value) -> Self {
        Figure {
            json: Some(json),
            series: Some(series),
            read,
        }
    }

    /// In the JSON only.
    pub(super) const fn json(json: &'static str, read: fn(&T) -> Value) -> Self {
        Figure {
            json: Some(json),
            series: None,
            read,
        }
    }

    /// In the Prometheus text only.
    pub(super) const fn metric(series: Series, read: fn(&T) -> Value) -> Self {
        Figure {
            json: None,
            series: Some(series),
            read,
        }
    }
}

/// What the walk over the report tells an output. JSON follows the
/// nesting; Prometheus keeps only the worker of array elements, as a label.
pub(super) trait Sink {
    /// Opens `"key":{` (or `[` for a per-worker array).
    fn open(&mut self, key: &str, array: bool);
    /// Closes what the last `open` opened.
    fn close(&mut self, array: bool);
    /// Starts (`Some`) or ends (`None`) one worker's element of an array.
    fn element(&mut self, worker: Option<usize>);
    /// One figure's value; `labels` are added to its series' own.
    fn figure(&mut self, json: Option<&str>, series: Option<&Series>, labels: &str, value: &Value);
    /// The request-duration histogram (Prometheus only).
    fn histogram(&mut self, latency: &LatencyHistogram);
}

/// Writes the report as one JSON object.
pub(super) struct Json {
    out: String,
    /// A value was written at this level: the next one needs a comma.
    comma: bool,
}

impl Json {
    pub(super) fn new() -> Json {
        let mut out = String::with_capacity(2048);
        out.push('{');
        Json { out, comma: false }
    }

    fn separate(&mut self) {
        if self.comma {
            self.out.push(',');
        }
        self.comma = true;
    }

    pub(super) fn finish(mut self) -> String {
        self.out.push('}');
        self.out
    }
}

impl Sink for Json {
    fn open(&mut self, key: &str, array: bool) {
        self.separate();
        let bracket = if array { '[' } else { '{' };
        let _ = write!(self.out, "\"{key}\":{bracket}");
        self.comma = false;
    }

    fn close(&mut self, array: bool) {
        self.out.push(if array { ']' } else { '}' });
        self.comma = true;
    }

    fn element(&mut self, worker: Option<usize>) {
        match worker {
            Some(worker) => {
                self.separate();
                let _ = write!(self.out, "{{\"worker\":{worker}");
            }
            None => self.out.push('}'),
        }
    }

    fn figure(&mut self, json: Option<&str>, _: Option<&Series>, _: &str, value: &Value) {
        if let Some(key) = json {
            self.separate();
            let _ = write!(self.out, "\"{key}\":{}", value.json());
        }
    }

    fn histogram(&mut self, _: &LatencyHistogram) {}
}

/// One metric family as written: `# HELP`, `# TYPE`, then its samples.
struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    samples: String,
}

/// Writes the report in the Prometheus text exposition format, metrics
/// prefixed `conveyor_`. A family's samples are written together, in the
/// order of its first sample, whichever array element they come from.
pub(super) struct Prometheus {
    families: Vec<Family>,
    worker: Option<usize>,
}

impl Prometheus {
    pub(super) fn new() -> Prometheus {
        Prometheus {
            families: Vec::with_capacity(64),
            worker: None,
        }
    }

    fn family(
        &mut self,
        name: &'static str,
        kind: &'static str,
        help: &'static str,
    ) -> &mut String {
        let at = match self.families.iter().position(|f| f.name == name) {
            Some(at) => at,
            None => {
                self.families.push(Family {
                    name,
                    kind,
                    help,
                    samples: String::new(),
                });
                self.families.len() - 1
            }
        };
        &mut self.families[at].samples
    }

    pub(super) fn finish(self) -> String {
        let mut s = String::with_capacity(8192);
        for f in self.families {
            let _ = writeln!(
                s,
                "# HELP conveyor_{0} {1}\n# TYPE conveyor_{0} {2}",
                f.name, f.help, f.kind
            );
            s.push_str(&f.samples);
        }
        s
    }
}

impl Sink for Prometheus {
    fn open(&mut self, _: &str, _: bool) {}

    fn close(&mut self, _: bool) {}

    fn element(&mut self, worker: Option<usize>) {
        self.worker = worker;
    }

    fn figure(&mut self, _: Option<&str>, series: Option<&Series>, labels: &str, value: &Value) {
        let (Some(series), Some(value)) = (series, value.prometheus()) else {
            return;
        };
        let worker = self.worker.map(|w| format!("worker=\"{w}\""));
        let labels: Vec<&str> = [worker.as_deref().unwrap_or(""), series.labels, labels]
            .into_iter()
            .filter(|l| !l.is_empty())
            .collect();
        let labels = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{}}}", labels.join(","))
        };
        let name = series.name;
        let samples = self.family(name, series.kind.name(), series.help);
        let _ = writeln!(samples, "conveyor_{name}{labels} {value}");
    }

    fn histogram(&mut self, latency: &LatencyHistogram) {
        const NAME: &str = "request_duration_seconds";
        let samples = self.family(
            NAME,
            "histogram",
            "Request latency as the handler sees it: from parsing the request head to the service done with it. Bounds are powers of two of microseconds.",
        );
        for (bound, below) in EXPORTED_BOUNDS_US.iter().zip(latency.below) {
            let le = seconds(*bound as f64 / 1e6);
            let _ = writeln!(samples, "conveyor_{NAME}_bucket{{le=\"{le}\"}} {below}");
        }
        let count = latency.count;
        let sum = latency.sum_ns as f64 / 1e9;
        let _ = write!(
            samples,
            "conveyor_{NAME}_bucket{{le=\"+Inf\"}} {count}\nconveyor_{NAME}_sum {sum:.9}\nconveyor_{NAME}_count {count}\n"
        );
    }
}

/// A label value as the text format needs it: `\`, `"` and newlines escaped.
pub(super) fn label_value(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            c => escaped.push(c),
        }
    }
    escaped
}
