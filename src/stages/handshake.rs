//! The handshake stage: TLS listeners' acceptors push new connections onto a
//! per-worker handshake queue; a loop per worker pops them and gives each a
//! green thread that drives rustls until the handshake completes (within
//! `timeouts.header_read` of the accept), then puts the connection on the
//! worker's pending queue like any other. A handshake (hundreds of
//! microseconds of CPU) thus never runs inside the handler, and requests
//! already flowing keep their turns.
//!
//! A client that speaks plain HTTP to the TLS port gets a plain-text 400
//! saying so, then the close. A handshake that agreed on `acme-tls/1` (an
//! ACME CA validating tls-alpn-01, RFC 8737) is closed once done: it has
//! seen its challenge certificate and is never served HTTP.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustls::{HandshakeKind, ServerConnection};

use crate::config::Overload;
use crate::runtime::{self, timeout, timeout_at, Handle, TcpStream};
use crate::service::status::TlsReport;
use crate::tls::{CertificateFiles, PreparedKeys, TlsError, TlsKeys, TlsSession};

use super::conn::WorkerQueues;
use super::pending::{admit, reject_stream};
use super::{Conn, Line};

/// The first byte of a TLS handshake record.
const HANDSHAKE_RECORD: u8 = 0x16;

/// The handshake stage: its queues, its keys and its counters.
pub struct Handshake {
    keys: TlsKeys,
    queues: WorkerQueues,
    completed: AtomicU64,
    resumed: AtomicU64,
    failed: AtomicU64,
    plain_http: AtomicU64,
    acme_validations: AtomicU64,
    https_port: std::sync::OnceLock<u16>,
}

impl Handshake {
    /// A stage for `workers` workers, each queue holding `capacity` connections.
    pub fn new(keys: TlsKeys, workers: usize, capacity: usize) -> Handshake {
        Handshake {
            keys,
            queues: WorkerQueues::new(workers, capacity),
            completed: AtomicU64::new(0),
            resumed: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            plain_http: AtomicU64::new(0),
            acme_validations: AtomicU64::new(0),
            https_port: std::sync::OnceLock::new(),
        }
    }

    /// Records the port HTTPS is served on (the first TLS listener's),
    /// where `tls.redirect_http` sends plain-HTTP clients.
    pub fn set_https_port(&self, port: u16) {
        let _ = self.https_port.set(port);
    }

    /// The port HTTPS is served on, once a TLS listener is bound.
    pub fn https_port(&self) -> Option<u16> {
        self.https_port.get().copied()
    }

    /// Whether the certificates in use serve `host` (a name without its
    /// port): where `tls.redirect_http` may send a client.
    pub fn serves(&self, host: &str) -> bool {
        self.keys.serves(host)
    }

    /// Loads new certificates for the handshakes that start from now on
    /// (SIGHUP); open connections keep theirs. A bad file keeps the old ones.
    pub fn reload(&self, certificates: &[CertificateFiles]) -> Result<(), TlsError> {
        self.keys.reload(certificates)
    }

    /// Reads and checks `certificates` for a reload without using them yet.
    pub fn prepare(&self, certificates: &[CertificateFiles]) -> Result<PreparedKeys, TlsError> {
        self.keys.prepare(certificates)
    }

    /// Makes certificates [`Self::prepare`] read current for new handshakes.
    pub fn install(&self, prepared: PreparedKeys) {
        self.keys.install(prepared);
    }

    /// The keys in use: the ACME manager installs its certificate there.
    pub fn keys(&self) -> &TlsKeys {
        &self.keys
    }

    /// Takes a new connection onto `worker`'s handshake queue, by the
    /// overload policy: wait for room, or answer 503 and close. Under
    /// `codel` it waits: the pending queue that follows does the shedding,
    /// by the wait measured there.
    pub async fn admit(&self, line: &Line, worker: usize, conn: Conn) {
        let queue = self.queues.of(worker);
        match line.config.load().queue.overload {
            Overload::Wait | Overload::Codel => queue.send(conn).await,
            Overload::Reject => {
                if let Err(crate::runtime::Full(conn)) = queue.try_send(conn) {
                    reject_stream(line, &conn.stream);
                }
            }
        }
    }

    /// Starts the loop on every worker that gives each queued connection a
    /// handshake green thread.
    pub fn start(self: &Arc<Self>, runtime: &Handle, line: &Arc<Line>) {
        let run =
            |stage: Arc<Self>, conn, line: Arc<Line>| async move { stage.shake(conn, &line).await };
        WorkerQueues::start(self, |s| &s.queues, run, runtime, line);
    }

