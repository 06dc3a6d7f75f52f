//! A raw HTTP/2 client for attack tests (h2c with prior knowledge): frames
//! written and read by hand, HPACK encoded by hand (static table
//! references, literals with and without indexing, dynamic table
//! references), and the measures the attacks take (RSS, floods, p99).
//! Shared by tests/it/http2_attacks.rs and tests/it/http2_native_attacks.rs;
//! their tests take one lock ([`serial`]), so that they measure one attack
//! at a time: RSS is the whole process's.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{rss_bytes, TestServer};

pub(crate) const DATA: u8 = 0x0;
pub(crate) const HEADERS: u8 = 0x1;
pub(crate) const PRIORITY: u8 = 0x2;
pub(crate) const RST_STREAM: u8 = 0x3;
pub(crate) const SETTINGS: u8 = 0x4;
pub(crate) const PING: u8 = 0x6;
pub(crate) const GOAWAY: u8 = 0x7;
pub(crate) const WINDOW_UPDATE: u8 = 0x8;
pub(crate) const CONTINUATION: u8 = 0x9;

pub(crate) const END_STREAM: u8 = 0x1;
pub(crate) const ACK: u8 = 0x1;
pub(crate) const END_HEADERS: u8 = 0x4;

pub(crate) const CANCEL: u32 = 0x8;
pub(crate) const REFUSED_STREAM: u32 = 0x7;
pub(crate) const ENHANCE_YOUR_CALM: u32 = 0xb;

pub(crate) const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
pub(crate) const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;

pub(crate) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
pub(crate) const MIB: u64 = 1024 * 1024;

/// One attack at a time: RSS is the whole process's.
pub(crate) fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn start(tweak: impl FnOnce(&mut conveyor::config::Config)) -> TestServer {
    super::start(super::ACCEPTORS[0], super::DISPATCHERS[0], tweak)
}

// ---- frames ---------------------------------------------------------------

pub(crate) fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("payload fits");
    assert!(len < 1 << 24);
    let mut out = Vec::with_capacity(9 + payload.len());
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

pub(crate) fn settings(pairs: &[(u16, u32)]) -> Vec<u8> {
    let mut payload = Vec::new();
    for (id, value) in pairs {
        payload.extend_from_slice(&id.to_be_bytes());
        payload.extend_from_slice(&value.to_be_bytes());
    }
    frame(SETTINGS, 0, 0, &payload)
}

pub(crate) fn window_update(stream: u32, increment: u32) -> Vec<u8> {
    frame(WINDOW_UPDATE, 0, stream, &increment.to_be_bytes())
}

pub(crate) fn rst_stream(stream: u32, code: u32) -> Vec<u8> {
    frame(RST_STREAM, 0, stream, &code.to_be_bytes())
}

pub(crate) fn headers(stream: u32, block: &[u8], flags: u8) -> Vec<u8> {
    frame(HEADERS, flags, stream, block)
}

/// A GET's HEADERS frame, whole (END_HEADERS) and ending the stream.
pub(crate) fn get(stream: u32, path: &str) -> Vec<u8> {
    headers(stream, &get_block(path), END_STREAM | END_HEADERS)
}

// ---- HPACK, by hand (RFC 7541) --------------------------------------------

/// An integer with an `n`-bit prefix, the prefix's other bits `pattern`.
pub(crate) fn hpack_int(out: &mut Vec<u8>, n: u32, pattern: u8, value: usize) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(pattern | u8::try_from(value).expect("small"));
        return;
    }
    out.push(pattern | u8::try_from(max).expect("prefix"));
    let mut rest = value - max;
    while rest >= 128 {
        out.push(u8::try_from(rest % 128).expect("7 bits") | 0x80);
        rest /= 128;
    }
    out.push(u8::try_from(rest).expect("7 bits"));
}

/// A string literal, not Huffman-coded.
pub(crate) fn hpack_str(out: &mut Vec<u8>, s: &[u8]) {
    hpack_int(out, 7, 0, s.len());
    out.extend_from_slice(s);
}

/// `:method GET`, `:scheme http` (static 2, 6), `:path` and `:authority`
/// as literals without indexing on static names (4, 1).
pub(crate) fn get_block(path: &str) -> Vec<u8> {
    let mut block = vec![0x82, 0x86];
    hpack_int(&mut block, 4, 0x00, 4);
    hpack_str(&mut block, path.as_bytes());
    hpack_int(&mut block, 4, 0x00, 1);
    hpack_str(&mut block, b"test");
    block
}

/// A literal with incremental indexing and a new name: it enters the
/// dynamic table (index 62 once it is the newest entry).
pub(crate) fn hpack_insert(block: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    block.push(0x40);
    hpack_str(block, name);
    hpack_str(block, value);
}

