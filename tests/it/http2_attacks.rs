//! Limits a hostile HTTP/2 client meets (issue 22). Each attack is run from
//! outside over a real socket by the raw frame writer and reader of
//! `harness::h2raw` (h2c with prior knowledge, HPACK encoded by hand).
//!
//! The server runs in this process, so RSS is the server's plus the test's;
//! the tests take one lock (`h2raw::serial`), so that they measure one
//! attack at a time.

use std::io::{ErrorKind, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::harness;
use crate::harness::h2raw::*;

// ---- the attacks ----------------------------------------------------------

#[test]
fn streams_beyond_the_concurrent_limit_are_refused() {
    let _one = serial();
    for configured in [None, Some(4u32)] {
        let server = start(|c| {
            if let Some(n) = configured {
                c.http2.max_concurrent_streams = n;
            }
        });
        let limit = configured.unwrap_or(128);
        // A shut window keeps every answered stream open.
        let mut client = Client::open(server.addr, &[(SETTINGS_INITIAL_WINDOW_SIZE, 0)]);
        assert_eq!(
            client.setting(SETTINGS_MAX_CONCURRENT_STREAMS),
            Some(limit),
            "the server's SETTINGS say the limit"
        );
        let batch: Vec<u8> = (0..limit)
            .flat_map(|i| get(1 + 2 * i, "/index.html"))
            .collect();
        client.send(&batch).expect("send");
        let mut answered = 0;
        client.until(Duration::from_secs(10), |f| {
            assert_ne!(f.kind, RST_STREAM, "a stream within the limit: {f:?}");
            answered += u32::from(f.kind == HEADERS);
            answered == limit
        });
        assert_eq!(answered, limit, "every stream within the limit is answered");
        let extra = 1 + 2 * limit;
        client.send(&get(extra, "/index.html")).expect("send");
        let refused = client
            .until(Duration::from_secs(5), |f| f.kind == RST_STREAM)
            .expect("a RST_STREAM");
        assert_eq!(
            (refused.stream, refused.code()),
            (extra, REFUSED_STREAM),
            "stream {} of {limit} is refused",
            limit + 1
        );
    }
}

#[test]
fn an_hpack_bomb_is_refused_at_the_header_limit_without_expanding() {
    let _one = serial();
    let server = start(|_| {});
    let limits = server.server().line().config.load().limits.clone();
    let list_limit = limits.max_request_line + limits.max_header_bytes;
    let value = vec![b'a'; 4000];
    let mut client = Client::open(server.addr, &[]);

    // One 4 KiB entry in the dynamic table.
    let mut block = get_block("/index.html");
    hpack_insert(&mut block, b"x-bomb", &value);
    client
        .send(&headers(1, &block, END_STREAM | END_HEADERS))
        .expect("send");
    client.until(Duration::from_secs(5), |f| {
        f.stream == 1 && (f.flags & END_STREAM != 0 || f.kind == RST_STREAM)
    });

    // A few references, over the header list limit: that stream is refused
    // and the connection goes on (its HPACK state intact).
    let refs = list_limit / 4000 + 2;
    let mut block = get_block("/index.html");
    block.extend(std::iter::repeat_n(0xbe, refs));
    client
        .send(&headers(3, &block, END_STREAM | END_HEADERS))
        .expect("send");
    let refused = client
        .until(Duration::from_secs(5), |f| {
            f.stream == 3 && (f.kind == RST_STREAM || f.flags & END_STREAM != 0)
        })
        .expect("an answer to stream 3");
    assert!(
        refused.kind == RST_STREAM || first_field(&refused.payload) != Some(STATUS_200),
        "{refs} references to a 4 KiB entry ({} KiB) over a {list_limit} B limit are refused",
        refs * 4
    );
    client.send(&get(5, "/index.html")).expect("send");
    let (status, _) = client
        .response(5, Duration::from_secs(5))
        .expect("the connection goes on");
    assert_eq!(status, STATUS_200);

    // The bomb: 16,000 references in one frame, 64 MB decoded, on 16
    // connections at once: 1 GB if it were expanded.
    let watch = RssWatch::start();
    let mut bomb = get_block("/index.html");
    bomb.extend(std::iter::repeat_n(0xbe, 16_000));
    let mut clients = vec![client];
    for _ in 1..16 {
        let mut c = Client::open(server.addr, &[]);
        let mut block = get_block("/");
        hpack_insert(&mut block, b"x-bomb", &value);
        c.send(&headers(1, &block, END_STREAM | END_HEADERS))
            .expect("send");
        clients.push(c);
    }
    for (i, c) in clients.iter_mut().enumerate() {
        let id = if i == 0 { 7 } else { 3 };
        c.send(&headers(id, &bomb, END_STREAM | END_HEADERS))
            .expect("send");
    }
    for c in &mut clients {
        let away = c
            .until(Duration::from_secs(5), |f| f.kind == GOAWAY)
            .expect("GOAWAY for the bomb");
        assert_eq!(away.code(), ENHANCE_YOUR_CALM, "{away:?}");
        assert!(c.closes_within(Duration::from_secs(5)), "then it closes");
    }
    let (before, peak) = watch.finish();
    eprintln!(
        "hpack bomb: 16 x 64 MB decoded size; RSS {:.1} MiB -> peak {:.1} MiB",
        mib(before),
        mib(peak)
    );
    assert!(
        peak < before + 32 * MIB,
        "RSS {:.1} -> {:.1} MiB: the bomb was expanded",
        mib(before),
        mib(peak)
    );
}

#[test]
fn a_continuation_flood_is_cut_off_at_the_header_limit() {
    let _one = serial();
    let server = start(|_| {});
    // 16 KiB of literal fields per frame, then empty frames.
    let mut fields = Vec::new();
    while fields.len() < 16 * 1024 {
        fields.push(0x00);
        hpack_str(&mut fields, b"x-pad");
        hpack_str(&mut fields, &[b'p'; 120]);
    }
    for payload in [&fields[..16 * 1024], &[][..]] {
        let watch = RssWatch::start();
        let mut client = Client::open(server.addr, &[]);
        client
            .send(&headers(1, &get_block("/index.html"), END_STREAM))
            .expect("send");
        let unit = frame(CONTINUATION, 0, 1, payload);
        let (sent, closed) = flood(
            &mut client.stream,
            &unit,
            256 * MIB as usize,
            Duration::from_secs(5),
        );
        let (before, peak) = watch.finish();
        let away = client.until(Duration::from_secs(5), |f| f.kind == GOAWAY);
        eprintln!(
            "CONTINUATION flood ({} B frames): closed after {} KiB sent, {away:?}; \
             RSS {:.1} -> peak {:.1} MiB",
            payload.len(),
            sent / 1024,
            mib(before),
            mib(peak)
        );
        assert!(closed, "the server closes the connection ({sent} B sent)");
        assert!(peak < before + 16 * MIB, "bounded memory");
    }
}

/// `pairs` streams opened and reset at once (HEADERS, RST_STREAM).
fn open_and_reset(pairs: u32) -> Vec<u8> {
    let mut batch = Vec::new();
    for i in 0..pairs {
        let id = 1 + 2 * i;
        batch.extend(get(id, "/index.html"));
        batch.extend(rst_stream(id, CANCEL));
    }
    batch
}

/// Streams opened and reset at once, as fast as the socket takes them,
/// until the server says GOAWAY (the native engine's pauses let 1,000
/// through in 2.5 s): the stream id it named, and its code.
fn blast_resets(addr: SocketAddr, batch: &[u8]) -> Option<(u32, u32)> {
    let mut client = Client::open(addr, &[]);
    let _ = client.send(batch);
    let away = client.until(Duration::from_secs(10), |f| f.kind == GOAWAY)?;
    Some((away.last_stream(), away.code()))
}

#[test]
fn rapid_reset_gets_enhance_your_calm_and_others_are_served() {
    let _one = serial();
    let server = start(|_| {});
    sparse_file(&server, "big.bin", 1 << 30);

    // As fast as the socket goes: each stream reset while its request
    // waits in the queue (dropped there unrun), 1,000 a connection.
    let (last, code) = blast_resets(server.addr, &open_and_reset(10_000)).expect("GOAWAY");
    eprintln!(
        "rapid reset, blasted: GOAWAY after {} streams",
        last.div_ceil(2)
    );
    assert_eq!(code, ENHANCE_YOUR_CALM);
    assert!(
        last.div_ceil(2) <= 1_000,
        "bounded: GOAWAY names stream {last}"
    );

    // Each reset after the stream's response began (the server is at work
    // on a large file): the stage's reset budget.
    let (resets, away) = reset_after_headers(server.addr, 5_000);
    eprintln!("rapid reset, after the response head: GOAWAY after {resets} resets");
    let away = away.expect("GOAWAY");
    assert_eq!(away, ENHANCE_YOUR_CALM);
    assert!(resets <= 200 + 128 + 64, "bounded: {resets}");
    let calmed = server.status_json();
    assert!(!calmed.contains("\"calmed\":0"), "counted: {calmed}");

    // Another client's latency, idle and under attack, in turns (the
    // machine's other load falls on both alike). The machine is shared: a
    // measure that misses the bound is taken again, up to three times.
    let mut measures = Vec::new();
    for _ in 0..3 {
        let (idle, attacked, connections) = latency_under_rapid_reset(server.addr);
        eprintln!(
            "p99 of GET /index.html: idle {idle:?}, under rapid reset ({connections} \
             attacking connections) {attacked:?}"
        );
        measures.push((idle, attacked));
        if attacked <= idle * 2 + Duration::from_millis(2) {
            return;
        }
    }
    panic!("p99 under attack over twice the idle one (+2 ms), three times: {measures:?}");
}

/// The p99 latency of GET /index.html idle, and under rapid reset; the
/// attacking connections.
fn latency_under_rapid_reset(addr: SocketAddr) -> (Duration, Duration, u32) {
    let (mut idle, mut attacked, mut connections) = (Vec::new(), Vec::new(), 0);
    for _ in 0..4 {
        idle.extend(latencies(addr, 100));
        let attack = Attack::start(addr);
        attacked.extend(latencies(addr, 100));
        connections += attack.stop();
    }
    (p99(idle), p99(attacked), connections)
}

/// A client blasting open-and-reset streams, connection after connection.
struct Attack {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<u32>,
}

impl Attack {
    /// Starts it, and returns once its first connection was sent away.
    fn start(addr: SocketAddr) -> Attack {
        let stop = Arc::new(AtomicBool::new(false));
        let started = Arc::new(AtomicBool::new(false));
        let (flag, first) = (stop.clone(), started.clone());
        let thread = std::thread::spawn(move || {
            let batch = open_and_reset(2_000);
            let deadline = Instant::now() + Duration::from_secs(20);
            let mut connections = 0;
            while !flag.load(Ordering::Relaxed) && Instant::now() < deadline {
                blast_resets(addr, &batch);
                connections += 1;
                first.store(true, Ordering::Relaxed);
            }
            connections
        });
        harness::wait_until(Duration::from_secs(5), || started.load(Ordering::Relaxed));
        Attack { stop, thread }
    }

    /// Stops it: the connections it made.
    fn stop(self) -> u32 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("attacker")
    }
}

