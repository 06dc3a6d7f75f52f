//! HPACK (RFC 7541), the header compression of HTTP/2, for the native
//! HTTP/2 engine (`http2.engine = "native"`).
//!
//! The decoder keeps the dynamic table the client fills, bounded by the
//! size the server allows, and never expands a header list past a limit:
//! a field that would cross it is counted, not copied (an HPACK bomb
//! references a large entry thousands of times). The encoder
//! ([`Encoder`], one per connection) indexes the response fields whose
//! values are the server's own in its dynamic table, so that a repeated
//! response's head is a few bytes; [`encode_status`] and [`encode_field`]
//! are its stateless parts (static table, literals not indexed).

mod encoder;
mod huffman;

pub use encoder::{Encoder, TABLE_CAP};

use std::collections::VecDeque;

/// The static table (RFC 7541 Appendix A), index 1 first.
const STATIC: [(&[u8], &[u8]); 61] = [
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
];

/// The static table's fields, for tests of what a receiver of
/// [`Fields::indexed`] may take as checked.
#[cfg(test)]
pub fn static_fields() -> impl Iterator<Item = (&'static [u8], &'static [u8])> {
    STATIC.iter().copied()
}

/// What every table entry costs beyond its bytes (RFC 7541 §4.1).
const ENTRY_OVERHEAD: usize = 32;

/// Why a header block cannot be decoded: a connection error
/// (COMPRESSION_ERROR), the compression state being lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Not valid HPACK: an index out of range, a truncated integer or
    /// string, a bad Huffman string, a table size update out of place or
    /// over the limit.
    Compression,
}

/// What decoding a block found: the header list's size (RFC 9113 §6.5.2,
/// each field's bytes plus 32), and whether fields were left out because
/// the size passed the limit given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    /// The whole list's size, counted even past the limit.
    pub size: usize,
    /// Fields past the limit were not handed over.
    pub over: bool,
}

impl Decoded {
    /// Counts a field of `size` bytes (RFC 7541 §4.1): whether the list
    /// is still within `limit`, so that the field is handed on.
    #[inline]
    fn count(&mut self, size: usize, limit: usize) -> bool {
        self.size = self.size.saturating_add(size);
        self.over |= self.size > limit;
        self.size <= limit
    }

    /// Counts a field, and hands it to `field` while the list is within
    /// `limit`; returns its size.
    #[inline]
    fn hand(&mut self, name: &[u8], value: &[u8], limit: usize, field: &mut impl Fields) -> usize {
        let size = name.len() + value.len() + ENTRY_OVERHEAD;
        if self.count(size, limit) {
            field.field(name, value);
        }
        size
    }

    /// [`Self::hand`] for an indexed field, with its entry's mark (a
    /// static-table field's is always set). Always inlined: at each of
    /// its two calls the receiver's checks fold with the mark (callgrind:
    /// a call of its own cost 100 instructions a request).
    #[inline(always)]
    fn hand_indexed(
        &mut self,
        (name, value, checked): (&[u8], &[u8], &mut bool),
        limit: usize,
        field: &mut impl Fields,
    ) {
        if self.count(name.len() + value.len() + ENTRY_OVERHEAD, limit) {
            field.indexed(name, value, checked);
        }
    }
}

/// Where a decoded block's fields go, in order.
pub trait Fields {
    /// One field of the block.
    fn field(&mut self, name: &[u8], value: &[u8]);

    /// A field indexed in the dynamic table. Its entry's `checked` flag
    /// is the receiver's: an entry never changes, so that what the
    /// receiver found of it once (that it is valid, say) holds each time
    /// the client repeats it.
    #[inline]
    fn indexed(&mut self, name: &[u8], value: &[u8], checked: &mut bool) {
        let _ = checked;
        self.field(name, value);
    }
}

/// A closure as [`Fields`].
struct Each<F>(F);

impl<F: FnMut(&[u8], &[u8])> Fields for Each<F> {
    #[inline]
    fn field(&mut self, name: &[u8], value: &[u8]) {
        (self.0)(name, value)
    }
}