/// The first byte of a header block's first field, past the dynamic
/// table size updates (RFC 7541 §6.3) a block may begin with: the native
/// encoder sends them after the client's SETTINGS_HEADER_TABLE_SIZE
/// changed and once an idle connection dropped its table.
pub(crate) fn first_field(block: &[u8]) -> Option<u8> {
    let mut at = 0;
    while block.get(at)? & 0xe0 == 0x20 {
        // A 5-bit prefix integer: continuation bytes have the top bit.
        let full = block[at] & 0x1f == 0x1f;
        at += 1;
        if full {
            while block.get(at)? & 0x80 != 0 {
                at += 1;
            }
            at += 1;
        }
    }
    block.get(at).copied()
}

/// The first byte of a response's header block for `:status 200`
/// (static index 8, as the h2 crate encodes it).
pub(crate) const STATUS_200: u8 = 0x88;

// ---- a raw client ---------------------------------------------------------

#[derive(Debug)]
pub(crate) struct Frame {
    pub(crate) kind: u8,
    pub(crate) flags: u8,
    pub(crate) stream: u32,
    pub(crate) payload: Vec<u8>,
}

impl Frame {
    /// The error code of a RST_STREAM or GOAWAY.
    pub(crate) fn code(&self) -> u32 {
        let at = if self.kind == GOAWAY { 4 } else { 0 };
        u32::from_be_bytes(self.payload[at..at + 4].try_into().expect("4 bytes"))
    }

    /// A GOAWAY's last stream id.
    pub(crate) fn last_stream(&self) -> u32 {
        u32::from_be_bytes(self.payload[..4].try_into().expect("4 bytes")) & 0x7fff_ffff
    }
}

pub(crate) struct Client {
    pub(crate) stream: TcpStream,
    pub(crate) carry: Vec<u8>,
    /// The server's SETTINGS, as sent.
    pub(crate) server_settings: Vec<(u16, u32)>,
    /// The peer closed (EOF or reset).
    pub(crate) closed: bool,
    /// Every GOAWAY seen.
    pub(crate) goaways: Vec<Frame>,
}

impl Client {
    /// Connects, sends the preface with `ours`, reads the server's
    /// SETTINGS and acknowledges them.
    pub(crate) fn open(addr: SocketAddr, ours: &[(u16, u32)]) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        stream
            .set_write_timeout(Some(Duration::from_secs(5)))
            .expect("write timeout");
        let mut client = Client {
            stream,
            carry: Vec::new(),
            server_settings: Vec::new(),
            closed: false,
            goaways: Vec::new(),
        };
        let mut hello = PREFACE.to_vec();
        hello.extend(settings(ours));
        client.send(&hello).expect("preface");
        let first = client
            .next(Duration::from_secs(5))
            .expect("the server's SETTINGS");
        assert_eq!((first.kind, first.flags & ACK), (SETTINGS, 0), "{first:?}");
        for pair in first.payload.chunks_exact(6) {
            let id = u16::from_be_bytes([pair[0], pair[1]]);
            let value = u32::from_be_bytes([pair[2], pair[3], pair[4], pair[5]]);
            client.server_settings.push((id, value));
        }
        client.send(&frame(SETTINGS, ACK, 0, &[])).expect("ack");
        client
    }

    pub(crate) fn setting(&self, id: u16) -> Option<u32> {
        self.server_settings
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, v)| *v)
    }

    pub(crate) fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// The next frame within `limit`; None on close or timeout. PINGs are
    /// answered, as a well-behaved client does.
    pub(crate) fn next(&mut self, limit: Duration) -> Option<Frame> {
        let deadline = Instant::now() + limit;
        loop {
            if self.carry.len() >= 9 {
                let len = usize::from(self.carry[0]) << 16
                    | usize::from(self.carry[1]) << 8
                    | usize::from(self.carry[2]);
                if self.carry.len() >= 9 + len {
                    let head: Vec<u8> = self.carry.drain(..9).collect();
                    let payload = self.carry.drain(..len).collect();
                    let stream =
                        u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
                    let frame = Frame {
                        kind: head[3],
                        flags: head[4],
                        stream,
                        payload,
                    };
                    if frame.kind == PING && frame.flags & ACK == 0 {
                        let _ = self.send(&self::frame(PING, ACK, 0, &frame.payload));
                    }
                    if frame.kind == GOAWAY {
                        self.goaways.push(Frame {
                            payload: frame.payload.clone(),
                            ..frame
                        });
                    }
                    return Some(frame);
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.closed {
                return None;
            }
            self.stream.set_read_timeout(Some(left)).expect("timeout");
            let mut buf = [0u8; 65536];
            match self.stream.read(&mut buf) {
                Ok(0) => self.closed = true,
                Ok(n) => self.carry.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return None
                }
                Err(_) => self.closed = true,
            }
        }
    }

    /// Reads frames until `wanted` picks one (returned), the peer closes or
    /// `limit` passes (None).
    pub(crate) fn until(
        &mut self,
        limit: Duration,
        mut wanted: impl FnMut(&Frame) -> bool,
    ) -> Option<Frame> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let frame = self.next(left)?;
            if wanted(&frame) {
                return Some(frame);
            }
        }
    }

    /// Reads until the peer closes within `limit`; true if it did.
    pub(crate) fn closes_within(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while !self.closed {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let _ = self.next(left);
        }
        true
    }

    /// One stream's response: the first byte of its header block and the
    /// body's length, reading with the windows reopened as data comes.
    /// None if the stream is reset or the connection ends first.
    pub(crate) fn response(&mut self, id: u32, limit: Duration) -> Option<(u8, u64)> {
        let deadline = Instant::now() + limit;
        let mut status = None;
        let mut body = 0u64;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let frame = self.next(left)?;
            if frame.stream != id {
                continue;
            }
            match frame.kind {
                HEADERS if status.is_none() => status = first_field(&frame.payload),
                DATA => {
                    let n = u32::try_from(frame.payload.len()).expect("frame size");
                    body += u64::from(n);
                    if n > 0 {
                        let mut more = window_update(0, n);
                        more.extend(window_update(id, n));
                        let _ = self.send(&more);
                    }
                }
                RST_STREAM => return None,
                _ => {}
            }
            if frame.flags & END_STREAM != 0 && matches!(frame.kind, HEADERS | DATA) {
                return Some((status?, body));
            }
        }
    }
}