/// Keeps 32 streams of a large file open, resetting each as its response
/// head arrives and opening another, until GOAWAY or `most` resets: the
/// resets sent and the GOAWAY's code.
fn reset_after_headers(addr: SocketAddr, most: u32) -> (u32, Option<u32>) {
    let mut client = Client::open(addr, &[]);
    let window = 32;
    let opening: Vec<u8> = (0..window)
        .flat_map(|i| get(1 + 2 * i, "/big.bin"))
        .collect();
    client.send(&opening).expect("send");
    let mut next = 1 + 2 * window;
    let mut resets = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while resets < most {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(f) = client.next(left) else {
            return (resets, None);
        };
        match f.kind {
            GOAWAY => return (resets, Some(f.code())),
            HEADERS => {
                let mut more = rst_stream(f.stream, CANCEL);
                more.extend(get(next, "/big.bin"));
                next += 2;
                resets += 1;
                if client.send(&more).is_err() {
                    let away = client.until(Duration::from_secs(2), |f| f.kind == GOAWAY);
                    return (resets, away.map(|f| f.code()));
                }
            }
            _ => {}
        }
    }
    (resets, None)
}

/// One flood: its name, the frame sent over and over, whether a stream is
/// opened first (for DATA), and whether the client reads what comes back.
struct Flood {
    name: &'static str,
    unit: Vec<u8>,
    open_stream: bool,
    reads: bool,
}