    /// Drives one handshake, then hands the connection to the line.
    async fn shake(&self, mut conn: Conn, line: &Line) {
        if line.shutdown.is_set() {
            return;
        }
        let config = line.config.load();
        let deadline = conn.ready_since + config.timeouts.header_read;
        let offer_h2 = config.http2.tls && config.http2.allowed_on(|| conn.stream.local_addr());
        let mut tls = match self.keys.accept(offer_h2) {
            Ok(tls) => tls,
            Err(_) => return self.fail(),
        };
        let Some(socket) = conn.stream.socket() else {
            return self.fail();
        };
        let result = timeout_at(deadline, drive(socket, &mut tls)).await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(HandshakeFailure::PlainHttp)) => {
                self.plain_http.fetch_add(1, Ordering::Relaxed);
                self.fail();
                let mut out = Vec::with_capacity(256);
                crate::http::write_error(
                    &mut out,
                    400,
                    "this port speaks HTTPS: use an https:// URL",
                    false,
                    &[],
                );
                let limit = config.timeouts.write.min(Duration::from_secs(5));
                if let Ok(Ok(())) = timeout(limit, socket.write_all(&out)).await {
                    // The client goes on sending its request: a plain
                    // close would reset the 400 away.
                    conn.close_lingering(config.timeouts.lingering).await;
                }
                return;
            }
            Ok(Err(HandshakeFailure::Io(_))) | Err(_) => return self.fail(),
        }
        self.completed.fetch_add(1, Ordering::Relaxed);
        if tls.handshake_kind() == Some(HandshakeKind::Resumed) {
            self.resumed.fetch_add(1, Ordering::Relaxed);
        }
        if tls.alpn_protocol() == Some(crate::tls::ACME_TLS_ALPN) {
            self.acme_validations.fetch_add(1, Ordering::Relaxed);
            tls.send_close_notify();
            while tls.wants_write() {
                match timeout_at(deadline, socket.write_with(|mut s| tls.write_tls(&mut s))).await {
                    Ok(Ok(_)) => {}
                    _ => break,
                }
            }
            return;
        }
        let h2 = tls.alpn_protocol() == Some(b"h2");
        conn.stream
            .secure(Box::new(std::cell::RefCell::new(TlsSession(tls.into()))));
        conn.ready_since = runtime::now();
        match h2 {
            true => line.http2.admit(line, conn).await,
            false => admit(line, line.local_pending(), conn).await,
        }
    }

    fn fail(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }

    /// The figures `/status` shows.
    pub fn snapshot(&self) -> TlsReport {
        let (depth, capacity) = self.queues.depth_and_capacity();
        TlsReport {
            depth,
            capacity,
            completed: self.completed.load(Ordering::Relaxed),
            resumed: self.resumed.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            plain_http: self.plain_http.load(Ordering::Relaxed),
            acme_validations: self.acme_validations.load(Ordering::Relaxed),
        }
    }
}

/// Why a handshake did not complete.
enum HandshakeFailure {
    /// The client's first bytes were not a TLS record (plain HTTP).
    PlainHttp,
    Io(#[allow(dead_code)] io::Error),
}

impl From<io::Error> for HandshakeFailure {
    fn from(e: io::Error) -> HandshakeFailure {
        HandshakeFailure::Io(e)
    }
}

/// Reads and writes handshake records until the handshake is done and
/// every record it produced (tickets included) is sent.
async fn drive(socket: &TcpStream, tls: &mut ServerConnection) -> Result<(), HandshakeFailure> {
    let mut first = [0u8; 1];
    match socket.read_with(|s| s.peek(&mut first)).await? {
        0 => return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into()),
        _ if first[0] != HANDSHAKE_RECORD => return Err(HandshakeFailure::PlainHttp),
        _ => {}
    }
    loop {
        while tls.wants_write() {
            socket.write_with(|mut s| tls.write_tls(&mut s)).await?;
        }
        if !tls.is_handshaking() {
            return Ok(());
        }
        if socket.read_with(|mut s| tls.read_tls(&mut s)).await? == 0 {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
        }
        if let Err(e) = tls.process_new_packets() {
            // The alert rustls queued, if the socket takes it at once.
            let _ = tls.write_tls(&mut socket.get_ref());
            return Err(io::Error::new(io::ErrorKind::InvalidData, e).into());
        }
    }
}
