//! The green-thread runtime, exercised through its public API with real
//! threads, sockets and pipes.

use std::cell::Cell;
use std::io::{Read, Write};
use std::net::{TcpListener as StdListener, TcpStream as StdStream};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::harness::wait_until;

use conveyor::runtime::{
    self, block_on, sleep, stats::thread_cpu_time, timeout, yield_now, Async, PollMode, Queue,
    Runtime,
};

fn two_workers() -> Runtime {
    Runtime::builder().workers(2).build().expect("runtime")
}

#[test]
fn hundred_thousand_green_threads_deliver_every_token() {
    let rt = two_workers();
    let received = rt.block_on(async {
        let queue = Queue::bounded(1024);
        for token in 0..100_000u32 {
            let queue = queue.clone();
            runtime::handle()
                .spawn(async move { queue.send(token).await })
                .detach();
        }
        let mut seen = vec![false; 100_000];
        for _ in 0..100_000 {
            let token = queue.recv().await as usize;
            assert!(!seen[token], "token {token} delivered twice");
            seen[token] = true;
        }
        seen.iter().filter(|s| **s).count()
    });
    assert_eq!(received, 100_000);
}

#[test]
fn one_producer_tokens_arrive_in_order_across_workers() {
    let rt = two_workers();
    let queue = Queue::bounded(64);
    let producer_queue = queue.clone();
    let producer = rt.spawn_on(1, async move {
        for token in 0..100_000u32 {
            producer_queue.send(token).await;
        }
    });
    let in_order = rt.block_on(async move {
        for expected in 0..100_000u32 {
            if queue.recv().await != expected {
                return false;
            }
        }
        producer.await.is_ok()
    });
    assert!(in_order);
}

#[test]
fn recv_on_one_worker_is_woken_by_send_from_another() {
    let rt = two_workers();
    let queue: Queue<&'static str> = Queue::unbounded();
    let receiver_queue = queue.clone();
    let receiver = rt.spawn_on(1, async move {
        (receiver_queue.recv().await, runtime::current_worker())
    });
    // The receiver must be parked before the send, or the wake is not tested.
    assert!(wait_until(Duration::from_secs(5), || rt.stats()[1].parks >= 1));
    let before = rt.stats()[1].wakes_remote;
    let got = rt.block_on(async move {
        queue.send("hello").await;
        receiver.await
    });
    assert_eq!(got, Ok(("hello", Some(1))));
    assert!(
        rt.stats()[1].wakes_remote > before,
        "the wake crossed workers"
    );
}

fn socket_pair() -> (StdStream, StdStream) {
    let listener = StdListener::bind("127.0.0.1:0").expect("bind");
    let client = StdStream::connect(listener.local_addr().expect("addr")).expect("connect");
    let (server, _) = listener.accept().expect("accept");
    (client, server)
}

#[test]
fn socket_read_is_woken_by_data_from_another_thread() {
    let rt = two_workers();
    let (mut client, server) = socket_pair();
    let reader = rt.spawn_on(1, async move {
        let stream = Async::new(server)?;
        let mut buf = [0u8; 16];
        let n = stream.read(&mut buf).await?;
        Ok::<_, std::io::Error>(buf[..n].to_vec())
    });
    assert!(wait_until(Duration::from_secs(5), || rt.stats()[1].parks >= 1));
    client.write_all(b"ping").expect("write");
    let got = rt.block_on(reader).expect("joined").expect("read");
    assert_eq!(got, b"ping");
}

/// What woke a parked reader.
#[derive(Debug, PartialEq)]
enum Woken {
    Data(Vec<u8>),
    Closed,
    TimedOut,
}

fn parked_read(action: impl FnOnce(StdStream) + Send + 'static, limit: Duration) -> Woken {
    let rt = two_workers();
    let (client, server) = socket_pair();
    let reader = rt.spawn_on(1, async move {
        let stream = Async::new(server).expect("async");
        let mut buf = [0u8; 16];
        match timeout(limit, stream.read(&mut buf)).await {
            Ok(Ok(0)) => Woken::Closed,
            Ok(Ok(n)) => Woken::Data(buf[..n].to_vec()),
            Ok(Err(e)) => panic!("read failed: {e}"),
            Err(_) => Woken::TimedOut,
        }
    });
    assert!(wait_until(Duration::from_secs(5), || rt.stats()[1].parks >= 1));
    action(client);
    rt.block_on(reader).expect("joined")
}

#[test]
fn parked_reader_wakes_on_data() {
    let woken = parked_read(
        |mut client| {
            client.write_all(b"x").expect("write");
            std::mem::forget(client); // keep the socket open
        },
        Duration::from_secs(10),
    );
    assert_eq!(woken, Woken::Data(b"x".to_vec()));
}

#[test]
fn parked_reader_wakes_on_peer_close() {
    let woken = parked_read(drop, Duration::from_secs(10));
    assert_eq!(woken, Woken::Closed);
}

#[test]
fn parked_reader_wakes_on_timeout() {
    let started = Instant::now();
    let woken = parked_read(std::mem::forget, Duration::from_millis(50));
    assert_eq!(woken, Woken::TimedOut);
    assert!(started.elapsed() >= Duration::from_millis(50));
}