fn floods() -> Vec<Flood> {
    let flood = |name, unit, open_stream, reads| Flood {
        name,
        unit,
        open_stream,
        reads,
    };
    let priority: Vec<u8> = (0..64u32)
        .flat_map(|i| frame(PRIORITY, 0, 101 + 2 * i, &[0, 0, 0, 0, 15]))
        .collect();
    vec![
        flood("SETTINGS", settings(&[]), false, false),
        flood("SETTINGS, read", settings(&[]), false, true),
        flood("PING", frame(PING, 0, 0, &[7; 8]), false, false),
        flood("PING, read", frame(PING, 0, 0, &[7; 8]), false, true),
        flood("empty DATA", frame(DATA, 0, 1, &[]), true, true),
        flood("WINDOW_UPDATE 0", window_update(0, 0), false, true),
        flood("WINDOW_UPDATE 1", window_update(0, 1), false, true),
        flood("PRIORITY", priority, false, true),
    ]
}

#[test]
fn frame_floods_are_cut_off_with_bounded_memory() {
    let _one = serial();
    let server = start(|c| c.timeouts.write = Duration::from_secs(1));
    for f in floods() {
        let watch = RssWatch::start();
        let mut client = Client::open(server.addr, &[]);
        if f.open_stream {
            let mut block = vec![0x83, 0x86]; // POST, http
            hpack_int(&mut block, 4, 0x00, 4);
            hpack_str(&mut block, b"/echo");
            hpack_int(&mut block, 4, 0x00, 1);
            hpack_str(&mut block, b"test");
            client.send(&headers(1, &block, END_HEADERS)).expect("send");
        }
        let reader = f.reads.then(|| {
            let mut stream = client.stream.try_clone().expect("clone");
            std::thread::spawn(move || {
                harness::read_until_closed(&mut stream, Duration::from_secs(8))
            })
        });
        let started = Instant::now();
        let (sent, closed) = flood(
            &mut client.stream,
            &f.unit,
            512 * MIB as usize,
            Duration::from_secs(4),
        );
        let took = started.elapsed();
        let (before, peak) = watch.finish();
        let got = reader.map(|r| r.join().expect("reader"));
        let frames = sent / f.unit.len() * frames_in(&f.unit);
        eprintln!(
            "{} flood: {} after {frames} frames ({} KiB) in {took:?}; RSS {:.1} -> peak {:.1} MiB",
            f.name,
            if closed { "closed" } else { "NOT closed" },
            sent / 1024,
            mib(before),
            mib(peak)
        );
        if let Some((bytes, closed_read)) = got {
            assert!(
                closed_read,
                "{}: the reader sees the close ({} B)",
                f.name,
                bytes.len()
            );
        }
        assert!(closed, "{}: the connection is closed", f.name);
        assert!(
            took < Duration::from_secs(3),
            "{}: closed within the write timeout (1 s) and some",
            f.name
        );
        assert!(peak < before + 16 * MIB, "{}: bounded memory", f.name);
    }
}

