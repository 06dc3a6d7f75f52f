//! The layers point one way. Every top-level module of the library has a
//! rank; a file may name a module of a lower rank, or its own module, and
//! nothing else. This test reads every file under `src/`, finds each
//! `crate::…` path (in `use` lines, groups and inline paths alike), and fails
//! naming the file and the module it must not name.
//!
//! The binary (`main.rs`, `cli.rs`, `bench/`) sits on top: it sees the
//! library only through `conveyor::`, and the library never names it.

use std::fs;
use std::path::{Path, PathBuf};

/// The library's modules, from the ground up. The same rank means "neither
/// may name the other".
const RANKS: &[(&str, u8)] = &[
    ("runtime", 0),
    ("http", 1),
    ("tls", 2),
    ("metrics", 2),
    ("acme", 2),
    ("config", 3),
    ("access_log", 3),
    ("service", 4),
    ("stages", 5),
    ("listening", 6),
    ("server", 7),
    ("reload", 8),
];

/// Files of the `conveyor` binary, above every library module.
const BINARY: &[&str] = &["main.rs", "cli.rs", "bench"];

fn rank(module: &str) -> Option<u8> {
    RANKS.iter().find(|(m, _)| *m == module).map(|(_, r)| *r)
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .expect("read src")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without its comments and string literals, so a doc
/// comment or a message that mentions `crate::server` is not an import.
fn code_only(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        if rest.starts_with("//") {
            i += rest.find('\n').unwrap_or(rest.len());
        } else if rest.starts_with("/*") {
            i += rest.find("*/").map_or(rest.len(), |e| e + 2);
        } else if rest.starts_with("r#\"") || rest.starts_with("r\"") {
            let hashes = rest[1..].bytes().take_while(|b| *b == b'#').count();
            let close = format!("\"{}", "#".repeat(hashes));
            let body = 2 + hashes;
            i += rest[body..]
                .find(&close)
                .map_or(rest.len(), |e| body + e + close.len());
        } else if bytes[i] == b'"' {
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
        } else if bytes[i] == b'\'' && rest.len() >= 3 && is_char_literal(rest) {
            i += rest[1..].find('\'').map_or(rest.len(), |e| e + 2);
        } else {
            let c = rest.chars().next().expect("a char");
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// `'x'`, `'\n'`, `'\''`: a char literal, not a lifetime.
fn is_char_literal(rest: &str) -> bool {
    let b = rest.as_bytes();
    b[1] == b'\\' || (rest[1..].chars().nth(1) == Some('\''))
}

/// The top-level modules a piece of code names through `prefix` (`crate::`
/// or `conveyor::`), groups included: `crate::{a::x, b}` names `a` and `b`.
fn named_modules(code: &str, prefix: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = code[from..].find(prefix) {
        let start = from + at;
        from = start + prefix.len();
        let before = code[..start].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let rest = &code[from..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut item_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => item_start = true,
                    c if item_start && (c.is_alphabetic() || c == '_') => {
                        let name: String = group[i..]
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect();
                        found.push(name);
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.push(name);
            }
        }
    }
    found
}

/// Every upward import under `root`: (file, the module it names, why).
fn upward_imports(root: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(root, &mut files);
    let mut wrong = Vec::new();
    for path in files {
        let relative = path.strip_prefix(root).expect("under src");
        let first = relative
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .expect("a name");
        if BINARY.contains(&first) || first == "lib.rs" {
            continue;
        }
        let module = first.trim_end_matches(".rs");
        let Some(own) = rank(module) else {
            wrong.push(format!(
                "src/{}: module `{module}` has no rank in tests/it/layers.rs",
                relative.display()
            ));
            continue;
        };
        let code = code_only(&fs::read_to_string(&path).expect("read"));
        for name in named_modules(&code, "crate::") {
            if name == module || name == "self" {
                continue;
            }
            match rank(&name) {
                Some(r) if r < own => {}
                Some(r) => wrong.push(format!(
                    "src/{}: `{module}` (rank {own}) imports `crate::{name}` (rank {r}): \
                     only lower ranks may be named",
                    relative.display()
                )),
                None => wrong.push(format!(
                    "src/{}: imports `crate::{name}`, which is not a library module",
                    relative.display()
                )),
            }
        }
    }
    wrong
}

#[test]
fn every_import_under_src_points_down() {
    let wrong = upward_imports(&src());
    assert!(
        wrong.is_empty(),
        "imports against the layers:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn every_library_module_has_a_rank_and_every_rank_a_module() {
    let lib = fs::read_to_string(src().join("lib.rs")).expect("lib.rs");
    let declared: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.trim().split("mod ").nth(1))
        .filter_map(|rest| rest.strip_suffix(';'))
        .collect();
    let ranked: Vec<&str> = RANKS.iter().map(|(m, _)| *m).collect();
    let mut a = declared.clone();
    let mut b = ranked.clone();
    a.sort_unstable();
    b.sort_unstable();
    assert_eq!(
        a, b,
        "lib.rs declares {declared:?}; tests/it/layers.rs ranks {ranked:?}"
    );
}

/// The test itself can fail: a file that names a higher module, written
/// into a scratch tree, is reported with its name and the import.
#[test]
fn an_upward_import_is_reported_by_file_and_name() {
    let dir = std::env::temp_dir().join(format!("conveyor-layers-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("http")).expect("mkdir");
    fs::write(
        dir.join("http/mod.rs"),
        "//! crate::server in a comment is fine.\n\
         use crate::runtime::Queue;\n\
         use crate::{runtime::Latch, service::Route};\n\
         fn f() { let _ = \"crate::reload\"; crate::server::start(); }\n",
    )
    .expect("write");
    fs::write(dir.join("runtime.rs"), "use std::io;\n").expect("write");
    let wrong = upward_imports(&dir);
    fs::remove_dir_all(&dir).expect("clean up");
    assert_eq!(wrong.len(), 2, "{wrong:#?}");
    assert!(wrong[0].starts_with("src/http/mod.rs: `http` (rank 1) imports `crate::service`"));
    assert!(wrong[1].contains("imports `crate::server` (rank 7)"));
}
