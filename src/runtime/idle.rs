//! `IdleSet<T>`: items that wait until their descriptor is readable or a
//! deadline passes, without a green thread, a timer entry or an allocation
//! each. One green thread (the pump) takes them out as they become ready.
//!
//! Every parked item costs its slot and nothing else:
//! - Slots live in fixed chunks that never move. A slot's waker is not an
//!   allocation: its data pointer is the address of the chunk's shared
//!   waker block plus the slot's offset (the block is aligned to the chunk
//!   size, so the offset fits in the low bits). Waking it records the slot's
//!   index and wakes the pump.
//! - All items share one timeout, so deadlines arrive in the order items
//!   were parked: the slots form a FIFO through their own links, which also
//!   makes removal of a readable item exact.

use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Poll, RawWaker, RawWakerVTable, Waker};
use std::time::{Duration, Instant};

use super::timer::{sleep_until, Sleep};

/// How an item is armed: true if its descriptor may already be readable,
/// otherwise the waker will be woken when it becomes so.
pub type Arm<T> = fn(&T, &Waker) -> io::Result<bool>;

/// Items parked until their descriptor may be read or they have waited
/// `timeout` (to the millisecond); shareable between threads, drained by one
/// pump green thread calling [`IdleSet::next`].
pub struct IdleSet<T> {
    state: Mutex<ParkedItems<T>>,
    woken: Arc<Woken>,
    arm: Arm<T>,
    timeout: Duration,
    /// Deadlines are milliseconds after this.
    epoch: Instant,
}

/// No slot (end of a list).
const NIL: u32 = u32::MAX;

struct ParkedItems<T> {
    slots: Chunked<ParkedItem<T>>,
    /// One per chunk of slots.
    wakers: Vec<Arc<WakerBlock>>,
    /// Free slots, linked through `ParkedItem::next`.
    free: u32,
    /// Parked slots, oldest (first to expire) to newest.
    oldest: u32,
    newest: u32,
    len: usize,
}

struct ParkedItem<T> {
    item: Option<T>,
    /// Milliseconds after `epoch` when the item expires.
    deadline: u64,
    prev: u32,
    next: u32,
}

/// Slots whose descriptor fired, and the pump to tell.
#[derive(Default)]
struct Woken {
    slots: Mutex<Vec<u32>>,
    pump: Mutex<Option<Waker>>,
}