#[test]
fn a_zero_window_stall_holds_only_the_pipes_and_is_timed_out() {
    let _one = serial();
    let server = start(|c| {
        c.timeouts.write = Duration::from_secs(1);
        c.timeouts.keepalive_idle = Duration::from_secs(1);
    });
    sparse_file(&server, "big.bin", 1 << 30);
    let watch = RssWatch::start();
    let mut client = Client::open(server.addr, &[(SETTINGS_INITIAL_WINDOW_SIZE, 0)]);
    let batch: Vec<u8> = (0..1000u32)
        .flat_map(|i| get(1 + 2 * i, "/big.bin"))
        .collect();
    client.send(&batch).expect("send");
    let started = Instant::now();
    let (mut answered, mut refused, mut reset) = (0, 0, 0);
    let mut first_reset = None;
    while let Some(f) = client.next(Duration::from_secs(10)) {
        match f.kind {
            HEADERS => answered += 1,
            RST_STREAM if f.code() == REFUSED_STREAM => refused += 1,
            RST_STREAM => {
                reset += 1;
                first_reset.get_or_insert_with(|| started.elapsed());
            }
            GOAWAY => break,
            _ => {}
        }
    }
    let (before, peak) = watch.finish();
    let closed = client.closes_within(Duration::from_secs(5));
    eprintln!(
        "zero-window stall: {answered} answered, {refused} refused, {reset} reset \
         (first after {first_reset:?}), GOAWAY after {:?}, closed {closed}; RSS {:.1} -> \
         peak {:.1} MiB",
        started.elapsed(),
        mib(before),
        mib(peak)
    );
    assert_eq!(answered, 128, "only max_concurrent_streams are admitted");
    assert_eq!(refused, 1000 - 128);
    assert_eq!(reset, answered, "every stalled stream is reset");
    assert!(!client.goaways.is_empty(), "GOAWAY at idle");
    assert!(closed, "then the connection closes");
    // What a stalled stream may hold: its pipe, the piece taken from it,
    // and the handler's own buffer; 128 of them.
    let bound = 128 * 160 * 1024 + 8 * MIB;
    assert!(
        peak < before + bound,
        "RSS {:.1} -> {:.1} MiB, over {:.1} MiB",
        mib(before),
        mib(peak),
        mib(bound)
    );
}

