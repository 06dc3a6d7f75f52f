//! Rapid reset (CVE-2023-44487, issue 22) with the native engine: a stream
//! the client resets while its request still waits in the pending queue is
//! dropped there unrun, so a blast of open-and-reset costs the worker
//! little a stream; the connection is let 1,000 such streams, then GOAWAY.
//! A turn of the connection opens at most 32 streams: the rest of a batch
//! waits for the next turns, and is answered all the same; a turn whose
//! 32 streams were all reset at once pauses the connection's reading, 1 ms
//! the first time, twice as long each time after, up to 100 ms.

use std::time::Duration;

use crate::harness;
use crate::harness::h2raw::*;
use crate::harness::status::{status, Figures};

/// `pairs` streams from `first` on, each opened and reset at once.
fn open_and_reset(first: u32, pairs: u32) -> Vec<u8> {
    (0..pairs)
        .flat_map(|i| {
            let id = first + 2 * i;
            let mut pair = get(id, "/index.html");
            pair.extend(rst_stream(id, CANCEL));
            pair
        })
        .collect()
}

#[test]
fn streams_reset_before_their_handler_ran_are_not_answered() {
    let _one = serial();
    for dispatcher in harness::DISPATCHERS {
        let server = harness::start(harness::ACCEPTORS[0], dispatcher, |_| {});
        let mut client = Client::open(server.addr, &[]);
        // 500 streams opened and reset in one write, then one request.
        let mut batch = open_and_reset(1, 500);
        batch.extend(get(1001, "/index.html"));
        client.send(&batch).expect("send");
        let answer = client.response(1001, Duration::from_secs(5));
        assert_eq!(answer.map(|(s, _)| s), Some(STATUS_200), "{dispatcher}");
        let total = || status(&server).at("requests").at("total").int();
        assert!(
            harness::wait_until(Duration::from_secs(5), || total() >= 1),
            "{dispatcher}: the last request counted"
        );
        // The resets were read with their streams, before any handler ran
        // (a handler that ran would count its request).
        let handled = total();
        eprintln!("{dispatcher}: 501 streams, {handled} handled");
        assert!(handled <= 10, "{dispatcher}: {handled} requests handled");
        assert!(
            client.goaways.is_empty(),
            "500 resets are within the budget"
        );
    }
}

#[test]
fn a_blast_of_resets_gets_enhance_your_calm_after_1000_streams() {
    let _one = serial();
    let server = start(|_| {});
    let mut client = Client::open(server.addr, &[]);
    let started = std::time::Instant::now();
    let _ = client.send(&open_and_reset(1, 2_000));
    let away = client
        .until(Duration::from_secs(10), |f| f.kind == GOAWAY)
        .expect("GOAWAY");
    let took = started.elapsed();
    assert_eq!(away.code(), ENHANCE_YOUR_CALM);
    let streams = away.last_stream().div_ceil(2);
    assert!((990..=1_000).contains(&streams), "GOAWAY after {streams}");
    // Paced: after each turn of 32 streams opened and reset, the
    // connection reads nothing for a while: 31 pauses before the 1,000th
    // stream, 1, 2, 4 ... 64 ms, then 100 ms each, 2.5 s in all (1 s is
    // left for turns the socket gave fewer than 32 streams).
    eprintln!("1,000 streams reset in {took:?}");
    assert!(took >= Duration::from_secs(1), "not paced: {took:?}");
    let handled = status(&server).at("requests").at("total").int();
    assert!(handled <= 10, "{handled} of the reset streams handled");
}

#[test]
fn streams_past_a_turn_are_answered_in_the_next_ones() {
    let _one = serial();
    let server = start(|_| {});
    let mut client = Client::open(server.addr, &[]);
    // 120 requests in one write: a turn opens 32 streams, the rest wait
    // in the connection's carry for the turns after it.
    let ids: Vec<u32> = (0..120).map(|i| 1 + 2 * i).collect();
    let batch: Vec<u8> = ids.iter().flat_map(|&id| get(id, "/index.html")).collect();
    client.send(&batch).expect("send");
    let mut answered = std::collections::BTreeSet::new();
    while answered.len() < ids.len() {
        let Some(f) = client.next(Duration::from_secs(5)) else {
            break;
        };
        assert_ne!(f.kind, RST_STREAM, "stream {} reset", f.stream);
        if f.kind == HEADERS {
            assert_eq!(f.payload.first(), Some(&STATUS_200), "stream {}", f.stream);
            answered.insert(f.stream);
        }
    }
    assert_eq!(answered.len(), ids.len(), "answered: {answered:?}");
}
