#![no_main]
//! See `checks::hpack` (shared with tests/it/fuzz_corpus.rs). Here an
//! allocator that counts also checks that decoding holds no more than a
//! bound set by the input's length: a block of n bytes never makes the
//! decoder hold memory out of proportion to it (an HPACK bomb is counted,
//! not expanded).

#[path = "../checks.rs"]
mod checks;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed to the system allocator unchanged; only
// the sizes are counted.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        // SAFETY: as the caller promised for `layout`.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    checks::hpack(data);
    let held = PEAK.load(Ordering::Relaxed) - base;
    // The table (4 KiB by RFC 7541's count, a little more in boxes and
    // the deque), Huffman scratch (8/5 of a block), the check's own
    // copies of what the encoder wrote: all a small multiple of the input.
    let bound = 64 * 1024 + 16 * data.len();
    assert!(
        held <= bound,
        "{held} bytes held for {} bytes in",
        data.len()
    );
});
