//! `IdleSet<T>`: items that wait until their descriptor is readable or a
//! deadline passes, without a green thread, a timer entry or an allocation
//! each. One green thread (the pump) takes them out as they become ready.
//!
//! Every slot owns a waker for life: waking it records the slot's index and
//! wakes the pump. All items share one timeout, so deadlines arrive in the
//! order items were parked and a FIFO serves as the timer queue.

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Poll, Wake, Waker};
use std::time::{Duration, Instant};

use super::timer::{sleep_until, Sleep};

/// How an item is armed: true if its descriptor may already be readable,
/// otherwise the waker will be woken when it becomes so.
pub type Arm<T> = fn(&T, &Waker) -> io::Result<bool>;

pub struct IdleSet<T> {
    state: Mutex<State<T>>,
    woken: Arc<Woken>,
    arm: Arm<T>,
    timeout: Duration,
}

struct State<T> {
    /// Slots in fixed chunks: growing never copies them, and at most one
    /// chunk is unused (a doubling Vec wastes up to half).
    slots: Chunked<Slot<T>>,
    free: Vec<u32>,
    /// (deadline, slot, generation), oldest first.
    deadlines: VecDeque<(Instant, u32, u32)>,
    len: usize,
}

struct Slot<T> {
    item: Option<T>,
    generation: u32,
    waker: Waker,
}

/// Slots whose descriptor fired, and the pump to tell.
#[derive(Default)]
struct Woken {
    slots: Mutex<Vec<u32>>,
    pump: Mutex<Option<Waker>>,
}

struct SlotWaker {
    slot: u32,
    woken: Arc<Woken>,
}

