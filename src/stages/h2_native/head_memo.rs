//! A connection's HPACK encoder with the last response head it encoded
//! remembered: a handler that writes the same head again (the same file
//! within the same second) gets the same header block, copied, without
//! the head being read back nor its fields encoded again.
//!
//! This is exact: the block is kept only if encoding it changed nothing
//! in the encoder (every field an index into the table or a literal not
//! indexed, no size update sent), and it is used only while the table is
//! as it was then (the encoder's generation is the same) and the new
//! head is the same bytes. Same bytes and same encoder state give the
//! same block.

use std::ops::{Deref, DerefMut};

use crate::http::hpack;

use super::stream::Said;

/// A head longer than this is not remembered (a server's own head is
/// 150-250 bytes; a header rule's may be anything).
const MAX_HEAD: usize = 512;

/// The encoder and its memo; the encoder's own methods through `Deref`.
#[derive(Default)]
pub(super) struct Encoder {
    hpack: hpack::Encoder,
    /// The last head kept, up to and including its blank line (empty if
    /// none), and what it encoded to.
    head: Vec<u8>,
    block: Vec<u8>,
    status: u16,
    said: Said,
    /// The encoder's generation the block is valid for.
    generation: u64,
    /// A head other than the one kept came since it was last used.
    missed: bool,
    /// Heads replayed.
    #[cfg(test)]
    pub(super) hits: usize,
}

/// A head found in the memo.
pub(super) struct Replayed {
    pub(super) status: u16,
    pub(super) said: Said,
    /// The head's length in the buffer (the body follows).
    pub(super) len: usize,
}

impl Encoder {
    pub(super) fn new() -> Encoder {
        Encoder::default()
    }

    /// If `buf` starts with the head kept and the table is as it was,
    /// appends its block to `out`.
    pub(super) fn replay(&mut self, buf: &[u8], out: &mut Vec<u8>) -> Option<Replayed> {
        let len = self.head.len();
        // Another head mostly ends elsewhere: four bytes tell, before
        // the whole is compared.
        if len == 0
            || self.generation != self.hpack.generation()
            || buf.get(len.saturating_sub(4)..len) != Some(b"\r\n\r\n")
            || !buf.starts_with(&self.head)
        {
            return None;
        }
        out.extend_from_slice(&self.block);
        self.missed = false;
        #[cfg(test)]
        {
            self.hits += 1;
        }
        Some(Replayed {
            status: self.status,
            said: self.said,
            len: self.head.len(),
        })
    }

    /// The encoder's generation, before a head is encoded.
    pub(super) fn generation(&self) -> u64 {
        self.hpack.generation()
    }

    /// `head` was encoded to `block` starting at generation `before`:
    /// kept if that changed nothing in the encoder, else the memo is
    /// left as it is (the generation tells it is stale). A head still
    /// valid gives way only at its second miss in a row: two files in
    /// turn replay one of them, and heads that never repeat are copied
    /// every other time.
    pub(super) fn keep(&mut self, head: &[u8], block: &[u8], status: u16, said: Said, before: u64) {
        if self.hpack.generation() != before || head.len() > MAX_HEAD {
            return;
        }
        if !self.head.is_empty() && self.generation == before && !self.missed {
            self.missed = true;
            return;
        }
        self.missed = false;
        self.head.clear();
        self.head.extend_from_slice(head);
        self.block.clear();
        self.block.extend_from_slice(block);
        self.status = status;
        self.said = said;
        self.generation = before;
    }

    /// Drops the table (an idle connection, see
    /// [`hpack::Encoder::release`]) and the memo's buffers with it.
    pub(super) fn release(&mut self) {
        self.hpack.release();
        self.head = Vec::new();
        self.block = Vec::new();
    }
}

impl Deref for Encoder {
    type Target = hpack::Encoder;
    fn deref(&self) -> &hpack::Encoder {
        &self.hpack
    }
}

impl DerefMut for Encoder {
    fn deref_mut(&mut self) -> &mut hpack::Encoder {
        &mut self.hpack
    }
}
