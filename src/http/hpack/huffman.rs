//! HPACK's Huffman code (RFC 7541 Appendix B): decoding a literal that
//! says it is Huffman-coded. Responses are not Huffman-coded (a copy costs
//! less than coding), so only the decoder is here.
//!
//! The code is canonical: the codes of one length are consecutive and in
//! the order of their symbols, so a code is decoded from its length and
//! its distance to the first code of that length, read one bit at a time
//! from three small tables built at compile time from the code lengths.
//! The common codes (up to 12 bits, two at a time where both fit) are
//! read a look-up at a time from tables built the same way.

/// Why a Huffman string is refused (RFC 7541 §5.2): it holds the EOS
/// symbol, its padding is longer than 7 bits or not all ones, or a code
/// runs past 30 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct BadHuffman;

#[cfg(test)]
const ENCODE_CODES: [u32; 256] = [
    0x1ff8, 0x7fffd8, 0xfffffe2, 0xfffffe3, 0xfffffe4, 0xfffffe5, 0xfffffe6, 0xfffffe7, 0xfffffe8,
    0xffffea, 0x3ffffffc, 0xfffffe9, 0xfffffea, 0x3ffffffd, 0xfffffeb, 0xfffffec, 0xfffffed,
    0xfffffee, 0xfffffef, 0xffffff0, 0xffffff1, 0xffffff2, 0x3ffffffe, 0xffffff3, 0xffffff4,
    0xffffff5, 0xffffff6, 0xffffff7, 0xffffff8, 0xffffff9, 0xffffffa, 0xffffffb, 0x14, 0x3f8,
    0x3f9, 0xffa, 0x1ff9, 0x15, 0xf8, 0x7fa, 0x3fa, 0x3fb, 0xf9, 0x7fb, 0xfa, 0x16, 0x17, 0x18,
    0x0, 0x1, 0x2, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x5c, 0xfb, 0x7ffc, 0x20, 0xffb,
    0x3fc, 0x1ffa, 0x21, 0x5d, 0x5e, 0x5f, 0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
    0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f, 0x70, 0x71, 0x72, 0xfc, 0x73, 0xfd, 0x1ffb, 0x7fff0,
    0x1ffc, 0x3ffc, 0x22, 0x7ffd, 0x3, 0x23, 0x4, 0x24, 0x5, 0x25, 0x26, 0x27, 0x6, 0x74, 0x75,
    0x28, 0x29, 0x2a, 0x7, 0x2b, 0x76, 0x2c, 0x8, 0x9, 0x2d, 0x77, 0x78, 0x79, 0x7a, 0x7b, 0x7ffe,
    0x7fc, 0x3ffd, 0x1ffd, 0xffffffc, 0xfffe6, 0x3fffd2, 0xfffe7, 0xfffe8, 0x3fffd3, 0x3fffd4,
    0x3fffd5, 0x7fffd9, 0x3fffd6, 0x7fffda, 0x7fffdb, 0x7fffdc, 0x7fffdd, 0x7fffde, 0xffffeb,
    0x7fffdf, 0xffffec, 0xffffed, 0x3fffd7, 0x7fffe0, 0xffffee, 0x7fffe1, 0x7fffe2, 0x7fffe3,
    0x7fffe4, 0x1fffdc, 0x3fffd8, 0x7fffe5, 0x3fffd9, 0x7fffe6, 0x7fffe7, 0xffffef, 0x3fffda,
    0x1fffdd, 0xfffe9, 0x3fffdb, 0x3fffdc, 0x7fffe8, 0x7fffe9, 0x1fffde, 0x7fffea, 0x3fffdd,
    0x3fffde, 0xfffff0, 0x1fffdf, 0x3fffdf, 0x7fffeb, 0x7fffec, 0x1fffe0, 0x1fffe1, 0x3fffe0,
    0x1fffe2, 0x7fffed, 0x3fffe1, 0x7fffee, 0x7fffef, 0xfffea, 0x3fffe2, 0x3fffe3, 0x3fffe4,
    0x7ffff0, 0x3fffe5, 0x3fffe6, 0x7ffff1, 0x3ffffe0, 0x3ffffe1, 0xfffeb, 0x7fff1, 0x3fffe7,
    0x7ffff2, 0x3fffe8, 0x1ffffec, 0x3ffffe2, 0x3ffffe3, 0x3ffffe4, 0x7ffffde, 0x7ffffdf,
    0x3ffffe5, 0xfffff1, 0x1ffffed, 0x7fff2, 0x1fffe3, 0x3ffffe6, 0x7ffffe0, 0x7ffffe1, 0x3ffffe7,
    0x7ffffe2, 0xfffff2, 0x1fffe4, 0x1fffe5, 0x3ffffe8, 0x3ffffe9, 0xffffffd, 0x7ffffe3, 0x7ffffe4,
    0x7ffffe5, 0xfffec, 0xfffff3, 0xfffed, 0x1fffe6, 0x3fffe9, 0x1fffe7, 0x1fffe8, 0x7ffff3,
    0x3fffea, 0x3fffeb, 0x1ffffee, 0x1ffffef, 0xfffff4, 0xfffff5, 0x3ffffea, 0x7ffff4, 0x3ffffeb,
    0x7ffffe6, 0x3ffffec, 0x3ffffed, 0x7ffffe7, 0x7ffffe8, 0x7ffffe9, 0x7ffffea, 0x7ffffeb,
    0xffffffe, 0x7ffffec, 0x7ffffed, 0x7ffffee, 0x7ffffef, 0x7fffff0, 0x3ffffee,
];