impl Wake for SlotWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        lock(&self.woken.slots).push(self.slot);
        if let Some(pump) = lock(&self.woken.pump).take() {
            pump.wake();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

const CHUNK: usize = 256;

/// A growable array addressed by u32 that never moves its elements.
struct Chunked<T> {
    chunks: Vec<Vec<T>>,
}

impl<T> Default for Chunked<T> {
    fn default() -> Self {
        Chunked { chunks: Vec::new() }
    }
}

impl<T> Chunked<T> {
    fn len(&self) -> u32 {
        let full = self.chunks.len().saturating_sub(1) * CHUNK;
        (full + self.chunks.last().map_or(0, Vec::len)) as u32
    }

    fn push(&mut self, value: T) {
        match self.chunks.last_mut() {
            Some(chunk) if chunk.len() < CHUNK => chunk.push(value),
            _ => {
                let mut chunk = Vec::with_capacity(CHUNK);
                chunk.push(value);
                self.chunks.push(chunk);
            }
        }
    }

    fn get(&self, index: u32) -> Option<&T> {
        let index = index as usize;
        self.chunks.get(index / CHUNK)?.get(index % CHUNK)
    }

    fn get_mut(&mut self, index: u32) -> Option<&mut T> {
        let index = index as usize;
        self.chunks.get_mut(index / CHUNK)?.get_mut(index % CHUNK)
    }
}

/// What the pump hands out.
pub enum Ready<T> {
    /// The item's descriptor may be read.
    Readable(T),
    /// The item waited past the timeout.
    Expired(T),
}

impl<T> IdleSet<T> {
    pub fn new(arm: Arm<T>, timeout: Duration) -> IdleSet<T> {
        IdleSet {
            state: Mutex::new(State {
                slots: Chunked::default(),
                free: Vec::new(),
                deadlines: VecDeque::new(),
                len: 0,
            }),
            woken: Arc::default(),
            arm,
            timeout,
        }
    }

    /// Items waiting now.
    pub fn len(&self) -> usize {
        lock(&self.state).len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every parked item.
    pub fn clear(&self) {
        let items: Vec<T> = {
            let mut state = lock(&self.state);
            state.deadlines.clear();
            let taken: Vec<u32> = (0..state.slots.len()).collect();
            taken
                .into_iter()
                .filter_map(|i| Self::take(&mut state, i))
                .collect()
        };
        drop(items); // outside the lock: dropping may deregister descriptors
    }

    /// Parks `item` until readable or timed out. Gives it straight back if
    /// its descriptor may already be read; drops it if arming fails.
    pub fn park(&self, item: T) -> Option<T> {
        let mut state = lock(&self.state);
        let index = match state.free.pop() {
            Some(index) => index,
            None => {
                let index = state.slots.len();
                let waker = Waker::from(Arc::new(SlotWaker {
                    slot: index,
                    woken: self.woken.clone(),
                }));
                state.slots.push(Slot {
                    item: None,
                    generation: 0,
                    waker,
                });
                index
            }
        };
        let Some(slot) = state.slots.get_mut(index) else {
            return None; // just pushed: cannot happen
        };
        match (self.arm)(&item, &slot.waker) {
            Ok(false) => {
                slot.item = Some(item);
                let generation = slot.generation;
                state.len += 1;
                let deadline = Instant::now() + self.timeout;
                let first = state.deadlines.is_empty();
                state.deadlines.push_back((deadline, index, generation));
                drop(state);
                if first {
                    // The pump has no timer running: let it arm one.
                    if let Some(pump) = lock(&self.woken.pump).take() {
                        pump.wake();
                    }
                }
                None
            }
            Ok(true) => {
                state.free.push(index);
                Some(item)
            }
            Err(_) => {
                state.free.push(index);
                None
            }
        }
    }

    fn take(state: &mut State<T>, index: u32) -> Option<T> {
        let slot = state.slots.get_mut(index)?;
        let item = slot.item.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        state.free.push(index);
        state.len -= 1;
        Some(item)
    }

    /// The next item that became readable or expired. Run by one pump
    /// green thread per set.
    pub async fn next(&self) -> Ready<T> {
        let mut timer: Option<Sleep> = None;
        poll_fn(|cx| {
            *lock(&self.woken.pump) = Some(cx.waker().clone());
            let mut state = lock(&self.state);
            loop {
                let woken = std::mem::take(&mut *lock(&self.woken.slots));
                if woken.is_empty() {
                    break;
                }
                for (position, &index) in woken.iter().enumerate() {
                    // Spurious or stale wakes re-arm; real readiness leaves.
                    let readable = match state.slots.get(index) {
                        Some(Slot {
                            item: Some(item),
                            waker,
                            ..
                        }) => (self.arm)(item, waker).unwrap_or(true),
                        _ => false,
                    };
                    if let Some(item) = readable.then(|| Self::take(&mut state, index)).flatten() {
                        // Hand the rest back for the next call.
                        lock(&self.woken.slots).extend_from_slice(&woken[position + 1..]);
                        return Poll::Ready(Ready::Readable(item));
                    }
                }
            }
            let now = Instant::now();
            while let Some(&(deadline, index, generation)) = state.deadlines.front() {
                let live = state
                    .slots
                    .get(index)
                    .is_some_and(|s| s.generation == generation && s.item.is_some());
                if !live {
                    state.deadlines.pop_front();
                    continue;
                }
                if deadline > now {
                    break;
                }
                state.deadlines.pop_front();
                if let Some(item) = Self::take(&mut state, index) {
                    return Poll::Ready(Ready::Expired(item));
                }
            }
            let next = state.deadlines.front().map(|&(deadline, _, _)| deadline);
            drop(state);
            if let Some(deadline) = next {
                let timer = match &mut timer {
                    Some(t) if t.deadline() == deadline => t,
                    slot => slot.insert(sleep_until(deadline)),
                };
                if Pin::new(timer).poll(cx).is_ready() {
                    // Due already: go round again at once.
                    cx.waker().wake_by_ref();
                }
            }
            Poll::Pending
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{block_on, Async};
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};

    fn arm(stream: &Async<TcpStream>, waker: &Waker) -> io::Result<bool> {
        stream.arm_readable(waker)
    }

    #[test]
    fn items_leave_when_readable_or_expired() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut quiet = TcpStream::connect(addr).expect("connect");
        let (quiet_server, _) = listener.accept().expect("accept");
        let mut talker = TcpStream::connect(addr).expect("connect");
        let (talker_server, _) = listener.accept().expect("accept");
        let order = block_on(async move {
            let set = IdleSet::new(arm, Duration::from_millis(100));
            let quiet_id = quiet_server
                .local_addr()
                .ok()
                .zip(quiet_server.peer_addr().ok());
            assert!(set.park(Async::new(quiet_server).expect("async")).is_none());
            assert!(set
                .park(Async::new(talker_server).expect("async"))
                .is_none());
            assert_eq!(set.len(), 2);
            talker.write_all(b"x").expect("write");
            let first = match set.next().await {
                Ready::Readable(s) => ("readable", s),
                Ready::Expired(s) => ("expired", s),
            };
            let second = match set.next().await {
                Ready::Readable(s) => ("readable", s),
                Ready::Expired(s) => ("expired", s),
            };
            let second_is_quiet = second
                .1
                .get_ref()
                .local_addr()
                .ok()
                .zip(second.1.get_ref().peer_addr().ok())
                == quiet_id;
            quiet.write_all(b"late").ok();
            (first.0, second.0, second_is_quiet, set.len())
        });
        assert_eq!(order, ("readable", "expired", true, 0));
    }
}
