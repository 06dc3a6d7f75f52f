//! The live side of `/status`: `status.allow`, the Server-Sent Events
//! stream (`?stream=1`) with its subscriber cap, and the dashboard page,
//! loaded in headless Chromium while load runs.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::harness::browser::{chromium, open};
use crate::harness::{
    closed_within, each_server, get, read_response, read_until_closed, read_until_seen, start,
    start_with, temp_dir, wait_until, TestServer,
};
use conveyor::config::AddrRange;
use conveyor::service::dashboard::PAGE;
use conveyor::service::{Exchange, Service, ServiceFuture};

fn allow(list: &[&str]) -> Vec<AddrRange> {
    list.iter()
        .map(|s| AddrRange::parse(s).expect("a range"))
        .collect()
}

/// Opens `?stream=1` and reads up to the first event; returns the
/// connection and what it has read so far.
fn subscribe(server: &TestServer) -> (TcpStream, Vec<u8>) {
    let mut s = server.connect();
    s.write_all(b"GET /status?stream=1 HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("send");
    let mut carry = Vec::new();
    assert!(
        read_until_seen(&mut s, &mut carry, b"}\n\n", Duration::from_secs(20)),
        "{}: no first event: {}",
        server.label,
        String::from_utf8_lossy(&carry)
    );
    (s, carry)
}

/// The `"requests":{"total":N` figure of the last complete event in `bytes`.
fn last_total(bytes: &[u8]) -> Option<u64> {
    let text = String::from_utf8_lossy(bytes);
    let event = text.rsplit("data: ").find(|e| e.ends_with("}\n\n"))?;
    let at = event.find("\"requests\":{\"total\":")? + "\"requests\":{\"total\":".len();
    event[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[test]
fn clients_outside_status_allow_get_403_everywhere_it_reaches() {
    let paths = [
        "/status",
        "/status?format=prometheus",
        "/status?stream=1",
        "/status/dashboard",
    ];
    let shut_out = start("readiness", "spawn", |c| {
        c.status_access.allow = allow(&["10.0.0.0/8", "::2"]);
    });
    for path in paths {
        let mut s = shut_out.connect();
        let r = get(&mut s, path);
        assert_eq!(r.status, 403, "{path}");
        assert!(r.text().contains("status.allow"), "{path}: {}", r.text());
    }
    // Files are not behind the list.
    let mut s = shut_out.connect();
    assert_eq!(get(&mut s, "/index.html").status, 200);

    let let_in = start("readiness", "spawn", |c| {
        c.status_access.allow = allow(&["10.0.0.0/8", "127.0.0.1"]);
    });
    for path in &paths[..2] {
        let mut s = let_in.connect();
        assert_eq!(get(&mut s, path).status, 200, "{path}");
    }
    let (_s, head) = subscribe(&let_in);
    assert!(head.starts_with(b"HTTP/1.1 200"), "stream let in");
    let mut s = let_in.connect();
    assert_eq!(get(&mut s, "/status/dashboard").status, 200);
}

#[test]
fn the_page_is_self_contained_and_can_be_turned_off() {
    let server = start("readiness", "spawn", |_| {});
    let mut s = server.connect();
    let r = get(&mut s, "/status/dashboard");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let csp = r.header("content-security-policy").unwrap_or_default();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let page = r.text();
    assert!(page.contains("EventSource") && page.contains("?stream=1"));
    // Nothing fetched from elsewhere: the only URL is the SVG namespace.
    assert_eq!(
        page.matches("http://").count(),
        page.matches(SVG_NS).count()
    );
    assert!(!page.contains("https://") && !page.contains("src=\""));
    assert_eq!(get(&mut s, "/status/dashboard?x=1").status, 200);
    let mut post = server.connect();
    post.write_all(b"POST /status/dashboard HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n")
        .expect("send");
    assert_eq!(read_response(&mut post).status, 405);

    let off = start("readiness", "spawn", |c| c.status_access.dashboard = false);
    let mut s = off.connect();
    assert_eq!(get(&mut s, "/status/dashboard").status, 404);
    assert_eq!(get(&mut s, "/status").status, 200);
    let moved = start("readiness", "spawn", |c| {
        c.status.path = "/_c/status".into()
    });
    let mut s = moved.connect();
    assert_eq!(get(&mut s, "/_c/status/dashboard").status, 200);
    assert_eq!(get(&mut s, "/status/dashboard").status, 404);
}

const SVG_NS: &str = "http://www.w3.org/2000/svg";

#[test]
fn a_stream_sends_the_report_each_second_and_it_moves() {
    // More streams than a pool dispatcher has handlers (4 in tests): each
    // waits on its own green thread, so the line still serves.
    each_server(
        |_| {},
        |server| {
            let streams: Vec<_> = (0..5).map(|_| subscribe(server)).collect();
            let (mut s, mut carry) = streams.into_iter().next().expect("one");
            let head = String::from_utf8_lossy(&carry).to_ascii_lowercase();
            assert!(head.contains("content-type: text/event-stream"), "{head}");
            assert!(head.contains("connection: close") && !head.contains("content-length"));
            assert!(head.contains("\"live\":{\"interval_secs\":"), "{head}");
            let first = last_total(&carry).expect("a total");
            let mut c = server.connect();
            for _ in 0..20 {
                assert_eq!(get(&mut c, "/index.html").status, 200, "{}", server.label);
            }
            // The events that follow count the requests just made.
            let moved = wait_until(Duration::from_secs(20), || {
                read_until_seen(&mut s, &mut carry, b"}\n\n", Duration::from_secs(3));
                last_total(&carry).is_some_and(|t| t >= first + 20)
            });
            assert!(
                moved,
                "{}: {}",
                server.label,
                String::from_utf8_lossy(&carry)
            );
            let events = carry.windows(6).filter(|w| w == b"data: ").count();
            assert!(events >= 2, "{events} events");
        },
    );
}

#[test]
fn subscribers_are_capped_and_their_places_come_back() {
    let server = start("readiness", "spawn", |c| {
        c.status_access.max_subscribers = 2
    });
    let (one, _) = subscribe(&server);
    let (_two, _) = subscribe(&server);
    let mut third = server.connect();
    let r = get(&mut third, "/status?stream=1");
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("5"));
    assert!(r.text().contains("status.max_subscribers"), "{}", r.text());
    // The plain report is not capped.
    assert_eq!(get(&mut third, "/status").status, 200);
    // A subscriber that goes away gives its place back once a write fails.
    drop(one);
    let back = wait_until(Duration::from_secs(20), || {
        let mut s = server.connect();
        s.write_all(b"GET /status?stream=1 HTTP/1.1\r\nHost: t\r\n\r\n")
            .expect("send");
        let mut buf = [0u8; 12];
        let got = s.read_exact(&mut buf).is_ok() && &buf == b"HTTP/1.1 200";
        if !got {
            // Still full: ask again shortly, not thousands of times a second.
            std::thread::sleep(Duration::from_millis(50));
        }
        got
    });
    assert!(back, "the closed subscriber's place never came back");
}

#[test]
fn streams_end_when_the_server_stops() {
    let server = start("readiness", "pool", |_| {});
    let (mut s, _) = subscribe(&server);
    let stopping = Instant::now();
    let stopper = std::thread::spawn(move || server.shutdown());
    let (_, closed) = read_until_closed(&mut s, Duration::from_secs(10));
    assert!(closed, "the stream outlived the shutdown");
    stopper.join().expect("shutdown");
    // Well inside the 5 s grace the tests give in-flight responses.
    assert!(
        stopping.elapsed() < Duration::from_secs(4),
        "{:?}",
        stopping.elapsed()
    );
}

#[test]
fn head_of_a_stream_is_a_head_only() {
    let server = start("readiness", "spawn", |_| {});
    let mut s = server.connect();
    s.write_all(b"HEAD /status?stream=1 HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("send");
    let (bytes, closed) = read_until_closed(&mut s, Duration::from_secs(10));
    let text = String::from_utf8_lossy(&bytes);
    assert!(closed && text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.ends_with("\r\n\r\n") && !text.contains("data:"),
        "{text}"
    );
    assert!(closed_within(&mut s, Duration::from_secs(1)));
}

// ---- the page in a real browser -------------------------------------------

/// Keep-alive GETs from a few threads until `stop`, bounded in count and time.
fn load(
    addr: SocketAddr,
    stop: &Arc<AtomicBool>,
    done: &Arc<AtomicU64>,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..3)
        .map(|i| {
            let (stop, done) = (stop.clone(), done.clone());
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(90);
                let path = if i == 2 {
                    "/no-such-page"
                } else {
                    "/index.html"
                };
                // Under limits.max_requests_per_connection (1000): the
                // server never closes one of these connections first.
                for _ in 0..1000 {
                    let Ok(mut s) = TcpStream::connect(addr) else {
                        return;
                    };
                    let _ = s.set_nodelay(true);
                    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                    for _ in 0..500 {
                        if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                            return;
                        }
                        assert_ne!(get(&mut s, path).status, 0);
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect()
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let (mut out, mut acc, mut bits) = (Vec::new(), 0u32, 0);
    for v in text.bytes().filter_map(value) {
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// `name=value` pairs of the page's state string.
fn field(state: &str, name: &str) -> u64 {
    state
        .split(';')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// What the test reads of the page: samples received, points per chart,
/// first and last request totals seen, and the drawn req/s figure.
const STATE: &str = "var d=document.body.dataset;\
    'samples='+d.samples+';points='+d.chartPoints+';first='+d.firstRequests+\
    ';last='+d.lastRequests+';paths='+document.querySelectorAll('#ch-rps path').length+\
    ';lines='+document.querySelectorAll('#ch-lat polyline').length+\
    ';rps='+document.getElementById('v-rps').firstChild.nodeValue";

#[test]
fn the_dashboard_draws_the_line_moving_in_a_real_browser() {
    let Some(binary) = chromium() else {
        return;
    };
    let server = start("readiness", "spawn", |_| {});
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let load = load(server.addr, &stop, &done);
    // Should this panic, the server's drop ends the load threads' connections.
    let (_browser, mut tools) = open(&binary, &server.url("/status/dashboard"));
    let mut state = String::new();
    let drawn = wait_until(Duration::from_secs(60), || {
        state = tools.eval(STATE);
        field(&state, "samples") >= 5
    });
    let shot = tools.call("Page.captureScreenshot", "{\"format\":\"png\"}");
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.join().expect("load thread");
    }
    assert!(drawn, "the page did not get 5 samples: {state}");
    assert!(done.load(Ordering::Relaxed) > 0, "the load ran");
    // Charts hold data: a point per sample after the first, in each chart.
    assert!(field(&state, "points") >= 4, "{state}");
    assert_eq!(
        field(&state, "paths"),
        5,
        "a stacked area per status class: {state}"
    );
    assert_eq!(field(&state, "lines"), 3, "p50, p90, p99: {state}");
    // Figures move: the totals the page saw grew while it watched, and the
    // req/s it drew is not zero.
    assert!(field(&state, "last") > field(&state, "first"), "{state}");
    assert!(
        !state.ends_with("rps=0") && !state.ends_with("rps=–"),
        "{state}"
    );
    let png = base64_decode(
        shot.split("\"data\":\"")
            .nth(1)
            .and_then(|d| d.split('"').next())
            .unwrap_or_default(),
    );
    assert!(png.starts_with(b"\x89PNG"), "a screenshot");
    let saved = temp_dir("dashboard-shot").join("dashboard.png");
    std::fs::write(&saved, &png).expect("save the screenshot");
    println!(
        "screenshot: {} ({} bytes); {state}",
        saved.display(),
        png.len()
    );
}

/// Answers like `/status?stream=1` does on a server with the TLS, pressure
/// and hot-reload figures (the objects' real field names): a few events per response, each
/// with higher counters than the last.
struct Synthetic {
    events: AtomicU64,
}

impl Service for Synthetic {
    fn serve<'a>(&'a self, ex: &'a mut Exchange<'_>) -> ServiceFuture<'a> {
        ServiceFuture::new(async move {
            let mut body = String::from("retry: 300\n\n");
            for _ in 0..3 {
                let n = self.events.fetch_add(1, Ordering::Relaxed);
                body.push_str(&format!(
                    "data: {{\"version\":\"t\",\"uptime_secs\":{n},\"workers\":1,\
                     \"connections\":{{\"accepted\":{a},\"open\":2}},\
                     \"requests\":{{\"total\":{r},\"2xx\":{r}}},\"bytes\":{{\"in\":0,\"out\":{r}}},\
                     \"queues\":[{{\"worker\":0,\"depth\":1,\"capacity\":8}}],\"scheduler\":[],\
                     \"tls\":{{\"handshake_queue_depth\":3,\"handshake_queue_capacity\":64,\
                     \"handshakes_completed\":{a},\"handshakes_failed\":1,\"handshakes_resumed\":0,\
                     \"resumption_ratio\":0.5,\"plain_http_refused\":0}},\
                     \"pressure\":{{\"evicted_idle\":0,\"shed_codel\":{s},\"queue_wait\":[\
                     {{\"worker\":0,\"wait_us\":900,\"wait_avg_us\":1500,\"shedding\":false,\"shed\":{s}}}]}},\
                     \"http2\":{{\"connections\":5,\"streams_open\":9,\"streams_waiting\":4,\
                     \"streams\":{r},\"calmed\":0}},\
                     \"acme\":{{\"domains\":\"example.com www.example.com\",\"state\":\"error\",\
                     \"orders\":true,\"not_after\":\"Tue, 14 Nov 2023 22:13:20 GMT\",\
                     \"next_renewal\":\"Sat, 22 Jul 2023 04:26:40 GMT\",\
                     \"last_error\":\"the CA is down\",\"attempts\":{s},\"failures\":2,\"issued\":1}},\
                     \"config\":{{\"generation\":7}}}}\n\n",
                    a = n * 10,
                    r = n * 100,
                    s = n,
                ));
            }
            ex.keep_alive = false;
            ex.respond(200, "text/event-stream", body.as_bytes(), &[])
        })
    }
}

/// Serves the built-in page at a path of the test's choosing.
struct Page;

impl Service for Page {
    fn serve<'a>(&'a self, ex: &'a mut Exchange<'_>) -> ServiceFuture<'a> {
        ServiceFuture::new(async move {
            ex.respond(200, "text/html; charset=utf-8", PAGE.as_bytes(), &[])
        })
    }
}

/// What the page made of the figures it does not own.
const EXTRAS: &str = "'tls='+!document.getElementById('st-tls').hidden+\
    ';tlsrate='+document.getElementById('v-tls').firstChild.nodeValue+\
    ';tlskv='+document.getElementById('kv-tls').textContent+\
    ';wait='+document.getElementById('v-wait').textContent+\
    ';shed='+document.getElementById('kv-shed').textContent+\
    ';gen='+document.getElementById('config-gen').textContent+\
    ';h2='+!document.getElementById('st-h2').hidden+\
    ';h2rate='+document.getElementById('v-h2').firstChild.nodeValue+\
    ';h2kv='+document.getElementById('kv-h2').textContent+\
    ';acme='+!document.getElementById('acme-wrap').hidden+\
    ';acmestate='+document.getElementById('acme-state').textContent+\
    ';acmekv='+document.getElementById('kv-acme').textContent+\
    ';cards='+document.querySelectorAll('#extras .card').length+\
    ';samples='+document.body.dataset.samples";

/// A server with the dashboard page at `PREFIX/dashboard` reading its
/// event stream from `events` at `PREFIX`: figures the test makes up.
fn page_over(prefix: &str, events: Arc<dyn Service>) -> TestServer {
    let page = format!("{prefix}/dashboard");
    start_with(
        "readiness",
        "spawn",
        |_| {},
        |b| b.route(&page, Arc::new(Page)).route(prefix, events),
    )
}

#[test]
fn the_dashboard_draws_what_other_parts_add_to_the_report() {
    let Some(binary) = chromium() else {
        return;
    };
    let events = Arc::new(Synthetic {
        events: AtomicU64::new(1),
    });
    let server = page_over("/fake", events);
    let (_browser, mut tools) = open(&binary, &server.url("/fake/dashboard"));
    let mut state = String::new();
    let drawn = wait_until(Duration::from_secs(60), || {
        state = tools.eval(EXTRAS);
        field(&state, "samples") >= 4
    });
    assert!(drawn, "{state}");
    // A TLS stage before the acceptor, with its rate and queue depth.
    assert!(state.contains("tls=true;"), "{state}");
    assert!(!state.contains("tlsrate=–"), "{state}");
    assert!(state.contains("queue depth3"), "{state}");
    // Queue wait and shedding from the pressure object, the config's generation.
    assert!(state.contains("wait=1.5 ms avg"), "{state}");
    assert!(state.contains("shed (CoDel)"), "{state}");
    assert!(state.contains("gen=7;"), "{state}");
    // An HTTP/2 stage before the queues: streams per second, connections,
    // open streams and those queued for the handler.
    assert!(state.contains("h2=true;"), "{state}");
    assert!(!state.contains("h2rate=–"), "{state}");
    assert!(
        state.contains("connections5open streams9queued for handler4"),
        "{state}"
    );
    // The ACME certificate, in a card of its own (not among the extras).
    assert!(state.contains("acme=true;acmestate=error;"), "{state}");
    assert!(
        state.contains("valid untilTue, 14 Nov 2023 22:13:20 GMT")
            && state.contains("last errorthe CA is down"),
        "{state}"
    );
    assert_eq!(
        field(&state, "cards"),
        4,
        "tls, pressure, config, http2: {state}"
    );
    println!("{state}");
}

/// The y-axis labels of the bytes chart, top first.
const BYTE_LABELS: &str =
    "Array.from(document.querySelectorAll('#ch-bytes .ymax, #ch-bytes .ymid'))\
    .map(function (e) { return e.textContent; }).join('|')";

/// A `/status?stream=1` of a server moving no bytes at all: the uptime
/// goes on, every counter stays.
struct Idle {
    events: AtomicU64,
}

impl Service for Idle {
    fn serve<'a>(&'a self, ex: &'a mut Exchange<'_>) -> ServiceFuture<'a> {
        ServiceFuture::new(async move {
            let mut body = String::from("retry: 300\n\n");
            for _ in 0..3 {
                let n = self.events.fetch_add(1, Ordering::Relaxed);
                body.push_str(&format!(
                    "data: {{\"version\":\"t\",\"uptime_secs\":{n},\"workers\":1,\
                     \"connections\":{{\"accepted\":1,\"open\":1}},\
                     \"requests\":{{\"total\":1,\"2xx\":1}},\"bytes\":{{\"in\":100,\"out\":100}},\
                     \"queues\":[],\"scheduler\":[]}}\n\n"
                ));
            }
            ex.keep_alive = false;
            ex.respond(200, "text/event-stream", body.as_bytes(), &[])
        })
    }
}

/// An idle server's bytes chart read "1 B/s" at the top and "1 B/s" in
/// the middle (half a byte rounds up): now 1.0 KiB/s over 512 B/s.
#[test]
fn an_idle_bytes_chart_labels_its_axis_with_two_different_figures() {
    let Some(binary) = chromium() else {
        return;
    };
    let events = Arc::new(Idle {
        events: AtomicU64::new(1),
    });
    let server = page_over("/idle", events);
    let (_browser, mut tools) = open(&binary, &server.url("/idle/dashboard"));
    let mut labels = String::new();
    let drawn = wait_until(Duration::from_secs(60), || {
        labels = tools.eval(BYTE_LABELS);
        field(&tools.eval(STATE), "samples") >= 3 && !labels.is_empty()
    });
    assert!(drawn, "no bytes chart drawn: {labels:?}");
    assert_eq!(labels, "1.0 KiB/s|512 B/s");
}
