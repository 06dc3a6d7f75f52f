use super::super::Decoder;
use super::*;
use crate::http::hpack::encode_field;

type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// A response's fields as the handler writes them (names capitalized).
fn response(date: &str, etag: &str, length: &str) -> Fields {
    [
        ("Server", "conveyor/0.1.0"),
        ("Date", date),
        ("Content-Type", "text/plain; charset=utf-8"),
        ("ETag", etag),
        ("Last-Modified", "Sun, 06 Dec 2026 19:00:00 GMT"),
        ("Accept-Ranges", "bytes"),
        ("Content-Length", length),
    ]
    .iter()
    .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
    .collect()
}

fn encode(encoder: &mut Encoder, code: u16, fields: &Fields) -> Vec<u8> {
    let mut out = Vec::new();
    encoder.status(&mut out, code);
    for (n, v) in fields {
        encoder.field(&mut out, n, v);
    }
    out
}

/// Decodes `block` and checks it says `code` and `fields` (names
/// lowercased), and that both tables hold the same entries.
fn round_trip(encoder: &mut Encoder, decoder: &mut Decoder, code: u16, fields: &Fields) -> usize {
    let block = encode(encoder, code, fields);
    let mut got = Vec::new();
    decoder
        .decode(&block, 1 << 20, &mut |n, v| {
            got.push((n.to_vec(), v.to_vec()))
        })
        .expect("our decoder takes our encoder's block");
    let mut want = vec![(b":status".to_vec(), code.to_string().into_bytes())];
    want.extend(
        fields
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.clone())),
    );
    assert_eq!(got, want);
    in_step(encoder, decoder);
    block.len()
}

fn in_step(encoder: &Encoder, decoder: &Decoder) {
    let ours: Vec<(&[u8], &[u8])> = encoder
        .table
        .iter()
        .map(|e| (STATIC[(e.key >> 16) as usize - 1].0, &e.value[..]))
        .collect();
    let theirs: Vec<(&[u8], &[u8])> = decoder
        .table
        .iter()
        .map(|e| (&e.name[..], &e.value[..]))
        .collect();
    // Ours is the newest part of the decoder's table (all of it once a
    // maximum at most our cap is signalled).
    assert_eq!(ours[..], theirs[..ours.len()]);
    if encoder.max <= TABLE_CAP {
        assert_eq!(encoder.size, decoder.size);
    }
    assert!(encoder.size <= encoder.max.min(TABLE_CAP));
    assert_eq!(encoder.max, decoder.max);
}

#[test]
fn a_repeated_response_is_a_byte_per_field() {
    let (mut encoder, mut decoder) = (Encoder::new(), Decoder::new(4096));
    let fields = response("Sun, 06 Dec 2026 20:00:00 GMT", "\"5f-1a\"", "128");
    let first = round_trip(&mut encoder, &mut decoder, 200, &fields);
    assert!(first > 100, "{first}");
    // :status and seven indexes.
    assert_eq!(round_trip(&mut encoder, &mut decoder, 200, &fields), 8);
    // A new second: only the date is sent again (and indexed).
    let next = response("Sun, 06 Dec 2026 20:00:01 GMT", "\"5f-1a\"", "128");
    let size = round_trip(&mut encoder, &mut decoder, 200, &next);
    assert_eq!(size, 8 + 1 + 29);
    assert_eq!(round_trip(&mut encoder, &mut decoder, 200, &next), 8);
}

#[test]
fn the_default_table_size_needs_no_update() {
    let mut encoder = Encoder::new();
    assert_eq!(encode(&mut encoder, 200, &Vec::new()), [0x88]);
    // A client that says the default, or more, changes nothing.
    encoder.set_limit(4096);
    assert_eq!(encode(&mut encoder, 404, &Vec::new()), [0x8d]);
    encoder.set_limit(1 << 20);
    assert_eq!(encode(&mut encoder, 404, &Vec::new()), [0x8d]);
    // Lower than the decoder's 4096: signalled, as our cap at most.
    encoder.set_limit(3000);
    let mut want = Vec::new();
    put_integer(&mut want, 5, 0x20, TABLE_CAP.min(3000));
    want.push(0x88);
    assert_eq!(encode(&mut encoder, 200, &Vec::new()), want);
}

#[test]
fn fields_that_may_hold_secrets_are_never_indexed() {
    let (mut encoder, mut decoder) = (Encoder::new(), Decoder::new(4096));
    let fields: Fields = [
        ("Set-Cookie", "session=secret"),
        ("Location", "/private/path"),
        ("Authorization-Info", "x"),
        ("X-Custom", "value"),
        ("Content-Type", &"x".repeat(MAX_VALUE + 1)),
    ]
    .iter()
    .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
    .collect();
    let first = round_trip(&mut encoder, &mut decoder, 302, &fields);
    assert_eq!(round_trip(&mut encoder, &mut decoder, 302, &fields), first);
    assert_eq!(encoder.table_size(), 0);
}

