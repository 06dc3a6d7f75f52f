use super::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn fields(decoder: &mut Decoder, block: &[u8], limit: usize) -> (Vec<(String, String)>, Decoded) {
    let mut out = Vec::new();
    let decoded = decoder
        .decode(block, limit, &mut |n, v| {
            out.push((
                String::from_utf8_lossy(n).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            ))
        })
        .expect("decodes");
    (out, decoded)
}

#[test]
fn the_rfc_requests_decode_with_and_without_huffman() {
    // RFC 7541 C.3 (plain) and C.4 (Huffman): three requests on one table.
    for blocks in [
        [
            "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
            "8286 84be 5808 6e6f 2d63 6163 6865",
            "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
        ],
        [
            "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
            "8286 84be 5886 a8eb 1064 9cbf",
            "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
        ],
    ] {
        let mut decoder = Decoder::new(4096);
        let (first, _) = fields(&mut decoder, &hex(blocks[0]), 1 << 20);
        assert_eq!(first[3], (":authority".into(), "www.example.com".into()));
        assert_eq!(decoder.table_size(), 57);
        let (second, _) = fields(&mut decoder, &hex(blocks[1]), 1 << 20);
        assert_eq!(second[4], ("cache-control".into(), "no-cache".into()));
        assert_eq!(second[3], (":authority".into(), "www.example.com".into()));
        let (third, d) = fields(&mut decoder, &hex(blocks[2]), 1 << 20);
        assert_eq!(third[4], ("custom-key".into(), "custom-value".into()));
        assert_eq!(third[1], (":scheme".into(), "https".into()));
        assert_eq!(decoder.table_size(), 164);
        assert!(!d.over);
    }
}

#[test]
fn references_past_the_limit_are_counted_not_handed_over() {
    let mut decoder = Decoder::new(4096);
    let mut block = vec![0x40, 6];
    block.extend_from_slice(b"x-bomb");
    put_integer(&mut block, 7, 0, 4000);
    block.extend(std::iter::repeat_n(b'a', 4000));
    fields(&mut decoder, &block, 1 << 20);
    let bomb = vec![0xbe; 10_000];
    let (handed, decoded) = fields(&mut decoder, &bomb, 16 * 1024);
    assert_eq!(handed.len(), 4, "only what fits in 16 KiB");
    assert!(decoded.over);
    assert_eq!(decoded.size, 10_000 * (6 + 4000 + 32));
}

#[test]
fn bad_blocks_are_compression_errors() {
    let bad = |block: &[u8]| Decoder::new(4096).decode(block, 1 << 20, &mut |_, _| {});
    assert_eq!(bad(&[0x80]), Err(DecodeError::Compression), "index 0");
    assert_eq!(
        bad(&[0xbe]),
        Err(DecodeError::Compression),
        "past the table"
    );
    assert_eq!(
        bad(&[0x82, 0x20]),
        Err(DecodeError::Compression),
        "update after a field"
    );
    assert_eq!(
        bad(&[0x3f, 0xe2, 0x1f]),
        Err(DecodeError::Compression),
        "update over the limit"
    );
    assert_eq!(
        bad(&[0x00, 0x05, b'a']),
        Err(DecodeError::Compression),
        "truncated"
    );
    assert_eq!(
        bad(&[0x7f, 0xff, 0xff, 0xff, 0xff, 0x0f]),
        Err(DecodeError::Compression)
    );
    // A size update at the start, down to 0: allowed, empties the table.
    assert_eq!(bad(&[0x20, 0x82]).map(|d| d.over), Ok(false));
}

#[test]
fn responses_encode_to_what_the_decoder_reads() {
    let mut out = Vec::new();
    encode_status(&mut out, 200);
    encode_status(&mut out, 418);
    encode_field(&mut out, b"Content-Type", b"text/plain");
    encode_field(&mut out, b"X-Custom-Thing", b"yes");
    encode_field(&mut out, b"Access-Control-Allow-Origin", b"*");
    encode_field(
        &mut out,
        b"x-a-name-longer-than-thirty-two-bytes",
        &[b'v'; 200],
    );
    let (got, _) = fields(&mut Decoder::new(4096), &out, 1 << 20);
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            ":status",
            ":status",
            "content-type",
            "x-custom-thing",
            "access-control-allow-origin",
            "x-a-name-longer-than-thirty-two-bytes"
        ]
    );
    assert_eq!(got[1].1, "418");
    assert_eq!(got[5].1.len(), 200);
}