impl Woken {
    fn wake(&self, slot: u32) {
        lock(&self.slots).push(slot);
        if let Some(pump) = lock(&self.pump).take() {
            pump.wake();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

const CHUNK: usize = 256;

/// What the wakers of one chunk's slots share. Aligned to `CHUNK`, so a
/// waker's data pointer (block address + slot offset) gives both back.
#[repr(align(256))]
struct WakerBlock {
    woken: Arc<Woken>,
    /// Index of the chunk's first slot.
    first: u32,
}

const _: () = assert!(std::mem::align_of::<WakerBlock>() == CHUNK);

static SLOT_WAKER: RawWakerVTable = RawWakerVTable::new(
    clone_slot_waker,
    wake_slot,
    wake_slot_by_ref,
    drop_slot_waker,
);

/// The waker of the slot at `offset` in the chunk whose block is `block`.
fn slot_waker(block: &Arc<WakerBlock>, offset: usize) -> Waker {
    let data = Arc::into_raw(block.clone()) as usize + offset;
    // SAFETY: `data` is an `Arc<WakerBlock>` pointer (whose strong count we
    // just raised) plus an offset below its alignment, which is what every
    // function of SLOT_WAKER expects.
    unsafe { Waker::from_raw(RawWaker::new(data as *const (), &SLOT_WAKER)) }
}

/// Splits a slot waker's data pointer into its block and slot offset.
fn split(data: *const ()) -> (*const WakerBlock, u32) {
    let data = data as usize;
    (
        (data & !(CHUNK - 1)) as *const WakerBlock,
        (data & (CHUNK - 1)) as u32,
    )
}

unsafe fn clone_slot_waker(data: *const ()) -> RawWaker {
    // SAFETY: the waker being cloned holds a strong count on the block.
    unsafe { Arc::increment_strong_count(split(data).0) };
    RawWaker::new(data, &SLOT_WAKER)
}

unsafe fn wake_slot(data: *const ()) {
    // SAFETY: consumes the waker: wake as by reference, then drop its count.
    unsafe {
        wake_slot_by_ref(data);
        drop_slot_waker(data);
    }
}

unsafe fn wake_slot_by_ref(data: *const ()) {
    let (block, offset) = split(data);
    // SAFETY: the live waker holds a strong count, so the block is alive.
    let block = unsafe { &*block };
    block.woken.wake(block.first + offset);
}

unsafe fn drop_slot_waker(data: *const ()) {
    // SAFETY: gives back the strong count this waker held.
    unsafe { Arc::decrement_strong_count(split(data).0) };
}

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

impl<T> ParkedItems<T> {
    fn waker(&self, index: u32) -> Option<Waker> {
        let index = index as usize;
        let block = self.wakers.get(index / CHUNK)?;
        Some(slot_waker(block, index % CHUNK))
    }

    /// A free slot's index, adding a slot if none is free.
    fn allocate(&mut self, woken: &Arc<Woken>) -> u32 {
        if let Some(slot) = self.slots.get(self.free) {
            let index = self.free;
            self.free = slot.next;
            return index;
        }
        let index = self.slots.len();
        if (index as usize).is_multiple_of(CHUNK) {
            self.wakers.push(Arc::new(WakerBlock {
                woken: woken.clone(),
                first: index,
            }));
        }
        self.slots.push(ParkedItem {
            item: None,
            deadline: 0,
            prev: NIL,
            next: NIL,
        });
        index
    }

    fn release(&mut self, index: u32) {
        let free = self.free;
        if let Some(slot) = self.slots.get_mut(index) {
            slot.next = free;
            self.free = index;
        }
    }

    /// Appends a parked slot to the deadline order.
    fn push_newest(&mut self, index: u32) {
        let newest = self.newest;
        if let Some(slot) = self.slots.get_mut(index) {
            slot.prev = newest;
            slot.next = NIL;
        }
        match self.slots.get_mut(newest) {
            Some(last) => last.next = index,
            None => self.oldest = index,
        }
        self.newest = index;
    }

    fn unlink(&mut self, index: u32) {
        let Some(&ParkedItem { prev, next, .. }) = self.slots.get(index) else {
            return;
        };
        match self.slots.get_mut(prev) {
            Some(slot) => slot.next = next,
            None => self.oldest = next,
        }
        match self.slots.get_mut(next) {
            Some(slot) => slot.prev = prev,
            None => self.newest = prev,
        }
    }

    fn take(&mut self, index: u32) -> Option<T> {
        let item = self.slots.get_mut(index)?.item.take()?;
        self.unlink(index);
        self.release(index);
        self.len -= 1;
        Some(item)
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
    /// An empty set: `arm` watches an item's descriptor, and an item expires
    /// `timeout` after the scheduler turn in which it was parked.
    pub fn new(arm: Arm<T>, timeout: Duration) -> IdleSet<T> {
        IdleSet {
            state: Mutex::new(ParkedItems {
                slots: Chunked::default(),
                wakers: Vec::new(),
                free: NIL,
                oldest: NIL,
                newest: NIL,
                len: 0,
            }),
            woken: Arc::default(),
            arm,
            timeout,
            epoch: Instant::now(),
        }
    }

    /// Items waiting now.
    pub fn len(&self) -> usize {
        lock(&self.state).len
    }

    /// Whether no item is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn millis(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }

    /// Drops every parked item.
    pub fn clear(&self) {
        let items: Vec<T> = {
            let mut state = lock(&self.state);
            let mut items = Vec::with_capacity(state.len);
            loop {
                let oldest = state.oldest;
                match state.take(oldest) {
                    Some(item) => items.push(item),
                    None => break,
                }
            }
            items
        };
        drop(items); // outside the lock: dropping may deregister descriptors
    }

    /// When the item parked longest will expire; None if the set is empty.
    /// Items of one set expire in the order parked, so across sets with the
    /// same timeout the earliest deadline marks the longest-idle item.
    pub fn oldest_deadline(&self) -> Option<Instant> {
        let state = lock(&self.state);
        let deadline = state.slots.get(state.oldest)?.deadline;
        Some(self.epoch + Duration::from_millis(deadline))
    }

    /// Takes out the item parked longest, to close it early (a server out of
    /// connection slots). O(1): it heads the deadline order. An item whose
    /// descriptor the reactor has already reported readable is left for the
    /// pump (it holds a request now); the next oldest is tried, a few at most.
    pub fn take_oldest(&self) -> Option<T> {
        const TRIES: usize = 8;
        let mut state = lock(&self.state);
        let woken = lock(&self.woken.slots);
        let mut index = state.oldest;
        for _ in 0..TRIES {
            let next = state.slots.get(index)?.next;
            if !woken.contains(&index) {
                drop(woken);
                return state.take(index);
            }
            index = next;
        }
        None
    }

    /// Parks `item` until readable or timed out. Gives it straight back if
    /// its descriptor may already be read; drops it if arming fails.
    pub fn park(&self, item: T) -> Option<T> {
        let mut state = lock(&self.state);
        let index = state.allocate(&self.woken);
        let Some(waker) = state.waker(index) else {
            return None; // every slot has its chunk's block: cannot happen
        };
        match (self.arm)(&item, &waker) {
            Ok(false) => {
                let deadline = self.millis(super::executor::turn_started() + self.timeout);
                let Some(slot) = state.slots.get_mut(index) else {
                    return None; // just allocated: cannot happen
                };
                slot.item = Some(item);
                slot.deadline = deadline;
                state.push_newest(index);
                state.len += 1;
                let first = state.oldest == index;
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
                state.release(index);
                Some(item)
            }
            Err(_) => {
                state.release(index);
                None
            }
        }
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
                    let readable = match (state.slots.get(index), state.waker(index)) {
                        (
                            Some(ParkedItem {
                                item: Some(item), ..
                            }),
                            Some(waker),
                        ) => (self.arm)(item, &waker).unwrap_or(true),
                        _ => false,
                    };
                    if let Some(item) = readable.then(|| state.take(index)).flatten() {
                        // Hand the rest back for the next call.
                        lock(&self.woken.slots).extend_from_slice(&woken[position + 1..]);
                        return Poll::Ready(Ready::Readable(item));
                    }
                }
            }
            let now = self.millis(Instant::now());
            let first = state.oldest;
            let oldest = state.slots.get(first).map(|slot| slot.deadline);
            if oldest.is_some_and(|deadline| deadline <= now) {
                if let Some(item) = state.take(first) {
                    return Poll::Ready(Ready::Expired(item));
                }
            }
            drop(state);
            if let Some(deadline) = oldest {
                let deadline = self.epoch + Duration::from_millis(deadline);
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
    use std::os::unix::net::UnixStream;

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

    fn unix_arm(item: &(usize, Async<UnixStream>), waker: &Waker) -> io::Result<bool> {
        item.1.arm_readable(waker)
    }

    /// Eviction takes the longest-parked item first, but never one the
    /// reactor has reported readable.
    #[test]
    fn take_oldest_skips_items_already_reported_readable() {
        let pairs: Vec<(UnixStream, UnixStream)> =
            (0..3).map(|_| UnixStream::pair().expect("pair")).collect();
        let (ours, mut theirs): (Vec<_>, Vec<_>) = pairs.into_iter().unzip();
        let taken = block_on(async move {
            let set = IdleSet::new(unix_arm, Duration::from_secs(60));
            assert!(set.oldest_deadline().is_none());
            for (id, stream) in ours.into_iter().enumerate() {
                let stream = Async::new(stream).expect("async");
                assert!(set.park((id, stream)).is_none(), "parked {id}");
            }
            // The oldest becomes readable; once the reactor has said so,
            // it is the pump's, not eviction's.
            theirs[0].write_all(b"x").expect("write");
            let deadline = Instant::now() + Duration::from_secs(10);
            while lock(&set.woken.slots).is_empty() && Instant::now() < deadline {
                crate::runtime::yield_now().await;
            }
            let first = set.take_oldest().map(|(id, _)| id);
            let second = set.take_oldest().map(|(id, _)| id);
            let left = set.len();
            let readable = match set.next().await {
                Ready::Readable((id, _)) => Some(id),
                Ready::Expired(_) => None,
            };
            drop(theirs);
            (first, second, left, readable)
        });
        assert_eq!(taken, (Some(1), Some(2), 1, Some(0)));
    }

    /// Wakers are pointers into per-chunk blocks: a slot past the first
    /// chunk must wake as itself, and taking items out of the middle must
    /// keep the deadline order of the rest.
    #[test]
    fn wakes_reach_the_right_slot_across_chunks() {
        let pairs: Vec<(UnixStream, UnixStream)> = (0..CHUNK + 44)
            .map(|_| UnixStream::pair().expect("pair"))
            .collect();
        let (ours, mut theirs): (Vec<_>, Vec<_>) = pairs.into_iter().unzip();
        let left = block_on(async move {
            let set = IdleSet::new(unix_arm, Duration::from_millis(200));
            for (id, stream) in ours.into_iter().enumerate() {
                let stream = Async::new(stream).expect("async");
                assert!(set.park((id, stream)).is_none(), "parked {id}");
            }
            for id in [CHUNK + 40, 3] {
                theirs[id].write_all(b"x").expect("write");
            }
            let mut readable = Vec::new();
            for _ in 0..2 {
                match set.next().await {
                    Ready::Readable((id, _)) => readable.push(id),
                    Ready::Expired((id, _)) => panic!("{id} expired first"),
                }
            }
            readable.sort_unstable();
            assert_eq!(readable, [3, CHUNK + 40]);
            let mut expired = Vec::new();
            while !set.is_empty() {
                match set.next().await {
                    Ready::Expired((id, _)) => expired.push(id),
                    Ready::Readable((id, _)) => panic!("{id} readable"),
                }
            }
            drop(theirs);
            expired
        });
        let expected: Vec<usize> = (0..CHUNK + 44)
            .filter(|id| ![3, CHUNK + 40].contains(id))
            .collect();
        assert_eq!(left, expected, "expired in the order parked");
    }
}
