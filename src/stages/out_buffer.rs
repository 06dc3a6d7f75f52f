//! The handler's response buffers: one per turn, from a per-worker pool.

use crate::runtime::LocalPool;

/// Responses buffered beyond this are written before answering more
/// pipelined requests.
pub(super) const FLUSH_AT: usize = 64 * 1024;

thread_local! {
    static OUT_BUFFERS: LocalPool<Vec<u8>> = const { LocalPool::new(256) };
}

/// A response buffer from the worker's pool, returned on drop: no
/// allocation per request once the pool is warm.
pub(super) struct OutBuffer(pub(super) Vec<u8>);

impl OutBuffer {
    pub(super) fn take() -> OutBuffer {
        let buf = OUT_BUFFERS.with(LocalPool::take);
        OutBuffer(buf.unwrap_or_else(|| Vec::with_capacity(1024)))
    }
}

impl Drop for OutBuffer {
    fn drop(&mut self) {
        let mut buf = std::mem::take(&mut self.0);
        // Keep modest buffers only; a pipelined burst may have grown one.
        if buf.capacity() <= FLUSH_AT * 2 {
            buf.clear();
            // A full pool hands it back: freed here.
            let _ = OUT_BUFFERS.try_with(|pool| pool.give(buf));
        }
    }
}
