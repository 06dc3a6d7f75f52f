//! The response side of HPACK: a per-connection encoder with a dynamic
//! table (RFC 7541 §2.3, §4, §6.1-6.3).
//!
//! A response's fields whose values are the server's own (`server`,
//! `date`, `content-type`, `content-length`, `etag`, `last-modified`,
//! `accept-ranges`, ...; see [`indexable`]) enter the table with their
//! first use; a later response with the same value sends one byte. Every
//! other field (`location`, whatever a header rule or the request could
//! put a secret in, RFC 7541 §7.1) is sent as a literal not indexed, as
//! is `:status` (by the static table); `set-cookie` and the like as a
//! literal never indexed ([`super::encode_field_as`]). The table is at most
//! [`TABLE_CAP`] and at most the client's SETTINGS_HEADER_TABLE_SIZE; an
//! idle connection drops it ([`Encoder::release`]) and its next header
//! block begins with size updates to 0 and back, so that the client's
//! decoder empties its table in step.

use std::collections::VecDeque;

use super::{encode_field_as, encode_status, name_index, put_integer, ENTRY_OVERHEAD, STATIC};

/// The most the table holds (RFC 7541's count), whatever the client
/// allows: room for the fields of a handful of distinct files, and a
/// scan over a few dozen entries at most.
pub const TABLE_CAP: usize = 2048;

/// The size a client's decoder starts with (SETTINGS_HEADER_TABLE_SIZE's
/// default, RFC 9113 §6.5.2).
const DEFAULT_SIZE: usize = 4096;

/// Values longer than this are not indexed: they seldom repeat, and
/// would push out the ones that do.
const MAX_VALUE: usize = 256;

/// A table entry: its name (a static table index, as every indexed name
/// has one) and its value. `key` packs both the name and the value's
/// length, so that the scan compares one word before any bytes.
struct Entry {
    key: u32,
    value: Box<[u8]>,
}

fn key(name: usize, len: usize) -> u32 {
    (name as u32) << 16 | len as u32
}

/// A connection's encoder state: the dynamic table the client's decoder
/// mirrors.
pub struct Encoder {
    /// Newest first: entry `i` is index 62 + i.
    table: VecDeque<Entry>,
    /// The table's size by RFC 7541's count.
    size: usize,
    /// The table's maximum size as the client's decoder has it (as last
    /// signalled, or the default). The encoder fills at most
    /// [`TABLE_CAP`] of it: its table is the newest part of the
    /// decoder's, whose indexes are the same.
    max: usize,
    /// Size updates owed at the start of the next header block: the
    /// smallest maximum since the last block, then the new one.
    owed: Option<(usize, usize)>,
    /// Entries inserted so far (wrapping): the newest is number
    /// `inserted - 1`, at table position 0.
    inserted: u32,
    /// For each of [`NAMES`], the number of the entry it last used.
    last: [u32; NAMES.len()],
    /// Bumped whenever the table, its maximum or the updates owed
    /// change: the same fields at the same generation encode the same.
    generation: u64,
}

impl Default for Encoder {
    fn default() -> Encoder {
        Encoder::new()
    }
}

impl Encoder {
    /// An encoder for a new connection: the decoder's table is the
    /// default 4096 bytes, of which the encoder uses [`TABLE_CAP`].
    pub fn new() -> Encoder {
        Encoder {
            table: VecDeque::new(),
            size: 0,
            max: DEFAULT_SIZE,
            owed: None,
            inserted: 0,
            last: [0; NAMES.len()],
            generation: 0,
        }
    }

    /// The encoder's state as a number that changes with it: equal
    /// generations, the same fields encode to the same bytes.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Bytes held by the table (RFC 7541's count).
    pub fn table_size(&self) -> usize {
        self.size
    }

    /// The client set SETTINGS_HEADER_TABLE_SIZE (applied once the server
    /// acknowledges the SETTINGS, before the next header block).
    pub fn set_limit(&mut self, limit: usize) {
        // The decoder's maximum once the updates owed are sent.
        let now = self.owed.map_or(self.max, |(_, to)| to);
        let to = TABLE_CAP.min(limit);
        // Lowered below the decoder's maximum: an update is a must
        // (RFC 7541 §4.2). Raised above what we use: take the room.
        if limit < now || now < to {
            self.resize(to);
        }
    }

    /// Drops the table (an idle connection): the next block tells the
    /// client to empty its own, then brings the size back.
    pub fn release(&mut self) {
        if self.table.is_empty() && self.owed.is_none() {
            // Nothing in either table (or an update to 0 is owed anyway).
            self.table = VecDeque::new();
            return;
        }
        let back = self.owed.map_or(self.max, |(_, to)| to).min(TABLE_CAP);
        self.generation += 1;
        self.table = VecDeque::new();
        self.size = 0;
        self.owed = Some((0, back));
    }

    /// Makes `to` (at most [`TABLE_CAP`]) the decoder's maximum from the
    /// next block on.
    fn resize(&mut self, to: usize) {
        let least = self.owed.map_or(to, |(least, _)| least.min(to));
        self.generation += 1;
        self.owed = Some((least, to));
        // The client's decoder evicts to the smallest first.
        self.evict(least, 0);
    }

    /// Appends `:status` for `code`, the first field of every response
    /// block, after the size updates owed (RFC 7541 §4.2).
    pub fn status(&mut self, out: &mut Vec<u8>, code: u16) {
        if let Some((least, to)) = self.owed.take() {
            self.generation += 1;
            if least < to {
                put_integer(out, 5, 0x20, least);
            }
            put_integer(out, 5, 0x20, to);
            self.max = to;
        }
        encode_status(out, code);
    }

