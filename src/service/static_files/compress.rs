//! Compressing a file once per version, into the cache: which files are
//! worth it, and the encoders (brotli and gzip, both pure Rust).

use std::io::Write;
use std::path::Path;

use super::negotiate::Encoding;

/// Text types compress well; images, fonts and archives already are.
const TEXT_EXTENSIONS: &[&str] = &[
    "html", "htm", "css", "js", "mjs", "json", "svg", "xml", "txt", "map", "wasm",
];

/// Whether the file's extension names a type worth compressing.
pub(super) fn is_text(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| TEXT_EXTENSIONS.iter().any(|t| t.eq_ignore_ascii_case(e)))
}

/// `bytes` encoded, or None when the result would not save at least 10 %
/// (not worth a Vary and a second copy in memory).
pub(super) fn compress(encoding: Encoding, bytes: &[u8]) -> Option<Vec<u8>> {
    let out = match encoding {
        Encoding::Br => brotli(bytes)?,
        Encoding::Gzip => gzip(bytes)?,
        Encoding::Zstd | Encoding::Identity => return None,
    };
    (out.len() as u128 * 10 <= bytes.len() as u128 * 9).then_some(out)
}

/// Quality 6, window 2^22: within a few percent of quality 11 on text, and
/// a 1 MiB file takes milliseconds rather than seconds, which matters as it
/// runs on a worker, once per version.
fn brotli(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len() / 3);
    let params = brotli::enc::BrotliEncoderParams {
        quality: 6,
        lgwin: 22,
        size_hint: bytes.len(),
        ..Default::default()
    };
    brotli::BrotliCompress(&mut &bytes[..], &mut out, &params).ok()?;
    Some(out)
}

/// Level 6, zlib's default: the usual balance of time and size.
fn gzip(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 3),
        flate2::Compression::new(6),
    );
    encoder.write_all(bytes).ok()?;
    encoder.finish().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn text_types_by_extension() {
        for name in [
            "a.html", "b.CSS", "c.js", "d.mjs", "e.json", "f.svg", "g.wasm", "h.map",
        ] {
            assert!(is_text(Path::new(name)), "{name}");
        }
        for name in ["a.png", "b.gz", "c.woff2", "noext", "d.br"] {
            assert!(!is_text(Path::new(name)), "{name}");
        }
    }

    #[test]
    fn round_trips_and_skips_what_does_not_shrink() {
        let text = "body { color: red; margin: 0 auto; }\n".repeat(100);
        let gz = compress(Encoding::Gzip, text.as_bytes()).unwrap();
        let mut back = String::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_string(&mut back)
            .unwrap();
        assert_eq!(back, text);
        let br = compress(Encoding::Br, text.as_bytes()).unwrap();
        let mut back = Vec::new();
        brotli::BrotliDecompress(&mut &br[..], &mut back).unwrap();
        assert_eq!(back, text.as_bytes());
        // Pseudo-random bytes do not compress.
        let mut x = 0x2545_f491_u32;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        assert_eq!(compress(Encoding::Gzip, &noise), None);
        assert_eq!(compress(Encoding::Br, &noise), None);
        assert_eq!(compress(Encoding::Zstd, text.as_bytes()), None);
    }
}
