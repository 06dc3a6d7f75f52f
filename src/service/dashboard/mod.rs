//! The status endpoint's front door: who may see it (`status.allow`), its
//! live stream (`?stream=1`, Server-Sent Events) and the dashboard page
//! (`<status.path>/dashboard`) that draws the line from that stream.
//!
//! The JSON and Prometheus answers are `status::serve`'s; this module only
//! decides whether the client may have them and adds the two live forms.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::config::allowed;
use crate::http::{write_head, Method};
use crate::metrics::{percentiles, Metrics};

use super::status::{self, to_json};
use super::{Exchange, Outcome};

/// The page: one self-contained HTML file (inline CSS, hand-written JS,
/// SVG charts), built into the binary; it loads nothing else but the stream.
pub const PAGE: &str = include_str!("page.html");

/// How often a live stream sends the report.
pub const STREAM_PERIOD: Duration = Duration::from_secs(1);

/// How often a stream that waits for its next tick looks at the shutdown
/// latch: the longest a stream outlives the start of a shutdown.
const SHUTDOWN_CHECK: Duration = Duration::from_millis(200);

/// The page's headers: it loads nothing from elsewhere and may only talk
/// to its own origin (the stream).
const PAGE_HEADERS: [(&str, &str); 4] = [
    ("Cache-Control", "no-cache"),
    (
        "Content-Security-Policy",
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
         connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
];

/// Answers a request routed to the status endpoint: 403 for a client
/// (`Exchange::client`: behind a trusted proxy, the one it names) outside
/// `status.allow`; the dashboard page at its path; the live stream
/// for `?stream=1`; else the JSON or Prometheus report.
pub async fn serve(ex: &mut Exchange<'_>) -> Outcome {
    if !allowed(&ex.ctx.config.status_access.allow, ex.client()) {
        ex.consume_preamble();
        return ex.error(
            403,
            "the status endpoint is not open to this address (status.allow)",
            &[],
        );
    }
    let path = ex.req.path();
    let is_page = path != ex.ctx.config.status.path && path.ends_with("/dashboard");
    if is_page {
        return page(ex);
    }
    let wants_stream = ex
        .req
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "stream=1"));
    if wants_stream && matches!(ex.req.method, Method::Get | Method::Head) {
        return stream(ex).await;
    }
    status::serve(ex)
}

fn page(ex: &mut Exchange<'_>) -> Outcome {
    ex.consume_preamble();
    if !matches!(ex.req.method, Method::Get | Method::Head) {
        return ex.error(405, "use GET or HEAD", &[("Allow", "GET, HEAD")]);
    }
    ex.respond(
        200,
        "text/html; charset=utf-8",
        PAGE.as_bytes(),
        &PAGE_HEADERS,
    )
}

/// A subscriber's place under `status.max_subscribers`, given back on
/// drop however the stream ends.
struct Subscriber<'a>(&'a AtomicUsize);

impl<'a> Subscriber<'a> {
    fn take(count: &'a AtomicUsize, cap: usize) -> Option<Subscriber<'a>> {
        count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < cap).then_some(n + 1)
            })
            .ok()
            .map(|_| Subscriber(count))
    }
}

impl Drop for Subscriber<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// `?stream=1`: Server-Sent Events, one `data: {report}` a second, until
/// the client goes (a write fails) or the server stops. Runs on the
/// connection's own green thread: one per subscriber, capped.
async fn stream(ex: &mut Exchange<'_>) -> Outcome {
    ex.consume_preamble();
    let ctx = ex.ctx;
    let cap = ctx.config.status_access.max_subscribers;
    let Some(_subscriber) = Subscriber::take(&ctx.metrics.subscribers, cap) else {
        return ex.error(
            503,
            "too many live status streams open; close one or raise status.max_subscribers",
            &[("Retry-After", "5")],
        );
    };
    // The stream ends the response by closing: nothing may follow it.
    ex.keep_alive = false;
    let head = ex.head(
        200,
        None,
        Some("text/event-stream"),
        &[("Cache-Control", "no-store"), ("X-Accel-Buffering", "no")],
    );
    write_head(ex.out, &head);
    let done = |body_bytes| Outcome {
        status: 200,
        body_bytes,
        keep_alive: false,
    };
    if ex.req.method == Method::Head {
        return done(0);
    }
    // A browser that loses the stream asks again after this many ms.
    ex.out.extend_from_slice(b"retry: 2000\n\n");
    let mut live = StreamWindow::new(ctx.metrics);
    let mut sent = 0u64;
    let mut next = Instant::now();
    loop {
        let before = ex.out.len();
        ex.out.extend_from_slice(b"data: ");
        ex.out
            .extend_from_slice(live.event(ctx, &ctx.report()).as_bytes());
        ex.out.extend_from_slice(b"\n\n");
        sent += (ex.out.len() - before) as u64;
        if ex.flush().await.is_err() {
            break;
        }
        next += STREAM_PERIOD;
        if !wait_until(next, ctx.shutdown).await {
            break;
        }
    }
    done(sent)
}

/// Waits until `deadline`; false if the server began to stop first.
async fn wait_until(deadline: Instant, shutdown: &crate::runtime::Latch) -> bool {
    loop {
        if shutdown.is_set() {
            return false;
        }
        let now = Instant::now();
        if now >= deadline {
            return true;
        }
        crate::runtime::sleep((deadline - now).min(SHUTDOWN_CHECK)).await;
    }
}

/// What a stream remembers between events: the figures only it has, over
/// the last interval rather than since start.
struct StreamWindow<'a> {
    metrics: &'a Metrics,
    latency: Vec<u64>,
    at: Instant,
}

impl<'a> StreamWindow<'a> {
    fn new(metrics: &'a Metrics) -> StreamWindow<'a> {
        StreamWindow {
            metrics,
            latency: metrics.latency_histogram(),
            at: Instant::now(),
        }
    }

    /// The report's JSON with a `"live"` object added: the interval it
    /// covers, the latency percentiles of the requests answered in it, and
    /// the streams open.
    fn event(&mut self, ctx: &super::ServiceContext<'_>, report: &status::Report) -> String {
        let now = Instant::now();
        let latency = self.metrics.latency_histogram();
        let interval: Vec<u64> = latency
            .iter()
            .zip(&self.latency)
            .map(|(now, then)| now.wrapping_sub(*then))
            .collect();
        let [p50, p90, p99] = percentiles(&interval);
        let requests: u64 = interval.iter().sum();
        let secs = now.duration_since(self.at).as_secs_f64();
        self.latency = latency;
        self.at = now;
        let mut json = to_json(report);
        if json.ends_with('}') {
            json.pop();
            json.push_str(&format!(
                ",\"live\":{{\"interval_secs\":{secs:.3},\"requests\":{requests},\
                 \"latency_us\":{{\"p50\":{p50},\"p90\":{p90},\"p99\":{p99}}},\
                 \"subscribers\":{},\"max_subscribers\":{}}}}}",
                ctx.metrics.subscribers.load(Ordering::Acquire),
                ctx.config.status_access.max_subscribers,
            ));
        }
        json
    }
}
