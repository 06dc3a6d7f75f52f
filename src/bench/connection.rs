//! One connection's loop, the client's hot path: claim a batch, wait for
//! its time (`--rate`), connect if need be, send, read the answers, count.
//! Nothing here allocates per request or dispatches dynamically.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use conveyor::runtime::{self, timeout_at, Stream, TcpStream};

use super::args::{request_bytes, BenchOptions};
use super::counts::Failure;
use super::rate::{Pacer, TIMER_RESOLUTION};
use super::response::{Response, ResponseReader};
use super::run::Shared;
use super::tally::Tally;

/// One worker's share of the connections, numbered from `first`; returns
/// its counts. Once a second it publishes the second just ended.
pub(crate) async fn run_worker(
    options: BenchOptions,
    shared: Arc<Shared>,
    first: usize,
    connections: usize,
) -> Tally {
    let cpu_before = runtime::stats::thread_cpu_time();
    let spun_before = runtime::idle_spin_time();
    let tally = Rc::new(RefCell::new(Tally::new(options.rate.is_some())));
    let options = Rc::new(options);
    let tasks: Vec<_> = (first..first + connections)
        .map(|index| {
            let (options, shared, tally) = (options.clone(), shared.clone(), tally.clone());
            match options.h2 {
                true => runtime::spawn(super::h2::connection_loop(options, shared, tally, index)),
                false => runtime::spawn(connection_loop(options, shared, tally, index)),
            }
        })
        .collect();
    let all_done = async {
        for task in tasks {
            let _ = task.await;
        }
    };
    let publisher = async {
        for index in 0usize.. {
            runtime::sleep_until(shared.measure_from + Duration::from_secs(index as u64 + 1)).await;
            let second = tally.borrow_mut().series.at(index).clone();
            shared.live.publish(index, &second);
        }
    };
    runtime::race(all_done, publisher).await;
    let mut tally = tally.borrow().clone();
    // Idle spinning (see `run`) is waiting, not work: it is left out.
    let spun = runtime::idle_spin_time().saturating_sub(spun_before);
    tally.cpu = vec![runtime::stats::thread_cpu_time()
        .saturating_sub(cpu_before)
        .saturating_sub(spun)];
    tally
}

/// Why a slot's next connection is opened.
#[derive(Clone, Copy)]
pub(crate) enum Reopen {
    ServerClosed,
    CloseMode,
    AfterError,
}

/// Keeps one connection busy until the run ends: responses of any status
/// keep it; it is reopened after the server closes it (and after every
/// request with `--close`) and after errors. A connection that cannot be
/// opened because of the fd limit is given up: retrying cannot help.
///
/// With `--rate`, connection `index` sends on its own timetable: it waits
/// for a request's time (or sends at once when behind), and the request's
/// latency counts from that time.
async fn connection_loop(
    options: Rc<BenchOptions>,
    shared: Arc<Shared>,
    tally: Rc<RefCell<Tally>>,
    index: usize,
) {
    let mut slot = ClientConnection::new(options, shared, tally, index);
    loop {
        let batch = slot.shared.claim(slot.options.pipeline as u64);
        if batch == 0 {
            break;
        }
        let Ok(due) = wait_for_turn(slot.pacer.as_mut(), &slot.shared, batch).await else {
            break;
        };
        if slot.stream.is_none() {
            match slot.connect(batch).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(RunOver) => break,
            }
        }
        if slot.send(batch, due).await.is_err() {
            break;
        }
    }
    slot.opener.count_never_opened(&slot.shared, &slot.tally);
}

/// The loop ends: the run is over for this connection.
pub(crate) struct RunOver;

/// With `--rate`, waits for the batch's time on `pacer`'s timetable and
/// returns it; a time past the run's end gives the batch back.
pub(crate) async fn wait_for_turn(
    pacer: Option<&mut Pacer>,
    shared: &Shared,
    batch: u64,
) -> Result<Option<Instant>, RunOver> {
    let Some(due) = pacer.map(Pacer::next_send) else {
        return Ok(None);
    };
    if shared.deadline.is_some_and(|end| due >= end) {
        shared.unclaim(batch);
        return Err(RunOver);
    }
    // The timers wake on whole milliseconds, rounded up: asking for one
    // resolution early lands the send in [due - 1 ms, due] rather than
    // [due, due + 1 ms], so the client's own timer does not show up as
    // latency (an early send is timed from when it went out).
    let wake = due.checked_sub(TIMER_RESOLUTION).unwrap_or(due);
    if wake > Instant::now() {
        runtime::sleep_until(wake).await;
    }
    Ok(Some(due))
}