/// A dynamic table entry: a name and its value, and what the decoder's
/// receiver marked it with ([`Fields::indexed`]).
struct Entry {
    name: Box<[u8]>,
    value: Box<[u8]>,
    checked: bool,
}

/// A decoder's state: the dynamic table the client fills.
pub struct Decoder {
    /// Newest first.
    table: VecDeque<Entry>,
    /// The table's size by RFC 7541's count.
    size: usize,
    /// The table's size limit, as the client last set it.
    max: usize,
    /// What the client may set it to (our SETTINGS_HEADER_TABLE_SIZE).
    allowed: usize,
    /// Where Huffman-coded names and values are decoded.
    name: Vec<u8>,
    value: Vec<u8>,
}

impl Decoder {
    /// A decoder whose table may hold `allowed` bytes (RFC 7541's count).
    pub fn new(allowed: usize) -> Decoder {
        Decoder {
            table: VecDeque::new(),
            size: 0,
            max: allowed,
            allowed,
            name: Vec::new(),
            value: Vec::new(),
        }
    }

    /// Bytes held by the dynamic table's entries.
    pub fn table_size(&self) -> usize {
        self.size
    }

    /// Gives back the scratch buffers of Huffman decoding (while idle).
    pub fn release(&mut self) {
        self.name = Vec::new();
        self.value = Vec::new();
    }

    /// Decodes one header block, handing each field to `field` in order
    /// while the list's size stays within `limit`. Past it, fields are
    /// only counted, and the block is still read to its end so that the
    /// table stays as the client's encoder has it.
    pub fn decode(
        &mut self,
        block: &[u8],
        limit: usize,
        field: &mut impl FnMut(&[u8], &[u8]),
    ) -> Result<Decoded, DecodeError> {
        self.decode_into(block, limit, &mut Each(field))
    }

    /// [`Self::decode`], the fields handed to `fields`: generic, so that
    /// what it does with a field is inlined here (no call per field).
    pub fn decode_into(
        &mut self,
        mut block: &[u8],
        limit: usize,
        fields: &mut impl Fields,
    ) -> Result<Decoded, DecodeError> {
        let mut decoded = Decoded {
            size: 0,
            over: false,
        };
        let mut first = true;
        while let Some(&byte) = block.first() {
            if byte & 0xe0 == 0x20 {
                // Dynamic table size update: only before the first field.
                if !first {
                    return Err(DecodeError::Compression);
                }
                let size = integer(&mut block, 5)?;
                if size > self.allowed {
                    return Err(DecodeError::Compression);
                }
                self.max = size;
                self.evict(0);
                continue;
            }
            first = false;
            if byte & 0x80 != 0 {
                let index = integer(&mut block, 7)?;
                if index > 61 {
                    let entry = self
                        .table
                        .get_mut(index - 62)
                        .ok_or(DecodeError::Compression)?;
                    let entry = (&entry.name[..], &entry.value[..], &mut entry.checked);
                    decoded.hand_indexed(entry, limit, fields);
                    continue;
                }
                // The static table's fields are all valid (a test of the
                // receiver's checks says so): marked as checked already.
                let (name, value) = self.entry(index)?;
                decoded.hand_indexed((name, value, &mut true), limit, fields);
                continue;
            }
            let (prefix, indexing) = match byte & 0xc0 == 0x40 {
                true => (6, true),
                false => (4, false),
            };
            let index = integer(&mut block, prefix)?;
            self.literal(&mut block, index, indexing, limit, &mut decoded, fields)?;
        }
        Ok(decoded)
    }

    /// A literal field (RFC 7541 §6.2), its name at `index` (0: a
    /// literal name follows), added to the table if `indexing`.
    fn literal(
        &mut self,
        block: &mut &[u8],
        index: usize,
        indexing: bool,
        limit: usize,
        decoded: &mut Decoded,
        field: &mut impl Fields,
    ) -> Result<(), DecodeError> {
        let name = match index {
            0 => string(block, &mut self.name)?,
            1..=61 => Str::Raw(STATIC[index - 1].0),
            _ if index - 62 < self.table.len() => Str::Table(index - 62),
            _ => return Err(DecodeError::Compression),
        };
        let value = string(block, &mut self.value)?;
        let name: &[u8] = match name {
            Str::Raw(raw) => raw,
            Str::Scratch => &self.name,
            Str::Table(at) => &self.table[at].name,
        };
        let value: &[u8] = match value {
            Str::Raw(raw) => raw,
            Str::Scratch => &self.value,
            Str::Table(_) => return Err(DecodeError::Compression),
        };
        let size = decoded.hand(name, value, limit, field);
        if indexing {
            let entry = Entry {
                name: Box::from(name),
                value: Box::from(value),
                checked: false,
            };
            self.insert(entry, size);
        }
        Ok(())
    }