#[test]
fn timers_fire_in_deadline_order() {
    let order = block_on(async {
        let queue = Queue::unbounded();
        for ms in [30u64, 10, 50, 20, 40] {
            let queue = queue.clone();
            runtime::spawn(async move {
                sleep(Duration::from_millis(ms)).await;
                queue.send(ms).await;
            })
            .detach();
        }
        let mut order = Vec::new();
        for _ in 0..5 {
            order.push(queue.recv().await);
        }
        order
    });
    assert_eq!(order, vec![10, 20, 30, 40, 50]);
}

#[test]
fn cancelled_timer_never_fires() {
    let rt = Runtime::builder().workers(1).build().expect("runtime");
    let fired = Arc::new(AtomicBool::new(false));
    let flag = fired.clone();
    let outcome = rt.block_on(async move {
        let cancelled = timeout(Duration::from_millis(5), async move {
            sleep(Duration::from_millis(30)).await;
            flag.store(true, Ordering::SeqCst);
        })
        .await;
        // Outlive the cancelled timer's deadline.
        sleep(Duration::from_millis(60)).await;
        cancelled
    });
    assert!(outcome.is_err(), "the outer timeout fired first");
    assert!(!fired.load(Ordering::SeqCst));
    // Two timers fired: the 5 ms timeout and the 60 ms sleep; not the 30 ms one.
    assert_eq!(rt.stats()[0].timer_fires, 2);
}

#[test]
fn pipe_reader_wakes_when_another_thread_writes() {
    let rt = Runtime::builder().workers(1).build().expect("runtime");
    let (reader, mut writer) = std::io::pipe().expect("pipe");
    let task = rt.spawn(async move {
        let reader = Async::new(reader)?;
        reader.readable().await?;
        let mut buf = [0u8; 32];
        let n = reader.read(&mut buf).await?;
        Ok::<_, std::io::Error>(buf[..n].to_vec())
    });
    assert!(wait_until(Duration::from_secs(5), || rt.stats()[0].parks >= 1));
    writer.write_all(b"through the pipe").expect("write");
    let got = rt.block_on(task).expect("joined").expect("read");
    assert_eq!(got, b"through the pipe");
}

#[test]
fn yield_loop_does_not_starve_others() {
    let done = block_on(async {
        let stop = Rc::new(Cell::new(false));
        let spinner_stop = stop.clone();
        let spinner = runtime::spawn(async move {
            let mut spins = 0u64;
            while !spinner_stop.get() {
                spins += 1;
                yield_now().await;
            }
            spins
        });
        runtime::spawn(async move { stop.set(true) }).detach();
        spinner.await
    });
    assert!(matches!(done, Ok(spins) if spins >= 1));
}

#[test]
fn always_ready_queue_loop_is_preempted_by_the_budget() {
    let spins = block_on(async {
        let stop = Rc::new(Cell::new(false));
        let spinner_stop = stop.clone();
        let spinner = runtime::spawn(async move {
            let queue = Queue::unbounded();
            let mut spins = 0u64;
            // Never parks on its own: the queue always has an item.
            while !spinner_stop.get() {
                queue.send(spins).await;
                queue.recv().await;
                spins += 1;
            }
            spins
        });
        runtime::spawn(async move { stop.set(true) }).detach();
        spinner.await
    });
    assert!(matches!(spins, Ok(n) if n >= 1));
}

#[test]
fn panicking_green_thread_leaves_the_rest_running() {
    let rt = Runtime::builder().workers(1).build().expect("runtime");
    let survivors = Arc::new(AtomicUsize::new(0));
    let counted = survivors.clone();
    let (panicked, sum) = rt.block_on(async move {
        let bad = runtime::spawn(async {
            yield_now().await;
            panic!("this green thread panics on purpose");
        });
        let mut good = Vec::new();
        for i in 0..10u64 {
            let counted = counted.clone();
            good.push(runtime::spawn(async move {
                yield_now().await;
                yield_now().await;
                counted.fetch_add(1, Ordering::SeqCst);
                i
            }));
        }
        let panicked = bad.await.is_err();
        let mut sum = 0;
        for handle in good {
            sum += handle.await.expect("survivor finished");
        }
        (panicked, sum)
    });
    assert!(panicked);
    assert_eq!(sum, 45);
    assert_eq!(survivors.load(Ordering::SeqCst), 10);
    assert_eq!(rt.stats()[0].panicked, 1);
}

/// Bounded by what idleness can promise on a loaded machine: a worker
/// parked in its reactor does not run, so no load adds CPU time to it,
/// while one that polled or spun through the second would burn most of a
/// core's second, well past this bound even on a shared machine.
#[test]
fn idle_runtime_uses_no_cpu() {
    let rt = Runtime::builder().workers(1).build().expect("runtime");
    let used = rt.block_on(async {
        let before = thread_cpu_time();
        sleep(Duration::from_secs(1)).await;
        thread_cpu_time() - before
    });
    assert!(
        used < Duration::from_millis(100),
        "idle worker used {used:?} of CPU in a second"
    );
}

