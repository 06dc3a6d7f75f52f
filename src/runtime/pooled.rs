//! `PooledFuture`: a heap-allocated future whose memory is reused.
//!
//! A server allocates a future per request. When that future is bigger than
//! the C allocator's per-thread cache takes (glibc's tcache stops at
//! 1032 B), every allocation goes the slow way through the bins; profiled,
//! that one malloc/free pair cost more than the rest of the request's
//! allocations together. Here freed blocks wait in a small per-thread list,
//! by layout, for the next future of the same shape.

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::ptr::NonNull;
use std::task::{Context, Poll};
use std::thread::LocalKey;

/// A boxed future (like `Pin<Box<dyn Future>>`) whose block goes back to
/// this thread's free list when it is dropped. Not `Send`: it is dropped on
/// the thread that made it, so the list stays thread-local.
pub struct PooledFuture<'a, T> {
    future: NonNull<dyn Future<Output = T> + 'a>,
}

/// An allocated, unused block; dropping it gives it back to the allocator.
struct Block {
    layout: Layout,
    ptr: NonNull<u8>,
}

impl Drop for Block {
    fn drop(&mut self) {
        // SAFETY: every `Block` was allocated with its layout and is owned
        // by this value alone (a future in it has been dropped already).
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) };
    }
}

/// A thread's free blocks, a stack per layout: a take or a give finds
/// its layout's shelf among a few, with no search through other layouts'
/// blocks, and each layout keeps up to `SHELF` blocks of its own (an
/// HTTP/2 stream makes and drops boxes of three layouts).
struct Shelves(RefCell<Vec<Shelf>>);

struct Shelf {
    layout: Layout,
    blocks: Vec<Block>,
}

/// Blocks kept per layout and thread; more are given back to the
/// allocator.
const SHELF: usize = 256;
/// Layouts kept per thread and pool: the few kinds of future and box a
/// worker makes per request (the first to come keep their shelves). So a
/// worker holds at most 8 x 256 freed blocks a pool, most of them small.
const SHELVES: usize = 8;

impl Shelves {
    const fn new() -> Shelves {
        Shelves(RefCell::new(Vec::new()))
    }

    #[inline(always)]
    fn take(&self, layout: Layout) -> Option<Block> {
        let mut shelves = self.0.borrow_mut();
        shelves
            .iter_mut()
            .find(|s| s.layout == layout)?
            .blocks
            .pop()
    }

    /// Keeps `block`, or hands it back (to be freed outside the borrow).
    #[inline(always)]
    fn give(&self, block: Block) -> Result<(), Block> {
        let mut shelves = self.0.borrow_mut();
        let at = match shelves.iter().position(|s| s.layout == block.layout) {
            Some(at) => at,
            None if shelves.len() < SHELVES => {
                let layout = block.layout;
                shelves.push(Shelf {
                    layout,
                    blocks: Vec::new(),
                });
                shelves.len() - 1
            }
            None => return Err(block),
        };
        let blocks = &mut shelves[at].blocks;
        if blocks.len() >= SHELF {
            return Err(block);
        }
        blocks.push(block);
        Ok(())
    }
}

thread_local! {
    /// Blocks of futures kept per thread.
    static FREE: Shelves = const { Shelves::new() };
    /// Blocks of `PooledBox`es, apart from the futures'.
    static FREE_BOXES: Shelves = const { Shelves::new() };
}

type Free = LocalKey<Shelves>;

/// The layout actually allocated: never zero-sized.
fn block_layout(layout: Layout) -> Layout {
    Layout::from_size_align(layout.size().max(1), layout.align()).unwrap_or(layout)
}

#[inline(always)]
fn take_block(free: &'static Free, layout: Layout) -> NonNull<u8> {
    let reused = free.try_with(|free| free.take(layout)).ok().flatten();
    if let Some(block) = reused {
        let ptr = block.ptr;
        // Now owned by the caller, not by a `Block`.
        std::mem::forget(block);
        return ptr;
    }
    // SAFETY: `layout` has a non-zero size (see `block_layout`).
    let raw = unsafe { alloc(layout) };
    NonNull::new(raw).unwrap_or_else(|| handle_alloc_error(layout))
}