#[test]
fn a_smaller_client_table_is_signalled_and_kept_to() {
    let (mut encoder, mut decoder) = (Encoder::new(), Decoder::new(4096));
    let fields = response("Sun, 06 Dec 2026 20:00:00 GMT", "\"1\"", "1");
    round_trip(&mut encoder, &mut decoder, 200, &fields);
    assert!(encoder.table_size() > 200);
    // The client allows 100 bytes: the next block starts with the update
    // and the table keeps what fits.
    encoder.set_limit(100);
    let block = encode(&mut encoder, 200, &Vec::new());
    assert_eq!(block[..2], [0x3f, 100 - 31]);
    decoder
        .decode(&block, 1 << 20, &mut |_, _| {})
        .expect("decodes");
    in_step(&encoder, &decoder);
    for _ in 0..3 {
        round_trip(&mut encoder, &mut decoder, 200, &fields);
        assert!(encoder.table_size() <= 100);
    }
    // Lowered to 0 then raised between two blocks: both are signalled,
    // the smallest first (RFC 7541 §4.2).
    encoder.set_limit(0);
    encoder.set_limit(65_536);
    let block = encode(&mut encoder, 200, &Vec::new());
    let mut want = vec![0x20];
    put_integer(&mut want, 5, 0x20, TABLE_CAP);
    want.push(0x88);
    assert_eq!(block, want);
    decoder
        .decode(&block, 1 << 20, &mut |_, _| {})
        .expect("decodes");
    in_step(&encoder, &decoder);
    // Raised past our cap with nothing else: no update.
    encoder.set_limit(8192);
    assert_eq!(encode(&mut encoder, 200, &Vec::new()), [0x88]);
    // A client that allows no table gets literals.
    encoder.set_limit(0);
    round_trip(&mut encoder, &mut decoder, 200, &fields);
    round_trip(&mut encoder, &mut decoder, 200, &fields);
    assert_eq!(encoder.table_size(), 0);
}

#[test]
fn an_idle_connection_drops_its_table_and_the_client_follows() {
    let (mut encoder, mut decoder) = (Encoder::new(), Decoder::new(4096));
    let fields = response("Sun, 06 Dec 2026 20:00:00 GMT", "\"1\"", "1");
    round_trip(&mut encoder, &mut decoder, 200, &fields);
    encoder.release();
    assert_eq!((encoder.table_size(), encoder.table.capacity()), (0, 0));
    let block = encode(&mut encoder, 200, &fields);
    let mut want = vec![0x20];
    put_integer(&mut want, 5, 0x20, TABLE_CAP);
    assert_eq!(block[..want.len()], want);
    let mut fresh = Decoder::new(4096);
    let mut size = 0;
    fresh
        .decode(&block, 1 << 20, &mut |_, _| size += 1)
        .expect("decodes");
    decoder
        .decode(&block, 1 << 20, &mut |_, _| {})
        .expect("decodes");
    in_step(&encoder, &decoder);
    assert_eq!(decoder.size, fresh.size);
    // Releasing an empty table twice owes nothing more.
    encoder.release();
    encoder.release();
    let block = encode(&mut encoder, 200, &Vec::new());
    assert_eq!(block.iter().filter(|&&b| b & 0xe0 == 0x20).count(), 2);
    decoder
        .decode(&block, 1 << 20, &mut |_, _| {})
        .expect("decodes");
    encoder.release();
    assert_eq!(encode(&mut encoder, 200, &Vec::new()), [0x88]);
}

#[test]
fn the_tables_stay_in_step_over_random_responses() {
    // xorshift: the same sequence every run.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let (mut encoder, mut decoder) = (Encoder::new(), Decoder::new(4096));
    let (mut total, mut literal) = (0, 0);
    for i in 0..20_000 {
        match next(500) {
            0 => encoder.release(),
            1 => encoder.set_limit([0, 64, 100, 300, 1024, 4096, 65_536][next(7) as usize]),
            _ => {}
        }
        let date = format!("Sun, 06 Dec 2026 20:00:{:02} GMT", i / 400 % 60);
        let file = next(40);
        let etag = format!("\"{file:x}-{}\"", "e".repeat(file as usize));
        let length = (file * 977).to_string();
        let mut fields = response(&date, &etag, &length);
        if next(4) == 0 {
            fields.push((b"Vary".to_vec(), b"Accept-Encoding".to_vec()));
            fields.push((b"set-cookie".to_vec(), format!("s={i}").into_bytes()));
        }
        let code = [200, 304, 404, 206, 301][next(5) as usize];
        total += round_trip(&mut encoder, &mut decoder, code, &fields);
        let mut plain = Vec::new();
        encode_status(&mut plain, code);
        for (n, v) in &fields {
            encode_field(&mut plain, n, v);
        }
        literal += plain.len();
    }
    // Indexing pays, even over 40 files and changing table sizes.
    // (Measured: 108 bytes a response against 160; 113 with a 1 KiB
    // cap, 104 with 4 KiB.)
    assert!(total * 4 < literal * 3, "{total} vs {literal}");
}