/// One connection slot's state across its loop (its connection is
/// reopened in place).
struct ClientConnection {
    options: Rc<BenchOptions>,
    shared: Arc<Shared>,
    tally: Rc<RefCell<Tally>>,
    /// With `--rate`: this connection's timetable.
    pacer: Option<Pacer>,
    /// `--pipeline` requests, of `one_len` bytes each.
    request: Vec<u8>,
    one_len: usize,
    reader: ResponseReader,
    stream: Option<Stream>,
    opener: Opener,
}

impl ClientConnection {
    fn new(
        options: Rc<BenchOptions>,
        shared: Arc<Shared>,
        tally: Rc<RefCell<Tally>>,
        index: usize,
    ) -> ClientConnection {
        let pacer = options
            .rate
            .map(|rate| Pacer::new(shared.started, rate, options.slots(), index));
        let request = request_bytes(&options);
        let one_len = request.len() / options.pipeline;
        ClientConnection {
            options,
            shared,
            tally,
            pacer,
            request,
            one_len,
            reader: ResponseReader::default(),
            stream: None,
            opener: Opener::default(),
        }
    }

    /// Opens the connection: `Ok(false)` when that failed and the batch
    /// was counted as failed (retry after a pause).
    async fn connect(&mut self, batch: u64) -> Result<bool, RunOver> {
        let opened = self
            .opener
            .open(&self.options, &self.shared, &self.tally, batch)
            .await?;
        let Some((stream, _h2)) = opened else {
            return Ok(false);
        };
        self.reader = ResponseReader::default();
        self.stream = Some(stream);
        Ok(true)
    }

    /// Sends a batch of `batch` requests (due at `due` with `--rate`) on
    /// the open connection and reads their answers.
    async fn send(&mut self, batch: u64, due: Option<Instant>) -> Result<(), RunOver> {
        let Some(conn) = self.stream.as_ref() else {
            return Ok(());
        };
        let (shared, tally) = (&self.shared, &self.tally);
        let sent_at = Instant::now();
        if let Some(due) = due {
            tally.borrow_mut().sent(shared, sent_at, due);
        }
        let bytes = &self.request[..self.one_len * batch as usize];
        let mut answered = 0;
        let mut record = |response: Response| {
            tally
                .borrow_mut()
                .record(shared, Instant::now(), sent_at, due, &response);
            shared.responses.fetch_add(1, Ordering::Relaxed);
        };
        let outcome = timeout_at(
            shared.limit(),
            exchange(
                conn,
                bytes,
                batch,
                &mut self.reader,
                &mut answered,
                &mut record,
            ),
        )
        .await;
        let unanswered = batch - answered;
        let reopen = match outcome {
            // The server ended the connection deliberately (e.g. its
            // per-connection request limit): requests it did not answer go
            // back to the budget, not into the errors.
            Ok(Ok(closed)) if closed || self.options.close => {
                shared.unclaim(unanswered);
                if self.options.close {
                    Reopen::CloseMode
                } else {
                    Reopen::ServerClosed
                }
            }
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) => {
                tally
                    .borrow_mut()
                    .fail(shared, Failure::of(&e), unanswered, &e);
                Reopen::AfterError
            }
            Err(_) if shared.ended() => {
                tally.borrow_mut().unanswered += unanswered;
                return Err(RunOver);
            }
            Err(_) => {
                let e = io::ErrorKind::TimedOut.into();
                tally
                    .borrow_mut()
                    .fail(shared, Failure::Timeout, unanswered, &e);
                Reopen::AfterError
            }
        };
        self.stream = None;
        self.opener.reopen = Some(reopen);
        Ok(())
    }
}