#[test]
fn integers_encode_as_rfc_7541_c1_has_them() {
    for (n, flags, value, want) in [
        (5, 0x00, 10, "0a"),         // C.1.1
        (5, 0x00, 1337, "1f 9a 0a"), // C.1.2
        (8, 0x00, 42, "2a"),         // C.1.3
        (4, 0x00, 15, "0f 00"),      // the prefix full: a zero follows
        (7, 0x80, 126, "fe"),        // flags kept
        (7, 0x80, 127, "ff 00"),
        (7, 0x00, 16_384, "7f 81 7f"),
    ] {
        let mut out = Vec::new();
        put_integer(&mut out, n, flags, value);
        assert_eq!(out, hex(want), "{value} with a {n}-bit prefix");
        let mut read = &out[..];
        assert_eq!(integer(&mut read, n), Ok(value));
        assert!(read.is_empty());
    }
}

#[test]
fn a_field_encodes_as_rfc_7541_c22_has_it() {
    // C.2.2: a literal field without indexing, its name indexed (:path).
    let mut out = Vec::new();
    encode_field(&mut out, b":path", b"/sample/path");
    assert_eq!(out, hex("040c 2f73 616d 706c 652f 7061 7468"));
    // The status codes of the static table, one byte each (C.2.4's form).
    for (code, byte) in [(200, 0x88), (204, 0x89), (206, 0x8a), (304, 0x8b)] {
        let mut out = Vec::new();
        encode_status(&mut out, code);
        assert_eq!(out, [byte]);
    }
    for (code, byte) in [(400, 0x8c), (404, 0x8d), (500, 0x8e)] {
        let mut out = Vec::new();
        encode_status(&mut out, code);
        assert_eq!(out, [byte]);
    }
    // A name the server writes, as it spells it: its index, no copy.
    let mut out = Vec::new();
    encode_field(&mut out, b"Content-Length", b"128");
    assert_eq!(out, hex("0f0d 03 313238"));
}

/// A small deterministic generator (xorshift), for field lists.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn field_lists_decode_to_what_was_encoded() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let spelled = [
        &b"Content-Type"[..],
        b"CONTENT-LENGTH",
        b"etag",
        b"Server",
        b"Date",
        b"x-custom",
        b"Access-Control-Allow-Origin",
        b"X-A-Name-Of-More-Than-Thirty-Two-Bytes-In-All",
    ];
    for _ in 0..2000 {
        let mut block = Vec::new();
        let mut want = Vec::new();
        let status = 100 + rng.below(900) as u16;
        encode_status(&mut block, status);
        want.push((":status".to_string(), status.to_string().into_bytes()));
        for _ in 0..rng.below(20) {
            let name: Vec<u8> = match rng.below(3) {
                0 => STATIC[rng.below(STATIC.len())].0.to_ascii_uppercase(),
                1 => spelled[rng.below(spelled.len())].to_vec(),
                _ => (0..1 + rng.below(200))
                    .map(|_| b"abcdefghijklmnopqrstuvwxyz-_0123456789"[rng.below(38)])
                    .collect(),
            };
            let len = match rng.below(4) {
                0 => 126 + rng.below(3),
                1 => rng.below(20_000),
                _ => rng.below(60),
            };
            let value: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            encode_field(&mut block, &name, &value);
            let name = String::from_utf8(name.to_ascii_lowercase()).expect("ascii");
            want.push((name, value));
        }
        let mut got = Vec::new();
        Decoder::new(4096)
            .decode(&block, usize::MAX, &mut |n, v| {
                got.push((String::from_utf8_lossy(n).into_owned(), v.to_vec()))
            })
            .expect("decodes");
        assert_eq!(got, want);
    }
}

#[test]
fn names_as_the_server_spells_them_have_the_tables_index() {
    let spelled: [&[u8]; 14] = [
        b"Date",
        b"ETag",
        b"Vary",
        b"Allow",
        b"Server",
        b"Expires",
        b"Location",
        b"Content-Type",
        b"Last-Modified",
        b"Accept-Ranges",
        b"Cache-Control",
        b"Content-Range",
        b"Content-Length",
        b"Content-Encoding",
    ];
    for name in spelled {
        let index = name_index_any_case(name);
        assert!(index.is_some(), "{name:?}");
        assert_eq!(name_index(name), index);
        assert_eq!(name_index(&name.to_ascii_lowercase()), index);
    }
    // The same length and ends, another name: not taken for one.
    assert_eq!(name_index(b"Date-"), None);
    assert_eq!(name_index(b"Content-Tope"), None);
    assert_eq!(name_index(b"Last-Modifies"), None);
    assert_eq!(name_index(b"X"), None);
    assert_eq!(name_index(b"via"), Some(60));
    assert_eq!(name_index(b"WWW-Authenticate"), Some(61));
    assert_eq!(name_index(&[b'a'; 40]), None);
    // Every name of the table, in any case, by its first index.
    for (at, (name, _)) in STATIC.iter().enumerate() {
        let first = STATIC
            .iter()
            .position(|(n, _)| n == name)
            .map(|i| i as u8 + 1);
        assert_eq!(name_index(&name.to_ascii_uppercase()), first, "{at}");
    }
}
