//! `[cors]`: which other origins may read the files. Built once from the
//! config; consulted per request only when configured, so the plain path
//! pays nothing for it.

use crate::config::CorsConfig;

/// The `[cors]` table, with its answer fields prebuilt.
pub(super) struct Cors {
    /// `"*"`: any origin, answered `*` (never reflected).
    any: bool,
    origins: Vec<String>,
    credentials: bool,
    /// "Access-Control-Allow-Methods: …\r\n…Max-Age…\r\n", for preflights.
    preflight_fields: Vec<u8>,
}

/// Fields a script may read beyond the safelisted ones: what resuming a
/// download and revalidating need.
const EXPOSE: &str = "Content-Range, Accept-Ranges, ETag, Content-Encoding";

impl Cors {
    /// None when no origin is allowed (CORS off).
    pub(super) fn new(config: &CorsConfig) -> Option<Cors> {
        if config.origins.is_empty() {
            return None;
        }
        let mut preflight_fields = Vec::new();
        let mut push = |name: &str, value: &str| {
            if !value.is_empty() {
                preflight_fields.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
            }
        };
        push("Access-Control-Allow-Methods", &config.methods.join(", "));
        push("Access-Control-Allow-Headers", &config.headers.join(", "));
        push(
            "Access-Control-Max-Age",
            &config.max_age.as_secs().to_string(),
        );
        Some(Cors {
            any: config.origins.iter().any(|o| o == "*"),
            origins: config.origins.clone(),
            credentials: config.credentials,
            preflight_fields,
        })
    }

    /// The fields for an answer to a request from `origin` (header lines,
    /// CRLF each); `preflight` adds what a preflight needs.
    pub(super) fn fields(&self, origin: Option<&str>, preflight: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(160);
        // "*" without credentials is the same answer for everyone: no Vary.
        let star = self.any && !self.credentials;
        if !star {
            out.extend_from_slice(b"Vary: Origin\r\n");
        }
        // Only an origin listed, as it is listed, is ever reflected: never
        // any origin for "*" (with credentials the config is refused at
        // start), never "null" unless "null" is listed.
        let allowed = !self.any && origin.is_some_and(|o| self.origins.iter().any(|a| a == o));
        if star {
            out.extend_from_slice(b"Access-Control-Allow-Origin: *\r\n");
        } else if let (true, Some(origin)) = (allowed, origin) {
            // The value goes out as sent: refuse what could split the head.
            if origin.bytes().any(|b| b < 0x20 || b == 0x7f) {
                return out;
            }
            out.extend_from_slice(b"Access-Control-Allow-Origin: ");
            out.extend_from_slice(origin.as_bytes());
            out.extend_from_slice(b"\r\n");
        } else {
            return out;
        }
        if self.credentials {
            out.extend_from_slice(b"Access-Control-Allow-Credentials: true\r\n");
        }
        if preflight {
            out.extend_from_slice(&self.preflight_fields);
        } else {
            out.extend_from_slice(b"Access-Control-Expose-Headers: ");
            out.extend_from_slice(EXPOSE.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out
    }
}