/// Opens a slot's connections (TCP, then TLS for https://) and counts
/// them: opened, reopened and why, never opened and why.
#[derive(Default)]
pub(crate) struct Opener {
    ever_opened: bool,
    last_failure: Option<Failure>,
    /// Why the next connection is opened, for the counts.
    pub(crate) reopen: Option<Reopen>,
}

impl Opener {
    /// Opens a connection: the stream and whether TLS chose h2, or `None`
    /// when that failed and `batch` requests were counted as failed (after
    /// a pause, so a refusing server is not hammered).
    pub(crate) async fn open(
        &mut self,
        options: &BenchOptions,
        shared: &Shared,
        tally: &RefCell<Tally>,
        batch: u64,
    ) -> Result<Option<(Stream, bool)>, RunOver> {
        let error = match timeout_at(shared.limit(), open(options, shared)).await {
            Ok(Ok(opened)) => {
                let mut t = tally.borrow_mut();
                t.connections.opened += 1;
                match self.reopen.take() {
                    Some(Reopen::ServerClosed) => t.connections.reopened_server_closed += 1,
                    Some(Reopen::CloseMode) => t.connections.reopened_close += 1,
                    Some(Reopen::AfterError) => t.connections.reopened_after_error += 1,
                    None => {}
                }
                self.ever_opened = true;
                return Ok(Some(opened));
            }
            Ok(Err(e)) => e,
            // Cut by the run's end: neither sent nor failed.
            Err(_) if shared.ended() => {
                shared.unclaim(batch);
                return Err(RunOver);
            }
            Err(_) => io::ErrorKind::TimedOut.into(),
        };
        let failure = Failure::of(&error);
        {
            let mut t = tally.borrow_mut();
            t.fail(shared, failure, batch, &error);
            if Tally::second(shared, Instant::now()).is_some() {
                t.connect_errors.add(failure, batch);
            }
        }
        self.last_failure = Some(failure);
        if failure == Failure::FdLimit {
            return Err(RunOver);
        }
        // Not a busy loop against a server that refuses.
        runtime::sleep_until(
            shared
                .limit()
                .min(Instant::now() + Duration::from_millis(10)),
        )
        .await;
        Ok(None)
    }

    /// A slot that never had a connection counts as not opened, by why.
    pub(crate) fn count_never_opened(&self, shared: &Shared, tally: &RefCell<Tally>) {
        if self.ever_opened {
            return;
        }
        let mut t = tally.borrow_mut();
        match self.last_failure {
            Some(failure) => t.connections.not_opened.add(failure, 1),
            // Never tried, or cut while connecting: with -d the run ended
            // first; with -n the budget was spent by others (not a failure).
            None if shared.deadline.is_some() => t.connections.not_opened_run_ended += 1,
            None => {}
        }
    }
}

/// Connects to the target: TCP, then the TLS handshake for `https://`;
/// with `--h2` over TLS, a server that does not choose `h2` is an error.
async fn open(options: &BenchOptions, shared: &Shared) -> io::Result<(Stream, bool)> {
    let socket = TcpStream::connect(options.addr).await?;
    let Some(client) = &shared.tls else {
        return Ok((Stream::plain(socket), false));
    };
    let (stream, h2) = client.handshake(socket).await?;
    if options.h2 && !h2 {
        return Err(io::Error::other(
            "the server did not choose h2 by ALPN (it speaks HTTP/1.1 only over TLS?)",
        ));
    }
    Ok((stream, h2))
}

/// Sends the requests and reads `count` complete, well-formed responses of
/// any status (fewer if one of them closes the connection), passing each to
/// `record` and counting it in `answered`. Returns whether the connection
/// is closed.
async fn exchange(
    stream: &Stream,
    request: &[u8],
    count: u64,
    reader: &mut ResponseReader,
    answered: &mut u64,
    record: &mut impl FnMut(Response),
) -> io::Result<bool> {
    stream.write_all(request).await?;
    while *answered < count {
        let response = reader.next(stream).await?;
        *answered += 1;
        let closes = response.closes;
        record(response);
        if closes {
            return Ok(true);
        }
    }
    Ok(false)
}