// ---- measures -------------------------------------------------------------

/// Samples RSS every 2 ms on a thread until stopped: the peak is what an
/// attack made the process hold, even if it was freed before the end.
pub(crate) struct RssWatch {
    pub(crate) before: u64,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) sampler: JoinHandle<u64>,
}

impl RssWatch {
    pub(crate) fn start() -> RssWatch {
        let before = rss_bytes();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let sampler = std::thread::spawn(move || {
            let mut peak = rss_bytes();
            let deadline = Instant::now() + Duration::from_secs(60);
            while !flag.load(Ordering::Relaxed) && Instant::now() < deadline {
                peak = peak.max(rss_bytes());
                std::thread::sleep(Duration::from_millis(2));
            }
            peak.max(rss_bytes())
        });
        RssWatch {
            before,
            stop,
            sampler,
        }
    }

    /// (before, peak) in bytes.
    pub(crate) fn finish(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        let peak = self.sampler.join().expect("sampler");
        (self.before, peak)
    }
}

pub(crate) fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB as f64
}

/// Writes `unit` over and over, never reading, until the write fails (the
/// server closed: true), `max_bytes` went out or `limit` passed (false).
/// Returns the bytes written and whether the server closed.
pub(crate) fn flood(
    stream: &mut TcpStream,
    unit: &[u8],
    max_bytes: usize,
    limit: Duration,
) -> (usize, bool) {
    let mut batch = Vec::with_capacity(64 * 1024 + unit.len());
    while batch.len() < 64 * 1024 {
        batch.extend_from_slice(unit);
    }
    stream
        .set_write_timeout(Some(Duration::from_millis(500)))
        .expect("write timeout");
    let deadline = Instant::now() + limit;
    let mut sent = 0;
    while sent < max_bytes && Instant::now() < deadline {
        match stream.write(&batch) {
            Ok(0) => return (sent, true),
            Ok(n) => sent += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return (sent, true),
        }
    }
    (sent, false)
}

/// How many frames `bytes` holds, whole.
pub(crate) fn frames_in(mut bytes: &[u8]) -> usize {
    let mut n = 0;
    while bytes.len() >= 9 {
        let len = usize::from(bytes[1]) << 8 | usize::from(bytes[2]);
        bytes = &bytes[(9 + len).min(bytes.len())..];
        n += 1;
    }
    n
}

pub(crate) fn p99(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    let at = (samples.len() * 99).div_ceil(100).saturating_sub(1);
    samples[at]
}

/// `n` GETs of /index.html one after another on one h2 connection: the
/// latency of each.
pub(crate) fn latencies(addr: SocketAddr, n: u32) -> Vec<Duration> {
    let mut client = Client::open(addr, &[]);
    (0..n)
        .map(|i| {
            let id = 1 + 2 * i;
            let started = Instant::now();
            client.send(&get(id, "/index.html")).expect("send");
            let (status, _) = client
                .response(id, Duration::from_secs(10))
                .expect("a response");
            assert_eq!(status, STATUS_200);
            started.elapsed()
        })
        .collect()
}

/// A sparse file of `len` bytes at `rel` under the server's root.
pub(crate) fn sparse_file(server: &TestServer, rel: &str, len: u64) {
    let file = std::fs::File::create(server.root.join(rel)).expect("create");
    file.set_len(len).expect("set_len");
}
