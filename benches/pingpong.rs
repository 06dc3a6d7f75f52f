//! Request/response over loopback TCP: `cargo bench --bench pingpong`.
//!
//! The server is a one-worker runtime with a green thread per connection:
//! read up to 4 KiB, write back a fixed 64-byte reply, repeat until EOF. The
//! client is plain OS threads with blocking std `TcpStream`s, each doing a
//! fixed number of round trips of a 16-byte message. All traffic goes to
//! 127.0.0.1 and every mode stops by itself.
//!
//! Usage (arguments after `cargo bench --bench pingpong --`):
//! - (nothing): both poll modes in turn, in-process, and a req/s table.
//! - `edge` | `oneshot`: that mode only, in-process (also `CONVEYOR_POLL_MODE`).
//! - `server <edge|oneshot> <addr> [conns]`: only the server, as its own
//!   process (for `perf stat`/`strace`); exits once `conns` connections
//!   (default 32) have come and gone, printing the requests it served.
//! - `client <addr> [conns] [round_trips]`: only the client.

use std::cell::Cell;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream as StdStream};
use std::rc::Rc;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use conveyor::runtime::{self, Async, PollMode, Runtime, TcpListener};

const REQUEST: [u8; 16] = *b"ping-0123456789\n";
const REPLY: [u8; 64] = [b'r'; 64];
const CONNS: usize = 32;
const ROUND_TRIPS: usize = 20_000;

fn parse_mode(s: &str) -> PollMode {
    s.parse().unwrap_or_else(|e| panic!("{e}"))
}

/// One connection: read up to 4 KiB, answer each read with the 64-byte reply.
async fn connection(stream: Async<StdStream>, served: Rc<Cell<u64>>) {
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if stream.write_all(&REPLY).await.is_err() {
                    return;
                }
                served.set(served.get() + 1);
            }
        }
    }
}

/// Accepts `conns` connections, serves each on its own green thread, returns
/// the number of requests served once all have closed.
async fn serve(listener: TcpListener, conns: usize) -> u64 {
    let served = Rc::new(Cell::new(0));
    let mut handles = Vec::with_capacity(conns);
    for _ in 0..conns {
        let (stream, _) = listener.accept().await.expect("accept");
        stream.set_nodelay(true).expect("nodelay");
        // accept4(SOCK_NONBLOCK) already made it non-blocking.
        let stream = Async::new_nonblocking(stream);
        handles.push(runtime::spawn(connection(stream, served.clone())));
    }
    for handle in handles {
        let _ = handle.await;
    }
    served.get()
}

/// Runs the server on the calling thread (one worker) with `mode`.
fn run_server(mode: PollMode, listener: std::net::TcpListener, conns: usize) -> u64 {
    Runtime::builder()
        .workers(1)
        .poll_mode(mode)
        .block_on(async move {
            let listener = TcpListener::from_std(listener).expect("listener");
            serve(listener, conns).await
        })
}

/// Blocking client: `conns` threads, `round_trips` each. Returns the elapsed
/// time of the round-trip phase (all connections are open before it starts).
fn run_client(addr: SocketAddr, conns: usize, round_trips: usize) -> Duration {
    let barrier = Arc::new(Barrier::new(conns + 1));
    let threads: Vec<_> = (0..conns)
        .map(|_| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut stream = StdStream::connect(addr).expect("connect");
                stream.set_nodelay(true).expect("nodelay");
                let mut reply = [0u8; 64];
                barrier.wait();
                for _ in 0..round_trips {
                    stream.write_all(&REQUEST).expect("write");
                    stream.read_exact(&mut reply).expect("read");
                }
                assert_eq!(reply, REPLY);
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    for thread in threads {
        thread.join().expect("client thread");
    }
    start.elapsed()
}

/// Server on a thread of this process, client on others; returns req/s.
fn in_process(mode: PollMode, conns: usize, round_trips: usize) -> f64 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = std::thread::spawn(move || run_server(mode, listener, conns));
    let elapsed = run_client(addr, conns, round_trips);
    let served = server.join().expect("server thread");
    let total = (conns * round_trips) as u64;
    assert_eq!(served, total, "every request answered");
    total as f64 / elapsed.as_secs_f64()
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let arg = |i: usize| args.get(i).map(String::as_str);
    let num = |i: usize, default: usize| arg(i).map_or(default, |s| s.parse().expect("number"));
    match arg(0) {
        Some("server") => {
            let mode = parse_mode(arg(1).expect("server <mode> <addr> [conns]"));
            let addr: SocketAddr = arg(2).expect("server <mode> <addr>").parse().expect("addr");
            let listener = std::net::TcpListener::bind(addr).expect("bind");
            let served = run_server(mode, listener, num(3, CONNS));
            println!("server ({mode:?}): served {served} requests");
        }
        Some("client") => {
            let addr: SocketAddr = arg(1).expect("client <addr>").parse().expect("addr");
            let (conns, round_trips) = (num(2, CONNS), num(3, ROUND_TRIPS));
            let elapsed = run_client(addr, conns, round_trips);
            let total = conns * round_trips;
            println!(
                "client: {total} requests in {:.3} s = {:.0} req/s",
                elapsed.as_secs_f64(),
                total as f64 / elapsed.as_secs_f64()
            );
        }
        mode => {
            let env = std::env::var("CONVEYOR_POLL_MODE").ok();
            let modes: Vec<PollMode> = match mode.or(env.as_deref()) {
                Some(m) => vec![parse_mode(m)],
                None => PollMode::ALL.to_vec(),
            };
            println!("| poll mode | connections | round trips each | req/s (best of 3) |");
            println!("|---|---:|---:|---:|");
            for mode in modes {
                let best = (0..3)
                    .map(|_| in_process(mode, CONNS, ROUND_TRIPS))
                    .fold(0.0, f64::max);
                println!("| {mode:?} | {CONNS} | {ROUND_TRIPS} | {best:.0} |");
            }
        }
    }
}