    /// The field at `index` (1-based: the static table, then the dynamic
    /// one newest first).
    fn entry(&self, index: usize) -> Result<(&[u8], &[u8]), DecodeError> {
        match index {
            0 => Err(DecodeError::Compression),
            1..=61 => Ok(STATIC[index - 1]),
            _ => self
                .table
                .get(index - 62)
                .map(|e| (&e.name[..], &e.value[..]))
                .ok_or(DecodeError::Compression),
        }
    }

    fn insert(&mut self, entry: Entry, size: usize) {
        if size > self.max {
            // Larger than the table: it empties the table (RFC 7541 §4.4).
            self.table.clear();
            self.size = 0;
            return;
        }
        self.evict(size);
        self.size += size;
        self.table.push_front(entry);
    }

    /// Evicts the oldest entries until `room` more bytes fit.
    fn evict(&mut self, room: usize) {
        while self.size + room > self.max {
            let Some(entry) = self.table.pop_back() else {
                break;
            };
            self.size -= entry.name.len() + entry.value.len() + ENTRY_OVERHEAD;
        }
    }
}

/// An integer with an `n`-bit prefix (RFC 7541 §5.1), taken off `block`.
/// Values past 2^28 are refused: nothing here is that large.
fn integer(block: &mut &[u8], n: u32) -> Result<usize, DecodeError> {
    let (&first, mut rest) = block.split_first().ok_or(DecodeError::Compression)?;
    let mask = (1usize << n) - 1;
    let mut value = usize::from(first) & mask;
    if value == mask {
        let mut shift = 0;
        loop {
            let (&b, more) = rest.split_first().ok_or(DecodeError::Compression)?;
            rest = more;
            value += usize::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
            if shift > 21 {
                return Err(DecodeError::Compression);
            }
        }
    }
    *block = rest;
    Ok(value)
}

/// Where a string literal is: in the block, or decoded in the scratch buffer.
enum Str<'a> {
    Raw(&'a [u8]),
    Scratch,
    /// A name from the dynamic table, at this place.
    Table(usize),
}

/// A string literal (RFC 7541 §5.2) taken off `block`: a slice of it, or
/// if Huffman-coded its decoding in `scratch`.
fn string<'a>(block: &mut &'a [u8], scratch: &mut Vec<u8>) -> Result<Str<'a>, DecodeError> {
    let huffman = block.first().is_some_and(|b| b & 0x80 != 0);
    let len = integer(block, 7)?;
    if len > block.len() {
        return Err(DecodeError::Compression);
    }
    let (raw, rest) = block.split_at(len);
    *block = rest;
    if !huffman {
        return Ok(Str::Raw(raw));
    }
    scratch.clear();
    huffman::decode(raw, scratch).map_err(|_| DecodeError::Compression)?;
    Ok(Str::Scratch)
}

/// Appends an integer with an `n`-bit prefix whose other bits are `flags`:
/// one byte when it fits the prefix (inlined), else the continuation.
#[inline]
fn put_integer(out: &mut Vec<u8>, n: u32, flags: u8, value: usize) {
    let mask = (1usize << n) - 1;
    if value < mask {
        out.push(flags | value as u8);
    } else {
        put_long_integer(out, flags | mask as u8, value - mask);
    }
}

/// [`put_integer`] past its prefix: the prefix byte, then `rest` seven
/// bits a byte.
#[cold]
fn put_long_integer(out: &mut Vec<u8>, first: u8, mut rest: usize) {
    out.push(first);
    while rest >= 0x80 {
        out.push(0x80 | (rest & 0x7f) as u8);
        rest >>= 7;
    }
    out.push(rest as u8);
}