#[test]
fn values_compare_by_words_as_bytes() {
    for n in 0..48usize {
        let a: Vec<u8> = (0..n as u8).collect();
        assert!(same(&a, &a.clone()));
        for at in 0..n {
            let mut b = a.clone();
            b[at] ^= 0x40;
            assert!(!same(&a, &b), "{n} bytes, differing at {at}");
        }
        assert!(!same(&a, &[a.clone(), vec![0]].concat()));
    }
}

#[test]
fn names_match_in_any_case_and_nothing_else() {
    let indexable = |name: &[u8]| name_index(name).and_then(indexable);
    assert_eq!(indexable(b"Content-Type"), Some(2));
    assert_eq!(indexable(b"CONTENT-LENGTH"), Some(6));
    assert_eq!(indexable(b"Strict-Transport-Security"), Some(12));
    for near in [
        &b"content\rtype"[..],
        b"date ",
        b"date\0",
        b"dat",
        b"etag2",
        b"set-cookie",
        b"",
        b"content-lengthxx",
    ] {
        assert_eq!(indexable(near), None, "{near:?}");
    }
}

#[test]
fn the_generation_moves_with_every_change_and_only_then() {
    let mut encoder = Encoder::new();
    let a = response("Sun, 06 Dec 2026 19:00:00 GMT", "\"a\"", "128");
    let g = encoder.generation();
    encode(&mut encoder, 200, &a);
    assert_ne!(encoder.generation(), g, "inserted");
    // Indexes and literals not indexed change nothing.
    let g = encoder.generation();
    let mut again = a.clone();
    again.push((b"Set-Cookie".to_vec(), b"x=1".to_vec()));
    let block = encode(&mut encoder, 200, &again);
    assert_eq!(encoder.generation(), g);
    assert_eq!(encode(&mut encoder, 200, &again), block);
    assert_eq!(encoder.generation(), g);
    // A new value; an idle release; the block sending the updates owed.
    encode(
        &mut encoder,
        200,
        &response("Sun, 06 Dec 2026 19:00:01 GMT", "\"a\"", "128"),
    );
    assert_ne!(encoder.generation(), g);
    let g = encoder.generation();
    encoder.release();
    assert_ne!(encoder.generation(), g);
    let g = encoder.generation();
    encoder.status(&mut Vec::new(), 200);
    assert_ne!(encoder.generation(), g, "the size updates were sent");
    // The client's table size, lowered and raised.
    for limit in [0, 4096] {
        let g = encoder.generation();
        encoder.set_limit(limit);
        assert_ne!(encoder.generation(), g);
        encoder.status(&mut Vec::new(), 200);
    }
}

#[test]
fn set_cookie_and_the_like_are_literals_never_indexed() {
    let (mut encoder, mut decoder) = (Encoder::new(), Decoder::new(4096));
    // The table holds a response's fields first: none of what follows
    // may change it, in either encoder or decoder.
    round_trip(
        &mut encoder,
        &mut decoder,
        200,
        &response("d", "\"1\"", "1"),
    );
    let (size, entries) = (decoder.size, decoder.table.len());
    let long = "s=".repeat(100);
    for (name, value, index) in [
        ("Set-Cookie", "session=secret", Some(55)),
        ("set-cookie", &long[..], Some(55)),
        ("SET-COOKIE", "", Some(55)),
        ("Authorization", "Basic eDp5", Some(23)),
        ("Authentication-Info", "rspauth=\"x\"", None),
        ("proxy-authentication-info", "nextnonce=\"y\"", None),
    ] {
        let fields: Fields = vec![(name.into(), value.into())];
        let block = encode(&mut encoder, 200, &fields);
        // :status (one byte), then the field: 0001xxxx, with the name's
        // index in four bits (and more bytes past 15), or 0 and the name.
        assert_eq!(block[1] & 0xf0, 0x10, "{name}: {block:x?}");
        match index {
            Some(i) => assert_eq!(block[1..3], [0x1f, i - 15], "{name}"),
            None => assert_eq!(block[1], 0x10, "{name}"),
        }
        let mut got = Vec::new();
        decoder
            .decode(&block, 1 << 20, &mut |n, v| {
                got.push((n.to_vec(), v.to_vec()))
            })
            .expect("decodes");
        assert_eq!(
            got[1],
            (name.to_ascii_lowercase().into_bytes(), value.into())
        );
        assert_eq!(
            (decoder.size, decoder.table.len()),
            (size, entries),
            "{name}"
        );
        in_step(&encoder, &decoder);
    }
    // Other fields the table does not take stay literals not indexed.
    let block = encode(
        &mut encoder,
        200,
        &vec![(b"Location".to_vec(), b"/x".to_vec())],
    );
    assert_eq!(block[1..3], [0x0f, 46 - 15]);
    let block = encode(
        &mut encoder,
        200,
        &vec![(b"X-Info".to_vec(), b"y".to_vec())],
    );
    assert_eq!(block[1], 0x00);
}
