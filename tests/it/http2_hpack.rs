//! The native engine's HPACK encoder over a real socket: a repeated
//! response's head is a few bytes of indexes into the dynamic table, the
//! table follows the client's SETTINGS_HEADER_TABLE_SIZE, and an idle
//! connection's table is dropped with the client told to drop its own.
//! Every block is decoded with the server's own decoder, in order, so a
//! table out of step shows as a wrong field or an error.

use std::time::{Duration, Instant};

use conveyor::config::Http2Engine;
use conveyor::http::hpack::Decoder;

use crate::harness::h2raw::*;

const SETTINGS_HEADER_TABLE_SIZE: u16 = 0x1;

type Fields = Vec<(String, String)>;

/// Asks for `path` on stream `id`: its header block, and its fields as
/// `decoder` reads them.
fn head(client: &mut Client, decoder: &mut Decoder, id: u32, path: &str) -> (Vec<u8>, Fields) {
    client.send(&get(id, path)).expect("send a GET");
    let headers = client
        .until(Duration::from_secs(10), |f| {
            f.stream == id && f.kind == HEADERS
        })
        .expect("a response");
    assert!(headers.flags & END_HEADERS != 0, "one frame: {headers:?}");
    let mut fields = Vec::new();
    decoder
        .decode(&headers.payload, 1 << 20, &mut |n, v| {
            let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            fields.push((s(n), s(v)));
        })
        .expect("the block decodes");
    if headers.flags & END_STREAM == 0 {
        let end = client.until(Duration::from_secs(10), |f| {
            f.stream == id && f.kind == DATA && f.flags & END_STREAM != 0
        });
        assert!(end.is_some(), "the body ends");
    }
    (headers.payload, fields)
}

fn date(fields: &Fields) -> &str {
    fields
        .iter()
        .find(|(n, _)| n == "date")
        .map(|(_, v)| &v[..])
        .expect("a date")
}

#[test]
fn a_repeated_response_is_a_few_bytes_of_indexes() {
    let server = start(|_| {});
    let mut client = Client::open(server.addr, &[]);
    let mut decoder = Decoder::new(4096);
    let (first, want) = head(&mut client, &mut decoder, 1, "/index.html");
    assert!(first.len() > 100, "{} bytes", first.len());
    assert!(want
        .iter()
        .any(|(n, v)| n == "content-type" && v.starts_with("text/html")));
    // The same response again, once within the same second (a new date
    // is sent once, then indexed too).
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut id = 3;
    let mut previous = want.clone();
    loop {
        let (block, fields) = head(&mut client, &mut decoder, id, "/index.html");
        assert_eq!(fields.len(), want.len());
        if date(&fields) == date(&previous) {
            assert_eq!(fields, previous);
            assert!(block.len() < 20, "{} bytes: {block:?}", block.len());
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no two responses within a second"
        );
        previous = fields;
        id += 2;
    }
}

#[test]
fn a_client_that_allows_no_table_gets_literals() {
    let server = start(|_| {});
    let mut client = Client::open(server.addr, &[(SETTINGS_HEADER_TABLE_SIZE, 0)]);
    let mut decoder = Decoder::new(0);
    let (first, fields) = head(&mut client, &mut decoder, 1, "/index.html");
    assert_eq!(first[0], 0x20, "the first block sets the table to 0");
    let (second, again) = head(&mut client, &mut decoder, 3, "/index.html");
    assert_eq!(again.len(), fields.len());
    assert!(second.len() > 100, "{} bytes", second.len());
    assert_eq!(decoder.table_size(), 0);
}

#[test]
fn an_idle_connection_drops_its_table_in_step_with_the_client() {
    let server = start(|_| {});
    let mut client = Client::open(server.addr, &[]);
    let mut decoder = Decoder::new(4096);
    let (_, want) = head(&mut client, &mut decoder, 1, "/index.html");
    assert!(decoder.table_size() > 0);
    // Once the connection has idled past its release (100 ms), the next
    // block starts with size updates to 0 and back: the client's table
    // empties, and both fill again in step.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut id = 3;
    loop {
        std::thread::sleep(Duration::from_millis(150));
        let (block, fields) = head(&mut client, &mut decoder, id, "/index.html");
        assert_eq!(fields.len(), want.len());
        id += 2;
        if block[0] == 0x20 {
            assert_eq!(block[1] & 0xe0, 0x20, "and back: {block:?}");
            break;
        }
        assert!(Instant::now() < deadline, "the table was never dropped");
    }
    let (_, fields) = head(&mut client, &mut decoder, id, "/index.html");
    assert_eq!(fields.len(), want.len());
    assert!(decoder.table_size() > 0);
}