#[test]
fn graceful_shutdown_finishes_the_streams_in_flight() {
    let _one = serial();
    let grace = Duration::from_secs(10);
    let server = start(|c| c.timeouts.shutdown_grace = grace);
    for (name, len) in [("big.bin", 8 * MIB), ("tail.bin", MIB)] {
        sparse_file(&server, name, len);
    }
    // An idle connection that reads nothing, not even the GOAWAY's PING.
    let idle = Client::open(server.addr, &[]);
    let mut client = Client::open(server.addr, &[]);
    let mut request = get(1, "/big.bin");
    request.extend(get(3, "/tail.bin"));
    client.send(&request).expect("send");
    let mut body = [0u64; 2];
    let mut ended = [false; 2];
    // What the client has read and not yet given back, per stream: from
    // the first frame on (a server may send a stream's whole window before
    // the other stream's head).
    let mut unacked = [0u32; 2];
    let mut count = |f: &Frame| {
        let at = usize::from(f.stream == 3);
        body[at] += f.payload.len() as u64;
        ended[at] |= f.flags & END_STREAM != 0;
    };
    let mut heads = 0;
    client.until(Duration::from_secs(5), |f| {
        heads += usize::from(f.kind == HEADERS);
        if f.kind == DATA {
            count(f);
            unacked[usize::from(f.stream == 3)] += u32::try_from(f.payload.len()).expect("size");
        }
        heads == 2
    });
    assert_eq!(heads, 2, "both responses begun");
    let stopper = std::thread::spawn(move || {
        let started = Instant::now();
        server.shutdown();
        started.elapsed()
    });
    // The client reads on only after a while, and slowly: what the server
    // holds for it (its window's worth and the pipes) must outlive the
    // handler's last write.
    std::thread::sleep(Duration::from_millis(200));
    // A large connection window, the streams' given back 32 KiB at a
    // time, as browsers do.
    client.send(&window_update(0, 1 << 30)).expect("send");
    while let Some(f) = client.next(Duration::from_secs(10)) {
        assert_ne!(f.kind, RST_STREAM, "{f:?}");
        if f.kind != DATA {
            continue;
        }
        count(&f);
        // A slow-ish reader: what the server holds for it at the end
        // takes a while to go.
        std::thread::sleep(Duration::from_millis(1));
        let at = usize::from(f.stream == 3);
        unacked[at] += u32::try_from(f.payload.len()).expect("size");
        if unacked[at] >= 32 * 1024 {
            let _ = client.send(&window_update(f.stream, unacked[at]));
            unacked[at] = 0;
        }
    }
    let closed = client.closed;
    let took = stopper.join().expect("stopped");
    eprintln!(
        "graceful shutdown: {body:?} B, ended {ended:?}, GOAWAYs {:?}, closed {closed}, \
         stop took {took:?}",
        client.goaways
    );
    drop(idle);
    assert_eq!(
        (body, ended),
        ([8 * MIB, MIB], [true, true]),
        "the client loses nothing"
    );
    let last = client.goaways.last().expect("GOAWAY");
    assert_eq!(
        (last.last_stream(), last.code()),
        (3, 0),
        "GOAWAY names the last stream"
    );
    assert!(closed, "then the connection closes");
    assert!(
        took < grace / 2,
        "the idle connection did not hold the stop"
    );
}

