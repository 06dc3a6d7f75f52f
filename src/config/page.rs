//! `docs/configuration.md`, written from the key table: one row per key
//! (name, type, default, what it does), a table per section, as nginx
//! documents its directives. A test fails when the committed page and the
//! table differ; `CONVEYOR_BLESS=1 cargo test --lib config::page` rewrites it.

use super::keys::{Key, KEYS};

/// The path of the page, from the repository's root.
pub const CONFIGURATION_PAGE: &str = "docs/configuration.md";

const PREAMBLE: &str = "\
# Configuration

<!-- Written from the key table in src/config/keys.rs: do not edit here.
     After changing the table: CONVEYOR_BLESS=1 cargo test --lib config::page -->

Conveyor reads the file named with `--config FILE`, or, when neither that
nor a ROOT directory is given, `config/conveyor.toml` if it exists
(`conveyor DIR` alone reads no file). A relative `root` in a file is taken
from the file's directory. Every key may be left out: it then keeps the default shown here. Flags on the
command line override the file (`conveyor --help`). A key the table does not
know is refused, and the nearest one is suggested.
[`config/conveyor.toml`](../config/conveyor.toml) lists every key with its
default and a longer comment. SIGHUP reloads it; a reload that changes a
key only a restart can apply (`workers`, the stages, ...) names it and keeps
the running value.

- **Durations**: \"250ms\", \"10s\", \"2m\", \"1h\"; a bare integer is seconds, up to an hour (`75000` is refused: write `\"75s\"`).
- **Sizes**: an integer of bytes, or \"512B\", \"64KiB\", \"4GiB\" (1024-based),
  \"1MB\" (1000-based).
";

/// The whole page.
pub fn configuration_page() -> String {
    let mut out = String::from(PREAMBLE);
    let mut section = None;
    for key in KEYS {
        if section != Some(key.section()) {
            section = Some(key.section());
            let title = match key.section() {
                "" => "Top level".to_string(),
                s => format!("`[{s}]`"),
            };
            out += &format!(
                "\n## {title}\n\n| Key | Type | Default | What it does |\n| --- | --- | --- | --- |\n"
            );
        }
        out += &format!(
            "| `{}` | {} | `{}` | {} |\n",
            key.name,
            cell(&value_type(key)),
            key.default,
            cell(key.doc)
        );
    }
    out
}

/// Text a table cell can hold: a `|` would end the cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

/// What a value is written as, from the parser that reads it; the
/// parser's own name when it has no entry in `written_as`.
fn value_type(key: &Key) -> String {
    written_as(key).unwrap_or_else(|| key.parser.to_string())
}

/// `None` for a parser new to this list (`every_parser_has_a_type`).
fn written_as(key: &Key) -> Option<String> {
    if !key.choices.is_empty() {
        let names: Vec<String> = key.choices.iter().map(|n| format!("`{n}`")).collect();
        return Some(format!("one of {}", names.join(", ")));
    }
    if let Some(bounds) = key.parser.strip_prefix("int(") {
        return Some(integer_range(bounds.trim_end_matches(')')));
    }
    let known = match key.parser {
        "listeners" => "listener, or a list",
        "socket_mode" => "octal mode, as a string",
        "root" => "path",
        "workers" => "integer, 0 to 1024",
        "account" => "account name",
        "header_rules" | "redirect_rules" | "rewrite_rules" | "auth_rules" | "sites"
        | "tls::certificates" => "array of tables",
        "duration" => "duration, over 0",
        "duration_or_zero" => "duration",
        "whole_seconds_or_zero" => "duration, whole seconds",
        "size" => "size",
        "rate" => "size per second",
        "boolean" => "boolean",
        "file_name" => "file name",
        "media_type" => "media type",
        "route_path" => "request path",
        "fallback" => "file beneath the root, as a request path",
        "error_pages" => "table: status = file",
        "origins" => "list of origins",
        "tokens" => "list of tokens",
        "addr_ranges" => "list of addresses and CIDR ranges",
        "log_path" => "path, or \"-\"",
        "tls::tcp_address_list" => "list of addresses",
        "tls::redirect_host" => "host name, or \"\"",
        "acme::domains" => "list of DNS names",
        "acme::email" => "e-mail address, or \"\"",
        "acme::directory" => "https URL",
        "acme::state_dir" => "path",
        "acme::ca_file" => "path, or \"\"",
        _ => return None,
    };
    Some(known.to_string())
}