/// The code length of each symbol (RFC 7541 Appendix B); EOS (256) is 30 bits.
const LENGTHS: [u8; 256] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28,
    28, 28, 28, 28, 28, 28, 28, 28, 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5,
    5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, 15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6,
    6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22, 22, 23, 22,
    23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22,
    21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20,
    22, 22, 22, 23, 22, 22, 23, 26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19,
    21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22,
    22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
];

/// The longest code (EOS's).
const MAX_LEN: usize = 30;
/// The end-of-string symbol, which a string must not hold.
const EOS: u16 = 256;

const fn length_of(symbol: usize) -> usize {
    if symbol == EOS as usize {
        MAX_LEN
    } else {
        LENGTHS[symbol] as usize
    }
}

/// For each code length: its first code, how many codes have it, and
/// where its symbols start in `symbols` (sorted by length, then symbol).
struct Canonical {
    first: [u32; MAX_LEN + 1],
    count: [u32; MAX_LEN + 1],
    offset: [u16; MAX_LEN + 1],
    symbols: [u16; 257],
}

const fn canonical() -> Canonical {
    let mut count = [0u32; MAX_LEN + 1];
    let mut s = 0;
    while s < 257 {
        count[length_of(s)] += 1;
        s += 1;
    }
    let mut first = [0u32; MAX_LEN + 1];
    let mut offset = [0u16; MAX_LEN + 1];
    let (mut code, mut at, mut len) = (0u32, 0u16, 1);
    while len <= MAX_LEN {
        first[len] = code;
        offset[len] = at;
        code = (code + count[len]) << 1;
        at += count[len] as u16;
        len += 1;
    }
    let mut next = offset;
    let mut symbols = [0u16; 257];
    s = 0;
    while s < 257 {
        let len = length_of(s);
        symbols[next[len] as usize] = s as u16;
        next[len] += 1;
        s += 1;
    }
    Canonical {
        first,
        count,
        offset,
        symbols,
    }
}

static CODE: Canonical = canonical();

/// For each value of the next 8 bits: the symbol whose code they start
/// with and its length (length << 8 | symbol), if that code is at most 8
/// bits long (the letters, digits and punctuation of paths and names);
/// 0 otherwise.
static SHORT: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut s = 0;
    while s < 256 {
        let len = length_of(s);
        if len <= 8 {
            // The symbol's code, from the canonical tables.
            let mut at = CODE.offset[len] as usize;
            while CODE.symbols[at] as usize != s {
                at += 1;
            }
            let code = CODE.first[len] as usize + (at - CODE.offset[len] as usize);
            let mut fill = 0;
            while fill < 1 << (8 - len) {
                table[code << (8 - len) | fill] = (len as u16) << 8 | s as u16;
                fill += 1;
            }
        }
        s += 1;
    }
    table
};