/// Over TLS the server's answers pass through the session's buffer first:
/// it is bounded too, and a client that floods PINGs and reads nothing is
/// closed as over h2c.
#[test]
fn over_tls_a_ping_flood_that_reads_nothing_is_closed() {
    use crate::harness::tls;
    let _one = serial();
    let pki = tls::localhost_pki();
    let server = start(|c| {
        tls::with_tls(c, &pki);
        c.timeouts.write = Duration::from_secs(1);
    });
    let mut config = (*tls::client(&pki.ders, tls::BOTH)).clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let mut stream = tls::connect(tls::tls_addr(&server), &Arc::new(config), "localhost");
    assert_eq!(stream.conn.alpn_protocol(), Some(&b"h2"[..]));
    stream
        .sock
        .set_write_timeout(Some(Duration::from_millis(500)))
        .expect("write timeout");
    let mut hello = PREFACE.to_vec();
    hello.extend(settings(&[]));
    stream.write_all(&hello).expect("preface");
    let watch = RssWatch::start();
    let ping = frame(PING, 0, 0, &[7; 8]);
    let batch: Vec<u8> = std::iter::repeat_n(ping, 4096).flatten().collect();
    let started = Instant::now();
    let mut sent = 0;
    let closed = loop {
        if started.elapsed() > Duration::from_secs(6) {
            break false;
        }
        match stream.write(&batch) {
            Ok(n) => sent += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break true,
        }
    };
    let (before, peak) = watch.finish();
    eprintln!(
        "TLS PING flood, never read: closed {closed} after {} KiB in {:?}; RSS {:.1} -> peak \
         {:.1} MiB",
        sent / 1024,
        started.elapsed(),
        mib(before),
        mib(peak)
    );
    assert!(closed, "the connection is closed");
    assert!(peak < before + 16 * MIB, "bounded memory");
}