/// `int(min, max)` as the row writes it (`1, 1 << 24`, `1, u64::MAX`),
/// in numbers.
fn integer_range(bounds: &str) -> String {
    let number = |text: &str| -> Option<u64> {
        let text = text.trim().replace('_', "");
        match text.split_once("<<") {
            Some((base, shift)) => {
                Some(base.trim().parse::<u64>().ok()? << shift.trim().parse::<u32>().ok()?)
            }
            None => text.parse().ok(),
        }
    };
    let (min, max) = bounds.split_once(',').unwrap_or((bounds, ""));
    match (number(min), max.trim()) {
        (Some(min), "u64::MAX") => format!("integer, {min} or more"),
        (Some(min), max) => match number(max) {
            Some(max) => format!("integer, {min} to {max}"),
            None => format!("integer ({bounds})"),
        },
        (None, _) => format!("integer ({bounds})"),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// The committed page is the table's; with `CONVEYOR_BLESS=1` the test
    /// writes it instead (the only way it is written).
    #[test]
    fn the_configuration_page_is_the_key_table() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(CONFIGURATION_PAGE);
        let page = configuration_page();
        if std::env::var("CONVEYOR_BLESS").as_deref() == Ok("1") {
            std::fs::write(&path, &page).expect("write the page");
            return;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        if let Some(difference) = first_difference(&committed, &page) {
            panic!(
                "{CONFIGURATION_PAGE} differs from the key table (src/config/keys.rs) at {difference}\n\
                 Write it again with: CONVEYOR_BLESS=1 cargo test --lib config::page"
            );
        }
    }

    /// Where two texts first differ: the line number and both lines.
    fn first_difference(committed: &str, expected: &str) -> Option<String> {
        let mut committed_lines = committed.lines();
        let mut expected_lines = expected.lines();
        for line in 1.. {
            match (committed_lines.next(), expected_lines.next()) {
                (None, None) => break,
                (a, b) if a == b => continue,
                (a, b) => {
                    let show =
                        |l: Option<&str>| l.map_or("(the end)".to_string(), |l| format!("{l:?}"));
                    return Some(format!(
                        "line {line}:\n  the page has  {}\n  the table has {}",
                        show(a),
                        show(b)
                    ));
                }
            }
        }
        // Lines alike: only the final newline can differ.
        (committed != expected).then(|| "the end: a final newline".to_string())
    }

    #[test]
    fn first_difference_names_the_line() {
        assert_eq!(first_difference("a\nb\n", "a\nb\n"), None);
        let d = first_difference("a\nb\n", "a\nc\n").expect("differs");
        assert!(
            d.starts_with("line 2:") && d.contains("\"b\"") && d.contains("\"c\""),
            "{d}"
        );
        let d = first_difference("a\n", "a\nc\n").expect("differs");
        assert!(d.contains("(the end)"), "{d}");
        assert!(first_difference("a", "a\n").is_some());
    }

    #[test]
    fn every_parser_has_a_type() {
        for key in KEYS {
            let Some(ty) = written_as(key) else {
                panic!(
                    "{}: add its parser {:?} to written_as",
                    key.name, key.parser
                );
            };
            assert!(!ty.contains('('), "{}: {ty}", key.name);
        }
    }

    #[test]
    fn a_row_per_key_in_its_section() {
        let page = configuration_page();
        let rows: Vec<&str> = page.lines().filter(|l| l.starts_with("| `")).collect();
        assert_eq!(rows.len(), KEYS.len());
        assert!(rows.contains(
            &"| `stages.pool_size` | integer, 1 to 65536 | `32` | Handler green threads per worker for the pool dispatcher. |"
        ));
        assert!(rows.contains(
            &"| `limits.max_requests_per_connection` | integer, 1 or more | `1000` | Requests served on one keep-alive connection before it is closed. |"
        ));
        assert!(page.contains("\n## `[timeouts]`\n"));
    }
}