/// Appends `:status` for `code`: one byte for the seven in the static
/// table, else a literal not indexed of three digits.
pub fn encode_status(out: &mut Vec<u8>, code: u16) {
    let index = match code {
        200 => 8,
        204 => 9,
        206 => 10,
        304 => 11,
        400 => 12,
        404 => 13,
        500 => 14,
        _ => {
            // Literal without indexing, the name `:status` (index 8), a
            // value of three digits.
            let n = code.min(999);
            let digit = |d: u16| b'0' + (n / d % 10) as u8;
            out.extend_from_slice(&[0x08, 3, digit(100), digit(10), digit(1)]);
            return;
        }
    };
    out.push(0x80 | index);
}

/// Appends a response field as a literal not indexed, its name lowercased
/// (by the static table's index where it has one); a field that may hold
/// a secret as a literal never indexed (see [`never_indexed`]).
pub fn encode_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    encode_field_as(out, name_index(name), name, value);
}

/// [`encode_field`] with the name's index, as [`name_index`] gives it.
pub fn encode_field_as(out: &mut Vec<u8>, index: Option<u8>, name: &[u8], value: &[u8]) {
    match index {
        // Every name's index but the pseudo-fields' is 15 or more: two
        // bytes, and a value under 127 bytes says its length in one.
        Some(index) if index >= 15 && value.len() < 127 => {
            out.reserve(3 + value.len());
            let first = 0x0f | never_indexed(index);
            out.extend_from_slice(&[first, index - 15, value.len() as u8]);
            out.extend_from_slice(value);
            return;
        }
        Some(index) => put_integer(out, 4, never_indexed(index), usize::from(index)),
        None => {
            out.push(new_name_flag(name));
            put_integer(out, 7, 0x00, name.len());
            out.extend(name.iter().map(u8::to_ascii_lowercase));
        }
    }
    put_integer(out, 7, 0x00, value.len());
    out.extend_from_slice(value);
}

/// Static table indexes of the fields a secret travels in: `set-cookie`
/// (and the request's `authorization`, `cookie`, `proxy-authorization`,
/// should a header rule put one in a response).
const SECRETS: u64 = 1 << 23 | 1 << 32 | 1 << 49 | 1 << 55;

/// The literal's flag (RFC 7541 §6.2.3) for the field of static table
/// index `index`: 0x10, never indexed, for a field that may hold a
/// secret (§7.1.3: no intermediary that encodes it again puts it in a
/// table, where a guess could be confirmed by its size), else 0.
#[inline(always)]
fn never_indexed(index: u8) -> u8 {
    // Indexes are at most 61: one shift and mask, not a compare each.
    ((SECRETS >> (index & 63)) as u8 & 1) << 4
}

/// [`never_indexed`] for a name the static table lacks: the
/// `authentication-info` fields (RFC 9110 §11.6.3) carry digests.
fn new_name_flag(name: &[u8]) -> u8 {
    let secret = matches!(name.len(), 19 | 25)
        && (name.eq_ignore_ascii_case(b"authentication-info")
            || name.eq_ignore_ascii_case(b"proxy-authentication-info"));
    u8::from(secret) << 4
}

/// The static table's index of `content-length`.
pub const CONTENT_LENGTH: u8 = 28;
/// The static table's index of `transfer-encoding`.
pub const TRANSFER_ENCODING: u8 = 57;

/// A name of 4 to 16 bytes as two words that overlap: its first and
/// last eight bytes (four under eight). Two names of one length are
/// alike exactly when these are.
#[inline]
fn ends(name: &[u8]) -> Option<(u64, u64)> {
    if let (Some(first), Some(last)) = (name.first_chunk::<8>(), name.last_chunk::<8>()) {
        let words = (u64::from_le_bytes(*first), u64::from_le_bytes(*last));
        return (name.len() <= 16).then_some(words);
    }
    let (first, last) = (name.first_chunk::<4>()?, name.last_chunk::<4>()?);
    let word = |w: &[u8; 4]| u64::from(u32::from_le_bytes(*w));
    Some((word(first), word(last)))
}