/// The bits `PAIRS` looks at.
const PAIR_BITS: u32 = 12;

/// The symbol whose code starts the `avail` bits of `window` (the top
/// `avail` of `PAIR_BITS` bits), and its length; 0 if none is that short.
const fn first_code(window: u32, avail: u32) -> (u32, u32) {
    let mut len = 1;
    while len <= avail {
        let code = window >> (PAIR_BITS - len);
        let index = code.wrapping_sub(CODE.first[len as usize]);
        if index < CODE.count[len as usize] {
            let symbol = CODE.symbols[CODE.offset[len as usize] as usize + index as usize];
            return (symbol as u32, len);
        }
        len += 1;
    }
    (0, 0)
}

/// For each value of the next 12 bits: the one or two symbols whose codes
/// they start with, and their length in all, as `count << 24 | length <<
/// 16 | second << 8 | first`; if no code is that short, a length of 255
/// (more than are ever waiting), so that one test refuses both. Most
/// letters, digits and punctuation are 5 to 6 bits long: a path decodes
/// two symbols a look-up.
static PAIRS: [u32; 1 << PAIR_BITS] = {
    let mut table = [0xff << 16; 1 << PAIR_BITS];
    let mut window = 0;
    while window < 1 << PAIR_BITS {
        let (first, len) = first_code(window, PAIR_BITS);
        if len != 0 {
            let rest = (window << len) & ((1 << PAIR_BITS) - 1);
            let (second, len2) = first_code(rest, PAIR_BITS - len);
            table[window as usize] = match len2 {
                0 => 1 << 24 | len << 16 | first,
                _ => 2 << 24 | (len + len2) << 16 | second << 8 | first,
            };
        }
        window += 1;
    }
    table
};

/// Room for what one refill decodes (64 bits, no code shorter than 5)
/// past the 64 symbols gathered before a flush.
const BUF: usize = 64 + 16;

/// Appends the decoding of `src` to `out`.
pub(super) fn decode(src: &[u8], out: &mut Vec<u8>) -> Result<(), BadHuffman> {
    // Bits waiting, most significant first, and how many; symbols are
    // gathered in `buf` and appended a run at a time.
    let (mut acc, mut bits) = (0u64, 0u32);
    let mut bytes = src.iter();
    let mut buf = [0u8; BUF];
    let mut n = 0;
    loop {
        if n >= 64 {
            out.extend_from_slice(&buf[..n]);
            n = 0;
        }
        // Once every byte is in, only the bits waiting are looked at.
        if bits < 32 && !bytes.as_slice().is_empty() {
            let rest = bytes.as_slice();
            if let Some(word) = rest.first_chunk::<8>() {
                // Whole bytes that fit; the next one's first bits come
                // along and are read again, the same, next time.
                let take = (64 - bits) / 8;
                acc |= u64::from_be_bytes(*word) >> bits;
                bits += take * 8;
                bytes = rest[take as usize..].iter();
            } else {
                while bits <= 56 {
                    let Some(&byte) = bytes.next() else { break };
                    acc |= u64::from(byte) << (56 - bits);
                    bits += 8;
                }
            }
        }
        // The common codes, a pair at a time, until what waits is too
        // short or starts with a longer code: at most 12 symbols of the
        // 64 bits, which `buf` has room for.
        loop {
            let pair = PAIRS[(acc >> (64 - PAIR_BITS)) as usize];
            let len = pair >> 16 & 0xff;
            if len > bits {
                break;
            }
            if let Some(two) = buf.get_mut(n..n + 2) {
                two.copy_from_slice(&pair.to_le_bytes()[..2]);
            }
            n += (pair >> 24) as usize;
            acc <<= len;
            bits -= len;
        }
        if bits < 32 && !bytes.as_slice().is_empty() {
            continue;
        }
        let short = SHORT[(acc >> 56) as usize];
        let len = u32::from(short >> 8);
        let (symbol, len) = if short != 0 && len <= bits {
            (short as u8, len)
        } else if bits <= 7 {
            // The end (no byte is left when fewer than 8 bits are): at
            // most 7 bits of padding, all ones (EOS's first bits). No
            // code is that short and all ones.
            out.extend_from_slice(&buf[..n]);
            let ones = !(!0u64 >> bits);
            return match acc & ones == ones {
                true => Ok(()),
                false => Err(BadHuffman),
            };
        } else {
            // A code longer than 8 bits that PAIRS did not take, one
            // bit at a time.
            long_code(acc, bits)?
        };
        acc <<= len;
        bits -= len;
        if let Some(slot) = buf.get_mut(n) {
            *slot = symbol;
        }
        n += 1;
    }
}