/// A response's fields as HTTP/1.1 serves them, as HTTP/2 carries them:
/// names lowercased, connection fields dropped, `date` left out (it
/// moves), `:status` first.
fn as_h2(status: u16, fields: &[(String, String)]) -> Fields {
    let mut out = vec![(":status".to_string(), status.to_string())];
    out.extend(
        fields
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
            .filter(|(n, _)| !["date", "connection", "keep-alive"].contains(&&n[..])),
    );
    out
}

#[test]
fn repeated_and_alternating_heads_decode_as_http1_serves_them() {
    let server = start(|_| {});
    let files = ["/index.html", "/style.css"];
    let want: Vec<Fields> = files
        .iter()
        .map(|path| {
            let r = crate::harness::get_with(&server, path, "");
            assert_eq!(r.status, 200);
            as_h2(r.status, &r.headers)
        })
        .collect();
    // One file over and over (its head replayed while the table holds),
    // then two in turn, then one again: every block decoded in order.
    let mut order = vec![0; 40];
    order.extend((0..40).map(|i| i % 2));
    order.extend([1; 40]);
    let mut client = Client::open(server.addr, &[]);
    // Room for every body in the connection's window.
    client.send(&window_update(0, 1 << 30)).expect("send");
    let mut decoder = Decoder::new(4096);
    let mut small = 0;
    for (i, &file) in order.iter().enumerate() {
        let id = 1 + 2 * u32::try_from(i).expect("few");
        let (block, fields) = head(&mut client, &mut decoder, id, files[file]);
        let date = date(&fields).to_string();
        assert!(date.ends_with(" GMT"), "{date}");
        let got: Fields = fields.into_iter().filter(|(n, _)| n != "date").collect();
        assert_eq!(got, want[file], "response {i}");
        small += usize::from(block.len() < 20);
    }
    // All but a response or two a second (a new date) are indexes only.
    assert!(small > order.len() / 2, "{small} of {}", order.len());
}

/// A head the writer's reader gives up on part way (a header rule's
/// value with a tab goes to the full parse) after it encoded some fields
/// into the table: the client's table must stay in step, so every
/// block, repeated and alternating, decodes to the same fields.
#[test]
fn a_head_read_in_full_leaves_the_table_in_step() {
    let rules = conveyor::config::Config::from_toml_str(
        "[[headers]]\npath = \"**\"\nset = { X-A = \"a\\tb\" }\n",
    )
    .expect("config");
    let server = start(|c| c.static_files.headers = rules.static_files.headers.clone());
    let mut client = Client::open(server.addr, &[]);
    let mut decoder = Decoder::new(4096);
    for (i, path) in ["/index.html", "/index.html", "/style.css", "/index.html"]
        .iter()
        .enumerate()
    {
        let (_, fields) = head(&mut client, &mut decoder, 1 + 2 * i as u32, path);
        let value = |name: &str| {
            fields
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(value("x-a").as_deref(), Some("a\tb"), "{path}: {fields:?}");
        assert_eq!(
            value(":status").as_deref(),
            Some("200"),
            "{path}: {fields:?}"
        );
        let css = path.ends_with(".css");
        let ty = value("content-type").unwrap_or_default();
        assert_eq!(ty.starts_with("text/css"), css, "{path}: {fields:?}");
        assert!(
            value("server").is_some() && value("etag").is_some(),
            "{fields:?}"
        );
    }
}

/// A `set-cookie` a header rule adds goes out as a literal never indexed
/// (RFC 7541 §7.1.3), in every response: never into the table. So with
/// the h2 crate's engine, whose value may be Huffman-coded.
#[test]
fn a_set_cookie_is_a_literal_never_indexed_every_time() {
    let rules = conveyor::config::Config::from_toml_str(
        "[[headers]]\npath = \"**\"\nset = { Set-Cookie = \"s=1\" }\n",
    )
    .expect("config");
    for engine in [Http2Engine::Native, Http2Engine::H2] {
        let server = start(|c| {
            c.static_files.headers = rules.static_files.headers.clone();
            c.http2.engine = engine;
        });
        let mut client = Client::open(server.addr, &[]);
        let mut decoder = Decoder::new(4096);
        // 0001 1111, the name's index past 15 (55 - 15), the value.
        let literal = match engine {
            Http2Engine::Native => [&[0x1f, 55 - 15, 3][..], b"s=1"].concat(),
            _ => vec![0x1f, 55 - 15],
        };
        for id in [1, 3, 5] {
            let (block, fields) = head(&mut client, &mut decoder, id, "/index.html");
            assert!(
                fields.contains(&("set-cookie".into(), "s=1".into())),
                "{fields:?}"
            );
            assert!(
                block.windows(literal.len()).any(|w| w == literal),
                "{engine:?}, stream {id}: {block:x?}"
            );
        }
    }
}