#[test]
fn bounded_send_parks_when_full_and_resumes_when_drained() {
    let rt = Runtime::builder().workers(1).build().expect("runtime");
    let queue = Queue::bounded(2);
    let sent = Arc::new(AtomicUsize::new(0));
    let producer_queue = queue.clone();
    let progress = sent.clone();
    let producer = rt.spawn(async move {
        for i in 0..5 {
            producer_queue.send(i).await;
            progress.fetch_add(1, Ordering::SeqCst);
        }
    });
    // The producer fills the queue and parks on the third send.
    assert!(wait_until(Duration::from_secs(5), || {
        sent.load(Ordering::SeqCst) == 2 && rt.stats()[0].parks >= 1
    }));
    assert_eq!(queue.len(), 2);
    assert_eq!(
        sent.load(Ordering::SeqCst),
        2,
        "send did not park when full"
    );
    let drained = rt.block_on(async move {
        let mut got = Vec::new();
        for _ in 0..5 {
            got.push(queue.recv().await);
        }
        producer.await.expect("producer finished");
        got
    });
    assert_eq!(drained, vec![0, 1, 2, 3, 4]);
}

#[test]
fn oneshot_mode_serves_socket_reads_too() {
    let rt = Runtime::builder()
        .workers(1)
        .poll_mode(PollMode::Oneshot)
        .build()
        .expect("runtime");
    let (mut client, server) = socket_pair();
    let echo = rt.spawn(async move {
        let stream = Async::new(server)?;
        let mut total = Vec::new();
        let mut buf = [0u8; 4];
        while total.len() < 8 {
            let n = stream.read(&mut buf).await?;
            total.extend_from_slice(&buf[..n]);
        }
        stream.write_all(&total).await?;
        Ok::<_, std::io::Error>(total)
    });
    client.write_all(b"abcd").expect("write");
    assert!(wait_until(Duration::from_secs(5), || rt.stats()[0].parks >= 1));
    client.write_all(b"efgh").expect("write");
    let mut back = [0u8; 8];
    client.read_exact(&mut back).expect("read back");
    assert_eq!(&back, b"abcdefgh");
    assert_eq!(rt.block_on(echo).expect("joined").expect("io"), b"abcdefgh");
}

#[test]
fn shutdown_drops_parked_green_threads() {
    let rt = two_workers();
    let queue: Queue<u8> = Queue::unbounded();
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let queue = queue.clone();
            rt.spawn_on(i, async move { queue.recv().await })
        })
        .collect();
    assert!(wait_until(Duration::from_secs(5), || {
        rt.stats().iter().map(|s| s.parks).sum::<u64>() >= 4
    }));
    rt.shutdown();
    for handle in handles {
        assert!(block_on(handle).is_err(), "parked green thread was dropped");
    }
    assert!(rt.stats().iter().all(|s| s.alive == 0));
}

#[test]
fn detached_green_threads_run_to_the_end_and_drop_what_they_hold() {
    let finished = block_on(async {
        let done = Rc::new(Cell::new(0u32));
        let queue = Queue::bounded(16);
        for n in 0..1000u32 {
            let (done, queue) = (done.clone(), queue.clone());
            // Futures of two sizes, so pooled blocks of both are reused.
            if n % 2 == 0 {
                runtime::spawn_detached(async move {
                    yield_now().await;
                    done.set(done.get() + 1);
                    queue.send(n).await;
                });
            } else {
                let big = [n as u8; 2048];
                runtime::spawn_detached(async move {
                    yield_now().await;
                    done.set(done.get() + u32::from(big[2047] == n as u8));
                    queue.send(n).await;
                });
            }
        }
        let mut sum = 0u64;
        for _ in 0..1000 {
            sum += u64::from(queue.recv().await);
        }
        (done.get(), sum, Rc::strong_count(&done))
    });
    assert_eq!(finished, (1000, 999 * 1000 / 2, 1));
}

/// The turn clock is never ahead of the time, and every turn sets it: a
/// sleep its timer wakes sees it at or past the sleep's deadline. (How far
/// behind it lags depends on the machine's load, so that is not asserted.)
#[test]
fn the_turn_clock_is_at_most_a_turn_behind() {
    const ROUNDS: usize = 50;
    let refreshed = block_on(async {
        let mut refreshed = 0;
        for _ in 0..ROUNDS {
            let asked = Instant::now();
            sleep(Duration::from_millis(1)).await;
            let turn = runtime::now();
            assert!(turn <= Instant::now(), "the turn clock ran ahead");
            // A sleep finds its deadline passed on its first poll, and so
            // sees the old turn, only if the thread was descheduled between
            // the two lines above: rare, so most rounds see a new turn.
            if turn >= asked + Duration::from_millis(1) {
                refreshed += 1;
            }
        }
        refreshed
    });
    assert!(
        refreshed > ROUNDS / 2,
        "only {refreshed} of {ROUNDS} sleeps woke to a refreshed turn clock"
    );
}
