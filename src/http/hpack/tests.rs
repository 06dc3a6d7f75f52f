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