/// [`ends`] at compile time (names of 4 to 16 bytes).
const fn const_ends(name: &[u8]) -> (u64, u64) {
    let n = if name.len() >= 8 { 8 } else { 4 };
    (const_word(name, 0, n), const_word(name, name.len() - n, n))
}

/// `n` bytes of `name` from `at`, little-endian.
const fn const_word(name: &[u8], at: usize, n: usize) -> u64 {
    let mut w = 0u64;
    let mut i = 0;
    while i < n {
        w |= (name[at + i] as u64) << (8 * i);
        i += 1;
    }
    w
}

/// The static table's index of a field name, in any case: the names this
/// server writes, as it spells them, by their length and two compares;
/// then any other, lowercased.
#[inline]
pub fn name_index(name: &[u8]) -> Option<u8> {
    let Some(ends) = ends(name) else {
        return name_index_any_case(name);
    };
    let index = match name.len() {
        4 if ends == const { const_ends(b"Date") } => 33,
        4 if ends == const { const_ends(b"ETag") } => 34,
        4 if ends == const { const_ends(b"Vary") } => 59,
        5 if ends == const { const_ends(b"Allow") } => 22,
        6 if ends == const { const_ends(b"Server") } => 54,
        7 if ends == const { const_ends(b"Expires") } => 36,
        8 if ends == const { const_ends(b"Location") } => 46,
        12 if ends == const { const_ends(b"Content-Type") } => 31,
        13 if ends == const { const_ends(b"Last-Modified") } => 44,
        13 if ends == const { const_ends(b"Accept-Ranges") } => 18,
        13 if ends == const { const_ends(b"Cache-Control") } => 24,
        13 if ends == const { const_ends(b"Content-Range") } => 30,
        14 if ends == const { const_ends(b"Content-Length") } => CONTENT_LENGTH,
        16 if ends == const { const_ends(b"Content-Encoding") } => 26,
        _ => return name_index_any_case(name),
    };
    Some(index)
}

/// [`name_index`] for a name in another spelling: lowercased, and
/// matched (by its length first) against the whole table.
fn name_index_any_case(name: &[u8]) -> Option<u8> {
    let mut lower = [0u8; 32];
    let lower = lower.get_mut(..name.len())?;
    for (l, b) in lower.iter_mut().zip(name) {
        *l = b.to_ascii_lowercase();
    }
    let index = match &*lower {
        b":authority" => 1,
        b":method" => 2,
        b":path" => 4,
        b":scheme" => 6,
        b":status" => 8,
        b"accept-charset" => 15,
        b"accept-encoding" => 16,
        b"accept-language" => 17,
        b"accept-ranges" => 18,
        b"accept" => 19,
        b"access-control-allow-origin" => 20,
        b"age" => 21,
        b"allow" => 22,
        b"authorization" => 23,
        b"cache-control" => 24,
        b"content-disposition" => 25,
        b"content-encoding" => 26,
        b"content-language" => 27,
        b"content-length" => 28,
        b"content-location" => 29,
        b"content-range" => 30,
        b"content-type" => 31,
        b"cookie" => 32,
        b"date" => 33,
        b"etag" => 34,
        b"expect" => 35,
        b"expires" => 36,
        b"from" => 37,
        b"host" => 38,
        b"if-match" => 39,
        b"if-modified-since" => 40,
        b"if-none-match" => 41,
        b"if-range" => 42,
        b"if-unmodified-since" => 43,
        b"last-modified" => 44,
        b"link" => 45,
        b"location" => 46,
        b"max-forwards" => 47,
        b"proxy-authenticate" => 48,
        b"proxy-authorization" => 49,
        b"range" => 50,
        b"referer" => 51,
        b"refresh" => 52,
        b"retry-after" => 53,
        b"server" => 54,
        b"set-cookie" => 55,
        b"strict-transport-security" => 56,
        b"transfer-encoding" => 57,
        b"user-agent" => 58,
        b"vary" => 59,
        b"via" => 60,
        b"www-authenticate" => 61,
        _ => return None,
    };
    Some(index)
}

#[cfg(test)]
mod tests;