    /// Appends a response field: an index if the table holds it, else a
    /// literal, added to the table if its name is one of [`NAMES`].
    pub fn field(&mut self, out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
        self.field_as(out, name_index(name), name, value);
    }

    /// [`Self::field`] with the name's static table index as
    /// [`name_index`] gives it (found once, by whoever read the name).
    #[inline(always)]
    pub fn field_as(&mut self, out: &mut Vec<u8>, index: Option<u8>, name: &[u8], value: &[u8]) {
        let Some((static_index, slot)) = index.and_then(|i| Some((i, indexable(i)?))) else {
            return encode_field_as(out, index, name, value);
        };
        let want = key(usize::from(static_index), value.len());
        // The entry this name last used, first: a repeated response finds
        // each of its fields there (where it is, `last` is already).
        let hint = self.inserted.wrapping_sub(self.last[slot]) as usize;
        if let Some(e) = self.table.get(hint.wrapping_sub(1)) {
            if e.key == want && same(&e.value, value) {
                return put_index(out, 61 + hint);
            }
        }
        self.field_slow(out, slot, want, name, value);
    }

    /// [`Self::field_as`] past its hint: the table scanned, else a
    /// literal, inserted if it fits.
    #[inline(never)]
    fn field_slow(&mut self, out: &mut Vec<u8>, slot: usize, want: u32, name: &[u8], value: &[u8]) {
        let index = NAMES[slot].1;
        let size = NAMES[slot].0.len() + value.len() + ENTRY_OVERHEAD;
        let cap = self.max.min(TABLE_CAP);
        if value.len() > MAX_VALUE || size > cap {
            return encode_field_as(out, Some(index as u8), name, value);
        }
        let found = self
            .table
            .iter()
            .position(|e| e.key == want && same(&e.value, value));
        if let Some(at) = found {
            self.last[slot] = self.inserted.wrapping_sub(at as u32 + 1);
            return put_index(out, 62 + at);
        }
        put_integer(out, 6, 0x40, index);
        put_integer(out, 7, 0x00, value.len());
        out.extend_from_slice(value);
        self.generation += 1;
        self.evict(cap, size);
        self.size += size;
        self.table.push_front(Entry {
            key: want,
            value: Box::from(value),
        });
        self.last[slot] = self.inserted;
        self.inserted = self.inserted.wrapping_add(1);
    }

    /// Evicts the oldest entries until `room` more bytes fit in `max`.
    fn evict(&mut self, max: usize, room: usize) {
        while self.size + room > max {
            let Some(e) = self.table.pop_back() else {
                break;
            };
            self.size -= entry_size(&e);
        }
    }
}

/// Whether two values of the same length are the same bytes: values
/// of up to 32 bytes (most) in two overlapping word compares each side,
/// not a call.
#[inline(always)]
fn same(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().unwrap_or([0; 8]));
    let half =
        |s: &[u8], at: usize| u128::from_le_bytes(s[at..at + 16].try_into().unwrap_or([0; 16]));
    let quarter =
        |s: &[u8], at: usize| u32::from_le_bytes(s[at..at + 4].try_into().unwrap_or([0; 4]));
    match n {
        0 => true,
        // Three bytes cover one to three.
        1..=3 => a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1],
        4..=7 => quarter(a, 0) == quarter(b, 0) && quarter(a, n - 4) == quarter(b, n - 4),
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        17..=32 => half(a, 0) == half(b, 0) && half(a, n - 16) == half(b, n - 16),
        _ => a == b,
    }
}

fn entry_size(e: &Entry) -> usize {
    STATIC[(e.key >> 16) as usize - 1].0.len() + e.value.len() + ENTRY_OVERHEAD
}

/// The names whose values are worth indexing, lowercase, with their
/// static table index: values that are the server's own (or the
/// operator's, the same on every response), never a secret nor anything
/// the request chose.
const NAMES: [(&[u8], usize); 13] = [
    (b"server", 54),
    (b"date", 33),
    (b"content-type", 31),
    (b"etag", 34),
    (b"last-modified", 44),
    (b"accept-ranges", 18),
    (b"content-length", 28),
    (b"cache-control", 24),
    (b"vary", 59),
    (b"content-encoding", 26),
    (b"content-language", 27),
    (b"expires", 36),
    (b"strict-transport-security", 56),
];

/// For each static table index, its slot in [`NAMES`] (`NONE` if none).
const SLOTS: [u8; 62] = {
    let mut slots = [NONE; 62];
    let mut i = 0;
    while i < NAMES.len() {
        slots[NAMES[i].1] = i as u8;
        i += 1;
    }
    slots
};
const NONE: u8 = u8::MAX;

/// The slot in [`NAMES`] of the name whose static table index is
/// `index`, if its values are indexed.
#[inline]
fn indexable(index: u8) -> Option<usize> {
    match SLOTS.get(usize::from(index)) {
        Some(&slot) if slot != NONE => Some(usize::from(slot)),
        _ => None,
    }
}

/// Appends an indexed field (RFC 7541 §6.1).
#[inline(always)]
fn put_index(out: &mut Vec<u8>, index: usize) {
    if index < 0x7f {
        out.push(0x80 | index as u8);
    } else {
        put_integer(out, 7, 0x80, index);
    }
}

#[cfg(test)]
mod tests;