/// The symbol whose code (over 8 bits long) starts `acc`, of which `bits`
/// are meaningful, and the code's length.
fn long_code(acc: u64, bits: u32) -> Result<(u8, u32), BadHuffman> {
    let (mut code, mut len) = (0u32, 0usize);
    while (len as u32) < bits.min(MAX_LEN as u32) {
        code = code << 1 | (acc >> (63 - len)) as u32 & 1;
        len += 1;
        let index = code.wrapping_sub(CODE.first[len]);
        if index < CODE.count[len] {
            return match CODE.symbols[usize::from(CODE.offset[len]) + index as usize] {
                EOS => Err(BadHuffman),
                symbol => Ok((symbol as u8, len as u32)),
            };
        }
    }
    Err(BadHuffman)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The RFC's coding of `src`, padded with ones.
    fn encode(src: &[u8]) -> Vec<u8> {
        let (mut bits, mut n, mut out) = (0u64, 0u32, Vec::new());
        for &b in src {
            let len = u32::from(LENGTHS[usize::from(b)]);
            bits = bits << len | u64::from(ENCODE_CODES[usize::from(b)]);
            n += len;
            while n >= 8 {
                n -= 8;
                out.push((bits >> n) as u8);
            }
        }
        if n > 0 {
            out.push((bits << (8 - n)) as u8 | (0xff >> n));
        }
        out
    }

    #[test]
    fn the_code_is_canonical_and_every_octet_round_trips() {
        let all: Vec<u8> = (0..=255).collect();
        let mut out = Vec::new();
        decode(&encode(&all), &mut out).expect("decodes");
        assert_eq!(out, all);
        for s in [
            &b"www.example.com"[..],
            b"no-cache",
            b"custom-key",
            b"",
            b"0000000",
        ] {
            out.clear();
            decode(&encode(s), &mut out).expect("decodes");
            assert_eq!(out, s);
        }
        // RFC 7541 C.4.1: "www.example.com".
        let rfc = [
            0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff,
        ];
        out.clear();
        decode(&rfc, &mut out).expect("decodes");
        assert_eq!(out, b"www.example.com");
    }

    #[test]
    fn every_length_and_padding_round_trips() {
        let text: Vec<u8> = (0..600u32).map(|i| (i * 7 % 256) as u8).collect();
        for chars in [&b"/small.txt?q=&~^"[..], b"0", b"&", b"\xfe\x00"] {
            for n in 0..40 {
                let s: Vec<u8> = chars.iter().cycle().take(n).copied().collect();
                let mut out = Vec::new();
                decode(&encode(&s), &mut out).expect("decodes");
                assert_eq!(out, s);
            }
        }
        let mut out = Vec::new();
        decode(&encode(&text), &mut out).expect("decodes");
        assert_eq!(out, text);
    }

    #[test]
    fn eos_long_padding_and_zero_padding_are_refused() {
        let mut out = Vec::new();
        // EOS: 30 ones.
        assert_eq!(decode(&[0xff, 0xff, 0xff, 0xfc], &mut out), Err(BadHuffman));
        // A whole byte of padding.
        let mut padded = encode(b"a");
        padded.push(0xff);
        assert_eq!(decode(&padded, &mut out), Err(BadHuffman));
        // Padding of zeros: 'a' is 00011 (5 bits), then 000.
        assert_eq!(decode(&[0x18], &mut out), Err(BadHuffman));
    }
}