#[inline(always)]
fn give_block(free: &'static Free, layout: Layout, ptr: NonNull<u8>) {
    // A block the pool cannot keep (full, or the thread's pool already gone:
    // the closure is then dropped unrun) is dropped, which frees it.
    let block = Block { layout, ptr };
    // A block handed back is dropped here, outside the shelves' borrow.
    let _ = free.try_with(move |free| free.give(block));
}

impl<'a, T> PooledFuture<'a, T> {
    /// Moves `future` into a block of its layout, reused from this thread's
    /// free list when one is there, else freshly allocated.
    pub fn new<F: Future<Output = T> + 'a>(future: F) -> PooledFuture<'a, T> {
        let layout = block_layout(Layout::new::<F>());
        let block = take_block(&FREE, layout).cast::<F>();
        // SAFETY: `block` is valid for writes of an `F` (size and alignment
        // from `Layout::new::<F>()`) and uninitialised.
        unsafe { block.as_ptr().write(future) };
        let future: NonNull<dyn Future<Output = T> + 'a> = block;
        PooledFuture { future }
    }

    /// Like [`Self::new`], but the future is made by `make` once its block
    /// is taken: nothing can unwind between the making and the write, so
    /// the compiler builds it in the block. `new` moves a future made
    /// beforehand, which copies its whole size, the states not yet entered
    /// too (a handler's 2.3 KB future cost 256 instructions of memcpy per
    /// request, callgrind).
    #[inline(always)]
    pub fn new_with<F, M>(make: M) -> PooledFuture<'a, T>
    where
        F: Future<Output = T> + 'a,
        M: FnOnce() -> F,
    {
        let layout = block_layout(Layout::new::<F>());
        let block = take_block(&FREE, layout).cast::<F>();
        // SAFETY: as in `new`; if `make` panics the block is leaked, never
        // read.
        unsafe { block.as_ptr().write(make()) };
        let future: NonNull<dyn Future<Output = T> + 'a> = block;
        PooledFuture { future }
    }
}

impl<T> Future for PooledFuture<'_, T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        // SAFETY: the future lives in its block until `drop` and is never
        // moved out of it, so pinning it there is sound; `&mut self` gives
        // exclusive access.
        let future = unsafe { Pin::new_unchecked(self.future.as_mut()) };
        future.poll(cx)
    }
}

impl<T> Drop for PooledFuture<'_, T> {
    fn drop(&mut self) {
        // SAFETY: the future is initialised until the drop below.
        let layout = block_layout(Layout::for_value(unsafe { self.future.as_ref() }));
        let block = self.future.cast::<u8>();
        // Give the block back even if the future's drop panics.
        struct GiveBack(Layout, NonNull<u8>);
        impl Drop for GiveBack {
            fn drop(&mut self) {
                give_block(&FREE, self.0, self.1);
            }
        }
        let _give_back = GiveBack(layout, block);
        // SAFETY: the future is initialised, owned by us, and dropped once.
        unsafe { std::ptr::drop_in_place(self.future.as_ptr()) };
    }
}

/// A box (like `Box<T>`) whose block comes from this thread's free list
/// and goes back to the list of the thread that drops it: a value made
/// and dropped per request (a pipe's stream) allocates nothing.
pub struct PooledBox<T> {
    value: NonNull<T>,
}

// SAFETY: a `PooledBox` owns its `T` as a `Box` does; its block is plain
// memory of the global allocator, which any thread may keep or free.
unsafe impl<T: Send> Send for PooledBox<T> {}
// SAFETY: shared access to a `PooledBox` is shared access to its `T`.
unsafe impl<T: Sync> Sync for PooledBox<T> {}

impl<T> PooledBox<T> {
    /// Moves `value` into a block of its layout, reused from this thread's
    /// free list when one is there, else freshly allocated.
    pub fn new(value: T) -> PooledBox<T> {
        let layout = block_layout(Layout::new::<T>());
        let block = take_block(&FREE_BOXES, layout).cast::<T>();
        // SAFETY: `block` is valid for writes of a `T` (size and alignment
        // from `Layout::new::<T>()`) and uninitialised.
        unsafe { block.as_ptr().write(value) };
        PooledBox { value: block }
    }

    /// The value, moved out; its block goes back to the free list.
    pub fn into_inner(this: PooledBox<T>) -> T {
        let this = std::mem::ManuallyDrop::new(this);
        // SAFETY: the value is initialised and owned by `this`, which is
        // never dropped: it is read out once, and its block then freed.
        let value = unsafe { this.value.as_ptr().read() };
        give_block(
            &FREE_BOXES,
            block_layout(Layout::new::<T>()),
            this.value.cast(),
        );
        value
    }
}

impl<T> std::ops::Deref for PooledBox<T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the value is initialised until `drop` and owned by `self`.
        unsafe { self.value.as_ref() }
    }
}

impl<T> std::ops::DerefMut for PooledBox<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` gives exclusive access.
        unsafe { self.value.as_mut() }
    }
}

impl<T: Default> Default for PooledBox<T> {
    fn default() -> PooledBox<T> {
        PooledBox::new(T::default())
    }
}

impl<T> std::borrow::Borrow<T> for PooledBox<T> {
    fn borrow(&self) -> &T {
        self
    }
}

impl<T> std::borrow::BorrowMut<T> for PooledBox<T> {
    fn borrow_mut(&mut self) -> &mut T {
        self
    }
}

impl<T> Drop for PooledBox<T> {
    fn drop(&mut self) {
        struct GiveBack(Layout, NonNull<u8>);
        impl Drop for GiveBack {
            fn drop(&mut self) {
                give_block(&FREE_BOXES, self.0, self.1);
            }
        }
        // Given back even if the value's drop panics.
        let _give_back = GiveBack(block_layout(Layout::new::<T>()), self.value.cast());
        // SAFETY: the value is initialised, owned by us, and dropped once.
        unsafe { std::ptr::drop_in_place(self.value.as_ptr()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::block_on;
    use std::rc::Rc;

    #[test]
    fn a_dropped_future_lends_its_block_to_the_next_of_its_shape() {
        let big = [7u8; 1500];
        let first =
            PooledFuture::new(async move { big.iter().map(|&b| u32::from(b)).sum::<u32>() });
        let address = first.future.cast::<u8>();
        assert_eq!(block_on(first), 7 * 1500);
        let second = PooledFuture::new(async move { big.len() });
        assert_eq!(second.future.cast::<u8>(), address, "block reused");
        assert_eq!(block_on(second), 1500);
    }

    #[test]
    fn a_pooled_box_reuses_its_block_and_drops_its_value() {
        let owned = Rc::new(());
        let first = PooledBox::new((owned.clone(), [1u64; 5]));
        let address = &*first as *const _ as usize;
        assert_eq!(first.1, [1; 5]);
        drop(first);
        assert_eq!(Rc::strong_count(&owned), 1, "value dropped");
        let mut second = PooledBox::new((owned.clone(), [2u64; 5]));
        second.1[0] = 3;
        assert_eq!(&*second as *const _ as usize, address, "block reused");
        assert_eq!(second.1, [3, 2, 2, 2, 2]);
        let _zero = PooledBox::new(());
    }

    #[test]
    fn drops_what_the_future_owns_and_handles_zero_sizes() {
        let owned = Rc::new(());
        let held = owned.clone();
        let never_run = PooledFuture::new(async move {
            let _held = held;
        });
        assert_eq!(Rc::strong_count(&owned), 2);
        drop(never_run);
        assert_eq!(Rc::strong_count(&owned), 1, "captured value dropped");
        assert_eq!(block_on(PooledFuture::new(std::future::ready(5))), 5);
        assert_eq!(block_on(PooledFuture::new(async {})), ());
    }
}
